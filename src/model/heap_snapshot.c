/* The heap snapshot model's memory (include/proflab/heap_snapshot.h). */
#include "proflab/heap_snapshot.h"

#include <stdlib.h>

#include "model/owned.h"

pl_heap_snapshot *pl_heap_snapshot_new(void) {
  pl_heap_snapshot *s = calloc(1, sizeof(*s));
  if (!s) return NULL;
  s->owner = pl__owned_new();
  if (!s->owner) {
    free(s);
    return NULL;
  }
  return s;
}

void *pl_heap_snapshot_alloc(pl_heap_snapshot *s, size_t n) {
  return pl__arena_alloc(pl__owned_arena(s->owner), n);
}

char *pl_heap_snapshot_strdup(pl_heap_snapshot *s, const char *str) {
  return pl__arena_strdup(pl__owned_arena(s->owner), str);
}

int pl_heap_snapshot_adopt(pl_heap_snapshot *s, void *block, size_t n,
                           void (*release)(void *block, size_t n)) {
  return pl__owned_adopt(s->owner, block, n, release);
}

void pl_heap_snapshot_free(pl_heap_snapshot *s) {
  if (!s) return;
  pl__owned_free(s->owner);
  free(s);
}

void pl_heap_snapshot_keep_since(pl_heap_snapshot *s, uint64_t since_ns) {
  size_t n = 0;
  for (size_t i = 0; i < s->nsamples; i++)
    if (s->samples[i].time_ns >= since_ns) s->samples[n++] = s->samples[i];
  s->nsamples = n;
  s->inuse_objects = s->inuse_bytes = 0;
  for (size_t i = 0; i < s->nstacks; i++) s->stacks[i].inuse_objects = s->stacks[i].inuse_bytes = 0;
  for (size_t i = 0; i < n; i++) {
    const pl_heap_sample *x = &s->samples[i];
    if (x->stack < s->nstacks) {
      s->stacks[x->stack].inuse_objects += x->weight_objects;
      s->stacks[x->stack].inuse_bytes += x->weight_bytes;
    }
    s->inuse_objects += x->weight_objects;
    s->inuse_bytes += x->weight_bytes;
  }
}
