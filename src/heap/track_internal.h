/* The tracker's state, shared by track.c and snapshot.c. Everything here
 * except the atomics is protected by pl__heap.lock. */
#ifndef PL_HEAP_TRACK_INTERNAL_H
#define PL_HEAP_TRACK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "heap/heap.h"
#include "heap/heap_internal.h"

/* A live sampled block (one cache line). */
typedef struct pl__heap_rec {
  uintptr_t ptr;
  uint64_t size;
  uint64_t time_ns;
  uint64_t id;                 /* 0: the record is free */
  double weight;               /* allocations it stands for */
  uint32_t stack;
  uint32_t tid;
  _Atomic uint32_t next;       /* free list or pending list: index + 1 */
  _Atomic uint32_t freed;      /* freed re-entrantly, accounting pending */
  uint64_t pad;
} pl__heap_rec;

/* One cache line of the pointer set: keys (0 empty, p, or p | 1 "moved to
 * the next set"), their record indices, and how many keys whose home this
 * is live in the buckets after it. */
#define PL_HEAP_BUCKET_KEYS 5
typedef struct pl__heap_bucket {
  _Atomic uintptr_t key[PL_HEAP_BUCKET_KEYS];
  uint32_t val[PL_HEAP_BUCKET_KEYS];
  _Atomic uint32_t spill;
} __attribute__((aligned(64))) pl__heap_bucket;
_Static_assert(sizeof(pl__heap_bucket) == 64, "a bucket is a cache line");

typedef struct pl__heap_set {
  pl__heap_bucket *b;
  size_t mask;                         /* buckets − 1 */
  unsigned shift;                      /* 64 − log2(buckets) */
  struct pl__heap_set *_Atomic next;   /* the set it grew into */
} pl__heap_set;

/* An interned stack; its pcs live in pl__heap.pcs[off, off + depth). */
typedef struct pl__heap_stk {
  uint64_t hash;
  uint32_t off;
  uint16_t depth;
  uint16_t flags;
  double alloc_objects, alloc_bytes;
} pl__heap_stk;

/* Ordered so that a sample touches few cache lines: the mutex and what the
 * sampled paths read and write come first, the set descriptors last. */
typedef struct pl__heap_state {
  pthread_mutex_t lock;
  _Atomic int running;
  _Atomic uint32_t pending; /* records freed re-entrantly: index + 1, lock-free push */
  /* Everything below is reset if pl_heap_init() fails. */
  uint64_t T;
  pl__heap_set *_Atomic set; /* the current pointer set */
  size_t set_slots;
  _Atomic uint64_t *filter;  /* the current level */
  uint32_t *fcount;          /* live records per cell of the current level */
  unsigned filter_bits, filter_max_bits;
  /* records */
  pl__heap_rec *recs;
  uint32_t max_samples, rec_hw, free_head;
  /* counters */
  uint64_t samples, live, dropped, unknown_stacks, next_id;
  double alloc_objects, alloc_bytes, inuse_objects, inuse_bytes;
  /* stacks */
  pl__heap_stk *stacks;
  uint32_t max_stacks, nstacks;
  uint32_t *stk_table;
  uint32_t stk_table_cap;
  uintptr_t *pcs;
  size_t max_pcs, npcs;
  /* frames the capture skips besides proflab_heap_text */
  uintptr_t skip_lo[4], skip_hi[4];
  unsigned nskip;
  /* how often a free met a set being grown (tests look at these) */
  _Atomic uint64_t followed_moved; /* found its key marked moved: looked in the new set */
  uint64_t undone_copies;          /* the grower copied a key freed meanwhile */
  /* the mapping; sets[k] has 2^(6+k) buckets in set_mem; filter levels */
  void *map;
  size_t map_bytes;
  pl__heap_bucket *set_mem;
  unsigned set_max_bits;
  _Atomic uint64_t *filter_mem; /* levels 2^13 .. 2^18 bits, each used once */
  pl__heap_set sets[32];
} __attribute__((aligned(64))) pl__heap_state;

extern pl__heap_state pl__heap;

/* Take/release the mutex with the thread's busy guard (and drain records
 * freed re-entrantly). */
void pl__heap_lock(pl__heap_tls *t);
void pl__heap_unlock(pl__heap_tls *t);
/* Counters (tracker_bytes excepted: pl__heap_resident, without the mutex). */
void pl__heap_stats_locked(pl_heap_stats *st);
uint64_t pl__heap_resident(void);
/* Allocations a sample of `size` bytes stands for. */
double pl__heap_weight(uint64_t size);

#endif
