/* GET /api/lab/status: the lab and the process at a glance, each part
 * written by the file that owns it. */
#include <malloc.h>
#include <unistd.h>

#include "common/util.h"
#include "lab/answer.h"
#include "proflab/inspector.h"

static void write_memory(pl_json *j, pl_lab *lab) {
  struct mallinfo2 mi = mallinfo2();
  pl_json_kv_uint(j, "rss_bytes", pl__rss_bytes());
  pl_json_kv_uint(j, "malloc_in_use_bytes", (uint64_t)(mi.uordblks + mi.hblkhd));
  pl_json_kv_uint(j, "malloc_mmapped_bytes", (uint64_t)mi.hblkhd);
  pl__lab_harm_leak_status(lab, j);
}

static void write_event_loop(pl_json *j, pl_loopmon *mon) {
  pl_loop_stats st;
  pl_loopmon_stats(mon, &st);
  pl_json_key(j, "event_loop");
  pl_json_obj_open(j);
  pl_json_key(j, "lag_ms");
  pl_json_obj_open(j);
  pl_json_kv_double(j, "p50", st.p50_ms, 3);
  pl_json_kv_double(j, "p90", st.p90_ms, 3);
  pl_json_kv_double(j, "p99", st.p99_ms, 3);
  pl_json_kv_double(j, "max", st.max_ms, 3);
  pl_json_kv_double(j, "mean", st.mean_ms, 3);
  pl_json_kv_double(j, "min", st.min_ms, 3);
  pl_json_kv_uint(j, "count", st.count);
  pl_json_obj_close(j);
  pl_json_kv_uint(j, "resolution_ms", st.resolution_ms);
  pl_json_kv_double(j, "utilization", st.utilization, 4);
  pl_json_kv_double(j, "utilization_recent", st.utilization_recent, 4);
  pl_json_obj_close(j);
}

static void write_inspector(pl_json *j) {
  pl_inspector_stats st;
  pl_inspector_get_stats(&st);
  pl_json_key(j, "inspector");
  pl_json_obj_open(j);
  pl_json_kv_bool(j, "running", st.running);
  const char *url = pl_inspector_url();
  if (url) pl_json_kv_str(j, "url", url);
  pl_json_kv_uint(j, "connections", st.connections);
  pl_json_kv_uint(j, "sessions", st.sessions);
  pl_json_kv_uint(j, "sessions_open", st.sessions_open);
  pl_json_kv_uint(j, "rejected", st.rejected);
  pl_json_kv_uint(j, "messages_in", st.messages_in);
  pl_json_kv_uint(j, "messages_out", st.messages_out);
  pl_json_kv_uint(j, "bytes_in", st.bytes_in);
  pl_json_kv_uint(j, "bytes_out", st.bytes_out);
  pl_json_obj_close(j);
}

static void on_status(pl_request *r, void *arg) {
  pl_lab *lab = arg;
  if (pl__lab_guard(lab, r)) return;
  if (pl_request_params(r, NULL, 0, NULL)) return;
  char started[40];
  pl__format_iso8601(lab->start_wall_ns, started, sizeof(started));
  pl_buf b;
  pl_json j;
  pl__lab_answer_open(lab, &b, &j);
  pl_json_kv_int(&j, "pid", (int64_t)getpid());
  pl_json_kv_double(&j, "uptime_seconds", (double)(pl__now_ns() - lab->start_mono_ns) / 1e9, 3);
  pl_json_kv_str(&j, "started_at", started);
  pl_json_kv_str(&j, "version", PROFLAB_VERSION);

  pl_json_key(&j, "lab");
  pl_json_obj_open(&j);
  pl_json_kv_bool(&j, "enabled", lab->active);
  pl_json_kv_bool(&j, "production", lab->cfg.production);
  pl_json_kv_str(&j, "artifact_dir", lab->cfg.artifact_dir);
  pl_json_key(&j, "limits");
  pl_json_obj_open(&j);
  pl_json_kv_uint(&j, "max_leak_mb", lab->cfg.max_leak_mb);
  pl_json_kv_uint(&j, "max_profile_seconds", lab->cfg.max_profile_seconds);
  pl_json_kv_uint(&j, "max_jam_ms", lab->cfg.max_jam_ms);
  pl_json_obj_close(&j);
  pl__lab_harm_jam_status(lab, &j);
  pl_json_obj_close(&j);

  pl_json_key(&j, "memory");
  pl_json_obj_open(&j);
  write_memory(&j, lab);
  pl_json_obj_close(&j);

  if (lab->mon) write_event_loop(&j, lab->mon);
  pl__lab_cpu_status(lab, &j);
  pl__lab_heap_status(lab, &j);
  pl__lab_artifacts_status(lab, &j);
  write_inspector(&j);

  pl_server *s = pl_request_server(r);
  pl_json_key(&j, "http");
  pl_json_obj_open(&j);
  pl_json_kv_uint(&j, "connections", pl_server_connections(s));
  pl_json_kv_uint(&j, "requests", pl_server_requests(s));
  pl_json_obj_close(&j);
  pl_json_obj_close(&j);
  pl_respond_json(r, 200, &b);
}

int pl__lab_status_mount(pl_lab *lab, pl_server *server) {
  return pl_server_route(server, PL_GET, "/api/lab/status", 0, on_status, lab);
}
