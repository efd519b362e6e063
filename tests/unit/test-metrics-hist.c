/* Log-linear histogram: bucket layout and percentiles. */
#include "test.h"

#include "metrics/hist.h"

static void test_index_roundtrip(void **state) {
  (void)state;
  /* every value lands in a bucket whose lower bound is <= it and whose next
   * bucket's lower bound is > it; relative width <= 1/32 */
  uint64_t vals[] = {0, 1, 31, 32, 63, 64, 65, 100, 1000, 4095, 4096, 123456789, 1ull << 40};
  for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
    unsigned idx = pl__hist_index(vals[i]);
    uint64_t lo = pl__hist_lower(idx), hi = pl__hist_lower(idx + 1);
    assert_true(lo <= vals[i]);
    assert_true(hi > vals[i]);
    if (vals[i] >= 64) assert_true((double)(hi - lo) / (double)lo <= 1.0 / 32 + 1e-9);
  }
  /* indices are contiguous and increasing */
  for (unsigned idx = 0; idx + 1 < PL__HIST_BUCKETS; idx++)
    assert_true(pl__hist_lower(idx) < pl__hist_lower(idx + 1));
  for (uint64_t v = 0; v < 5000; v++)
    assert_int_equal(pl__hist_index(pl__hist_lower(pl__hist_index(v))), pl__hist_index(v));
}

static void test_percentiles(void **state) {
  (void)state;
  pl__hist h;
  pl__hist_init(&h);
  for (uint64_t v = 1; v <= 10000; v++) pl__hist_record(&h, v);
  assert_int_equal(h.count, 10000);
  assert_int_equal(h.min, 1);
  assert_int_equal(h.max, 10000);
  double p50 = (double)pl__hist_percentile(&h, 50);
  double p99 = (double)pl__hist_percentile(&h, 99);
  assert_true(p50 > 5000 * 0.97 && p50 < 5000 * 1.03);
  assert_true(p99 > 9900 * 0.97 && p99 < 9900 * 1.03);
  assert_int_equal(pl__hist_percentile(&h, 100), 10000);
  assert_true(pl__hist_mean(&h) > 5000.4 && pl__hist_mean(&h) < 5000.6);
}

static void test_single_outlier(void **state) {
  (void)state;
  pl__hist h;
  pl__hist_init(&h);
  for (int i = 0; i < 99; i++) pl__hist_record(&h, 10);
  pl__hist_record(&h, 500000);
  assert_int_equal(pl__hist_percentile(&h, 50), 10);
  assert_int_equal(pl__hist_percentile(&h, 99), 10);
  assert_int_equal(h.max, 500000);
  uint64_t p999 = pl__hist_percentile(&h, 99.9);
  assert_true(p999 >= 500000 * 0.97 && p999 <= 500000);
}

static void test_empty(void **state) {
  (void)state;
  pl__hist h;
  pl__hist_init(&h);
  assert_int_equal(pl__hist_percentile(&h, 50), 0);
  assert_true(pl__hist_mean(&h) == 0.0);
  pl__hist_record(&h, UINT64_MAX); /* clamps, never overflows the table */
  assert_int_equal(h.count, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_index_roundtrip),
      cmocka_unit_test(test_percentiles),
      cmocka_unit_test(test_single_outlier),
      cmocka_unit_test(test_empty),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
