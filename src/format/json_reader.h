/* A streaming JSON tokenizer (internal to src/format/): reads a pl__rsrc
 * through a fixed buffer and yields one token at a time, so files of
 * hundreds of MB are read in constant memory (jansson would build a tree
 * ten times the file). It checks the grammar as it goes (RFC 8259: commas,
 * colons, nesting, one top-level value, nothing after it), decodes strings
 * (escapes, UTF-16 surrogate pairs into UTF-8; a lone surrogate becomes
 * U+FFFD) and numbers (integers exactly, others as doubles).
 *
 * Errors name the byte offset and what was expected: "offset 1234:
 * expected ',' or ']', found the end of the file (truncated?)". After an
 * error the reader stays failed (every call returns the error).
 *
 * Typical use: pl__jr_expect(r, PL__JT_OBJ, ...), then pl__jr_key() in a
 * loop over the object's keys, pl__jr_elem() over an array's elements.
 */
#ifndef PL_FORMAT_JSON_READER_H
#define PL_FORMAT_JSON_READER_H

#include <stddef.h>
#include <stdint.h>

#include "format/read_source.h"
#include "proflab/buf.h"

typedef enum pl__jtok {
  PL__JT_END = 0, /* the end of the input, after the top-level value */
  PL__JT_OBJ,     /* { */
  PL__JT_OBJ_END, /* } */
  PL__JT_ARR,     /* [ */
  PL__JT_ARR_END, /* ] */
  PL__JT_KEY,     /* an object key: r->str */
  PL__JT_STR,     /* a string value: r->str */
  PL__JT_NUM,     /* a number: r->num_int / r->num_i, r->num_d */
  PL__JT_TRUE,
  PL__JT_FALSE,
  PL__JT_NULL,
} pl__jtok;

/* Default bounds: a string's decoded bytes, the nesting depth. */
#define PL__JR_MAX_STRING (64u << 20)
#define PL__JR_MAX_DEPTH 100000u

typedef struct pl__jreader {
  pl__rsrc *src;
  pl__read_err *err;
  unsigned char *buf; /* bytes read from src, [pos, len) not consumed */
  size_t pos, len, cap;
  uint64_t buf_off; /* stream offset of buf[0] */
  int eof;
  unsigned char *stack; /* per open container: '{' or '[' */
  size_t depth, stack_cap;
  int state; /* what may come next (json_reader.c) */
  int failed;
  /* the current token */
  pl__jtok tok;
  uint64_t tok_off; /* stream offset of its first byte */
  pl_buf str;       /* KEY/STR: decoded UTF-8, NUL-terminated; str.len (may hold NULs) */
  int num_int;      /* NUM: an integer that fits int64 (num_i); num_d always set */
  int64_t num_i;
  double num_d;
  /* bounds (set after init to change them) */
  size_t max_string, max_depth;
} pl__jreader;

/* A reader over src (which must outlive it); errors go to err. 0 or -ENOMEM. */
int pl__jr_init(pl__jreader *r, pl__rsrc *src, pl__read_err *err);
/* Releases the reader's buffers (not its source). */
void pl__jr_free(pl__jreader *r);

/* The next token (>= 0), or a negative errno: -EINVAL for bad JSON (the
 * message in err), -ENOMEM, an I/O error. */
int pl__jr_next(pl__jreader *r);

/* After pl__jr_next() returned OBJ or ARR: consumes the rest of that
 * container. After any other token: nothing. 0 or -errno. */
int pl__jr_skip(pl__jreader *r);

/* Records "offset N: expected <what>, found <the current token>" and
 * returns -EINVAL. */
int pl__jr_fail(pl__jreader *r, const char *what);

/* Records "offset N: <fmt...>" (N: the current token's offset), -EINVAL. */
int pl__jr_failf(pl__jreader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads the next token; it must be t, else pl__jr_fail(r, what). 0 or -errno. */
int pl__jr_expect(pl__jreader *r, pl__jtok t, const char *what);

/* Inside an object (after OBJ): reads the next key (1, the key in r->str)
 * or the object's end (0); -errno. The caller then reads or skips the value
 * (pl__jr_next + pl__jr_skip, or pl__jr_skip_value). */
int pl__jr_key(pl__jreader *r);

/* Inside an array (after ARR): reads the first token of the next element
 * (1, the token in r->tok) or the array's end (0); -errno. */
int pl__jr_elem(pl__jreader *r);

/* After a key: reads and skips its value. 0 or -errno. */
int pl__jr_skip_value(pl__jreader *r);

/* The current token must be an integer number in [min, max] (an integral
 * double counts): *out, 0; else pl__jr_fail(r, what). */
int pl__jr_int(pl__jreader *r, int64_t min, int64_t max, int64_t *out, const char *what);

/* Inside an array (after ARR or one of its elements): reads up to n more
 * elements, fast, while each is a plain non-negative integer (at most 18
 * digits, no fraction or exponent) with out[i] <= max[i] and, when mult[i]
 * > 1, a multiple of mult[i]. Returns how many it read (0..n): it stops
 * before anything else (the array's end, another kind of value, a value
 * outside its bounds, bad JSON), which the caller then reads the ordinary
 * way (pl__jr_elem), so errors and their offsets are the same as without
 * it. After it returns k > 0 the current token is the k-th number. For
 * arrays of millions of integers (a .heapsnapshot's nodes and edges). */
size_t pl__jr_uints(pl__jreader *r, uint64_t *out, size_t n, const uint64_t *max,
                    const uint32_t *mult);

/* The current token must be a number: *out, 0; else pl__jr_fail(r, what). */
int pl__jr_num(pl__jreader *r, double *out, const char *what);

/* Whether the current KEY or STR token equals the NUL-terminated s. */
int pl__jr_is(const pl__jreader *r, const char *s);

/* d rounded to the nearest integer, clamped to +-9e18 (no libm). */
static inline int64_t pl__round_i64(double d) {
  if (!(d > -9e18)) return d < 0 ? (int64_t)-9e18 : 0; /* NaN: 0 */
  if (d > 9e18) return (int64_t)9e18;
  return (int64_t)(d < 0 ? d - 0.5 : d + 0.5);
}

/* d >= 0 rounded to the nearest integer, UINT64_MAX from 1.8e19 (NaN: 0). */
static inline uint64_t pl__round_u64(double d) {
  if (!(d > 0)) return 0;
  return d >= 1.8e19 ? UINT64_MAX : (uint64_t)(d + 0.5);
}

#endif
