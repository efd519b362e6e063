/* The inspector's transport (proflab/inspector.h, session.h): its own
 * thread and libuv loop, the listening socket, HTTP discovery (/json*),
 * WebSocket sessions (websocket.c over wslay). What a session means is the
 * protocol side's: it is reached only through session.h's pl__cdp_* calls
 * and protocol.h's pl__cdp_protocol_json. */
#include "proflab/inspector.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <uv.h>

#include "capture/capture.h"
#include "capture/heap_tracker.h"
#include "common/json_error.h"
#include "profile/threads.h"
#include "http/framing.h"
#include "http/head.h"
#include "inspector/protocol.h"
#include "inspector/session.h"
#include "inspector/websocket.h"
#include "proflab/buf.h"
#include "proflab/log.h"

#define CONN_MAX 128              /* open connections, HTTP and WebSocket */
#define HEAD_TIMEOUT_MS 10000     /* a request head must be complete within this */
#define KEEPALIVE_IDLE_MS 30000   /* an idle keep-alive connection is closed after this */
#define CLOSE_TIMEOUT_MS 3000     /* a closing connection gets this long to finish */
#define WRITE_STALL_MS 60000      /* a session whose writes make no progress this long is cut */
#define SWEEP_MS 1000             /* deadline checks */
#define STOP_GRACE_MS 2000        /* at stop, handles still open after this are closed */
#define INFLIGHT_MAX (512u << 10) /* bytes handed to uv_write per connection at a time */
/* Longest message a client may send (close 1009 beyond): CDP requests are
 * a few hundred bytes, and jansson's tree of a message can be ~70x it. */
#define WS_MAX_MSG (1u << 20)
/* A session stops reading requests while its output is beyond READ_PAUSE
 * and reads again below READ_RESUME: a client that sends and never reads
 * makes us hold a bounded amount (the protocol side pauses its own streams
 * at PL__INSP_HIGH_WATER). */
#define READ_PAUSE (2 * (size_t)PL__INSP_HIGH_WATER)
#define READ_RESUME ((size_t)PL__INSP_HIGH_WATER)
#define REJECT_LOGS_PER_SEC 5

enum { CONN_HTTP, CONN_WS };

/* One accepted connection: HTTP until it upgrades, then a WebSocket
 * session (the type session.h calls pl__insp_session). */
struct pl__insp_session {
  uv_tcp_t tcp; /* first: the handle's address is the connection's */
  uv_shutdown_t shutdown_req;
  pl__insp_session *prev, *next; /* g.conns */
  int kind;
  int closing;     /* uv_close called; freed in its callback */
  int reading;     /* uv_read_start in effect */
  int shut;        /* uv_shutdown requested: draining input until EOF or deadline */
  int shut_done;   /* ... and completed */
  int eof;         /* the peer finished sending */
  int dispatching; /* inside pl__ws_feed or a pl__cdp_* call: flush afterwards */
  int above_high;  /* queued output went over PL__INSP_HIGH_WATER */
  int cdp_open;    /* pl__cdp_session_open succeeded, _closed not called yet */
  void *cdp;
  pl__ws *ws;
  pl_buf in;            /* HTTP: received bytes not yet handled */
  pl_buf out;           /* WebSocket: frames waiting for uv_write */
  size_t inflight;      /* bytes in uv_write requests */
  uint64_t deadline_ms; /* the sweep closes the connection at this time; 0: none */
  uint64_t progress_ms; /* last write completion (stall detection) */
  char peer[64];        /* "ip:port", for logs */
  uint64_t serial;      /* this connection's number (pl__insp_write_now's kick) */
  /* The write side as another thread sees it (pl__insp_write_now), under
   * wmu: direct is 1 only while nothing is queued ahead (wslay's queue,
   * out, uv_writes in flight) and the inspector thread is not writing;
   * the inspector thread also reads and changes out under wmu, or after
   * direct_off. fd is the socket's. */
  pthread_mutex_t wmu;
  int direct;
  int fd;
};

typedef struct post_item {
  void (*fn)(void *arg);
  void *arg;
  struct post_item *next;
} post_item;

typedef struct write_req {
  uv_write_t req;
  pl__insp_session *c;
  size_t len;
  char *own; /* freed once written */
} write_req;

static struct {
  /* Set by pl_inspector_start before the thread starts; then the thread's. */
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_async_t async;
  uv_timer_t sweep;
  pthread_t thread;
  pl__insp_target target;
  char id[37];
  char title[256];
  char task[128];
  char task_header[160]; /* "X-Lab-Task: <task>\r\n" or "" */
  char url[128];         /* ws://HOST:PORT/ID */
  char exe_url[3 * PATH_MAX + 8];
  /* The inspector thread's. */
  pl__insp_session *conns;
  size_t nconns;
  int stopping;
  uint64_t stop_ms;
  uint64_t reject_window_ms;
  unsigned reject_in_window;
  uint64_t reject_suppressed;
  uint64_t serials;
  uint64_t drop_ms;    /* last pl__capture_drop_idle */
  char rbuf[64 << 10]; /* every read lands here and is consumed in the read callback */
  /* Under mu: the post queue and the stop request. */
  pthread_mutex_t mu;
  int accepting_posts;
  int stop_requested;
  post_item *posts, *posts_tail;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

static atomic_int running;
static _Atomic uint64_t n_connections, n_sessions, n_sessions_open, n_rejected, n_messages_in,
    n_messages_out, n_bytes_in, n_bytes_out;

static void conn_close(pl__insp_session *c);
static void http_process(pl__insp_session *c);
static void ws_after(pl__insp_session *c);

/* ---- small helpers ---------------------------------------------------- */

static uint64_t now_ms(void) { return uv_now(&g.loop); }

static void count(_Atomic uint64_t *counter, uint64_t n) {
  atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

static void conn_read_start(pl__insp_session *c);

static void conn_read_stop(pl__insp_session *c) {
  if (!c->reading) return;
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = 0;
}

/* "ip:port" or "[ip]:port" of a socket address into out. 0 or -errno. */
static int format_hostport(const struct sockaddr *sa, char *out, size_t n) {
  char ip[INET6_ADDRSTRLEN];
  int rc;
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    if ((rc = uv_ip6_name(a, ip, sizeof(ip))) != 0) return rc;
    rc = snprintf(out, n, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
  } else if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    if ((rc = uv_ip4_name(a, ip, sizeof(ip))) != 0) return rc;
    rc = snprintf(out, n, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
  } else {
    return -EAFNOSUPPORT;
  }
  return rc < 0 || (size_t)rc >= n ? -ENAMETOOLONG : 0;
}

/* A random (version 4) UUID, lowercase, into out[37]. 0 or -errno. */
static int make_uuid(char out[37]) {
  unsigned char b[16];
  size_t got = 0;
  while (got < sizeof(b)) {
    ssize_t r = getrandom(b + got, sizeof(b) - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    got += (size_t)r;
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
           b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
  return 0;
}

/* "file://" and the executable's absolute path, percent-encoded, into
 * g.exe_url ("" when /proc/self/exe cannot be read). */
static void make_exe_url(void) {
  char path[PATH_MAX];
  g.exe_url[0] = '\0';
  ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return;
  path[n] = '\0';
  size_t o = (size_t)snprintf(g.exe_url, sizeof(g.exe_url), "file://");
  static const char hex[] = "0123456789ABCDEF";
  for (ssize_t i = 0; i < n && o + 4 < sizeof(g.exe_url); i++) {
    unsigned char ch = (unsigned char)path[i];
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
        strchr("-._~/", ch)) {
      g.exe_url[o++] = (char)ch;
    } else {
      g.exe_url[o++] = '%';
      g.exe_url[o++] = hex[ch >> 4];
      g.exe_url[o++] = hex[ch & 15];
    }
  }
  g.exe_url[o] = '\0';
}

/* 1 for loopback addresses: 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104. */
static int is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
  const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
  if (IN6_IS_ADDR_LOOPBACK(a)) return 1;
  return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
}

/* ---- logs --------------------------------------------------------------- */

/* A refused request: counted, and logged at most REJECT_LOGS_PER_SEC times a
 * second (the rest are counted into the next line's "suppressed"). */
static void note_rejected(const pl__insp_session *c, int status, const char *why) {
  count(&n_rejected, 1);
  uint64_t now = now_ms();
  if (now - g.reject_window_ms >= 1000) {
    g.reject_window_ms = now;
    g.reject_in_window = 0;
  }
  if (++g.reject_in_window > REJECT_LOGS_PER_SEC) {
    g.reject_suppressed++;
    return;
  }
  pl_json *j = pl_log_begin("warn", "inspector_rejected");
  pl_json_kv_str(j, "peer", c->peer);
  pl_json_kv_int(j, "status", status);
  pl_json_kv_str(j, "msg", why);
  if (g.reject_suppressed) pl_json_kv_uint(j, "suppressed", g.reject_suppressed);
  g.reject_suppressed = 0;
  pl_log_end();
  pl_log_flush();
}

/* ---- connections: writes, shutdown, close ------------------------------ */

static void on_conn_closed(uv_handle_t *h) {
  pl__insp_session *c = h->data;
  if (c->cdp_open) {
    void *cdp = c->cdp;
    c->cdp_open = 0;
    c->cdp = NULL;
    atomic_fetch_sub_explicit(&n_sessions_open, 1, memory_order_relaxed);
    pl__cdp_session_closed(cdp);
    pl_json *j = pl_log_begin("info", "inspector_session_closed");
    pl_json_kv_str(j, "peer", c->peer);
    pl_json_kv_uint(j, "code_sent", c->ws ? pl__ws_code_sent(c->ws) : 1006);
    pl_json_kv_uint(j, "code_received", c->ws ? pl__ws_code_received(c->ws) : 1006);
    pl_log_end();
    pl_log_flush();
  }
  if (c->prev)
    c->prev->next = c->next;
  else
    g.conns = c->next;
  if (c->next) c->next->prev = c->prev;
  g.nconns--;
  pl__ws_free(c->ws);
  pl_buf_free(&c->in);
  pl_buf_free(&c->out);
  pthread_mutex_destroy(&c->wmu);
  free(c);
}

/* The inspector thread is about to queue or write for c: writes from other
 * threads (pl__insp_write_now) wait for direct_update. */
static void direct_off(pl__insp_session *c) {
  pthread_mutex_lock(&c->wmu);
  c->direct = 0;
  pthread_mutex_unlock(&c->wmu);
}

/* The inspector thread is done writing for now: other threads may write
 * whole frames again when nothing is queued ahead of them. */
static void direct_update(pl__insp_session *c) {
  pthread_mutex_lock(&c->wmu);
  c->direct = c->kind == CONN_WS && !c->closing && !c->shut && !pl__ws_closing(c->ws) &&
              pl__ws_queued(c->ws) == 0 && c->out.len == 0 && c->inflight == 0;
  pthread_mutex_unlock(&c->wmu);
}

/* Close the socket now. pl__cdp_session_closed follows in the close
 * callback, never within this call. */
static void conn_close(pl__insp_session *c) {
  if (c->closing) return;
  direct_off(c); /* before the descriptor goes */
  c->closing = 1;
  c->reading = 0;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  pl__insp_session *c = req->data;
  c->shut_done = 1;
  if (c->closing) return;
  if (status < 0 || c->eof) conn_close(c);
}

/* Nothing more to send once the queued writes are out: send FIN after them
 * and read (discarding) until the peer's EOF or the close deadline, so
 * unread input does not turn our last answer into a reset. */
static void conn_finish(pl__insp_session *c) {
  if (c->closing || c->shut) return;
  direct_off(c);
  c->shut = 1;
  c->deadline_ms = now_ms() + CLOSE_TIMEOUT_MS;
  c->shutdown_req.data = c;
  if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    conn_close(c);
    return;
  }
  if (c->eof) return; /* on_shutdown closes */
  conn_read_start(c);
}

static void on_write(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  pl__insp_session *c = w->c;
  c->inflight -= w->len;
  free(w->own);
  free(w);
  if (c->closing) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  c->progress_ms = now_ms();
  if (c->shut) return;
  if (c->kind == CONN_WS) {
    ws_after(c);
  } else if (!c->reading && c->inflight < INFLIGHT_MAX) {
    conn_read_start(c);
    http_process(c);
  }
}

/* Write own[0..own_len) (taken: freed once written, or now on failure),
 * then ext[0..ext_len) (borrowed: must outlive the write). 0 or -errno. */
static int conn_write(pl__insp_session *c, char *own, size_t own_len, const char *ext,
                      size_t ext_len) {
  if (own_len > UINT_MAX || ext_len > UINT_MAX) {
    free(own);
    return -E2BIG;
  }
  write_req *w = malloc(sizeof(*w));
  if (!w) {
    free(own);
    return -ENOMEM;
  }
  uv_buf_t bufs[2];
  unsigned nbufs = 0;
  if (own_len) bufs[nbufs++] = uv_buf_init(own, (unsigned)own_len);
  if (ext_len) bufs[nbufs++] = uv_buf_init((char *)ext, (unsigned)ext_len);
  w->c = c;
  w->len = own_len + ext_len;
  w->own = own;
  int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, nbufs, on_write);
  if (rc != 0) {
    free(own);
    free(w);
    return rc;
  }
  if (c->inflight == 0) c->progress_ms = now_ms();
  c->inflight += w->len;
  return 0;
}

/* ---- WebSocket sessions -------------------------------------------------- */

static ssize_t ws_io_write(void *arg, const uint8_t *data, size_t len) {
  pl__insp_session *c = arg;
  if (c->closing) return -1;
  if (c->inflight == 0 && c->out.len == 0 && len) {
    /* Nothing ahead of these bytes: straight into the socket, without the
     * copy into out (a heap snapshot's 100 KiB chunk events usually fit
     * the kernel's buffer whole); only what it does not take is kept. */
    uv_buf_t b = uv_buf_init((char *)data, len > UINT_MAX ? UINT_MAX : (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n > 0) {
      c->progress_ms = now_ms();
      return n;
    }
    if (n != UV_EAGAIN) return -1; /* the connection is broken */
  }
  size_t used = c->inflight + c->out.len;
  if (used >= INFLIGHT_MAX) return 0;
  size_t n = len < INFLIGHT_MAX - used ? len : INFLIGHT_MAX - used;
  pl_buf_append(&c->out, data, n);
  return pl_buf_failed(&c->out) ? -1 : (ssize_t)n;
}

static void ws_io_text(void *arg, const char *msg, size_t len) {
  pl__insp_session *c = arg;
  count(&n_messages_in, 1);
  count(&n_bytes_in, len);
  if (c->cdp_open) pl__cdp_session_message(c->cdp, msg, len);
}

static const pl__ws_io ws_io = {.write = ws_io_write, .text = ws_io_text};

/* Move queued frames into a uv_write. */
static void ws_flush(pl__insp_session *c) {
  if (c->closing || c->shut) return;
  direct_off(c);
  int rc = pl_buf_failed(&c->out) ? -EPIPE : pl__ws_flush(c->ws);
  if (rc == 0 && c->out.len) {
    size_t n;
    char *p = pl_buf_steal(&c->out, &n);
    if (conn_write(c, p, n, NULL, 0) != 0) rc = -EPIPE;
  }
  if (rc != 0) {
    conn_close(c);
    return;
  }
  direct_update(c);
}

/* After input, a write completion or a call of the protocol side: write
 * out, tell a paused stream it may go on, pause or resume reading, finish a
 * closed session. */
static void ws_after(pl__insp_session *c) {
  if (c->closing || c->shut) return;
  ws_flush(c);
  if (c->closing) return;
  size_t q = pl__insp_queued(c);
  if (q > PL__INSP_HIGH_WATER) {
    c->above_high = 1;
  } else if (c->above_high && q < PL__INSP_LOW_WATER) {
    c->above_high = 0;
    if (c->cdp_open && !pl__ws_closing(c->ws)) {
      c->dispatching++;
      pl__cdp_session_writable(c->cdp);
      c->dispatching--;
      ws_flush(c);
      if (c->closing) return;
      q = pl__insp_queued(c);
    }
  }
  if (pl__ws_finished(c->ws)) {
    conn_finish(c);
    return;
  }
  if (pl__ws_closing(c->ws)) {
    if (!c->deadline_ms) c->deadline_ms = now_ms() + CLOSE_TIMEOUT_MS;
    return;
  }
  if (q > READ_PAUSE)
    conn_read_stop(c);
  else if (q <= READ_RESUME)
    conn_read_start(c);
}

static void ws_input(pl__insp_session *c, const char *data, size_t n) {
  direct_off(c); /* the peer's frames may queue a pong, a close or answers */
  c->dispatching++;
  int rc = pl__ws_feed(c->ws, data, n);
  c->dispatching--;
  if (rc != 0) {
    conn_close(c);
    return;
  }
  ws_after(c);
}

int pl__insp_send(pl__insp_session *s, const char *msg, size_t len) {
  if (!s || s->kind != CONN_WS || s->closing || s->shut) return -EPIPE;
  direct_off(s);
  int rc = pl__ws_send_text(s->ws, msg, len);
  if (rc != 0) return rc;
  count(&n_messages_out, 1);
  count(&n_bytes_out, len);
  if (pl__insp_queued(s) > PL__INSP_HIGH_WATER) s->above_high = 1;
  if (!s->dispatching) ws_flush(s);
  return 0;
}

size_t pl__insp_queued(pl__insp_session *s) {
  if (!s) return 0;
  pthread_mutex_lock(&s->wmu);
  size_t out = s->out.len;
  pthread_mutex_unlock(&s->wmu);
  return (s->ws ? pl__ws_queued(s->ws) : 0) + out + s->inflight;
}

/* Run on the inspector thread after another thread's write left part of a
 * frame in out: write it (or close a connection whose rest found no
 * memory: its stream is cut mid-frame). */
static void on_kick(void *arg) {
  uint64_t serial = (uint64_t)(uintptr_t)arg;
  for (pl__insp_session *c = g.conns; c; c = c->next) {
    if (c->serial != serial) continue;
    if (c->kind == CONN_WS && !c->closing) ws_after(c);
    return;
  }
}

int pl__insp_write_now(pl__insp_session *s, const char *msg, size_t len) {
  uint8_t head[PL__WS_HEAD_MAX];
  size_t hn = pl__ws_text_head(head, len);
  struct iovec iov[2] = {{head, hn}, {(void *)msg, len}};
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
  pthread_mutex_lock(&s->wmu);
  if (!s->direct) {
    pthread_mutex_unlock(&s->wmu);
    return -EAGAIN;
  }
  ssize_t r = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (r < 0) {
    /* Nothing went out: the caller queues it. A broken connection is the
     * inspector thread's to find (its own write fails too). */
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) s->direct = 0;
    pthread_mutex_unlock(&s->wmu);
    return -EAGAIN;
  }
  size_t done = (size_t)r;
  int kick = done < hn + len;
  if (kick) {
    /* The kernel took part of the frame: its rest goes first, from the
     * inspector thread (a failed append marks out failed: ws_flush then
     * closes the connection). */
    if (done < hn) pl_buf_append(&s->out, head + done, hn - done);
    size_t off = done > hn ? done - hn : 0;
    pl_buf_append(&s->out, msg + off, len - off);
    s->direct = 0;
  }
  uint64_t serial = s->serial;
  pthread_mutex_unlock(&s->wmu);
  count(&n_messages_out, 1);
  count(&n_bytes_out, len);
  if (kick) (void)pl__insp_post(on_kick, (void *)(uintptr_t)serial); /* stopping: all close */
  return 0;
}

void pl__insp_close(pl__insp_session *s, uint16_t code, const char *reason) {
  if (!s || s->kind != CONN_WS || s->closing || s->shut) return;
  direct_off(s);
  if (pl__ws_close(s->ws, code, reason) == -ENOMEM) {
    conn_close(s);
    return;
  }
  if (!s->deadline_ms) s->deadline_ms = now_ms() + CLOSE_TIMEOUT_MS;
  if (!s->dispatching) ws_after(s);
}

uv_loop_t *pl__insp_loop(pl__insp_session *s) {
  (void)s;
  return &g.loop;
}

/* ---- HTTP ---------------------------------------------------------------- */

static const char *status_text(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 426:
      return "Upgrade Required";
    case 503:
      return "Service Unavailable";
    default:
      return "Internal Server Error";
  }
}

/* Answer with a JSON body: copied, or borrowed (must outlive the write).
 * extra: more header lines ("Name: value\r\n"...) or "". Without keep the
 * connection finishes after the answer. */
static void respond(pl__insp_session *c, int status, const char *extra, const char *body,
                    size_t len, int borrow, int keep) {
  char head[512];
  int hn = snprintf(head, sizeof(head),
                    "HTTP/1.1 %d %s\r\n"
                    "Content-Type: application/json; charset=UTF-8\r\n"
                    "Cache-Control: no-cache\r\n"
                    "Content-Length: %zu\r\n"
                    "%s%s"
                    "Connection: %s\r\n\r\n",
                    status, status_text(status), len, g.task_header, extra,
                    keep ? "keep-alive" : "close");
  if (hn < 0 || (size_t)hn >= sizeof(head)) {
    conn_close(c);
    return;
  }
  size_t own_len = (size_t)hn + (borrow ? 0 : len);
  char *own = malloc(own_len);
  if (!own) {
    conn_close(c);
    return;
  }
  memcpy(own, head, (size_t)hn);
  if (!borrow && len) memcpy(own + hn, body, len);
  if (conn_write(c, own, own_len, borrow ? body : NULL, borrow ? len : 0) != 0) {
    conn_close(c);
    return;
  }
  if (keep)
    c->deadline_ms = now_ms() + KEEPALIVE_IDLE_MS;
  else
    conn_finish(c);
}

/* {"error":{"code":…,"message":…}}; the connection finishes after it
 * (except a plain 404). counted: a refused request (the rejected counter). */
static void respond_error(pl__insp_session *c, int status, const char *code, const char *msg,
                          const char *extra, int counted, int keep) {
  pl_buf b;
  pl__json_error_body(&b, code, msg);
  if (counted) note_rejected(c, status, msg);
  if (pl_buf_failed(&b))
    conn_close(c);
  else
    respond(c, status, extra, b.data, b.len, 0, keep);
  pl_buf_free(&b);
}

/* The HOST:PORT for URLs: the client's Host header when it is allowed and
 * plain (as Node does), else this socket's own address. */
static void url_hostport(pl__insp_session *c, pl__http_str host, char *out, size_t n) {
  int plain = host.n > 0 && host.n < n;
  for (size_t i = 0; plain && i < host.n; i++) {
    char ch = host.p[i];
    plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '.' || ch == ':' || ch == '[' || ch == ']' || ch == '-';
  }
  if (plain) {
    memcpy(out, host.p, host.n);
    out[host.n] = '\0';
    return;
  }
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &len) != 0 ||
      format_hostport((struct sockaddr *)&ss, out, n) != 0)
    snprintf(out, n, "%s", PL_INSPECT_DEFAULT_HOST);
}

/* GET /json, /json/list: the one target, with Node's fields. */
static void answer_list(pl__insp_session *c, pl__http_str host, int keep) {
  char hp[300], ws[400], url[512];
  url_hostport(c, host, hp, sizeof(hp));
  snprintf(ws, sizeof(ws), "%s/%s", hp, g.id);
  pl_buf b;
  pl_buf_init(&b);
  pl_json j;
  pl_json_init(&j, &b);
  pl_json_arr_open(&j);
  pl_json_obj_open(&j);
  pl_json_kv_str(&j, "description", "proflab instance");
  snprintf(url, sizeof(url),
           "devtools://devtools/bundled/js_app.html?experiments=true&v8only=true&ws=%s", ws);
  pl_json_kv_str(&j, "devtoolsFrontendUrl", url);
  snprintf(url, sizeof(url),
           "devtools://devtools/bundled/inspector.html?experiments=true&v8only=true&ws=%s", ws);
  pl_json_kv_str(&j, "devtoolsFrontendUrlCompat", url);
  pl_json_kv_str(&j, "faviconUrl", "");
  pl_json_kv_str(&j, "id", g.id);
  pl_json_kv_str(&j, "title", g.title);
  pl_json_kv_str(&j, "type", "node");
  pl_json_kv_str(&j, "url", g.exe_url);
  snprintf(url, sizeof(url), "ws://%s", ws);
  pl_json_kv_str(&j, "webSocketDebuggerUrl", url);
  pl_json_obj_close(&j);
  pl_json_arr_close(&j);
  if (pl_buf_failed(&b))
    respond_error(c, 503, "out_of_memory", "out of memory", "", 0, 0);
  else
    respond(c, 200, "", b.data, b.len, 0, keep);
  pl_buf_free(&b);
}

/* A Sec-WebSocket-Key: base64 of 16 bytes (22 characters and "=="). */
static int ws_key_valid(pl__http_str k) {
  if (k.n != 24 || k.p[22] != '=' || k.p[23] != '=') return 0;
  for (size_t i = 0; i < 22; i++) {
    char ch = k.p[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '+' || ch == '/'))
      return 0;
  }
  return 1;
}

/* GET /<id> with Upgrade: websocket. Checks the target, the Origin and the
 * handshake headers, answers 101 and opens the session. */
static void ws_upgrade(pl__insp_session *c, const pl__http_head *h, pl__http_str path) {
  pl__http_str v, key, origin;
  if (path.n != 37 || path.p[0] != '/' || memcmp(path.p + 1, g.id, 36) != 0) {
    respond_error(c, 404, "unknown_target", "no inspector target with this id (see /json/list)", "",
                  1, 0);
    return;
  }
  size_t norigin = pl__http_header_find(h, "Origin", &origin);
  if (norigin > 1 || (norigin == 1 && !pl__http_origin_allowed(origin))) {
    respond_error(c, 403, "forbidden_origin",
                  "WebSocket connections are accepted from devtools://devtools and loopback "
                  "http(s) origins only",
                  "", 1, 0);
    return;
  }
  if (!pl__http_header_find(h, "Connection", &v) || !pl__http_list_has(v, "upgrade")) {
    respond_error(c, 400, "bad_request", "WebSocket upgrade without Connection: Upgrade", "", 1, 0);
    return;
  }
  if (pl__http_header_find(h, "Sec-WebSocket-Version", &v) != 1 || !pl__http_str_ieq(v, "13")) {
    respond_error(c, 426, "unsupported_version", "only WebSocket version 13 is supported",
                  "Sec-WebSocket-Version: 13\r\n", 1, 0);
    return;
  }
  if (pl__http_header_find(h, "Sec-WebSocket-Key", &key) != 1 || !ws_key_valid(key)) {
    respond_error(c, 400, "bad_request", "missing or malformed Sec-WebSocket-Key", "", 1, 0);
    return;
  }
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char input[24 + sizeof(guid)], digest[SHA_DIGEST_LENGTH], accept[32];
  memcpy(input, key.p, 24);
  memcpy(input + 24, guid, sizeof(guid) - 1);
  SHA1(input, 24 + sizeof(guid) - 1, digest);
  EVP_EncodeBlock(accept, digest, SHA_DIGEST_LENGTH); /* 28 characters and a NUL */
  char *resp = malloc(160);
  if (!resp) {
    conn_close(c);
    return;
  }
  int n = snprintf(resp, 160,
                   "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n\r\n",
                   (const char *)accept);
  if (n < 0 || n >= 160 || conn_write(c, resp, (size_t)n, NULL, 0) != 0) {
    if (n < 0 || n >= 160) free(resp);
    conn_close(c);
    return;
  }
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) {
    conn_close(c);
    return;
  }
  c->fd = fd;
  c->kind = CONN_WS;
  c->deadline_ms = 0;
  if (pl__ws_new(&c->ws, &ws_io, c, WS_MAX_MSG) != 0) {
    conn_close(c);
    return;
  }
  c->dispatching++;
  c->cdp = pl__cdp_session_open(c, &g.target);
  c->dispatching--;
  if (c->cdp) {
    c->cdp_open = 1;
    count(&n_sessions, 1);
    count(&n_sessions_open, 1);
  } else {
    pl__ws_close(c->ws, 1011, "out of memory");
  }
  pl_json *j = pl_log_begin(c->cdp ? "info" : "error", "inspector_session_opened");
  pl_json_kv_str(j, "peer", c->peer);
  if (norigin) {
    pl_json_key(j, "origin");
    pl_json_strn(j, origin.p, origin.n);
  }
  pl_log_end();
  pl_log_flush();
  ws_after(c); /* what the protocol side sent (or the close) from its open call */
}

/* GET /json/version: never "Chrome/…" (chrome://inspect then asks for
 * /json/list?for_tab, which is for browser tabs). */
static void answer_version(pl__insp_session *c, int keep) {
  char body[128];
  int n = snprintf(body, sizeof(body), "{\"Browser\":\"proflab/%s\",\"Protocol-Version\":\"1.1\"}",
                   PROFLAB_VERSION);
  if (n < 0 || (size_t)n >= sizeof(body)) {
    conn_close(c);
    return;
  }
  respond(c, 200, "", body, (size_t)n, 0, keep);
}

/* GET /json/protocol: the protocol side's document (static: borrowed). */
static void answer_protocol(pl__insp_session *c, int keep) {
  size_t n = 0;
  const char *p = pl__cdp_protocol_json(&n);
  if (!p)
    respond_error(c, 503, "unavailable", "the protocol description is not available", "", 0, 0);
  else
    respond(c, 200, "", p, n, 1, keep);
}

/* One complete request head (its strings point into c->in). */
static void handle_request(pl__insp_session *c, const pl__http_head *h) {
  pl__http_str host, v;
  if (h->method.n != 3 || memcmp(h->method.p, "GET", 3) != 0) {
    respond_error(c, 400, "bad_request", "only GET requests are served here", "", 1, 0);
    return;
  }
  if (pl__http_header_find(h, "Host", &host) > 1 || !pl__http_host_allowed(host)) {
    respond_error(c, 400, "bad_host",
                  "the Host header must be localhost or an IP address (DNS rebinding "
                  "protection, as in Node)",
                  "", 1, 0);
    return;
  }
  pl__http_refusal why;
  if (pl__http_framing_check_head(h, &why)) {
    respond_error(c, why.status, why.code, why.message, "", 1, 0);
    return;
  }
  if (pl__http_header_find(h, "Content-Length", &v) && !(v.n == 1 && v.p[0] == '0')) {
    respond_error(c, 400, "bad_request", "a GET request has no body", "", 1, 0);
    return;
  }
  int keep = h->minor == 1;
  if (pl__http_header_find(h, "Connection", &v) && pl__http_list_has(v, "close")) keep = 0;
  pl__http_str path = h->target;
  for (size_t i = 0; i < path.n; i++) {
    if (path.p[i] == '?' || path.p[i] == '#') {
      path.n = i;
      break;
    }
  }
  if (pl__http_header_find(h, "Upgrade", &v)) {
    if (pl__http_list_has(v, "websocket"))
      ws_upgrade(c, h, path);
    else
      respond_error(c, 400, "bad_request", "only WebSocket upgrades are supported", "", 1, 0);
    return;
  }
  pl__http_str p = path;
  if (p.n > 1 && p.p[p.n - 1] == '/') p.n--;
  if (pl__http_str_ieq(p, "/json") || pl__http_str_ieq(p, "/json/list"))
    answer_list(c, host, keep);
  else if (pl__http_str_ieq(p, "/json/version"))
    answer_version(c, keep);
  else if (pl__http_str_ieq(p, "/json/protocol"))
    answer_protocol(c, keep);
  else if (path.n == 37 && memcmp(path.p + 1, g.id, 36) == 0)
    respond_error(c, 400, "upgrade_required",
                  "this is the target's WebSocket endpoint: connect with a WebSocket client", "", 1,
                  0);
  else
    respond_error(c, 404, "not_found",
                  "unknown path: the inspector serves /json, /json/list, /json/version, "
                  "/json/protocol and its target's WebSocket",
                  "", 0, keep);
}

/* Handle every complete request in c->in, in order, while the answers in
 * flight stay under INFLIGHT_MAX (else reading pauses until they drain). */
static void http_process(pl__insp_session *c) {
  while (!c->closing && !c->shut && c->kind == CONN_HTTP && c->in.len > 0) {
    if (c->inflight >= INFLIGHT_MAX) {
      conn_read_stop(c);
      return;
    }
    pl__http_head h;
    int rc = pl__http_head_parse(c->in.data, c->in.len, &h);
    if (rc == -EAGAIN) return;
    if (rc != 0) {
      respond_error(c, 400, "bad_request",
                    rc == -EMSGSIZE ? "request head too large (at most 8 KiB and 64 headers)"
                                    : "malformed HTTP request",
                    "", 1, 0);
      return;
    }
    handle_request(c, &h);
    memmove(c->in.data, c->in.data + h.len, c->in.len - h.len);
    c->in.len -= h.len;
    c->in.data[c->in.len] = '\0';
    if (c->kind == CONN_WS) {
      /* Bytes after the upgrade request are the first frames. */
      pl_buf rest = c->in;
      pl_buf_init(&c->in);
      if (rest.len && !c->closing) ws_input(c, rest.data, rest.len);
      pl_buf_free(&rest);
      return;
    }
  }
}

static void http_input(pl__insp_session *c, const char *data, size_t n) {
  if (c->in.len == 0) c->deadline_ms = now_ms() + HEAD_TIMEOUT_MS; /* a request begins */
  pl_buf_append(&c->in, data, n);
  if (pl_buf_failed(&c->in)) {
    conn_close(c);
    return;
  }
  http_process(c);
}

/* ---- the loop: accept, read, sweep, posts, stop ------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(g.rbuf, sizeof(g.rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  pl__insp_session *c = s->data;
  if (c->closing || nread == 0) return;
  if (nread < 0) {
    if (nread != UV_EOF) {
      conn_close(c);
      return;
    }
    c->eof = 1;
    conn_read_stop(c);
    if (c->shut) {
      if (c->shut_done) conn_close(c);
    } else if (c->kind == CONN_HTTP && c->inflight > 0) {
      conn_finish(c); /* the answer goes out, then the socket closes */
    } else {
      conn_close(c);
    }
    return;
  }
  if (c->shut) return; /* draining after our last answer */
  if (c->kind == CONN_WS)
    ws_input(c, buf->base, (size_t)nread);
  else
    http_input(c, buf->base, (size_t)nread);
}

static void conn_read_start(pl__insp_session *c) {
  if (c->reading || c->closing || c->eof) return;
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    conn_close(c);
    return;
  }
  c->reading = 1;
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) {
    pl_log_msg("warn", "inspector_accept", "accept failed: %s", uv_strerror(status));
    return;
  }
  pl__insp_session *c = calloc(1, sizeof(*c));
  if (!c) {
    pl_log_msg("error", "inspector_accept", "out of memory");
    return;
  }
  if (pthread_mutex_init(&c->wmu, NULL) != 0) {
    free(c);
    return;
  }
  c->kind = CONN_HTTP;
  c->serial = ++g.serials;
  if (uv_tcp_init(&g.loop, &c->tcp) != 0) {
    pthread_mutex_destroy(&c->wmu);
    free(c);
    return;
  }
  c->tcp.data = c;
  pl_buf_init(&c->in);
  pl_buf_init(&c->out);
  c->next = g.conns;
  if (g.conns) g.conns->prev = c;
  g.conns = c;
  g.nconns++;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  count(&n_connections, 1);
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0 ||
      format_hostport((struct sockaddr *)&ss, c->peer, sizeof(c->peer)) != 0)
    snprintf(c->peer, sizeof(c->peer), "?");
  if (g.nconns > CONN_MAX) {
    note_rejected(c, 0, "too many inspector connections");
    conn_close(c);
    return;
  }
  (void)uv_tcp_nodelay(&c->tcp, 1); /* best effort: small answers go out at once */
  c->deadline_ms = now_ms() + HEAD_TIMEOUT_MS;
  conn_read_start(c);
}

/* uv_walk: close what is still open at the end (the protocol side's
 * leftovers); *arg counts them, the sweep timer aside. */
static void close_stray(uv_handle_t *h, void *arg) {
  if (uv_is_closing(h)) return;
  if (h != (uv_handle_t *)&g.sweep) (*(unsigned *)arg)++;
  uv_close(h, NULL);
}

static void on_sweep(uv_timer_t *t) {
  (void)t;
  uint64_t now = now_ms();
  for (pl__insp_session *c = g.conns; c; c = c->next) {
    if (c->closing) continue;
    if (c->deadline_ms && now >= c->deadline_ms) {
      conn_close(c);
    } else if (c->kind == CONN_WS && c->inflight > 0 && now - c->progress_ms >= WRITE_STALL_MS) {
      pl_json *j = pl_log_begin("warn", "inspector_session_stalled");
      pl_json_kv_str(j, "peer", c->peer);
      pl_json_kv_uint(j, "queued", pl__insp_queued(c));
      pl_json_kv_str(j, "msg", "the client read nothing for 60 s: session closed");
      pl_log_end();
      pl_log_flush();
      conn_close(c);
    }
  }
  /* What DevTools' captures keep (the symbolizer, a snapshot's samples
   * memory) goes back after a minute unused, the lab off included. */
  if (now - g.drop_ms >= PL__CAPTURE_DROP_EVERY_MS) {
    g.drop_ms = now;
    pl__capture_drop_idle();
  }
  if (g.stopping && now >= g.stop_ms + STOP_GRACE_MS) {
    unsigned n = 0;
    uv_walk(&g.loop, close_stray, &n);
    if (n) pl_log_msg("warn", "inspector_stop", "closed %u handles the protocol side left open", n);
  }
}

/* Stop requested: close the listener and every connection (WebSocket
 * sessions get close 1001 first); the loop ends when everything closed. */
static void begin_stop(void) {
  g.stopping = 1;
  g.stop_ms = now_ms();
  uv_close((uv_handle_t *)&g.listener, NULL);
  uv_close((uv_handle_t *)&g.async, NULL);
  for (pl__insp_session *c = g.conns; c; c = c->next) {
    if (c->closing) continue;
    if (c->kind == CONN_WS && !c->shut) {
      direct_off(c);
      if (pl__ws_close(c->ws, 1001, "inspector stopping") == 0)
        ws_flush(c); /* uv_write tries at once: the close frame usually goes out */
    }
    conn_close(c);
  }
}

static void on_async(uv_async_t *a) {
  (void)a;
  pthread_mutex_lock(&g.mu);
  post_item *list = g.posts;
  g.posts = g.posts_tail = NULL;
  int stop = g.stop_requested;
  pthread_mutex_unlock(&g.mu);
  while (list) {
    post_item *next = list->next;
    list->fn(list->arg);
    free(list);
    list = next;
  }
  if (stop && !g.stopping) begin_stop();
}

int pl__insp_post(void (*fn)(void *arg), void *arg) {
  post_item *it = malloc(sizeof(*it));
  if (!it) return -ENOMEM;
  it->fn = fn;
  it->arg = arg;
  it->next = NULL;
  pthread_mutex_lock(&g.mu);
  if (!g.accepting_posts) {
    pthread_mutex_unlock(&g.mu);
    free(it);
    return -ESHUTDOWN;
  }
  if (g.posts_tail)
    g.posts_tail->next = it;
  else
    g.posts = it;
  g.posts_tail = it;
  (void)uv_async_send(&g.async); /* fails only on a handle that is not an async */
  pthread_mutex_unlock(&g.mu);
  return 0;
}

static void *inspector_thread(void *arg) {
  (void)arg;
  /* Everything this thread allocates is the tool's (frames, queues,
   * messages): never sampled into the program's heap profiles. */
  pl__heap_tracker_untracked_begin();
  uv_run(&g.loop, UV_RUN_DEFAULT); /* until stopped and everything closed */
  if (!uv_is_closing((uv_handle_t *)&g.sweep)) uv_close((uv_handle_t *)&g.sweep, NULL);
  uv_run(&g.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&g.loop) == UV_EBUSY) {
    unsigned n = 0;
    uv_walk(&g.loop, close_stray, &n);
    pl_log_msg("warn", "inspector_stop", "closed %u handles the protocol side left open", n);
    uv_run(&g.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&g.loop) != 0)
      pl_log_msg("error", "inspector_stop", "the inspector's loop did not close");
  }
  pl_log_flush();
  pl__heap_tracker_untracked_end();
  return NULL;
}

/* ---- public API ---------------------------------------------------------- */

/* An IP literal ("[v6]" or "v6" too) or "localhost" (127.0.0.1) into out. */
static int resolve_host(const char *host, unsigned port, struct sockaddr_storage *out) {
  char buf[64];
  size_t n = strlen(host);
  if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
    if (n - 2 >= sizeof(buf)) return -EINVAL;
    memcpy(buf, host + 1, n - 2);
    buf[n - 2] = '\0';
    host = buf;
  } else if (strcasecmp(host, "localhost") == 0) {
    host = "127.0.0.1";
  }
  memset(out, 0, sizeof(*out));
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0) return 0;
  if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0) return 0;
  return -EINVAL;
}

/* Print and log where the inspector listens, as Node does. */
static void announce(const struct sockaddr *bound, const char *hostport) {
  char devtools[256];
  snprintf(devtools, sizeof(devtools),
           "devtools://devtools/bundled/js_app.html?experiments=true&v8only=true&ws=%s/%s",
           hostport, g.id);
  pl_json *j = pl_log_begin("info", "inspector_listening");
  pl_json_kv_str(j, "url", g.url);
  pl_json_kv_str(j, "devtools", devtools);
  pl_json_kv_str(j, "id", g.id);
  pl_json_kv_str(j, "title", g.title);
  pl_log_end();
  fprintf(stderr, "Debugger listening on %s\nDevTools: %s\n", g.url, devtools);
  if (!is_loopback(bound)) {
    static const char warning[] =
        "Binding the inspector to a public IP with an open port is insecure: anyone who can "
        "reach this port can take CPU profiles and heap snapshots of this process (function "
        "names, allocation sizes, source paths). Bind it to 127.0.0.1 and use an SSH tunnel or "
        "the platform's port forwarding instead.";
    pl_log_msg("warn", "inspector_public", "%s", warning);
    fprintf(stderr, "Warning: %s\n", warning);
  }
  pl_log_flush();
}

int pl_inspector_start(const pl_inspector_options *o, char *err, size_t errlen) {
  static const pl_inspector_options defaults;
  if (!o) o = &defaults;
  if (err && errlen) err[0] = '\0';
  if (!err) errlen = 0;
  if (atomic_load(&running)) {
    if (errlen) snprintf(err, errlen, "the inspector is already running (%s)", g.url);
    return -EALREADY;
  }
  const char *host = o->host && *o->host ? o->host : PL_INSPECT_DEFAULT_HOST;
  unsigned port = o->port_set ? o->port : o->port ? o->port : PL_INSPECT_DEFAULT_PORT;
  struct sockaddr_storage addr;
  if (port > 65535 || resolve_host(host, port, &addr) != 0) {
    if (errlen)
      snprintf(err, errlen, "inspector address %s:%u: the host must be an IP address or localhost",
               host, port);
    return -EINVAL;
  }
  char want[80];
  if (format_hostport((struct sockaddr *)&addr, want, sizeof(want)) != 0)
    snprintf(want, sizeof(want), "%s:%u", host, port);

  g.conns = NULL;
  g.nconns = 0;
  g.stopping = 0;
  g.reject_window_ms = 0;
  g.reject_in_window = 0;
  g.reject_suppressed = 0;
  int rc = make_uuid(g.id);
  if (rc != 0) {
    if (errlen) snprintf(err, errlen, "inspector: no random target id: %s", strerror(-rc));
    return rc;
  }
  make_exe_url();
  snprintf(g.title, sizeof(g.title), "%s", o->title && *o->title ? o->title : "proflab");
  snprintf(g.task, sizeof(g.task), "%s", o->task ? o->task : "");
  int plain = g.task[0] != '\0';
  for (const char *p = g.task; *p; p++) plain = plain && *p > 0x20 && *p < 0x7f;
  if (plain)
    snprintf(g.task_header, sizeof(g.task_header), "X-Lab-Task: %s\r\n", g.task);
  else
    g.task_header[0] = '\0';
  g.target = (pl__insp_target){.id = g.id,
                               .title = g.title,
                               .task = g.task,
                               .wall_tid = o->wall_tid,
                               .idle_flag = o->idle_flag,
                               .wall_all_threads = o->wall_all_threads};

  int stage = 0;
  if ((rc = uv_loop_init(&g.loop)) != 0) {
    if (errlen) snprintf(err, errlen, "inspector: %s", uv_strerror(rc));
    return rc;
  }
  if ((rc = uv_tcp_init(&g.loop, &g.listener)) != 0) goto fail;
  stage = 1;
  if ((rc = uv_tcp_bind(&g.listener, (struct sockaddr *)&addr, 0)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&g.listener, 128, on_connection)) != 0)
    goto fail;
  struct sockaddr_storage bound;
  int blen = sizeof(bound);
  char hostport[80];
  if ((rc = uv_tcp_getsockname(&g.listener, (struct sockaddr *)&bound, &blen)) != 0 ||
      (rc = format_hostport((struct sockaddr *)&bound, hostport, sizeof(hostport))) != 0)
    goto fail;
  snprintf(g.url, sizeof(g.url), "ws://%s/%s", hostport, g.id);
  if ((rc = uv_async_init(&g.loop, &g.async, on_async)) != 0) goto fail;
  stage = 2;
  if ((rc = uv_timer_init(&g.loop, &g.sweep)) != 0) goto fail;
  stage = 3;
  if ((rc = uv_timer_start(&g.sweep, on_sweep, SWEEP_MS, SWEEP_MS)) != 0) goto fail;
  uv_unref((uv_handle_t *)&g.sweep);

  pthread_mutex_lock(&g.mu);
  g.accepting_posts = 1;
  g.stop_requested = 0;
  g.posts = g.posts_tail = NULL;
  pthread_mutex_unlock(&g.mu);
  /* The thread takes no process signals (SIGTERM, SIGUSR1, SIGPIPE...):
   * only the ones a fault or the CPU profiler raise. */
  sigset_t all, old;
  sigfillset(&all);
  static const int keep[] = {SIGPROF, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};
  for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) sigdelset(&all, keep[i]);
  if ((rc = -pthread_sigmask(SIG_BLOCK, &all, &old)) != 0) goto fail;
  rc = -pthread_create(&g.thread, NULL, inspector_thread, NULL);
  (void)pthread_sigmask(SIG_SETMASK, &old, NULL); /* restoring what was set: cannot fail */
  if (rc != 0) goto fail;
  (void)pthread_setname_np(g.thread,
                           PL__THREAD_NAME_PREFIX "inspect"); /* cosmetic (ps, perf, profiles) */
  atomic_store(&running, 1);
  announce((struct sockaddr *)&bound, hostport);
  return 0;

fail:
  if (errlen) snprintf(err, errlen, "Starting inspector on %s failed: %s", want, uv_strerror(rc));
  pthread_mutex_lock(&g.mu);
  g.accepting_posts = 0;
  pthread_mutex_unlock(&g.mu);
  if (stage >= 1) uv_close((uv_handle_t *)&g.listener, NULL);
  if (stage >= 2) uv_close((uv_handle_t *)&g.async, NULL);
  if (stage >= 3) uv_close((uv_handle_t *)&g.sweep, NULL);
  uv_run(&g.loop, UV_RUN_DEFAULT);
  uv_loop_close(&g.loop);
  return rc;
}

int pl_inspector_running(void) { return atomic_load(&running); }

const char *pl_inspector_url(void) { return atomic_load(&running) ? g.url : NULL; }

void pl_inspector_stop(void) {
  if (!atomic_load(&running)) return;
  if (pthread_equal(pthread_self(), g.thread)) {
    pl_log_msg("error", "inspector_stop", "pl_inspector_stop called on the inspector's thread");
    return;
  }
  pthread_mutex_lock(&g.mu);
  g.stop_requested = 1;
  g.accepting_posts = 0;
  (void)uv_async_send(&g.async);
  pthread_mutex_unlock(&g.mu);
  int rc = pthread_join(g.thread, NULL);
  if (rc != 0) pl_log_msg("error", "inspector_stop", "pthread_join: %s", strerror(rc));
  atomic_store(&running, 0);
  pl_json *j = pl_log_begin("info", "inspector_stopped");
  pl_json_kv_str(j, "url", g.url);
  pl_log_end();
  pl_log_flush();
}

void pl_inspector_forget_after_fork(void) {
  if (!atomic_load(&running)) return;
  uv_os_fd_t fd;
  if (uv_fileno((const uv_handle_t *)&g.listener, &fd) == 0 && fd >= 0) close(fd);
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  memcpy(&g.mu, &fresh, sizeof(fresh));
  g.accepting_posts = 0;
  g.stop_requested = 0;
  g.posts = g.posts_tail = NULL;
  g.conns = NULL;
  g.nconns = 0;
  atomic_store(&n_sessions_open, 0);
  atomic_store(&running, 0);
}

void pl_inspector_get_stats(pl_inspector_stats *out) {
  out->running = atomic_load(&running);
  out->connections = atomic_load(&n_connections);
  out->sessions = atomic_load(&n_sessions);
  out->sessions_open = atomic_load(&n_sessions_open);
  out->rejected = atomic_load(&n_rejected);
  out->messages_in = atomic_load(&n_messages_in);
  out->messages_out = atomic_load(&n_messages_out);
  out->bytes_in = atomic_load(&n_bytes_in);
  out->bytes_out = atomic_load(&n_bytes_out);
}

int pl_inspector_parse_address(const char *s, pl_inspector_options *o, char *err, size_t errlen) {
  static char host_buf[64];
  const char *h = NULL, *port_s = NULL;
  size_t hl = 0;
  char tmp[64];
  if (!err) errlen = 0;
  if (!s || !*s) {
    if (errlen) snprintf(err, errlen, "inspector address: empty (expected [HOST:]PORT)");
    return -EINVAL;
  }
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (!close || close == s + 1 || (close[1] && close[1] != ':')) {
      if (errlen) snprintf(err, errlen, "inspector address '%.80s': expected [IPv6]:PORT", s);
      return -EINVAL;
    }
    h = s + 1;
    hl = (size_t)(close - h);
    if (close[1] == ':') port_s = close + 2;
    struct sockaddr_in6 a6;
    if (hl < sizeof(tmp)) {
      memcpy(tmp, h, hl);
      tmp[hl] = '\0';
    }
    if (hl >= sizeof(tmp) || uv_ip6_addr(tmp, 0, &a6) != 0) {
      if (errlen) snprintf(err, errlen, "inspector address '%.80s': not an IPv6 address", s);
      return -EINVAL;
    }
  } else if (strspn(s, "0123456789") == strlen(s)) {
    port_s = s;
  } else {
    const char *colon = strchr(s, ':');
    if (colon && strchr(colon + 1, ':')) {
      if (errlen)
        snprintf(err, errlen,
                 "inspector address '%.80s': put IPv6 addresses in brackets, e.g. [::1]:9229", s);
      return -EINVAL;
    }
    h = s;
    hl = colon ? (size_t)(colon - s) : strlen(s);
    port_s = colon ? colon + 1 : NULL;
    if (hl) {
      struct sockaddr_in a4;
      if (hl < sizeof(tmp)) {
        memcpy(tmp, h, hl);
        tmp[hl] = '\0';
      }
      if (hl >= sizeof(tmp) ||
          (strcasecmp(tmp, "localhost") != 0 && uv_ip4_addr(tmp, 0, &a4) != 0)) {
        if (errlen)
          snprintf(err, errlen,
                   "inspector address '%.80s': the host must be an IP address or localhost", s);
        return -EINVAL;
      }
    }
  }
  unsigned port = PL_INSPECT_DEFAULT_PORT;
  if (port_s) {
    size_t n = strlen(port_s);
    unsigned long v = 0;
    int ok = n >= 1 && n <= 5 && strspn(port_s, "0123456789") == n;
    if (ok) {
      char *end;
      v = strtoul(port_s, &end, 10);
      ok = *end == '\0' && v <= 65535;
    }
    if (!ok) {
      if (errlen)
        snprintf(err, errlen, "inspector address '%.80s': the port must be 0 to 65535", s);
      return -EINVAL;
    }
    port = (unsigned)v;
  }
  if (h && hl) {
    memcpy(host_buf, tmp, hl + 1);
    o->host = host_buf;
  } else {
    o->host = NULL;
  }
  o->port = port;
  o->port_set = port_s != NULL;
  return 0;
}
