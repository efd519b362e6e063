/* proflab — the CPU profiler: a sampling profiler for the calling process.
 *
 * One profile at a time per process. Two modes:
 * - PL_CPU_WALL (what V8 does for Node): wall-clock sampling of one thread,
 *   normally the event-loop thread; samples taken while the loop waits in
 *   poll are "(idle)" and cost no unwinding (see pl_loop_idle_track).
 * - PL_CPU_CPU: CPU-time sampling of every thread. The kernel checks CPU
 *   timers at its tick (250 Hz on many kernels), so each sample carries a
 *   weight of 1 + timer overruns and accounted time stays right.
 *
 * Thread rules: start/stop from one thread (any), not concurrently; the
 * returned profile is owned by the caller and may be symbolized and written
 * on another thread (e.g. libuv's thread pool).
 */
#ifndef PROFLAB_PROFILER_H
#define PROFLAB_PROFILER_H

#include <signal.h>
#include <stdint.h>

#include <uv.h>

#include "proflab/cpu_profile.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { PL_CPU_WALL = 0, PL_CPU_CPU = 1 } pl_cpu_mode;

#define PL_CPU_MAX_HZ 10000

typedef struct pl_cpu_options {
  pl_cpu_mode mode;
  unsigned hz;                      /* 1..PL_CPU_MAX_HZ; 0 means 1000 */
  uint32_t wall_tid;                /* wall mode: thread to sample; 0 = caller */
  volatile sig_atomic_t *idle_flag; /* from pl_loop_idle_track, or NULL */
} pl_cpu_options;

/* Start profiling. Returns 0, -EBUSY (a profile is running, or another
 * profiler owns SIGPROF), -EINVAL (bad options) or another -errno. */
int pl_cpu_profiler_start(const pl_cpu_options *opts);
int pl_cpu_profiler_running(void);
/* Stop and hand over what was collected (not yet symbolized). 0 or -errno
 * (-ENOENT when no profile runs). */
int pl_cpu_profiler_stop(pl_cpu_profile **out);

/* Mark the loop's poll phase for idle detection: a uv_prepare sets the flag
 * before poll, a uv_check clears it after. Handles are unreferenced and
 * live until pl_loop_idle_untrack. 0 or -errno. */
typedef struct pl_loop_idle pl_loop_idle;
int pl_loop_idle_track(uv_loop_t *loop, pl_loop_idle **out);
volatile sig_atomic_t *pl_loop_idle_flag(pl_loop_idle *t);
void pl_loop_idle_untrack(pl_loop_idle *t);

#ifdef __cplusplus
}
#endif
#endif
