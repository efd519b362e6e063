/* proflab diff: two profiles compared function by function
 * (src/analysis/diff.h): CPU profiles by share of samples with a noise
 * band, heap profiles by live bytes; two heap snapshots by class and
 * object id as DevTools' Comparison (src/analysis/heap_compare.h); a
 * table, --json, and a differential flame graph of B (-o diff.svg). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/diff.h"
#include "analysis/heap_compare.h"
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
          "change (no noise band).\n"
          "Heap snapshots (.heapsnapshot, proflab's or Node's, two of the same process):\n"
          "compared as Chrome DevTools' Comparison view does. Objects are grouped by\n"
          "class as proflab top groups them (A with B's inferred {a, b} interfaces,\n"
          "as DevTools) and matched by object id within each class: per class the\n"
          "objects new in B (# new, their bytes: alloc size), those deleted since A\n"
          "(# deleted, freed size), the deltas, and the count and bytes in A and B;\n"
          "classes without a new or deleted object are left out; rows in order of\n"
          "alloc size. Then the new objects themselves, largest first: id, self size,\n"
          "class, and the object's name when it says more than its class (a string's\n"
          "text, a function's name). Only objects with a self size count (as in the\n"
          "Summary); an object that changed class is deleted from one and new in the\n"
          "other. A snapshot is compared only with a snapshot.\n"
          "\n"
          "options:\n"
          "  -o, --output DIFF.svg  also write a differential flame graph of B: red\n"
          "                         where a frame's self share grew, blue where it\n"
          "                         shrank (stronger for larger changes), grey within\n"
          "                         noise; the tooltip shows both shares. Snapshots:\n"
          "                         of B's dominator tree by class (as proflab flame\n"
          "                         draws a snapshot), colored by the change from A's\n"
          "  --json                 machine-readable output on stdout\n"
          "  -n, --limit N          rows to show (default %d; 0 shows all); snapshots:\n"
          "                         classes, and new objects, each\n"
          "  --by self|total        order by the size of the self change (default) or\n"
          "                         of the total change (profiles only)\n"
          "  --idle                 CPU: count (idle) samples (shares of all samples)\n"
          "  --by-name              match functions by name only (default: name, file\n"
          "                         and first line; by name when a profile is folded\n"
          "                         stacks, which have no files)\n"
          "  --title T, --width W, --minwidth PX, --icicle   the graph, as proflab flame\n"
          "  -h, --help             this help\n"
          "\n"
          "exit status: 0 success, 1 failed (a file unreadable, a CPU profile compared\n"
          "with a heap profile, a snapshot with a profile, a write error), 2 bad\n"
          "command line\n",
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

static int write_graph(const args *o, const pl__flame_tree *tree, int noise, int snapshots) {
  pl_buf title, sub;
  pl_buf_init(&title);
  pl_buf_init(&sub);
  if (!o->title)
    pl_buf_printf(&title, "Differential flame graph: %s vs %s", base_name(shown_name(o->b)),
                  base_name(shown_name(o->a)));
  pl_buf_printf(&sub, "widths: B (%s%s); colors: the change of each frame's self share from A: ",
                base_name(shown_name(o->b)),
                snapshots ? ", the dominator tree by class: retained sizes" : "");
  pl_buf_puts(&sub, noise ? "red grew, blue shrank, grey within noise"
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
        .noise = noise,
    };
    svg_job job = {tree, &so};
    rc = cli_write_output("diff", o->out, write_svg, &job);
  }
  pl_buf_free(&title);
  pl_buf_free(&sub);
  return rc;
}

/* ---- heap snapshots ----------------------------------------------------- */

/* s with control characters shown as '?', cut to n - 1 bytes (… when cut,
 * on a UTF-8 boundary). */
static void printable(const char *s, char *out, size_t n) {
  size_t i = 0, len = strlen(s);
  int cut = len > n - 1;
  size_t keep = cut ? n - 4 : len;
  while (cut && keep && ((unsigned char)s[keep] & 0xc0) == 0x80) keep--;
  for (; i < keep; i++) out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
  if (cut) memcpy(out + i, "\xe2\x80\xa6", 3), i += 3;
  out[i] = '\0';
}

/* The object's name when it says more than its class's (a string's text,
 * a function's name, "<div id=x>"), else NULL: not its class name, nor
 * "Object" of a plain object named after its properties, nor the name of a
 * "Detached ..." class. */
static const char *object_name(const pl__heap_compare *c, const pl__hcmp_object *x) {
  const char *cls = c->rows[x->cls].name;
  if (!x->name || !*x->name || strcmp(x->name, cls) == 0) return NULL;
  if (cls[0] == '{' && strcmp(x->name, "Object") == 0) return NULL;
  if (strncmp(cls, "Detached ", 9) == 0 && strcmp(cls + 9, x->name) == 0) return NULL;
  return x->name;
}

/* A class key's constructor location "script,line,column" into out, or 0. */
static int key_location(const char *key, char *out, size_t n) {
  if (key[0] != '\001') return 0;
  const char *e = strchr(key + 1, '\001');
  if (!e) return 0;
  snprintf(out, n, "%.*s", (int)(e - key - 1), key + 1);
  return 1;
}

static void print_snapshot(const char *label, const char *path, const pl__profile *pf,
                           const pl__heap_compare *c, int k) {
  char b[32];
  cli_put_bytes(b, sizeof(b), (double)c->bytes[k], 0);
  printf("%s: %s: %s, %llu objects, %s", label, path, cli_profile_description(pf),
         (unsigned long long)c->nodes[k], b);
  if (k == PL__HCMP_B) {
    cli_put_bytes(b, sizeof(b), (double)c->bytes[1] - (double)c->bytes[0], 1);
    printf(" (%s)", b);
  }
  printf("\n");
}

static void print_snapshot_rows(const pl__heap_compare *c, size_t shown) {
  printf("%7s %9s %8s %10s %10s %10s  %-21s  %-23s  %s\n", "# new", "# deleted", "# delta",
         "alloc size", "freed size", "size delta", "count A -> B", "bytes A -> B", "class");
  for (size_t i = 0; i < shown; i++) {
    const pl__hcmp_class *r = &c->rows[i];
    char al[32], fr[32], dl[32], ba[32], bb[32], name[128], loc[64];
    cli_put_bytes(al, sizeof(al), (double)r->added_bytes, 0);
    cli_put_bytes(fr, sizeof(fr), (double)r->removed_bytes, 0);
    cli_put_bytes(dl, sizeof(dl), (double)r->d_bytes, 1);
    cli_put_bytes(ba, sizeof(ba), (double)r->bytes[0], 0);
    cli_put_bytes(bb, sizeof(bb), (double)r->bytes[1], 0);
    printable(r->name, name, sizeof(name));
    printf("%7llu %9llu %+8lld %10s %10s %10s  %9llu -> %-8llu  %10s -> %-9s  %s",
           (unsigned long long)r->added, (unsigned long long)r->removed, (long long)r->d_count, al,
           fr, dl, (unsigned long long)r->count[0], (unsigned long long)r->count[1], ba, bb, name);
    if (key_location(r->key, loc, sizeof(loc))) printf(" @%s", loc);
    printf("\n");
  }
}

static void print_new_objects(const pl__heap_compare *c, size_t shown) {
  char b[32];
  cli_put_bytes(b, sizeof(b), (double)c->added_bytes, 0);
  printf("new in B by object id, largest first: %zu objects, %s\n", c->nadded, b);
  if (!c->nadded) return;
  printf("%12s %10s  %s\n", "id", "self size", "class: name");
  for (size_t i = 0; i < shown; i++) {
    const pl__hcmp_object *x = &c->added[i];
    char self[32], cls[128], name[128];
    cli_put_bytes(self, sizeof(self), (double)x->self, 0);
    printable(c->rows[x->cls].name, cls, sizeof(cls));
    const char *nm = object_name(c, x);
    if (nm) printable(nm, name, 64);
    printf("%12llu %10s  %s%s%s\n", (unsigned long long)x->id, self, cls, nm ? ": " : "",
           nm ? name : "");
  }
  if (shown < c->nadded) printf("(%zu more new objects; --limit 0 shows all)\n", c->nadded - shown);
}

static void json_snapshot(pl_json *j, const char *key, const char *path, const pl__heap_compare *c,
                          int k) {
  pl_json_key(j, key);
  pl_json_obj_open(j);
  pl_json_kv_str(j, "file", path);
  pl_json_kv_str(j, "format", "heapsnapshot");
  pl_json_kv_uint(j, "nodes", c->nodes[k]);
  pl_json_kv_uint(j, "objects", c->count[k]);
  pl_json_kv_uint(j, "bytes", c->bytes[k]);
  pl_json_obj_close(j);
}

static int print_snapshot_json(const args *o, const pl__heap_compare *c, size_t shown,
                               size_t shown_new) {
  pl_buf b;
  pl_buf_init(&b);
  pl_json j;
  pl_json_init(&j, &b);
  pl_json_obj_open(&j);
  pl_json_kv_str(&j, "type", "heapsnapshot");
  json_snapshot(&j, "a", shown_name(o->a), c, PL__HCMP_A);
  json_snapshot(&j, "b", shown_name(o->b), c, PL__HCMP_B);
  pl_json_kv_uint(&j, "limit", o->limit);
  pl_json_key(&j, "svg");
  if (o->out)
    pl_json_str(&j, o->out);
  else
    pl_json_null(&j);
  pl_json_kv_uint(&j, "classes_total", c->nall);
  pl_json_kv_uint(&j, "classes_changed", c->nrows);
  pl_json_kv_uint(&j, "new_objects_total", c->nadded);
  pl_json_kv_uint(&j, "new_bytes_total", c->added_bytes);
  pl_json_kv_uint(&j, "deleted_objects_total", c->removed);
  pl_json_kv_uint(&j, "freed_bytes_total", c->removed_bytes);
  pl_json_key(&j, "classes");
  pl_json_arr_open(&j);
  for (size_t i = 0; i < shown; i++) {
    const pl__hcmp_class *r = &c->rows[i];
    char loc[64];
    pl_json_obj_open(&j);
    pl_json_kv_str(&j, "name", r->name);
    pl_json_key(&j, "location");
    if (key_location(r->key, loc, sizeof(loc)))
      pl_json_str(&j, loc);
    else
      pl_json_null(&j);
    pl_json_kv_uint(&j, "new_count", r->added);
    pl_json_kv_uint(&j, "deleted_count", r->removed);
    pl_json_kv_int(&j, "delta_count", r->d_count);
    pl_json_kv_uint(&j, "alloc_bytes", r->added_bytes);
    pl_json_kv_uint(&j, "freed_bytes", r->removed_bytes);
    pl_json_kv_int(&j, "delta_bytes", r->d_bytes);
    pl_json_kv_uint(&j, "a_count", r->count[0]);
    pl_json_kv_uint(&j, "b_count", r->count[1]);
    pl_json_kv_uint(&j, "a_bytes", r->bytes[0]);
    pl_json_kv_uint(&j, "b_bytes", r->bytes[1]);
    pl_json_obj_close(&j);
  }
  pl_json_arr_close(&j);
  pl_json_key(&j, "new_objects");
  pl_json_arr_open(&j);
  for (size_t i = 0; i < shown_new; i++) {
    const pl__hcmp_object *x = &c->added[i];
    const char *nm = object_name(c, x);
    pl_json_obj_open(&j);
    pl_json_kv_uint(&j, "id", x->id);
    pl_json_kv_uint(&j, "self_bytes", x->self);
    pl_json_kv_str(&j, "class", c->rows[x->cls].name);
    pl_json_key(&j, "name");
    if (nm)
      pl_json_str(&j, nm);
    else
      pl_json_null(&j);
    pl_json_obj_close(&j);
  }
  pl_json_arr_close(&j);
  pl_json_obj_close(&j);
  return cli_print_json("diff", &b);
}

/* The differential flame graph of B's dominator tree by class against A's. */
static int snapshot_graph(const args *o, const pl__profile *pa, const pl__profile *pb,
                          const pl__heap_compare *c) {
  pl__flame_tree t;
  int arc = pl__flame_init(&t, PL__FLAME_BYTES, 0);
  if (arc) goto fail;
  arc = pl__flame_add_heap_graph(&t, PL__FLAME_MAIN, pb->graph, &c->cls[PL__HCMP_B]);
  if (!arc) arc = pl__flame_add_heap_graph(&t, PL__FLAME_BASE, pa->graph, &c->cls[PL__HCMP_A]);
  if (!arc) arc = pl__flame_finish(&t);
  if (arc) {
    pl__flame_free(&t);
    goto fail;
  }
  int rc = write_graph(o, &t, 0, 1);
  pl__flame_free(&t);
  return rc;
fail:
  fprintf(stderr, "proflab diff: %s\n",
          arc == -ENOMEM ? "out of memory" : "too many frames (more than 2^32)");
  return CLI_EXIT_FAIL;
}

static int diff_snapshots(const args *o, const pl__profile *pa, const pl__profile *pb) {
  pl__heap_compare c;
  int arc = pl__heap_compare_build(pa->graph, pb->graph, &c);
  if (arc) {
    fprintf(stderr, "proflab diff: %s\n",
            arc == -ENOMEM ? "out of memory" : "a snapshot has no nodes");
    return CLI_EXIT_FAIL;
  }
  size_t shown = o->limit && o->limit < c.nrows ? (size_t)o->limit : c.nrows;
  size_t shown_new = o->limit && o->limit < c.nadded ? (size_t)o->limit : c.nadded;
  int rc = CLI_EXIT_OK;
  if (o->out && (rc = snapshot_graph(o, pa, pb, &c))) goto out;
  if (o->json) {
    rc = print_snapshot_json(o, &c, shown, shown_new);
  } else {
    print_snapshot("A", shown_name(o->a), pa, &c, PL__HCMP_A);
    print_snapshot("B", shown_name(o->b), pb, &c, PL__HCMP_B);
    printf(
        "as DevTools' Comparison: objects matched by id within each class; %zu of %zu classes "
        "changed\n",
        c.nrows, c.nall);
    print_snapshot_rows(&c, shown);
    if (shown < c.nrows)
      printf("(%zu more changed classes; --limit 0 shows all)\n", c.nrows - shown);
    print_new_objects(&c, shown_new);
    if (o->out) printf("differential flame graph of B: %s\n", o->out);
  }
  if (cli_flush_stdout("diff")) rc = CLI_EXIT_FAIL;
out:
  pl__heap_compare_free(&c);
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
  if (pa.graph || pb.graph) {
    if (pa.graph && pb.graph) {
      rc = diff_snapshots(&o, &pa, &pb);
      goto out;
    }
    fprintf(stderr,
            "proflab diff: %s is a %s and %s a %s: a heap snapshot is compared only with a heap "
            "snapshot\n",
            shown_name(o.a),
            pa.graph ? "heap snapshot"
            : pa.cpu ? "CPU profile"
                     : "heap profile",
            shown_name(o.b),
            pb.graph ? "heap snapshot"
            : pb.cpu ? "CPU profile"
                     : "heap profile");
    rc = CLI_EXIT_FAIL;
    goto out;
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
  if (o.out && (rc = write_graph(&o, &d.tree, d.noise, 0))) {
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
