/* libFuzzer target: a whole request through the service's HTTP stack —
 * libmicrohttpd's request parsing and URL/query decoding, the router
 * (src/http/server.c: 404, 405 with Allow, 413, 431, 400 no Host), the
 * query-parameter checks (params.c), the lab's token guard and rate
 * limiter (src/lab/answer.c, ratelimit.c) and the lab's endpoints that a
 * fuzzer can run fast: status, memory-leak (1 MiB bound), memory-clear,
 * event-loop-jam (2 ms bound), heap-snapshot (no tracker linked: its
 * error), the artifact list and downloads with Range/If-Range (the CPU
 * profile endpoint is left out: each run takes a second; its parameter
 * table is in fuzz-params.c).
 *
 * Two servers on Unix sockets share one loop: the lab on (token
 * "fuzz-token-0123456789", no rate limit so the fuzzer stays past the
 * guard) over an artifact directory holding a real artifact plus, under
 * artifact-shaped names, a symlink and a hard link to a canary file
 * outside the directory; and the lab off.
 *
 * Input: byte 0 picks the server (even: lab on; odd: lab off), the rest is
 * written raw to a new connection, then the write side is shut.
 *
 * Checks: every answer is HTTP; a JSON answer's body parses; no answer
 * ever carries the canary's bytes; the canary is never changed; every log
 * line is one JSON object; with the lab off, the answer is byte-identical
 * (Date aside) to the answer to the same bytes with "/api/lab" replaced by
 * "/api/zzz" (an unknown path) where it starts a request target — the lab off is invisible. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "lab/lab_internal.h"
#include "proflab/log.h"
#include "proflab/server.h"

#define TOKEN "fuzz-token-0123456789"
#define GOOD "cpu-20250101T000000.000Z-fuzz.cpuprofile"

static uv_loop_t loop;
static pl_server *srv[2];
static pl_lab *lab[2];
static char root[64], sock[2][128], canary[128], artdir[128];
static struct stat canary_st;
static char secret[40]; /* the canary's bytes, random per run */
static int ready;

static void on_health(pl_request *r, void *arg) {
  (void)arg;
  static const char ok[] = "{\"status\":\"ok\"}";
  pl_respond(r, 200, "application/json", ok, sizeof(ok) - 1);
}

static void log_sink(const char *data, size_t len, void *arg) {
  (void)arg;
  const char *p = data, *end = data + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) abort(); /* lines are whole */
    json_error_t e;
    json_t *j = json_loadb(p, (size_t)(nl - p), 0, &e);
    if (!json_is_object(j)) {
      fprintf(stderr, "bad log line: %.*s\n", (int)(nl - p), p);
      abort();
    }
    json_decref(j);
    p = nl + 1;
  }
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) abort();
  fputs(text, f);
  fclose(f);
}

static void setup(void) {
  pl_log_set_sink(log_sink, NULL);
  snprintf(root, sizeof(root), "/tmp/proflab-fuzz-http.XXXXXX");
  if (!mkdtemp(root)) abort();
  snprintf(canary, sizeof(canary), "%s/canary", root);
  srand((unsigned)uv_hrtime());
  snprintf(secret, sizeof(secret), "CANARY-%08x%08x", (unsigned)rand(), (unsigned)rand());
  write_file(canary, secret);
  if (stat(canary, &canary_st) != 0) abort();
  snprintf(artdir, sizeof(artdir), "%s/art", root);
  if (mkdir(artdir, 0700) != 0) abort();
  char p[256];
  snprintf(p, sizeof(p), "%s/" GOOD, artdir);
  write_file(p, "{\"nodes\":[],\"startTime\":1,\"endTime\":2,\"samples\":[],\"timeDeltas\":[]}");
  snprintf(p, sizeof(p), "%s/cpu-20250101T000000.001Z-fuzz.cpuprofile", artdir);
  if (symlink("../canary", p) != 0) abort();
  snprintf(p, sizeof(p), "%s/cpu-20250101T000000.002Z-fuzz.cpuprofile", artdir);
  if (link(canary, p) != 0) abort();
  snprintf(p, sizeof(p), "%s/heap-20250101T000000.003Z-fuzz.heapprofile", artdir);
  if (symlink(canary, p) != 0) abort();
  if (uv_loop_init(&loop) != 0) abort();
  for (int i = 0; i < 2; i++) {
    pl_lab_config cfg;
    pl_lab_config_init(&cfg);
    cfg.enable = i == 0;
    cfg.token = TOKEN;
    cfg.artifact_dir = artdir;
    cfg.task = "fuzz";
    cfg.max_leak_mb = 1;
    cfg.max_jam_ms = 2;
    cfg.max_profile_seconds = 1;
    cfg.failed_token_limit = 4000000000u;
    cfg.failed_token_window_s = 1;
    if (pl_lab_new(&lab[i], &loop, &cfg, NULL) != 0) abort();
    pl_server_config sc;
    pl_server_config_init(&sc);
    snprintf(sock[i], sizeof(sock[i]), "%s/s%d", root, i);
    sc.unix_path = sock[i];
    sc.task = "fuzz";
    sc.max_body_bytes = 4096;
    sc.max_header_bytes = 2048;
    sc.header_timeout_ms = 1000;
    sc.idle_timeout_ms = 2000;
    if (pl_server_new(&srv[i], &loop, &sc) != 0) abort();
    if (pl_server_route(srv[i], PL_GET, "/api/health", 0, on_health, NULL) != 0) abort();
    if (i == 0) { /* what pl_lab_mount does, without the CPU profile */
      if (pl__lab_status_mount(lab[i], srv[i]) || pl__lab_harm_mount(lab[i], srv[i]) ||
          pl__lab_heap_mount(lab[i], srv[i]) || pl__lab_artifacts_mount(lab[i], srv[i]))
        abort();
    } else if (pl_lab_mount(lab[i], srv[i]) != 0 || pl_lab_active(lab[i])) {
      abort();
    }
    if (pl_server_start(srv[i]) != 0) abort();
  }
  ready = 1;
}

typedef struct reply {
  char *p;
  size_t n, cap;
} reply;

/* Send the bytes on a new connection, shut the write side, read to EOF
 * while running the loop. */
static void exchange(int which, const uint8_t *data, size_t size, reply *out) {
  out->n = 0;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) abort();
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock[which]);
  if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) abort();
  fcntl(fd, F_SETFL, O_NONBLOCK);
  size_t off = 0;
  int shut = 0;
  uint64_t deadline = uv_hrtime() + 5000000000ull;
  for (;;) {
    if (off < size) {
      ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
      if (w > 0)
        off += (size_t)w;
      else if (w < 0 && errno != EAGAIN)
        off = size; /* the server closed on us */
    }
    if (off == size && !shut) {
      shutdown(fd, SHUT_WR);
      shut = 1;
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    struct pollfd pf[2] = {{.fd = fd, .events = POLLIN},
                           {.fd = uv_backend_fd(&loop), .events = POLLIN}};
    int t = uv_backend_timeout(&loop);
    poll(pf, 2, t < 0 || t > 5 ? 5 : t);
    if (pf[0].revents) {
      if (out->cap - out->n < 65536) {
        out->cap = out->cap * 2 + 65536;
        out->p = realloc(out->p, out->cap);
        if (!out->p) abort();
      }
      ssize_t r = read(fd, out->p + out->n, out->cap - out->n);
      if (r == 0 || (r < 0 && errno != EAGAIN)) break;
      if (r > 0) out->n += (size_t)r;
    }
    if (uv_hrtime() > deadline) {
      fprintf(stderr, "no end of answer within 5 s\n");
      abort();
    }
  }
  close(fd);
  /* let the server see the close */
  for (int i = 0; i < 50 && pl_server_connections(srv[which]); i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    struct pollfd pf = {.fd = uv_backend_fd(&loop), .events = POLLIN};
    poll(&pf, 1, 1);
  }
}

static void check_answer(const reply *a, const uint8_t *in, size_t inlen) {
  if (a->n == 0) return;
  if (a->n < 9 || memcmp(a->p, "HTTP/1.", 7) != 0) abort();
  /* never the canary's bytes (unless the request itself carried them) */
  if (memmem(a->p, a->n, secret, strlen(secret)) && !memmem(in, inlen, secret, strlen(secret)))
    abort();
  const char *he = memmem(a->p, a->n, "\r\n\r\n", 4);
  if (!he) return;
  size_t hl = (size_t)(he - a->p);
  if (!memmem(a->p, hl, "application/json", 16)) return;
  const char *cl = memmem(a->p, hl, "Content-Length: ", 16);
  if (!cl) return;
  size_t blen = strtoul(cl + 16, NULL, 10);
  const char *body = he + 4;
  if (memmem(a->p, 12, " 204", 4) || memmem(a->p, 12, " 304", 4)) return;
  if ((size_t)(a->p + a->n - body) < blen) return; /* HEAD, or cut */
  /* The answer to a HEAD has no body: the next pipelined answer follows
   * its head (where the HEAD's line starts is libmicrohttpd's to decide:
   * it skips empty lines, and lines a NUL makes empty). A JSON body never
   * starts so. */
  if ((size_t)(a->p + a->n - body) >= 7 && memcmp(body, "HTTP/1.", 7) == 0) return;
  json_error_t e;
  json_t *j = json_loadb(body, blen, 0, &e);
  if (!j) {
    fprintf(stderr, "answer body is not JSON: %.*s\n", (int)blen, body);
    abort();
  }
  json_decref(j);
}

static size_t strip_date(const reply *a, char *out) {
  size_t n = 0;
  const char *p = a->p, *end = a->p + a->n;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *e = nl ? nl + 1 : end;
    if (!((size_t)(e - p) >= 5 && strncasecmp(p, "Date:", 5) == 0)) {
      memcpy(out + n, p, (size_t)(e - p));
      n += (size_t)(e - p);
    }
    p = e;
  }
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!ready) setup();
  if (size < 1) return 0;
  static reply a, b;
  int off = data[0] & 1;
  exchange(off, data + 1, size - 1, &a);
  check_answer(&a, data, size);
  if (off) {
    uint8_t *alt = malloc(size);
    if (!alt) return 0;
    memcpy(alt, data + 1, size - 1);
    /* request targets only (after a space): a method is echoed in a 405 */
    for (size_t i = 1; i + 8 <= size - 1; i++)
      if (alt[i - 1] == ' ' && memcmp(alt + i, "/api/lab", 8) == 0) memcpy(alt + i, "/api/zzz", 8);
    exchange(1, alt, size - 1, &b);
    free(alt);
    char *x = malloc(a.n + 1), *y = malloc(b.n + 1);
    size_t xn = strip_date(&a, x), yn = strip_date(&b, y);
    if (xn != yn || memcmp(x, y, xn) != 0) {
      fprintf(stderr, "lab off differs from an unknown path:\n%.*s\n----\n%.*s\n", (int)xn, x,
              (int)yn, y);
      abort();
    }
    free(x);
    free(y);
  }
  struct stat now;
  if (stat(canary, &now) != 0 || now.st_size != canary_st.st_size ||
      now.st_mtim.tv_sec != canary_st.st_mtim.tv_sec ||
      now.st_mtim.tv_nsec != canary_st.st_mtim.tv_nsec)
    abort();
  return 0;
}
