/* proflab — event-loop delay and utilization, like Node's
 * perf_hooks.monitorEventLoopDelay() and performance.eventLoopUtilization().
 *
 * A repeating uv timer at `resolution_ms` measures how late each tick fires;
 * the lag (delay beyond the resolution) goes into a log-linear histogram in
 * microseconds. Utilization comes from uv_metrics_idle_time(), so the loop
 * must be configured with uv_loop_configure(loop, UV_METRICS_IDLE_TIME)
 * before it first runs (pl_loopmon_configure does that).
 * Loop thread only.
 */
#ifndef PROFLAB_LOOPMON_H
#define PROFLAB_LOOPMON_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pl_loopmon pl_loopmon;

typedef struct pl_loop_stats {
  uint64_t count; /* ticks measured */
  double min_ms, mean_ms, p50_ms, p90_ms, p99_ms, max_ms;
  double utilization;        /* since start, 0..1 */
  double utilization_recent; /* over the last full second, 0..1 */
  unsigned resolution_ms;
} pl_loop_stats;

/* Enable idle-time metrics on a loop that has not run yet. */
int pl_loopmon_configure(uv_loop_t *loop);
/* Start measuring. The timer is unreferenced: it never keeps the loop alive. */
int pl_loopmon_new(pl_loopmon **out, uv_loop_t *loop, unsigned resolution_ms);
/* Stop; memory is released once the loop has closed the timer. */
void pl_loopmon_free(pl_loopmon *m);
void pl_loopmon_stats(const pl_loopmon *m, pl_loop_stats *st);
/* Lag the next tick will see if it fired now: time since the last tick
 * beyond the resolution, in ms (what a jam just caused). */
double pl_loopmon_current_lag_ms(const pl_loopmon *m);
/* Prometheus histogram of lag in seconds: bucket upper bounds, cumulative
 * counts (n each), sum in seconds and count. */
size_t pl_loopmon_prom(const pl_loopmon *m, const double **le, uint64_t *cumulative, size_t n,
                       double *sum_s, uint64_t *count);

#ifdef __cplusplus
}
#endif
#endif
