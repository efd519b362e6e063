/* A model object's memory: one arena and a list of adopted blocks. */
#include "model/owned.h"

#include <errno.h>
#include <stdlib.h>

typedef struct adopted {
  void *p;
  size_t n;
  void (*release)(void *p, size_t n);
} adopted;

struct pl__owned {
  pl__arena arena;
  adopted *blocks;
  size_t nblocks, cap;
};

pl__owned *pl__owned_new(void) {
  pl__owned *o = calloc(1, sizeof(*o));
  if (o) pl__arena_init(&o->arena);
  return o;
}

pl__arena *pl__owned_arena(pl__owned *o) { return &o->arena; }

static void release(const adopted *a) {
  if (a->release)
    a->release(a->p, a->n);
  else
    free(a->p);
}

int pl__owned_adopt(pl__owned *o, void *p, size_t n, void (*rel)(void *p, size_t n)) {
  if (!p) return 0;
  adopted a = {p, n, rel};
  if (o->nblocks == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 8;
    adopted *b = realloc(o->blocks, cap * sizeof(*b));
    if (!b) {
      release(&a);
      return -ENOMEM;
    }
    o->blocks = b;
    o->cap = cap;
  }
  o->blocks[o->nblocks++] = a;
  return 0;
}

void pl__owned_free(pl__owned *o) {
  if (!o) return;
  while (o->nblocks) release(&o->blocks[--o->nblocks]);
  free(o->blocks);
  pl__arena_free(&o->arena);
  free(o);
}
