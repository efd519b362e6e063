/* proflab leaks: allocation sites whose live bytes grow steadily across
 * three or more heap snapshots (files, or taken from a lab with --url),
 * ranked, with a verdict from src/analysis/leaks.h. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "analysis/dominators.h"
#include "analysis/leaks.h"
#include "cli.h"
#include "cli_http.h"
#include "common/util.h"
#include "proflab/buf.h"

#define DEFAULT_LIMIT 20
/* --fail-on-leak's exit status when a likely leak is found. */
#define EXIT_LEAK_FOUND 3
#define DEFAULT_EVERY 10.0
#define DEFAULT_COUNT 6
/* Files at least this large show reading progress on a terminal. */
#define PROGRESS_MIN_BYTES (4u << 20)

static void usage(FILE *f) {
  fprintf(f,
          "usage: proflab leaks SNAPSHOT SNAPSHOT SNAPSHOT... [options]\n"
          "       proflab leaks --url URL [--every 10s] [--count 6] [--keep DIR] [options]\n"
          "\n"
          "Finds the allocation sites (proflab's snapshots: the allocating function;\n"
          "Node's and Chrome's: the constructor) whose live bytes grow steadily across\n"
          "three or more .heapsnapshot files of one process, ranks them by growth rate\n"
          "and says what each is: likely leak, possible leak (and why not likely), grew\n"
          "once, or churn (objects allocated and freed again: up and down, not a leak).\n"
          "Objects are followed by id from snapshot to snapshot, so a site that frees\n"
          "what it allocated is not called a leak even when its bytes happen to rise,\n"
          "and a leak is found under churn at the same site. With --url the snapshots\n"
          "are taken from a lab, as `proflab snapshot` does, --every apart.\n"
          "\n"
          "options:\n"
          "  -n, --limit N       rows to show (default %d; 0 shows all)\n"
          "  --all               also show stable and shrinking sites\n"
          "  --json              machine-readable output on stdout\n"
          "  --fail-on-leak      exit 3 when a likely leak is found (for CI)\n"
          "  --min-growth SIZE   growth below this is not a leak (default 64KiB; suffixes\n"
          "                      K, M, G, KiB, MiB, GiB)\n"
          "  --interval DURATION time between the files, taken in the order given\n"
          "                      (10s, 500ms, 2m, 1h; a bare number is seconds)\n"
          "  -h, --help          this help\n"
          "lab options (--url):\n"
          "  --url URL           the lab (LAB_URL); takes the snapshots\n"
          "  --pid PID           the agent in process PID (its address; proflab ps)\n"
          "  --every DURATION    time between snapshots (default 10s)\n"
          "  --count N           snapshots to take, 3 to 1000 (default %d)\n"
          "  --keep DIR          keep the downloaded snapshots in DIR (created); without\n"
          "                      it they go to a temporary directory, removed as read\n"
          "  --token TOKEN       the lab token (LAB_TOKEN)\n"
          "  --token-file FILE   read the token from FILE (its first line)\n"
          "  --task TASK         the task that must take every snapshot (default: the\n"
          "                      one that takes the first)\n"
          "  --attempts N        download requests per snapshot (default 20)\n"
          "  -v, --verbose       say what happens on stderr\n"
          "\n"
          "Times: with --url, when each snapshot was taken; for files, from their names\n"
          "(proflab's heapdump-YYYYMMDDTHHMMSS.mmmZ-TASK.heapsnapshot, UTC; Node's\n"
          "Heap.YYYYMMDD.HHMMSS.PID.0.SEQ.heapsnapshot, local time) when every name has\n"
          "one, else the files' modification times; files are sorted by that time.\n"
          "--interval overrides both. The output says which was used.\n"
          "\n"
          "The verdict (docs/internals.md, \"Leak verdicts\"): a site's kept bytes are\n"
          "those of its objects still alive at the last snapshot. Likely leak: kept\n"
          "bytes grew by at least --min-growth, in at least 3/4 of the intervals, on a\n"
          "straight line (R\xc2\xb2 >= 0.8), with at least 3 new objects kept (at proflab's\n"
          "sampling, each sample stands for many allocations). Possible leak: growth in\n"
          "at least 2 intervals short of that. Churn: objects allocated and freed, bytes\n"
          "up and down.\n"
          "\n"
          "exit status: 0 success, 1 a snapshot could not be read or taken (reason on\n"
          "stderr), 2 bad command line, 3 a likely leak was found with --fail-on-leak\n",
          DEFAULT_LIMIT, DEFAULT_COUNT);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...) {
  fprintf(stderr, "proflab leaks: ");
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see proflab leaks --help)\n");
  return CLI_EXIT_USAGE;
}

/* "10s", "500ms", "2m", "1h", "1.5" (seconds): 0, or -EINVAL. */
static int parse_duration(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno || !isfinite(v) || v < 0 || *s == '-' || *s == '+' || *s == ' ')
    return -EINVAL;
  double mul;
  if (!*end || strcmp(end, "s") == 0)
    mul = 1;
  else if (strcmp(end, "ms") == 0)
    mul = 1e-3;
  else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
    mul = 60;
  else if (strcmp(end, "h") == 0)
    mul = 3600;
  else
    return -EINVAL;
  *out = v * mul;
  return 0;
}

/* "64KiB", "1M", "1000": bytes; 0, or -EINVAL. */
static int parse_size(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno || !isfinite(v) || v < 0 || *s == '-' || *s == '+' || *s == ' ')
    return -EINVAL;
  static const char *const units[] = {"",    "B",  "K", "KiB", "KB", "M",
                                      "MiB", "MB", "G", "GiB", "GB"};
  static const double mul[] = {1,       1,       1024,         1024,         1024,        1048576,
                               1048576, 1048576, 1073741824.0, 1073741824.0, 1073741824.0};
  for (size_t i = 0; i < PL__ARRAY_SIZE(units); i++)
    if (strcmp(end, units[i]) == 0) {
      *out = v * mul[i];
      return 0;
    }
  return -EINVAL;
}

/* ---- reading a snapshot into the series --------------------------------- */

typedef struct reader {
  cli_progress prog;
  const char *name;
  size_t index, total; /* this file, of how many */
} reader;

static void on_read_progress(void *ctx, uint64_t done, uint64_t total) {
  reader *r = ctx;
  if (!r->prog.active) {
    if ((total ? total : done) < PROGRESS_MIN_BYTES) return;
    char what[300];
    snprintf(what, sizeof(what), "reading %zu/%zu %s", r->index + 1, r->total, r->name);
    cli_progress_begin(&r->prog, "proflab leaks", what);
  }
  cli_progress_bytes(&r->prog, done, total);
}

/* Reads the .heapsnapshot at path, reduces it to (id, class, size) per
 * object with a size, adds it at time t and frees the graph. CLI_EXIT_OK
 * or CLI_EXIT_FAIL after the reason on stderr. */
static int add_snapshot(pl__leaks *L, reader *r, const char *path, double t) {
  pl__profile pf;
  pl__read_err err;
  r->name = path;
  pl__read_opts opts = {.progress = on_read_progress, .progress_ctx = r};
  int rc = pl__read_profile_ex(path, -1, &opts, &pf, &err);
  if (rc) {
    cli_progress_end(&r->prog);
    fprintf(stderr, "proflab leaks: %s: %s\n", path, err.msg[0] ? err.msg : strerror(-rc));
    return CLI_EXIT_FAIL;
  }
  if (!pf.graph) {
    cli_progress_end(&r->prog);
    fprintf(stderr,
            "proflab leaks: %s: a %s, not a heap snapshot: leaks reads .heapsnapshot files "
            "(proflab snapshot, Node's v8.writeHeapSnapshot, DevTools)\n",
            path, cli_profile_description(&pf));
    pl__profile_free(&pf);
    return CLI_EXIT_FAIL;
  }
  cli_progress_phase(&r->prog, "grouping objects by class");
  pl__heap_classes c;
  const pl_heap_graph *g = pf.graph;
  rc = pl__heap_classify(g, &c);
  if (rc) {
    cli_progress_end(&r->prog);
    fprintf(stderr, "proflab leaks: %s: %s\n", path,
            rc == -ENOMEM ? "out of memory" : "the snapshot has no nodes");
    pl__profile_free(&pf);
    return CLI_EXIT_FAIL;
  }
  size_t n = 0;
  for (uint32_t v = 0; v < g->node_count; v++) n += c.self[v] != 0;
  pl__leaks_obj *objs = malloc((n ? n : 1) * sizeof(*objs));
  rc = -ENOMEM;
  if (objs) {
    size_t j = 0;
    for (uint32_t v = 0; v < g->node_count; v++)
      if (c.self[v])
        objs[j++] =
            (pl__leaks_obj){.id = g->node_id[v],
                            .cls = c.of[v],
                            .bytes = c.self[v] > UINT32_MAX ? UINT32_MAX : (uint32_t)c.self[v]};
    rc = pl__leaks_add(L, t, c.key, c.name, c.n, objs, n);
  }
  pl__heap_classes_free(&c);
  pl__profile_free(&pf);
  cli_progress_end(&r->prog);
  if (rc) {
    fprintf(
        stderr, "proflab leaks: %s: %s\n", path,
        rc == -ENOMEM ? "out of memory" : "two objects with one id: not a snapshot of one heap");
    return CLI_EXIT_FAIL;
  }
  return CLI_EXIT_OK;
}

/* ---- times of files ----------------------------------------------------- */

typedef struct file_time {
  const char *path;
  double t;     /* seconds */
  uint64_t seq; /* Node's sequence number */
  size_t order; /* on the command line */
} file_time;

static int by_time(const void *a, const void *b) {
  const file_time *x = a, *y = b;
  if (x->t != y->t) return x->t < y->t ? -1 : 1;
  if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/* Times of the files from their names (when each has one, of one kind),
 * else their modification times; sorts ft. Returns a description of the
 * source, or NULL after a reason on stderr. */
static const char *file_times(file_time *ft, size_t n) {
  int kind = -1; /* 1 utc, 0 local */
  int names = 1;
  for (size_t i = 0; i < n && names; i++) {
    const char *b = base_name(ft[i].path);
    pl__leaks_name_time nt;
    if (pl__leaks_parse_name_time(b, strlen(b), &nt) || (kind >= 0 && nt.utc != kind)) {
      names = 0;
      break;
    }
    kind = nt.utc;
    struct tm tm = {.tm_year = nt.year - 1900,
                    .tm_mon = nt.month - 1,
                    .tm_mday = nt.day,
                    .tm_hour = nt.hour,
                    .tm_min = nt.min,
                    .tm_sec = nt.sec,
                    .tm_isdst = -1};
    time_t s = nt.utc ? timegm(&tm) : mktime(&tm);
    if (s == (time_t)-1) {
      names = 0;
      break;
    }
    ft[i].t = (double)s + nt.msec / 1000.0;
    ft[i].seq = nt.seq;
  }
  if (names) {
    qsort(ft, n, sizeof(*ft), by_time);
    int distinct = 1;
    for (size_t i = 1; i < n; i++)
      if (!(ft[i].t > ft[i - 1].t)) distinct = 0;
    if (distinct)
      return kind ? "times from proflab's file names (UTC)"
                  : "times from Node's file names (local time, whole seconds)";
  }
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (stat(ft[i].path, &st) != 0) {
      fprintf(stderr, "proflab leaks: %s: %s\n", ft[i].path, strerror(errno));
      return NULL;
    }
    ft[i].t = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
    ft[i].seq = 0;
  }
  qsort(ft, n, sizeof(*ft), by_time);
  for (size_t i = 1; i < n; i++)
    if (!(ft[i].t > ft[i - 1].t)) {
      fprintf(stderr,
              "proflab leaks: %s and %s have the same time (name and modification time): "
              "give --interval DURATION and the files in the order they were taken\n",
              ft[i - 1].path, ft[i].path);
      return NULL;
    }
  return names ? "times from the files' modification times (their names' times are not distinct)"
               : "times from the files' modification times";
}

/* ---- output ------------------------------------------------------------- */

typedef struct view {
  const pl__leaks_result *r;
  const char *const *files; /* by snapshot, as analysed */
  const char *times;
  int all, json;
  uint64_t limit;
} view;

static int shown_site(const view *v, const pl__leak_site *s) {
  int bytes = 0; /* a class without a byte in any snapshot (the root) is never shown */
  for (size_t k = 0; k < v->r->nsnapshots && !bytes; k++) bytes = s->bytes[k] != 0;
  return bytes && (v->all || (s->verdict != PL__LEAK_STABLE && s->verdict != PL__LEAK_SHRINKING));
}

static void put_bytes(char *out, size_t n, double b) { cli_put_bytes(out, n, b, 0); }

/* The one-line verdict of a leak ("grows 10.2 MiB/min across 6 snapshots,
 * never shrinks: likely leak"). */
static void verdict_line(const pl__leak_site *s, size_t nsnap, char *out, size_t n) {
  char rate[32];
  cli_put_bytes(rate, sizeof(rate), s->leak_rate * 60, 0);
  switch (s->verdict) {
    case PL__LEAK_LIKELY:
      if (s->freed_objects && s->new_bytes && s->freed_bytes * 20 > s->new_bytes)
        snprintf(out, n,
                 "keeps %s/min across %zu snapshots while %.0f%% of its new bytes are freed "
                 "again: likely leak, mixed with churn",
                 rate, nsnap, 100.0 * (double)s->freed_bytes / (double)s->new_bytes);
      else
        snprintf(out, n, "grows %s/min across %zu snapshots, %s: likely leak", rate, nsnap,
                 s->never_shrinks ? "never shrinks" : "kept objects never freed");
      break;
    case PL__LEAK_POSSIBLE:
      snprintf(out, n, "grows %s/min across %zu snapshots, but %s: possible leak", rate, nsnap,
               s->reason);
      break;
    case PL__LEAK_GREW_ONCE: {
      char g[32];
      put_bytes(g, sizeof(g), s->growth);
      snprintf(out, n, "grew %s in one step, then held: not a steady leak (a cache filling?)", g);
      break;
    }
    case PL__LEAK_CHURN:
      snprintf(out, n, "%llu objects allocated and %llu freed, bytes up and down: churn",
               (unsigned long long)s->new_objects, (unsigned long long)s->freed_objects);
      break;
    default:
      snprintf(out, n, "%s", pl__leak_verdict_name(s->verdict));
  }
}

static void print_text(const view *v) {
  const pl__leaks_result *r = v->r;
  size_t nsnap = r->nsnapshots, m = nsnap - 1;
  size_t counts[6] = {0};
  for (size_t i = 0; i < r->nsites; i++) counts[r->sites[i].verdict]++;
  printf(
      "%zu snapshots over %.1f s (%s), %zu sites: %zu likely leak%s, %zu possible, %zu grew "
      "once, %zu churn\n",
      nsnap, r->t[nsnap - 1], v->times, r->nsites, counts[PL__LEAK_LIKELY],
      counts[PL__LEAK_LIKELY] == 1 ? "" : "s", counts[PL__LEAK_POSSIBLE],
      counts[PL__LEAK_GREW_ONCE], counts[PL__LEAK_CHURN]);
  size_t shown = 0, more = 0, rank = 0;
  int header = 0, churn_header = 0;
  for (size_t i = 0; i < r->nsites; i++) {
    const pl__leak_site *s = &r->sites[i];
    if (!shown_site(v, s)) continue;
    rank++;
    if (v->limit && shown >= v->limit) {
      more++;
      continue;
    }
    if (!header) {
      printf("\n%4s  %-13s %11s  %-23s %-15s %s\n", "#", "verdict", "rate/min", "first -> last",
             "steady", "site");
      header = 1;
    }
    if (s->verdict >= PL__LEAK_CHURN && !churn_header) {
      printf("not leaks (objects freed again, or no growth):\n");
      churn_header = 1;
    }
    char rate[32], first[32], last[32], fl[80], steady[48], line[400];
    /* churn has no rate worth showing: its bytes go up and down */
    if (s->verdict <= PL__LEAK_GREW_ONCE)
      cli_put_bytes(rate, sizeof(rate), s->leak_rate * 60, 1);
    else
      snprintf(rate, sizeof(rate), "-");
    put_bytes(first, sizeof(first), (double)s->bytes[0]);
    put_bytes(last, sizeof(last), (double)s->bytes[nsnap - 1]);
    snprintf(fl, sizeof(fl), "%s -> %s", first, last);
    if (s->verdict <= PL__LEAK_GREW_ONCE)
      snprintf(steady, sizeof(steady), "%u/%zu R\xc2\xb2 %.2f", s->grew, m, s->leak_r2);
    else
      snprintf(steady, sizeof(steady), "up %u down %u", s->b_grew, s->b_shrank);
    printf("%4zu  %-13s %11s  %-23s %-15s %s\n", rank, pl__leak_verdict_name(s->verdict), rate, fl,
           steady, s->name);
    if (s->verdict <= PL__LEAK_GREW_ONCE) {
      verdict_line(s, nsnap, line, sizeof(line));
      printf("      %s\n", line);
    }
    shown++;
  }
  if (!header) printf("no growing or churning site%s\n", v->all ? "" : " (--all shows the others)");
  if (more) printf("(%zu more sites; --limit 0 shows all)\n", more);
}

static int print_json(const view *v) {
  const pl__leaks_result *r = v->r;
  size_t nsnap = r->nsnapshots;
  pl_buf b;
  pl_buf_init(&b);
  pl_json j;
  pl_json_init(&j, &b);
  pl_json_obj_open(&j);
  pl_json_kv_str(&j, "times", v->times);
  pl_json_key(&j, "snapshots");
  pl_json_arr_open(&j);
  for (size_t k = 0; k < nsnap; k++) {
    pl_json_obj_open(&j);
    pl_json_kv_str(&j, "file", v->files[k] ? v->files[k] : "");
    pl_json_kv_double(&j, "time_s", r->t[k], 3);
    pl_json_obj_close(&j);
  }
  pl_json_arr_close(&j);
  size_t likely = 0;
  for (size_t i = 0; i < r->nsites; i++) likely += r->sites[i].verdict == PL__LEAK_LIKELY;
  pl_json_kv_uint(&j, "likely_leaks", likely);
  pl_json_kv_uint(&j, "sites_total", r->nsites);
  pl_json_key(&j, "sites");
  pl_json_arr_open(&j);
  size_t shown = 0;
  for (size_t i = 0; i < r->nsites; i++) {
    const pl__leak_site *s = &r->sites[i];
    if (!shown_site(v, s)) continue;
    if (v->limit && shown >= v->limit) break;
    shown++;
    char line[400];
    verdict_line(s, nsnap, line, sizeof(line));
    pl_json_obj_open(&j);
    pl_json_kv_str(&j, "name", s->name);
    if (strcmp(s->key, s->name) != 0) pl_json_kv_str(&j, "key", s->key);
    pl_json_kv_str(&j, "verdict", pl__leak_verdict_name(s->verdict));
    pl_json_kv_str(&j, "summary", line);
    if (*s->reason) pl_json_kv_str(&j, "reason", s->reason);
    pl_json_kv_double(&j, "rate_bytes_per_min", s->rate * 60, 1);
    pl_json_kv_double(&j, "r2", s->r2, 4);
    pl_json_kv_double(&j, "leak_rate_bytes_per_min", s->leak_rate * 60, 1);
    pl_json_kv_double(&j, "leak_r2", s->leak_r2, 4);
    pl_json_kv_double(&j, "growth_bytes", s->growth, 0);
    pl_json_kv_uint(&j, "grew_intervals", s->grew);
    pl_json_kv_uint(&j, "intervals", nsnap - 1);
    pl_json_kv_uint(&j, "bytes_rose", s->b_grew);
    pl_json_kv_uint(&j, "bytes_fell", s->b_shrank);
    pl_json_kv_bool(&j, "never_shrinks", s->never_shrinks);
    pl_json_key(&j, "keep_ratio");
    if (s->keep_ratio >= 0)
      pl_json_double(&j, s->keep_ratio, 4);
    else
      pl_json_null(&j);
    pl_json_kv_uint(&j, "evidence", s->evidence);
    pl_json_kv_uint(&j, "new_objects", s->new_objects);
    pl_json_kv_uint(&j, "freed_objects", s->freed_objects);
    pl_json_kv_uint(&j, "new_bytes", s->new_bytes);
    pl_json_kv_uint(&j, "freed_bytes", s->freed_bytes);
    pl_json_kv_uint(&j, "first_bytes", s->bytes[0]);
    pl_json_kv_uint(&j, "last_bytes", s->bytes[nsnap - 1]);
    pl_json_key(&j, "bytes");
    pl_json_arr_open(&j);
    for (size_t k = 0; k < nsnap; k++) pl_json_uint(&j, s->bytes[k]);
    pl_json_arr_close(&j);
    pl_json_key(&j, "counts");
    pl_json_arr_open(&j);
    for (size_t k = 0; k < nsnap; k++) pl_json_uint(&j, s->count[k]);
    pl_json_arr_close(&j);
    pl_json_key(&j, "kept_bytes");
    pl_json_arr_open(&j);
    for (size_t k = 0; k < nsnap; k++) pl_json_double(&j, s->kept[k], 0);
    pl_json_arr_close(&j);
    pl_json_obj_close(&j);
  }
  pl_json_arr_close(&j);
  pl_json_obj_close(&j);
  return cli_print_json("leaks", &b);
}

/* ---- taking snapshots from a lab ---------------------------------------- */

typedef struct lab_opts {
  const char *url, *token, *token_file, *task, *keep;
  double every;
  uint64_t count, attempts;
  int verbose;
} lab_opts;

static double mono_s(void) { return (double)pl__now_ns() / 1e9; }

/* Waits until mono_s() reaches deadline, showing "snapshot K/N taken,
 * next in S s" (k: snapshots taken so far). */
static void wait_until(cli_progress *p, double deadline, size_t k, size_t n) {
  for (;;) {
    double left = deadline - mono_s();
    if (left <= 0) return;
    char what[96];
    snprintf(what, sizeof(what), "snapshot %zu/%zu taken, next in %.0f s", k, n, ceil(left));
    cli_progress_phase(p, what);
    double step = left < 0.25 ? left : 0.25;
    struct timespec ts = {0, (long)(step * 1e9)};
    nanosleep(&ts, NULL);
  }
}

static int take_from_lab(pl__leaks *L, const lab_opts *o, char ***files_out, const char **times) {
  struct cli_conn *conn = NULL;
  int rc = cli_lab_connect("leaks", o->url, o->token, o->token_file, o->verbose, &conn);
  if (rc) return rc;
  char dir[4096];
  int temp = !o->keep;
  if (temp) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/proflab-leaks-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
      fprintf(stderr, "proflab leaks: cannot create a temporary directory in %s: %s\n",
              tmp && *tmp ? tmp : "/tmp", strerror(errno));
      cli_conn_free(conn);
      return CLI_EXIT_FAIL;
    }
  } else {
    if ((size_t)snprintf(dir, sizeof(dir), "%s", o->keep) >= sizeof(dir)) {
      cli_conn_free(conn);
      return usage_error("--keep: the directory name is too long");
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
      fprintf(stderr, "proflab leaks: cannot create %s: %s\n", dir, strerror(errno));
      cli_conn_free(conn);
      return CLI_EXIT_FAIL;
    }
  }
  size_t n = (size_t)o->count;
  char **files = calloc(n, sizeof(*files));
  if (!files) {
    fprintf(stderr, "proflab leaks: out of memory\n");
    rc = CLI_EXIT_FAIL;
    goto out;
  }
  char task[128] = "";
  if (o->task) snprintf(task, sizeof(task), "%s", o->task);
  reader rd = {.total = n};
  double start = mono_s(), t0 = 0;
  cli_progress_begin(&rd.prog, "proflab leaks", "taking snapshots");
  for (size_t k = 0; k < n; k++) {
    wait_until(&rd.prog, start + (double)k * o->every, k, n);
    char what[96];
    snprintf(what, sizeof(what), "snapshot %zu/%zu: taking it", k + 1, n);
    cli_progress_phase(&rd.prog, what);
    char path[4096 + 256], from[128];
    double before = mono_s();
    rc = cli_lab_heap_snapshot("leaks", conn, task, dir, (unsigned)o->attempts, path, sizeof(path),
                               from, sizeof(from));
    if (rc) {
      cli_progress_end(&rd.prog);
      goto out;
    }
    double when = before; /* the request's start: the lab takes the snapshot first */
    if (!k) t0 = when;
    if (!task[0]) snprintf(task, sizeof(task), "%s", from);
    /* a temporary file is gone after reading: name the artifact */
    files[k] = strdup(temp ? base_name(path) : path);
    if (!files[k]) {
      cli_progress_end(&rd.prog);
      fprintf(stderr, "proflab leaks: out of memory\n");
      rc = CLI_EXIT_FAIL;
      goto out;
    }
    if (o->verbose) {
      cli_progress_clear(&rd.prog);
      fprintf(stderr, "proflab leaks: snapshot %zu/%zu from task %s: %s\n", k + 1, n, from, path);
    }
    snprintf(what, sizeof(what), "snapshot %zu/%zu: reading it", k + 1, n);
    cli_progress_phase(&rd.prog, what);
    rd.index = k;
    rc = add_snapshot(L, &rd, path, when - t0);
    if (temp) unlink(path);
    if (rc) goto out;
    cli_progress_begin(&rd.prog, "proflab leaks", "taking snapshots");
  }
  cli_progress_end(&rd.prog);
  rc = CLI_EXIT_OK;
out:
  if (temp) rmdir(dir);
  cli_conn_free(conn);
  if (rc && files) {
    for (size_t k = 0; k < n; k++) free(files[k]);
    free(files);
    files = NULL;
  }
  *files_out = files;
  *times = temp ? "times: when each snapshot was taken from the lab"
                : "times: when each snapshot was taken from the lab (kept in --keep)";
  return rc;
}

/* ---- the command -------------------------------------------------------- */

enum {
  OPT_JSON = 1000,
  OPT_ALL,
  OPT_FAIL,
  OPT_MIN_GROWTH,
  OPT_INTERVAL,
  OPT_URL,
  OPT_PID,
  OPT_EVERY,
  OPT_COUNT,
  OPT_KEEP,
  OPT_TOKEN,
  OPT_TOKEN_FILE,
  OPT_TASK,
  OPT_ATTEMPTS,
};

int cli_cmd_leaks(int argc, char **argv) {
  static const struct option opts[] = {
      {"limit", required_argument, NULL, 'n'},
      {"all", no_argument, NULL, OPT_ALL},
      {"json", no_argument, NULL, OPT_JSON},
      {"fail-on-leak", no_argument, NULL, OPT_FAIL},
      {"min-growth", required_argument, NULL, OPT_MIN_GROWTH},
      {"interval", required_argument, NULL, OPT_INTERVAL},
      {"url", required_argument, NULL, OPT_URL},
      {"pid", required_argument, NULL, OPT_PID},
      {"every", required_argument, NULL, OPT_EVERY},
      {"count", required_argument, NULL, OPT_COUNT},
      {"keep", required_argument, NULL, OPT_KEEP},
      {"token", required_argument, NULL, OPT_TOKEN},
      {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
      {"task", required_argument, NULL, OPT_TASK},
      {"attempts", required_argument, NULL, OPT_ATTEMPTS},
      {"verbose", no_argument, NULL, 'v'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  view v = {.limit = DEFAULT_LIMIT};
  lab_opts lo = {.every = DEFAULT_EVERY, .count = DEFAULT_COUNT};
  int fail_on_leak = 0, ch, lab_given = 0, url_given = 0, pid_given = 0;
  double interval = 0, min_growth = 0;
  opterr = 0;
  optind = 1;
  while ((ch = getopt_long(argc, argv, ":hvn:", opts, NULL)) != -1) {
    switch (ch) {
      case 'h':
        usage(stdout);
        return CLI_EXIT_OK;
      case 'n':
        if (cli_parse_limit(optarg, &v.limit))
          return usage_error("--limit '%.40s' must be a whole number from 0 to 1000000000", optarg);
        break;
      case OPT_ALL:
        v.all = 1;
        break;
      case OPT_JSON:
        v.json = 1;
        break;
      case OPT_FAIL:
        fail_on_leak = 1;
        break;
      case OPT_MIN_GROWTH:
        if (parse_size(optarg, &min_growth) || min_growth <= 0)
          return usage_error("--min-growth '%.40s' must be a size above 0 (64KiB, 1M, 1000)",
                             optarg);
        break;
      case OPT_INTERVAL:
        if (parse_duration(optarg, &interval) || interval <= 0 || interval > 1e9)
          return usage_error("--interval '%.40s' must be a duration above 0 (10s, 500ms, 2m)",
                             optarg);
        break;
      case OPT_URL:
        if (pid_given) return usage_error("give --url or --pid, not both");
        lo.url = optarg;
        url_given = 1;
        break;
      case OPT_PID: {
        static char pid_url[160];
        if (lo.url && !pid_given) return usage_error("give --url or --pid, not both");
        pid_given = 1;
        int prc = cli_agent_socket("leaks", optarg, pid_url, sizeof(pid_url));
        if (prc >= 0) return prc;
        lo.url = pid_url;
        url_given = 1;
        break;
      }
      case OPT_EVERY:
        if (parse_duration(optarg, &lo.every) || lo.every < 0.1 || lo.every > 86400)
          return usage_error("--every '%.40s' must be a duration from 100ms to 24h", optarg);
        lab_given = 1;
        break;
      case OPT_COUNT:
        if (pl__parse_u64(optarg, &lo.count) || lo.count < 3 || lo.count > 1000)
          return usage_error("--count '%.40s' must be a whole number from 3 to 1000", optarg);
        lab_given = 1;
        break;
      case OPT_KEEP:
        lo.keep = optarg;
        lab_given = 1;
        break;
      case OPT_TOKEN:
        lo.token = optarg;
        lab_given = 1;
        break;
      case OPT_TOKEN_FILE:
        lo.token_file = optarg;
        lab_given = 1;
        break;
      case OPT_TASK:
        lo.task = optarg;
        lab_given = 1;
        break;
      case OPT_ATTEMPTS:
        if (pl__parse_u64(optarg, &lo.attempts) || lo.attempts < 1 || lo.attempts > 1000)
          return usage_error("--attempts '%.40s' must be a whole number from 1 to 1000", optarg);
        lab_given = 1;
        break;
      case 'v':
        lo.verbose = 1;
        break;
      case ':':
        return usage_error("option %.40s needs a value", argv[optind - 1]);
      default:
        if (optopt && optopt < 256) return usage_error("unknown option '-%c'", optopt);
        return usage_error("unknown option '%.40s'", argv[optind - 1]);
    }
  }
  size_t nfiles = (size_t)(argc - optind);
  int from_lab = url_given || (lab_given && nfiles == 0);
  if (from_lab && nfiles)
    return usage_error("give snapshot files or --url, not both (also given '%.60s')", argv[optind]);
  if (!from_lab && lab_given)
    return usage_error("--every, --count, --keep, --token, --task and --attempts go with --url");
  if (from_lab && interval > 0) return usage_error("--interval is for files; --url uses --every");
  if (!from_lab && nfiles == 0)
    return usage_error("give three or more snapshot files, or --url URL to take them");
  if (!from_lab && nfiles < 3)
    return usage_error(
        "%zu snapshot file%s given: at least 3 are needed to tell a steady "
        "leak from a step or from churn",
        nfiles, nfiles == 1 ? "" : "s");

  pl__leaks *L = pl__leaks_new();
  file_time *ft = NULL;
  char **lab_files = NULL;
  const char **files = NULL;
  pl__leaks_result res = {0};
  int rc = CLI_EXIT_FAIL;
  if (!L) {
    fprintf(stderr, "proflab leaks: out of memory\n");
    return CLI_EXIT_FAIL;
  }
  if (from_lab) {
    rc = take_from_lab(L, &lo, &lab_files, &v.times);
    if (rc) goto out;
    files = (const char **)lab_files;
  } else {
    ft = calloc(nfiles, sizeof(*ft));
    files = calloc(nfiles, sizeof(*files));
    if (!ft || !files) {
      fprintf(stderr, "proflab leaks: out of memory\n");
      goto out;
    }
    for (size_t i = 0; i < nfiles; i++) {
      ft[i] = (file_time){.path = argv[optind + (int)i], .order = i};
      if (strcmp(ft[i].path, "-") == 0) {
        rc = usage_error("snapshots are read from files, not stdin ('-')");
        goto out;
      }
    }
    static char interval_desc[96];
    if (interval > 0) {
      for (size_t i = 0; i < nfiles; i++) ft[i].t = (double)i * interval;
      snprintf(interval_desc, sizeof(interval_desc),
               "times: --interval %g s between snapshots, in the order given", interval);
      v.times = interval_desc;
    } else if (!(v.times = file_times(ft, nfiles))) {
      goto out;
    }
    reader rd = {.total = nfiles};
    for (size_t i = 0; i < nfiles; i++) {
      rd.index = i;
      files[i] = ft[i].path;
      if ((rc = add_snapshot(L, &rd, ft[i].path, ft[i].t - ft[0].t)) != 0) goto out;
    }
  }
  pl__leaks_opts ao = {.min_growth = min_growth};
  int arc = pl__leaks_analyze(L, &ao, &res);
  if (arc) {
    fprintf(stderr, "proflab leaks: %s\n",
            arc == -ENOMEM ? "out of memory" : "fewer than 3 snapshots were read");
    rc = CLI_EXIT_FAIL;
    goto out;
  }
  v.r = &res;
  v.files = files;
  if (v.json) {
    rc = print_json(&v);
  } else {
    print_text(&v);
    rc = cli_flush_stdout("leaks");
  }
  if (rc == CLI_EXIT_OK && fail_on_leak)
    for (size_t i = 0; i < res.nsites; i++)
      if (res.sites[i].verdict == PL__LEAK_LIKELY) rc = EXIT_LEAK_FOUND;
out:
  pl__leaks_result_free(&res);
  pl__leaks_free(L);
  free(ft);
  if (lab_files) {
    for (size_t k = 0; k < (size_t)lo.count; k++) free(lab_files[k]);
    free(lab_files);
  } else {
    free(files);
  }
  return rc;
}
