/* Byte sources for the profile readers (internal to src/format/): a file
 * descriptor or memory, optionally gunzipped on the fly, with look-ahead so
 * a reader can detect the format from the first bytes before it consumes
 * them; and the readers' error message ("offset N: expected X, found Y").
 *
 * Offsets count bytes of the stream the reader sees: after gunzip, the
 * uncompressed bytes. A source is used by one thread at a time.
 */
#ifndef PL_FORMAT_READ_SOURCE_H
#define PL_FORMAT_READ_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <zlib.h>

/* A reader's error: one line, without the file name (the caller adds it). */
typedef struct pl__read_err {
  char msg[320];
} pl__read_err;

/* Formats msg into err (truncated to fit) and returns -EINVAL. NULL err: only
 * returns. */
int pl__read_fail(pl__read_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sets a message for a negative errno (out of memory, an I/O error) unless
 * err already holds one; returns rc. */
int pl__read_errno(pl__read_err *err, int rc);

/* Told how far reading got: done raw bytes of the fd read so far (before
 * gunzip), of total (0: unknown). Called from the reading thread, at most
 * once per PL__RSRC_PROGRESS_STEP bytes and once at the end of the fd; it
 * must be cheap and must not touch the source. */
typedef void (*pl__rsrc_progress_fn)(void *ctx, uint64_t done, uint64_t total);

#define PL__RSRC_PROGRESS_STEP (1u << 20)

typedef struct pl__rsrc {
  /* the raw bytes: fd >= 0, or mem[0..mem_len) */
  int fd;
  const unsigned char *mem;
  size_t mem_len, mem_pos;
  /* raw look-ahead (read from fd, not yet consumed) */
  unsigned char *raw;
  size_t raw_pos, raw_len, raw_cap;
  int raw_eof;
  /* gunzip, once pl__rsrc_gunzip() found gzip data */
  z_stream *z;
  unsigned char *zin;
  int z_done;         /* the last gzip member ended and no raw bytes follow */
  uint64_t z_raw_off; /* compressed bytes given to zlib (for messages) */
  /* look-ahead of the stream the reader sees (pl__rsrc_peek) */
  unsigned char *la;
  size_t la_pos, la_len, la_cap;
  uint64_t offset; /* bytes of that stream consumed so far */
  uint64_t limit;  /* bytes of that stream allowed at most (0: no limit) */
  size_t max_read; /* raw bytes per read at most (0: no bound; tests use it for short reads) */
  pl__read_err *err;
  /* progress (pl__rsrc_set_progress): raw bytes read from fd so far */
  pl__rsrc_progress_fn progress;
  void *progress_ctx;
  uint64_t raw_done, raw_total, progress_next;
} pl__rsrc;

/* A source reading fd (the caller keeps and closes it). Never fails. */
void pl__rsrc_init_fd(pl__rsrc *s, int fd, pl__read_err *err);
/* A source over data[0..len) (borrowed). Never fails. */
void pl__rsrc_init_mem(pl__rsrc *s, const void *data, size_t len, pl__read_err *err);
/* Calls fn(ctx, done, total) as raw bytes are read from the fd (see
 * pl__rsrc_progress_fn); total is what fstat says is left of a regular file
 * from its current offset, else 0. Before anything is read; a memory
 * source never calls it. */
void pl__rsrc_set_progress(pl__rsrc *s, pl__rsrc_progress_fn fn, void *ctx);
/* Releases the source's buffers (not the fd). */
void pl__rsrc_free(pl__rsrc *s);

/* Before anything was read: when the raw bytes start with gzip's magic,
 * reads through gunzip from then on (several members follow each other as
 * gzip(1) does). 1 when gzip, 0 when not, or -errno. */
int pl__rsrc_gunzip(pl__rsrc *s);

/* Up to want bytes of the stream ahead, not consumed: *p points at them
 * until the next call on s. Returns how many there are (fewer only at the
 * end of the stream), or -errno (-EINVAL: corrupt gzip data, message in
 * err). */
ssize_t pl__rsrc_peek(pl__rsrc *s, size_t want, const unsigned char **p);

/* Reads up to n bytes of the stream into buf: how many (0 at the end), or
 * -errno as pl__rsrc_peek. -EFBIG (with a message) past s->limit. */
ssize_t pl__rsrc_read(pl__rsrc *s, void *buf, size_t n);

/* Reads the whole rest of the stream into a malloc'd buffer (*data, *len;
 * NUL-terminated), at most max bytes (-EFBIG with a message beyond). */
int pl__rsrc_read_all(pl__rsrc *s, size_t max, unsigned char **data, size_t *len);

#endif
