/* proflab — growable byte buffer and streaming JSON writer.
 *
 * A pl_buf owns its memory. Appends never fail loudly: the first allocation
 * failure makes the buffer "failed" (pl_buf_failed) and later appends do
 * nothing, so a caller checks once at the end instead of after every call.
 */
#ifndef PROFLAB_BUF_H
#define PROFLAB_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pl_buf {
  char *data; /* NUL-terminated when len > 0 or after any append */
  size_t len;
  size_t cap;
  int failed; /* sticky: an allocation failed */
} pl_buf;

/* Initialize an empty buffer. Never allocates. */
void pl_buf_init(pl_buf *b);
/* Release the buffer's memory and reset it to empty. */
void pl_buf_free(pl_buf *b);
/* Forget the contents but keep the memory. Clears the failed flag. */
void pl_buf_reset(pl_buf *b);
/* Make room for n more bytes. Returns 0 or -ENOMEM (and marks failed). */
int pl_buf_reserve(pl_buf *b, size_t n);
void pl_buf_append(pl_buf *b, const void *p, size_t n);
/* Write v in decimal at p (at most 20 bytes, no NUL); returns the end. */
char *pl_put_u64(char *p, uint64_t v);
void pl_buf_puts(pl_buf *b, const char *s);
void pl_buf_putc(pl_buf *b, char c);
void pl_buf_printf(pl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pl_buf_vprintf(pl_buf *b, const char *fmt, va_list ap);
static inline int pl_buf_failed(const pl_buf *b) { return b->failed; }
/* Hand the memory to the caller (free() it); the buffer becomes empty. */
char *pl_buf_steal(pl_buf *b, size_t *len);

/* Streaming JSON writer over a pl_buf: tracks commas and nesting so callers
 * write keys and values in order. Strings are escaped per RFC 8259; invalid
 * UTF-8 bytes are replaced with U+FFFD so output is always valid JSON. */
#define PL_JSON_MAX_DEPTH 32
typedef struct pl_json {
  pl_buf *out;
  int depth;
  unsigned char need_comma[PL_JSON_MAX_DEPTH];
  int after_key;
} pl_json;

void pl_json_init(pl_json *j, pl_buf *out);
void pl_json_obj_open(pl_json *j);
void pl_json_obj_close(pl_json *j);
void pl_json_arr_open(pl_json *j);
void pl_json_arr_close(pl_json *j);
void pl_json_key(pl_json *j, const char *key);
void pl_json_str(pl_json *j, const char *s);
void pl_json_strn(pl_json *j, const char *s, size_t n);
void pl_json_int(pl_json *j, int64_t v);
void pl_json_uint(pl_json *j, uint64_t v);
/* Finite doubles with up to `decimals` digits after the point; NaN/inf -> null. */
void pl_json_double(pl_json *j, double v, int decimals);
void pl_json_bool(pl_json *j, int v);
void pl_json_null(pl_json *j);
/* Convenience: key + value. */
void pl_json_kv_str(pl_json *j, const char *k, const char *v);
void pl_json_kv_int(pl_json *j, const char *k, int64_t v);
void pl_json_kv_uint(pl_json *j, const char *k, uint64_t v);
void pl_json_kv_double(pl_json *j, const char *k, double v, int decimals);
void pl_json_kv_bool(pl_json *j, const char *k, int v);
/* Append escaped string contents (no quotes) to a buffer. */
void pl_json_escape(pl_buf *b, const char *s, size_t n);

#ifdef __cplusplus
}
#endif
#endif
