/* Small process-wide helpers: number parsing, clocks, process memory. */
#ifndef PL_COMMON_UTIL_H
#define PL_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define PL__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Parse a plain unsigned decimal: digits only (no sign, space, hex, empty).
 * Returns 0, -EINVAL (not a number) or -ERANGE (does not fit in uint64). */
int pl__parse_u64(const char *s, uint64_t *out);
/* Same over a length-delimited string. */
int pl__parse_u64n(const char *s, size_t n, uint64_t *out);

/* Monotonic clock in nanoseconds / microseconds. */
uint64_t pl__now_ns(void);
static inline uint64_t pl__now_us(void) { return pl__now_ns() / 1000; }
/* Wall clock, nanoseconds since the epoch. */
uint64_t pl__wall_ns(void);
/* "2026-11-25T19:42:10.123Z" into out (at least 32 bytes). */
void pl__format_iso8601(uint64_t wall_ns, char *out, size_t n);
/* "20261125T194210Z" (for file names) into out (at least 20 bytes). */
void pl__format_compact_utc(uint64_t wall_ns, char *out, size_t n);

/* Resident set size of this process in bytes, or 0 if unknown. */
uint64_t pl__rss_bytes(void);

/* Constant-time equality of two strings of any lengths: compares SHA-256
 * digests, so neither content nor length leaks through timing. */
int pl__secret_equal(const char *a, size_t alen, const char *b, size_t blen);

/* FNV-1a of the NUL-terminated string s (64-bit): the one string hash of
 * the tree (tables mix it further with pl__mix64 where they need all bits). */
static inline uint64_t pl__fnv1a(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
  return h;
}

/* splitmix64's finalizer: spreads low-entropy keys over all bits. */
static inline uint64_t pl__mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

/* write(2) all of p, retrying on EINTR and short writes. 0 or -errno. */
int pl__write_all(int fd, const void *p, size_t n);

/* The start time of process pid (0: this process) in clock ticks since
 * boot, field 22 of /proc/PID/stat, as text into out; "" when unreadable.
 * With the pid it tells a process from a later one that reused the pid. */
void pl__proc_starttime(int pid, char *out, size_t n);

/* The command line of process pid (0: this process), /proc/PID/cmdline
 * with its NULs as spaces, into out; "" when unreadable. */
void pl__proc_cmdline(int pid, char *out, size_t n);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void pl__hex(const unsigned char *in, size_t n, char *out);

#endif
