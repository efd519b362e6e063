/* Small process-wide helpers (see util.h). */
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

int pl__parse_u64n(const char *s, size_t n, uint64_t *out) {
  if (!s || n == 0) return -EINVAL;
  uint64_t v = 0;
  int overflow = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < '0' || c > '9') return -EINVAL;
    unsigned d = c - '0';
    if (v > (UINT64_MAX - d) / 10)
      overflow = 1;
    else
      v = v * 10 + d;
  }
  if (overflow) return -ERANGE;
  *out = v;
  return 0;
}

int pl__parse_u64(const char *s, uint64_t *out) {
  if (!s) return -EINVAL;
  return pl__parse_u64n(s, strlen(s), out);
}

uint64_t pl__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t pl__wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void pl__format_iso8601(uint64_t wall_ns, char *out, size_t n) {
  time_t secs = (time_t)(wall_ns / 1000000000u);
  unsigned ms = (unsigned)((wall_ns / 1000000u) % 1000u);
  struct tm tm;
  if (!gmtime_r(&secs, &tm)) {
    snprintf(out, n, "1970-01-01T00:00:00.000Z");
    return;
  }
  snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

void pl__format_compact_utc(uint64_t wall_ns, char *out, size_t n) {
  time_t secs = (time_t)(wall_ns / 1000000000u);
  struct tm tm;
  if (!gmtime_r(&secs, &tm)) {
    snprintf(out, n, "19700101T000000Z");
    return;
  }
  snprintf(out, n, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec);
}

uint64_t pl__rss_bytes(void) {
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n;
  do n = read(fd, buf, sizeof(buf) - 1);
  while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  /* "size resident shared ..." */
  char *p = strchr(buf, ' ');
  if (!p) return 0;
  p++;
  char *e = strchr(p, ' ');
  uint64_t pages;
  if (pl__parse_u64n(p, e ? (size_t)(e - p) : strlen(p), &pages) != 0) return 0;
  long ps = sysconf(_SC_PAGESIZE);
  return pages * (uint64_t)(ps > 0 ? ps : 4096);
}

int pl__secret_equal(const char *a, size_t alen, const char *b, size_t blen) {
  unsigned char da[SHA256_DIGEST_LENGTH], db[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)a, alen, da);
  SHA256((const unsigned char *)b, blen, db);
  return CRYPTO_memcmp(da, db, sizeof(da)) == 0;
}

void pl__hex(const unsigned char *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

int pl__write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    c += (size_t)w;
    n -= (size_t)w;
  }
  return 0;
}

void pl__proc_starttime(int pid, char *out, size_t n) {
  char path[64], buf[1024];
  out[0] = '\0';
  if (pid > 0)
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  else
    snprintf(path, sizeof(path), "/proc/self/stat");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t got = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (got <= 0) return;
  buf[got] = '\0';
  char *s = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
  if (!s) return;
  s++;
  for (int field = 2; *s && field < 22; s++) /* s at the space before field 3 */
    if (*s == ' ') field++;
  size_t l = strcspn(s, " ");
  if (l && l < n) {
    memcpy(out, s, l);
    out[l] = '\0';
  }
}

void pl__proc_cmdline(int pid, char *out, size_t n) {
  char path[64];
  out[0] = '\0';
  if (n < 2) return;
  if (pid > 0)
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
  else
    snprintf(path, sizeof(path), "/proc/self/cmdline");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t got = read(fd, out, n - 1);
  close(fd);
  if (got <= 0) return;
  while (got > 0 && out[got - 1] == '\0') got--;
  for (ssize_t i = 0; i < got; i++)
    if (out[i] == '\0') out[i] = ' ';
  out[got] = '\0';
}
