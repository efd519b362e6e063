/* libFuzzer target: the inspector's CDP dispatch (src/inspector/cdp*.c).
 * Each input is one WebSocket text message to a fresh session, against a
 * fake transport defined here (as tests/inspector/test-inspector-cdp.c
 * does); then the session closes and posted work runs. Without the heap
 * tracker linked, heap captures answer their error; Profiler.start really
 * starts (and the close really stops) the CPU profiler. */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inspector/cdp.h"
#include "inspector/session.h"
#include "profile/thread_start.h"

/* The profiler's pthread_create wrapper (thread_start.c) is left out of
 * this build: with clang's static sanitizer runtime it would hide thread
 * creation from ASan. New threads need no CPU timers here. */
void pl__thread_start_watch(int on) { (void)on; }

struct pl__insp_session {
  int unused;
};

static size_t sent_bytes;

int pl__insp_send(pl__insp_session *s, const char *msg, size_t len) {
  (void)s;
  (void)msg;
  sent_bytes += len;
  return 0;
}

/* Never written at once: the writer hands every message over (posted). */
int pl__insp_write_now(pl__insp_session *s, const char *msg, size_t len) {
  (void)s;
  (void)msg;
  (void)len;
  return -EAGAIN;
}

size_t pl__insp_queued(pl__insp_session *s) {
  (void)s;
  return 0;
}

void pl__insp_close(pl__insp_session *s, uint16_t code, const char *reason) {
  (void)s;
  (void)code;
  (void)reason;
}

uv_loop_t *pl__insp_loop(pl__insp_session *s) {
  (void)s;
  return NULL;
}

typedef struct post {
  void (*fn)(void *);
  void *arg;
  struct post *next;
} post;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static post *head, *tail;

int pl__insp_post(void (*fn)(void *arg), void *arg) {
  post *p = malloc(sizeof(*p));
  if (!p) return -ENOMEM;
  p->fn = fn;
  p->arg = arg;
  p->next = NULL;
  pthread_mutex_lock(&mu);
  if (tail)
    tail->next = p;
  else
    head = p;
  tail = p;
  pthread_mutex_unlock(&mu);
  return 0;
}

/* Run posted work until the session's jobs are done and nothing is left. */
static void pump(pl__cdp *c) {
  for (;;) {
    pthread_mutex_lock(&mu);
    post *p = head;
    if (p) {
      head = p->next;
      if (!head) tail = NULL;
    }
    pthread_mutex_unlock(&mu);
    if (p) {
      p->fn(p->arg);
      free(p);
      continue;
    }
    if (!c->jobs) return;
    usleep(50);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static pl__insp_session s;
  static pl__insp_target t = {.id = "00000000-0000-4000-8000-000000000000", .title = "fuzz"};
  t.wall_tid = (uint32_t)gettid();
  pl__cdp *c = pl__cdp_session_open(&s, &t);
  if (!c) return 0;
  pl__cdp_session_message(c, (const char *)data, size);
  pl__cdp_session_writable(c);
  pump(c); /* the answers of work done off the thread (a profile's stop) */
  pl__cdp_session_closed(c);
  return 0;
}
