/* proflab — the lab module: endpoints that cause performance problems on
 * purpose and report on the process, behind layered security.
 *
 * Mount it on a pl_server in any service built on proflab's server:
 *
 *   pl_lab_config cfg;
 *   pl_lab_config_init(&cfg);
 *   if (pl_lab_config_from_env(&cfg, err, sizeof err) != 0) { ...exit... }
 *   pl_lab_new(&lab, loop, &cfg, loopmon);
 *   pl_lab_mount(lab, server);   // /api/lab/... only when the lab is active
 *
 * When the lab is not active no /api/lab/... route exists, so those paths
 * answer exactly like any unknown path.
 */
#ifndef PROFLAB_LAB_H
#define PROFLAB_LAB_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proflab/loopmon.h"
#include "proflab/server.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PL_LAB_MIN_TOKEN_LEN 16

typedef struct pl_lab_config {
  int enable;                     /* LAB_ENABLE=true */
  const char *token;              /* LAB_TOKEN (never logged) */
  int production;                 /* APP_ENV or NODE_ENV = production */
  const char *production_var;     /* which variable said so */
  int allow_prod;                 /* LAB_ALLOW_PROD=true */
  const char *artifact_dir;       /* LAB_ARTIFACT_DIR, default /tmp */
  const char *task;               /* this instance's id (pl_task_id_detect) */
  uint64_t max_leak_mb;           /* LAB_MAX_LEAK_MB, default 1024 */
  uint64_t max_profile_seconds;   /* LAB_MAX_PROFILE_SECONDS, default 60 */
  uint64_t max_jam_ms;            /* LAB_MAX_JAM_MS, default 30000 */
  unsigned max_artifacts;         /* LAB_MAX_ARTIFACTS, default 20 */
  uint64_t max_artifact_mb;       /* LAB_MAX_ARTIFACT_MB, default 1024 */
  unsigned failed_token_limit;    /* failures per address before 429; default 10 */
  unsigned failed_token_window_s; /* and for how long; default 60 */
  /* For programs that embed the lab in someone else's process (the agent):
   * unix_socket_only: the server listens only on a Unix socket of mode
   * 0600, so LAB_TOKEN may be absent (a token that is set is still
   * required and still needs PL_LAB_MIN_TOKEN_LEN characters);
   * capture_only: mount status, cpu-profile, heap-snapshot and artifacts,
   * not the endpoints that harm the process (memory-leak, memory-clear,
   * event-loop-jam answer 404);
   * profile_tid: wall-mode profiles sample this thread (no idle
   * detection); 0: the loop thread, with its poll phase as "(idle)";
   * profile_all_threads: wall-mode profiles sample every thread of the
   * process (proflab's own aside) unless `threads=` names some. */
  int unix_socket_only;
  int capture_only;
  uint32_t profile_tid;
  int profile_all_threads;
} pl_lab_config;

/* Defaults, lab off. */
void pl_lab_config_init(pl_lab_config *cfg);
/* Read the LAB_* variables, APP_ENV and NODE_ENV. Strings point into the
 * environment. Returns 0, or -EINVAL with a message in err for a value that
 * cannot be used (a bound that is not a number, ...). */
int pl_lab_config_from_env(pl_lab_config *cfg, char *err, size_t errlen);
/* Whether the lab will run with cfg, and why not. Returns 0, or -EINVAL
 * with a message in err when the configuration must stop start-up (lab
 * enabled with a missing or short token). *why says why an enabled lab
 * stays off (production), else NULL. */
int pl_lab_config_check(const pl_lab_config *cfg, int *active, const char **why, char *err,
                        size_t errlen);

/* This instance's identity: LAB_TASK_ID, else the task id in the ECS
 * metadata URI (ECS_CONTAINER_METADATA_URI_V4 / _URI), else HOSTNAME, else
 * gethostname(). Reduced to [A-Za-z0-9._-], at most 64 characters, so it
 * can go into file names. Writes "unknown" if nothing is found. */
void pl_task_id_detect(char *out, size_t n);
/* The same from explicit inputs (any may be NULL), for tests. */
void pl_task_id_from(const char *explicit_id, const char *ecs_uri, const char *hostname, char *out,
                     size_t n);

typedef struct pl_lab pl_lab;

/* Create the lab (cfg is copied; its strings must outlive the lab). An
 * active lab prepares its artifact directory (created, mode 0700) and
 * fails with its errno when it cannot.
 * mon may be NULL (no lag figures). Returns 0 or a negative errno. */
int pl_lab_new(pl_lab **out, uv_loop_t *loop, const pl_lab_config *cfg, pl_loopmon *mon);
/* Register /api/lab/... on the server when the lab is active. */
int pl_lab_mount(pl_lab *lab, pl_server *server);
int pl_lab_active(const pl_lab *lab);
/* Bytes held by memory-leak. */
uint64_t pl_lab_leak_bytes(const pl_lab *lab);
/* The service is stopping: end a running profile now (its artifact is
 * still written and its request answered). */
void pl_lab_shutdown(pl_lab *lab);
/* Close the lab's libuv handles (then run the loop to let them close). */
void pl_lab_close(pl_lab *lab);
/* Free everything the lab holds (after pl_lab_close and the loop ran). */
void pl_lab_free(pl_lab *lab);

#ifdef __cplusplus
}
#endif
#endif
