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

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pl_cpu_profile pl_cpu_profile;

typedef enum { PL_CPU_WALL = 0, PL_CPU_CPU = 1 } pl_cpu_mode;

#define PL_CPU_MAX_HZ 10000

typedef struct pl_cpu_options {
  pl_cpu_mode mode;
  unsigned hz;                          /* 1..PL_CPU_MAX_HZ; 0 means 1000 */
  uint32_t wall_tid;                    /* wall mode: thread to sample; 0 = caller */
  volatile sig_atomic_t *idle_flag;     /* from pl_loop_idle_track, or NULL */
} pl_cpu_options;

/* Start profiling. Returns 0, -EBUSY (a profile is running, or another
 * profiler owns SIGPROF), -EINVAL (bad options) or another -errno. */
int pl_cpu_profiler_start(const pl_cpu_options *opts);
int pl_cpu_profiler_running(void);
/* Stop and hand over what was collected (not yet symbolized). 0 or -errno
 * (-ENOENT when no profile runs). */
int pl_cpu_profiler_stop(pl_cpu_profile **out);
/* Resolve function, file and line of every frame (slow: tens of ms; do it
 * off the event loop). 0 or -errno. */
int pl_cpu_profile_symbolize(pl_cpu_profile *p);
void pl_cpu_profile_free(pl_cpu_profile *p);

typedef enum { PL_FMT_CPUPROFILE = 0, PL_FMT_PPROF = 1, PL_FMT_FOLDED = 2 } pl_cpu_format;
/* Write a symbolized profile to fd (the caller keeps fd): Chrome
 * .cpuprofile, gzipped pprof, or folded stacks. 0 or -errno. */
int pl_cpu_profile_write_fd(const pl_cpu_profile *p, pl_cpu_format format, int fd);

/* Summary numbers of a profile. */
typedef struct pl_cpu_profile_info {
  uint64_t samples;       /* samples recorded */
  uint64_t weight;        /* sampling periods they stand for */
  uint64_t idle_samples;
  uint64_t signals;       /* signals handled */
  uint64_t dropped;       /* samples lost to a full buffer */
  /* stacks captured without DWARF (frame pointers, per-pc rules, cached
   * callers), with callers from the suffix cache, and with libgcc's DWARF
   * unwinder for some frames */
  uint64_t unwind_fp, unwind_cached, unwind_dwarf;
  /* frame-pointer stacks compared with DWARF (on a cache miss; every 256th
   * in full), those it disagreed with, and whether frame pointers were given
   * up for the rest of the profile (code built without them) */
  uint64_t unwind_verified, unwind_mismatched;
  int unwind_fell_back;
  uint64_t period_ns;
  uint64_t duration_ns;
  unsigned threads;       /* distinct threads seen */
} pl_cpu_profile_info;
void pl_cpu_profile_get_info(const pl_cpu_profile *p, pl_cpu_profile_info *info);

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
