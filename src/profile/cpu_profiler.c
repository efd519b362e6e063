/* The CPU profiler: timers, the collector thread, and the profile it
 * builds (see include/proflab/profiler.h). The signal path lives in
 * src/sample/; nothing here runs in a signal handler. */
#include "proflab/profiler.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "proflab/cpu_profile.h"
#include "profile/thread_start.h"
#include "sample/ring.h"
#include "sample/sigprof.h"
#include "sample/unwind.h"

#define RING_SLOTS 4096
#define COLLECT_EVERY_NS 5000000u
#define RESCAN_EVERY_NS 100000000u
#define TICKER_AVOID_EVERY_NS 100000000u

/* What a recording builds: the profile (model) and the interning tables
 * that are dropped when it is handed over. */
typedef struct owner {
  pl_cpu_profile *profile;
  /* interning */
  uint64_t *pc_keys; /* open addressing: adjusted pc + 1 (0 = empty) */
  uint32_t *pc_vals;
  size_t pc_cap, npcs;
  uintptr_t *pcs; /* frame index -> pc */
  size_t pcs_cap;
  uint32_t *pool; /* stack frames, concatenated */
  size_t pool_len, pool_cap;
  uint32_t *stk_off, *stk_depth;
  uint64_t *stk_hash;
  size_t nstacks, stacks_cap;
  uint32_t *stk_table; /* open addressing: stack id + 1 */
  size_t stk_table_cap;
  pl_cpu_sample *samples;
  size_t nsamples, samples_cap;
  int error;
} owner;

typedef struct running {
  pl_cpu_mode mode;
  uint64_t period_ns;
  pl__ring ring;
  timer_t timers[PL__SIGPROF_MAX_THREADS];
  uint32_t tids[PL__SIGPROF_MAX_THREADS];
  unsigned ntimers;
  uint32_t collector_tid;
  pthread_t collector;
  pthread_t ticker; /* wall mode: signals the sampled thread */
  int has_ticker;
  uint32_t wall_tid;
  _Atomic int stop;
  owner *own;
} running;

static pthread_mutex_t prof_lock = PTHREAD_MUTEX_INITIALIZER;
static running *current;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap : 1024;
  while (n < need) n *= 2;
  void *q = realloc(*p, n * elem);
  if (!q) return -ENOMEM;
  *p = q;
  *cap = n;
  return 0;
}

/* Frame index of an (adjusted) pc, adding it if new. */
static int intern_pc(owner *o, uintptr_t pc, uint32_t *out) {
  if ((o->npcs + 1) * 2 > o->pc_cap) {
    size_t ncap = o->pc_cap ? o->pc_cap * 2 : 4096;
    uint64_t *keys = calloc(ncap, sizeof(*keys));
    uint32_t *vals = calloc(ncap, sizeof(*vals));
    if (!keys || !vals) {
      free(keys);
      free(vals);
      return -ENOMEM;
    }
    for (size_t i = 0; i < o->pc_cap; i++) {
      if (!o->pc_keys[i]) continue;
      size_t h = pl__mix64(o->pc_keys[i]) & (ncap - 1);
      while (keys[h]) h = (h + 1) & (ncap - 1);
      keys[h] = o->pc_keys[i];
      vals[h] = o->pc_vals[i];
    }
    free(o->pc_keys);
    free(o->pc_vals);
    o->pc_keys = keys;
    o->pc_vals = vals;
    o->pc_cap = ncap;
  }
  uint64_t key = (uint64_t)pc + 1;
  size_t h = pl__mix64(key) & (o->pc_cap - 1);
  while (o->pc_keys[h]) {
    if (o->pc_keys[h] == key) {
      *out = o->pc_vals[h];
      return 0;
    }
    h = (h + 1) & (o->pc_cap - 1);
  }
  if (grow((void **)&o->pcs, &o->pcs_cap, o->npcs + 1, sizeof(*o->pcs))) return -ENOMEM;
  o->pcs[o->npcs] = pc;
  o->pc_keys[h] = key;
  o->pc_vals[h] = (uint32_t)o->npcs;
  *out = (uint32_t)o->npcs++;
  return 0;
}

static int stack_equal(const owner *o, uint32_t id, const uint32_t *f, uint32_t depth) {
  return o->stk_depth[id] == depth && memcmp(o->pool + o->stk_off[id], f, depth * sizeof(*f)) == 0;
}

/* Stack id of frames f[0..depth) (leaf first), adding it if new. */
static int intern_stack(owner *o, const uint32_t *f, uint32_t depth, uint32_t *out) {
  uint64_t hash = depth;
  for (uint32_t i = 0; i < depth; i++) hash = pl__mix64(hash ^ f[i]);
  if ((o->nstacks + 1) * 2 > o->stk_table_cap) {
    size_t ncap = o->stk_table_cap ? o->stk_table_cap * 2 : 4096;
    uint32_t *t = calloc(ncap, sizeof(*t));
    if (!t) return -ENOMEM;
    for (size_t id = 0; id < o->nstacks; id++) {
      size_t h = o->stk_hash[id] & (ncap - 1);
      while (t[h]) h = (h + 1) & (ncap - 1);
      t[h] = (uint32_t)id + 1;
    }
    free(o->stk_table);
    o->stk_table = t;
    o->stk_table_cap = ncap;
  }
  size_t h = hash & (o->stk_table_cap - 1);
  while (o->stk_table[h]) {
    uint32_t id = o->stk_table[h] - 1;
    if (o->stk_hash[id] == hash && stack_equal(o, id, f, depth)) {
      *out = id;
      return 0;
    }
    h = (h + 1) & (o->stk_table_cap - 1);
  }
  size_t cap = o->stacks_cap;
  if (grow((void **)&o->stk_off, &cap, o->nstacks + 1, sizeof(uint32_t))) return -ENOMEM;
  cap = o->stacks_cap;
  if (grow((void **)&o->stk_depth, &cap, o->nstacks + 1, sizeof(uint32_t))) return -ENOMEM;
  cap = o->stacks_cap;
  if (grow((void **)&o->stk_hash, &cap, o->nstacks + 1, sizeof(uint64_t))) return -ENOMEM;
  o->stacks_cap = cap;
  if (grow((void **)&o->pool, &o->pool_cap, o->pool_len + depth, sizeof(uint32_t))) return -ENOMEM;
  memcpy(o->pool + o->pool_len, f, depth * sizeof(*f));
  o->stk_off[o->nstacks] = (uint32_t)o->pool_len;
  o->stk_depth[o->nstacks] = depth;
  o->stk_hash[o->nstacks] = hash;
  o->pool_len += depth;
  o->stk_table[h] = (uint32_t)o->nstacks + 1;
  *out = (uint32_t)o->nstacks++;
  return 0;
}

static int add_sample(owner *o, const pl__raw_sample *s) {
  uint32_t frames[PL__MAX_FRAMES];
  uint32_t stack;
  if (s->flags & PL__RAW_IDLE) {
    stack = PL_STACK_IDLE;
    o->profile->idle_samples++;
  } else if (s->depth == 0) {
    stack = PL_STACK_PROGRAM;
  } else {
    uint32_t depth = s->depth > PL__MAX_FRAMES ? PL__MAX_FRAMES : s->depth;
    for (uint32_t i = 0; i < depth; i++) {
      /* callers' pcs are return addresses: look up the call instruction */
      uintptr_t pc = i == 0 ? s->pcs[i] : s->pcs[i] - 1;
      if (intern_pc(o, pc, &frames[i])) return -ENOMEM;
    }
    if (intern_stack(o, frames, depth, &stack)) return -ENOMEM;
  }
  if (grow((void **)&o->samples, &o->samples_cap, o->nsamples + 1, sizeof(*o->samples)))
    return -ENOMEM;
  pl_cpu_sample *d = &o->samples[o->nsamples++];
  d->time_ns = s->time_ns;
  d->stack = stack;
  d->weight = s->weight ? s->weight : 1;
  d->tid = s->tid;
  return 0;
}

static void drain(running *r) {
  pl__raw_sample *s;
  while ((s = pl__ring_peek(&r->ring))) {
    if (!r->own->error && add_sample(r->own, s)) r->own->error = -ENOMEM;
    pl__ring_release(&r->ring, s);
  }
}

static uint32_t gettid_u32(void) { return (uint32_t)syscall(SYS_gettid); }

/* A thread's CPU-time clock (the kernel's MAKE_THREAD_CPUCLOCK). */
static clockid_t thread_cpu_clock(uint32_t tid) { return (clockid_t)((~(unsigned)tid << 3) | 6u); }

static int arm_timer(running *r, unsigned i, clockid_t clock, uint32_t tid) {
  struct sigevent sev;
  memset(&sev, 0, sizeof(sev));
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = SIGPROF;
  sev.sigev_value.sival_int = pl__sigprof_value(i);
  sev._sigev_un._tid = (pid_t)tid;
  if (timer_create(clock, &sev, &r->timers[i]) != 0) return -errno;
  struct itimerspec its;
  its.it_interval.tv_sec = (time_t)(r->period_ns / 1000000000u);
  its.it_interval.tv_nsec = (long)(r->period_ns % 1000000000u);
  its.it_value = its.it_interval;
  if (timer_settime(r->timers[i], 0, &its, NULL) != 0) {
    int e = -errno;
    timer_delete(r->timers[i]);
    return e;
  }
  return 0;
}

static int known_tid(const running *r, uint32_t tid) {
  for (unsigned i = 0; i < r->ntimers; i++)
    if (r->tids[i] == tid) return 1;
  return 0;
}

/* cpu mode: give every thread of the process (but the collector) a timer. */
static void scan_threads(running *r) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    uint64_t tid;
    if (pl__parse_u64(e->d_name, &tid) != 0 || tid == 0 || tid > UINT32_MAX) continue;
    if (tid == r->collector_tid || known_tid(r, (uint32_t)tid)) continue;
    if (r->ntimers >= PL__SIGPROF_MAX_THREADS) break;
    unsigned i = r->ntimers;
    r->tids[i] = (uint32_t)tid;
    pl__sigprof_set_tid(i, (uint32_t)tid);
    if (arm_timer(r, i, thread_cpu_clock((uint32_t)tid), (uint32_t)tid) == 0) r->ntimers++;
  }
  closedir(d);
}

/* ---- new threads ----------------------------------------------------- */
/* CPU timers cover only threads that exist when they are armed; the
 * pthread_create wrapper (thread_start.c) calls this in a new thread,
 * before its start routine, while a cpu-mode profile runs. */
void pl__cpu_profiler_thread_started(void) {
  pthread_mutex_lock(&prof_lock);
  running *r = current;
  if (r && r->mode == PL_CPU_CPU && !atomic_load(&r->stop)) {
    uint32_t tid = gettid_u32();
    if (!known_tid(r, tid) && r->ntimers < PL__SIGPROF_MAX_THREADS) {
      unsigned i = r->ntimers;
      r->tids[i] = tid;
      pl__sigprof_set_tid(i, tid);
      if (arm_timer(r, i, thread_cpu_clock(tid), tid) == 0) r->ntimers++;
    }
  }
  pthread_mutex_unlock(&prof_lock);
}

/* ---- wall mode: the ticker -------------------------------------------- */
/* A timer aimed at the loop thread costs that thread a timer interrupt per
 * sample, which on this VM is 4-5x the signal itself (~20 us against ~5 us
 * at 10 kHz: bench/cpu "floor"). So by default a ticker thread sleeps to
 * each period boundary (clock_nanosleep, absolute) and queues the SIGPROF
 * to the loop thread (rt_tgsigqueueinfo, SI_QUEUE): the interrupt lands on
 * the ticker's CPU, the loop thread only takes the signal. Each signal
 * carries the number of boundaries passed since the last one (the weight,
 * like a timer's overrun), and the next one is sent only once the last was
 * handled (a standard signal does not queue twice). Every 100 ms the
 * ticker moves itself off the CPU the loop thread last ran on
 * (PROFLAB_CPU_TICKER_PIN=0 leaves it to the scheduler).
 * PROFLAB_CPU_WALL_TIMER=1 uses a POSIX timer on the loop thread instead. */

static int ticker_pin_off(void) {
  const char *v = getenv("PROFLAB_CPU_TICKER_PIN");
  return v && strcmp(v, "0") == 0;
}

static int wall_timer_wanted(void) {
  const char *v = getenv("PROFLAB_CPU_WALL_TIMER");
  return v && strcmp(v, "1") == 0;
}

/* The CPU thread tid last ran on (field 39 of its stat), or -1. */
static int thread_cpu(uint32_t tid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/self/task/%u/stat", (unsigned)tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  const char *p = strrchr(buf, ')'); /* the name may hold spaces */
  if (!p) return -1;
  for (int field = 2; field < 39; field++) { /* p is inside field 2 */
    p = strchr(p + 1, ' ');
    if (!p) return -1;
  }
  uint64_t cpu;
  const char *end = strchr(p + 1, ' ');
  if (!end || pl__parse_u64n(p + 1, (size_t)(end - p - 1), &cpu) != 0 || cpu >= CPU_SETSIZE)
    return -1;
  return (int)cpu;
}

/* Keep the ticker off the CPU the loop thread runs on: there its timer
 * interrupt and wake-ups would land on the loop thread again. */
static void ticker_avoid(const cpu_set_t *allowed, uint32_t tid) {
  int cpu = thread_cpu(tid);
  if (cpu < 0 || !CPU_ISSET(cpu, allowed) || CPU_COUNT(allowed) < 2) return;
  cpu_set_t set = *allowed;
  CPU_CLR(cpu, &set);
  sched_setaffinity(0, sizeof(set), &set); /* best effort */
}

static void *ticker_main(void *arg) {
  running *r = arg;
  pid_t pid = getpid();
  uid_t uid = getuid();
  uint64_t period = r->period_ns, base = pl__now_ns(), index = 0, pending = 0;
  uint64_t sent = pl__sigprof_queued_done(), last_send = base, last_avoid = 0;
  cpu_set_t allowed;
  int pin = sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && !ticker_pin_off();
  while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
    if (pin && base + index * period - last_avoid >= TICKER_AVOID_EVERY_NS) {
      ticker_avoid(&allowed, r->wall_tid);
      last_avoid = base + index * period;
    }
    uint64_t next = base + (index + 1) * period;
    struct timespec ts = {(time_t)(next / 1000000000u), (long)(next % 1000000000u)};
    int e = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    if (e && e != EINTR) break;
    uint64_t now = pl__now_ns();
    if (now < next) continue;
    uint64_t k = (now - base) / period; /* boundaries passed so far */
    pending += k - index;
    index = k;
    /* the last signal handled, or lost (a recording ended meanwhile) */
    if (pl__sigprof_queued_done() != sent && now - last_send < 1000000000u) continue;
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    si.si_signo = SIGPROF;
    si.si_code = SI_QUEUE;
    si.si_pid = pid;
    si.si_uid = uid;
    si.si_value.sival_int = pl__sigprof_queued_value((unsigned)(pending - 1));
    sent = pl__sigprof_queued_done() + 1;
    if (syscall(SYS_rt_tgsigqueueinfo, pid, (pid_t)r->wall_tid, SIGPROF, &si) != 0) {
      if (errno == ESRCH) break;        /* the thread is gone */
      sent = pl__sigprof_queued_done(); /* EAGAIN: try again next period */
      continue;
    }
    pending = 0;
    last_send = now;
  }
  return NULL;
}

static void *collector_main(void *arg) {
  running *r = arg;
  r->collector_tid = gettid_u32();
  uint64_t last_scan = pl__now_ns();
  while (!atomic_load(&r->stop)) {
    struct timespec ts = {0, COLLECT_EVERY_NS};
    nanosleep(&ts, NULL);
    drain(r);
    if (r->mode == PL_CPU_CPU && pl__now_ns() - last_scan >= RESCAN_EVERY_NS) {
      pthread_mutex_lock(&prof_lock);
      if (!atomic_load(&r->stop)) scan_threads(r);
      pthread_mutex_unlock(&prof_lock);
      last_scan = pl__now_ns();
    }
  }
  return NULL;
}

/* The interning tables; the profile stays. */
static void owner_free_tables(owner *o) {
  free(o->pc_keys);
  free(o->pc_vals);
  free(o->pcs);
  free(o->stk_off);
  free(o->stk_depth);
  free(o->stk_hash);
  free(o->stk_table);
}

static void owner_free(owner *o) {
  if (!o) return;
  owner_free_tables(o);
  free(o->samples);
  free(o->pool);
  pl_cpu_profile_free(o->profile);
  free(o);
}

int pl_cpu_profiler_start(const pl_cpu_options *opts) {
  unsigned hz = opts->hz ? opts->hz : 1000;
  if (hz > PL_CPU_MAX_HZ || (opts->mode != PL_CPU_WALL && opts->mode != PL_CPU_CPU)) return -EINVAL;
  int rc = pl__sigprof_install();
  if (rc) return rc;
  pthread_mutex_lock(&prof_lock);
  if (current) {
    pthread_mutex_unlock(&prof_lock);
    return -EBUSY;
  }
  running *r = calloc(1, sizeof(*r));
  owner *o = calloc(1, sizeof(*o));
  if (!r || !o || !(o->profile = pl_cpu_profile_new())) {
    rc = -ENOMEM;
    goto fail;
  }
  r->own = o;
  r->mode = opts->mode;
  r->period_ns = 1000000000u / hz;
  if ((rc = pl__ring_init(&r->ring, RING_SLOTS)) != 0) goto fail;
  uint32_t wall_tid = opts->wall_tid ? opts->wall_tid : gettid_u32();
  o->profile->period_ns = r->period_ns;
  o->profile->mode = opts->mode == PL_CPU_WALL ? "wall" : "cpu";
  /* the collector must exist before cpu-mode scanning, to leave it out */
  if ((rc = -pthread_create(&r->collector, NULL, collector_main, r)) != 0) goto fail;
  while (!r->collector_tid) {
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
  }
  if (opts->mode == PL_CPU_WALL) r->tids[0] = wall_tid;
  pl__sigprof_begin(&r->ring, r->tids, opts->mode == PL_CPU_WALL ? opts->idle_flag : NULL,
                    wall_tid);
  o->profile->start_ns = pl__now_ns();
  o->profile->start_wall_ns = pl__wall_ns();
  if (opts->mode == PL_CPU_WALL) {
    r->wall_tid = wall_tid;
    if (wall_timer_wanted()) {
      if ((rc = arm_timer(r, 0, CLOCK_MONOTONIC, wall_tid)) != 0) goto fail_running;
      r->ntimers = 1;
    } else {
      if ((rc = -pthread_create(&r->ticker, NULL, ticker_main, r)) != 0) goto fail_running;
      r->has_ticker = 1;
    }
  } else {
    scan_threads(r);
    if (r->ntimers == 0) {
      rc = -EAGAIN;
      goto fail_running;
    }
  }
  current = r;
  if (opts->mode == PL_CPU_CPU) pl__thread_start_watch(1);
  pthread_mutex_unlock(&prof_lock);
  return 0;
fail_running:
  atomic_store(&r->stop, 1);
  pl__sigprof_end();
  pl__sigprof_quiesce();
  pthread_join(r->collector, NULL);
fail:
  if (r) pl__ring_free(&r->ring);
  owner_free(o);
  free(r);
  pthread_mutex_unlock(&prof_lock);
  return rc;
}

int pl_cpu_profiler_running(void) {
  pthread_mutex_lock(&prof_lock);
  int on = current != NULL;
  pthread_mutex_unlock(&prof_lock);
  return on;
}

static int by_time(const void *a, const void *b) {
  const pl_cpu_sample *x = a, *y = b;
  return x->time_ns < y->time_ns ? -1 : x->time_ns > y->time_ns;
}

int pl_cpu_profiler_stop(pl_cpu_profile **out) {
  pthread_mutex_lock(&prof_lock);
  running *r = current;
  if (!r) {
    pthread_mutex_unlock(&prof_lock);
    return -ENOENT;
  }
  current = NULL;
  pl__thread_start_watch(0);
  atomic_store(&r->stop, 1);
  for (unsigned i = 0; i < r->ntimers; i++) timer_delete(r->timers[i]);
  if (r->has_ticker) pthread_join(r->ticker, NULL); /* wakes within a period */
  owner *o = r->own;
  o->profile->end_ns = pl__now_ns();
  o->profile->signals = pl__sigprof_signals();
  pl__unwind_stats us;
  pl__unwind_get_stats(&us);
  o->profile->unwind_fp = us.captures > us.dwarf ? us.captures - us.dwarf : 0;
  o->profile->unwind_cached = us.cached;
  o->profile->unwind_dwarf = us.dwarf;
  o->profile->unwind_verified = us.verified;
  o->profile->unwind_mismatched = us.mismatched;
  o->profile->unwind_fell_back = us.fell_back;
  pl__sigprof_end();
  pl__sigprof_quiesce();
  pthread_mutex_unlock(&prof_lock);
  pthread_join(r->collector, NULL);
  drain(r);
  o->profile->dropped = atomic_load(&r->ring.dropped);
  pl__ring_free(&r->ring);
  free(r);
  if (o->error) {
    int err = o->error;
    owner_free(o);
    return err;
  }
  /* Threads' samples interleave slightly out of order in the ring. */
  if (o->nsamples) qsort(o->samples, o->nsamples, sizeof(*o->samples), by_time);
  pl_cpu_profile *p = o->profile;
  p->samples = o->samples;
  p->nsamples = o->nsamples;
  uint32_t *pool = o->pool;
  int rc = pl_cpu_profile_adopt(p, o->samples); /* the profile frees them from here on */
  o->samples = NULL;
  int rc2 = pl_cpu_profile_adopt(p, o->pool);
  o->pool = NULL;
  p->nframes = o->npcs;
  p->frames = pl_cpu_profile_alloc(p, (o->npcs ? o->npcs : 1) * sizeof(pl_frame));
  p->stacks = pl_cpu_profile_alloc(p, (o->nstacks ? o->nstacks : 1) * sizeof(pl_cpu_stack));
  if (rc || rc2 || !p->frames || !p->stacks) {
    owner_free(o);
    return -ENOMEM;
  }
  for (size_t i = 0; i < o->npcs; i++) {
    p->frames[i].address = o->pcs[i];
    p->frames[i].function = "";
    p->frames[i].file = "";
    p->frames[i].module = "";
  }
  p->nstacks = o->nstacks;
  for (size_t i = 0; i < o->nstacks; i++) {
    p->stacks[i].depth = o->stk_depth[i];
    p->stacks[i].frames = pool + o->stk_off[i];
  }
  owner_free_tables(o);
  free(o);
  *out = p;
  return 0;
}

/* ---- loop idle tracking ----------------------------------------------- */

struct pl_loop_idle {
  uv_prepare_t prepare;
  uv_check_t check;
  volatile sig_atomic_t in_poll;
  int closing;
};

static void on_prepare(uv_prepare_t *h) { ((pl_loop_idle *)h->data)->in_poll = 1; }
static void on_check(uv_check_t *h) { ((pl_loop_idle *)h->data)->in_poll = 0; }

int pl_loop_idle_track(uv_loop_t *loop, pl_loop_idle **out) {
  pl_loop_idle *t = calloc(1, sizeof(*t));
  if (!t) return -ENOMEM;
  uv_prepare_init(loop, &t->prepare);
  uv_check_init(loop, &t->check);
  t->prepare.data = t->check.data = t;
  uv_prepare_start(&t->prepare, on_prepare);
  uv_check_start(&t->check, on_check);
  uv_unref((uv_handle_t *)&t->prepare);
  uv_unref((uv_handle_t *)&t->check);
  *out = t;
  return 0;
}

volatile sig_atomic_t *pl_loop_idle_flag(pl_loop_idle *t) { return &t->in_poll; }

static void on_idle_closed(uv_handle_t *h) {
  pl_loop_idle *t = h->data;
  if (++t->closing == 3) free(t);
}

void pl_loop_idle_untrack(pl_loop_idle *t) {
  if (!t) return;
  t->closing = 1;
  uv_close((uv_handle_t *)&t->prepare, on_idle_closed);
  uv_close((uv_handle_t *)&t->check, on_idle_closed);
}
