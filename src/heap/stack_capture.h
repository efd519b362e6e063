/* Stack capture's interface (stack_capture.c), and its inline frame-pointer walk. */
/* pl__heap_capture runs inside the sampled path's entry points (track.c):
 * inlined, so that the walk starts from their frame and adds none of its
 * own. How stacks are captured: the comment at the top of stack_capture.c. */
#ifndef PL_HEAP_STACK_CAPTURE_H
#define PL_HEAP_STACK_CAPTURE_H

#include <stdatomic.h>
#include <stdint.h>

#include "heap/heap_internal.h"
#include "heap/track_internal.h"
#include "sample/unwind.h"

/* The suffix cache: PL__HEAP_SUFFIXES entries in pl__heap.suffixes, in
 * sets of PL__HEAP_SUFFIX_WAYS (~400 KiB reserved, touched as used). */
#define PL__HEAP_SUFFIX_SET_BITS 7 /* 128 sets */
#define PL__HEAP_SUFFIX_WAYS 4
#define PL__HEAP_SUFFIXES ((1u << PL__HEAP_SUFFIX_SET_BITS) * PL__HEAP_SUFFIX_WAYS)

/* How a sample's stack was found (pl__heap_sample_ctx.how). */
enum { PL__HEAP_HOW_FP = 1, PL__HEAP_HOW_DWARF = 2, PL__HEAP_HOW_CHECKED = 4 };

/* A sample in the making: its stack (pl__heap_capture), time and weight
 * (track.c). */
typedef struct pl__heap_sample_ctx {
  uintptr_t pcs[PL_HEAP_MAX_FRAMES];
  unsigned depth;
  int truncated;
  unsigned how; /* PL__HEAP_HOW_*: counted with the sample (track.c's account_locked) */
  uint64_t time;
  double w;
} pl__heap_sample_ctx;

/* The linker's bounds of proflab_heap_text (heap_internal.h). */
extern char __start_proflab_heap_text[] __attribute__((weak));
extern char __stop_proflab_heap_text[] __attribute__((weak));

/* 1: ip is in a frame the capture skips (ours, or a pl__heap_add_skip_range). */
static inline int pl__heap_in_skip(uintptr_t ip) {
  if (ip >= (uintptr_t)__start_proflab_heap_text && ip < (uintptr_t)__stop_proflab_heap_text)
    return 1;
  for (unsigned i = 0; i < pl__heap.nskip; i++)
    if (ip >= pl__heap.skip_lo[i] && ip < pl__heap.skip_hi[i]) return 1;
  return 0;
}

/* Set t->stack_lo, t->stack_hi from sp: this thread's stack, or 0, 1
 * (unknown: DWARF). */
void pl__heap_stack_bounds(pl__heap_tls *t, uintptr_t sp);
/* Under the mutex: appends the cached callers of the foreign frame
 * (ret, csp) to pcs[*n..]; 1 if they were cached (and still valid). */
int pl__heap_suffix_lookup_locked(pl__heap_tls *t, uintptr_t ret, uintptr_t csp, uintptr_t *pcs,
                                  unsigned *n);
/* Slow path of pl__heap_capture (in proflab_heap_text; entered without
 * the mutex): DWARF, checked against the frame-pointer result (pcs[0,
 * fp_n), the foreign frame (cr, cs) if r == PL__FP_CROSS, or the whole
 * stack if complete), then the cache filled on agreement. Returns with the
 * mutex held. */
void pl__heap_capture_slow(pl__heap_tls *t, pl__heap_sample_ctx *c, int r, unsigned fp_n,
                           int complete, uintptr_t cr, uintptr_t cs);

/* The frame-pointer walk from frame record fp (the tracker's entry point,
 * whose frame is set up): our frames skipped, then the program's. */
PL__HEAP_INLINE int pl__heap_capture_fp(pl__heap_tls *t, uintptr_t fp, uintptr_t *pcs, unsigned *n,
                                        uintptr_t *cross_ret, uintptr_t *cross_sp) {
  if (!t->stack_hi || (t->stack_hi == 1 && (t->captures & 1023) == 0)) pl__heap_stack_bounds(t, fp);
  uintptr_t top = t->stack_hi;
  if (fp < t->stack_lo || fp >= top) return PL__FP_BAD;
  for (unsigned k = 0; k < 8; k++) {
    if ((fp & 7) || fp > top - 16) return PL__FP_BAD;
    const uintptr_t *f = (const uintptr_t *)fp;
    uintptr_t ret = f[1], nfp = f[0];
    if (!pl__heap_in_skip(ret))
      return pl__unwind_fp_walk(ret, fp + 16, nfp, top, pcs, n, PL_HEAP_MAX_FRAMES, cross_ret,
                                cross_sp);
    if (nfp <= fp) return PL__FP_BAD;
    fp = nfp;
  }
  return PL__FP_BAD;
}

/* The stack of the allocation being sampled into c; returns with the
 * mutex held. */
PL__HEAP_INLINE void pl__heap_capture(pl__heap_tls *t, pl__heap_sample_ctx *c) {
  unsigned n = 0;
  uintptr_t cr = 0, cs = 0;
  int r = PL__FP_BAD, complete = 0;
  c->truncated = 0;
  c->how = 0;
  t->captures++;
  int mode = atomic_load_explicit(&pl__heap.unwind, memory_order_relaxed);
  if (mode != PL_HEAP_UNWIND_DWARF) {
    r = pl__heap_capture_fp(t, (uintptr_t)__builtin_frame_address(0), c->pcs, &n, &cr, &cs);
    if (r == PL__FP_END || r == PL__FP_FULL) {
      complete = 1;
      c->truncated = r == PL__FP_FULL;
    }
  }
  if (r == PL__FP_CROSS && n >= PL_HEAP_MAX_FRAMES) { /* full: what is above is cut anyway */
    complete = 1;
    c->truncated = 1;
  }
  pl__heap_lock(t);
  if (r == PL__FP_CROSS && !complete) {
    unsigned m = n;
    if (pl__heap_suffix_lookup_locked(t, cr, cs, c->pcs, &m)) {
      complete = 1;
      n = m;
    }
  }
  if (complete) {
    c->how |= PL__HEAP_HOW_FP;
    c->depth = n;
    /* Every 256th stack of a thread (16th after a disagreement) is checked
     * against DWARF too: a chain misread through code built without frame
     * pointers that ends at a foreign frame cached by another path is
     * caught only so. */
    unsigned every =
        pl__heap.unwind_mismatch ? PL__UNWIND_CHECK_EVERY_SUSPECT : PL__UNWIND_CHECK_EVERY;
    if (mode != PL_HEAP_UNWIND_VERIFY && t->captures % every != 0) return;
  }
  pl__heap_unlock(t);
  pl__heap_capture_slow(t, c, r, n, complete, cr, cs);
}

#endif
