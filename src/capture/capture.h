/* The one capture path: take (a CPU profile or a heap snapshot) →
 * symbolize → write in a chosen format to a pl__sink, for every caller: the
 * lab's endpoints (an artifact file, in libuv's thread pool), the whole-run
 * profile (a file at exit), the inspector (a WebSocket, on its own thread).
 *
 * One capture of each kind at a time per process: pl__capture_new() claims
 * the kind's slot and says who holds it when it is taken. Counters of
 * captures written and failed per kind (for status and /metrics).
 *
 * Thread rules: a capture is used by one thread at a time (it may change
 * hands: started on the loop, written in the thread pool). For a CPU
 * capture, start and stop follow the profiler's rule (proflab/profiler.h).
 * pl__capture_new(), pl__capture_holder_of() and pl__capture_count(): any
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

typedef enum { PL__CAPTURE_CPU = 0, PL__CAPTURE_HEAP = 1 } pl__capture_kind;

/* Who holds a kind's slot: a short description given by the caller
 * ("127.0.0.1 (lab)", "the whole-run profile", "DevTools session 2"), when
 * it was claimed, and until when it expects to hold it (0: unknown). */
typedef struct pl__capture_holder {
  char who[96];
  int format;
  uint64_t since_wall_ns, until_wall_ns;
} pl__capture_holder;

typedef struct pl__capture pl__capture;

/* Claim kind's slot for a capture in format (a pl_cpu_format or
 * pl_heap_format). 0; -EBUSY when the slot is held (*busy, if not NULL,
 * says by whom); -EINVAL for a format outside the kind's; -ENOSYS for a
 * heap capture without the tracker linked, -ENOENT with it not running;
 * -ENOMEM. */
int pl__capture_new(pl__capture **out, pl__capture_kind kind, int format, const char *who,
                    pl__capture_holder *busy);
/* Release the slot and free what the capture holds. Counts the capture as
 * written or failed if it got that far. NULL is fine. */
void pl__capture_free(pl__capture *c);
/* Copy the holder of kind's slot: 1 when held, else 0. */
int pl__capture_holder_of(pl__capture_kind kind, pl__capture_holder *out);
/* Set until when the holder expects to hold the slot (wall clock). */
void pl__capture_set_until(pl__capture *c, uint64_t until_wall_ns);

/* In a child after fork(): the captures holding the slots are the
 * parent's (its profile, its snapshot being written, a DevTools
 * session's): free both slots without touching them (their memory, a
 * copy, is left), so the child can capture. The counters stay. Stores
 * only: fine in a pthread_atfork child handler. */
void pl__capture_forget_after_fork(void);

/* Captures of kind written and failed since the process started. */
void pl__capture_count(pl__capture_kind kind, uint64_t *written, uint64_t *failed);

/* CPU: start the profiler (o as pl_cpu_profiler_start: -EBUSY when
 * another profiler owns SIGPROF), later stop it; the capture then holds
 * the profile. 0 or -errno; a failed stop counts as a failed capture. */
int pl__capture_cpu_start(pl__capture *c, const pl_cpu_options *o);
int pl__capture_cpu_stop(pl__capture *c);
/* 1 between a successful start and stop. */
int pl__capture_cpu_running(const pl__capture *c);

/* A heap capture keeps only the live allocations made at or after
 * since_ns (CLOCK_MONOTONIC): a sampling heap profile started then. Before
 * pl__capture_prepare. */
void pl__capture_heap_since(pl__capture *c, uint64_t since_ns);

/* Make ready now, on the calling thread, what the next .heapsnapshot needs:
 * the names its symbolization will ask for (the call sites of every stack
 * the tracker recorded so far), kept by the symbolizer, and the memory its
 * samples are copied into (pl_heap_snapshot_prepare). A first snapshot
 * then reads no symbol table (~1-4 ms here, far more for a large program)
 * and makes no fresh pages (~1 ms for 110,000 samples). Claims no capture
 * slot; waits while the symbolizer is in use. 0, -ENOSYS without the
 * tracker, -ENOMEM, -errno. */
int pl__capture_heap_warm(void);
/* Hand back what the capture path keeps between captures once unused for
 * a minute: the symbolizer (tens of MB of module data) and a heap
 * snapshot's samples memory, then malloc_trim when something went, so the
 * process's RSS shows what the service holds. Never waits. A loop calls it
 * every PL__CAPTURE_DROP_EVERY_MS. */
#define PL__CAPTURE_DROP_EVERY_MS 15000
void pl__capture_drop_idle(void);

/* Take (a heap snapshot; a CPU capture was taken by its stop) and
 * symbolize: a .heapsnapshot needs names only, everything else lines.
 * Idempotent. 0 or -errno (pl__capture_failed_step says which step). */
int pl__capture_prepare(pl__capture *c);
/* Write the prepared model to out in the capture's format (the writer
 * switch); ends with pl__sink_finish. 0 or -errno; the bytes already in
 * out are then partial. Has the signature of a pl__artifact_fill_fn. */
int pl__capture_write(pl__sink *out, void *capture);
/* pl__capture_prepare, then pl__capture_write: the whole path. */
int pl__capture_run(pl__capture *c, pl__sink *out);

/* In libuv's thread pool: prepare, then write a new artifact to store
 * ("cpu-…"/"heapdump-…" with the format's extension, named for the
 * model's time); then done(c, rc, art, arg) on the loop thread (art valid
 * during the call when rc is 0). The caller keeps c (frees it in done or
 * later). 0, or a negative errno when the work could not be queued. */
typedef void (*pl__capture_done_fn)(pl__capture *c, int rc, const pl__artifact *art, void *arg);
int pl__capture_queue_artifact(pl__capture *c, uv_loop_t *loop, pl__artifact_store *store,
                               pl__capture_done_fn done, void *arg);

/* What the capture holds and how it went. */
pl__capture_kind pl__capture_kind_of(const pl__capture *c);
int pl__capture_format(const pl__capture *c);
const char *pl__capture_format_name(const pl__capture *c);
const pl_cpu_profile *pl__capture_cpu_profile(const pl__capture *c);     /* after stop */
const pl_heap_snapshot *pl__capture_heap_snapshot(const pl__capture *c); /* after prepare */
const pl__capture_holder *pl__capture_holder_info(const pl__capture *c);
/* The step that failed ("start", "stop", "copy", "symbolize", "write",
 * "queue"), or NULL. */
const char *pl__capture_failed_step(const pl__capture *c);
/* Milliseconds spent taking (a heap snapshot's copy), symbolizing and
 * writing. */
typedef struct pl__capture_times {
  double take_ms, symbolize_ms, write_ms;
} pl__capture_times;
void pl__capture_get_times(const pl__capture *c, pl__capture_times *out);

#endif
