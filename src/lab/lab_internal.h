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
struct lab_heap_job;

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
  uv_timer_t sym_timer; /* drops the idle symbolizer (lab.c) */
  /* the heap snapshot endpoint (heap_snapshot.c) */
  struct lab_heap_job *heap_job; /* the snapshot being written, or NULL */
  uint64_t snapshots_taken;
  uint64_t snapshot_failures;
  struct lab_artifacts *artifacts; /* hash cache of the artifact list (artifacts.c) */
};

/* Token check with per-address failure limiting. Answers the request and
 * returns -EACCES when it may not go on. */
int lab_guard(pl_lab *lab, pl_request *r);

/* Answers: a JSON object opened with the task; an artifact's fields (file,
 * path, bytes, sha256, format); a failed artifact write (507 no_space for a
 * full disk, else 500 `code`: "<what> <step> failed: <reason>"). */
void lab_answer_open(pl_lab *lab, pl_buf *b, pl_json *j);
void lab_answer_artifact(pl_json *j, const pl_artifact *a, const char *format);
void lab_answer_write_failed(pl_lab *lab, pl_request *r, int rc, const char *code, const char *what,
                             const char *step);

/* cpu_profile.c */
int lab_cpu_init(pl_lab *lab);
void lab_cpu_status(pl_lab *lab, pl_json *j);
void lab_cpu_cancel(pl_lab *lab);
void lab_cpu_close(pl_lab *lab);
void lab_on_cpu_profile(pl_request *r, void *arg);

/* heap_snapshot.c */
void lab_heap_status(pl_lab *lab, pl_json *j);
void lab_on_heap_snapshot(pl_request *r, void *arg);

/* artifacts.c: GET /api/lab/artifacts and /api/lab/artifacts/<name> */
int lab_artifacts_init(pl_lab *lab);
void lab_artifacts_free(pl_lab *lab);
void lab_on_artifacts_list(pl_request *r, void *arg);
void lab_on_artifact_get(pl_request *r, void *arg);

#endif
