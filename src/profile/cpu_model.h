/* The CPU profile model: what the sampler collected, symbolized, ready for
 * the format writers (src/format/). Plain arrays; the profile owns them
 * (pl_cpu_profile_free). Built after the sampler stops, never in a signal
 * handler.
 */
#ifndef PL_PROFILE_CPU_MODEL_H
#define PL_PROFILE_CPU_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* A symbolized code location (one per distinct program counter). */
typedef struct pl_frame {
  const char *function;  /* never empty: a name, or "module+0xoffset" */
  const char *file;      /* source file path, "" when unknown */
  const char *module;    /* ELF module path ("" when unknown) */
  uint32_t line;         /* 1-based line of this location, 0 when unknown */
  uint32_t function_line;/* 1-based first line of the function, 0 when unknown */
  uint64_t address;      /* the program counter (a call site for callers) */
} pl_frame;

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
  void *arena;               /* owner of strings and arrays (implementation) */
} pl_cpu_profile;

#endif
