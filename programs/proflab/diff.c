/* proflab diff: two profiles compared function by function
 * (src/analysis/diff.h): CPU profiles by share of samples with a noise
 * band, heap profiles by live bytes; a table, --json, and a differential
 * flame graph of B (-o diff.svg). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/diff.h"
#include "cli.h"
#include "common/sink.h"
#include "common/util.h"
#include "proflab/buf.h"

#define DEFAULT_LIMIT 20
/* Below this many counted samples a profile's shares, and the normal
 * approximation behind the noise band, say little: the output says so. */
#define FEW_SAMPLES 100

static void usage(FILE *f) {
  fprintf(f,
          "usage: proflab diff A B [-o DIFF.svg] [--json] [--limit N] [--by self|total]\n"
          "                    [--idle] [--by-name] [--title T] [--width W] [--minwidth PX]\n"
          "                    [--icicle]\n"
          "\n"
          "Compares two profiles of the same program function by function: what\n"
          "changed from A (before) to B (after).\n"
          "\n"
          "CPU profiles (.cpuprofile, pprof, folded, in any mix): each function's self\n"
          "share (samples with it as the leaf) and total share (samples with it on the\n"
          "stack) in A and in B, and the change B - A in percentage points. Shares are\n"
          "of the busy samples: (idle) is left out unless --idle. A change is marked\n"
          "~ (within noise) when it is smaller than twice the combined standard error\n"
          "of the two shares, sqrt(seA^2 + seB^2) with se = sqrt(p(1-p)/n) for a share\n"
          "p of n samples: such a change may be sampling luck, not a real one.\n"
          "Heap profiles (.heapprofile, pprof heap): live bytes by function, and their\n"
          "change (no noise band). Heap snapshots are not compared yet.\n"
          "\n"
          "options:\n"
          "  -o, --output DIFF.svg  also write a differential flame graph of B: red\n"
          "                         where a frame's self share grew, blue where it\n"
          "                         shrank (stronger for larger changes), grey within\n"
          "                         noise; the tooltip shows both shares\n"
          "  --json                 machine-readable output on stdout\n"
          "  -n, --limit N          rows to show (default %d; 0 shows all)\n"
          "  --by self|total        order by the size of the self change (default) or\n"
          "                         of the total change\n"
          "  --idle                 CPU: count (idle) samples (shares of all samples)\n"
          "  --by-name              match functions by name only (default: name, file\n"
          "                         and first line; by name when a profile is folded\n"
          "                         stacks, which have no files)\n"
          "  --title T, --width W, --minwidth PX, --icicle   the graph, as proflab flame\n"
          "  -h, --help             this help\n"
          "\n"
          "exit status: 0 success, 1 failed (a file unreadable, a CPU profile compared\n"
          "with a heap profile, heap snapshots, a write error), 2 bad command line\n",
          DEFAULT_LIMIT);
}

static int usage_error(const char *msg, const char *arg) {
  fprintf(stderr, "proflab diff: %s%s%.60s%s (see proflab diff --help)\n", msg, arg ? " '" : "",
          arg ? arg : "", arg ? "'" : "");
  return CLI_EXIT_USAGE;
}

static const char *shown_name(const char *path) { return strcmp(path, "-") == 0 ? "stdin" : path; }

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s && s[1] ? s + 1 : path;
}

/* ---- text --------------------------------------------------------------- */

/* One line per profile: what it is and what was counted. */
static void print_profile(const char *label, const char *path, const pl__profile *pf,
                          const pl__diff *d, int k, int idle) {
  printf("%s: %s: %s", label, path, cli_profile_description(pf));
  if (pf->heap) {
    char b[32];
    cli_put_bytes(b, sizeof(b), (double)d->total[k], 0);
    printf(", %s live\n", b);
    return;
  }
  uint64_t all = d->total[k] + (idle ? 0 : d->idle[k]);
  if (pf->kind != PL__KIND_FOLDED && pf->cpu->mode) printf(" (%s)", pf->cpu->mode);
  printf(", %llu samples", (unsigned long long)all);
  if (pf->kind != PL__KIND_FOLDED)
    printf(", %.3f s", (double)all * (double)pf->cpu->period_ns / 1e9);
  if (all && d->idle[k])
    printf("; idle %.1f%%%s", 100.0 * (double)d->idle[k] / (double)all, idle ? "" : " (left out)");
  printf("\n");
}

static int name_width(const pl__diff *d, size_t shown) {
  size_t w = 8;
  for (size_t i = 0; i < shown; i++) {
    size_t l = strlen(d->rows[i].function);
    if (l > w) w = l;
  }
  return (int)(w > 48 ? 48 : w);
}

static void print_cpu_rows(const pl__diff *d, size_t shown) {
  int w = name_width(d, shown);
  printf("%9s %9s  %-17s  %-17s  %-*s  %s\n", "d.self", "d.total", "self A -> B", "total A -> B", w,
         "function", "location");
  for (size_t i = 0; i < shown; i++) {
    const pl__diff_row *r = &d->rows[i];
    char loc[4200];
    cli_location(r->file, r->line, r->module, loc, sizeof(loc));
    printf("%+8.2f%c %+8.2f%c  %5.1f%% -> %5.1f%%  %5.1f%% -> %5.1f%%  %-*s  %s\n", 100 * r->d_self,
           r->self_noise ? '~' : ' ', 100 * r->d_total, r->total_noise ? '~' : ' ',
           100 * r->self_share[0], 100 * r->self_share[1], 100 * r->total_share[0],
           100 * r->total_share[1], w, r->function, loc);
  }
}

static void print_heap_rows(const pl__diff *d, size_t shown) {
  int w = name_width(d, shown);
  printf("%10s %10s  %-23s  %-23s  %-*s  %s\n", "d.self", "d.total", "self A -> B", "total A -> B",
         w, "function", "location");
  for (size_t i = 0; i < shown; i++) {
    const pl__diff_row *r = &d->rows[i];
    char ds[32], dt[32], sa[32], sb[32], ta[32], tb[32], loc[4200];
    cli_put_bytes(ds, sizeof(ds), (double)r->self[1] - (double)r->self[0], 1);
    cli_put_bytes(dt, sizeof(dt), (double)r->total[1] - (double)r->total[0], 1);
    cli_put_bytes(sa, sizeof(sa), (double)r->self[0], 0);
    cli_put_bytes(sb, sizeof(sb), (double)r->self[1], 0);
    cli_put_bytes(ta, sizeof(ta), (double)r->total[0], 0);
    cli_put_bytes(tb, sizeof(tb), (double)r->total[1], 0);
    cli_location(r->file, r->line, r->module, loc, sizeof(loc));
    printf("%10s %10s  %10s -> %-9s  %10s -> %-9s  %-*s  %s\n", ds, dt, sa, sb, ta, tb, w,
           r->function, loc);
  }
}

/* ---- JSON --------------------------------------------------------------- */

static const char *verdict(double delta, int noise, int banded) {
  if (delta == 0) return "unchanged";
  if (banded && noise) return "within noise";
  return delta > 0 ? "grew" : "shrank";
}

static void json_profile(pl_json *j, const char *key, const char *path, const pl__profile *pf,
                         const pl__diff *d, int k) {
  pl_json_key(j, key);
  pl_json_obj_open(j);
  pl_json_kv_str(j, "file", path);
  pl_json_kv_str(j, "format", pl__profile_kind_name(pf->kind));
  if (pf->cpu) {
    pl_json_kv_str(j, "mode", pf->cpu->mode ? pf->cpu->mode : "");
    pl_json_kv_uint(j, "period_ns", pf->cpu->period_ns);
    pl_json_kv_bool(j, "times_known", pf->kind != PL__KIND_FOLDED);
    pl_json_kv_uint(j, "samples", d->total[k]); /* the n of the shares */
    pl_json_kv_uint(j, "idle_samples", d->idle[k]);
    pl_json_kv_bool(j, "few_samples", d->total[k] < FEW_SAMPLES);
  } else {
    pl_json_kv_uint(j, "bytes", d->total[k]);
  }
  pl_json_obj_close(j);
}

static void json_row(pl_json *j, const pl__diff *d, const pl__diff_row *r) {
  int cpu = d->noise;
  pl_json_obj_open(j);
  pl_json_kv_str(j, "function", r->function);
  pl_json_kv_str(j, "file", r->file);
  pl_json_kv_uint(j, "line", r->line);
  pl_json_kv_str(j, "module", r->module);
  pl_json_kv_bool(j, "meta", r->meta);
  static const char *const what[2] = {"self", "total"};
  for (int w = 0; w < 2; w++) {
    const uint64_t *v = w ? r->total : r->self;
    const double *s = w ? r->total_share : r->self_share;
    double delta = w ? r->d_total : r->d_self, band = w ? r->total_band : r->self_band;
    int noise = w ? r->total_noise : r->self_noise;
    char k[32];
    snprintf(k, sizeof(k), "a_%s_%s", what[w], cpu ? "samples" : "bytes");
    pl_json_kv_uint(j, k, v[0]);
    snprintf(k, sizeof(k), "b_%s_%s", what[w], cpu ? "samples" : "bytes");
    pl_json_kv_uint(j, k, v[1]);
    if (!cpu) {
      snprintf(k, sizeof(k), "d_%s_bytes", what[w]);
      pl_json_kv_int(j, k, (int64_t)(v[1] - v[0]));
    }
    snprintf(k, sizeof(k), "a_%s_pct", what[w]);
    pl_json_kv_double(j, k, 100 * s[0], 4);
    snprintf(k, sizeof(k), "b_%s_pct", what[w]);
    pl_json_kv_double(j, k, 100 * s[1], 4);
    snprintf(k, sizeof(k), "d_%s_pct", what[w]);
    pl_json_kv_double(j, k, 100 * delta, 4);
    snprintf(k, sizeof(k), "%s_band_pct", what[w]);
    if (cpu)
      pl_json_kv_double(j, k, 100 * band, 4);
    else
      pl_json_kv_double(j, k, NAN, 0); /* null: no noise model */
    snprintf(k, sizeof(k), "%s_within_noise", what[w]);
    pl_json_kv_bool(j, k, cpu && noise);
    snprintf(k, sizeof(k), "%s_change", what[w]);
    pl_json_kv_str(j, k, verdict(delta, noise, cpu));
  }
  pl_json_obj_close(j);
}

typedef struct args {
  const char *a, *b, *out, *title;
  uint64_t limit;
  int by_total, json, idle, by_name, icicle;
  unsigned width;
  double minwidth;
} args;

static int print_json(const args *o, const pl__profile *pa, const pl__profile *pb,
                      const pl__diff *d, size_t shown, int by_name) {
  pl_buf b;
  pl_buf_init(&b);
  pl_json j;
  pl_json_init(&j, &b);
  pl_json_obj_open(&j);
  pl_json_kv_str(&j, "type", pa->cpu ? "cpu" : "heap");
  json_profile(&j, "a", shown_name(o->a), pa, d, PL__DIFF_A);
  json_profile(&j, "b", shown_name(o->b), pb, d, PL__DIFF_B);
  pl_json_kv_str(&j, "by", o->by_total ? "total" : "self");
  pl_json_kv_uint(&j, "limit", o->limit);
  pl_json_kv_bool(&j, "by_name", by_name);
  if (pa->cpu) {
    pl_json_kv_str(&j, "shares_of", o->idle ? "all samples" : "busy samples (idle left out)");
    pl_json_kv_str(&j, "noise_rule",
                   "within noise: |d| < 2*sqrt(seA^2 + seB^2), se = sqrt(p(1-p)/n)");
  }
  pl_json_key(&j, "svg");
  if (o->out)
    pl_json_str(&j, o->out);
  else
    pl_json_null(&j);
  pl_json_kv_uint(&j, "functions_total", d->nrows);
  pl_json_key(&j, "functions");
  pl_json_arr_open(&j);
  for (size_t i = 0; i < shown; i++) json_row(&j, d, &d->rows[i]);
  pl_json_arr_close(&j);
  pl_json_obj_close(&j);
  return cli_print_json("diff", &b);
}

/* ---- the graph ---------------------------------------------------------- */

typedef struct svg_job {
  const pl__flame_tree *tree;
  const pl__flame_svg_opts *opts;
} svg_job;

static int write_svg(void *ctx, int fd) {
  svg_job *j = ctx;
  pl__sink s;
  pl__sink_init_fd(&s, &fd);
  int rc = pl__flame_write_svg(j->tree, j->opts, &s, NULL);
  int frc = pl__sink_finish(&s);
  pl__sink_free(&s);
  return rc ? rc : frc;
}

static int write_graph(const args *o, const pl__diff *d) {
  pl_buf title, sub;
  pl_buf_init(&title);
  pl_buf_init(&sub);
  if (!o->title)
    pl_buf_printf(&title, "Differential flame graph: %s vs %s", base_name(shown_name(o->b)),
                  base_name(shown_name(o->a)));
  pl_buf_printf(&sub, "widths: B (%s); colors: the change of each frame's self share from A: ",
                base_name(shown_name(o->b)));
  pl_buf_puts(&sub, d->noise ? "red grew, blue shrank, grey within noise"
                             : "red grew, blue shrank, grey unchanged");
  int rc;
  if (pl_buf_failed(&title) || pl_buf_failed(&sub)) {
    fprintf(stderr, "proflab diff: out of memory\n");
    rc = CLI_EXIT_FAIL;
  } else {
    pl__flame_svg_opts so = {
        .title = o->title ? o->title : title.data,
        .subtitle = sub.data,
        .width = o->width,
        .minwidth = o->minwidth,
        .icicle = o->icicle,
        .palette = PL__FLAME_DIFF,
        .noise = d->noise,
    };
    svg_job job = {&d->tree, &so};
    rc = cli_write_output("diff", o->out, write_svg, &job);
  }
  pl_buf_free(&title);
  pl_buf_free(&sub);
  return rc;
}

/* ---- the command -------------------------------------------------------- */

enum {
  OPT_JSON = 1000,
  OPT_BY,
  OPT_IDLE,
  OPT_BY_NAME,
  OPT_TITLE,
  OPT_WIDTH,
  OPT_MINWIDTH,
  OPT_ICICLE,
};

static int parse(int argc, char **argv, args *o) {
  static const struct option opts[] = {
      {"output", required_argument, NULL, 'o'},
      {"json", no_argument, NULL, OPT_JSON},
      {"limit", required_argument, NULL, 'n'},
      {"by", required_argument, NULL, OPT_BY},
      {"idle", no_argument, NULL, OPT_IDLE},
      {"by-name", no_argument, NULL, OPT_BY_NAME},
      {"title", required_argument, NULL, OPT_TITLE},
      {"width", required_argument, NULL, OPT_WIDTH},
      {"minwidth", required_argument, NULL, OPT_MINWIDTH},
      {"icicle", no_argument, NULL, OPT_ICICLE},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  int ch;
  opterr = 0;
  optind = 1;
  while ((ch = getopt_long(argc, argv, ":ho:n:", opts, NULL)) != -1) {
    switch (ch) {
      case 'h':
        usage(stdout);
        return -1;
      case 'o':
        o->out = optarg;
        break;
      case OPT_JSON:
        o->json = 1;
        break;
      case 'n':
        if (cli_parse_limit(optarg, &o->limit))
          return usage_error("--limit must be a whole number from 0 to 1000000000, not", optarg);
        break;
      case OPT_BY:
        if (cli_parse_by(optarg, &o->by_total))
          return usage_error("--by must be self or total, not", optarg);
        break;
      case OPT_IDLE:
        o->idle = 1;
        break;
      case OPT_BY_NAME:
        o->by_name = 1;
        break;
      case OPT_TITLE:
        o->title = optarg;
        break;
      case OPT_WIDTH:
        if (cli_parse_width(optarg, &o->width))
          return usage_error("--width must be a whole number of px from 200 to 100000, not",
                             optarg);
        break;
      case OPT_MINWIDTH:
        if (cli_parse_minwidth(optarg, &o->minwidth))
          return usage_error("--minwidth must be a number of px from 0 to 10000, not", optarg);
        break;
      case OPT_ICICLE:
        o->icicle = 1;
        break;
      case ':':
        return usage_error("missing value for", argv[optind - 1]);
      default:
        return usage_error("unknown option", argv[optind - 1]);
    }
  }
  if (argc - optind < 2) return usage_error("two files are needed: A and B", NULL);
  if (argc - optind > 2) return usage_error("two files only; also given", argv[optind + 2]);
  if (o->out && !*o->out) return usage_error("an empty output name", NULL);
  if (o->out && strcmp(o->out, "-") == 0)
    return usage_error("-o - would mix the graph with the table on stdout; give a file name", NULL);
  o->a = argv[optind];
  o->b = argv[optind + 1];
  if (strcmp(o->a, "-") == 0 && strcmp(o->b, "-") == 0)
    return usage_error("A and B cannot both be stdin", NULL);
  return 0;
}

int cli_cmd_diff(int argc, char **argv) {
  args o = {.limit = DEFAULT_LIMIT, .width = 1200, .minwidth = 0.1};
  int prc = parse(argc, argv, &o);
  if (prc) return prc < 0 ? CLI_EXIT_OK : prc;

  pl__profile pa, pb;
  int rc = cli_read_profile("diff", o.a, &pa);
  if (rc) return rc;
  if ((rc = cli_read_profile("diff", o.b, &pb))) {
    pl__profile_free(&pa);
    return rc;
  }
  if (!pa.cpu != !pb.cpu) {
    fprintf(stderr,
            "proflab diff: %s is a %s profile and %s a %s profile: compare like with like\n",
            shown_name(o.a), pa.cpu ? "CPU" : "heap", shown_name(o.b), pb.cpu ? "CPU" : "heap");
    rc = CLI_EXIT_FAIL;
    goto out;
  }
  /* folded stacks name functions only: match by name then */
  int by_name = o.by_name || pa.kind == PL__KIND_FOLDED || pb.kind == PL__KIND_FOLDED;
  unsigned flags = (o.idle ? PL__FLAME_IDLE : 0) | (by_name ? PL__FLAME_BY_NAME : 0);
  pl__diff d;
  int arc = pa.cpu ? pl__diff_cpu(pa.cpu, pa.kind != PL__KIND_FOLDED, pb.cpu,
                                  pb.kind != PL__KIND_FOLDED, flags, &d)
                   : pl__diff_heap(pa.heap, pb.heap, flags, &d);
  if (arc) {
    fprintf(stderr, "proflab diff: %s\n",
            arc == -ENOMEM  ? "out of memory"
            : arc == -EFBIG ? "too many distinct stacks (more than 2^32 nodes)"
                            : "a profile is inconsistent (an index out of range)");
    rc = CLI_EXIT_FAIL;
    goto out;
  }
  pl__diff_sort(&d, o.by_total);
  size_t shown = o.limit && o.limit < d.nrows ? (size_t)o.limit : d.nrows;
  if (o.out && (rc = write_graph(&o, &d))) {
    pl__diff_free(&d);
    goto out;
  }
  if (o.json) {
    rc = print_json(&o, &pa, &pb, &d, shown, by_name);
  } else {
    print_profile("A", shown_name(o.a), &pa, &d, PL__DIFF_A, o.idle);
    print_profile("B", shown_name(o.b), &pb, &d, PL__DIFF_B, o.idle);
    for (int k = 0; k < 2 && pa.cpu; k++)
      if (d.total[k] < FEW_SAMPLES)
        printf(
            "%s has only %llu %s samples: its shares say little, and the noise band assumes "
            "more (a longer profile%s helps)\n",
            k ? "B" : "A", (unsigned long long)d.total[k], o.idle ? "counted" : "busy",
            o.idle ? "" : ", or --idle,");
    if (pa.cpu) {
      printf(
          "changes in percentage points of %s; ~ within noise: |change| < 2 sqrt(seA^2 + "
          "seB^2), se = sqrt(p(1-p)/n)%s\n",
          o.idle ? "all samples" : "busy samples", by_name ? "; functions matched by name" : "");
      print_cpu_rows(&d, shown);
    } else {
      printf("live bytes by allocating function%s\n", by_name ? "; functions matched by name" : "");
      print_heap_rows(&d, shown);
    }
    if (shown < d.nrows) printf("(%zu more functions; --limit 0 shows all)\n", d.nrows - shown);
    if (o.out) printf("differential flame graph of B: %s\n", o.out);
  }
  pl__diff_free(&d);
  if (cli_flush_stdout("diff")) rc = CLI_EXIT_FAIL;
out:
  pl__profile_free(&pa);
  pl__profile_free(&pb);
  return rc;
}
