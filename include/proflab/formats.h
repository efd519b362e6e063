/* proflab — the file formats a CPU profile and a heap snapshot are written
 * in: their names (as the lab's `format=` parameter and the CLI take them),
 * file extensions, and writing a model object to a file descriptor with the
 * writer its format names (the one writer switch per kind). */
#ifndef PROFLAB_FORMATS_H
#define PROFLAB_FORMATS_H

#include "proflab/cpu_profile.h"
#include "proflab/heap_snapshot.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Chrome .cpuprofile, gzipped pprof, FlameGraph folded stacks. */
typedef enum {
  PL_CPU_FORMAT_CPUPROFILE = 0,
  PL_CPU_FORMAT_PPROF = 1,
  PL_CPU_FORMAT_FOLDED = 2,
} pl_cpu_format;
/* Chrome .heapsnapshot, CDP sampling heap profile, gzipped pprof heap. */
typedef enum {
  PL_HEAP_FORMAT_HEAPSNAPSHOT = 0,
  PL_HEAP_FORMAT_HEAPPROFILE = 1,
  PL_HEAP_FORMAT_PPROF = 2,
} pl_heap_format;

/* Names by format, NULL-terminated: {"cpuprofile", "pprof", "folded"} and
 * {"heapsnapshot", "heapprofile", "pprof"}. */
extern const char *const pl_cpu_format_names[];
extern const char *const pl_heap_format_names[];
/* File extension without the dot ("cpuprofile", "pb.gz", "folded",
 * "heapsnapshot", "heapprofile"); NULL for a value outside the enum. */
const char *pl_cpu_format_ext(pl_cpu_format f);
const char *pl_heap_format_ext(pl_heap_format f);
/* The CPU format a file name's extension names (.pb.gz, .folded; anything
 * else is .cpuprofile). */
pl_cpu_format pl_cpu_format_of_path(const char *path);

/* Write a symbolized model to fd (the caller keeps fd) in format f. 0 or
 * -errno (the writer's: see cpu_writers.h and heap_writers.h in src/format/); on error what reached
 * fd is partial. */
int pl_cpu_profile_write_fd(const pl_cpu_profile *p, pl_cpu_format f, int fd);
int pl_heap_snapshot_write_fd(const pl_heap_snapshot *s, pl_heap_format f, int fd);

#ifdef __cplusplus
}
#endif
#endif
