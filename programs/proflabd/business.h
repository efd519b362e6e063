/* proflabd's own business endpoints: real work for profiles to show. */
#ifndef PROFLABD_BUSINESS_H
#define PROFLABD_BUSINESS_H

#include "proflab/server.h"

/* GET /api/health, GET /api/work, GET /api/primes, POST /api/checksum. */
int business_mount(pl_server *server);

#endif
