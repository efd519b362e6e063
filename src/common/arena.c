/* Bump allocator (see arena.h). */
#include "common/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct pl__arena_block {
  pl__arena_block *next;
  size_t size;
  _Alignas(16) unsigned char data[];
};

void pl__arena_init(pl__arena *a) { memset(a, 0, sizeof(*a)); }

void *pl__arena_alloc(pl__arena *a, size_t n) {
  if (n > SIZE_MAX - 15) return NULL;
  n = (n + 15) & ~(size_t)15;
  if (!a->head || a->cap - a->used < n) {
    size_t size = n > 65536 ? n : 65536;
    pl__arena_block *b = malloc(sizeof(*b) + size);
    if (!b) return NULL;
    b->next = a->head;
    b->size = size;
    a->head = b;
    a->used = 0;
    a->cap = size;
  }
  void *p = a->head->data + a->used;
  a->used += n;
  memset(p, 0, n);
  return p;
}

char *pl__arena_strndup(pl__arena *a, const char *s, size_t n) {
  char *p = pl__arena_alloc(a, n + 1);
  if (!p) return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *pl__arena_strdup(pl__arena *a, const char *s) { return pl__arena_strndup(a, s, strlen(s)); }

void pl__arena_free(pl__arena *a) {
  while (a->head) {
    pl__arena_block *n = a->head->next;
    free(a->head);
    a->head = n;
  }
  a->used = a->cap = 0;
}
