/* Stack capture: a sample's call stack by frame pointers and a suffix cache, checked by DWARF. */
/* How stacks are captured (PROFLAB_HEAP_UNWIND):
 * - fp (default): the CPU sampler's frame-pointer walk (sample/unwind.c)
 *   from the tracker's own frame, over our module's frames, up to the
 *   first return address outside it (libc's start_thread or
 *   __libc_start_call_main, libuv calling our callbacks, strdup calling
 *   malloc); the callers above that foreign frame come from a suffix cache
 *   keyed by (return address, stack pointer) and used only if every return
 *   address it was found through is still in its slot on the stack. On a
 *   miss libgcc's DWARF unwinder runs (outside the mutex), must agree with
 *   the walk frame by frame, and fills the cache. A sample then costs a
 *   few dozen loads instead of ~8000 instructions of DWARF (callgrind, the
 *   malloc benchmark).
 * - dwarf: libgcc alone (a program that links the tracker but is built
 *   without frame pointers; always under ASan, whose frames are skipped by
 *   address range).
 * - verify: both for every sample; DWARF's stack wins and disagreements
 *   are counted (tests). In fp mode every 256th stack of a thread is
 *   checked the same way, and the first disagreement (code in our module
 *   built without frame pointers, whose frames the walk misreads) turns
 *   frame pointers off for the process.
 * Frame pointers are read only inside the mapping that held this thread's
 * stack at its first sample (/proc/self/maps, plain system calls; glibc's
 * pthread_getattr_np cannot be used: it allocates while holding the
 * thread's lock, and that allocation may be the one being sampled), so a
 * sample on a signal stack or a coroutine's stack goes to DWARF.
 *
 * The walk itself, run on every sample, is inline in stack_capture.h
 * (pl__heap_capture, pl__heap_capture_fp): it starts from the frame of
 * the sampled path's entry point and costs no call. Here: the thread's
 * stack bounds, the suffix cache, the frames to skip, and the DWARF slow
 * path, which checks the walk and fills the cache. */
#include "heap/stack_capture.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unwind.h>

#include "common/util.h"
#include "heap/heap_internal.h"
#include "heap/track_internal.h"
#include "sample/unwind.h"

#define H pl__heap

typedef struct capture_state {
  uintptr_t *pcs, *sps; /* sps[i]: the CFA libgcc reports with pcs[i] */
  unsigned n, max;
  int seen_ours, truncated;
} capture_state;

void pl__heap_add_skip_range(uintptr_t lo, uintptr_t hi) {
  if (H.nskip < PL__ARRAY_SIZE(H.skip_lo)) {
    H.skip_lo[H.nskip] = lo;
    H.skip_hi[H.nskip] = hi;
    H.nskip++;
  }
}

/* Frames come innermost first: libgcc's own, then ours (the section, and
 * the sanitizer's allocator), then the program's. Record from the first
 * frame outside them that follows one of ours. */
PL__HEAP_TEXT static _Unwind_Reason_Code capture_step(struct _Unwind_Context *ctx, void *arg) {
  capture_state *st = arg;
  uintptr_t ip = _Unwind_GetIP(ctx);
  if (ip == 0) return _URC_END_OF_STACK;
  if (st->seen_ours < 2) {
    if (pl__heap_in_skip(ip)) {
      st->seen_ours = 1;
      return _URC_NO_REASON;
    }
    if (!st->seen_ours) return _URC_NO_REASON;
    st->seen_ours = 2;
  }
  if (st->n >= st->max) {
    st->truncated = 1;
    return _URC_END_OF_STACK;
  }
  if (st->sps) st->sps[st->n] = _Unwind_GetCFA(ctx);
  st->pcs[st->n++] = ip;
  return _URC_NO_REASON;
}

PL__HEAP_TEXT __attribute__((noinline)) static unsigned capture_dwarf(uintptr_t *pcs,
                                                                      uintptr_t *sps,
                                                                      int *truncated) {
  capture_state st = {.pcs = pcs, .sps = sps, .max = PL_HEAP_MAX_FRAMES};
  _Unwind_Backtrace(capture_step, &st);
  *truncated = st.truncated;
  return st.n;
}

/* This thread's stack, if sp is on it: the main thread's [stack] (down to
 * the mapping below it: it grows), or, for another thread, the mapping
 * holding sp up to the thread's TCB (pthread_self()), which glibc puts at
 * the top of every thread's stack block, its own or one the program gave:
 * [sp, TCB) stays mapped while the thread lives, whatever becomes of the
 * memory around it. On anything else (a signal stack, a coroutine's) the
 * bounds stay unknown (DWARF) and are looked for again 1024 captures
 * later. */
void pl__heap_stack_bounds(pl__heap_tls *t, uintptr_t sp) {
  uintptr_t lo = 0, hi = 0, tcb = (uintptr_t)pthread_self();
  int main_stack = 0;
  if (pl__unwind_mapping_of(sp, &lo, &hi, &main_stack) == 0 && !main_stack) {
    if (tcb > sp && tcb <= hi)
      hi = tcb;
    else
      hi = 0;
  }
  if (hi <= lo || hi - lo < 32 || sp >= hi) {
    lo = 0;
    hi = 1; /* unknown: DWARF */
  }
  t->stack_lo = lo;
  t->stack_hi = hi;
}

/* The set of suffixes for the foreign frame (ret, csp). Several ways: the
 * same foreign function called from two call sites of one caller has the
 * same key and different callers (seen in proflabd: libmicrohttpd calling
 * strdup twice), which would evict each other on every sample if the
 * cache were direct-mapped. */
static pl__unwind_suffix *suffix_set(uintptr_t ret, uintptr_t csp) {
  return &H.suffixes[(pl__unwind_suffix_hash(ret, csp) >> (64 - PL__HEAP_SUFFIX_SET_BITS)) *
                     PL__HEAP_SUFFIX_WAYS];
}

/* Locked. Appends the cached callers of (ret, csp) to pcs[*n..]. */
int pl__heap_suffix_lookup_locked(pl__heap_tls *t, uintptr_t ret, uintptr_t csp, uintptr_t *pcs,
                                  unsigned *n) {
  pl__unwind_suffix *set = suffix_set(ret, csp);
  for (unsigned w = 0; w < PL__HEAP_SUFFIX_WAYS; w++)
    if (pl__unwind_suffix_match(&set[w], ret, csp, t->stack_hi, pcs, n, PL_HEAP_MAX_FRAMES))
      return 1;
  return 0;
}

/* Locked. The way to fill for (ret, csp): an empty one, else the next in
 * turn. */
static pl__unwind_suffix *suffix_victim_locked(uintptr_t ret, uintptr_t csp) {
  pl__unwind_suffix *set = suffix_set(ret, csp);
  for (unsigned w = 0; w < PL__HEAP_SUFFIX_WAYS; w++)
    if (set[w].n == 0) return &set[w];
  return &set[H.suffix_clock++ % PL__HEAP_SUFFIX_WAYS];
}

/* Slow path of pl__heap_capture (outside the mutex): DWARF, checked
 * against the frame-pointer result (pcs[0, fp_n), the foreign frame
 * (cr, cs) if r == PL__FP_CROSS, or the whole stack if complete), then the
 * cache filled on agreement. Returns with the mutex held. */
PL__HEAP_TEXT __attribute__((noinline)) void pl__heap_capture_slow(pl__heap_tls *t,
                                                                   pl__heap_sample_ctx *c, int r,
                                                                   unsigned fp_n, int complete,
                                                                   uintptr_t cr, uintptr_t cs) {
  uintptr_t fp_pcs[PL_HEAP_MAX_FRAMES], sps[PL_HEAP_MAX_FRAMES];
  if (fp_n) memcpy(fp_pcs, c->pcs, fp_n * sizeof(*fp_pcs));
  int truncated = 0;
  pl__heap_busy_enter(t); /* the unwinder may allocate (first use in a thread) */
  unsigned n = capture_dwarf(c->pcs, sps, &truncated);
  pl__heap_busy_exit(t);
  int prefix = r != PL__FP_BAD && n >= fp_n && memcmp(fp_pcs, c->pcs, fp_n * sizeof(*fp_pcs)) == 0;
  pl__heap_lock(t);
  c->how |= PL__HEAP_HOW_DWARF;
  int mismatch = 0;
  if (complete) {
    c->how |= PL__HEAP_HOW_CHECKED;
    mismatch = !prefix || n != fp_n || truncated != c->truncated;
  } else if (r == PL__FP_CROSS) {
    if (!prefix || n == fp_n || c->pcs[fp_n] != cr || sps[fp_n] != cs) {
      mismatch = 1;
    } else if (!truncated && n - fp_n <= PL__UNWIND_SUFFIX_MAX) {
      pl__unwind_suffix *e = suffix_victim_locked(cr, cs);
      e->ret = cr;
      e->csp = cs;
      e->n = n - fp_n;
      memcpy(e->ip, c->pcs + fp_n, e->n * sizeof(*e->ip));
      memcpy(e->sp, sps + fp_n, e->n * sizeof(*e->sp));
    }
  }
  if (complete || r == PL__FP_CROSS) H.unwind_compared++;
  if (mismatch) H.unwind_mismatch++;
  if (mismatch && !H.unwind_fell_back &&
      pl__unwind_give_up_fp(H.unwind_mismatch, H.unwind_compared) &&
      atomic_load_explicit(&H.unwind, memory_order_relaxed) == PL_HEAP_UNWIND_FP) {
    /* Frame pointers that keep disagreeing with DWARF: code in our module
     * built without them (a program linking the tracker), whose frames
     * the walk misreads. DWARF for every sample from now on. */
    atomic_store_explicit(&H.unwind, PL_HEAP_UNWIND_DWARF, memory_order_relaxed);
    H.unwind_fell_back = 1;
  }
  c->depth = n;
  c->truncated = truncated;
}
