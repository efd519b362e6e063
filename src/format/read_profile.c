/* Which profile a file holds, told from its content, and the one reader
 * for it (see readers.h): gzip is undone first; JSON is told apart by its
 * top-level keys, read from the first bytes ahead of the reader; text is
 * folded stacks; anything else is tried as a pprof protobuf. */
#include "format/readers.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/json_reader.h"

#define DETECT_FIRST (64u << 10) /* bytes looked at for JSON keys, then more */
#define DETECT_MAX (16u << 20)

static const char *const kind_names[] = {"unknown",     "cpuprofile", "pprof",       "folded",
                                         "heapprofile", "pprof-heap", "heapsnapshot"};

const char *pl__profile_kind_name(pl__profile_kind k) {
  return (unsigned)k < sizeof(kind_names) / sizeof(*kind_names) ? kind_names[k] : "unknown";
}

int pl__profile_kind_is_cpu(pl__profile_kind k) {
  return k == PL__KIND_CPUPROFILE || k == PL__KIND_PPROF_CPU || k == PL__KIND_FOLDED;
}

void pl__profile_free(pl__profile *p) {
  pl_cpu_profile_free(p->cpu);
  pl_heap_snapshot_free(p->heap);
  pl_heap_graph_free(p->graph);
  p->cpu = NULL;
  p->heap = NULL;
  p->graph = NULL;
}

/* The kind a top-level key names, or UNKNOWN. */
static pl__profile_kind key_kind(const pl__jreader *r) {
  static const char *const cpu[] = {"nodes", "startTime", "endTime", "timeDeltas"};
  static const char *const snap[] = {"snapshot",   "edges",    "strings", "trace_function_infos",
                                     "trace_tree", "locations"};
  for (size_t i = 0; i < sizeof(cpu) / sizeof(*cpu); i++)
    if (pl__jr_is(r, cpu[i])) return PL__KIND_CPUPROFILE;
  for (size_t i = 0; i < sizeof(snap) / sizeof(*snap); i++)
    if (pl__jr_is(r, snap[i])) return PL__KIND_HEAPSNAPSHOT;
  if (pl__jr_is(r, "head")) return PL__KIND_HEAPPROFILE;
  return PL__KIND_UNKNOWN;
}

/* Walks the top-level keys of the JSON in data[0..n): the kind (> 0), 0
 * when nothing decided it, or -errno. `whole`: data is all of the input. */
static int json_kind_in(const unsigned char *data, size_t n, int whole, pl__read_err *err) {
  pl__rsrc mem;
  pl__jreader r;
  pl__rsrc_init_mem(&mem, data, n, err);
  int rc = pl__jr_init(&r, &mem, err);
  if (rc) return rc;
  int t = pl__jr_next(&r);
  if (t == PL__JT_ARR) {
    rc = pl__jr_fail(&r, "a profile (a JSON object; Chrome trace files are not read)");
    goto out;
  }
  if (t >= 0 && t != PL__JT_OBJ) {
    rc = pl__jr_fail(&r, "a profile (a JSON object)");
    goto out;
  }
  int k = t < 0 ? t : 1;
  while (k > 0 && (k = pl__jr_key(&r)) > 0) {
    pl__profile_kind kind = key_kind(&r);
    if (kind != PL__KIND_UNKNOWN) {
      rc = (int)kind;
      goto out;
    }
    if (pl__jr_is(&r, "samples")) { /* numbers in a .cpuprofile, objects in a .heapprofile */
      if ((t = pl__jr_next(&r)) < 0) break;
      if (t != PL__JT_ARR) {
        if ((t = pl__jr_skip(&r)) < 0) break;
        continue;
      }
      int e = pl__jr_elem(&r);
      if (e > 0 && (r.tok == PL__JT_NUM || r.tok == PL__JT_OBJ)) {
        rc = r.tok == PL__JT_NUM ? PL__KIND_CPUPROFILE : PL__KIND_HEAPPROFILE;
        goto out;
      }
      while (e > 0 && (t = pl__jr_skip(&r)) >= 0) e = pl__jr_elem(&r);
      if (r.failed) break;
      continue;
    }
    if ((t = pl__jr_skip_value(&r)) < 0) break;
  }
  if (r.failed) {
    /* a syntax error at the end of what was looked at only means: look further */
    rc = !whole && r.eof && r.failed == -EINVAL ? 0 : r.failed;
  } else if (k == 0 || whole) {
    rc = pl__read_fail(err,
                       "offset 0: expected a CPU profile (\"nodes\"), a heap profile (\"head\") or "
                       "a heap snapshot (\"snapshot\"), found a JSON object without them");
  } else {
    rc = 0;
  }
out:
  pl__jr_free(&r);
  pl__rsrc_free(&mem);
  if (rc == 0 && err) err->msg[0] = '\0';
  return rc;
}

static int json_kind(pl__rsrc *src, pl__read_err *err) {
  for (size_t want = DETECT_FIRST;; want *= 2) {
    const unsigned char *p;
    ssize_t n = pl__rsrc_peek(src, want, &p);
    if (n < 0) return (int)n;
    int whole = (size_t)n < want;
    int rc = json_kind_in(p, (size_t)n, whole, err);
    if (rc != 0) return rc;
    if (want >= DETECT_MAX)
      return pl__read_fail(err,
                           "offset 0: no \"nodes\", \"head\" or \"snapshot\" key in the "
                           "first %u MiB of this JSON: not a profile proflab reads",
                           DETECT_MAX >> 20);
  }
}

/* Text (folded stacks) rather than binary (protobuf): no control bytes
 * other than tab, CR and LF in the first bytes. */
static int looks_text(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') return 0;
  return 1;
}

static int read_src(pl__rsrc *src, pl__profile *out, pl__read_err *err) {
  memset(out, 0, sizeof(*out));
  int rc = pl__rsrc_gunzip(src);
  if (rc < 0) return rc;
  out->gzipped = rc;
  const unsigned char *p;
  ssize_t n = pl__rsrc_peek(src, 4096, &p);
  if (n < 0) return (int)n;
  size_t i = 0;
  if (n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) i = 3;
  while (i < (size_t)n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
  if (i == (size_t)n && n < 4096)
    return pl__read_fail(err, "offset %zd: expected a profile, found %s", n,
                         n ? "only white space" : "an empty file");
  if (i < (size_t)n && (p[i] == '{' || p[i] == '[')) {
    rc = json_kind(src, err);
    if (rc < 0) return rc;
    out->kind = (pl__profile_kind)rc;
    switch (out->kind) {
      case PL__KIND_CPUPROFILE:
        return pl__cpuprofile_read(src, &out->cpu, err);
      case PL__KIND_HEAPPROFILE:
        return pl__heapprofile_read(src, &out->heap, err);
      case PL__KIND_HEAPSNAPSHOT:
        return pl__heapsnapshot_read(src, &out->graph, err);
      default:
        return pl__read_fail(err, "offset 0: not a profile proflab reads");
    }
  }
  if (looks_text(p, (size_t)n)) {
    out->kind = PL__KIND_FOLDED;
    return pl__folded_read(src, &out->cpu, err);
  }
  return pl__pprof_read(src, &out->kind, &out->cpu, &out->heap, err);
}

int pl__read_profile_mem(const void *data, size_t len, pl__profile *out, pl__read_err *err) {
  pl__rsrc src;
  err->msg[0] = '\0';
  pl__rsrc_init_mem(&src, data, len, err);
  int rc = read_src(&src, out, err);
  pl__rsrc_free(&src);
  return rc < 0 ? pl__read_errno(err, rc) : 0;
}

int pl__read_profile(const char *path, int fd, pl__profile *out, pl__read_err *err) {
  return pl__read_profile_ex(path, fd, NULL, out, err);
}

int pl__read_profile_ex(const char *path, int fd, const pl__read_opts *opts, pl__profile *out,
                        pl__read_err *err) {
  err->msg[0] = '\0';
  memset(out, 0, sizeof(*out));
  int own = fd < 0;
  if (own && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) return pl__read_errno(err, -errno);
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    if (own) close(fd);
    return pl__read_fail(err, "a directory, not a profile");
  }
  pl__rsrc src;
  pl__rsrc_init_fd(&src, fd, err);
  if (opts && opts->progress) pl__rsrc_set_progress(&src, opts->progress, opts->progress_ctx);
  int rc = read_src(&src, out, err);
  pl__rsrc_free(&src);
  if (own) close(fd);
  return rc < 0 ? pl__read_errno(err, rc) : 0;
}
