/* PROFLAB_CPU_PROFILE / --cpu-profile: profile a whole proflabd run and
 * write the file at exit, like `node --cpu-prof`. */
#ifndef PROFLABD_WHOLE_RUN_H
#define PROFLABD_WHOLE_RUN_H

#include <stddef.h>

#include <uv.h>

#include "proflab/profiler.h"

typedef struct whole_run {
  const char *path;
  int format; /* 0 cpuprofile, 1 pprof, 2 folded */
  pl_loop_idle *idle;
} whole_run;

/* Start profiling the loop thread. Mode and rate from
 * PROFLAB_CPU_PROFILE_MODE (wall|cpu) and PROFLAB_CPU_PROFILE_HZ. 0, or
 * -errno with a message in err. */
int whole_run_start(whole_run *w, uv_loop_t *loop, const char *path, char *err, size_t errlen);
/* Stop, symbolize and write the file (via "<path>.partial" and rename);
 * logs the outcome. */
void whole_run_finish(whole_run *w);

#endif
