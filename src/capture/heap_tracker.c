/* The heap tracker, referred to weakly (see heap_tracker.h). */
#include "capture/heap_tracker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proflab/heap.h"

#pragma weak pl_heap_running
#pragma weak pl_heap_uses_sanitizer_hooks
#pragma weak pl_heap_get_stats
#pragma weak pl_heap_snapshot_take
#pragma weak pl_heap_untracked_begin
#pragma weak pl_heap_untracked_end
#pragma weak pl_heap_stack_pcs
#pragma weak pl_heap_snapshot_prepare
#pragma weak pl_heap_snapshot_release_idle

int pl__heap_tracker_linked(void) {
  return pl_heap_running && pl_heap_get_stats && pl_heap_snapshot_take &&
         pl_heap_uses_sanitizer_hooks && pl_heap_untracked_begin && pl_heap_untracked_end &&
         pl_heap_stack_pcs && pl_heap_snapshot_prepare && pl_heap_snapshot_release_idle;
}

int pl__heap_tracker_figures(pl__heap_figures *out) {
  memset(out, 0, sizeof(*out));
  if (!pl__heap_tracker_linked()) return -ENOSYS;
  out->linked = 1;
  if (!pl_heap_running()) return -ENOENT;
  pl_heap_stats st;
  pl_heap_get_stats(&st);
  out->running = 1;
  out->sanitizer_hooks = pl_heap_uses_sanitizer_hooks();
  out->sample_bytes = st.sample_bytes;
  out->live_bytes = st.inuse_bytes;
  out->live_allocations = st.inuse_objects;
  out->allocated_bytes = st.alloc_bytes;
  out->allocations = st.alloc_objects;
  out->samples = st.samples;
  out->live_samples = st.live_samples;
  out->dropped_samples = st.dropped_samples;
  out->unknown_stacks = st.unknown_stacks;
  out->stacks = st.stacks;
  out->max_samples = st.max_samples;
  out->max_stacks = st.max_stacks;
  out->tracker_bytes = st.tracker_bytes;
  out->tracker_reserved_bytes = st.tracker_reserved;
  out->unwind_fp = st.unwind_fp;
  out->unwind_dwarf = st.unwind_dwarf;
  out->unwind_mismatch = st.unwind_mismatch;
  out->unwind_checked = st.unwind_checked;
  out->unwind_mode = st.unwind_mode == PL_HEAP_UNWIND_FP       ? "frame-pointers"
                     : st.unwind_mode == PL_HEAP_UNWIND_VERIFY ? "verify"
                                                               : "dwarf";
  out->unwind_fell_back = st.unwind_fell_back;
  return 0;
}

const char *pl__heap_tracker_state(const pl__heap_figures *f) {
  if (!f->linked) return "not-linked";
  if (!f->running) return "off";
  return f->sanitizer_hooks ? "sanitizer-hooks" : "interposed";
}

int pl__heap_tracker_take(pl_heap_snapshot **out) {
  if (!pl__heap_tracker_linked()) return -ENOSYS;
  return pl_heap_snapshot_take(out);
}

int pl__heap_tracker_stack_pcs(uintptr_t **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (!pl__heap_tracker_linked()) return -ENOSYS;
  uintptr_t *pcs = NULL;
  size_t cap = 0, got;
  /* new stacks may come between asking how many and copying: room for more */
  while ((got = pl_heap_stack_pcs(pcs, cap)) > cap) {
    free(pcs);
    cap = got + got / 8 + 64;
    pcs = cap <= SIZE_MAX / sizeof(*pcs) ? malloc(cap * sizeof(*pcs)) : NULL;
    if (!pcs) return -ENOMEM;
  }
  *out = pcs;
  *n = got;
  return 0;
}

void pl__heap_tracker_untracked_begin(void) {
  if (pl__heap_tracker_linked()) pl_heap_untracked_begin();
}

void pl__heap_tracker_untracked_end(void) {
  if (pl__heap_tracker_linked()) pl_heap_untracked_end();
}

int pl__heap_tracker_prepare(void) {
  return pl__heap_tracker_linked() ? pl_heap_snapshot_prepare() : -ENOSYS;
}

int pl__heap_tracker_release_idle(uint64_t idle_ns) {
  return pl__heap_tracker_linked() ? pl_heap_snapshot_release_idle(idle_ns) : 0;
}
