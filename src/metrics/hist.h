/* Log-linear histogram of unsigned values (HdrHistogram-style): exact below
 * 32, then 32 linear sub-buckets per power of two, so any recorded value is
 * reported within ~3%. Fixed size, no allocation; not thread-safe. */
#ifndef PL_METRICS_HIST_H
#define PL_METRICS_HIST_H

#include <stdint.h>

#define PL__HIST_SUB_BITS 5
#define PL__HIST_SUB (1u << PL__HIST_SUB_BITS)
#define PL__HIST_MAX_BITS 48 /* values up to 2^48 (µs: ~9 years) */
#define PL__HIST_BUCKETS ((PL__HIST_MAX_BITS - PL__HIST_SUB_BITS + 1) * PL__HIST_SUB)

typedef struct pl__hist {
  uint64_t counts[PL__HIST_BUCKETS];
  uint64_t count;
  uint64_t sum;
  uint64_t min;
  uint64_t max;
} pl__hist;

void pl__hist_init(pl__hist *h);
void pl__hist_record(pl__hist *h, uint64_t v);
/* Value at percentile p (0..100): the midpoint of the bucket holding it,
 * clamped to [min, max]. 0 when empty. */
uint64_t pl__hist_percentile(const pl__hist *h, double p);
double pl__hist_mean(const pl__hist *h);
/* Bucket index and lower bound, exposed for tests. */
unsigned pl__hist_index(uint64_t v);
uint64_t pl__hist_lower(unsigned idx);

#endif
