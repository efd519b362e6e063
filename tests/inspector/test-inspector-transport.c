/* The inspector's transport (src/inspector/inspector.c, src/http/head.c,
 * websocket.c) against plain sockets: discovery answers, the Host and
 * Origin checks, WebSocket framing, flow control, close paths, stop. The
 * protocol side is an echo double defined here (session.h's pl__cdp_*
 * half and protocol.h), so libproflab's cdp objects are not linked. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "inspector/protocol.h"
#include "inspector/session.h"
#include "proflab/inspector.h"

/* ---- the protocol double: echo ------------------------------------------ */

#define BIG_TOTAL (24u << 20) /* bytes "big" sends */
#define BIG_CHUNK (64u << 10)

typedef struct echo {
  pl__insp_session *s;
  size_t big_left;
  uint32_t magic;
} echo;

static atomic_int opens, closes, writables, send_after_close_rc;
static atomic_int greet; /* send "welcome" from the open call */
static atomic_size_t max_queued;
static atomic_long inspector_tid;
static char last_target_id[64];
static char big_chunk[BIG_CHUNK];

static void pump(echo *e) {
  while (e->big_left > 0 && pl__insp_queued(e->s) <= PL__INSP_HIGH_WATER) {
    size_t n = e->big_left < BIG_CHUNK ? e->big_left : BIG_CHUNK;
    if (pl__insp_send(e->s, big_chunk, n) != 0) return;
    e->big_left -= n;
    size_t q = pl__insp_queued(e->s);
    if (q > atomic_load(&max_queued)) atomic_store(&max_queued, q);
  }
}

/* "direct": a thread of its own sends DIRECT_N messages with
 * pl__insp_write_now, each "d<number>:" padded to direct_size(number),
 * handing one to the inspector thread (pl__insp_post, then pl__insp_send)
 * when the transport refuses it, and writing directly again only once no
 * handed message is pending, as the heap snapshot stream does. */
#define DIRECT_N 256 /* 12 MB: more than the kernel buffers on loopback */
static size_t direct_size(unsigned i) {
  static const size_t sizes[] = {7, 125, 126, 65535, 65536, 150000, 100000, 1000};
  return sizes[i % 8];
}
static struct {
  pthread_t thread;
  int running;
  pl__insp_session *s; /* NULL once the session closed */
  atomic_int cancel, pending;
  atomic_int now, handed; /* messages written at once, and handed over */
} direct;

static char *direct_msg(unsigned i, size_t *n) {
  *n = direct_size(i);
  char *m = malloc(*n + 1);
  assert_non_null(m);
  memset(m, 'a' + (int)(i % 26), *n);
  char head[16];
  int k = snprintf(head, sizeof(head), "d%05u:", i);
  memcpy(m, head, (size_t)k);
  return m;
}

static void direct_handed(void *arg) {
  char *m = arg;
  if (direct.s) pl__insp_send(direct.s, m, strlen(m));
  free(m);
  atomic_fetch_sub(&direct.pending, 1);
}

static void *direct_main(void *arg) {
  (void)arg;
  for (unsigned i = 0; i < DIRECT_N && !atomic_load(&direct.cancel); i++) {
    while (atomic_load(&direct.pending) && !atomic_load(&direct.cancel)) usleep(200);
    size_t n;
    char *m = direct_msg(i, &n);
    if (!atomic_load(&direct.pending) && pl__insp_write_now(direct.s, m, n) == 0) {
      atomic_fetch_add(&direct.now, 1);
      free(m);
      continue;
    }
    m[n] = '\0';
    atomic_fetch_add(&direct.pending, 1);
    atomic_fetch_add(&direct.handed, 1);
    assert_int_equal(pl__insp_post(direct_handed, m), 0);
    usleep(1000); /* the client reads slowly: give it time */
  }
  return NULL;
}

void *pl__cdp_session_open(pl__insp_session *s, const pl__insp_target *t) {
  echo *e = calloc(1, sizeof(*e));
  if (!e) return NULL;
  e->s = s;
  e->magic = 0xec40;
  snprintf(last_target_id, sizeof(last_target_id), "%s", t->id);
  atomic_store(&inspector_tid, (long)syscall(SYS_gettid));
  atomic_fetch_add(&opens, 1);
  if (atomic_load(&greet)) pl__insp_send(s, "welcome", 7);
  return e;
}

void pl__cdp_session_message(void *cdp, const char *msg, size_t len) {
  echo *e = cdp;
  assert_int_equal(e->magic, 0xec40);
  if (len == 3 && memcmp(msg, "big", 3) == 0) {
    e->big_left = BIG_TOTAL;
    pump(e);
  } else if (len == 6 && memcmp(msg, "direct", 6) == 0) {
    direct.s = e->s;
    direct.running = pthread_create(&direct.thread, NULL, direct_main, NULL) == 0;
    assert_true(direct.running);
  } else if (len == 5 && memcmp(msg, "close", 5) == 0) {
    pl__insp_close(e->s, 4000, "bye");
    atomic_store(&send_after_close_rc, pl__insp_send(e->s, "x", 1));
  } else {
    pl__insp_send(e->s, msg, len);
  }
}

void pl__cdp_session_writable(void *cdp) {
  echo *e = cdp;
  assert_int_equal(e->magic, 0xec40);
  atomic_fetch_add(&writables, 1);
  pump(e);
}

void pl__cdp_session_closed(void *cdp) {
  echo *e = cdp;
  assert_int_equal(e->magic, 0xec40);       /* a second call would read freed memory (ASan) */
  if (direct.running && direct.s == e->s) { /* the writer stops before s goes */
    atomic_store(&direct.cancel, 1);
    pthread_join(direct.thread, NULL);
    direct.running = 0;
    direct.s = NULL;
  }
  e->magic = 0;
  free(e);
  atomic_fetch_add(&closes, 1);
}

static const char protocol_doc[] = "{\"version\":{\"major\":\"1\",\"minor\":\"3\"},\"domains\":[]}";

const char *pl__cdp_protocol_json(size_t *len) {
  *len = sizeof(protocol_doc) - 1;
  return protocol_doc;
}

/* ---- a plain socket client ---------------------------------------------- */

static unsigned port;
static char target_id[64];

typedef struct client {
  int fd;
  char buf[1 << 16]; /* received, not yet consumed */
  size_t len;
} client;

static client *client_new(void) {
  client *c = calloc(1, sizeof(*c));
  assert_non_null(c);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(c->fd >= 0);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
  return c;
}

static void client_free(client *c) {
  close(c->fd);
  free(c);
}

static void send_all(client *c, const void *p, size_t n) {
  const char *s = p;
  while (n) {
    ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
    assert_true(w > 0);
    s += w;
    n -= (size_t)w;
  }
}

static void send_str(client *c, const char *s) { send_all(c, s, strlen(s)); }

/* Read more into c->buf: bytes read, 0 at EOF, -1 on error/timeout. */
static ssize_t fill(client *c) {
  if (c->len == sizeof(c->buf)) return -1;
  ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
  if (r > 0) c->len += (size_t)r;
  return r;
}

/* Exactly n bytes into p (from the buffer first). 0, or -1 on EOF/error. */
static int read_exact(client *c, void *p, size_t n) {
  char *d = p;
  while (n) {
    if (c->len == 0 && fill(c) <= 0) return -1;
    size_t k = n < c->len ? n : c->len;
    if (d) memcpy(d, c->buf, k);
    memmove(c->buf, c->buf + k, c->len - k);
    c->len -= k;
    if (d) d += k;
    n -= k;
  }
  return 0;
}

/* 1 when the peer closed (EOF or reset) within the receive timeout. */
static int wait_eof(client *c) {
  char tmp[4096];
  for (;;) {
    ssize_t r = recv(c->fd, tmp, sizeof(tmp), 0);
    if (r == 0) return 1;
    if (r < 0) return errno == ECONNRESET;
  }
}

typedef struct response {
  int status;
  char head[8192];
  char *body;
  size_t body_len;
} response;

/* Read one HTTP response (with Content-Length). 0 or -1. */
static int read_response(client *c, response *r) {
  memset(r, 0, sizeof(*r));
  char *end;
  while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
    if (fill(c) <= 0) return -1;
  size_t hl = (size_t)(end - c->buf) + 4;
  assert_true(hl < sizeof(r->head));
  memcpy(r->head, c->buf, hl);
  r->head[hl] = '\0';
  read_exact(c, NULL, hl);
  if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1) return -1;
  const char *cl = strcasestr(r->head, "\r\nContent-Length: ");
  if (r->status == 101) return 0;
  assert_non_null(cl);
  r->body_len = strtoul(cl + 18, NULL, 10);
  r->body = calloc(1, r->body_len + 1);
  assert_non_null(r->body);
  return read_exact(c, r->body, r->body_len);
}

static void request(client *c, const char *method, const char *path, const char *host,
                    const char *extra) {
  char req[2048];
  char hosthdr[256] = "";
  if (host) snprintf(hosthdr, sizeof(hosthdr), "Host: %s\r\n", host);
  snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\n%s%s\r\n", method, path, hosthdr,
           extra ? extra : "");
  send_str(c, req);
}

/* One request on a fresh connection; the status (and *body, to free). */
static int get(const char *path, const char *host, const char *extra, char **body) {
  client *c = client_new();
  request(c, "GET", path, host, extra);
  response r;
  int rc = read_response(c, &r);
  client_free(c);
  if (rc != 0) return -1;
  if (body)
    *body = r.body;
  else
    free(r.body);
  return r.status;
}

static char local_host[64]; /* "127.0.0.1:PORT" */

static json_t *get_json(const char *path, int *status) {
  char *body = NULL;
  *status = get(path, local_host, NULL, &body);
  assert_non_null(body);
  json_error_t e;
  json_t *j = json_loads(body, 0, &e);
  free(body);
  return j;
}

/* ---- WebSocket client framing ------------------------------------------- */

static const char *ws_key = "dGhlIHNhbXBsZSBub25jZQ==";

/* Upgrade c to a WebSocket on path with an Origin line (or none). The
 * status; on 101 the Accept key is checked. */
static int ws_handshake(client *c, const char *path, const char *origin_line) {
  char extra[512];
  snprintf(extra, sizeof(extra),
           "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: %s\r\n%s",
           ws_key, origin_line ? origin_line : "");
  request(c, "GET", path, local_host, extra);
  response r;
  assert_int_equal(read_response(c, &r), 0);
  free(r.body);
  if (r.status == 101) {
    /* RFC 6455's example: this key's accept value */
    assert_non_null(strstr(r.head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert_non_null(strcasestr(r.head, "Upgrade: websocket"));
  }
  return r.status;
}

static client *ws_open(void) {
  client *c = client_new();
  char path[80];
  snprintf(path, sizeof(path), "/%s", target_id);
  assert_int_equal(ws_handshake(c, path, NULL), 101);
  return c;
}

/* Send one frame (masked unless told otherwise). */
static void ws_send(client *c, int fin, int opcode, const void *payload, size_t n, int masked) {
  unsigned char h[14];
  size_t hn = 0;
  h[hn++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
  unsigned char m = masked ? 0x80 : 0;
  if (n < 126) {
    h[hn++] = (unsigned char)(m | n);
  } else if (n < 65536) {
    h[hn++] = m | 126;
    h[hn++] = (unsigned char)(n >> 8);
    h[hn++] = (unsigned char)n;
  } else {
    h[hn++] = m | 127;
    for (int i = 7; i >= 0; i--) h[hn++] = (unsigned char)((uint64_t)n >> (8 * i));
  }
  unsigned char key[4] = {0x12, 0x34, 0x56, 0x78};
  if (masked) {
    memcpy(h + hn, key, 4);
    hn += 4;
  }
  send_all(c, h, hn);
  unsigned char *p = malloc(n ? n : 1);
  assert_non_null(p);
  for (size_t i = 0; i < n; i++)
    p[i] = ((const unsigned char *)payload)[i] ^ (masked ? key[i % 4] : 0);
  send_all(c, p, n);
  free(p);
}

static void ws_text(client *c, const char *s) { ws_send(c, 1, 1, s, strlen(s), 1); }

/* Read one server frame: its opcode; payload into *out (malloc'd, NUL
 * added) and its length into *n. -1 at EOF or on a masked server frame. */
static int ws_recv(client *c, char **out, size_t *n) {
  unsigned char h[2];
  if (read_exact(c, h, 2) != 0) return -1;
  if (h[1] & 0x80) return -1;
  uint64_t len = h[1] & 0x7f;
  if (len == 126) {
    unsigned char e[2];
    if (read_exact(c, e, 2)) return -1;
    len = (uint64_t)e[0] << 8 | e[1];
  } else if (len == 127) {
    unsigned char e[8];
    if (read_exact(c, e, 8)) return -1;
    len = 0;
    for (int i = 0; i < 8; i++) len = len << 8 | e[i];
  }
  char *p = malloc(len + 1);
  assert_non_null(p);
  if (read_exact(c, p, len) != 0) {
    free(p);
    return -1;
  }
  p[len] = '\0';
  if (out)
    *out = p;
  else
    free(p);
  if (n) *n = len;
  return h[0] & 0x0f;
}

/* Expect a close frame; its code. */
static int ws_expect_close(client *c) {
  char *p;
  size_t n;
  int op = ws_recv(c, &p, &n);
  assert_int_equal(op, 8);
  int code = n >= 2 ? ((unsigned char)p[0] << 8 | (unsigned char)p[1]) : 0;
  free(p);
  return code;
}

static void wait_for(atomic_int *v, int want) {
  for (int i = 0; i < 1000 && atomic_load(v) != want; i++) usleep(10000);
  assert_int_equal(atomic_load(v), want);
}

/* ---- setup --------------------------------------------------------------- */

static int start_inspector(void) {
  pl_inspector_options o = {
      .host = "127.0.0.1", .port = 0, .port_set = 1, .title = "transport test", .task = "t-1"};
  char err[256];
  if (pl_inspector_start(&o, err, sizeof(err)) != 0) {
    fprintf(stderr, "start: %s\n", err);
    return -1;
  }
  const char *url = pl_inspector_url();
  if (!url || sscanf(url, "ws://127.0.0.1:%u/", &port) != 1) return -1;
  const char *id = strrchr(url, '/');
  snprintf(target_id, sizeof(target_id), "%s", id + 1);
  snprintf(local_host, sizeof(local_host), "127.0.0.1:%u", port);
  return 0;
}

static int group_setup(void **state) {
  (void)state;
  memset(big_chunk, 'x', sizeof(big_chunk));
  return start_inspector();
}

static int group_teardown(void **state) {
  (void)state;
  pl_inspector_stop();
  return 0;
}

/* ---- discovery ----------------------------------------------------------- */

static void test_version(void **state) {
  (void)state;
  client *c = client_new();
  request(c, "GET", "/json/version", local_host, NULL);
  response r;
  assert_int_equal(read_response(c, &r), 0);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.head, "Content-Type: application/json; charset=UTF-8\r\n"));
  assert_non_null(strstr(r.head, "Cache-Control: no-cache\r\n"));
  assert_non_null(strstr(r.head, "X-Lab-Task: t-1\r\n"));
  assert_null(strcasestr(r.head, "chunked"));
  json_error_t e;
  json_t *j = json_loads(r.body, 0, &e);
  assert_non_null(j);
  const char *browser = json_string_value(json_object_get(j, "Browser"));
  assert_non_null(browser);
  assert_int_equal(strncmp(browser, "proflab/", 8), 0);
  assert_string_equal(json_string_value(json_object_get(j, "Protocol-Version")), "1.1");
  assert_int_equal(json_object_size(j), 2);
  json_decref(j);
  free(r.body);
  client_free(c);
}

static void check_target(json_t *list, const char *hostport) {
  assert_true(json_is_array(list));
  assert_int_equal(json_array_size(list), 1);
  json_t *t = json_array_get(list, 0);
  static const char *fields[] = {"description",
                                 "devtoolsFrontendUrl",
                                 "devtoolsFrontendUrlCompat",
                                 "faviconUrl",
                                 "id",
                                 "title",
                                 "type",
                                 "url",
                                 "webSocketDebuggerUrl"};
  for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
    assert_true(json_is_string(json_object_get(t, fields[i])));
  assert_int_equal(json_object_size(t), 9);
  assert_string_equal(json_string_value(json_object_get(t, "description")), "proflab instance");
  assert_string_equal(json_string_value(json_object_get(t, "type")), "node");
  assert_string_equal(json_string_value(json_object_get(t, "title")), "transport test");
  assert_string_equal(json_string_value(json_object_get(t, "id")), target_id);
  assert_string_equal(json_string_value(json_object_get(t, "faviconUrl")), "");
  assert_int_equal(strncmp(json_string_value(json_object_get(t, "url")), "file:///", 8), 0);
  char want[256];
  snprintf(want, sizeof(want), "ws://%s/%s", hostport, target_id);
  assert_string_equal(json_string_value(json_object_get(t, "webSocketDebuggerUrl")), want);
  snprintf(want, sizeof(want),
           "devtools://devtools/bundled/js_app.html?experiments=true&v8only=true&ws=%s/%s",
           hostport, target_id);
  assert_string_equal(json_string_value(json_object_get(t, "devtoolsFrontendUrl")), want);
  snprintf(want, sizeof(want),
           "devtools://devtools/bundled/inspector.html?experiments=true&v8only=true&ws=%s/%s",
           hostport, target_id);
  assert_string_equal(json_string_value(json_object_get(t, "devtoolsFrontendUrlCompat")), want);
}

static void test_list(void **state) {
  (void)state;
  int status;
  json_t *j = get_json("/json/list", &status);
  assert_int_equal(status, 200);
  check_target(j, local_host);
  json_decref(j);
  j = get_json("/json", &status);
  assert_int_equal(status, 200);
  check_target(j, local_host);
  json_decref(j);
  /* the URLs follow the client's Host header, as Node's do */
  char host[64], *body = NULL;
  snprintf(host, sizeof(host), "localhost:%u", port);
  assert_int_equal(get("/json/list?for_tab", host, NULL, &body), 200);
  json_error_t e;
  j = json_loads(body, 0, &e);
  free(body);
  check_target(j, host);
  json_decref(j);
  /* the id is the one pl_inspector_url names */
  assert_non_null(strstr(pl_inspector_url(), target_id));
  assert_int_equal(strlen(target_id), 36);
  assert_int_equal(target_id[14], '4'); /* a version 4 UUID */
}

static void test_protocol_and_404(void **state) {
  (void)state;
  char *body = NULL;
  assert_int_equal(get("/json/protocol", local_host, NULL, &body), 200);
  assert_string_equal(body, protocol_doc);
  free(body);
  assert_int_equal(get("/nope", local_host, NULL, &body), 404);
  json_error_t e;
  json_t *j = json_loads(body, 0, &e);
  free(body);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                      "not_found");
  json_decref(j);
  /* the target's path without an upgrade */
  char path[80];
  snprintf(path, sizeof(path), "/%s", target_id);
  assert_int_equal(get(path, local_host, NULL, NULL), 400);
}

static void test_host_check(void **state) {
  (void)state;
  pl_inspector_stats before, after;
  pl_inspector_get_stats(&before);
  static const char *bad[] = {"evil.example", "evil.example:9229", "127.0.0.1.evil.example",
                              "300.1.1.1", "1.2.3", "localhost.evil", "[::1",
                              /* what uv_inet_pton refuses, as Node's check does */
                              "0127.0.0.1", "127.000.000.001", "0.0.0.0", "[evil.example]", "[::]",
                              "[fe80::1%eth0]"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(get("/json/version", bad[i], NULL, NULL), 400);
  pl_inspector_get_stats(&after);
  assert_int_equal(after.rejected - before.rejected, sizeof(bad) / sizeof(bad[0]));
  char h[64];
  snprintf(h, sizeof(h), "[::1]:%u", port);
  static const char *good[] = {"localhost", "LOCALHOST", "127.0.0.1", "10.1.2.3:80", "[::1]"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    assert_int_equal(get("/json/version", good[i], NULL, NULL), 200);
  assert_int_equal(get("/json/version", local_host, NULL, NULL), 200);
  assert_int_equal(get("/json/version", h, NULL, NULL), 200);
  /* no Host at all (HTTP/1.0): allowed, as in Node */
  client *c = client_new();
  send_str(c, "GET /json/version HTTP/1.0\r\n\r\n");
  response r;
  assert_int_equal(read_response(c, &r), 0);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.head, "Connection: close\r\n"));
  free(r.body);
  assert_true(wait_eof(c));
  client_free(c);
  /* two Host headers */
  assert_int_equal(get("/json/version", "localhost", "Host: evil.example\r\n", NULL), 400);
}

static void test_bad_requests(void **state) {
  (void)state;
  pl_inspector_stats before, after;
  pl_inspector_get_stats(&before);
  client *c = client_new();
  request(c, "POST", "/json/list", local_host, "Content-Length: 0\r\n");
  response r;
  assert_int_equal(read_response(c, &r), 0);
  assert_int_equal(r.status, 400);
  assert_non_null(strstr(r.head, "Connection: close\r\n"));
  free(r.body);
  assert_true(wait_eof(c));
  client_free(c);
  /* an oversized head: 400, then the connection closes */
  c = client_new();
  char *big = malloc(10000);
  assert_non_null(big);
  memset(big, 'a', 9999);
  big[9999] = '\0';
  memcpy(big, "GET /json HTTP/1.1\r\nX-Big: ", 27);
  send_str(c, big);
  free(big);
  assert_int_equal(read_response(c, &r), 0);
  assert_int_equal(r.status, 400);
  free(r.body);
  assert_true(wait_eof(c));
  client_free(c);
  /* garbage, bare LF, a body on GET, obs-fold */
  static const char *garbage[] = {
      "GARBAGE\r\n\r\n",
      "GET /json HTTP/1.1\nHost: localhost\n\n\r\n\r\n",
      "GET /json HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
      "GET /json HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
      "GET json HTTP/1.1\r\n\r\n",
      "GET /json HTTP/2.0\r\n\r\n",
      "GET /json HTTP/1.1\r\nBad Header: 1\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
    c = client_new();
    send_str(c, garbage[i]);
    assert_int_equal(read_response(c, &r), 0);
    assert_int_equal(r.status, 400);
    free(r.body);
    client_free(c);
  }
  pl_inspector_get_stats(&after);
  assert_int_equal(after.rejected - before.rejected, 2 + sizeof(garbage) / sizeof(garbage[0]));
}

static void test_keepalive_pipelined(void **state) {
  (void)state;
  client *c = client_new();
  char two[512];
  snprintf(
      two, sizeof(two),
      "GET /json/version HTTP/1.1\r\nHost: %s\r\n\r\nGET /json/list HTTP/1.1\r\nHost: %s\r\n\r\n",
      local_host, local_host);
  send_str(c, two);
  response r;
  assert_int_equal(read_response(c, &r), 0);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.head, "Connection: keep-alive\r\n"));
  free(r.body);
  assert_int_equal(read_response(c, &r), 0);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, target_id));
  free(r.body);
  /* and a third one later on the same connection */
  request(c, "GET", "/json/version", local_host, NULL);
  assert_int_equal(read_response(c, &r), 0);
  assert_int_equal(r.status, 200);
  free(r.body);
  client_free(c);
}

/* ---- WebSocket ----------------------------------------------------------- */

static void test_ws_handshake_checks(void **state) {
  (void)state;
  char path[80];
  snprintf(path, sizeof(path), "/%s", target_id);
  static const char *ok[] = {NULL,
                             "Origin: devtools://devtools\r\n",
                             "Origin: http://localhost:9222\r\n",
                             "Origin: http://127.0.0.1\r\n",
                             "Origin: https://127.8.9.10:443\r\n",
                             "Origin: http://[::1]:8080\r\n"};
  int o0 = atomic_load(&opens);
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    client *c = client_new();
    assert_int_equal(ws_handshake(c, path, ok[i]), 101);
    client_free(c);
  }
  wait_for(&opens, o0 + (int)(sizeof(ok) / sizeof(ok[0])));
  pl_inspector_stats before, after;
  pl_inspector_get_stats(&before);
  static const char *bad[] = {"Origin: http://evil.example\r\n",
                              "Origin: http://127.0.0.1.evil.example\r\n",
                              "Origin: null\r\n",
                              "Origin: http://localhost.evil:80\r\n",
                              "Origin: http://128.0.0.1\r\n",
                              "Origin: file://\r\n",
                              "Origin: devtools://devtools.evil\r\n",
                              "Origin: http://localhost/path\r\n",
                              "Origin: http://localhost\r\nOrigin: http://localhost\r\n"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    client *c = client_new();
    assert_int_equal(ws_handshake(c, path, bad[i]), 403);
    client_free(c);
  }
  /* a wrong id, a missing key, an old version */
  client *c = client_new();
  assert_int_equal(ws_handshake(c, "/00000000-0000-4000-8000-000000000000", NULL), 404);
  client_free(c);
  c = client_new();
  request(c, "GET", path, local_host,
          "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
  response r;
  assert_int_equal(read_response(c, &r), 0);
  assert_int_equal(r.status, 400);
  free(r.body);
  client_free(c);
  c = client_new();
  request(c, "GET", path, local_host,
          "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
  assert_int_equal(read_response(c, &r), 0);
  assert_int_equal(r.status, 426);
  assert_non_null(strstr(r.head, "Sec-WebSocket-Version: 13\r\n"));
  free(r.body);
  client_free(c);
  pl_inspector_get_stats(&after);
  assert_int_equal(after.rejected - before.rejected, sizeof(bad) / sizeof(bad[0]) + 3);
  wait_for(&closes, atomic_load(&opens));
}

static void test_ws_echo(void **state) {
  (void)state;
  pl_inspector_stats before, after;
  pl_inspector_get_stats(&before);
  client *c = ws_open();
  static const char first[] = "{\"id\":1,\"method\":\"Runtime.enable\"}";
  ws_text(c, first);
  char *p;
  size_t n;
  assert_int_equal(ws_recv(c, &p, &n), 1);
  assert_string_equal(p, first);
  free(p);
  /* a fragmented message is delivered whole, with a ping in between */
  ws_send(c, 0, 1, "hel", 3, 1);
  ws_send(c, 1, 9, "p", 1, 1);
  ws_send(c, 1, 0, "lo", 2, 1);
  assert_int_equal(ws_recv(c, &p, &n), 10); /* the pong first */
  assert_string_equal(p, "p");
  free(p);
  assert_int_equal(ws_recv(c, &p, &n), 1);
  assert_string_equal(p, "hello");
  free(p);
  /* 200 KB: a 64-bit length */
  size_t big = 200000;
  char *m = malloc(big + 1);
  assert_non_null(m);
  memset(m, 'y', big);
  m[big] = '\0';
  ws_text(c, m);
  assert_int_equal(ws_recv(c, &p, &n), 1);
  assert_int_equal(n, big);
  assert_memory_equal(p, m, big);
  free(p);
  free(m);
  pl_inspector_get_stats(&after);
  assert_int_equal(after.messages_in - before.messages_in, 3);
  assert_int_equal(after.messages_out - before.messages_out, 3);
  assert_int_equal(after.bytes_in - before.bytes_in, strlen(first) + 5 + big);
  assert_int_equal(after.sessions - before.sessions, 1);
  assert_int_equal(after.sessions_open, 1);
  /* the client closes: the server answers with the same code */
  ws_send(c, 1, 8, "\x03\xe8", 2, 1);
  assert_int_equal(ws_expect_close(c), 1000);
  assert_true(wait_eof(c));
  client_free(c);
  wait_for(&closes, atomic_load(&opens));
}

static void test_ws_ping(void **state) {
  (void)state;
  /* what the protocol side sends from its open call goes out at once */
  atomic_store(&greet, 1);
  client *g = ws_open();
  char *w;
  assert_int_equal(ws_recv(g, &w, NULL), 1);
  atomic_store(&greet, 0); /* not before: open runs after the 101 went out */
  assert_string_equal(w, "welcome");
  free(w);
  client_free(g);
  client *c = ws_open();
  ws_send(c, 1, 9, "abc", 3, 1);
  char *p;
  size_t n;
  assert_int_equal(ws_recv(c, &p, &n), 10);
  assert_string_equal(p, "abc");
  free(p);
  client_free(c);
  wait_for(&closes, atomic_load(&opens));
}

static void test_ws_protocol_errors(void **state) {
  (void)state;
  /* an unmasked client frame: close 1002 */
  client *c = ws_open();
  ws_send(c, 1, 1, "hi", 2, 0);
  assert_int_equal(ws_expect_close(c), 1002);
  assert_true(wait_eof(c));
  client_free(c);
  /* a binary message: close 1003 */
  c = ws_open();
  ws_send(c, 1, 2, "\x01\x02", 2, 1);
  assert_int_equal(ws_expect_close(c), 1003);
  assert_true(wait_eof(c));
  client_free(c);
  /* a message beyond 16 MiB (announced in its header): close 1009 */
  c = ws_open();
  unsigned char h[14] = {0x81, 0xff, 0, 0, 0, 0, 0x01, 0x10, 0, 0, 1, 2, 3, 4};
  send_all(c, h, sizeof(h));
  send_all(c, "some payload", 12);
  assert_int_equal(ws_expect_close(c), 1009);
  assert_true(wait_eof(c));
  client_free(c);
  /* invalid UTF-8 in a text message: close 1007 */
  c = ws_open();
  ws_send(c, 1, 1, "\xc3\x28", 2, 1);
  assert_int_equal(ws_expect_close(c), 1007);
  client_free(c);
  /* a reserved opcode, then garbage */
  c = ws_open();
  ws_send(c, 1, 3, "", 0, 1);
  assert_int_equal(ws_expect_close(c), 1002);
  client_free(c);
  /* the protocol side closes with a code of its own; sending after is -EPIPE */
  c = ws_open();
  ws_text(c, "close");
  char *p;
  size_t n;
  assert_int_equal(ws_recv(c, &p, &n), 8);
  assert_int_equal(n, 5);
  assert_int_equal((unsigned char)p[0] << 8 | (unsigned char)p[1], 4000);
  assert_memory_equal(p + 2, "bye", 3);
  free(p);
  assert_true(wait_eof(c));
  client_free(c);
  assert_int_equal(atomic_load(&send_after_close_rc), -EPIPE);
  wait_for(&closes, atomic_load(&opens));
  /* the process is fine: a new session echoes */
  c = ws_open();
  ws_text(c, "still here");
  assert_int_equal(ws_recv(c, &p, &n), 1);
  assert_string_equal(p, "still here");
  free(p);
  client_free(c);
  wait_for(&closes, atomic_load(&opens));
}

/* The session still answers in step after what a test did; then the
 * client leaves and the session closes. */
static void end_in_step(client *c) {
  ws_text(c, "after");
  char *p;
  assert_int_equal(ws_recv(c, &p, NULL), 1);
  assert_string_equal(p, "after");
  free(p);
  client_free(c);
  wait_for(&closes, atomic_load(&opens));
}

static void test_ws_big_watermarks(void **state) {
  (void)state;
  atomic_store(&max_queued, 0);
  int w0 = atomic_load(&writables);
  client *c = ws_open();
  ws_text(c, "big");
  /* read nothing for a while: the queue fills up to the high water mark
   * and stays bounded */
  for (int i = 0; i < 500 && atomic_load(&max_queued) <= PL__INSP_HIGH_WATER; i++) usleep(10000);
  usleep(200000);
  size_t peak = atomic_load(&max_queued);
  assert_true(peak > PL__INSP_HIGH_WATER);
  assert_true(peak <= PL__INSP_HIGH_WATER + BIG_CHUNK);
  size_t total = 0;
  while (total < BIG_TOTAL) {
    size_t n;
    int op = ws_recv(c, NULL, &n);
    assert_int_equal(op, 1);
    total += n;
  }
  assert_int_equal(total, BIG_TOTAL);
  assert_true(atomic_load(&writables) > w0);
  assert_true(atomic_load(&max_queued) <= PL__INSP_HIGH_WATER + BIG_CHUNK);
  end_in_step(c);
}

static void test_ws_client_vanishes(void **state) {
  (void)state;
  client *c = ws_open();
  ws_text(c, "big");
  size_t n;
  assert_int_equal(ws_recv(c, NULL, &n), 1); /* sending is under way */
  struct linger l = {.l_onoff = 1, .l_linger = 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)); /* close = reset */
  client_free(c);
  wait_for(&closes, atomic_load(&opens));
  pl_inspector_stats s;
  pl_inspector_get_stats(&s);
  assert_int_equal(s.sessions_open, 0);
  /* a client that leaves in the middle of a frame */
  c = ws_open();
  unsigned char h[6] = {0x81, 0x85, 1, 2, 3, 4};
  send_all(c, h, sizeof(h));
  send_all(c, "ab", 2);
  client_free(c);
  wait_for(&closes, atomic_load(&opens));
  /* and one in the middle of the HTTP head */
  c = client_new();
  send_str(c, "GET /json HTTP/1.1\r\nHo");
  client_free(c);
  assert_int_equal(get("/json/version", local_host, NULL, NULL), 200);
}

/* Messages written from another thread (pl__insp_write_now) and from the
 * inspector thread (echoes, and what that thread was handed) reach a client
 * that reads slowly as whole frames, in order. */
static void test_ws_direct_writes(void **state) {
  (void)state;
  client *c = ws_open();
  ws_text(c, "direct");
  usleep(300000); /* read nothing: the kernel's buffer fills, writes go partial, then queue */
  for (int i = 0; i < 3; i++) ws_text(c, "echo");
  unsigned next = 0, echoes = 0;
  while (next < DIRECT_N || echoes < 3) {
    char *p;
    size_t n;
    assert_int_equal(ws_recv(c, &p, &n), 1);
    if (n == 4 && !memcmp(p, "echo", 4)) {
      echoes++;
    } else {
      unsigned i;
      assert_int_equal(sscanf(p, "d%05u:", &i), 1);
      assert_int_equal(i, next); /* in order, none lost */
      assert_int_equal(n, direct_size(i));
      if (n > 7) assert_int_equal((unsigned char)p[n - 1], 'a' + i % 26);
      next++;
    }
    free(p);
  }
  assert_true(atomic_load(&direct.now) > 0);
  assert_true(atomic_load(&direct.handed) > 0);
  end_in_step(c);
}

/* ---- posts, addresses, start/stop ---------------------------------------- */

static atomic_long posted_tid;
static void posted(void *arg) {
  atomic_store(&posted_tid, (long)syscall(SYS_gettid));
  atomic_fetch_add((atomic_int *)arg, 1);
}

static void *post_from_thread(void *arg) {
  for (int i = 0; i < 100; i++) assert_int_equal(pl__insp_post(posted, arg), 0);
  return NULL;
}

static void test_post(void **state) {
  (void)state;
  static atomic_int runs;
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&t[i], NULL, post_from_thread, &runs), 0);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  wait_for(&runs, 400);
  assert_int_not_equal(atomic_load(&posted_tid), (long)syscall(SYS_gettid));
  assert_int_equal(atomic_load(&posted_tid), atomic_load(&inspector_tid));
  assert_ptr_not_equal(pl__insp_loop(NULL), NULL);
}

static void test_parse_address(void **state) {
  (void)state;
  pl_inspector_options o;
  char err[200];
  memset(&o, 0, sizeof(o));
  assert_int_equal(pl_inspector_parse_address("9230", &o, err, sizeof(err)), 0);
  assert_null(o.host);
  assert_int_equal(o.port, 9230);
  assert_int_equal(o.port_set, 1);
  assert_int_equal(pl_inspector_parse_address("0.0.0.0:9229", &o, err, sizeof(err)), 0);
  assert_string_equal(o.host, "0.0.0.0");
  assert_int_equal(o.port, 9229);
  assert_int_equal(pl_inspector_parse_address("[::1]:9300", &o, err, sizeof(err)), 0);
  assert_string_equal(o.host, "::1");
  assert_int_equal(o.port, 9300);
  assert_int_equal(pl_inspector_parse_address("[::1]", &o, err, sizeof(err)), 0);
  assert_string_equal(o.host, "::1");
  assert_int_equal(o.port_set, 0);
  assert_int_equal(pl_inspector_parse_address("localhost", &o, err, sizeof(err)), 0);
  assert_string_equal(o.host, "localhost");
  assert_int_equal(o.port, 9229);
  assert_int_equal(o.port_set, 0);
  assert_int_equal(pl_inspector_parse_address(":0", &o, err, sizeof(err)), 0);
  assert_null(o.host);
  assert_int_equal(o.port, 0);
  assert_int_equal(o.port_set, 1);
  static const char *bad[] = {"",          "::1",        "[::1",        "[]:9229",
                              "host:9229", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:65536",
                              "[::1]x",    "1.2.3:9229", "-1",          "123456",
                              "[zz]:1",    "example.com"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    err[0] = '\0';
    assert_int_equal(pl_inspector_parse_address(bad[i], &o, err, sizeof(err)), -EINVAL);
    assert_true(err[0] != '\0');
  }
}

static void test_start_errors(void **state) {
  (void)state;
  char err[256];
  pl_inspector_options o = {.host = "127.0.0.1", .port = 0, .port_set = 1};
  assert_int_equal(pl_inspector_start(&o, err, sizeof(err)), -EALREADY);
  assert_int_equal(pl_inspector_running(), 1);
}

static void test_stop_with_sessions(void **state) {
  (void)state;
  client *s[3];
  for (int i = 0; i < 3; i++) s[i] = ws_open();
  ws_text(s[0], "big"); /* one of them in the middle of a stream */
  client *http = client_new();
  send_str(http, "GET /json HTTP/1.1\r\n"); /* and an unfinished request */
  wait_for(&opens, atomic_load(&closes) + 3);
  pl_inspector_stop();
  assert_int_equal(pl_inspector_running(), 0);
  assert_null(pl_inspector_url());
  assert_int_equal(atomic_load(&opens), atomic_load(&closes));
  pl_inspector_stats st;
  pl_inspector_get_stats(&st);
  assert_int_equal(st.running, 0);
  assert_int_equal(st.sessions_open, 0);
  assert_int_equal(pl__insp_post(posted, NULL), -ESHUTDOWN);
  for (int i = 1; i < 3; i++) {
    char *p;
    size_t n;
    int op = ws_recv(s[i], &p, &n); /* close 1001, or the reset */
    if (op == 8) {
      assert_int_equal((unsigned char)p[0] << 8 | (unsigned char)p[1], 1001);
      free(p);
    } else {
      assert_int_equal(op, -1);
    }
  }
  for (int i = 0; i < 3; i++) client_free(s[i]);
  client_free(http);
  pl_inspector_stop(); /* twice: nothing */

  /* a new start: a new id; the old port is free again */
  char old_id[64];
  unsigned old_port = port;
  snprintf(old_id, sizeof(old_id), "%s", target_id);
  pl_inspector_options o = {.host = "localhost", .port = old_port, .port_set = 1};
  char err[256];
  assert_int_equal(pl_inspector_start(&o, err, sizeof(err)), 0);
  assert_int_not_equal(strcmp(strrchr(pl_inspector_url(), '/') + 1, old_id), 0);
  snprintf(target_id, sizeof(target_id), "%s", strrchr(pl_inspector_url(), '/') + 1);
  client *c = ws_open();
  ws_text(c, "again");
  char *p;
  assert_int_equal(ws_recv(c, &p, NULL), 1);
  assert_string_equal(p, "again");
  free(p);
  /* the port is taken now */
  pl_inspector_stop();
  client_free(c);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)old_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(listen(fd, 1), 0);
  int rc = pl_inspector_start(&o, err, sizeof(err));
  assert_int_equal(rc, -EADDRINUSE);
  assert_non_null(strstr(err, "address already in use"));
  assert_int_equal(pl_inspector_running(), 0);
  close(fd);
  o.host = "example.com";
  assert_int_equal(pl_inspector_start(&o, err, sizeof(err)), -EINVAL);
  /* the group teardown stops what group_setup... runs again here */
  assert_int_equal(start_inspector(), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_version),
      cmocka_unit_test(test_list),
      cmocka_unit_test(test_protocol_and_404),
      cmocka_unit_test(test_host_check),
      cmocka_unit_test(test_bad_requests),
      cmocka_unit_test(test_keepalive_pipelined),
      cmocka_unit_test(test_ws_handshake_checks),
      cmocka_unit_test(test_ws_echo),
      cmocka_unit_test(test_ws_ping),
      cmocka_unit_test(test_ws_protocol_errors),
      cmocka_unit_test(test_ws_big_watermarks),
      cmocka_unit_test(test_ws_client_vanishes),
      cmocka_unit_test(test_ws_direct_writes),
      cmocka_unit_test(test_post),
      cmocka_unit_test(test_parse_address),
      cmocka_unit_test(test_start_errors),
      cmocka_unit_test(test_stop_with_sessions),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
