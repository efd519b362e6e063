/* The one capture path: take (a CPU profile or a heap snapshot) →
 * symbolize → write in a chosen format to a pl_sink, for every caller: the
 * lab's endpoints (an artifact file, in libuv's thread pool), the whole-run
 * profile (a file at exit), the inspector (a WebSocket, on its own thread).
 *
 * One capture of each kind at a time per process: pl_capture_new() claims
 * the kind's slot and says who holds it when it is taken. Counters of
 * captures written and failed per kind (for status and /metrics).
 *
 * Thread rules: a capture is used by one thread at a time (it may change
 * hands: started on the loop, written in the thread pool). For a CPU
 * capture, start and stop follow the profiler's rule (proflab/profiler.h).
 * pl_capture_new(), pl_capture_holder_of() and pl_capture_count(): any
 * thread. Never from a signal handler.
 *
 * The heap tracker is referred to weakly (heap_tracker.h): a program that
 * does not link it can capture CPU profiles, and a heap capture answers
 * -ENOSYS there.
 */
#ifndef PL_CAPTURE_CAPTURE_H
#define PL_CAPTURE_CAPTURE_H

#include <stdint.h>

#include <uv.h>

#include "artifact/store.h"
#include "common/sink.h"
#include "proflab/formats.h"
#include "proflab/profiler.h"

typedef enum { PL_CAPTURE_CPU = 0, PL_CAPTURE_HEAP = 1 } pl_capture_kind;

/* Who holds a kind's slot: a short description given by the caller
 * ("127.0.0.1 (lab)", "the whole-run profile", "DevTools session 2"), when
 * it was claimed, and until when it expects to hold it (0: unknown). */
typedef struct pl_capture_holder {
  char who[96];
  int format;
  uint64_t since_wall_ns, until_wall_ns;
} pl_capture_holder;

typedef struct pl_capture pl_capture;

/* Claim kind's slot for a capture in format (a pl_cpu_format or
 * pl_heap_format). 0; -EBUSY when the slot is held (*busy, if not NULL,
 * says by whom); -EINVAL for a format outside the kind's; -ENOSYS for a
 * heap capture without the tracker linked, -ENOENT with it not running;
 * -ENOMEM. */
int pl_capture_new(pl_capture **out, pl_capture_kind kind, int format, const char *who,
                   pl_capture_holder *busy);
/* Release the slot and free what the capture holds. Counts the capture as
 * written or failed if it got that far. NULL is fine. */
void pl_capture_free(pl_capture *c);
/* Copy the holder of kind's slot: 1 when held, else 0. */
int pl_capture_holder_of(pl_capture_kind kind, pl_capture_holder *out);
/* Set until when the holder expects to hold the slot (wall clock). */
void pl_capture_set_until(pl_capture *c, uint64_t until_wall_ns);

/* Captures of kind written and failed since the process started. */
void pl_capture_count(pl_capture_kind kind, uint64_t *written, uint64_t *failed);

/* CPU: start the profiler (o as pl_cpu_profiler_start: -EBUSY when
 * another profiler owns SIGPROF), later stop it; the capture then holds
 * the profile. 0 or -errno; a failed stop counts as a failed capture. */
int pl_capture_cpu_start(pl_capture *c, const pl_cpu_options *o);
int pl_capture_cpu_stop(pl_capture *c);
/* 1 between a successful start and stop. */
int pl_capture_cpu_running(const pl_capture *c);

/* Take (a heap snapshot; a CPU capture was taken by its stop) and
 * symbolize: a .heapsnapshot needs names only, everything else lines.
 * Idempotent. 0 or -errno (pl_capture_failed_step says which step). */
int pl_capture_prepare(pl_capture *c);
/* Write the prepared model to out in the capture's format (the writer
 * switch); ends with pl_sink_finish. 0 or -errno; the bytes already in
 * out are then partial. Has the signature of a pl_artifact_fill_fn. */
int pl_capture_write(pl_sink *out, void *capture);
/* pl_capture_prepare, then pl_capture_write: the whole path. */
int pl_capture_run(pl_capture *c, pl_sink *out);

/* In libuv's thread pool: prepare, then write a new artifact to store
 * ("cpu-…"/"heapdump-…" with the format's extension, named for the
 * model's time); then done(c, rc, art, arg) on the loop thread (art valid
 * during the call when rc is 0). The caller keeps c (frees it in done or
 * later). 0, or a negative errno when the work could not be queued. */
typedef void (*pl_capture_done_fn)(pl_capture *c, int rc, const pl_artifact *art, void *arg);
int pl_capture_queue_artifact(pl_capture *c, uv_loop_t *loop, pl_artifact_store *store,
                              pl_capture_done_fn done, void *arg);

/* What the capture holds and how it went. */
pl_capture_kind pl_capture_kind_of(const pl_capture *c);
int pl_capture_format(const pl_capture *c);
const char *pl_capture_format_name(const pl_capture *c);
const pl_cpu_profile *pl_capture_cpu_profile(const pl_capture *c);   /* after stop */
const pl_heap_snapshot *pl_capture_heap_snapshot(const pl_capture *c); /* after prepare */
const pl_capture_holder *pl_capture_holder_info(const pl_capture *c);
/* The step that failed ("start", "stop", "copy", "symbolize", "write",
 * "queue"), or NULL. */
const char *pl_capture_failed_step(const pl_capture *c);
/* Milliseconds spent taking (a heap snapshot's copy), symbolizing and
 * writing. */
typedef struct pl_capture_times {
  double take_ms, symbolize_ms, write_ms;
} pl_capture_times;
void pl_capture_get_times(const pl_capture *c, pl_capture_times *out);

#endif
