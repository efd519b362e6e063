/* pprof CPU profile writer (see cpu_writers.h and proto/profile.proto).
 *
 * The model maps onto profile.proto as:
 * - one Location per model frame (id = frame index + 1), with the frame's
 *   address and one Line {function, line}; plus one Location each for
 *   "(idle)" and "(program)" samples when there are any;
 * - one Function per distinct (name, file, function_line);
 * - one Mapping per distinct non-empty module path, in order of first use,
 *   except that the first one that looks like the program (not a shared
 *   object, not "[vdso]"-like) gets id 1: pprof names Mapping[0] as the
 *   profile's "File"; has_functions is set (pprof must not try to symbolize again), and
 *   has_filenames / has_line_numbers when every frame of the module has
 *   them. The model has no load addresses, so memory_start/limit are 0;
 * - one Sample per model sample: location_id leaf first, value [weight,
 *   weight x period_ns], a numeric label "thread" = tid.
 * Strings are interned in a hash table; string_table[0] is "".
 *
 * protobuf-c needs the whole message as structs; the encoding itself is
 * streamed (through deflate for the gzip variant) into the sink.
 */
#include "format/cpu_writers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "format/cpu_common.h"
#include "format/hashtab.h"
#include "format/profile.pb-c.h"

typedef Perftools__Profiles__Profile pb_profile;
typedef Perftools__Profiles__ValueType pb_value_type;
typedef Perftools__Profiles__Sample pb_sample;
typedef Perftools__Profiles__Label pb_label;
typedef Perftools__Profiles__Mapping pb_mapping;
typedef Perftools__Profiles__Location pb_location;
typedef Perftools__Profiles__Line pb_line;
typedef Perftools__Profiles__Function pb_function;

enum { COMMENTS = 3, COMMENT_LEN = 64 };

typedef struct pp_ctx {
  const pl_cpu_profile *p;
  pl__strtab strs;
  pl__keytab func_keys; /* (name, filename, start_line) -> index in funcs */
  pb_function *funcs;
  size_t funcs_cap;
  pl__keytab map_keys; /* (module string, 0, 0) -> index in maps */
  pb_mapping *maps;
  size_t maps_cap;
  pb_location *locs; /* nframes, then idle and program when used */
  pb_line *lines;    /* one per location */
  pb_line **line_ptrs;
  size_t nlocs;
  uint64_t idle_loc, program_loc; /* location ids, 0 when unused */
  uint64_t *stack_locs;           /* all stacks' location ids, leaf first */
  size_t *stack_off;              /* by stack index: offset in stack_locs */
  pl__keytab tid_keys;            /* (tid, 0, 0) -> index in labels */
  pb_label *labels;
  pb_label **label_ptrs;
  pb_sample *samples;
  pb_sample **sample_ptrs;
  int64_t *values; /* 2 per sample */
  pb_function **func_ptrs;
  pb_mapping **map_ptrs;
  pb_location **loc_ptrs;
  char comments[COMMENTS][COMMENT_LEN];
  int64_t comment_ids[COMMENTS];
} pp_ctx;

static int64_t sat_i64(uint64_t v) { return v > INT64_MAX ? INT64_MAX : (int64_t)v; }

static int64_t sat_mul_i64(uint64_t a, uint64_t b) {
  return sat_i64((b && a > UINT64_MAX / b) ? UINT64_MAX : a * b);
}

/* Function id (>= 1) for (name, file, start_line), or -ENOMEM. */
static int64_t func_id(pp_ctx *c, const char *name, const char *file, uint32_t start_line) {
  int64_t n = pl__strtab_intern(&c->strs, name);
  int64_t f = pl__strtab_intern(&c->strs, file);
  if (n < 0 || f < 0) return -ENOMEM;
  int added;
  int64_t i = pl__keytab_intern(&c->func_keys, (uint32_t)n, (uint32_t)f, start_line, &added);
  if (i < 0) return i;
  if (added) {
    if (PL__RESERVE(c->funcs, c->funcs_cap, (size_t)i + 1)) return -ENOMEM;
    pb_function *fn = &c->funcs[i];
    perftools__profiles__function__init(fn);
    fn->id = (uint64_t)i + 1;
    fn->name = n;
    fn->system_name = n; /* the model keeps one (demangled or not) name */
    fn->filename = f;
    fn->start_line = start_line;
  }
  return i + 1;
}

/* Mapping id (>= 1) for a module path, 0 for none, or -ENOMEM. */
static int64_t mapping_id(pp_ctx *c, const pl_frame *fr) {
  const char *module = pl__str(fr->module);
  if (!*module) return 0;
  int64_t m = pl__strtab_intern(&c->strs, module);
  if (m < 0) return m;
  int added;
  int64_t i = pl__keytab_intern(&c->map_keys, (uint32_t)m, 0, 0, &added);
  if (i < 0) return i;
  if (added) {
    if (PL__RESERVE(c->maps, c->maps_cap, (size_t)i + 1)) return -ENOMEM;
    pb_mapping *mp = &c->maps[i];
    perftools__profiles__mapping__init(mp);
    mp->id = (uint64_t)i + 1;
    mp->filename = m;
    mp->has_functions = 1;
    mp->has_filenames = 1;
    mp->has_line_numbers = 1;
  }
  if (!*pl__str(fr->file)) c->maps[i].has_filenames = 0;
  if (!fr->line) c->maps[i].has_line_numbers = 0;
  return i + 1;
}

/* Like pprof's own guess for legacy profiles: a path that is neither a
 * shared object ("x.so", "x.so.6", "x.so_1") nor a pseudo-file ("[vdso]"). */
static int looks_like_program(const char *path) {
  if (!*path || path[0] == '[') return 0;
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  for (const char *so = strstr(base, ".so"); so; so = strstr(so + 1, ".so"))
    if (so[3] == '\0' || so[3] == '.' || so[3] == '_') return 0;
  return 1;
}

/* Moves the program's mapping to id 1 (the others keep their order) and
 * fills map_ptrs in id order. */
static void order_mappings(pp_ctx *c) {
  size_t n = c->map_keys.n, main_idx = 0;
  for (size_t i = 0; i < n; i++) {
    if (looks_like_program(c->strs.strs[c->maps[i].filename])) {
      main_idx = i;
      break;
    }
  }
  for (size_t i = 0; i < n; i++) {
    uint64_t id = i == main_idx ? 1 : i < main_idx ? i + 2 : i + 1;
    c->maps[i].id = id;
    c->map_ptrs[id - 1] = &c->maps[i];
  }
  if (main_idx == 0) return;
  for (size_t l = 0; l < c->nlocs; l++) {
    uint64_t old = c->locs[l].mapping_id; /* index + 1 before the move */
    if (old) c->locs[l].mapping_id = c->maps[old - 1].id;
  }
}

static void set_location(pp_ctx *c, size_t i, uint64_t mapping, uint64_t address, uint64_t function,
                         uint32_t line) {
  pb_location *loc = &c->locs[i];
  perftools__profiles__location__init(loc);
  perftools__profiles__line__init(&c->lines[i]);
  loc->id = (uint64_t)i + 1;
  loc->mapping_id = mapping;
  loc->address = address;
  c->lines[i].function_id = function;
  c->lines[i].line = line;
}

static int build_locations(pp_ctx *c) {
  const pl_cpu_profile *p = c->p;
  int idle = 0, program = 0;
  for (size_t i = 0; i < p->nsamples; i++) {
    uint32_t st = pl__sample_stack(p, &p->samples[i]);
    idle |= st == PL_STACK_IDLE;
    program |= st == PL_STACK_PROGRAM;
  }
  size_t cap = p->nframes + 2;
  c->locs = calloc(cap, sizeof(*c->locs));
  c->lines = calloc(cap, sizeof(*c->lines));
  c->line_ptrs = calloc(cap, sizeof(*c->line_ptrs));
  c->loc_ptrs = calloc(cap, sizeof(*c->loc_ptrs));
  if (!c->locs || !c->lines || !c->line_ptrs || !c->loc_ptrs) return -ENOMEM;

  for (size_t i = 0; i < p->nframes; i++) {
    const pl_frame *fr = &p->frames[i];
    int64_t fn = func_id(c, pl__str(fr->function), pl__str(fr->file), fr->function_line);
    if (fn < 0) return (int)fn;
    int64_t mp = mapping_id(c, fr);
    if (mp < 0) return (int)mp;
    set_location(c, i, (uint64_t)mp, fr->address, (uint64_t)fn, fr->line);
  }
  c->nlocs = p->nframes;
  if (idle) {
    int64_t fn = func_id(c, "(idle)", "", 0);
    if (fn < 0) return (int)fn;
    set_location(c, c->nlocs, 0, 0, (uint64_t)fn, 0);
    c->idle_loc = ++c->nlocs;
  }
  if (program) {
    int64_t fn = func_id(c, "(program)", "", 0);
    if (fn < 0) return (int)fn;
    set_location(c, c->nlocs, 0, 0, (uint64_t)fn, 0);
    c->program_loc = ++c->nlocs;
  }
  for (size_t i = 0; i < c->nlocs; i++) {
    c->line_ptrs[i] = &c->lines[i];
    c->locs[i].n_line = 1;
    c->locs[i].line = &c->line_ptrs[i];
    c->loc_ptrs[i] = &c->locs[i];
  }
  return 0;
}

static int build_samples(pp_ctx *c, int64_t thread_key) {
  const pl_cpu_profile *p = c->p;
  size_t total = 0;
  c->stack_off = malloc((p->nstacks ? p->nstacks : 1) * sizeof(*c->stack_off));
  if (!c->stack_off) return -ENOMEM;
  for (size_t s = 0; s < p->nstacks; s++) {
    c->stack_off[s] = total;
    total += p->stacks[s].depth;
  }
  c->stack_locs = malloc((total ? total : 1) * sizeof(*c->stack_locs));
  if (!c->stack_locs) return -ENOMEM;
  for (size_t s = 0; s < p->nstacks; s++)
    for (uint32_t d = 0; d < p->stacks[s].depth; d++)
      c->stack_locs[c->stack_off[s] + d] = (uint64_t)p->stacks[s].frames[d] + 1;

  /* One numeric "thread" label per distinct tid, shared by its samples. */
  for (size_t i = 0; i < p->nsamples; i++)
    if (pl__keytab_intern(&c->tid_keys, p->samples[i].tid, 0, 0, NULL) < 0) return -ENOMEM;
  size_t ntids = c->tid_keys.n;
  c->labels = calloc(ntids ? ntids : 1, sizeof(*c->labels));
  c->label_ptrs = calloc(ntids ? ntids : 1, sizeof(*c->label_ptrs));
  if (!c->labels || !c->label_ptrs) return -ENOMEM;
  for (size_t t = 0; t < ntids; t++) {
    perftools__profiles__label__init(&c->labels[t]);
    c->labels[t].key = thread_key;
    c->labels[t].num = c->tid_keys.keys[t].a;
    c->label_ptrs[t] = &c->labels[t];
  }

  size_t n = p->nsamples ? p->nsamples : 1;
  c->samples = calloc(n, sizeof(*c->samples));
  c->sample_ptrs = calloc(n, sizeof(*c->sample_ptrs));
  c->values = calloc(n * 2, sizeof(*c->values));
  if (!c->samples || !c->sample_ptrs || !c->values) return -ENOMEM;
  for (size_t i = 0; i < p->nsamples; i++) {
    const pl_cpu_sample *s = &p->samples[i];
    pb_sample *ps = &c->samples[i];
    perftools__profiles__sample__init(ps);
    uint32_t st = pl__sample_stack(p, s);
    if (st == PL_STACK_IDLE) {
      ps->n_location_id = 1;
      ps->location_id = &c->idle_loc;
    } else if (st == PL_STACK_PROGRAM) {
      ps->n_location_id = 1;
      ps->location_id = &c->program_loc;
    } else {
      ps->n_location_id = p->stacks[st].depth;
      ps->location_id = &c->stack_locs[c->stack_off[st]];
    }
    c->values[2 * i] = s->weight;
    c->values[2 * i + 1] = sat_mul_i64(s->weight, p->period_ns);
    ps->n_value = 2;
    ps->value = &c->values[2 * i];
    ps->n_label = 1;
    ps->label = &c->label_ptrs[pl__keytab_find(&c->tid_keys, s->tid, 0, 0)];
    c->sample_ptrs[i] = ps;
  }
  return 0;
}

/* ---- output: protobuf-c's buffer interface, raw or through deflate ------ */

typedef struct pp_out {
  ProtobufCBuffer base;
  pl_sink *sink;
  int gzip;
  int zerr; /* first zlib error, negative errno */
  z_stream z;
  size_t staged;
  unsigned char stage[1 << 16]; /* protobuf-c appends many tiny pieces */
  unsigned char zout[1 << 16];
} pp_out;

static void pp_deflate(pp_out *o, const unsigned char *data, size_t len, int flush) {
  o->z.next_in = (unsigned char *)data;
  o->z.avail_in = (uInt)len;
  do {
    o->z.next_out = o->zout;
    o->z.avail_out = sizeof(o->zout);
    int zr = deflate(&o->z, flush);
    if (zr == Z_STREAM_ERROR) {
      if (!o->zerr) o->zerr = -EIO;
      return;
    }
    pl_sink_write(o->sink, o->zout, sizeof(o->zout) - o->z.avail_out);
  } while (o->z.avail_out == 0);
}

static void pp_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data) {
  pp_out *o = (pp_out *)buffer;
  if (!o->gzip) {
    pl_sink_write(o->sink, data, len);
    return;
  }
  while (len > 0) {
    size_t room = sizeof(o->stage) - o->staged;
    size_t k = len < room ? len : room;
    memcpy(o->stage + o->staged, data, k);
    o->staged += k;
    data += k;
    len -= k;
    if (o->staged == sizeof(o->stage)) {
      pp_deflate(o, o->stage, o->staged, Z_NO_FLUSH);
      o->staged = 0;
    }
  }
}

static int pp_pack(const pb_profile *prof, pl_sink *sink, int gzip) {
  pp_out *o = calloc(1, sizeof(*o));
  if (!o) return -ENOMEM;
  o->base.append = pp_append;
  o->sink = sink;
  o->gzip = gzip;
  if (gzip) {
    /* windowBits 15 + 16: a gzip header (mtime 0, so output is deterministic). */
    int zr = deflateInit2(&o->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    if (zr != Z_OK) {
      free(o);
      return zr == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
    }
  }
  protobuf_c_message_pack_to_buffer(&prof->base, &o->base);
  if (gzip) {
    pp_deflate(o, o->stage, o->staged, Z_FINISH);
    deflateEnd(&o->z);
  }
  int rc = o->zerr;
  free(o);
  return rc;
}

/* ---- assembly ----------------------------------------------------------- */

static void ctx_free(pp_ctx *c) {
  pl__strtab_free(&c->strs);
  pl__keytab_free(&c->func_keys);
  free(c->funcs);
  pl__keytab_free(&c->map_keys);
  free(c->maps);
  free(c->locs);
  free(c->lines);
  free(c->line_ptrs);
  free(c->stack_locs);
  free(c->stack_off);
  pl__keytab_free(&c->tid_keys);
  free(c->labels);
  free(c->label_ptrs);
  free(c->samples);
  free(c->sample_ptrs);
  free(c->values);
  free(c->func_ptrs);
  free(c->map_ptrs);
  free(c->loc_ptrs);
}

static int pprof_write(const pl_cpu_profile *p, pl_sink *out, int gzip) {
  if (!out) return -EINVAL;
  int rc = pl__cpu_profile_check(p);
  if (rc) return rc;

  pp_ctx c;
  memset(&c, 0, sizeof(c));
  c.p = p;
  pl__strtab_init(&c.strs);
  pl__keytab_init(&c.func_keys);
  pl__keytab_init(&c.map_keys);
  pl__keytab_init(&c.tid_keys);

  /* The fixed strings first: "" must be string_table[0]. */
  static const char *const fixed[] = {"", "samples", "count", "cpu", "nanoseconds", "thread"};
  int64_t ids[6];
  for (size_t i = 0; i < 6; i++) {
    if ((ids[i] = pl__strtab_intern(&c.strs, fixed[i])) < 0) {
      rc = -ENOMEM;
      goto out;
    }
  }
  snprintf(c.comments[0], COMMENT_LEN, "mode=%s", pl__str(p->mode));
  snprintf(c.comments[1], COMMENT_LEN, "signals=%llu", (unsigned long long)p->signals);
  snprintf(c.comments[2], COMMENT_LEN, "dropped=%llu", (unsigned long long)p->dropped);
  for (size_t i = 0; i < COMMENTS; i++) {
    if ((c.comment_ids[i] = pl__strtab_intern(&c.strs, c.comments[i])) < 0) {
      rc = -ENOMEM;
      goto out;
    }
  }

  if ((rc = build_locations(&c))) goto out;
  if ((rc = build_samples(&c, ids[5]))) goto out;

  size_t nfuncs = c.func_keys.n, nmaps = c.map_keys.n;
  c.func_ptrs = calloc(nfuncs ? nfuncs : 1, sizeof(*c.func_ptrs));
  c.map_ptrs = calloc(nmaps ? nmaps : 1, sizeof(*c.map_ptrs));
  if (!c.func_ptrs || !c.map_ptrs) {
    rc = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < nfuncs; i++) c.func_ptrs[i] = &c.funcs[i];
  order_mappings(&c);

  pb_value_type samples_count, cpu_ns, period_type;
  perftools__profiles__value_type__init(&samples_count);
  perftools__profiles__value_type__init(&cpu_ns);
  perftools__profiles__value_type__init(&period_type);
  samples_count.type = ids[1];
  samples_count.unit = ids[2];
  cpu_ns.type = ids[3];
  cpu_ns.unit = ids[4];
  period_type = cpu_ns;
  pb_value_type *sample_types[2] = {&samples_count, &cpu_ns};

  pb_profile prof;
  perftools__profiles__profile__init(&prof);
  prof.n_sample_type = 2;
  prof.sample_type = sample_types;
  prof.n_sample = p->nsamples;
  prof.sample = c.sample_ptrs;
  prof.n_mapping = nmaps;
  prof.mapping = c.map_ptrs;
  prof.n_location = c.nlocs;
  prof.location = c.loc_ptrs;
  prof.n_function = nfuncs;
  prof.function = c.func_ptrs;
  /* protobuf-c only reads the table; the strings are the model's or ours. */
  prof.n_string_table = c.strs.n;
  prof.string_table = (char **)c.strs.strs;
  prof.time_nanos = sat_i64(p->start_wall_ns);
  prof.duration_nanos = p->end_ns > p->start_ns ? sat_i64(p->end_ns - p->start_ns) : 0;
  prof.period_type = &period_type;
  prof.period = sat_i64(p->period_ns);
  prof.n_comment = COMMENTS;
  prof.comment = c.comment_ids;
  prof.default_sample_type = ids[3];

  rc = pp_pack(&prof, out, gzip);

out:
  ctx_free(&c);
  if (rc) return rc;
  return pl_sink_finish(out);
}

int pl_pprof_cpu_write(const pl_cpu_profile *p, pl_sink *out) { return pprof_write(p, out, 1); }

int pl_pprof_cpu_write_raw(const pl_cpu_profile *p, pl_sink *out) { return pprof_write(p, out, 0); }
