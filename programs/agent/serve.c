/* The agent thread and its loop (see serve.h). */
#include "serve.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "proflab/heap.h"
#include "proflab/lab.h"
#include "proflab/log.h"
#include "proflab/server.h"
#include "profile/threads.h"

static struct {
  uv_loop_t loop;
  uv_async_t stop;
  pl_server *server;
  pl_lab *lab;
  pthread_t thread;
  int running; /* the thread was started by this process and not joined */
  pid_t pid;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int finished; /* the loop returned */
  /* fork: the thread parks (holding no lock of ours, MHD's or libuv's)
   * while another thread forks; see agent_serve_fork_prepare. */
  uv_async_t park;
  int want_park; /* forks in progress */
  int parked;
  int listen_fd;
} S = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .listen_fd = -1};

int agent_serve_running(void) { return S.running && S.pid == getpid(); }

static void on_drained(pl_server *srv, void *arg) {
  (void)arg;
  pl_server_free(srv);
  S.server = NULL;
  pl_lab_close(S.lab);
  uv_close((uv_handle_t *)&S.stop, NULL);
  uv_close((uv_handle_t *)&S.park, NULL);
}

/* A thread is forking: wait here until it is done. */
static void on_park(uv_async_t *a) {
  (void)a;
  pthread_mutex_lock(&S.lock);
  if (S.want_park) {
    S.parked = 1;
    pthread_cond_broadcast(&S.cond);
    while (S.want_park) pthread_cond_wait(&S.cond, &S.lock);
    S.parked = 0;
  }
  pthread_mutex_unlock(&S.lock);
}

static void deadline_in(struct timespec *dl, unsigned ms) {
  clock_gettime(CLOCK_REALTIME, dl);
  dl->tv_sec += ms / 1000;
  dl->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (dl->tv_nsec >= 1000000000L) {
    dl->tv_sec++;
    dl->tv_nsec -= 1000000000L;
  }
}

int agent_serve_fork_prepare(unsigned timeout_ms) {
  if (!agent_serve_running() || pthread_equal(pthread_self(), S.thread)) return 1;
  pthread_mutex_lock(&S.lock);
  S.want_park++;
  uv_async_send(&S.park);
  struct timespec dl;
  deadline_in(&dl, timeout_ms);
  int rc = 0;
  while (!S.parked && !S.finished && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&S.cond, &S.lock, &dl);
  int ok = S.parked;
  pthread_mutex_unlock(&S.lock);
  return ok;
}

void agent_serve_fork_parent(void) {
  if (!agent_serve_running() || pthread_equal(pthread_self(), S.thread)) return;
  pthread_mutex_lock(&S.lock);
  if (S.want_park > 0) S.want_park--;
  pthread_cond_broadcast(&S.cond);
  pthread_mutex_unlock(&S.lock);
}

static void on_stop(uv_async_t *a) {
  (void)a;
  pl_lab_shutdown(S.lab); /* a running profile ends now and is still written */
  if (S.server)
    pl_server_shutdown(S.server, on_drained, NULL);
  else
    on_drained(NULL, NULL);
}

static void *agent_main(void *arg) {
  (void)arg;
  pl_heap_untracked_begin(); /* this thread's allocations are the agent's, not the program's */
  uv_run(&S.loop, UV_RUN_DEFAULT);
  pl_log_flush();
  pthread_mutex_lock(&S.lock);
  S.finished = 1;
  pthread_cond_broadcast(&S.cond);
  pthread_mutex_unlock(&S.lock);
  return NULL;
}

int agent_serve_start(const agent_settings *s, const char *unix_path, uint32_t main_tid,
                      char *where, size_t wn, char *err, size_t errlen) {
  int rc = uv_loop_init(&S.loop);
  if (rc) {
    snprintf(err, errlen, "cannot create the agent's loop: %s", uv_strerror(rc));
    return rc;
  }
  pl_server_config sc;
  pl_server_config_init(&sc);
  const char *path = unix_path ? unix_path : s->unix_path;
  if (s->tcp) {
    sc.host = s->host;
    sc.port = (uint16_t)s->port;
  } else {
    sc.unix_path = path;
  }
  sc.task = s->task;
  sc.log_requests = 0;
  sc.leave_sigpipe = 1; /* SIGPIPE is the program's */
  sc.drain_timeout_ms = 1000;
  sc.max_connections = 64;
  pl_lab_config lc = s->lab;
  lc.profile_tid = main_tid;
  lc.profile_all_threads = 1; /* wall mode: every thread of the program */
  lc.unix_socket_only = !s->tcp;
  S.server = NULL;
  S.lab = NULL;
  if ((rc = pl_server_new(&S.server, &S.loop, &sc)) != 0) {
    snprintf(err, errlen, "cannot create the agent's server: %s", strerror(-rc));
    goto fail;
  }
  if ((rc = pl_lab_new(&S.lab, &S.loop, &lc, NULL)) != 0) {
    snprintf(err, errlen, "artifact directory %s: %s", lc.artifact_dir, strerror(-rc));
    goto fail;
  }
  if ((rc = pl_lab_mount(S.lab, S.server)) != 0) {
    snprintf(err, errlen, "cannot mount the lab: %s", strerror(-rc));
    goto fail;
  }
  if ((rc = pl_server_start(S.server)) != 0) {
    if (s->tcp)
      snprintf(err, errlen, "cannot listen on %s:%u: %s", s->host, s->port, strerror(-rc));
    else
      snprintf(err, errlen, "cannot listen on unix:%s: %s", path, strerror(-rc));
    goto fail;
  }
  if ((rc = uv_async_init(&S.loop, &S.stop, on_stop)) != 0) {
    snprintf(err, errlen, "cannot create the agent's stop handle: %s", uv_strerror(rc));
    goto fail;
  }
  if ((rc = uv_async_init(&S.loop, &S.park, on_park)) != 0) {
    snprintf(err, errlen, "cannot create the agent's fork handle: %s", uv_strerror(rc));
    uv_close((uv_handle_t *)&S.stop, NULL);
    goto fail;
  }
  S.listen_fd = pl_server_listen_fd(S.server);
  if (s->tcp)
    snprintf(where, wn, "http://%s%s%s:%u", strchr(s->host, ':') ? "[" : "", s->host,
             strchr(s->host, ':') ? "]" : "", (unsigned)pl_server_port(S.server));
  else
    snprintf(where, wn, "unix:%s", path);

  /* Every signal blocked in the thread (and in the threads it starts:
   * libuv's pool, the profiler's): the program's signals, its SIGTERM read
   * by signalfd, never land here. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  S.finished = 0;
  rc = pthread_create(&S.thread, NULL, agent_main, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc) {
    snprintf(err, errlen, "cannot start the agent's thread: %s", strerror(rc));
    uv_close((uv_handle_t *)&S.stop, NULL);
    uv_close((uv_handle_t *)&S.park, NULL);
    rc = -rc;
    goto fail;
  }
  pthread_setname_np(S.thread, PL__THREAD_NAME_PREFIX "agent");
  S.running = 1;
  S.pid = getpid();
  return 0;

fail:
  /* Close what exists and let the loop finish closing it, on this thread. */
  if (S.server) pl_server_free(S.server);
  S.server = NULL;
  if (S.lab) pl_lab_close(S.lab);
  uv_run(&S.loop, UV_RUN_DEFAULT);
  if (S.lab) pl_lab_free(S.lab);
  S.lab = NULL;
  uv_loop_close(&S.loop);
  return rc < 0 ? rc : -EIO;
}

void agent_serve_stop(unsigned timeout_ms) {
  if (!agent_serve_running()) return;
  uv_async_send(&S.stop);
  struct timespec dl;
  deadline_in(&dl, timeout_ms);
  pthread_mutex_lock(&S.lock);
  int rc = 0;
  while (!S.finished && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&S.cond, &S.lock, &dl);
  int finished = S.finished;
  pthread_mutex_unlock(&S.lock);
  if (!finished) return; /* busy writing: the process's exit takes the thread */
  pthread_join(S.thread, NULL);
  S.running = 0;
  pl_lab_free(S.lab);
  S.lab = NULL;
  uv_loop_close(&S.loop);
}

int agent_serve_forget(void) {
  int had = S.running;
  if (S.listen_fd >= 0) close(S.listen_fd); /* the parent's listener is not the child's */
  S.listen_fd = -1;
  S.want_park = 0;
  S.parked = 0;
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
  memcpy(&S.lock, &fresh, sizeof(fresh));
  memcpy(&S.cond, &fresh_cond, sizeof(fresh_cond));
  S.running = 0;
  S.finished = 0;
  S.server = NULL;
  S.lab = NULL;
  memset(&S.loop, 0, sizeof(S.loop));
  return had;
}
