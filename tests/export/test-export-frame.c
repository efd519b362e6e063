/* Export framing and resume state: checksums against known values, base64
 * and hex, the streaming scanner through channel damage, the frame parser,
 * and the state file's parse/format round trip. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "export/frame.h"
#include "export/state.h"

#define M "0123456789abcdef0123456789abcdef"

static void test_checksums(void **state) {
  (void)state;
  /* `printf hello | cksum` and zlib.crc32(b"hello") */
  assert_int_equal(pl__export_cksum("hello", 5), 3287646509u);
  assert_int_equal(pl__export_crc32("hello", 5), 0x3610a686u);
  assert_int_equal(pl__export_cksum("", 0), 4294967295u);
  uint32_t c = pl__export_cksum_update(0, "hel", 3);
  c = pl__export_cksum_update(c, "lo", 2);
  assert_int_equal(pl__export_cksum_final(c, 5), 3287646509u);
}

static void test_base64_hex(void **state) {
  (void)state;
  unsigned char bin[256], back[256];
  char text[400];
  for (int i = 0; i < 256; i++) bin[i] = (unsigned char)(i * 7 + 3);
  for (size_t n = 0; n <= 10; n++) {
    long t = pl__export_b64_encode(bin, n, text, sizeof(text));
    assert_int_equal(t, (long)((n + 2) / 3 * 4));
    assert_int_equal(pl__export_b64_decode(text, (size_t)t, back, sizeof(back)), (long)n);
    assert_memory_equal(bin, back, n);
  }
  assert_int_equal(pl__export_b64_decode("aGVs\r\nbG8=", 10, back, sizeof(back)), 5);
  assert_memory_equal(back, "hello", 5);
  assert_int_equal(pl__export_b64_decode("aGVsbG8", 7, back, sizeof(back)), -1);  /* no padding */
  assert_int_equal(pl__export_b64_decode("aGVsbG9=", 8, back, sizeof(back)), -1); /* bits left */
  assert_int_equal(pl__export_b64_decode("aGV=sbG8", 8, back, sizeof(back)), -1); /* data after = */
  assert_int_equal(pl__export_b64_decode("aGVsbG8=", 8, back, 4), -1);            /* overflow */
  assert_int_equal(pl__export_hex_decode("68 65\n6c6c6f", 12, back, sizeof(back)), 5);
  assert_memory_equal(back, "hello", 5);
  assert_int_equal(pl__export_hex_decode("686", 3, back, sizeof(back)), -1);
}

typedef struct seen {
  int frames, bad;
  char last[256];
} seen;

static int collect(void *ctx, const char *body, size_t len, int bad) {
  seen *s = ctx;
  if (bad) {
    s->bad++;
    return 0;
  }
  s->frames++;
  snprintf(s->last, sizeof(s->last), "%.*s", (int)len, body);
  return 0;
}

static void test_scanner_damage(void **state) {
  (void)state;
  pl__export_scanner sc;
  assert_int_equal(pl__export_scanner_init(&sc, "short"), -EINVAL);
  assert_int_equal(pl__export_scanner_init(&sc, M), 0);
  /* banners, an echoed marker line, CRLF and wrapping inside the frame,
   * the frame split across reads one byte at a time */
  const char *text = "Starting session with SessionId: x\r\n" M "\r\n{" M
                     "|d|0|5|c3610a686|b|aG\r\nVs"
                     "bG8=}Cannot perform start session: EOF";
  seen s = {0};
  for (size_t i = 0; text[i]; i++)
    assert_int_equal(pl__export_scan(&sc, text + i, 1, collect, &s), 0);
  assert_int_equal(s.frames, 1);
  assert_int_equal(s.bad, 0);
  assert_string_equal(s.last, "d|0|5|c3610a686|b|aGVsbG8=");
  /* interleaved stderr inside a frame makes it bad; the next frame is found */
  const char *mixed = "{" M "|d|0|5|c3610a686|b|aG\nwarning: x\nVs}{" M "|x|ENOENT}";
  memset(&s, 0, sizeof(s));
  assert_int_equal(pl__export_scan(&sc, mixed, strlen(mixed), collect, &s), 0);
  assert_int_equal(s.bad, 1);
  assert_int_equal(s.frames, 1);
  assert_string_equal(s.last, "x|ENOENT");
  pl__export_scanner_free(&sc);
}

static void test_frame_parse(void **state) {
  (void)state;
  pl__export_frame f;
  unsigned char out[64], scratch[64];
  const char *d = "d|0|5|c3610a686|b|aGVsbG8=";
  assert_int_equal(pl__export_frame_parse(d, strlen(d), &f), 0);
  assert_int_equal(pl__export_frame_data(&f, out, sizeof(out), scratch, sizeof(scratch)), 0);
  assert_memory_equal(out, "hello", 5);
  const char *flipped = "d|0|5|c3610a686|b|aGVsbG9=";
  assert_int_equal(pl__export_frame_parse(flipped, strlen(flipped), &f), 0);
  assert_int_not_equal(pl__export_frame_data(&f, out, sizeof(out), scratch, sizeof(scratch)), 0);
  const char *k = "d|4096|5|k3287646509|x|68656c6c6f";
  assert_int_equal(pl__export_frame_parse(k, strlen(k), &f), 0);
  assert_int_equal(f.offset, 4096);
  assert_int_equal(pl__export_frame_data(&f, out, sizeof(out), scratch, sizeof(scratch)), 0);
  /* info: its own check over SIZE|SUM|IDENT|ENCODINGS */
  char info[200], text[] = "5|k:3287646509|-|x";
  snprintf(info, sizeof(info), "i|%s|k%u", text, pl__export_cksum(text, strlen(text)));
  assert_int_equal(pl__export_frame_parse(info, strlen(info), &f), 0);
  assert_int_equal(f.size, 5);
  info[2] = '6'; /* size damaged */
  assert_int_equal(pl__export_frame_parse(info, strlen(info), &f), -EBADMSG);
  const char *bad[] = {"",
                       "d",
                       "q|1",
                       "d|0|5|c3610a68|b|x",
                       "d|x|5|c3610a686|b|x",
                       "d|0|99999999999|c3610a686|b|x",
                       "d|0|5|z1|b|x",
                       "x|",
                       "x|A|B",
                       "d|18446744073709551615|5|c3610a686|b|x"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(pl__export_frame_parse(bad[i], strlen(bad[i]), &f), -EINVAL);
}

static void test_state_round_trip(void **state) {
  (void)state;
  pl__export_state a, b;
  memset(&a, 0, sizeof(a));
  snprintf(a.remote, sizeof(a.remote), "/tmp/cpu-1 with space=and equals.cpuprofile");
  snprintf(a.helper, sizeof(a.helper), "sh");
  snprintf(a.sum, sizeof(a.sum), "k:123");
  snprintf(a.ident, sizeof(a.ident), "-");
  a.size = 10000;
  a.offset = 8192;
  a.chunk = 65536;
  char text[8192];
  long n = pl__export_state_format(&a, text, sizeof(text));
  assert_true(n > 0);
  assert_int_equal(pl__export_state_parse(text, (size_t)n, &b), 0);
  assert_memory_equal(&a, &b, sizeof(a));
  /* cut, duplicated, unknown, offset beyond size: all refused */
  assert_int_equal(pl__export_state_parse(text, (size_t)n - 1, &b), -EINVAL);
  char dup[9000];
  snprintf(dup, sizeof(dup), "%ssize=1\n", text);
  assert_int_equal(pl__export_state_parse(dup, strlen(dup), &b), -EINVAL);
  snprintf(dup, sizeof(dup), "%scolor=red\n", text);
  assert_int_equal(pl__export_state_parse(dup, strlen(dup), &b), -EINVAL);
  a.offset = a.size + 1;
  n = pl__export_state_format(&a, text, sizeof(text));
  assert_int_equal(pl__export_state_parse(text, (size_t)n, &b), -EINVAL);
  snprintf(a.remote, sizeof(a.remote), "two\nlines");
  assert_int_equal(pl__export_state_format(&a, text, sizeof(text)), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_checksums),        cmocka_unit_test(test_base64_hex),
      cmocka_unit_test(test_scanner_damage),   cmocka_unit_test(test_frame_parse),
      cmocka_unit_test(test_state_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
