/* SIGNAL-SAFE. Stack capture for the SIGPROF handler: a frame-pointer walk
 * for our own code, libgcc's DWARF unwinder for the rest, and a per-thread
 * cache of stack suffixes (the callers above the first frame that is not
 * ours) so that a sample in our code usually costs no DWARF at all.
 *
 * - pl__unwind_init(): once, normal context, before any timer is armed:
 *   finds the text of the module this code is linked into (built with
 *   -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer), maps the suffix
 *   cache, warms libgcc's unwinder. PROFLAB_CPU_UNWIND=dwarf turns the
 *   frame-pointer path off (for a program that links libproflab statically
 *   but is itself built without frame pointers).
 * - pl__unwind_prepare(): normal context, before arming, with no handler
 *   running: records the stack mappings (every thread's stack bounds) from
 *   /proc/self/maps and empties the cache. Threads started afterwards have
 *   no recorded bounds and are unwound with DWARF only.
 * - pl__unwind_capture(): in the handler. Reads memory through a frame
 *   pointer only after checking it against the interrupted thread's stack
 *   mapping (8-aligned, strictly increasing). `slot` is the thread's timer
 *   index; one handler at a time per slot (SIGPROF is blocked while its
 *   handler runs, and a slot belongs to one thread).
 *
 * pcs[0] is the interrupted instruction, the others return addresses.
 * Known limit: a sample between a function's first instruction and its
 * frame set-up can lose that function's caller (one frame) when the
 * prologue is shrink-wrapped (the common `endbr64; push %rbp; mov
 * %rsp,%rbp` entry, the frame-less `ret` and PLT jumps are recognized and
 * keep it).
 */
#ifndef PL_SAMPLE_UNWIND_H
#define PL_SAMPLE_UNWIND_H

#include <stdint.h>
#include <ucontext.h>

/* How the last capture was made (test and benchmark counters). */
enum {
  PL__UNWIND_FP = 1u << 0,      /* a frame-pointer walk ran */
  PL__UNWIND_CACHED = 1u << 1,  /* the callers came from the suffix cache */
  PL__UNWIND_DWARF = 1u << 2,   /* _Unwind_Backtrace ran */
  PL__UNWIND_FOUND = 1u << 3,   /* the stack starts at the interrupted frame */
  PL__UNWIND_CHECKED = 1u << 4, /* also compared with a full DWARF unwind (every 256th) */
};
#define PL__UNWIND_CHECK_MAX 128 /* frames a periodic check compares */

typedef struct pl__unwind_stats {
  uint64_t captures, fp, cached, dwarf;
  /* frame-pointer results compared with DWARF (on a cache miss, and every
   * 256th of a thread in full), those DWARF disagreed with, and whether
   * frame pointers were given up for this profile (3 or more
   * disagreements, at least 1 in 20 comparisons) */
  uint64_t verified, mismatched;
  int fell_back;
} pl__unwind_stats;

int pl__unwind_init(void);
void pl__unwind_prepare(void);
/* Frames of the interrupted code (uc: the handler's ucontext) into pcs;
 * returns the depth, *how gets PL_UNWIND_* bits. */
unsigned pl__unwind_capture(const ucontext_t *uc, unsigned slot, uintptr_t *pcs, unsigned max,
                            unsigned *how);
/* Test hook, in a signal handler: the interrupted stack by DWARF alone (no
 * frame pointers, no cache); 0 if the signal frame was not found. */
unsigned pl__unwind_dwarf(uintptr_t *pcs, unsigned max);
/* Counters since the last pl__unwind_prepare() (which also turns frame
 * pointers back on after a fallback). */
void pl__unwind_get_stats(pl__unwind_stats *s);
/* Test hook: never give frame pointers up (tests that feed corrupted
 * frame pointers on purpose). */
void pl__unwind_test_no_fallback(int on);
/* Whether pc lies in the frame-pointer module's text (the module this code
 * is linked into; known after pl__unwind_init). */
int pl__unwind_pc_is_ours(uintptr_t pc);

/* ---- shared with the heap tracker's synchronous capture (heap/stack_capture.c) --
 * Its stacks start in its own frames (no signal, no ucontext), so it walks
 * the same frame-pointer chain with bounds it finds per thread, and keeps
 * suffixes of its own (under its mutex) in the same format. */

/* Whether pl__unwind_init found our text (whatever PROFLAB_CPU_UNWIND says). */
int pl__unwind_text_known(void);

/* How pl__unwind_fp_walk stopped. */
enum { PL__FP_END, PL__FP_CROSS, PL__FP_BAD, PL__FP_FULL };

/* Walks frame pointers from the pending frame (return address ret, found at
 * csp - 8; nfp: the frame pointer of ret's function), appending return
 * addresses of our text to pcs[*n..max). Stops at the outermost frame
 * (PL__FP_END), at a return address outside our text (PL__FP_CROSS:
 * *cross_ret, *cross_sp are that foreign frame), when full, or at a frame
 * pointer not 8-aligned, not above the previous frame or past top - 16
 * (PL__FP_BAD). Every read lies in [csp, top): the caller guarantees that
 * range is mapped. SIGNAL-SAFE. */
int pl__unwind_fp_walk(uintptr_t ret, uintptr_t csp, uintptr_t nfp, uintptr_t top, uintptr_t *pcs,
                       unsigned *n, unsigned max, uintptr_t *cross_ret, uintptr_t *cross_sp);

/* The callers of a foreign frame, as DWARF found them: ip[i] is a return
 * address that was at sp[i] - 8 (sp[i]: _Unwind_GetCFA in the backtrace
 * callback of frame i). ip[0] == ret, sp[0] == csp. */
#define PL__UNWIND_SUFFIX_MAX 48
typedef struct pl__unwind_suffix {
  uintptr_t ret, csp; /* key: the first foreign frame's pc and stack pointer */
  uint32_t n;         /* 0 = empty */
  uint32_t pad;
  uintptr_t ip[PL__UNWIND_SUFFIX_MAX];
  uintptr_t sp[PL__UNWIND_SUFFIX_MAX];
} pl__unwind_suffix;

/* Where a suffix cache (the sampler's per thread, the heap tracker's) puts
 * the callers of the foreign frame (ret, csp): take the high bits. */
static inline uint64_t pl__unwind_suffix_hash(uintptr_t ret, uintptr_t csp) {
  return ((uint64_t)ret ^ ((uint64_t)csp << 17) ^ ((uint64_t)csp >> 3)) * 0x9E3779B97F4A7C15ull;
}

/* Both capture paths compare a frame-pointer stack with a full DWARF
 * unwind every PL__UNWIND_CHECK_EVERY captures of a thread, every
 * PL__UNWIND_CHECK_EVERY_SUSPECT once one disagreed, and give frame
 * pointers up (code built without them) when the disagreements are 3 or
 * more and at least 1 in 20 comparisons: not at the first one, since a
 * sample inside a shrink-wrapped prologue can lose one frame in correct
 * code. */
#define PL__UNWIND_CHECK_EVERY 256
#define PL__UNWIND_CHECK_EVERY_SUSPECT 16
static inline int pl__unwind_give_up_fp(uint64_t mismatched, uint64_t compared) {
  return mismatched >= 3 && mismatched * 20 >= compared;
}

/* Appends e's frames to pcs[*n..max) if e is the suffix of (ret, csp) and
 * every return address it was found through is still in its place on the
 * stack (reads lie in [csp, top)); 1 if it did. SIGNAL-SAFE. */
int pl__unwind_suffix_match(const pl__unwind_suffix *e, uintptr_t ret, uintptr_t csp, uintptr_t top,
                            uintptr_t *pcs, unsigned *n, unsigned max);

/* Normal context, no allocation, not a cancellation point: [lo, hi) of the
 * mapping that holds addr, read from /proc/self/maps with raw system
 * calls; *main_stack: it is [stack], and lo is as far down as it may grow
 * (to the mapping below, at most 1 GiB). 0, or -1 if not found. */
int pl__unwind_mapping_of(uintptr_t addr, uintptr_t *lo, uintptr_t *hi, int *main_stack);

#endif
