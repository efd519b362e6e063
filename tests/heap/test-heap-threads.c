/* The tracker under concurrency (T = 4 KiB, so a sample every ~2
 * allocations of the mix below):
 * - 8 threads malloc/calloc/realloc/posix_memalign/free at once while
 *   another takes snapshots in a loop: every snapshot is well formed
 *   (ids odd and strictly increasing, stack indices in range), nothing
 *   deadlocks (watchdog), and once the threads have freed everything their
 *   blocks are gone and the counters agree with a quiescent snapshot;
 * - the cumulative estimate of bytes allocated is within ±3% of the truth
 *   (hundreds of thousands of samples);
 * - fork() while those threads allocate: the child allocates, frees, takes
 *   a snapshot and exits 0; the parent carries on. */
#include "heap_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

#define THREADS 8
#define WINDOW 256

static int setup(void **state) {
  heap_test_watchdog(110);
  pl_heap_options o = {.sample_bytes = 4096, .max_samples = 1u << 16};
  return pl_heap_init(&o);
}

typedef struct worker {
  pthread_t thread;
  uint32_t tid;
  uint64_t ops, bytes;
  uint64_t seed;
  long iterations; /* < 0: until stop */
} worker;

static atomic_int stop;

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static void *work(void *arg) {
  worker *w = arg;
  w->tid = (uint32_t)gettid();
  void *slot[WINDOW] = {0};
  uint64_t rng = w->seed;
  for (long i = 0; w->iterations < 0 ? !atomic_load(&stop) : i < w->iterations; i++) {
    uint64_t r = xorshift(&rng);
    unsigned k = (unsigned)(r % WINDOW);
    size_t n = 16 + (size_t)((r >> 16) % 4081);
    if (slot[k] && (r >> 40) % 8 == 0) { /* sometimes grow/shrink in place */
      void *q = realloc(slot[k], n);
      assert_non_null(q);
      slot[k] = q;
    } else {
      free(slot[k]);
      switch ((r >> 44) % 4) {
        case 0:
          slot[k] = calloc(1, n);
          break;
        case 1:
          assert_int_equal(posix_memalign(&slot[k], 64, n), 0);
          break;
        default:
          slot[k] = malloc(n);
          break;
      }
      assert_non_null(slot[k]);
    }
    ((char *)slot[k])[0] = 1;
    w->ops++;
    w->bytes += n;
  }
  for (unsigned k = 0; k < WINDOW; k++) free(slot[k]);
  return NULL;
}

static void check_snapshot(const pl_heap_snapshot *s) {
  for (size_t i = 0; i < s->nsamples; i++) {
    const pl_heap_sample *x = &s->samples[i];
    assert_true(x->id & 1);
    if (i) assert_true(s->samples[i - 1].id < x->id);
    assert_true(x->stack < s->nstacks);
    assert_true(x->weight_objects >= 1.0);
    assert_true(x->weight_bytes >= (double)x->size);
  }
  for (size_t j = 0; j < s->nstacks; j++) assert_true(s->stacks[j].depth <= PL_HEAP_MAX_FRAMES);
}

static void test_threads_and_snapshots(void **state) {
  static worker w[THREADS];
  pl_heap_stats s0, s1;
  pl_heap_get_stats(&s0);
  for (int i = 0; i < THREADS; i++) {
    w[i].seed = 0x1234567ull * (i + 1);
    w[i].iterations = 150000;
    assert_int_equal(pthread_create(&w[i].thread, NULL, work, &w[i]), 0);
  }
  /* Snapshot while they run: this thread is "another" thread. */
  unsigned snapshots = 0;
  size_t max_live = 0;
  struct timespec ts = {0, 2000000};
  int joined[THREADS] = {0};
  for (;;) {
    pl_heap_snapshot *s = heap_test_snapshot(0);
    check_snapshot(s);
    if (s->nsamples > max_live) max_live = s->nsamples;
    pl_heap_snapshot_free(s);
    snapshots++;
    int running = 0;
    for (int i = 0; i < THREADS; i++) {
      if (!joined[i]) joined[i] = pthread_tryjoin_np(w[i].thread, NULL) == 0;
      running |= !joined[i];
    }
    if (!running) break;
    nanosleep(&ts, NULL);
  }
  uint64_t ops = 0, bytes = 0;
  for (int i = 0; i < THREADS; i++) {
    ops += w[i].ops;
    bytes += w[i].bytes;
  }
  pl_heap_get_stats(&s1);
  double est = s1.alloc_bytes - s0.alloc_bytes;
  printf(
      "%u snapshots during %llu ops (%.1f GB); max live samples %zu; samples %llu; "
      "alloc bytes estimate %+.2f%%\n",
      snapshots, (unsigned long long)ops, bytes / 1e9, max_live,
      (unsigned long long)(s1.samples - s0.samples), 100 * (est / (double)bytes - 1));
  assert_true(snapshots >= 3);
  assert_true(est > 0.97 * (double)bytes && est < 1.03 * (double)bytes);
  assert_int_equal(s1.dropped_samples, 0);

  /* Everything the workers allocated is freed: none of their blocks left. */
  pl_heap_snapshot *s = heap_test_snapshot(0);
  check_snapshot(s);
  for (size_t i = 0; i < s->nsamples; i++)
    for (int k = 0; k < THREADS; k++) assert_int_not_equal(s->samples[i].tid, w[k].tid);
  /* Quiescent: the running counters agree with the snapshot. */
  assert_int_equal(s->stats.live_samples, s->nsamples);
  double diff = s->stats.inuse_bytes - s->inuse_bytes;
  assert_true(diff < 1.0 && diff > -1.0);
  pl_heap_snapshot_free(s);
}

static void test_fork_while_allocating(void **state) {
  static worker w[4];
  atomic_store(&stop, 0);
  for (int i = 0; i < 4; i++) {
    w[i].seed = 0xabcdefull * (i + 7);
    w[i].iterations = -1;
    assert_int_equal(pthread_create(&w[i].thread, NULL, work, &w[i]), 0);
  }
  struct timespec ts = {0, 1000000};
  for (int round = 0; round < 40; round++) {
    nanosleep(&ts, NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      /* Child: one thread; the tracker must be usable (no inherited lock). */
      void *p[64];
      for (int i = 0; i < 63; i++) p[i] = malloc(1000 + (size_t)i * 100);
      p[63] = malloc(1u << 20); /* sampled with probability 1 − e^(−256) */
      pl_heap_snapshot *cs = NULL;
      int ok = pl_heap_snapshot_take(&cs) == 0 && heap_test_find(cs, p[63]) != NULL;
      pl_heap_snapshot_free(cs);
      for (int i = 0; i < 64; i++) free(p[i]);
      cs = NULL;
      ok = ok && pl_heap_snapshot_take(&cs) == 0 && heap_test_find(cs, p[63]) == NULL;
      pl_heap_snapshot_free(cs);
      _exit(ok ? 0 : 1);
    }
    heap_test_wait_ok(pid);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 4; i++) pthread_join(w[i].thread, NULL);
  /* The parent carries on. */
  void *p = malloc(100000);
  pl_heap_snapshot *s = heap_test_snapshot(0);
  check_snapshot(s);
  pl_heap_snapshot_free(s);
  free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_threads_and_snapshots),
      cmocka_unit_test(test_fork_while_allocating),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
