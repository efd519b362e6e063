/* See sites.h. Each site calls malloc itself (not through a shared
 * helper) so that the first frame of its samples is the site; noipa keeps the
 * compiler from merging or inlining them. */
#include "sites.h"

#include <stdlib.h>
#include <string.h>

#define HEAP_TEST_NOT_MAIN /* the test program defines the ASan options */
#include "heap_test.h"

static void keep(site_blocks *b, void *p, size_t n, int fill) {
  assert_non_null(p);
  assert_true(b->n < SITE_MAX_BLOCKS);
  memset(p, fill, n < 4096 ? n : 4096);
  b->p[b->n] = p;
  b->size[b->n++] = n;
  b->bytes += n;
}

__attribute__((noipa)) void site_alpha(site_blocks *b, size_t target, uint64_t *rng) {
  while (b->bytes < target) {
    size_t n = heap_test_size(rng);
    keep(b, malloc(n), n, 0xa1);
  }
}

__attribute__((noipa)) void site_beta(site_blocks *b, size_t target, uint64_t *rng) {
  while (b->bytes < target) {
    size_t n = heap_test_size(rng);
    keep(b, malloc(n), n, 0xb2);
  }
}

__attribute__((noipa)) void site_gamma(site_blocks *b, size_t target, uint64_t *rng) {
  while (b->bytes < target) {
    size_t n = heap_test_size(rng);
    keep(b, malloc(n), n, 0xc3);
  }
}

void site_release(site_blocks *b) {
  for (size_t i = 0; i < b->n; i++) free(b->p[i]);
  b->n = 0;
  b->bytes = 0;
}
