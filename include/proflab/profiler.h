/* proflab — the CPU profiler: a sampling profiler for the calling process.
 *
 * One profile at a time per process. Two modes:
 * - PL_CPU_WALL (what V8 does for Node): wall-clock sampling of one thread,
 *   normally the event-loop thread; samples taken while the loop waits in
 *   poll are "(idle)" and cost no unwinding (see pl_loop_idle_track). Or
 *   of several threads (wall_all, wall_tids): each is signalled every
 *   period, and one that waits in a system call (epoll/poll/select, futex,
 *   nanosleep, a blocking read/recv/accept) is "(idle)", or keeps its stack
 *   with offcpu. The signal interrupts such a wait: calls the kernel does
 *   not restart (epoll_wait, poll, select, nanosleep) return EINTR to the
 *   program, as with any signal.
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
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proflab/cpu_profile.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { PL_CPU_WALL = 0, PL_CPU_CPU = 1 } pl_cpu_mode;

#define PL_CPU_MAX_HZ 10000

#define PL_CPU_MAX_THREADS 64 /* wall_tids */

typedef struct pl_cpu_options {
  pl_cpu_mode mode;
  unsigned hz;                      /* 1..PL_CPU_MAX_HZ; 0 means 1000 */
  uint32_t wall_tid;                /* wall mode: thread to sample; 0 = caller */
  volatile sig_atomic_t *idle_flag; /* from pl_loop_idle_track, or NULL */
  /* Wall mode over several threads, instead of wall_tid: every thread of
   * the process but proflab's own (found at start and every 100 ms), or
   * the nwall_tids (<= PL_CPU_MAX_THREADS) threads of wall_tids (copied). */
  int wall_all;
  const uint32_t *wall_tids;
  unsigned nwall_tids;
  /* Wall mode: threads waiting in a system call (and the loop thread in
   * poll) keep their stacks instead of being "(idle)". */
  int offcpu;
} pl_cpu_options;

/* Start profiling. Returns 0, -EBUSY (a profile is running, or another
 * profiler owns SIGPROF), -EPERM (every thread to sample blocks SIGPROF:
 * pl_cpu_profiler_sigprof_state says which), -ESRCH (a thread of wall_tids
 * is not one of this process), -EINVAL (bad options) or another -errno. */
int pl_cpu_profiler_start(const pl_cpu_options *opts);

/* Whether SIGPROF can sample this process now: 0 yes; -EBUSY the program
 * (or another profiler) has its own SIGPROF handler, or replaced ours;
 * -EPERM every thread of the program blocks SIGPROF in its signal mask.
 * msg gets a sentence saying so (or "" for 0). Reads /proc/self/task;
 * any thread but a signal handler. */
int pl_cpu_profiler_sigprof_state(char *msg, size_t n);

/* Whether tid can be named in wall_tids: 0, -ESRCH (not a thread of this
 * process), -EPERM (its mask blocks SIGPROF), -EINVAL (one of proflab's
 * own threads). */
int pl_cpu_profiler_thread_check(uint32_t tid);
int pl_cpu_profiler_running(void);
/* Stop and hand over what was collected (not yet symbolized). 0 or -errno
 * (-ENOENT when no profile runs). */
int pl_cpu_profiler_stop(pl_cpu_profile **out);

/* In a child after fork() (call it first thing, e.g. from a
 * pthread_atfork child handler): a profile the parent was recording is
 * the parent's — its threads and timers do not exist here — so it is
 * dropped without being touched (its memory, a copy, is left), and the
 * child can start its own. Nothing is written for it here. */
void pl_cpu_profiler_forget_after_fork(void);

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
