/* CPU profile writers: a pl_cpu_profile (proflab/cpu_profile.h) to the bytes
 * of Chrome's .cpuprofile, pprof's profile.proto (gzip) and FlameGraph's
 * folded stacks.
 *
 * Common contract: the writers stream into `out` (pl__sink), only read the
 * profile (never free or change it; its strings must stay valid during the
 * call), end with pl__sink_finish() so everything reached the sink's backend
 * (a memory sink keeps the bytes in out->buf), and return 0 or a negative
 * errno: the sink's error (sticky, see common/sink.h), -ENOMEM, or -EINVAL
 * for a model that breaks proflab/cpu_profile.h (a stack or frame index out of range,
 * a weight of 0). On error the bytes already handed to the sink are
 * partial; the caller discards them. The sink stays the caller's (init and
 * free). Output is deterministic for a given model.
 *
 * A stack of depth 0 is written like PL_STACK_PROGRAM ("no stack").
 */
#ifndef PL_FORMAT_CPU_WRITERS_H
#define PL_FORMAT_CPU_WRITERS_H

#include "common/sink.h"
#include "proflab/cpu_profile.h"
#include "proflab/formats.h"

/* The writer format f names (formats.c): the one CPU writer switch. -EINVAL
 * for a value outside pl_cpu_format. */
int pl__cpu_write(const pl_cpu_profile *p, pl_cpu_format f, pl__sink *out);

/* Chrome DevTools / V8 `.cpuprofile` JSON (CDP Profiler.Profile); mode "cpu" synthesizes time. */
int pl__cpuprofile_write(const pl_cpu_profile *p, pl__sink *out);

/* pprof CPU profile: gzip-compressed perftools.profiles.Profile (`go tool pprof` reads it). */
int pl__pprof_cpu_write(const pl_cpu_profile *p, pl__sink *out);

/* The same pprof Profile, uncompressed protobuf bytes (for tests and tools that gzip later). */
int pl__pprof_cpu_write_raw(const pl_cpu_profile *p, pl__sink *out);

/* FlameGraph folded stacks: "root;...;leaf <summed weight>\n", one line per stack, sorted. */
int pl__folded_write(const pl_cpu_profile *p, pl__sink *out);

#endif
