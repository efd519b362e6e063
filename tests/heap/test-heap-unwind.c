/* The tracker's frame-pointer stack capture (stack_capture.c),
 * T = 1 (every allocation is a sample).
 *
 * `test-heap-unwind` (mode verify): every sample is captured both ways and
 * DWARF's stack is compared with the frame-pointer one; over the whole
 * allocation family, libc's internal allocations (strdup, asprintf, fopen),
 * a comparator called by qsort (a foreign frame between ours), stacks
 * deeper than PL_HEAP_MAX_FRAMES, the same site at many depths, threads, a
 * signal handler on an alternate stack, and a forked child, no stack may
 * differ, and most must have come from frame pointers.
 *
 * `test-heap-unwind nofp` (a child too): an allocation site built without
 * frame pointers misleads the walk; the first disagreement with DWARF
 * turns frame pointers off for the process, and the stacks are DWARF's.
 *
 * `test-heap-unwind fp` (re-run by the verify mode as a child, default
 * mode): the suffix cache makes DWARF rare, and the recorded stacks name
 * the right functions in the right order, with names-only symbolization
 * and then with lines.
 *
 * Under ASan (hooks) capture is DWARF only: the same paths run, and the
 * counters say so. */
#include "heap_test.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include "heap/heap_internal.h"

static const char *self_path;
/* Stores here keep the compiler from eliding a malloc/free pair. */
static void *volatile sink;
static void *keep(void *p) {
  sink = p;
  return p;
}
#define KEEP(p) keep(p)
static int fp_mode;   /* 1: the child run in the default (fp) mode */
static int nofp_mode; /* 1: the child whose allocation site misleads frame pointers */

static int setup(void **state) {
  (void)state;
  heap_test_watchdog(100);
  if (!fp_mode && !nofp_mode && setenv("PROFLAB_HEAP_UNWIND", "verify", 1) != 0) return -1;
  pl_heap_options o = {.sample_bytes = 1, .max_samples = 1u << 20};
  return pl_heap_init(&o);
}

static void stats(pl_heap_stats *st) { pl_heap_get_stats(st); }

/* ------------------------------------------------------------ allocation paths */

__attribute__((noinline)) static void family(void) {
  void *p = KEEP(malloc(100));
  void *q = KEEP(calloc(10, 30));
  p = KEEP(realloc(p, 5000)); /* a sampled block moves */
  void *r = KEEP(reallocarray(NULL, 8, 16));
  void *a = NULL;
  assert_int_equal(posix_memalign(&a, 64, 300), 0);
  void *b = KEEP(aligned_alloc(4096, 4096));
  void *c = KEEP(memalign(256, 1000));
  void *d = KEEP(valloc(100));
  assert_true(p && q && r && a && b && c && d);
  free(d);
  free(c);
  free(b);
  free(a);
  free(r);
  free(q);
  free(p);
}

__attribute__((noinline)) static void libc_internal(void) {
  char *s = strdup("a string libc copies with its own malloc call");
  char *t = NULL;
  assert_true(asprintf(&t, "%s %d", "formatted", 42) > 0);
  FILE *f = fopen("/proc/self/stat", "r");
  assert_non_null(f);
  char line[64];
  assert_non_null(fgets(line, sizeof(line), f));
  fclose(f);
  free(t);
  free(s);
}

static int cmp_allocating(const void *x, const void *y) {
  void *p = KEEP(malloc(24)); /* called by qsort: libc's frames between ours */
  free(p);
  int a = *(const int *)x, b = *(const int *)y;
  return (a > b) - (a < b);
}

__attribute__((noinline)) static void through_qsort(void) {
  int v[40];
  for (int i = 0; i < 40; i++) v[i] = (i * 17) % 40;
  qsort(v, 40, sizeof(v[0]), cmp_allocating);
  for (int i = 1; i < 40; i++) assert_true(v[i - 1] <= v[i]);
}

/* depth frames of recurse() above the allocation; returns it. */
__attribute__((noinline)) static void *recurse(unsigned depth) {
  void *p = depth ? recurse(depth - 1) : KEEP(malloc(32));
  __asm__ volatile("" ::: "memory"); /* not a tail call */
  return p;
}

__attribute__((noinline)) static void deep(void) {
  static const unsigned depths[] = {0, 1, 5, 20, 40, 59, 60, 61, 62, 63, 64, 100, 7, 5, 1};
  for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) free(recurse(depths[i]));
}

static volatile sig_atomic_t handler_allocated;

static void on_usr1(int sig) {
  (void)sig;
  /* raise() is synchronous here: not inside the allocator. */
  void *p = KEEP(malloc(64));
  handler_allocated = p != NULL;
  free(p);
}

__attribute__((noinline)) static void on_alt_stack(void) {
  stack_t ss = {.ss_size = 256 * 1024};
  ss.ss_sp = malloc(ss.ss_size);
  assert_non_null(ss.ss_sp);
  stack_t old;
  assert_int_equal(sigaltstack(&ss, &old), 0);
  struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_ONSTACK}, prev;
  sigemptyset(&sa.sa_mask);
  assert_int_equal(sigaction(SIGUSR1, &sa, &prev), 0);
  handler_allocated = 0;
  assert_int_equal(raise(SIGUSR1), 0);
  assert_true(handler_allocated);
  assert_int_equal(sigaction(SIGUSR1, &prev, NULL), 0);
  ss.ss_flags = SS_DISABLE;
  assert_int_equal(sigaltstack(&ss, NULL), 0);
  free(ss.ss_sp);
}

static void all_paths(void) {
  family();
  libc_internal();
  through_qsort();
  deep();
}

static void *thread_paths(void *arg) {
  (void)arg;
  for (int i = 0; i < 3; i++) all_paths();
  return NULL;
}

/* ------------------------------------------------------------ verify mode */

static void test_verify(void **state) {
  (void)state;
  pl_heap_stats before, after;
  stats(&before);
  for (int i = 0; i < 3; i++) all_paths();
  on_alt_stack();
  pthread_t th[4];
  for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, thread_paths, NULL), 0);
  for (int i = 0; i < 4; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
  /* A thread on a stack the program gave (in the heap, glibc's TCB at its
   * top): its frames are read up to the TCB. */
  size_t ssz = 2u << 20;
  void *ustack = malloc(ssz);
  assert_non_null(ustack);
  pthread_attr_t attr;
  assert_int_equal(pthread_attr_init(&attr), 0);
  assert_int_equal(pthread_attr_setstack(&attr, ustack, ssz), 0);
  assert_int_equal(pthread_create(&th[0], &attr, thread_paths, NULL), 0);
  assert_int_equal(pthread_join(th[0], NULL), 0);
  pthread_attr_destroy(&attr);
  free(ustack);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    all_paths();
    pl_heap_stats c;
    stats(&c);
    _exit(c.unwind_mismatch == 0 ? 0 : 3);
  }
  heap_test_wait_ok(pid);
  stats(&after);
  uint64_t samples = after.samples - before.samples;
  uint64_t fp = after.unwind_fp - before.unwind_fp;
  uint64_t dwarf = after.unwind_dwarf - before.unwind_dwarf;
  print_message("samples %llu: fp %llu, dwarf %llu, mismatches %llu\n", (unsigned long long)samples,
                (unsigned long long)fp, (unsigned long long)dwarf,
                (unsigned long long)after.unwind_mismatch);
  assert_true(samples > 1000);
  assert_int_equal(after.unwind_mismatch, 0);
  assert_int_equal(dwarf, samples); /* verify: DWARF for every sample */
  assert_int_equal(after.unwind_checked, after.unwind_fp);
  if (pl_heap_uses_sanitizer_hooks()) {
    assert_int_equal(fp, 0);
  } else {
    /* Everything but first visits (cache fills: ~20 % here, each depth of
     * qsort's recursion and each thread's stack is a new key) and the
     * signal stack. */
    assert_true(fp * 3 >= samples * 2);
  }
}

/* The default mode, in a child with a clean environment for the variable. */
static void run_child(const char *mode) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    unsetenv("PROFLAB_HEAP_UNWIND");
    execl("/proc/self/exe", self_path, mode, (char *)NULL);
    _exit(127);
  }
  heap_test_wait_ok(pid);
}

static void test_fp_child(void **state) {
  (void)state;
  run_child("fp");
}

static void test_nofp_child(void **state) {
  (void)state;
  run_child("nofp");
}

/* ------------------------------------------------------------ fp mode (child) */

__attribute__((noinline)) static void *site_outer(unsigned depth);

__attribute__((noinline)) static void *site_inner(void) {
  void *p = KEEP(malloc(4000));
  __asm__ volatile("" ::: "memory");
  return p;
}

__attribute__((noinline)) static void *site_outer(unsigned depth) {
  void *p = depth ? site_outer(depth - 1) : site_inner();
  __asm__ volatile("" ::: "memory");
  return p;
}

/* Deep in the main thread's stack, below where it reached at the thread's
 * first sample (the [stack] mapping has grown since). */
__attribute__((noinline)) static unsigned grow_stack(unsigned depth, unsigned allocs) {
  volatile char pad[4096];
  pad[0] = (char)depth;
  if (depth) return grow_stack(depth - 1, allocs) + pad[0];
  for (unsigned i = 0; i < allocs; i++) free(KEEP(malloc(64)));
  return pad[0];
}

/* Samples taken and DWARF runs while fn runs. */
static void count_unwinds(const char *what, void (*fn)(void), uint64_t *samples, uint64_t *dwarf) {
  pl_heap_stats before, after;
  stats(&before);
  fn();
  stats(&after);
  *samples = after.samples - before.samples;
  *dwarf = after.unwind_dwarf - before.unwind_dwarf;
  print_message("%s: samples %llu, dwarf %llu\n", what, (unsigned long long)*samples,
                (unsigned long long)*dwarf);
  assert_int_equal(after.unwind_fp + after.unwind_dwarf - after.unwind_checked, after.samples);
}

static void deep_main_stack(void) { grow_stack(512, 1000); /* 2 MiB down */ }

static void test_fp_deep_main_stack(void **state) {
  (void)state;
  if (pl_heap_uses_sanitizer_hooks()) skip();
  uint64_t samples, dwarf;
  count_unwinds("deep main stack", deep_main_stack, &samples, &dwarf);
  assert_true(samples >= 1000);
  assert_true(dwarf < 10); /* frame pointers there too: the first visit (and checks) only */
}

static void many_paths(void) {
  for (int i = 0; i < 10000; i++) free(site_inner());
  for (int i = 0; i < 3; i++) all_paths();
}

static void test_fp_cached(void **state) {
  (void)state;
  if (pl_heap_uses_sanitizer_hooks()) skip();
  uint64_t samples, dwarf;
  count_unwinds("fp mode", many_paths, &samples, &dwarf);
  assert_true(samples >= 10000);
  assert_true(dwarf * 50 < samples); /* the suffix cache: DWARF on first visits only */
}

/* The stacks name the right functions in order; names-only symbolization
 * (what a .heapsnapshot needs) has no lines, and a full one after it does. */
static void test_fp_names(void **state) {
  (void)state;
  void *p = site_outer(3);
  void *q = site_outer(3); /* the second one from frame pointers and the cache */
  pl_heap_snapshot *s = heap_test_snapshot(0);
  for (int full = 0; full < 2; full++) {
    assert_int_equal(full ? pl_heap_snapshot_symbolize(s) : pl_heap_snapshot_symbolize_names(s), 0);
    for (int k = 0; k < 2; k++) {
      const pl_heap_sample *x = heap_test_find(s, k ? q : p);
      assert_non_null(x);
      const pl_heap_stack *st = &s->stacks[x->stack];
      assert_true(st->depth >= 7);
      const char *want[] = {"site_inner", "site_outer", "site_outer",
                            "site_outer", "site_outer", "test_fp_names"};
      for (unsigned d = 0; d < 6; d++) {
        const pl_frame *f = &s->frames[st->frames[d]];
        assert_string_equal(f->function, want[d]);
        if (full) {
          assert_non_null(strstr(f->file, "test-heap-unwind.c"));
          assert_true(f->line > 0);
        } else {
          assert_string_equal(f->file, "");
          assert_int_equal(f->line, 0);
        }
      }
      assert_true(heap_test_stack_has(s, x->stack, "main"));
    }
  }
  /* names only again: the lines stay */
  assert_int_equal(pl_heap_snapshot_symbolize_names(s), 0);
  const pl_heap_sample *x = heap_test_find(s, p);
  assert_true(s->frames[s->stacks[x->stack].frames[0]].line > 0);
  pl_heap_snapshot_free(s);
  free(q);
  free(p);
}

/* ------------------------------------------------------------ nofp mode (child) */

/* Code built without frame pointers, as a program linking the tracker may
 * be: rbp holds something else across the call to malloc (here a real but
 * older frame record, so the walk reads a plausible chain that skips
 * frames). DWARF (the CFI says where rbp was saved) is right. */
__attribute__((noinline, optimize("omit-frame-pointer"))) static void *nofp_site(
    uintptr_t bogus_fp) {
  register uintptr_t bogus __asm__("rbp") = bogus_fp;
  __asm__ volatile("" : "+r"(bogus));
  void *p = KEEP(malloc(48));
  __asm__ volatile("" ::"r"(bogus));
  return p;
}

__attribute__((noinline)) static void *nofp_middle(uintptr_t outer_fp) {
  void *p = nofp_site(outer_fp);
  __asm__ volatile("" ::: "memory");
  return p;
}

__attribute__((noinline)) static void *nofp_outer(void) {
  void *p = nofp_middle((uintptr_t)__builtin_frame_address(0));
  __asm__ volatile("" ::: "memory");
  return p;
}

static void test_nofp_falls_back(void **state) {
  (void)state;
  if (pl_heap_uses_sanitizer_hooks()) skip();
  pl_heap_stats st;
  stats(&st);
  assert_int_equal(st.unwind_mode, PL_HEAP_UNWIND_FP);
  /* Make the worst case: the foreign frame the misread chain ends at (the
   * test runner calling this function) is cached already, by a correct
   * stack, so the walk alone never meets DWARF. */
  free(KEEP(malloc(16)));
  for (int i = 0; i < 600; i++) free(nofp_outer());
  stats(&st);
  assert_true(st.unwind_mismatch >= 1);
  assert_int_equal(st.unwind_mode, PL_HEAP_UNWIND_DWARF);
  assert_true(st.unwind_fell_back);
  /* From then on the stacks are DWARF's: every frame, none skipped. */
  void *p = nofp_outer();
  void *q = nofp_outer();
  pl_heap_snapshot *s = heap_test_snapshot(1);
  for (int k = 0; k < 2; k++) {
    const pl_heap_sample *x = heap_test_find(s, k ? q : p);
    assert_non_null(x);
    const pl_heap_stack *t = &s->stacks[x->stack];
    const char *want[] = {"nofp_site", "nofp_middle", "nofp_outer", "test_nofp_falls_back"};
    assert_true(t->depth >= 4);
    for (unsigned d = 0; d < 4; d++) assert_string_equal(s->frames[t->frames[d]].function, want[d]);
  }
  pl_heap_snapshot_free(s);
  free(q);
  free(p);
}

int main(int argc, char **argv) {
  self_path = argv[0];
  fp_mode = argc > 1 && strcmp(argv[1], "fp") == 0;
  nofp_mode = argc > 1 && strcmp(argv[1], "nofp") == 0;
  const struct CMUnitTest verify_tests[] = {
      cmocka_unit_test(test_verify),
      cmocka_unit_test(test_fp_child),
      cmocka_unit_test(test_nofp_child),
  };
  const struct CMUnitTest nofp_tests[] = {
      cmocka_unit_test(test_nofp_falls_back),
  };
  const struct CMUnitTest fp_tests[] = {
      cmocka_unit_test(test_fp_cached),
      cmocka_unit_test(test_fp_names),
      cmocka_unit_test(test_fp_deep_main_stack),
  };
  if (fp_mode) return cmocka_run_group_tests_name("heap-unwind-fp", fp_tests, setup, NULL);
  if (nofp_mode) return cmocka_run_group_tests_name("heap-unwind-nofp", nofp_tests, setup, NULL);
  return cmocka_run_group_tests_name("heap-unwind", verify_tests, setup, NULL);
}
