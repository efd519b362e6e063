/* proflab — the inspector: a Chrome DevTools Protocol endpoint like
 * `node --inspect`, so chrome://inspect lists the process and DevTools
 * records CPU profiles, takes heap snapshots, samples allocations and shows
 * heap usage of a live C process.
 *
 * It runs on its own thread with its own libuv loop, so it answers while
 * the service's event loop is jammed. Captures go through the process's
 * one capture path: a profile or snapshot started from the lab makes the
 * inspector answer busy, and the other way round.
 *
 * Security, as Node's and no weaker: off until started; loopback unless a
 * host is given explicitly (a warning is logged then); the Host header of
 * every HTTP request must be localhost or an IP literal (DNS rebinding);
 * an Origin header on the WebSocket upgrade, when present, must be
 * devtools://devtools or a loopback http(s) origin; the target id is a
 * fresh random UUID per start.
 *
 * Thread rules: pl_inspector_start/stop from one thread (the service's
 * loop thread in proflabd), not concurrently; the counters from any
 * thread. One inspector per process. */
#ifndef PROFLAB_INSPECTOR_H
#define PROFLAB_INSPECTOR_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PL_INSPECT_DEFAULT_HOST "127.0.0.1"
#define PL_INSPECT_DEFAULT_PORT 9229

typedef struct pl_inspector_options {
  const char *host; /* NULL: 127.0.0.1 */
  unsigned port;    /* 0 with port_set = 0: 9229; with port_set = 1, 0 picks a free port */
  int port_set;
  const char *title;                /* shown by chrome://inspect, e.g. "proflabd (task web-1)" */
  const char *task;                 /* the task id */
  uint32_t wall_tid;                /* the service's event-loop thread (CPU profiles sample it) */
  volatile sig_atomic_t *idle_flag; /* its poll flag (pl_loop_idle_flag), or NULL */
  /* CPU profiles sample every thread of the process (proflab's aside),
   * threads waiting in a system call as "(idle)": a program that is not
   * one event loop (the agent) */
  int wall_all_threads;
} pl_inspector_options;

/* Parse "[HOST:]PORT" or "HOST" (as --inspect=… and PROFLAB_INSPECT take
 * it: "9230", "0.0.0.0:9229", "[::1]:9229", "localhost") into o's host and
 * port. host points into a static buffer of this module (one call at a
 * time). 0, or -EINVAL with a message in err. */
int pl_inspector_parse_address(const char *s, pl_inspector_options *o, char *err, size_t errlen);

/* Start listening and serving on the inspector thread. Logs, as Node
 * prints, "Debugger listening on ws://HOST:PORT/ID" and the DevTools URL
 * (also to stderr). 0, -EALREADY (running), or a negative errno with a
 * message in err (address in use, ...). */
int pl_inspector_start(const pl_inspector_options *o, char *err, size_t errlen);
/* 1 while started. */
int pl_inspector_running(void);
/* The WebSocket URL ("ws://127.0.0.1:9229/<id>") while running, else NULL. */
const char *pl_inspector_url(void);
/* Close every session and the listener, join the thread. A running CPU
 * profile of a session is stopped and dropped. */
void pl_inspector_stop(void);

/* In a child after fork(): the inspector thread is the parent's and does
 * not exist here. Close this process's copy of the listening socket (the
 * port stays the parent's alone) and forget the rest without touching it
 * (its memory, a copy, is left; so are copies of sessions' sockets), so
 * the child may start an inspector of its own. Fine in a pthread_atfork
 * child handler. */
void pl_inspector_forget_after_fork(void);

/* Counters since the process started (any thread). */
typedef struct pl_inspector_stats {
  int running;
  uint64_t connections;   /* HTTP connections accepted */
  uint64_t sessions;      /* WebSocket sessions opened */
  uint64_t sessions_open; /* open now */
  uint64_t rejected;      /* requests refused: Host, Origin, unknown target, bad request */
  uint64_t messages_in, messages_out;
  uint64_t bytes_in, bytes_out;
} pl_inspector_stats;
void pl_inspector_get_stats(pl_inspector_stats *out);

#ifdef __cplusplus
}
#endif
#endif
