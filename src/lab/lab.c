/* The lab module: /api/lab/... routes, their security layers, and status. */
#include "proflab/lab.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "lab/harm.h"
#include "lab/lab_internal.h"
#include "profile/symbolize.h"
#include "proflab/log.h"



/* Every 15 s: the symbolizer is kept between profiles and snapshots (its
 * module data is tens of MB); after a minute unused it is dropped and the
 * memory handed back, so the process's RSS shows what the service holds. */
static void on_sym_timer(uv_timer_t *t) {
  (void)t;
  if (pl_symbolizer_drop_idle(60 * 1000000000ull)) malloc_trim(0);
}

int pl_lab_new(pl_lab **out, uv_loop_t *loop, const pl_lab_config *cfg, pl_loopmon *mon) {
  char err[256];
  int active;
  const char *why;
  int rc = pl_lab_config_check(cfg, &active, &why, err, sizeof(err));
  if (rc) return rc;
  pl_lab *lab = calloc(1, sizeof(*lab));
  if (!lab) return -ENOMEM;
  lab->loop = loop;
  lab->cfg = *cfg;
  lab->mon = mon;
  lab->active = active;
  lab->why_off = why;
  pl_rl_init(&lab->rl, cfg->failed_token_limit, cfg->failed_token_window_s);
  lab->start_wall_ns = pl_wall_ns();
  lab->start_mono_ns = pl_now_ns();
  if (active) {
    rc = pl_artifact_store_init(&lab->store, cfg->artifact_dir, cfg->task, cfg->max_artifacts,
                                cfg->max_artifact_mb << 20);
    if (rc) {
      free(lab);
      return rc;
    }
    lab->store_ready = 1;
    rc = lab_cpu_init(lab);
    if (rc) {
      pl_artifact_store_close(&lab->store);
      free(lab);
      return rc;
    }
    rc = lab_artifacts_init(lab);
    if (rc) {
      lab_cpu_close(lab);
      pl_artifact_store_close(&lab->store);
      free(lab);
      return rc;
    }
    if (uv_timer_init(loop, &lab->sym_timer) == 0) {
      uv_timer_start(&lab->sym_timer, on_sym_timer, 15000, 15000);
      uv_unref((uv_handle_t *)&lab->sym_timer); /* never keeps the loop alive */
    }
  }
  *out = lab;
  return 0;
}

void pl_lab_shutdown(pl_lab *lab) {
  if (lab && lab->active) lab_cpu_cancel(lab);
}

int pl_lab_active(const pl_lab *lab) { return lab->active; }
uint64_t pl_lab_leak_bytes(const pl_lab *lab) { return lab->leak.bytes; }

void pl_lab_get_counters(const pl_lab *lab, pl_lab_counters *out) {
  out->profiles = lab->profiles_taken;
  out->profile_failures = lab->profile_failures;
  out->snapshots = lab->snapshots_taken;
  out->snapshot_failures = lab->snapshot_failures;
}

void pl_lab_close(pl_lab *lab) {
  if (lab && lab->active) {
    uv_close((uv_handle_t *)&lab->sym_timer, NULL);
    lab_cpu_close(lab);
  }
}

void pl_lab_free(pl_lab *lab) {
  if (!lab) return;
  lab_memory_leak_clear(&lab->leak);
  lab_artifacts_free(lab);
  if (lab->store_ready) pl_artifact_store_close(&lab->store);
  free(lab);
}

/* ---- security --------------------------------------------------------- */

/* Token check with per-address failure limiting. Answers the request and
 * returns -EACCES when it may not go on. */
void lab_answer_open(pl_lab *lab, pl_buf *b, pl_json *j) {
  pl_buf_init(b);
  pl_json_init(j, b);
  pl_json_obj_open(j);
  pl_json_kv_str(j, "task", lab->cfg.task);
}

void lab_answer_artifact(pl_json *j, const pl_artifact *a, const char *format) {
  pl_json_kv_str(j, "file", a->name);
  pl_json_kv_str(j, "path", a->path);
  pl_json_kv_uint(j, "bytes", a->bytes);
  pl_json_kv_str(j, "sha256", a->sha256);
  pl_json_kv_str(j, "format", format);
}

void lab_answer_write_failed(pl_lab *lab, pl_request *r, int rc, const char *code, const char *what,
                             const char *step) {
  pl_json_kv_str(pl_request_log_fields(r), "error", strerror(-rc));
  if (rc == -ENOSPC || rc == -EDQUOT)
    pl_respond_error(r, 507, "no_space", "the artifact directory %s is full; nothing was kept",
                     lab->store.dir);
  else
    pl_respond_error(r, 500, code, "%s %s failed: %s; nothing was kept", what, step ? step : "write",
                     strerror(-rc));
}

int lab_guard(pl_lab *lab, pl_request *r) {
  const char *remote = pl_request_remote(r);
  uint64_t now = pl_now_ns();
  unsigned wait_s = pl_rl_blocked(&lab->rl, remote, now);
  if (wait_s) {
    char ra[16];
    snprintf(ra, sizeof(ra), "%u", wait_s);
    pl_request_add_header(r, "Retry-After", ra);
    pl_respond_error(r, 429, "too_many_failed_tokens",
                     "too many requests with a wrong token from %s; retry in %u s", remote, wait_s);
    return -EACCES;
  }
  const char *tok = pl_request_header(r, "x-lab-token");
  if (!tok || !*tok) {
    pl_rl_fail(&lab->rl, remote, now);
    pl_respond_error(r, 401, "unauthorized", "missing x-lab-token header");
    return -EACCES;
  }
  const char *want = lab->cfg.token;
  if (!pl_secret_equal(tok, strlen(tok), want, strlen(want))) {
    pl_rl_fail(&lab->rl, remote, now);
    pl_json *j = pl_log_begin("warn", "lab_token_rejected");
    pl_json_kv_str(j, "remote", remote);
    pl_json_kv_str(j, "path", pl_request_path(r));
    pl_log_end();
    pl_respond_error(r, 401, "unauthorized", "wrong x-lab-token");
    return -EACCES;
  }
  pl_rl_success(&lab->rl, remote);
  return 0;
}

static void write_memory(pl_json *j, const pl_lab *lab) {
  struct mallinfo2 mi = mallinfo2();
  pl_json_kv_uint(j, "rss_bytes", pl_rss_bytes());
  pl_json_kv_uint(j, "malloc_in_use_bytes", (uint64_t)(mi.uordblks + mi.hblkhd));
  pl_json_kv_uint(j, "malloc_mmapped_bytes", (uint64_t)mi.hblkhd);
  pl_json_kv_uint(j, "leak_bytes", lab->leak.bytes);
  pl_json_kv_uint(j, "leak_chunks", lab->leak.chunks);
}

static void write_artifacts(pl_json *j, pl_lab *lab) {
  enum { MAX_LISTED = 50 };
  pl_json_key(j, "artifacts");
  pl_json_arr_open(j);
  pl_artifact *list = malloc(MAX_LISTED * sizeof(*list));
  int n = list ? pl_artifact_list(&lab->store, list, MAX_LISTED) : 0;
  for (int i = 0; i < n; i++) {
    char created[40];
    pl_format_iso8601(list[i].created_wall_ns, created, sizeof(created));
    pl_json_obj_open(j);
    pl_json_kv_str(j, "name", list[i].name);
    pl_json_kv_uint(j, "bytes", list[i].bytes);
    pl_json_kv_str(j, "created", created);
    pl_json_kv_str(j, "kind", pl_artifact_kind(list[i].name));
    pl_json_obj_close(j);
  }
  free(list);
  pl_json_arr_close(j);
}

/* ---- handlers --------------------------------------------------------- */

static void on_leak(pl_request *r, void *arg) {
  pl_lab *lab = arg;
  if (lab_guard(lab, r)) return;
  pl_param_spec spec[] = {
      {.name = "mb", .kind = PL_PARAM_UINT, .required = 1, .min = 1,
       .max = lab->cfg.max_leak_mb, .bound = "LAB_MAX_LEAK_MB"},
  };
  uint64_t mb;
  if (pl_request_params(r, spec, 1, &mb)) return;
  uint64_t held_mb = lab->leak.bytes / PL_LEAK_CHUNK_BYTES;
  if (held_mb + mb > lab->cfg.max_leak_mb) {
    pl_respond_error(r, 422, "out_of_range",
                     "the lab already holds %llu MiB; %llu more would pass LAB_MAX_LEAK_MB=%llu "
                     "(POST /api/lab/memory-clear first)",
                     (unsigned long long)held_mb, (unsigned long long)mb,
                     (unsigned long long)lab->cfg.max_leak_mb);
    return;
  }
  uint64_t t0 = pl_now_ns();
  if (lab_memory_leak_allocate(&lab->leak, mb) != 0) {
    pl_respond_error(r, 507, "out_of_memory", "could not allocate %llu MiB; nothing was kept",
                     (unsigned long long)mb);
    return;
  }
  double ms = (double)(pl_now_ns() - t0) / 1e6;
  pl_json *lj = pl_request_log_fields(r);
  pl_json_kv_str(lj, "action", "memory-leak");
  pl_json_kv_uint(lj, "mb", mb);
  pl_json_kv_uint(lj, "leak_bytes", lab->leak.bytes);
  pl_buf b;
  pl_json j;
  lab_answer_open(lab, &b, &j);
  pl_json_kv_uint(&j, "allocated_bytes", mb * PL_LEAK_CHUNK_BYTES);
  pl_json_kv_uint(&j, "retained_bytes", lab->leak.bytes);
  pl_json_kv_uint(&j, "chunks", lab->leak.chunks);
  pl_json_kv_double(&j, "took_ms", ms, 3);
  pl_json_kv_uint(&j, "rss_bytes", pl_rss_bytes());
  pl_json_kv_str(&j, "function", "lab_memory_leak_allocate");
  pl_json_obj_close(&j);
  pl_respond_json(r, 200, &b);
}

static void on_clear(pl_request *r, void *arg) {
  pl_lab *lab = arg;
  if (lab_guard(lab, r)) return;
  if (pl_request_params(r, NULL, 0, NULL)) return;
  uint64_t rss_before = pl_rss_bytes();
  uint64_t chunks = lab->leak.chunks;
  uint64_t freed = lab_memory_leak_clear(&lab->leak);
  uint64_t rss_after = pl_rss_bytes();
  pl_json *lj = pl_request_log_fields(r);
  pl_json_kv_str(lj, "action", "memory-clear");
  pl_json_kv_uint(lj, "freed_bytes", freed);
  pl_buf b;
  pl_json j;
  lab_answer_open(lab, &b, &j);
  pl_json_kv_uint(&j, "freed_bytes", freed);
  pl_json_kv_uint(&j, "freed_chunks", chunks);
  pl_json_kv_uint(&j, "retained_bytes", lab->leak.bytes);
  pl_json_kv_uint(&j, "rss_before_bytes", rss_before);
  pl_json_kv_uint(&j, "rss_bytes", rss_after);
  pl_json_obj_close(&j);
  pl_respond_json(r, 200, &b);
}

static void on_jam(pl_request *r, void *arg) {
  pl_lab *lab = arg;
  if (lab_guard(lab, r)) return;
  pl_param_spec spec[] = {
      {.name = "ms", .kind = PL_PARAM_UINT, .required = 1, .min = 1, .max = lab->cfg.max_jam_ms,
       .bound = "LAB_MAX_JAM_MS"},
  };
  uint64_t ms;
  if (pl_request_params(r, spec, 1, &ms)) return;
  pl_json *lj = pl_log_begin("info", "lab_jam_start");
  pl_json_kv_uint(lj, "ms", ms);
  pl_log_end();
  pl_log_flush(); /* say it before the loop stops answering */
  uint64_t elapsed_ns;
  uint64_t iters = lab_event_loop_jam_spin(ms, &elapsed_ns);
  double lag = lab->mon ? pl_loopmon_current_lag_ms(lab->mon) : 0;
  lab->jams++;
  lab->jammed_ms_total += elapsed_ns / 1000000u;
  lj = pl_request_log_fields(r);
  pl_json_kv_str(lj, "action", "event-loop-jam");
  pl_json_kv_uint(lj, "requested_ms", ms);
  pl_json_kv_double(lj, "jammed_ms", (double)elapsed_ns / 1e6, 3);
  pl_buf b;
  pl_json j;
  lab_answer_open(lab, &b, &j);
  pl_json_kv_uint(&j, "requested_ms", ms);
  pl_json_kv_double(&j, "jammed_ms", (double)elapsed_ns / 1e6, 3);
  pl_json_kv_double(&j, "lag_ms", lag, 3);
  pl_json_kv_uint(&j, "iterations", iters);
  pl_json_kv_str(&j, "function", "lab_event_loop_jam_spin");
  pl_json_obj_close(&j);
  pl_respond_json(r, 200, &b);
}

static void on_status(pl_request *r, void *arg) {
  pl_lab *lab = arg;
  if (lab_guard(lab, r)) return;
  if (pl_request_params(r, NULL, 0, NULL)) return;
  char started[40];
  pl_format_iso8601(lab->start_wall_ns, started, sizeof(started));
  pl_buf b;
  pl_json j;
  lab_answer_open(lab, &b, &j);
  pl_json_kv_int(&j, "pid", (int64_t)getpid());
  pl_json_kv_double(&j, "uptime_seconds", (double)(pl_now_ns() - lab->start_mono_ns) / 1e9, 3);
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
  pl_json_kv_uint(&j, "jams", lab->jams);
  pl_json_kv_uint(&j, "jammed_ms_total", lab->jammed_ms_total);
  pl_json_obj_close(&j);

  pl_json_key(&j, "memory");
  pl_json_obj_open(&j);
  write_memory(&j, lab);
  pl_json_obj_close(&j);

  if (lab->mon) {
    pl_loop_stats st;
    pl_loopmon_stats(lab->mon, &st);
    pl_json_key(&j, "event_loop");
    pl_json_obj_open(&j);
    pl_json_key(&j, "lag_ms");
    pl_json_obj_open(&j);
    pl_json_kv_double(&j, "p50", st.p50_ms, 3);
    pl_json_kv_double(&j, "p90", st.p90_ms, 3);
    pl_json_kv_double(&j, "p99", st.p99_ms, 3);
    pl_json_kv_double(&j, "max", st.max_ms, 3);
    pl_json_kv_double(&j, "mean", st.mean_ms, 3);
    pl_json_kv_double(&j, "min", st.min_ms, 3);
    pl_json_kv_uint(&j, "count", st.count);
    pl_json_obj_close(&j);
    pl_json_kv_uint(&j, "resolution_ms", st.resolution_ms);
    pl_json_kv_double(&j, "utilization", st.utilization, 4);
    pl_json_kv_double(&j, "utilization_recent", st.utilization_recent, 4);
    pl_json_obj_close(&j);
  }

  lab_cpu_status(lab, &j);
  lab_heap_status(lab, &j);
  write_artifacts(&j, lab);

  pl_server *s = pl_request_server(r);
  pl_json_key(&j, "http");
  pl_json_obj_open(&j);
  pl_json_kv_uint(&j, "connections", pl_server_connections(s));
  pl_json_kv_uint(&j, "requests", pl_server_requests(s));
  pl_json_obj_close(&j);
  pl_json_obj_close(&j);
  pl_respond_json(r, 200, &b);
}

int pl_lab_mount(pl_lab *lab, pl_server *server) {
  if (!lab->active) return 0;
  int rc = 0;
  if (!rc) rc = pl_server_route(server, PL_GET, "/api/lab/status", 0, on_status, lab);
  if (!rc) rc = pl_server_route(server, PL_POST, "/api/lab/memory-leak", 0, on_leak, lab);
  if (!rc) rc = pl_server_route(server, PL_POST, "/api/lab/memory-clear", 0, on_clear, lab);
  if (!rc) rc = pl_server_route(server, PL_POST, "/api/lab/event-loop-jam", 0, on_jam, lab);
  if (!rc) rc = pl_server_route(server, PL_POST, "/api/lab/cpu-profile", 0, lab_on_cpu_profile, lab);
  if (!rc) rc = pl_server_route(server, PL_POST, "/api/lab/heap-snapshot", 0, lab_on_heap_snapshot, lab);
  if (!rc) rc = pl_server_route(server, PL_GET, "/api/lab/artifacts", 0, lab_on_artifacts_list, lab);
  if (!rc) rc = pl_server_route(server, PL_GET, "/api/lab/artifacts/", 1, lab_on_artifact_get, lab);
  return rc;
}
