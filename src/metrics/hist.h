/* Log-linear histogram of unsigned values (HdrHistogram-style): exact below
 * 32, then 32 linear sub-buckets per power of two, so any recorded value is
 * reported within ~3%. Fixed size, no allocation; not thread-safe. */
#ifndef PL_METRICS_HIST_H
#define PL_METRICS_HIST_H

#include <stdint.h>

#define PL_HIST_SUB_BITS 5
#define PL_HIST_SUB (1u << PL_HIST_SUB_BITS)
#define PL_HIST_MAX_BITS 48 /* values up to 2^48 (µs: ~9 years) */
#define PL_HIST_BUCKETS ((PL_HIST_MAX_BITS - PL_HIST_SUB_BITS + 1) * PL_HIST_SUB)

typedef struct pl_hist {
  uint64_t counts[PL_HIST_BUCKETS];
  uint64_t count;
  uint64_t sum;
  uint64_t min;
  uint64_t max;
} pl_hist;

void pl_hist_init(pl_hist *h);
void pl_hist_record(pl_hist *h, uint64_t v);
/* Value at percentile p (0..100): the midpoint of the bucket holding it,
 * clamped to [min, max]. 0 when empty. */
uint64_t pl_hist_percentile(const pl_hist *h, double p);
double pl_hist_mean(const pl_hist *h);
/* Bucket index and lower bound, exposed for tests. */
unsigned pl_hist_index(uint64_t v);
uint64_t pl_hist_lower(unsigned idx);

#endif
