/* Query-parameter validation with messages a person can act on. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "proflab/server.h"

static void describe(const pl_param_spec *sp, char *out, size_t n) {
  if (sp->kind == PL_PARAM_TEXT) {
    snprintf(out, n, "%s", sp->bound ? sp->bound : "text");
  } else if (sp->kind == PL_PARAM_ENUM) {
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; sp->choices && sp->choices[i]; i++) {
      int w = snprintf(out + off, n - off, "%s%s", i ? "|" : "one of ", sp->choices[i]);
      if (w < 0 || (size_t)w >= n - off) break;
      off += (size_t)w;
    }
  } else if (sp->bound) {
    snprintf(out, n, "a whole number from %llu to %llu (%s)", (unsigned long long)sp->min,
             (unsigned long long)sp->max, sp->bound);
  } else {
    snprintf(out, n, "a whole number from %llu to %llu", (unsigned long long)sp->min,
             (unsigned long long)sp->max);
  }
}

/* A well-formed integer: optional '-', then digits. */
static int is_integer_text(const char *v) {
  if (*v == '-') v++;
  if (!*v) return 0;
  for (; *v; v++)
    if (*v < '0' || *v > '9') return 0;
  return 1;
}

int pl_request_params(pl_request *r, const pl_param_spec *specs, size_t n, uint64_t *values) {
  char allowed[256];
  unsigned char seen[32] = {0};
  if (n > sizeof(seen)) n = sizeof(seen);
  size_t q = pl_request_query_count(r);
  for (size_t i = 0; i < q; i++) {
    const char *k, *v;
    pl_request_query_at(r, i, &k, &v);
    size_t s;
    for (s = 0; s < n; s++)
      if (strcmp(k, specs[s].name) == 0) break;
    if (s == n) {
      size_t off = 0;
      allowed[0] = '\0';
      for (size_t t = 0; t < n; t++) {
        int w =
            snprintf(allowed + off, sizeof(allowed) - off, "%s%s", t ? ", " : "", specs[t].name);
        if (w < 0 || (size_t)w >= sizeof(allowed) - off) break;
        off += (size_t)w;
      }
      if (n == 0)
        pl_respond_error(r, 400, "bad_parameter",
                         "unknown parameter '%.64s': this endpoint takes none", k);
      else
        pl_respond_error(r, 400, "bad_parameter", "unknown parameter '%.64s'; allowed: %s", k,
                         allowed);
      return -EINVAL;
    }
    const pl_param_spec *sp = &specs[s];
    describe(sp, allowed, sizeof(allowed));
    if (seen[s]) {
      pl_respond_error(r, 400, "bad_parameter",
                       "parameter '%s' is given more than once; give it once, %s", sp->name,
                       allowed);
      return -EINVAL;
    }
    seen[s] = 1;
    if (!v || !*v) {
      pl_respond_error(r, 400, "bad_parameter", "parameter '%s' is empty; it must be %s", sp->name,
                       allowed);
      return -EINVAL;
    }
    if (sp->kind == PL_PARAM_ENUM) {
      size_t c;
      for (c = 0; sp->choices && sp->choices[c]; c++)
        if (strcmp(v, sp->choices[c]) == 0) break;
      if (!sp->choices || !sp->choices[c]) {
        pl_respond_error(r, 400, "bad_parameter", "parameter '%s' is '%.64s'; it must be %s",
                         sp->name, v, allowed);
        return -EINVAL;
      }
      values[s] = c;
      continue;
    }
    if (sp->kind == PL_PARAM_TEXT) { /* the caller reads and checks it */
      values[s] = (uint64_t)(uintptr_t)v;
      continue;
    }
    if (!is_integer_text(v)) {
      pl_respond_error(r, 400, "bad_parameter",
                       "parameter '%s' is '%.64s', not a number; it must be %s", sp->name, v,
                       allowed);
      return -EINVAL;
    }
    uint64_t x;
    int rc = v[0] == '-' ? -ERANGE : pl__parse_u64(v, &x);
    if (rc != 0 || x < sp->min || x > sp->max) {
      pl_respond_error(r, 422, "out_of_range", "parameter '%s' is %.64s; it must be %s", sp->name,
                       v, allowed);
      return -EINVAL;
    }
    values[s] = x;
  }
  for (size_t s = 0; s < n; s++) {
    if (seen[s]) continue;
    if (specs[s].required) {
      describe(&specs[s], allowed, sizeof(allowed));
      pl_respond_error(r, 400, "bad_parameter", "parameter '%s' is required; it must be %s",
                       specs[s].name, allowed);
      return -EINVAL;
    }
    values[s] = specs[s].def;
  }
  return 0;
}
