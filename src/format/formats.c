/* Format names and extensions, and the one writer switch per kind
 * (include/proflab/formats.h, cpu_writers.h, heap_writers.h). */
#include "proflab/formats.h"

#include <errno.h>
#include <string.h>

#include "format/cpu_writers.h"
#include "format/heap_writers.h"

const char *const pl_cpu_format_names[] = {"cpuprofile", "pprof", "folded", NULL};
const char *const pl_heap_format_names[] = {"heapsnapshot", "heapprofile", "pprof", NULL};
static const char *const cpu_exts[] = {"cpuprofile", "pb.gz", "folded"};
static const char *const heap_exts[] = {"heapsnapshot", "heapprofile", "pb.gz"};

const char *pl_cpu_format_ext(pl_cpu_format f) {
  return (unsigned)f < sizeof(cpu_exts) / sizeof(*cpu_exts) ? cpu_exts[f] : NULL;
}

const char *pl_heap_format_ext(pl_heap_format f) {
  return (unsigned)f < sizeof(heap_exts) / sizeof(*heap_exts) ? heap_exts[f] : NULL;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

pl_cpu_format pl_cpu_format_of_path(const char *path) {
  if (ends_with(path, ".pb.gz")) return PL_CPU_FORMAT_PPROF;
  if (ends_with(path, ".folded")) return PL_CPU_FORMAT_FOLDED;
  return PL_CPU_FORMAT_CPUPROFILE;
}

int pl__cpu_write(const pl_cpu_profile *p, pl_cpu_format f, pl__sink *out) {
  switch (f) {
    case PL_CPU_FORMAT_CPUPROFILE:
      return pl__cpuprofile_write(p, out);
    case PL_CPU_FORMAT_PPROF:
      return pl__pprof_cpu_write(p, out);
    case PL_CPU_FORMAT_FOLDED:
      return pl__folded_write(p, out);
  }
  return -EINVAL;
}

int pl__heap_write(const pl_heap_snapshot *s, pl_heap_format f, pl__sink *out) {
  switch (f) {
    case PL_HEAP_FORMAT_HEAPSNAPSHOT:
      return pl__heapsnapshot_write(s, out);
    case PL_HEAP_FORMAT_HEAPPROFILE:
      return pl__heapprofile_write(s, out);
    case PL_HEAP_FORMAT_PPROF:
      return pl__pprof_heap_write(s, out);
  }
  return -EINVAL;
}

int pl_cpu_profile_write_fd(const pl_cpu_profile *p, pl_cpu_format f, int fd) {
  pl__sink sink;
  pl__sink_init_fd(&sink, &fd);
  int rc = pl__cpu_write(p, f, &sink);
  pl__sink_free(&sink);
  return rc;
}

int pl_heap_snapshot_write_fd(const pl_heap_snapshot *s, pl_heap_format f, int fd) {
  pl__sink sink;
  pl__sink_init_fd(&sink, &fd);
  int rc = pl__heap_write(s, f, &sink);
  pl__sink_free(&sink);
  return rc;
}
