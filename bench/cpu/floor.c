/* The floor of signal-based sampling, for bench/cpu/run.sh: LD_PRELOADed
 * into proflabd, it signals the main thread (which runs the event loop) at
 * PROFLAB_FLOOR_HZ with a handler that does nothing. The throughput lost is
 * what timer interrupts and signal delivery cost on this machine before any
 * unwinding or recording. Two ways, as the wall-mode profiler has:
 * - default: a CLOCK_MONOTONIC timer with SIGEV_THREAD_ID aimed at it
 *   (PROFLAB_CPU_WALL_TIMER=1's path);
 * - PROFLAB_FLOOR_TICKER=1: a ticker thread that sleeps to each period's
 *   boundary and sends the signal (the profiler's default), and moves itself
 *   off the main thread's CPU every 100 ms as the profiler does. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sigprof_handler.h"

static void on_signal(int sig, siginfo_t *si, void *uc) {
  (void)sig;
  (void)si;
  (void)uc;
}

static void say(const char *msg) {
  ssize_t rc = write(2, msg, strlen(msg));
  (void)rc;
}

static pid_t main_tid;
static uint64_t period_ns;

/* The CPU the main thread last ran on (field 39 of its stat), or -1. */
static int main_cpu(void) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)main_tid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  int field = 2, cpu = -1;
  for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " "))
    if (++field == 39) cpu = atoi(tok);
  return cpu;
}

static void *ticker(void *arg) {
  (void)arg;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  uint64_t since_pin = 0;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  for (;;) {
    uint64_t ns = (uint64_t)next.tv_nsec + period_ns;
    next.tv_sec += (time_t)(ns / 1000000000u);
    next.tv_nsec = (long)(ns % 1000000000u);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
    }
    syscall(SYS_tgkill, getpid(), main_tid, SIGPROF);
    since_pin += period_ns;
    if (since_pin >= 100000000u && ncpu > 1) {
      since_pin = 0;
      int cpu = main_cpu();
      if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        for (long c = 0; c < ncpu && c < CPU_SETSIZE; c++)
          if (c != cpu) CPU_SET(c, &set);
        sched_setaffinity(0, sizeof(set), &set);
      }
    }
  }
  return NULL;
}

__attribute__((constructor)) static void floor_start(void) {
  const char *hz_s = getenv("PROFLAB_FLOOR_HZ");
  if (!hz_s) return;
  char *end;
  errno = 0;
  unsigned long hz = strtoul(hz_s, &end, 10);
  if (errno || *end || hz == 0 || hz > 100000) {
    say("bench-cpu-floor: PROFLAB_FLOOR_HZ must be 1..100000\n");
    return;
  }
  if (bench_sigprof_install(on_signal) != 0) {
    say("bench-cpu-floor: sigaction failed\n");
    return;
  }
  main_tid = (pid_t)syscall(SYS_gettid);
  period_ns = 1000000000u / hz;
  const char *tick = getenv("PROFLAB_FLOOR_TICKER");
  if (tick && strcmp(tick, "1") == 0) {
    pthread_t th;
    if (pthread_create(&th, NULL, ticker, NULL) != 0)
      say("bench-cpu-floor: pthread_create failed\n");
    return;
  }
  struct sigevent sev;
  memset(&sev, 0, sizeof(sev));
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = SIGPROF;
  sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
  timer_t t;
  if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0) {
    say("bench-cpu-floor: timer_create failed\n");
    return;
  }
  uint64_t ns = 1000000000u / hz;
  struct itimerspec its;
  its.it_interval.tv_sec = (time_t)(ns / 1000000000u);
  its.it_interval.tv_nsec = (long)(ns % 1000000000u);
  its.it_value = its.it_interval;
  if (timer_settime(t, 0, &its, NULL) != 0) say("bench-cpu-floor: timer_settime failed\n");
}
