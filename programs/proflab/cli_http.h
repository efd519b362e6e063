/* The CLI's HTTP layer (libcurl): one connection to a lab URL with
 * its token and an in-memory cookie jar (a load balancer's stickiness
 * cookie is kept and sent back), JSON requests, and verified downloads of
 * artifacts from a named task. For the lab commands in lab_client.c. */
#ifndef PROFLAB_CLI_HTTP_H
#define PROFLAB_CLI_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* A connection to one lab: a libcurl handle (reused, so cookies persist),
 * the base URL and the token header. Opaque; not thread-safe. */
typedef struct cli_conn cli_conn;

/* What cli_conn_new needs; the strings are copied. */
typedef struct cli_conn_opts {
  const char *url;   /* http(s)://host:port without a path, or unix:/absolute/path
                        (HTTP over that Unix socket, as the agent listens) */
  const char *token; /* sent as x-lab-token; never printed; NULL or "": none */
  int verbose;       /* progress notes on stderr */
} cli_conn_opts;

/* Open a client (no network traffic yet). NULL when out of memory or
 * libcurl cannot start; *err says why. */
cli_conn *cli_conn_new(const cli_conn_opts *o, char *err, size_t errlen);
/* Close the connection and wipe the token from memory. NULL is a no-op. */
void cli_conn_free(cli_conn *c);

/* Told during each request of a connection: body bytes received so far
 * and expected (0: not known yet), as libcurl reports them: often while
 * bytes arrive, about once a second while the answer is awaited. For a
 * resumed download both count from the start of the file. Runs inside
 * cli_call / cli_download; must not use the connection. */
typedef void (*cli_transfer_fn)(void *ctx, uint64_t done, uint64_t total);

/* Calls fn(ctx, ...) during c's later requests; fn NULL stops it. */
void cli_conn_set_progress(cli_conn *c, cli_transfer_fn fn, void *ctx);

/* An answer to a JSON request. */
typedef struct cli_answer {
  long status;    /* HTTP status, 0 if none arrived */
  char task[128]; /* x-lab-task of the answer, "" if absent */
  json_t *json;   /* parsed body (owned), NULL if not JSON */
  char *body;     /* raw body (owned, NUL-terminated) */
  size_t body_len;
} cli_answer;

/* Free what a holds and zero it; safe on a zeroed answer and on one that
 * cli_call filled, whether or not it succeeded. */
void cli_answer_free(cli_answer *a);

/* method ("GET"/"POST") path_and_query; timeout_s bounds the whole
 * exchange. Returns 0 when an answer arrived (any status), or -1 with a
 * one-line reason in err (cannot connect, timed out, ...). *out is zeroed
 * first and released with cli_answer_free either way. */
int cli_call(cli_conn *c, const char *method, const char *path, long timeout_s, cli_answer *out,
             char *err, size_t errlen);

/* One line for a non-2xx answer: the server's error message, the status
 * and the task: "wrong x-lab-token (HTTP 401 unauthorized, task t1)". */
void cli_answer_reason(const cli_answer *a, char *out, size_t n);

/* What cli_download fetches, from where, and how hard it tries. */
typedef struct cli_download_opts {
  const char *name;    /* artifact name (checked with pl__artifact_name_valid) */
  const char *task;    /* the task that must serve it; NULL or "" = any */
  const char *sha256;  /* expected hash (64 hex); NULL or "" = not checked */
  const char *dest;    /* final path; written only once verified */
  unsigned attempts;   /* bound on requests (wrong task, cuts, 5xx); >= 1 */
  unsigned backoff_ms; /* first wait between attempts; doubles up to 2 s */
} cli_download_opts;

/* What a cli_download run did; filled on success and, as far as it got, on
 * failure. */
typedef struct cli_download_result {
  uint64_t bytes;
  char sha256[65];     /* hex SHA-256 of the downloaded bytes */
  char task[128];      /* the task the bytes came from */
  unsigned attempts;   /* requests made */
  unsigned wrong_task; /* answers from another task */
  unsigned resumed;    /* Range requests after a cut */
} cli_download_result;

/* Download the artifact into a temporary file next to dest, resuming with
 * Range/If-Range after a cut, retrying (bounded, with backoff) while
 * answers come from another task; then fsync, check the SHA-256 and rename
 * to dest. On failure dest is untouched, no temporary file is left, and
 * err says why. Returns 0 or -1. */
int cli_download(cli_conn *c, const cli_download_opts *o, cli_download_result *res, char *err,
                 size_t errlen);

#endif
