/* Helpers shared by the heap profile writers (internal to src/format/).
 *
 * A "view" of a pl_heap_snapshot: the model checked against heap_snapshot.h, its
 * frames (the snapshot's own after pl_heap_snapshot_symbolize(), else one
 * synthesized frame per distinct pc, named "0x<call address>"), and, per
 * stack, the depth of its allocating frame (see pl__heap_alloc_frame()).
 */
#ifndef PL_FORMAT_HEAP_COMMON_H
#define PL_FORMAT_HEAP_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "proflab/heap_snapshot.h"
#include "proflab/buf.h"

/* Names of the pseudo-frames the writers add. */
#define PL__HEAP_UNKNOWN "(unknown)"     /* a stack without frames */
#define PL__HEAP_TRUNCATED "(truncated)" /* callers cut off (PL_HEAP_STACK_TRUNCATED) */

typedef struct pl__heap_view {
  const pl_heap_snapshot *s;
  const pl_frame *frames; /* the snapshot's or synthesized */
  size_t nframes;
  const uint32_t **stack_frames; /* by stack: frame indices, innermost first */
  uint32_t *first;               /* by stack: depth of the allocating frame */
  uint32_t *samples;             /* by stack: how many samples name it */
  size_t *first_sample;          /* by stack: its first sample's index (samples > 0) */
  /* owned when unsymbolized */
  pl_frame *own_frames;
  uint32_t *own_ix;
  pl__arena names;
} pl__heap_view;

/* Checks the model (-EINVAL when it breaks heap_snapshot.h: an index out of range,
 * sample ids not odd and increasing, a negative or non-finite estimate)
 * and builds the view (-ENOMEM). On error nothing needs freeing. */
int pl__heap_view_init(pl__heap_view *v, const pl_heap_snapshot *s);
void pl__heap_view_free(pl__heap_view *v);

/* The frame at depth d (innermost 0) of stack si. */
static inline const pl_frame *pl__heap_frame(const pl__heap_view *v, size_t si, uint32_t d) {
  return &v->frames[v->stack_frames[si][d]];
}

/* Name of stack si's allocating function: PL__HEAP_UNKNOWN without frames. */
const char *pl__heap_alloc_name(const pl__heap_view *v, size_t si);

/* 1 when `name` is a known allocation helper (heap_writers.h). The list,
 * sorted by strcmp, is exported for the tests. */
int pl__heap_is_helper(const char *name);
extern const char *const pl__heap_helpers[];
extern const size_t pl__heap_nhelpers;

/* Estimated bytes or objects as an integer: rounded to nearest, >= 0. */
static inline uint64_t pl__heap_round(double x) {
  if (!(x > 0)) return 0;
  if (x >= 18446744073709551615.0) return UINT64_MAX;
  return (uint64_t)(x + 0.5);
}

#endif
