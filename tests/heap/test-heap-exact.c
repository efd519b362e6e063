/* The heap tracker with T = 1 (every allocation recorded, weight exactly 1):
 * exact accounting at three sites, every member of the malloc family,
 * realloc's edges, failure paths, ids, counters, and that the real
 * interposer (not a sanitizer hook) is what runs in the normal build. */
#include "heap_test.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "heap/heap_internal.h"  /* white-box: the busy guard */
#include "heap/sample_order.h"   /* white-box: the copy's ordering */
#include "heap/track_internal.h" /* white-box: the set's size */
#include "sites.h"

static site_blocks blocks[3];

static int setup(void **state) {
  heap_test_watchdog(100);
  pl_heap_options o = {.sample_bytes = 1, .max_samples = 1u << 20};
  return pl_heap_init(&o);
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* In the normal build malloc is ours (defined in this executable, ahead of
 * libc.so); under ASan it is ASan's and we watch through its hooks. */
static void test_interposer_in_place(void **state) {
  assert_true(pl_heap_running());
  pl_heap_options o = {.sample_bytes = 1};
  assert_int_equal(pl_heap_init(&o), -EALREADY);
#if defined(__SANITIZE_ADDRESS__)
  assert_int_equal(pl_heap_uses_sanitizer_hooks(), 1);
#else
  assert_int_equal(pl_heap_uses_sanitizer_hooks(), 0);
  assert_ptr_equal(dlsym(RTLD_DEFAULT, "malloc"), (void *)malloc);
  assert_ptr_equal(dlsym(RTLD_DEFAULT, "free"), (void *)free);
  assert_ptr_equal(dlsym(RTLD_DEFAULT, "posix_memalign"), (void *)posix_memalign);
  /* libc's own allocations (strdup) come to our malloc too. */
  char *s = strdup("interposed");
  pl_heap_snapshot *snap = heap_test_snapshot(1);
  const pl_heap_sample *x = heap_test_find(snap, s);
  assert_non_null(x);
  assert_int_equal(x->size, 11);
  printf("strdup sample: first frame %s\n", heap_test_site(snap, x));
  assert_non_null(strstr(heap_test_site(snap, x), "strdup"));
  assert_true(heap_test_stack_has(snap, x->stack, "test_interposer_in_place"));
  pl_heap_snapshot_free(snap);
  free(s);
#endif
}

static void test_three_sites_exact(void **state) {
  uint64_t rng = 0x1234567;
  site_alpha(&blocks[0], 50u << 20, &rng);
  site_beta(&blocks[1], 30u << 20, &rng);
  site_gamma(&blocks[2], 20u << 20, &rng);
  pl_heap_snapshot *s = heap_test_snapshot(1);
  static const char *names[3] = {"site_alpha", "site_beta", "site_gamma"};
  for (int i = 0; i < 3; i++) {
    double objects, bytes = heap_test_site_bytes(s, names[i], &objects);
    printf("%s: %zu blocks, %zu bytes; tracked %.0f objects, %.0f bytes\n", names[i], blocks[i].n,
           blocks[i].bytes, objects, bytes);
    assert_int_equal((uint64_t)bytes, blocks[i].bytes);
    assert_int_equal((uint64_t)objects, blocks[i].n);
  }
  for (size_t i = 0; i < s->nsamples; i++) {
    assert_true(s->samples[i].weight_objects == 1.0);
    assert_true(s->samples[i].weight_bytes == (double)s->samples[i].size);
  }
  pl_heap_snapshot_free(s);

  /* Freed memory disappears from the next snapshot; the rest stays. */
  site_release(&blocks[1]);
  s = heap_test_snapshot(1);
  assert_true(heap_test_site_bytes(s, "site_beta", NULL) == 0);
  assert_int_equal((uint64_t)heap_test_site_bytes(s, "site_alpha", NULL), blocks[0].bytes);
  assert_int_equal((uint64_t)heap_test_site_bytes(s, "site_gamma", NULL), blocks[2].bytes);
  pl_heap_snapshot_free(s);
  site_release(&blocks[0]);
  site_release(&blocks[2]);
  s = heap_test_snapshot(1);
  for (int i = 0; i < 3; i++) assert_true(heap_test_site_bytes(s, names[i], NULL) == 0);
  pl_heap_snapshot_free(s);
}

/* Every member of the family records the block with its requested size,
 * at the caller, and forgets it when it is freed. */
static void test_family(void **state) {
  void *p[9] = {0};
  uintptr_t a[9];
  size_t n[9] = {100, 7 * 13, 333, 1000, 5120,
                 64,  4096,   10,  4000}; /* C11: size a multiple of the alignment */
  p[0] = malloc(n[0]);
  p[1] = calloc(7, 13);
  p[2] = realloc(NULL, n[2]);
  assert_int_equal(posix_memalign(&p[3], 256, n[3]), 0);
  p[4] = aligned_alloc(1024, n[4]);
  p[5] = memalign(64, n[5]);
  p[6] = valloc(n[6]);
  p[7] = reallocarray(NULL, 5, 2);
  p[8] = pvalloc(n[8]);
  assert_true(((uintptr_t)p[3] & 255) == 0);
  assert_true(((uintptr_t)p[4] & 1023) == 0);
  assert_true(((uintptr_t)p[5] & 63) == 0);
  assert_true(((uintptr_t)p[6] & 4095) == 0);
  assert_true(((uintptr_t)p[8] & 4095) == 0);
  for (int i = 0; i < 9; i++) {
    assert_non_null(p[i]);
    assert_true(malloc_usable_size(p[i]) >= n[i]);
    memset(p[i], i, n[i]);
  }
  assert_int_equal(malloc_usable_size(NULL), 0);
  pl_heap_snapshot *s = heap_test_snapshot(1);
  for (int i = 0; i < 9; i++) {
    const pl_heap_sample *x = heap_test_find(s, p[i]);
    assert_non_null(x);
    if (i == 8 && x->size == 4096) /* ASan's pvalloc reports the page-rounded size */
      assert_true(pl_heap_uses_sanitizer_hooks());
    else
      assert_int_equal(x->size, n[i]);
    /* The tracker's frames (and ASan's) are not in the stack. */
    assert_string_equal(heap_test_site(s, x), "test_family");
  }
  pl_heap_snapshot_free(s);

  /* realloc moves the record: the old block is gone, the new one is there. */
  uintptr_t old = (uintptr_t)p[0];
  p[0] = realloc(p[0], 1u << 20);
  assert_non_null(p[0]);
  s = heap_test_snapshot(0);
  if ((uintptr_t)p[0] != old) assert_null(heap_test_find_addr(s, old));
  assert_non_null(heap_test_find(s, p[0]));
  assert_int_equal(heap_test_find(s, p[0])->size, 1u << 20);
  pl_heap_snapshot_free(s);

  for (int i = 0; i < 9; i++) {
    a[i] = (uintptr_t)p[i];
    free(p[i]);
  }
  s = heap_test_snapshot(0);
  for (int i = 0; i < 9; i++) assert_null(heap_test_find_addr(s, a[i]));
  pl_heap_snapshot_free(s);
}

/* Failed reallocs leave p valid; called through these the compiler does
 * not warn that p is used after realloc. */
__attribute__((noipa)) static void *realloc_may_fail(void *p, size_t n) { return realloc(p, n); }
__attribute__((noipa)) static void *reallocarray_may_fail(void *p, size_t n, size_t m) {
  return reallocarray(p, n, m);
}

static void test_realloc_edges(void **state) {
  /* from NULL: a malloc */
  char *p = realloc(NULL, 48);
  assert_non_null(p);
  pl_heap_snapshot *s = heap_test_snapshot(0);
  const pl_heap_sample *x = heap_test_find(s, p);
  assert_non_null(x);
  assert_int_equal(x->size, 48);
  uint64_t id = x->id;
  pl_heap_snapshot_free(s);

  /* failure: NULL, the block untouched and still tracked under its id */
  memcpy(p, "still here", 11);
  errno = 0;
  assert_null(realloc_may_fail(p, heap_test_huge - 4096));
  assert_int_equal(errno, ENOMEM);
  assert_null(reallocarray_may_fail(p, heap_test_huge / 2, 3)); /* overflow */
  assert_int_equal(errno, ENOMEM);
  assert_string_equal(p, "still here");
  s = heap_test_snapshot(0);
  x = heap_test_find(s, p);
  assert_non_null(x);
  assert_int_equal(x->id, id);
  pl_heap_snapshot_free(s);

  /* to 0: frees (glibc semantics) and the block is gone */
  uintptr_t pa = (uintptr_t)p;
  assert_null(realloc(p, 0));
  s = heap_test_snapshot(0);
  assert_null(heap_test_find_addr(s, pa));
  pl_heap_snapshot_free(s);

  /* shrink in place keeps tracking the new size */
  char *q = malloc(4000);
  char *r = realloc(q, 100);
  assert_non_null(r);
  s = heap_test_snapshot(0);
  assert_int_equal(heap_test_find(s, r)->size, 100);
  pl_heap_snapshot_free(s);
  free(r);
}

static void test_failures(void **state) {
  pl_heap_stats before, after;
  pl_heap_get_stats(&before);
  errno = 0;
  assert_null(malloc(heap_test_huge));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(malloc(heap_test_huge / 2));
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(calloc(heap_test_huge / 2 + 2, 2)); /* n * size overflows */
  assert_int_equal(errno, ENOMEM);
  errno = 0;
  assert_null(calloc(heap_test_huge >> 24, (size_t)1 << 30));
  assert_int_equal(errno, ENOMEM);
  assert_null(aligned_alloc(64, heap_test_huge - 100));
  assert_null(memalign(4096, heap_test_huge / 2));
  assert_null(valloc(heap_test_huge - 100));
  void *p = (void *)0x1;
  assert_int_equal(posix_memalign(&p, 3, 16), EINVAL);
  assert_int_equal(posix_memalign(&p, 0, 16), EINVAL);
  assert_int_equal(posix_memalign(&p, sizeof(void *) / 2, 16), EINVAL);
  assert_int_equal(posix_memalign(&p, 24, 16), EINVAL);
  assert_int_equal(posix_memalign(&p, 64, heap_test_huge - 100), ENOMEM);
  assert_ptr_equal(p, (void *)0x1); /* untouched on failure */
  pl_heap_get_stats(&after);
  assert_int_equal(after.samples, before.samples); /* failures are not allocations */
  assert_true(after.alloc_objects == before.alloc_objects);
}

static int by_sample_addr(const void *a, const void *b) {
  const pl_heap_sample *x = *(const pl_heap_sample *const *)a,
                       *y = *(const pl_heap_sample *const *)b;
  return x->address < y->address ? -1 : x->address > y->address;
}

/* n blocks; count of them, from index first every step, freed and
 * allocated again from the top down: their records are reused, out of id
 * order in the tracker's table. The snapshot still lists samples by
 * increasing id, each with its own block's fields. */
static void check_reuse(int n, int first, int count, int step) {
  void **p = calloc((size_t)n, sizeof(*p));
  assert_non_null(p);
  for (int i = 0; i < n; i++) p[i] = malloc(16 + (size_t)i % 512);
  for (int k = 0; k < count; k++) {
    free(p[first + k * step]);
    p[first + k * step] = NULL;
  }
  for (int k = count - 1; k >= 0; k--)
    p[first + k * step] = malloc(16 + (size_t)(first + k * step) % 512);
  pl_heap_snapshot *s = heap_test_snapshot(0);
  for (size_t i = 1; i < s->nsamples; i++) assert_true(s->samples[i - 1].id < s->samples[i].id);
  const pl_heap_sample **by_addr = malloc((s->nsamples + 1) * sizeof(*by_addr));
  assert_non_null(by_addr);
  for (size_t i = 0; i < s->nsamples; i++) by_addr[i] = &s->samples[i];
  qsort(by_addr, s->nsamples, sizeof(*by_addr), by_sample_addr);
  uint64_t prev_new = 0;
  for (int i = 0; i < n; i++) {
    pl_heap_sample key = {.address = (uintptr_t)p[i]}, *kp = &key;
    const pl_heap_sample **hit =
        bsearch(&kp, by_addr, s->nsamples, sizeof(*by_addr), by_sample_addr);
    assert_non_null(hit);
    const pl_heap_sample *x = *hit;
    assert_int_equal(x->size, 16 + (size_t)i % 512);
    if (i >= first && (i - first) % step == 0 && (i - first) / step < count) {
      if (prev_new) assert_true(x->id < prev_new); /* reallocated from the top down */
      prev_new = x->id;
    }
  }
  free(by_addr);
  pl_heap_snapshot_free(s);
  for (int i = 0; i < n; i++) free(p[i]);
  free(p);
}

/* Each way the copy orders samples (heap/snapshot.c): a few reused
 * records set aside and merged in, a run of them at the front taken back
 * off the end, a run longer than it takes back, and more than it sets
 * aside (the whole sort). */
static void test_sorted_after_reuse(void **state) {
  (void)state;
  check_reuse(3000, 1, 1500, 2);     /* every other record */
  check_reuse(20000, 0, 300, 1);     /* a run at the front */
  check_reuse(20000, 5000, 10, 1);   /* a short run in the middle */
  check_reuse(20000, 5000, 2000, 1); /* a run of 2,000 */
  check_reuse(40000, 1, 20000, 2);   /* 20,000 out of turn */
}

/* The pcs of every stack, as a snapshot taken just before copies them;
 * a buffer too small is told how much room it needs, and nothing is
 * written past it. */
static void test_stack_pcs(void **state) {
  (void)state;
  void *keep = malloc(100);
  pl_heap_snapshot *s = heap_test_snapshot(0);
  size_t total = 0;
  for (size_t i = 0; i < s->nstacks; i++) total += s->stacks[i].depth;
  assert_true(total > 1);
  uintptr_t small[2] = {0, 42};
  size_t need = pl_heap_stack_pcs(small, 1);
  assert_true(need >= total);
  assert_int_equal(small[1], 42);
  pl_heap_untracked_begin();
  uintptr_t *pcs = malloc((need + 64) * sizeof(*pcs));
  pl_heap_untracked_end();
  assert_non_null(pcs);
  size_t n = pl_heap_stack_pcs(pcs, need + 64);
  assert_true(n >= total && n <= need + 64);
  for (size_t i = 0; i < s->nstacks; i++) { /* each stack's pcs, where it keeps them */
    const pl_heap_stack *k = &s->stacks[i];
    size_t off = (size_t)(k->pcs - s->stacks[0].pcs);
    assert_true(off + k->depth <= n);
    assert_memory_equal(pcs + off, k->pcs, k->depth * sizeof(*pcs));
  }
  free(pcs);
  pl_heap_snapshot_free(s);
  free(keep);
}

/* The ordering of a snapshot's copy on its own, with tables of every
 * shape: the samples come out by increasing id, each whole, and from the
 * path the shape calls for (merged from below into the room under v, from
 * the top, or sorted after giving up). */
static pl_heap_sample order_sample(uint64_t id) {
  return (pl_heap_sample){.id = id, .size = id * 3, .stack = (uint32_t)id, .tid = 7};
}

static int by_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Put ids[0..n) in table order; returns how far below its start v ended. */
static size_t check_order(const uint64_t *ids, size_t n, int no_aside, int *unordered) {
  pl_heap_sample *room = malloc((n + PL__SAMPLE_ORDER_HEAD) * sizeof(*room));
  uint64_t *want = malloc((n ? n : 1) * sizeof(*want));
  assert_non_null(room);
  assert_non_null(want);
  pl__sample_order o;
  pl__sample_order_init(&o, room + PL__SAMPLE_ORDER_HEAD, n);
  if (no_aside) o.aside_max = 0; /* as when its memory could not be had */
  for (size_t i = 0; i < n; i++) {
    pl_heap_sample x = order_sample(ids[i]);
    pl__sample_order_put(&o, &x);
  }
  *unordered = o.unordered;
  pl__sample_order_finish(&o);
  memcpy(want, ids, n * sizeof(*want));
  qsort(want, n, sizeof(*want), by_u64);
  assert_int_equal(o.n, n);
  assert_true(o.v >= room && o.v <= room + PL__SAMPLE_ORDER_HEAD);
  for (size_t i = 0; i < n; i++) {
    assert_true(o.v[i].id == want[i]);
    assert_true(o.v[i].size == want[i] * 3 && o.v[i].stack == (uint32_t)want[i] && o.v[i].tid == 7);
  }
  size_t moved = (size_t)(room + PL__SAMPLE_ORDER_HEAD - o.v);
  free(room);
  free(want);
  return moved;
}

static void test_sample_order(void **state) {
  (void)state;
  enum { N = 20000 }; /* more than PL__SAMPLE_ORDER_ASIDE */
  static uint64_t ids[N];
  int unordered;
  /* in order */
  for (size_t i = 0; i < N; i++) ids[i] = 2 * i + 1;
  assert_int_equal(check_order(ids, N, 0, &unordered), 0);
  assert_false(unordered);
  /* 1,100 new ones in reused records, 10 old ones, then newer: the old
   * ones are set aside and merged from below, into the room under v */
  size_t k = 0;
  for (size_t i = 0; i < 1100; i++) ids[k++] = 100001 + 2 * i;
  for (size_t i = 0; i < 10; i++) ids[k++] = 1 + 2 * i;
  for (size_t i = 0; i < 5000; i++) ids[k++] = 200001 + 2 * i;
  assert_int_equal(check_order(ids, k, 0, &unordered), 10);
  assert_false(unordered);
  /* a few new ones early among old ones: taken back off the end, merged
   * from the top */
  for (size_t i = 0; i < N; i++) ids[i] = 2 * i + 1;
  for (size_t i = 0; i < 5; i++) ids[100 + 300 * i] = 100001 + 2 * i;
  assert_int_equal(check_order(ids, N, 0, &unordered), 0);
  assert_false(unordered);
  /* scattered swaps, both kinds at once (a small id fewer than POP places
   * late takes back the larger ones before it: this many give up) */
  unsigned seed = 11;
  for (size_t i = 0; i < N; i++) ids[i] = 2 * i + 1;
  for (int sw = 0; sw < 200; sw++) {
    size_t a = (size_t)rand_r(&seed) % N, b = (size_t)rand_r(&seed) % N;
    uint64_t t = ids[a];
    ids[a] = ids[b];
    ids[b] = t;
  }
  check_order(ids, N, 0, &unordered);
  /* reversed: more out of turn than can be set aside; sorted at the end */
  for (size_t i = 0; i < N; i++) ids[i] = 2 * (N - i) + 1;
  check_order(ids, N, 0, &unordered);
  assert_true(unordered);
  /* no memory to set any aside: gives up at the first */
  for (size_t i = 0; i < N; i++) ids[i] = 2 * i + 1;
  ids[10] = 3 * N;
  check_order(ids, N, 1, &unordered);
  assert_true(unordered);
  assert_int_equal(check_order(ids, 0, 0, &unordered), 0);
}

/* Live samples of exactly size bytes in a new snapshot (freed). */
static size_t samples_of_size(size_t size) {
  pl_heap_snapshot *s = heap_test_snapshot(0);
  size_t n = 0;
  for (size_t i = 0; i < s->nsamples; i++) n += s->samples[i].size == size;
  pl_heap_snapshot_free(s);
  return n;
}

/* The samples memory is kept from one snapshot to the next (or made by
 * pl_heap_snapshot_prepare), and what a snapshot holds is its own: right
 * after prepare, after a reuse, and once the records outgrow what was
 * kept; release_idle hands it back only when it is old enough. */
static void test_kept_samples_memory(void **state) {
  (void)state;
  enum { SIZE = 1237, FIRST = 30000, MORE = 50000 }; /* > 1 MiB of samples: a mapping */
  static void *b[FIRST + MORE];
  pl_heap_snapshot_release_idle(0);
  assert_int_equal(pl_heap_snapshot_release_idle(0), 0); /* nothing kept */
  for (int i = 0; i < FIRST; i++) assert_non_null(b[i] = malloc(SIZE));
  assert_int_equal(pl_heap_snapshot_prepare(), 0);
  assert_int_equal(pl_heap_snapshot_release_idle(60 * 1000000000ull), 0); /* too young */
  assert_int_equal(samples_of_size(SIZE), FIRST);                         /* the prepared memory */
  assert_int_equal(samples_of_size(SIZE), FIRST);                         /* the kept one */
  for (int i = 0; i < FIRST; i += 2) free(b[i]);
  assert_int_equal(samples_of_size(SIZE), FIRST / 2); /* nothing of the last one's */
  for (int i = FIRST; i < FIRST + MORE; i++) assert_non_null(b[i] = malloc(SIZE));
  assert_int_equal(samples_of_size(SIZE), FIRST / 2 + MORE); /* outgrown: a new mapping */
  assert_int_equal(samples_of_size(SIZE), FIRST / 2 + MORE);
  assert_int_equal(pl_heap_snapshot_release_idle(0), 1);
  assert_int_equal(pl_heap_snapshot_release_idle(0), 0);
  assert_int_equal(samples_of_size(SIZE), FIRST / 2 + MORE); /* without one */
  for (int i = 1; i < FIRST; i += 2) free(b[i]);
  for (int i = FIRST; i < FIRST + MORE; i++) free(b[i]);
  pl_heap_snapshot_release_idle(0);
}

static void test_ids_and_times(void **state) {
  uint64_t t0 = mono_ns();
  void *a = malloc(10), *b = malloc(20), *c = malloc(30);
  uint64_t t1 = mono_ns();
  pl_heap_snapshot *s1 = heap_test_snapshot(0), *s2 = heap_test_snapshot(0);
  const pl_heap_sample *xa = heap_test_find(s1, a), *xb = heap_test_find(s1, b),
                       *xc = heap_test_find(s1, c);
  assert_non_null(xa);
  assert_non_null(xb);
  assert_non_null(xc);
  assert_true(xa->id & 1);
  assert_true(xb->id & 1);
  assert_true(xc->id & 1);
  assert_true(xa->id < xb->id && xb->id < xc->id);
  assert_true(xa->time_ns >= t0 && xc->time_ns <= t1);
  /* stable across snapshots */
  assert_int_equal(heap_test_find(s2, a)->id, xa->id);
  assert_int_equal(heap_test_find(s2, c)->id, xc->id);
  /* samples come sorted by id, ids unique */
  for (size_t i = 1; i < s1->nsamples; i++) assert_true(s1->samples[i - 1].id < s1->samples[i].id);
  /* the snapshot's own memory is not tracked */
  assert_null(heap_test_find(s2, s1->samples));
  assert_null(heap_test_find(s2, s1->stacks));
  assert_null(heap_test_find(s2, s1->owner));
  pl_heap_snapshot_free(s1);
  pl_heap_snapshot_free(s2);
  free(a);
  free(b);
  free(c);
}

/* alloc_* and inuse_* move by exactly what was allocated and freed. */
static void test_counters_exact(void **state) {
  static void *p[1000];
  pl_heap_stats s0, s1, s2;
  pl_heap_get_stats(&s0);
  uint64_t bytes = 0;
  for (int i = 0; i < 1000; i++) {
    p[i] = malloc((size_t)i * 37 + 1);
    bytes += (uint64_t)i * 37 + 1;
  }
  pl_heap_get_stats(&s1);
  for (int i = 0; i < 1000; i++) free(p[i]);
  pl_heap_get_stats(&s2);
  assert_int_equal(s1.samples - s0.samples, 1000);
  assert_int_equal((uint64_t)(s1.alloc_objects - s0.alloc_objects), 1000);
  assert_int_equal((uint64_t)(s1.alloc_bytes - s0.alloc_bytes), bytes);
  assert_int_equal((uint64_t)(s1.inuse_objects - s0.inuse_objects), 1000);
  assert_int_equal((uint64_t)(s1.inuse_bytes - s0.inuse_bytes), bytes);
  assert_int_equal(s1.live_samples - s0.live_samples, 1000);
  assert_true(s2.inuse_bytes == s0.inuse_bytes);
  assert_int_equal(s2.live_samples, s0.live_samples);
  assert_int_equal(s2.dropped_samples, 0);
  assert_int_equal(s2.sample_bytes, 1);
  assert_true(s2.tracker_bytes > 0 && s2.tracker_bytes <= s2.tracker_reserved);
  printf("tracker: %llu bytes used, %llu reserved, %llu stacks\n",
         (unsigned long long)s2.tracker_bytes, (unsigned long long)s2.tracker_reserved,
         (unsigned long long)s2.stacks);
}

/* Per-stack counters: cumulative alloc_* survive frees, inuse_* do not. */
static void test_stack_counters(void **state) {
  void *p[10];
  for (int i = 0; i < 10; i++) p[i] = malloc(1000);
  pl_heap_snapshot *s = heap_test_snapshot(1);
  const pl_heap_sample *x = heap_test_find(s, p[0]);
  assert_non_null(x);
  uint32_t stack = x->stack;
  double alloc0 = s->stacks[stack].alloc_bytes;
  assert_true(s->stacks[stack].inuse_bytes == 10000);
  assert_true(s->stacks[stack].inuse_objects == 10);
  assert_true(alloc0 >= 10000);
  assert_string_equal(heap_test_site(s, x), "test_stack_counters");
  pl_heap_snapshot_free(s);
  for (int i = 0; i < 10; i++) free(p[i]);
  s = heap_test_snapshot(0);
  assert_true(s->stacks[stack].inuse_bytes == 0);
  assert_true(s->stacks[stack].alloc_bytes == alloc0);
  pl_heap_snapshot_free(s);
}

/* Re-entrancy: while a thread is inside the tracker (busy, as when a
 * signal handler runs on top of it), its allocations are not tracked and a
 * free of a sampled block is accounted later, lock-free. */
static void test_reentrant(void **state) {
  pl_heap_stats s0, s1, s2;
  void *p = malloc(5000);
  uintptr_t pa = (uintptr_t)p;
  pl_heap_get_stats(&s0);
  /* (Barriers: the compiler knows malloc/free do not read busy.) */
  pl__heap_tls_state.busy++;
  __asm__ volatile("" ::: "memory");
  void *q = malloc(7000); /* not tracked */
  free(p);                /* deferred: the mutex may be held by this thread */
  __asm__ volatile("" ::: "memory");
  pl__heap_tls_state.busy--;
  pl_heap_get_stats(&s1); /* the next holder of the mutex settles it */
  assert_int_equal(s1.live_samples, s0.live_samples - 1);
  assert_int_equal(s1.samples, s0.samples);
  assert_true(s0.inuse_bytes - s1.inuse_bytes == 5000);
  pl_heap_snapshot *s = heap_test_snapshot(0);
  assert_null(heap_test_find_addr(s, pa));
  assert_null(heap_test_find(s, q));
  pl_heap_snapshot_free(s);
  free(q);
  pl_heap_get_stats(&s2);
  assert_int_equal(s2.live_samples, s1.live_samples);
}

/* The pointer set grows (64 buckets, doubling) while other threads free:
 * 4 threads ramp up to 30,000 live blocks each, freeing one block for every
 * two allocated. With T = 1 a snapshot must then hold every live block
 * exactly once (a key lost or duplicated while a set was copied would
 * show), and none of the freed ones. */
#define GROW_THREADS 4
#define GROW_LIVE 30000
static pthread_barrier_t grow_barrier;
static void **grow_slots[GROW_THREADS];
static size_t grow_live[GROW_THREADS];
static uint32_t grow_tid[GROW_THREADS];

static void *grow_work(void *arg) {
  size_t id = (size_t)arg;
  grow_tid[id] = (uint32_t)gettid();
  void **slot = calloc(GROW_LIVE * 2, sizeof(void *));
  size_t n = 0;
  uint64_t x = 0x9e3779b97f4a7c15ull * (id + 1);
  while (n < GROW_LIVE) {
    for (int k = 0; k < 2; k++, n++) slot[n] = malloc(16 + (n % 200));
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    size_t victim = (size_t)(x % n);
    free(slot[victim]);
    slot[victim] = slot[--n];
  }
  grow_slots[id] = slot;
  grow_live[id] = n;
  pthread_barrier_wait(&grow_barrier); /* the main thread checks */
  pthread_barrier_wait(&grow_barrier);
  for (size_t i = 0; i < n; i++) free(slot[i]);
  free(slot);
  return NULL;
}

static int by_addr(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

static void test_growth_races(void **state) {
  pthread_t th[GROW_THREADS];
  pthread_barrier_init(&grow_barrier, NULL, GROW_THREADS + 1);
  for (size_t i = 0; i < GROW_THREADS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, grow_work, (void *)i), 0);
  pthread_barrier_wait(&grow_barrier);

  /* live: every block the workers hold (and their slot arrays), sorted */
  size_t live = 0;
  for (int i = 0; i < GROW_THREADS; i++) live += grow_live[i] + 1;
  uintptr_t *addr = malloc(live * sizeof(uintptr_t));
  size_t k = 0;
  for (int i = 0; i < GROW_THREADS; i++) {
    for (size_t j = 0; j < grow_live[i]; j++) addr[k++] = (uintptr_t)grow_slots[i][j];
    addr[k++] = (uintptr_t)grow_slots[i];
  }
  qsort(addr, live, sizeof(uintptr_t), by_addr);
  pl_heap_snapshot *s = heap_test_snapshot(0);
  /* addresses unique in the snapshot */
  uintptr_t *seen = malloc(s->nsamples * sizeof(uintptr_t));
  for (size_t i = 0; i < s->nsamples; i++) seen[i] = s->samples[i].address;
  qsort(seen, s->nsamples, sizeof(uintptr_t), by_addr);
  for (size_t i = 1; i < s->nsamples; i++) assert_true(seen[i] != seen[i - 1]);
  /* every live block present */
  size_t found = 0;
  for (size_t i = 0; i < live; i++)
    found += bsearch(&addr[i], seen, s->nsamples, sizeof(uintptr_t), by_addr) != NULL;
  /* the workers' samples are their live blocks, plus at most one each that
   * the C library allocates for a new thread */
  size_t theirs = 0, other = 0;
  for (size_t i = 0; i < s->nsamples; i++)
    for (int t = 0; t < GROW_THREADS; t++)
      if (s->samples[i].tid == grow_tid[t]) {
        theirs++;
        if (!bsearch(&s->samples[i].address, addr, live, sizeof(uintptr_t), by_addr)) other++;
      }
  printf("live blocks %zu: found %zu; workers' samples %zu (%zu not theirs); dropped %llu\n", live,
         found, theirs, other, (unsigned long long)s->stats.dropped_samples);
  assert_int_equal(found, live);
  assert_true(other <= GROW_THREADS);
  assert_int_equal(s->stats.dropped_samples, 0);
  pl_heap_snapshot_free(s);
  free(seen);
  free(addr);

  pthread_barrier_wait(&grow_barrier);
  for (int i = 0; i < GROW_THREADS; i++) pthread_join(th[i], NULL);
  pthread_barrier_destroy(&grow_barrier);
  s = heap_test_snapshot(0);
  theirs = 0;
  for (size_t i = 0; i < s->nsamples; i++)
    for (int t = 0; t < GROW_THREADS; t++) theirs += s->samples[i].tid == grow_tid[t];
  assert_true(theirs <= GROW_THREADS);
  pl_heap_snapshot_free(s);
}

/* The compiler knows malloc leaves our globals alone: read them afresh. */
#define FRESH(x) (*(volatile __typeof__(x) *)&(x))

/* free(NULL) when the filter cell of NULL happens to be set by a live
 * sample reaches the set lookup, which must not mistake an empty slot
 * (holding 0) for NULL's entry and release some other record (found by the
 * SIGPROF test: records released twice, counts underflowing). The lookup
 * is called directly: whether NULL's filter bit is set is chance. */
static void test_free_null(void **state) {
  void *p[64];
  for (int i = 0; i < 64; i++) p[i] = malloc(32);
  pl_heap_stats s0, s1;
  pl_heap_get_stats(&s0);
  assert_int_equal(pl__heap_take(NULL), PL__HEAP_NONE);
  for (int i = 0; i < 1000; i++) free(NULL);
  pl_heap_get_stats(&s1);
  assert_int_equal(s1.live_samples, s0.live_samples);
  pl_heap_snapshot *s = heap_test_snapshot(0);
  for (int i = 0; i < 64; i++) assert_non_null(heap_test_find(s, p[i]));
  pl_heap_snapshot_free(s);
  for (int i = 0; i < 64; i++) free(p[i]);
}

/* Frees racing with the copy of a growing set, deterministically: at each
 * growth, 3 threads start freeing 20,000 sampled blocks the moment the copy
 * begins (the old set's `next` appears), through the lock-free path
 * (marked busy, as a signal handler inside the tracker would be: take the
 * key with a CAS, defer the accounting). Both outcomes of the race occur:
 * a free that sees its key marked moved and looks in the new set, and a
 * copy undone because the key was freed meanwhile. Afterwards a snapshot
 * holds every block still allocated, once, and no freed one. */
#define RACE_FREERS 3
#define RACE_VICTIMS 20000
static void *race_victims[RACE_VICTIMS];
static pl__heap_set *race_set;
static atomic_int race_abort, race_ready;

static void *race_freer(void *arg) {
  size_t id = (size_t)arg;
  /* start when the grower starts copying race_set into its successor */
  atomic_fetch_add(&race_ready, 1);
  while (!atomic_load(&race_set->next) && !atomic_load(&race_abort)) {
  }
  pl__heap_tls_state.busy++;
  __asm__ volatile("" ::: "memory");
  for (size_t i = id; i < RACE_VICTIMS; i += RACE_FREERS) free(race_victims[i]);
  __asm__ volatile("" ::: "memory");
  pl__heap_tls_state.busy--;
  return NULL;
}

static void test_frees_racing_growth(void **state) {
  static void *kept[400000];
  size_t nkept = 0;
  uint64_t moved0 = atomic_load(&pl__heap.followed_moved), undone0 = pl__heap.undone_copies;
  int rounds = 0;
  for (; rounds < 6 && FRESH(pl__heap.set_slots) * 2 / 5 + 2 * RACE_VICTIMS < 390000; rounds++) {
    for (size_t i = 0; i < RACE_VICTIMS; i++) race_victims[i] = malloc(24);
    /* up to just below the next growth (at 40% of the set's slots; a full
     * bucket window may make it grow earlier) */
    while ((FRESH(pl__heap.live) + 2) * 5 <= FRESH(pl__heap.set_slots) * 2 && nkept < 390000)
      kept[nkept++] = malloc(40);
    size_t slots = FRESH(pl__heap.set_slots);
    pthread_t th[RACE_FREERS];
    race_set = atomic_load(&pl__heap.set);
    for (size_t i = 0; i < RACE_FREERS; i++)
      assert_int_equal(pthread_create(&th[i], NULL, race_freer, (void *)i), 0);
    while (atomic_load(&race_ready) < RACE_FREERS) sched_yield();
    atomic_store(&race_ready, 0);
    /* across it, while they free (the copy takes a few ms) */
    while (FRESH(pl__heap.set_slots) == slots && nkept < 400000) kept[nkept++] = malloc(40);
    int grew = FRESH(pl__heap.set_slots) > slots;
    if (!grew) atomic_store(&race_abort, 1);
    for (size_t i = 0; i < RACE_FREERS; i++) pthread_join(th[i], NULL);
    if (!grew)
      fail_msg("round %d: no growth (slots %zu, live %llu, kept %zu)", rounds, slots,
               (unsigned long long)FRESH(pl__heap.live), nkept);
  }
  assert_true(rounds >= 2);
  uint64_t moved = atomic_load(&pl__heap.followed_moved) - moved0;
  uint64_t undone = pl__heap.undone_copies - undone0;
  pl_heap_snapshot *s = heap_test_snapshot(0);
  uintptr_t *seen = malloc(s->nsamples * sizeof(uintptr_t));
  for (size_t i = 0; i < s->nsamples; i++) seen[i] = s->samples[i].address;
  qsort(seen, s->nsamples, sizeof(uintptr_t), by_addr);
  for (size_t i = 1; i < s->nsamples; i++) assert_true(seen[i] != seen[i - 1]);
  size_t found = 0;
  for (size_t i = 0; i < nkept; i++) {
    uintptr_t a = (uintptr_t)kept[i];
    found += bsearch(&a, seen, s->nsamples, sizeof(uintptr_t), by_addr) != NULL;
  }
  printf(
      "%d growths: kept %zu, found %zu; frees that followed a moved key %llu, copies undone "
      "%llu\n",
      rounds, nkept, found, (unsigned long long)moved, (unsigned long long)undone);
  assert_int_equal(found, nkept);
  /* no victim left unless its address was reused by a kept block */
  size_t stale = 0;
  for (size_t i = 0; i < s->nsamples; i++)
    if (s->samples[i].size == 24) stale++;
  assert_int_equal(stale, 0);
  /* Under ASan the frees have not overlapped a copy in practice (its free
   * path is much slower and the copy short): the race is asserted in the
   * normal build, where the real interposer runs. */
  if (!pl_heap_uses_sanitizer_hooks()) assert_true(moved + undone > 0);
  pl_heap_snapshot_free(s);
  free(seen);
  for (size_t i = 0; i < nkept; i++) free(kept[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_interposer_in_place),
      cmocka_unit_test(test_three_sites_exact),
      cmocka_unit_test(test_family),
      cmocka_unit_test(test_realloc_edges),
      cmocka_unit_test(test_failures),
      cmocka_unit_test(test_ids_and_times),
      cmocka_unit_test(test_sorted_after_reuse),
      cmocka_unit_test(test_stack_pcs),
      cmocka_unit_test(test_sample_order),
      cmocka_unit_test(test_kept_samples_memory),
      cmocka_unit_test(test_counters_exact),
      cmocka_unit_test(test_stack_counters),
      cmocka_unit_test(test_reentrant),
      cmocka_unit_test(test_free_null),
      cmocka_unit_test(test_frees_racing_growth),
      cmocka_unit_test(test_growth_races),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
