/* SIGNAL-SAFE: the SIGPROF handler (see sigprof.h). Everything reachable
 * from on_sigprof() uses only atomics, clock_gettime (vDSO), checked reads
 * of the interrupted thread's stack and libgcc's unwinder (unwind.h); no
 * malloc, locks or stdio. */
#include "sample/sigprof.h"

#include "sample/unwind.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define VALUE_MAGIC_SHIFT 20
#define VALUE_INDEX_MASK ((1u << VALUE_MAGIC_SHIFT) - 1)

static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER; /* normal context only */
static int installed;
static struct sigaction previous;

static _Atomic(pl__ring *) cur_ring;
static _Atomic unsigned generation; /* 1..2047, changes with each recording */
static _Atomic uint32_t thread_ids[PL__SIGPROF_MAX_THREADS];
static volatile sig_atomic_t *_Atomic idle_flag_ptr;
static _Atomic uint32_t idle_thread;
static _Atomic int in_handler;
static _Atomic uint64_t signals_seen;
static _Atomic unsigned rec_flags;                              /* PL__SIGPROF_* */
static _Atomic pid_t self_pid;                                  /* sender of the ticker's signals */
static _Atomic uint32_t queued_done[PL__SIGPROF_MAX_THREADS];   /* ticker signals handled */
static _Atomic uint32_t queued_weight[PL__SIGPROF_MAX_THREADS]; /* periods not yet sampled */

/* Address ranges of the poll functions (set once at install). */
static uintptr_t poll_lo[3], poll_hi[3];

static int pc_in_poll(uintptr_t pc) {
  for (int i = 0; i < 3; i++)
    if (pc >= poll_lo[i] && pc < poll_hi[i]) return 1;
  return 0;
}

#if defined(__x86_64__)
/* System calls the kernel restarts after a handler (SA_RESTART) that wait:
 * read 0, write 1, readv/writev 19/20, pread/pwrite 17/18, open 2 (a fifo),
 * connect 42, accept 43, sendto 44, recvfrom 45, sendmsg 46, recvmsg 47,
 * wait4 61, semop 65, msgsnd/msgrcv 69/70, fcntl 72 (locks), flock 73,
 * futex 202, semtimedop 220, mq_timedsend/receive 242/243, waitid 247,
 * openat 257, accept4 288, recvmmsg 299, sendmmsg 307, futex_waitv 449. */
static const uint64_t restart_waits[8] = {
    (1ull << 0) | (1ull << 1) | (1ull << 2) | (1ull << 17) | (1ull << 18) | (1ull << 19) |
        (1ull << 20) | (1ull << 42) | (1ull << 43) | (1ull << 44) | (1ull << 45) | (1ull << 46) |
        (1ull << 47) | (1ull << 61),
    (1ull << (65 - 64)) | (1ull << (69 - 64)) | (1ull << (70 - 64)) | (1ull << (72 - 64)) |
        (1ull << (73 - 64)),
    0,
    (1ull << (202 - 192)) | (1ull << (220 - 192)) | (1ull << (242 - 192)) | (1ull << (243 - 192)) |
        (1ull << (247 - 192)),
    (1ull << (257 - 256)) | (1ull << (288 - 256)) | (1ull << (299 - 256)) | (1ull << (307 - 256)),
    0,
    0,
    (1ull << (449 - 448)),
};

/* Whether the interrupted context waits in a system call (sigprof.h). Reads
 * the code bytes around the pc: the interrupted instruction (mapped, it was
 * executing) and, only when they lie on the same page, the two before it. */
static int waits_in_syscall(const ucontext_t *uc) {
  uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
  long long ax = uc->uc_mcontext.gregs[REG_RAX];
  if (ax == -EINTR) {
    if ((pc & 4095u) < 2) return 0;
    const volatile unsigned char *p = (const volatile unsigned char *)(pc - 2);
    return p[0] == 0x0f && p[1] == 0x05;
  }
  if (ax < 0 || ax >= 512) return 0;
  const volatile unsigned char *p = (const volatile unsigned char *)pc;
  if (p[0] != 0x0f || p[1] != 0x05) return 0; /* 0f is never a whole instruction */
  return (restart_waits[ax >> 6] >> (ax & 63)) & 1;
}
#else
static int waits_in_syscall(const ucontext_t *uc) {
  (void)uc;
  return 0;
}
#endif

static void on_sigprof(int sig, siginfo_t *si, void *ucv) {
  int saved_errno = errno;
  /* Count ourselves in before looking at the generation, so that
   * pl__sigprof_quiesce() after pl__sigprof_end() sees every handler that
   * may still touch the ring. */
  atomic_fetch_add_explicit(&in_handler, 1, memory_order_seq_cst);
  unsigned gen = atomic_load_explicit(&generation, memory_order_seq_cst);
  /* Ours: a timer's, or queued by our wall-mode ticker thread (whose value
   * carries the periods missed instead of a timer index). */
  int queued = si->si_code == SI_QUEUE &&
               si->si_pid == atomic_load_explicit(&self_pid, memory_order_relaxed);
  unsigned value = (unsigned)si->si_value.sival_int;
  if ((si->si_code != SI_TIMER && !queued) || (value >> VALUE_MAGIC_SHIFT) != gen) {
    atomic_fetch_sub_explicit(&in_handler, 1, memory_order_release);
    /* Not ours: pass it on to whoever had SIGPROF before us. */
    if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction)
      previous.sa_sigaction(sig, si, ucv);
    else if (!(previous.sa_flags & SA_SIGINFO) && previous.sa_handler != SIG_DFL &&
             previous.sa_handler != SIG_IGN && previous.sa_handler)
      previous.sa_handler(sig);
    errno = saved_errno;
    return;
  }
  unsigned idx = value & VALUE_INDEX_MASK;
  pl__ring *ring = atomic_load_explicit(&cur_ring, memory_order_acquire);
  if (!ring) goto out;
  atomic_fetch_add_explicit(&signals_seen, 1, memory_order_relaxed);
  uint64_t pos;
  pl__raw_sample *s = pl__ring_claim(ring, &pos);
  if (!s) goto out;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  s->time_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  uint32_t tid = idx < PL__SIGPROF_MAX_THREADS
                     ? atomic_load_explicit(&thread_ids[idx], memory_order_relaxed)
                     : 0;
  s->tid = tid;
  if (queued) {
    uint32_t w = idx < PL__SIGPROF_MAX_THREADS
                     ? atomic_exchange_explicit(&queued_weight[idx], 0, memory_order_acq_rel)
                     : 0;
    s->weight = w ? w : 1;
  } else {
    s->weight = 1u + (uint32_t)(si->si_overrun > 0 ? si->si_overrun : 0);
  }
  s->flags = 0;
  const ucontext_t *uc = ucv;
  uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
  volatile sig_atomic_t *idle = atomic_load_explicit(&idle_flag_ptr, memory_order_relaxed);
  unsigned flags = atomic_load_explicit(&rec_flags, memory_order_relaxed);
  int waits = waits_in_syscall(uc);
  if (waits) s->flags |= PL__RAW_BLOCKED;
  if ((waits && (flags & PL__SIGPROF_BLOCKED_IDLE)) ||
      (idle && *idle && tid == atomic_load_explicit(&idle_thread, memory_order_relaxed) &&
       pc_in_poll(pc))) {
    s->flags |= PL__RAW_IDLE;
    s->depth = 0;
  } else {
    unsigned how;
    unsigned n = pl__unwind_capture(uc, idx, s->pcs, PL__MAX_FRAMES, &how);
    if (!(how & PL__UNWIND_FOUND) || n == 0) { /* unwinder lost: keep at least the PC */
      s->pcs[0] = pc;
      n = 1;
      s->flags |= PL__RAW_TRUNCATED;
    }
    s->depth = n;
  }
  pl__ring_publish(s, pos);
out:
  if (queued && idx < PL__SIGPROF_MAX_THREADS)
    atomic_fetch_add_explicit(&queued_done[idx], 1, memory_order_release);
  atomic_fetch_sub_explicit(&in_handler, 1, memory_order_acq_rel);
  errno = saved_errno;
}

static void find_range(const char *name, int i) {
  void *addr = dlsym(RTLD_DEFAULT, name);
  if (!addr) return;
  Dl_info info;
  const ElfW(Sym) *sym = NULL;
  if (dladdr1(addr, &info, (void **)&sym, RTLD_DL_SYMENT) && sym && sym->st_size) {
    poll_lo[i] = (uintptr_t)addr;
    poll_hi[i] = (uintptr_t)addr + sym->st_size;
  }
}

int pl__sigprof_owner(void) {
  struct sigaction cur;
  if (sigaction(SIGPROF, NULL, &cur) != 0) return -errno;
  if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigprof) return 1;
  pthread_mutex_lock(&install_lock);
  int was = installed;
  pthread_mutex_unlock(&install_lock);
  /* Before we install, SIG_DFL and SIG_IGN are free to take; once we did,
   * any other disposition (SIG_IGN too) means the program took it back. */
  if (!was && !(cur.sa_flags & SA_SIGINFO) &&
      (cur.sa_handler == SIG_DFL || cur.sa_handler == SIG_IGN))
    return 0;
  return -EBUSY;
}

int pl__sigprof_install(void) {
  int rc = 0;
  pthread_mutex_lock(&install_lock);
  if (installed) {
    /* the program may have installed its own handler since */
    struct sigaction cur;
    if (sigaction(SIGPROF, NULL, &cur) != 0)
      rc = -errno;
    else if (!(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != on_sigprof)
      rc = -EBUSY;
    goto out;
  }
  struct sigaction old;
  if (sigaction(SIGPROF, NULL, &old) != 0) {
    rc = -errno;
    goto out;
  }
  if ((old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)) {
    rc = -EBUSY; /* someone else profiles this process */
    goto out;
  }
  find_range("epoll_wait", 0);
  find_range("epoll_pwait", 1);
  find_range("epoll_pwait2", 2);
  /* Text ranges, suffix cache; warms libgcc's unwinder (its first call
   * initializes tables under pthread_once). */
  if ((rc = pl__unwind_init()) != 0) goto out;
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_sigprof;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGPROF, &sa, &previous) != 0) {
    rc = -errno;
    goto out;
  }
  installed = 1;
out:
  pthread_mutex_unlock(&install_lock);
  return rc;
}

void pl__sigprof_begin(pl__ring *ring, const uint32_t *tids, volatile sig_atomic_t *idle_flag,
                       uint32_t idle_tid, unsigned flags) {
  for (unsigned i = 0; i < PL__SIGPROF_MAX_THREADS; i++)
    atomic_store_explicit(&thread_ids[i], tids ? tids[i] : 0, memory_order_relaxed);
  atomic_store(&idle_flag_ptr, idle_flag);
  atomic_store(&idle_thread, idle_tid);
  atomic_store(&signals_seen, 0);
  atomic_store(&rec_flags, flags);
  for (unsigned i = 0; i < PL__SIGPROF_MAX_THREADS; i++)
    atomic_store_explicit(&queued_weight[i], 0, memory_order_relaxed);
  atomic_store(&self_pid, getpid());
  pl__unwind_prepare(); /* stack bounds of the threads; no handler runs now */
  unsigned g = atomic_load(&generation) + 1;
  if (g >= (1u << (31 - VALUE_MAGIC_SHIFT)) || g == 0) g = 1;
  atomic_store(&cur_ring, ring);
  atomic_store_explicit(&generation, g, memory_order_release);
}

void pl__sigprof_set_tid(unsigned i, uint32_t tid) {
  if (i < PL__SIGPROF_MAX_THREADS) atomic_store_explicit(&thread_ids[i], tid, memory_order_relaxed);
}

int pl__sigprof_queued_value(unsigned i) {
  return (int)((atomic_load(&generation) << VALUE_MAGIC_SHIFT) | (i & VALUE_INDEX_MASK));
}

void pl__sigprof_queued_add(unsigned i, uint32_t periods) {
  if (i < PL__SIGPROF_MAX_THREADS)
    atomic_fetch_add_explicit(&queued_weight[i], periods, memory_order_acq_rel);
}

uint32_t pl__sigprof_queued_done(unsigned i) {
  return i < PL__SIGPROF_MAX_THREADS ? atomic_load_explicit(&queued_done[i], memory_order_acquire)
                                     : 0;
}

int pl__sigprof_value(unsigned i) {
  return (int)((atomic_load(&generation) << VALUE_MAGIC_SHIFT) | (i & VALUE_INDEX_MASK));
}

void pl__sigprof_end(void) {
  /* A new generation makes any signal still queued "not ours". */
  unsigned g = atomic_load(&generation) + 1;
  if (g >= (1u << (31 - VALUE_MAGIC_SHIFT))) g = 1;
  atomic_store_explicit(&generation, g, memory_order_seq_cst);
  atomic_store(&cur_ring, NULL);
}

void pl__sigprof_forget_after_fork(void) {
  pl__sigprof_end();
  atomic_store(&in_handler, 0);
}

void pl__sigprof_quiesce(void) {
  struct timespec ts = {0, 100000};
  while (atomic_load(&in_handler) > 0) nanosleep(&ts, NULL);
}

uint64_t pl__sigprof_signals(void) { return atomic_load(&signals_seen); }
