/* The tracker's counters: pl_heap_get_stats, and the resident size of its tables. */
#include "proflab/heap.h"
#include "heap/heap_internal.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "heap/track_internal.h"

#define H pl__heap

void pl__heap_stats_locked(pl_heap_stats *st) {
  st->sample_bytes = H.T;
  st->alloc_objects = H.alloc_objects;
  st->alloc_bytes = H.alloc_bytes;
  st->inuse_objects = H.inuse_objects > 0 ? H.inuse_objects : 0;
  st->inuse_bytes = H.inuse_bytes > 0 ? H.inuse_bytes : 0;
  st->samples = H.samples;
  st->live_samples = H.live;
  st->dropped_samples = H.dropped;
  st->unknown_stacks = H.unknown_stacks;
  st->stacks = H.nstacks - 1;
  st->max_samples = H.max_samples;
  st->max_stacks = H.max_stacks;
  st->tracker_reserved = H.map_bytes;
  st->unwind_fp = H.unwind_fp;
  st->unwind_dwarf = H.unwind_dwarf;
  st->unwind_mismatch = H.unwind_mismatch;
  st->unwind_checked = H.unwind_checked;
  st->unwind_mode = atomic_load_explicit(&H.unwind, memory_order_relaxed);
  st->unwind_fell_back = H.unwind_fell_back;
}

/* Resident bytes of the tracker's mapping (mincore, 4096 pages a call):
 * its tables are reserved at their maximum and touched sparsely. */
uint64_t pl__heap_resident(void) {
  if (!H.map) return 0;
  long page = sysconf(_SC_PAGESIZE);
  unsigned char vec[4096];
  uint64_t resident = 0;
  for (size_t off = 0; off < H.map_bytes; off += sizeof(vec) * (size_t)page) {
    size_t len = H.map_bytes - off < sizeof(vec) * (size_t)page ? H.map_bytes - off
                                                                : sizeof(vec) * (size_t)page;
    if (mincore((char *)H.map + off, len, vec) != 0) return H.map_bytes;
    for (size_t i = 0; i < (len + (size_t)page - 1) / (size_t)page; i++) resident += vec[i] & 1;
  }
  return resident * (uint64_t)page;
}

void pl_heap_get_stats(pl_heap_stats *st) {
  memset(st, 0, sizeof(*st));
  if (!pl_heap_running()) return;
  pl__heap_tls *t = &pl__heap_tls_state;
  pl__heap_lock(t);
  pl__heap_stats_locked(st);
  pl__heap_unlock(t);
  st->tracker_bytes = pl__heap_resident();
}
