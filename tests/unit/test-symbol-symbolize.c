/* The process-wide symbolizer: names and lines of our own code, kept
 * between users, dropped when idle. */
#include "test.h"

#include <stdlib.h>

#include "common/arena.h"
#include "symbol/symbolizer.h"

__attribute__((noinline)) static int symbolize_me(int x) { return x * 3 + 1; }

static void lookup(pl_frame *f, pl__arena *a) {
  pl__symbolizer *s;
  assert_int_equal(pl__symbolizer_new(&s), 0);
  assert_int_equal(pl__symbolize(s, (uintptr_t)&symbolize_me, a, f), 0);
  pl__symbolizer_free(s);
}

static void test_names_our_code(void **state) {
  (void)state;
  pl__arena a;
  pl__arena_init(&a);
  pl_frame f;
  lookup(&f, &a);
  assert_string_equal(f.function, "symbolize_me");
  assert_non_null(strstr(f.file, "tests/unit/test-symbol-symbolize.c"));
  assert_true(f.line > 0);
  pl__arena_free(&a);
  assert_int_equal(symbolize_me(1), 4);
}

static void test_kept_then_dropped_when_idle(void **state) {
  (void)state;
  pl__arena a;
  pl__arena_init(&a);
  pl_frame f;
  lookup(&f, &a);
  assert_int_equal(pl__symbolizer_drop_idle(3600ull * 1000000000ull), 0); /* used just now: kept */
  assert_int_equal(pl__symbolizer_drop_idle(0), 1); /* idle long enough: dropped */
  assert_int_equal(pl__symbolizer_drop_idle(0), 0); /* nothing left to drop */
  lookup(&f, &a);                                   /* rebuilt on demand */
  assert_string_equal(f.function, "symbolize_me");
  assert_int_equal(pl__symbolizer_drop_idle(0), 1);
  pl__arena_free(&a);
}

/* Answers from the session's cache equal libdwfl's own, and are the caller's
 * to keep: names only, then lines, then names only again. */
static void test_cached_answers(void **state) {
  (void)state;
  assert_int_equal(pl__symbolizer_drop_idle(0) >= 0, 1); /* a fresh session, empty cache */
  uintptr_t pc = (uintptr_t)&symbolize_me;
  pl__symbolizer *s;
  pl__arena a;
  pl__arena_init(&a);
  pl_frame n1, l1, l2, n2;
  assert_int_equal(pl__symbolizer_new(&s), 0);
  assert_int_equal(pl__symbolize_flags(s, pc, &a, &n1, PL__SYMBOLIZE_NAMES), 0);
  assert_int_equal(pl__symbolize(s, pc, &a, &l1), 0); /* misses: needs lines */
  assert_int_equal(pl__symbolize(s, pc, &a, &l2), 0); /* from the cache */
  assert_int_equal(pl__symbolize_flags(s, pc, &a, &n2, PL__SYMBOLIZE_NAMES), 0);
  pl__symbolizer_free(s);
  assert_string_equal(n1.function, "symbolize_me");
  assert_string_equal(n1.file, "");
  assert_int_equal(n1.line, 0);
  assert_string_equal(l2.function, l1.function);
  assert_string_equal(l2.file, l1.file);
  assert_string_equal(l2.module, l1.module);
  assert_int_equal(l2.line, l1.line);
  assert_int_equal(l2.function_line, l1.function_line);
  assert_true(l2.function != l1.function); /* a copy in the caller's arena */
  assert_string_equal(n2.function, "symbolize_me");
  assert_string_equal(n2.file, ""); /* names only, as asked */
  assert_int_equal(n2.line, 0);
  assert_int_equal(n2.function_line, 0);
  /* the cache goes with the session: answers stay valid after it */
  assert_int_equal(pl__symbolizer_drop_idle(0), 1);
  assert_string_equal(l2.function, "symbolize_me");
  pl__arena_free(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names_our_code),
      cmocka_unit_test(test_kept_then_dropped_when_idle),
      cmocka_unit_test(test_cached_answers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
