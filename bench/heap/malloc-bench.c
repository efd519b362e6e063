/* A malloc-heavy microbenchmark for the heap tracker (issue 4).
 *
 * THREADS threads (default 2) each do OPS iterations (default 5,000,000) of:
 * pick a random slot of a 1,024-slot window, free what it holds, malloc a
 * new block of 16..4096 bytes (uniform) and write its first byte. At the
 * end the window is freed. Nothing else: the allocator is the workload.
 *
 * Built twice by run.sh: plain (glibc's malloc, or whatever LD_PRELOAD
 * brings: jemalloc, heaptrack) and with -DWITH_HEAP linked against
 * libproflab_heap, where `--track T` starts the tracker with sampling
 * interval T (0: interposed but not started).
 *
 * Prints one line: label, ops, wall ns of the timed phase (threads started
 * to threads joined), process CPU ns over it, ns per op (wall).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#ifdef WITH_HEAP
#include "proflab/heap.h"
#endif

#define WINDOW 1024

static long ops = 5000000;
static int nthreads = 2;

static uint64_t now_ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *work(void *arg) {
  uint64_t x = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
  void **slot = calloc(WINDOW, sizeof(void *));
  for (long i = 0; i < ops; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    unsigned k = (unsigned)(x % WINDOW);
    free(slot[k]);
    size_t n = 16 + (size_t)((x >> 20) % 4081);
    char *p = malloc(n);
    if (!p) abort();
    p[0] = (char)i;
    slot[k] = p;
  }
  for (unsigned k = 0; k < WINDOW; k++) free(slot[k]);
  free(slot);
  return NULL;
}

/* A whole number in [min, max], or exit 2 (the plain build links no libproflab). */
static long number(const char *opt, const char *v, long min, long max) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || end == v || *end || x < min || x > max) {
    fprintf(stderr, "malloc-bench: %s: '%s' must be a whole number from %ld to %ld\n", opt, v, min,
            max);
    exit(2);
  }
  return x;
}

int main(int argc, char **argv) {
  const char *label = "plain";
  long track = -1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--track") == 0 && i + 1 < argc)
      track = number("--track", argv[++i], 0, 1L << 40);
    else if (strcmp(argv[i], "--ops") == 0 && i + 1 < argc)
      ops = number("--ops", argv[++i], 1, 1L << 40);
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      nthreads = (int)number("--threads", argv[++i], 1, 256);
    else if (strcmp(argv[i], "--label") == 0 && i + 1 < argc)
      label = argv[++i];
    else {
      fprintf(stderr, "usage: %s [--track T] [--ops N] [--threads N] [--label L]\n", argv[0]);
      return 2;
    }
  }
#ifdef WITH_HEAP
  if (track > 0) {
    pl_heap_options o = {.sample_bytes = (uint64_t)track};
    int rc = pl_heap_init(&o);
    if (rc) {
      fprintf(stderr, "pl_heap_init: %d\n", rc);
      return 1;
    }
  }
#else
  if (track >= 0) {
    fprintf(stderr, "built without the tracker\n");
    return 2;
  }
#endif
  pthread_t th[64];
  if (nthreads < 1 || nthreads > 64) return 2;
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  uint64_t t0 = now_ns(CLOCK_MONOTONIC);
  for (int i = 0; i < nthreads; i++) pthread_create(&th[i], NULL, work, (void *)(uintptr_t)(i + 1));
  for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
  uint64_t t1 = now_ns(CLOCK_MONOTONIC);
  getrusage(RUSAGE_SELF, &r1);
  uint64_t cpu = (uint64_t)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec -
                            r0.ru_stime.tv_sec) *
                     1000000000u +
                 (uint64_t)((r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec -
                             r0.ru_stime.tv_usec) *
                            1000);
  long total = ops * nthreads;
  printf("%s ops=%ld wall_ns=%llu cpu_ns=%llu ns_per_op=%.2f", label, total,
         (unsigned long long)(t1 - t0), (unsigned long long)cpu, (double)(t1 - t0) / total);
#ifdef WITH_HEAP
  if (track > 0) {
    pl_heap_stats st;
    pl_heap_get_stats(&st);
    printf(
        " samples=%llu alloc_bytes_est=%.0f tracker_bytes=%llu unwind_fp=%llu unwind_dwarf=%llu"
        " unwind_mismatch=%llu",
        (unsigned long long)st.samples, st.alloc_bytes, (unsigned long long)st.tracker_bytes,
        (unsigned long long)st.unwind_fp, (unsigned long long)st.unwind_dwarf,
        (unsigned long long)st.unwind_mismatch);
  }
#endif
  printf("\n");
  return 0;
}
