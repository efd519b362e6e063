/* pl_buf and the streaming JSON writer. */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>

#include "proflab/buf.h"

static void test_append_and_printf(void **state) {
  (void)state;
  pl_buf b;
  pl_buf_init(&b);
  pl_buf_puts(&b, "abc");
  pl_buf_printf(&b, "-%d-%s", 42, "x");
  for (int i = 0; i < 1000; i++) pl_buf_putc(&b, 'z');
  assert_int_equal(b.len, 3 + 5 + 1000);
  assert_memory_equal(b.data, "abc-42-xzz", 10);
  assert_int_equal(b.data[b.len], '\0');
  assert_false(pl_buf_failed(&b));
  pl_buf_free(&b);
}

static void test_json_nesting(void **state) {
  (void)state;
  pl_buf b;
  pl_buf_init(&b);
  pl_json j;
  pl_json_init(&j, &b);
  pl_json_obj_open(&j);
  pl_json_kv_str(&j, "a", "x");
  pl_json_key(&j, "arr");
  pl_json_arr_open(&j);
  pl_json_int(&j, -1);
  pl_json_uint(&j, 18446744073709551615ull);
  pl_json_obj_open(&j);
  pl_json_obj_close(&j);
  pl_json_arr_open(&j);
  pl_json_arr_close(&j);
  pl_json_null(&j);
  pl_json_bool(&j, 1);
  pl_json_arr_close(&j);
  pl_json_kv_double(&j, "d", 1.5, 3);
  pl_json_kv_double(&j, "e", 2.0, 3);
  pl_json_kv_double(&j, "nan", 0.0 / 0.0, 3);
  pl_json_obj_close(&j);
  assert_string_equal(b.data,
                      "{\"a\":\"x\",\"arr\":[-1,18446744073709551615,{},[],null,true],"
                      "\"d\":1.5,\"e\":2,\"nan\":null}");
  pl_buf_free(&b);
}

static void test_json_escape(void **state) {
  (void)state;
  pl_buf b;
  pl_buf_init(&b);
  const char in[] = "q\"b\\n\n\t\x01\x7f é \xff end";
  pl_json_escape(&b, in, sizeof(in) - 1);
  assert_string_equal(b.data, "q\\\"b\\\\n\\n\\t\\u0001\\u007f é \\ufffd end");
  pl_buf_reset(&b);
  /* overlong encoding and a lone surrogate are invalid UTF-8 */
  const char bad[] = "\xc0\xaf|\xed\xa0\x80|\xf0\x9f\x98\x80";
  pl_json_escape(&b, bad, sizeof(bad) - 1);
  assert_string_equal(b.data, "\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\xf0\x9f\x98\x80");
  pl_buf_free(&b);
}

/* Every special byte at every offset of three 16-byte blocks, and random
 * texts: the escaper that scans 16 and 8 bytes at a time agrees with one
 * byte at a time. */
static void test_json_escape_words(void **state) {
  (void)state;
  /* the escapes, and bytes next to them that are not */
  static const unsigned char specials[] = {0x00, 0x01, 0x1f, '"', '\\', 0x7f, 0x80,
                                           0xc3, 0xff, 0x20, '!', '#',  '[',  '~'};
  pl_buf b, one;
  pl_buf_init(&b);
  pl_buf_init(&one);
  char text[64];
  for (size_t k = 0; k < sizeof(specials); k++) {
    for (size_t at = 0; at < 48; at++) {
      memset(text, 'a', sizeof(text));
      text[at] = (char)specials[k];
      pl_buf_reset(&b);
      pl_buf_reset(&one);
      pl_json_escape(&b, text, 56);
      for (size_t i = 0; i < 56; i++) pl_json_escape(&one, text + i, 1); /* one byte: no run */
      assert_int_equal(b.len, one.len);
      assert_memory_equal(b.data, one.data, b.len);
    }
  }
  /* random ASCII with a few specials: the same as escaping line by line */
  unsigned seed = 7;
  for (int round = 0; round < 2000; round++) {
    size_t n = (size_t)(rand_r(&seed) % 60);
    for (size_t i = 0; i < n; i++) {
      unsigned r = (unsigned)rand_r(&seed) % 100;
      text[i] = r < 3 ? '"' : r < 5 ? '\\' : r < 7 ? (char)(r % 32) : (char)(0x20 + r % 95);
    }
    pl_buf_reset(&b);
    pl_buf_reset(&one);
    pl_json_escape(&b, text, n);
    for (size_t i = 0; i < n; i++) pl_json_escape(&one, text + i, 1);
    assert_int_equal(b.len, one.len);
    if (b.len) assert_memory_equal(b.data, one.data, b.len);
  }
  pl_buf_free(&b);
  pl_buf_free(&one);
}

static void test_json_double(void **state) {
  (void)state;
  struct {
    double v;
    int d;
    const char *want;
  } cases[] = {
      {1.5, 3, "1.5"},
      {2.0, 3, "2"},
      {0.0004, 3, "0"},
      {-0.0001, 3, "0"},
      {1234.5678, 3, "1234.568"},
      {0.1 + 0.2, 3, "0.3"},
      {-2.25, 2, "-2.25"},
      {0.999999, 6, "0.999999"},
      {0.9999996, 6, "1"},
      {1e15, 3, "1000000000000000"},
      {12.5, 0, "13"},
      {7.0, 17, "7"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    pl_buf b;
    pl_buf_init(&b);
    pl_json j;
    pl_json_init(&j, &b);
    pl_json_double(&j, cases[i].v, cases[i].d);
    assert_string_equal(b.data, cases[i].want);
    pl_buf_free(&b);
  }
}

/* pl_put_u64 against snprintf: every power of ten and its neighbours, the
 * extremes, and a pseudo-random spread of magnitudes. */
static void check_u64(uint64_t v) {
  char got[32], want[32];
  char *end = pl_put_u64(got, v);
  *end = '\0';
  snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
  assert_string_equal(got, want);
}

static void test_put_u64(void **state) {
  (void)state;
  uint64_t p = 1;
  for (int i = 0; i < 20; i++) {
    check_u64(p - 1);
    check_u64(p);
    check_u64(p + 1);
    if (i < 19) p *= 10;
  }
  check_u64(UINT64_MAX);
  check_u64(UINT64_MAX - 1);
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 200000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    check_u64(x >> (x & 63));
  }
}

static void test_steal(void **state) {
  (void)state;
  pl_buf b;
  pl_buf_init(&b);
  pl_buf_puts(&b, "hello");
  size_t len;
  char *p = pl_buf_steal(&b, &len);
  assert_int_equal(len, 5);
  assert_string_equal(p, "hello");
  assert_null(b.data);
  free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_append_and_printf), cmocka_unit_test(test_json_nesting),
      cmocka_unit_test(test_json_escape),       cmocka_unit_test(test_json_escape_words),
      cmocka_unit_test(test_json_double),       cmocka_unit_test(test_steal),
      cmocka_unit_test(test_put_u64),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
