/* POST /api/lab/cpu-profile: sample for N seconds while the loop keeps
 * serving, then symbolize and write the artifact in libuv's thread pool,
 * then answer. One profile at a time. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"
#include "format/cpu_writers.h"
#include "lab/lab_internal.h"
#include "proflab/log.h"
#include "profile/cpu_model.h"

enum { FMT_CPUPROFILE, FMT_PPROF, FMT_FOLDED };
static const char *const format_names[] = {"cpuprofile", "pprof", "folded", NULL};
static const char *const format_exts[] = {"cpuprofile", "pb.gz", "folded"};
static const char *const mode_names[] = {"wall", "cpu", NULL};

typedef struct lab_cpu_job {
  pl_lab *lab;
  pl_request *req;
  uv_work_t work;
  int format;
  pl_cpu_mode mode;
  unsigned hz;
  uint64_t seconds;
  char remote[48];
  uint64_t started_wall_ns;
  uint64_t until_wall_ns;
  pl_cpu_profile *profile;
  pl_cpu_profile_info info;
  pl_artifact art;
  int rc;
  const char *failed_step;
  double write_ms;
} lab_cpu_job;

int lab_cpu_init(pl_lab *lab) {
  int rc = uv_timer_init(lab->loop, &lab->profile_timer);
  if (rc) return rc;
  lab->profile_timer.data = lab;
  return pl_loop_idle_track(lab->loop, &lab->idle);
}

void lab_cpu_close(pl_lab *lab) {
  uv_close((uv_handle_t *)&lab->profile_timer, NULL);
  pl_loop_idle_untrack(lab->idle);
  lab->idle = NULL;
}

static int fill_profile(pl_sink *out, void *arg) {
  lab_cpu_job *job = arg;
  switch (job->format) {
    case FMT_PPROF: return pl_pprof_cpu_write(job->profile, out);
    case FMT_FOLDED: return pl_folded_write(job->profile, out);
    default: return pl_cpuprofile_write(job->profile, out);
  }
}

/* Thread pool: symbolize, then write the artifact. */
static void work_write(uv_work_t *w) {
  lab_cpu_job *job = w->data;
  uint64_t t0 = pl_now_ns();
  job->rc = pl_cpu_profile_symbolize(job->profile);
  if (job->rc) {
    job->failed_step = "symbolize";
    return;
  }
  job->rc = pl_artifact_write(&job->lab->store, "cpu", format_exts[job->format],
                              job->profile->start_wall_ns, fill_profile, job, &job->art);
  if (job->rc) job->failed_step = "write";
  job->write_ms = (double)(pl_now_ns() - t0) / 1e6;
}

static void after_write(uv_work_t *w, int status) {
  lab_cpu_job *job = w->data;
  pl_lab *lab = job->lab;
  pl_request *r = job->req;
  if (status == UV_ECANCELED && !job->rc) job->rc = -ECANCELED;
  pl_cpu_profile_free(job->profile);
  lab->cpu_job = NULL;
  pl_json *lj = pl_request_log_fields(r);
  pl_json_kv_str(lj, "action", "cpu-profile");
  pl_json_kv_uint(lj, "samples", job->info.samples);
  if (job->rc) {
    lab->profile_failures++;
    lab_answer_write_failed(lab, r, job->rc, "profile_failed", "profile", job->failed_step);
    free(job);
    return;
  }
  lab->profiles_taken++;
  pl_json_kv_str(lj, "file", job->art.name);
  pl_buf b;
  pl_json j;
  lab_answer_open(lab, &b, &j);
  lab_answer_artifact(&j, &job->art, format_names[job->format]);
  pl_json_kv_str(&j, "mode", mode_names[job->mode]);
  pl_json_kv_uint(&j, "hz", job->hz);
  pl_json_kv_double(&j, "interval_us", (double)job->info.period_ns / 1000.0, 3);
  pl_json_kv_uint(&j, "samples", job->info.samples);
  pl_json_kv_uint(&j, "idle_samples", job->info.idle_samples);
  pl_json_kv_uint(&j, "weight", job->info.weight);
  pl_json_kv_uint(&j, "signals", job->info.signals);
  pl_json_kv_uint(&j, "dropped", job->info.dropped);
  pl_json_key(&j, "stacks_by");
  pl_json_obj_open(&j);
  pl_json_kv_uint(&j, "frame_pointers", job->info.unwind_fp);
  pl_json_kv_uint(&j, "cached_callers", job->info.unwind_cached);
  pl_json_kv_uint(&j, "dwarf", job->info.unwind_dwarf);
  pl_json_kv_uint(&j, "checked", job->info.unwind_verified);
  pl_json_kv_uint(&j, "mismatched", job->info.unwind_mismatched);
  pl_json_obj_close(&j);
  if (job->info.unwind_fell_back) pl_json_kv_bool(&j, "stack_capture_fell_back", 1);
  pl_json_kv_uint(&j, "threads", job->info.threads);
  pl_json_kv_double(&j, "duration_ms", (double)job->info.duration_ns / 1e6, 3);
  pl_json_kv_double(&j, "write_ms", job->write_ms, 3);
  pl_json_obj_close(&j);
  free(job);
  pl_respond_json(r, 200, &b);
}

/* The profile's time is up (or the service is stopping). */
static void on_profile_timer(uv_timer_t *t) {
  pl_lab *lab = t->data;
  lab_cpu_job *job = lab->cpu_job;
  if (!job || job->profile) return;
  int rc = pl_cpu_profiler_stop(&job->profile);
  if (rc) {
    lab->cpu_job = NULL;
    lab->profile_failures++;
    pl_respond_error(job->req, 500, "profile_failed", "stopping the profiler failed: %s",
                     strerror(-rc));
    free(job);
    return;
  }
  pl_cpu_profile_get_info(job->profile, &job->info);
  job->work.data = job;
  rc = uv_queue_work(lab->loop, &job->work, work_write, after_write);
  if (rc) {
    job->rc = -ENOMEM;
    job->failed_step = "queue";
    after_write(&job->work, 0);
  }
}

void lab_cpu_cancel(pl_lab *lab) {
  if (lab->cpu_job && !lab->cpu_job->profile) {
    uv_timer_stop(&lab->profile_timer);
    on_profile_timer(&lab->profile_timer); /* stop now; write what we have */
  }
}

void lab_cpu_status(pl_lab *lab, pl_json *j) {
  pl_json_key(j, "profiler");
  pl_json_obj_open(j);
  lab_cpu_job *job = lab->cpu_job;
  pl_json_kv_str(j, "state", !job ? "idle" : job->profile ? "writing" : "running");
  if (job) {
    char a[40], b[40];
    pl_format_iso8601(job->started_wall_ns, a, sizeof(a));
    pl_format_iso8601(job->until_wall_ns, b, sizeof(b));
    pl_json_kv_str(j, "started_at", a);
    pl_json_kv_str(j, "until", b);
    pl_json_kv_str(j, "mode", mode_names[job->mode]);
    pl_json_kv_uint(j, "hz", job->hz);
    pl_json_kv_str(j, "format", format_names[job->format]);
  }
  pl_json_kv_uint(j, "profiles_taken", lab->profiles_taken);
  pl_json_kv_uint(j, "failures", lab->profile_failures);
  pl_json_obj_close(j);
}

void lab_on_cpu_profile(pl_request *r, void *arg) {
  pl_lab *lab = arg;
  if (lab_guard(lab, r)) return;
  pl_param_spec spec[] = {
      {.name = "seconds", .kind = PL_PARAM_UINT, .min = 1, .max = lab->cfg.max_profile_seconds,
       .def = lab->cfg.max_profile_seconds < 5 ? lab->cfg.max_profile_seconds : 5,
       .bound = "LAB_MAX_PROFILE_SECONDS"},
      {.name = "format", .kind = PL_PARAM_ENUM, .choices = format_names, .def = FMT_CPUPROFILE},
      {.name = "hz", .kind = PL_PARAM_UINT, .min = 1, .max = PL_CPU_MAX_HZ, .def = 1000},
      {.name = "mode", .kind = PL_PARAM_ENUM, .choices = mode_names, .def = PL_CPU_WALL},
  };
  uint64_t v[4];
  if (pl_request_params(r, spec, 4, v)) return;
  if (lab->cpu_job || pl_cpu_profiler_running()) {
    lab_cpu_job *busy = lab->cpu_job;
    if (busy) {
      char until[40];
      pl_format_iso8601(busy->until_wall_ns, until, sizeof(until));
      char ra[16];
      uint64_t now = pl_wall_ns();
      snprintf(ra, sizeof(ra), "%llu",
               (unsigned long long)(busy->until_wall_ns > now
                                        ? (busy->until_wall_ns - now) / 1000000000u + 1 : 1));
      pl_request_add_header(r, "Retry-After", ra);
      pl_respond_error(r, 409, "busy",
                       "a CPU profile requested by %s is running until %s; one profile at a time",
                       busy->remote, until);
    } else {
      pl_respond_error(r, 409, "busy", "a CPU profile is already running in this process");
    }
    return;
  }
  lab_cpu_job *job = calloc(1, sizeof(*job));
  if (!job) {
    pl_respond_error(r, 503, "out_of_memory", "no memory to start a profile");
    return;
  }
  job->lab = lab;
  job->req = r;
  job->seconds = v[0];
  job->format = (int)v[1];
  job->hz = (unsigned)v[2];
  job->mode = (pl_cpu_mode)v[3];
  snprintf(job->remote, sizeof(job->remote), "%s", pl_request_remote(r));
  pl_cpu_options o = {
      .mode = job->mode,
      .hz = job->hz,
      .wall_tid = (uint32_t)syscall(SYS_gettid), /* handlers run on the loop thread */
      .idle_flag = lab->idle ? pl_loop_idle_flag(lab->idle) : NULL,
  };
  int rc = pl_cpu_profiler_start(&o);
  if (rc) {
    free(job);
    if (rc == -EBUSY)
      pl_respond_error(r, 409, "busy", "another profiler owns SIGPROF in this process");
    else
      pl_respond_error(r, 500, "profile_failed", "cannot start the profiler: %s", strerror(-rc));
    return;
  }
  job->started_wall_ns = pl_wall_ns();
  job->until_wall_ns = job->started_wall_ns + job->seconds * 1000000000u;
  lab->cpu_job = job;
  pl_json *lj = pl_log_begin("info", "lab_cpu_profile_start");
  pl_json_kv_uint(lj, "seconds", job->seconds);
  pl_json_kv_uint(lj, "hz", job->hz);
  pl_json_kv_str(lj, "mode", mode_names[job->mode]);
  pl_json_kv_str(lj, "format", format_names[job->format]);
  pl_log_end();
  uv_update_time(lab->loop); /* the loop's cached time may be stale: count from now */
  uv_timer_start(&lab->profile_timer, on_profile_timer, job->seconds * 1000, 0);
  /* no answer yet: the server suspends the request until after_write */
}
