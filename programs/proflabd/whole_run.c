/* Whole-run CPU profile (see whole_run.h). */
#include "whole_run.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "proflab/log.h"

int svc_whole_run_start(svc_whole_run *w, uv_loop_t *loop, const char *path, char *err,
                        size_t errlen) {
  memset(w, 0, sizeof(*w));
  w->path = path;
  pl_cpu_options o = {.mode = PL_CPU_WALL, .hz = 1000};
  const char *mode = getenv("PROFLAB_CPU_PROFILE_MODE");
  if (mode && strcmp(mode, "cpu") == 0)
    o.mode = PL_CPU_CPU;
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
    o.hz = (unsigned)h;
  }
  /* Fail now, not after a long run, if the file cannot be written. */
  char partial[4200];
  snprintf(partial, sizeof(partial), "%s.partial", path);
  int fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    snprintf(err, errlen, "PROFLAB_CPU_PROFILE %s: %s", partial, strerror(errno));
    return -errno;
  }
  close(fd);
  unlink(partial);
  int rc = pl__capture_new(&w->capture, PL__CAPTURE_CPU, pl_cpu_format_of_path(path),
                           "the whole-run profile (PROFLAB_CPU_PROFILE)", NULL);
  if (!rc) rc = pl_loop_idle_track(loop, &w->idle);
  if (!rc) {
    o.idle_flag = pl_loop_idle_flag(w->idle);
    rc = pl__capture_cpu_start(w->capture, &o);
  }
  if (rc) {
    pl__capture_free(w->capture);
    w->capture = NULL;
    snprintf(err, errlen, "cannot start the whole-run CPU profile: %s", strerror(-rc));
    return rc;
  }
  pl_json *j = pl_log_begin("info", "cpu_profile_run_start");
  pl_json_kv_str(j, "path", path);
  pl_json_kv_str(j, "mode", o.mode == PL_CPU_CPU ? "cpu" : "wall");
  pl_json_kv_uint(j, "hz", o.hz);
  pl_log_end();
  return 0;
}

void svc_whole_run_finish(svc_whole_run *w) {
  char partial[4200];
  snprintf(partial, sizeof(partial), "%s.partial", w->path);
  int rc = pl__capture_cpu_stop(w->capture);
  if (!rc) rc = pl__capture_prepare(w->capture);
  int fd = -1;
  if (!rc) {
    fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) rc = -errno;
  }
  if (!rc) {
    pl__sink sink;
    pl__sink_init_fd(&sink, &fd);
    rc = pl__capture_write(&sink, w->capture);
    pl__sink_free(&sink);
    if (!rc && fsync(fd) != 0) rc = -errno;
    if (close(fd) != 0 && !rc) rc = -errno;
    if (!rc && rename(partial, w->path) != 0) rc = -errno;
    if (rc) unlink(partial);
  }
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
}
