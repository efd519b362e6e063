/* A SIGPROF sample landing inside a sampled allocation must not deadlock
 * (gperftools #43: the handler re-entered a lock the allocation held).
 * The project's CPU profiler runs in cpu mode at 10 kHz (per-thread CPU
 * timers, libgcc unwinding in the handler) while four threads allocate at
 * T = 256 bytes, so they spend most of their time in the tracker's sampled
 * path: unwinding with the same libgcc unwinder, holding the tracker's
 * mutex, interning stacks. The profile must then show samples taken inside
 * that path (proof that signals did land there), and the heap state must
 * be consistent afterwards. A hang is caught by the watchdog. */
#include "heap_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "proflab/profiler.h"
#include "proflab/cpu_profile.h"
#include "proflab/symbolize.h"

#define THREADS 4
#define SECONDS 4

static atomic_int stop;
static uint32_t worker_tids[THREADS];

static int setup(void **state) {
  heap_test_watchdog(100);
  pl_heap_options o = {.sample_bytes = 256, .max_samples = 1u << 16};
  return pl_heap_init(&o);
}

/* Recursion gives the unwinder some depth to walk. */
__attribute__((noipa)) static void *nest(int depth, size_t n) {
  if (depth == 0) return malloc(n);
  void *p = nest(depth - 1, n);
  __asm__ volatile("" ::: "memory");
  return p;
}

static void *work(void *arg) {
  uint32_t *tid = arg;
  *tid = (uint32_t)gettid();
  void *slot[64] = {0};
  uint64_t x = (uintptr_t)arg | 1;
  while (!atomic_load(&stop)) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    unsigned k = (unsigned)(x % 64);
    free(slot[k]);
    slot[k] = nest((int)((x >> 20) % 12), 16 + (size_t)((x >> 8) % 2000));
  }
  for (int k = 0; k < 64; k++) free(slot[k]);
  return NULL;
}

static int in_tracker(const char *fn) {
  static const char *names[] = {"_Unwind_Backtrace",  "capture",
                                "capture_step",       "record",
                                "pl__heap_on_sample", "pl__heap_alloc_sampled",
                                "pl__heap_lock",      "pl__heap_release",
                                "pl__heap_unlock",    "pl__heap_intern_locked",
                                "_Unwind_Find_FDE"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strcmp(fn, names[i]) == 0) return 1;
  return 0;
}

static void test_sigprof_during_sampled_allocations(void **state) {
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, work, &worker_tids[i]), 0);
  pl_cpu_options o = {.mode = PL_CPU_CPU, .hz = 10000};
  assert_int_equal(pl_cpu_profiler_start(&o), 0);
  /* The main thread allocates too (it is sampled as well), while snapshots
   * are taken now and then. */
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  unsigned snapshots = 0;
  do {
    void *p[256];
    for (int i = 0; i < 256; i++) p[i] = nest(i % 8, 64 + (size_t)i);
    for (int i = 0; i < 256; i++) free(p[i]);
    if (++snapshots % 64 == 0) {
      pl_heap_snapshot *s = heap_test_snapshot(0);
      pl_heap_snapshot_free(s);
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while (now.tv_sec - t0.tv_sec < SECONDS);
  pl_cpu_profile *prof = NULL;
  assert_int_equal(pl_cpu_profiler_stop(&prof), 0);
  atomic_store(&stop, 1);
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);

  assert_int_equal(pl_cpu_profile_symbolize(prof), 0);
  uint64_t inside = 0, total = 0;
  for (size_t i = 0; i < prof->nsamples; i++) {
    const pl_cpu_sample *x = &prof->samples[i];
    total++;
    if (x->stack >= prof->nstacks) continue;
    const pl_cpu_stack *st = &prof->stacks[x->stack];
    for (uint32_t d = 0; d < st->depth; d++)
      if (in_tracker(prof->frames[st->frames[d]].function)) {
        inside++;
        break;
      }
  }
  printf("CPU samples %llu, of which inside the tracker's sampled path %llu\n",
         (unsigned long long)total, (unsigned long long)inside);
  assert_true(total > 100);
  assert_true(inside > 10);
  pl_cpu_profile_free(prof);

  /* Consistent afterwards: the workers' blocks are all gone. */
  pl_heap_snapshot *s = heap_test_snapshot(0);
  for (size_t i = 0; i < s->nsamples; i++)
    for (int k = 0; k < THREADS; k++) assert_int_not_equal(s->samples[i].tid, worker_tids[k]);
  assert_int_equal(s->stats.live_samples, s->nsamples);
  printf("heap samples %llu, dropped %llu\n", (unsigned long long)s->stats.samples,
         (unsigned long long)s->stats.dropped_samples);
  pl_heap_snapshot_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sigprof_during_sampled_allocations),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
