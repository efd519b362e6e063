/* CPU burner for the profiler accuracy benchmark: two threads burn CPU for
 * SECONDS each; prints the process's measured CPU time. With
 * PROFLAB_SELF=1 it profiles itself with proflab's cpu mode at HZ and also
 * prints the time the profile accounts for. Under gperftools (LD_PRELOAD +
 * CPUPROFILE) it does nothing special: the script reads that profile.
 *
 *   bench-cpu-burn SECONDS [HZ]
 * prints: cpu_seconds=<measured> [accounted_seconds=<profile>]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "proflab/profiler.h"

static double seconds_arg;
static volatile unsigned long long sink;

static double thread_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((noinline)) static void *burn(void *arg) {
  (void)arg;
  double end = thread_cpu() + seconds_arg;
  unsigned long long x = 88172645463325252ull;
  while (thread_cpu() < end)
    for (int i = 0; i < 10000; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
  sink = x;
  return NULL;
}

static double process_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench-cpu-burn SECONDS [HZ]\n");
    return 2;
  }
  seconds_arg = strtod(argv[1], NULL);
  unsigned hz = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 1000;
  const char *self = getenv("PROFLAB_SELF");
  int profile = self && strcmp(self, "1") == 0;
  if (profile) {
    pl_cpu_options o = {.mode = PL_CPU_CPU, .hz = hz};
    int rc = pl_cpu_profiler_start(&o);
    if (rc) {
      fprintf(stderr, "bench-cpu-burn: profiler start: %d\n", rc);
      return 1;
    }
  }
  double c0 = process_cpu();
  pthread_t t[2];
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, burn, NULL);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  double used = process_cpu() - c0;
  printf("cpu_seconds=%.4f", used);
  if (profile) {
    pl_cpu_profile *p;
    if (pl_cpu_profiler_stop(&p) != 0) return 1;
    pl_cpu_profile_info info;
    pl_cpu_profile_get_info(p, &info);
    printf(" accounted_seconds=%.4f samples=%llu",
           (double)info.weight * (double)info.period_ns / 1e9, (unsigned long long)info.samples);
    pl_cpu_profile_free(p);
  }
  printf("\n");
  return 0;
}
