/* Whole-run CPU profile of proflabd's loop thread (see whole_run.h): the
 * loop's idle flag here, the rest in the capture path
 * (src/capture/whole_run.c, shared with the agent). */
#include "whole_run.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int svc_whole_run_start(svc_whole_run *w, uv_loop_t *loop, const char *path, char *err,
                        size_t errlen) {
  memset(w, 0, sizeof(*w));
  pl_cpu_options o = {0};
  int rc = pl__whole_run_cpu_options(&o, err, errlen);
  if (rc) return rc;
  if ((rc = pl_loop_idle_track(loop, &w->idle)) != 0) {
    snprintf(err, errlen, "cannot start the whole-run CPU profile: %s", strerror(-rc));
    return rc;
  }
  o.idle_flag = pl_loop_idle_flag(w->idle);
  rc = pl__whole_run_cpu_start(&w->run, path, &o, "the whole-run profile (PROFLAB_CPU_PROFILE)",
                               err, errlen);
  if (rc) {
    pl_loop_idle_untrack(w->idle);
    w->idle = NULL;
  }
  return rc;
}

void svc_whole_run_finish(svc_whole_run *w) { (void)pl__whole_run_cpu_finish(&w->run); }
