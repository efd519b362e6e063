/* The floor of signal-based sampling, for bench/cpu/run.sh: LD_PRELOADed
 * into proflabd, it arms the same kind of timer the wall-mode profiler uses
 * (CLOCK_MONOTONIC, SIGEV_THREAD_ID, aimed at the main thread, which runs
 * the event loop) at PROFLAB_FLOOR_HZ with a handler that does nothing. The
 * throughput lost is what timer interrupts and signal delivery cost on this
 * machine before any unwinding or recording. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void on_signal(int sig, siginfo_t *si, void *uc) {
  (void)sig;
  (void)si;
  (void)uc;
}

static void say(const char *msg) {
  ssize_t rc = write(2, msg, strlen(msg));
  (void)rc;
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
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGPROF, &sa, NULL) != 0) {
    say("bench-cpu-floor: sigaction failed\n");
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
