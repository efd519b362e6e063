/* The interposer's sampled-block range (range.c), T = 1 (every allocation
 * made after pl_heap_init is a sample): sampled blocks are in the range and
 * nothing else is; alignment of every aligned member of the family; realloc
 * across glibc and range blocks keeps the contents; calloc of a reused
 * block is zeroed; large blocks are reused; usable sizes; many blocks of
 * mixed sizes do not overlap; fork. Under ASan (hooks, no range) the same
 * checks run on the semantics and skip the range ones. */
#include "heap_test.h"

#include <errno.h>
#include <malloc.h>

#include "heap/heap_internal.h" /* white-box: the range check, the busy guard */

#if PL__HEAP_ASAN
#define IN_RANGE(p) ((void)(p), 1)
#define NOT_IN_RANGE(p) ((void)(p), 1)
#else
#define IN_RANGE(p) pl__heap_in_range(p)
#define NOT_IN_RANGE(p) (!pl__heap_in_range(p))
#endif

static char *before_init; /* a glibc block from before pl_heap_init */

static int setup(void **state) {
  heap_test_watchdog(100);
  before_init = malloc(3000);
  if (!before_init) return -1;
  memset(before_init, 'b', 3000);
  pl_heap_options o = {.sample_bytes = 1, .max_samples = 1u << 20};
  return pl_heap_init(&o);
}

/* Called through this the compiler cannot fold the checks away. */
__attribute__((noipa)) static void *opaque(void *p) { return p; }

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 7);
}

static int check(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(seed + i * 7)) return 0;
  return 1;
}

static void test_range_check(void **state) {
  assert_true(NOT_IN_RANGE(opaque(NULL)));
  assert_true(NOT_IN_RANGE(before_init));
  assert_true(NOT_IN_RANGE(opaque(&before_init))); /* static data */
  int on_stack;
  assert_true(NOT_IN_RANGE(opaque(&on_stack)));
  void *p = malloc(100);
  assert_non_null(p);
  assert_true(IN_RANGE(p));
  /* The tracker's own allocations (busy) are glibc's. */
  pl__heap_tls_state.busy++;
  __asm__ volatile("" ::: "memory");
  void *q = malloc(100);
  __asm__ volatile("" ::: "memory");
  pl__heap_tls_state.busy--;
  assert_non_null(q);
  assert_true(NOT_IN_RANGE(q));
  /* free() of either kind, and of the block from before init. */
  free(q);
  free(p);
  for (int i = 0; i < 3000; i++) assert_int_equal(before_init[i], 'b');
}

static void test_aligned(void **state) {
  for (size_t align = 8; align <= ((size_t)1 << 21); align *= 2) {
    size_t n = 100 + align / 3;
    void *p = NULL;
    if (align >= sizeof(void *)) assert_int_equal(posix_memalign(&p, align, n), 0);
    void *a = aligned_alloc(align, n);
    void *m = memalign(align, n);
    void *blocks[3] = {p, a, m};
    for (int k = 0; k < 3; k++) {
      if (!blocks[k]) continue;
      assert_true(((uintptr_t)blocks[k] & (align - 1)) == 0);
      assert_true(IN_RANGE(blocks[k]));
      assert_true(malloc_usable_size(blocks[k]) >= n);
      fill(blocks[k], n, (unsigned)(align + (size_t)k));
    }
    for (int k = 0; k < 3; k++)
      if (blocks[k]) assert_true(check(blocks[k], n, (unsigned)(align + (size_t)k)));
    for (int k = 0; k < 3; k++) free(blocks[k]);
  }
#if !PL__HEAP_ASAN
  /* glibc's memalign rounds an alignment that is not a power of two up
   * (ASan's refuses it). */
  void *p = memalign(48, 1000);
  assert_non_null(p);
  assert_true(((uintptr_t)p & 63) == 0);
  free(p);
#endif
  /* valloc and pvalloc: page-aligned; pvalloc page-rounded. */
  long page = sysconf(_SC_PAGESIZE);
  void *v = valloc(10), *pv = pvalloc(10), *pv0 = pvalloc(0);
  assert_non_null(v);
  assert_non_null(pv);
  assert_non_null(pv0);
  assert_true(((uintptr_t)v & (uintptr_t)(page - 1)) == 0);
  assert_true(((uintptr_t)pv & (uintptr_t)(page - 1)) == 0);
  assert_true(malloc_usable_size(pv) >= (size_t)page);
  assert_true(malloc_usable_size(pv0) >= (size_t)page);
  memset(pv, 1, (size_t)page);
  free(v);
  free(pv);
  free(pv0);
}

static void test_realloc_across(void **state) {
  /* glibc block (from before init) -> sampled: moves into the range. */
  char *p = realloc(before_init, 5000);
  assert_non_null(p);
  before_init = NULL;
  assert_true(IN_RANGE(p));
  for (int i = 0; i < 3000; i++) assert_int_equal(p[i], 'b');
  /* range -> range, growing and shrinking: contents kept. */
  fill((unsigned char *)p, 5000, 3);
  char *q = realloc(p, 200000);
  assert_non_null(q);
  assert_true(IN_RANGE(q));
  assert_true(check((unsigned char *)q, 5000, 3));
  char *r = realloc(q, 17);
  assert_non_null(r);
  assert_true(check((unsigned char *)r, 17, 3));
  /* range -> glibc: a realloc made while busy is not a sample. */
  pl__heap_tls_state.busy++;
  __asm__ volatile("" ::: "memory");
  char *g = realloc(opaque(r), 64);
  __asm__ volatile("" ::: "memory");
  pl__heap_tls_state.busy--;
  assert_non_null(g);
  assert_true(NOT_IN_RANGE(g));
  assert_true(check((unsigned char *)g, 17, 3));
  /* and back. */
  char *h = realloc(g, 100);
  assert_non_null(h);
  assert_true(IN_RANGE(h));
  assert_true(check((unsigned char *)h, 17, 3));
  /* a failed realloc of a range block leaves it, tracked. */
  errno = 0;
  assert_null(realloc(opaque(h), heap_test_huge - 4096));
  assert_int_equal(errno, ENOMEM);
  assert_true(check((unsigned char *)h, 17, 3));
  pl_heap_snapshot *s = heap_test_snapshot(0);
  assert_non_null(heap_test_find(s, h));
  pl_heap_snapshot_free(s);
  free(h);
}

static void test_calloc_reused_and_large(void **state) {
  /* A freed dirty block of calloc's class comes back zeroed. */
  for (int round = 0; round < 4; round++) {
    unsigned char *d = malloc(1000);
    assert_non_null(d);
    memset(d, 0xa5, 1000);
    free(d);
    unsigned char *z = calloc(10, 100);
    assert_non_null(z);
    assert_true(IN_RANGE(z));
    for (int i = 0; i < 1000; i++) assert_int_equal(z[i], 0);
    free(z);
  }
  /* Large blocks: their pages are given back when freed, the address
   * space reused by the next block of the class. */
  size_t big = (size_t)3 << 20;
  unsigned char *b = malloc(big);
  assert_non_null(b);
  assert_true(IN_RANGE(b));
  memset(b, 0x5a, big);
  uintptr_t first = (uintptr_t)b;
  free(b);
  unsigned char *c = calloc(1, big);
  assert_non_null(c);
#if !PL__HEAP_ASAN
  assert_true((uintptr_t)c == first); /* the class's free block */
#else
  (void)first;
#endif
  for (size_t i = 0; i < big; i += 4096) assert_int_equal(c[i], 0);
  assert_int_equal(c[big - 1], 0);
  free(c);
  /* More freed large blocks than are kept with their pages (8 MiB): the
   * rest give them back; either way calloc hands out zeros. */
  enum { NBIG = 24 };
  static unsigned char *m[NBIG];
  for (int i = 0; i < NBIG; i++) {
    m[i] = malloc(big);
    assert_non_null(m[i]);
    memset(m[i], 0x77, big);
  }
  for (int i = 0; i < NBIG; i++) free(m[i]);
  for (int i = 0; i < NBIG; i++) {
    m[i] = calloc(big, 1);
    assert_non_null(m[i]);
    for (size_t k = 0; k < big; k += 1024) assert_int_equal(m[i][k], 0);
    assert_int_equal(m[i][big - 1], 0);
    m[i][0] = 1;
  }
  for (int i = 0; i < NBIG; i++) free(m[i]);
}

/* Many live blocks of mixed sizes: each keeps its own contents and its
 * usable size is writable. */
static void test_no_overlap(void **state) {
  enum { N = 4000 };
  static unsigned char *p[N];
  static size_t n[N];
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < N; i++) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    n[i] = 1 + (size_t)(rng % (i % 10 == 0 ? 70000 : 700));
    p[i] = malloc(n[i]);
    assert_non_null(p[i]);
    assert_true(IN_RANGE(p[i]));
    size_t u = malloc_usable_size(p[i]);
    assert_true(u >= n[i]);
    memset(p[i], 0xee, u);
    fill(p[i], n[i], (unsigned)i);
    if (i % 3 == 0) { /* churn: free and reallocate some */
      int k = (int)((rng >> 20) % (uint64_t)(i + 1));
      free(p[k]);
      p[k] = malloc(n[k]);
      assert_non_null(p[k]);
      fill(p[k], n[k], (unsigned)k);
    }
  }
  for (int i = 0; i < N; i++) assert_true(check(p[i], n[i], (unsigned)i));
  for (int i = 0; i < N; i++) free(p[i]);
}

static void test_fork(void **state) {
  char *p = malloc(777);
  assert_non_null(p);
  fill((unsigned char *)p, 777, 9);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* Child: the parent's range blocks are here; free, allocate, realloc. */
    int ok = check((unsigned char *)p, 777, 9);
    free(p);
    char *q = malloc(777);
    char *r = q ? realloc(q, 50000) : NULL;
    ok = ok && r && IN_RANGE(r);
    free(r);
    _exit(ok ? 0 : 1);
  }
  heap_test_wait_ok(pid);
  assert_true(check((unsigned char *)p, 777, 9));
  free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_range_check),    cmocka_unit_test(test_aligned),
      cmocka_unit_test(test_realloc_across), cmocka_unit_test(test_calloc_reused_and_large),
      cmocka_unit_test(test_no_overlap),     cmocka_unit_test(test_fork),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
