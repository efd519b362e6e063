/* POST /api/lab/memory-leak, memory-clear and event-loop-jam: the lab's
 * deliberate harm (harm.c) behind the guard, with its counters. */
#include <errno.h>
#include <stdlib.h>

#include "common/util.h"
#include "lab/answer.h"
#include "lab/harm.h"
#include "proflab/log.h"

struct pl__lab_harm {
  pl__leak leak;
  uint64_t jams;
  uint64_t jammed_ms_total;
};

int pl__lab_harm_init(pl_lab *lab) {
  lab->harm = calloc(1, sizeof(*lab->harm));
  return lab->harm ? 0 : -ENOMEM;
}

void pl__lab_harm_free(pl_lab *lab) {
  if (!lab->harm) return;
  pl__lab_memory_leak_clear(&lab->harm->leak);
  free(lab->harm);
  lab->harm = NULL;
}

uint64_t pl__lab_harm_leak_bytes(const pl_lab *lab) {
  return lab->harm ? lab->harm->leak.bytes : 0;
}

void pl__lab_harm_jam_status(pl_lab *lab, pl_json *j) {
  pl_json_kv_uint(j, "jams", lab->harm->jams);
  pl_json_kv_uint(j, "jammed_ms_total", lab->harm->jammed_ms_total);
}

void pl__lab_harm_leak_status(pl_lab *lab, pl_json *j) {
  pl_json_kv_uint(j, "leak_bytes", lab->harm->leak.bytes);
  pl_json_kv_uint(j, "leak_chunks", lab->harm->leak.chunks);
}

static void on_leak(pl_request *r, void *arg) {
  pl_lab *lab = arg;
  pl__leak *leak = &lab->harm->leak;
  if (pl__lab_guard(lab, r)) return;
  pl_param_spec spec[] = {
      {.name = "mb",
       .kind = PL_PARAM_UINT,
       .required = 1,
       .min = 1,
       .max = lab->cfg.max_leak_mb,
       .bound = "LAB_MAX_LEAK_MB"},
  };
  uint64_t mb;
  if (pl_request_params(r, spec, 1, &mb)) return;
  uint64_t held_mb = leak->bytes / PL__LEAK_CHUNK_BYTES;
  if (held_mb + mb > lab->cfg.max_leak_mb) {
    pl_respond_error(r, 422, "out_of_range",
                     "the lab already holds %llu MiB; %llu more would pass LAB_MAX_LEAK_MB=%llu "
                     "(POST /api/lab/memory-clear first)",
                     (unsigned long long)held_mb, (unsigned long long)mb,
                     (unsigned long long)lab->cfg.max_leak_mb);
    return;
  }
  uint64_t t0 = pl__now_ns();
  if (pl__lab_memory_leak(leak, mb) != 0) {
    pl_respond_error(r, 507, "out_of_memory", "could not allocate %llu MiB; nothing was kept",
                     (unsigned long long)mb);
    return;
  }
  double ms = (double)(pl__now_ns() - t0) / 1e6;
  pl_json *lj = pl_request_log_fields(r);
  pl_json_kv_str(lj, "action", "memory-leak");
  pl_json_kv_uint(lj, "mb", mb);
  pl_json_kv_uint(lj, "leak_bytes", leak->bytes);
  pl_buf b;
  pl_json j;
  pl__lab_answer_open(lab, &b, &j);
  pl_json_kv_uint(&j, "allocated_bytes", mb * PL__LEAK_CHUNK_BYTES);
  pl_json_kv_uint(&j, "retained_bytes", leak->bytes);
  pl_json_kv_uint(&j, "chunks", leak->chunks);
  pl_json_kv_double(&j, "took_ms", ms, 3);
  pl_json_kv_uint(&j, "rss_bytes", pl__rss_bytes());
  pl_json_kv_str(&j, "function", PL__LAB_LEAK_FUNCTION);
  pl_json_obj_close(&j);
  pl_respond_json(r, 200, &b);
}

static void on_clear(pl_request *r, void *arg) {
  pl_lab *lab = arg;
  pl__leak *leak = &lab->harm->leak;
  if (pl__lab_guard(lab, r)) return;
  if (pl_request_params(r, NULL, 0, NULL)) return;
  uint64_t rss_before = pl__rss_bytes();
  uint64_t chunks = leak->chunks;
  uint64_t freed = pl__lab_memory_leak_clear(leak);
  uint64_t rss_after = pl__rss_bytes();
  pl_json *lj = pl_request_log_fields(r);
  pl_json_kv_str(lj, "action", "memory-clear");
  pl_json_kv_uint(lj, "freed_bytes", freed);
  pl_buf b;
  pl_json j;
  pl__lab_answer_open(lab, &b, &j);
  pl_json_kv_uint(&j, "freed_bytes", freed);
  pl_json_kv_uint(&j, "freed_chunks", chunks);
  pl_json_kv_uint(&j, "retained_bytes", leak->bytes);
  pl_json_kv_uint(&j, "rss_before_bytes", rss_before);
  pl_json_kv_uint(&j, "rss_bytes", rss_after);
  pl_json_obj_close(&j);
  pl_respond_json(r, 200, &b);
}

static void on_jam(pl_request *r, void *arg) {
  pl_lab *lab = arg;
  if (pl__lab_guard(lab, r)) return;
  pl_param_spec spec[] = {
      {.name = "ms",
       .kind = PL_PARAM_UINT,
       .required = 1,
       .min = 1,
       .max = lab->cfg.max_jam_ms,
       .bound = "LAB_MAX_JAM_MS"},
  };
  uint64_t ms;
  if (pl_request_params(r, spec, 1, &ms)) return;
  pl_json *lj = pl_log_begin("info", "lab_jam_start");
  pl_json_kv_uint(lj, "ms", ms);
  pl_log_end();
  pl_log_flush(); /* say it before the loop stops answering */
  uint64_t elapsed_ns;
  uint64_t iters = pl__lab_event_loop_jam(ms, &elapsed_ns);
  double lag = lab->mon ? pl_loopmon_current_lag_ms(lab->mon) : 0;
  lab->harm->jams++;
  lab->harm->jammed_ms_total += elapsed_ns / 1000000u;
  lj = pl_request_log_fields(r);
  pl_json_kv_str(lj, "action", "event-loop-jam");
  pl_json_kv_uint(lj, "requested_ms", ms);
  pl_json_kv_double(lj, "jammed_ms", (double)elapsed_ns / 1e6, 3);
  pl_buf b;
  pl_json j;
  pl__lab_answer_open(lab, &b, &j);
  pl_json_kv_uint(&j, "requested_ms", ms);
  pl_json_kv_double(&j, "jammed_ms", (double)elapsed_ns / 1e6, 3);
  pl_json_kv_double(&j, "lag_ms", lag, 3);
  pl_json_kv_uint(&j, "iterations", iters);
  pl_json_kv_str(&j, "function", PL__LAB_JAM_FUNCTION);
  pl_json_obj_close(&j);
  pl_respond_json(r, 200, &b);
}

int pl__lab_harm_mount(pl_lab *lab, pl_server *server) {
  int rc = pl_server_route(server, PL_POST, "/api/lab/memory-leak", 0, on_leak, lab);
  if (!rc) rc = pl_server_route(server, PL_POST, "/api/lab/memory-clear", 0, on_clear, lab);
  if (!rc) rc = pl_server_route(server, PL_POST, "/api/lab/event-loop-jam", 0, on_jam, lab);
  return rc;
}
