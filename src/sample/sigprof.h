/* SIGNAL-SAFE. The SIGPROF handler: what one sample does.
 *
 * Concurrency rules:
 * - pl__sigprof_install() once, from a normal context, before any timer is
 *   armed; the handler stays installed for the life of the process (a
 *   signal still queued after a profile stops must not meet SIG_DFL, which
 *   would kill the process) and ignores signals it does not own.
 * - pl__sigprof_begin() publishes the ring and settings, then the caller arms
 *   timers whose sigev_value is pl__sigprof_value(index). pl__sigprof_end()
 *   stops recording; after it returns and timers are deleted, handlers still
 *   running finish within a few microseconds (pl__sigprof_quiesce waits).
 * - In the handler: no malloc, no locks, no stdio; errno saved and restored;
 *   stacks come from sample/unwind.h (frame pointers for our code, libgcc's
 *   _Unwind_Backtrace, which finds unwind tables through glibc's lock-free
 *   _dl_find_object, for the rest), set up by pl__sigprof_install() and
 *   pl__sigprof_begin().
 */
#ifndef PL_SAMPLE_SIGPROF_H
#define PL_SAMPLE_SIGPROF_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "sample/ring.h"

#define PL__SIGPROF_MAX_THREADS 4096

/* Install the handler (idempotent). -EBUSY if another SIGPROF handler is
 * installed (another profiler); 0 otherwise. */
int pl__sigprof_install(void);
/* Start recording into ring. tids[i] is the thread timer i samples.
 * idle_flag, when non-NULL, is set by the event loop around its poll
 * phase; a sample on idle_tid with the flag set and the PC inside
 * epoll_wait/epoll_pwait is recorded as idle without unwinding. */
void pl__sigprof_begin(pl__ring *ring, const uint32_t *tids, volatile sig_atomic_t *idle_flag,
                       uint32_t idle_tid);
/* Register tid as timer index i (cpu mode picks up new threads). */
void pl__sigprof_set_tid(unsigned i, uint32_t tid);
/* The sigev_value for timer index i of the current recording. */
int pl__sigprof_value(unsigned i);
/* The si_value of a SIGPROF queued (rt_tgsigqueueinfo, SI_QUEUE, from
 * this process) to thread index 0 of the current recording: a sample of
 * weight 1 + missed. Wall mode's ticker thread sends these. */
int pl__sigprof_queued_value(unsigned missed);
/* How many queued signals handlers have finished (the ticker sends the next
 * one only when its last one was handled: a standard signal does not queue
 * twice, and a merged one would lose its weight). */
uint64_t pl__sigprof_queued_done(void);
void pl__sigprof_end(void);
/* Wait until no handler is inside the ring. */
void pl__sigprof_quiesce(void);
/* Signals handled by the current/last recording. */
uint64_t pl__sigprof_signals(void);

#endif
