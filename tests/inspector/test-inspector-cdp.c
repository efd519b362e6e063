/* The inspector's protocol side (src/inspector/cdp*.c) against a fake
 * transport: this file defines session.h's pl__insp_* half, records what
 * the protocol side sends, and runs posted work on the test's thread.
 * Real clients (chrome-remote-interface, DevTools) are in
 * tests/integration/inspector*.test.mjs. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "capture/capture.h"
#include "inspector/session.h"
#include "proflab/heap.h"
#include "proflab/profiler.h"

/* ---- the fake transport ------------------------------------------------ */

struct pl__insp_session {
  int unused;
};

#define MAX_MSGS 4096
static char *sent[MAX_MSGS];
static size_t nsent;
static size_t fake_queued; /* what pl__insp_queued answers */
static int close_code;

typedef struct post {
  void (*fn)(void *);
  void *arg;
  struct post *next;
} post;
static pthread_mutex_t post_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t post_cv = PTHREAD_COND_INITIALIZER;
static post *post_head, *post_tail;

/* sent[] grows under sent_mu: pl__insp_write_now runs on the writer's
 * thread. An entry below nsent never changes. */
static pthread_mutex_t sent_mu = PTHREAD_MUTEX_INITIALIZER;
/* pl__insp_write_now: 0 refuses every message (-EAGAIN: the writer posts
 * it), 1 takes every one, 2 every other one. */
static int fake_direct;
static unsigned direct_calls, direct_taken;

static void record(const char *msg, size_t len) {
  pthread_mutex_lock(&sent_mu);
  if (nsent >= MAX_MSGS || !(sent[nsent] = strndup(msg, len))) abort();
  nsent++;
  pthread_mutex_unlock(&sent_mu);
}

static size_t sent_count(void) {
  pthread_mutex_lock(&sent_mu);
  size_t n = nsent;
  pthread_mutex_unlock(&sent_mu);
  return n;
}

int pl__insp_send(pl__insp_session *s, const char *msg, size_t len) {
  (void)s;
  record(msg, len);
  return 0;
}

int pl__insp_write_now(pl__insp_session *s, const char *msg, size_t len) {
  (void)s;
  pthread_mutex_lock(&sent_mu);
  direct_calls++;
  int take = fake_direct == 1 || (fake_direct == 2 && direct_calls % 2);
  direct_taken += take;
  pthread_mutex_unlock(&sent_mu);
  if (!take) return -EAGAIN;
  record(msg, len);
  return 0;
}

size_t pl__insp_queued(pl__insp_session *s) {
  (void)s;
  return fake_queued;
}

void pl__insp_close(pl__insp_session *s, uint16_t code, const char *reason) {
  (void)s;
  (void)reason;
  close_code = code;
}

uv_loop_t *pl__insp_loop(pl__insp_session *s) {
  (void)s;
  return NULL;
}

int pl__insp_post(void (*fn)(void *arg), void *arg) {
  post *p = malloc(sizeof(*p));
  if (!p) return -ENOMEM;
  p->fn = fn;
  p->arg = arg;
  p->next = NULL;
  pthread_mutex_lock(&post_mu);
  if (post_tail)
    post_tail->next = p;
  else
    post_head = p;
  post_tail = p;
  pthread_cond_signal(&post_cv);
  pthread_mutex_unlock(&post_mu);
  return 0;
}

/* Run posted work (as the inspector thread would) until pred() holds or
 * timeout_ms passes. Returns pred(). */
static int pump_until(int (*pred)(void), int timeout_ms) {
  struct timespec end;
  clock_gettime(CLOCK_REALTIME, &end);
  end.tv_sec += timeout_ms / 1000;
  end.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (end.tv_nsec >= 1000000000L) {
    end.tv_sec++;
    end.tv_nsec -= 1000000000L;
  }
  for (;;) {
    if (pred()) return 1;
    pthread_mutex_lock(&post_mu);
    while (!post_head) {
      if (pthread_cond_timedwait(&post_cv, &post_mu, &end) == ETIMEDOUT) {
        pthread_mutex_unlock(&post_mu);
        return pred();
      }
    }
    post *p = post_head;
    post_head = p->next;
    if (!post_head) post_tail = NULL;
    pthread_mutex_unlock(&post_mu);
    p->fn(p->arg);
    free(p);
  }
}

static void clear_sent(void) {
  for (size_t i = 0; i < nsent; i++) free(sent[i]);
  nsent = 0;
  close_code = 0;
}

/* ---- helpers ------------------------------------------------------------ */

static pl__insp_session fake_session;
static pl__insp_target target = {
    .id = "0f4c8a2e-1d2b-4c5d-8e9f-0a1b2c3d4e5f", .title = "test-inspector-cdp", .task = "test"};

static void *open_session(void) {
  target.wall_tid = (uint32_t)gettid();
  void *c = pl__cdp_session_open(&fake_session, &target);
  assert_non_null(c);
  return c;
}

static void request(void *c, const char *msg) { pl__cdp_session_message(c, msg, strlen(msg)); }

/* The answer to id among what was sent (parsed; the caller decrefs), or NULL. */
static json_t *answer(json_int_t id) {
  size_t n = sent_count();
  for (size_t i = 0; i < n; i++) {
    json_t *m = json_loads(sent[i], 0, NULL);
    assert_non_null(m);
    json_t *jid = json_object_get(m, "id");
    if (json_is_integer(jid) && json_integer_value(jid) == id) return m;
    json_decref(m);
  }
  return NULL;
}

static json_int_t waiting_for;
static int answered(void) {
  json_t *m = answer(waiting_for);
  json_decref(m);
  return m != NULL;
}

static json_t *wait_answer(json_int_t id, int timeout_ms) {
  waiting_for = id;
  assert_true(pump_until(answered, timeout_ms));
  return answer(id);
}

static int error_code(json_t *m) {
  json_t *e = json_object_get(m, "error");
  return e ? (int)json_integer_value(json_object_get(e, "code")) : 0;
}

static const char *error_message(json_t *m) {
  return json_string_value(json_object_get(json_object_get(m, "error"), "message"));
}

/* ---- tests ------------------------------------------------------------- */

static void test_dispatch_errors(void **state) {
  (void)state;
  clear_sent();
  void *c = open_session();
  request(c, "{\"id\":1,\"method\":\"Debugger.enable\",\"params\":{}}");
  json_t *m = answer(1);
  assert_int_equal(error_code(m), -32601);
  assert_string_equal(error_message(m), "'Debugger.enable' wasn't found");
  json_decref(m);
  request(c, "{\"id\":2,\"method\":\"Profiler.setSamplingInterval\",\"params\":{}}");
  m = answer(2);
  assert_int_equal(error_code(m), -32602);
  json_decref(m);
  request(c,
          "{\"id\":3,\"method\":\"Profiler.setSamplingInterval\",\"params\":{\"interval\":\"x\"}}");
  m = answer(3);
  assert_int_equal(error_code(m), -32602);
  json_decref(m);
  request(c, "{\"id\":4,\"method\":\"Profiler.stop\"}");
  m = answer(4);
  assert_int_equal(error_code(m), -32000);
  json_decref(m);
  request(c,
          "{\"id\":5,\"method\":\"HeapProfiler.getHeapObjectId\",\"params\":{\"objectId\":\"1\"}}");
  m = answer(5);
  assert_int_equal(error_code(m), -32000);
  assert_non_null(strstr(error_message(m), "no JavaScript objects"));
  json_decref(m);
  request(c, "{\"id\":6,\"method\":7}");
  m = answer(6);
  assert_int_equal(error_code(m), -32600);
  json_decref(m);
  assert_int_equal(close_code, 0);
  request(c, "not json");
  assert_int_equal(close_code, 1003); /* the peer does not speak CDP */
  close_code = 0;
  request(c, "{\"method\":\"Runtime.enable\"}");
  assert_int_equal(close_code, 1003); /* a request without an id */
  pl__cdp_session_closed(c);
  clear_sent();
}

static void test_runtime(void **state) {
  (void)state;
  clear_sent();
  void *c = open_session();
  request(c, "{\"id\":1,\"method\":\"Runtime.enable\",\"params\":{}}");
  assert_int_equal(nsent, 2);
  json_t *ev = json_loads(sent[0], 0, NULL); /* the context comes before the answer */
  assert_string_equal(json_string_value(json_object_get(ev, "method")),
                      "Runtime.executionContextCreated");
  json_t *ctx = json_object_get(json_object_get(ev, "params"), "context");
  assert_int_equal(json_integer_value(json_object_get(ctx, "id")), 1);
  assert_true(json_is_true(json_object_get(json_object_get(ctx, "auxData"), "isDefault")));
  json_decref(ev);
  void *volatile keep = malloc(3 << 20); /* live bytes the tracker sees */
  memset(keep, 1, 3 << 20);
  request(c, "{\"id\":2,\"method\":\"Runtime.getHeapUsage\"}");
  json_t *m = answer(2);
  json_t *r = json_object_get(m, "result");
  double used = json_number_value(json_object_get(r, "usedSize"));
  double total = json_number_value(json_object_get(r, "totalSize"));
  assert_true(used >= 1 << 20);
  assert_true(total >= used);
  json_decref(m);
  free(keep);
  request(c, "{\"id\":3,\"method\":\"Runtime.getIsolateId\"}");
  m = answer(3);
  assert_non_null(
      strstr(json_string_value(json_object_get(json_object_get(m, "result"), "id")), target.id));
  json_decref(m);
  pl__cdp_session_closed(c);
  clear_sent();
}

static __attribute__((noipa)) double cdp_test_spin(int ms) {
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  volatile double x = 1;
  do {
    for (int i = 0; i < 10000; i++) x = x * 1.0000001 + 1e-9;
    clock_gettime(CLOCK_MONOTONIC, &b);
  } while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < ms);
  return x;
}

static void test_profiler(void **state) {
  (void)state;
  clear_sent();
  void *c = open_session();
  request(c, "{\"id\":1,\"method\":\"Profiler.enable\"}");
  request(c,
          "{\"id\":2,\"method\":\"Profiler.setSamplingInterval\",\"params\":{\"interval\":100}}");
  request(c, "{\"id\":3,\"method\":\"Profiler.start\"}");
  json_t *m = answer(3);
  assert_non_null(json_object_get(m, "result"));
  json_decref(m);
  /* while it records, the lab cannot start one, and says who holds it */
  pl__capture *other;
  pl__capture_holder h;
  assert_int_equal(pl__capture_new(&other, PL__CAPTURE_CPU, 0, "127.0.0.1", &h), -EBUSY);
  assert_non_null(strstr(h.who, "DevTools session"));
  request(c, "{\"id\":4,\"method\":\"Profiler.setSamplingInterval\",\"params\":{\"interval\":50}}");
  m = answer(4);
  assert_int_equal(error_code(m), -32000); /* not while profiling */
  json_decref(m);
  cdp_test_spin(300);
  request(c, "{\"id\":5,\"method\":\"Profiler.stop\"}");
  m = wait_answer(5, 20000);
  json_t *p = json_object_get(json_object_get(m, "result"), "profile");
  assert_non_null(p);
  json_t *nodes = json_object_get(p, "nodes");
  assert_true(json_array_size(nodes) > 1);
  assert_string_equal(json_string_value(json_object_get(
                          json_object_get(json_array_get(nodes, 0), "callFrame"), "functionName")),
                      "(root)");
  size_t nsamples = json_array_size(json_object_get(p, "samples"));
  assert_true(nsamples > 100); /* 300 ms at 10 kHz */
  assert_int_equal(nsamples, json_array_size(json_object_get(p, "timeDeltas")));
  int found = 0;
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    const char *fn =
        json_string_value(json_object_get(json_object_get(n, "callFrame"), "functionName"));
    if (fn && !strcmp(fn, "cdp_test_spin")) found = 1;
  }
  assert_true(found);
  json_decref(m);
  /* the slot is free again */
  assert_int_equal(pl__capture_new(&other, PL__CAPTURE_CPU, 0, "127.0.0.1", &h), 0);
  request(c, "{\"id\":6,\"method\":\"Profiler.start\"}");
  m = answer(6);
  assert_int_equal(error_code(m), -32000);
  assert_non_null(strstr(error_message(m), "127.0.0.1"));
  json_decref(m);
  pl__capture_free(other);
  /* a session that goes away while recording releases the profiler */
  request(c, "{\"id\":7,\"method\":\"Profiler.start\"}");
  m = answer(7);
  assert_int_equal(error_code(m), 0);
  json_decref(m);
  pl__cdp_session_closed(c);
  assert_int_equal(pl_cpu_profiler_running(), 0);
  assert_int_equal(pl__capture_holder_of(PL__CAPTURE_CPU, &h), 0);
  clear_sent();
}

static void *volatile leak_keep[64];
static __attribute__((noipa)) void cdp_test_leak(int n) {
  for (int i = 0; i < n; i++) {
    leak_keep[i] = malloc(64 << 10);
    memset(leak_keep[i], 2, 64 << 10);
  }
}

/* Many small live blocks: a snapshot of several MB, more than the writer
 * may post ahead of a paused client (1 MiB), so the pause is seen. */
#define MANY 80000
static void **many;
static __attribute__((noipa)) void cdp_test_many(void) {
  many = calloc(MANY, sizeof(*many));
  assert_non_null(many);
  for (int i = 0; i < MANY; i++) {
    many[i] = malloc(16);
    assert_non_null(many[i]);
  }
}

static void free_many(void) {
  for (int i = 0; i < MANY; i++) free(many[i]);
  free(many);
  many = NULL;
}

static int snapshot_answered(void) {
  json_t *m = answer(waiting_for);
  json_decref(m);
  return m != NULL;
}

/* The snapshot of the messages sent so far: progress events first, then
 * the chunks, the answer to id last; the chunks joined make a snapshot
 * naming cdp_test_leak. */
static void check_stream(json_int_t id) {
  size_t n = sent_count();
  pl_buf all;
  pl_buf_init(&all);
  int progress = 0, finished = 0;
  for (size_t k = 0; k < n; k++) {
    json_t *m = json_loads(sent[k], 0, NULL);
    const char *method = json_string_value(json_object_get(m, "method"));
    if (method && !strcmp(method, "HeapProfiler.reportHeapSnapshotProgress")) {
      progress++;
      if (json_is_true(json_object_get(json_object_get(m, "params"), "finished"))) finished = 1;
    } else if (method && !strcmp(method, "HeapProfiler.addHeapSnapshotChunk")) {
      assert_true(finished);
      pl_buf_puts(&all, json_string_value(json_object_get(json_object_get(m, "params"), "chunk")));
    } else {
      assert_int_equal(k, n - 1);
      assert_int_equal(json_integer_value(json_object_get(m, "id")), id);
    }
    json_decref(m);
  }
  assert_int_equal(progress, 2);
  json_t *snap = json_loadb(all.data, all.len, 0, NULL);
  assert_non_null(snap);
  json_t *strings = json_object_get(snap, "strings");
  int found = 0;
  size_t i;
  json_t *s;
  json_array_foreach(strings, i, s) if (!strcmp(json_string_value(s), "cdp_test_leak")) found = 1;
  assert_true(found);
  json_decref(snap);
  pl_buf_free(&all);
}

static void test_snapshot(void **state) {
  (void)state;
  clear_sent();
  fake_direct = 0;
  void *c = open_session();
  cdp_test_leak(32);
  cdp_test_many();
  fake_queued = PL__INSP_HIGH_WATER + 1; /* a client that does not read */
  request(c,
          "{\"id\":1,\"method\":\"HeapProfiler.takeHeapSnapshot\",\"params\":{\"reportProgress\":"
          "true}}");
  waiting_for = 1;
  assert_false(pump_until(snapshot_answered, 1500)); /* paused: no answer yet */
  size_t paused_at = nsent;
  assert_true(paused_at >= 1);
  fake_queued = 0;
  pl__cdp_session_writable(c); /* the client caught up */
  assert_true(pump_until(snapshot_answered, 20000));
  assert_true(nsent > paused_at);
  check_stream(1);
  clear_sent();

  /* messages written at once from the writer's thread where the transport
   * takes them, posted where it does not: the same stream, in order */
  for (fake_direct = 1; fake_direct <= 2; fake_direct++) {
    direct_calls = direct_taken = 0;
    json_int_t id = 10 + fake_direct;
    char req[128];
    snprintf(req, sizeof(req),
             "{\"id\":%d,\"method\":\"HeapProfiler.takeHeapSnapshot\",\"params\":{"
             "\"reportProgress\":true}}",
             (int)id);
    request(c, req);
    /* nothing pumped for a while: posted messages wait, and what the
     * writer sends after them must not pass them */
    if (fake_direct == 2) usleep(200 * 1000);
    waiting_for = id;
    assert_true(pump_until(snapshot_answered, 20000));
    check_stream(id);
    if (fake_direct == 1)
      assert_int_equal(direct_taken, sent_count() - 1); /* all but the answer */
    else                                                /* some of each */
      assert_true(direct_taken >= 1 && direct_taken < sent_count() - 1);
    clear_sent();
  }
  fake_direct = 0;

  /* a session that vanishes mid-stream: the writer stops, the slot frees */
  fake_queued = PL__INSP_HIGH_WATER + 1;
  request(c, "{\"id\":2,\"method\":\"HeapProfiler.takeHeapSnapshot\",\"params\":{}}");
  waiting_for = 2;
  pump_until(snapshot_answered, 300);
  pl__cdp_session_closed(c);
  pl__capture_holder h;
  for (int k = 0; k < 200 && pl__capture_holder_of(PL__CAPTURE_HEAP, &h); k++)
    pump_until(snapshot_answered, 20);
  assert_int_equal(pl__capture_holder_of(PL__CAPTURE_HEAP, &h), 0);
  fake_queued = 0;
  for (int k = 0; k < 32; k++) free(leak_keep[k]);
  free_many();
  clear_sent();
}

static void test_sampling(void **state) {
  (void)state;
  clear_sent();
  void *c = open_session();
  void *before = malloc(256 << 10); /* made before startSampling: not in the profile */
  memset(before, 3, 256 << 10);
  request(c, "{\"id\":1,\"method\":\"HeapProfiler.stopSampling\"}");
  json_t *m = answer(1);
  assert_int_equal(error_code(m), -32000);
  json_decref(m);
  request(c,
          "{\"id\":2,\"method\":\"HeapProfiler.startSampling\",\"params\":{\"samplingInterval\":"
          "16384}}");
  cdp_test_leak(8);
  request(c, "{\"id\":3,\"method\":\"HeapProfiler.stopSampling\"}");
  m = wait_answer(3, 20000);
  json_t *p = json_object_get(json_object_get(m, "result"), "profile");
  assert_non_null(json_object_get(p, "head"));
  json_t *samples = json_object_get(p, "samples");
  int leaks = 0, befores = 0;
  size_t i;
  json_t *x;
  json_array_foreach(samples, i, x) { /* T = 1: each live allocation since start, exactly */
    json_int_t size = json_integer_value(json_object_get(x, "size"));
    leaks += size == 64 << 10;
    befores += size == 256 << 10;
  }
  assert_int_equal(leaks, 8);
  assert_int_equal(befores, 0);
  json_decref(m);
  for (int k = 0; k < 8; k++) free(leak_keep[k]);
  free(before);
  pl__cdp_session_closed(c);
  clear_sent();
}

int main(void) {
  pl_heap_options o = {.sample_bytes = 1};
  if (pl_heap_init(&o) != 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dispatch_errors), cmocka_unit_test(test_runtime),
      cmocka_unit_test(test_profiler),        cmocka_unit_test(test_snapshot),
      cmocka_unit_test(test_sampling),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
