/* What one sample's signal costs on this machine, before any profiler
 * work: the floor under bench/cpu/run.sh's figures (docs/internals.md,
 * "CPU profiling cost").
 *
 *   build/bench/bench-signal-cost [--n N]
 *
 * Prints, per operation (median of 5 runs of N each, default 100000):
 *   clock_gettime  CLOCK_MONOTONIC through the vDSO (the handler's stamp)
 *   syscall        getppid(): a bare kernel entry and exit
 *   self_signal    tgkill(SIGPROF) to this thread + an empty SA_SIGINFO
 *                  handler + sigreturn: the signal frame (with the CPU's
 *                  extended state) built and torn down
 *   cross_signal   the same sent from another thread to a thread that is
 *                  spinning on another CPU, timed on the spinning thread as
 *                  the CPU time it lost per signal (the IPI, the interrupt,
 *                  the frame): what the wall-mode ticker costs the loop
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sigprof_handler.h"

static uint64_t now_ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static _Atomic uint64_t handled;

static void on_signal(int sig, siginfo_t *si, void *uc) {
  (void)sig;
  (void)si;
  (void)uc;
  atomic_fetch_add_explicit(&handled, 1, memory_order_relaxed);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median5(double v[5]) {
  qsort(v, 5, sizeof(v[0]), cmp_double);
  return v[2];
}

static long n_ops = 100000;

static double time_clock(void) {
  struct timespec ts;
  uint64_t t0 = now_ns(CLOCK_MONOTONIC);
  for (long i = 0; i < n_ops; i++) clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)(now_ns(CLOCK_MONOTONIC) - t0) / (double)n_ops;
}

static double time_syscall(void) {
  uint64_t t0 = now_ns(CLOCK_MONOTONIC);
  for (long i = 0; i < n_ops; i++) syscall(SYS_getppid);
  return (double)(now_ns(CLOCK_MONOTONIC) - t0) / (double)n_ops;
}

static double time_self_signal(void) {
  pid_t pid = getpid(), tid = (pid_t)syscall(SYS_gettid);
  uint64_t t0 = now_ns(CLOCK_MONOTONIC);
  for (long i = 0; i < n_ops; i++) syscall(SYS_tgkill, pid, tid, SIGPROF);
  return (double)(now_ns(CLOCK_MONOTONIC) - t0) / (double)n_ops;
}

/* cross_signal: a spinner thread counts loop iterations per CPU ns with and
 * without a sender signalling it; the CPU it lost, per signal handled. */
static _Atomic int spin_stop;
static _Atomic pid_t spinner_tid;
static _Atomic uint64_t spin_iters, spin_cpu_ns;

static void *spinner(void *arg) {
  (void)arg;
  atomic_store(&spinner_tid, (pid_t)syscall(SYS_gettid));
  uint64_t c0 = now_ns(CLOCK_THREAD_CPUTIME_ID), it = 0;
  volatile uint64_t x = 1;
  while (!atomic_load_explicit(&spin_stop, memory_order_relaxed)) {
    for (int k = 0; k < 1000; k++) x = x * 6364136223846793005ull + 1;
    it++;
  }
  atomic_store(&spin_iters, it);
  atomic_store(&spin_cpu_ns, now_ns(CLOCK_THREAD_CPUTIME_ID) - c0);
  return NULL;
}

/* CPU ns per spinner iteration over `ms`, sending `signals` signals spread
 * over it (0: none); *got: signals the spinner handled. */
static double spin_run(unsigned ms, long signals, uint64_t *got) {
  atomic_store(&spin_stop, 0);
  atomic_store(&spinner_tid, 0);
  uint64_t h0 = atomic_load(&handled);
  pthread_t th;
  if (pthread_create(&th, NULL, spinner, NULL) != 0) return -1;
  while (!atomic_load(&spinner_tid)) sched_yield();
  pid_t pid = getpid(), tid = atomic_load(&spinner_tid);
  uint64_t end = now_ns(CLOCK_MONOTONIC) + (uint64_t)ms * 1000000u;
  uint64_t gap = signals ? (uint64_t)ms * 1000000u / (uint64_t)signals : 0;
  uint64_t next = now_ns(CLOCK_MONOTONIC);
  while (now_ns(CLOCK_MONOTONIC) < end) {
    if (signals) {
      next += gap;
      struct timespec ts = {(time_t)(next / 1000000000u), (long)(next % 1000000000u)};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
      }
      syscall(SYS_tgkill, pid, tid, SIGPROF);
    } else {
      struct timespec ts = {0, 10000000};
      nanosleep(&ts, NULL);
    }
  }
  atomic_store(&spin_stop, 1);
  pthread_join(th, NULL);
  *got = atomic_load(&handled) - h0;
  return (double)atomic_load(&spin_cpu_ns) / (double)atomic_load(&spin_iters);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
      char *end;
      errno = 0;
      n_ops = strtol(argv[++i], &end, 10);
      if (errno || *end || n_ops < 1000 || n_ops > 100000000) {
        fprintf(stderr, "bench-signal-cost: --n must be 1000..100000000\n");
        return 2;
      }
    } else {
      fprintf(stderr, "usage: bench-signal-cost [--n N]\n");
      return strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  if (bench_sigprof_install(on_signal) != 0) {
    perror("sigaction");
    return 1;
  }
  double c[5], s[5], g[5], x[5];
  for (int r = 0; r < 5; r++) {
    c[r] = time_clock();
    s[r] = time_syscall();
    g[r] = time_self_signal();
    /* 200 ms plain, then 200 ms with 2,000 signals (10 kHz) */
    uint64_t got0, got1;
    double base = spin_run(200, 0, &got0);
    double with = spin_run(200, 2000, &got1);
    uint64_t iters = atomic_load(&spin_iters);
    x[r] = got1 ? (with - base) * (double)iters / (double)got1 : 0;
  }
  printf(
      "clock_gettime_ns=%.1f syscall_ns=%.1f self_signal_ns=%.1f cross_signal_cpu_ns=%.0f "
      "(median of 5; cross: CPU the spinning thread lost per signal at 10 kHz)\n",
      median5(c), median5(s), median5(g), median5(x));
  return 0;
}
