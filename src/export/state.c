/* Export resume state: parse and format (see state.h). */
#include "export/state.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char header[] = "proflab-export-state 1";

static int parse_u64(const char *p, size_t n, uint64_t *v) {
  if (n == 0 || n > 20) return -1;
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    unsigned d = (unsigned)(p[i] - '0');
    if (x > (UINT64_MAX - d) / 10) return -1;
    x = x * 10 + d;
  }
  *v = x;
  return 0;
}

static int copy_field(char *dst, size_t dstsz, const char *p, size_t n) {
  if (n == 0 || n >= dstsz || memchr(p, '\0', n)) return -1;
  memcpy(dst, p, n);
  dst[n] = '\0';
  return 0;
}

int pl__export_state_parse(const char *text, size_t len, pl__export_state *st) {
  memset(st, 0, sizeof(*st));
  enum {
    F_REMOTE = 1,
    F_HELPER = 2,
    F_SIZE = 4,
    F_SUM = 8,
    F_IDENT = 16,
    F_OFFSET = 32,
    F_CHUNK = 64,
    F_ALL = 127
  };
  unsigned seen = 0;
  size_t pos = 0;
  int line_no = 0;
  while (pos < len) {
    const char *line = text + pos;
    const char *nl = memchr(line, '\n', len - pos);
    if (!nl) return -EINVAL; /* every line ends with a newline: a cut file is invalid */
    size_t n = (size_t)(nl - line);
    pos += n + 1;
    if (line_no++ == 0) {
      if (n != sizeof(header) - 1 || memcmp(line, header, n) != 0) return -EINVAL;
      continue;
    }
    const char *eq = memchr(line, '=', n);
    if (!eq) return -EINVAL;
    size_t kn = (size_t)(eq - line), vn = n - kn - 1;
    const char *v = eq + 1;
    unsigned bit;
    int r;
#define KEY(s) (kn == sizeof(s) - 1 && memcmp(line, s, kn) == 0)
    if (KEY("remote"))
      bit = F_REMOTE, r = copy_field(st->remote, sizeof(st->remote), v, vn);
    else if (KEY("helper"))
      bit = F_HELPER, r = copy_field(st->helper, sizeof(st->helper), v, vn);
    else if (KEY("size"))
      bit = F_SIZE, r = parse_u64(v, vn, &st->size);
    else if (KEY("sum"))
      bit = F_SUM, r = copy_field(st->sum, sizeof(st->sum), v, vn);
    else if (KEY("ident"))
      bit = F_IDENT, r = copy_field(st->ident, sizeof(st->ident), v, vn);
    else if (KEY("offset"))
      bit = F_OFFSET, r = parse_u64(v, vn, &st->offset);
    else if (KEY("chunk"))
      bit = F_CHUNK, r = parse_u64(v, vn, &st->chunk);
    else
      return -EINVAL;
#undef KEY
    if (r != 0 || (seen & bit)) return -EINVAL;
    seen |= bit;
  }
  if (seen != F_ALL) return -EINVAL;
  if (st->offset > st->size || st->chunk == 0) return -EINVAL;
  if (!((st->sum[0] == 's' || st->sum[0] == 'k') && st->sum[1] == ':')) return -EINVAL;
  return 0;
}

long pl__export_state_format(const pl__export_state *st, char *out, size_t outsz) {
  if (strchr(st->remote, '\n') || strchr(st->helper, '\n') || strchr(st->sum, '\n') ||
      strchr(st->ident, '\n'))
    return -1;
  int n = snprintf(out, outsz,
                   "%s\nremote=%s\nhelper=%s\nsize=%llu\nsum=%s\nident=%s\noffset=%llu\n"
                   "chunk=%llu\n",
                   header, st->remote, st->helper, (unsigned long long)st->size, st->sum, st->ident,
                   (unsigned long long)st->offset, (unsigned long long)st->chunk);
  if (n < 0 || (size_t)n >= outsz) return -1;
  return n;
}
