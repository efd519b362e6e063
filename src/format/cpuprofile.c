/* Chrome .cpuprofile writer (CDP Profiler.Profile), see cpu_writers.h.
 *
 * The model's stacks (leaf first) become a call tree root -> outermost
 * caller -> leaf. A tree node is identified by its parent node and its
 * function (name, file, function_line), so different program counters of
 * one function share a node and their lines become the node's
 * positionTicks. Node ids follow first use: (root) 1, (program) 2 (always
 * present, as in V8), (idle) 3 when any sample is idle, then the nodes in
 * the order samples reach them. The JSON is streamed with pl_json; only
 * the tree itself is held in memory.
 */
#include "format/cpu_writers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/calltree.h"
#include "format/cpu_common.h"
#include "format/hashtab.h"

#define NONE PL__CT_NONE

/* Function indices of the meta nodes (inserted first, keys no frame can have). */
enum { FN_ROOT, FN_PROGRAM, FN_IDLE };

typedef struct cp_tick {
  uint32_t node, line, ticks;
} cp_tick;

typedef struct cp_ctx {
  const pl_cpu_profile *p;
  pl__calltree t;       /* node values: hits (periods) */
  uint32_t *stack_leaf; /* by stack index: leaf node, NONE until used */
  pl__keytab tick_keys; /* (node, line, 0) -> index in ticks */
  uint32_t *ticks;
  size_t ticks_cap;
  uint32_t program_node, idle_node;
  pl_buf scratch; /* the url being built */
  int oom;        /* an allocation of the scratch buffer failed */
} cp_ctx;

/* Leaf node of a real stack, creating its path from the root. */
static int64_t stack_leaf(cp_ctx *c, uint32_t si) {
  if (c->stack_leaf[si] != NONE) return c->stack_leaf[si];
  const pl_cpu_stack *st = &c->p->stacks[si];
  uint32_t node = 0;                       /* root */
  for (uint32_t d = st->depth; d-- > 0;) { /* outermost caller first */
    int64_t f = pl__calltree_frame_func(&c->t, st->frames[d]);
    if (f < 0) return f;
    int64_t n = pl__calltree_node(&c->t, node, (uint32_t)f);
    if (n < 0) return n;
    node = (uint32_t)n;
  }
  c->stack_leaf[si] = node;
  return node;
}

/* Leaf node a sample is counted at (the tree must be built). */
static uint32_t sample_node(const cp_ctx *c, const pl_cpu_sample *s) {
  uint32_t st = pl__sample_stack(c->p, s);
  if (st == PL_STACK_IDLE) return c->idle_node;
  if (st == PL_STACK_PROGRAM) return c->program_node;
  return c->stack_leaf[st];
}

/* Builds the tree, hitCounts and positionTicks from the samples. */
static int build_tree(cp_ctx *c) {
  const pl_cpu_profile *p = c->p;
  int64_t n;
  if ((n = pl__calltree_node(&c->t, 0, FN_PROGRAM)) < 0) return (int)n;
  c->program_node = (uint32_t)n;
  c->idle_node = NONE;
  for (size_t i = 0; i < p->nsamples; i++) {
    if (pl__sample_stack(p, &p->samples[i]) != PL_STACK_IDLE) continue;
    if ((n = pl__calltree_node(&c->t, 0, FN_IDLE)) < 0) return (int)n;
    c->idle_node = (uint32_t)n;
    break;
  }

  for (size_t i = 0; i < p->nsamples; i++) {
    const pl_cpu_sample *s = &p->samples[i];
    uint32_t st = pl__sample_stack(p, s);
    uint32_t leaf;
    if (st == PL_STACK_IDLE)
      leaf = c->idle_node;
    else if (st == PL_STACK_PROGRAM)
      leaf = c->program_node;
    else {
      if ((n = stack_leaf(c, st)) < 0) return (int)n;
      leaf = (uint32_t)n;
    }
    c->t.nodes[leaf].value += s->weight; /* one emitted sample per period */
    if (st == PL_STACK_IDLE || st == PL_STACK_PROGRAM) continue;
    uint32_t line = p->frames[p->stacks[st].frames[0]].line;
    if (!line) continue;
    int added;
    int64_t t = pl__keytab_intern(&c->tick_keys, leaf, line, 0, &added);
    if (t < 0) return (int)t;
    if (added) {
      if (PL__RESERVE(c->ticks, c->ticks_cap, (size_t)t + 1)) return -ENOMEM;
      c->ticks[t] = 0;
    }
    c->ticks[t] += s->weight;
  }
  return 0;
}

static int tick_cmp(const void *a, const void *b) {
  const cp_tick *x = a, *y = b;
  if (x->node != y->node) return x->node < y->node ? -1 : 1;
  return x->line < y->line ? -1 : x->line > y->line;
}

/* url: "file://" + path (percent-encoded like Node's pathToFileURL) for
 * absolute paths, the path itself otherwise, "" for none. */
static void put_url(cp_ctx *c, pl_json *j, const char *file) {
  pl_buf *b = &c->scratch;
  pl_buf_reset(b);
  pl__file_url(b, file);
  if (pl_buf_failed(b)) {
    c->oom = 1; /* reported at the end */
    pl_json_str(j, "");
    return;
  }
  pl_json_strn(j, b->data ? b->data : "", b->len);
}

static void put_node(cp_ctx *c, pl_json *j, uint32_t idx, const cp_tick *ticks, size_t nticks,
                     size_t *tick_pos) {
  const pl__ct_node *nd = &c->t.nodes[idx];
  const pl__ct_func *fn = &c->t.funcs[nd->func];
  int meta = nd->func <= FN_IDLE;
  /* lineNumber/columnNumber are 0-based; -1 when unknown (and for meta nodes). */
  int64_t line = (!meta && fn->function_line) ? (int64_t)fn->function_line - 1 : -1;
  char script[16];
  snprintf(script, sizeof(script), "%u", (unsigned)fn->script_id);

  pl_json_obj_open(j);
  pl_json_kv_uint(j, "id", (uint64_t)idx + 1);
  pl_json_key(j, "callFrame");
  pl_json_obj_open(j);
  pl_json_kv_str(j, "functionName", c->t.strs.strs[fn->name]);
  pl_json_kv_str(j, "scriptId", script);
  pl_json_key(j, "url");
  put_url(c, j, meta ? "" : c->t.strs.strs[fn->file]);
  pl_json_kv_int(j, "lineNumber", line);
  pl_json_kv_int(j, "columnNumber", line < 0 ? -1 : 0); /* the model has no columns */
  pl_json_obj_close(j);
  pl_json_kv_uint(j, "hitCount", nd->value);
  pl_json_key(j, "children");
  pl_json_arr_open(j);
  for (uint32_t ch = nd->first_child; ch != NONE; ch = c->t.nodes[ch].next_sibling)
    pl_json_uint(j, (uint64_t)ch + 1);
  pl_json_arr_close(j);
  if (*tick_pos < nticks && ticks[*tick_pos].node == idx) {
    pl_json_key(j, "positionTicks");
    pl_json_arr_open(j);
    for (; *tick_pos < nticks && ticks[*tick_pos].node == idx; (*tick_pos)++) {
      pl_json_obj_open(j);
      pl_json_kv_uint(j, "line", ticks[*tick_pos].line);
      pl_json_kv_uint(j, "ticks", ticks[*tick_pos].ticks);
      pl_json_obj_close(j);
    }
    pl_json_arr_close(j);
  }
  pl_json_obj_close(j);
}

/* Timestamps, in microseconds of the monotonic clock.
 *
 * A sample of weight w stands for w sampling periods, and is written as w
 * consecutive samples one period apart: DevTools' call tree charges each
 * node hitCount x (profile time / all hits), so hitCount must count
 * periods, not signals, or a busy machine (late signals, w > 1) skews it.
 *
 * "wall": the w entries end at the sample's real time, one period apart
 * before it (clamped to be non-decreasing and not before startTime);
 * endTime is the end of the profile (or the last sample if later).
 *
 * "cpu": samples of several threads interleave, so real times measure
 * nothing: time is synthesized, each entry one period after the previous,
 * so endTime = startTime + the total accounted CPU time. With several busy
 * threads endTime can pass the real end of the profile: the axis is CPU
 * time, not wall time.
 */
typedef struct cp_clock {
  int cpu;
  uint64_t start_ns, acc_ns, prev_us;
} cp_clock;

static uint64_t sat_add(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }

static uint64_t sat_mul(uint64_t a, uint64_t b) {
  return (b && a > UINT64_MAX / b) ? UINT64_MAX : a * b;
}

static uint64_t end_time_us(const pl_cpu_profile *p, int cpu) {
  if (cpu) {
    uint64_t acc = 0;
    for (size_t i = 0; i < p->nsamples; i++)
      acc = sat_add(acc, sat_mul(p->samples[i].weight, p->period_ns));
    return sat_add(p->start_ns, acc) / 1000;
  }
  uint64_t end = p->end_ns > p->start_ns ? p->end_ns : p->start_ns;
  for (size_t i = 0; i < p->nsamples; i++)
    if (p->samples[i].time_ns > end) end = p->samples[i].time_ns;
  return end / 1000;
}

/* Microseconds since the previous entry (the first: since startTime) for
 * entry k (0..weight-1) of sample s. */
static uint64_t clock_delta(cp_clock *k, const pl_cpu_profile *p, const pl_cpu_sample *s,
                            uint32_t entry) {
  uint64_t us;
  if (k->cpu) {
    us = sat_add(k->start_ns, k->acc_ns) / 1000;
    k->acc_ns = sat_add(k->acc_ns, p->period_ns);
  } else {
    uint64_t back = sat_mul(s->weight - 1 - entry, p->period_ns);
    us = (s->time_ns > back ? s->time_ns - back : 0) / 1000;
  }
  if (us < k->prev_us) us = k->prev_us;
  uint64_t d = us - k->prev_us;
  k->prev_us = us;
  return d;
}

static void ctx_free(cp_ctx *c) {
  pl__calltree_free(&c->t);
  free(c->stack_leaf);
  pl__keytab_free(&c->tick_keys);
  free(c->ticks);
  pl_buf_free(&c->scratch);
}

int pl__cpuprofile_write(const pl_cpu_profile *p, pl__sink *out) {
  if (!out) return -EINVAL;
  int rc = pl__cpu_profile_check(p);
  if (rc) return rc;

  cp_ctx c;
  memset(&c, 0, sizeof(c));
  c.p = p;
  pl__keytab_init(&c.tick_keys);
  pl_buf_init(&c.scratch);
  cp_tick *ticks = NULL;
  size_t nticks = 0, tick_pos = 0;

  static const char *const meta_names[] = {"(root)", "(program)", "(idle)"};
  rc = pl__calltree_init(&c.t, p->frames, p->nframes, meta_names, 3);
  c.stack_leaf = malloc((p->nstacks ? p->nstacks : 1) * sizeof(*c.stack_leaf));
  if (rc || !c.stack_leaf) {
    rc = -ENOMEM;
    goto out;
  }
  memset(c.stack_leaf, 0xff, p->nstacks * sizeof(*c.stack_leaf));

  if ((rc = build_tree(&c))) goto out;

  /* positionTicks, sorted by node then line, read in step with the nodes. */
  nticks = c.tick_keys.n;
  ticks = malloc((nticks ? nticks : 1) * sizeof(*ticks));
  if (!ticks) {
    rc = -ENOMEM;
    goto out;
  }
  for (size_t t = 0; t < nticks; t++)
    ticks[t] = (cp_tick){c.tick_keys.keys[t].a, c.tick_keys.keys[t].b, c.ticks[t]};
  qsort(ticks, nticks, sizeof(*ticks), tick_cmp);

  int cpu = p->mode && strcmp(p->mode, "cpu") == 0;
  cp_clock clk = {cpu, p->start_ns, 0, p->start_ns / 1000};
  pl_json j;
  pl_json_init(&j, &out->buf);
  pl_json_obj_open(&j);
  pl_json_key(&j, "nodes");
  pl_json_arr_open(&j);
  for (size_t i = 0; i < c.t.node_keys.n && !out->error; i++) {
    put_node(&c, &j, (uint32_t)i, ticks, nticks, &tick_pos);
    pl__sink_maybe_flush(out);
  }
  pl_json_arr_close(&j);
  pl_json_kv_uint(&j, "startTime", p->start_ns / 1000);
  pl_json_kv_uint(&j, "endTime", end_time_us(p, cpu));
  pl_json_key(&j, "samples");
  pl_json_arr_open(&j);
  for (size_t i = 0; i < p->nsamples && !out->error; i++) {
    uint64_t id = (uint64_t)sample_node(&c, &p->samples[i]) + 1;
    for (uint32_t w = 0; w < p->samples[i].weight; w++) pl_json_uint(&j, id);
    pl__sink_maybe_flush(out);
  }
  pl_json_arr_close(&j);
  pl_json_key(&j, "timeDeltas");
  pl_json_arr_open(&j);
  for (size_t i = 0; i < p->nsamples && !out->error; i++) {
    for (uint32_t w = 0; w < p->samples[i].weight; w++)
      pl_json_uint(&j, clock_delta(&clk, p, &p->samples[i], w));
    pl__sink_maybe_flush(out);
  }
  pl_json_arr_close(&j);
  pl_json_obj_close(&j);
  pl_buf_putc(&out->buf, '\n');
  if (c.oom) rc = -ENOMEM;

out:
  free(ticks);
  ctx_free(&c);
  if (rc) return rc;
  return pl__sink_finish(out);
}
