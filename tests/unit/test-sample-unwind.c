/* The sampler's stack capture (src/sample/unwind.c): the frame-pointer walk
 * with its suffix cache must give the same stacks as libgcc's DWARF
 * unwinder, in our code, through libc (a qsort comparator, a leaf inside
 * memset) and on threads started after the stack bounds were recorded; a
 * corrupted or odd frame pointer must neither crash nor give wrong frames.
 *
 * A CLOCK_MONOTONIC timer signals the thread while it spins at the bottom
 * of a deep stack; the handler captures the stack both ways and compares. */
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "sample/unwind.h"

#define MAXF 128
#define NCORRUPT 13 /* frame pointers tried per sample in corrupt() */

/* what the handler does and what it found (handler writes, test reads) */
enum { H_COMPARE, H_CORRUPT };
static volatile sig_atomic_t h_mode;
static _Atomic unsigned h_samples, h_equal, h_fp, h_cached, h_dwarf_only, h_with_caller;
static _Atomic unsigned h_corrupt_runs, h_corrupt_bad, h_corrupt_which;
static uintptr_t h_caller_ret; /* run_case's return address from deep(): in every stack */
static uintptr_t h_top_fp;     /* run_case's frame */
static uintptr_t h_bad_a[MAXF], h_bad_b[MAXF];
static unsigned h_bad_na, h_bad_nb;
static _Atomic int h_bad_saved;

static volatile uint64_t sink;

static int has_caller(const uintptr_t *pcs, unsigned n) {
  for (unsigned i = 1; i < n; i++)
    if (pcs[i] == h_caller_ret) return 1;
  return 0;
}

static void compare(const ucontext_t *uc) {
  uintptr_t a[MAXF], b[MAXF];
  unsigned how;
  unsigned na = pl__unwind_capture(uc, 0, a, MAXF, &how);
  unsigned nb = pl__unwind_dwarf(b, MAXF);
  atomic_fetch_add(&h_samples, 1);
  if (na == nb && memcmp(a, b, na * sizeof(*a)) == 0)
    atomic_fetch_add(&h_equal, 1);
  else if (!atomic_exchange(&h_bad_saved, 1)) {
    memcpy(h_bad_a, a, sizeof(a));
    memcpy(h_bad_b, b, sizeof(b));
    h_bad_na = na;
    h_bad_nb = nb;
  }
  if (how & PL__UNWIND_FP) atomic_fetch_add(&h_fp, 1);
  if (how & PL__UNWIND_CACHED) atomic_fetch_add(&h_cached, 1);
  if (!(how & PL__UNWIND_FP)) atomic_fetch_add(&h_dwarf_only, 1);
  if (has_caller(a, na)) atomic_fetch_add(&h_with_caller, 1);
}

/* Frame pointers that must not be followed: 0, odd, outside the stack,
 * below the stack pointer, a loop outside the stack; none may crash and
 * the stack must be DWARF's. And one that points at a real frame further
 * up (run_case's): such a chain is valid, so frames are skipped (the walk
 * cannot know), but every frame returned must be a true one, in order. */
static uintptr_t fake[2] __attribute__((aligned(16)));

static int subsequence(const uintptr_t *a, unsigned na, const uintptr_t *b, unsigned nb) {
  unsigned j = 0;
  for (unsigned i = 0; i < na; i++) {
    while (j < nb && b[j] != a[i]) j++;
    if (j == nb) return 0;
    j++;
  }
  return na > 0 && a[0] == b[0];
}

static void corrupt(const ucontext_t *uc) {
  uintptr_t ref[MAXF], got[MAXF];
  unsigned nref = pl__unwind_dwarf(ref, MAXF);
  uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
  fake[0] = (uintptr_t)&fake[0];
  fake[1] = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
  const uintptr_t rbps[NCORRUPT] = {
      0,
      1,
      7,
      8,
      0xdeadbeef000,
      (uintptr_t)-16,
      sp - 4096,
      sp + 3,
      sp + (64u << 20),
      (uintptr_t)&fake[0],
      (uintptr_t)&h_samples,
      h_top_fp + 4,
      h_top_fp,
  };
  const size_t nrbps = sizeof(rbps) / sizeof(rbps[0]);
  for (size_t i = 0; i < nrbps; i++) {
    ucontext_t c = *uc;
    c.uc_mcontext.gregs[REG_RBP] = (greg_t)rbps[i];
    unsigned how;
    unsigned n = pl__unwind_capture(&c, 0, got, MAXF, &how);
    atomic_fetch_add(&h_corrupt_runs, 1);
    int ok = i == nrbps - 1 ? subsequence(got, n, ref, nref)
                            : n == nref && memcmp(got, ref, n * sizeof(*got)) == 0;
    if (!ok) {
      atomic_fetch_add(&h_corrupt_bad, 1);
      atomic_fetch_or(&h_corrupt_which, 1u << i);
      if (!atomic_exchange(&h_bad_saved, 1)) {
        memcpy(h_bad_a, got, sizeof(got));
        memcpy(h_bad_b, ref, sizeof(ref));
        h_bad_na = n;
        h_bad_nb = nref;
      }
    }
  }
}

static void on_signal(int sig, siginfo_t *si, void *ucv) {
  (void)sig;
  (void)si;
  int saved = errno;
  if (h_mode == H_COMPARE)
    compare(ucv);
  else
    corrupt(ucv);
  errno = saved;
}

static void reset_counters(void) {
  atomic_store(&h_samples, 0);
  atomic_store(&h_equal, 0);
  atomic_store(&h_fp, 0);
  atomic_store(&h_cached, 0);
  atomic_store(&h_dwarf_only, 0);
  atomic_store(&h_with_caller, 0);
  atomic_store(&h_corrupt_runs, 0);
  atomic_store(&h_corrupt_bad, 0);
  atomic_store(&h_bad_saved, 0);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- workloads: leaf in our code, in a comparator below qsort, in memset */

enum { W_SPIN, W_QSORT, W_MEMSET, W_NOFP };
static int workload;
static uint64_t spin_until, spin_deadline;
static unsigned spin_target;      /* samples wanted (a loaded machine runs us less) */
static unsigned spin_target_next; /* the next run_case's target, if not 0 */

static int spin_done(void) {
  uint64_t t = now_ns();
  if (t < spin_until) return 0;
  unsigned got =
      h_mode == H_COMPARE ? atomic_load(&h_samples) : atomic_load(&h_corrupt_runs) / NCORRUPT;
  return got >= spin_target || t >= spin_deadline;
}

__attribute__((noinline)) static void spin_leaf(void) {
  uint64_t x = 1;
  while (!spin_done())
    for (int i = 0; i < 1000; i++) x = x * 6364136223846793005ull + 1;
  sink = x;
}

__attribute__((noinline)) static int cmp_slow(const void *a, const void *b) {
  uint64_t x = *(const uint32_t *)a;
  for (int i = 0; i < 200; i++) x = x * 6364136223846793005ull + 1;
  sink = x;
  uint32_t p = *(const uint32_t *)a, q = *(const uint32_t *)b;
  return p < q ? -1 : p > q;
}

__attribute__((noinline)) static void sort_loop(void) {
  static uint32_t v[4096];
  while (!spin_done()) {
    uint32_t r = 2463534242u;
    for (size_t i = 0; i < 4096; i++) {
      r ^= r << 13;
      r ^= r >> 17;
      r ^= r << 5;
      v[i] = r;
    }
    qsort(v, 4096, sizeof(v[0]), cmp_slow);
  }
}

__attribute__((noinline)) static void memset_loop(void) {
  static char buf[1 << 20];
  while (!spin_done()) {
    memset(buf, (int)(sink & 0xff), sizeof(buf));
    __asm__ volatile("" ::"r"(buf) : "memory");
    sink += (unsigned char)buf[4096];
  }
}

/* Code built without frame pointers, as a program linking libproflab may
 * be: rbp holds an older but real frame record (run_case's) while it calls
 * the spinning leaf, so the walk reads a plausible chain that skips every
 * frame between. DWARF (the CFI says where rbp was saved) is right. */
__attribute__((noinline, optimize("omit-frame-pointer"))) static void nofp_call(
    uintptr_t bogus_fp) {
  register uintptr_t bogus __asm__("rbp") = bogus_fp;
  __asm__ volatile("" : "+r"(bogus));
  spin_leaf();
  __asm__ volatile("" ::"r"(bogus));
}

__attribute__((noinline)) static void deep(int d, int top) {
  if (d == top) h_caller_ret = (uintptr_t)__builtin_return_address(0);
  if (d > 0) {
    deep(d - 1, top);
    __asm__ volatile(""); /* not a tail call: every level keeps a frame */
    return;
  }
  if (workload == W_SPIN)
    spin_leaf();
  else if (workload == W_NOFP)
    nofp_call(h_top_fp);
  else if (workload == W_QSORT)
    sort_loop();
  else
    memset_loop();
}

/* The caller every stack must keep: run_case, which calls deep(). */
__attribute__((noinline)) static void run_case(int w, uint64_t ms, int depth) {
  workload = w;
  timer_t t;
  struct sigevent sev;
  memset(&sev, 0, sizeof(sev));
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = SIGPROF;
  sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
  assert_int_equal(timer_create(CLOCK_MONOTONIC, &sev, &t), 0);
  struct itimerspec its = {{0, 500000}, {0, 500000}}; /* 2 kHz */
  spin_until = now_ns() + ms * 1000000u;
  spin_deadline = spin_until + 10000000000u;
  spin_target = spin_target_next ? spin_target_next : 100;
  spin_target_next = 0;
  assert_int_equal(timer_settime(t, 0, &its, NULL), 0);
  h_top_fp = (uintptr_t)__builtin_frame_address(0);
  deep(depth, depth);
  assert_int_equal(timer_delete(t), 0);
  __asm__ volatile("");
}

static void install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  assert_int_equal(sigaction(SIGPROF, &sa, NULL), 0);
  assert_int_equal(pl__unwind_init(), 0);
}

static void report(const char *what) {
  unsigned n = atomic_load(&h_samples);
  printf(
      "# %s: %u samples, %u equal to DWARF, %u by frame pointers (%u with cached "
      "callers), %u DWARF only, %u with the caller\n",
      what, n, atomic_load(&h_equal), atomic_load(&h_fp), atomic_load(&h_cached),
      atomic_load(&h_dwarf_only), atomic_load(&h_with_caller));
  if (atomic_load(&h_bad_saved)) {
    printf("# first difference: fast %u frames, DWARF %u frames\n", h_bad_na, h_bad_nb);
    for (unsigned i = 0; i < h_bad_na || i < h_bad_nb; i++)
      printf("#   %2u %#18lx %#18lx\n", i, i < h_bad_na ? (unsigned long)h_bad_a[i] : 0ul,
             i < h_bad_nb ? (unsigned long)h_bad_b[i] : 0ul);
  }
}

static void check_case(int w, int depth, const char *what) {
  reset_counters();
  h_mode = H_COMPARE;
  run_case(w, 300, depth);
  report(what);
  unsigned n = atomic_load(&h_samples);
  assert_true(n >= 20);
  /* Exact agreement but for the documented one-frame loss in a function's
   * frame set-up, which a timer rarely hits. */
  assert_true(atomic_load(&h_equal) >= n - n / 50);
  assert_true(atomic_load(&h_with_caller) >= n - n / 50);
}

static void test_deep_stack_in_our_code(void **state) {
  (void)state;
  install();
  pl__unwind_prepare();
  check_case(W_SPIN, 60, "deep, leaf in our code");
  /* the fast path ran and found the callers above main in the cache */
  assert_true(atomic_load(&h_fp) >= atomic_load(&h_samples) - 2);
  assert_true(atomic_load(&h_cached) >= atomic_load(&h_samples) / 2);
}

static void test_qsort_comparator(void **state) {
  (void)state;
  install();
  pl__unwind_prepare();
  check_case(W_QSORT, 20, "comparator below libc's qsort");
  assert_true(atomic_load(&h_fp) > 0);
}

static void test_leaf_in_libc(void **state) {
  (void)state;
  install();
  pl__unwind_prepare();
  check_case(W_MEMSET, 20, "leaf in libc's memset");
}

/* A thread with a stack that glibc cannot take from its cache of freed
 * stacks (larger than any before): a mapping made after prepare. */
static void *thread_main(void *arg) {
  int prepare = *(int *)arg;
  if (prepare) pl__unwind_prepare(); /* this thread's stack is recorded */
  check_case(W_SPIN, 30, prepare ? "thread, bounds recorded" : "thread started after prepare");
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  install();
  pl__unwind_prepare();
  pthread_t t;
  int prepare = 1;
  assert_int_equal(pthread_create(&t, NULL, thread_main, &prepare), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_true(atomic_load(&h_fp) > 0);
  pl__unwind_prepare(); /* recorded before the thread exists */
  prepare = 0;
  pthread_attr_t attr;
  assert_int_equal(pthread_attr_init(&attr), 0);
  assert_int_equal(pthread_attr_setstacksize(&attr, 64u << 20), 0);
  assert_int_equal(pthread_create(&t, &attr, thread_main, &prepare), 0);
  pthread_attr_destroy(&attr);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_int_equal(atomic_load(&h_fp), 0);
}

static void test_corrupt_frame_pointer(void **state) {
  (void)state;
  install();
  pl__unwind_prepare();
  /* the frame pointers are corrupted on purpose: keep following them */
  pl__unwind_test_no_fallback(1);
  reset_counters();
  h_mode = H_CORRUPT;
  run_case(W_SPIN, 100, 10);
  printf("# corrupted frame pointers: %u captures, %u wrong (cases %#x)\n",
         atomic_load(&h_corrupt_runs), atomic_load(&h_corrupt_bad), atomic_load(&h_corrupt_which));
  if (atomic_load(&h_corrupt_bad)) report("corrupted");
  assert_true(atomic_load(&h_corrupt_runs) >= NCORRUPT * 20);
  assert_int_equal(atomic_load(&h_corrupt_bad), 0);
  pl__unwind_stats st;
  pl__unwind_get_stats(&st);
  assert_int_equal(st.fell_back, 0);
  pl__unwind_test_no_fallback(0);
  h_mode = H_COMPARE;
}

/* A chain misread through code without frame pointers that ends at a
 * foreign frame another path cached (the worst case: no cache miss ever
 * compares it with DWARF): the periodic full check finds it and frame
 * pointers are given up for the profile; from then on every stack is
 * DWARF's. */
static void test_misleading_frame_pointer_falls_back(void **state) {
  (void)state;
  install();
  pl__unwind_prepare();
  check_case(W_SPIN, 10, "warm-up"); /* learns spin_leaf's rule, caches the callers */
  pl__unwind_stats st;
  pl__unwind_get_stats(&st);
  assert_int_equal(st.fell_back, 0);
  reset_counters();
  h_mode = H_COMPARE;
  spin_target_next = 800; /* enough for the checks to decide, however loaded the machine */
  run_case(W_NOFP, 300, 10);
  report("misleading rbp");
  pl__unwind_get_stats(&st);
  printf("# checks: %llu compared with DWARF, %llu disagreed, fell back %d\n",
         (unsigned long long)st.verified, (unsigned long long)st.mismatched, st.fell_back);
  unsigned n = atomic_load(&h_samples);
  assert_true(n >= 400);
  assert_int_equal(st.fell_back, 1);
  assert_true(st.mismatched >= 3);
  /* at most the first CHECK_EVERY + 2 × 16 (+ slack) were misread */
  assert_true(atomic_load(&h_equal) + 320 >= n);
  pl__unwind_prepare(); /* a new profile trusts frame pointers again */
  pl__unwind_get_stats(&st);
  assert_int_equal(st.fell_back, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deep_stack_in_our_code),
      cmocka_unit_test(test_qsort_comparator),
      cmocka_unit_test(test_leaf_in_libc),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_corrupt_frame_pointer),
      cmocka_unit_test(test_misleading_frame_pointer_falls_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
