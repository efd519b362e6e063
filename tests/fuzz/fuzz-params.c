/* libFuzzer target: query-parameter validation (src/http/params.c) with the
 * lab's real parameter tables (copied from src/lab/: cpu-profile,
 * memory-leak, event-loop-jam, heap-snapshot, and the parameterless
 * artifact endpoints), against a request defined here.
 *
 * Input: byte 0 picks the table, byte 1 a bound (the LAB_MAX_* value the
 * table is built with); the rest is a query string, split as
 * libmicrohttpd hands it to the server: pairs at '&', a key up to the first
 * '=', a value after it (no '=': no value), at most 32 pairs (the server's
 * MAX_QUERY), each a C string (a %00 that MHD decoded ends it).
 *
 * Checks: pl_request_params answers exactly once when it fails (400 or
 * 422, a JSON error body that parses, with code and message) and never
 * when it succeeds; on success every number is within its spec's bounds,
 * every enum value indexes its choices, a text value points at the
 * request's value, absent parameters take their default. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/json_error.h"
#include "proflab/server.h"

#define MAX_Q 32

struct pl_request {
  size_t n;
  const char *k[MAX_Q];
  const char *v[MAX_Q];
  unsigned answers;
  unsigned status;
};

size_t pl_request_query_count(const pl_request *r) { return r->n; }

int pl_request_query_at(const pl_request *r, size_t i, const char **key, const char **value) {
  if (i >= r->n) abort(); /* params.c asks only for what exists */
  *key = r->k[i];
  *value = r->v[i];
  return 0;
}

int pl_respond_error(pl_request *r, unsigned status, const char *code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (status != 400 && status != 422) abort();
  r->answers++;
  r->status = status;
  pl_buf b;
  pl__json_error_body(&b, code, msg);
  if (pl_buf_failed(&b)) abort();
  json_error_t e;
  json_t *j = json_loadb(b.data, b.len, 0, &e);
  if (!j) abort(); /* always valid JSON (and UTF-8), whatever the query's bytes */
  json_t *err = json_object_get(j, "error");
  if (!json_is_string(json_object_get(err, "code")) ||
      !json_is_string(json_object_get(err, "message")))
    abort();
  json_decref(j);
  pl_buf_free(&b);
  return 0;
}

/* The lab's enums (include/proflab/*.h: pl_cpu_format_names, ...). */
static const char *const cpu_formats[] = {"cpuprofile", "pprof", "folded", NULL};
static const char *const modes[] = {"wall", "cpu", NULL};
static const char *const heap_formats[] = {"heapsnapshot", "heapprofile", "pprof", NULL};

static size_t table(unsigned which, uint64_t bound, pl_param_spec *sp) {
  memset(sp, 0, 6 * sizeof(*sp));
  switch (which % 5) {
    case 0: /* POST /api/lab/cpu-profile */
      sp[0] = (pl_param_spec){.name = "seconds",
                              .kind = PL_PARAM_UINT,
                              .min = 1,
                              .max = bound,
                              .def = bound < 5 ? bound : 5,
                              .bound = "LAB_MAX_PROFILE_SECONDS"};
      sp[1] = (pl_param_spec){.name = "format", .kind = PL_PARAM_ENUM, .choices = cpu_formats};
      sp[2] =
          (pl_param_spec){.name = "hz", .kind = PL_PARAM_UINT, .min = 1, .max = 10000, .def = 1000};
      sp[3] = (pl_param_spec){.name = "mode", .kind = PL_PARAM_ENUM, .choices = modes};
      sp[4] = (pl_param_spec){.name = "threads",
                              .kind = PL_PARAM_TEXT,
                              .bound = "'all' or thread ids separated by commas (wall mode)"};
      sp[5] = (pl_param_spec){.name = "offcpu", .kind = PL_PARAM_UINT, .min = 0, .max = 1};
      return 6;
    case 1: /* POST /api/lab/memory-leak */
      sp[0] = (pl_param_spec){.name = "mb",
                              .kind = PL_PARAM_UINT,
                              .required = 1,
                              .min = 1,
                              .max = bound,
                              .bound = "LAB_MAX_LEAK_MB"};
      return 1;
    case 2: /* POST /api/lab/event-loop-jam */
      sp[0] = (pl_param_spec){.name = "ms",
                              .kind = PL_PARAM_UINT,
                              .required = 1,
                              .min = 1,
                              .max = bound,
                              .bound = "LAB_MAX_JAM_MS"};
      return 1;
    case 3: /* POST /api/lab/heap-snapshot */
      sp[0] = (pl_param_spec){.name = "format", .kind = PL_PARAM_ENUM, .choices = heap_formats};
      return 1;
    default: /* GET /api/lab/artifacts[/<name>], status, memory-clear */
      return 0;
  }
}

static size_t nchoices(const char *const *c) {
  size_t n = 0;
  while (c && c[n]) n++;
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  static const uint64_t bounds[] = {0, 1, 5, 60, 1024, 30000, UINT64_MAX - 1, UINT64_MAX};
  unsigned which = data[0];
  uint64_t bound = bounds[data[1] % 8];
  data += 2;
  size -= 2;
  char *q = malloc(size + 1);
  if (!q) return 0;
  memcpy(q, data, size);
  q[size] = '\0';
  pl_request r = {0};
  char *p = q, *end = q + size;
  while (p < end && r.n < MAX_Q) {
    char *amp = memchr(p, '&', (size_t)(end - p));
    if (!amp) amp = end;
    *amp = '\0';
    char *eq = strchr(p, '=');
    if (eq) *eq = '\0';
    r.k[r.n] = p;
    r.v[r.n] = eq ? eq + 1 : NULL;
    r.n++;
    p = amp + 1;
  }
  pl_param_spec sp[6];
  size_t n = table(which, bound, sp);
  uint64_t values[6];
  memset(values, 0xa5, sizeof(values));
  int rc = pl_request_params(&r, sp, n, values);
  if (rc != 0 && rc != -EINVAL) abort();
  if (rc == -EINVAL && r.answers != 1) abort();
  if (rc == 0) {
    if (r.answers) abort();
    for (size_t s = 0; s < n; s++) {
      int given = 0;
      const char *gv = NULL;
      for (size_t i = 0; i < r.n; i++)
        if (strcmp(r.k[i], sp[s].name) == 0) given++, gv = r.v[i];
      if (given > 1) abort(); /* a repeat must be refused */
      if (!given) {
        if (sp[s].required || values[s] != sp[s].def) abort();
        continue;
      }
      if (!gv || !*gv) abort(); /* an empty value must be refused */
      if (sp[s].kind == PL_PARAM_UINT && (values[s] < sp[s].min || values[s] > sp[s].max)) abort();
      if (sp[s].kind == PL_PARAM_ENUM && values[s] >= nchoices(sp[s].choices)) abort();
      if (sp[s].kind == PL_PARAM_TEXT && (const char *)(uintptr_t)values[s] != gv) abort();
    }
    for (size_t i = 0; i < r.n; i++) { /* every given key is known */
      size_t s;
      for (s = 0; s < n; s++)
        if (strcmp(r.k[i], sp[s].name) == 0) break;
      if (s == n) abort();
    }
  }
  free(q);
  return 0;
}
