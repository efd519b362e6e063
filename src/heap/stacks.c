/* Interned stacks: each distinct call stack stored once, in a hash table under the mutex. */
/* A sample refers to its stack by id (pl__heap_rec.stack); the stack's pcs
 * live in pl__heap.pcs, and its allocation totals are added per sample
 * (track.c). Id 0 is "unknown": a stack that found the table or pl__heap.pcs
 * full (the table is at most half full, open addressing with linear
 * probing; nothing is ever removed). */
#include <stdint.h>
#include <string.h>

#include "common/util.h"
#include "heap/track_internal.h"

#define H pl__heap

static uint64_t stack_hash(const uintptr_t *pcs, unsigned depth) {
  uint64_t h = 0x84222325cbf29ce4ull ^ depth;
  for (unsigned i = 0; i < depth; i++) h = pl__mix64(h ^ pcs[i]);
  return h ? h : 1;
}

uint32_t pl__heap_intern_locked(const uintptr_t *pcs, unsigned depth, int truncated) {
  uint64_t h = stack_hash(pcs, depth);
  uint32_t mask = H.stk_table_cap - 1;
  uint32_t i = (uint32_t)h & mask;
  while (H.stk_table[i]) {
    uint32_t id = H.stk_table[i] - 1;
    const pl__heap_stk *s = &H.stacks[id];
    if (s->hash == h && s->depth == depth && memcmp(H.pcs + s->off, pcs, depth * sizeof(*pcs)) == 0)
      return id;
    i = (i + 1) & mask;
  }
  if (H.nstacks >= H.max_stacks || H.npcs + depth > H.max_pcs) {
    H.unknown_stacks++;
    return 0;
  }
  uint32_t id = H.nstacks;
  pl__heap_stk *s = &H.stacks[id];
  s->hash = h;
  s->off = (uint32_t)H.npcs;
  s->depth = (uint16_t)depth;
  s->flags = truncated ? PL_HEAP_STACK_TRUNCATED : 0;
  s->alloc_objects = s->alloc_bytes = 0;
  memcpy(H.pcs + H.npcs, pcs, depth * sizeof(*pcs));
  H.npcs += depth;
  H.stk_table[i] = id + 1;
  H.nstacks = id + 1;
  return id;
}
