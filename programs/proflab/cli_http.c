/* The CLI's HTTP layer (see cli_http.h). */
#include "cli_http.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "artifact/store.h"
#include "common/util.h"
#include "progress.h"

enum {
  MAX_JSON_BODY = 16 << 20, /* larger JSON answers are refused */
  MAX_ERROR_BODY = 64 << 10,
  MAX_BACKOFF_MS = 2000,
};

struct cli_conn {
  CURL *h;
  char *base;         /* what request paths are appended to */
  char *shown;        /* the URL as given, for messages */
  char *token_header; /* NULL: no token (a Unix socket) */
  int verbose;
  char curl_err[CURL_ERROR_SIZE];
  cli_transfer_fn progress; /* cli_conn_set_progress */
  void *progress_ctx;
  uint64_t progress_base; /* bytes of the file before this request's (a resume) */
};

/* What the header callback saw of the current answer. */
typedef struct head_info {
  long status;
  char task[128];
  char etag[128];
  char content_range[128];
} head_info;

/* ---- connection ------------------------------------------------------- */

cli_conn *cli_conn_new(const cli_conn_opts *o, char *err, size_t errlen) {
  static int curl_ready;
  if (!curl_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      snprintf(err, errlen, "libcurl cannot start");
      return NULL;
    }
    curl_ready = 1;
  }
  cli_conn *c = calloc(1, sizeof(*c));
  if (!c) goto oom;
  size_t ul = strlen(o->url);
  while (ul > 0 && o->url[ul - 1] == '/') ul--; /* "http://h:8080/" -> "http://h:8080" */
  c->shown = strndup(o->url, ul);
  int unix_socket = strncmp(o->url, "unix:", 5) == 0;
  /* a Unix socket: HTTP to "localhost" over the socket at the path */
  c->base = unix_socket ? strdup("http://localhost") : strndup(o->url, ul);
  c->h = curl_easy_init();
  if (!c->shown || !c->base || !c->h) goto oom;
  if (unix_socket) {
    const char *path = o->url + 5;
    if (path[0] != '/' || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
      snprintf(err, errlen, "%s: a Unix socket's path must be absolute and at most %zu bytes",
               o->url, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
      cli_conn_free(c);
      return NULL;
    }
    if (curl_easy_setopt(c->h, CURLOPT_UNIX_SOCKET_PATH, path) != CURLE_OK) goto oom;
  }
  if (o->token && *o->token) {
    size_t tl = strlen(o->token) + sizeof("x-lab-token: ");
    if (!(c->token_header = malloc(tl))) goto oom;
    snprintf(c->token_header, tl, "x-lab-token: %s", o->token);
  }
  /* the in-memory cookie jar: a load balancer's stickiness cookie is kept
   * and sent back for as long as the handle lives */
  curl_easy_setopt(c->h, CURLOPT_COOKIEFILE, "");
  c->verbose = o->verbose;
  return c;
oom:
  cli_conn_free(c);
  snprintf(err, errlen, "out of memory");
  return NULL;
}

void cli_conn_free(cli_conn *c) {
  if (!c) return;
  if (c->h) curl_easy_cleanup(c->h);
  free(c->base);
  free(c->shown);
  if (c->token_header) {
    explicit_bzero(c->token_header, strlen(c->token_header));
    free(c->token_header);
  }
  free(c);
}

void cli_conn_set_progress(cli_conn *c, cli_transfer_fn fn, void *ctx) {
  c->progress = fn;
  c->progress_ctx = ctx;
}

static int on_xferinfo(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
  (void)ultotal;
  (void)ulnow;
  cli_conn *c = arg;
  uint64_t now = dlnow > 0 ? (uint64_t)dlnow : 0, total = dltotal > 0 ? (uint64_t)dltotal : 0;
  c->progress(c->progress_ctx, c->progress_base + now, total ? c->progress_base + total : 0);
  return 0; /* never aborts the transfer */
}

void cli_answer_free(cli_answer *a) {
  json_decref(a->json);
  free(a->body);
  memset(a, 0, sizeof(*a));
}

/* Copy a header's value (trimmed) into out if the line is "name: value". */
static int header_value(const char *line, size_t n, const char *name, char *out, size_t outn) {
  size_t k = strlen(name);
  if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':') return 0;
  const char *v = line + k + 1, *end = line + n;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
    end--;
  snprintf(out, outn, "%.*s", (int)(end - v), v);
  return 1;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *arg) {
  head_info *hi = arg;
  size_t n = size * nitems;
  if (n > 5 && strncmp(line, "HTTP/", 5) == 0) { /* a new answer (also after 100) */
    memset(hi, 0, sizeof(*hi));
    const char *sp = memchr(line, ' ', n);
    if (sp && (size_t)(sp - line) + 4 <= n) {
      char code[4] = {sp[1], sp[2], sp[3], '\0'};
      uint64_t v;
      if (pl__parse_u64(code, &v) == 0) hi->status = (long)v;
    }
    return n;
  }
  if (!header_value(line, n, "x-lab-task", hi->task, sizeof(hi->task)) &&
      !header_value(line, n, "etag", hi->etag, sizeof(hi->etag)))
    header_value(line, n, "content-range", hi->content_range, sizeof(hi->content_range));
  return n;
}

/* A growable body with a bound. */
typedef struct membuf {
  char *p;
  size_t len, cap, max;
  int overflow;
} membuf;

static int membuf_add(membuf *b, const void *p, size_t n) {
  if (b->len + n > b->max) {
    b->overflow = 1;
    return -1;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) return -1;
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = '\0';
  return 0;
}

static size_t on_body(char *p, size_t size, size_t nitems, void *arg) {
  size_t n = size * nitems;
  return membuf_add(arg, p, n) == 0 ? n : 0;
}

/* Reset the handle to the options every request shares. */
static struct curl_slist *setup(cli_conn *c, const char *path, const char *extra_header,
                                const char *extra_header2, head_info *hi) {
  /* The handle keeps its options between requests (no curl_easy_reset):
   * every option a request varies is set by each request. */
  char url[8192];
  snprintf(url, sizeof(url), "%s%s", c->base, path);
  /* "Accept" is sent anyway: the list is never empty, so NULL means out of memory */
  struct curl_slist *hl =
      curl_slist_append(NULL, c->token_header ? c->token_header : "Accept: */*");
  if (hl && extra_header) {
    struct curl_slist *t = curl_slist_append(hl, extra_header);
    if (!t) {
      curl_slist_free_all(hl);
      return NULL;
    }
    hl = t;
  }
  if (hl && extra_header2) {
    struct curl_slist *t = curl_slist_append(hl, extra_header2);
    if (!t) {
      curl_slist_free_all(hl);
      return NULL;
    }
    hl = t;
  }
  if (!hl) return NULL;
  c->curl_err[0] = '\0';
  memset(hi, 0, sizeof(*hi));
  curl_easy_setopt(c->h, CURLOPT_URL, url);
  curl_easy_setopt(c->h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(c->h, CURLOPT_USERAGENT, "proflab/" PROFLAB_VERSION);
  curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, c->curl_err);
  curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c->h, CURLOPT_HEADERDATA, hi);
  c->progress_base = 0;
  if (c->progress) {
    curl_easy_setopt(c->h, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
    curl_easy_setopt(c->h, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(c->h, CURLOPT_NOPROGRESS, 0L);
  } else {
    curl_easy_setopt(c->h, CURLOPT_NOPROGRESS, 1L);
  }
  return hl;
}

static void curl_reason(cli_conn *c, CURLcode rc, char *err, size_t errlen) {
  snprintf(err, errlen, "%s: %s", c->shown, c->curl_err[0] ? c->curl_err : curl_easy_strerror(rc));
}

int cli_call(cli_conn *c, const char *method, const char *path, long timeout_s, cli_answer *out,
             char *err, size_t errlen) {
  memset(out, 0, sizeof(*out));
  head_info hi;
  struct curl_slist *hl = setup(c, path, NULL, NULL, &hi);
  if (!hl) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  membuf body = {.max = MAX_JSON_BODY};
  if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(c->h, CURLOPT_POST, 1L);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE, 0L);
  } else {
    curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
  }
  curl_easy_setopt(c->h, CURLOPT_TIMEOUT, timeout_s);
  curl_easy_setopt(c->h, CURLOPT_LOW_SPEED_LIMIT, 0L);
  curl_easy_setopt(c->h, CURLOPT_LOW_SPEED_TIME, 0L);
  curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(c->h);
  curl_slist_free_all(hl);
  if (rc != CURLE_OK) {
    if (body.overflow)
      snprintf(err, errlen, "%s: the answer is larger than %d MiB", c->shown, MAX_JSON_BODY >> 20);
    else
      curl_reason(c, rc, err, errlen);
    free(body.p);
    return -1;
  }
  out->status = hi.status;
  snprintf(out->task, sizeof(out->task), "%s", hi.task);
  out->body = body.p ? body.p : strdup("");
  out->body_len = body.len;
  if (!out->body) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  out->json = json_loadb(out->body, out->body_len, 0, NULL);
  return 0;
}

static void reason_from(long status, const char *task, const char *body, size_t len, char *out,
                        size_t n) {
  json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
  const char *msg = NULL, *code = NULL;
  json_t *e = j ? json_object_get(j, "error") : NULL;
  if (e) {
    msg = json_string_value(json_object_get(e, "message"));
    code = json_string_value(json_object_get(e, "code"));
  }
  if (msg)
    snprintf(out, n, "%s (HTTP %ld %s, task %s)", msg, status, code ? code : "error",
             *task ? task : "unknown");
  else
    snprintf(out, n, "HTTP %ld from %s (not a lab answer: is the URL right and the lab on?)",
             status, *task ? task : "a server without x-lab-task");
  json_decref(j);
}

void cli_answer_reason(const cli_answer *a, char *out, size_t n) {
  reason_from(a->status, a->task, a->body, a->body_len, out, n);
}

/* ---- download ---------------------------------------------------------- */

typedef struct dl_state {
  int fd;
  uint64_t have;    /* bytes in the temporary file that came from the right task */
  const char *want; /* task, or NULL for any */
  head_info hi;
  int decided;  /* the body's fate is settled (first write call) */
  int accept;   /* the body goes into the file */
  uint64_t got; /* body bytes written by this request */
  int io_errno;
  membuf errbody; /* a refused answer's body, for its message */
} dl_state;

static int task_ok(const dl_state *d) { return !d->want || strcmp(d->hi.task, d->want) == 0; }

/* Parse "bytes A-B/SIZE"; the start A, or -1. */
static int64_t range_start(const char *cr) {
  if (strncasecmp(cr, "bytes ", 6) != 0) return -1;
  const char *p = cr + 6, *dash = strchr(p, '-');
  uint64_t a;
  if (!dash || pl__parse_u64n(p, (size_t)(dash - p), &a) != 0 || a > INT64_MAX) return -1;
  return (int64_t)a;
}

static size_t on_download_body(char *p, size_t size, size_t nitems, void *arg) {
  dl_state *d = arg;
  size_t n = size * nitems;
  if (!d->decided) {
    d->decided = 1;
    long st = d->hi.status;
    if ((st == 200 || st == 206) && task_ok(d)) {
      uint64_t at = 0;
      if (st == 206) {
        int64_t a = range_start(d->hi.content_range);
        if (a < 0 || (uint64_t)a != d->have) return 0; /* not the part we asked for */
        at = (uint64_t)a;
      } else if (ftruncate(d->fd, 0) != 0) {
        d->io_errno = errno;
        return 0;
      }
      if (lseek(d->fd, (off_t)at, SEEK_SET) < 0) {
        d->io_errno = errno;
        return 0;
      }
      d->have = at;
      d->accept = 1;
    }
  }
  if (!d->accept) {
    membuf_add(&d->errbody, p, n); /* keep the start of it */
    return n;
  }
  int rc = pl__write_all(d->fd, p, n);
  if (rc) {
    d->io_errno = -rc;
    return 0;
  }
  d->got += n;
  return n;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int fsync_dir_of(const char *path) {
  char copy[4096];
  snprintf(copy, sizeof(copy), "%s", path);
  int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return -errno;
  int rc = fsync(dfd) == 0 ? 0 : -errno;
  close(dfd);
  return rc;
}

static void export_hint(const cli_download_opts *o, char *out, size_t n) {
  if (o->task && *o->task)
    snprintf(out, n, "; get it with `proflab export --task %s %s %s`", o->task, o->name, o->dest);
  else
    snprintf(out, n, "; `proflab export` gets it through the container's exec channel");
}

int cli_download(cli_conn *c, const cli_download_opts *o, cli_download_result *res, char *err,
                 size_t errlen) {
  memset(res, 0, sizeof(*res));
  char hint[1024];
  export_hint(o, hint, sizeof(hint));
  if (!pl__artifact_name_valid(o->name)) {
    snprintf(err, errlen, "'%.80s' is not an artifact name", o->name);
    return -1;
  }
  char tmp[4096];
  if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX.part", o->dest) >= (int)sizeof(tmp)) {
    snprintf(err, errlen, "output path too long");
    return -1;
  }
  dl_state d = {.want = o->task && *o->task ? o->task : NULL};
  d.fd = mkostemps(tmp, 5, O_CLOEXEC);
  if (d.fd < 0) {
    snprintf(err, errlen, "cannot create a file next to %s: %s", o->dest, strerror(errno));
    return -1;
  }
  char path[512], range[64], if_range[160];
  snprintf(path, sizeof(path), "/api/lab/artifacts/%s", o->name);
  char etag[128] = "";
  unsigned wait_ms = o->backoff_ms ? o->backoff_ms : 100;
  unsigned attempts = o->attempts ? o->attempts : 1;
  int done = 0;
  char last[512] = "no answer";
  while (!done && res->attempts < attempts) {
    if (res->attempts > 0 && !(d.accept && d.got > 0)) { /* no progress last time: back off */
      sleep_ms(wait_ms);
      wait_ms = wait_ms * 2 > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : wait_ms * 2;
    }
    res->attempts++;
    const char *h1 = NULL, *h2 = NULL;
    if (d.have > 0 && etag[0]) {
      snprintf(range, sizeof(range), "Range: bytes=%llu-", (unsigned long long)d.have);
      snprintf(if_range, sizeof(if_range), "If-Range: %s", etag);
      h1 = range;
      h2 = if_range;
      res->resumed++;
    }
    struct curl_slist *hl = setup(c, path, h1, h2, &d.hi);
    if (!hl) {
      snprintf(err, errlen, "out of memory");
      goto fail;
    }
    if (h1) c->progress_base = d.have; /* a Range request continues the file */
    d.decided = d.accept = 0;
    d.got = 0;
    d.errbody.len = 0;
    d.errbody.max = MAX_ERROR_BODY;
    d.errbody.overflow = 0;
    curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_download_body);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &d);
    /* no total timeout (files can be large): give up on a stalled transfer */
    curl_easy_setopt(c->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c->h, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 0L);
    CURLcode rc = curl_easy_perform(c->h);
    curl_slist_free_all(hl);
    if (d.io_errno) {
      snprintf(err, errlen, "cannot write next to %s: %s", o->dest, strerror(d.io_errno));
      goto fail;
    }
    long st = d.hi.status;
    if (d.accept) {
      d.have += d.got;
      snprintf(etag, sizeof(etag), "%s", d.hi.etag);
      snprintf(res->task, sizeof(res->task), "%s", d.hi.task);
      if (rc == CURLE_OK) {
        done = 1;
        break;
      }
      snprintf(last, sizeof(last), "cut after %llu bytes from task %s: %s",
               (unsigned long long)d.have, d.hi.task,
               c->curl_err[0] ? c->curl_err : curl_easy_strerror(rc));
      if (c->verbose) {
        cli_progress_clear_current();
        fprintf(stderr, "proflab: %s; resuming\n", last);
      }
      continue;
    }
    if (rc != CURLE_OK && st == 0) { /* no answer at all */
      curl_reason(c, rc, last, sizeof(last));
      if (c->verbose) {
        cli_progress_clear_current();
        fprintf(stderr, "proflab: %s; retrying\n", last);
      }
      continue;
    }
    reason_from(st, d.hi.task, d.errbody.p, d.errbody.len, last, sizeof(last));
    if (d.want && strcmp(d.hi.task, d.want) != 0 && (st == 404 || st == 200 || st == 206)) {
      res->wrong_task++;
      snprintf(last, sizeof(last), "answers came from task %s, not %s", d.hi.task, d.want);
      if (c->verbose) {
        cli_progress_clear_current();
        fprintf(stderr, "proflab: answer from task %s, want %s; retrying\n", d.hi.task, d.want);
      }
      continue;
    }
    if (st == 416 && d.have > 0) { /* the file is not what we resumed: start over */
      d.have = 0;
      etag[0] = '\0';
      continue;
    }
    if (st >= 500 || st == 429 || st == 408) continue;
    snprintf(err, errlen, "cannot download %s: %s%s", o->name, last, st == 404 ? hint : "");
    goto fail;
  }
  if (!done) {
    snprintf(err, errlen, "gave up on %s after %u attempts (%s)%s", o->name, res->attempts, last,
             hint);
    goto fail;
  }
  if (fsync(d.fd) != 0 || lseek(d.fd, 0, SEEK_SET) != 0) {
    snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    goto fail;
  }
  int hrc = pl__artifact_sha256_fd(d.fd, res->sha256, &res->bytes);
  if (hrc) {
    snprintf(err, errlen, "cannot read back %s: %s", tmp, strerror(-hrc));
    goto fail;
  }
  if (o->sha256 && *o->sha256 && strcasecmp(o->sha256, res->sha256) != 0) {
    snprintf(err, errlen, "%s from task %s has sha256 %s, the lab said %s: not written to %s%s",
             o->name, res->task, res->sha256, o->sha256, o->dest, hint);
    goto fail;
  }
  if (close(d.fd) != 0) {
    d.fd = -1;
    snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    goto fail;
  }
  d.fd = -1;
  if (rename(tmp, o->dest) != 0) {
    snprintf(err, errlen, "cannot rename to %s: %s", o->dest, strerror(errno));
    goto fail;
  }
  fsync_dir_of(o->dest); /* best effort: the file itself is already durable */
  free(d.errbody.p);
  return 0;
fail:
  if (d.fd >= 0) close(d.fd);
  unlink(tmp);
  free(d.errbody.p);
  return -1;
}
