/* proflabd: the lab service. A thin program over libproflab: configuration,
 * the business endpoints, the lab module, metrics, and signal handling. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <uv.h>

#include "business.h"
#include "whole_run.h"
#include "proflab/lab.h"
#include "proflab/log.h"
#include "proflab/loopmon.h"
#include "proflab/metrics.h"
#include "proflab/server.h"
#include "common/util.h"
#include "proflab/heap.h"
#include "proflab/inspector.h"
#include "proflab/profiler.h"
#include "export/helper.h"

typedef struct app {
  uv_loop_t *loop;
  pl_server *server;
  pl_lab *lab;
  pl_loopmon *mon;
  uv_signal_t sigterm, sigint;
  int signals;
  char token_buf[512];
  /* The inspector: started by --inspect/PROFLAB_INSPECT once the server is
   * up, or by SIGUSR1 at runtime (as in Node), with these options. */
  uv_signal_t sigusr1;
  pl_inspector_options inspect;
  char inspect_title[160];
  pl_loop_idle *idle; /* the loop's poll flag, for the inspector's CPU profiles */
} app;

static void usage(FILE *f) {
  fprintf(f,
          "usage: proflabd [options]\n"
          "\n"
          "The proflab lab service: business endpoints plus /api/lab/* for causing\n"
          "and capturing performance problems. Every option has an environment\n"
          "variable; options win.\n"
          "\n"
          "  --listen HOST:PORT        PROFLAB_LISTEN   listen address [127.0.0.1:8080]\n"
          "  --port N                  PORT             only change the port\n"
          "  --lab                     LAB_ENABLE=true  turn the lab on (needs a token)\n"
          "  --token-file FILE                          read LAB_TOKEN from FILE\n"
          "                            LAB_TOKEN        shared secret, >= 16 characters\n"
          "  --allow-prod              LAB_ALLOW_PROD   allow the lab when APP_ENV or\n"
          "                                             NODE_ENV is production\n"
          "  --artifact-dir DIR        LAB_ARTIFACT_DIR where artifacts go [/tmp]\n"
          "  --task-id ID              LAB_TASK_ID      this instance's name [ECS task\n"
          "                                             id, else hostname]\n"
          "  --max-leak-mb N           LAB_MAX_LEAK_MB  [1024]\n"
          "  --max-profile-seconds N   LAB_MAX_PROFILE_SECONDS [60]\n"
          "  --max-jam-ms N            LAB_MAX_JAM_MS   [30000]\n"
          "                            LAB_MAX_ARTIFACTS, LAB_MAX_ARTIFACT_MB  retention:\n"
          "                                             oldest pruned [20, 1024]\n"
          "  --exercises LIST          LAB_EXERCISES    the lab guide's exercises (docs/lab.md):\n"
          "                                             cpu, memory, all or none [none]; only\n"
          "                                             with the lab on\n"
          "  --max-connections N       PROFLAB_MAX_CONNECTIONS [1024]\n"
          "  --header-timeout-ms N     PROFLAB_HEADER_TIMEOUT_MS request head deadline [10000]\n"
          "  --idle-timeout-ms N       PROFLAB_IDLE_TIMEOUT_MS keep-alive idle [65000]\n"
          "  --drain-timeout-ms N      PROFLAB_DRAIN_TIMEOUT_MS on SIGTERM [10000]\n"
          "  --no-request-log          PROFLAB_REQUEST_LOG=false  no line per request\n"
          "  --cpu-profile FILE        PROFLAB_CPU_PROFILE  profile the whole run and write\n"
          "                                             FILE at exit (.cpuprofile, .pb.gz\n"
          "                                             or .folded), like node --cpu-prof\n"
          "                            PROFLAB_CPU_PROFILE_MODE (wall|cpu), _HZ [wall, 1000]\n"
          "  --heap-tracking           PROFLAB_HEAP_TRACKING=true  sampled malloc tracking\n"
          "  --no-heap-tracking        PROFLAB_HEAP_TRACKING=false (default: on with the lab)\n"
          "  --heap-sample-bytes N     LAB_HEAP_SAMPLE_BYTES mean bytes between samples;\n"
          "                                             1 tracks every allocation [524288]\n"
          "  --inspect[=[HOST:]PORT]   PROFLAB_INSPECT=[HOST:]PORT  Chrome DevTools inspector,\n"
          "                                             like node --inspect [off; --inspect\n"
          "                                             alone: 127.0.0.1:9229]; loopback unless\n"
          "                                             a host is given. SIGUSR1 opens it at\n"
          "                                             runtime (on this address)\n"
          "  -h, --help                this text\n"
          "  -V, --version             print the version\n"
          "\n"
          "Logs are JSON lines on stdout. SIGTERM or SIGINT: stop accepting, finish\n"
          "requests in flight, exit 0. SIGUSR1: start the inspector if it is off.\n");
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  pl_log_msg("fatal", "startup", "%s", msg);
  pl_log_flush();
  fprintf(stderr, "proflabd: %s\n", msg);
  exit(2);
}

static void start_heap_tracking(uint64_t sample_bytes) {
  pl_heap_options o = {.sample_bytes = sample_bytes};
  int rc = pl_heap_init(&o);
  if (rc == -EINVAL)
    die("heap tracker: LAB_HEAP_SAMPLE_BYTES, LAB_HEAP_MAX_SAMPLES or LAB_HEAP_MAX_STACKS is not "
        "a usable number (sample bytes 1..2^40, max samples 1..2^26, max stacks 2..2^24), or "
        "PROFLAB_HEAP_UNWIND is not fp, dwarf or verify");
  if (rc) die("heap tracker: cannot start: %s", strerror(-rc));
}

static unsigned parse_uint_opt(const char *name, const char *v, unsigned long max) {
  char *end;
  errno = 0;
  if (!v || !*v || *v == '-') die("%s: '%s' is not a whole number", name, v ? v : "");
  unsigned long x = strtoul(v, &end, 10);
  if (errno || *end || x > max) die("%s: '%s' must be a whole number up to %lu", name, v, max);
  return (unsigned)x;
}

/* Split "host:port", "[v6]:port", ":port" or "host". */
static void parse_listen(const char *spec, char *host, size_t hn, unsigned *port) {
  const char *colon = strrchr(spec, ':');
  if (spec[0] == '[') {
    const char *close = strchr(spec, ']');
    if (!close) die("PROFLAB_LISTEN '%s': missing ']'", spec);
    colon = close[1] == ':' ? close + 1 : NULL;
    if (close[1] && !colon) die("PROFLAB_LISTEN '%s': expected [addr]:port", spec);
  } else if (colon && strchr(spec, ':') != colon) {
    die("PROFLAB_LISTEN '%s': put IPv6 addresses in brackets, e.g. [::1]:8080", spec);
  }
  size_t hl = colon ? (size_t)(colon - spec) : strlen(spec);
  if (hl >= hn) die("PROFLAB_LISTEN '%s': host too long", spec);
  memcpy(host, spec, hl);
  host[hl] = '\0';
  if (!host[0]) snprintf(host, hn, "0.0.0.0");
  if (colon) *port = parse_uint_opt("listen port", colon + 1, 65535);
}

static void read_token_file(app *a, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("--token-file %s: %s", path, strerror(errno));
  ssize_t n = read(fd, a->token_buf, sizeof(a->token_buf) - 1);
  int e = errno;
  close(fd);
  if (n < 0) die("--token-file %s: %s", path, strerror(e));
  a->token_buf[n] = '\0';
  while (n > 0 && (a->token_buf[n - 1] == '\n' || a->token_buf[n - 1] == '\r'))
    a->token_buf[--n] = '\0';
}

/* LAB_EXERCISES / --exercises: "cpu", "memory", "all", "none", comma-separated. */
static unsigned parse_exercises(const char *name, const char *v) {
  unsigned x = 0;
  const char *p = v;
  while (*p) {
    size_t n = strcspn(p, ",");
    if (n == 3 && strncmp(p, "cpu", 3) == 0)
      x |= SVC_EXERCISE_CPU;
    else if (n == 6 && strncmp(p, "memory", 6) == 0)
      x |= SVC_EXERCISE_MEMORY;
    else if (n == 3 && strncmp(p, "all", 3) == 0)
      x |= SVC_EXERCISE_CPU | SVC_EXERCISE_MEMORY;
    else if (!(n == 4 && strncmp(p, "none", 4) == 0) && n != 0)
      die("%s: '%s': expected cpu, memory, all or none (comma-separated)", name, v);
    p += n;
    if (*p == ',') p++;
  }
  return x;
}

static void on_closed_signal(uv_handle_t *h) { (void)h; }

/* Start the inspector with a's options (the first time, track the loop's
 * poll phase for it). Failure is logged, not fatal, as in Node. */
static void start_inspector(app *a) {
  int rc;
  if (!a->idle && (rc = pl_loop_idle_track(a->loop, &a->idle)) != 0) {
    pl_log_msg("error", "inspector", "cannot track the loop's idle phase: %s", strerror(-rc));
    a->idle = NULL;
  }
  a->inspect.idle_flag = a->idle ? pl_loop_idle_flag(a->idle) : NULL;
  char err[256];
  if ((rc = pl_inspector_start(&a->inspect, err, sizeof(err))) != 0 && rc != -EALREADY) {
    pl_log_msg("error", "inspector", "%s", err);
    fprintf(stderr, "proflabd: %s\n", err);
  }
}

static void on_sigusr1(uv_signal_t *h, int signum) {
  (void)signum;
  app *a = h->data;
  if (pl_inspector_running()) return;
  pl_log_msg("info", "inspector", "SIGUSR1: starting the inspector");
  start_inspector(a);
  pl_log_flush();
}

static void on_drained(pl_server *s, void *arg) {
  (void)s;
  app *a = arg;
  pl_log_msg("info", "shutdown", "drained; exiting");
  pl_inspector_stop(); /* before the loop ends: its sessions get close 1001 */
  pl_loop_idle_untrack(a->idle);
  a->idle = NULL;
  uv_close((uv_handle_t *)&a->sigterm, on_closed_signal);
  uv_close((uv_handle_t *)&a->sigint, on_closed_signal);
  uv_close((uv_handle_t *)&a->sigusr1, on_closed_signal);
  pl_server_free(a->server);
  a->server = NULL;
  pl_loopmon_free(a->mon);
  a->mon = NULL;
  pl_lab_close(a->lab);
}

static void on_signal(uv_signal_t *h, int signum) {
  app *a = h->data;
  if (++a->signals > 1) {
    pl_log_msg("warn", "shutdown", "second %s: exiting now", strsignal(signum));
    pl_log_flush();
    _exit(1);
  }
  pl_json *j = pl_log_begin("info", "shutdown");
  pl_json_kv_str(j, "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  pl_json_kv_str(j, "msg", "stopped accepting; finishing requests in flight");
  pl_log_end();
  pl_lab_shutdown(a->lab); /* a running profile ends now and is still written */
  pl_server_shutdown(a->server, on_drained, a);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "export-helper") == 0)
    return pl__export_helper_main(argc - 1, argv + 1);
  static app a;
  pl_server_config scfg;
  pl_server_config_init(&scfg);
  pl_lab_config lcfg;
  pl_lab_config_init(&lcfg);
  char err[512];
  if (pl_lab_config_from_env(&lcfg, err, sizeof(err)) != 0) die("%s", err);

  char host[256] = "127.0.0.1";
  unsigned port = 8080;
  const char *env;
  if ((env = getenv("PROFLAB_LISTEN")) && *env)
    parse_listen(env, host, sizeof(host), &port);
  else if ((env = getenv("PORT")) && *env)
    port = parse_uint_opt("PORT", env, 65535);
  if ((env = getenv("PROFLAB_MAX_CONNECTIONS")) && *env)
    scfg.max_connections = parse_uint_opt("PROFLAB_MAX_CONNECTIONS", env, 65536);
  if ((env = getenv("PROFLAB_HEADER_TIMEOUT_MS")) && *env)
    scfg.header_timeout_ms = parse_uint_opt("PROFLAB_HEADER_TIMEOUT_MS", env, 3600000);
  if ((env = getenv("PROFLAB_IDLE_TIMEOUT_MS")) && *env)
    scfg.idle_timeout_ms = parse_uint_opt("PROFLAB_IDLE_TIMEOUT_MS", env, 3600000);
  if ((env = getenv("PROFLAB_DRAIN_TIMEOUT_MS")) && *env)
    scfg.drain_timeout_ms = parse_uint_opt("PROFLAB_DRAIN_TIMEOUT_MS", env, 3600000);
  if ((env = getenv("PROFLAB_REQUEST_LOG")) && strcmp(env, "false") == 0) scfg.log_requests = 0;
  const char *task_opt = NULL;
  const char *cpu_profile_path = getenv("PROFLAB_CPU_PROFILE");
  int heap_tracking = -1; /* -1: with the lab */
  if ((env = getenv("PROFLAB_HEAP_TRACKING")) && *env) {
    if (strcmp(env, "true") == 0)
      heap_tracking = 1;
    else if (strcmp(env, "false") == 0)
      heap_tracking = 0;
    else
      die("PROFLAB_HEAP_TRACKING: '%s' must be true or false", env);
  }
  uint64_t heap_sample_bytes = 0; /* 0: LAB_HEAP_SAMPLE_BYTES, else the default */
  int inspect = 0;                /* start the inspector once the server is up */
  unsigned exercises = 0;         /* LAB_EXERCISES: docs/lab.md's exercises */
  if ((env = getenv("LAB_EXERCISES")) && *env) exercises = parse_exercises("LAB_EXERCISES", env);
  if ((env = getenv("PROFLAB_INSPECT")) && *env) {
    if (pl_inspector_parse_address(env, &a.inspect, err, sizeof(err)) != 0)
      die("PROFLAB_INSPECT: %s", err);
    inspect = 1;
  }

  enum {
    O_LISTEN = 256,
    O_PORT,
    O_LAB,
    O_TOKEN_FILE,
    O_ALLOW_PROD,
    O_DIR,
    O_TASK,
    O_LEAK,
    O_PROF,
    O_JAM,
    O_MAXCONN,
    O_HDR,
    O_IDLE,
    O_DRAIN,
    O_NOLOG,
    O_CPUPROF,
    O_HEAP,
    O_NOHEAP,
    O_HEAPT,
    O_INSPECT,
    O_EXERCISES
  };
  static const struct option opts[] = {
      {"listen", required_argument, 0, O_LISTEN},
      {"port", required_argument, 0, O_PORT},
      {"lab", no_argument, 0, O_LAB},
      {"token-file", required_argument, 0, O_TOKEN_FILE},
      {"allow-prod", no_argument, 0, O_ALLOW_PROD},
      {"artifact-dir", required_argument, 0, O_DIR},
      {"task-id", required_argument, 0, O_TASK},
      {"max-leak-mb", required_argument, 0, O_LEAK},
      {"max-profile-seconds", required_argument, 0, O_PROF},
      {"max-jam-ms", required_argument, 0, O_JAM},
      {"max-connections", required_argument, 0, O_MAXCONN},
      {"header-timeout-ms", required_argument, 0, O_HDR},
      {"idle-timeout-ms", required_argument, 0, O_IDLE},
      {"drain-timeout-ms", required_argument, 0, O_DRAIN},
      {"no-request-log", no_argument, 0, O_NOLOG},
      {"cpu-profile", required_argument, 0, O_CPUPROF},
      {"heap-tracking", no_argument, 0, O_HEAP},
      {"no-heap-tracking", no_argument, 0, O_NOHEAP},
      {"heap-sample-bytes", required_argument, 0, O_HEAPT},
      {"inspect", optional_argument, 0, O_INSPECT},
      {"exercises", required_argument, 0, O_EXERCISES},
      {"help", no_argument, 0, 'h'},
      {"version", no_argument, 0, 'V'},
      {0, 0, 0, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
    switch (c) {
      case O_LISTEN:
        parse_listen(optarg, host, sizeof(host), &port);
        break;
      case O_PORT:
        port = parse_uint_opt("--port", optarg, 65535);
        break;
      case O_LAB:
        lcfg.enable = 1;
        break;
      case O_TOKEN_FILE:
        read_token_file(&a, optarg);
        lcfg.token = a.token_buf;
        break;
      case O_ALLOW_PROD:
        lcfg.allow_prod = 1;
        break;
      case O_DIR:
        lcfg.artifact_dir = optarg;
        break;
      case O_TASK:
        task_opt = optarg;
        break;
      case O_LEAK:
        lcfg.max_leak_mb = parse_uint_opt("--max-leak-mb", optarg, 1u << 20);
        break;
      case O_PROF:
        lcfg.max_profile_seconds = parse_uint_opt("--max-profile-seconds", optarg, 86400);
        break;
      case O_JAM:
        lcfg.max_jam_ms = parse_uint_opt("--max-jam-ms", optarg, 3600000);
        break;
      case O_MAXCONN:
        scfg.max_connections = parse_uint_opt("--max-connections", optarg, 65536);
        break;
      case O_HDR:
        scfg.header_timeout_ms = parse_uint_opt("--header-timeout-ms", optarg, 3600000);
        break;
      case O_IDLE:
        scfg.idle_timeout_ms = parse_uint_opt("--idle-timeout-ms", optarg, 3600000);
        break;
      case O_DRAIN:
        scfg.drain_timeout_ms = parse_uint_opt("--drain-timeout-ms", optarg, 3600000);
        break;
      case O_NOLOG:
        scfg.log_requests = 0;
        break;
      case O_CPUPROF:
        cpu_profile_path = optarg;
        break;
      case O_HEAP:
        heap_tracking = 1;
        break;
      case O_NOHEAP:
        heap_tracking = 0;
        break;
      case O_HEAPT:
        if (pl__parse_u64(optarg, &heap_sample_bytes) != 0 || heap_sample_bytes == 0 ||
            heap_sample_bytes > (1ull << 40))
          die("--heap-sample-bytes: '%s' must be a whole number from 1 to 2^40", optarg);
        break;
      case O_INSPECT:
        if (optarg && pl_inspector_parse_address(optarg, &a.inspect, err, sizeof(err)) != 0)
          die("--inspect: %s", err);
        inspect = 1;
        break;
      case O_EXERCISES:
        exercises = parse_exercises("--exercises", optarg);
        break;
      case 'h':
        usage(stdout);
        return 0;
      case 'V':
        printf("proflabd %s\n", PROFLAB_VERSION);
        return 0;
      default:
        usage(stderr);
        return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "proflabd: unexpected argument '%s' (see --help)\n", argv[optind]);
    return 2;
  }
  if (lcfg.max_leak_mb == 0 || lcfg.max_profile_seconds == 0 || lcfg.max_jam_ms == 0)
    die("lab bounds must be at least 1");

  char task[80];
  if (task_opt)
    pl_task_id_from(task_opt, NULL, NULL, task, sizeof(task));
  else
    pl_task_id_detect(task, sizeof(task));
  lcfg.task = task;
  pl_log_set_task(task);

  int active;
  const char *why;
  if (pl_lab_config_check(&lcfg, &active, &why, err, sizeof(err)) != 0) die("%s", err);
  if (heap_tracking < 0) heap_tracking = active;
  if (heap_tracking) start_heap_tracking(heap_sample_bytes);

  a.loop = uv_default_loop();
  int rc = pl_loopmon_configure(a.loop);
  if (rc) die("cannot enable loop metrics: %s", uv_strerror(rc));
  if ((rc = pl_loopmon_new(&a.mon, a.loop, 10)) != 0) die("loop monitor: %s", uv_strerror(rc));
  svc_whole_run wr;
  if (cpu_profile_path && *cpu_profile_path &&
      (rc = svc_whole_run_start(&wr, a.loop, cpu_profile_path, err, sizeof(err))) != 0)
    die("%s", err);

  scfg.host = host;
  scfg.port = (uint16_t)port;
  scfg.task = task;
  if ((rc = pl_server_new(&a.server, a.loop, &scfg)) != 0) die("server: %s", strerror(-rc));
  if ((rc = pl_lab_new(&a.lab, a.loop, &lcfg, a.mon)) != 0)
    die("lab: artifact directory %s: %s", lcfg.artifact_dir, strerror(-rc));
  svc_business_options bopt = {.exercises = active ? exercises : 0,
                               .exercise_max_bytes = (uint64_t)lcfg.max_leak_mb << 20};
  if ((rc = svc_business_mount(a.server, &bopt)) != 0 ||
      (rc = pl_lab_mount(a.lab, a.server)) != 0 ||
      (rc = pl_metrics_mount(a.server, a.mon, a.lab)) != 0)
    die("routes: %s", strerror(-rc));
  if ((rc = pl_server_start(a.server)) != 0)
    die("cannot listen on %s:%u: %s", host, port, strerror(-rc));

  uv_signal_init(a.loop, &a.sigterm);
  uv_signal_init(a.loop, &a.sigint);
  a.sigterm.data = a.sigint.data = &a;
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_signal_init(a.loop, &a.sigusr1);
  a.sigusr1.data = &a;
  uv_signal_start(&a.sigusr1, on_sigusr1, SIGUSR1);
  signal(SIGPIPE, SIG_IGN);

  pl_json *j = pl_log_begin("info", "listening");
  pl_json_kv_str(j, "host", host);
  pl_json_kv_uint(j, "port", pl_server_port(a.server));
  pl_json_kv_int(j, "pid", (int64_t)getpid());
  pl_json_kv_str(j, "version", PROFLAB_VERSION);
  pl_json_kv_bool(j, "lab", active);
  if (lcfg.enable && why) pl_json_kv_str(j, "lab_off_because", why);
  if (active) pl_json_kv_str(j, "artifact_dir", lcfg.artifact_dir);
  if (exercises) {
    pl_json_kv_str(j, "exercises",
                   !active                            ? "off (they need the lab on)"
                   : exercises == SVC_EXERCISE_CPU    ? "cpu"
                   : exercises == SVC_EXERCISE_MEMORY ? "memory"
                                                      : "cpu,memory");
  }
  pl_json_kv_bool(j, "heap_tracking", pl_heap_running());
  if (pl_heap_running()) {
    pl_heap_stats hs;
    pl_heap_get_stats(&hs);
    pl_json_kv_uint(j, "heap_sample_bytes", hs.sample_bytes);
  }
  pl_log_end();
  snprintf(a.inspect_title, sizeof(a.inspect_title), "proflabd (task %s)", task);
  a.inspect.title = a.inspect_title;
  a.inspect.task = task;
  a.inspect.wall_tid = (uint32_t)syscall(SYS_gettid); /* this thread runs the loop */
  if (inspect) start_inspector(&a);
  pl_log_flush();

  uv_run(a.loop, UV_RUN_DEFAULT);

  if (cpu_profile_path && *cpu_profile_path) svc_whole_run_finish(&wr);
  pl_lab_free(a.lab);
  pl_log_flush();
  rc = uv_loop_close(a.loop);
  if (rc != 0) {
    uv_run(a.loop, UV_RUN_DEFAULT);
    uv_loop_close(a.loop);
  }
  return 0;
}
