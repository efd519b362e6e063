/* Safety of the CPU sampler (issue 3, "Safety"): the process profiles itself
 * at the highest allowed rate (PL_CPU_MAX_HZ) while, in several threads at
 * once, it does what makes the classic profilers deadlock or crash:
 *
 *   - dlopen(RTLD_NOW)/dlclose of a real shared library that is not loaded
 *     otherwise (so it is really mapped and unmapped; the loader lock is
 *     taken each time), calling into it in between;
 *   - malloc/calloc/realloc/free of varied sizes (16 B .. 1 MiB, so both the
 *     arenas and mmap-backed chunks);
 *   - fork(): the child does a little work (malloc, arithmetic) and _exit()s,
 *     the parent waitpid()s and checks the child's status;
 *   - qsort() with a comparator, so samples unwind through libc (built
 *     without frame pointers) back to our code;
 *   - short-lived threads (cpu mode arms timers for new threads as it finds
 *     them; some exit right after).
 *
 * Usage: safety-sampler [SECONDS=30] [cpu|wall|off]
 *   cpu  (default): CPU-time sampling of every thread; every thread, the
 *        main one included, runs the workloads above.
 *   wall: wall-clock sampling of the main thread, which itself cycles
 *        through all the workloads while the other threads run them too.
 *   off: the same workload without the profiler (a control: tells a
 *        profiler bug from a problem of the workload or the toolchain).
 *
 * After SECONDS the workers stop, the profile is stopped and symbolized and
 * the program checks: samples > 0; no frame without a name; samples in the
 * qsort comparator keep the caller above qsort (the unwinder crossed libc);
 * every workload made progress and every forked child exited 0. Exit 0 when
 * all hold, 1 otherwise. A deadlock is a hang: run it under timeout(1)
 * (tests/safety/run.sh does). A watchdog thread reports a workload that
 * stopped making progress (write(2) only) but does not end the process.
 *
 * The library to dlopen is the first of libexpat.so.1, libgdbm.so.6,
 * libsqlite3.so.0, libz.so.1 that is present and not already loaded;
 * PROFLAB_SAFETY_DLOPEN=soname chooses another.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proflab/profiler.h"
#include "proflab/cpu_profile.h"
#include "proflab/symbolize.h"

/* AddressSanitizer's allocator (gcc 12's libsanitizer) takes no locks
 * around fork(): a child that mallocs can hang on a lock another thread
 * held at the fork, with or without the profiler (the "off" control run
 * shows it). Under ASan the child works without malloc; the normal build
 * (glibc malloc, fork-safe) keeps malloc in the child. */
#if defined(__SANITIZE_ADDRESS__)
#define CHILD_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHILD_MALLOC 0
#endif
#endif
#ifndef CHILD_MALLOC
#define CHILD_MALLOC 1
#endif

enum kind { K_DLOPEN, K_MALLOC, K_FORK, K_QSORT, K_THREADS, K_MIX, K_COUNT };
static const char *const kind_names[K_COUNT] = {"dlopen", "malloc",  "fork",
                                                "qsort",  "threads", "mix"};

typedef struct worker {
  enum kind kind;
  unsigned id;
  pthread_t th;
  _Atomic uint64_t iterations;
  _Atomic uint64_t last_progress_ns;
  const char *_Atomic op; /* what it is doing now (for the watchdog) */
  int stuck_reported;
} worker;

#define MAX_WORKERS 16
static worker workers[MAX_WORKERS];
static unsigned nworkers;
static worker main_worker = {.kind = K_MIX, .id = 99};

static _Atomic int stop_flag;
static _Atomic int watchdog_stop;
static _Atomic uint64_t fork_failures, children_bad, dl_failures, alloc_failures;
static _Atomic uint64_t totals[K_COUNT];
static _Atomic uint64_t op_counts[8]; /* dlopen, fork, qsort, threads, mallocs */

static const char *dl_name;
static volatile uint64_t sink;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static void say(const char *msg) {
  ssize_t r = write(2, msg, strlen(msg));
  (void)r;
}

static void progress(worker *w, const char *op) {
  atomic_store_explicit(&w->op, op, memory_order_relaxed);
  atomic_fetch_add_explicit(&w->iterations, 1, memory_order_relaxed);
  atomic_store_explicit(&w->last_progress_ns, now_ns(), memory_order_relaxed);
}

/* ---- the workloads (non-static, noinline: they must show by name) ------- */

void safety_dlopen_round(worker *w);
void safety_malloc_round(worker *w, uint64_t *rng);
void safety_fork_round(worker *w);
int safety_cmp(const void *a, const void *b);
void safety_qsort_round(worker *w, uint64_t *rng);
void safety_thread_round(worker *w);
void *safety_worker_main(void *arg);

typedef void *(*xml_create_fn)(const char *);
typedef int (*xml_parse_fn)(void *, const char *, int, int);
typedef void (*xml_free_fn)(void *);
typedef unsigned long (*crc32_fn)(unsigned long, const unsigned char *, unsigned);

__attribute__((noinline)) void safety_dlopen_round(worker *w) {
  atomic_store_explicit(&w->op, "dlopen", memory_order_relaxed);
  void *h = dlopen(dl_name, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    atomic_fetch_add(&dl_failures, 1);
    return;
  }
  atomic_store_explicit(&w->op, "call into the library", memory_order_relaxed);
  xml_create_fn create = (xml_create_fn)dlsym(h, "XML_ParserCreate");
  xml_parse_fn parse = (xml_parse_fn)dlsym(h, "XML_Parse");
  xml_free_fn pfree = (xml_free_fn)dlsym(h, "XML_ParserFree");
  crc32_fn crc = (crc32_fn)dlsym(h, "crc32");
  if (create && parse && pfree) {
    static const char doc[] =
        "<a x='1'><b>text</b><c y='2'/><d><e>more text</e><e>and more</e></d></a>";
    for (int i = 0; i < 20; i++) {
      void *p = create(NULL);
      if (p) {
        parse(p, doc, (int)sizeof(doc) - 1, 1);
        pfree(p);
      }
    }
  } else if (crc) {
    unsigned char buf[4096];
    memset(buf, 0x5a, sizeof(buf));
    sink += crc(0, buf, sizeof(buf));
  }
  atomic_store_explicit(&w->op, "dlclose", memory_order_relaxed);
  if (dlclose(h) != 0) atomic_fetch_add(&dl_failures, 1);
  atomic_fetch_add_explicit(&op_counts[0], 1, memory_order_relaxed);
}

__attribute__((noinline)) void safety_malloc_round(worker *w, uint64_t *rng) {
  enum { SLOTS = 64 };
  void *slot[SLOTS] = {0};
  atomic_store_explicit(&w->op, "malloc/free", memory_order_relaxed);
  for (int i = 0; i < 2000; i++) {
    uint64_t r = xorshift(rng);
    unsigned k = (unsigned)(r % SLOTS);
    size_t size;
    switch ((r >> 8) % 8) {
      case 0:
        size = 16 + (r >> 16) % 48;
        break;
      case 1:
      case 2:
        size = 64 + (r >> 16) % 1024;
        break;
      case 3:
      case 4:
        size = 1024 + (r >> 16) % 32768;
        break;
      case 5:
        size = 128 * 1024 + (r >> 16) % (896 * 1024);
        break; /* mmap'd chunks */
      default:
        size = 1 + (r >> 16) % 256;
        break;
    }
    if (slot[k] && ((r >> 40) & 3) == 0) {
      void *q = realloc(slot[k], size);
      if (!q) {
        atomic_fetch_add(&alloc_failures, 1);
        continue;
      }
      slot[k] = q;
    } else {
      free(slot[k]);
      slot[k] = ((r >> 42) & 1) ? calloc(1, size) : malloc(size);
      if (!slot[k]) {
        atomic_fetch_add(&alloc_failures, 1);
        continue;
      }
    }
    ((volatile char *)slot[k])[0] = (char)i;
    ((volatile char *)slot[k])[size - 1] = (char)i;
  }
  for (unsigned k = 0; k < SLOTS; k++) free(slot[k]);
  atomic_fetch_add_explicit(&op_counts[4], 1, memory_order_relaxed);
}

__attribute__((noinline)) void safety_fork_round(worker *w) {
  atomic_store_explicit(&w->op, "fork", memory_order_relaxed);
  pid_t pid = fork();
  if (pid < 0) {
    atomic_fetch_add(&fork_failures, 1);
    return;
  }
  if (pid == 0) {
    /* the child: a little work, then _exit (no exit handlers, no stdio) */
    uint64_t x = (uint64_t)getpid();
    for (int i = 0; i < 50; i++) {
      char stackbuf[64];
      char *p = CHILD_MALLOC ? malloc(64 + (size_t)i * 100) : stackbuf;
      if (!p) _exit(3);
      memset(p, i, 64);
      x = x * 6364136223846793005ull + (uint64_t)p[1];
      if (CHILD_MALLOC) free(p);
    }
    sink = x;
    _exit(0);
  }
  atomic_store_explicit(&w->op, "waitpid", memory_order_relaxed);
  int status = 0;
  pid_t r;
  while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (r != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    atomic_fetch_add(&children_bad, 1);
  atomic_fetch_add_explicit(&op_counts[1], 1, memory_order_relaxed);
}

__attribute__((noinline)) int safety_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  /* some work per comparison so samples land here, not only in libc */
  uint32_t hx = x, hy = y;
  for (int i = 0; i < 24; i++) {
    hx = hx * 2654435761u + 1;
    hy = hy * 2654435761u + 1;
  }
  sink += hx ^ hy;
  return x < y ? -1 : x > y;
}

__attribute__((noinline)) void safety_qsort_round(worker *w, uint64_t *rng) {
  enum { N = 4000 };
  atomic_store_explicit(&w->op, "qsort", memory_order_relaxed);
  uint32_t *v = malloc(N * sizeof(*v));
  if (!v) {
    atomic_fetch_add(&alloc_failures, 1);
    return;
  }
  for (unsigned i = 0; i < N; i++) v[i] = (uint32_t)xorshift(rng);
  qsort(v, N, sizeof(*v), safety_cmp);
  for (unsigned i = 1; i < N; i++)
    if (v[i - 1] > v[i]) {
      say("safety-sampler: qsort result out of order\n");
      abort();
    }
  free(v);
  atomic_fetch_add_explicit(&op_counts[2], 1, memory_order_relaxed);
}

static void *short_thread(void *arg) {
  uint64_t rng = (uintptr_t)arg | 1;
  uint64_t end = now_ns() + 2000000; /* ~2 ms of work */
  while (now_ns() < end) {
    void *p = malloc(32 + xorshift(&rng) % 4000);
    free(p);
  }
  return NULL;
}

__attribute__((noinline)) void safety_thread_round(worker *w) {
  atomic_store_explicit(&w->op, "pthread_create/join", memory_order_relaxed);
  pthread_t t[4];
  int n = 0;
  for (int i = 0; i < 4; i++)
    if (pthread_create(&t[n], NULL, short_thread, (void *)(uintptr_t)(i + 1)) == 0) n++;
  for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
  atomic_fetch_add_explicit(&op_counts[3], 1, memory_order_relaxed);
}

static void run_one(worker *w, enum kind k, uint64_t *rng) {
  switch (k) {
    case K_DLOPEN:
      safety_dlopen_round(w);
      break;
    case K_MALLOC:
      safety_malloc_round(w, rng);
      break;
    case K_FORK:
      safety_fork_round(w);
      break;
    case K_QSORT:
      safety_qsort_round(w, rng);
      break;
    case K_THREADS:
      safety_thread_round(w);
      break;
    default:
      break;
  }
  progress(w, kind_names[k]);
}

__attribute__((noinline)) void *safety_worker_main(void *arg) {
  worker *w = arg;
  uint64_t rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)w->id << 32 | 12345);
  while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
    run_one(w, w->kind, &rng);
    atomic_fetch_add_explicit(&totals[w->kind], 1, memory_order_relaxed);
  }
  atomic_store_explicit(&w->op, "done", memory_order_relaxed);
  return NULL;
}

/* ---- watchdog ------------------------------------------------------------ */

static void report_stuck(worker *w, uint64_t idle_ns) {
  char msg[256];
  const char *op = atomic_load(&w->op);
  snprintf(
      msg, sizeof(msg),
      "safety-sampler: WATCHDOG: worker %u (%s) has made no progress for %llu s; last op: %s\n",
      w->id, kind_names[w->kind], (unsigned long long)(idle_ns / 1000000000u), op ? op : "?");
  say(msg);
}

static void *watchdog_main(void *arg) {
  (void)arg;
  const uint64_t limit = 20000000000ull; /* 20 s without progress */
  while (!atomic_load(&watchdog_stop)) {
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    uint64_t now = now_ns();
    for (unsigned i = 0; i <= nworkers; i++) {
      worker *w = i < nworkers ? &workers[i] : &main_worker;
      uint64_t last = atomic_load(&w->last_progress_ns);
      if (last && now - last > limit && !w->stuck_reported &&
          strcmp(atomic_load(&w->op) ? atomic_load(&w->op) : "", "done") != 0) {
        w->stuck_reported = 1;
        report_stuck(w, now - last);
      }
    }
  }
  return NULL;
}

/* ---- the library to dlopen ----------------------------------------------- */

static const char *pick_library(void) {
  const char *env = getenv("PROFLAB_SAFETY_DLOPEN");
  if (env && *env) return env;
  static const char *const candidates[] = {"libexpat.so.1", "libgdbm.so.6", "libsqlite3.so.0"};
  for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
    if (dlopen(candidates[i], RTLD_NOW | RTLD_NOLOAD)) continue; /* already loaded: not unmapped */
    void *h = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
    if (h) {
      dlclose(h);
      return candidates[i];
    }
  }
  return "libz.so.1"; /* always present (proflab links it), but already loaded */
}

/* ---- checks on the profile ----------------------------------------------- */

static int stack_has(const pl_cpu_profile *p, const pl_cpu_stack *st, const char *fn) {
  for (uint32_t k = 0; k < st->depth; k++)
    if (strcmp(p->frames[st->frames[k]].function, fn) == 0) return 1;
  return 0;
}

int main(int argc, char **argv) {
  long seconds = 30;
  pl_cpu_mode mode = PL_CPU_CPU;
  int profiling = 1;
  if (argc > 1) {
    char *end;
    seconds = strtol(argv[1], &end, 10);
    if (*end || seconds < 1 || seconds > 86400) {
      fprintf(stderr, "usage: %s [SECONDS=30] [cpu|wall|off]\n", argv[0]);
      return 2;
    }
  }
  if (argc > 2) {
    if (strcmp(argv[2], "wall") == 0)
      mode = PL_CPU_WALL;
    else if (strcmp(argv[2], "off") == 0)
      profiling = 0;
    else if (strcmp(argv[2], "cpu") != 0) {
      fprintf(stderr, "usage: %s [SECONDS=30] [cpu|wall|off]\n", argv[0]);
      return 2;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  dl_name = pick_library();
  printf("safety-sampler: mode=%s hz=%d seconds=%ld dlopen=%s child-malloc=%s\n",
         !profiling           ? "off"
         : mode == PL_CPU_CPU ? "cpu"
                              : "wall",
         PL_CPU_MAX_HZ, seconds, dl_name, CHILD_MALLOC ? "yes" : "no (ASan)");

  pl_cpu_options o = {.mode = mode, .hz = PL_CPU_MAX_HZ};
  int rc = profiling ? pl_cpu_profiler_start(&o) : 0;
  if (rc) {
    fprintf(stderr, "safety-sampler: pl_cpu_profiler_start: %s\n", strerror(-rc));
    return 1;
  }
  uint64_t t0 = now_ns();

  /* 2 x dlopen, 2 x malloc, 1 x fork, 1 x qsort, 1 x threads */
  static const enum kind plan[] = {K_DLOPEN, K_DLOPEN, K_MALLOC, K_MALLOC,
                                   K_FORK,   K_QSORT,  K_THREADS};
  for (size_t i = 0; i < sizeof(plan) / sizeof(plan[0]); i++) {
    worker *w = &workers[nworkers];
    w->kind = plan[i];
    w->id = (unsigned)nworkers;
    atomic_store(&w->last_progress_ns, now_ns());
    if (pthread_create(&w->th, NULL, safety_worker_main, w) != 0) {
      fprintf(stderr, "safety-sampler: pthread_create failed\n");
      return 1;
    }
    nworkers++;
  }
  atomic_store(&main_worker.last_progress_ns, now_ns());
  pthread_t wd;
  pthread_create(&wd, NULL, watchdog_main, NULL);

  /* the main thread (the one wall mode samples) cycles through everything */
  uint64_t rng = 0x2545f4914f6cdd1dull;
  uint64_t deadline = t0 + (uint64_t)seconds * 1000000000u;
  static const enum kind cycle[] = {K_DLOPEN, K_MALLOC, K_FORK, K_QSORT, K_MALLOC, K_THREADS};
  unsigned c = 0;
  while (now_ns() < deadline) {
    run_one(&main_worker, cycle[c++ % (sizeof(cycle) / sizeof(cycle[0]))], &rng);
    atomic_fetch_add(&totals[K_MIX], 1);
  }
  atomic_store(&stop_flag, 1);
  atomic_store_explicit(&main_worker.op, "joining workers", memory_order_relaxed);
  for (unsigned i = 0; i < nworkers; i++) pthread_join(workers[i].th, NULL);
  atomic_store_explicit(&main_worker.op, "done", memory_order_relaxed);

  pl_cpu_profile *p = NULL;
  rc = profiling ? pl_cpu_profiler_stop(&p) : 0;
  uint64_t t_stop = now_ns();
  atomic_store(&watchdog_stop, 1);
  pthread_join(wd, NULL);
  if (!profiling) { /* the control run: the same workload without the profiler */
    printf(
        "safety-sampler: ran %.1f s without the profiler; rounds: dlopen/dlclose %llu, malloc "
        "%llu, "
        "fork %llu (bad children %llu), qsort %llu, thread batches %llu\n",
        (double)(t_stop - t0) / 1e9, (unsigned long long)op_counts[0],
        (unsigned long long)op_counts[4], (unsigned long long)op_counts[1],
        (unsigned long long)children_bad, (unsigned long long)op_counts[2],
        (unsigned long long)op_counts[3]);
    return children_bad || fork_failures || dl_failures || alloc_failures;
  }
  if (rc) {
    fprintf(stderr, "safety-sampler: pl_cpu_profiler_stop: %s\n", strerror(-rc));
    return 1;
  }
  rc = pl_cpu_profile_symbolize(p);
  uint64_t t_sym = now_ns();
  if (rc) {
    fprintf(stderr, "safety-sampler: pl_cpu_profile_symbolize: %s\n", strerror(-rc));
    pl_cpu_profile_free(p);
    return 1;
  }
  pl_cpu_profile_info info;
  pl_cpu_profile_get_info(p, &info);

  /* what the samples show */
  uint64_t empty_names = 0, unresolved = 0, in_cmp = 0, cmp_with_caller = 0, in_lib = 0;
  uint64_t in_fork = 0, in_dl = 0, program = 0, truncated_to_pc = 0, with_unresolved = 0;
  for (size_t i = 0; i < p->nframes; i++) {
    const char *fn = p->frames[i].function;
    if (!fn || !*fn)
      empty_names++;
    else if (strncmp(fn, "0x", 2) == 0)
      unresolved++;
  }
  const char *lib_base = strrchr(dl_name, '/') ? strrchr(dl_name, '/') + 1 : dl_name;
  size_t lib_stem = strcspn(lib_base, ".");
  for (size_t i = 0; i < p->nsamples; i++) {
    const pl_cpu_sample *s = &p->samples[i];
    if (s->stack == PL_STACK_PROGRAM) {
      program++;
      continue;
    }
    if (s->stack == PL_STACK_IDLE) continue;
    const pl_cpu_stack *st = &p->stacks[s->stack];
    if (st->depth == 1) truncated_to_pc++;
    if (stack_has(p, st, "safety_cmp")) {
      in_cmp++;
      if (stack_has(p, st, "safety_qsort_round")) cmp_with_caller++;
    }
    if (stack_has(p, st, "safety_fork_round")) in_fork++;
    if (stack_has(p, st, "safety_dlopen_round")) in_dl++;
    for (uint32_t k = 0; k < st->depth; k++)
      if (strncmp(p->frames[st->frames[k]].function, "0x", 2) == 0) {
        with_unresolved++;
        break;
      }
    for (uint32_t k = 0; k < st->depth; k++) {
      const char *mod = p->frames[st->frames[k]].module;
      const char *mb = mod && strrchr(mod, '/') ? strrchr(mod, '/') + 1 : mod;
      if (mb && strncmp(mb, lib_base, lib_stem) == 0) {
        in_lib++;
        break;
      }
    }
  }

  printf("safety-sampler: ran %.1f s; stop+join %.0f ms after the deadline; symbolize %.0f ms\n",
         (double)(t_stop - t0) / 1e9, (double)(t_stop - deadline) / 1e6,
         (double)(t_sym - t_stop) / 1e6);
  printf(
      "safety-sampler: rounds: dlopen/dlclose %llu, malloc %llu, fork %llu, qsort %llu, thread "
      "batches %llu (main thread %llu)\n",
      (unsigned long long)op_counts[0], (unsigned long long)op_counts[4],
      (unsigned long long)op_counts[1], (unsigned long long)op_counts[2],
      (unsigned long long)op_counts[3], (unsigned long long)totals[K_MIX]);
  printf(
      "safety-sampler: profile: samples %llu, weight %llu, signals %llu, dropped %llu, threads %u, "
      "period %llu ns, duration %.3f s\n",
      (unsigned long long)info.samples, (unsigned long long)info.weight,
      (unsigned long long)info.signals, (unsigned long long)info.dropped, info.threads,
      (unsigned long long)info.period_ns, (double)info.duration_ns / 1e9);
  /* Frames in a library dlclosed before the profile stopped cannot be
   * symbolized afterwards: they show as "0x..." (reported, not checked). */
  printf(
      "safety-sampler: frames %zu (unresolved 0x... %llu, empty %llu), stacks %zu; samples: "
      "with an unresolved frame %llu, (program) %llu, pc-only %llu, in qsort comparator %llu "
      "(with caller above qsort %llu), in fork %llu, in dlopen round %llu, in %s %llu\n",
      p->nframes, (unsigned long long)unresolved, (unsigned long long)empty_names, p->nstacks,
      (unsigned long long)with_unresolved, (unsigned long long)program,
      (unsigned long long)truncated_to_pc, (unsigned long long)in_cmp,
      (unsigned long long)cmp_with_caller, (unsigned long long)in_fork, (unsigned long long)in_dl,
      lib_base, (unsigned long long)in_lib);

  int fail = 0;
#define CHECK(cond, ...)                            \
  do {                                              \
    if (!(cond)) {                                  \
      printf("safety-sampler: FAIL: " __VA_ARGS__); \
      printf("\n");                                 \
      fail = 1;                                     \
    }                                               \
  } while (0)
  CHECK(info.samples > 0, "no samples");
  CHECK(empty_names == 0, "%llu frames without a name", (unsigned long long)empty_names);
  CHECK(in_cmp > 0, "no sample in the qsort comparator");
  CHECK(in_cmp == 0 || cmp_with_caller * 10 >= in_cmp * 9,
        "only %llu of %llu samples in the qsort comparator reach safety_qsort_round above libc's "
        "qsort",
        (unsigned long long)cmp_with_caller, (unsigned long long)in_cmp);
  CHECK(op_counts[0] > 0 && op_counts[1] > 0 && op_counts[2] > 0 && op_counts[3] > 0 &&
            op_counts[4] > 0,
        "a workload made no progress");
  CHECK(fork_failures == 0, "%llu fork() failures", (unsigned long long)fork_failures);
  CHECK(children_bad == 0, "%llu children did not exit 0", (unsigned long long)children_bad);
  const char *dlerr = dlerror();
  CHECK(dl_failures == 0, "%llu dlopen/dlclose failures (%s)", (unsigned long long)dl_failures,
        dlerr ? dlerr : "no dlerror");
  CHECK(alloc_failures == 0, "%llu allocation failures", (unsigned long long)alloc_failures);
  if (mode == PL_CPU_CPU)
    CHECK(info.threads >= 2, "cpu mode sampled %u thread(s)", info.threads);
  else
    CHECK(info.threads == 1, "wall mode sampled %u threads", info.threads);
  pl_cpu_profile_free(p);
  printf("safety-sampler: %s\n", fail ? "FAILED" : "ok");
  return fail;
}
