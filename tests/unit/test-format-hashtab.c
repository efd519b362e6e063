/* Interning tables of the format writers (src/format/hashtab.h). */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>

#include "format/hashtab.h"

enum { N = 50000 };

static void test_strtab(void **state) {
  (void)state;
  char(*strs)[16] = malloc(N * sizeof(*strs));
  assert_non_null(strs);
  pl__strtab t;
  pl__strtab_init(&t);
  assert_int_equal(pl__strtab_find(&t, "x"), -1);
  assert_int_equal(pl__strtab_intern(&t, ""), 0);
  assert_int_equal(pl__strtab_intern(&t, NULL), 0); /* NULL reads as "" */
  for (int i = 0; i < N; i++) {
    snprintf(strs[i], sizeof(strs[i]), "s%d", i);
    assert_int_equal(pl__strtab_intern(&t, strs[i]), i + 1);
  }
  assert_int_equal(t.n, N + 1);
  /* Equal content, other pointer: same id. */
  for (int i = 0; i < N; i += 7) {
    char copy[16];
    snprintf(copy, sizeof(copy), "s%d", i);
    assert_int_equal(pl__strtab_intern(&t, copy), i + 1);
    assert_int_equal(pl__strtab_find(&t, copy), i + 1);
  }
  assert_int_equal(pl__strtab_find(&t, "s-1"), -1);
  assert_string_equal(t.strs[0], "");
  assert_string_equal(t.strs[1234 + 1], "s1234");
  assert_true(t.nslots >= 2 * t.n);
  pl__strtab_free(&t);
  free(strs);
}

static void test_keytab(void **state) {
  (void)state;
  pl__keytab t;
  pl__keytab_init(&t);
  assert_int_equal(pl__keytab_find(&t, 1, 2, 3), -1);
  int added;
  for (uint32_t i = 0; i < N; i++) {
    assert_int_equal(pl__keytab_intern(&t, i / 100, i % 100, 7, &added), i);
    assert_true(added);
  }
  for (uint32_t i = 0; i < N; i += 3) {
    assert_int_equal(pl__keytab_intern(&t, i / 100, i % 100, 7, &added), i);
    assert_false(added);
  }
  /* Each component counts. */
  assert_int_equal(pl__keytab_find(&t, 0, 5, 8), -1);
  assert_int_equal(pl__keytab_find(&t, 5, 0, 7), 500);
  assert_int_equal(pl__keytab_intern(&t, UINT32_MAX, UINT32_MAX, UINT32_MAX, NULL), N);
  assert_int_equal(t.keys[N].a, UINT32_MAX);
  pl__keytab_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strtab),
      cmocka_unit_test(test_keytab),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
