/* A profile aggregated by function, as `proflab top` shows it (internal to
 * the library; layer 5, above the models and the formats).
 *
 * A function is (name, file, first line): frames of one function at other
 * lines are summed. CPU: self = sampling periods with the function as the
 * leaf; total = periods with the function anywhere on the stack, counted
 * once per sample even when it recurses. "(idle)" and "(program)" samples
 * are rows of their own, and percentages are of the whole profile, idle
 * included: what DevTools' bottom-up view (and `go tool pprof -top`) shows.
 * Heap: self = the live bytes and objects a function allocated (the leaf
 * after allocation helpers such as malloc or strdup, as the writers drop
 * them: heap_writers.h), total = those allocated by it or its callees.
 */
#ifndef PL_ANALYSIS_TOP_H
#define PL_ANALYSIS_TOP_H

#include <stddef.h>
#include <stdint.h>

#include "proflab/cpu_profile.h"
#include "proflab/heap_snapshot.h"

typedef struct pl__top_row {
  const char *function; /* borrowed from the model */
  const char *file;     /* "" when unknown */
  const char *module;   /* "" when unknown */
  uint32_t line;        /* the function's first line, else the first frame's line, 0 unknown */
  int meta;             /* a "(name)" without a file: (idle), (program), (garbage collector) */
  /* CPU: sampling periods; heap: estimated live bytes (rounded) */
  uint64_t self, total;
  double self_objects, total_objects; /* heap: estimated live objects */
} pl__top_row;

typedef struct pl__top {
  pl__top_row *rows;
  size_t nrows;
  uint64_t total;       /* CPU: all periods; heap: all live bytes */
  double total_objects; /* heap: all live objects */
  uint64_t idle;        /* CPU: periods in (idle) */
  uint64_t samples;     /* CPU: model samples; heap: live samples */
  void *keep;           /* what the rows borrow from (implementation) */
} pl__top;

/* Aggregates p into out (zeroed first). 0, -ENOMEM, or -EINVAL for a model
 * that breaks cpu_profile.h (an index out of range). */
int pl__top_cpu(const pl_cpu_profile *p, pl__top *out);

/* Aggregates s (symbolized, or frames NULL: then each pc is a function
 * "0x..."; rows then borrow names from a copy inside out) into out. 0,
 * -ENOMEM, -EINVAL as the heap writers' checks. */
int pl__top_heap(const pl_heap_snapshot *s, pl__top *out);

/* Sorts the rows by self (by_total 0) or total, largest first; ties by the
 * other value, then by name. */
void pl__top_sort(pl__top *t, int by_total);

/* Releases the rows (and what they borrow from); t is zeroed. */
void pl__top_free(pl__top *t);

#endif
