/* proflab — the heap snapshot model: live sampled allocations, their
 * stacks and the tracker's counters, as the heap tracker copied them
 * (heap.h, pl_heap_snapshot_take) or a reader found them in a file. The
 * writers (.heapsnapshot, .heapprofile, pprof heap) read it. A snapshot
 * owns its arrays and strings (pl_heap_snapshot_free) and needs nothing of
 * the tracker: a program that never links it can hold one. Not
 * thread-safe: one thread at a time (it may change hands).
 */
#ifndef PROFLAB_HEAP_SNAPSHOT_H
#define PROFLAB_HEAP_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "proflab/frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Stack capture (PROFLAB_HEAP_UNWIND; see docs/internals.md, "Heap stacks"). */
enum { PL_HEAP_UNWIND_DWARF, PL_HEAP_UNWIND_FP, PL_HEAP_UNWIND_VERIFY };
#define PL_HEAP_MAX_FRAMES 64 /* deeper stacks keep their 64 innermost frames */

/* Counters since pl_heap_init(). Estimates are sums of sample weights. */
typedef struct pl_heap_stats {
  uint64_t sample_bytes;    /* T */
  double alloc_objects;     /* estimated allocations made */
  double alloc_bytes;       /* estimated bytes allocated */
  double inuse_objects;     /* estimated live allocations */
  double inuse_bytes;       /* estimated live bytes */
  uint64_t samples;         /* allocations sampled so far */
  uint64_t live_samples;    /* sampled allocations not yet freed */
  uint64_t dropped_samples; /* sampled but not kept: max_samples or the table was full */
  uint64_t unknown_stacks;  /* samples recorded with the unknown stack (stack table full) */
  uint64_t stacks;          /* distinct stacks recorded */
  uint64_t max_samples, max_stacks;
  uint64_t tracker_bytes; /* resident memory of the tracker's tables now */
  /* How the samples' stacks were captured (PROFLAB_HEAP_UNWIND): by frame
   * pointers (alone or with a cached suffix); with libgcc's DWARF unwinder;
   * both, a frame-pointer stack checked by DWARF (verify mode: all of them;
   * fp mode: every 256th a thread takes), so fp + dwarf - checked =
   * samples. mismatch: frame-pointer results DWARF disagreed with, on those
   * checks and on cache misses (where the walk's part is compared). */
  uint64_t unwind_fp, unwind_dwarf, unwind_checked, unwind_mismatch;
  int unwind_mode;           /* PL_HEAP_UNWIND_*: how stacks are captured now */
  int unwind_fell_back;      /* fp was given up for dwarf after a disagreement */
  uint64_t tracker_reserved; /* the bound: all tables at their maximum (mapped
                                once, MAP_NORESERVE, touched as they fill) */
} pl_heap_stats;

enum {
  PL_HEAP_STACK_TRUNCATED = 1u << 0, /* deeper than PL_HEAP_MAX_FRAMES */
  PL_HEAP_STACK_UNKNOWN = 1u << 1,   /* the stack table was full: no frames */
};

/* A distinct allocation stack. */
typedef struct pl_heap_stack {
  uint32_t depth;
  uint32_t flags; /* PL_HEAP_STACK_* */
  /* Return addresses, innermost first: pcs[0] is in the function that
   * called malloc (or calloc, realloc, ...; or a libc function such as
   * strdup that did). Look each up at pc − 1 (the call instruction). */
  const uintptr_t *pcs;
  /* After symbolization (proflab/symbolize.h): indices into the snapshot's frames,
   * innermost first, same depth; NULL before. */
  uint32_t *frames;
  double alloc_objects, alloc_bytes; /* cumulative estimates since init */
  double inuse_objects, inuse_bytes; /* live estimates: sums over this snapshot's samples */
} pl_heap_stack;

/* A live sampled allocation. */
typedef struct pl_heap_sample {
  uint64_t id;           /* odd, unique, increasing in allocation order; the
                            same in every snapshot while the block lives */
  uint64_t size;         /* bytes requested */
  uint64_t time_ns;      /* CLOCK_MONOTONIC when it was allocated */
  uintptr_t address;     /* the block (it may be freed once the snapshot is taken) */
  double weight_objects; /* allocations it stands for: 1/(1 − e^(−size/T)); 1 when T = 1 */
  double weight_bytes;   /* bytes it stands for: size × weight_objects */
  uint32_t stack;        /* index into pl_heap_snapshot.stacks */
  uint32_t tid;          /* allocating thread */
} pl_heap_sample;

/* What a snapshot copied: the model the writers (.heapsnapshot,
 * .heapprofile, pprof heap) read. Owned by the caller
 * (pl_heap_snapshot_free); independent of the tracker once taken. */
typedef struct pl_heap_snapshot {
  pl_heap_sample *samples; /* live sampled allocations, by increasing id */
  size_t nsamples;
  pl_heap_stack *stacks; /* every stack recorded since init; [0] is "unknown" */
  size_t nstacks;
  pl_frame *frames; /* after symbolization: distinct locations */
  size_t nframes;
  pl_heap_stats stats;               /* the tracker's counters as the snapshot ended */
  double inuse_objects, inuse_bytes; /* sums over samples (what the snapshot shows) */
  uint64_t time_ns;                  /* CLOCK_MONOTONIC when taken */
  uint64_t wall_ns;                  /* wall clock at time_ns (ns since the epoch) */
  uint64_t sample_bytes;             /* T */
  int frames_state;                  /* PL_HEAP_FRAMES_*: what frames carry */
  void *owner;                       /* implementation */
} pl_heap_snapshot;

/* What a snapshot's frames carry: none yet (frames NULL); function and
 * module names only (file "", lines 0); names, files and lines. */
enum { PL_HEAP_FRAMES_NONE, PL_HEAP_FRAMES_NAMES, PL_HEAP_FRAMES_LINES };

/* An empty snapshot (all fields 0) that owns what is later given to it, or
 * NULL when out of memory. */
pl_heap_snapshot *pl_heap_snapshot_new(void);
/* n zeroed, 16-byte aligned bytes freed with s, or NULL. */
void *pl_heap_snapshot_alloc(pl_heap_snapshot *s, size_t n);
/* A copy of str freed with s, or NULL. */
char *pl_heap_snapshot_strdup(pl_heap_snapshot *s, const char *str);
/* Hand block (n bytes) to s: release(block, n) runs when s is freed
 * (release NULL: free()). 0, or -ENOMEM (then it ran already). */
int pl_heap_snapshot_adopt(pl_heap_snapshot *s, void *block, size_t n,
                           void (*release)(void *block, size_t n));
/* Free s and all it owns. NULL is fine. */
void pl_heap_snapshot_free(pl_heap_snapshot *s);

/* Keep only the samples allocated at or after since_ns (CLOCK_MONOTONIC,
 * pl_heap_sample.time_ns): what a sampling heap profile started at that
 * time shows (live allocations made since). The live estimates (the
 * snapshot's and each stack's inuse_*) are summed again; stacks, frames
 * and the cumulative alloc_* stay. */
void pl_heap_snapshot_keep_since(pl_heap_snapshot *s, uint64_t since_ns);

#ifdef __cplusplus
}
#endif
#endif
