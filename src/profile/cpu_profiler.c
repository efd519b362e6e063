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
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "proflab/cpu_profile.h"
#include "profile/thread_start.h"
#include "profile/threads.h"
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

/* A thread the sampler looked at (index = timer or ticker index, the
 * unwinder's per-thread slot). */
enum { T_SAMPLED, T_GONE, T_BLOCKED };
typedef struct target {
  char name[16];
  unsigned char state; /* T_* */
  uint32_t sent_done;  /* ticker: pl__sigprof_queued_done when the last signal is handled */
  uint32_t pending;    /* ticker: periods passed since the last signal */
  uint64_t last_send;  /* ticker */
} target;

typedef struct running {
  pl_cpu_mode mode;
  uint64_t period_ns;
  pl__ring ring;
  timer_t timers[PL__SIGPROF_MAX_THREADS];
  uint32_t tids[PL__SIGPROF_MAX_THREADS];
  unsigned ntimers; /* cpu mode: timers; wall mode: threads of tids/targets */
  /* cpu mode: threads left out (their mask blocks SIGPROF), after the timers */
  uint32_t skipped_tids[PL_CPU_MAX_THREADS];
  unsigned nskipped;
  target targets[PL__SIGPROF_MAX_THREADS];
  uint32_t collector_tid, ticker_tid;
  pthread_t collector;
  pthread_t ticker; /* wall mode: signals the sampled threads */
  int has_ticker;
  int wall_all; /* wall mode: rescan for new threads */
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
  if (s->flags & PL__RAW_BLOCKED) o->profile->blocked_samples++;
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

static int skipped_tid(const running *r, uint32_t tid) {
  for (unsigned i = 0; i < r->nskipped; i++)
    if (r->skipped_tids[i] == tid) return 1;
  return 0;
}

/* Add a thread found in /proc/self/task: cpu mode arms its timer, wall
 * mode makes it a ticker target. A thread whose mask blocks SIGPROF is
 * recorded but never signalled (its samples would wait forever); one of
 * proflab's own threads is left out. */
static void add_thread(running *r, uint32_t tid) {
  if (tid == r->collector_tid || tid == r->ticker_tid || known_tid(r, tid) || skipped_tid(r, tid))
    return;
  if (r->ntimers >= PL__SIGPROF_MAX_THREADS) return;
  pl__thread_info ti;
  if (pl__thread_info_read(tid, &ti) != 0 || ti.proflab) return;
  unsigned i = r->ntimers;
  target *t = &r->targets[i];
  memcpy(t->name, ti.name, sizeof(t->name));
  if (ti.blocks_sigprof) {
    if (r->mode == PL_CPU_CPU) { /* no timer: remember it apart */
      if (r->nskipped < PL_CPU_MAX_THREADS) r->skipped_tids[r->nskipped++] = tid;
      return;
    }
    t->state = T_BLOCKED;
    r->tids[i] = tid;
    r->ntimers++;
    return;
  }
  t->state = T_SAMPLED;
  r->tids[i] = tid;
  pl__sigprof_set_tid(i, tid);
  if (r->mode == PL_CPU_CPU && arm_timer(r, i, thread_cpu_clock(tid), tid) != 0) return;
  t->sent_done = pl__sigprof_queued_done(i); /* nothing outstanding */
  r->ntimers++;
}

/* cpu mode, and wall mode over all threads: every thread of the process
 * (but the profiler's own and proflab's). */
static void scan_threads(running *r) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    uint64_t tid;
    if (pl__parse_u64(e->d_name, &tid) != 0 || tid == 0 || tid > UINT32_MAX) continue;
    add_thread(r, (uint32_t)tid);
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
    char name[16] = "";
    sigset_t mask;
    /* cheap checks of the calling thread: a name inherited from one of
     * proflab's threads, a mask inherited with SIGPROF blocked */
    int ours = prctl(PR_GET_NAME, name) == 0 &&
               strncmp(name, PL__THREAD_NAME_PREFIX, strlen(PL__THREAD_NAME_PREFIX)) == 0;
    int blocked = pthread_sigmask(SIG_BLOCK, NULL, &mask) == 0 && sigismember(&mask, SIGPROF);
    if (!ours && !blocked && !known_tid(r, tid) && r->ntimers < PL__SIGPROF_MAX_THREADS) {
      unsigned i = r->ntimers;
      r->tids[i] = tid;
      memcpy(r->targets[i].name, name, sizeof(name));
      r->targets[i].state = T_SAMPLED;
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

/* Queue the next SIGPROF to target i if its last one was handled (or has
 * waited a second: lost to the end of an earlier recording, or the
 * thread now blocks SIGPROF, which is then looked at again). */
static void ticker_send(running *r, unsigned i, pid_t pid, uid_t uid, uint64_t now) {
  target *t = &r->targets[i];
  if (t->state != T_SAMPLED) return;
  if (pl__sigprof_queued_done(i) != t->sent_done) {
    if (now - t->last_send < 1000000000u) return;
    pl__thread_info ti;
    int rc = pl__thread_info_read(r->tids[i], &ti);
    if (rc == -ENOENT) {
      t->state = T_GONE;
      return;
    }
    if (rc == 0 && ti.blocks_sigprof) { /* blocked since the start */
      t->state = T_BLOCKED;
      return;
    }
  }
  siginfo_t si;
  memset(&si, 0, sizeof(si));
  si.si_signo = SIGPROF;
  si.si_code = SI_QUEUE;
  si.si_pid = pid;
  si.si_uid = uid;
  si.si_value.sival_int = pl__sigprof_queued_value(i);
  pl__sigprof_queued_add(i, t->pending ? t->pending : 1);
  t->pending = 0;
  t->sent_done = pl__sigprof_queued_done(i) + 1;
  if (syscall(SYS_rt_tgsigqueueinfo, pid, (pid_t)r->tids[i], SIGPROF, &si) != 0) {
    if (errno == ESRCH) t->state = T_GONE;     /* the thread is gone */
    t->sent_done = pl__sigprof_queued_done(i); /* EAGAIN: try again next period */
    return;                                    /* the periods added stay for its next sample */
  }
  t->last_send = now;
}

static void *ticker_main(void *arg) {
  running *r = arg;
  pl__thread_name_self(PL__THREAD_NAME_PREFIX "ticker");
  r->ticker_tid = gettid_u32();
  pid_t pid = getpid();
  uid_t uid = getuid();
  uint64_t period = r->period_ns, base = pl__now_ns(), index = 0;
  uint64_t last_avoid = 0, last_scan = base;
  for (unsigned i = 0; i < r->ntimers; i++) r->targets[i].last_send = base;
  cpu_set_t allowed;
  /* one thread: keep off its CPU; several: leave it to the scheduler */
  int pin = !r->wall_all && r->ntimers == 1 &&
            sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && !ticker_pin_off();
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
    unsigned live = 0;
    for (unsigned i = 0; i < r->ntimers; i++) {
      target *t = &r->targets[i];
      uint64_t p = t->pending + (k - index);
      t->pending = p > UINT32_MAX ? UINT32_MAX : (uint32_t)p;
      ticker_send(r, i, pid, uid, now);
      live += t->state == T_SAMPLED;
    }
    index = k;
    if (r->wall_all && now - last_scan >= RESCAN_EVERY_NS) {
      unsigned before = r->ntimers;
      scan_threads(r);
      for (unsigned i = before; i < r->ntimers; i++) r->targets[i].last_send = now;
      last_scan = now;
    } else if (!r->wall_all && live == 0) {
      break; /* every thread named is gone */
    }
  }
  return NULL;
}

static void *collector_main(void *arg) {
  running *r = arg;
  pl__thread_name_self(PL__THREAD_NAME_PREFIX "collect");
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

/* The threads the recording looked at, into the profile. 0 or -ENOMEM. */
static int record_threads(pl_cpu_profile *p, const running *r) {
  size_t n = r->ntimers + r->nskipped;
  p->threads = pl_cpu_profile_alloc(p, (n ? n : 1) * sizeof(*p->threads));
  if (!p->threads) return -ENOMEM;
  for (unsigned i = 0; i < r->ntimers; i++) {
    pl_cpu_thread *t = &p->threads[p->nthreads++];
    t->tid = r->tids[i];
    t->flags = r->targets[i].state == T_BLOCKED ? PL_CPU_THREAD_SIGPROF_BLOCKED : 0;
    t->name = pl_cpu_profile_strdup(p, r->targets[i].name);
    if (!t->name) return -ENOMEM;
  }
  for (unsigned i = 0; i < r->nskipped; i++) {
    pl_cpu_thread *t = &p->threads[p->nthreads++];
    t->tid = r->skipped_tids[i];
    t->flags = PL_CPU_THREAD_SIGPROF_BLOCKED;
    t->name = "";
  }
  return 0;
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
  if (hz > PL_CPU_MAX_HZ || (opts->mode != PL_CPU_WALL && opts->mode != PL_CPU_CPU) ||
      opts->nwall_tids > PL_CPU_MAX_THREADS || (opts->nwall_tids && !opts->wall_tids))
    return -EINVAL;
  int multi = opts->mode == PL_CPU_WALL && (opts->wall_all || opts->nwall_tids);
  for (unsigned i = 0; multi && i < opts->nwall_tids; i++) {
    int trc = pl_cpu_profiler_thread_check(opts->wall_tids[i]);
    if (trc) return trc == -EINVAL ? -ESRCH : trc;
  }
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
  r->wall_all = multi && opts->wall_all;
  if (multi && opts->wall_all) {
    scan_threads(r);
  } else if (multi) {
    for (unsigned i = 0; i < opts->nwall_tids; i++) add_thread(r, opts->wall_tids[i]);
  } else if (opts->mode == PL_CPU_WALL) {
    r->tids[0] = wall_tid;
    r->ntimers = 1;
    pl__thread_info ti;
    if (pl__thread_info_read(wall_tid, &ti) == 0) {
      memcpy(r->targets[0].name, ti.name, 16);
      if (ti.blocks_sigprof) r->targets[0].state = T_BLOCKED;
    }
    r->targets[0].sent_done = pl__sigprof_queued_done(0);
  }
  if (opts->mode == PL_CPU_WALL) {
    unsigned usable = 0;
    for (unsigned i = 0; i < r->ntimers; i++) usable += r->targets[i].state == T_SAMPLED;
    if (!usable && !r->wall_all) {
      rc = r->ntimers ? -EPERM : -ESRCH;
      goto fail_collector;
    }
    if (!usable) { /* every thread of the program blocks SIGPROF */
      rc = -EPERM;
      goto fail_collector;
    }
  }
  unsigned flags = multi && !opts->offcpu ? PL__SIGPROF_BLOCKED_IDLE : 0;
  pl__sigprof_begin(&r->ring, r->tids,
                    opts->mode == PL_CPU_WALL && !opts->offcpu ? opts->idle_flag : NULL, wall_tid,
                    flags);
  o->profile->start_ns = pl__now_ns();
  o->profile->start_wall_ns = pl__wall_ns();
  if (opts->mode == PL_CPU_WALL) {
    r->wall_tid = wall_tid;
    if (!multi && wall_timer_wanted()) {
      r->ntimers = 0;
      if ((rc = arm_timer(r, 0, CLOCK_MONOTONIC, wall_tid)) != 0) goto fail_running;
      r->ntimers = 1;
    } else {
      if ((rc = -pthread_create(&r->ticker, NULL, ticker_main, r)) != 0) goto fail_running;
      r->has_ticker = 1;
    }
  } else {
    scan_threads(r);
    if (r->ntimers == 0) {
      rc = r->nskipped ? -EPERM : -EAGAIN;
      goto fail_running;
    }
  }
  current = r;
  if (opts->mode == PL_CPU_CPU) pl__thread_start_watch(1);
  pthread_mutex_unlock(&prof_lock);
  return 0;
fail_running:
  for (unsigned i = 0; opts->mode == PL_CPU_CPU && i < r->ntimers; i++) timer_delete(r->timers[i]);
  pl__sigprof_end();
  pl__sigprof_quiesce();
fail_collector:
  atomic_store(&r->stop, 1);
  pthread_join(r->collector, NULL);
fail:
  if (r) pl__ring_free(&r->ring);
  owner_free(o);
  free(r);
  pthread_mutex_unlock(&prof_lock);
  return rc;
}

int pl_cpu_profiler_thread_check(uint32_t tid) {
  pl__thread_info ti;
  int rc = pl__thread_info_read(tid, &ti);
  if (rc) return rc == -ENOENT ? -ESRCH : rc;
  if (ti.proflab) return -EINVAL;
  return ti.blocks_sigprof ? -EPERM : 0;
}

int pl_cpu_profiler_sigprof_state(char *msg, size_t n) {
  if (n) msg[0] = '\0';
  int own = pl__sigprof_owner();
  if (own == -EBUSY) {
    snprintf(msg, n,
             "the program has its own SIGPROF handler (installed before or after proflab's); "
             "CPU profiles are refused, the rest of the lab works");
    return -EBUSY;
  }
  DIR *d = opendir("/proc/self/task");
  if (!d) return 0; /* cannot tell: let a profile try */
  unsigned program = 0, blocking = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    uint64_t tid;
    pl__thread_info ti;
    if (pl__parse_u64(e->d_name, &tid) != 0 || tid == 0 || tid > UINT32_MAX) continue;
    if (pl__thread_info_read((uint32_t)tid, &ti) != 0 || ti.proflab) continue;
    program++;
    blocking += ti.blocks_sigprof != 0;
  }
  closedir(d);
  if (program && blocking == program) {
    snprintf(msg, n,
             "every thread of the program (%u) blocks SIGPROF in its signal mask; CPU profiles "
             "are refused, the rest of the lab works",
             program);
    return -EPERM;
  }
  return 0;
}

int pl_cpu_profiler_running(void) {
  pthread_mutex_lock(&prof_lock);
  int on = current != NULL;
  pthread_mutex_unlock(&prof_lock);
  return on;
}

void pl_cpu_profiler_forget_after_fork(void) {
  /* the lock may have been held by a thread that is not in this process */
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  memcpy(&prof_lock, &fresh, sizeof(fresh));
  current = NULL;
  pl__thread_start_watch(0);
  pl__sigprof_forget_after_fork();
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
  if (!r->has_ticker)
    for (unsigned i = 0; i < r->ntimers; i++) timer_delete(r->timers[i]);
  if (r->has_ticker) pthread_join(r->ticker, NULL); /* wakes within a period */
  owner *o = r->own;
  o->profile->end_ns = pl__now_ns();
  o->profile->signals = pl__sigprof_signals();
  o->profile->sigprof_lost = pl__sigprof_owner() != 1;
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
  if (!o->error) o->error = record_threads(o->profile, r);
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
