/* What the files of src/lab/ share: the lab's common state (struct pl_lab)
 * and each endpoint file's entry points. Each endpoint file owns its own
 * state behind an opaque pointer; lab.c assembles them. Calls go one way:
 * lab.c → endpoint files (status.c → the others' status parts) →
 * answer.c. Loop thread only. */
#ifndef PL_LAB_LAB_INTERNAL_H
#define PL_LAB_LAB_INTERNAL_H

#include <uv.h>

#include "artifact/store.h"
#include "lab/ratelimit.h"
#include "proflab/lab.h"

struct pl__lab_harm;
struct pl__lab_cpu;
struct pl__lab_heap;
struct pl__lab_artifacts;

struct pl_lab {
  uv_loop_t *loop;
  pl_lab_config cfg;
  pl_loopmon *mon;
  int active;
  const char *why_off;
  uint64_t start_wall_ns;
  uint64_t start_mono_ns;
  pl__ratelimit rl; /* failed tokens per address (answer.c) */
  int store_ready;
  pl__artifact_store store; /* where artifacts go */
  uv_timer_t sym_timer;     /* drops the idle symbolizer (lab.c) */
  /* each endpoint file's own state */
  struct pl__lab_harm *harm;           /* harm_routes.c */
  struct pl__lab_cpu *cpu;             /* cpu_profile.c */
  struct pl__lab_heap *heap;           /* heap_snapshot.c */
  struct pl__lab_artifacts *artifacts; /* artifacts.c */
};

/* harm_routes.c: POST memory-leak, memory-clear, event-loop-jam. */
int pl__lab_harm_init(pl_lab *lab);
void pl__lab_harm_free(pl_lab *lab);
int pl__lab_harm_mount(pl_lab *lab, pl_server *server);
void pl__lab_harm_jam_status(pl_lab *lab, pl_json *j);  /* jams, jammed_ms_total */
void pl__lab_harm_leak_status(pl_lab *lab, pl_json *j); /* leak_bytes, leak_chunks */
uint64_t pl__lab_harm_leak_bytes(const pl_lab *lab);

/* cpu_profile.c: POST cpu-profile. */
int pl__lab_cpu_init(pl_lab *lab);
void pl__lab_cpu_cancel(pl_lab *lab); /* stop a running profile now; it is still written */
void pl__lab_cpu_close(pl_lab *lab);  /* close its handles (then run the loop) */
void pl__lab_cpu_free(pl_lab *lab);
int pl__lab_cpu_mount(pl_lab *lab, pl_server *server);
void pl__lab_cpu_status(pl_lab *lab, pl_json *j);

/* heap_snapshot.c: POST heap-snapshot. */
int pl__lab_heap_init(pl_lab *lab);
void pl__lab_heap_free(pl_lab *lab);
int pl__lab_heap_mount(pl_lab *lab, pl_server *server);
void pl__lab_heap_status(pl_lab *lab, pl_json *j);

/* artifacts.c: GET artifacts and artifacts/<name>. */
int pl__lab_artifacts_init(pl_lab *lab);
void pl__lab_artifacts_free(pl_lab *lab);
int pl__lab_artifacts_mount(pl_lab *lab, pl_server *server);
void pl__lab_artifacts_status(pl_lab *lab, pl_json *j); /* the "artifacts" list */

/* status.c: GET status (asks the files above for their parts). */
int pl__lab_status_mount(pl_lab *lab, pl_server *server);

#endif
