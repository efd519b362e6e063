/* Three allocation sites for the accuracy tests: distinct named functions
 * that each hold `target` bytes live in blocks of mixed sizes. */
#ifndef PL_TESTS_HEAP_SITES_H
#define PL_TESTS_HEAP_SITES_H

#include <stddef.h>
#include <stdint.h>

#define SITE_MAX_BLOCKS 65536

typedef struct site_blocks {
  void *p[SITE_MAX_BLOCKS];
  size_t size[SITE_MAX_BLOCKS];
  size_t n;
  size_t bytes; /* sum of requested sizes */
} site_blocks;

/* Allocate blocks (sizes from *rng, 1 KiB .. 256 KiB) until b->bytes >=
 * target; the blocks are written to (so they are really there). */
void site_alpha(site_blocks *b, size_t target, uint64_t *rng);
void site_beta(site_blocks *b, size_t target, uint64_t *rng);
void site_gamma(site_blocks *b, size_t target, uint64_t *rng);
/* Free them all. */
void site_release(site_blocks *b);

#endif
