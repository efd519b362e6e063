/* POST /api/lab/heap-snapshot: copy the heap tracker's live samples, then
 * symbolize and write the artifact through the capture path
 * (capture/capture.h: the thread pool), then answer. One snapshot at a
 * time. In a program without the tracker (capture/heap_tracker.h) the
 * endpoint and the status say so. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "capture/capture.h"
#include "capture/heap_tracker.h"
#include "common/util.h"
#include "lab/answer.h"
#include "proflab/log.h"

struct pl__lab_heap {
  pl_request *req; /* the snapshot being written, or NULL */
};

int pl__lab_heap_init(pl_lab *lab) {
  lab->heap = calloc(1, sizeof(*lab->heap));
  return lab->heap ? 0 : -ENOMEM;
}

void pl__lab_heap_free(pl_lab *lab) {
  free(lab->heap);
  lab->heap = NULL;
}

void pl__lab_heap_status(pl_lab *lab, pl_json *j) {
  pl__heap_figures h;
  pl__heap_tracker_figures(&h);
  pl_json_key(j, "heap");
  pl_json_obj_open(j);
  pl_json_kv_str(j, "tracker", pl__heap_tracker_state(&h));
  if (h.running) {
    pl_json_kv_uint(j, "sample_bytes", h.sample_bytes);
    pl_json_kv_uint(j, "live_bytes", (uint64_t)(h.live_bytes + 0.5));
    pl_json_kv_uint(j, "live_allocations", (uint64_t)(h.live_allocations + 0.5));
    pl_json_kv_uint(j, "allocated_bytes", (uint64_t)(h.allocated_bytes + 0.5));
    pl_json_kv_uint(j, "allocations", (uint64_t)(h.allocations + 0.5));
    pl_json_kv_uint(j, "samples", h.samples);
    pl_json_kv_uint(j, "live_samples", h.live_samples);
    pl_json_kv_uint(j, "dropped_samples", h.dropped_samples);
    pl_json_kv_uint(j, "unknown_stacks", h.unknown_stacks);
    pl_json_kv_uint(j, "stacks", h.stacks);
    pl_json_kv_uint(j, "tracker_bytes", h.tracker_bytes);
    pl_json_kv_uint(j, "tracker_reserved_bytes", h.tracker_reserved_bytes);
    pl_json_kv_str(j, "stack_capture", h.unwind_mode);
    if (h.unwind_fell_back) pl_json_kv_bool(j, "stack_capture_fell_back", 1);
    pl_json_key(j, "stacks_by");
    pl_json_obj_open(j);
    pl_json_kv_uint(j, "frame_pointers", h.unwind_fp);
    pl_json_kv_uint(j, "dwarf", h.unwind_dwarf);
    pl_json_kv_uint(j, "checked", h.unwind_checked);
    pl_json_kv_uint(j, "mismatched", h.unwind_mismatch);
    pl_json_obj_close(j);
  }
  pl_json_kv_str(j, "state", lab->heap->req ? "writing" : "idle");
  uint64_t written, failed;
  pl__capture_count(PL__CAPTURE_HEAP, &written, &failed);
  pl_json_kv_uint(j, "snapshots_taken", written);
  pl_json_kv_uint(j, "failures", failed);
  pl_json_obj_close(j);
}

/* Loop thread, after the capture path wrote (or failed to write) the artifact. */
static void on_written(pl__capture *c, int rc, const pl__artifact *art, void *arg) {
  pl_lab *lab = arg;
  pl_request *r = lab->heap->req;
  lab->heap->req = NULL;
  pl_json *lj = pl_request_log_fields(r);
  pl_json_kv_str(lj, "action", "heap-snapshot");
  if (rc) {
    pl__lab_answer_write_failed(lab, r, rc, "snapshot_failed", "heap snapshot",
                                pl__capture_failed_step(c));
    pl__capture_free(c);
    return;
  }
  const pl_heap_snapshot *s = pl__capture_heap_snapshot(c);
  pl__capture_times t;
  pl__capture_get_times(c, &t);
  pl_json_kv_str(lj, "file", art->name);
  pl_json_kv_uint(lj, "live_bytes", (uint64_t)(s->inuse_bytes + 0.5));
  pl_buf b;
  pl_json j;
  pl__lab_answer_open(lab, &b, &j);
  pl__lab_answer_artifact(&j, art, pl__capture_format_name(c));
  pl_json_kv_uint(&j, "live_bytes", (uint64_t)(s->inuse_bytes + 0.5));
  pl_json_kv_uint(&j, "allocations", (uint64_t)(s->inuse_objects + 0.5));
  pl_json_kv_uint(&j, "samples", s->nsamples);
  pl_json_kv_uint(&j, "stacks", s->nstacks);
  pl_json_kv_uint(&j, "sample_bytes", s->sample_bytes);
  pl_json_kv_uint(&j, "dropped_samples", s->stats.dropped_samples);
  pl_json_kv_double(&j, "copy_ms", t.take_ms, 3);
  pl_json_kv_double(&j, "symbolize_ms", t.symbolize_ms, 3);
  pl_json_kv_double(&j, "write_ms", t.write_ms, 3);
  pl_json_obj_close(&j);
  pl__capture_free(c);
  pl_respond_json(r, 200, &b);
}

static void on_heap_snapshot(pl_request *r, void *arg) {
  pl_lab *lab = arg;
  if (pl__lab_guard(lab, r)) return;
  pl_param_spec spec[] = {
      {.name = "format",
       .kind = PL_PARAM_ENUM,
       .choices = pl_heap_format_names,
       .def = PL_HEAP_FORMAT_HEAPSNAPSHOT},
  };
  uint64_t v[1];
  if (pl_request_params(r, spec, 1, v)) return;
  pl__capture_holder busy;
  pl__capture *c;
  int rc = pl__capture_new(&c, PL__CAPTURE_HEAP, (int)v[0], pl_request_remote(r), &busy);
  switch (rc) {
    case 0:
      break;
    case -ENOSYS:
      pl_respond_error(r, 501, "heap_tracker_absent",
                       "this program was built without the heap tracker (link libproflab_heap "
                       "whole: proflab_heap_dep)");
      return;
    case -ENOENT:
      pl_respond_error(r, 503, "heap_tracker_off",
                       "the heap tracker is not running in this process (it starts with the lab "
                       "unless PROFLAB_HEAP_TRACKING=false)");
      return;
    case -EBUSY:
      pl_request_add_header(r, "Retry-After", "1");
      pl_respond_error(r, 409, "busy",
                       "a heap snapshot requested by %s is being written; one at a time", busy.who);
      return;
    default:
      pl_respond_error(r, 503, "out_of_memory", "no memory to take a snapshot");
      return;
  }
  rc = pl__capture_queue_artifact(c, lab->loop, &lab->store, on_written, lab);
  if (rc) {
    pl__capture_free(c);
    pl_respond_error(r, 503, "busy", "cannot queue the snapshot: %s", uv_strerror(rc));
    return;
  }
  lab->heap->req = r;
  /* no answer yet: the server suspends the request until on_written */
}

int pl__lab_heap_mount(pl_lab *lab, pl_server *server) {
  return pl_server_route(server, PL_POST, "/api/lab/heap-snapshot", 0, on_heap_snapshot, lab);
}
