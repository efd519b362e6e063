/* Two profiles compared function by function, for `proflab diff`
 * (internal to the library; layer 5, above the models and the formats).
 *
 * Both profiles go into one flame-graph tree (analysis/flame.h): B on the
 * main side, A on the base side, so the same tree draws the differential
 * flame graph of B. A function is what `proflab top` calls one: (name,
 * file, first line), or its name alone with PL__FLAME_BY_NAME. Its self
 * share is the part of its profile's counted value with the function as
 * the leaf, its total share the part with the function anywhere on the
 * stack (once per stack when it recurses). CPU: the value is sampling
 * periods, "(idle)" left out unless PL__FLAME_IDLE (so shares are of the
 * busy time), and a change is "within noise" when its magnitude is below
 * twice the combined standard error sqrt(se_A^2 + se_B^2), se =
 * sqrt(p(1 - p)/n) for a share p over n sampling periods. Heap: live
 * bytes; no noise band (the files do not keep the sample counts it needs).
 */
#ifndef PL_ANALYSIS_DIFF_H
#define PL_ANALYSIS_DIFF_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/flame.h"
#include "proflab/cpu_profile.h"
#include "proflab/heap_snapshot.h"

/* Indices of the per-profile arrays of a row. */
enum { PL__DIFF_A = 0, PL__DIFF_B = 1 };

typedef struct pl__diff_row {
  const char *function;                 /* borrowed from the diff's tree */
  const char *file;                     /* "" when unknown */
  const char *module;                   /* "" when unknown */
  uint32_t line;                        /* the function's first line, 0 when unknown */
  int meta;                             /* "(idle)", "(program)", ...: not code */
  uint64_t self[2], total[2];           /* by profile (A, B): periods or bytes */
  double self_share[2], total_share[2]; /* by profile: fractions of its counted value */
  double d_self, d_total;               /* B - A, fractions */
  double self_band, total_band;         /* twice the combined standard error; 0: no band */
  int self_noise, total_noise;          /* 1: the change is within noise (or none) */
} pl__diff_row;

typedef struct pl__diff {
  pl__diff_row *rows;
  size_t nrows;
  uint64_t total[2];   /* by profile: the value shares are of (periods or bytes) */
  uint64_t idle[2];    /* by profile, CPU: periods in "(idle)" (counted only with PL__FLAME_IDLE) */
  int noise;           /* the rows carry a noise band (CPU) */
  pl__flame_tree tree; /* finished: B on PL__FLAME_MAIN, A on PL__FLAME_BASE */
} pl__diff;

/* Compares CPU profiles a and b (times_known: the format has times; 0 for
 * folded stacks) into out, zeroed first, rows unsorted. flags:
 * PL__FLAME_IDLE, PL__FLAME_BY_NAME. 0, -EINVAL (a profile breaks
 * cpu_profile.h), -ENOMEM, -EFBIG; on error nothing is left to free. */
int pl__diff_cpu(const pl_cpu_profile *a, int a_times, const pl_cpu_profile *b, int b_times,
                 unsigned flags, pl__diff *out);

/* Compares the live bytes of heap snapshots a and b (see
 * pl__flame_add_heap) into out, as pl__diff_cpu() does; no noise band. */
int pl__diff_heap(const pl_heap_snapshot *a, const pl_heap_snapshot *b, unsigned flags,
                  pl__diff *out);

/* Twice the combined standard error of shares pa over na and pb over nb
 * samples: 2 sqrt(pa(1 - pa)/na + pb(1 - pb)/nb); a side with n = 0 adds
 * nothing. */
double pl__diff_band(double pa, uint64_t na, double pb, uint64_t nb);

/* Sorts the rows by the size of their self change (by_total 0) or total
 * change, largest first: of shares (CPU) or of bytes (heap); ties by the
 * other change, then by name, file and line. */
void pl__diff_sort(pl__diff *d, int by_total);

/* Releases the rows and the tree; d is zeroed. */
void pl__diff_free(pl__diff *d);

#endif
