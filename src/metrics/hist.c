/* Log-linear histogram (see hist.h). */
#include "metrics/hist.h"

#include <string.h>

void pl_hist_init(pl_hist *h) { memset(h, 0, sizeof(*h)); }

unsigned pl_hist_index(uint64_t v) {
  if (v >= (1ull << PL_HIST_MAX_BITS)) v = (1ull << PL_HIST_MAX_BITS) - 1;
  if (v < 2 * PL_HIST_SUB) return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v);
  unsigned shift = msb - PL_HIST_SUB_BITS; /* v >> shift is in [SUB, 2*SUB) */
  return shift * PL_HIST_SUB + (unsigned)(v >> shift);
}

uint64_t pl_hist_lower(unsigned idx) {
  if (idx < 2 * PL_HIST_SUB) return idx;
  unsigned shift = idx / PL_HIST_SUB - 1;
  uint64_t sub = idx % PL_HIST_SUB + PL_HIST_SUB;
  return sub << shift;
}

void pl_hist_record(pl_hist *h, uint64_t v) {
  h->counts[pl_hist_index(v)]++;
  if (h->count == 0 || v < h->min) h->min = v;
  if (v > h->max) h->max = v;
  h->count++;
  h->sum += v;
}

uint64_t pl_hist_percentile(const pl_hist *h, double p) {
  if (h->count == 0) return 0;
  if (p <= 0) return h->min;
  if (p >= 100) return h->max;
  uint64_t rank = (uint64_t)((p / 100.0) * (double)h->count + 0.999999);
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < PL_HIST_BUCKETS; i++) {
    seen += h->counts[i];
    if (seen >= rank) {
      uint64_t lo = pl_hist_lower(i);
      uint64_t hi = (i + 1 < PL_HIST_BUCKETS) ? pl_hist_lower(i + 1) : lo + 1;
      uint64_t mid = lo + (hi - lo - 1) / 2;
      if (mid < h->min) mid = h->min;
      if (mid > h->max) mid = h->max;
      return mid;
    }
  }
  return h->max;
}

double pl_hist_mean(const pl_hist *h) {
  return h->count ? (double)h->sum / (double)h->count : 0.0;
}
