/* Decimal formatting of an unsigned integer, inline for writers' loops
 * that format millions of them (a heap snapshot's rows). */
#ifndef PL_COMMON_PUT_U64_H
#define PL_COMMON_PUT_U64_H

#include <stdint.h>

/* "00".."99", two characters each (buf.c). */
extern const char pl__digit_pairs[201];
/* 10^0..10^19 (buf.c). */
extern const uint64_t pl__powers_of_10[20];

/* Write v in decimal at p (at most 20 bytes, no NUL); returns the end.
 * pl_put_u64 (proflab/buf.h) is this, not inline. */
static inline char *pl__put_u64(char *p, uint64_t v) {
  if (v < 10) {
    *p = (char)('0' + v);
    return p + 1;
  }
  if (v < 100) { /* most numbers of a heap snapshot's rows */
    p[0] = pl__digit_pairs[v * 2];
    p[1] = pl__digit_pairs[v * 2 + 1];
    return p + 2;
  }
  /* digits: log10 from the bit length (1233/4096 ~ log10(2)), corrected by one compare */
  unsigned t = ((unsigned)(64 - __builtin_clzll(v)) * 1233u) >> 12;
  unsigned n = t + (v >= pl__powers_of_10[t]);
  char *end = p + n, *q = end;
  while (v >= 100) {
    unsigned k = (unsigned)(v % 100) * 2;
    v /= 100;
    *--q = pl__digit_pairs[k + 1];
    *--q = pl__digit_pairs[k];
  }
  if (v >= 10) {
    *--q = pl__digit_pairs[v * 2 + 1];
    *--q = pl__digit_pairs[v * 2];
  } else {
    *--q = (char)('0' + v);
  }
  return end;
}

#endif
