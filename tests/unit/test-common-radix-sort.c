/* The stable radix sort of (key, index) pairs: the order qsort gives by
 * (key, index), for keys of every width; and of records by a field, above
 * a bias, the same with either path (radix or qsort). */
#include "test.h"

#include <stddef.h>
#include <stdlib.h>

#include "common/radix_sort.h"

static int by_key_ix(const void *a, const void *b) {
  const pl__key_ix *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return x->ix < y->ix ? -1 : x->ix > y->ix;
}

/* n pairs with keys masked to `bits` bits (many equal when few bits). */
static void check(size_t n, unsigned bits, unsigned seed) {
  pl__key_ix *v = malloc((n + 1) * sizeof(*v)), *tmp = malloc((n + 1) * sizeof(*tmp));
  pl__key_ix *want = malloc((n + 1) * sizeof(*want));
  assert_non_null(v);
  assert_non_null(tmp);
  assert_non_null(want);
  srand(seed);
  uint64_t mask = bits >= 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1, max = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t k = ((uint64_t)rand() << 42) ^ ((uint64_t)rand() << 21) ^ (uint64_t)rand();
    v[i].key = k & mask;
    v[i].ix = i;
    if (v[i].key > max) max = v[i].key;
    want[i] = v[i];
  }
  qsort(want, n, sizeof(*want), by_key_ix);
  const pl__key_ix *got = pl__radix_sort(v, tmp, n, max);
  assert_true(got == v || got == tmp);
  for (size_t i = 0; i < n; i++) {
    assert_true(got[i].key == want[i].key);
    assert_true(got[i].ix == want[i].ix); /* stable: equal keys keep their order */
  }
  free(v);
  free(tmp);
  free(want);
}

static void test_matches_qsort(void **state) {
  (void)state;
  check(0, 20, 1);
  check(1, 20, 2);
  check(5000, 1, 3);   /* two keys: stability is all that orders them */
  check(5000, 11, 4);  /* one pass */
  check(5000, 12, 5);  /* two passes */
  check(20000, 33, 6); /* addresses in a module */
  check(20000, 64, 7); /* every pass */
}

static void test_all_zero_keys_stay_put(void **state) {
  (void)state;
  pl__key_ix v[3] = {{0, 2}, {0, 0}, {0, 1}}, tmp[3];
  const pl__key_ix *got = pl__radix_sort(v, tmp, 3, 0);
  assert_ptr_equal(got, v); /* no pass at all */
  assert_int_equal(got[0].ix, 2);
  assert_int_equal(got[2].ix, 1);
}

/* A record as the heap's samples and the symbolizer's entries are: the
 * key among other fields, ties broken by where the record stood. */
typedef struct rec {
  uint32_t before;
  uint64_t key;
  uint32_t pos;
} rec;

static int by_key_pos(const void *a, const void *b) {
  const rec *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static void check_records(size_t n, uint64_t bias, unsigned seed) {
  rec *v = malloc((n + 1) * sizeof(*v)), *want = malloc((n + 1) * sizeof(*want));
  assert_non_null(v);
  assert_non_null(want);
  srand(seed);
  for (size_t i = 0; i < n; i++) {
    v[i].before = (uint32_t)rand();
    v[i].key = bias + (uint64_t)(rand() % 512); /* many ties */
    v[i].pos = (uint32_t)i;
    want[i] = v[i];
  }
  qsort(want, n, sizeof(*want), by_key_pos);
  pl__radix_sort_records(v, n, sizeof(*v), offsetof(rec, key), bias, by_key_pos);
  for (size_t i = 0; i < n; i++) {
    assert_true(v[i].key == want[i].key);
    assert_int_equal(v[i].pos, want[i].pos);
    assert_int_equal(v[i].before, want[i].before); /* the whole record moved */
  }
  free(v);
  free(want);
}

static void test_records(void **state) {
  (void)state;
  check_records(0, 0, 8);
  check_records(40, 0, 9);                            /* qsort: too few to pay */
  check_records(10000, 0, 10);                        /* radix */
  check_records(10000, UINT64_C(0x7f0000000000), 11); /* module addresses above its start */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matches_qsort),
      cmocka_unit_test(test_all_zero_keys_stay_put),
      cmocka_unit_test(test_records),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
