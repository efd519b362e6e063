/* Byte sinks (see sink.h). */
#include "common/sink.h"

#include "common/util.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static int fd_backend(void *ctx, const void *p, size_t n) {
  return pl__write_all(*(int *)ctx, p, n);
}

void pl__sink_init_fd(pl__sink *s, int *fd) {
  memset(s, 0, sizeof(*s));
  pl_buf_init(&s->buf);
  s->backend = fd_backend;
  s->ctx = fd;
  s->flush_at = 1 << 16;
}

void pl__sink_init_backend(pl__sink *s, int (*backend)(void *ctx, const void *p, size_t n),
                           void *ctx, size_t flush_at) {
  memset(s, 0, sizeof(*s));
  pl_buf_init(&s->buf);
  s->backend = backend;
  s->ctx = ctx;
  s->flush_at = flush_at ? flush_at : 1 << 16;
}

void pl__sink_init_mem(pl__sink *s) {
  memset(s, 0, sizeof(*s));
  pl_buf_init(&s->buf);
  s->flush_at = SIZE_MAX;
}

static void flush(pl__sink *s) {
  if (pl_buf_failed(&s->buf) && !s->error) s->error = -ENOMEM;
  if (!s->backend || s->error) return;
  if (s->buf.len) {
    int rc = s->backend(s->ctx, s->buf.data, s->buf.len);
    if (rc)
      s->error = rc;
    else
      s->total += s->buf.len;
  }
  pl_buf_reset(&s->buf);
}

void pl__sink_write(pl__sink *s, const void *p, size_t n) {
  if (s->error) return;
  pl_buf_append(&s->buf, p, n);
  if (s->buf.len >= s->flush_at) flush(s);
}

void pl__sink_maybe_flush(pl__sink *s) {
  if (s->buf.len >= s->flush_at || pl_buf_failed(&s->buf)) flush(s);
}

int pl__sink_finish(pl__sink *s) {
  if (s->backend)
    flush(s);
  else if (pl_buf_failed(&s->buf) && !s->error)
    s->error = -ENOMEM;
  return s->error;
}

void pl__sink_free(pl__sink *s) { pl_buf_free(&s->buf); }
