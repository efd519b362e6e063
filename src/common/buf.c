/* Growable buffer and streaming JSON writer (see include/proflab/buf.h). */
#include "proflab/buf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "common/put_u64.h"

void pl_buf_init(pl_buf *b) { memset(b, 0, sizeof(*b)); }

void pl_buf_free(pl_buf *b) {
  free(b->data);
  memset(b, 0, sizeof(*b));
}

void pl_buf_reset(pl_buf *b) {
  b->len = 0;
  b->failed = 0;
  if (b->data) b->data[0] = '\0';
}

int pl_buf_reserve(pl_buf *b, size_t n) {
  if (b->failed) return -ENOMEM;
  if (n > SIZE_MAX - b->len - 1) goto fail;
  size_t need = b->len + n + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) {
      cap = need;
      break;
    }
    cap *= 2;
  }
  char *p = realloc(b->data, cap);
  if (!p) goto fail;
  b->data = p;
  b->cap = cap;
  return 0;
fail:
  b->failed = 1;
  return -ENOMEM;
}

void pl_buf_append(pl_buf *b, const void *p, size_t n) {
  if (pl_buf_reserve(b, n) != 0) return;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void pl_buf_puts(pl_buf *b, const char *s) { pl_buf_append(b, s, strlen(s)); }

void pl_buf_putc(pl_buf *b, char c) { pl_buf_append(b, &c, 1); }

void pl_buf_vprintf(pl_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  if (pl_buf_reserve(b, 64) != 0) goto out;
  size_t room = b->cap - b->len;
  int n = vsnprintf(b->data + b->len, room, fmt, ap);
  if (n < 0) {
    b->failed = 1;
    goto out;
  }
  if ((size_t)n >= room) {
    if (pl_buf_reserve(b, (size_t)n) != 0) goto out;
    room = b->cap - b->len;
    n = vsnprintf(b->data + b->len, room, fmt, ap2);
    if (n < 0 || (size_t)n >= room) {
      b->failed = 1;
      goto out;
    }
  }
  b->len += (size_t)n;
out:
  va_end(ap2);
}

void pl_buf_printf(pl_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pl_buf_vprintf(b, fmt, ap);
  va_end(ap);
}

char *pl_buf_steal(pl_buf *b, size_t *len) {
  char *p = b->data;
  if (len) *len = b->len;
  memset(b, 0, sizeof(*b));
  return p;
}

/* ---- JSON writer ------------------------------------------------------ */

void pl_json_init(pl_json *j, pl_buf *out) {
  memset(j, 0, sizeof(*j));
  j->out = out;
}

static void json_pre_value(pl_json *j) {
  if (j->after_key) {
    j->after_key = 0;
    return;
  }
  if (j->depth > 0 && j->depth <= PL_JSON_MAX_DEPTH) {
    if (j->need_comma[j->depth - 1]) pl_buf_putc(j->out, ',');
    j->need_comma[j->depth - 1] = 1;
  }
}

static void json_open(pl_json *j, char c) {
  json_pre_value(j);
  pl_buf_putc(j->out, c);
  if (j->depth < PL_JSON_MAX_DEPTH)
    j->need_comma[j->depth] = 0;
  else
    j->out->failed = 1; /* nesting beyond the bound is a caller bug */
  j->depth++;
}

static void json_close(pl_json *j, char c) {
  if (j->depth > 0) j->depth--;
  pl_buf_putc(j->out, c);
}

void pl_json_obj_open(pl_json *j) { json_open(j, '{'); }
void pl_json_obj_close(pl_json *j) { json_close(j, '}'); }
void pl_json_arr_open(pl_json *j) { json_open(j, '['); }
void pl_json_arr_close(pl_json *j) { json_close(j, ']'); }

/* Length of a valid UTF-8 sequence at s (max n bytes), or 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else
    return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

/* What pl_json_escape does with each byte: 0 copy, 1 escape, 2 the start
 * of a UTF-8 sequence to check. */
static const unsigned char json_byte_class[256] = {
    [0x00 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x7f] = 1, [0x80 ... 0xff] = 2};

/* Nonzero when the 8 bytes of x may hold one pl_json_escape must look at
 * (a control byte, '"', '\\', DEL or non-ASCII); exact when zero. */
static inline uint64_t json_word_special(uint64_t x) {
  const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
  uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
  return (((x - ones * 0x20) | (q - ones) | (bs - ones)) & ~x & high) | /* < 0x20, '"', '\\' */
         ((x | (x + ones)) & high);                                     /* >= 0x7f */
}

void pl_json_escape(pl_buf *b, const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0, start = 0;
  for (;;) {
    /* a run of bytes copied as they are: most of any text, 16 at a time
     * (SSE2: a signed compare below 0x20 takes the non-ASCII bytes too),
     * then 8 */
#ifdef __SSE2__
    for (; i + 16 <= n; i += 16) {
      __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
      __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                                            _mm_cmpeq_epi8(v, _mm_set1_epi8('"'))),
                               _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\')),
                                            _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f))));
      if (_mm_movemask_epi8(m)) break;
    }
#endif
    for (uint64_t w; i + 8 <= n; i += 8) {
      memcpy(&w, s + i, 8);
      if (json_word_special(w)) break;
    }
    while (i < n && !json_byte_class[s[i]]) i++;
    if (i == n) break;
    unsigned char c = s[i];
    size_t l = 1;
    if (json_byte_class[c] == 2 && (l = utf8_seq_len(s + i, n - i)) != 0) {
      i += l; /* valid UTF-8 is part of the run */
      continue;
    }
    pl_buf_append(b, s + start, i - start);
    char esc[8] = {'\\', 0};
    size_t len = 2;
    switch (c) {
      case '"':
        esc[1] = '"';
        break;
      case '\\':
        esc[1] = '\\';
        break;
      case '\n':
        esc[1] = 'n';
        break;
      case '\r':
        esc[1] = 'r';
        break;
      case '\t':
        esc[1] = 't';
        break;
      default: /* a control byte, DEL, or a byte that is not UTF-8 */
        len = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c >= 0x80 ? 0xfffdu : c);
    }
    pl_buf_append(b, esc, len);
    start = ++i;
  }
  pl_buf_append(b, s + start, n - start);
}

void pl_json_key(pl_json *j, const char *key) {
  json_pre_value(j);
  pl_buf_putc(j->out, '"');
  pl_json_escape(j->out, key, strlen(key));
  pl_buf_append(j->out, "\":", 2);
  j->after_key = 1;
}

void pl_json_strn(pl_json *j, const char *s, size_t n) {
  json_pre_value(j);
  pl_buf_putc(j->out, '"');
  pl_json_escape(j->out, s, n);
  pl_buf_putc(j->out, '"');
}

void pl_json_str(pl_json *j, const char *s) {
  if (!s) {
    pl_json_null(j);
    return;
  }
  pl_json_strn(j, s, strlen(s));
}

const char pl__digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

const uint64_t pl__powers_of_10[20] = {1ull,
                                       10ull,
                                       100ull,
                                       1000ull,
                                       10000ull,
                                       100000ull,
                                       1000000ull,
                                       10000000ull,
                                       100000000ull,
                                       1000000000ull,
                                       10000000000ull,
                                       100000000000ull,
                                       1000000000000ull,
                                       10000000000000ull,
                                       100000000000000ull,
                                       1000000000000000ull,
                                       10000000000000000ull,
                                       100000000000000000ull,
                                       1000000000000000000ull,
                                       10000000000000000000ull};

char *pl_put_u64(char *p, uint64_t v) { return pl__put_u64(p, v); }

/* Decimal digits of v in a 24-byte buffer; returns the start (the digits end at buf + 24). */
static char *format_u64(uint64_t v, char buf[24]) {
  char tmp[24];
  size_t n = (size_t)(pl_put_u64(tmp, v) - tmp);
  memcpy(buf + 24 - n, tmp, n);
  return buf + 24 - n;
}

void pl_json_int(pl_json *j, int64_t v) {
  json_pre_value(j);
  char buf[24];
  uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  char *p = format_u64(mag, buf);
  if (v < 0) pl_buf_putc(j->out, '-');
  pl_buf_append(j->out, p, (size_t)(buf + 24 - p));
}

void pl_json_uint(pl_json *j, uint64_t v) {
  json_pre_value(j);
  char buf[24];
  char *p = format_u64(v, buf);
  pl_buf_append(j->out, p, (size_t)(buf + 24 - p));
}

void pl_json_double(pl_json *j, double v, int decimals) {
  json_pre_value(j);
  if (!isfinite(v)) {
    pl_buf_puts(j->out, "null");
    return;
  }
  if (decimals < 0) decimals = 0;
  if (decimals > 17) decimals = 17;
  char tmp[64];
  int n;
  if (decimals <= 6 && fabs(v) < 9e12) {
    /* Fixed point with integers: snprintf("%f") costs a microsecond, and
     * every request's log line has a duration. */
    static const uint64_t pow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    uint64_t scale = pow10[decimals];
    int neg = v < 0;
    uint64_t q = (uint64_t)((neg ? -v : v) * (double)scale + 0.5);
    uint64_t ip = q / scale, fp = q % scale;
    char digits[24];
    char *d = format_u64(ip, digits);
    n = 0;
    if (neg && q) tmp[n++] = '-';
    memcpy(tmp + n, d, (size_t)(digits + 24 - d));
    n += (int)(digits + 24 - d);
    if (fp) {
      char frac[8];
      for (int i = decimals - 1; i >= 0; i--, fp /= 10) frac[i] = (char)('0' + fp % 10);
      int fl = decimals;
      while (fl > 0 && frac[fl - 1] == '0') fl--;
      tmp[n++] = '.';
      memcpy(tmp + n, frac, (size_t)fl);
      n += fl;
    }
    pl_buf_append(j->out, tmp, (size_t)n);
    return;
  }
  n = snprintf(tmp, sizeof(tmp), "%.*f", decimals, v);
  if (n < 0 || (size_t)n >= sizeof(tmp)) { /* huge magnitude */
    n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
      pl_buf_puts(j->out, "null");
      return;
    }
  } else if (decimals > 0) { /* trim trailing zeros: 1.500 -> 1.5, 2.000 -> 2 */
    while (n > 0 && tmp[n - 1] == '0') n--;
    if (n > 0 && tmp[n - 1] == '.') n--;
  }
  if (n == 2 && tmp[0] == '-' && tmp[1] == '0') {
    tmp[0] = '0';
    n = 1;
  }
  pl_buf_append(j->out, tmp, (size_t)n);
}

void pl_json_bool(pl_json *j, int v) {
  json_pre_value(j);
  pl_buf_puts(j->out, v ? "true" : "false");
}

void pl_json_null(pl_json *j) {
  json_pre_value(j);
  pl_buf_puts(j->out, "null");
}

void pl_json_kv_str(pl_json *j, const char *k, const char *v) {
  pl_json_key(j, k);
  pl_json_str(j, v);
}
void pl_json_kv_int(pl_json *j, const char *k, int64_t v) {
  pl_json_key(j, k);
  pl_json_int(j, v);
}
void pl_json_kv_uint(pl_json *j, const char *k, uint64_t v) {
  pl_json_key(j, k);
  pl_json_uint(j, v);
}
void pl_json_kv_double(pl_json *j, const char *k, double v, int d) {
  pl_json_key(j, k);
  pl_json_double(j, v, d);
}
void pl_json_kv_bool(pl_json *j, const char *k, int v) {
  pl_json_key(j, k);
  pl_json_bool(j, v);
}
