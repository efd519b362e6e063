/* Shared helpers of the heap tracker's tests. */
#ifndef PL_TESTS_HEAP_TEST_H
#define PL_TESTS_HEAP_TEST_H

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "proflab/heap.h"
#include "proflab/symbolize.h"

/* Sizes the compiler must not see (it warns about constant huge ones). */
static volatile size_t heap_test_huge = SIZE_MAX;

/* Huge sizes and overflowing callocs are part of the tests: under ASan they
 * must fail with NULL (as glibc does), not abort. ASAN_OPTIONS from the
 * environment still wins for any flag it sets. */
#if defined(__SANITIZE_ADDRESS__) && !defined(HEAP_TEST_NOT_MAIN)
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }
#endif

/* A deadlock is a hang: the watchdog says so (write(2) only) and aborts,
 * well before meson's own timeout. */
static void heap_test_on_alarm(int sig) {
  static const char msg[] = "\nheap test: watchdog expired (deadlock?)\n";
  ssize_t r = write(2, msg, sizeof(msg) - 1);
  (void)r;
  (void)sig;
  abort();
}

static inline void heap_test_watchdog(unsigned seconds) {
  signal(SIGALRM, heap_test_on_alarm);
  alarm(seconds);
}

/* Wait for a forked child, which must exit with status 0. */
static inline void heap_test_wait_ok(pid_t pid) {
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* Name of the function a sample's stack starts in (the one that called the
 * allocator); "" when unknown. The snapshot must be symbolized. */
static inline const char *heap_test_site(const pl_heap_snapshot *s, const pl_heap_sample *x) {
  const pl_heap_stack *k = &s->stacks[x->stack];
  if (!k->frames || k->depth == 0) return "";
  return s->frames[k->frames[0]].function;
}

/* Whether the sample's stack contains a frame named fn. */
static inline int heap_test_stack_has(const pl_heap_snapshot *s, uint32_t stack, const char *fn) {
  const pl_heap_stack *k = &s->stacks[stack];
  for (uint32_t d = 0; k->frames && d < k->depth; d++)
    if (strcmp(s->frames[k->frames[d]].function, fn) == 0) return 1;
  return 0;
}

/* The live sample at address a (an address taken before any free). */
static inline const pl_heap_sample *heap_test_find_addr(const pl_heap_snapshot *s, uintptr_t a) {
  for (size_t i = 0; i < s->nsamples; i++)
    if (s->samples[i].address == a) return &s->samples[i];
  return NULL;
}
#define heap_test_find(s, p) heap_test_find_addr((s), (uintptr_t)(p))

static inline pl_heap_snapshot *heap_test_snapshot(int symbolize) {
  pl_heap_snapshot *s = NULL;
  assert_int_equal(pl_heap_snapshot_take(&s), 0);
  assert_non_null(s);
  if (symbolize) { /* the symbolizer's allocations are not the program's */
    pl_heap_untracked_begin();
    int rc = pl_heap_snapshot_symbolize(s);
    pl_heap_untracked_end();
    assert_int_equal(rc, 0);
  }
  return s;
}

/* Estimated live bytes/objects of the samples whose first frame is fn. */
static inline double heap_test_site_bytes(const pl_heap_snapshot *s, const char *fn,
                                          double *objects) {
  double b = 0, o = 0;
  for (size_t i = 0; i < s->nsamples; i++)
    if (strcmp(heap_test_site(s, &s->samples[i]), fn) == 0) {
      b += s->samples[i].weight_bytes;
      o += s->samples[i].weight_objects;
    }
  if (objects) *objects = o;
  return b;
}

/* Deterministic sizes: xorshift, log-uniform-ish mix of 1 KiB .. 256 KiB (exclusive). */
static inline size_t heap_test_size(uint64_t *rng) {
  uint64_t x = *rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *rng = x;
  unsigned shift = (unsigned)(x % 8); /* 1 KiB << 0..7 */
  size_t base = (size_t)1024 << shift;
  return base + (size_t)((x >> 8) % base); /* [base, 2 base) */
}

#endif
