/* The CDP Profiler domain: enable, disable, setSamplingInterval, start and
 * stop, recording the service's event-loop thread through the capture path
 * (the profile answered is our .cpuprofile). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/sink.h"
#include "common/util.h"
#include "inspector/cdp.h"

static void on_enable(pl__cdp *c, json_int_t id, json_t *params) {
  (void)params;
  pl__cdp_reply_empty(c, id);
}

static void on_set_interval(pl__cdp *c, json_int_t id, json_t *params) {
  json_t *v = json_object_get(params, "interval");
  if (!v) {
    pl__cdp_reply_bad_param(c, id, "interval", "mandatory field missing");
    return;
  }
  if (!json_is_integer(v)) {
    pl__cdp_reply_bad_param(c, id, "interval", "integer value expected");
    return;
  }
  json_int_t us = json_integer_value(v);
  if (us <= 0) {
    pl__cdp_reply_bad_param(c, id, "interval", "must be a positive number of microseconds");
    return;
  }
  if (c->cpu) {
    pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR,
                        "Cannot change sampling interval when profiling.", NULL);
    return;
  }
  c->interval_us = us > 1000000 ? 1000000 : (unsigned)us;
  pl__cdp_reply_empty(c, id);
}

/* The requested interval as a rate, within what the sampler does (the
 * profile then carries the true interval). */
static unsigned rate_hz(unsigned interval_us) {
  unsigned hz = 1000000u / (interval_us ? interval_us : 1000);
  if (hz < 1) hz = 1;
  if (hz > PL_CPU_MAX_HZ) hz = PL_CPU_MAX_HZ;
  return hz;
}

static void on_start(pl__cdp *c, json_int_t id, json_t *params) {
  (void)params;
  if (c->cpu) { /* V8 answers a second start of the same session with success */
    pl__cdp_reply_empty(c, id);
    return;
  }
  pl__capture_holder busy;
  pl__capture *cap;
  int rc = pl__capture_new(&cap, PL__CAPTURE_CPU, PL_CPU_FORMAT_CPUPROFILE, c->who, &busy);
  if (rc == -EBUSY) {
    char m[256];
    pl__cdp_busy_message(&busy, "a CPU profile", m, sizeof(m));
    pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR, m, NULL);
    return;
  }
  if (!rc && pl_cpu_profiler_running()) { /* a profile outside the capture path */
    pl__capture_free(cap);
    rc = -EBUSY;
    pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR,
                        "a CPU profile is already running in this process", NULL);
    return;
  }
  if (rc) {
    pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR, strerror(-rc), NULL);
    return;
  }
  pl_cpu_options o = {
      .mode = PL_CPU_WALL,
      .hz = rate_hz(c->interval_us),
      .wall_tid = c->target->wall_tid,
      .idle_flag = c->target->idle_flag,
      .wall_all = c->target->wall_all_threads,
  };
  rc = pl__capture_cpu_start(cap, &o);
  if (rc) {
    pl__capture_free(cap);
    pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR,
                        rc == -EBUSY   ? "another profiler owns SIGPROF in this process"
                        : rc == -EPERM ? "every thread to sample blocks SIGPROF in its signal mask"
                                       : "cannot start the profiler",
                        rc == -EBUSY || rc == -EPERM ? NULL : strerror(-rc));
    return;
  }
  c->cpu = cap;
  pl__cdp_reply_empty(c, id);
}

/* Profiler.stop: stop now, symbolize and write the answer off the
 * inspector thread (tens of ms the first time). */
typedef struct stop_job {
  json_int_t id;
  pl__capture *cap;
  pl__sink sink;
  int rc;
} stop_job;

static void stop_work(void *arg) {
  stop_job *sj = arg;
  char head[64];
  int n = snprintf(head, sizeof(head), "{\"id\":%lld,\"result\":{\"profile\":", (long long)sj->id);
  pl__sink_init_mem(&sj->sink);
  pl__sink_write(&sj->sink, head, (size_t)n);
  sj->rc = pl__capture_run(sj->cap, &sj->sink); /* ends with pl__sink_finish */
  if (!sj->rc) {
    pl__sink_write(&sj->sink, "}}", 2);
    sj->rc = pl__sink_finish(&sj->sink);
  }
}

static void stop_done(pl__cdp *c, void *arg) {
  stop_job *sj = arg;
  /* Free the profiler before answering: a client may start the next
   * capture (from the lab or DevTools) as soon as it has the answer. */
  const char *step = pl__capture_failed_step(sj->cap);
  char failed_step[16];
  snprintf(failed_step, sizeof(failed_step), "%s", step ? step : "write");
  pl__capture_free(sj->cap);
  sj->cap = NULL;
  if (sj->rc) {
    char m[160];
    snprintf(m, sizeof(m), "the profile's %s step failed: %s", failed_step, strerror(-sj->rc));
    pl__cdp_reply_error(c, sj->id, PL__CDP_SERVER_ERROR, m, NULL);
  } else {
    pl__cdp_send_raw(c, sj->sink.buf.data, sj->sink.buf.len);
  }
  pl__sink_free(&sj->sink);
  free(sj);
}

static void on_stop(pl__cdp *c, json_int_t id, json_t *params) {
  (void)params;
  if (!c->cpu) {
    pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR, "No recording profiles found", NULL);
    return;
  }
  pl__capture *cap = c->cpu;
  c->cpu = NULL;
  int rc = pl__capture_cpu_stop(cap);
  stop_job *sj = rc ? NULL : calloc(1, sizeof(*sj));
  if (!sj) {
    pl__capture_free(cap);
    pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR, "stopping the profiler failed",
                        rc ? strerror(-rc) : "out of memory");
    return;
  }
  sj->id = id;
  sj->cap = cap;
  rc = pl__cdp_job(c, stop_work, stop_done, sj);
  if (rc) {
    pl__capture_free(cap);
    free(sj);
    pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR, "cannot start the profile's writer",
                        strerror(-rc));
  }
}

static void on_disable(pl__cdp *c, json_int_t id, json_t *params) {
  (void)params;
  pl__cdp_profiler_close(c); /* V8 drops a running profile on disable */
  pl__cdp_reply_empty(c, id);
}

void pl__cdp_profiler_close(pl__cdp *c) {
  if (!c->cpu) return;
  pl__capture_free(c->cpu); /* stops the profiler and drops what it had */
  c->cpu = NULL;
}

pl__cdp_handler pl__cdp_profiler_method(const char *m) {
  if (!strcmp(m, "enable")) return on_enable;
  if (!strcmp(m, "disable")) return on_disable;
  if (!strcmp(m, "setSamplingInterval")) return on_set_interval;
  if (!strcmp(m, "start")) return on_start;
  if (!strcmp(m, "stop")) return on_stop;
  return NULL;
}
