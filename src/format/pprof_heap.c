/* pprof heap profile writer (see heap_writers.h and proto/profile.proto).
 *
 * Like Go's runtime/pprof heap profile: four sample types, one Sample per
 * stack with the stack's estimates. Locations, functions, mappings and the
 * encoding come from pprof_common (shared with the CPU writer); pseudo-
 * locations "(unknown)" and "(truncated)" are added only when a sample
 * uses them.
 */
#include "format/heap_writers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/cpu_common.h"
#include "format/heap_common.h"
#include "format/pprof_common.h"

typedef Perftools__Profiles__ValueType pb_value_type;
typedef Perftools__Profiles__Sample pb_sample;
typedef Perftools__Profiles__Label pb_label;

enum { COMMENTS = 5, COMMENT_LEN = 64, NVALUES = 4 };

/* String ids of the fixed strings, interned first ("" is string_table[0]). */
enum {
  S_EMPTY,
  S_ALLOC_OBJECTS,
  S_COUNT,
  S_ALLOC_SPACE,
  S_BYTES,
  S_INUSE_OBJECTS,
  S_INUSE_SPACE,
  S_SPACE,
  S_FIXED
};

typedef struct ph_ctx {
  pl__heap_view v;
  pl__pprof b;
  uint64_t unknown_loc, truncated_loc; /* location ids, 0 when unused */
  pb_sample *samples;
  pb_sample **sample_ptrs;
  size_t nsamples;
  int64_t *values;  /* NVALUES per sample */
  uint64_t *locs;   /* location ids of all samples, leaf first */
  pb_label *labels; /* "bytes", one per sample */
  pb_label **label_ptrs;
  char comments[COMMENTS][COMMENT_LEN];
  int64_t comment_ids[COMMENTS];
} ph_ctx;

static void stack_values(const pl_heap_stack *st, int64_t v[NVALUES]) {
  v[0] = pl__sat_i64(pl__heap_round(st->alloc_objects));
  v[1] = pl__sat_i64(pl__heap_round(st->alloc_bytes));
  v[2] = pl__sat_i64(pl__heap_round(st->inuse_objects));
  v[3] = pl__sat_i64(pl__heap_round(st->inuse_bytes));
}

static int build_samples(ph_ctx *c, int64_t bytes_key) {
  const pl_heap_snapshot *s = c->v.s;
  size_t n = 0, nlocs = 0;
  for (size_t i = 0; i < s->nstacks; i++) {
    const pl_heap_stack *st = &s->stacks[i];
    int64_t v[NVALUES];
    stack_values(st, v);
    if (!v[0] && !v[1] && !v[2] && !v[3]) continue;
    n++;
    if (!st->depth) {
      nlocs++;
      if (!c->unknown_loc) {
        int64_t loc = pl__pprof_add_pseudo(&c->b, PL__HEAP_UNKNOWN);
        if (loc < 0) return (int)loc;
        c->unknown_loc = (uint64_t)loc;
      }
      continue;
    }
    nlocs += st->depth - c->v.first[i];
    if (st->flags & PL_HEAP_STACK_TRUNCATED) {
      nlocs++;
      if (!c->truncated_loc) {
        int64_t loc = pl__pprof_add_pseudo(&c->b, PL__HEAP_TRUNCATED);
        if (loc < 0) return (int)loc;
        c->truncated_loc = (uint64_t)loc;
      }
    }
  }

  c->samples = calloc(n ? n : 1, sizeof(*c->samples));
  c->sample_ptrs = calloc(n ? n : 1, sizeof(*c->sample_ptrs));
  c->values = calloc((n ? n : 1) * NVALUES, sizeof(*c->values));
  c->labels = calloc(n ? n : 1, sizeof(*c->labels));
  c->label_ptrs = calloc(n ? n : 1, sizeof(*c->label_ptrs));
  c->locs = calloc(nlocs ? nlocs : 1, sizeof(*c->locs));
  if (!c->samples || !c->sample_ptrs || !c->values || !c->labels || !c->label_ptrs || !c->locs)
    return -ENOMEM;

  size_t k = 0, pos = 0;
  for (size_t i = 0; i < s->nstacks; i++) {
    const pl_heap_stack *st = &s->stacks[i];
    int64_t vals[NVALUES]; /* not into values[] yet: k may be its end (n) */
    stack_values(st, vals);
    if (!vals[0] && !vals[1] && !vals[2] && !vals[3]) continue;
    int64_t *v = &c->values[k * NVALUES];
    memcpy(v, vals, sizeof(vals));
    pb_sample *ps = &c->samples[k];
    perftools__profiles__sample__init(ps);
    ps->location_id = &c->locs[pos];
    if (!st->depth) {
      c->locs[pos++] = c->unknown_loc;
    } else {
      const uint32_t *fr = c->v.stack_frames[i];
      for (uint32_t d = c->v.first[i]; d < st->depth; d++) c->locs[pos++] = (uint64_t)fr[d] + 1;
      if (st->flags & PL_HEAP_STACK_TRUNCATED) c->locs[pos++] = c->truncated_loc;
    }
    ps->n_location_id = (size_t)(&c->locs[pos] - ps->location_id);
    ps->n_value = NVALUES;
    ps->value = v;
    /* Go's heap profiles label each sample with its block size. */
    pb_label *l = &c->labels[k];
    perftools__profiles__label__init(l);
    l->key = bytes_key;
    l->num = st->alloc_objects > 0
                 ? pl__sat_i64(pl__heap_round(st->alloc_bytes / st->alloc_objects))
                 : 0;
    c->label_ptrs[k] = l;
    ps->n_label = 1;
    ps->label = &c->label_ptrs[k];
    c->sample_ptrs[k++] = ps;
  }
  c->nsamples = k;
  return 0;
}

static int pprof_heap_write(const pl_heap_snapshot *s, pl__sink *out, int gzip) {
  if (!out) return -EINVAL;
  ph_ctx c;
  memset(&c, 0, sizeof(c));
  int rc = pl__heap_view_init(&c.v, s);
  if (rc) return rc;
  pl__pprof_init(&c.b);

  static const char *const fixed[S_FIXED] = {"",      "alloc_objects", "count",       "alloc_space",
                                             "bytes", "inuse_objects", "inuse_space", "space"};
  int64_t ids[S_FIXED];
  for (size_t i = 0; i < S_FIXED; i++) {
    if ((ids[i] = pl__pprof_string(&c.b, fixed[i])) < 0) {
      rc = -ENOMEM;
      goto out;
    }
  }
  const pl_heap_stats *st = &s->stats;
  snprintf(c.comments[0], COMMENT_LEN, "sample_bytes=%llu", (unsigned long long)s->sample_bytes);
  snprintf(c.comments[1], COMMENT_LEN, "samples=%llu", (unsigned long long)st->samples);
  snprintf(c.comments[2], COMMENT_LEN, "live_samples=%llu", (unsigned long long)s->nsamples);
  snprintf(c.comments[3], COMMENT_LEN, "dropped_samples=%llu",
           (unsigned long long)st->dropped_samples);
  snprintf(c.comments[4], COMMENT_LEN, "unknown_stacks=%llu",
           (unsigned long long)st->unknown_stacks);
  for (size_t i = 0; i < COMMENTS; i++) {
    if ((c.comment_ids[i] = pl__pprof_string(&c.b, c.comments[i])) < 0) {
      rc = -ENOMEM;
      goto out;
    }
  }

  if ((rc = pl__pprof_add_frames(&c.b, c.v.frames, c.v.nframes))) goto out;
  if ((rc = build_samples(&c, ids[S_BYTES]))) goto out;

  pb_value_type types[NVALUES], period_type;
  static const int type_ids[NVALUES][2] = {{S_ALLOC_OBJECTS, S_COUNT},
                                           {S_ALLOC_SPACE, S_BYTES},
                                           {S_INUSE_OBJECTS, S_COUNT},
                                           {S_INUSE_SPACE, S_BYTES}};
  pb_value_type *type_ptrs[NVALUES];
  for (int i = 0; i < NVALUES; i++) {
    perftools__profiles__value_type__init(&types[i]);
    types[i].type = ids[type_ids[i][0]];
    types[i].unit = ids[type_ids[i][1]];
    type_ptrs[i] = &types[i];
  }
  perftools__profiles__value_type__init(&period_type);
  period_type.type = ids[S_SPACE];
  period_type.unit = ids[S_BYTES];

  pl__pb_profile prof;
  perftools__profiles__profile__init(&prof);
  prof.n_sample_type = NVALUES;
  prof.sample_type = type_ptrs;
  prof.n_sample = c.nsamples;
  prof.sample = c.sample_ptrs;
  prof.time_nanos = pl__sat_i64(s->wall_ns);
  prof.period_type = &period_type;
  prof.period = pl__sat_i64(s->sample_bytes);
  prof.n_comment = COMMENTS;
  prof.comment = c.comment_ids;
  prof.default_sample_type = ids[S_INUSE_SPACE];

  if ((rc = pl__pprof_finish(&c.b, &prof))) goto out;
  rc = pl__pprof_pack(&prof, out, gzip);

out:
  pl__pprof_free(&c.b);
  free(c.samples);
  free(c.sample_ptrs);
  free(c.values);
  free(c.locs);
  free(c.labels);
  free(c.label_ptrs);
  pl__heap_view_free(&c.v);
  if (rc) return rc;
  return pl__sink_finish(out);
}

int pl__pprof_heap_write(const pl_heap_snapshot *s, pl__sink *out) {
  return pprof_heap_write(s, out, 1);
}

int pl__pprof_heap_write_raw(const pl_heap_snapshot *s, pl__sink *out) {
  return pprof_heap_write(s, out, 0);
}
