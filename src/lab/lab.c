/* The lab module (proflab/lab.h): assembles the endpoint files of src/lab/
 * (their state, routes and shutdown) around the shared state in
 * lab_internal.h. */
#include "proflab/lab.h"

#include <errno.h>
#include <stdlib.h>

#include "capture/capture.h"
#include "common/util.h"
#include "lab/lab_internal.h"

/* What captures keep between uses goes back after a minute unused. */
static void on_sym_timer(uv_timer_t *t) {
  (void)t;
  pl__capture_drop_idle();
}

/* The endpoint files' state, in order; freed in reverse. */
static int init_endpoints(pl_lab *lab) {
  int rc = pl__lab_harm_init(lab);
  if (!rc) rc = pl__lab_heap_init(lab);
  if (!rc) rc = pl__lab_artifacts_init(lab);
  if (!rc) rc = pl__lab_cpu_init(lab);
  return rc;
}

int pl_lab_new(pl_lab **out, uv_loop_t *loop, const pl_lab_config *cfg, pl_loopmon *mon) {
  char err[256];
  int active;
  const char *why;
  int rc = pl_lab_config_check(cfg, &active, &why, err, sizeof(err));
  if (rc) return rc;
  pl_lab *lab = calloc(1, sizeof(*lab));
  if (!lab) return -ENOMEM;
  lab->loop = loop;
  lab->cfg = *cfg;
  lab->mon = mon;
  lab->active = active;
  lab->why_off = why;
  pl__rl_init(&lab->rl, cfg->failed_token_limit, cfg->failed_token_window_s);
  lab->start_wall_ns = pl__wall_ns();
  lab->start_mono_ns = pl__now_ns();
  if (!active) {
    *out = lab;
    return 0;
  }
  rc = pl__artifact_store_init(&lab->store, cfg->artifact_dir, cfg->task, cfg->max_artifacts,
                               cfg->max_artifact_mb << 20);
  if (rc) {
    free(lab);
    return rc;
  }
  lab->store_ready = 1;
  rc = init_endpoints(lab);
  if (rc) {
    pl_lab_free(lab);
    return rc;
  }
  if (uv_timer_init(loop, &lab->sym_timer) == 0) {
    uv_timer_start(&lab->sym_timer, on_sym_timer, PL__CAPTURE_DROP_EVERY_MS,
                   PL__CAPTURE_DROP_EVERY_MS);
    uv_unref((uv_handle_t *)&lab->sym_timer); /* never keeps the loop alive */
  }
  *out = lab;
  return 0;
}

int pl_lab_mount(pl_lab *lab, pl_server *server) {
  if (!lab->active) return 0;
  int rc = pl__lab_status_mount(lab, server);
  if (!rc && !lab->cfg.capture_only) rc = pl__lab_harm_mount(lab, server);
  if (!rc) rc = pl__lab_cpu_mount(lab, server);
  if (!rc) rc = pl__lab_heap_mount(lab, server);
  if (!rc) rc = pl__lab_artifacts_mount(lab, server);
  return rc;
}

int pl_lab_active(const pl_lab *lab) { return lab->active; }

uint64_t pl_lab_leak_bytes(const pl_lab *lab) { return pl__lab_harm_leak_bytes(lab); }

void pl_lab_shutdown(pl_lab *lab) {
  if (lab && lab->active) pl__lab_cpu_cancel(lab);
}

void pl_lab_close(pl_lab *lab) {
  if (lab && lab->active) {
    uv_close((uv_handle_t *)&lab->sym_timer, NULL);
    pl__lab_cpu_close(lab);
  }
}

void pl_lab_free(pl_lab *lab) {
  if (!lab) return;
  pl__lab_cpu_free(lab);
  pl__lab_artifacts_free(lab);
  pl__lab_heap_free(lab);
  pl__lab_harm_free(lab);
  if (lab->store_ready) pl__artifact_store_close(&lab->store);
  free(lab);
}
