/* The framing rules against request smuggling (src/http/framing.c). */
#include "test.h"

#include <string.h>

#include "http/framing.h"

/* The verdict for a head given as "Name: value" lines separated by '\n'
 * (the value as received, white space included). */
static unsigned verdict(const char *lines, pl__http_refusal *why) {
  pl__http_framing f;
  pl__http_framing_init(&f);
  const char *p = lines;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    const char *colon = memchr(p, ':', n);
    assert_non_null(colon);
    pl__http_framing_add(&f, (pl__http_str){p, (size_t)(colon - p)},
                         (pl__http_str){colon + 1, n - (size_t)(colon + 1 - p)});
    p += n + (nl ? 1 : 0);
  }
  memset(why, 0, sizeof(*why));
  return pl__http_framing_verdict(&f, why);
}

static void refused(const char *lines, unsigned status, const char *code, const char *says) {
  pl__http_refusal why;
  assert_int_equal(verdict(lines, &why), status);
  assert_int_equal(why.status, status);
  assert_string_equal(why.code, code);
  assert_non_null(strstr(why.message, says));
}

static void test_plain_heads_pass(void **state) {
  (void)state;
  pl__http_refusal why;
  assert_int_equal(verdict("Host: x\nContent-Length: 4", &why), 0);
  assert_int_equal(verdict("Host: x\nContent-Length:  0 \nAccept: */*", &why), 0);
  assert_int_equal(verdict("Host: x\nX-Obs: caf\xc3\xa9\tok", &why), 0);     /* obs-text and tab */
  assert_int_equal(verdict("Content-Length: 0000000000000000004", &why), 0); /* 19 digits */
  assert_int_equal(why.status, 0);
}

static void test_smuggling_patterns_refused(void **state) {
  (void)state;
  refused("Content-Length: 4\nTransfer-Encoding: chunked", 400, "bad_request", "both");
  refused("transfer-encoding: chunked\ncontent-length: 4", 400, "bad_request", "both");
  refused("Content-Length: 4\nContent-Length: 5", 400, "bad_request",
          "more than one Content-Length");
  refused("Content-Length: 4\nContent-Length: 4", 400, "bad_request",
          "more than one Content-Length");
  refused("Content-Length: 4, 4", 400, "bad_request", "decimal number");
  refused("Content-Length: +4", 400, "bad_request", "decimal number");
  refused("Content-Length: ", 400, "bad_request", "decimal number");
  refused("Content-Length: 18446744073709551616", 400, "bad_request", "decimal number");
  refused("Transfer-Encoding : chunked", 400, "bad_request", "not a token");
  refused(" Transfer-Encoding: chunked", 400, "bad_request", "not a token");
  refused("Transfer\x0b-Encoding: chunked", 400, "bad_request", "not a token");
  refused("X-A: a\rb", 400, "bad_request", "control character");
  refused("X-A: a\x7f", 400, "bad_request", "control character");
  refused("Transfer-Encoding: xchunked", 400, "bad_request", "exactly");
  refused("Transfer-Encoding: chunked, identity", 400, "bad_request", "exactly");
  refused("Transfer-Encoding: chunked\nTransfer-Encoding: chunked", 400, "bad_request", "exactly");
  refused("Transfer-Encoding: ", 400, "bad_request", "exactly");
  refused("Host: a\nHost: b", 400, "bad_request", "more than one Host");
}

static void test_chunked_alone_needs_a_length(void **state) {
  (void)state;
  refused("Transfer-Encoding: chunked", 411, "length_required", "Content-Length");
  refused("Transfer-Encoding:\tCHUNKED ", 411, "length_required", "Content-Length");
}

static void test_check_head(void **state) {
  (void)state;
  static const char good[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n";
  static const char bad[] =
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  pl__http_head h;
  pl__http_refusal why = {0};
  assert_int_equal(pl__http_head_parse(good, sizeof(good) - 1, &h), 0);
  assert_int_equal(pl__http_framing_check_head(&h, &why), 0);
  assert_int_equal(pl__http_head_parse(bad, sizeof(bad) - 1, &h), 0);
  assert_int_equal(pl__http_framing_check_head(&h, &why), 400);
  assert_non_null(strstr(why.message, "both"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain_heads_pass),
      cmocka_unit_test(test_smuggling_patterns_refused),
      cmocka_unit_test(test_chunked_alone_needs_a_length),
      cmocka_unit_test(test_check_head),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
