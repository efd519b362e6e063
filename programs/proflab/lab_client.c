/* proflab's lab commands: status, leak, clear, jam, profile, snapshot,
 * artifacts, download. Each talks to a lab service over HTTP (cli_http.c);
 * profile and snapshot trigger an artifact, then download and verify it
 * from the task that wrote it. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifact/store.h"
#include "proflab/profiler.h"
#include "cli.h"
#include "common/util.h"
#include "cli_http.h"
#include "progress.h"

#define DEFAULT_URL "http://127.0.0.1:8080"

enum {
  OPT_URL = 1000,
  OPT_TOKEN,
  OPT_TOKEN_FILE,
  OPT_JSON,
  OPT_VERBOSE,
  OPT_HELP,
  OPT_ATTEMPTS,
  OPT_MB,
  OPT_MS,
  OPT_SECONDS,
  OPT_FORMAT,
  OPT_HZ,
  OPT_OUT,
  OPT_TASK,
  OPT_SHA256,
  OPT_PID,
  OPT_MODE,
  OPT_THREADS,
  OPT_OFFCPU,
};

/* One command's description: its own options and its help text. */
typedef struct cmd_spec {
  const char *name;
  const char *args;           /* after the command name in the usage line */
  const char *about;          /* what it does (may span lines) */
  const struct option *opts;  /* the command's own options, {0}-terminated */
  const char *opts_help;      /* their help lines */
  const char *const *formats; /* what --format accepts (NULL-terminated) */
} cmd_spec;

static const char common_help[] =
    "  --url URL          the lab (LAB_URL, default " DEFAULT_URL
    "); https:// works too,\n"
    "                     and unix:/PATH reaches an agent's socket (no token)\n"
    "  --pid PID          the agent in process PID, at the address it registered (its\n"
    "                     Unix socket or TCP; proflab ps lists them)\n"
    "  --token TOKEN      the lab token (LAB_TOKEN)\n"
    "  --token-file FILE  read the token from FILE (its first line)\n"
    "  --json             machine-readable output on stdout\n"
    "  -v, --verbose      say what happens (retries, resumes) on stderr\n"
    "  -h, --help         this help\n";

static const struct option common_opts[] = {
    {"url", required_argument, NULL, OPT_URL},
    {"pid", required_argument, NULL, OPT_PID},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"json", no_argument, NULL, OPT_JSON},
    {"verbose", no_argument, NULL, OPT_VERBOSE},
    {"help", no_argument, NULL, OPT_HELP},
};

/* Parsed command line of a lab command. */
typedef struct cli_args {
  const char *url;
  const char *token;
  const char *token_file;
  int json;
  int verbose;
  uint64_t attempts;
  uint64_t mb, ms, seconds, hz;
  int has_seconds, has_hz, has_mb, has_ms;
  const char *format;
  const char *out;
  const char *task;
  const char *sha256;
  const char *positional;
  const char *mode;    /* --mode: wall or cpu (checked), or NULL */
  const char *threads; /* --threads: "all" or TIDs (checked), or NULL */
  int offcpu;          /* --offcpu */
  const char *pid;     /* --pid, resolved into url_buf */
  char url_buf[160];
  char token_buf[4096];
} cli_args;

static void usage(const cmd_spec *c, FILE *f) {
  fprintf(f, "usage: proflab %s %s\n\n%s\n\noptions:\n%s%s", c->name, c->args, c->about,
          c->opts_help ? c->opts_help : "", common_help);
  fprintf(
      f,
      "\nexit status: 0 success, 1 the operation failed (reason on stderr), 2 bad command line\n");
}

__attribute__((format(printf, 2, 3))) static int usage_error(const cmd_spec *c, const char *fmt,
                                                             ...) {
  fprintf(stderr, "proflab %s: ", c->name);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see proflab %s --help)\n", c->name);
  return CLI_EXIT_USAGE;
}

static int parse_count(const cmd_spec *c, const char *opt, const char *v, uint64_t max,
                       uint64_t *out) {
  uint64_t x;
  if (pl__parse_u64(v, &x) != 0 || x < 1 || x > max) {
    fprintf(
        stderr,
        "proflab %s: %s '%.40s' must be a whole number from 1 to %llu (see proflab %s --help)\n",
        c->name, opt, v, (unsigned long long)max, c->name);
    return -1;
  }
  *out = x;
  return 0;
}

/* The first line of a file, trailing white space removed. */
static int read_token_file(const cmd_spec *c, const char *path, char *out, size_t n) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "proflab %s: cannot read the token file %s: %s\n", c->name, path,
            strerror(errno));
    return -1;
  }
  if (!fgets(out, (int)n, f)) out[0] = '\0';
  fclose(f);
  size_t l = strlen(out);
  while (l && (out[l - 1] == '\n' || out[l - 1] == '\r' || out[l - 1] == ' ' || out[l - 1] == '\t'))
    out[--l] = '\0';
  return 0;
}

static int check_choice(const cmd_spec *c, const char *v, const char *const *choices) {
  if (!v) return 0;
  for (const char *const *p = choices; *p; p++)
    if (strcmp(v, *p) == 0) return 0;
  return usage_error(c, "--format '%.40s' is not one of the formats listed", v);
}

/* Parse argv (argv[0] = command name). Returns -1 to go on, or an exit status. */

/* Completes a's lab URL (LAB_URL, else the default) and token (--token-file,
 * else LAB_TOKEN) and checks them: -1 when good, else the exit code after a
 * one-line reason. A unix: URL (an agent's socket) needs no token. */
static int resolve_target(const cmd_spec *c, cli_args *a) {
  if (a->pid) {
    if (a->url) return usage_error(c, "give --url or --pid, not both");
    int rc = cli_agent_socket(c->name, a->pid, a->url_buf, sizeof(a->url_buf));
    if (rc >= 0) return rc;
    a->url = a->url_buf;
  }
  if (!a->url || !*a->url) a->url = getenv("LAB_URL");
  if (!a->url || !*a->url) a->url = DEFAULT_URL;
  int unix_socket = strncmp(a->url, "unix:", 5) == 0;
  if (strncmp(a->url, "http://", 7) != 0 && strncmp(a->url, "https://", 8) != 0 && !unix_socket)
    return usage_error(c, "--url '%.80s' must start with http://, https:// or unix:", a->url);
  if (a->token_file) {
    if (read_token_file(c, a->token_file, a->token_buf, sizeof(a->token_buf)))
      return CLI_EXIT_USAGE;
    a->token = a->token_buf;
  }
  if (!a->token) a->token = getenv("LAB_TOKEN");
  if ((!a->token || !*a->token) && !unix_socket) {
    fprintf(stderr, "proflab %s: no lab token: give --token, --token-file or LAB_TOKEN\n", c->name);
    return CLI_EXIT_USAGE;
  }
  for (const char *p = a->token ? a->token : ""; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) {
      fprintf(stderr, "proflab %s: the token contains a control character (a line break?)\n",
              c->name);
      return CLI_EXIT_USAGE;
    }
  return -1;
}

static int parse_args(const cmd_spec *c, int argc, char **argv, cli_args *a) {
  memset(a, 0, sizeof(*a));
  struct option all[32];
  size_t n = 0;
  for (size_t i = 0; i < PL__ARRAY_SIZE(common_opts); i++) all[n++] = common_opts[i];
  for (const struct option *o = c->opts; o && o->name && n < PL__ARRAY_SIZE(all) - 1; o++)
    all[n++] = *o;
  memset(&all[n], 0, sizeof(all[n]));
  opterr = 0;
  optind = 1;
  int ch;
  while ((ch = getopt_long(argc, argv, ":hvo:", all, NULL)) != -1) {
    switch (ch) {
      case OPT_HELP:
      case 'h':
        usage(c, stdout);
        return CLI_EXIT_OK;
      case OPT_URL:
        a->url = optarg;
        break;
      case OPT_PID:
        a->pid = optarg;
        break;
      case OPT_TOKEN:
        a->token = optarg;
        break;
      case OPT_TOKEN_FILE:
        a->token_file = optarg;
        break;
      case OPT_JSON:
        a->json = 1;
        break;
      case OPT_VERBOSE:
      case 'v':
        a->verbose = 1;
        break;
      case OPT_ATTEMPTS:
        if (parse_count(c, "--attempts", optarg, 1000, &a->attempts)) return CLI_EXIT_USAGE;
        break;
      case OPT_MB:
        if (parse_count(c, "--mb", optarg, 1u << 20, &a->mb)) return CLI_EXIT_USAGE;
        a->has_mb = 1;
        break;
      case OPT_MS:
        if (parse_count(c, "--ms", optarg, 86400000, &a->ms)) return CLI_EXIT_USAGE;
        a->has_ms = 1;
        break;
      case OPT_SECONDS:
        if (parse_count(c, "--seconds", optarg, 86400, &a->seconds)) return CLI_EXIT_USAGE;
        a->has_seconds = 1;
        break;
      case OPT_HZ:
        if (parse_count(c, "--hz", optarg, 1000000, &a->hz)) return CLI_EXIT_USAGE;
        a->has_hz = 1;
        break;
      case OPT_FORMAT:
        a->format = optarg;
        break;
      case OPT_OUT:
      case 'o':
        a->out = optarg;
        break;
      case OPT_TASK:
        a->task = optarg;
        break;
      case OPT_SHA256:
        a->sha256 = optarg;
        break;
      case OPT_MODE:
        a->mode = optarg;
        break;
      case OPT_THREADS:
        a->threads = optarg;
        break;
      case OPT_OFFCPU:
        a->offcpu = 1;
        break;
      case ':':
        return usage_error(c, "option %s needs a value", argv[optind - 1]);
      default:
        if (optopt && optopt < 256) {
          char opt[3] = {'-', (char)optopt, '\0'};
          return usage_error(c, "unknown option '%s'", opt);
        }
        return usage_error(c, "unknown option '%.60s'", argv[optind - 1]);
    }
  }
  if (c->formats && (ch = check_choice(c, a->format, c->formats)) != 0) return ch;
  if (optind < argc) {
    if (!c->args || !strstr(c->args, "NAME"))
      return usage_error(c, "unexpected argument '%.60s'", argv[optind]);
    a->positional = argv[optind++];
    if (optind < argc) return usage_error(c, "unexpected argument '%.60s'", argv[optind]);
  }
  return resolve_target(c, a);
}

static cli_conn *connect_lab(const cmd_spec *c, const cli_args *a) {
  char err[256];
  cli_conn_opts o = {.url = a->url, .token = a->token, .verbose = a->verbose};
  cli_conn *conn = cli_conn_new(&o, err, sizeof(err));
  if (!conn) fprintf(stderr, "proflab %s: %s\n", c->name, err);
  return conn;
}

/* Call and check: 0 with a 2xx JSON answer in *ans, else an exit status
 * (the reason printed). */
static int call_ok(const cmd_spec *c, cli_conn *conn, const char *method, const char *path,
                   long timeout_s, cli_answer *ans) {
  char err[1024];
  if (cli_call(conn, method, path, timeout_s, ans, err, sizeof(err)) != 0) {
    cli_progress_clear_current();
    fprintf(stderr, "proflab %s: %s\n", c->name, err);
    return CLI_EXIT_FAIL;
  }
  if (ans->status < 200 || ans->status > 299 || !json_is_object(ans->json)) {
    cli_answer_reason(ans, err, sizeof(err));
    cli_progress_clear_current();
    fprintf(stderr, "proflab %s: %s\n", c->name, err);
    cli_answer_free(ans);
    return CLI_EXIT_FAIL;
  }
  return 0;
}

static const char *jstr(json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}
static double jnum(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

static void print_body(const cli_answer *ans) {
  fwrite(ans->body, 1, ans->body_len, stdout);
  if (!ans->body_len || ans->body[ans->body_len - 1] != '\n') putchar('\n');
}

static const char *human_bytes(double b, char *out, size_t n) {
  static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t u = 0;
  while (b >= 1024 && u + 1 < PL__ARRAY_SIZE(units)) {
    b /= 1024;
    u++;
  }
  snprintf(out, n, u ? "%.1f %s" : "%.0f %s", b, units[u]);
  return out;
}

/* ---- simple commands ---------------------------------------------------- */

/* Run one request command: parse, call, print (JSON as is, or via show). */
static int simple_command(const cmd_spec *c, int argc, char **argv, const char *method,
                          void (*build)(const cli_args *a, char *path, size_t n, long *timeout),
                          int (*check)(const cmd_spec *c, const cli_args *a),
                          void (*show)(json_t *j)) {
  cli_args a;
  int rc = parse_args(c, argc, argv, &a);
  if (rc >= 0) return rc;
  if (check && (rc = check(c, &a)) != 0) return rc;
  char path[256];
  long timeout = 60;
  build(&a, path, sizeof(path), &timeout);
  cli_conn *conn = connect_lab(c, &a);
  if (!conn) return CLI_EXIT_FAIL;
  cli_answer ans;
  rc = call_ok(c, conn, method, path, timeout, &ans);
  if (!rc) {
    if (a.json)
      print_body(&ans);
    else
      show(ans.json);
    cli_answer_free(&ans);
  }
  cli_conn_free(conn);
  return rc;
}

static void build_status(const cli_args *a, char *p, size_t n, long *t) {
  snprintf(p, n, "/api/lab/status");
}

static void show_status(json_t *j) {
  char b1[32], b2[32];
  json_t *mem = json_object_get(j, "memory"), *ev = json_object_get(j, "event_loop");
  json_t *prof = json_object_get(j, "profiler"), *arts = json_object_get(j, "artifacts");
  printf("task        %s (pid %.0f, up %.1f s, version %s)\n", jstr(j, "task"), jnum(j, "pid"),
         jnum(j, "uptime_seconds"), jstr(j, "version"));
  if (mem)
    printf("memory      rss %s, leak %s\n", human_bytes(jnum(mem, "rss_bytes"), b1, sizeof(b1)),
           human_bytes(jnum(mem, "leak_bytes"), b2, sizeof(b2)));
  if (ev) {
    json_t *lag = json_object_get(ev, "lag_ms");
    printf("event loop  lag p50 %.3f ms, p99 %.3f ms, max %.3f ms; utilization %.1f%%\n",
           jnum(lag, "p50"), jnum(lag, "p99"), jnum(lag, "max"), 100 * jnum(ev, "utilization"));
  }
  if (prof) {
    printf("profiler    %s (%.0f taken)\n", jstr(prof, "state"), jnum(prof, "profiles_taken"));
    if (*jstr(prof, "sigprof_message")) /* the program keeps SIGPROF: profiles are refused */
      printf("            %s\n", jstr(prof, "sigprof_message"));
  }
  if (json_is_array(arts)) {
    size_t n = json_array_size(arts);
    if (n)
      printf("artifacts   %zu, newest %s\n", n, jstr(json_array_get(arts, 0), "name"));
    else
      printf("artifacts   none\n");
  }
}

static void build_leak(const cli_args *a, char *p, size_t n, long *t) {
  snprintf(p, n, "/api/lab/memory-leak?mb=%llu", (unsigned long long)a->mb);
  *t = 600;
}
static int check_leak(const cmd_spec *c, const cli_args *a) {
  return a->has_mb ? 0 : usage_error(c, "%s is required", "--mb N");
}
static void show_leak(json_t *j) {
  char b1[32], b2[32], b3[32];
  printf("task %s: allocated %s, the lab now holds %s (rss %s)\n", jstr(j, "task"),
         human_bytes(jnum(j, "allocated_bytes"), b1, sizeof(b1)),
         human_bytes(jnum(j, "retained_bytes"), b2, sizeof(b2)),
         human_bytes(jnum(j, "rss_bytes"), b3, sizeof(b3)));
}

static void build_clear(const cli_args *a, char *p, size_t n, long *t) {
  snprintf(p, n, "/api/lab/memory-clear");
}
static void show_clear(json_t *j) {
  char b1[32], b2[32];
  printf("task %s: freed %s (rss now %s)\n", jstr(j, "task"),
         human_bytes(jnum(j, "freed_bytes"), b1, sizeof(b1)),
         human_bytes(jnum(j, "rss_bytes"), b2, sizeof(b2)));
}

static void build_jam(const cli_args *a, char *p, size_t n, long *t) {
  snprintf(p, n, "/api/lab/event-loop-jam?ms=%llu", (unsigned long long)a->ms);
  *t = (long)(a->ms / 1000) + 60;
}
static int check_jam(const cmd_spec *c, const cli_args *a) {
  return a->has_ms ? 0 : usage_error(c, "%s is required", "--ms N");
}
static void show_jam(json_t *j) {
  printf("task %s: jammed the event loop for %.1f ms (lag now %.1f ms)\n", jstr(j, "task"),
         jnum(j, "jammed_ms"), jnum(j, "lag_ms"));
}

static void build_artifacts(const cli_args *a, char *p, size_t n, long *t) {
  snprintf(p, n, "/api/lab/artifacts");
  *t = 300; /* the first listing hashes every file */
}
static void show_artifacts(json_t *j) {
  json_t *arts = json_object_get(j, "artifacts");
  size_t n = json_array_size(arts);
  if (!n) {
    printf("no artifacts on task %s\n", jstr(j, "task"));
    return;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *it = json_array_get(arts, i);
    char b[32];
    printf("%-60s %10s  %s  %.16s  %s\n", jstr(it, "name"),
           human_bytes(jnum(it, "bytes"), b, sizeof(b)), jstr(it, "created"), jstr(it, "sha256"),
           jstr(it, "task"));
  }
}

#define NO_OPTS ((const struct option[]){{0}})

static const cmd_spec status_spec = {
    "status",
    "[options]",
    "Show the lab's state: task, memory, event-loop lag, profiler, artifacts.",
    NO_OPTS,
    NULL,
    NULL};
static const cmd_spec leak_spec = {
    "leak",
    "--mb N [options]",
    "Make the lab leak N MiB (kept until `proflab clear`).",
    (const struct option[]){{"mb", required_argument, NULL, OPT_MB}, {0}},
    "  --mb N             MiB to allocate and keep (at most the lab's LAB_MAX_LEAK_MB)\n",
    NULL};
static const cmd_spec clear_spec = {
    "clear", "[options]", "Free everything `proflab leak` made the lab hold.", NO_OPTS, NULL, NULL};
static const cmd_spec jam_spec = {
    "jam",
    "--ms N [options]",
    "Keep the lab's event loop busy for N ms.",
    (const struct option[]){{"ms", required_argument, NULL, OPT_MS}, {0}},
    "  --ms N             milliseconds (at most the lab's LAB_MAX_JAM_MS)\n",
    NULL};
static const cmd_spec artifacts_spec = {
    "artifacts",
    "[options]",
    "List the artifacts of the task that answers (name, size, created, sha256, task).",
    NO_OPTS,
    NULL,
    NULL};

int cli_cmd_status(int argc, char **argv) {
  return simple_command(&status_spec, argc, argv, "GET", build_status, NULL, show_status);
}
int cli_cmd_leak(int argc, char **argv) {
  return simple_command(&leak_spec, argc, argv, "POST", build_leak, check_leak, show_leak);
}
int cli_cmd_clear(int argc, char **argv) {
  return simple_command(&clear_spec, argc, argv, "POST", build_clear, NULL, show_clear);
}
int cli_cmd_jam(int argc, char **argv) {
  return simple_command(&jam_spec, argc, argv, "POST", build_jam, check_jam, show_jam);
}
int cli_cmd_artifacts(int argc, char **argv) {
  return simple_command(&artifacts_spec, argc, argv, "GET", build_artifacts, NULL, show_artifacts);
}

/* ---- artifacts: trigger, download, verify ------------------------------ */

/* The progress line of profile, snapshot and download (progress.h): the
 * recording's seconds, then the wait for the lab to write, then the
 * download's bytes. */
typedef struct lab_progress {
  cli_progress p;
  double seconds; /* the profile's length; 0: not a timed recording */
  enum { STAGE_RECORD, STAGE_WRITE, STAGE_DOWNLOAD } stage;
  const char *writing; /* the label once the recording is over */
} lab_progress;

static void on_transfer(void *ctx, uint64_t done, uint64_t total) {
  lab_progress *lp = ctx;
  if (lp->stage == STAGE_DOWNLOAD) {
    cli_progress_bytes(&lp->p, done, total);
    return;
  }
  double el = cli_progress_elapsed(&lp->p);
  if (lp->stage == STAGE_RECORD && lp->seconds > 0 && el < lp->seconds) {
    cli_progress_seconds(&lp->p, el, lp->seconds);
    return;
  }
  if (lp->stage == STAGE_RECORD) {
    lp->stage = STAGE_WRITE;
    cli_progress_phase(&lp->p, lp->writing);
  }
  cli_progress_seconds(&lp->p, el, 0);
}

/* Begins lp's line for command c doing what, reported through conn. */
static void lab_progress_begin(lab_progress *lp, const cmd_spec *c, cli_conn *conn,
                               const char *what, double seconds, const char *writing) {
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "proflab %s", c->name);
  lp->seconds = seconds;
  lp->stage = seconds > 0 ? STAGE_RECORD : STAGE_WRITE;
  lp->writing = writing;
  cli_progress_begin(&lp->p, cmd, what);
  cli_conn_set_progress(conn, on_transfer, lp);
}

/* Download (name, task, sha256) to out (default: the name, here) and
 * report. trigger is the answer that named the artifact (may be NULL). */
static int fetch_and_report(const cmd_spec *c, cli_conn *conn, const cli_args *a, const char *name,
                            const char *task, const char *sha256, json_t *trigger,
                            lab_progress *lp) {
  if (!pl__artifact_name_valid(name)) {
    cli_progress_end(&lp->p);
    fprintf(stderr,
            "proflab %s: the lab named an artifact '%.80s', which is not an artifact name\n",
            c->name, name);
    return CLI_EXIT_FAIL;
  }
  cli_download_opts o = {
      .name = name,
      .task = task,
      .sha256 = sha256,
      .dest = a->out ? a->out : name,
      .attempts = a->attempts ? (unsigned)a->attempts : 20,
      .backoff_ms = 100,
  };
  cli_download_result res;
  char err[1536], what[160];
  snprintf(what, sizeof(what), "downloading %s", name);
  lp->stage = STAGE_DOWNLOAD;
  cli_progress_phase(&lp->p, what);
  int drc = cli_download(conn, &o, &res, err, sizeof(err));
  cli_progress_end(&lp->p);
  cli_conn_set_progress(conn, NULL, NULL);
  if (drc != 0) {
    fprintf(stderr, "proflab %s: %s\n", c->name, err);
    return CLI_EXIT_FAIL;
  }
  if (a->json) {
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:s, s:b, s:I, s:I, s:I}", "file", o.dest,
                          "artifact", name, "task", res.task, "bytes", (json_int_t)res.bytes,
                          "sha256", res.sha256, "verified", sha256 && *sha256, "attempts",
                          (json_int_t)res.attempts, "wrong_task_answers",
                          (json_int_t)res.wrong_task, "resumed", (json_int_t)res.resumed);
    if (j && trigger) json_object_set(j, "lab", trigger);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (!text) {
      json_decref(j);
      fprintf(stderr, "proflab %s: out of memory\n", c->name);
      return CLI_EXIT_FAIL;
    }
    printf("%s\n", text);
    free(text);
    json_decref(j);
  } else {
    char b[32];
    printf("%s: %s (%s) from task %s, sha256 %s%s\n", o.dest, name,
           human_bytes((double)res.bytes, b, sizeof(b)), res.task, res.sha256,
           sha256 && *sha256 ? " (verified)" : "");
  }
  return CLI_EXIT_OK;
}

/* POST the trigger, then fetch what it wrote. The progress line says
 * recording for seconds (0: no timed part), then writing until the answer. */
static int trigger_and_fetch(const cmd_spec *c, const cli_args *a, const char *path, long timeout,
                             const char *recording, double seconds, const char *writing) {
  cli_conn *conn = connect_lab(c, a);
  if (!conn) return CLI_EXIT_FAIL;
  lab_progress lp = {0};
  lab_progress_begin(&lp, c, conn, recording, seconds, writing);
  cli_answer ans;
  int rc = call_ok(c, conn, "POST", path, timeout, &ans);
  if (rc) {
    cli_progress_end(&lp.p);
    cli_conn_free(conn);
    return rc;
  }
  const char *name = jstr(ans.json, "file");
  if (!*name) name = jstr(ans.json, "name");
  const char *task = jstr(ans.json, "task");
  if (!*task) task = ans.task; /* the x-lab-task header */
  const char *sha = jstr(ans.json, "sha256");
  if (!*name || !*task || !*sha) {
    cli_progress_end(&lp.p);
    fprintf(stderr, "proflab %s: the lab's answer lacks file, task or sha256: %.200s\n", c->name,
            ans.body);
    rc = CLI_EXIT_FAIL;
  } else {
    if (a->verbose) {
      cli_progress_clear(&lp.p);
      fprintf(stderr, "proflab %s: task %s wrote %s\n", c->name, task, name);
    }
    rc = fetch_and_report(c, conn, a, name, task, sha, ans.json, &lp);
  }
  cli_answer_free(&ans);
  cli_conn_free(conn);
  return rc;
}

#define DOWNLOAD_OPTS \
  {"out", required_argument, NULL, OPT_OUT}, { "attempts", required_argument, NULL, OPT_ATTEMPTS }

#define DOWNLOAD_OPTS_HELP                                                              \
  "  -o, --out FILE     where to write (default: the artifact's name, here); written\n" \
  "                     only once its SHA-256 matches\n"                                \
  "  --attempts N       download requests before giving up (default 20): answers\n"     \
  "                     from another task behind a load balancer are retried\n"

static const cmd_spec profile_spec = {
    "profile",
    "[--seconds N] [--format F] [--hz H] [--mode M]\n"
    "                       [--threads LIST] [--offcpu] [-o FILE] [options]",
    "Record a CPU profile on the lab, then download it from the task that wrote it\n"
    "and check its SHA-256. Behind a load balancer the stickiness cookie is kept\n"
    "and other tasks' answers are retried; if that fails, `proflab export --task\n"
    "TASK` gets the file through the container's exec channel. On a terminal,\n"
    "stderr shows the recording's seconds, then the download (PROFLAB_PROGRESS=0:\n"
    "off).",
    (const struct option[]){{"seconds", required_argument, NULL, OPT_SECONDS},
                            {"format", required_argument, NULL, OPT_FORMAT},
                            {"hz", required_argument, NULL, OPT_HZ},
                            {"mode", required_argument, NULL, OPT_MODE},
                            {"threads", required_argument, NULL, OPT_THREADS},
                            {"offcpu", no_argument, NULL, OPT_OFFCPU},
                            DOWNLOAD_OPTS,
                            {0}},
    "  --seconds N        how long to sample (default 5; at most LAB_MAX_PROFILE_SECONDS)\n"
    "  --format F         cpuprofile (default; DevTools, speedscope), pprof, folded\n"
    "  --hz H             samples per second (default 1000)\n"
    "  --mode M           wall (default): wall-clock samples of the event-loop thread\n"
    "                     (proflabd) or of every thread of the program (an agent);\n"
    "                     cpu: CPU-time samples of every thread\n"
    "  --threads LIST     wall mode: only these threads, thread ids separated by\n"
    "                     commas (at most 64; e.g. 4199,4200), or all\n"
    "  --offcpu           wall mode: threads waiting in a system call (epoll, a\n"
    "                     futex, sleep, read) keep their stacks instead of (idle):\n"
    "                     where they wait\n" DOWNLOAD_OPTS_HELP,
    (const char *const[]){"cpuprofile", "pprof", "folded", NULL}};

/* --threads: "all" or thread ids (1 to 2^31-1) separated by commas, each
 * once, at most PL_CPU_MAX_THREADS; whether each is a thread of the
 * program is the lab's to say (its 422 is shown as is). 0 or an exit
 * status after a one-line reason. */
static int check_threads(const cmd_spec *c, const char *v) {
  if (strcmp(v, "all") == 0) return 0;
  uint64_t seen[PL_CPU_MAX_THREADS];
  unsigned n = 0;
  for (const char *p = v;;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    uint64_t tid;
    if (len == 0 || pl__parse_u64n(p, len, &tid) != 0 || tid == 0 || tid > INT32_MAX)
      return usage_error(c, "--threads '%.60s' must be all or thread ids separated by commas", v);
    for (unsigned i = 0; i < n; i++)
      if (seen[i] == tid)
        return usage_error(c, "--threads names thread %llu twice", (unsigned long long)tid);
    if (n == PL_CPU_MAX_THREADS)
      return usage_error(c, "--threads names more than %d threads; leave it out to sample all",
                         PL_CPU_MAX_THREADS);
    seen[n++] = tid;
    if (!end) return 0;
    p = end + 1;
  }
}

int cli_cmd_profile(int argc, char **argv) {
  const cmd_spec *c = &profile_spec;
  cli_args a;
  int rc = parse_args(c, argc, argv, &a);
  if (rc >= 0) return rc;
  if (a.mode && strcmp(a.mode, "wall") != 0 && strcmp(a.mode, "cpu") != 0)
    return usage_error(c, "--mode '%.40s' must be wall or cpu", a.mode);
  int cpu_mode = a.mode && strcmp(a.mode, "cpu") == 0;
  if (a.threads && cpu_mode)
    return usage_error(c, "--threads is for --mode wall; --mode cpu samples every thread");
  if (a.offcpu && cpu_mode)
    return usage_error(c, "--offcpu is for --mode wall; --mode cpu samples running threads only");
  if (a.threads && (rc = check_threads(c, a.threads)) != 0) return rc;
  char path[1024]; /* 64 thread ids of up to 10 digits fit */
  uint64_t seconds = a.has_seconds ? a.seconds : 5;
  int n = snprintf(path, sizeof(path), "/api/lab/cpu-profile?seconds=%llu",
                   (unsigned long long)seconds);
  if (a.format) n += snprintf(path + n, sizeof(path) - (size_t)n, "&format=%s", a.format);
  if (a.has_hz)
    n += snprintf(path + n, sizeof(path) - (size_t)n, "&hz=%llu", (unsigned long long)a.hz);
  if (a.mode) n += snprintf(path + n, sizeof(path) - (size_t)n, "&mode=%s", a.mode);
  if (a.threads) n += snprintf(path + n, sizeof(path) - (size_t)n, "&threads=%s", a.threads);
  if (a.offcpu) snprintf(path + n, sizeof(path) - (size_t)n, "&offcpu=1");
  return trigger_and_fetch(c, &a, path, (long)seconds + 300, "recording a CPU profile",
                           (double)seconds, "the lab writes the profile");
}

static const cmd_spec snapshot_spec = {
    "snapshot",
    "[--format F] [-o FILE] [options]",
    "Take a heap snapshot on the lab, then download it from the task that wrote it\n"
    "and check its SHA-256 (as `proflab profile` does), with progress on a terminal.",
    (const struct option[]){{"format", required_argument, NULL, OPT_FORMAT}, DOWNLOAD_OPTS, {0}},
    "  --format F         heapsnapshot (default; DevTools Memory panel), heapprofile,\n"
    "                     pprof\n" DOWNLOAD_OPTS_HELP,
    (const char *const[]){"heapsnapshot", "heapprofile", "pprof", NULL}};

int cli_cmd_snapshot(int argc, char **argv) {
  const cmd_spec *c = &snapshot_spec;
  cli_args a;
  int rc = parse_args(c, argc, argv, &a);
  if (rc >= 0) return rc;
  char path[256];
  snprintf(path, sizeof(path), "/api/lab/heap-snapshot%s%s", a.format ? "?format=" : "",
           a.format ? a.format : "");
  return trigger_and_fetch(c, &a, path, 600, "the lab takes a heap snapshot", 0,
                           "the lab takes a heap snapshot");
}

static const cmd_spec download_spec = {
    "download",
    "NAME [--task TASK] [--sha256 HEX] [-o FILE] [options]",
    "Download artifact NAME (see `proflab artifacts`). With --task, only that\n"
    "task's answer is taken (others are retried); with --sha256 the file is\n"
    "checked before it is written.",
    (const struct option[]){{"task", required_argument, NULL, OPT_TASK},
                            {"sha256", required_argument, NULL, OPT_SHA256},
                            DOWNLOAD_OPTS,
                            {0}},
    "  --task TASK        the task that has it (its x-lab-task)\n"
    "  --sha256 HEX       the expected SHA-256 (64 hex digits)\n" DOWNLOAD_OPTS_HELP,
    NULL};

int cli_cmd_download(int argc, char **argv) {
  const cmd_spec *c = &download_spec;
  cli_args a;
  int rc = parse_args(c, argc, argv, &a);
  if (rc >= 0) return rc;
  if (!a.positional) return usage_error(c, "%s is required", "the artifact NAME");
  if (!pl__artifact_name_valid(a.positional))
    return usage_error(c, "'%.80s' is not an artifact name", a.positional);
  if (a.sha256) {
    size_t l = strlen(a.sha256);
    int hex = l == 64;
    for (size_t i = 0; hex && i < l; i++)
      hex = (a.sha256[i] >= '0' && a.sha256[i] <= '9') ||
            (a.sha256[i] >= 'a' && a.sha256[i] <= 'f') ||
            (a.sha256[i] >= 'A' && a.sha256[i] <= 'F');
    if (!hex) return usage_error(c, "--sha256 '%.70s' must be 64 hex digits", a.sha256);
  }
  cli_conn *conn = connect_lab(c, &a);
  if (!conn) return CLI_EXIT_FAIL;
  lab_progress lp = {0};
  lab_progress_begin(&lp, c, conn, "downloading", 0, "downloading");
  rc = fetch_and_report(c, conn, &a, a.positional, a.task, a.sha256, NULL, &lp);
  cli_conn_free(conn);
  return rc;
}

/* ---- for other commands (leaks): a connection and heap snapshots -------- */

int cli_lab_connect(const char *cmd, const char *url, const char *token, const char *token_file,
                    int verbose, struct cli_conn **out) {
  const cmd_spec c = {.name = cmd};
  cli_args a;
  memset(&a, 0, sizeof(a));
  *out = NULL;
  a.url = url;
  a.token = token;
  a.token_file = token_file;
  int rc = resolve_target(&c, &a);
  if (rc >= 0) return rc;
  a.verbose = verbose;
  *out = connect_lab(&c, &a);
  memset(a.token_buf, 0, sizeof(a.token_buf));
  return *out ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cli_lab_heap_snapshot(const char *cmd, struct cli_conn *conn, const char *task, const char *dir,
                          unsigned attempts, char *path, size_t path_len, char *task_out,
                          size_t task_len) {
  const cmd_spec c = {.name = cmd};
  cli_answer ans;
  int rc = call_ok(&c, conn, "POST", "/api/lab/heap-snapshot", 600, &ans);
  if (rc) return rc;
  const char *name = jstr(ans.json, "file");
  if (!*name) name = jstr(ans.json, "name");
  const char *from = jstr(ans.json, "task");
  if (!*from) from = ans.task;
  const char *sha = jstr(ans.json, "sha256");
  rc = CLI_EXIT_FAIL;
  if (!*name || !*from || !*sha) {
    fprintf(stderr, "proflab %s: the lab's answer lacks file, task or sha256: %.200s\n", cmd,
            ans.body);
  } else if (!pl__artifact_name_valid(name)) {
    fprintf(stderr,
            "proflab %s: the lab named an artifact '%.80s', which is not an artifact name\n", cmd,
            name);
  } else if (task && *task && strcmp(task, from) != 0) {
    fprintf(stderr,
            "proflab %s: task %s took the snapshot, not task %s: snapshots of different "
            "processes cannot be compared (a load balancer without stickiness? give --task)\n",
            cmd, from, task);
  } else if ((size_t)snprintf(path, path_len, "%s/%s", dir, name) >= path_len) {
    fprintf(stderr, "proflab %s: the directory name is too long: %.80s\n", cmd, dir);
  } else {
    cli_download_opts o = {.name = name,
                           .task = from,
                           .sha256 = sha,
                           .dest = path,
                           .attempts = attempts ? attempts : 20,
                           .backoff_ms = 100};
    cli_download_result res;
    char err[1536];
    if (cli_download(conn, &o, &res, err, sizeof(err)) != 0) {
      fprintf(stderr, "proflab %s: %s\n", cmd, err);
    } else {
      snprintf(task_out, task_len, "%s", from);
      rc = CLI_EXIT_OK;
    }
  }
  cli_answer_free(&ans);
  return rc;
}
