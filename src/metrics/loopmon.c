/* Event-loop lag and utilization (see include/proflab/loopmon.h). */
#include "proflab/loopmon.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "metrics/hist.h"

static const double prom_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,  0.5,    1,     2.5,  5,     10};
#define PROM_N (sizeof(prom_le) / sizeof(prom_le[0]))

struct pl_loopmon {
  uv_loop_t *loop;
  uv_timer_t timer;
  unsigned resolution_ms;
  uint64_t last_ns;
  uint64_t start_ns;
  uint64_t start_idle_ns;
  uint64_t win_start_ns;
  uint64_t win_idle_ns;
  double recent_util;
  pl__hist hist;                    /* microseconds */
  uint64_t prom_counts[PROM_N + 1]; /* last: +Inf */
};

int pl_loopmon_configure(uv_loop_t *loop) {
  int rc = uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
  return rc < 0 ? rc : 0;
}

static void on_tick(uv_timer_t *t) {
  pl_loopmon *m = t->data;
  uint64_t now = uv_hrtime();
  uint64_t res_ns = (uint64_t)m->resolution_ms * 1000000u;
  uint64_t delta = now - m->last_ns;
  uint64_t lag_ns = delta > res_ns ? delta - res_ns : 0;
  m->last_ns = now;
  uint64_t lag_us = lag_ns / 1000u;
  pl__hist_record(&m->hist, lag_us);
  double lag_s = (double)lag_ns / 1e9;
  size_t i = 0;
  while (i < PROM_N && lag_s > prom_le[i]) i++;
  m->prom_counts[i]++;
  if (now - m->win_start_ns >= 1000000000u) {
    uint64_t idle = uv_metrics_idle_time(m->loop);
    double busy = 1.0 - (double)(idle - m->win_idle_ns) / (double)(now - m->win_start_ns);
    m->recent_util = busy < 0 ? 0 : busy > 1 ? 1 : busy;
    m->win_start_ns = now;
    m->win_idle_ns = idle;
  }
}

int pl_loopmon_new(pl_loopmon **out, uv_loop_t *loop, unsigned resolution_ms) {
  if (resolution_ms == 0) return -EINVAL;
  pl_loopmon *m = calloc(1, sizeof(*m));
  if (!m) return -ENOMEM;
  m->loop = loop;
  m->resolution_ms = resolution_ms;
  pl__hist_init(&m->hist);
  int rc = uv_timer_init(loop, &m->timer);
  if (rc < 0) {
    free(m);
    return rc;
  }
  m->timer.data = m;
  m->start_ns = m->last_ns = m->win_start_ns = uv_hrtime();
  m->start_idle_ns = m->win_idle_ns = uv_metrics_idle_time(loop);
  uv_timer_start(&m->timer, on_tick, resolution_ms, resolution_ms);
  uv_unref((uv_handle_t *)&m->timer);
  *out = m;
  return 0;
}

static void on_closed(uv_handle_t *h) { free(h->data); }

void pl_loopmon_free(pl_loopmon *m) {
  if (!m) return;
  uv_close((uv_handle_t *)&m->timer, on_closed);
}

void pl_loopmon_stats(const pl_loopmon *m, pl_loop_stats *st) {
  memset(st, 0, sizeof(*st));
  st->resolution_ms = m->resolution_ms;
  st->count = m->hist.count;
  st->min_ms = (double)m->hist.min / 1000.0;
  st->max_ms = (double)m->hist.max / 1000.0;
  st->mean_ms = pl__hist_mean(&m->hist) / 1000.0;
  st->p50_ms = (double)pl__hist_percentile(&m->hist, 50) / 1000.0;
  st->p90_ms = (double)pl__hist_percentile(&m->hist, 90) / 1000.0;
  st->p99_ms = (double)pl__hist_percentile(&m->hist, 99) / 1000.0;
  uint64_t now = uv_hrtime();
  uint64_t idle = uv_metrics_idle_time(m->loop) - m->start_idle_ns;
  uint64_t elapsed = now - m->start_ns;
  double u = elapsed ? 1.0 - (double)idle / (double)elapsed : 0;
  st->utilization = u < 0 ? 0 : u > 1 ? 1 : u;
  st->utilization_recent = m->recent_util;
}

double pl_loopmon_current_lag_ms(const pl_loopmon *m) {
  uint64_t now = uv_hrtime();
  uint64_t res_ns = (uint64_t)m->resolution_ms * 1000000u;
  uint64_t delta = now - m->last_ns;
  return delta > res_ns ? (double)(delta - res_ns) / 1e6 : 0.0;
}

size_t pl_loopmon_prom(const pl_loopmon *m, const double **le, uint64_t *cumulative, size_t n,
                       double *sum_s, uint64_t *count) {
  *le = prom_le;
  uint64_t acc = 0;
  for (size_t i = 0; i < PROM_N && i < n; i++) {
    acc += m->prom_counts[i];
    cumulative[i] = acc;
  }
  *sum_s = (double)m->hist.sum / 1e6;
  *count = m->hist.count;
  return PROM_N;
}
