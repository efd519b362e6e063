/* A bump allocator for data that lives and dies together (a profile's
 * strings and arrays). Not thread-safe; freed all at once. */
#ifndef PL_COMMON_ARENA_H
#define PL_COMMON_ARENA_H

#include <stddef.h>

typedef struct pl_arena_block pl_arena_block;
typedef struct pl_arena {
  pl_arena_block *head;
  size_t used, cap;
} pl_arena;

void pl_arena_init(pl_arena *a);
/* Zeroed, 16-byte aligned memory, or NULL when out of memory. */
void *pl_arena_alloc(pl_arena *a, size_t n);
/* Copy of s (n bytes) with a NUL, or NULL. */
char *pl_arena_strndup(pl_arena *a, const char *s, size_t n);
char *pl_arena_strdup(pl_arena *a, const char *s);
void pl_arena_free(pl_arena *a);

#endif
