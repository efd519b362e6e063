/* The pointer set: a sampled block's record by its address, and under ASan free()'s filter. */
/*
 * Why a pointer set and not a header in front of sampled blocks. A header
 * scheme must be able to tell, from the pointer alone, whether a block has
 * one; glibc's chunk header belongs to glibc (its size and flag bits must
 * not be touched), so every block would need our own header or an
 * alignment trick, which costs memory on every allocation, breaks
 * malloc_usable_size and memalign's guarantees, and makes a block allocated
 * before pl_heap_init() (or by ld.so) undecidable at free(). Sampled blocks
 * are rare (one per T bytes), so instead they are kept in a set beside the
 * heap, and the question free() asks — "could p be sampled?" — is answered
 * by the address alone in the interposer (sampled blocks are served from a
 * reserved range of their own: range.c, and heap_internal.h's
 * pl__heap_in_range; the pointer set then only maps a sampled block to its
 * record), and under ASan, whose heap holds every block, by a bitmap over
 * a hash of the pointer (the interposer used it too until the bitmap load
 * was found missing the L1 cache on most frees: ~3 % of the malloc
 * benchmark's time):
 *
 * - filter: a bitmap over the top bits of the pointer's hash
 *   (pl__heap_hash: two multiplies), bit c set while at least one live
 *   sampled block hashes to c (a count per cell, changed under the mutex,
 *   decides when to set and clear it). free(p) of an unsampled block: one
 *   load of the filter word (bitmap pointer and shift packed), the hash, a
 *   shift, one relaxed atomic load, a bit test: no lock, O(1). The bit of a
 *   sampled block is set before malloc returns it, so the free() that the
 *   program orders after that malloc sees it (C11 coherence: a load that
 *   happens-after a store reads it or a later value).
 *   The bitmap must stay in L1 and in the TLB: at 2^18 bits (32 KiB, its
 *   own pages) the load missed on most frees of the benchmark and cost ~6 ns
 *   each. So it starts at 2^12 bits (512 bytes, inside pl__heap_fast, on the
 *   page of the word that points to it) and grows (2^13 ... 2^18) when live
 *   samples exceed bits/64, keeping false positives under ~1.6%. It never
 *   shrinks: a grown level is built (under the mutex) from the live records
 *   in fresh memory and published; an older level is then frozen, still a
 *   superset of the blocks live at the switch, so a reader holding it stays
 *   correct, and a block sampled after the switch is freed through a load
 *   that sees the new level (its insertion follows the switch under the
 *   same mutex).
 * - set: open addressing over buckets of one cache line (5 pointers, their
 *   record indices, a spill count); a pointer lives in its home bucket or,
 *   when that is full, one of the 7 after it (the home's spill count says
 *   how many did). Inserts happen under the mutex into empty slots; a slot
 *   is emptied only by the free of the pointer it holds (lock-free: a
 *   compare-and-swap, so a free from a signal handler inside the tracker
 *   can still remove it). A lookup of an absent key (a filter false
 *   positive) costs one cache line when nothing spilled. No tombstones.
 *   The set is sized to the live samples, not to max_samples: a 2 MiB table
 *   hashed over sparsely costs a cache and TLB miss (and, on this VM, page
 *   faults as the kernel reclaims cold pages) on every sampled malloc and
 *   free — measured 2.3 µs a sample against 1.4 µs with a small table. It
 *   starts at 64 buckets and doubles (under the mutex) at 40% load, up to
 *   2.5 slots per allowed sample (a full 8-bucket window, 40 keys where 16
 *   are expected, also makes it double; that has a probability near 1e-7
 *   per window). Growing copies each live key to the new set, then marks
 *   the old slot "moved" (p | 1) with a CAS; a free racing with it either
 *   empties the old slot first (the copy is then undone) or sees the mark
 *   and follows the old set's `next` to the new one. The new set is
 *   published after the copy; sets are never freed (all levels together
 *   are less than twice the largest).
 */
#include "heap/ptrset.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "heap/heap_internal.h"
#include "heap/track_internal.h"

#define H pl__heap
#define PROBE_BUCKETS 8

static inline uint64_t ptr_hash(const void *p) { return pl__heap_hash(p); }

void pl__heap_filter_flush_locked(void) {
  for (unsigned i = 0; i < H.nclear; i++) {
    size_t c = H.clear_cells[i];
    if (H.fcount[c] == 0 &&
        ((atomic_load_explicit(&H.filter[c >> 6], memory_order_relaxed) >> (c & 63)) & 1))
      atomic_fetch_and_explicit(&H.filter[c >> 6], ~(1ull << (c & 63)), memory_order_relaxed);
  }
  H.nclear = 0;
}

void pl__heap_filter_publish(void) {
  atomic_store_explicit(&pl__heap_fast.filter,
                        (uintptr_t)H.filter | (uintptr_t)(64 - H.filter_bits),
                        memory_order_release);
}

/* The counts are rebuilt from the records (every record with an id is
 * counted, including freed ones still queued for the mutex holder). */
void pl__heap_filter_grow_locked(void) {
  if (!PL__HEAP_USE_FILTER) return;
  unsigned bits = H.filter_bits;
  while (bits < H.filter_max_bits && (H.live + 1) * 64 > (1ull << bits)) bits++;
  if (bits == H.filter_bits) return;
  H.filter_bits = bits;
  /* level 2^k at filter_mem + (2^k − 2^13) bits; 2^12 is pl__heap_fast.level0 */
  H.filter = H.filter_mem + (((1ull << bits) - (2ull << PL__HEAP_FILTER_MIN_BITS)) >> 6);
  memset(H.fcount, 0, ((size_t)1 << bits) * sizeof(*H.fcount));
  H.nclear = 0; /* cells of the old level */
  for (uint32_t i = 0; i < H.rec_hw; i++)
    if (H.recs[i].id) pl__heap_filter_add_locked(H.recs[i].ptr);
  pl__heap_filter_publish();
}

/* 0 when the PROBE_BUCKETS buckets from p's home in set st are full. Under
 * the mutex (or, for a set not yet published, by its only writer). */
static int set_put(pl__heap_set *st, uintptr_t p, uint32_t ri) {
  size_t b0 = ptr_hash((const void *)p) >> st->shift;
  for (size_t d = 0; d < PROBE_BUCKETS; d++) {
    pl__heap_bucket *bk = &st->b[(b0 + d) & st->mask];
    for (size_t i = 0; i < PL__HEAP_BUCKET_KEYS; i++) {
      if (atomic_load_explicit(&bk->key[i], memory_order_relaxed) == 0) {
        if (d) atomic_fetch_add_explicit(&st->b[b0].spill, 1, memory_order_relaxed);
        bk->val[i] = ri;
        atomic_store_explicit(&bk->key[i], p, memory_order_release);
        return 1;
      }
    }
  }
  return 0;
}

/* Remove p from st if it is there: its record index, or PL__HEAP_NONE.
 * Follows "moved" marks to newer sets. */
static uint32_t set_take(pl__heap_set *st, uintptr_t p) {
  if (p == 0) return PL__HEAP_NONE; /* free(NULL): 0 is also what an empty slot holds */
  uint64_t h = ptr_hash((const void *)p);
  while (st) {
    size_t b0 = h >> st->shift;
    pl__heap_set *next = NULL;
    for (size_t d = 0; d < PROBE_BUCKETS && !next; d++) {
      pl__heap_bucket *bk = &st->b[(b0 + d) & st->mask];
      for (size_t i = 0; i < PL__HEAP_BUCKET_KEYS; i++) {
        uintptr_t k = atomic_load_explicit(&bk->key[i], memory_order_acquire);
        if (k == p) {
          uint32_t ri = bk->val[i];
          /* Only the free of p empties this slot (before glibc can hand p
           * out again); only a growing set marks it moved. */
          if (atomic_compare_exchange_strong_explicit(&bk->key[i], &k, 0, memory_order_acq_rel,
                                                      memory_order_acquire)) {
            if (d) atomic_fetch_sub_explicit(&st->b[b0].spill, 1, memory_order_relaxed);
            return ri;
          }
          /* lost to the grower: k is now p | 1 */
        }
        if (k == (p | 1)) {
          atomic_fetch_add_explicit(&H.followed_moved, 1, memory_order_relaxed);
          next = atomic_load_explicit(&st->next, memory_order_acquire);
          break;
        }
      }
      /* Nothing of this home spilled: p is not in this set. */
      if (!next && d == 0 && atomic_load_explicit(&st->b[b0].spill, memory_order_relaxed) == 0)
        return PL__HEAP_NONE;
    }
    st = next;
  }
  return PL__HEAP_NONE;
}

uint32_t pl__heap_take(const void *p) {
  pl__heap_set *st = atomic_load_explicit(&H.set, memory_order_acquire);
  return st ? set_take(st, (uintptr_t)p) : PL__HEAP_NONE;
}

/* Under the mutex: double the set (see the comment at the top). 0 when it
 * is at its maximum already. */
static int set_grow_locked(void) {
  pl__heap_set *old = atomic_load_explicit(&H.set, memory_order_relaxed);
  unsigned bits = 64 - old->shift + 1;
  if (bits > H.set_max_bits) return 0;
  pl__heap_set *nw = &H.sets[bits - PL__HEAP_SET_MIN_BITS];
  nw->b = H.set_mem + ((1ull << bits) - (1ull << PL__HEAP_SET_MIN_BITS));
  nw->mask = ((size_t)1 << bits) - 1;
  nw->shift = 64 - bits;
  atomic_store_explicit(&nw->next, NULL, memory_order_relaxed);
  atomic_store_explicit(&old->next, nw, memory_order_release);
  for (size_t b = 0; b <= old->mask; b++) {
    pl__heap_bucket *bk = &old->b[b];
    for (size_t i = 0; i < PL__HEAP_BUCKET_KEYS; i++) {
      uintptr_t k = atomic_load_explicit(&bk->key[i], memory_order_acquire);
      if (k == 0 || (k & 1)) continue;
      uint32_t ri = bk->val[i];
      int copied = set_put(nw, k, ri);
      uintptr_t expect = k;
      if (atomic_compare_exchange_strong_explicit(&bk->key[i], &expect, copied ? k | 1 : 0,
                                                  memory_order_acq_rel, memory_order_acquire)) {
        if (!copied) { /* no room (cannot happen at half the load): forget it */
          H.dropped++;
          pl__heap_release_locked(ri);
        }
      } else if (copied) { /* freed meanwhile: undo the copy */
        H.undone_copies++;
        set_take(nw, k);
      }
    }
  }
  atomic_store_explicit(&H.set, nw, memory_order_release);
  H.set_slots = (nw->mask + 1) * PL__HEAP_BUCKET_KEYS;
  return 1;
}

int pl__heap_set_insert_locked(const void *p, uint32_t ri) {
  if (PL__HEAP_USE_FILTER && H.fcount[pl__heap_filter_cell((uintptr_t)p)] == UINT32_MAX) return 0;
  if ((H.live + 1) * 5 > H.set_slots * 2) set_grow_locked(); /* 40% load */
  pl__heap_set *st = atomic_load_explicit(&H.set, memory_order_relaxed);
  if (!set_put(st, (uintptr_t)p, ri)) {
    if (!set_grow_locked()) return 0;
    st = atomic_load_explicit(&H.set, memory_order_relaxed);
    if (!set_put(st, (uintptr_t)p, ri)) return 0;
  }
  pl__heap_filter_add_locked((uintptr_t)p);
  return 1;
}
