/* Shared by the CPU benchmarks' helpers: install h as the SIGPROF handler
 * (SA_SIGINFO | SA_RESTART, nothing blocked). 0 or -1. */
#ifndef PL_BENCH_CPU_SIGPROF_HANDLER_H
#define PL_BENCH_CPU_SIGPROF_HANDLER_H

#include <signal.h>
#include <string.h>

static inline int bench_sigprof_install(void (*h)(int, siginfo_t *, void *)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = h;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  return sigaction(SIGPROF, &sa, NULL);
}

#endif
