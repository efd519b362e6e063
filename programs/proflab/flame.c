/* proflab flame: a profile in any format the readers know as a
 * self-contained interactive SVG flame graph (src/analysis/flame.h); also
 * the size options `proflab diff` shares. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/flame.h"
#include "cli.h"
#include "common/sink.h"
#include "common/util.h"
#include "proflab/buf.h"

#define DEFAULT_MINWIDTH 0.1

static void usage(FILE *f) {
  fprintf(f,
          "usage: proflab flame FILE -o OUT.svg [--title T] [--width W] [--minwidth PX]\n"
          "                     [--icicle] [--idle]\n"
          "\n"
          "Draws the profile in FILE as a flame graph: a self-contained SVG that any\n"
          "browser opens (no network access, no other file). Each box is a function\n"
          "called from the box below it; its width is its share: CPU time (samples x\n"
          "the sampling interval) for a CPU profile, live bytes for a heap profile.\n"
          "Hover a box for its function, file:line, value and share; click it to zoom\n"
          "(its callers stay, its callees widen to the full width); \"Reset zoom\" or\n"
          "Esc goes back. Search (the box, Ctrl-F or /) highlights the functions whose\n"
          "name matches a regular expression (else a substring) and shows their share.\n"
          "Reads .cpuprofile, pprof CPU and heap profiles, folded stacks,\n"
          ".heapprofile and .heapsnapshot files, told apart by their content (FILE -\n"
          "reads stdin).\n"
          "\n"
          "A heap snapshot (.heapsnapshot, proflab's or Node's) is drawn as its\n"
          "dominator tree by class: each object's box is its class (as proflab top\n"
          "groups them) above the box of its immediate dominator, counted at its self\n"
          "size, so a box's width is the retained size of the objects it stands for\n"
          "and the bottom box is the whole snapshot (proflab top's total). An object\n"
          "of the same class as its dominator's box joins that box (a linked list is\n"
          "one box, not a tower), objects of one class under one box share a box,\n"
          "and at most %u class boxes stack up: what lies deeper is one \"(deeper)\"\n"
          "box.\n"
          "\n"
          "options:\n"
          "  -o, --output OUT    the SVG to write (written to OUT.partial, then renamed;\n"
          "                      - writes to stdout)\n"
          "  --title T           the title (default: \"Flame graph: FILE\")\n"
          "  --width W           image width in px (default 1200; 200 to 100000)\n"
          "  --minwidth PX       leave out frames narrower than PX px (default %g)\n"
          "  --icicle            the root at the top, callees below it\n"
          "  --idle              CPU: draw the (idle) samples too (left out by default;\n"
          "                      the subtitle says how many)\n"
          "  -h, --help          this help\n"
          "\n"
          "Colors: warm for CPU, green to blue for memory, by a hash of the function\n"
          "name (the same function has the same color in every graph); grey for\n"
          "(program), (idle) and the root.\n"
          "\n"
          "exit status: 0 success, 1 failed (FILE unreadable, a write error; OUT is\n"
          "then untouched), 2 bad command line\n",
          PL__FLAME_HEAP_DEPTH, DEFAULT_MINWIDTH);
}

static int usage_error(const char *msg, const char *arg) {
  fprintf(stderr, "proflab flame: %s%s%.60s%s (see proflab flame --help)\n", msg, arg ? " '" : "",
          arg ? arg : "", arg ? "'" : "");
  return CLI_EXIT_USAGE;
}

/* ---- shared with diff.c ------------------------------------------------- */

int cli_parse_width(const char *s, unsigned *out) {
  uint64_t v;
  if (pl__parse_u64(s, &v) != 0 || v < 200 || v > 100000) return -EINVAL;
  *out = (unsigned)v;
  return 0;
}

int cli_parse_minwidth(const char *s, double *out) {
  char *end;
  if (!*s || !((*s >= '0' && *s <= '9') || *s == '.')) return -EINVAL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || !isfinite(v) || v < 0 || v > 10000) return -EINVAL;
  *out = v;
  return 0;
}

/* ---- the graph ---------------------------------------------------------- */

typedef struct svg_job {
  const pl__flame_tree *tree;
  const pl__flame_svg_opts *opts;
  pl__flame_svg_stats stats;
} svg_job;

static int write_svg(void *ctx, int fd) {
  svg_job *j = ctx;
  pl__sink s;
  pl__sink_init_fd(&s, &fd);
  int rc = pl__flame_write_svg(j->tree, j->opts, &s, &j->stats);
  int frc = pl__sink_finish(&s);
  pl__sink_free(&s);
  return rc ? rc : frc;
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s && s[1] ? s + 1 : path;
}

static void put_duration(pl_buf *b, double ns) {
  if (ns >= 1e9)
    pl_buf_printf(b, "%.3f s", ns / 1e9);
  else
    pl_buf_printf(b, "%.1f ms", ns / 1e6);
}

static void put_bytes(pl_buf *b, double v) {
  static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, u++;
  if (u == 0)
    pl_buf_printf(b, "%.0f bytes", v);
  else
    pl_buf_printf(b, "%.1f %s", v, units[u]);
}

/* The subtitle: what the profile is and what the graph counts. */
static void subtitle(pl_buf *b, const pl__profile *pf, const pl__flame_tree *t, int idle) {
  const pl__flame_node *root = &t->nodes[0];
  pl_buf_printf(b, "%s", cli_profile_description(pf));
  if (pf->graph) {
    pl_buf_puts(b, ": ");
    put_bytes(b, (double)root->total[PL__FLAME_MAIN]);
    pl_buf_printf(b,
                  " in %llu objects; the dominator tree by class: widths are retained sizes, "
                  "at most %u classes deep",
                  (unsigned long long)t->samples[PL__FLAME_MAIN], PL__FLAME_HEAP_DEPTH);
    return;
  }
  if (pf->heap) {
    pl_buf_puts(b, ": ");
    put_bytes(b, (double)root->total[PL__FLAME_MAIN]);
    pl_buf_printf(b, " live in %llu sample%s; widths are live bytes by allocating stack",
                  (unsigned long long)t->samples[PL__FLAME_MAIN],
                  t->samples[PL__FLAME_MAIN] == 1 ? "" : "s");
    return;
  }
  const pl_cpu_profile *p = pf->cpu;
  uint64_t all = root->total[PL__FLAME_MAIN] + (idle ? 0 : t->idle[PL__FLAME_MAIN]);
  if (pf->kind != PL__KIND_FOLDED && p->mode) pl_buf_printf(b, " (%s)", p->mode);
  pl_buf_printf(b, ", %llu samples", (unsigned long long)all);
  if (t->period_ns[PL__FLAME_MAIN]) {
    pl_buf_puts(b, ", ");
    put_duration(b, (double)all * (double)p->period_ns);
    pl_buf_printf(b, " at %.3f ms each", (double)p->period_ns / 1e6);
  } else {
    pl_buf_puts(b, " (no times in this format: widths are counts)");
  }
  uint64_t idle_w = t->idle[PL__FLAME_MAIN];
  if (idle_w && !idle)
    pl_buf_printf(b, "; (idle) %.1f%% left out (--idle draws it)",
                  all ? 100.0 * (double)idle_w / (double)all : 0.0);
  else if (idle_w)
    pl_buf_printf(b, "; (idle) %.1f%%", all ? 100.0 * (double)idle_w / (double)all : 0.0);
}

enum { OPT_TITLE = 1000, OPT_WIDTH, OPT_MINWIDTH, OPT_ICICLE, OPT_IDLE };

int cli_cmd_flame(int argc, char **argv) {
  static const struct option opts[] = {
      {"output", required_argument, NULL, 'o'},
      {"title", required_argument, NULL, OPT_TITLE},
      {"width", required_argument, NULL, OPT_WIDTH},
      {"minwidth", required_argument, NULL, OPT_MINWIDTH},
      {"icicle", no_argument, NULL, OPT_ICICLE},
      {"idle", no_argument, NULL, OPT_IDLE},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *out = NULL, *title = NULL;
  unsigned width = 1200;
  double minwidth = DEFAULT_MINWIDTH;
  int icicle = 0, idle = 0, ch;
  opterr = 0;
  optind = 1;
  while ((ch = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
    switch (ch) {
      case 'h':
        usage(stdout);
        return CLI_EXIT_OK;
      case 'o':
        out = optarg;
        break;
      case OPT_TITLE:
        title = optarg;
        break;
      case OPT_WIDTH:
        if (cli_parse_width(optarg, &width))
          return usage_error("--width must be a whole number of px from 200 to 100000, not",
                             optarg);
        break;
      case OPT_MINWIDTH:
        if (cli_parse_minwidth(optarg, &minwidth))
          return usage_error("--minwidth must be a number of px from 0 to 10000, not", optarg);
        break;
      case OPT_ICICLE:
        icicle = 1;
        break;
      case OPT_IDLE:
        idle = 1;
        break;
      case ':':
        return usage_error("missing value for", argv[optind - 1]);
      default:
        return usage_error("unknown option", argv[optind - 1]);
    }
  }
  if (optind >= argc) return usage_error("no FILE given", NULL);
  if (optind + 1 < argc) return usage_error("one FILE only; also given", argv[optind + 1]);
  if (!out) return usage_error("no output given: -o OUT.svg", NULL);
  if (!*out) return usage_error("an empty output name", NULL);
  const char *path = argv[optind];
  const char *shown = strcmp(path, "-") == 0 ? "stdin" : path;

  pl__profile pf;
  cli_progress prog = {0};
  int rc = cli_read_profile_progress("flame", path, &pf, &prog);
  if (rc) return rc;
  pl__flame_tree tree;
  pl_buf sub, tbuf;
  pl_buf_init(&sub);
  pl_buf_init(&tbuf);
  int arc = pl__flame_init(&tree, pf.cpu ? PL__FLAME_SAMPLES : PL__FLAME_BYTES,
                           idle ? PL__FLAME_IDLE : 0);
  if (arc) {
    cli_progress_end(&prog);
    goto analysis_failed;
  }
  if (pf.cpu) {
    arc = pl__flame_add_cpu(&tree, PL__FLAME_MAIN, pf.cpu, pf.kind != PL__KIND_FOLDED);
  } else if (pf.graph) {
    pl__heap_classes hc;
    cli_progress_phase(&prog, "computing the dominator tree"); /* shown after a long read */
    arc = pl__heap_classify(pf.graph, &hc);
    if (!arc) arc = pl__flame_add_heap_graph(&tree, PL__FLAME_MAIN, pf.graph, &hc);
    pl__heap_classes_free(&hc);
  } else {
    arc = pl__flame_add_heap(&tree, PL__FLAME_MAIN, pf.heap);
  }
  cli_progress_end(&prog);
  if (!arc) arc = pl__flame_finish(&tree);
  if (arc) {
    pl__flame_free(&tree);
    goto analysis_failed;
  }
  subtitle(&sub, &pf, &tree, idle);
  if (!title)
    pl_buf_printf(&tbuf, "%s: %s", pf.cpu ? "Flame graph" : "Memory flame graph", base_name(shown));
  if (pl_buf_failed(&sub) || pl_buf_failed(&tbuf)) {
    arc = -ENOMEM;
    pl__flame_free(&tree);
    goto analysis_failed;
  }
  pl__flame_svg_opts so = {
      .title = title ? title : tbuf.data,
      .subtitle = sub.data,
      .width = width,
      .minwidth = minwidth,
      .icicle = icicle,
      .palette = pf.cpu ? PL__FLAME_HOT : PL__FLAME_MEM,
  };
  svg_job job = {&tree, &so, {0, 0, 0, 0}};
  rc = cli_write_output("flame", out, write_svg, &job);
  pl__flame_free(&tree);
  pl_buf_free(&sub);
  pl_buf_free(&tbuf);
  pl__profile_free(&pf);
  return rc;

analysis_failed:
  fprintf(stderr, "proflab flame: %s: %s\n", shown,
          arc == -ENOMEM  ? "out of memory"
          : arc == -EFBIG ? "too many distinct stacks (more than 2^32 nodes)"
          : pf.graph      ? "the snapshot has no nodes"
                          : "the profile is inconsistent (an index out of range)");
  pl_buf_free(&sub);
  pl_buf_free(&tbuf);
  pl__profile_free(&pf);
  return CLI_EXIT_FAIL;
}
