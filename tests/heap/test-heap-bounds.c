/* The tracker's memory is bounded: with max_samples = 256 and
 * max_stacks = 4, samples beyond the bound are dropped and counted (the
 * alloc_* estimates still include them), stacks beyond it become the
 * "unknown" stack, records are reused once blocks are freed, and the
 * reported memory stays under the reported bound. */
#include "heap_test.h"

static int setup(void **state) {
  heap_test_watchdog(50);
  pl_heap_options o = {.sample_bytes = 1, .max_samples = 256, .max_stacks = 4};
  return pl_heap_init(&o);
}

static void *blocks[1000];

static void test_samples_bound(void **state) {
  pl_heap_stats s0, s1, s2;
  pl_heap_get_stats(&s0);
  for (int i = 0; i < 1000; i++) blocks[i] = malloc(100);
  pl_heap_get_stats(&s1);
  printf("before: live %llu; after 1000 mallocs: live %llu, dropped %llu\n",
         (unsigned long long)s0.live_samples, (unsigned long long)s1.live_samples,
         (unsigned long long)s1.dropped_samples);
  assert_int_equal(s1.live_samples, 256);
  assert_int_equal(s1.dropped_samples - s0.dropped_samples, 1000 - (256 - s0.live_samples));
  assert_int_equal((uint64_t)(s1.alloc_objects - s0.alloc_objects), 1000); /* still counted */
  assert_true(s1.tracker_bytes <= s1.tracker_reserved);
  printf("tracker: %llu bytes used, %llu reserved\n", (unsigned long long)s1.tracker_bytes,
         (unsigned long long)s1.tracker_reserved);
  assert_true(s1.tracker_reserved < (1u << 20));
  for (int i = 0; i < 1000; i++) free(blocks[i]);
  pl_heap_get_stats(&s2);
  assert_int_equal(s2.live_samples, s0.live_samples);
  /* records are reused */
  for (int i = 0; i < 100; i++) blocks[i] = malloc(100);
  pl_heap_stats s3;
  pl_heap_get_stats(&s3);
  assert_int_equal(s3.live_samples, s0.live_samples + 100);
  assert_int_equal(s3.dropped_samples, s2.dropped_samples);
  for (int i = 0; i < 100; i++) free(blocks[i]);
}

/* Distinct call sites; KEEP stops the compiler from turning the call into
 * a tail jump (which would leave the function's frame out of the stack). */
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")
__attribute__((noipa)) static void *stack_a(size_t n) {
  void *p = malloc(n);
  KEEP(p);
  return p;
}
__attribute__((noipa)) static void *stack_b(size_t n) {
  void *p = malloc(n);
  KEEP(p);
  return p;
}
__attribute__((noipa)) static void *stack_c(size_t n) {
  void *p = malloc(n);
  KEEP(p);
  return p;
}
__attribute__((noipa)) static void *stack_d(size_t n) {
  void *p = malloc(n);
  KEEP(p);
  return p;
}
__attribute__((noipa)) static void *stack_e(size_t n) {
  void *p = malloc(n);
  KEEP(p);
  return p;
}

static void test_stacks_bound(void **state) {
  void *(*fns[5])(size_t) = {stack_a, stack_b, stack_c, stack_d, stack_e};
  void *p[5];
  for (int i = 0; i < 5; i++) p[i] = fns[i](64);
  pl_heap_snapshot *s = heap_test_snapshot(0);
  printf("stacks %zu, unknown-stack samples %llu\n", s->nstacks,
         (unsigned long long)s->stats.unknown_stacks);
  assert_true(s->nstacks <= 4);
  assert_true(s->stats.unknown_stacks > 0);
  assert_true(s->stacks[0].flags & PL_HEAP_STACK_UNKNOWN);
  assert_int_equal(s->stacks[0].depth, 0);
  int unknown = 0;
  for (int i = 0; i < 5; i++) {
    const pl_heap_sample *x = heap_test_find(s, p[i]);
    assert_non_null(x); /* kept, with the unknown stack if need be */
    if (x->stack == 0) unknown++;
  }
  assert_true(unknown > 0);
  pl_heap_snapshot_free(s);
  for (int i = 0; i < 5; i++) free(p[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_samples_bound),
      cmocka_unit_test(test_stacks_bound),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
