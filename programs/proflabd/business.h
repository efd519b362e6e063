/* proflabd's own business endpoints: real work for profiles to show. */
#ifndef PROFLABD_BUSINESS_H
#define PROFLABD_BUSINESS_H

#include <stdint.h>

#include "proflab/server.h"

/* The lab's exercises (LAB_EXERCISES, docs/lab.md): problems hidden in the
 * business code for a reader to find with the tools. Off unless the lab is
 * active. */
#define SVC_EXERCISE_CPU 1u    /* exercise 1: some requests turn slow */
#define SVC_EXERCISE_MEMORY 2u /* exercise 2: memory grows with traffic */

typedef struct svc_business_options {
  unsigned exercises;          /* SVC_EXERCISE_* */
  uint64_t exercise_max_bytes; /* bound on exercise 2's growth (LAB_MAX_LEAK_MB) */
} svc_business_options;

/* Route GET /api/health, GET /api/work, GET /api/primes, POST /api/checksum,
 * GET /api/search and GET /api/report on server (call before the server
 * starts; opt may be NULL: no exercises). Returns 0, or the first failing
 * pl_server_route's negative errno (-ENOMEM if the catalog cannot be built). */
int svc_business_mount(pl_server *server, const svc_business_options *opt);

#endif
