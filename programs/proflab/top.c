/* proflab top: a profile's functions by self and total time (CPU) or live
 * bytes (heap), from any format the readers know (src/format/readers.h),
 * aggregated by src/analysis/top.h. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/dominators.h"
#include "analysis/top.h"
#include "cli.h"
#include "common/util.h"
#include "proflab/buf.h"

#define DEFAULT_LIMIT 20

static void usage(FILE *f) {
  fprintf(f,
          "usage: proflab top FILE [--limit N] [--by self|total] [--json]\n"
          "\n"
          "Lists a profile's functions: by self and total time for a CPU profile, by\n"
          "live bytes and objects for a heap profile, with their source locations; for\n"
          "a heap snapshot, its classes with count, shallow and retained size.\n"
          "Reads Chrome/Node/proflab .cpuprofile, pprof CPU and heap profiles (gzip or\n"
          "raw), folded stacks, .heapprofile and .heapsnapshot files, told apart by\n"
          "their content, not their name. FILE - reads stdin.\n"
          "\n"
          "options:\n"
          "  -n, --limit N     rows to show (default %d; 0 shows all)\n"
          "  --by self|total   order by self (default) or by total; heap snapshots:\n"
          "                    shallow (self) or retained (total, the default)\n"
          "  --json            machine-readable output on stdout\n"
          "  -h, --help        this help\n"
          "\n"
          "CPU profiles: self is the time a function was the leaf of the stack; total\n"
          "the time it was anywhere on it, counted once per sample even when it\n"
          "recurses; time = samples x the sampling interval. (idle), the event loop\n"
          "waiting, and (program) are rows of their own and percentages are of the\n"
          "whole profile, idle included, as in DevTools' Bottom-Up view; the first\n"
          "line says how much of it was idle. Folded stacks have no times: counts.\n"
          "Heap profiles: bytes and objects live when the profile was taken, by the\n"
          "function that allocated them (malloc, strdup and other allocation helpers\n"
          "are skipped); total adds what its callees allocated. A .heapprofile has no\n"
          "object counts: objects are its samples.\n"
          "Heap snapshots (Node's, Chrome's, proflab's): the Summary of Chrome DevTools'\n"
          "Memory panel: objects grouped by class (constructor or allocating function;\n"
          "(string), (array), (closure)... for the others), their count, shallow size\n"
          "and retained size (what freeing them would free, from the dominator tree, as\n"
          "DevTools computes it; a class's objects retained by another of its objects\n"
          "count once), with percentages of the whole heap.\n"
          "\n"
          "exit status: 0 success, 1 the file could not be read (reason on stderr),\n"
          "2 bad command line\n",
          DEFAULT_LIMIT);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...) {
  fprintf(stderr, "proflab top: ");
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see proflab top --help)\n");
  return CLI_EXIT_USAGE;
}

/* ---- text --------------------------------------------------------------- */

static double pct(uint64_t part, uint64_t whole) {
  return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* "file:line", the module's name when there is no file, or "". */
static void location(const pl__top_row *r, char *out, size_t n) {
  cli_location(r->file, r->line, r->module, out, n);
}

/* A duration of t ns, 9 columns. */
static void put_time(char *out, size_t n, double ns) {
  if (ns >= 100e9)
    snprintf(out, n, "%8.0fs", ns / 1e9);
  else if (ns >= 1e9)
    snprintf(out, n, "%8.3fs", ns / 1e9);
  else
    snprintf(out, n, "%7.1fms", ns / 1e6);
}

static void put_bytes(char *out, size_t n, double b) { cli_put_bytes(out, n, b, 0); }

static int name_width(const pl__top *t, size_t shown) {
  size_t w = 8;
  for (size_t i = 0; i < shown; i++) {
    size_t l = strlen(t->rows[i].function);
    if (l > w) w = l;
  }
  return (int)(w > 48 ? 48 : w);
}

static void print_cpu(const char *path, const pl__profile *pf, const pl__top *t, size_t shown) {
  const pl_cpu_profile *p = pf->cpu;
  int counts = pf->kind == PL__KIND_FOLDED; /* no times in the format */
  double period = (double)p->period_ns;
  printf("%s: %s", path, cli_profile_description(pf));
  if (counts) {
    printf(", %llu samples (no times in this format: counts)", (unsigned long long)t->total);
  } else {
    char dur[16];
    put_time(dur, sizeof(dur), (double)t->total * period);
    const char *d = dur;
    while (*d == ' ') d++;
    printf(" (%s), %llu samples, %s at %.3f ms each", p->mode ? p->mode : "?",
           (unsigned long long)t->total, d, period / 1e6);
  }
  if (t->total) printf("; idle %.1f%%", pct(t->idle, t->total));
  printf("\n");
  int w = name_width(t, shown);
  printf("%9s %6s %9s %6s  %-*s  %s\n", "self", "self%", "total", "total%", w, "function",
         "location");
  for (size_t i = 0; i < shown; i++) {
    const pl__top_row *r = &t->rows[i];
    char self[24], total[24], loc[4200];
    if (counts) {
      snprintf(self, sizeof(self), "%9llu", (unsigned long long)r->self);
      snprintf(total, sizeof(total), "%9llu", (unsigned long long)r->total);
    } else {
      put_time(self, sizeof(self), (double)r->self * period);
      put_time(total, sizeof(total), (double)r->total * period);
    }
    location(r, loc, sizeof(loc));
    printf("%9s %5.1f%% %9s %5.1f%%  %-*s  %s\n", self, pct(r->self, t->total), total,
           pct(r->total, t->total), w, r->function, loc);
  }
}

static void print_heap(const char *path, const pl__profile *pf, const pl__top *t, size_t shown) {
  char live[32];
  put_bytes(live, sizeof(live), (double)t->total);
  if (pf->kind == PL__KIND_PPROF_HEAP) /* pprof holds sums per stack, not samples */
    printf("%s: %s, %zu stacks, %s live", path, cli_profile_description(pf), pf->heap->nstacks,
           live);
  else
    printf("%s: %s, %llu live samples, %s live", path, cli_profile_description(pf),
           (unsigned long long)t->samples, live);
  if (pf->heap->sample_bytes)
    printf(", sampled every %llu bytes on average", (unsigned long long)pf->heap->sample_bytes);
  printf("\n");
  int w = name_width(t, shown);
  printf("%10s %6s %9s %10s %6s  %-*s  %s\n", "bytes", "bytes%", "objects", "total", "total%", w,
         "function", "location");
  for (size_t i = 0; i < shown; i++) {
    const pl__top_row *r = &t->rows[i];
    char self[32], total[32], loc[4200];
    put_bytes(self, sizeof(self), (double)r->self);
    put_bytes(total, sizeof(total), (double)r->total);
    location(r, loc, sizeof(loc));
    printf("%10s %5.1f%% %9.0f %10s %5.1f%%  %-*s  %s\n", self, pct(r->self, t->total),
           r->self_objects, total, pct(r->total, t->total), w, r->function, loc);
  }
}

/* ---- JSON --------------------------------------------------------------- */

static void json_row_common(pl_json *j, const pl__top_row *r) {
  pl_json_kv_str(j, "function", r->function);
  pl_json_kv_str(j, "file", r->file);
  pl_json_kv_uint(j, "line", r->line);
  pl_json_kv_str(j, "module", r->module);
  pl_json_kv_bool(j, "meta", r->meta);
}

static void json_cpu(pl_json *j, const pl__profile *pf, const pl__top *t, size_t shown) {
  const pl_cpu_profile *p = pf->cpu;
  double period = (double)p->period_ns;
  pl_json_kv_str(j, "type", "cpu");
  pl_json_kv_str(j, "mode", p->mode ? p->mode : "");
  pl_json_kv_uint(j, "samples", t->total);
  pl_json_kv_uint(j, "period_ns", p->period_ns);
  pl_json_kv_bool(j, "times_known", pf->kind != PL__KIND_FOLDED);
  pl_json_kv_double(j, "total_ms", (double)t->total * period / 1e6, 3);
  pl_json_kv_uint(j, "idle_samples", t->idle);
  pl_json_kv_double(j, "idle_pct", pct(t->idle, t->total), 3);
  pl_json_key(j, "functions");
  pl_json_arr_open(j);
  for (size_t i = 0; i < shown; i++) {
    const pl__top_row *r = &t->rows[i];
    pl_json_obj_open(j);
    json_row_common(j, r);
    pl_json_kv_uint(j, "self_samples", r->self);
    pl_json_kv_double(j, "self_ms", (double)r->self * period / 1e6, 3);
    pl_json_kv_double(j, "self_pct", pct(r->self, t->total), 3);
    pl_json_kv_uint(j, "total_samples", r->total);
    pl_json_kv_double(j, "total_ms", (double)r->total * period / 1e6, 3);
    pl_json_kv_double(j, "total_pct", pct(r->total, t->total), 3);
    pl_json_obj_close(j);
  }
  pl_json_arr_close(j);
}

static void json_heap(pl_json *j, const pl__profile *pf, const pl__top *t, size_t shown) {
  pl_json_kv_str(j, "type", "heap");
  pl_json_kv_uint(j, "live_samples", t->samples);
  pl_json_kv_uint(j, "bytes", t->total);
  pl_json_kv_double(j, "objects", t->total_objects, 1);
  pl_json_kv_uint(j, "sample_bytes", pf->heap->sample_bytes);
  pl_json_key(j, "functions");
  pl_json_arr_open(j);
  for (size_t i = 0; i < shown; i++) {
    const pl__top_row *r = &t->rows[i];
    pl_json_obj_open(j);
    json_row_common(j, r);
    pl_json_kv_uint(j, "self_bytes", r->self);
    pl_json_kv_double(j, "self_pct", pct(r->self, t->total), 3);
    pl_json_kv_double(j, "self_objects", r->self_objects, 1);
    pl_json_kv_uint(j, "total_bytes", r->total);
    pl_json_kv_double(j, "total_pct", pct(r->total, t->total), 3);
    pl_json_kv_double(j, "total_objects", r->total_objects, 1);
    pl_json_obj_close(j);
  }
  pl_json_arr_close(j);
}

/* The --json answer's opening: the file, what it is, the order and limit. */
static void json_head(pl_buf *b, pl_json *j, const char *path, const pl__profile *pf,
                      const char *by, uint64_t limit) {
  pl_buf_init(b);
  pl_json_init(j, b);
  pl_json_obj_open(j);
  pl_json_kv_str(j, "file", path);
  pl_json_kv_str(j, "format", pl__profile_kind_name(pf->kind));
  pl_json_kv_bool(j, "gzipped", pf->gzipped);
  pl_json_kv_str(j, "by", by);
  pl_json_kv_uint(j, "limit", limit);
}

static int print_json(const char *path, const pl__profile *pf, const pl__top *t, size_t shown,
                      int by_total, uint64_t limit) {
  pl_buf b;
  pl_json j;
  json_head(&b, &j, path, pf, by_total ? "total" : "self", limit);
  pl_json_kv_uint(&j, "functions_total", t->nrows);
  if (pf->cpu)
    json_cpu(&j, pf, t, shown);
  else
    json_heap(&j, pf, t, shown);
  pl_json_obj_close(&j);
  return cli_print_json("top", &b);
}

/* ---- heap snapshots ----------------------------------------------------- */

static int class_cmp_self(const void *a, const void *b) {
  const pl__heap_class *x = a, *y = b;
  if (x->self != y->self) return x->self > y->self ? -1 : 1;
  if (x->retained != y->retained) return x->retained > y->retained ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* name with control characters shown as '?', cut to fit n bytes. */
static void printable(const char *name, char *out, size_t n) {
  size_t i = 0;
  for (; name[i] && i + 1 < n; i++) out[i] = (unsigned char)name[i] < 0x20 ? '?' : name[i];
  out[i] = '\0';
}

static void print_summary(const char *path, const pl__profile *pf, const pl__heap_summary *h,
                          size_t shown) {
  char total[32];
  put_bytes(total, sizeof(total), (double)h->total);
  printf("%s: %s, %llu objects, %s", path, cli_profile_description(pf),
         (unsigned long long)h->nodes, total);
  if (h->unreachable) printf(", %u unreachable from the root", h->unreachable);
  printf("\n");
  size_t w = 8;
  for (size_t i = 0; i < shown; i++)
    if (strlen(h->rows[i].name) > w) w = strlen(h->rows[i].name);
  if (w > 60) w = 60;
  printf("%10s %6s %10s %6s %10s  %s\n", "retained", "ret%", "shallow", "shal%", "count", "class");
  for (size_t i = 0; i < shown; i++) {
    const pl__heap_class *r = &h->rows[i];
    char ret[32], self[32], name[256];
    printable(r->name, name, sizeof(name));
    put_bytes(ret, sizeof(ret), (double)r->retained);
    put_bytes(self, sizeof(self), (double)r->self);
    printf("%10s %5.1f%% %10s %5.1f%% %10llu  %.*s\n", ret, pct(r->retained, h->total), self,
           pct(r->self, h->total), (unsigned long long)r->count, (int)w, name);
  }
}

static int print_summary_json(const char *path, const pl__profile *pf, const pl__heap_summary *h,
                              size_t shown, int by_total, uint64_t limit) {
  pl_buf b;
  pl_json j;
  json_head(&b, &j, path, pf, by_total ? "retained" : "shallow", limit);
  pl_json_kv_str(&j, "type", "heapsnapshot");
  pl_json_kv_uint(&j, "nodes", h->nodes);
  pl_json_kv_uint(&j, "edges", pf->graph->edge_count);
  pl_json_kv_uint(&j, "total_bytes", h->total);
  pl_json_kv_uint(&j, "unreachable", h->unreachable);
  pl_json_kv_uint(&j, "classes_total", h->nrows);
  pl_json_key(&j, "classes");
  pl_json_arr_open(&j);
  for (size_t i = 0; i < shown; i++) {
    const pl__heap_class *r = &h->rows[i];
    pl_json_obj_open(&j);
    pl_json_kv_str(&j, "name", r->name);
    pl_json_kv_uint(&j, "count", r->count);
    pl_json_kv_uint(&j, "shallow_bytes", r->self);
    pl_json_kv_double(&j, "shallow_pct", pct(r->self, h->total), 3);
    pl_json_kv_uint(&j, "retained_bytes", r->retained);
    pl_json_kv_double(&j, "retained_pct", pct(r->retained, h->total), 3);
    pl_json_obj_close(&j);
  }
  pl_json_arr_close(&j);
  pl_json_obj_close(&j);
  return cli_print_json("top", &b);
}

/* top on a heap snapshot: DevTools' Summary, by retained size unless --by self. */
static int top_snapshot(const char *path, pl__profile *pf, int json, int by, uint64_t limit,
                        cli_progress *prog) {
  pl__heap_summary h;
  cli_progress_phase(prog, "computing retained sizes"); /* shown only after a long read */
  int arc = pl__heap_summary_build(pf->graph, &h);
  cli_progress_end(prog);
  if (arc) {
    fprintf(stderr, "proflab top: %s: %s\n", path,
            arc == -ENOMEM ? "out of memory" : "the snapshot has no nodes");
    return CLI_EXIT_FAIL;
  }
  int by_total = by != 0; /* default: retained */
  if (!by_total) qsort(h.rows, h.nrows, sizeof(*h.rows), class_cmp_self);
  size_t shown = limit && limit < h.nrows ? (size_t)limit : h.nrows;
  int rc = CLI_EXIT_OK;
  if (json) {
    rc = print_summary_json(path, pf, &h, shown, by_total, limit);
  } else {
    print_summary(path, pf, &h, shown);
    if (shown < h.nrows) printf("(%zu more classes; --limit 0 shows all)\n", h.nrows - shown);
  }
  pl__heap_summary_free(&h);
  return rc;
}

/* ---- the command -------------------------------------------------------- */

enum { OPT_BY = 1000, OPT_JSON };

int cli_cmd_top(int argc, char **argv) {
  static const struct option opts[] = {
      {"limit", required_argument, NULL, 'n'},
      {"by", required_argument, NULL, OPT_BY},
      {"json", no_argument, NULL, OPT_JSON},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  uint64_t limit = DEFAULT_LIMIT;
  int by_total = 0, json = 0, ch, by_given = 0;
  opterr = 0;
  optind = 1;
  while ((ch = getopt_long(argc, argv, ":hn:", opts, NULL)) != -1) {
    switch (ch) {
      case 'h':
        usage(stdout);
        return CLI_EXIT_OK;
      case 'n':
        if (cli_parse_limit(optarg, &limit))
          return usage_error("--limit '%.40s' must be a whole number from 0 to 1000000000", optarg);
        break;
      case OPT_BY:
        if (cli_parse_by(optarg, &by_total))
          return usage_error("--by '%.40s' must be self or total", optarg);
        by_given = 1;
        break;
      case OPT_JSON:
        json = 1;
        break;
      case ':':
        return usage_error("option %.40s needs a value", argv[optind - 1]);
      default:
        return usage_error("unknown option '%.40s'", argv[optind - 1]);
    }
  }
  if (optind >= argc) return usage_error("no FILE given");
  if (optind + 1 < argc) return usage_error("one FILE only, also given '%.60s'", argv[optind + 1]);
  const char *path = argv[optind];

  pl__profile pf;
  cli_progress prog = {0};
  int rc = cli_read_profile_progress("top", path, &pf, &prog);
  if (rc) return rc;
  if (pf.graph) {
    rc = top_snapshot(path, &pf, json, by_given ? by_total : 1, limit, &prog);
    pl__profile_free(&pf);
    if (rc == CLI_EXIT_OK && (fflush(stdout) != 0 || ferror(stdout))) {
      fprintf(stderr, "proflab top: cannot write the output: %s\n", strerror(errno));
      return CLI_EXIT_FAIL;
    }
    return rc;
  }
  cli_progress_end(&prog);
  pl__top t;
  int arc = pf.cpu ? pl__top_cpu(pf.cpu, &t) : pl__top_heap(pf.heap, &t);
  if (arc) {
    fprintf(
        stderr, "proflab top: %s: %s\n", path,
        arc == -ENOMEM ? "out of memory" : "the profile is inconsistent (an index out of range)");
    pl__profile_free(&pf);
    return CLI_EXIT_FAIL;
  }
  pl__top_sort(&t, by_total);
  size_t shown = limit && limit < t.nrows ? (size_t)limit : t.nrows;
  if (json) {
    rc = print_json(path, &pf, &t, shown, by_total, limit);
  } else {
    if (pf.cpu)
      print_cpu(path, &pf, &t, shown);
    else
      print_heap(path, &pf, &t, shown);
    if (shown < t.nrows) printf("(%zu more functions; --limit 0 shows all)\n", t.nrows - shown);
  }
  pl__top_free(&t);
  pl__profile_free(&pf);
  return cli_flush_stdout("top") ? CLI_EXIT_FAIL : rc;
}
