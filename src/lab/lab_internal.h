/* The lab's shared state, for the files of src/lab/ only. */
#ifndef PL_LAB_INTERNAL_H
#define PL_LAB_INTERNAL_H

#include <uv.h>

#include "artifact/store.h"
#include "lab/harm.h"
#include "lab/ratelimit.h"
#include "proflab/lab.h"
#include "proflab/profiler.h"

struct lab_cpu_job;

struct pl_lab {
  uv_loop_t *loop;
  pl_lab_config cfg;
  pl_loopmon *mon;
  int active;
  const char *why_off;
  pl_ratelimit rl;
  pl_leak leak;
  uint64_t start_wall_ns;
  uint64_t start_mono_ns;
  uint64_t jams;
  uint64_t jammed_ms_total;
  /* artifacts and the CPU profile endpoint (cpu_profile.c) */
  int store_ready;
  pl_artifact_store store;
  pl_loop_idle *idle;
  uv_timer_t profile_timer;
  struct lab_cpu_job *cpu_job; /* the running profile, or NULL */
  uint64_t profiles_taken;
  uint64_t profile_failures;
};

/* Token check with per-address failure limiting. Answers the request and
 * returns -EACCES when it may not go on. */
int lab_guard(pl_lab *lab, pl_request *r);

/* cpu_profile.c */
int lab_cpu_init(pl_lab *lab);
void lab_cpu_status(pl_lab *lab, pl_json *j);
void lab_cpu_cancel(pl_lab *lab);
void lab_cpu_close(pl_lab *lab);
void lab_on_cpu_profile(pl_request *r, void *arg);

#endif
