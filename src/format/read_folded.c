/* FlameGraph folded-stacks reader ("main;work;leaf 42" lines; see
 * readers.h): streamed line by line, frames by name. */
#include "format/readers.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "format/cpu_common.h"
#include "format/read_build.h"

enum { CHUNK = 1 << 18 };
#define MAX_LINE ((size_t)16 << 20)
#define PERIOD_NS 1000000u /* folded stacks carry no times: 1 ms per sample */

typedef struct fd_ctx {
  pl__rb b;
  pl__read_err *err;
  pl_cpu_profile *p;
  pl_cpu_sample *samples;
  size_t nsamples, cap;
  uint64_t t;
  uint32_t empty;
} fd_ctx;

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* One line s[0..n) (no newline; s[n] writable), number line_no at offset off. */
static int read_line(fd_ctx *c, char *s, size_t n, uint64_t line_no, uint64_t off) {
  while (n && is_space(s[n - 1])) n--;
  size_t b = 0;
  while (b < n && is_space(s[b])) b++;
  if (b == n) return 0; /* blank */
  size_t sp = n;
  while (sp > b && s[sp - 1] != ' ' && s[sp - 1] != '\t') sp--;
  if (sp == b)
    return pl__read_fail(c->err,
                         "line %" PRIu64 " (offset %" PRIu64
                         "): expected \"frame;frame;... COUNT\", "
                         "found no count after the stack",
                         line_no, off);
  uint64_t w = 0; /* at most 2^32 - 1: a model sample's weight */
  for (size_t i = sp; i < n; i++) {
    if (s[i] < '0' || s[i] > '9' || (w = w * 10 + (uint64_t)(s[i] - '0')) > UINT32_MAX)
      return pl__read_fail(c->err,
                           "line %" PRIu64 " (offset %" PRIu64
                           "): expected a sample count (a whole number up to 4294967295) at the "
                           "end of the line, found \"%.*s\"",
                           line_no, off + sp, (int)(n - sp < 24 ? n - sp : 24), s + sp);
  }
  size_t e = sp;
  while (e > b && is_space(s[e - 1])) e--;
  if (!w) return 0;
  s[e] = '\0';
  uint32_t node = PL__RB_ROOT;
  size_t nframes = 0;
  uint32_t first = 0;
  for (size_t i = b; i <= e; i++) { /* frames, root first */
    size_t j = i;
    while (j < e && s[j] != ';') j++;
    s[j] = '\0';
    int64_t name = j > i ? pl__rb_str(&c->b, s + i, j - i) : pl__rb_str(&c->b, "(unknown)", 9);
    int64_t f = name < 0 ? name : pl__rb_frame(&c->b, (uint32_t)name, c->empty, c->empty, 0, 0, 0);
    int64_t t = f < 0 ? f : pl__rb_push(&c->b, node, (uint32_t)f);
    if (t < 0) return pl__read_errno(c->err, (int)t);
    if (!nframes++) first = (uint32_t)f;
    node = (uint32_t)t;
    i = j;
  }
  int64_t st;
  const char *one = nframes == 1 ? c->b.frames[first].function : "";
  if (strcmp(one, "(idle)") == 0) {
    st = PL_STACK_IDLE;
  } else if (strcmp(one, "(program)") == 0) {
    st = PL_STACK_PROGRAM;
  } else {
    st = pl__rb_stack(&c->b, node);
    if (st < 0) return pl__read_errno(c->err, (int)st);
  }
  if (PL__RESERVE(c->samples, c->cap, c->nsamples + 1)) return pl__read_errno(c->err, -ENOMEM);
  c->samples[c->nsamples++] = (pl_cpu_sample){c->t, (uint32_t)st, (uint32_t)w, 0};
  if (st == PL_STACK_IDLE) c->p->idle_samples++;
  uint64_t dt = w * PERIOD_NS;
  c->t = c->t > UINT64_MAX - dt ? UINT64_MAX : c->t + dt;
  return 0;
}

static int read_lines(fd_ctx *c, pl__rsrc *src) {
  size_t cap = CHUNK, len = 0, start = 0;
  char *buf = malloc(cap + 1);
  if (!buf) return pl__read_errno(c->err, -ENOMEM);
  uint64_t line_no = 1, base = 0; /* stream offset of buf[0] */
  int rc = 0, eof = 0;
  while (!rc) {
    char *nl = len > start ? memchr(buf + start, '\n', len - start) : NULL;
    if (nl) {
      rc = read_line(c, buf + start, (size_t)(nl - (buf + start)), line_no++, base + start);
      start = (size_t)(nl - buf) + 1;
      continue;
    }
    if (eof) {
      if (len > start) {
        buf[len] = '\0';
        rc = read_line(c, buf + start, len - start, line_no, base + start);
      }
      break;
    }
    if (start) { /* keep the partial line at the front */
      memmove(buf, buf + start, len - start);
      len -= start;
      base += start;
      start = 0;
    }
    if (len == cap) {
      if (cap >= MAX_LINE) {
        rc = pl__read_fail(c->err, "line %" PRIu64 " (offset %" PRIu64 "): longer than %zu MiB",
                           line_no, base, MAX_LINE >> 20);
        break;
      }
      char *nb = realloc(buf, cap * 2 + 1);
      if (!nb) {
        rc = pl__read_errno(c->err, -ENOMEM);
        break;
      }
      buf = nb;
      cap *= 2;
    }
    ssize_t got = pl__rsrc_read(src, buf + len, cap - len);
    if (got < 0) {
      rc = pl__read_errno(c->err, (int)got);
      break;
    }
    if (got == 0) eof = 1;
    len += (size_t)got;
  }
  free(buf);
  return rc;
}

static char *dup_cpu(void *model, const char *s) { return pl_cpu_profile_strdup(model, s); }

int pl__folded_read(pl__rsrc *src, pl_cpu_profile **out, pl__read_err *err) {
  fd_ctx c;
  memset(&c, 0, sizeof(c));
  c.err = err;
  *out = NULL;
  c.p = pl_cpu_profile_new();
  if (!c.p) return pl__read_errno(err, -ENOMEM);
  pl__rb_init(&c.b, dup_cpu, c.p);
  c.t = 1000000000u; /* a start of 0 makes DevTools draw nothing */
  int64_t empty = pl__rb_str(&c.b, "", 0);
  int rc = empty < 0 ? pl__read_errno(err, -ENOMEM) : 0;
  c.empty = (uint32_t)empty;
  if (!rc) rc = read_lines(&c, src);
  if (!rc && !c.samples && !(c.samples = malloc(sizeof(*c.samples))))
    rc = pl__read_errno(err, -ENOMEM);
  if (!rc) {
    rc = pl_cpu_profile_adopt(c.p, c.samples);
    if (rc) c.samples = NULL; /* freed by adopt */
    rc = pl__read_errno(err, rc);
  }
  if (!rc) {
    pl_cpu_profile *p = c.p;
    p->samples = c.samples;
    p->nsamples = c.nsamples;
    c.samples = NULL;
    p->start_ns = 1000000000u;
    p->end_ns = c.t;
    p->period_ns = PERIOD_NS;
    p->mode = "cpu";
    rc = pl__read_errno(err, pl__rb_finish_cpu(&c.b, p));
  }
  free(c.samples);
  pl__rb_free(&c.b);
  if (rc) {
    pl_cpu_profile_free(c.p);
    return rc;
  }
  *out = c.p;
  return 0;
}
