/* Byte sources for the profile readers: fd or memory, gunzip, look-ahead
 * (see read_source.h). */
#include "format/read_source.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { RAW_CHUNK = 1 << 16, ZIN_SIZE = 1 << 16 };

int pl__read_fail(pl__read_err *err, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
  }
  return -EINVAL;
}

int pl__read_errno(pl__read_err *err, int rc) {
  if (!err || err->msg[0] || rc >= 0) return rc;
  if (rc == -ENOMEM)
    snprintf(err->msg, sizeof(err->msg), "out of memory");
  else if (rc == -E2BIG) /* read_build.h's bounds */
    snprintf(err->msg, sizeof(err->msg),
             "too large for this build: over 2^30 frames in all stacks, or 2^32 frames, "
             "nodes or stacks");
  else
    snprintf(err->msg, sizeof(err->msg), "%s", strerror(-rc));
  return rc;
}

void pl__rsrc_init_fd(pl__rsrc *s, int fd, pl__read_err *err) {
  memset(s, 0, sizeof(*s));
  s->fd = fd;
  s->err = err;
}

void pl__rsrc_init_mem(pl__rsrc *s, const void *data, size_t len, pl__read_err *err) {
  memset(s, 0, sizeof(*s));
  s->fd = -1;
  s->mem = data;
  s->mem_len = len;
  s->err = err;
}

void pl__rsrc_set_progress(pl__rsrc *s, pl__rsrc_progress_fn fn, void *ctx) {
  s->progress = fn;
  s->progress_ctx = ctx;
  s->raw_total = 0;
  s->progress_next = PL__RSRC_PROGRESS_STEP;
  struct stat st;
  if (s->fd >= 0 && fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    off_t at = lseek(s->fd, 0, SEEK_CUR);
    if (at >= 0 && at <= st.st_size) s->raw_total = (uint64_t)(st.st_size - at);
  }
}

void pl__rsrc_free(pl__rsrc *s) {
  if (s->z) {
    inflateEnd(s->z);
    free(s->z);
  }
  free(s->zin);
  free(s->raw);
  free(s->la);
  s->z = NULL;
  s->zin = s->raw = s->la = NULL;
}

/* ---- raw bytes ---------------------------------------------------------- */

/* Counts r raw bytes read (0: the end) and tells the progress callback
 * every PL__RSRC_PROGRESS_STEP bytes and at the end. */
static void count_raw(pl__rsrc *s, ssize_t r) {
  s->raw_done += (uint64_t)r;
  if (!s->progress) return;
  if (r == 0 && s->progress_next != UINT64_MAX) s->progress_next = s->raw_done;
  if (s->raw_done >= s->progress_next) {
    /* the end is told once: no further call after it */
    s->progress_next = r == 0 ? UINT64_MAX : s->raw_done + PL__RSRC_PROGRESS_STEP;
    s->progress(s->progress_ctx, s->raw_done, s->raw_total);
  }
}

static ssize_t fd_read(pl__rsrc *s, void *buf, size_t n) {
  for (;;) {
    ssize_t r = read(s->fd, buf, n);
    if (r >= 0) {
      count_raw(s, r);
      return r;
    }
    if (errno != EINTR) return -errno;
  }
}

/* At least want raw bytes ahead in s->raw (fewer at the end): the count, or -errno. */
static ssize_t raw_peek(pl__rsrc *s, size_t want, const unsigned char **p) {
  if (s->fd < 0) {
    size_t have = s->mem_len - s->mem_pos;
    *p = s->mem + s->mem_pos;
    return (ssize_t)(have < want ? have : want);
  }
  while (s->raw_len - s->raw_pos < want && !s->raw_eof) {
    if (s->raw_pos) {
      memmove(s->raw, s->raw + s->raw_pos, s->raw_len - s->raw_pos);
      s->raw_len -= s->raw_pos;
      s->raw_pos = 0;
    }
    if (s->raw_cap - s->raw_len < RAW_CHUNK) {
      size_t cap = s->raw_len + RAW_CHUNK;
      unsigned char *nb = realloc(s->raw, cap);
      if (!nb) return -ENOMEM;
      s->raw = nb;
      s->raw_cap = cap;
    }
    ssize_t r = fd_read(s, s->raw + s->raw_len, s->raw_cap - s->raw_len);
    if (r < 0) return r;
    if (r == 0) s->raw_eof = 1;
    s->raw_len += (size_t)r;
  }
  size_t have = s->raw_len - s->raw_pos;
  *p = s->raw ? s->raw + s->raw_pos : (const unsigned char *)"";
  return (ssize_t)(have < want ? have : want);
}

static ssize_t raw_read(pl__rsrc *s, void *buf, size_t n) {
  if (s->max_read && n > s->max_read) n = s->max_read;
  if (s->fd < 0) {
    size_t have = s->mem_len - s->mem_pos;
    if (n > have) n = have;
    if (n) memcpy(buf, s->mem + s->mem_pos, n);
    s->mem_pos += n;
    return (ssize_t)n;
  }
  if (s->raw_pos < s->raw_len) {
    size_t have = s->raw_len - s->raw_pos;
    if (n > have) n = have;
    memcpy(buf, s->raw + s->raw_pos, n);
    s->raw_pos += n;
    return (ssize_t)n;
  }
  if (s->raw_eof) return 0;
  return fd_read(s, buf, n);
}

/* ---- gunzip ------------------------------------------------------------- */

int pl__rsrc_gunzip(pl__rsrc *s) {
  const unsigned char *p;
  ssize_t n = raw_peek(s, 2, &p);
  if (n < 0) return pl__read_errno(s->err, (int)n);
  if (n < 2 || p[0] != 0x1f || p[1] != 0x8b) return 0;
  s->z = calloc(1, sizeof(*s->z));
  s->zin = malloc(ZIN_SIZE);
  if (!s->z || !s->zin) goto nomem;
  if (inflateInit2(s->z, 15 + 16) != Z_OK) { /* gzip only */
    free(s->z);
    s->z = NULL;
    goto nomem;
  }
  return 1;
nomem:
  return pl__read_errno(s->err, -ENOMEM);
}

/* After a gzip member ended: another member follows (reset), or the end. */
static int next_member(pl__rsrc *s) {
  z_stream *z = s->z;
  if (z->avail_in < 2) {
    if (z->avail_in) memmove(s->zin, z->next_in, z->avail_in);
    size_t have = z->avail_in;
    while (have < 2) {
      ssize_t r = raw_read(s, s->zin + have, ZIN_SIZE - have);
      if (r < 0) return pl__read_errno(s->err, (int)r);
      if (r == 0) break;
      have += (size_t)r;
    }
    z->next_in = s->zin;
    z->avail_in = (uInt)have;
    if (have == 0) {
      s->z_done = 1;
      return 0;
    }
  }
  if (z->avail_in < 2 || z->next_in[0] != 0x1f || z->next_in[1] != 0x8b)
    return pl__read_fail(s->err,
                         "compressed offset %llu: expected the end of the gzip data or another "
                         "gzip member, found other bytes",
                         (unsigned long long)(s->z_raw_off - z->avail_in));
  inflateReset(z);
  return 0;
}

static ssize_t gz_read(pl__rsrc *s, unsigned char *buf, size_t n) {
  z_stream *z = s->z;
  if (n > (1u << 30)) n = 1u << 30;
  while (!s->z_done) {
    if (z->avail_in == 0) {
      ssize_t r = raw_read(s, s->zin, ZIN_SIZE);
      if (r < 0) return pl__read_errno(s->err, (int)r);
      if (r == 0)
        return pl__read_fail(s->err, "offset %llu: the gzip data ends early (truncated file?)",
                             (unsigned long long)(s->offset + (s->la_len - s->la_pos)));
      z->next_in = s->zin;
      z->avail_in = (uInt)r;
      s->z_raw_off += (uint64_t)r;
    }
    z->next_out = buf;
    z->avail_out = (uInt)n;
    int zr = inflate(z, Z_NO_FLUSH);
    size_t got = n - z->avail_out;
    if (zr == Z_STREAM_END) {
      int rc = next_member(s);
      if (rc < 0) return rc;
    } else if (zr == Z_NEED_DICT || zr == Z_DATA_ERROR || zr == Z_STREAM_ERROR) {
      return pl__read_fail(s->err, "compressed offset %llu: corrupt gzip data (%s)",
                           (unsigned long long)(s->z_raw_off - z->avail_in),
                           z->msg ? z->msg : "inflate failed");
    } else if (zr == Z_MEM_ERROR) {
      return pl__read_errno(s->err, -ENOMEM);
    }
    if (got) return (ssize_t)got;
  }
  return 0;
}

static ssize_t dec_read(pl__rsrc *s, unsigned char *buf, size_t n) {
  return s->z ? gz_read(s, buf, n) : raw_read(s, buf, n);
}

/* ---- the stream the reader sees ----------------------------------------- */

static int over_limit(pl__rsrc *s, uint64_t end) {
  if (!s->limit || end <= s->limit) return 0;
  pl__read_fail(s->err, "larger than %llu MiB%s: not read", (unsigned long long)(s->limit >> 20),
                s->z ? " uncompressed" : "");
  return 1;
}

ssize_t pl__rsrc_peek(pl__rsrc *s, size_t want, const unsigned char **p) {
  while (s->la_len - s->la_pos < want) {
    if (s->la_pos) {
      memmove(s->la, s->la + s->la_pos, s->la_len - s->la_pos);
      s->la_len -= s->la_pos;
      s->la_pos = 0;
    }
    if (s->la_cap < want) {
      unsigned char *nb = realloc(s->la, want);
      if (!nb) return pl__read_errno(s->err, -ENOMEM);
      s->la = nb;
      s->la_cap = want;
    }
    ssize_t r = dec_read(s, s->la + s->la_len, s->la_cap - s->la_len);
    if (r < 0) return r;
    if (r == 0) break;
    s->la_len += (size_t)r;
  }
  size_t have = s->la_len - s->la_pos;
  *p = s->la ? s->la + s->la_pos : (const unsigned char *)"";
  return (ssize_t)(have < want ? have : want);
}

ssize_t pl__rsrc_read(pl__rsrc *s, void *buf, size_t n) {
  ssize_t got;
  if (s->la_pos < s->la_len) {
    size_t have = s->la_len - s->la_pos;
    if (n > have) n = have;
    memcpy(buf, s->la + s->la_pos, n);
    s->la_pos += n;
    got = (ssize_t)n;
  } else {
    got = dec_read(s, buf, n);
    if (got < 0) return got;
  }
  if (over_limit(s, s->offset + (uint64_t)got)) return -EFBIG;
  s->offset += (uint64_t)got;
  return got;
}

int pl__rsrc_read_all(pl__rsrc *s, size_t max, unsigned char **data, size_t *len) {
  size_t cap = max < (1 << 16) ? max : 1 << 16, n = 0;
  unsigned char *buf = malloc(cap + 1);
  int rc = 0;
  *data = NULL;
  *len = 0;
  if (!buf) return pl__read_errno(s->err, -ENOMEM);
  for (;;) {
    if (n == cap) {
      if (cap >= max) {
        pl__read_fail(s->err, "larger than %zu MiB%s: not read", max >> 20,
                      s->z ? " uncompressed" : "");
        rc = -EFBIG;
        goto fail;
      }
      size_t ncap = cap > max / 2 ? max : cap * 2;
      unsigned char *nb = realloc(buf, ncap + 1);
      if (!nb) {
        rc = pl__read_errno(s->err, -ENOMEM);
        goto fail;
      }
      buf = nb;
      cap = ncap;
    }
    ssize_t r = pl__rsrc_read(s, buf + n, cap - n);
    if (r < 0) {
      rc = pl__read_errno(s->err, (int)r);
      goto fail;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  buf[n] = '\0';
  *data = buf;
  *len = n;
  return 0;
fail:
  free(buf);
  return rc;
}
