/* Streaming JSON tokenizer (see json_reader.h). */
#include "format/json_reader.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BUF_SIZE = 1 << 18, MAX_NUMBER = 512 };

/* What may come next. */
enum {
  ST_VALUE,        /* a value: the document's start, after ':' or after ',' in an array */
  ST_VALUE_OR_END, /* after '[' */
  ST_KEY_OR_END,   /* after '{' */
  ST_KEY,          /* after ',' in an object */
  ST_AFTER,        /* after a value inside a container: ',' or its end */
  ST_DONE,         /* after the top-level value: only the end of the input */
};

int pl__jr_init(pl__jreader *r, pl__rsrc *src, pl__read_err *err) {
  memset(r, 0, sizeof(*r));
  r->src = src;
  r->err = err;
  r->max_string = PL__JR_MAX_STRING;
  r->max_depth = PL__JR_MAX_DEPTH;
  pl_buf_init(&r->str);
  r->buf = malloc(BUF_SIZE);
  r->stack_cap = 64;
  r->stack = malloc(r->stack_cap);
  if (!r->buf || !r->stack) {
    pl__jr_free(r);
    return pl__read_errno(err, -ENOMEM);
  }
  r->cap = BUF_SIZE;
  r->state = ST_VALUE;
  return 0;
}

void pl__jr_free(pl__jreader *r) {
  free(r->buf);
  free(r->stack);
  pl_buf_free(&r->str);
  r->buf = NULL;
  r->stack = NULL;
}

/* ---- input -------------------------------------------------------------- */

static uint64_t offset_at(const pl__jreader *r) { return r->buf_off + r->pos; }

/* At least n bytes (n small) ahead of pos: 1, 0 at the end of input, -errno. */
static int ensure(pl__jreader *r, size_t n) {
  if (r->len - r->pos >= n) return 1;
  if (r->pos) {
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->buf_off += r->pos;
    r->len -= r->pos;
    r->pos = 0;
  }
  while (r->len < n && !r->eof) {
    ssize_t got = pl__rsrc_read(r->src, r->buf + r->len, r->cap - r->len);
    if (got < 0) return pl__read_errno(r->err, (int)got);
    if (got == 0) r->eof = 1;
    r->len += (size_t)got;
  }
  return r->len >= n;
}

/* ---- errors ------------------------------------------------------------- */

static int failed(pl__jreader *r, int rc) {
  r->failed = rc;
  return rc;
}

/* "found ..." for the byte at pos (a syntax error). */
static void describe_byte(pl__jreader *r, char *out, size_t n) {
  int e = ensure(r, 1);
  if (e < 0) {
    snprintf(out, n, "a read error");
  } else if (e == 0) {
    snprintf(out, n, "the end of the file (truncated?)");
  } else {
    unsigned char c = r->buf[r->pos];
    if (c >= 0x20 && c < 0x7f)
      snprintf(out, n, "'%c'", c);
    else
      snprintf(out, n, "byte 0x%02x", c);
  }
}

static int syntax_fail(pl__jreader *r, const char *what) {
  if (r->failed) return r->failed;
  char found[48];
  uint64_t off = offset_at(r);
  describe_byte(r, found, sizeof(found));
  pl__read_fail(r->err, "offset %llu: expected %s, found %s", (unsigned long long)off, what, found);
  return failed(r, -EINVAL);
}

/* A short quoted excerpt of the current string (at most 24 bytes, printable). */
static void excerpt(const pl__jreader *r, char *out, size_t n) {
  size_t k = 0, i = 0;
  if (n < 8) return;
  out[k++] = '"';
  for (; i < r->str.len && i < 24 && k + 5 < n; i++) {
    unsigned char c = (unsigned char)r->str.data[i];
    out[k++] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
  }
  if (i < r->str.len && k + 5 < n) {
    memcpy(out + k, "...", 3);
    k += 3;
  }
  out[k++] = '"';
  out[k] = '\0';
}

int pl__jr_fail(pl__jreader *r, const char *what) {
  if (r->failed) return r->failed;
  char found[64], ex[40];
  switch (r->tok) {
    case PL__JT_END:
      snprintf(found, sizeof(found), "the end of the file");
      break;
    case PL__JT_OBJ:
      snprintf(found, sizeof(found), "an object");
      break;
    case PL__JT_ARR:
      snprintf(found, sizeof(found), "an array");
      break;
    case PL__JT_OBJ_END:
      snprintf(found, sizeof(found), "'}'");
      break;
    case PL__JT_ARR_END:
      snprintf(found, sizeof(found), "']'");
      break;
    case PL__JT_KEY:
    case PL__JT_STR:
      excerpt(r, ex, sizeof(ex));
      snprintf(found, sizeof(found), "%s %s", r->tok == PL__JT_KEY ? "the key" : "the string", ex);
      break;
    case PL__JT_NUM:
      if (r->num_int)
        snprintf(found, sizeof(found), "the number %lld", (long long)r->num_i);
      else
        snprintf(found, sizeof(found), "the number %.17g", r->num_d);
      break;
    case PL__JT_TRUE:
      snprintf(found, sizeof(found), "true");
      break;
    case PL__JT_FALSE:
      snprintf(found, sizeof(found), "false");
      break;
    case PL__JT_NULL:
      snprintf(found, sizeof(found), "null");
      break;
  }
  pl__read_fail(r->err, "offset %llu: expected %s, found %s", (unsigned long long)r->tok_off, what,
                found);
  return failed(r, -EINVAL);
}

int pl__jr_failf(pl__jreader *r, const char *fmt, ...) {
  if (r->failed) return r->failed;
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  pl__read_fail(r->err, "offset %llu: %s", (unsigned long long)r->tok_off, msg);
  return failed(r, -EINVAL);
}

/* ---- tokens ------------------------------------------------------------- */

static int skip_ws(pl__jreader *r) {
  for (;;) {
    while (r->pos < r->len) {
      unsigned char c = r->buf[r->pos];
      if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return 0;
      r->pos++;
    }
    int e = ensure(r, 1);
    if (e <= 0) return e < 0 ? failed(r, e) : 0;
  }
}

static void put_utf8(pl_buf *b, uint32_t cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xc0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xe0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[2] = (char)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    u[0] = (char)(0xf0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[3] = (char)(0x80 | (cp & 0x3f));
    n = 4;
  }
  pl_buf_append(b, u, n);
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Four hex digits at pos (after "\u"): the code unit, or -1 (syntax error set). */
static int32_t read_hex4(pl__jreader *r) {
  int e = ensure(r, 4);
  if (e < 0) return failed(r, e), -1;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int h = (size_t)i < r->len - r->pos ? hexval(r->buf[r->pos + (size_t)i]) : -1;
    if (h < 0) {
      r->pos += (size_t)i;
      syntax_fail(r, "four hex digits after \\u");
      return -1;
    }
    v = v << 4 | (uint32_t)h;
  }
  r->pos += 4;
  return (int32_t)v;
}

/* An escape after the backslash (consumed). 0 or -errno. */
static int read_escape(pl__jreader *r) {
  int e = ensure(r, 1);
  if (e <= 0) return e < 0 ? failed(r, e) : syntax_fail(r, "an escape after '\\'");
  unsigned char c = r->buf[r->pos];
  static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
  const char *k = c ? strchr(from, c) : NULL;
  if (k) {
    r->pos++;
    pl_buf_putc(&r->str, to[k - from]);
    return 0;
  }
  if (c != 'u') return syntax_fail(r, "an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
  r->pos++;
  int32_t u = read_hex4(r);
  if (u < 0) return r->failed;
  uint32_t cp = (uint32_t)u;
  if (cp >= 0xd800 && cp <= 0xdbff) { /* a high surrogate: its low half should follow */
    e = ensure(r, 6);
    if (e < 0) return failed(r, e);
    if (r->len - r->pos >= 6 && r->buf[r->pos] == '\\' && r->buf[r->pos + 1] == 'u') {
      uint32_t lo = 0;
      int ok = 1;
      for (int i = 0; i < 4 && ok; i++) {
        int h = hexval(r->buf[r->pos + 2 + (size_t)i]);
        ok = h >= 0;
        lo = lo << 4 | (uint32_t)(h < 0 ? 0 : h);
      }
      if (ok && lo >= 0xdc00 && lo <= 0xdfff) {
        r->pos += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      } else {
        cp = 0xfffd; /* lone high surrogate; what follows is read on its own */
      }
    } else {
      cp = 0xfffd;
    }
  } else if (cp >= 0xdc00 && cp <= 0xdfff) {
    cp = 0xfffd; /* lone low surrogate */
  }
  put_utf8(&r->str, cp);
  return 0;
}

/* A string after its opening quote (consumed) into r->str. 0 or -errno. */
static int read_string(pl__jreader *r) {
  pl_buf_reset(&r->str);
  for (;;) {
    size_t start = r->pos;
    while (r->pos < r->len) {
      unsigned char c = r->buf[r->pos];
      if (c == '"' || c == '\\' || c < 0x20) break;
      r->pos++;
    }
    if (r->pos > start) pl_buf_append(&r->str, r->buf + start, r->pos - start);
    if (r->str.len > r->max_string) {
      pl__read_fail(r->err, "offset %llu: a string longer than %zu MiB: not read",
                    (unsigned long long)r->tok_off, r->max_string >> 20);
      return failed(r, -EINVAL);
    }
    if (pl_buf_failed(&r->str)) return failed(r, pl__read_errno(r->err, -ENOMEM));
    int e = ensure(r, 1);
    if (e < 0) return failed(r, e);
    if (e == 0) return syntax_fail(r, "'\"' to end the string");
    unsigned char c = r->buf[r->pos];
    if (c == '"') {
      r->pos++;
      if (!r->str.data) pl_buf_putc(&r->str, '\0'), r->str.len = 0; /* data non-NULL */
      return pl_buf_failed(&r->str) ? failed(r, pl__read_errno(r->err, -ENOMEM)) : 0;
    }
    if (c < 0x20) return syntax_fail(r, "a string character (control bytes must be escaped)");
    if (c != '\\') continue; /* the buffer had ended: more of the string */
    r->pos++;
    if ((e = read_escape(r)) < 0) return e;
  }
}

/* A number starting at pos. 0 or -errno. */
static int read_number(pl__jreader *r) {
  { /* the common case, fast: an integer of at most 18 digits inside the buffer */
    const unsigned char *b = r->buf;
    size_t p = r->pos, d0;
    int neg = p < r->len && b[p] == '-';
    d0 = p += (size_t)neg;
    uint64_t mag = 0;
    while (p < r->len && p - d0 < 18 && b[p] >= '0' && b[p] <= '9')
      mag = mag * 10 + (uint64_t)(b[p++] - '0');
    if (p < r->len && p > d0 && !(b[p] >= '0' && b[p] <= '9') && b[p] != '.' && b[p] != 'e' &&
        b[p] != 'E' && !(b[d0] == '0' && p - d0 > 1)) {
      r->pos = p;
      r->num_int = 1;
      r->num_i = neg ? -(int64_t)mag : (int64_t)mag;
      r->num_d = (double)r->num_i;
      return 0;
    }
  }
  char text[MAX_NUMBER + 1];
  size_t n = 0;
  int integral = 1;
  uint64_t mag = 0;
  int overflow = 0;
  int part = 0; /* 0 sign, 1 int digits, 2 after '.', 3 frac digits, 4 after e, 5 after sign, 6 exp
                   digits */
  for (;;) {
    if (r->pos == r->len) {
      int e = ensure(r, 1);
      if (e < 0) return failed(r, e);
      /* inside an array or object, a number the file ends in was cut off:
       * say so, rather than hand on a number with digits missing */
      if (e == 0 && r->depth)
        return syntax_fail(r, "the rest of the number, then ',' or a closing bracket");
      if (e == 0) break;
    }
    unsigned char c = r->buf[r->pos];
    int digit = c >= '0' && c <= '9';
    if (part == 0 && c == '-' && n == 0) {
      /* sign */
    } else if ((part == 0 || part == 1) && digit) {
      if (part == 1 && n > 0 && text[n - 1] == '0' && (n == 1 || text[n - 2] == '-')) break;
      part = 1;
      if (mag > (UINT64_MAX - 9) / 10) overflow = 1;
      mag = mag * 10 + (uint64_t)(c - '0');
    } else if (part == 1 && c == '.') {
      part = 2;
      integral = 0;
    } else if ((part == 2 || part == 3) && digit) {
      part = 3;
    } else if ((part == 1 || part == 3) && (c == 'e' || c == 'E')) {
      part = 4;
      integral = 0;
    } else if (part == 4 && (c == '+' || c == '-')) {
      part = 5;
    } else if ((part >= 4) && digit) {
      part = 6;
    } else {
      break;
    }
    if (n == MAX_NUMBER) return syntax_fail(r, "a number of at most 512 characters");
    text[n++] = (char)c;
    r->pos++;
  }
  if (part == 0) return syntax_fail(r, "a digit");
  if (part == 2) return syntax_fail(r, "a digit after '.'");
  if (part == 4 || part == 5) return syntax_fail(r, "a digit in the exponent");
  text[n] = '\0';
  int neg = text[0] == '-';
  if (integral && !overflow && (neg ? mag <= (uint64_t)INT64_MAX + 1 : mag <= INT64_MAX)) {
    r->num_int = 1;
    r->num_i = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    r->num_d = (double)r->num_i;
  } else {
    r->num_int = 0;
    r->num_d = strtod(text, NULL);
  }
  return 0;
}

static int read_literal(pl__jreader *r, const char *word, pl__jtok t) {
  size_t n = strlen(word);
  int e = ensure(r, n);
  if (e < 0) return failed(r, e);
  if (e == 0 || memcmp(r->buf + r->pos, word, n) != 0) return syntax_fail(r, "a value");
  r->pos += n;
  r->tok = t;
  return 0;
}

static int push(pl__jreader *r, unsigned char c) {
  if (r->depth >= r->max_depth) {
    pl__read_fail(r->err, "offset %llu: nested deeper than %zu levels: not read",
                  (unsigned long long)r->tok_off, r->max_depth);
    return failed(r, -EINVAL);
  }
  if (r->depth == r->stack_cap) {
    unsigned char *ns = realloc(r->stack, r->stack_cap * 2);
    if (!ns) return failed(r, pl__read_errno(r->err, -ENOMEM));
    r->stack = ns;
    r->stack_cap *= 2;
  }
  r->stack[r->depth++] = c;
  return 0;
}

static int after_value(pl__jreader *r) {
  r->state = r->depth ? ST_AFTER : ST_DONE;
  return (int)r->tok;
}

static int close_container(pl__jreader *r, unsigned char c) {
  r->pos++;
  r->depth--;
  r->tok = c == '}' ? PL__JT_OBJ_END : PL__JT_ARR_END;
  return after_value(r);
}

/* A value starting with c; `what` names what was expected, for the error. */
static int read_value(pl__jreader *r, unsigned char c, const char *what) {
  int rc;
  switch (c) {
    case '{':
    case '[':
      if ((rc = push(r, c)) < 0) return rc;
      r->pos++;
      r->tok = c == '{' ? PL__JT_OBJ : PL__JT_ARR;
      r->state = c == '{' ? ST_KEY_OR_END : ST_VALUE_OR_END;
      return (int)r->tok;
    case '"':
      r->pos++;
      if ((rc = read_string(r)) < 0) return rc;
      r->tok = PL__JT_STR;
      return after_value(r);
    case 't':
      if ((rc = read_literal(r, "true", PL__JT_TRUE)) < 0) return rc;
      return after_value(r);
    case 'f':
      if ((rc = read_literal(r, "false", PL__JT_FALSE)) < 0) return rc;
      return after_value(r);
    case 'n':
      if ((rc = read_literal(r, "null", PL__JT_NULL)) < 0) return rc;
      return after_value(r);
    default:
      if (c == '-' || (c >= '0' && c <= '9')) {
        if ((rc = read_number(r)) < 0) return rc;
        r->tok = PL__JT_NUM;
        return after_value(r);
      }
      return syntax_fail(r, what);
  }
}

static int read_key(pl__jreader *r) {
  r->pos++;
  int rc = read_string(r);
  if (rc < 0) return rc;
  if ((rc = skip_ws(r)) < 0) return rc;
  if (r->pos == r->len || r->buf[r->pos] != ':') return syntax_fail(r, "':' after the key");
  r->pos++;
  r->tok = PL__JT_KEY;
  r->state = ST_VALUE;
  return PL__JT_KEY;
}

int pl__jr_next(pl__jreader *r) {
  if (r->failed) return r->failed;
  int rc;
  if (r->state == ST_VALUE && r->depth == 0 && offset_at(r) == 0) { /* a UTF-8 BOM */
    if ((rc = ensure(r, 3)) < 0) return failed(r, rc);
    if (r->len >= 3 && memcmp(r->buf, "\xef\xbb\xbf", 3) == 0) r->pos = 3;
  }
  for (;;) {
    if ((rc = skip_ws(r)) < 0) return rc;
    r->tok_off = offset_at(r);
    int have = r->pos < r->len;
    unsigned char c = have ? r->buf[r->pos] : 0;
    unsigned char top = r->depth ? r->stack[r->depth - 1] : 0;
    switch (r->state) {
      case ST_DONE:
        if (!have) {
          r->tok = PL__JT_END;
          return PL__JT_END;
        }
        return syntax_fail(r, "the end of the file after the top-level value");
      case ST_AFTER:
        if (have && c == ',') {
          r->pos++;
          r->state = top == '{' ? ST_KEY : ST_VALUE;
          continue;
        }
        if (have && ((c == '}' && top == '{') || (c == ']' && top == '[')))
          return close_container(r, c);
        return syntax_fail(r, top == '{' ? "',' or '}'" : "',' or ']'");
      case ST_KEY_OR_END:
        if (have && c == '}') return close_container(r, c);
        if (have && c == '"') return read_key(r);
        return syntax_fail(r, "a key (a string) or '}'");
      case ST_KEY:
        if (have && c == '"') return read_key(r);
        return syntax_fail(r, "a key (a string)");
      case ST_VALUE_OR_END:
        if (have && c == ']') return close_container(r, c);
        if (!have) return syntax_fail(r, "a value or ']'");
        return read_value(r, c, "a value or ']'");
      default: /* ST_VALUE */
        if (!have) return syntax_fail(r, "a value");
        return read_value(r, c, "a value");
    }
  }
}

int pl__jr_skip(pl__jreader *r) {
  if (r->failed) return r->failed;
  if (r->tok != PL__JT_OBJ && r->tok != PL__JT_ARR) return 0;
  size_t target = r->depth - 1;
  while (r->depth > target) {
    int t = pl__jr_next(r);
    if (t < 0) return t;
  }
  return 0;
}

int pl__jr_expect(pl__jreader *r, pl__jtok t, const char *what) {
  int got = pl__jr_next(r);
  if (got < 0) return got;
  return got == (int)t ? 0 : pl__jr_fail(r, what);
}

int pl__jr_key(pl__jreader *r) {
  int t = pl__jr_next(r);
  if (t < 0) return t;
  if (t == PL__JT_KEY) return 1;
  if (t == PL__JT_OBJ_END) return 0;
  return pl__jr_fail(r, "a key or '}'");
}

int pl__jr_elem(pl__jreader *r) {
  int t = pl__jr_next(r);
  if (t < 0) return t;
  return t == PL__JT_ARR_END ? 0 : 1;
}

int pl__jr_skip_value(pl__jreader *r) {
  int t = pl__jr_next(r);
  if (t < 0) return t;
  return pl__jr_skip(r);
}

int pl__jr_int(pl__jreader *r, int64_t min, int64_t max, int64_t *out, const char *what) {
  if (r->tok != PL__JT_NUM) return pl__jr_fail(r, what);
  int64_t v;
  if (r->num_int) {
    v = r->num_i;
  } else {
    double d = r->num_d;
    if (!(d >= -9.2e18 && d <= 9.2e18) || d != (double)(int64_t)d) return pl__jr_fail(r, what);
    v = (int64_t)d;
  }
  if (v < min || v > max) return pl__jr_fail(r, what);
  *out = v;
  return 0;
}

#define JR_WS(c) ((c) == ' ' || (c) == '\n' || (c) == '\r' || (c) == '\t')

size_t pl__jr_uints(pl__jreader *r, uint64_t *out, size_t n, const uint64_t *max,
                    const uint32_t *mult) {
  if (r->failed || !r->depth || r->stack[r->depth - 1] != '[') return 0;
  if (r->state != ST_AFTER && r->state != ST_VALUE_OR_END) return 0;
  size_t i = 0, d0 = 0;
  uint64_t tok_off = 0; /* the last number's */
  int after = r->state == ST_AFTER;
  while (i < n) {
    /* refill when less than a long element's worth is left; then scan in
     * locals, the reader's position stored once per run */
    if (r->len - r->pos <= 64 && !r->eof) {
      int e = ensure(r, 65);
      if (e < 0) {
        failed(r, e);
        break;
      }
    }
    const unsigned char *b = r->buf;
    size_t p = r->pos, len = r->len, safe = len > 64 ? len - 64 : 0;
    while (i < n && p < safe) {
      /* an element whole in the buffer: [ws ',' ] ws digits, then the byte after */
      size_t q = p;
      if (after) {
        while (q < len && JR_WS(b[q])) q++;
        if (q == len || b[q] != ',') goto stop;
        q++;
      }
      while (q < len && JR_WS(b[q])) q++;
      size_t s0 = q;
      uint64_t v = 0;
      while (q < len && q - s0 < 18 && (unsigned)(b[q] - '0') < 10)
        v = v * 10 + (uint64_t)(b[q++] - '0');
      if (q == s0 || q == len || (unsigned)(b[q] - '0') < 10 || b[q] == '.' || b[q] == 'e' ||
          b[q] == 'E' || (b[s0] == '0' && q - s0 > 1))
        goto stop;
      if (v > max[i] || (mult[i] > 1 && v % mult[i])) goto stop;
      out[i++] = v;
      d0 = s0;
      p = q;
      after = 1;
    }
    r->pos = p;
    if (i) tok_off = r->buf_off + d0;
    if (p >= safe && (r->eof || i == n)) {
      /* the last bytes of the input, or done: one at a time, checked */
      if (i == n) break;
      b = r->buf;
      size_t q = p;
      if (after) {
        while (q < len && JR_WS(b[q])) q++;
        if (q == len || b[q] != ',') break;
        q++;
      }
      while (q < len && JR_WS(b[q])) q++;
      size_t s0 = q;
      uint64_t v = 0;
      while (q < len && q - s0 < 18 && (unsigned)(b[q] - '0') < 10)
        v = v * 10 + (uint64_t)(b[q++] - '0');
      if (q == s0 || q == len || (unsigned)(b[q] - '0') < 10 || b[q] == '.' || b[q] == 'e' ||
          b[q] == 'E' || (b[s0] == '0' && q - s0 > 1))
        break;
      if (v > max[i] || (mult[i] > 1 && v % mult[i])) break;
      out[i++] = v;
      tok_off = r->buf_off + s0;
      r->pos = q;
      after = 1;
    }
    continue;
  stop:
    r->pos = p;
    if (i) tok_off = r->buf_off + d0;
    break;
  }
  if (i) {
    r->state = ST_AFTER;
    r->tok_off = tok_off;
    r->tok = PL__JT_NUM;
    r->num_int = 1;
    r->num_i = (int64_t)out[i - 1];
    r->num_d = (double)r->num_i;
  }
  return i;
}

int pl__jr_num(pl__jreader *r, double *out, const char *what) {
  if (r->tok != PL__JT_NUM || !isfinite(r->num_d)) return pl__jr_fail(r, what);
  *out = r->num_d;
  return 0;
}

int pl__jr_is(const pl__jreader *r, const char *s) {
  size_t n = strlen(s);
  return r->str.len == n && memcmp(r->str.data, s, n) == 0;
}
