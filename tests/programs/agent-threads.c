/* A program with several threads and no proflab code, for the agent's
 * wall-mode tests (tests/integration/agent-threads.test.mjs), built -O2
 * -fomit-frame-pointer and linked with --export-dynamic (its functions are
 * in .dynsym, as Debian's nginx exports its ngx_* functions, so a stripped
 * copy still names them). Threads, each named (pthread_setname_np):
 *   t-busy   threads_test_busy_spin: CPU work, never blocks
 *   t-epoll  threads_test_wait_epoll: epoll_wait on an epoll fd with nothing
 *   t-futex  threads_test_wait_cond: pthread_cond_wait (a futex) forever
 *   t-sleep  threads_test_wait_sleep: nanosleep, 1 s at a time
 *   t-read   threads_test_wait_read: read on a pipe nobody writes
 * Prints "thread NAME TID" for each, then "ready"; runs until killed or
 * for SECONDS. Usage: agent-threads [SECONDS=600] [MODE]
 *   MODE block-sigprof: every thread blocks SIGPROF (the main thread
 *        before it starts the others, which inherit the mask), as a host
 *        that keeps SIGPROF for itself;
 *   MODE own-handler: installs its own SIGPROF handler before "ready", as
 *        a host with its own profiler;
 *   MODE own-handler-later: the same 1.5 s after "ready" (a profile
 *        started at once has the agent's handler replaced under it). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Exported (--export-dynamic): a stripped copy names them from .dynsym. */
uint64_t threads_test_busy_spin(unsigned rounds);
int threads_test_wait_epoll(int ep);
int threads_test_wait_cond(void);
int threads_test_wait_sleep(void);
long threads_test_wait_read(int fd);

static volatile uint64_t sink;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int pipe_fds[2];
static volatile sig_atomic_t own_handler_calls;

static void announce(const char *name) {
  pthread_setname_np(pthread_self(), name);
  printf("thread %s %ld\n", name, (long)syscall(SYS_gettid));
  fflush(stdout);
}

__attribute__((noipa)) uint64_t threads_test_busy_spin(unsigned rounds) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned r = 0; r < rounds; r++)
    for (unsigned i = 0; i < 4096; i++) h = (h ^ (i + r)) * 1099511628211ull;
  return h;
}

__attribute__((noipa)) int threads_test_wait_epoll(int ep) {
  struct epoll_event ev;
  int n = epoll_wait(ep, &ev, 1, -1);
  return n < 0 ? -errno : n; /* EINTR when a signal came */
}

__attribute__((noipa)) int threads_test_wait_cond(void) {
  pthread_mutex_lock(&mu);
  int rc = pthread_cond_wait(&cv, &mu); /* nobody signals it */
  pthread_mutex_unlock(&mu);
  return rc;
}

__attribute__((noipa)) int threads_test_wait_sleep(void) {
  struct timespec ts = {1, 0};
  return nanosleep(&ts, NULL);
}

__attribute__((noipa)) long threads_test_wait_read(int fd) {
  char c;
  return (long)read(fd, &c, 1);
}

static void *busy_main(void *arg) {
  (void)arg;
  announce("t-busy");
  for (;;) sink += threads_test_busy_spin(64);
  return NULL;
}

static void *epoll_main(void *arg) {
  (void)arg;
  announce("t-epoll");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return NULL;
  for (;;) sink += (uint64_t)threads_test_wait_epoll(ep);
  return NULL;
}

static void *futex_main(void *arg) {
  (void)arg;
  announce("t-futex");
  for (;;) sink += (uint64_t)threads_test_wait_cond();
  return NULL;
}

static void *sleep_main(void *arg) {
  (void)arg;
  announce("t-sleep");
  for (;;) sink += (uint64_t)threads_test_wait_sleep();
  return NULL;
}

static void *read_main(void *arg) {
  (void)arg;
  announce("t-read");
  for (;;) sink += (uint64_t)threads_test_wait_read(pipe_fds[0]);
  return NULL;
}

static void own_handler(int sig) {
  (void)sig;
  own_handler_calls++;
}

int main(int argc, char **argv) {
  unsigned seconds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 600;
  const char *mode = argc > 2 ? argv[2] : "";
  if (strcmp(mode, "block-sigprof") == 0) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPROF);
    if (pthread_sigmask(SIG_BLOCK, &s, NULL) != 0) return 1;
  }
  if (pipe(pipe_fds) != 0) return 1;
  void *(*mains[])(void *) = {busy_main, epoll_main, futex_main, sleep_main, read_main};
  for (size_t i = 0; i < sizeof(mains) / sizeof(mains[0]); i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, mains[i], NULL) != 0) return 1;
    pthread_detach(t);
  }
  struct timespec settle = {0, 100000000};
  nanosleep(&settle, NULL); /* the threads announce themselves first */
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = own_handler;
  sigemptyset(&sa.sa_mask);
  if (strcmp(mode, "own-handler") == 0 && sigaction(SIGPROF, &sa, NULL) != 0) return 1;
  printf("thread main %ld\nready\n", (long)syscall(SYS_gettid));
  fflush(stdout);
  if (strcmp(mode, "own-handler-later") == 0) {
    struct timespec later = {1, 500000000};
    while (nanosleep(&later, &later) != 0 && errno == EINTR) {
    }
    if (sigaction(SIGPROF, &sa, NULL) != 0) return 1;
  }
  for (unsigned s = 0; s < seconds; s++) {
    struct timespec one = {1, 0};
    while (nanosleep(&one, &one) != 0 && errno == EINTR) {
    }
  }
  return 0;
}
