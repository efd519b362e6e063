/* HTTP server: libmicrohttpd in external-epoll mode on a libuv loop.
 *
 * Ownership: the server owns its routes, connection records and requests.
 * A request lives from the moment MHD reports its request line (URI log
 * callback) until MHD reports it completed; if a handler is still holding
 * it then (suspended, client gone), it lives until the handler answers.
 * Everything here runs on the loop thread.
 */
#include "proflab/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/json_error.h"
#include "common/util.h"
#include "http/framing.h"
#include "http/request.h"
#include "proflab/log.h"

#define MAX_ROUTES 64
#define MAX_STATS_PER_ROUTE 16
#define MAX_QUERY 32
#define MAX_EXTRA_HEADERS 8
#define PL_DRAIN_BYTES ((uint64_t)16 << 20) /* bytes read past the body bound before a 413 */

typedef struct route {
  char *path;
  size_t path_len;
  int prefix;
  unsigned methods;
  pl_handler_fn fn;
  void *arg;
  /* counters by status */
  unsigned stat_status[MAX_STATS_PER_ROUTE];
  uint64_t stat_count[MAX_STATS_PER_ROUTE];
  unsigned nstats;
} route;

enum conn_phase { PHASE_IDLE, PHASE_HEADERS, PHASE_REQUEST };

typedef struct conn {
  struct conn *prev, *next;
  struct MHD_Connection *mhd;
  int fd;
  enum conn_phase phase;
  uint64_t phase_start_ns;
  int cut;
  int rx_known; /* idle: bytes received when last looked */
  uint64_t rx_mark;
  uint64_t rx_since_ns;
  char remote[INET6_ADDRSTRLEN];
  /* The request on_uri made and MHD has not completed yet. MHD 0.9.75 may
   * call the URI callback again for the same request line, or close the
   * connection without completing a request it never handed to on_access
   * (a request line whose arguments overflow its memory pool: its own 431):
   * such a request is released here, not leaked (~1 KiB per connection,
   * from anyone who can connect). */
  struct pl_request *pending;
} conn;

enum req_state { REQ_NEW, REQ_DISPATCHED, REQ_SUSPENDED, REQ_READY, REQ_QUEUED };

struct pl_request {
  pl_server *server;
  struct MHD_Connection *mhd;
  conn *c;
  enum req_state state;
  int gone; /* MHD is done with it while a handler still holds it */
  int body_too_large;
  int head_too_large;
  int no_host;
  pl__http_refusal framing; /* status 0, or why the head's framing is refused */
  int nul_in_target;        /* "%00" in the request target: decoded, it would cut the path there */
  unsigned method;
  const char *method_name;
  const char *path;
  route *rt;
  uint64_t start_ns;
  pl_buf body;
  size_t nquery;
  const char *qkey[MAX_QUERY];
  const char *qval[MAX_QUERY];
  int query_overflow;
  /* the answer */
  unsigned status;
  struct MHD_Response *resp;
  size_t nextra;
  char *extra_name[MAX_EXTRA_HEADERS];
  char *extra_value[MAX_EXTRA_HEADERS];
  /* extra log fields: text that starts with ',' */
  pl_buf logx;
  pl_json logj;
  struct pl_request *next_free;
};

struct pl_server {
  uv_loop_t *loop;
  pl_server_config cfg;
  char *host;
  char *task;
  char *unix_path;     /* cfg.unix_path, copied */
  pid_t unix_bound_by; /* the process that bound it (removes it), else 0 */
  int listen_fd;       /* after start, else -1 */
  struct MHD_Daemon *mhd;
  int epfd;
  uint16_t port;
  uv_poll_t poll;
  uv_timer_t timer;
  uv_timer_t sweep;
  uv_timer_t drain_timer;
  uv_check_t log_check;
  int handles_open;
  route routes[MAX_ROUTES];
  size_t nroutes;
  route unmatched;
  conn *conns;
  unsigned nconns;
  unsigned in_flight;
  uint64_t requests;
  pl_request *free_reqs;
  size_t nfree;
  int draining;
  int drain_done_called;
  void (*drain_done)(pl_server *, void *);
  void *drain_arg;
  int in_mhd;          /* inside MHD_run: resume must not re-enter */
  size_t heads;        /* requests whose line was seen and whose head is not complete */
  unsigned long lines; /* request lines seen (on_uri calls) */
};

static const char *method_names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};

static unsigned method_bit(const char *m) {
  for (size_t i = 0; i < PL__ARRAY_SIZE(method_names); i++)
    if (strcmp(m, method_names[i]) == 0) return 1u << i;
  return PL_OTHER_METHOD;
}

void pl_server_config_init(pl_server_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->host = "127.0.0.1";
  cfg->port = 8080;
  cfg->task = "";
  cfg->max_connections = 1024;
  cfg->idle_timeout_ms = 65000;
  cfg->header_timeout_ms = 10000;
  cfg->drain_timeout_ms = 10000;
  cfg->max_header_bytes = 16384;
  cfg->max_body_bytes = 1 << 20;
  cfg->log_requests = -1;
}

/* ---- MHD <-> libuv glue --------------------------------------------- */

static void run_mhd(pl_server *s);

static void on_timer(uv_timer_t *t) { run_mhd(t->data); }

static void on_poll(uv_poll_t *p, int status, int events) {
  (void)status;
  (void)events;
  run_mhd(p->data);
}

/* MHD sends a file 128 KiB per send() and per MHD_run (pl_respond_fd),
 * then asks to be run again at once (timeout 0). A few more rounds here,
 * while it has work ready, spare a loop iteration per chunk and stay short:
 * 8 rounds are at most 4 MiB of a download. */
#define MHD_ROUNDS 8

static void run_mhd(pl_server *s) {
  if (!s->mhd) return;
  MHD_UNSIGNED_LONG_LONG ms;
  s->in_mhd = 1;
  unsigned long lines = s->lines;
  for (int i = 0; i < MHD_ROUNDS; i++) {
    MHD_run(s->mhd);
    if (MHD_get_timeout(s->mhd, &ms) != MHD_YES || ms != 0) break;
  }
  /* A request line seen in these rounds whose head did not complete in
   * them: when libmicrohttpd refused it (a line or arguments overflowing
   * its memory pool), the connection is closed, but its socket is only
   * released, and the client told, by the next MHD_run (with MHD_USE_TURBO
   * there is no shutdown() at the close), which no event brings when the
   * whole request has been read: the 1 s sweep did, a second later. */
  if (s->lines != lines && s->heads) MHD_run(s->mhd);
  s->in_mhd = 0;
  if (MHD_get_timeout(s->mhd, &ms) == MHD_YES) {
    if (ms > 60000) ms = 60000;
    uv_timer_start(&s->timer, on_timer, ms, 0);
  } else {
    uv_timer_stop(&s->timer);
  }
}

static void kick(pl_server *s) {
  if (s->mhd && !s->in_mhd) uv_timer_start(&s->timer, on_timer, 0, 0);
}

static void on_log_check(uv_check_t *c) {
  (void)c;
  pl_log_flush();
}

/* ---- connections ------------------------------------------------------ */

static void req_release(pl_request *r);

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  pl_server *s = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    conn *c = calloc(1, sizeof(*c));
    if (!c) {
      *socket_context = NULL;
      return;
    }
    c->mhd = mc;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    c->fd = ci ? ci->connect_fd : -1;
    ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
      const struct sockaddr *sa = ci->client_addr;
      if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->remote,
                  sizeof(c->remote));
      else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->remote,
                  sizeof(c->remote));
    }
    if (!c->remote[0] && s->unix_path) snprintf(c->remote, sizeof(c->remote), "unix");
    if (!c->remote[0]) snprintf(c->remote, sizeof(c->remote), "unknown");
    c->phase = PHASE_IDLE;
    c->phase_start_ns = pl__now_ns();
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    *socket_context = c;
  } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
    conn *c = *socket_context;
    if (!c) return;
    if (c->pending && c->pending->state == REQ_NEW) req_release(c->pending);
    c->pending = NULL;
    if (c->prev)
      c->prev->next = c->next;
    else
      s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    free(c);
    *socket_context = NULL;
  }
}

static conn *conn_of(struct MHD_Connection *mc) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

/* Bytes the kernel has received on fd (TCP_INFO), or -1. glibc's struct
 * tcp_info stops at tcpi_total_retrans (104 bytes); the kernel's struct
 * grows only at its end and continues with pacing_rate, max_pacing_rate,
 * bytes_acked and bytes_received (Linux >= 4.1), 8 bytes each. */
#define TCPI_BYTES_RECEIVED_OFFSET (sizeof(struct tcp_info) + 24)
_Static_assert(sizeof(struct tcp_info) == 104, "unexpected glibc struct tcp_info");
static int64_t rx_bytes(int fd) {
  unsigned char info[256];
  socklen_t len = sizeof(info);
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, &len) != 0 ||
      len < TCPI_BYTES_RECEIVED_OFFSET + 8)
    return -1;
  uint64_t v;
  memcpy(&v, info + TCPI_BYTES_RECEIVED_OFFSET, sizeof(v));
  return (int64_t)v;
}

/* Cut connections that take too long to send their request head. The
 * deadline runs from the first byte of a request: MHD reports a request
 * only once its request line is complete, so for idle connections the
 * sweep watches the kernel's received-byte count to see a request begin
 * (a client trickling the request line is caught too). */
static void on_sweep(uv_timer_t *t) {
  pl_server *s = t->data;
  uint64_t now = pl__now_ns();
  uint64_t limit = (uint64_t)s->cfg.header_timeout_ms * 1000000u;
  for (conn *c = s->conns; c; c = c->next) {
    if (c->cut) continue;
    if (c->phase == PHASE_IDLE) {
      int64_t rx = rx_bytes(c->fd);
      if (rx < 0) continue;
      if (!c->rx_known || (uint64_t)rx == c->rx_mark) {
        c->rx_known = 1;
        c->rx_mark = (uint64_t)rx;
        c->rx_since_ns = now;
        continue;
      }
      c->phase = PHASE_HEADERS; /* a request has begun arriving */
      c->phase_start_ns = c->rx_since_ns;
    }
    if (c->phase == PHASE_HEADERS && now - c->phase_start_ns > limit) {
      c->cut = 1;
      pl_json *j = pl_log_begin("warn", "header_timeout");
      pl_json_kv_str(j, "remote", c->remote);
      pl_json_kv_uint(j, "limit_ms", s->cfg.header_timeout_ms);
      pl_log_end();
      if (c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
    }
  }
  kick(s);
}

/* ---- requests --------------------------------------------------------- */

static pl_request *req_alloc(pl_server *s) {
  pl_request *r = s->free_reqs;
  if (r) {
    s->free_reqs = r->next_free;
    s->nfree--;
    pl_buf body = r->body, logx = r->logx;
    memset(r, 0, sizeof(*r));
    r->body = body;
    r->logx = logx;
    pl_buf_reset(&r->body);
    pl_buf_reset(&r->logx);
  } else {
    r = calloc(1, sizeof(*r));
    if (!r) return NULL;
  }
  r->server = s;
  pl_json_init(&r->logj, &r->logx);
  r->logj.depth = 1;
  r->logj.need_comma[0] = 1;
  return r;
}

static void req_release(pl_request *r) {
  pl_server *s = r->server;
  if (!r->path) s->heads--; /* its head never completed */
  if (r->resp) MHD_destroy_response(r->resp);
  for (size_t i = 0; i < r->nextra; i++) {
    free(r->extra_name[i]);
    free(r->extra_value[i]);
  }
  r->resp = NULL;
  r->nextra = 0;
  if (s->nfree < 256 && r->body.cap <= 65536) {
    r->next_free = s->free_reqs;
    s->free_reqs = r;
    s->nfree++;
  } else {
    pl_buf_free(&r->body);
    pl_buf_free(&r->logx);
    free(r);
  }
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc) {
  pl_server *s = cls;
  conn *c = conn_of(mc);
  if (c && c->phase != PHASE_HEADERS) {
    c->phase = PHASE_HEADERS;
    c->phase_start_ns = pl__now_ns();
  }
  if (c && c->pending && c->pending->state == REQ_NEW) { /* the same request line again */
    req_release(c->pending);
    c->pending = NULL;
  }
  pl_request *r = req_alloc(s);
  if (c) c->pending = r;
  s->lines++;
  if (r) {
    s->heads++; /* until on_access's first call, or its release */
    r->mhd = mc;
    r->c = c;
    r->start_ns = pl__now_ns();
    /* The target as sent, before MHD decodes it into C strings, where a
     * %00 would end the path or a parameter early ("<artifact>%00.txt"
     * would name <artifact>): such a request gets 400. */
    r->nul_in_target = uri && strcasestr(uri, "%00") != NULL;
  }
  return r;
}

static void count_status(route *rt, unsigned status) {
  for (unsigned i = 0; i < rt->nstats; i++)
    if (rt->stat_status[i] == status) {
      rt->stat_count[i]++;
      return;
    }
  if (rt->nstats < MAX_STATS_PER_ROUTE) {
    rt->stat_status[rt->nstats] = status;
    rt->stat_count[rt->nstats] = 1;
    rt->nstats++;
  } else {
    rt->stat_count[MAX_STATS_PER_ROUTE - 1]++; /* bounded: lump the rest */
  }
}

static void on_drain_timeout(uv_timer_t *t);

/* Call the drain callback from a fresh loop turn. */
static void finish_drain_soon(pl_server *s) {
  if (s->handles_open) uv_timer_start(&s->drain_timer, on_drain_timeout, 0, 0);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  pl_server *s = cls;
  pl_request *r = *con_cls;
  conn *c = conn_of(mc);
  if (c && c->pending == r) c->pending = NULL;
  if (c) {
    c->phase = PHASE_IDLE;
    c->phase_start_ns = pl__now_ns();
    c->rx_known = 0;
  }
  if (!r) return;
  *con_cls = NULL;
  if (r->state != REQ_NEW) {
    s->in_flight--;
    s->requests++;
    unsigned status = r->status ? r->status : 499; /* no answer sent */
    count_status(r->rt ? r->rt : &s->unmatched, status);
    if (s->cfg.log_requests) {
      pl_json *j = pl_log_begin(status >= 500 ? "error" : "info", "request");
      pl_json_kv_str(j, "method", r->method_name);
      pl_json_kv_str(j, "path", r->path);
      pl_json_kv_uint(j, "status", status);
      pl_json_kv_double(j, "ms", (double)(pl__now_ns() - r->start_ns) / 1e6, 3);
      pl_json_kv_str(j, "remote", c ? c->remote : "unknown");
      if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        pl_json_kv_str(j, "termination",
                       toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout" : "aborted");
      if (r->logx.len) pl_buf_append(j->out, r->logx.data, r->logx.len);
      pl_log_end();
    }
  }
  if (r->state == REQ_SUSPENDED) { /* handler still holds it */
    r->gone = 1;
    r->mhd = NULL;
  } else {
    req_release(r);
  }
  if (s->draining && s->in_flight == 0 && !s->drain_done_called)
    finish_drain_soon(s); /* not from inside MHD: done() may free the server */
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value) {
  (void)kind;
  pl_request *r = cls;
  if (r->nquery >= MAX_QUERY) {
    r->query_overflow = 1;
    return MHD_NO;
  }
  r->qkey[r->nquery] = key;
  r->qval[r->nquery] = value;
  r->nquery++;
  return MHD_YES;
}

static route *find_route(pl_server *s, const char *path) {
  for (size_t i = 0; i < s->nroutes; i++) {
    route *rt = &s->routes[i];
    if (rt->prefix ? strncmp(path, rt->path, rt->path_len) == 0 : strcmp(path, rt->path) == 0)
      return rt;
  }
  return NULL;
}

static void allow_header(pl_request *r, unsigned methods) {
  char allow[96] = "";
  size_t off = 0;
  for (size_t i = 0; i < PL__ARRAY_SIZE(method_names); i++) {
    if (!(methods & (1u << i))) continue;
    int n = snprintf(allow + off, sizeof(allow) - off, "%s%s", off ? ", " : "", method_names[i]);
    if (n < 0 || (size_t)n >= sizeof(allow) - off) break;
    off += (size_t)n;
  }
  pl_request_add_header(r, "Allow", allow);
}

static void dispatch(pl_server *s, pl_request *r) {
  r->state = REQ_DISPATCHED;
  s->in_flight++;
  if (s->draining) {
    pl_respond_error(r, 503, "shutting_down",
                     "the service is shutting down; retry on another task");
    return;
  }
  if (r->head_too_large) {
    pl_request_add_header(r, "Connection", "close");
    pl_respond_error(r, 431, "header_too_large", "request head is larger than %zu bytes",
                     s->cfg.max_header_bytes);
    return;
  }
  if (r->framing.status) {
    pl_request_add_header(r, "Connection", "close");
    pl_respond_error(r, r->framing.status, r->framing.code, "%s", r->framing.message);
    return;
  }
  if (r->no_host) {
    pl_request_add_header(r, "Connection", "close");
    pl_respond_error(r, 400, "bad_request", "HTTP/1.1 requests need a Host header");
    return;
  }
  if (r->nul_in_target) {
    pl_respond_error(r, 400, "bad_request",
                     "the request target contains %%00 (a NUL byte), which no path or parameter "
                     "may hold");
    return;
  }
  if (r->body_too_large) {
    pl_request_add_header(r, "Connection", "close");
    pl_respond_error(r, 413, "payload_too_large", "request body is larger than %zu bytes",
                     s->cfg.max_body_bytes);
    return;
  }
  MHD_get_connection_values(r->mhd, MHD_GET_ARGUMENT_KIND, collect_query, r);
  if (r->query_overflow) {
    pl_respond_error(r, 400, "bad_parameter", "too many query parameters (at most %d)", MAX_QUERY);
    return;
  }
  route *rt = find_route(s, r->path);
  if (!rt) {
    pl_respond_error(r, 404, "not_found", "no such endpoint");
    return;
  }
  r->rt = rt;
  unsigned allowed = rt->methods | ((rt->methods & PL_GET) ? PL_HEAD : 0);
  if (!(r->method & allowed)) {
    allow_header(r, allowed);
    pl_respond_error(r, 405, "method_not_allowed", "%s is not allowed here; use %s", r->method_name,
                     (rt->methods & PL_POST) ? "POST" : "GET");
    return;
  }
  rt->fn(r, rt->arg);
}

static enum MHD_Result queue_ready(pl_request *r) {
  enum MHD_Result ok = MHD_queue_response(r->mhd, r->status, r->resp);
  MHD_destroy_response(r->resp);
  r->resp = NULL;
  r->state = REQ_QUEUED;
  return ok;
}

/* libmicrohttpd 0.9.75 parses a header line in place: the value follows its
 * name in the read buffer, after the colon (zeroed) and any white space. A
 * folded line (obs-fold) is the one exception: MHD appends the continuation
 * to the *name*, in memory of its own ("X-A: b\r\n c" arrives as a header
 * "X-Ac" with value "b"; "Transfer-Encoding:\r\n chunked" as
 * "Transfer-Encodingchunked"). So a name whose value does not follow it was
 * folded; RFC 9112 section 5.2 lets a server refuse that with 400. Both
 * pointers are MHD's and the bytes between them are read only when they lie
 * in one head (the value right after the name, within the head's limit). */
static int folded(const char *key, size_t key_size, const char *value, size_t head_max) {
  uintptr_t k = (uintptr_t)key + key_size, v = (uintptr_t)value;
  if (v <= k || v - k > head_max) return 1;
  for (const char *p = key + key_size + 1; p < value; p++)
    if (*p != ' ' && *p != '\t') return 1;
  return 0;
}

typedef struct framing_walk {
  pl__http_framing f;
  size_t head_max;
  int folded;
} framing_walk;

static enum MHD_Result framing_add(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size) {
  (void)kind;
  framing_walk *w = cls;
  if (!key || !value) return MHD_YES;
  if (folded(key, key_size, value, w->head_max)) w->folded = 1;
  pl__http_framing_add(&w->f, (pl__http_str){key, key_size}, (pl__http_str){value, value_size});
  return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *mc, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls) {
  pl_server *s = cls;
  pl_request *r = *con_cls;
  if (!r) return MHD_NO; /* out of memory at on_uri: drop the connection */
  if (r->state == REQ_NEW && !r->path) {
    /* First call: headers are complete. Answer on a later call (an answer
     * queued on the first call makes MHD close the connection). */
    r->path = url;
    s->heads--;
    r->method_name = method;
    r->method = method_bit(method);
    if (r->c) r->c->phase = PHASE_REQUEST;
    const union MHD_ConnectionInfo *hi =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (hi && hi->header_size > s->cfg.max_header_bytes) r->head_too_large = 1;
    if (strcmp(version, "HTTP/1.1") == 0 &&
        !MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST))
      r->no_host = 1;
    /* Framing first: a refused head is answered before its body is read,
     * and the connection closed, so no byte after it is taken as a request. */
    framing_walk w = {.head_max = s->cfg.max_header_bytes + 4096};
    pl__http_framing_init(&w.f);
    MHD_get_connection_values_n(mc, MHD_HEADER_KIND, framing_add, &w);
    pl__http_framing_verdict(&w.f, &r->framing);
    if (!r->framing.status && w.folded)
      r->framing = (pl__http_refusal){400, "bad_request",
                                      "a header line is folded onto the next (obs-fold, RFC 9112 "
                                      "section 5.2); the connection is closed"};
    /* MHD takes a request line without a version (HTTP/0.9's form, or a
     * line a NUL byte cut short) as a request; RFC 9112 has no such form. */
    if (!r->framing.status && strcmp(version, "HTTP/1.1") != 0 && strcmp(version, "HTTP/1.0") != 0)
      r->framing = (pl__http_refusal){400, "bad_request",
                                      "the request line has no HTTP/1.0 or HTTP/1.1 version (a NUL "
                                      "byte inside it?); the connection is closed"};
    /* MHD takes any bytes up to the first space for the method (G@T, G"T);
     * RFC 9110 section 9.1 methods are tokens. */
    if (!r->framing.status && !pl__http_is_token((pl__http_str){method, strlen(method)}))
      r->framing = (pl__http_refusal){400, "bad_request",
                                      "the request method is not a token (RFC 9110 section 9.1); "
                                      "the connection is closed"};
    const char *cl =
        MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t clen;
    int huge = 0;
    if (cl && pl__parse_u64(cl, &clen) == 0 && clen > s->cfg.max_body_bytes) {
      r->body_too_large = 1;
      /* Up to a drain bound the body is read and dropped before the 413:
       * closing with unread bytes makes the kernel send a reset, which can
       * destroy the answer before the client reads it. */
      huge = clen - s->cfg.max_body_bytes > PL_DRAIN_BYTES;
    }
    /* A request refused for its head or a huge declared size is answered
     * before its body is read (MHD then closes the connection). */
    if (r->head_too_large || r->framing.status || r->no_host || huge) {
      dispatch(s, r);
      if (r->state == REQ_READY) return queue_ready(r);
    }
    return MHD_YES;
  }
  if (r->state == REQ_NEW) {
    if (*upload_data_size) {
      /* Past the bound, keep reading but drop the bytes; answer at the end. */
      if (r->body_too_large || r->body.len + *upload_data_size > s->cfg.max_body_bytes)
        r->body_too_large = 1;
      else
        pl_buf_append(&r->body, upload_data, *upload_data_size);
      *upload_data_size = 0;
      return MHD_YES;
    }
    dispatch(s, r);
    if (r->state == REQ_READY) return queue_ready(r);
    if (r->state == REQ_DISPATCHED) { /* the handler answers later */
      r->state = REQ_SUSPENDED;
      MHD_suspend_connection(mc);
    }
    return MHD_YES;
  }
  if (r->state == REQ_READY) return queue_ready(r);
  if (*upload_data_size) *upload_data_size = 0;
  return MHD_YES;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
  pl_log_msg("warn", "http", "%s", msg);
}

/* ---- public: requests ------------------------------------------------- */

unsigned pl_request_method(const pl_request *r) { return r->method; }
const char *pl_request_method_name(const pl_request *r) { return r->method_name; }
const char *pl_request_path(const pl_request *r) { return r->path; }
pl_server *pl_request_server(const pl_request *r) { return r->server; }
pl_json *pl_request_log_fields(pl_request *r) { return &r->logj; }

const char *pl_request_header(const pl_request *r, const char *name) {
  if (!r->mhd) return NULL;
  return MHD_lookup_connection_value(r->mhd, MHD_HEADER_KIND, name);
}

typedef struct header_count {
  const char *name;
  unsigned n;
} header_count;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
  (void)kind;
  (void)value;
  header_count *hc = cls;
  if (key && strcasecmp(key, hc->name) == 0) hc->n++;
  return MHD_YES;
}

unsigned pl__request_header_count(const pl_request *r, const char *name) {
  if (!r->mhd) return 0;
  header_count hc = {name, 0};
  MHD_get_connection_values(r->mhd, MHD_HEADER_KIND, count_header, &hc);
  return hc.n;
}

const char *pl_request_remote(const pl_request *r) { return r->c ? r->c->remote : "unknown"; }

size_t pl_request_query_count(const pl_request *r) { return r->nquery; }

int pl_request_query_at(const pl_request *r, size_t i, const char **key, const char **value) {
  if (i >= r->nquery) return -ENOENT;
  *key = r->qkey[i];
  *value = r->qval[i];
  return 0;
}

const void *pl_request_body(const pl_request *r, size_t *len) {
  *len = r->body.len;
  return r->body.data ? r->body.data : "";
}

/* ---- public: responses ------------------------------------------------ */

void pl_request_add_header(pl_request *r, const char *name, const char *value) {
  if (r->nextra >= MAX_EXTRA_HEADERS) return;
  char *n = strdup(name), *v = strdup(value);
  if (!n || !v) {
    free(n);
    free(v);
    return;
  }
  r->extra_name[r->nextra] = n;
  r->extra_value[r->nextra] = v;
  r->nextra++;
}

/* Attach headers and hand the response to MHD now or after resuming. */
static int finish(pl_request *r, unsigned status, const char *content_type,
                  struct MHD_Response *resp) {
  pl_server *s = r->server;
  if (!resp) {
    resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    status = 500;
    if (!resp) return -ENOMEM;
  }
  if (content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  MHD_add_response_header(resp, "x-lab-task", s->task);
  for (size_t i = 0; i < r->nextra; i++)
    MHD_add_response_header(resp, r->extra_name[i], r->extra_value[i]);
  if (s->draining) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
  r->status = status;
  r->resp = resp;
  if (r->gone) { /* the client left while we worked */
    req_release(r);
    return 0;
  }
  if (r->state == REQ_SUSPENDED) {
    r->state = REQ_READY;
    MHD_resume_connection(r->mhd);
    kick(s);
  } else {
    r->state = REQ_READY;
  }
  return 0;
}

static int can_answer(pl_request *r) {
  return r->state == REQ_DISPATCHED || r->state == REQ_SUSPENDED;
}

int pl_respond(pl_request *r, unsigned status, const char *content_type, const void *body,
               size_t len) {
  if (!can_answer(r)) return -EALREADY;
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  return finish(r, status, content_type, resp);
}

int pl_respond_json(pl_request *r, unsigned status, pl_buf *body) {
  if (!can_answer(r)) {
    pl_buf_free(body);
    return -EALREADY;
  }
  if (pl_buf_failed(body)) {
    pl_buf_free(body);
    static const char oom[] =
        "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"the answer did not fit in memory\"}}";
    return pl_respond(r, 500, "application/json", oom, sizeof(oom) - 1);
  }
  size_t len;
  char *data = pl_buf_steal(body, &len);
  struct MHD_Response *resp =
      data ? MHD_create_response_from_buffer_with_free_callback(len, data, free)
           : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (!resp) free(data);
  return finish(r, status, "application/json", resp);
}

int pl_respond_error(pl_request *r, unsigned status, const char *code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  pl_buf b;
  pl__json_error_body(&b, code, msg);
  return pl_respond_json(r, status, &b);
}

/* A file's bytes for MHD, read with pread and sent with send(). Not
 * MHD's sendfile path: sendfile returns short when a signal arrives (the
 * CPU sampler's SIGPROF, thousands a second on the loop thread), and
 * libmicrohttpd 0.9.75 takes every short write for a full socket buffer,
 * so it waits for a writability edge that never comes (the socket was
 * writable all along): the download stalls until the idle timeout. A short
 * send() on a non-blocking socket only ever means a full buffer. */
#define FILE_BLOCK (512u * 1024u)

typedef struct file_body {
  int fd;
  uint64_t offset;
} file_body;

static ssize_t file_read(void *cls, uint64_t pos, char *buf, size_t max) {
  file_body *fb = cls;
  for (;;) {
    ssize_t n = pread(fb->fd, buf, max, (off_t)(fb->offset + pos));
    if (n > 0) return n;
    if (n < 0 && errno == EINTR) continue;
    /* 0: the file is shorter than announced; an error: cannot go on */
    return MHD_CONTENT_READER_END_WITH_ERROR;
  }
}

static void file_free(void *cls) {
  file_body *fb = cls;
  close(fb->fd);
  free(fb);
}

int pl_respond_fd(pl_request *r, unsigned status, const char *content_type, int fd, uint64_t offset,
                  uint64_t len) {
  if (!can_answer(r)) {
    close(fd);
    return -EALREADY;
  }
  struct MHD_Response *resp = NULL;
  file_body *fb = malloc(sizeof(*fb));
  if (fb) {
    fb->fd = fd;
    fb->offset = offset;
    resp = MHD_create_response_from_callback(len, len < FILE_BLOCK ? (size_t)len + 1 : FILE_BLOCK,
                                             file_read, fb, file_free);
  }
  if (!resp) {
    free(fb);
    close(fd);
  }
  return finish(r, status, content_type, resp);
}

/* ---- public: server --------------------------------------------------- */

int pl_server_new(pl_server **out, uv_loop_t *loop, const pl_server_config *cfg) {
  pl_server *s = calloc(1, sizeof(*s));
  if (!s) return -ENOMEM;
  s->loop = loop;
  s->cfg = *cfg;
  s->host = strdup(cfg->host ? cfg->host : "127.0.0.1");
  s->task = strdup(cfg->task ? cfg->task : "");
  s->unix_path = cfg->unix_path ? strdup(cfg->unix_path) : NULL;
  if (!s->host || !s->task || (cfg->unix_path && !s->unix_path)) {
    free(s->host);
    free(s->task);
    free(s->unix_path);
    free(s);
    return -ENOMEM;
  }
  if (s->cfg.log_requests < 0) s->cfg.log_requests = 1;
  if (!s->cfg.max_connections) s->cfg.max_connections = 1024;
  if (!s->cfg.max_header_bytes) s->cfg.max_header_bytes = 16384;
  s->unmatched.path = (char *)"unmatched";
  s->epfd = -1;
  s->listen_fd = -1;
  *out = s;
  return 0;
}

int pl_server_route(pl_server *s, unsigned methods, const char *path, int prefix, pl_handler_fn fn,
                    void *arg) {
  if (s->nroutes >= MAX_ROUTES) return -ENOSPC;
  route *rt = &s->routes[s->nroutes];
  memset(rt, 0, sizeof(*rt));
  rt->path = strdup(path);
  if (!rt->path) return -ENOMEM;
  rt->path_len = strlen(path);
  rt->prefix = prefix;
  rt->methods = methods;
  rt->fn = fn;
  rt->arg = arg;
  s->nroutes++;
  return 0;
}

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char portstr[8];
  snprintf(portstr, sizeof(portstr), "%u", port);
  const char *h = host;
  char tmp[64];
  size_t hl = strlen(host);
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof(tmp)) {
    memcpy(tmp, host + 1, hl - 2);
    tmp[hl - 2] = '\0';
    h = tmp;
  }
  int rc = getaddrinfo(h, portstr, &hints, &res);
  if (rc != 0 || !res) return -EADDRNOTAVAIL;
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

/* A listening Unix socket at path, mode 0600 (chmod right after bind: the
 * caller puts it in a directory only its user can enter). A stale socket
 * at path is replaced; any other file there is an error (EEXIST). */
static int listen_unix(const char *path, int *out) {
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  size_t pl = strlen(path);
  if (pl == 0 || pl >= sizeof(sun.sun_path)) return -ENAMETOOLONG;
  memcpy(sun.sun_path, path, pl + 1);
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return -EEXIST;
    if (unlink(path) != 0) return -errno;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int rc = 0;
  if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) rc = -errno;
  if (!rc && chmod(path, 0600) != 0) rc = -errno;
  if (!rc && listen(fd, 511) != 0) rc = -errno;
  if (rc) {
    close(fd);
    return rc;
  }
  *out = fd;
  return 0;
}

int pl_server_start(pl_server *s) {
  struct sockaddr_storage ss;
  socklen_t sslen;
  int rc, fd = -1;
  memset(&ss, 0, sizeof(ss));
  if (s->unix_path) {
    if ((rc = listen_unix(s->unix_path, &fd)) != 0) return rc;
    s->unix_bound_by = getpid();
    ss.ss_family = AF_UNIX;
  } else {
    if ((rc = resolve(s->host, s->cfg.port, &ss, &sslen)) != 0) return rc;
    /* Bind ourselves so the caller gets a precise errno (EADDRINUSE…). */
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 511) != 0) {
      rc = -errno;
      close(fd);
      return rc;
    }
  }
  unsigned idle_s = (s->cfg.idle_timeout_ms + 999) / 1000;
  /* MHD's per-connection pool holds the request head and the response head;
   * make it large enough that heads a little over our limit reach us for a
   * JSON 431 (heads over the whole pool get MHD's own HTML 431). Not larger:
   * MHD zeroes the pool between keep-alive requests, so its size is paid on
   * every request (an 80 KiB pool cost 15% of /api/health's CPU). */
  size_t pool_bytes = s->cfg.max_header_bytes + 4096;
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO | MHD_USE_ERROR_LOG;
  if (ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  /* A peer that goes away must not kill the process: SIGPIPE is ignored
   * (unless the program set a handler), and MHD is told so. */
  struct sigaction old_pipe;
  int pipe_handled = 0;
  if (!s->cfg.leave_sigpipe && sigaction(SIGPIPE, NULL, &old_pipe) == 0) {
    if ((old_pipe.sa_flags & SA_SIGINFO) || old_pipe.sa_handler != SIG_DFL)
      pipe_handled = 1; /* ignored or handled by the program already */
    else
      pipe_handled = signal(SIGPIPE, SIG_IGN) != SIG_ERR;
  }
  s->mhd = MHD_start_daemon(
      flags, 0, NULL, NULL, on_access, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
      s, /* first, or MHD logs to stderr */
      MHD_OPTION_SIGPIPE_HANDLED_BY_APP, pipe_handled, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
      idle_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool_bytes, MHD_OPTION_NOTIFY_COMPLETED,
      on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_URI_LOG_CALLBACK,
      on_uri, s, MHD_OPTION_END);
  if (!s->mhd) {
    close(fd);
    return -EIO;
  }
  s->listen_fd = fd;
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
  const union MHD_DaemonInfo *pi = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
  if (!di) goto fail;
  s->epfd = di->epoll_fd;
  s->port = s->unix_path ? 0 : pi ? pi->port : s->cfg.port;
  if (uv_poll_init(s->loop, &s->poll, s->epfd) != 0) goto fail;
  uv_timer_init(s->loop, &s->timer);
  uv_timer_init(s->loop, &s->sweep);
  uv_timer_init(s->loop, &s->drain_timer);
  uv_check_init(s->loop, &s->log_check);
  s->poll.data = s->timer.data = s->sweep.data = s->drain_timer.data = s;
  s->log_check.data = s;
  s->handles_open = 1;
  uv_poll_start(&s->poll, UV_READABLE, on_poll);
  uv_timer_start(&s->sweep, on_sweep, 1000, 1000);
  uv_unref((uv_handle_t *)&s->sweep);
  uv_check_start(&s->log_check, on_log_check);
  uv_unref((uv_handle_t *)&s->log_check);
  run_mhd(s);
  return 0;
fail:
  MHD_stop_daemon(s->mhd);
  s->mhd = NULL;
  return -EIO;
}

uint16_t pl_server_port(const pl_server *s) { return s->port; }
int pl_server_listen_fd(const pl_server *s) { return s->listen_fd; }
int pl_server_draining(const pl_server *s) { return s->draining; }
unsigned pl_server_connections(const pl_server *s) { return s->nconns; }
uint64_t pl_server_requests(const pl_server *s) { return s->requests; }

static void on_drain_timeout(uv_timer_t *t) {
  pl_server *s = t->data;
  if (s->drain_done_called) return;
  s->drain_done_called = 1;
  if (s->in_flight)
    pl_log_msg("warn", "drain_timeout", "%u request(s) still in flight after %u ms", s->in_flight,
               s->cfg.drain_timeout_ms);
  if (s->drain_done) s->drain_done(s, s->drain_arg);
}

void pl_server_shutdown(pl_server *s, void (*done)(pl_server *, void *), void *arg) {
  if (s->draining) return;
  s->draining = 1;
  s->drain_done = done;
  s->drain_arg = arg;
  if (s->mhd) {
    MHD_socket lfd = MHD_quiesce_daemon(s->mhd);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
  }
  if (s->in_flight == 0 && s->handles_open) {
    finish_drain_soon(s);
    return;
  }
  if (s->in_flight == 0) {
    s->drain_done_called = 1;
    if (done) done(s, arg);
    return;
  }
  if (s->handles_open)
    uv_timer_start(&s->drain_timer, on_drain_timeout,
                   s->cfg.drain_timeout_ms ? s->cfg.drain_timeout_ms : 10000, 0);
}

void pl_server_foreach_stat(const pl_server *s, void (*fn)(const pl_route_stat *, void *),
                            void *arg) {
  pl_route_stat st;
  for (size_t i = 0; i <= s->nroutes; i++) {
    const route *rt = i < s->nroutes ? &s->routes[i] : &s->unmatched;
    for (unsigned k = 0; k < rt->nstats; k++) {
      st.route = rt->path;
      st.status = rt->stat_status[k];
      st.count = rt->stat_count[k];
      fn(&st, arg);
    }
  }
}

static void server_release(pl_server *s) {
  while (s->free_reqs) {
    pl_request *r = s->free_reqs;
    s->free_reqs = r->next_free;
    pl_buf_free(&r->body);
    pl_buf_free(&r->logx);
    free(r);
  }
  for (size_t i = 0; i < s->nroutes; i++) free(s->routes[i].path);
  free(s->host);
  free(s->task);
  free(s->unix_path);
  free(s);
}

/* The server's memory goes with its last closed handle. */
static void on_handle_closed(uv_handle_t *h) {
  pl_server *s = h->data;
  if (--s->handles_open == 0) server_release(s);
}

void pl_server_free(pl_server *s) {
  if (!s) return;
  if (s->unix_path && s->unix_bound_by == getpid()) unlink(s->unix_path); /* not a fork's */
  if (s->handles_open) { /* stop watching the epoll fd before MHD closes it */
    uv_poll_stop(&s->poll);
    uv_timer_stop(&s->timer);
  }
  if (s->mhd) {
    MHD_stop_daemon(s->mhd); /* completes remaining requests (and frees them) */
    s->mhd = NULL;
  }
  pl_log_flush();
  if (!s->handles_open) {
    server_release(s);
    return;
  }
  s->handles_open = 5;
  uv_close((uv_handle_t *)&s->poll, on_handle_closed);
  uv_close((uv_handle_t *)&s->timer, on_handle_closed);
  uv_close((uv_handle_t *)&s->sweep, on_handle_closed);
  uv_close((uv_handle_t *)&s->drain_timer, on_handle_closed);
  uv_close((uv_handle_t *)&s->log_check, on_handle_closed);
}
