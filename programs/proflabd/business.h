/* proflabd's own business endpoints: real work for profiles to show. */
#ifndef PROFLABD_BUSINESS_H
#define PROFLABD_BUSINESS_H

#include "proflab/server.h"

/* Route GET /api/health, GET /api/work, GET /api/primes and
 * POST /api/checksum on server (call before the server starts). Returns 0,
 * or the first failing pl_server_route's negative errno. */
int svc_business_mount(pl_server *server);

#endif
