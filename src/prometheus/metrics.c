/* GET /metrics (proflab/metrics.h): Prometheus text exposition format
 * 0.0.4, gathered from every layer below: the loop monitor, the heap
 * tracker, the capture path's counters, the lab and the HTTP server. */
#include "proflab/metrics.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "capture/capture.h"
#include "capture/heap_tracker.h"
#include "common/util.h"
#include "proflab/inspector.h"

typedef struct metrics {
  pl_loopmon *mon;
  pl_lab *lab;
  uint64_t start_wall_ns;
} metrics;

static void put_le(pl_buf *b, double le) {
  char tmp[32];
  snprintf(tmp, sizeof(tmp), "%g", le);
  pl_buf_puts(b, tmp);
}

/* Label values escape backslash, quote and newline. */
static void put_label(pl_buf *b, const char *v) {
  for (; *v; v++) {
    if (*v == '\\' || *v == '"') pl_buf_putc(b, '\\');
    if (*v == '\n') {
      pl_buf_puts(b, "\\n");
      continue;
    }
    pl_buf_putc(b, *v);
  }
}

static void put_stat(const pl_route_stat *st, void *arg) {
  pl_buf *b = arg;
  pl_buf_puts(b, "proflab_http_requests_total{route=\"");
  put_label(b, st->route);
  pl_buf_printf(b, "\",status=\"%u\"} %llu\n", st->status, (unsigned long long)st->count);
}

static void on_metrics(pl_request *r, void *arg) {
  metrics *m = arg;
  if (pl_request_params(r, NULL, 0, NULL)) return;
  pl_buf b;
  pl_buf_init(&b);
  pl_buf_puts(&b,
              "# HELP proflab_info Build and identity of this process.\n"
              "# TYPE proflab_info gauge\nproflab_info{version=\"" PROFLAB_VERSION "\"} 1\n");
  pl_buf_printf(&b,
                "# HELP proflab_process_start_time_seconds Start time since the epoch.\n"
                "# TYPE proflab_process_start_time_seconds gauge\n"
                "proflab_process_start_time_seconds %.3f\n",
                (double)m->start_wall_ns / 1e9);
  if (m->mon) {
    const double *le;
    uint64_t cum[32];
    double sum;
    uint64_t count;
    size_t n = pl_loopmon_prom(m->mon, &le, cum, 32, &sum, &count);
    pl_buf_puts(&b,
                "# HELP proflab_event_loop_lag_seconds How late the event loop ran a "
                "timer, beyond its resolution.\n"
                "# TYPE proflab_event_loop_lag_seconds histogram\n");
    for (size_t i = 0; i < n; i++) {
      pl_buf_puts(&b, "proflab_event_loop_lag_seconds_bucket{le=\"");
      put_le(&b, le[i]);
      pl_buf_printf(&b, "\"} %llu\n", (unsigned long long)cum[i]);
    }
    pl_buf_printf(&b,
                  "proflab_event_loop_lag_seconds_bucket{le=\"+Inf\"} %llu\n"
                  "proflab_event_loop_lag_seconds_sum %.6f\n"
                  "proflab_event_loop_lag_seconds_count %llu\n",
                  (unsigned long long)count, sum, (unsigned long long)count);
    pl_loop_stats st;
    pl_loopmon_stats(m->mon, &st);
    pl_buf_printf(&b,
                  "# HELP proflab_event_loop_lag_max_seconds Largest lag seen.\n"
                  "# TYPE proflab_event_loop_lag_max_seconds gauge\n"
                  "proflab_event_loop_lag_max_seconds %.6f\n"
                  "# HELP proflab_event_loop_utilization Share of time the loop was busy "
                  "(not waiting in poll), since start and over the last second.\n"
                  "# TYPE proflab_event_loop_utilization gauge\n"
                  "proflab_event_loop_utilization{window=\"lifetime\"} %.6f\n"
                  "proflab_event_loop_utilization{window=\"1s\"} %.6f\n",
                  st.max_ms / 1000.0, st.utilization, st.utilization_recent);
  }
  struct mallinfo2 mi = mallinfo2();
  pl_buf_printf(&b,
                "# HELP proflab_process_resident_memory_bytes Resident set size.\n"
                "# TYPE proflab_process_resident_memory_bytes gauge\n"
                "proflab_process_resident_memory_bytes %llu\n"
                "# HELP proflab_malloc_in_use_bytes Bytes in use by malloc (mallinfo2).\n"
                "# TYPE proflab_malloc_in_use_bytes gauge\n"
                "proflab_malloc_in_use_bytes %llu\n",
                (unsigned long long)pl__rss_bytes(), (unsigned long long)(mi.uordblks + mi.hblkhd));
  pl__heap_figures h;
  if (pl__heap_tracker_figures(&h) == 0)
    pl_buf_printf(
        &b,
        "# HELP proflab_heap_live_bytes Estimated live heap bytes (heap tracker).\n"
        "# TYPE proflab_heap_live_bytes gauge\n"
        "proflab_heap_live_bytes %.0f\n"
        "# HELP proflab_heap_live_allocations Estimated live heap allocations.\n"
        "# TYPE proflab_heap_live_allocations gauge\n"
        "proflab_heap_live_allocations %.0f\n"
        "# HELP proflab_heap_allocated_bytes_total Estimated bytes allocated since start.\n"
        "# TYPE proflab_heap_allocated_bytes_total counter\n"
        "proflab_heap_allocated_bytes_total %.0f\n"
        "# HELP proflab_heap_tracker_bytes Resident memory of the heap tracker's tables.\n"
        "# TYPE proflab_heap_tracker_bytes gauge\n"
        "proflab_heap_tracker_bytes %llu\n",
        h.live_bytes, h.live_allocations, h.allocated_bytes, (unsigned long long)h.tracker_bytes);
  if (m->lab) {
    uint64_t profiles, profile_failures, snapshots, snapshot_failures;
    pl__capture_count(PL__CAPTURE_CPU, &profiles, &profile_failures);
    pl__capture_count(PL__CAPTURE_HEAP, &snapshots, &snapshot_failures);
    pl_buf_printf(&b,
                  "# HELP proflab_lab_leak_bytes Bytes held on purpose by the lab's memory-leak.\n"
                  "# TYPE proflab_lab_leak_bytes gauge\n"
                  "proflab_lab_leak_bytes %llu\n"
                  "# HELP proflab_lab_artifacts_total Artifacts written by the lab, by kind.\n"
                  "# TYPE proflab_lab_artifacts_total counter\n"
                  "proflab_lab_artifacts_total{kind=\"cpu\"} %llu\n"
                  "proflab_lab_artifacts_total{kind=\"heap\"} %llu\n"
                  "# HELP proflab_lab_artifact_failures_total Artifacts that failed, by kind.\n"
                  "# TYPE proflab_lab_artifact_failures_total counter\n"
                  "proflab_lab_artifact_failures_total{kind=\"cpu\"} %llu\n"
                  "proflab_lab_artifact_failures_total{kind=\"heap\"} %llu\n",
                  (unsigned long long)pl_lab_leak_bytes(m->lab), (unsigned long long)profiles,
                  (unsigned long long)snapshots, (unsigned long long)profile_failures,
                  (unsigned long long)snapshot_failures);
  }
  pl_inspector_stats is;
  pl_inspector_get_stats(&is);
  pl_buf_printf(&b,
                "# HELP proflab_inspector_up 1 while the DevTools inspector listens.\n"
                "# TYPE proflab_inspector_up gauge\n"
                "proflab_inspector_up %d\n"
                "# HELP proflab_inspector_connections_total Inspector HTTP connections accepted.\n"
                "# TYPE proflab_inspector_connections_total counter\n"
                "proflab_inspector_connections_total %llu\n"
                "# HELP proflab_inspector_sessions_total DevTools sessions opened.\n"
                "# TYPE proflab_inspector_sessions_total counter\n"
                "proflab_inspector_sessions_total %llu\n"
                "# HELP proflab_inspector_sessions Open DevTools sessions.\n"
                "# TYPE proflab_inspector_sessions gauge\n"
                "proflab_inspector_sessions %llu\n"
                "# HELP proflab_inspector_rejected_total Inspector requests refused (Host, Origin, "
                "unknown target, bad request).\n"
                "# TYPE proflab_inspector_rejected_total counter\n"
                "proflab_inspector_rejected_total %llu\n"
                "# HELP proflab_inspector_messages_total Protocol messages, by direction.\n"
                "# TYPE proflab_inspector_messages_total counter\n"
                "proflab_inspector_messages_total{direction=\"in\"} %llu\n"
                "proflab_inspector_messages_total{direction=\"out\"} %llu\n"
                "# HELP proflab_inspector_bytes_total Protocol message bytes, by direction.\n"
                "# TYPE proflab_inspector_bytes_total counter\n"
                "proflab_inspector_bytes_total{direction=\"in\"} %llu\n"
                "proflab_inspector_bytes_total{direction=\"out\"} %llu\n",
                is.running, (unsigned long long)is.connections, (unsigned long long)is.sessions,
                (unsigned long long)is.sessions_open, (unsigned long long)is.rejected,
                (unsigned long long)is.messages_in, (unsigned long long)is.messages_out,
                (unsigned long long)is.bytes_in, (unsigned long long)is.bytes_out);
  pl_server *s = pl_request_server(r);
  pl_buf_printf(&b,
                "# HELP proflab_http_connections Open HTTP connections.\n"
                "# TYPE proflab_http_connections gauge\n"
                "proflab_http_connections %u\n"
                "# HELP proflab_http_requests_total Answered requests by route and status.\n"
                "# TYPE proflab_http_requests_total counter\n",
                pl_server_connections(s));
  pl_server_foreach_stat(s, put_stat, &b);
  if (pl_buf_failed(&b)) {
    pl_buf_free(&b);
    pl_respond_error(r, 500, "out_of_memory", "metrics did not fit in memory");
    return;
  }
  pl_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
  pl_buf_free(&b);
}

int pl_metrics_mount(pl_server *server, pl_loopmon *mon, pl_lab *lab) {
  static metrics m; /* one /metrics per process: no state to free */
  m.mon = mon;
  m.lab = lab;
  m.start_wall_ns = pl__wall_ns();
  return pl_server_route(server, PL_GET, "/metrics", 0, on_metrics, &m);
}
