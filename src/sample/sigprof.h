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
 * installed (another profiler, or the program replaced ours since); 0
 * otherwise. */
int pl__sigprof_install(void);
/* Flags of a recording (pl__sigprof_begin). */
enum {
  /* A sample whose thread waits in a system call (see below) is recorded
   * as idle without unwinding; without the flag it keeps its stack and is
   * only marked PL__RAW_BLOCKED. */
  PL__SIGPROF_BLOCKED_IDLE = 1u << 0,
};

/* Start recording into ring. tids[i] is the thread timer (or ticker
 * index) i samples. idle_flag, when non-NULL, is set by the event loop
 * around its poll phase; a sample on idle_tid with the flag set and the PC
 * inside epoll_wait/epoll_pwait is recorded as idle without unwinding.
 *
 * "Waits in a system call" is read from the interrupted context alone
 * (x86-64): the kernel either ends an interruptible wait with -EINTR in
 * rax and the pc just after the `syscall` instruction (epoll_wait, poll,
 * select, nanosleep, clock_nanosleep, pause), or, for a call it restarts
 * (SA_RESTART: futex, read, recv, accept, wait4...), moves the pc back
 * onto the `syscall` instruction with the call's number in rax. A wait
 * that completed just as the signal came counts as running. */
void pl__sigprof_begin(pl__ring *ring, const uint32_t *tids, volatile sig_atomic_t *idle_flag,
                       uint32_t idle_tid, unsigned flags);
/* Register tid as timer index i (cpu mode picks up new threads). */
void pl__sigprof_set_tid(unsigned i, uint32_t tid);
/* The sigev_value for timer index i of the current recording. */
int pl__sigprof_value(unsigned i);
/* The si_value of a SIGPROF queued (rt_tgsigqueueinfo, SI_QUEUE, from
 * this process) to thread index i of the current recording. Its sample
 * weighs the periods added with pl__sigprof_queued_add since the last
 * sample of that thread (at least 1), so a signal merged with one still
 * pending loses no weight. Wall mode's ticker thread sends these. */
int pl__sigprof_queued_value(unsigned i);
void pl__sigprof_queued_add(unsigned i, uint32_t periods);
/* How many queued signals handlers of thread index i have finished (the
 * ticker sends the next one only when its last one was handled: a standard
 * signal does not queue twice, and a merged one would lose its weight). */
uint32_t pl__sigprof_queued_done(unsigned i);
void pl__sigprof_end(void);
/* Wait until no handler is inside the ring. */
void pl__sigprof_quiesce(void);
/* In a child after fork(): the parent's recording is over here (its
 * timers and ticker are not inherited) and a handler another thread of
 * the parent was in when it forked never leaves: forget both, so the
 * child can record (pl__sigprof_quiesce would wait forever). Stores only:
 * fine in a pthread_atfork child handler. */
void pl__sigprof_forget_after_fork(void);
/* Signals handled by the current/last recording. */
uint64_t pl__sigprof_signals(void);
/* Whether the process's SIGPROF disposition is still our handler (normal
 * context): 1 ours, 0 not installed yet and free (SIG_DFL/SIG_IGN), -EBUSY
 * another handler (installed by the program, before or after us). */
int pl__sigprof_owner(void);

#endif
