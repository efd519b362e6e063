/* The error answer's shape, one place for every endpoint that answers in
 * JSON (the HTTP server, the inspector's discovery): {"error":{"code":…,
 * "message":…}}. */
#ifndef PL_COMMON_JSON_ERROR_H
#define PL_COMMON_JSON_ERROR_H

#include "proflab/buf.h"

/* Initialize b and write the error object into it (the caller frees b;
 * pl_buf_failed(b) tells an allocation failure). */
void pl__json_error_body(pl_buf *b, const char *code, const char *message);

#endif
