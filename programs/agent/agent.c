/* libproflab-agent.so: started by the dynamic loader in a program that was
 * never built for proflab (LD_PRELOAD, `proflab run`): the constructor
 * reads the settings, starts the heap tracker and the agent thread; the
 * destructor stops them. Nothing here may change how the program runs:
 * what cannot start says so in one line on stderr and stays out. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "capture/whole_run.h"
#include "common/util.h"
#include "proflab/heap.h"
#include "proflab/inspector.h"
#include "proflab/log.h"
#include "profile/threads.h"
#include "registry.h"
#include "serve.h"
#include "settings.h"
#include "symbol/symbolizer.h"

static agent_settings settings;
static pid_t first_pid;     /* the process the constructor ran in */
static pid_t agent_pid;     /* the process the agent's state belongs to (a child's own) */
static pid_t inspector_pid; /* the process that started the inspector */
static char where[160];     /* the listener's address, or "" */
static char inspect_title[200];
static char program[64];      /* the program's name at start (nginx rewrites its argv) */
static pl__whole_run cpu_run; /* PROFLAB_CPU_PROFILE, while it runs */
static int cpu_running, heap_profile;
/* The whole-run profile's mode and rate, read once in the constructor (a
 * forked child's environment may be gone: nginx's workers keep only TZ). */
static pl_cpu_options cpu_opts;
static int cpu_opts_ok;
/* This process's whole-run files: the settings' own, or in a forked child
 * the same with its pid inserted (pl__whole_run_path_for_pid). */
static char cpu_path[AGENT_PATH_MAX + 16], heap_path[AGENT_PATH_MAX + 16];
static unsigned inspect_port; /* the port this process's inspector got (a child's starts above) */
/* A forked child's start (child_start) against its exit (agent_fini). */
static pthread_mutex_t life_lock = PTHREAD_MUTEX_INITIALIZER;
static int exiting;

/* One line on stderr, written at once (the program's stdio buffers are
 * not ours to use). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  char line[768];
  int n = snprintf(line, sizeof(line), "proflab agent (pid %d): ", (int)getpid());
  va_list ap;
  va_start(ap, fmt);
  if (n > 0 && (size_t)n < sizeof(line)) vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
  va_end(ap);
  /* one line, whatever a value it names holds (a path with a newline) */
  agent_escape_controls(line, sizeof(line) - 1);
  size_t l = strnlen(line, sizeof(line) - 2);
  line[l++] = '\n';
  (void)pl__write_all(2, line, l);
}

static void log_to_fd(const char *data, size_t len, void *arg) {
  int fd = (int)(intptr_t)arg;
  if (fd >= 0) (void)pl__write_all(fd, data, len);
}

/* Take this library out of LD_PRELOAD, so programs the host execs run
 * without the agent (unless PROFLAB_AGENT_CHILDREN=true). Other preloaded
 * libraries stay. Called before main, while the program has one thread. */
static void clean_preload(void) {
  const char *pre = getenv("LD_PRELOAD");
  Dl_info info;
  if (!pre || !dladdr((void *)clean_preload, &info) || !info.dli_fname) return;
  const char *self = strrchr(info.dli_fname, '/');
  self = self ? self + 1 : info.dli_fname;
  char out[4096];
  size_t k = 0;
  const char *p = pre;
  while (*p) {
    while (*p == ' ' || *p == ':') p++;
    const char *e = p;
    while (*e && *e != ' ' && *e != ':') e++;
    if (e == p) break;
    const char *base = p;
    for (const char *q = p; q < e; q++)
      if (*q == '/') base = q + 1;
    int ours = (size_t)(e - base) == strlen(self) && memcmp(base, self, (size_t)(e - base)) == 0;
    if (!ours) {
      size_t l = (size_t)(e - p);
      if (k + l + 2 > sizeof(out)) return; /* too long to rewrite: leave it */
      if (k) out[k++] = ' ';
      memcpy(out + k, p, l);
      k += l;
    }
    p = e;
  }
  out[k] = '\0';
  if (k)
    setenv("LD_PRELOAD", out, 1);
  else
    unsetenv("LD_PRELOAD");
}

/* The port of a "ws://HOST:PORT/ID" URL, or 0. */
static unsigned url_port(const char *url) {
  const char *host = url ? strstr(url, "://") : NULL;
  if (!host) return 0;
  host += 3;
  const char *slash = strchr(host, '/');
  const char *colon = NULL;
  for (const char *p = host; *p && (!slash || p < slash); p++)
    if (*p == ':') colon = p;
  uint64_t port;
  if (!colon ||
      pl__parse_u64n(colon + 1, (size_t)((slash ? slash : colon + strlen(colon)) - colon - 1),
                     &port) != 0 ||
      port > 65535)
    return 0;
  return (unsigned)port;
}

/* Start the inspector. In a forked child the port is the next free one
 * above the parent's (unless the setting asked for any free port). */
static void start_inspector(uint32_t main_tid) {
  snprintf(inspect_title, sizeof(inspect_title), "%s (pid %d, proflab agent)", program,
           (int)getpid());
  pl_inspector_options o = settings.inspect_opts;
  o.title = inspect_title;
  o.task = settings.task;
  o.wall_tid = main_tid;
  o.idle_flag = NULL;
  o.wall_all_threads = 1;
  int forked = getpid() != first_pid;
  int next = forked && !(o.port_set && o.port == 0);
  unsigned base = inspect_port ? inspect_port : o.port ? o.port : PL_INSPECT_DEFAULT_PORT;
  char err[256];
  int rc = -EADDRINUSE;
  for (unsigned i = 0; i < (next ? 100u : 1u) && rc == -EADDRINUSE; i++) {
    if (next) {
      o.port = base + 1 + i;
      o.port_set = 1;
      if (o.port > 65535) break;
    }
    rc = pl_inspector_start(&o, err, sizeof(err));
  }
  if (rc && rc != -EALREADY) {
    say("inspector: %s; running without it", err);
    return;
  }
  inspector_pid = getpid();
  inspect_port = url_port(pl_inspector_url());
}

/* Bind the lab's listener and start the agent thread. In a forked child
 * the listener is the child's own: the default socket names its pid, an
 * explicit unix:PATH becomes PATH.PID, a TCP port the next free one. */
static void start_lab(uint32_t main_tid) {
  char err[512], sock[108];
  const char *path = NULL;
  int forked = getpid() != first_pid;
  if (!settings.tcp && settings.unix_default) {
    if (agent_default_socket(sock, sizeof(sock), (int)getpid(), err, sizeof(err)) != 0) {
      say("%s; the program runs without the agent's endpoints", err);
      return;
    }
    path = sock;
  } else if (!settings.tcp && forked) {
    if ((size_t)snprintf(sock, sizeof(sock), "%s.%d", settings.unix_path, (int)getpid()) >=
        sizeof(sock)) {
      say("unix:%s.%d: path too long; this process runs without the agent's endpoints",
          settings.unix_path, (int)getpid());
      return;
    }
    path = sock;
  }
  agent_settings s = settings;
  int rc = -EADDRINUSE;
  for (unsigned i = 0; i < (forked && s.tcp && s.port ? 100u : 1u) && rc == -EADDRINUSE; i++) {
    if (forked && s.tcp && s.port) s.port = settings.port + 1 + i;
    rc = agent_serve_start(&s, path, main_tid, where, sizeof(where), err, sizeof(err));
  }
  if (rc) {
    where[0] = '\0';
    say("%s; the program runs without the agent's endpoints", err);
  }
}

/* The whole-run CPU profile: wall mode samples the main thread. The
 * profiler's threads start with every signal blocked, as the agent's. */
static void start_cpu_profile(uint32_t main_tid) {
  if (!cpu_opts_ok) return; /* the constructor said why */
  pl_cpu_options o = cpu_opts;
  char err[512];
  o.wall_tid = main_tid;
  o.wall_all = 1; /* every thread of the program, found as they start */
  sigset_t all, old;
  sigfillset(&all);
  /* SIGPROF stays open: the start looks at this (the main) thread's mask
   * to tell whether the program blocks it */
  sigdelset(&all, SIGPROF);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pl__whole_run_cpu_start(&cpu_run, cpu_path, &o,
                                   "the whole-run profile (PROFLAB_CPU_PROFILE)", err, sizeof(err));
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc)
    say("%s; no CPU profile will be written", err);
  else
    cpu_running = 1;
}

/* The whole-run heap profile, written at exit. */
static void start_heap_profile(void) {
  char err[512];
  if (!pl_heap_running())
    say("PROFLAB_HEAP_PROFILE needs the heap tracker (PROFLAB_HEAP_TRACKING is false or it "
        "could not start); no heap profile will be written");
  else if (pl__whole_run_check_path(heap_path, "PROFLAB_HEAP_PROFILE", err, sizeof(err)) != 0)
    say("%s; no heap profile will be written", err);
  else
    heap_profile = 1;
}

/* ---- fork: the child gets an agent of its own ------------------------- */

static int fork_parked; /* the agent thread was parked across the fork */
static uint32_t child_main_tid;
/* What the parent ran, for the child to start again; child_pending while
 * this (forked) process has not started them yet: a child it forks
 * meanwhile (a double fork) inherits the wish. */
static int child_lab, child_inspect, child_cpu, child_heap, child_pending;

static void fork_prepare(void) { fork_parked = agent_serve_fork_prepare(200); }
static void fork_parent(void) { agent_serve_fork_parent(); }

/* A child's whole-run file: the setting's with the pid inserted; 0 or -1
 * (said). */
static int child_path(const char *setting, const char *var, char *out, size_t n) {
  if (pl__whole_run_path_for_pid(setting, (int)getpid(), out, n) == 0) return 0;
  say("%s: the path with this process's pid is too long; no profile will be written here", var);
  return -1;
}

/* The child's agent starts after 100 ms on a thread of its own, outside
 * the fork handler: a child that execs or exits at once (a shell's
 * command, a fork-heavy program's worker) never makes a listener. What the
 * parent ran starts again as the child's own: the lab's listener, the
 * inspector (the next free port), the whole-run profiles (files named
 * with the child's pid). */
static void *child_start(void *arg) {
  (void)arg;
  struct timespec ts = {0, 100 * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  pl_heap_untracked_begin();
  pthread_mutex_lock(&life_lock);
  if (!exiting) {
    pl__symbolizer_forget_after_fork(); /* the parent's session, perhaps half-changed */
    if (child_lab) start_lab(child_main_tid);
    if (child_inspect) start_inspector(child_main_tid);
    if (child_cpu &&
        child_path(settings.cpu_profile, "PROFLAB_CPU_PROFILE", cpu_path, sizeof(cpu_path)) == 0)
      start_cpu_profile(child_main_tid);
    if (child_heap && child_path(settings.heap_profile, "PROFLAB_HEAP_PROFILE", heap_path,
                                 sizeof(heap_path)) == 0)
      start_heap_profile();
    int insp = inspector_pid == getpid() && pl_inspector_running();
    if (where[0])
      (void)agent_registry_write(program, where, insp ? pl_inspector_url() : NULL, settings.task);
    int any = where[0] || insp || cpu_running || heap_profile;
    pl_json *j = pl_log_begin(any ? "info" : "warn", "agent_start");
    pl_json_kv_int(j, "pid", (int64_t)getpid());
    pl_json_kv_int(j, "forked_from", (int64_t)getppid());
    pl_json_kv_str(j, "program", program);
    if (where[0]) pl_json_kv_str(j, "lab", where);
    if (insp && pl_inspector_url()) pl_json_kv_str(j, "inspector", pl_inspector_url());
    if (cpu_running) pl_json_kv_str(j, "cpu_profile", cpu_path);
    if (heap_profile) pl_json_kv_str(j, "heap_profile", heap_path);
    pl_log_end();
    pl_log_flush();
  }
  child_pending = 0;
  pthread_mutex_unlock(&life_lock);
  pl_heap_untracked_end();
  return NULL;
}

static void fork_child(void) {
  /* the parent's threads (agent, inspector, profiler) do not exist here:
   * forget what they held, touching nothing they may have been changing */
  int had = agent_serve_forget();
  int insp = inspector_pid == agent_pid && pl_inspector_running();
  pl_inspector_forget_after_fork();
  pl__whole_run_forget_after_fork(&cpu_run);
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  memcpy(&life_lock, &fresh, sizeof(fresh));
  exiting = 0;
  if (!child_pending) { /* else: forked before its own start, it passes the wish on */
    child_lab = had;
    child_inspect = insp;
    child_cpu = cpu_running; /* the parent's files stay the parent's to write */
    child_heap = heap_profile;
  }
  agent_pid = getpid();
  cpu_running = 0;
  heap_profile = 0;
  where[0] = '\0';
  if (!child_lab && !child_inspect && !child_cpu && !child_heap) return;
  if (!fork_parked) {
    say("the agent was busy when this process was forked: it runs without the agent");
    return;
  }
  child_main_tid = (uint32_t)syscall(SYS_gettid);
  child_pending = 1;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  if (pthread_create(&t, NULL, child_start, NULL) == 0) {
    (void)pthread_setname_np(t, PL__THREAD_NAME_PREFIX "fork"); /* not the program's */
    pthread_detach(t);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

__attribute__((constructor)) static void agent_init(void) {
  first_pid = agent_pid = getpid();
  snprintf(program, sizeof(program), "%s", program_invocation_short_name);
  char err[512];
  int rc = agent_settings_read(&settings, err, sizeof(err));
  if (rc) {
    say("%s; the program runs without the agent", err);
    return;
  }
  pl_log_set_sink(log_to_fd, (void *)(intptr_t)settings.log_fd);
  pl_log_set_task(settings.task);
  /* proflab run names the pid of the program it runs (PROFLAB_AGENT_PID):
   * that program may exec onward under the same pid (a wrapper script, env,
   * a version manager's shim) and keeps the agent there; a process with
   * another pid still finding the agent in LD_PRELOAD is a child the
   * program exec'd (after fork, vfork or posix_spawn): unless children were
   * asked for, the agent stays out of it (nothing starts, and its own
   * children no longer preload it). Without the variable (LD_PRELOAD set
   * by hand) every exec'd program runs without the agent. */
  if (!settings.keep_preload) {
    const char *target = getenv("PROFLAB_AGENT_PID");
    char *end = NULL;
    long tp = target && *target ? strtol(target, &end, 10) : 0;
    int named = tp > 0 && end && *end == '\0';
    if (!named || tp != (long)getpid()) clean_preload();
    if (named && tp != (long)getpid()) return; /* a child of the program: no agent */
  }
  if (settings.heap_tracking) {
    pl_heap_options o = {.sample_bytes = settings.heap_sample_bytes};
    if ((rc = pl_heap_init(&o)) != 0)
      say("heap tracker: cannot start: %s; running without it",
          rc == -EINVAL ? "LAB_HEAP_MAX_SAMPLES, LAB_HEAP_MAX_STACKS or PROFLAB_HEAP_UNWIND is "
                          "not usable"
                        : strerror(-rc));
  }
  pl_heap_untracked_begin(); /* what the agent allocates from here on is its own */
  uint32_t main_tid = (uint32_t)syscall(SYS_gettid);
  if (settings.lab_active) start_lab(main_tid);
  if (settings.inspect) start_inspector(main_tid);
  if (settings.cpu_profile[0]) {
    snprintf(cpu_path, sizeof(cpu_path), "%s", settings.cpu_profile);
    if (pl__whole_run_cpu_options(&cpu_opts, err, sizeof(err)) != 0)
      say("%s; no CPU profile will be written", err);
    else
      cpu_opts_ok = 1;
    start_cpu_profile(main_tid);
  }
  if (settings.heap_profile[0]) {
    snprintf(heap_path, sizeof(heap_path), "%s", settings.heap_profile);
    start_heap_profile();
  }
  int insp = inspector_pid == getpid() && pl_inspector_running();
  if (!where[0] && !insp && !cpu_running && !heap_profile) {
    /* nothing runs: nothing to announce */
    pl_heap_untracked_end();
    return;
  }
  /* a forked child starts what runs here again, as its own */
  if (pthread_atfork(fork_prepare, fork_parent, fork_child) != 0)
    say("cannot register fork handlers: forked children will not get an agent");
  if (where[0])
    (void)agent_registry_write(program, where, insp ? pl_inspector_url() : NULL, settings.task);
  pl_json *j = pl_log_begin("info", "agent_start");
  pl_json_kv_int(j, "pid", (int64_t)getpid());
  pl_json_kv_str(j, "program", program);
  if (where[0]) pl_json_kv_str(j, "lab", where);
  pl_json_kv_bool(j, "heap_tracking", pl_heap_running());
  if (pl_inspector_running() && pl_inspector_url())
    pl_json_kv_str(j, "inspector", pl_inspector_url());
  pl_json_kv_str(j, "version", PROFLAB_VERSION);
  pl_log_end();
  pl_log_flush();
  pl_heap_untracked_end();
}

__attribute__((destructor)) static void agent_fini(void) {
  if (getpid() != agent_pid) return;
  pl_heap_untracked_begin();
  /* a forked child still starting its agent: wait for it (at most 2 s;
   * then the process's exit takes what runs) */
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 2;
  if (pthread_mutex_timedlock(&life_lock, &dl) != 0) {
    pl_heap_untracked_end();
    return;
  }
  exiting = 1;
  if (cpu_running && pl__whole_run_cpu_finish(&cpu_run) != 0)
    say("the CPU profile %s could not be written (see the log)", cpu_path);
  cpu_running = 0;
  if (heap_profile && pl__whole_run_heap_write(heap_path, "the whole-run heap profile") != 0)
    say("the heap profile %s could not be written (see the log)", heap_path);
  heap_profile = 0;
  if (inspector_pid == getpid() && pl_inspector_running()) pl_inspector_stop();
  agent_serve_stop(2000);
  agent_registry_remove();
  pthread_mutex_unlock(&life_lock);
  pl_log_flush();
  pl_heap_untracked_end();
}
