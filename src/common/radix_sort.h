/* A stable sort of (key, index) pairs by key: LSD radix, no comparisons. */
#ifndef PL_COMMON_RADIX_SORT_H
#define PL_COMMON_RADIX_SORT_H

#include <stddef.h>
#include <stdint.h>

typedef struct pl__key_ix {
  uint64_t key;
  size_t ix;
} pl__key_ix;

/* Sorts v[0..n) by key, pairs with equal keys in their order: 11 bits a
 * pass, as many passes as max_key (no key above it) needs, so keys below
 * 2^22 take two. tmp is scratch of n pairs. Returns v or tmp, whichever
 * holds the result. Several times faster than qsort from a few thousand
 * pairs on. */
pl__key_ix *pl__radix_sort(pl__key_ix *v, pl__key_ix *tmp, size_t n, uint64_t max_key);

/* Sorts the n records of size bytes at base, stably, by the unsigned
 * 64-bit field at byte offset key_off less bias (no record's field below
 * bias): (key, index) pairs through pl__radix_sort, then one move of the
 * records into place. Up to 64 records, or when its buffers cannot be had,
 * qsort with cmp, which must order as the keys do and break ties as the
 * records stand for the result to be the same. */
void pl__radix_sort_records(void *base, size_t n, size_t size, size_t key_off, uint64_t bias,
                            int (*cmp)(const void *, const void *));

#endif
