/* The seam between the inspector's transport (inspector.c: the listening
 * socket, HTTP discovery, WebSocket framing) and its protocol side (cdp.c
 * and the domains: Profiler, HeapProfiler, Runtime). The transport owns
 * sockets and sessions; the protocol side owns what a session means.
 *
 * Threads: everything here runs on the inspector's own thread (its own
 * libuv loop), except where a comment says "any thread". The protocol side
 * may run long work (symbolizing, writing a snapshot) on other threads and
 * hand results back with pl__insp_post(). */
#ifndef PL_INSPECTOR_SESSION_H
#define PL_INSPECTOR_SESSION_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* What the host program told the inspector (see proflab/inspector.h). */
typedef struct pl__insp_target {
  const char *id;                   /* the target id: a fresh random UUID per run */
  const char *title;                /* "<program> (task <task>)" */
  const char *task;                 /* the task id */
  uint32_t wall_tid;                /* the event-loop thread (wall-mode CPU profiles) */
  volatile sig_atomic_t *idle_flag; /* the loop's poll flag (pl_loop_idle_flag), or NULL */
  int wall_all_threads;             /* sample every thread (pl_inspector_options) */
} pl__insp_target;

typedef struct pl__insp_session pl__insp_session;

/* ---- transport → protocol (implemented in cdp.c) --------------------- */

/* A WebSocket session was opened on target t. Returns the protocol state
 * for it (NULL: out of memory; the transport then closes the session). */
void *pl__cdp_session_open(pl__insp_session *s, const pl__insp_target *t);
/* One complete text message (a CDP request; not NUL-terminated). */
void pl__cdp_session_message(void *cdp, const char *msg, size_t len);
/* The session's queued output fell below PL__INSP_LOW_WATER bytes: a
 * paused stream (a heap snapshot) may go on. */
void pl__cdp_session_writable(void *cdp);
/* The session is gone (closed by either side, or the inspector stops).
 * The protocol side stops what the session started (a CPU profile is
 * stopped and dropped, a snapshot stream abandoned) and frees cdp; it may
 * not use s after this returns. */
void pl__cdp_session_closed(void *cdp);

/* ---- protocol → transport (implemented in inspector.c) --------------- */

/* Bytes queued for a session beyond which a stream should pause, and below
 * which it resumes (pl__cdp_session_writable). */
#define PL__INSP_HIGH_WATER (4u << 20)
#define PL__INSP_LOW_WATER (1u << 20)

/* Queue one text message (copied). 0, -EPIPE when the session is closing,
 * -ENOMEM. Never blocks: the caller watches pl__insp_queued(). */
int pl__insp_send(pl__insp_session *s, const char *msg, size_t len);
/* Bytes queued for s and not yet written to its socket. */
size_t pl__insp_queued(pl__insp_session *s);
/* Any thread: write one text message to s's socket at once, on the calling
 * thread, as one frame, when nothing is queued ahead of it (else the
 * inspector thread is the writer: a message sent with pl__insp_send keeps
 * its place). 0: sent whole, or what the kernel did not take is queued
 * behind and the inspector thread sends it; -EAGAIN: nothing was written
 * (queue it with pl__insp_send). The caller makes sure s is not freed
 * meanwhile: pl__cdp_session_closed for s must not have returned. */
int pl__insp_write_now(pl__insp_session *s, const char *msg, size_t len);
/* Close s with a WebSocket close code and reason (1003 bad data, 1008
 * policy, 1009 too big, 1011 internal error); pl__cdp_session_closed
 * follows. */
void pl__insp_close(pl__insp_session *s, uint16_t code, const char *reason);
/* The inspector thread's loop (for timers and uv_async handles the
 * protocol side makes). */
uv_loop_t *pl__insp_loop(pl__insp_session *s);

/* Run fn(arg) on the inspector thread soon. Any thread. 0 or -ENOMEM (or
 * -ESHUTDOWN when the inspector is stopping: fn is not run). */
int pl__insp_post(void (*fn)(void *arg), void *arg);

/* The inspector's counters (for status and /metrics). Any thread. */
typedef struct pl__insp_counters {
  uint64_t connections;   /* HTTP connections accepted */
  uint64_t sessions;      /* WebSocket sessions opened */
  uint64_t sessions_open; /* open now */
  uint64_t rejected;      /* requests refused: Host, Origin, bad id, bad head */
  uint64_t messages_in, messages_out;
  uint64_t bytes_in, bytes_out;
} pl__insp_counters;

#endif
