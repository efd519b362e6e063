/* GET /api/lab/artifacts (the list, with SHA-256s) and
 * GET|HEAD /api/lab/artifacts/<name> (the file, with Range/If-Range/ETag).
 *
 * Listing hashes files in libuv's thread pool; hashes are cached by
 * (name, size, mtime) so a listing reads a file once. Downloads are
 * answered with the open file: libmicrohttpd sends it with sendfile(2) on
 * the non-blocking socket a slice at a time, so the loop keeps serving
 * other requests during a large download. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "lab/answer.h"
#include "proflab/log.h"

#define ARTIFACTS_PREFIX "/api/lab/artifacts/"

enum {
  HASH_CACHE_MAX = 256, /* entries; beyond, the least recently used is replaced */
  LIST_MAX = 256,       /* artifacts in one listing */
};

typedef struct hash_entry {
  char name[256];
  uint64_t bytes;
  uint64_t mtime_ns;
  uint64_t used; /* LRU tick; 0 = free slot */
  char sha256[65];
} hash_entry;

struct pl__lab_artifacts {
  pthread_mutex_t lock; /* guards the cache: the loop thread and the pool use it */
  uint64_t tick;
  hash_entry cache[HASH_CACHE_MAX];
};

typedef struct list_job {
  pl_lab *lab;
  pl_request *req;
  uv_work_t work;
  pl__artifact *items;
  int n;
  int rc;
  unsigned hashed; /* files read by this listing (cache misses) */
} list_job;

int pl__lab_artifacts_init(pl_lab *lab) {
  struct pl__lab_artifacts *a = calloc(1, sizeof(*a));
  if (!a) return -ENOMEM;
  int rc = pthread_mutex_init(&a->lock, NULL);
  if (rc) {
    free(a);
    return -rc;
  }
  lab->artifacts = a;
  return 0;
}

void pl__lab_artifacts_free(pl_lab *lab) {
  if (!lab->artifacts) return;
  pthread_mutex_destroy(&lab->artifacts->lock);
  free(lab->artifacts);
  lab->artifacts = NULL;
}

/* ---- the hash cache ---------------------------------------------------- */

/* Copy the cached hash of (name, bytes, mtime) into out; 1 if found. */
static int cache_get(struct pl__lab_artifacts *a, const char *name, uint64_t bytes,
                     uint64_t mtime_ns, char out[65]) {
  int found = 0;
  pthread_mutex_lock(&a->lock);
  for (size_t i = 0; i < HASH_CACHE_MAX; i++) {
    hash_entry *e = &a->cache[i];
    if (e->used && e->bytes == bytes && e->mtime_ns == mtime_ns && strcmp(e->name, name) == 0) {
      e->used = ++a->tick;
      memcpy(out, e->sha256, 65);
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&a->lock);
  return found;
}

static void cache_put(struct pl__lab_artifacts *a, const char *name, uint64_t bytes,
                      uint64_t mtime_ns, const char sha256[65]) {
  pthread_mutex_lock(&a->lock);
  hash_entry *slot = &a->cache[0];
  for (size_t i = 0; i < HASH_CACHE_MAX; i++) {
    hash_entry *e = &a->cache[i];
    if (e->used && strcmp(e->name, name) == 0) {
      slot = e;
      break;
    }                                   /* a stale entry */
    if (e->used < slot->used) slot = e; /* a free slot (0) or the least recently used */
  }
  snprintf(slot->name, sizeof(slot->name), "%s", name);
  slot->bytes = bytes;
  slot->mtime_ns = mtime_ns;
  memcpy(slot->sha256, sha256, 65);
  slot->used = ++a->tick;
  pthread_mutex_unlock(&a->lock);
}

static uint64_t mtime_ns_of(const struct stat *st) {
  return (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
}

/* Thread pool: hash what the cache does not know. Returns 0, or -ENOENT
 * when the file went away (pruned) since it was listed. */
static int hash_item(list_job *job, pl__artifact *it) {
  struct pl__lab_artifacts *a = job->lab->artifacts;
  if (cache_get(a, it->name, it->bytes, it->created_wall_ns, it->sha256)) return 0;
  struct stat st;
  int fd = pl__artifact_open(&job->lab->store, it->name, &st);
  if (fd < 0) return fd;
  uint64_t n = 0;
  int rc = pl__artifact_sha256_fd(fd, it->sha256, &n);
  struct stat after;
  if (!rc && fstat(fd, &after) != 0) rc = -errno;
  close(fd);
  if (rc) return rc;
  job->hashed++;
  it->bytes = n;
  it->created_wall_ns = mtime_ns_of(&st);
  /* cache only what did not change while it was read */
  if ((uint64_t)after.st_size == n && (uint64_t)st.st_size == n &&
      mtime_ns_of(&after) == mtime_ns_of(&st))
    cache_put(a, it->name, n, mtime_ns_of(&st), it->sha256);
  return 0;
}

static void work_list(uv_work_t *w) {
  list_job *job = w->data;
  int n = pl__artifact_list(&job->lab->store, job->items, LIST_MAX);
  if (n < 0) {
    job->rc = n;
    return;
  }
  int kept = 0;
  for (int i = 0; i < n; i++) {
    int rc = hash_item(job, &job->items[i]);
    if (rc == -ENOENT) continue;            /* pruned meanwhile: not listed */
    if (rc) job->items[i].sha256[0] = '\0'; /* unreadable: listed without a hash */
    if (kept != i) job->items[kept] = job->items[i];
    kept++;
  }
  job->n = kept;
}

static void after_list(uv_work_t *w, int status) {
  list_job *job = w->data;
  pl_lab *lab = job->lab;
  pl_request *r = job->req;
  if (status == UV_ECANCELED && !job->rc) job->rc = -ECANCELED;
  if (job->rc) {
    pl_respond_error(r, 500, "list_failed", "cannot list the artifact directory %s: %s",
                     lab->store.dir, strerror(-job->rc));
    goto out;
  }
  pl_json *lj = pl_request_log_fields(r);
  pl_json_kv_str(lj, "action", "artifacts");
  pl_json_kv_int(lj, "count", job->n);
  pl_json_kv_uint(lj, "hashed", job->hashed);
  pl_buf b;
  pl_json j;
  pl__lab_answer_open(lab, &b, &j);
  pl_json_kv_str(&j, "dir", lab->store.dir);
  pl_json_kv_int(&j, "count", job->n);
  pl_json_kv_bool(&j, "truncated", job->n >= LIST_MAX);
  pl_json_key(&j, "artifacts");
  pl_json_arr_open(&j);
  for (int i = 0; i < job->n; i++) {
    const pl__artifact *it = &job->items[i];
    char created[40];
    pl__format_iso8601(it->created_wall_ns, created, sizeof(created));
    pl_json_obj_open(&j);
    pl_json_kv_str(&j, "name", it->name);
    pl_json_kv_uint(&j, "bytes", it->bytes);
    if (it->sha256[0])
      pl_json_kv_str(&j, "sha256", it->sha256);
    else {
      pl_json_key(&j, "sha256");
      pl_json_null(&j);
    }
    pl_json_kv_str(&j, "created", created);
    pl_json_kv_str(&j, "kind", pl__artifact_kind(it->name));
    pl_json_kv_str(&j, "task", lab->cfg.task);
    pl_json_obj_close(&j);
  }
  pl_json_arr_close(&j);
  pl_json_obj_close(&j);
  pl_respond_json(r, 200, &b);
out:
  free(job->items);
  free(job);
}

static void on_artifacts_list(pl_request *r, void *arg) {
  pl_lab *lab = arg;
  if (pl__lab_guard(lab, r)) return;
  if (pl_request_params(r, NULL, 0, NULL)) return;
  list_job *job = calloc(1, sizeof(*job));
  pl__artifact *items = job ? malloc(LIST_MAX * sizeof(*items)) : NULL;
  if (!job || !items) {
    free(job);
    free(items);
    pl_respond_error(r, 503, "out_of_memory", "no memory to list artifacts");
    return;
  }
  job->lab = lab;
  job->req = r;
  job->items = items;
  job->work.data = job;
  int rc = uv_queue_work(lab->loop, &job->work, work_list, after_list);
  if (rc) {
    job->rc = -ENOMEM;
    after_list(&job->work, 0);
  }
  /* no answer yet: the server suspends the request until after_list */
}

/* ---- download ---------------------------------------------------------- */

enum { RANGE_NONE, RANGE_OK, RANGE_UNSATISFIABLE };

/* One "bytes=" range against a file of size bytes (RFC 9110 14.1.2).
 * RANGE_NONE means "send the whole file": no Range, a malformed one (which
 * RFC 9110 says to ignore), or several ranges (answered in full rather than
 * as multipart/byteranges). */
static int parse_range(const char *h, uint64_t size, uint64_t *start, uint64_t *len) {
  if (!h) return RANGE_NONE;
  while (*h == ' ' || *h == '\t') h++;
  if (strncasecmp(h, "bytes", 5) != 0) return RANGE_NONE;
  h += 5;
  while (*h == ' ' || *h == '\t') h++;
  if (*h != '=') return RANGE_NONE;
  h++;
  while (*h == ' ' || *h == '\t') h++;
  if (strchr(h, ',')) return RANGE_NONE;
  const char *dash = strchr(h, '-');
  if (!dash) return RANGE_NONE;
  const char *end = dash + 1;
  while (*end && *end != ' ' && *end != '\t') end++;
  for (const char *t = end; *t; t++)
    if (*t != ' ' && *t != '\t') return RANGE_NONE;
  uint64_t a = 0, b = 0;
  int has_a = dash > h, has_b = end > dash + 1;
  if (has_a && pl__parse_u64n(h, (size_t)(dash - h), &a) != 0) return RANGE_NONE;
  if (has_b && pl__parse_u64n(dash + 1, (size_t)(end - dash - 1), &b) != 0) return RANGE_NONE;
  if (!has_a && !has_b) return RANGE_NONE;
  if (!has_a) { /* suffix: the last b bytes */
    if (b == 0 || size == 0) return RANGE_UNSATISFIABLE;
    *start = b >= size ? 0 : size - b;
    *len = size - *start;
    return RANGE_OK;
  }
  if (has_b && b < a) return RANGE_NONE; /* invalid: ignored */
  if (a >= size) return RANGE_UNSATISFIABLE;
  uint64_t last = has_b && b < size - 1 ? b : size - 1;
  *start = a;
  *len = last - a + 1;
  return RANGE_OK;
}

/* Strong ETag from the file's identity (inode, size, mtime in ns).
 * Artifacts are written once under a new name and never modified in
 * place, so these change exactly when the bytes do; unlike a content hash
 * the tag costs no read of the file before the first byte is sent. */
static void make_etag(const struct stat *st, char *out, size_t n) {
  snprintf(out, n, "\"%llx-%llx-%llx\"", (unsigned long long)st->st_ino,
           (unsigned long long)st->st_size, (unsigned long long)mtime_ns_of(st));
}

static void http_date(time_t t, char *out, size_t n) {
  struct tm tm;
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (!gmtime_r(&t, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 || tm.tm_mon > 11) {
    snprintf(out, n, "Thu, 01 Jan 1970 00:00:00 GMT");
    return;
  }
  snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
           months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* If-Range (RFC 9110 13.1.5): the range applies only when the validator
 * matches: our ETag compared strongly (a weak tag never matches), or a date
 * equal to Last-Modified. */
static int if_range_matches(const char *v, const char *etag, const char *last_modified) {
  if (!v) return 1;
  while (*v == ' ' || *v == '\t') v++;
  if (v[0] == '"') return strcmp(v, etag) == 0;
  if (v[0] == 'W' && v[1] == '/') return 0;
  return strcmp(v, last_modified) == 0;
}

static void on_artifact_get(pl_request *r, void *arg) {
  pl_lab *lab = arg;
  if (pl__lab_guard(lab, r)) return;
  if (pl_request_params(r, NULL, 0, NULL)) return;
  const char *path = pl_request_path(r);
  const char *name = path + strlen(ARTIFACTS_PREFIX);
  if (!pl__artifact_name_valid(name)) {
    pl_respond_error(r, 400, "bad_name",
                     "'%.80s%s' is not an artifact name: names look like "
                     "cpu-YYYYMMDDTHHMMSS.mmmZ-<task>.cpuprofile, with no path "
                     "(GET /api/lab/artifacts lists them)",
                     name, strlen(name) > 80 ? "..." : "");
    return;
  }
  pl_json *lj = pl_request_log_fields(r);
  pl_json_kv_str(lj, "artifact", name);
  struct stat st;
  int fd = pl__artifact_open(&lab->store, name, &st);
  if (fd < 0) {
    if (fd == -ENOENT || fd == -ENOTDIR || fd == -EACCES)
      pl_respond_error(r, 404, "not_found",
                       "no artifact %s on task %s (pruned, or written by another task: "
                       "proflab export --task <task> gets it from there)",
                       name, lab->cfg.task);
    else
      pl_respond_error(r, 500, "read_failed", "cannot open artifact %s: %s", name, strerror(-fd));
    return;
  }
  uint64_t size = (uint64_t)st.st_size;
  char etag[80], last_modified[40], disposition[300], range_text[80];
  make_etag(&st, etag, sizeof(etag));
  http_date(st.st_mtim.tv_sec, last_modified, sizeof(last_modified));
  snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s\"", name);
  uint64_t start = 0, len = size;
  int range = parse_range(pl_request_header(r, "Range"), size, &start, &len);
  if (range != RANGE_NONE &&
      !if_range_matches(pl_request_header(r, "If-Range"), etag, last_modified)) {
    range = RANGE_NONE; /* the client's copy is of other bytes: send them all */
    start = 0;
    len = size;
  }
  pl_request_add_header(r, "Accept-Ranges", "bytes");
  pl_request_add_header(r, "ETag", etag);
  pl_request_add_header(r, "Last-Modified", last_modified);
  if (range == RANGE_UNSATISFIABLE) {
    close(fd);
    snprintf(range_text, sizeof(range_text), "bytes */%llu", (unsigned long long)size);
    pl_request_add_header(r, "Content-Range", range_text);
    pl_respond_error(r, 416, "range_not_satisfiable",
                     "the requested range is outside artifact %s, which has %llu bytes", name,
                     (unsigned long long)size);
    return;
  }
  pl_request_add_header(r, "Content-Disposition", disposition);
  unsigned status = 200;
  if (range == RANGE_OK) {
    status = 206;
    snprintf(range_text, sizeof(range_text), "bytes %llu-%llu/%llu", (unsigned long long)start,
             (unsigned long long)(start + len - 1), (unsigned long long)size);
    pl_request_add_header(r, "Content-Range", range_text);
    pl_json_kv_uint(lj, "range_start", start);
  }
  pl_json_kv_uint(lj, "bytes", len);
  pl_respond_fd(r, status, "application/octet-stream", fd, start, len);
}

/* The newest artifacts, for the status answer (names and sizes; no hashes). */
void pl__lab_artifacts_status(pl_lab *lab, pl_json *j) {
  enum { MAX_LISTED = 50 };
  pl_json_key(j, "artifacts");
  pl_json_arr_open(j);
  pl__artifact *list = malloc(MAX_LISTED * sizeof(*list));
  int n = list ? pl__artifact_list(&lab->store, list, MAX_LISTED) : 0;
  for (int i = 0; i < n; i++) {
    char created[40];
    pl__format_iso8601(list[i].created_wall_ns, created, sizeof(created));
    pl_json_obj_open(j);
    pl_json_kv_str(j, "name", list[i].name);
    pl_json_kv_uint(j, "bytes", list[i].bytes);
    pl_json_kv_str(j, "created", created);
    pl_json_kv_str(j, "kind", pl__artifact_kind(list[i].name));
    pl_json_obj_close(j);
  }
  free(list);
  pl_json_arr_close(j);
}

int pl__lab_artifacts_mount(pl_lab *lab, pl_server *server) {
  int rc = pl_server_route(server, PL_GET, "/api/lab/artifacts", 0, on_artifacts_list, lab);
  if (!rc) rc = pl_server_route(server, PL_GET, "/api/lab/artifacts/", 1, on_artifact_get, lab);
  return rc;
}
