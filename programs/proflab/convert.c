/* proflab convert: reads a profile in any format the readers know and writes
 * it in another through the models and the writers (proflab/formats.h):
 * CPU formats among themselves, heap profile <-> pprof heap. The output is
 * written to OUT.partial, synced and renamed: never a partial file under
 * OUT. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "format/hashtab.h"
#include "proflab/formats.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: proflab convert IN -o OUT [--to FORMAT]\n"
          "\n"
          "Writes the profile in IN in another format. CPU profiles convert among\n"
          ".cpuprofile (Chrome DevTools, speedscope), pprof (.pb.gz, go tool pprof) and\n"
          "folded stacks (FlameGraph); heap profiles between .heapprofile (DevTools'\n"
          "allocation sampling) and pprof heap. IN's format is told from its content\n"
          "(IN - reads stdin); OUT's from --to, else from its extension: .cpuprofile,\n"
          ".pb.gz (pprof, or pprof heap for a heap profile), .folded, .heapprofile.\n"
          "OUT is written to OUT.partial and renamed once complete; -o - writes to\n"
          "stdout (with --to).\n"
          "\n"
          "options:\n"
          "  -o, --output OUT   where to write\n"
          "  --to FORMAT        cpuprofile, pprof, folded, heapprofile or pprof-heap\n"
          "  -h, --help         this help\n"
          "\n"
          "What survives: functions, files, lines and stacks with their weights, in\n"
          "every direction. pprof and folded stacks have no timeline (a .cpuprofile\n"
          "made from them spaces samples one interval apart); folded stacks keep\n"
          "function names only and assume 1 ms per sample; a .heapprofile has only\n"
          "live data (pprof heap's alloc_* then equal its inuse_*).\n"
          "\n"
          "exit status: 0 success, 1 failed (IN unreadable, a CPU profile asked for in\n"
          "a heap format or the reverse, a write error; OUT is then untouched),\n"
          "2 bad command line\n");
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...) {
  fprintf(stderr, "proflab convert: ");
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see proflab convert --help)\n");
  return CLI_EXIT_USAGE;
}

/* Output formats: a name, whether it is a heap format, the writer's enum. */
typedef struct out_format {
  const char *name;
  int heap;
  int format; /* pl_cpu_format or pl_heap_format */
} out_format;

static const out_format formats[] = {
    {"cpuprofile", 0, PL_CPU_FORMAT_CPUPROFILE}, {"pprof", 0, PL_CPU_FORMAT_PPROF},
    {"folded", 0, PL_CPU_FORMAT_FOLDED},         {"heapprofile", 1, PL_HEAP_FORMAT_HEAPPROFILE},
    {"pprof-heap", 1, PL_HEAP_FORMAT_PPROF},
};

static const out_format *format_named(const char *name) {
  for (size_t i = 0; i < sizeof(formats) / sizeof(*formats); i++)
    if (strcmp(formats[i].name, name) == 0) return &formats[i];
  return NULL;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The format OUT's name asks for ("pprof" stands for either pprof), or NULL. */
static const char *format_of_name(const char *out) {
  if (ends_with(out, ".cpuprofile")) return "cpuprofile";
  if (ends_with(out, ".pb.gz")) return "pprof";
  if (ends_with(out, ".folded")) return "folded";
  if (ends_with(out, ".heapprofile")) return "heapprofile";
  return NULL;
}

/* pprof has no timeline and its writer makes one Sample per model sample:
 * samples of one stack and thread are merged (weights summed, at the time
 * of the first), in order of first appearance. What pprof shows stays the
 * same; a Node profile of 20 million 1 ms samples becomes one Sample per
 * distinct stack instead of a file three times the .cpuprofile. 0 or
 * -ENOMEM (p unchanged). */
static int merge_samples(pl_cpu_profile *p) {
  pl__keytab keys;
  pl__keytab_init(&keys);
  uint64_t *sums = NULL;
  size_t cap = 0;
  int rc = 0;
  for (size_t i = 0; i < p->nsamples; i++) {
    const pl_cpu_sample *s = &p->samples[i];
    int added;
    int64_t k = pl__keytab_intern(&keys, s->stack, s->tid, 0, &added);
    if (k < 0) {
      rc = -ENOMEM;
      goto out;
    }
    if (added) {
      if ((size_t)k >= cap) {
        size_t ncap = cap ? cap * 2 : 1024;
        uint64_t *ns = reallocarray(sums, ncap, sizeof(*ns));
        if (!ns) {
          rc = -ENOMEM;
          goto out;
        }
        sums = ns;
        cap = ncap;
      }
      sums[k] = 0;
      p->samples[k] = *s; /* k <= i: the first of its kind, in place */
    }
    sums[k] += s->weight;
  }
  /* weights back, split at 2^32 - 1 (never more entries than there were) */
  size_t n = keys.n, out_n = 0, extra = 0;
  for (size_t k = 0; k < n; k++) extra += (size_t)((sums[k] - 1) / UINT32_MAX);
  out_n = n + extra;
  for (size_t k = n, w = out_n; k-- > 0;) { /* from the end: entries move right */
    pl_cpu_sample first = p->samples[k];
    uint64_t sum = sums[k];
    do {
      uint64_t part = sum % UINT32_MAX ? sum % UINT32_MAX : UINT32_MAX;
      first.weight = (uint32_t)part;
      p->samples[--w] = first;
      sum -= part;
    } while (sum);
  }
  p->nsamples = out_n;
out:
  free(sums);
  pl__keytab_free(&keys);
  return rc;
}

static int write_profile(const pl__profile *pf, const out_format *of, int fd) {
  return of->heap ? pl_heap_snapshot_write_fd(pf->heap, (pl_heap_format)of->format, fd)
                  : pl_cpu_profile_write_fd(pf->cpu, (pl_cpu_format)of->format, fd);
}

typedef struct convert_job {
  const pl__profile *pf;
  const out_format *of;
} convert_job;

static int write_job(void *ctx, int fd) {
  const convert_job *j = ctx;
  return write_profile(j->pf, j->of, fd);
}

enum { OPT_TO = 1000 };

int cli_cmd_convert(int argc, char **argv) {
  static const struct option opts[] = {
      {"output", required_argument, NULL, 'o'},
      {"to", required_argument, NULL, OPT_TO},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *out = NULL, *to = NULL;
  int ch;
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
      case OPT_TO:
        if (!format_named(optarg))
          return usage_error(
              "--to '%.40s' must be cpuprofile, pprof, folded, heapprofile or pprof-heap", optarg);
        to = optarg;
        break;
      case ':':
        return usage_error("option %.40s needs a value", argv[optind - 1]);
      default:
        return usage_error("unknown option '%.40s'", argv[optind - 1]);
    }
  }
  if (optind >= argc) return usage_error("no input file given");
  if (optind + 1 < argc)
    return usage_error("one input file only, also given '%.60s'", argv[optind + 1]);
  if (!out) return usage_error("no output given: -o OUT");
  if (!*out) return usage_error("an empty output name");
  int to_stdout = strcmp(out, "-") == 0;
  if (!to && to_stdout) return usage_error("-o - (stdout) needs --to FORMAT");
  if (!to && !(to = format_of_name(out)))
    return usage_error("cannot tell the output format from the name '%.60s' (give --to)", out);
  const char *in = argv[optind];

  pl__profile pf;
  int rc = cli_read_profile("convert", in, &pf);
  if (rc) return rc;
  const out_format *of = format_named(to);
  if (strcmp(to, "pprof") == 0 && pf.heap) of = format_named("pprof-heap");
  if (of->heap != (pf.heap != NULL)) {
    fprintf(stderr, "proflab convert: %s: a %s cannot be written as %s (a %s format)\n",
            strcmp(in, "-") == 0 ? "stdin" : in, cli_profile_description(&pf), of->name,
            of->heap ? "heap" : "CPU");
    pl__profile_free(&pf);
    return CLI_EXIT_FAIL;
  }
  if (!of->heap && of->format == PL_CPU_FORMAT_PPROF && merge_samples(pf.cpu)) {
    fprintf(stderr, "proflab convert: out of memory\n");
    pl__profile_free(&pf);
    return CLI_EXIT_FAIL;
  }
  if (to_stdout) {
    int wrc = write_profile(&pf, of, 1);
    rc = CLI_EXIT_OK;
    if (wrc) {
      fprintf(stderr, "proflab convert: cannot write to stdout: %s\n", strerror(-wrc));
      rc = CLI_EXIT_FAIL;
    }
  } else {
    convert_job job = {&pf, of};
    rc = cli_write_output("convert", out, write_job, &job);
  }
  pl__profile_free(&pf);
  return rc;
}
