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
 *   weight x period_ns], a numeric label "thread" = tid and, when the
 *   profile knows the thread's name (pl_cpu_profile.threads), a string
 *   label "thread_name" (as pprof's -tagfocus/-tagshow read it).
 * Strings are interned in a hash table; string_table[0] is "".
 * The tables and the encoding are pprof_common's, shared with the heap
 * writer.
 */
#include "format/cpu_writers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/cpu_common.h"
#include "format/hashtab.h"
#include "format/pprof_common.h"

typedef Perftools__Profiles__Profile pb_profile;
typedef Perftools__Profiles__ValueType pb_value_type;
typedef Perftools__Profiles__Sample pb_sample;
typedef Perftools__Profiles__Label pb_label;

enum { COMMENTS = 3, COMMENT_LEN = 64 };

typedef struct pp_ctx {
  const pl_cpu_profile *p;
  pl__pprof b;
  uint64_t idle_loc, program_loc; /* location ids, 0 when unused */
  uint64_t *stack_locs;           /* all stacks' location ids, leaf first */
  size_t *stack_off;              /* by stack index: offset in stack_locs */
  pl__keytab tid_keys;            /* (tid, 0, 0) -> index in labels */
  pb_label *labels;
  pb_label **label_ptrs;
  unsigned *nlabels; /* labels of each distinct tid: 1 or 2 */
  pb_sample *samples;
  pb_sample **sample_ptrs;
  int64_t *values; /* 2 per sample */
  char comments[COMMENTS][COMMENT_LEN];
  int64_t comment_ids[COMMENTS];
} pp_ctx;

static int64_t sat_mul_i64(uint64_t a, uint64_t b) {
  return pl__sat_i64((b && a > UINT64_MAX / b) ? UINT64_MAX : a * b);
}

/* One location per frame (id = index + 1), then (idle) and (program) when used. */
static int build_locations(pp_ctx *c) {
  const pl_cpu_profile *p = c->p;
  int idle = 0, program = 0;
  for (size_t i = 0; i < p->nsamples; i++) {
    uint32_t st = pl__sample_stack(p, &p->samples[i]);
    idle |= st == PL_STACK_IDLE;
    program |= st == PL_STACK_PROGRAM;
  }
  int rc = pl__pprof_add_frames(&c->b, p->frames, p->nframes);
  if (rc) return rc;
  if (idle) {
    int64_t loc = pl__pprof_add_pseudo(&c->b, "(idle)");
    if (loc < 0) return (int)loc;
    c->idle_loc = (uint64_t)loc;
  }
  if (program) {
    int64_t loc = pl__pprof_add_pseudo(&c->b, "(program)");
    if (loc < 0) return (int)loc;
    c->program_loc = (uint64_t)loc;
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

  /* Per distinct tid, shared by its samples: a numeric "thread" label,
   * then a "thread_name" label when the name is known (label_ptrs[2t],
   * [2t + 1]; nlabels[t] says how many). */
  for (size_t i = 0; i < p->nsamples; i++)
    if (pl__keytab_intern(&c->tid_keys, p->samples[i].tid, 0, 0, NULL) < 0) return -ENOMEM;
  size_t ntids = c->tid_keys.n;
  c->labels = calloc(ntids ? 2 * ntids : 1, sizeof(*c->labels));
  c->label_ptrs = calloc(ntids ? 2 * ntids : 1, sizeof(*c->label_ptrs));
  c->nlabels = calloc(ntids ? ntids : 1, sizeof(*c->nlabels));
  if (!c->labels || !c->label_ptrs || !c->nlabels) return -ENOMEM;
  int64_t name_key = 0;
  for (size_t t = 0; t < ntids; t++) {
    perftools__profiles__label__init(&c->labels[2 * t]);
    c->labels[2 * t].key = thread_key;
    c->labels[2 * t].num = c->tid_keys.keys[t].a;
    c->label_ptrs[2 * t] = &c->labels[2 * t];
    c->nlabels[t] = 1;
    const char *name = NULL;
    for (size_t k = 0; k < p->nthreads && !name; k++)
      if (p->threads[k].tid == c->tid_keys.keys[t].a && p->threads[k].name && p->threads[k].name[0])
        name = p->threads[k].name;
    if (!name) continue;
    if (!name_key && (name_key = pl__pprof_string(&c->b, "thread_name")) < 0) return -ENOMEM;
    int64_t v = pl__pprof_string(&c->b, name);
    if (v < 0) return -ENOMEM;
    perftools__profiles__label__init(&c->labels[2 * t + 1]);
    c->labels[2 * t + 1].key = name_key;
    c->labels[2 * t + 1].str = v;
    c->label_ptrs[2 * t + 1] = &c->labels[2 * t + 1];
    c->nlabels[t] = 2;
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
    size_t t = (size_t)pl__keytab_find(&c->tid_keys, s->tid, 0, 0);
    ps->n_label = c->nlabels[t];
    ps->label = &c->label_ptrs[2 * t];
    c->sample_ptrs[i] = ps;
  }
  return 0;
}

/* ---- assembly ----------------------------------------------------------- */

static void ctx_free(pp_ctx *c) {
  pl__pprof_free(&c->b);
  free(c->stack_locs);
  free(c->stack_off);
  pl__keytab_free(&c->tid_keys);
  free(c->labels);
  free(c->label_ptrs);
  free(c->nlabels);
  free(c->samples);
  free(c->sample_ptrs);
  free(c->values);
}

static int pprof_write(const pl_cpu_profile *p, pl__sink *out, int gzip) {
  if (!out) return -EINVAL;
  int rc = pl__cpu_profile_check(p);
  if (rc) return rc;

  pp_ctx c;
  memset(&c, 0, sizeof(c));
  c.p = p;
  pl__pprof_init(&c.b);
  pl__keytab_init(&c.tid_keys);

  /* The fixed strings first: "" must be string_table[0]. */
  static const char *const fixed[] = {"", "samples", "count", "cpu", "nanoseconds", "thread"};
  int64_t ids[6];
  for (size_t i = 0; i < 6; i++) {
    if ((ids[i] = pl__pprof_string(&c.b, fixed[i])) < 0) {
      rc = -ENOMEM;
      goto out;
    }
  }
  snprintf(c.comments[0], COMMENT_LEN, "mode=%s", pl__str(p->mode));
  snprintf(c.comments[1], COMMENT_LEN, "signals=%llu", (unsigned long long)p->signals);
  snprintf(c.comments[2], COMMENT_LEN, "dropped=%llu", (unsigned long long)p->dropped);
  for (size_t i = 0; i < COMMENTS; i++) {
    if ((c.comment_ids[i] = pl__pprof_string(&c.b, c.comments[i])) < 0) {
      rc = -ENOMEM;
      goto out;
    }
  }

  if ((rc = build_locations(&c))) goto out;
  if ((rc = build_samples(&c, ids[5]))) goto out;

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
  prof.time_nanos = pl__sat_i64(p->start_wall_ns);
  prof.duration_nanos = p->end_ns > p->start_ns ? pl__sat_i64(p->end_ns - p->start_ns) : 0;
  prof.period_type = &period_type;
  prof.period = pl__sat_i64(p->period_ns);
  prof.n_comment = COMMENTS;
  prof.comment = c.comment_ids;
  prof.default_sample_type = ids[3];

  if ((rc = pl__pprof_finish(&c.b, &prof))) goto out;
  rc = pl__pprof_pack(&prof, out, gzip);

out:
  ctx_free(&c);
  if (rc) return rc;
  return pl__sink_finish(out);
}

int pl__pprof_cpu_write(const pl_cpu_profile *p, pl__sink *out) { return pprof_write(p, out, 1); }

int pl__pprof_cpu_write_raw(const pl_cpu_profile *p, pl__sink *out) {
  return pprof_write(p, out, 0);
}
