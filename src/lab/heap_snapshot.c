/* POST /api/lab/heap-snapshot: copy the heap tracker's live samples, then
 * symbolize and write the artifact in libuv's thread pool, then answer.
 * One snapshot at a time.
 *
 * The tracker (src/heap, libproflab_heap) is a separate library that a
 * program links whole; the lab refers to it weakly, so a service that mounts
 * the lab without it still links, and this endpoint and the status say the
 * tracker is not in the program. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "format/heap_writers.h"
#include "heap/heap.h"
#include "lab/lab_internal.h"
#include "proflab/log.h"

#pragma weak pl_heap_running
#pragma weak pl_heap_uses_sanitizer_hooks
#pragma weak pl_heap_get_stats
#pragma weak pl_heap_snapshot_take
#pragma weak pl_heap_snapshot_symbolize
#pragma weak pl_heap_snapshot_symbolize_names
#pragma weak pl_heap_snapshot_free

enum { FMT_HEAPSNAPSHOT, FMT_HEAPPROFILE, FMT_PPROF };
static const char *const format_names[] = {"heapsnapshot", "heapprofile", "pprof", NULL};
static const char *const format_exts[] = {"heapsnapshot", "heapprofile", "pb.gz"};

typedef struct lab_heap_job {
  pl_lab *lab;
  pl_request *req;
  uv_work_t work;
  int format;
  char remote[48];
  uint64_t started_wall_ns;
  pl_heap_snapshot *snap;
  pl_artifact art;
  int rc;
  const char *failed_step;
  double take_ms, symbolize_ms, write_ms;
} lab_heap_job;

/* Is the tracker linked into this program? */
static int tracker_linked(void) {
  return pl_heap_running && pl_heap_get_stats && pl_heap_snapshot_take &&
         pl_heap_snapshot_symbolize && pl_heap_snapshot_symbolize_names && pl_heap_snapshot_free &&
         pl_heap_uses_sanitizer_hooks;
}

int pl_lab_heap_figures(pl_lab_heap *out) {
  memset(out, 0, sizeof(*out));
  if (!tracker_linked()) return -ENOSYS;
  out->linked = 1;
  if (!pl_heap_running()) return -ENOENT;
  pl_heap_stats st;
  pl_heap_get_stats(&st);
  out->running = 1;
  out->sanitizer_hooks = pl_heap_uses_sanitizer_hooks();
  out->sample_bytes = st.sample_bytes;
  out->live_bytes = st.inuse_bytes;
  out->live_allocations = st.inuse_objects;
  out->allocated_bytes = st.alloc_bytes;
  out->allocations = st.alloc_objects;
  out->samples = st.samples;
  out->live_samples = st.live_samples;
  out->dropped_samples = st.dropped_samples;
  out->unknown_stacks = st.unknown_stacks;
  out->stacks = st.stacks;
  out->max_samples = st.max_samples;
  out->max_stacks = st.max_stacks;
  out->tracker_bytes = st.tracker_bytes;
  out->tracker_reserved_bytes = st.tracker_reserved;
  out->unwind_fp = st.unwind_fp;
  out->unwind_dwarf = st.unwind_dwarf;
  out->unwind_mismatch = st.unwind_mismatch;
  out->unwind_checked = st.unwind_checked;
  out->unwind_mode = st.unwind_mode == PL_HEAP_UNWIND_FP       ? "frame-pointers"
                     : st.unwind_mode == PL_HEAP_UNWIND_VERIFY ? "verify"
                                                               : "dwarf";
  out->unwind_fell_back = st.unwind_fell_back;
  return 0;
}

static const char *tracker_state(const pl_lab_heap *h) {
  if (!h->linked) return "not-linked";
  if (!h->running) return "off";
  return h->sanitizer_hooks ? "sanitizer-hooks" : "interposed";
}

void lab_heap_status(pl_lab *lab, pl_json *j) {
  pl_lab_heap h;
  pl_lab_heap_figures(&h);
  pl_json_key(j, "heap");
  pl_json_obj_open(j);
  pl_json_kv_str(j, "tracker", tracker_state(&h));
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
  pl_json_kv_str(j, "state", lab->heap_job ? "writing" : "idle");
  pl_json_kv_uint(j, "snapshots_taken", lab->snapshots_taken);
  pl_json_kv_uint(j, "failures", lab->snapshot_failures);
  pl_json_obj_close(j);
}

static int fill_snapshot(pl_sink *out, void *arg) {
  lab_heap_job *job = arg;
  switch (job->format) {
    case FMT_HEAPPROFILE: return pl_heapprofile_write(job->snap, out);
    case FMT_PPROF: return pl_pprof_heap_write(job->snap, out);
    default: return pl_heapsnapshot_write(job->snap, out);
  }
}

/* Thread pool: copy, symbolize, write. */
static void work_snapshot(uv_work_t *w) {
  lab_heap_job *job = w->data;
  uint64_t t0 = pl_now_ns();
  job->rc = pl_heap_snapshot_take(&job->snap);
  uint64_t t1 = pl_now_ns();
  job->take_ms = (double)(t1 - t0) / 1e6;
  if (job->rc) {
    job->failed_step = "copy";
    return;
  }
  /* A .heapsnapshot shows function names only: no DWARF to read. */
  job->rc = job->format == FMT_HEAPSNAPSHOT ? pl_heap_snapshot_symbolize_names(job->snap)
                                            : pl_heap_snapshot_symbolize(job->snap);
  uint64_t t2 = pl_now_ns();
  job->symbolize_ms = (double)(t2 - t1) / 1e6;
  if (job->rc) {
    job->failed_step = "symbolize";
    return;
  }
  job->rc = pl_artifact_write(&job->lab->store, "heapdump", format_exts[job->format],
                              job->snap->wall_ns, fill_snapshot, job, &job->art);
  job->write_ms = (double)(pl_now_ns() - t2) / 1e6;
  if (job->rc) job->failed_step = "write";
}

static void after_snapshot(uv_work_t *w, int status) {
  lab_heap_job *job = w->data;
  pl_lab *lab = job->lab;
  pl_request *r = job->req;
  if (status == UV_ECANCELED && !job->rc) job->rc = -ECANCELED;
  lab->heap_job = NULL;
  pl_json *lj = pl_request_log_fields(r);
  pl_json_kv_str(lj, "action", "heap-snapshot");
  if (job->rc) {
    lab->snapshot_failures++;
    lab_answer_write_failed(lab, r, job->rc, "snapshot_failed", "heap snapshot", job->failed_step);
    if (job->snap) pl_heap_snapshot_free(job->snap);
    free(job);
    return;
  }
  lab->snapshots_taken++;
  const pl_heap_snapshot *s = job->snap;
  pl_json_kv_str(lj, "file", job->art.name);
  pl_json_kv_uint(lj, "live_bytes", (uint64_t)(s->inuse_bytes + 0.5));
  pl_buf b;
  pl_json j;
  lab_answer_open(lab, &b, &j);
  lab_answer_artifact(&j, &job->art, format_names[job->format]);
  pl_json_kv_uint(&j, "live_bytes", (uint64_t)(s->inuse_bytes + 0.5));
  pl_json_kv_uint(&j, "allocations", (uint64_t)(s->inuse_objects + 0.5));
  pl_json_kv_uint(&j, "samples", s->nsamples);
  pl_json_kv_uint(&j, "stacks", s->nstacks);
  pl_json_kv_uint(&j, "sample_bytes", s->sample_bytes);
  pl_json_kv_uint(&j, "dropped_samples", s->stats.dropped_samples);
  pl_json_kv_double(&j, "copy_ms", job->take_ms, 3);
  pl_json_kv_double(&j, "symbolize_ms", job->symbolize_ms, 3);
  pl_json_kv_double(&j, "write_ms", job->write_ms, 3);
  pl_json_obj_close(&j);
  pl_heap_snapshot_free(job->snap);
  free(job);
  pl_respond_json(r, 200, &b);
}

void lab_on_heap_snapshot(pl_request *r, void *arg) {
  pl_lab *lab = arg;
  if (lab_guard(lab, r)) return;
  pl_param_spec spec[] = {
      {.name = "format", .kind = PL_PARAM_ENUM, .choices = format_names, .def = FMT_HEAPSNAPSHOT},
  };
  uint64_t v[1];
  if (pl_request_params(r, spec, 1, v)) return;
  if (!tracker_linked()) {
    pl_respond_error(r, 501, "heap_tracker_absent",
                     "this program was built without the heap tracker (link libproflab_heap "
                     "whole: proflab_heap_dep)");
    return;
  }
  if (!pl_heap_running()) {
    pl_respond_error(r, 503, "heap_tracker_off",
                     "the heap tracker is not running in this process (it starts with the lab "
                     "unless PROFLAB_HEAP_TRACKING=false)");
    return;
  }
  if (lab->heap_job) {
    pl_request_add_header(r, "Retry-After", "1");
    pl_respond_error(r, 409, "busy", "a heap snapshot requested by %s is being written; one at a time",
                     lab->heap_job->remote);
    return;
  }
  lab_heap_job *job = calloc(1, sizeof(*job));
  if (!job) {
    pl_respond_error(r, 503, "out_of_memory", "no memory to take a snapshot");
    return;
  }
  job->lab = lab;
  job->req = r;
  job->format = (int)v[0];
  job->started_wall_ns = pl_wall_ns();
  snprintf(job->remote, sizeof(job->remote), "%s", pl_request_remote(r));
  job->work.data = job;
  int rc = uv_queue_work(lab->loop, &job->work, work_snapshot, after_snapshot);
  if (rc) {
    free(job);
    pl_respond_error(r, 503, "busy", "cannot queue the snapshot: %s", uv_strerror(rc));
    return;
  }
  lab->heap_job = job;
  /* no answer yet: the server suspends the request until after_snapshot */
}
