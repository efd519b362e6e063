/* Log-linear histogram (see hist.h). */
#include "metrics/hist.h"

#include <string.h>

void pl__hist_init(pl__hist *h) { memset(h, 0, sizeof(*h)); }

unsigned pl__hist_index(uint64_t v) {
  if (v >= (1ull << PL__HIST_MAX_BITS)) v = (1ull << PL__HIST_MAX_BITS) - 1;
  if (v < 2 * PL__HIST_SUB) return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v);
  unsigned shift = msb - PL__HIST_SUB_BITS; /* v >> shift is in [SUB, 2*SUB) */
  return shift * PL__HIST_SUB + (unsigned)(v >> shift);
}

uint64_t pl__hist_lower(unsigned idx) {
  if (idx < 2 * PL__HIST_SUB) return idx;
  unsigned shift = idx / PL__HIST_SUB - 1;
  uint64_t sub = idx % PL__HIST_SUB + PL__HIST_SUB;
  return sub << shift;
}

void pl__hist_record(pl__hist *h, uint64_t v) {
  h->counts[pl__hist_index(v)]++;
  if (h->count == 0 || v < h->min) h->min = v;
  if (v > h->max) h->max = v;
  h->count++;
  h->sum += v;
}

uint64_t pl__hist_percentile(const pl__hist *h, double p) {
  if (h->count == 0) return 0;
  if (p <= 0) return h->min;
  if (p >= 100) return h->max;
  uint64_t rank = (uint64_t)((p / 100.0) * (double)h->count + 0.999999);
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < PL__HIST_BUCKETS; i++) {
    seen += h->counts[i];
    if (seen >= rank) {
      uint64_t lo = pl__hist_lower(i);
      uint64_t hi = (i + 1 < PL__HIST_BUCKETS) ? pl__hist_lower(i + 1) : lo + 1;
      uint64_t mid = lo + (hi - lo - 1) / 2;
      if (mid < h->min) mid = h->min;
      if (mid > h->max) mid = h->max;
      return mid;
    }
  }
  return h->max;
}

double pl__hist_mean(const pl__hist *h) {
  return h->count ? (double)h->sum / (double)h->count : 0.0;
}
