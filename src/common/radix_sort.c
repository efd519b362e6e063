/* A stable sort of (key, index) pairs by key (see radix_sort.h). */
#include "common/radix_sort.h"

#include <stdlib.h>
#include <string.h>

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

void pl__radix_sort_records(void *base, size_t n, size_t size, size_t key_off, uint64_t bias,
                            int (*cmp)(const void *, const void *)) {
  unsigned char *v = base;
  pl__key_ix *a = n > 64 && n <= SIZE_MAX / sizeof(*a) ? malloc(n * sizeof(*a)) : NULL;
  pl__key_ix *b = a ? malloc(n * sizeof(*b)) : NULL;
  unsigned char *out = b && n <= SIZE_MAX / size ? malloc(n * size) : NULL;
  if (!out) {
    free(a);
    free(b);
    qsort(base, n, size, cmp);
    return;
  }
  uint64_t max = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t key;
    memcpy(&key, v + i * size + key_off, sizeof(key));
    a[i].key = key - bias;
    a[i].ix = i;
    if (a[i].key > max) max = a[i].key;
  }
  const pl__key_ix *order = pl__radix_sort(a, b, n, max);
  for (size_t i = 0; i < n; i++) memcpy(out + i * size, v + order[i].ix * size, size);
  memcpy(base, out, n * size);
  free(a);
  free(b);
  free(out);
}
