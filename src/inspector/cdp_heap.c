/* The CDP HeapProfiler domain: heap snapshots streamed as
 * addHeapSnapshotChunk events with flow control, sampling heap profiles
 * (the live allocations made since startSampling), all from the heap
 * tracker through the capture path. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/sink.h"
#include "common/util.h"
#include "inspector/cdp.h"

/* Bytes of chunk messages posted to the inspector thread and not yet handed
 * to the transport, beyond which the writer waits. */
#define POSTED_MAX (1u << 20)
/* Snapshot bytes per addHeapSnapshotChunk event (Node sends 100 KiB). */
#define CHUNK_BYTES (100u * 1024u)

/* A takeHeapSnapshot in flight: the writer (a job's thread) and the
 * inspector thread meet here. */
struct pl__cdp_stream {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t posted;       /* under mu */
  int paused;          /* under mu: the session's output is above its high water */
  int cancelled;       /* under mu: the session is gone */
  pl__cdp *c;          /* inspector thread only */
  pl__insp_session *s; /* the writer's, under mu while not cancelled */
  pl_buf msg;          /* the writer's: the message being built */
  json_int_t id;
  int report_progress;
  pl__capture *cap;
  int rc;
  /* holders: the job, and each message posted and not yet run; the last
   * one frees the stream (when the inspector stops, the job may finish on
   * its own thread while earlier posts still run on the inspector's) */
  _Atomic unsigned refs;
};

static void stream_unref(struct pl__cdp_stream *st) {
  if (atomic_fetch_sub(&st->refs, 1) != 1) return;
  pl_buf_free(&st->msg);
  pthread_cond_destroy(&st->cv);
  pthread_mutex_destroy(&st->mu);
  free(st);
}

typedef struct posted_msg {
  struct pl__cdp_stream *st;
  size_t len;
  char *data; /* malloc'ed, the message's own */
} posted_msg;

static void send_posted(void *arg) {
  posted_msg *m = arg;
  struct pl__cdp_stream *st = m->st;
  pl__cdp *c = st->c;
  pl__cdp_send_raw(c, m->data, m->len);
  int above = !c->closed && !c->mute && c->s && pl__insp_queued(c->s) > PL__INSP_HIGH_WATER;
  pthread_mutex_lock(&st->mu);
  st->posted -= m->len;
  if (above) st->paused = 1;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
  free(m->data);
  free(m);
  stream_unref(st);
  pl__cdp_release(c);
}

/* Writer thread: send the message built in st->msg, waiting while the
 * client is behind. When nothing is queued ahead of it, it goes into the
 * socket from this thread (pl__insp_write_now: no hand-off, and st->msg is
 * kept for the next one); otherwise the buffer is handed, whole, to the
 * inspector thread, which queues it. -ECANCELED once the session is gone. */
static int deliver(struct pl__cdp_stream *st) {
  pthread_mutex_lock(&st->mu);
  while (!st->cancelled && (st->paused || st->posted > POSTED_MAX))
    pthread_cond_wait(&st->cv, &st->mu);
  if (st->cancelled) {
    pthread_mutex_unlock(&st->mu);
    return -ECANCELED;
  }
  /* Under mu: the session is not closed before this returns (its close
   * cancels the stream, under mu, before the transport frees it). */
  if (st->posted == 0 && pl__insp_write_now(st->s, st->msg.data, st->msg.len) == 0) {
    pthread_mutex_unlock(&st->mu);
    pl_buf_reset(&st->msg);
    return 0;
  }
  size_t len = st->msg.len;
  st->posted += len;
  pthread_mutex_unlock(&st->mu);
  char *data = pl_buf_steal(&st->msg, &len);
  posted_msg *m = malloc(sizeof(*m));
  int rc = m ? 0 : -ENOMEM;
  if (m) {
    m->st = st;
    m->len = len;
    m->data = data;
    atomic_fetch_add(&st->refs, 1);
    pl__cdp_hold(st->c); /* the session outlives the message too */
    rc = pl__insp_post(send_posted, m);
    if (rc) {
      atomic_fetch_sub(&st->refs, 1); /* the job still holds one */
      pl__cdp_release(st->c);
      free(m);
    }
  }
  if (rc) {
    free(data);
    pthread_mutex_lock(&st->mu);
    st->posted -= len;
    pthread_mutex_unlock(&st->mu);
  }
  return rc;
}

/* The sink's backend: snapshot bytes -> one addHeapSnapshotChunk event. */
static int chunk_backend(void *ctx, const void *p, size_t n) {
  struct pl__cdp_stream *st = ctx;
  pl_buf *b = &st->msg;
  pl_buf_reserve(b, n + n / 64 + 96); /* the escapes: the strings' quotes */
  pl_buf_puts(b, "{\"method\":\"HeapProfiler.addHeapSnapshotChunk\",\"params\":{\"chunk\":\"");
  pl_json_escape(b, p, n);
  pl_buf_puts(b, "\"}}");
  if (pl_buf_failed(b)) {
    pl_buf_reset(b);
    return -ENOMEM;
  }
  return deliver(st);
}

static int post_progress(struct pl__cdp_stream *st, size_t done, size_t total, int finished) {
  char m[200];
  int n =
      snprintf(m, sizeof(m),
               "{\"method\":\"HeapProfiler.reportHeapSnapshotProgress\",\"params\":{\"done\":%zu,"
               "\"total\":%zu%s}}",
               done, total, finished ? ",\"finished\":true" : "");
  pl_buf_append(&st->msg, m, (size_t)n);
  if (pl_buf_failed(&st->msg)) {
    pl_buf_reset(&st->msg);
    return -ENOMEM;
  }
  return deliver(st);
}

static void snapshot_work(void *arg) {
  struct pl__cdp_stream *st = arg;
  st->rc = pl__capture_prepare(st->cap);
  if (st->rc) return;
  const pl_heap_snapshot *s = pl__capture_heap_snapshot(st->cap);
  size_t total = s->nsamples + 1;
  if (st->report_progress &&
      ((st->rc = post_progress(st, 0, total, 0)) || (st->rc = post_progress(st, total, total, 1))))
    return;
  pl__sink sink;
  pl__sink_init_backend(&sink, chunk_backend, st, CHUNK_BYTES);
  st->rc = pl__capture_write(&sink, st->cap);
  pl__sink_free(&sink);
}

static void snapshot_done(pl__cdp *c, void *arg) {
  struct pl__cdp_stream *st = arg;
  if (c->stream == st) c->stream = NULL;
  c->snapshot_running = 0;
  /* Free the tracker's slot before answering (the next capture may follow
   * the answer at once). */
  const char *step = pl__capture_failed_step(st->cap);
  char failed_step[16];
  snprintf(failed_step, sizeof(failed_step), "%s", step ? step : "write");
  pl__capture_free(st->cap);
  st->cap = NULL;
  if (st->rc && st->rc != -ECANCELED) {
    char m[160];
    snprintf(m, sizeof(m), "the heap snapshot's %s step failed: %s", failed_step,
             strerror(-st->rc));
    pl__cdp_reply_error(c, st->id, PL__CDP_SERVER_ERROR, m, NULL);
  } else if (!st->rc) {
    pl__cdp_reply_empty(c, st->id);
  }
  stream_unref(st);
}

/* Claim the heap capture for c, answering the error when it cannot be had. */
static pl__capture *claim_heap(pl__cdp *c, json_int_t id, int format) {
  pl__capture_holder busy;
  pl__capture *cap;
  int rc = pl__capture_new(&cap, PL__CAPTURE_HEAP, format, c->who, &busy);
  if (!rc) return cap;
  char m[256];
  switch (rc) {
    case -EBUSY:
      pl__cdp_busy_message(&busy, "a heap snapshot", m, sizeof(m));
      break;
    case -ENOSYS:
      snprintf(m, sizeof(m), "this program was built without the heap tracker (libproflab_heap)");
      break;
    case -ENOENT:
      snprintf(m, sizeof(m), "the heap tracker is not running in this process");
      break;
    default:
      snprintf(m, sizeof(m), "cannot take a heap snapshot: %s", strerror(-rc));
      break;
  }
  pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR, m, NULL);
  return NULL;
}

static void on_take_snapshot(pl__cdp *c, json_int_t id, json_t *params) {
  json_t *rp = json_object_get(params, "reportProgress");
  if (rp && !json_is_boolean(rp)) {
    pl__cdp_reply_bad_param(c, id, "reportProgress", "boolean value expected");
    return;
  }
  if (c->snapshot_running) {
    pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR,
                        "a heap snapshot of this session is being sent; one at a time", NULL);
    return;
  }
  pl__capture *cap = claim_heap(c, id, PL_HEAP_FORMAT_HEAPSNAPSHOT);
  if (!cap) return;
  struct pl__cdp_stream *st = calloc(1, sizeof(*st));
  if (!st || pthread_mutex_init(&st->mu, NULL) != 0) {
    free(st);
    pl__capture_free(cap);
    pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR, "out of memory", NULL);
    return;
  }
  if (pthread_cond_init(&st->cv, NULL) != 0) {
    pthread_mutex_destroy(&st->mu);
    free(st);
    pl__capture_free(cap);
    pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR, "out of memory", NULL);
    return;
  }
  st->c = c;
  st->s = c->s;
  pl_buf_init(&st->msg);
  st->id = id;
  st->report_progress = rp && json_is_true(rp);
  st->cap = cap;
  atomic_init(&st->refs, 1); /* the job's */
  int rc = pl__cdp_job(c, snapshot_work, snapshot_done, st);
  if (rc) {
    pl__capture_free(cap);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    free(st);
    pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR, "cannot start the snapshot's writer",
                        strerror(-rc));
    return;
  }
  c->stream = st;
  c->snapshot_running = 1;
}

void pl__cdp_heap_writable(pl__cdp *c) {
  struct pl__cdp_stream *st = c->stream;
  if (!st) return;
  pthread_mutex_lock(&st->mu);
  st->paused = 0;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
}

void pl__cdp_heap_close(pl__cdp *c) {
  c->sampling_since_ns = 0;
  struct pl__cdp_stream *st = c->stream;
  if (!st) return;
  pthread_mutex_lock(&st->mu);
  st->cancelled = 1; /* the writer stops at its next chunk; its job frees st */
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
}

/* ---- sampling heap profile ---------------------------------------------- */

static void on_start_sampling(pl__cdp *c, json_int_t id, json_t *params) {
  json_t *si = json_object_get(params, "samplingInterval");
  if (si && (!json_is_number(si) || json_number_value(si) <= 0)) {
    pl__cdp_reply_bad_param(c, id, "samplingInterval", "a positive number expected");
    return;
  }
  /* The tracker's mean interval is set when it starts (LAB_HEAP_SAMPLE_BYTES)
   * and shared by the whole process; the requested one is not applied. */
  c->sampling_since_ns = pl__now_ns();
  pl__cdp_reply_empty(c, id);
}

typedef struct sampling_job {
  json_int_t id;
  pl__capture *cap;
  pl__sink sink;
  int rc;
} sampling_job;

static void sampling_work(void *arg) {
  sampling_job *sj = arg;
  char head[64];
  int n = snprintf(head, sizeof(head), "{\"id\":%lld,\"result\":{\"profile\":", (long long)sj->id);
  pl__sink_init_mem(&sj->sink);
  pl__sink_write(&sj->sink, head, (size_t)n);
  sj->rc = pl__capture_run(sj->cap, &sj->sink);
  if (!sj->rc) {
    pl__sink_write(&sj->sink, "}}", 2);
    sj->rc = pl__sink_finish(&sj->sink);
  }
}

static void sampling_done(pl__cdp *c, void *arg) {
  sampling_job *sj = arg;
  pl__capture_free(sj->cap); /* before answering: see snapshot_done */
  sj->cap = NULL;
  if (sj->rc) {
    char m[160];
    snprintf(m, sizeof(m), "the sampling profile failed: %s", strerror(-sj->rc));
    pl__cdp_reply_error(c, sj->id, PL__CDP_SERVER_ERROR, m, NULL);
  } else {
    pl__cdp_send_raw(c, sj->sink.buf.data, sj->sink.buf.len);
  }
  pl__sink_free(&sj->sink);
  free(sj);
}

static void on_stop_sampling(pl__cdp *c, json_int_t id, json_t *params) {
  (void)params;
  if (!c->sampling_since_ns) {
    pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR, "Sampling heap profiler was not started.",
                        NULL);
    return;
  }
  pl__capture *cap = claim_heap(c, id, PL_HEAP_FORMAT_HEAPPROFILE);
  if (!cap) return;
  pl__capture_heap_since(cap, c->sampling_since_ns);
  c->sampling_since_ns = 0;
  sampling_job *sj = calloc(1, sizeof(*sj));
  if (sj) {
    sj->id = id;
    sj->cap = cap;
  }
  int rc = sj ? pl__cdp_job(c, sampling_work, sampling_done, sj) : -ENOMEM;
  if (rc) {
    pl__capture_free(cap);
    free(sj);
    pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR, "cannot start the profile's writer",
                        strerror(-rc));
  }
}

/* ---- the rest ----------------------------------------------------------- */

static void warm_work(void *arg) {
  (void)arg;
  (void)pl__capture_heap_warm(); /* a failure is the next snapshot's to meet */
}

static void warm_done(pl__cdp *c, void *arg) {
  (void)arg;
  c->warming = 0;
}

/* DevTools enables the HeapProfiler when its Memory panel opens, well
 * before a snapshot is asked for: what a first snapshot needs is readied
 * then, on a thread of its own (pl__capture_heap_warm: the samples memory,
 * the names of the recorded stacks), so it waits for neither fresh pages
 * nor symbol tables. */
static void on_enable(pl__cdp *c, json_int_t id, json_t *params) {
  (void)params;
  pl__cdp_reply_empty(c, id);
  if (c->warming || c->snapshot_running) return;
  if (pl__cdp_job(c, warm_work, warm_done, NULL) == 0) c->warming = 1;
}

static void on_ok(pl__cdp *c, json_int_t id, json_t *params) {
  (void)params;
  pl__cdp_reply_empty(c, id);
}

static void on_disable(pl__cdp *c, json_int_t id, json_t *params) {
  (void)params;
  c->sampling_since_ns = 0;
  pl__cdp_reply_empty(c, id);
}

static void on_object_id(pl__cdp *c, json_int_t id, json_t *params) {
  (void)params;
  pl__cdp_reply_error(c, id, PL__CDP_SERVER_ERROR,
                      "a C process has no JavaScript objects to inspect: snapshot nodes are "
                      "allocations, named after the function that made them",
                      NULL);
}

pl__cdp_handler pl__cdp_heap_method(const char *m) {
  if (!strcmp(m, "enable")) return on_enable;
  if (!strcmp(m, "disable")) return on_disable;
  if (!strcmp(m, "collectGarbage")) return on_ok; /* nothing to collect */
  if (!strcmp(m, "takeHeapSnapshot")) return on_take_snapshot;
  if (!strcmp(m, "startSampling")) return on_start_sampling;
  if (!strcmp(m, "stopSampling")) return on_stop_sampling;
  if (!strcmp(m, "getHeapObjectId") || !strcmp(m, "getObjectByHeapObjectId")) return on_object_id;
  return NULL;
}
