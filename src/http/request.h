/* What the server tells its users about a request beyond include/proflab/server.h. */
#ifndef PL_HTTP_REQUEST_H
#define PL_HTTP_REQUEST_H

#include "proflab/server.h"

/* How many times a header (case-insensitive name) occurs in the request
 * (pl_request_header gives only the first). */
unsigned pl__request_header_count(const pl_request *r, const char *name);

#endif
