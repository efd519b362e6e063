/* pprof reader (perftools.profiles.Profile, gzip or raw; see readers.h):
 * decoded whole with the generated protobuf-c code the writers use, then
 * turned into a CPU profile or a heap snapshot by its sample types. When
 * protobuf-c refuses the bytes, a walk over the wire format names the
 * offset of the first field it cannot read. */
#include "format/readers.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/cpu_common.h"
#include "format/hashtab.h"
#include "format/profile.pb-c.h"
#include "format/read_build.h"

#define NONE UINT32_MAX
#define MAX_PPROF ((size_t)1 << 30) /* uncompressed bytes read at most */

typedef Perftools__Profiles__Profile pb_profile;
typedef Perftools__Profiles__Sample pb_sample;
typedef Perftools__Profiles__Location pb_location;
typedef Perftools__Profiles__Function pb_function;
typedef Perftools__Profiles__Mapping pb_mapping;

/* ---- where protobuf-c gave up ------------------------------------------- */

/* A varint at p[*i..n): 0, or -1 when it does not end inside the data. */
static int get_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v) {
  *v = 0;
  for (unsigned shift = 0; shift < 70; shift += 7) {
    if (*i >= n) return -1;
    uint8_t b = p[(*i)++];
    if (shift < 64) *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 0;
  }
  return -1;
}

static int wire_of(const ProtobufCFieldDescriptor *f) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
      return 1;
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
      return 5;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
      return 2;
    default:
      return 0;
  }
}

/* Walks the message in p[0..n) (at stream offset base) against desc:
 * 0 when every field is readable, else -EINVAL with a message. */
static int wire_walk(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t n,
                     uint64_t base, int depth, pl__read_err *err) {
  size_t i = 0;
  while (i < n) {
    size_t at = i;
    uint64_t key, v;
    if (get_varint(p, n, &i, &key))
      return pl__read_fail(err, "offset %" PRIu64 ": expected a field key, found the end of %s",
                           base + at, depth ? "the enclosing field" : "the data (truncated?)");
    unsigned wt = (unsigned)(key & 7);
    uint64_t num = key >> 3;
    if (num == 0 || num > 0x1fffffff)
      return pl__read_fail(err, "offset %" PRIu64 ": expected a field number, found %" PRIu64,
                           base + at, num);
    const ProtobufCFieldDescriptor *f =
        desc ? protobuf_c_message_descriptor_get_field(desc, (unsigned)num) : NULL;
    if (f) {
      int want = wire_of(f);
      int packed = f->label == PROTOBUF_C_LABEL_REPEATED && want != 2 && wt == 2;
      if ((int)wt != want && !packed)
        return pl__read_fail(err,
                             "offset %" PRIu64 ": expected field %" PRIu64
                             " (%s.%s) of wire type %d, "
                             "found wire type %u",
                             base + at, num, desc->short_name, f->name, want, wt);
    }
    switch (wt) {
      case 0:
        if (get_varint(p, n, &i, &v))
          return pl__read_fail(err,
                               "offset %" PRIu64 ": expected a varint for field %" PRIu64
                               ", found the end of the data",
                               base + at, num);
        break;
      case 1:
      case 5: {
        size_t w = wt == 1 ? 8 : 4;
        if (n - i < w)
          return pl__read_fail(
              err, "offset %" PRIu64 ": expected %zu bytes for field %" PRIu64 ", found %zu",
              base + at, w, num, n - i);
        i += w;
        break;
      }
      case 2: {
        if (get_varint(p, n, &i, &v) || v > n - i)
          return pl__read_fail(err,
                               "offset %" PRIu64 ": expected a length for field %" PRIu64
                               " within the data (%zu bytes left), found %s",
                               base + at, num, n - i, v > n - i ? "a longer one" : "none");
        if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < 8) {
          int rc = wire_walk(f->descriptor, p + i, (size_t)v, base + i, depth + 1, err);
          if (rc) return rc;
        }
        i += (size_t)v;
        break;
      }
      default:
        return pl__read_fail(err,
                             "offset %" PRIu64
                             ": expected a field of wire type 0, 1, 2 or 5, "
                             "found wire type %u (field %" PRIu64 ")",
                             base + at, wt, num);
    }
  }
  return 0;
}

/* ---- tables ------------------------------------------------------------- */

typedef struct pp_ctx {
  const pb_profile *pr;
  pl__read_err *err;
  pl__rb b;
  pl__keytab loc_ids, func_ids, map_ids; /* (id low, id high, 0) -> index */
  uint32_t *loc_frames;                  /* frames of each location, innermost first */
  size_t *loc_off;                       /* by location: offset in loc_frames */
  char name[96];
} pp_ctx;

static const char *pstr(pp_ctx *c, int64_t i, const char *what, int *bad) {
  if (i < 0 || (uint64_t)i >= c->pr->n_string_table) {
    if (!*bad)
      pl__read_fail(c->err, "%s: string index %" PRId64 " is out of the string table (%zu strings)",
                    what, i, c->pr->n_string_table);
    *bad = 1;
    return "";
  }
  const char *s = c->pr->string_table[i];
  return s ? s : "";
}

static int index_ids(pp_ctx *c, pl__keytab *t, size_t n,
                     uint64_t (*id_of)(const pb_profile *, size_t), const char *what) {
  for (size_t i = 0; i < n; i++) {
    uint64_t id = id_of(c->pr, i);
    int added;
    if (id == 0) return pl__read_fail(c->err, "%s %zu has id 0 (ids start at 1)", what, i);
    if (pl__keytab_intern(t, (uint32_t)id, (uint32_t)(id >> 32), 0, &added) < 0)
      return pl__read_errno(c->err, -ENOMEM);
    if (!added) return pl__read_fail(c->err, "%s id %" PRIu64 " appears twice", what, id);
  }
  return 0;
}

static uint64_t loc_id(const pb_profile *pr, size_t i) { return pr->location[i]->id; }
static uint64_t func_id(const pb_profile *pr, size_t i) { return pr->function[i]->id; }
static uint64_t map_id(const pb_profile *pr, size_t i) { return pr->mapping[i]->id; }

static int64_t find_id(const pl__keytab *t, uint64_t id) {
  return pl__keytab_find(t, (uint32_t)id, (uint32_t)(id >> 32), 0);
}

static uint32_t clamp_u32(int64_t v) {
  return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* One frame per Line of each Location (inlined functions expanded). */
static int build_locations(pp_ctx *c) {
  const pb_profile *pr = c->pr;
  size_t total = 0;
  for (size_t i = 0; i < pr->n_location; i++)
    total += pr->location[i]->n_line ? pr->location[i]->n_line : 1;
  c->loc_off = malloc((pr->n_location + 1) * sizeof(*c->loc_off));
  c->loc_frames = malloc((total ? total : 1) * sizeof(*c->loc_frames));
  if (!c->loc_off || !c->loc_frames) return pl__read_errno(c->err, -ENOMEM);
  size_t pos = 0;
  int bad = 0;
  for (size_t i = 0; i < pr->n_location; i++) {
    const pb_location *l = pr->location[i];
    c->loc_off[i] = pos;
    const char *module = "";
    const pb_mapping *m = NULL;
    if (l->mapping_id) {
      int64_t mi = find_id(&c->map_ids, l->mapping_id);
      if (mi < 0)
        return pl__read_fail(c->err, "location %" PRIu64 ": mapping %" PRIu64 " does not exist",
                             l->id, l->mapping_id);
      m = pr->mapping[mi];
      module = pstr(c, m->filename, "mapping", &bad);
    }
    int64_t mod = pl__rb_str(&c->b, module, strlen(module));
    if (mod < 0) return pl__read_errno(c->err, -ENOMEM);
    for (size_t j = 0; j < (l->n_line ? l->n_line : 1); j++) {
      const char *name, *file = "";
      uint32_t line = 0, fline = 0;
      if (l->n_line) {
        const Perftools__Profiles__Line *ln = l->line[j];
        int64_t fi = find_id(&c->func_ids, ln->function_id);
        if (fi < 0)
          return pl__read_fail(c->err, "location %" PRIu64 ": function %" PRIu64 " does not exist",
                               l->id, ln->function_id);
        const pb_function *f = pr->function[fi];
        name = pstr(c, f->name, "function", &bad);
        if (!*name) name = pstr(c, f->system_name, "function", &bad);
        file = pstr(c, f->filename, "function", &bad);
        fline = clamp_u32(f->start_line);
        line = clamp_u32(ln->line);
      } else {
        name = "";
      }
      if (bad) return -EINVAL;
      if (!*name) { /* no symbol: the address, in its module when known */
        if (m && *module && l->address >= m->memory_start)
          snprintf(c->name, sizeof(c->name), "%.40s+0x%" PRIx64, base_name(module),
                   l->address - m->memory_start + m->file_offset);
        else
          snprintf(c->name, sizeof(c->name), "0x%" PRIx64, l->address);
        name = c->name;
      }
      int64_t ni = pl__rb_str(&c->b, name, strlen(name));
      int64_t fi = ni < 0 ? ni : pl__rb_str(&c->b, file, strlen(file));
      int64_t fr = fi < 0 ? fi
                          : pl__rb_frame(&c->b, (uint32_t)ni, (uint32_t)fi, (uint32_t)mod, line,
                                         fline, l->address);
      if (fr < 0) return pl__read_errno(c->err, (int)fr);
      c->loc_frames[pos++] = (uint32_t)fr;
    }
  }
  c->loc_off[pr->n_location] = pos;
  return 0;
}

/* The frames of sample s from its outermost caller: calls visit(frame) in
 * that order; the sample's location ids are checked. */
static int sample_frames(pp_ctx *c, size_t si, uint32_t *out, size_t cap, size_t *n) {
  const pb_sample *s = c->pr->sample[si];
  *n = 0;
  for (size_t k = s->n_location_id; k-- > 0;) { /* outermost location first */
    int64_t li = find_id(&c->loc_ids, s->location_id[k]);
    if (li < 0)
      return pl__read_fail(c->err, "sample %zu: location %" PRIu64 " does not exist", si,
                           s->location_id[k]);
    for (size_t j = c->loc_off[li + 1]; j-- > c->loc_off[li];) { /* the caller line last */
      if (*n == cap) return -E2BIG;
      out[(*n)++] = c->loc_frames[j];
    }
  }
  return 0;
}

/* Whether frames[0..n) (outermost first) is the single pseudo-frame name. */
static int only(const pp_ctx *c, const uint32_t *fr, size_t n, const char *name) {
  return n == 1 && strcmp(c->b.frames[fr[0]].function, name) == 0 && !c->b.frames[fr[0]].file[0];
}

/* The trie node of frames[from..n) (outermost first). */
static int64_t push_all(pp_ctx *c, const uint32_t *fr, size_t from, size_t n) {
  uint32_t node = PL__RB_ROOT;
  for (size_t k = from; k < n; k++) {
    int64_t t = pl__rb_push(&c->b, node, fr[k]);
    if (t < 0) return t;
    node = (uint32_t)t;
  }
  return node;
}

static int type_is(pp_ctx *c, size_t i, const char *type, const char *unit) {
  int bad = 0;
  const Perftools__Profiles__ValueType *vt = c->pr->sample_type[i];
  const char *t = pstr(c, vt->type, "sample type", &bad);
  const char *u = pstr(c, vt->unit, "sample type", &bad);
  return !bad && (!type || strcmp(t, type) == 0) && (!unit || strcmp(u, unit) == 0);
}

static int find_type(pp_ctx *c, const char *type, const char *unit) {
  for (size_t i = 0; i < c->pr->n_sample_type; i++)
    if (type_is(c, i, type, unit)) return (int)i;
  return -1;
}

static int check_values(pp_ctx *c) {
  const pb_profile *pr = c->pr;
  for (size_t i = 0; i < pr->n_sample; i++) {
    const pb_sample *s = pr->sample[i];
    if (s->n_value != pr->n_sample_type)
      return pl__read_fail(c->err, "sample %zu: %zu values for %zu sample types", i, s->n_value,
                           pr->n_sample_type);
    for (size_t k = 0; k < s->n_value; k++)
      if (s->value[k] < 0)
        return pl__read_fail(c->err, "sample %zu: value %" PRId64 " is negative", i, s->value[k]);
  }
  return 0;
}

/* "key=N" comments proflab's writers add. */
static uint64_t comment_num(pp_ctx *c, const char *key) {
  size_t kl = strlen(key);
  for (size_t i = 0; i < c->pr->n_comment; i++) {
    int bad = 0;
    const char *s = pstr(c, c->pr->comment[i], "comment", &bad);
    if (bad && c->err) c->err->msg[0] = '\0'; /* a bad comment index is not worth failing for */
    if (!bad && strncmp(s, key, kl) == 0 && s[kl] == '=') return strtoull(s + kl + 1, NULL, 10);
  }
  return 0;
}

static int64_t sat_add_i64(int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; }

/* ---- CPU ---------------------------------------------------------------- */

static char *dup_cpu(void *model, const char *s) { return pl_cpu_profile_strdup(model, s); }

/* The time one count stands for: the period when it is in nanoseconds, else
 * the profile's time over its counts, else 1 ms. */
static int64_t cpu_period(pp_ctx *c, int count_ix, int time_ix) {
  const pb_profile *pr = c->pr;
  int bad = 0;
  const char *punit = pr->period_type ? pstr(c, pr->period_type->unit, "period type", &bad) : "";
  if (bad && c->err) c->err->msg[0] = '\0';
  if (!bad && pr->period > 0 && strcmp(punit, "nanoseconds") == 0) return pr->period;
  if (count_ix >= 0 && time_ix >= 0) {
    int64_t n = 0, ns = 0;
    for (size_t i = 0; i < pr->n_sample; i++) {
      n = sat_add_i64(n, pr->sample[i]->value[count_ix]);
      ns = sat_add_i64(ns, pr->sample[i]->value[time_ix]);
    }
    if (n && ns / n > 0) return ns / n;
  }
  return 1000000;
}

static int read_cpu(pp_ctx *c, pl_cpu_profile *p, uint32_t *fr, size_t cap) {
  const pb_profile *pr = c->pr;
  int count_ix = find_type(c, "samples", "count");
  int time_ix = find_type(c, "cpu", "nanoseconds");
  if (time_ix < 0) time_ix = find_type(c, "wall", "nanoseconds");
  if (time_ix < 0) time_ix = find_type(c, NULL, "nanoseconds");
  if (count_ix < 0 && time_ix < 0)
    return pl__read_fail(c->err,
                         "a pprof profile without a samples/count or */nanoseconds "
                         "sample type: not a CPU profile");
  uint64_t period = (uint64_t)cpu_period(c, count_ix, time_ix);
  int64_t thread_key = -1;
  for (size_t i = 0; i < pr->n_string_table; i++)
    if (pr->string_table[i] && strcmp(pr->string_table[i], "thread") == 0) thread_key = (int64_t)i;

  pl_cpu_sample *samples = NULL;
  size_t cap_samples = 0, k = 0;
  uint64_t start = pr->time_nanos > 0 ? (uint64_t)pr->time_nanos : 1000000000u, t = start;
  int rc = 0;
  for (size_t i = 0; i < pr->n_sample; i++) {
    const pb_sample *s = pr->sample[i];
    uint64_t w = count_ix >= 0 ? (uint64_t)s->value[count_ix]
                               : ((uint64_t)s->value[time_ix] + period / 2) / period;
    if (count_ix < 0 && !w && s->value[time_ix] > 0) w = 1;
    if (!w) continue;
    size_t n;
    if ((rc = sample_frames(c, i, fr, cap, &n))) {
      if (rc == -E2BIG) rc = pl__read_fail(c->err, "sample %zu: deeper than %zu frames", i, cap);
      goto fail;
    }
    int64_t st;
    if (only(c, fr, n, "(idle)")) {
      st = PL_STACK_IDLE;
    } else if (only(c, fr, n, "(program)")) {
      st = PL_STACK_PROGRAM;
    } else {
      int64_t node = push_all(c, fr, 0, n);
      st = node < 0 ? node : pl__rb_stack(&c->b, (uint32_t)node);
      if (st < 0) {
        rc = pl__read_errno(c->err, (int)st);
        goto fail;
      }
    }
    uint32_t tid = 0;
    for (size_t l = 0; l < s->n_label; l++)
      if (thread_key >= 0 && s->label[l]->key == thread_key) tid = (uint32_t)s->label[l]->num;
    if (w > UINT32_MAX) {
      rc = pl__read_fail(c->err, "sample %zu: a count of %" PRIu64 " (at most 4294967295 are read)",
                         i, w);
      goto fail;
    }
    if (PL__RESERVE(samples, cap_samples, k + 1)) {
      rc = pl__read_errno(c->err, -ENOMEM);
      goto fail;
    }
    samples[k++] = (pl_cpu_sample){t, (uint32_t)st, (uint32_t)w, tid};
    if (st == PL_STACK_IDLE) p->idle_samples++;
    uint64_t dt = w * period;
    t = t > UINT64_MAX - dt || (period && dt / period != w) ? UINT64_MAX : t + dt;
  }
  if (!samples && !(samples = malloc(sizeof(*samples)))) {
    rc = pl__read_errno(c->err, -ENOMEM);
    goto fail;
  }
  if (pl_cpu_profile_adopt(p, samples)) return pl__read_errno(c->err, -ENOMEM); /* freed */
  p->samples = samples;
  p->nsamples = k;
  p->start_ns = start;
  p->start_wall_ns = pr->time_nanos > 0 ? (uint64_t)pr->time_nanos : 0;
  p->end_ns = pr->duration_nanos > 0 ? start + (uint64_t)pr->duration_nanos : t;
  if (p->end_ns < t) p->end_ns = t;
  p->period_ns = period;
  p->mode = "cpu";
  p->signals = comment_num(c, "signals");
  p->dropped = comment_num(c, "dropped");
  rc = pl__rb_finish_cpu(&c->b, p);
  return rc ? pl__read_errno(c->err, rc) : 0;
fail:
  free(samples);
  return rc;
}

/* ---- heap --------------------------------------------------------------- */

static char *dup_heap(void *model, const char *s) { return pl_heap_snapshot_strdup(model, s); }

typedef struct ph_sums {
  double v[4]; /* alloc_objects, alloc_bytes, inuse_objects, inuse_bytes */
  uint32_t flags;
} ph_sums;

static int heap_samples(pp_ctx *c, pl_heap_snapshot *s, const ph_sums *sums) {
  size_t n = 0;
  for (size_t i = 0; i < s->nstacks; i++) {
    pl_heap_stack *st = &s->stacks[i];
    st->alloc_objects = sums[i].v[0];
    st->alloc_bytes = sums[i].v[1];
    st->inuse_objects = sums[i].v[2];
    st->inuse_bytes = sums[i].v[3];
    st->flags = sums[i].flags | (st->depth ? 0 : PL_HEAP_STACK_UNKNOWN);
    if (st->inuse_objects > 0 || st->inuse_bytes > 0) n++;
    s->stats.alloc_objects += st->alloc_objects;
    s->stats.alloc_bytes += st->alloc_bytes;
  }
  pl_heap_sample *x = malloc((n ? n : 1) * sizeof(*x));
  if (!x || pl_heap_snapshot_adopt(s, x, 0, NULL)) return pl__read_errno(c->err, -ENOMEM);
  size_t k = 0;
  for (size_t i = 0; i < s->nstacks; i++) {
    const pl_heap_stack *st = &s->stacks[i];
    if (!(st->inuse_objects > 0 || st->inuse_bytes > 0)) continue;
    double avg = st->inuse_objects >= 1 ? st->inuse_bytes / st->inuse_objects : st->inuse_bytes;
    x[k] = (pl_heap_sample){.id = 2 * (uint64_t)k + 1,
                            .size = avg >= 1.8e19 ? UINT64_MAX : (uint64_t)(avg + 0.5),
                            .weight_objects = st->inuse_objects,
                            .weight_bytes = st->inuse_bytes,
                            .stack = (uint32_t)i};
    s->inuse_objects += st->inuse_objects;
    s->inuse_bytes += st->inuse_bytes;
    k++;
  }
  s->samples = x;
  s->nsamples = k;
  s->stats.inuse_objects = s->inuse_objects;
  s->stats.inuse_bytes = s->inuse_bytes;
  s->stats.live_samples = k;
  s->stats.stacks = s->nstacks;
  return 0;
}

static int read_heap(pp_ctx *c, pl_heap_snapshot *s, uint32_t *fr, size_t cap) {
  const pb_profile *pr = c->pr;
  int ix[4] = {find_type(c, "alloc_objects", NULL), find_type(c, "alloc_space", NULL),
               find_type(c, "inuse_objects", NULL), find_type(c, "inuse_space", NULL)};
  if (ix[2] < 0) ix[2] = find_type(c, "objects", NULL);
  if (ix[3] < 0) ix[3] = find_type(c, "space", NULL);
  ph_sums *sums = NULL;
  size_t sums_cap = 0, known = 0;
  int rc = 0;
  for (size_t i = 0; i < pr->n_sample; i++) {
    const pb_sample *x = pr->sample[i];
    size_t n;
    if ((rc = sample_frames(c, i, fr, cap, &n))) {
      if (rc == -E2BIG) rc = pl__read_fail(c->err, "sample %zu: deeper than %zu frames", i, cap);
      goto out;
    }
    uint32_t flags = 0;
    size_t from = 0;
    if (n > 1 && strcmp(c->b.frames[fr[0]].function, "(truncated)") == 0 &&
        !c->b.frames[fr[0]].file[0]) {
      flags = PL_HEAP_STACK_TRUNCATED; /* the writer's pseudo-frame for cut callers */
      from = 1;
    }
    int64_t node = only(c, fr, n, "(unknown)") || n == 0 ? PL__RB_ROOT : push_all(c, fr, from, n);
    int64_t st = node < 0 ? node : pl__rb_stack(&c->b, (uint32_t)node);
    if (st < 0 || PL__RESERVE(sums, sums_cap, (size_t)st + 1)) {
      rc = pl__read_errno(c->err, st < 0 ? (int)st : -ENOMEM);
      goto out;
    }
    while (known <= (size_t)st) memset(&sums[known++], 0, sizeof(*sums));
    sums[st].flags |= flags;
    for (int v = 0; v < 4; v++)
      if (ix[v] >= 0) sums[st].v[v] += (double)x->value[ix[v]];
  }
  if ((rc = pl__rb_finish_heap(&c->b, s)) < 0) {
    rc = pl__read_errno(c->err, rc);
    goto out;
  }
  if ((rc = heap_samples(c, s, sums)) < 0) goto out;
  int bad = 0;
  const char *punit = pr->period_type ? pstr(c, pr->period_type->unit, "period type", &bad) : "";
  if (bad && c->err) c->err->msg[0] = '\0';
  if (!bad && pr->period > 0 && strcmp(punit, "bytes") == 0) s->sample_bytes = (uint64_t)pr->period;
  s->stats.sample_bytes = s->sample_bytes;
  s->stats.samples = comment_num(c, "samples");
  if (!s->stats.samples) s->stats.samples = s->nsamples;
  s->stats.dropped_samples = comment_num(c, "dropped_samples");
  s->stats.unknown_stacks = comment_num(c, "unknown_stacks");
  s->wall_ns = pr->time_nanos > 0 ? (uint64_t)pr->time_nanos : 0;
out:
  free(sums);
  return rc;
}

/* ---- entry -------------------------------------------------------------- */

/* protobuf-c's allocator, noting a failure: unpack returns NULL for both. */
static void *pb_alloc(void *data, size_t n) {
  void *p = malloc(n);
  if (!p) *(int *)data = 1;
  return p;
}

static void pb_free(void *data, void *p) {
  (void)data;
  free(p);
}

static int is_heap(pp_ctx *c) {
  return find_type(c, "inuse_space", NULL) >= 0 || find_type(c, "alloc_space", NULL) >= 0 ||
         find_type(c, "space", "bytes") >= 0;
}

enum { MAX_DEPTH = 1 << 20 }; /* frames of one sample at most */

int pl__pprof_read(pl__rsrc *src, pl__profile_kind *kind, pl_cpu_profile **cpu,
                   pl_heap_snapshot **heap, pl__read_err *err) {
  unsigned char *data = NULL;
  size_t len = 0;
  pb_profile *pr = NULL;
  pl_cpu_profile *p = NULL;
  pl_heap_snapshot *s = NULL;
  uint32_t *fr = NULL;
  int oom = 0;
  ProtobufCAllocator alloc = {pb_alloc, pb_free, &oom};
  pp_ctx c;
  memset(&c, 0, sizeof(c));
  c.err = err;
  pl__keytab_init(&c.loc_ids);
  pl__keytab_init(&c.func_ids);
  pl__keytab_init(&c.map_ids);
  *kind = PL__KIND_UNKNOWN;
  *cpu = NULL;
  *heap = NULL;

  int rc = pl__rsrc_read_all(src, MAX_PPROF, &data, &len);
  if (rc) goto out;
  pr = perftools__profiles__profile__unpack(&alloc, len, data);
  if (!pr && oom) {
    rc = pl__read_errno(err, -ENOMEM);
    goto out;
  }
  if (!pr) {
    rc = wire_walk(&perftools__profiles__profile__descriptor, data, len, 0, 0, err);
    if (!rc)
      rc = pl__read_fail(err,
                         "offset 0: expected a pprof Profile message (protobuf-c cannot "
                         "decode these %zu bytes)",
                         len);
    goto out;
  }
  c.pr = pr;
  if (!pr->n_sample_type) {
    rc = pl__read_fail(err, "a pprof profile without sample types");
    goto out;
  }
  if ((rc = check_values(&c))) goto out;
  int heap_kind = is_heap(&c);
  *kind = heap_kind ? PL__KIND_PPROF_HEAP : PL__KIND_PPROF_CPU;
  if (heap_kind)
    s = pl_heap_snapshot_new();
  else
    p = pl_cpu_profile_new();
  size_t lines = 1, maxdepth = 0; /* a bound on any sample's frames */
  for (size_t i = 0; i < pr->n_location; i++)
    if (pr->location[i]->n_line > lines) lines = pr->location[i]->n_line;
  for (size_t i = 0; i < pr->n_sample; i++)
    if (pr->sample[i]->n_location_id > maxdepth) maxdepth = pr->sample[i]->n_location_id;
  maxdepth = maxdepth > MAX_DEPTH / lines ? MAX_DEPTH : maxdepth * lines;
  fr = malloc((maxdepth ? maxdepth : 1) * sizeof(*fr));
  if ((!s && !p) || !fr) {
    rc = pl__read_errno(err, -ENOMEM);
    goto out;
  }
  pl__rb_init(&c.b, heap_kind ? dup_heap : dup_cpu, heap_kind ? (void *)s : (void *)p);
  if ((rc = index_ids(&c, &c.loc_ids, pr->n_location, loc_id, "location")) ||
      (rc = index_ids(&c, &c.func_ids, pr->n_function, func_id, "function")) ||
      (rc = index_ids(&c, &c.map_ids, pr->n_mapping, map_id, "mapping")))
    goto out;
  if ((rc = build_locations(&c))) goto out;
  rc = heap_kind ? read_heap(&c, s, fr, maxdepth) : read_cpu(&c, p, fr, maxdepth);
  if (rc) goto out;
  *cpu = p;
  *heap = s;
  p = NULL;
  s = NULL;
out:
  if (pr) perftools__profiles__profile__free_unpacked(pr, &alloc);
  free(data);
  free(fr);
  free(c.loc_off);
  free(c.loc_frames);
  pl__rb_free(&c.b);
  pl__keytab_free(&c.loc_ids);
  pl__keytab_free(&c.func_ids);
  pl__keytab_free(&c.map_ids);
  pl_cpu_profile_free(p);
  pl_heap_snapshot_free(s);
  return rc < 0 ? pl__read_errno(err, rc) : rc;
}
