/* What the CDP files of src/inspector/ share: a session's protocol state,
 * answers and events, and work run off the inspector thread. Inspector
 * thread only, unless a comment says otherwise. */
#ifndef PL_INSPECTOR_CDP_H
#define PL_INSPECTOR_CDP_H

#include <jansson.h>
#include <stdint.h>

#include "capture/capture.h"
#include "inspector/session.h"
#include "proflab/buf.h"

/* CDP error codes (JSON-RPC). */
#define PL__CDP_SERVER_ERROR (-32000)
#define PL__CDP_INVALID_REQUEST (-32600)
#define PL__CDP_METHOD_NOT_FOUND (-32601)
#define PL__CDP_INVALID_PARAMS (-32602)

typedef struct pl__cdp {
  pl__insp_session *s;
  const pl__insp_target *target;
  unsigned number;  /* this session's number in the process (1, 2, ...) */
  char who[64];     /* "DevTools session N (inspector)", for busy answers */
  int closed;       /* the transport is gone; freed when jobs reach 0 */
  _Atomic int mute; /* the inspector is stopping: nothing more is sent */
  unsigned jobs;    /* work running off the inspector thread */
  /* Profiler */
  unsigned interval_us; /* Profiler.setSamplingInterval (default 1000) */
  pl__capture *cpu;     /* the CPU profile this session records, or NULL */
  /* HeapProfiler */
  uint64_t sampling_since_ns;    /* startSampling time (CLOCK_MONOTONIC), 0 when off */
  int snapshot_running;          /* a takeHeapSnapshot is streaming */
  int warming;                   /* HeapProfiler.enable's readying job runs */
  struct pl__cdp_stream *stream; /* its stream, for flow control */
} pl__cdp;

/* ---- answers (cdp.c) ---------------------------------------------------- */

/* Open {"id":id,"result":{ ... on b with j; the caller adds members of the
 * result and calls pl__cdp_send_result to close and send it. */
void pl__cdp_result_open(pl_buf *b, pl_json *j, json_int_t id);
void pl__cdp_send_result(pl__cdp *c, pl_buf *b, pl_json *j);
/* {"id":id,"result":{}} */
void pl__cdp_reply_empty(pl__cdp *c, json_int_t id);
/* {"id":id,"error":{"code":code,"message":msg[,"data":data]}} */
void pl__cdp_reply_error(pl__cdp *c, json_int_t id, int code, const char *msg, const char *data);
/* -32602 with data saying which field is wrong. */
void pl__cdp_reply_bad_param(pl__cdp *c, json_int_t id, const char *field, const char *why);
/* Send a whole message built elsewhere (owned by the caller). */
void pl__cdp_send_raw(pl__cdp *c, const char *msg, size_t len);

/* ---- work off the inspector thread (cdp.c) ------------------------------ */

/* Run work(arg) on a thread of its own, then done(c, arg) on the inspector
 * thread (or, when the inspector is stopping, on the worker with c muted:
 * nothing is sent). c stays allocated until done ran. done must free what
 * arg holds in every case; pl__cdp_send_* drop messages to a closed or
 * muted session. 0 or -errno (nothing runs). */
int pl__cdp_job(pl__cdp *c, void (*work)(void *arg), void (*done)(pl__cdp *c, void *arg),
                void *arg);

/* Keep c allocated while something that will run later (a posted message)
 * refers to it, and let it go: counted with the jobs. Any thread. */
void pl__cdp_hold(pl__cdp *c);
void pl__cdp_release(pl__cdp *c);

/* ---- domains ----------------------------------------------------------- */

typedef void (*pl__cdp_handler)(pl__cdp *c, json_int_t id, json_t *params);

/* The handler for method, or NULL (-32601). */
pl__cdp_handler pl__cdp_profiler_method(const char *method);
pl__cdp_handler pl__cdp_heap_method(const char *method);
pl__cdp_handler pl__cdp_runtime_method(const char *method);
/* The session is closing: stop what each domain started. */
void pl__cdp_profiler_close(pl__cdp *c);
void pl__cdp_heap_close(pl__cdp *c);
/* The session's output drained: a paused snapshot stream may go on. */
void pl__cdp_heap_writable(pl__cdp *c);

/* Busy answer text for a capture held by someone else. */
void pl__cdp_busy_message(const pl__capture_holder *h, const char *what, char *out, size_t n);

#endif
