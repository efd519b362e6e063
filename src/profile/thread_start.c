/* pthread_create, wrapped so that a thread born during a cpu-mode profile
 * is sampled from its first instruction.
 *
 * Why: a cpu-mode profile arms one CPU-clock timer per thread, and only for
 * threads that exist when it is armed. The collector rescans
 * /proc/self/task every 100 ms, but a thread born in between would lose up
 * to 100 ms of CPU time. This definition interposes glibc's pthread_create
 * for the program and the libraries it loads (it is in the executable that
 * links libproflab); outside a cpu-mode profile it only forwards. */
#include "profile/thread_start.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static _Atomic int watching;

void pl__thread_start_watch(int on) { atomic_store(&watching, on); }

typedef struct thread_start {
  void *(*fn)(void *);
  void *arg;
} thread_start;

static void *trampoline(void *p) {
  thread_start ts = *(thread_start *)p;
  free(p);
  pl__cpu_profiler_thread_started();
  return ts.fn(ts.arg);
}

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
  static _Atomic(pthread_create_fn) real;
  pthread_create_fn f = atomic_load(&real);
  if (!f) {
    f = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
    if (!f) return EAGAIN;
    atomic_store(&real, f);
  }
  if (!atomic_load_explicit(&watching, memory_order_relaxed)) return f(t, attr, fn, arg);
  thread_start *ts = malloc(sizeof(*ts));
  if (!ts) return f(t, attr, fn, arg); /* the rescan still finds it */
  ts->fn = fn;
  ts->arg = arg;
  int rc = f(t, attr, trampoline, ts);
  if (rc) free(ts);
  return rc;
}
