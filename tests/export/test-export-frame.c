/* Export framing and resume state: checksums against known values, base64
 * and hex, the streaming scanner through channel damage (and what it keeps
 * of the damaging text), the frame parser (pad frames included), the
 * helper's answers to `n` and `i`, and the state file's parse/format round
 * trip. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "export/frame.h"
#include "export/helper.h"
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

static void test_scanner_keeps_damage(void **state) {
  (void)state;
  pl__export_scanner sc;
  assert_int_equal(pl__export_scanner_init(&sc, M), 0);
  seen s = {0};
  /* a warning line injected after a line break inside a frame: the whole
   * line is kept, its start (collected as frame text) included */
  const char *text = "{" M "|d|0|5|c3610a686|b|aG\nbash: warning: setlocale\nVsbG8=}";
  assert_int_equal(pl__export_scan(&sc, text, strlen(text), collect, &s), 0);
  assert_int_equal(s.bad, 1);
  assert_string_equal(sc.damage, "bash: warning: setlocale");
  assert_int_equal(sc.damage_open, 0);
  assert_int_equal(sc.damage_byte, ' ');
  /* a flipped bit: the byte, no line */
  memset(&s, 0, sizeof(s));
  const char flip[] = "{" M "|d|0|5|c3610a686|b|aG\xd6sbG8=}";
  assert_int_equal(pl__export_scan(&sc, flip, strlen(flip), collect, &s), 0);
  assert_int_equal(s.bad, 1);
  assert_int_equal(sc.damage_byte, 0xd6);
  assert_int_equal(sc.damage_len, 0);
  pl__export_scanner_free(&sc);
}

static void test_pad_frame(void **state) {
  (void)state;
  pl__export_frame f;
  const char *pad = "n|17|.....";
  assert_int_equal(pl__export_frame_parse(pad, strlen(pad), &f), 0);
  assert_int_equal(f.kind, PL__FRAME_PAD);
  assert_int_equal(f.seq, 17);
  assert_int_equal(f.fill_len, 5);
  assert_int_equal(pl__export_pad_body_len(17, 5), strlen(pad));
  assert_int_equal(pl__export_pad_body_len(0, 0), strlen("n|0|"));
  assert_int_equal(pl__export_frame_parse("n|3|", 4, &f), 0);
  assert_int_equal(f.fill_len, 0);
  const char *bad[] = {"n|", "n|x|..", "n|1|..x..", "n|1|..|.", "n|1"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(pl__export_frame_parse(bad[i], strlen(bad[i]), &f), -EINVAL);
}

/* Runs `export-helper get FILE` with input on stdin; returns its output. */
static char *run_helper(const char *file, const char *input, size_t *outlen) {
  int in[2], out[2];
  assert_int_equal(pipe(in), 0);
  assert_int_equal(pipe(out), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[0]), close(in[1]), close(out[0]), close(out[1]);
    char *argv[] = {"export-helper", "get", (char *)file, NULL};
    _exit(pl__export_helper_main(3, argv));
  }
  close(in[0]);
  close(out[1]);
  assert_int_equal(write(in[1], input, strlen(input)), (ssize_t)strlen(input));
  close(in[1]);
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  ssize_t r;
  while ((r = read(out[0], buf + n, cap - n - 1)) > 0) {
    n += (size_t)r;
    if (n + 1 == cap) buf = realloc(buf, cap *= 2);
  }
  buf[n] = '\0';
  close(out[0]);
  int status;
  waitpid(pid, &status, 0);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  *outlen = n;
  return buf;
}

/* The kinds of frames seen, in order, with pad frames' seq and fill. */
typedef struct frame_order {
  int n;
  char kinds[8];
  uint64_t seq[8];
  size_t fill[8];
} frame_order;

static int collect_order(void *ctx, const char *body, size_t len, int bad) {
  frame_order *o = ctx;
  pl__export_frame f;
  assert_int_equal(bad, 0);
  assert_int_equal(pl__export_frame_parse(body, len, &f), 0);
  if (o->n < 8) {
    o->kinds[o->n] = (char)f.kind;
    o->seq[o->n] = f.seq;
    o->fill[o->n] = f.fill_len;
    o->n++;
  }
  return 0;
}

static void test_helper_pad_and_info(void **state) {
  (void)state;
  char file[] = "/tmp/proflab-export-test-XXXXXX";
  int fd = mkstemp(file);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "hello", 5), 5);
  close(fd);
  /* noise, a pad, the info again, a chunk, a pad: answered in order */
  size_t n;
  char *out = run_helper(file, M "\nnoise\nn 1 7\ni\ng 0 5 b\nn 2 0\n", &n);
  unlink(file);
  pl__export_scanner sc;
  assert_int_equal(pl__export_scanner_init(&sc, M), 0);
  frame_order o = {0};
  assert_int_equal(pl__export_scan(&sc, out, n, collect_order, &o), 0);
  assert_int_equal(o.n, 5);
  assert_memory_equal(o.kinds, "inidn", 5);
  assert_int_equal(o.seq[1], 1);
  assert_int_equal(o.fill[1], 7);
  assert_int_equal(o.seq[4], 2);
  assert_int_equal(o.fill[4], 0);
  /* the info frame says the helper answers `n` and `i` */
  assert_non_null(strstr(out, "|zbN|"));
  pl__export_scanner_free(&sc);
  free(out);
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
      cmocka_unit_test(test_state_round_trip), cmocka_unit_test(test_scanner_keeps_damage),
      cmocka_unit_test(test_pad_frame),        cmocka_unit_test(test_helper_pad_and_info),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
