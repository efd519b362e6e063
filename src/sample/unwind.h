/* SIGNAL-SAFE. Stack capture for the SIGPROF handler: a frame-pointer walk
 * for our own code, libgcc's DWARF unwinder for the rest, and a per-thread
 * cache of stack suffixes (the callers above the first frame that is not
 * ours) so that a sample in our code usually costs no DWARF at all.
 *
 * - pl_unwind_init(): once, normal context, before any timer is armed:
 *   finds the text of the module this code is linked into (built with
 *   -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer), maps the suffix
 *   cache, warms libgcc's unwinder. PROFLAB_CPU_UNWIND=dwarf turns the
 *   frame-pointer path off (for a program that links libproflab statically
 *   but is itself built without frame pointers).
 * - pl_unwind_prepare(): normal context, before arming, with no handler
 *   running: records the stack mappings (every thread's stack bounds) from
 *   /proc/self/maps and empties the cache. Threads started afterwards have
 *   no recorded bounds and are unwound with DWARF only.
 * - pl_unwind_capture(): in the handler. Reads memory through a frame
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
  PL_UNWIND_FP = 1u << 0,     /* a frame-pointer walk ran */
  PL_UNWIND_CACHED = 1u << 1, /* the callers came from the suffix cache */
  PL_UNWIND_DWARF = 1u << 2,  /* _Unwind_Backtrace ran */
  PL_UNWIND_FOUND = 1u << 3,  /* the stack starts at the interrupted frame */
};

typedef struct pl_unwind_stats {
  uint64_t captures, fp, cached, dwarf;
} pl_unwind_stats;

int pl_unwind_init(void);
void pl_unwind_prepare(void);
/* Frames of the interrupted code (uc: the handler's ucontext) into pcs;
 * returns the depth, *how gets PL_UNWIND_* bits. */
unsigned pl_unwind_capture(const ucontext_t *uc, unsigned slot, uintptr_t *pcs, unsigned max,
                           unsigned *how);
/* Test hook, in a signal handler: the interrupted stack by DWARF alone (no
 * frame pointers, no cache); 0 if the signal frame was not found. */
unsigned pl_unwind_dwarf(uintptr_t *pcs, unsigned max);
/* Counters since the last pl_unwind_prepare(). */
void pl_unwind_get_stats(pl_unwind_stats *s);
/* Whether pc lies in the frame-pointer module's text (test hook). */
int pl_unwind_pc_is_ours(uintptr_t pc);

#endif
