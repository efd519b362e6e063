/* A bump allocator for data that lives and dies together (a profile's
 * strings and arrays). Not thread-safe; freed all at once. */
#ifndef PL_COMMON_ARENA_H
#define PL_COMMON_ARENA_H

#include <stddef.h>

typedef struct pl__arena_block pl__arena_block;
typedef struct pl__arena {
  pl__arena_block *head;
  size_t used, cap;
} pl__arena;

void pl__arena_init(pl__arena *a);
/* Zeroed, 16-byte aligned memory, or NULL when out of memory. */
void *pl__arena_alloc(pl__arena *a, size_t n);
/* Copy of s (n bytes) with a NUL, or NULL. */
char *pl__arena_strndup(pl__arena *a, const char *s, size_t n);
char *pl__arena_strdup(pl__arena *a, const char *s);
void pl__arena_free(pl__arena *a);

#endif
