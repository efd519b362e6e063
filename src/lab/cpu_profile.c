/* POST /api/lab/cpu-profile: sample for N seconds while the loop keeps
 * serving, then symbolize and write the artifact through the capture path
 * (capture/capture.h: the thread pool), then answer. One profile at a
 * time. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "capture/capture.h"
#include "common/util.h"
#include "lab/answer.h"
#include "proflab/log.h"

static const char *const mode_names[] = {"wall", "cpu", NULL};

/* The profile being recorded or written. */
typedef struct cpu_job {
  pl_request *req;
  pl__capture *capture;
  pl_cpu_mode mode;
  unsigned hz;
  uint64_t seconds;
  uint64_t started_wall_ns;
  uint64_t until_wall_ns;
  int writing; /* stopped: in the thread pool */
  int offcpu;
  pl_cpu_profile_info info;
} cpu_job;

struct pl__lab_cpu {
  pl_loop_idle *idle;
  uv_timer_t profile_timer;
  cpu_job *job; /* the running profile, or NULL */
};

int pl__lab_cpu_init(pl_lab *lab) {
  struct pl__lab_cpu *cpu = calloc(1, sizeof(*cpu));
  if (!cpu) return -ENOMEM;
  int rc = uv_timer_init(lab->loop, &cpu->profile_timer);
  if (rc) {
    free(cpu);
    return rc;
  }
  cpu->profile_timer.data = lab;
  lab->cpu = cpu;
  return pl_loop_idle_track(lab->loop, &cpu->idle);
}

void pl__lab_cpu_close(pl_lab *lab) {
  uv_close((uv_handle_t *)&lab->cpu->profile_timer, NULL);
  pl_loop_idle_untrack(lab->cpu->idle);
  lab->cpu->idle = NULL;
}

void pl__lab_cpu_free(pl_lab *lab) {
  free(lab->cpu);
  lab->cpu = NULL;
}

static void answer(pl_lab *lab, cpu_job *job, const pl__artifact *art) {
  pl_request *r = job->req;
  pl__capture_times t;
  pl__capture_get_times(job->capture, &t);
  pl_json_kv_str(pl_request_log_fields(r), "file", art->name);
  pl_buf b;
  pl_json j;
  pl__lab_answer_open(lab, &b, &j);
  pl__lab_answer_artifact(&j, art, pl__capture_format_name(job->capture));
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
  if (job->mode == PL_CPU_WALL) {
    pl_json_kv_bool(&j, "offcpu", job->offcpu);
    pl_json_kv_uint(&j, "blocked_samples", job->info.blocked_samples);
  }
  /* the threads the sampler looked at, and those their mask kept out */
  const pl_cpu_profile *p = pl__capture_cpu_profile(job->capture);
  for (int blocked = 0; blocked < 2; blocked++) {
    pl_json_key(&j, blocked ? "threads_blocking_sigprof" : "thread_list");
    pl_json_arr_open(&j);
    for (size_t i = 0; p && i < p->nthreads; i++) {
      if (!(p->threads[i].flags & PL_CPU_THREAD_SIGPROF_BLOCKED) != !blocked) continue;
      pl_json_obj_open(&j);
      pl_json_kv_uint(&j, "tid", p->threads[i].tid);
      pl_json_kv_str(&j, "name", p->threads[i].name ? p->threads[i].name : "");
      pl_json_obj_close(&j);
    }
    pl_json_arr_close(&j);
  }
  pl_json_kv_double(&j, "duration_ms", (double)job->info.duration_ns / 1e6, 3);
  pl_json_kv_double(&j, "write_ms", t.symbolize_ms + t.write_ms, 3);
  pl_json_obj_close(&j);
  pl_respond_json(r, 200, &b);
}

/* Loop thread, after the capture path wrote (or failed to write) the artifact. */
static void on_written(pl__capture *c, int rc, const pl__artifact *art, void *arg) {
  pl_lab *lab = arg;
  cpu_job *job = lab->cpu->job;
  lab->cpu->job = NULL;
  pl_json *lj = pl_request_log_fields(job->req);
  pl_json_kv_str(lj, "action", "cpu-profile");
  pl_json_kv_uint(lj, "samples", job->info.samples);
  if (rc)
    pl__lab_answer_write_failed(lab, job->req, rc, "profile_failed", "profile",
                                pl__capture_failed_step(c));
  else
    answer(lab, job, art);
  pl__capture_free(c);
  free(job);
}

/* The profile's time is up (or the service is stopping). */
static void on_profile_timer(uv_timer_t *t) {
  pl_lab *lab = t->data;
  cpu_job *job = lab->cpu->job;
  if (!job || job->writing) return;
  job->writing = 1;
  int rc = pl__capture_cpu_stop(job->capture);
  if (rc) {
    lab->cpu->job = NULL;
    pl_respond_error(job->req, 500, "profile_failed", "stopping the profiler failed: %s",
                     strerror(-rc));
    pl__capture_free(job->capture);
    free(job);
    return;
  }
  pl_cpu_profile_get_info(pl__capture_cpu_profile(job->capture), &job->info);
  if (job->info.sigprof_lost || (job->info.samples == 0 && job->info.threads_blocking_sigprof)) {
    /* a refusal, not a thin profile */
    lab->cpu->job = NULL;
    if (job->info.sigprof_lost)
      pl_respond_error(job->req, 409, "sigprof_taken",
                       "the program replaced proflab's SIGPROF handler during the profile; "
                       "no profile was written (%llu samples before it)",
                       (unsigned long long)job->info.samples);
    else
      pl_respond_error(job->req, 409, "sigprof_blocked",
                       "the threads to sample (%u) block SIGPROF in their signal mask; no "
                       "profile was written",
                       job->info.threads_blocking_sigprof);
    pl__capture_free(job->capture);
    free(job);
    return;
  }
  rc = pl__capture_queue_artifact(job->capture, lab->loop, &lab->store, on_written, lab);
  if (rc) on_written(job->capture, -ENOMEM, NULL, lab);
}

void pl__lab_cpu_cancel(pl_lab *lab) {
  if (lab->cpu && lab->cpu->job && !lab->cpu->job->writing) {
    uv_timer_stop(&lab->cpu->profile_timer);
    on_profile_timer(&lab->cpu->profile_timer); /* stop now; write what we have */
  }
}

void pl__lab_cpu_status(pl_lab *lab, pl_json *j) {
  pl_json_key(j, "profiler");
  pl_json_obj_open(j);
  cpu_job *job = lab->cpu->job;
  pl_json_kv_str(j, "state", !job ? "idle" : job->writing ? "writing" : "running");
  if (job) {
    char a[40], b[40];
    pl__format_iso8601(job->started_wall_ns, a, sizeof(a));
    pl__format_iso8601(job->until_wall_ns, b, sizeof(b));
    pl_json_kv_str(j, "started_at", a);
    pl_json_kv_str(j, "until", b);
    pl_json_kv_str(j, "mode", mode_names[job->mode]);
    pl_json_kv_uint(j, "hz", job->hz);
    pl_json_kv_str(j, "format", pl__capture_format_name(job->capture));
  }
  char why[200];
  int st = pl_cpu_profiler_sigprof_state(why, sizeof(why));
  pl_json_kv_str(j, "sigprof", st == -EBUSY ? "taken" : st == -EPERM ? "blocked" : "ok");
  if (st) pl_json_kv_str(j, "sigprof_message", why);
  uint64_t written, failed;
  pl__capture_count(PL__CAPTURE_CPU, &written, &failed);
  pl_json_kv_uint(j, "profiles_taken", written);
  pl_json_kv_uint(j, "failures", failed);
  pl_json_obj_close(j);
}

/* 409: who holds the CPU capture, and until when. */
static void answer_busy(pl_request *r, const pl__capture_holder *h) {
  uint64_t now = pl__wall_ns();
  if (!h->until_wall_ns) {
    pl_respond_error(r, 409, "busy",
                     "a CPU profile requested by %s is running; one profile at a time", h->who);
    return;
  }
  char until[40], ra[16];
  pl__format_iso8601(h->until_wall_ns, until, sizeof(until));
  snprintf(ra, sizeof(ra), "%llu",
           (unsigned long long)(h->until_wall_ns > now ? (h->until_wall_ns - now) / 1000000000u + 1
                                                       : 1));
  pl_request_add_header(r, "Retry-After", ra);
  pl_respond_error(r, 409, "busy",
                   "a CPU profile requested by %s is running until %s; one profile at a time",
                   h->who, until);
}

/* threads=TID,TID...: thread ids of this process, each at most once.
 * 0, or answers 400 (malformed), 422 (too many, not a thread of this
 * program) or 409 (blocks SIGPROF) and returns -EINVAL. */
static int parse_threads(pl_request *r, const char *text, uint32_t *tids, unsigned *n) {
  const char *p = text;
  *n = 0;
  for (;;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    uint64_t tid;
    if (len == 0 || pl__parse_u64n(p, len, &tid) != 0 || tid == 0 || tid > INT32_MAX) {
      pl_respond_error(r, 400, "bad_parameter",
                       "parameter 'threads' is '%.64s'; it must be 'all' or thread ids "
                       "separated by commas",
                       text);
      return -EINVAL;
    }
    for (unsigned i = 0; i < *n; i++)
      if (tids[i] == tid) {
        pl_respond_error(r, 400, "bad_parameter", "parameter 'threads' names thread %llu twice",
                         (unsigned long long)tid);
        return -EINVAL;
      }
    if (*n == PL_CPU_MAX_THREADS) {
      pl_respond_error(r, 422, "out_of_range",
                       "parameter 'threads' names more than %u threads; use threads=all",
                       PL_CPU_MAX_THREADS);
      return -EINVAL;
    }
    tids[(*n)++] = (uint32_t)tid;
    if (!end) break;
    p = end + 1;
  }
  for (unsigned i = 0; i < *n; i++) {
    int rc = pl_cpu_profiler_thread_check(tids[i]);
    if (rc == -EPERM) {
      pl_respond_error(r, 409, "sigprof_blocked",
                       "thread %u blocks SIGPROF in its signal mask: it cannot be sampled",
                       (unsigned)tids[i]);
      return -EINVAL;
    }
    if (rc) {
      pl_respond_error(r, 422, "out_of_range",
                       "parameter 'threads': %u is not a thread of this program (pid %d)%s",
                       (unsigned)tids[i], (int)getpid(),
                       rc == -EINVAL ? "; it is one of proflab's own" : "");
      return -EINVAL;
    }
  }
  return 0;
}

static void on_cpu_profile(pl_request *r, void *arg) {
  pl_lab *lab = arg;
  if (pl__lab_guard(lab, r)) return;
  pl_param_spec spec[] = {
      {.name = "seconds",
       .kind = PL_PARAM_UINT,
       .min = 1,
       .max = lab->cfg.max_profile_seconds,
       .def = lab->cfg.max_profile_seconds < 5 ? lab->cfg.max_profile_seconds : 5,
       .bound = "LAB_MAX_PROFILE_SECONDS"},
      {.name = "format",
       .kind = PL_PARAM_ENUM,
       .choices = pl_cpu_format_names,
       .def = PL_CPU_FORMAT_CPUPROFILE},
      {.name = "hz", .kind = PL_PARAM_UINT, .min = 1, .max = PL_CPU_MAX_HZ, .def = 1000},
      {.name = "mode", .kind = PL_PARAM_ENUM, .choices = mode_names, .def = PL_CPU_WALL},
      {.name = "threads",
       .kind = PL_PARAM_TEXT,
       .bound = "'all' or thread ids separated by commas (wall mode)"},
      {.name = "offcpu", .kind = PL_PARAM_UINT, .min = 0, .max = 1, .def = 0},
  };
  uint64_t v[6];
  if (pl_request_params(r, spec, 6, v)) return;
  const char *threads = (const char *)(uintptr_t)v[4];
  uint32_t tids[PL_CPU_MAX_THREADS];
  unsigned ntids = 0;
  int all = !threads ? lab->cfg.profile_all_threads : strcmp(threads, "all") == 0;
  if (threads && !all && parse_threads(r, threads, tids, &ntids)) return;
  if (threads && v[3] != PL_CPU_WALL) {
    pl_respond_error(r, 400, "bad_parameter",
                     "parameter 'threads' is for mode=wall; mode=cpu samples every thread");
    return;
  }
  pl__capture_holder busy;
  pl__capture *c;
  int rc = pl__capture_new(&c, PL__CAPTURE_CPU, (int)v[1], pl_request_remote(r), &busy);
  if (rc == -EBUSY) {
    answer_busy(r, &busy);
    return;
  }
  if (!rc && pl_cpu_profiler_running()) { /* a profile outside the capture path */
    pl__capture_free(c);
    pl_respond_error(r, 409, "busy", "a CPU profile is already running in this process");
    return;
  }
  cpu_job *job = rc ? NULL : calloc(1, sizeof(*job));
  if (!job) {
    pl__capture_free(c);
    pl_respond_error(r, 503, "out_of_memory", "no memory to start a profile");
    return;
  }
  job->req = r;
  job->capture = c;
  job->seconds = v[0];
  job->hz = (unsigned)v[2];
  job->mode = (pl_cpu_mode)v[3];
  job->offcpu = (int)v[5];
  uint32_t loop_tid = (uint32_t)syscall(SYS_gettid);
  pl_cpu_options o = {
      .mode = job->mode,
      .hz = job->hz,
      /* handlers run on the loop thread; its poll phase is "(idle)" */
      .wall_tid = lab->cfg.profile_tid ? lab->cfg.profile_tid : loop_tid,
      .idle_flag =
          lab->cfg.profile_tid || !lab->cpu->idle ? NULL : pl_loop_idle_flag(lab->cpu->idle),
      .wall_all = all,
      .wall_tids = tids,
      .nwall_tids = ntids,
      .offcpu = job->offcpu,
  };
  rc = pl__capture_cpu_start(c, &o);
  if (rc) {
    pl__capture_free(c);
    free(job);
    char why[200];
    if (rc == -EBUSY && pl_cpu_profiler_sigprof_state(why, sizeof(why)) == -EBUSY)
      pl_respond_error(r, 409, "sigprof_taken", "%s", why);
    else if (rc == -EBUSY)
      pl_respond_error(r, 409, "busy", "another profiler owns SIGPROF in this process");
    else if (rc == -EPERM)
      pl_respond_error(r, 409, "sigprof_blocked", "%s",
                       ntids ? "a thread named in 'threads' blocks SIGPROF in its signal mask"
                             : "every thread to sample blocks SIGPROF in its signal mask; "
                               "CPU profiles are refused, the rest of the lab works");
    else if (rc == -ESRCH)
      pl_respond_error(r, 422, "out_of_range", "the thread to sample is gone");
    else
      pl_respond_error(r, 500, "profile_failed", "cannot start the profiler: %s", strerror(-rc));
    return;
  }
  job->started_wall_ns = pl__wall_ns();
  job->until_wall_ns = job->started_wall_ns + job->seconds * 1000000000u;
  pl__capture_set_until(c, job->until_wall_ns);
  lab->cpu->job = job;
  pl_json *lj = pl_log_begin("info", "lab_cpu_profile_start");
  pl_json_kv_uint(lj, "seconds", job->seconds);
  pl_json_kv_uint(lj, "hz", job->hz);
  pl_json_kv_str(lj, "mode", mode_names[job->mode]);
  pl_json_kv_str(lj, "format", pl__capture_format_name(c));
  pl_log_end();
  uv_update_time(lab->loop); /* the loop's cached time may be stale: count from now */
  uv_timer_start(&lab->cpu->profile_timer, on_profile_timer, job->seconds * 1000, 0);
  /* no answer yet: the server suspends the request until on_written */
}

int pl__lab_cpu_mount(pl_lab *lab, pl_server *server) {
  return pl_server_route(server, PL_POST, "/api/lab/cpu-profile", 0, on_cpu_profile, lab);
}
