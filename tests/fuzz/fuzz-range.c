/* libFuzzer target: the artifact download's Range and If-Range parsing
 * (parse_range and if_range_matches in src/lab/artifacts.c, static there:
 * the file is included whole; the rest of it links against the library's
 * objects).
 *
 * Input: 8 bytes of file size (little endian; a few small sizes are made
 * likely), then the Range header's value, a NUL, the If-Range value (no
 * NUL: no If-Range).
 *
 * Checks against the rules of RFC 9110 14.1.2 and 13.1.5, computed here a
 * second, simpler way: a satisfiable range lies inside the file and is not
 * empty; "bytes=A-B" gives start A and end min(B, size-1); "bytes=-N" the
 * last N bytes; several ranges, junk, B < A are ignored (whole file); a
 * start at or past the end is unsatisfiable; If-Range matches only our
 * strong ETag or the exact Last-Modified date. */
#include "../../src/lab/artifacts.c"

#include <ctype.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A second reading of a single range, to compare with. */
static int ref_num(const char *s, const char *e, uint64_t *out) {
  if (s == e || e - s > 19) return -1; /* 19 digits always fit */
  uint64_t v = 0;
  for (const char *p = s; p < e; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  *out = v;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 8) return 0;
  uint64_t fsize;
  memcpy(&fsize, data, 8);
  if (data[7] < 0xf0) fsize %= 1u << (data[7] % 24); /* mostly small files */
  data += 8;
  size -= 8;
  char *buf = malloc(size + 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  const char *range = buf;
  size_t rl = strlen(buf);
  const char *ifr = rl < size ? buf + rl + 1 : NULL;

  uint64_t start = 7, len = 7;
  int res = parse_range(range, fsize, &start, &len);
  if (res == RANGE_OK) {
    if (len == 0 || start >= fsize || len > fsize - start) abort();
  } else if (res != RANGE_NONE && res != RANGE_UNSATISFIABLE) {
    abort();
  }
  /* the reference for the plainest spelling: "bytes=" digits "-" digits */
  if (strncmp(range, "bytes=", 6) == 0) {
    const char *s = range + 6, *dash = strchr(s, '-');
    uint64_t a = 0, b = 0;
    if (dash && !strchr(s, ',') && !strpbrk(s, " \t")) {
      int ha = ref_num(s, dash, &a) == 0, hb = ref_num(dash + 1, s + strlen(s), &b) == 0;
      int bad_a = dash > s && !ha, bad_b = dash[1] && !hb;
      if (!bad_a && !bad_b && ha && hb && b >= a) {
        if (a >= fsize) {
          if (res != RANGE_UNSATISFIABLE) abort();
        } else {
          uint64_t last = b < fsize - 1 ? b : fsize - 1;
          if (res != RANGE_OK || start != a || len != last - a + 1) abort();
        }
      } else if (!bad_a && !bad_b && ha && hb && b < a && res != RANGE_NONE) {
        abort();
      } else if (!bad_b && dash == s && hb) { /* suffix */
        if (b == 0 || fsize == 0) {
          if (res != RANGE_UNSATISFIABLE) abort();
        } else {
          uint64_t st = b >= fsize ? 0 : fsize - b;
          if (res != RANGE_OK || start != st || len != fsize - st) abort();
        }
      }
    }
  }

  struct stat st;
  memset(&st, 0, sizeof(st));
  st.st_ino = 1234;
  st.st_size = (off_t)(fsize & INT64_MAX);
  st.st_mtim.tv_sec = 1700000000;
  char etag[80], lm[40];
  make_etag(&st, etag, sizeof(etag));
  http_date(st.st_mtim.tv_sec, lm, sizeof(lm));
  int m = if_range_matches(ifr, etag, lm);
  if (!ifr && !m) abort();
  if (ifr && m) {
    const char *v = ifr;
    while (*v == ' ' || *v == '\t') v++;
    if (strcmp(v, etag) != 0 && strcmp(v, lm) != 0) abort(); /* only exact validators */
  }
  /* a date far away: http_date stays within its buffer */
  char d[40];
  http_date((time_t)fsize, d, sizeof(d));
  if (strlen(d) >= sizeof(d)) abort();
  free(buf);
  return 0;
}
