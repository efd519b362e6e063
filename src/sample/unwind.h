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
 * Per-pc CFA rules (every module, not only ours): libgcc's DWARF walks
 * teach, for each pc they pass, how to get from a frame at that pc to its
 * caller (CFA = rsp + k or rbp + k, return address at CFA - 8, the
 * caller's rbp unchanged or saved at CFA - m, or "outermost"), read from
 * the module's .eh_frame (_Unwind_Find_FDE) and kept only when they give
 * exactly the caller libgcc found. Later captures walk frame by frame
 * with these rules (frame pointers and the suffix cache still take our
 * own frames) while every pc has one, and fall back to DWARF (learning)
 * at the first that has none. A rule is tied to its module's identity
 * (_dl_find_object: mapping, unwind table): after dlclose/dlopen a rule
 * of a module no longer there is never used. Bounded: a table mapped at
 * init, one seqlock-protected entry per pc, written by any handler
 * without waiting. PROFLAB_CPU_UNWIND_RULES=off turns them off (DWARF as
 * before), =verify compares every stack they produce with DWARF (DWARF's
 * wins; a rule that disagrees is replaced by "DWARF only" for its pc).
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
  PL__UNWIND_RULES = 1u << 5,   /* frames found by per-pc CFA rules, no DWARF run */
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
  /* per-pc CFA rules: captures completed with them (no DWARF; counted in
   * captures - dwarf), the frames they gave, rule walks that met a pc
   * without a rule (DWARF ran), frames DWARF recorded in all its runs;
   * rules learned (checked against libgcc's caller), pcs found
   * inexpressible (kept as "DWARF only"), rules of a module no longer at
   * their pc (dlclose/dlopen) met; rule stacks compared with DWARF (every
   * 256th, or all with PROFLAB_CPU_UNWIND_RULES=verify) and those DWARF
   * disagreed with. Since the last pl__unwind_prepare(), like the others;
   * the rules themselves are kept across profiles. */
  uint64_t rules, rule_frames, rule_misses, dwarf_frames;
  uint64_t rules_learned, rules_inexpressible, rules_stale, rules_checked, rules_mismatched;
  uint64_t rules_disagreed; /* of rules_inexpressible: the table's rule gave another caller */
  int rules_mode;           /* PL__UNWIND_RULES_OFF, _ON or _VERIFY */
} pl__unwind_stats;

enum { PL__UNWIND_RULES_OFF, PL__UNWIND_RULES_ON, PL__UNWIND_RULES_VERIFY };

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
/* Test hooks (normal context, no handler running): frame pointers off or
 * back on (every frame then by rules or DWARF); the rules' mode; the rule
 * a capture would use for the frame at pc (first: the interrupted frame,
 * else a return address): 0 none, 1 a CFA rule, 2 outermost, 3 "DWARF
 * only"; forget every rule. */
void pl__unwind_test_fp(int on);
void pl__unwind_test_rules(int mode);
int pl__unwind_test_rule_of(uintptr_t pc, int first);
void pl__unwind_test_forget_rules(void);
/* Test hook: makes the CFA rule for that frame wrong (its CFA 8 bytes
 * higher, or "outermost"); 1 if there was one. */
int pl__unwind_test_break_rule(uintptr_t pc, int first, int outermost);

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
