/* A stable sort of (key, index) pairs by key (see radix_sort.h). */
#include "common/radix_sort.h"

pl__key_ix *pl__radix_sort(pl__key_ix *v, pl__key_ix *tmp, size_t n, uint64_t max_key) {
  enum { BITS = 11, B = 1 << BITS };
  pl__key_ix *src = v, *dst = tmp;
  for (unsigned shift = 0; shift < 64 && (max_key >> shift); shift += BITS) {
    size_t count[B + 1] = {0};
    for (size_t i = 0; i < n; i++) count[((src[i].key >> shift) & (B - 1)) + 1]++;
    for (size_t d = 0; d < B; d++) count[d + 1] += count[d];
    for (size_t i = 0; i < n; i++) dst[count[(src[i].key >> shift) & (B - 1)]++] = src[i];
    pl__key_ix *x = src;
    src = dst;
    dst = x;
  }
  return src;
}
