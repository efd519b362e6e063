/* The pointer set's interface (ptrset.c): sampled block → record, and the ASan filter. */
#ifndef PL_HEAP_PTRSET_H
#define PL_HEAP_PTRSET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "heap/track_internal.h"

/* The filter is what free() asks under ASan (hooks: sampled blocks are in
 * ASan's heap). The interposer keeps sampled blocks in their own range
 * (range.c) and asks that instead: no filter to maintain. */
#define PL__HEAP_USE_FILTER PL__HEAP_ASAN
#define PL__HEAP_FILTER_MIN_BITS 12 /* pl__heap_fast.level0 */
#define PL__HEAP_FILTER_MAX_BITS 18
#define PL__HEAP_SET_MIN_BITS 6 /* 64 buckets, 4 KiB */

/* Under the mutex. 0 when the set has no room for p. */
int pl__heap_set_insert_locked(const void *p, uint32_t ri);
/* (pl__heap_take, lock-free, is in heap_internal.h.) */

/* Make the current filter level the one free() reads. */
void pl__heap_filter_publish(void);
/* Under the mutex: move to a filter level large enough for pl__heap.live
 * live records. */
void pl__heap_filter_grow_locked(void);
/* Under the mutex: clear the bits of cells that are still empty. */
void pl__heap_filter_flush_locked(void);

/* The filter cell of p at the current level. */
static inline size_t pl__heap_filter_cell(uintptr_t p) {
  return (size_t)(pl__heap_hash((const void *)p) >> (64 - pl__heap.filter_bits));
}

/* Under the mutex: one more live record at p's cell. The bit is written
 * only if it is not set already (it may still be, see
 * pl__heap_filter_drop_locked): every write invalidates the line in the
 * other cores, whose free() reads it next. (Inline: in the interposer, a
 * record's release calls nothing.) */
static inline void pl__heap_filter_add_locked(uintptr_t p) {
  if (!PL__HEAP_USE_FILTER) return;
  size_t c = pl__heap_filter_cell(p);
  if (pl__heap.fcount[c]++ == 0 &&
      !((atomic_load_explicit(&pl__heap.filter[c >> 6], memory_order_relaxed) >> (c & 63)) & 1))
    atomic_fetch_or_explicit(&pl__heap.filter[c >> 6], 1ull << (c & 63), memory_order_release);
}

/* Under the mutex: one live record less at p's cell. A bit whose count
 * reaches 0 is cleared later, with PL__HEAP_CLEAR_BATCH others (a set bit
 * over an empty cell only costs a lookup): fewer writes to lines every
 * free() reads. */
static inline void pl__heap_filter_drop_locked(uintptr_t p) {
  if (!PL__HEAP_USE_FILTER) return;
  size_t c = pl__heap_filter_cell(p);
  if (--pl__heap.fcount[c] == 0) {
    pl__heap.clear_cells[pl__heap.nclear++] = (uint32_t)c;
    if (pl__heap.nclear == PL__HEAP_CLEAR_BATCH) pl__heap_filter_flush_locked();
  }
}

#endif
