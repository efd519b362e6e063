/* The heap tracker as seen by code that may run in a program without it:
 * the tracker (proflab/heap.h, libproflab_heap) is a separate library a
 * program links whole, so the capture path and the lab refer to it weakly
 * and ask here whether it is there. Any thread. */
#ifndef PL_CAPTURE_HEAP_TRACKER_H
#define PL_CAPTURE_HEAP_TRACKER_H

#include <stddef.h>
#include <stdint.h>

#include "proflab/heap_snapshot.h"

/* The tracker's figures (estimates, see proflab/heap.h) and state. */
typedef struct pl__heap_figures {
  int linked, running, sanitizer_hooks;
  uint64_t sample_bytes; /* mean sampling interval T */
  double live_bytes, live_allocations;
  double allocated_bytes, allocations; /* since the tracker started */
  uint64_t samples, live_samples, dropped_samples, unknown_stacks, stacks;
  uint64_t max_samples, max_stacks;
  uint64_t tracker_bytes;          /* the tracker's own resident memory */
  uint64_t tracker_reserved_bytes; /* its bound */
  /* samples whose stack came from frame pointers (and the suffix cache),
   * from libgcc's DWARF unwinder, checked by both, and where the two
   * disagreed */
  uint64_t unwind_fp, unwind_dwarf, unwind_checked, unwind_mismatch;
  const char *unwind_mode; /* "frame-pointers", "dwarf", "verify" */
  int unwind_fell_back;    /* frame pointers disagreed with DWARF: dwarf since */
} pl__heap_figures;

/* 1 when the tracker is linked into this program. */
int pl__heap_tracker_linked(void);
/* Fill out (zeros when absent). 0 when it runs, -ENOSYS when it is not
 * linked, -ENOENT when it is linked but was not started. */
int pl__heap_tracker_figures(pl__heap_figures *out);
/* "not-linked", "off", "sanitizer-hooks" or "interposed". */
const char *pl__heap_tracker_state(const pl__heap_figures *f);

/* Calls into the tracker that do nothing (or fail) without it. */
int pl__heap_tracker_take(pl_heap_snapshot **out); /* -ENOSYS without it */
/* The pcs of every stack recorded so far (pl_heap_stack_pcs) in *out
 * (malloc'ed, the caller frees it; NULL when there are none) and *n. 0,
 * -ENOSYS without the tracker, -ENOMEM. */
int pl__heap_tracker_stack_pcs(uintptr_t **out, size_t *n);
/* pl_heap_snapshot_prepare; -ENOSYS without the tracker. */
int pl__heap_tracker_prepare(void);
/* pl_heap_snapshot_release_idle; 0 without the tracker. */
int pl__heap_tracker_release_idle(uint64_t idle_ns);
void pl__heap_tracker_untracked_begin(void);
void pl__heap_tracker_untracked_end(void);

#endif
