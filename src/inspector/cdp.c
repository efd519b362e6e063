/* The inspector's protocol side (session.h's pl__cdp_*): a CDP session's
 * state, message dispatch to the domains, answers and errors, and work run
 * off the inspector thread. */
#include "inspector/cdp.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "format/heap_writers.h"

static _Atomic unsigned session_numbers;
/* Guards closed/mute/jobs and the free: a job whose inspector is stopping
 * finishes on its worker thread, maybe while the inspector thread closes
 * the session. */
static pthread_mutex_t life_lock = PTHREAD_MUTEX_INITIALIZER;

void *pl__cdp_session_open(pl__insp_session *s, const pl__insp_target *t) {
  pl__cdp *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->s = s;
  c->target = t;
  c->number = atomic_fetch_add(&session_numbers, 1) + 1;
  snprintf(c->who, sizeof(c->who), "DevTools session %u (inspector)", c->number);
  c->interval_us = 1000; /* V8's default */
  return c;
}

/* With life_lock held: free c once the transport and every job are done. */
static int maybe_free_locked(pl__cdp *c) {
  if (!c->closed || c->jobs) return 0;
  free(c);
  return 1;
}

void pl__cdp_hold(pl__cdp *c) {
  pthread_mutex_lock(&life_lock);
  c->jobs++;
  pthread_mutex_unlock(&life_lock);
}

void pl__cdp_release(pl__cdp *c) {
  pthread_mutex_lock(&life_lock);
  c->jobs--;
  maybe_free_locked(c);
  pthread_mutex_unlock(&life_lock);
}

void pl__cdp_session_closed(void *cdp) {
  pl__cdp *c = cdp;
  pthread_mutex_lock(&life_lock);
  c->closed = 1;
  pl__cdp_profiler_close(c);
  pl__cdp_heap_close(c);
  c->s = NULL;
  maybe_free_locked(c);
  pthread_mutex_unlock(&life_lock);
}

void pl__cdp_session_writable(void *cdp) { pl__cdp_heap_writable(cdp); }

/* ---- answers ------------------------------------------------------------ */

void pl__cdp_send_raw(pl__cdp *c, const char *msg, size_t len) {
  if (!c->closed && !c->mute && c->s) (void)pl__insp_send(c->s, msg, len);
}

void pl__cdp_result_open(pl_buf *b, pl_json *j, json_int_t id) {
  pl_buf_init(b);
  pl_json_init(j, b);
  pl_json_obj_open(j);
  pl_json_kv_int(j, "id", (int64_t)id);
  pl_json_key(j, "result");
  pl_json_obj_open(j);
}

void pl__cdp_send_result(pl__cdp *c, pl_buf *b, pl_json *j) {
  pl_json_obj_close(j);
  pl_json_obj_close(j);
  if (pl_buf_failed(b))
    pl__insp_close(c->s, 1011, "out of memory");
  else
    pl__cdp_send_raw(c, b->data, b->len);
  pl_buf_free(b);
}

void pl__cdp_reply_empty(pl__cdp *c, json_int_t id) {
  char msg[64];
  int n = snprintf(msg, sizeof(msg), "{\"id\":%lld,\"result\":{}}", (long long)id);
  pl__cdp_send_raw(c, msg, (size_t)n);
}

void pl__cdp_reply_error(pl__cdp *c, json_int_t id, int code, const char *msg, const char *data) {
  pl_buf b;
  pl_json j;
  pl_buf_init(&b);
  pl_json_init(&j, &b);
  pl_json_obj_open(&j);
  pl_json_kv_int(&j, "id", (int64_t)id);
  pl_json_key(&j, "error");
  pl_json_obj_open(&j);
  pl_json_kv_int(&j, "code", code);
  pl_json_kv_str(&j, "message", msg);
  if (data) pl_json_kv_str(&j, "data", data);
  pl_json_obj_close(&j);
  pl_json_obj_close(&j);
  if (!pl_buf_failed(&b)) pl__cdp_send_raw(c, b.data, b.len);
  pl_buf_free(&b);
}

void pl__cdp_reply_bad_param(pl__cdp *c, json_int_t id, const char *field, const char *why) {
  char data[160];
  snprintf(data, sizeof(data), "Failed to deserialize params.%s - %s", field, why);
  pl__cdp_reply_error(c, id, PL__CDP_INVALID_PARAMS, "Invalid parameters", data);
}

void pl__cdp_busy_message(const pl__capture_holder *h, const char *what, char *out, size_t n) {
  if (h->until_wall_ns) {
    char until[40];
    pl__format_iso8601(h->until_wall_ns, until, sizeof(until));
    snprintf(out, n, "%s requested by %s is running until %s; one at a time", what, h->who, until);
  } else {
    snprintf(out, n, "%s requested by %s is running; one at a time", what, h->who);
  }
}

/* ---- dispatch ----------------------------------------------------------- */

/* A message that is not a request closes nothing: it is answered with an
 * error when it has an id, and otherwise dropped (as V8 does). Bad JSON
 * closes the session: the peer does not speak CDP. */
void pl__cdp_session_message(void *cdp, const char *msg, size_t len) {
  pl__cdp *c = cdp;
  json_error_t err;
  json_t *req = json_loadb(msg, len, JSON_REJECT_DUPLICATES, &err);
  if (!req || !json_is_object(req)) {
    json_decref(req);
    pl__insp_close(c->s, 1003, "the message is not a JSON object");
    return;
  }
  json_t *jid = json_object_get(req, "id");
  json_t *jmethod = json_object_get(req, "method");
  json_t *params = json_object_get(req, "params");
  if (!json_is_integer(jid)) {
    json_decref(req);
    pl__insp_close(c->s, 1003, "a request without an integer id");
    return;
  }
  json_int_t id = json_integer_value(jid);
  if (!json_is_string(jmethod)) {
    pl__cdp_reply_error(c, id, PL__CDP_INVALID_REQUEST,
                        "Message must have string 'method' property", NULL);
    json_decref(req);
    return;
  }
  if (params && !json_is_object(params)) {
    pl__cdp_reply_error(c, id, PL__CDP_INVALID_PARAMS, "Invalid parameters",
                        "params must be an object");
    json_decref(req);
    return;
  }
  const char *method = json_string_value(jmethod);
  pl__cdp_handler h = NULL;
  if (strncmp(method, "Profiler.", 9) == 0)
    h = pl__cdp_profiler_method(method + 9);
  else if (strncmp(method, "HeapProfiler.", 13) == 0)
    h = pl__cdp_heap_method(method + 13);
  else if (strncmp(method, "Runtime.", 8) == 0)
    h = pl__cdp_runtime_method(method + 8);
  if (h) {
    json_t *empty = params ? NULL : json_object();
    h(c, id, params ? params : empty);
    json_decref(empty);
  } else {
    char m[300];
    snprintf(m, sizeof(m), "'%.256s' wasn't found", method);
    pl__cdp_reply_error(c, id, PL__CDP_METHOD_NOT_FOUND, m, NULL);
  }
  json_decref(req);
}

/* ---- jobs ------------------------------------------------------------- */

typedef struct job {
  pl__cdp *c;
  void (*work)(void *arg);
  void (*done)(pl__cdp *c, void *arg);
  void *arg;
} job;

static void job_done(void *p) {
  job *jb = p;
  pl__cdp *c = jb->c;
  pthread_mutex_lock(&life_lock);
  jb->done(c, jb->arg);
  c->jobs--;
  maybe_free_locked(c);
  pthread_mutex_unlock(&life_lock);
  free(jb);
}

static void *job_main(void *p) {
  job *jb = p;
  jb->work(jb->arg);
  if (pl__insp_post(job_done, jb) != 0) {
    /* The inspector is stopping: finish here, sending nothing (what the
     * job holds, a capture slot above all, must still be released). */
    pthread_mutex_lock(&life_lock);
    jb->c->mute = 1;
    pthread_mutex_unlock(&life_lock);
    job_done(jb);
  }
  return NULL;
}

int pl__cdp_job(pl__cdp *c, void (*work)(void *arg), void (*done)(pl__cdp *c, void *arg),
                void *arg) {
  job *jb = malloc(sizeof(*jb));
  if (!jb) return -ENOMEM;
  jb->c = c;
  jb->work = work;
  jb->done = done;
  jb->arg = arg;
  pthread_attr_t attr;
  pthread_t t;
  pthread_mutex_lock(&life_lock);
  c->jobs++; /* before the thread can finish */
  pthread_mutex_unlock(&life_lock);
  int rc = pthread_attr_init(&attr);
  if (!rc) rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (!rc) rc = pthread_create(&t, &attr, job_main, jb);
  pthread_attr_destroy(&attr);
  if (rc) {
    pthread_mutex_lock(&life_lock);
    c->jobs--;
    pthread_mutex_unlock(&life_lock);
    free(jb);
    return -rc;
  }
  return 0;
}
