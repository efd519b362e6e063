/* Helpers shared by the writer unit tests (test-format-cpu.c,
 * test-format-heap.c): goldens, JSON and gzip read back, pprof names, and
 * writers under allocation-failure torture (profile_test.h). Each test
 * program includes it once. */
#ifndef PL_TEST_WRITER_TEST_H
#define PL_TEST_WRITER_TEST_H

#include "profile_test.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>
#include <zlib.h>

#include "common/sink.h"
#include "format/profile.pb-c.h"

typedef Perftools__Profiles__Profile pb_profile;

static void golden_path(char *out, size_t n, const char *name) {
  const char *dir = getenv("PROFLAB_GOLDEN_DIR");
  if (dir && *dir) {
    snprintf(out, n, "%s/%s", dir, name);
    return;
  }
  /* __FILE__ is relative to the build directory meson compiles in. */
  const char *f = __FILE__, *slash = strrchr(f, '/');
  int dlen = slash ? (int)(slash - f) : 1;
  snprintf(out, n, "%.*s/../golden/%s", dlen, slash ? f : ".", name);
}

static void print_context(const char *label, const char *d, size_t len, size_t at) {
  size_t from = at > 40 ? at - 40 : 0, to = at + 40 < len ? at + 40 : len;
  fprintf(stderr, "  %s[%zu..%zu): ", label, from, to);
  for (size_t i = from; i < to; i++) {
    unsigned char c = (unsigned char)d[i];
    if (c >= 0x20 && c < 0x7f)
      fputc(c, stderr);
    else
      fprintf(stderr, "\\x%02x", c);
  }
  fputc('\n', stderr);
}

/* Compares bytes with tests/golden/<name>, or rewrites it under
 * PROFLAB_UPDATE_GOLDEN=1. On a mismatch writes <name>.actual in the cwd. */
static void check_golden(const char *name, const char *data, size_t len) {
  char path[4096];
  golden_path(path, sizeof(path), name);
  const char *upd = getenv("PROFLAB_UPDATE_GOLDEN");
  if (upd && strcmp(upd, "1") == 0) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write golden %s: %s", path, strerror(errno));
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    fprintf(stderr, "updated golden %s (%zu bytes)\n", path, len);
    return;
  }
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("golden %s: %s (create it with PROFLAB_UPDATE_GOLDEN=1)", path, strerror(errno));
  char *want = malloc(len + 1);
  assert_non_null(want);
  size_t wlen = fread(want, 1, len + 1, f);
  fclose(f);
  size_t at = 0;
  while (at < len && at < wlen && want[at] == data[at]) at++;
  if (at == len && wlen == len) {
    free(want);
    return;
  }
  char apath[4200];
  snprintf(apath, sizeof(apath), "%s.actual", name);
  FILE *a = fopen(apath, "wb");
  if (a) {
    fwrite(data, 1, len, a);
    fclose(a);
  }
  fprintf(stderr,
          "golden %s differs at byte %zu (golden %s%zu bytes, actual %zu bytes; actual "
          "written to %s)\n",
          path, at, wlen > len ? "more than " : "", wlen, len, apath);
  print_context("golden", want, wlen > len ? len : wlen, at);
  print_context("actual", data, len, at);
  free(want);
  fail_msg("golden mismatch: %s", name);
}

static json_t *parse_json(const char *text, size_t len) {
  json_error_t err;
  json_t *root = json_loadb(text, len, 0, &err);
  if (!root) fail_msg("invalid JSON at line %d col %d: %s", err.line, err.column, err.text);
  return root;
}

static char *gunzip(const char *in, size_t inlen, size_t *outlen) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK); /* gzip only */
  size_t cap = 4096, len = 0;
  char *out = malloc(cap);
  assert_non_null(out);
  z.next_in = (unsigned char *)in;
  z.avail_in = (uInt)inlen;
  int zr;
  do {
    if (cap - len < 4096) {
      cap *= 2;
      out = realloc(out, cap);
      assert_non_null(out);
    }
    z.next_out = (unsigned char *)out + len;
    z.avail_out = (uInt)(cap - len);
    zr = inflate(&z, Z_NO_FLUSH);
    if (zr != Z_OK && zr != Z_STREAM_END) fail_msg("inflate: %d (%s)", zr, z.msg ? z.msg : "");
    len = cap - z.avail_out;
  } while (zr != Z_STREAM_END);
  assert_int_equal(z.avail_in, 0); /* nothing after the gzip member */
  inflateEnd(&z);
  *outlen = len;
  return out;
}

/* ---- pprof read back ----------------------------------------------------- */

static const char *pstr(const pb_profile *pr, int64_t i) {
  assert_true(i >= 0 && (size_t)i < pr->n_string_table);
  return pr->string_table[i];
}

static const Perftools__Profiles__Location *loc_by_id(const pb_profile *pr, uint64_t id) {
  for (size_t i = 0; i < pr->n_location; i++)
    if (pr->location[i]->id == id) return pr->location[i];
  fail_msg("no location %llu", (unsigned long long)id);
  return NULL;
}

static const Perftools__Profiles__Function *func_by_id(const pb_profile *pr, uint64_t id) {
  for (size_t i = 0; i < pr->n_function; i++)
    if (pr->function[i]->id == id) return pr->function[i];
  fail_msg("no function %llu", (unsigned long long)id);
  return NULL;
}

/* Leaf-first function names of a sample, joined by '<'. */
static void sample_names(const pb_profile *pr, const Perftools__Profiles__Sample *s, char *out,
                         size_t n) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t k = 0; k < s->n_location_id; k++) {
    const Perftools__Profiles__Location *l = loc_by_id(pr, s->location_id[k]);
    assert_int_equal(l->n_line, 1);
    const char *name = pstr(pr, func_by_id(pr, l->line[0]->function_id)->name);
    used += (size_t)snprintf(out + used, n - used, "%s%s", k ? "<" : "", name);
  }
}

/* A writer into a sink, run into memory for torture_allocs. */
typedef struct writer_run {
  int (*run)(void *arg, pl__sink *out);
  void *arg;
} writer_run;

static int writer_run_mem(void *arg) {
  writer_run *w = arg;
  pl__sink s;
  pl__sink_init_mem(&s);
  int rc = w->run(w->arg, &s);
  if (rc == 0) rc = pl__sink_finish(&s);
  pl__sink_free(&s);
  return rc;
}

/* Runs `run` (a writer into the sink, returning its result) with every
 * allocation failing in turn: each run must end in -ENOMEM, or 0 once no
 * allocation is left to fail, and free all it allocated. `name` names the
 * writer in messages. Returns how many allocations the writer makes. */
static long torture_writer(const char *name, int (*run)(void *arg, pl__sink *out), void *arg) {
  long n = torture_allocs(name, writer_run_mem, &(writer_run){run, arg}, NULL);
  assert_true(n > 0 || !TORTURE);
  return n;
}

#endif
