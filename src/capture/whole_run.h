/* Whole-run profiles: a CPU profile from start to exit and a heap profile
 * at exit, written to a file the user named (like `node --cpu-prof` or
 * gperftools' CPUPROFILE), through the capture path. Used by proflabd
 * (PROFLAB_CPU_PROFILE) and the agent (PROFLAB_CPU_PROFILE,
 * PROFLAB_HEAP_PROFILE). Files are written to "<path>.partial", fsynced
 * and renamed: an interrupted write never leaves a file under path.
 * Thread rules: as the capture path's (capture.h). */
#ifndef PL_CAPTURE_WHOLE_RUN_H
#define PL_CAPTURE_WHOLE_RUN_H

#include <stddef.h>

#include "capture/capture.h"
#include "proflab/profiler.h"

typedef struct pl__whole_run {
  const char *path;     /* the caller's string; must outlive the run */
  pl__capture *capture; /* holds the process's CPU capture for the whole run */
} pl__whole_run;

/* The mode and rate of a whole-run profile from PROFLAB_CPU_PROFILE_MODE
 * (wall|cpu; default wall) and PROFLAB_CPU_PROFILE_HZ (default 1000) into
 * o (other fields untouched). 0, or -EINVAL with a message in err. */
int pl__whole_run_cpu_options(pl_cpu_options *o, char *err, size_t errlen);
/* Fail now, not after a long run: 0 when "<path>.partial" can be created
 * (it is removed again), else -errno with "<var> <path>: reason" in err. */
int pl__whole_run_check_path(const char *path, const char *var, char *err, size_t errlen);
/* A forked child's file for a whole-run profile at path: the pid
 * inserted before the extension that names the format, so parent and
 * child never write the same file and the format stays the same
 * ("run.cpuprofile" -> "run.4242.cpuprofile", "cpu.pb.gz" ->
 * "cpu.4242.pb.gz"; no extension: "prof" -> "prof.4242"). 0, or
 * -ENAMETOOLONG when it does not fit in n. */
int pl__whole_run_path_for_pid(const char *path, int pid, char *out, size_t n);
/* In a child after fork(): the whole-run profile running (w, may be NULL)
 * and every capture are the parent's to write; forget them without
 * touching them (pl__capture_forget_after_fork,
 * pl_cpu_profiler_forget_after_fork), so the child can start its own.
 * Stores only: fine in a pthread_atfork child handler. */
void pl__whole_run_forget_after_fork(pl__whole_run *w);
/* Check path, claim the CPU capture (as who: "the whole-run profile
 * (PROFLAB_CPU_PROFILE)") in the format path's extension names, and start
 * the profiler with o. 0, or -errno with a message in err (nothing runs). */
int pl__whole_run_cpu_start(pl__whole_run *w, const char *path, const pl_cpu_options *o,
                            const char *who, char *err, size_t errlen);
/* Stop, symbolize and write the profile to its path; logs the outcome
 * (cpu_profile_run_written) and releases the capture. 0 or -errno. */
int pl__whole_run_cpu_finish(pl__whole_run *w);
/* Take a heap snapshot now and write it to path in the format its
 * extension names (.heapsnapshot, .pb.gz or .pprof: pprof, else
 * .heapprofile); logs the outcome (heap_profile_run_written). 0 or
 * -errno (-EBUSY: another heap capture runs). */
int pl__whole_run_heap_write(const char *path, const char *who);

#endif
