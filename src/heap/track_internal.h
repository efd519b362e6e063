/* The tracker's state (pl__heap) and the functions its files call on each other. */
/* Everything in pl__heap except the atomics is protected by pl__heap.lock.
 * Which file does what: heap_internal.h. The pointer set's and the stack
 * capture's shared parts have headers of their own (ptrset.h,
 * stack_capture.h). */
#ifndef PL_HEAP_TRACK_INTERNAL_H
#define PL_HEAP_TRACK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "proflab/heap.h"
#include "heap/heap_internal.h"

/* A live sampled block (one cache line). */
typedef struct pl__heap_rec {
  uintptr_t ptr;
  uint64_t size;
  uint64_t time_ns;
  uint64_t id;   /* 0: the record is free */
  double weight; /* allocations it stands for */
  uint32_t stack;
  uint32_t tid;
  _Atomic uint32_t next;  /* free list or pending list: index + 1 */
  _Atomic uint32_t freed; /* freed, queued for the mutex holder */
  uint64_t pad;
} pl__heap_rec;

/* One cache line of the pointer set: keys (0 empty, p, or p | 1 "moved to
 * the next set"), their record indices, and how many keys whose home this
 * is live in the buckets after it. */
#define PL__HEAP_BUCKET_KEYS 5
typedef struct pl__heap_bucket {
  _Atomic uintptr_t key[PL__HEAP_BUCKET_KEYS];
  uint32_t val[PL__HEAP_BUCKET_KEYS];
  _Atomic uint32_t spill;
} __attribute__((aligned(64))) pl__heap_bucket;
_Static_assert(sizeof(pl__heap_bucket) == 64, "a bucket is a cache line");

typedef struct pl__heap_set {
  pl__heap_bucket *b;
  size_t mask;                       /* buckets − 1 */
  unsigned shift;                    /* 64 − log2(buckets) */
  struct pl__heap_set *_Atomic next; /* the set it grew into */
} pl__heap_set;

/* An interned stack; its pcs live in pl__heap.pcs[off, off + depth). */
typedef struct pl__heap_stk {
  uint64_t hash;
  uint32_t off;
  uint16_t depth;
  uint16_t flags;
  double alloc_objects, alloc_bytes;
} pl__heap_stk;

/* Laid out by who writes what, so that two threads sampling at once share
 * as few cache lines as possible: the mutex alone; what lock-free paths
 * write; what every sampled path reads (written only at start and when a
 * table grows); what the mutex holder writes; cold data last. */
#define PL__HEAP_CLEAR_BATCH 32
typedef struct pl__heap_state {
  _Alignas(64) pthread_mutex_t lock;
  /* written without the mutex */
  _Alignas(64) _Atomic uint32_t pending; /* freed records queued lock-free: index + 1 */
  _Atomic uint64_t followed_moved;       /* frees that met a key marked moved (tests read it) */
  /* read-mostly */
  _Alignas(64) _Atomic int running;
  /* Everything from T on is reset if pl_heap_init() fails. */
  uint64_t T;
  pl__heap_set *_Atomic set; /* the current pointer set */
  size_t set_slots;
  _Atomic uint64_t *filter; /* the current level */
  uint32_t *fcount;         /* live records per cell of the current level */
  unsigned filter_bits, filter_max_bits;
  pl__heap_rec *recs;
  uint32_t max_samples, max_stacks;
  pl__heap_stk *stacks;
  uint32_t *stk_table;
  uint32_t stk_table_cap;
  uintptr_t *pcs;
  size_t max_pcs;
  unsigned nskip; /* frames the capture skips besides proflab_heap_text */
  uintptr_t skip_lo[4], skip_hi[4];
  _Atomic int unwind;                 /* PL_HEAP_UNWIND_* (heap_snapshot.h) */
  struct pl__unwind_suffix *suffixes; /* PL__HEAP_SUFFIXES (stack_capture.h), set-associative */
  /* written under the mutex */
  _Alignas(64) uint32_t rec_hw, free_head, nstacks;
  unsigned nclear;
  size_t npcs;
  uint64_t samples, live, dropped, unknown_stacks, next_id, undone_copies;
  uint64_t unwind_fp, unwind_dwarf, unwind_checked, unwind_mismatch;
  uint64_t unwind_compared; /* frame-pointer results compared with DWARF's */
  int unwind_fell_back;     /* frame pointers disagreed with DWARF: DWARF from then on */
  unsigned suffix_clock;    /* the next way to evict */
  double alloc_objects, alloc_bytes, inuse_objects, inuse_bytes;
  uint32_t clear_cells[PL__HEAP_CLEAR_BATCH]; /* cells whose count reached 0 */
  /* cold: the mapping; sets[k] has 2^(6+k) buckets in set_mem; filter levels */
  _Alignas(64) void *map;
  size_t map_bytes;
  pl__heap_bucket *set_mem;
  unsigned set_max_bits;
  _Atomic uint64_t *filter_mem; /* levels 2^13 .. 2^18 bits, each used once */
  pl__heap_set sets[32];
} pl__heap_state;

extern pl__heap_state pl__heap;

/* CLOCK_MONOTONIC in ns (inline: the sampled path reads it). */
static inline uint64_t pl__heap_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
/* track.c. Take/release the mutex with the thread's busy guard; taking it
 * settles the queued frees. */
void pl__heap_lock(pl__heap_tls *t);
void pl__heap_unlock(pl__heap_tls *t);
/* track.c. Under the mutex: settle record ri, whose block was freed (its
 * key is out of the set already), and free the record. */
void pl__heap_release_locked(uint32_t ri);
/* track.c. Allocations a sample of `size` bytes stands for. */
double pl__heap_weight(uint64_t size);
/* stacks.c. Under the mutex: the id of the stack pcs[0, depth), interned
 * if new; 0 ("unknown") when the stack table is full. */
uint32_t pl__heap_intern_locked(const uintptr_t *pcs, unsigned depth, int truncated);
/* stats.c. Counters (tracker_bytes excepted: pl__heap_resident, without
 * the mutex). */
void pl__heap_stats_locked(pl_heap_stats *st);
uint64_t pl__heap_resident(void);

#endif
