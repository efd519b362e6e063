/* Number parsing, secrets, time formatting. */
#include "test.h"

#include <errno.h>

#include "common/util.h"

static void test_parse_u64(void **state) {
  (void)state;
  uint64_t v;
  assert_int_equal(pl__parse_u64("0", &v), 0);
  assert_int_equal(v, 0);
  assert_int_equal(pl__parse_u64("18446744073709551615", &v), 0);
  assert_true(v == UINT64_MAX);
  assert_int_equal(pl__parse_u64("18446744073709551616", &v), -ERANGE);
  assert_int_equal(pl__parse_u64("99999999999999999999999", &v), -ERANGE);
  const char *bad[] = {"", "-1", "+1", " 1", "1 ", "0x10", "1e3", "1.5", "abc", NULL};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(pl__parse_u64(bad[i], &v), -EINVAL);
}

static void test_secret_equal(void **state) {
  (void)state;
  assert_true(pl__secret_equal("abcdefghijklmnop", 16, "abcdefghijklmnop", 16));
  assert_false(pl__secret_equal("abcdefghijklmnop", 16, "abcdefghijklmnoq", 16));
  assert_false(pl__secret_equal("abcdefghijklmnop", 16, "abcdefghijklmnop0", 17));
  assert_false(pl__secret_equal("", 0, "a", 1));
}

static void test_time_format(void **state) {
  (void)state;
  char out[40];
  pl__format_iso8601(1764099730123000000ull, out, sizeof(out));
  assert_string_equal(out, "2025-11-25T19:42:10.123Z");
  pl__format_compact_utc(1764099730123000000ull, out, sizeof(out));
  assert_string_equal(out, "20251125T194210Z");
  assert_true(pl__rss_bytes() > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_u64),
      cmocka_unit_test(test_secret_equal),
      cmocka_unit_test(test_time_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
