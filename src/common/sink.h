/* Byte sinks for streaming writers: a buffered file descriptor, or memory.
 *
 * Writers put bytes through pl__sink_write(); the sink buffers and hands
 * full buffers to its backend. Errors are sticky: after the first failure
 * writes are dropped and pl__sink_finish() returns the (negative errno)
 * error, so a writer checks once at the end.
 */
#ifndef PL_COMMON_SINK_H
#define PL_COMMON_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "proflab/buf.h"

typedef struct pl__sink {
  int (*backend)(void *ctx, const void *p, size_t n); /* 0 or -errno */
  void *ctx;
  pl_buf buf; /* pending bytes; writers may also append to it directly */
  size_t flush_at;
  int error;      /* first error, negative errno */
  uint64_t total; /* bytes handed to the backend */
} pl__sink;

/* A sink writing to fd (the caller keeps ownership of fd). */
void pl__sink_init_fd(pl__sink *s, int *fd);
/* A sink handing its buffer to backend(ctx, bytes, n) whenever it holds
 * flush_at bytes (0: 64 KiB) and at the end (a WebSocket stream, ...). */
void pl__sink_init_backend(pl__sink *s, int (*backend)(void *ctx, const void *p, size_t n),
                           void *ctx, size_t flush_at);
/* A sink collecting everything in memory: the bytes are in s->buf after
 * pl__sink_finish() (total stays 0). */
void pl__sink_init_mem(pl__sink *s);
void pl__sink_write(pl__sink *s, const void *p, size_t n);
/* Flush if the buffer passed its threshold (cheap; call between elements). */
void pl__sink_maybe_flush(pl__sink *s);
/* Flush everything; returns 0 or the first error. */
int pl__sink_finish(pl__sink *s);
/* Release the buffer. */
void pl__sink_free(pl__sink *s);

#endif
