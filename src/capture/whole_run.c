/* Whole-run CPU and heap profiles written to a named file (see whole_run.h). */
#include "capture/whole_run.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "proflab/log.h"

int pl__whole_run_cpu_options(pl_cpu_options *o, char *err, size_t errlen) {
  o->mode = PL_CPU_WALL;
  o->hz = 1000;
  const char *mode = getenv("PROFLAB_CPU_PROFILE_MODE");
  if (mode && strcmp(mode, "cpu") == 0)
    o->mode = PL_CPU_CPU;
  else if (mode && *mode && strcmp(mode, "wall") != 0) {
    snprintf(err, errlen, "PROFLAB_CPU_PROFILE_MODE=%.32s: must be wall or cpu", mode);
    return -EINVAL;
  }
  const char *hz = getenv("PROFLAB_CPU_PROFILE_HZ");
  uint64_t h;
  if (hz && *hz) {
    if (pl__parse_u64(hz, &h) != 0 || h < 1 || h > PL_CPU_MAX_HZ) {
      snprintf(err, errlen, "PROFLAB_CPU_PROFILE_HZ=%.32s: must be 1 to %d", hz, PL_CPU_MAX_HZ);
      return -EINVAL;
    }
    o->hz = (unsigned)h;
  }
  return 0;
}

/* The extensions the writers are chosen by (pl_cpu_format_of_path,
 * pl__whole_run_heap_write), longest first where one ends another. */
static const char *const format_exts[] = {".pb.gz",        ".cpuprofile", ".folded", ".heapprofile",
                                          ".heapsnapshot", ".pprof",      NULL};

int pl__whole_run_path_for_pid(const char *path, int pid, char *out, size_t n) {
  size_t len = strlen(path);
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t at = len; /* where the pid goes */
  for (const char *const *e = format_exts; *e; e++) {
    size_t el = strlen(*e);
    if ((size_t)(path + len - base) > el && strcmp(path + len - el, *e) == 0) {
      at = len - el;
      break;
    }
  }
  if (at == len) { /* another extension: before its last dot (not a leading one) */
    const char *dot = strrchr(base, '.');
    if (dot && dot > base) at = (size_t)(dot - path);
  }
  int w = snprintf(out, n, "%.*s.%d%s", (int)at, path, pid, path + at);
  return w >= 0 && (size_t)w < n ? 0 : -ENAMETOOLONG;
}

void pl__whole_run_forget_after_fork(pl__whole_run *w) {
  if (w) w->capture = NULL;
  pl__capture_forget_after_fork();
  pl_cpu_profiler_forget_after_fork();
}

static int partial_of(const char *path, char *out, size_t n) {
  return (size_t)snprintf(out, n, "%s.partial", path) < n ? 0 : -ENAMETOOLONG;
}

int pl__whole_run_check_path(const char *path, const char *var, char *err, size_t errlen) {
  char partial[4200];
  if (partial_of(path, partial, sizeof(partial)) != 0) {
    snprintf(err, errlen, "%s: path too long", var);
    return -ENAMETOOLONG;
  }
  int fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen, "%s %s: %s", var, partial, strerror(e));
    return -e;
  }
  close(fd);
  unlink(partial);
  return 0;
}

/* Write the prepared capture to path through "<path>.partial". */
static int write_to_path(pl__capture *c, const char *path) {
  char partial[4200];
  int rc = partial_of(path, partial, sizeof(partial));
  if (!rc) rc = pl__capture_prepare(c);
  if (rc) return rc;
  int fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  pl__sink sink;
  pl__sink_init_fd(&sink, &fd);
  rc = pl__capture_write(&sink, c);
  pl__sink_free(&sink);
  if (!rc && fsync(fd) != 0) rc = -errno;
  if (close(fd) != 0 && !rc) rc = -errno;
  if (!rc && rename(partial, path) != 0) rc = -errno;
  if (rc) unlink(partial);
  return rc;
}

int pl__whole_run_cpu_start(pl__whole_run *w, const char *path, const pl_cpu_options *o,
                            const char *who, char *err, size_t errlen) {
  memset(w, 0, sizeof(*w));
  w->path = path;
  int rc = pl__whole_run_check_path(path, "PROFLAB_CPU_PROFILE", err, errlen);
  if (rc) return rc;
  rc = pl__capture_new(&w->capture, PL__CAPTURE_CPU, pl_cpu_format_of_path(path), who, NULL);
  if (!rc) rc = pl__capture_cpu_start(w->capture, o);
  if (rc) {
    pl__capture_free(w->capture);
    w->capture = NULL;
    snprintf(err, errlen, "cannot start the whole-run CPU profile: %s",
             rc == -EBUSY ? "another profiler owns SIGPROF in this process" : strerror(-rc));
    return rc;
  }
  pl_json *j = pl_log_begin("info", "cpu_profile_run_start");
  pl_json_kv_str(j, "path", path);
  pl_json_kv_str(j, "mode", o->mode == PL_CPU_CPU ? "cpu" : "wall");
  pl_json_kv_uint(j, "hz", o->hz);
  pl_log_end();
  return 0;
}

int pl__whole_run_cpu_finish(pl__whole_run *w) {
  if (!w->capture) return -ENOENT;
  int rc = pl__capture_cpu_stop(w->capture);
  if (!rc) rc = write_to_path(w->capture, w->path);
  pl_cpu_profile_info info = {0};
  const pl_cpu_profile *p = pl__capture_cpu_profile(w->capture);
  if (p) pl_cpu_profile_get_info(p, &info);
  pl_json *j = pl_log_begin(rc ? "error" : "info", "cpu_profile_run_written");
  pl_json_kv_str(j, "path", w->path);
  pl_json_kv_uint(j, "samples", info.samples);
  if (rc) pl_json_kv_str(j, "error", strerror(-rc));
  pl_log_end();
  pl__capture_free(w->capture);
  w->capture = NULL;
  return rc;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

int pl__whole_run_heap_write(const char *path, const char *who) {
  int format = ends_with(path, ".heapsnapshot") ? PL_HEAP_FORMAT_HEAPSNAPSHOT
               : ends_with(path, ".pb.gz") || ends_with(path, ".pprof")
                   ? PL_HEAP_FORMAT_PPROF
                   : PL_HEAP_FORMAT_HEAPPROFILE;
  pl__capture *c = NULL;
  int rc = pl__capture_new(&c, PL__CAPTURE_HEAP, format, who, NULL);
  if (!rc) rc = write_to_path(c, path);
  const pl_heap_snapshot *s = rc ? NULL : pl__capture_heap_snapshot(c);
  pl_json *j = pl_log_begin(rc ? "error" : "info", "heap_profile_run_written");
  pl_json_kv_str(j, "path", path);
  if (s) pl_json_kv_double(j, "live_bytes", s->inuse_bytes, 0);
  if (rc) pl_json_kv_str(j, "error", strerror(-rc));
  pl_log_end();
  pl__capture_free(c); /* NULL when it was never claimed */
  return rc;
}
