/* proflab — the CPU profile model: what the sampler collected (or a reader
 * found in a file), symbolized, ready for the format writers. Plain arrays;
 * the profile owns them and its strings (pl_cpu_profile_free). Built after
 * the sampler stops, never in a signal handler. Not thread-safe: one
 * thread at a time may use a profile (it may change hands).
 */
#ifndef PROFLAB_CPU_PROFILE_H
#define PROFLAB_CPU_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "proflab/frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A call stack: indices into pl_cpu_profile.frames, leaf first. */
typedef struct pl_cpu_stack {
  uint32_t depth;
  uint32_t *frames;
} pl_cpu_stack;

/* Special stack ids for samples without a real stack. */
#define PL_STACK_IDLE UINT32_MAX          /* the loop thread waited in poll */
#define PL_STACK_PROGRAM (UINT32_MAX - 1) /* no stack could be taken */

typedef struct pl_cpu_sample {
  uint64_t time_ns; /* monotonic clock */
  uint32_t stack;   /* index into stacks, or PL_STACK_IDLE/PL_STACK_PROGRAM */
  uint32_t weight;  /* sampling periods this sample stands for (>= 1) */
  uint32_t tid;
} pl_cpu_sample;

/* A thread a profile set out to sample (the sampler fills these; a reader
 * of a file may leave them empty). */
enum {
  PL_CPU_THREAD_SIGPROF_BLOCKED = 1u << 0, /* its signal mask blocks SIGPROF: not sampled */
};
typedef struct pl_cpu_thread {
  uint32_t tid;
  uint32_t flags;   /* PL_CPU_THREAD_* */
  const char *name; /* its name (/proc/self/task/TID/comm) when first seen; "" unknown */
} pl_cpu_thread;

typedef struct pl_cpu_profile {
  pl_frame *frames;
  size_t nframes;
  pl_cpu_stack *stacks;
  size_t nstacks;
  pl_cpu_sample *samples; /* in time order */
  size_t nsamples;
  uint64_t start_ns, end_ns; /* monotonic clock */
  uint64_t start_wall_ns;    /* wall clock at start_ns */
  uint64_t period_ns;        /* sampling interval asked for */
  const char *mode;          /* "wall" or "cpu" */
  uint64_t signals;          /* signals handled */
  uint64_t dropped;          /* samples lost (ring full) */
  /* how stacks were captured: without DWARF (frame pointers, per-pc
   * rules, cached callers), with callers from the suffix cache, with
   * libgcc's DWARF unwinder for some frames */
  uint64_t unwind_fp, unwind_cached, unwind_dwarf;
  /* frame-pointer stacks compared with DWARF, those it disagreed with, and
   * whether frame pointers were given up during the profile */
  uint64_t unwind_verified, unwind_mismatched;
  int unwind_fell_back;
  uint64_t idle_samples; /* samples that are PL_STACK_IDLE */
  /* wall mode: samples whose thread waited in a system call (PL_STACK_IDLE,
   * or with their stack when the profile was asked to keep them) */
  uint64_t blocked_samples;
  pl_cpu_thread *threads; /* the threads the sampler looked at, in the order found */
  size_t nthreads;
  /* the program replaced proflab's SIGPROF handler (or set SIG_IGN) while
   * the profile ran: what was collected is not the whole period */
  int sigprof_lost;
  void *owner; /* owner of strings and arrays (implementation) */
} pl_cpu_profile;

/* An empty profile (all fields 0, strings NULL) that owns what is later
 * given to it, or NULL when out of memory. */
pl_cpu_profile *pl_cpu_profile_new(void);
/* n zeroed, 16-byte aligned bytes freed with p, or NULL. */
void *pl_cpu_profile_alloc(pl_cpu_profile *p, size_t n);
/* A copy of s freed with p, or NULL. */
char *pl_cpu_profile_strdup(pl_cpu_profile *p, const char *s);
/* Hand block (from malloc) to p: freed with it. 0, or -ENOMEM (then block
 * was freed already). */
int pl_cpu_profile_adopt(pl_cpu_profile *p, void *block);
/* Free p and all it owns. NULL is fine. */
void pl_cpu_profile_free(pl_cpu_profile *p);

/* Summary numbers of a profile. */
typedef struct pl_cpu_profile_info {
  uint64_t samples; /* samples recorded */
  uint64_t weight;  /* sampling periods they stand for */
  uint64_t idle_samples;
  uint64_t signals; /* signals handled */
  uint64_t dropped; /* samples lost to a full buffer */
  /* stacks captured without DWARF (frame pointers, per-pc rules, cached
   * callers), with callers from the suffix cache, and with libgcc's DWARF
   * unwinder for some frames */
  uint64_t unwind_fp, unwind_cached, unwind_dwarf;
  /* frame-pointer stacks compared with DWARF (on a cache miss; every 256th
   * in full), those it disagreed with, and whether frame pointers were given
   * up for the rest of the profile (code built without them) */
  uint64_t unwind_verified, unwind_mismatched;
  int unwind_fell_back;
  uint64_t period_ns;
  uint64_t duration_ns;
  unsigned threads;                  /* distinct threads seen (up to 64) */
  uint64_t blocked_samples;          /* see pl_cpu_profile.blocked_samples */
  unsigned threads_blocking_sigprof; /* threads left out: their mask blocks SIGPROF */
  int sigprof_lost;                  /* see pl_cpu_profile.sigprof_lost */
} pl_cpu_profile_info;
void pl_cpu_profile_get_info(const pl_cpu_profile *p, pl_cpu_profile_info *info);

#ifdef __cplusplus
}
#endif
#endif
