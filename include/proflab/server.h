/* proflab — HTTP server: libmicrohttpd driven from a libuv loop.
 *
 * One thread: MHD runs in "external epoll" mode; its epoll fd sits in a
 * uv_poll_t and MHD_get_timeout() drives a one-shot uv_timer. Handlers run
 * on the loop thread. A handler answers at once (pl_respond_*) or later: if
 * it returns without answering, the connection is suspended until it calls
 * pl_respond_* from the loop thread (e.g. from a uv timer or an
 * after-work callback).
 *
 * The server adds to what MHD gives: a router (404/405 with Allow), JSON
 * error bodies, an `x-lab-task` header on every answer, a deadline for
 * receiving request headers (slowloris) and one for idle keep-alive
 * connections, per-route/status counters, one JSON log line per request,
 * and a draining shutdown (stop accepting, 503 for new requests on open
 * connections, finish what is in flight).
 */
#ifndef PROFLAB_SERVER_H
#define PROFLAB_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proflab/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pl_server pl_server;
typedef struct pl_request pl_request;

enum {
  PL_GET = 1u << 0,
  PL_HEAD = 1u << 1,
  PL_POST = 1u << 2,
  PL_PUT = 1u << 3,
  PL_DELETE = 1u << 4,
  PL_PATCH = 1u << 5,
  PL_OPTIONS = 1u << 6,
  PL_OTHER_METHOD = 1u << 7,
};

typedef void (*pl_handler_fn)(pl_request *req, void *arg);

typedef struct pl_server_config {
  const char *host;           /* literal IPv4/IPv6 or a name; "127.0.0.1" */
  const char *unix_path;      /* if set: listen on a Unix socket at this path instead of
                                 host:port, made mode 0600; a stale socket there is
                                 replaced; removed by pl_server_free in the process
                                 that bound it. Clients show as remote "unix" */
  uint16_t port;              /* 0 picks a free port (see pl_server_port) */
  const char *task;           /* value of the x-lab-task header */
  unsigned max_connections;   /* default 1024 */
  unsigned idle_timeout_ms;   /* keep-alive idle and inactivity; default 65000 */
  unsigned header_timeout_ms; /* request line to end of headers; default 10000 */
  unsigned drain_timeout_ms;  /* shutdown waits at most this; default 10000 */
  size_t max_header_bytes;    /* larger request heads get 431; default 16384 */
  size_t max_body_bytes;      /* larger bodies get 413; default 1 MiB */
  int log_requests;           /* one log line per request; default on (-1) */
  int leave_sigpipe;          /* 1: never touch SIGPIPE (inside someone else's program);
                                 files are then copied, not sent with sendfile() */
} pl_server_config;

/* Fill cfg with the defaults above. */
void pl_server_config_init(pl_server_config *cfg);

/* Create a server on loop. Routes are added before pl_server_start().
 * Returns 0 or a negative errno. The server owns copies of cfg's strings. */
int pl_server_new(pl_server **out, uv_loop_t *loop, const pl_server_config *cfg);
/* Add a route: exact path, or every path under it when prefix is set
 * (then "/api/lab/artifacts/" matches "/api/lab/artifacts/x"). Requests with
 * a method outside `methods` get 405 with an Allow header. */
int pl_server_route(pl_server *s, unsigned methods, const char *path, int prefix, pl_handler_fn fn,
                    void *arg);
/* Bind and start serving. Returns 0 or a negative errno (-EADDRINUSE…).
 * Sets SIGPIPE to SIG_IGN when it is at its default (a client that goes
 * away must not kill the process; files are sent with sendfile()), unless
 * cfg.leave_sigpipe. */
int pl_server_start(pl_server *s);
/* The listening socket after pl_server_start, else -1 (a forked child
 * closes its copy). */
int pl_server_listen_fd(const pl_server *s);
/* The bound port (useful after asking for port 0; 0 on a Unix socket). */
uint16_t pl_server_port(const pl_server *s);
/* Stop accepting; answer 503 to new requests on open connections; call
 * done once in-flight requests finished or the drain timeout passed. */
void pl_server_shutdown(pl_server *s, void (*done)(pl_server *s, void *arg), void *arg);
int pl_server_draining(const pl_server *s);
/* Stop MHD and release everything; closes handles (run the loop once more
 * to let libuv finish closing them). */
void pl_server_free(pl_server *s);

/* Counters, for metrics. */
typedef struct pl_route_stat {
  const char *route; /* route path, or "unmatched" */
  unsigned status;
  uint64_t count;
} pl_route_stat;
/* Visit every (route, status) counter. */
void pl_server_foreach_stat(const pl_server *s, void (*fn)(const pl_route_stat *st, void *arg),
                            void *arg);
unsigned pl_server_connections(const pl_server *s);
uint64_t pl_server_requests(const pl_server *s);

/* ---- requests (valid until answered; loop thread only) ---------------- */
unsigned pl_request_method(const pl_request *r);
const char *pl_request_method_name(const pl_request *r);
const char *pl_request_path(const pl_request *r);
/* Header value (case-insensitive name) or NULL. */
const char *pl_request_header(const pl_request *r, const char *name);
/* Client address as text ("127.0.0.1", "::1"). */
const char *pl_request_remote(const pl_request *r);
/* Query parameters in order of appearance (repeats kept). */
size_t pl_request_query_count(const pl_request *r);
int pl_request_query_at(const pl_request *r, size_t i, const char **key, const char **value);
const void *pl_request_body(const pl_request *r, size_t *len);
pl_server *pl_request_server(const pl_request *r);
/* Extra fields for the request's log line (e.g. lab action details). */
pl_json *pl_request_log_fields(pl_request *r);

/* ---- query parameters ------------------------------------------------- */
/* PL_PARAM_TEXT: the value is a pointer to the parameter's text (valid
 * until the request is answered) cast to uint64_t, or def when absent;
 * bound then describes the text for messages. */
typedef enum { PL_PARAM_UINT, PL_PARAM_ENUM, PL_PARAM_TEXT } pl_param_kind;

typedef struct pl_param_spec {
  const char *name;
  pl_param_kind kind;
  int required;
  uint64_t min, max;          /* PL_PARAM_UINT: allowed range */
  uint64_t def;               /* value when absent and not required */
  const char *bound;          /* what sets max, for messages ("LAB_MAX_JAM_MS") */
  const char *const *choices; /* PL_PARAM_ENUM: NULL-terminated; value = index */
} pl_param_spec;

/* Read the query against specs into values (one per spec). Unknown, repeated,
 * missing or malformed parameters get 400, well-formed numbers outside the
 * range 422; then the request has been answered and the result is -EINVAL.
 * The error message names the parameter and what is allowed. */
int pl_request_params(pl_request *r, const pl_param_spec *specs, size_t n, uint64_t *values);

/* ---- responses -------------------------------------------------------- */
/* Add a header to the coming response. */
void pl_request_add_header(pl_request *r, const char *name, const char *value);
/* Answer with a copy of body. */
int pl_respond(pl_request *r, unsigned status, const char *content_type, const void *body,
               size_t len);
/* Answer with a JSON body built in buf; takes the buffer's memory. A failed
 * buffer (out of memory) becomes a 500. */
int pl_respond_json(pl_request *r, unsigned status, pl_buf *body);
/* {"error":{"code":code,"message":…}} */
int pl_respond_error(pl_request *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Answer with an open file (fd is taken over): MHD sends it with sendfile. */
int pl_respond_fd(pl_request *r, unsigned status, const char *content_type, int fd, uint64_t offset,
                  uint64_t len);

#ifdef __cplusplus
}
#endif
#endif
