/* libFuzzer target: the strict HTTP request-head parser, its Host, Origin
 * and list checks (src/http/head.c) and the framing rules
 * (src/http/framing.c). Whatever the bytes, parsing stays inside the input;
 * a head it accepts is consistent (ends in CRLF CRLF within
 * PL__HTTP_HEAD_MAX, every piece inside the head, tokens and values of
 * allowed characters), the checks run on every value, and the framing
 * verdict agrees with a second count of the head's framing headers. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/framing.h"
#include "http/head.h"

static void inside(const char *buf, size_t len, pl__http_str s) {
  if (s.n > len || s.p < buf || s.p + s.n > buf + len) abort();
}

static void no_ctl(pl__http_str s) {
  for (size_t i = 0; i < s.n; i++) {
    unsigned char c = (unsigned char)s.p[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f) abort();
  }
}

static void checks(pl__http_str v) {
  pl__http_host_allowed(v);
  if (pl__http_origin_allowed(v) && !(v.n == 19 && memcmp(v.p, "devtools://devtools", 19) == 0) &&
      !(v.n > 7 && (v.p[0] == 'h' || v.p[0] == 'H')))
    abort(); /* only devtools:// or an http(s) origin can pass */
  pl__http_list_has(v, "upgrade");
  pl__http_list_has(v, "");
  pl__http_str_ieq(v, "localhost");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* an exact-size copy: ASan sees any read past the input */
  char *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  pl__http_head h;
  int rc = pl__http_head_parse(buf, size, &h);
  if (rc == 0) {
    if (h.len < 4 || h.len > size || h.len > PL__HTTP_HEAD_MAX) abort();
    if (memcmp(buf + h.len - 4, "\r\n\r\n", 4) != 0) abort();
    inside(buf, h.len, h.method);
    inside(buf, h.len, h.target);
    if (h.method.n == 0 || h.target.n == 0 || h.target.p[0] != '/') abort();
    if (h.minor != 0 && h.minor != 1) abort();
    if (h.nheaders > PL__HTTP_MAX_HEADERS) abort();
    for (size_t i = 0; i < h.nheaders; i++) {
      inside(buf, h.len, h.headers[i].name);
      inside(buf, h.len, h.headers[i].value);
      if (h.headers[i].name.n == 0) abort();
      no_ctl(h.headers[i].name);
      no_ctl(h.headers[i].value);
      checks(h.headers[i].value);
    }
    pl__http_str v;
    size_t n = pl__http_header_find(&h, "Host", &v);
    if (n == 0 && v.n != 0) abort();
    if (n) inside(buf, h.len, v);
    /* the framing rules against a second reading of the same head */
    pl__http_refusal why = {0};
    unsigned status = pl__http_framing_check_head(&h, &why);
    size_t te = pl__http_header_find(&h, "Transfer-Encoding", NULL);
    size_t cl = pl__http_header_find(&h, "Content-Length", &v);
    if (status == 0) {
      if (te || cl > 1 || n > 1) abort();
      for (size_t i = 0; i < v.n; i++)
        if (v.p[i] < '0' || v.p[i] > '9') abort();
      if (cl && (v.n == 0 || v.n > 19)) abort();
    } else {
      if (status != 400 && status != 411) abort();
      if (!why.code || !why.message || why.status != status) abort();
      if (te == 0 && cl <= 1 && n <= 1 && status == 411) abort();
    }
  } else if (rc == -EAGAIN) {
    if (size >= PL__HTTP_HEAD_MAX) abort();
  } else if (rc != -EMSGSIZE && rc != -EINVAL) {
    abort();
  }
  checks((pl__http_str){buf, size});
  free(buf);
  return 0;
}
