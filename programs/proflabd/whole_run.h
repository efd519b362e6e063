/* PROFLAB_CPU_PROFILE / --cpu-profile: profile a whole proflabd run and
 * write the file at exit, like `node --cpu-prof`. */
#ifndef PROFLABD_WHOLE_RUN_H
#define PROFLABD_WHOLE_RUN_H

#include <stddef.h>

#include <uv.h>

#include "capture/whole_run.h"
#include "proflab/profiler.h"

typedef struct svc_whole_run {
  pl__whole_run run; /* holds the process's CPU capture for the whole run */
  pl_loop_idle *idle;
} svc_whole_run;

/* Start profiling the loop thread. Mode and rate from
 * PROFLAB_CPU_PROFILE_MODE (wall|cpu) and PROFLAB_CPU_PROFILE_HZ. 0, or
 * -errno with a message in err. */
int svc_whole_run_start(svc_whole_run *w, uv_loop_t *loop, const char *path, char *err,
                        size_t errlen);
/* Stop, symbolize and write the file (via "<path>.partial" and rename);
 * logs the outcome. */
void svc_whole_run_finish(svc_whole_run *w);

#endif
