/* Chrome/Node/proflab .cpuprofile reader (CDP Profiler.Profile JSON, see
 * readers.h): streamed with the JSON tokenizer; keeps a few words per node
 * and per sample, then builds the model's frames, stacks and samples. */
#include "format/readers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/cpu_common.h"
#include "format/json_reader.h"
#include "format/read_build.h"
#include "format/read_devtools.h"

#define NONE UINT32_MAX
#define MAX_ID (UINT32_MAX - 1u)

enum { K_NORMAL, K_ROOT, K_IDLE, K_PROGRAM };

typedef struct cp_node {
  uint64_t off; /* stream offset of the node object (for messages) */
  uint64_t hit;
  uint32_t id, name, file, fline; /* string ids; 1-based function line or 0 */
  uint32_t parent;                /* node index, NONE for the root */
  uint32_t kids_off, nkids;       /* child ids in kids[] */
  uint32_t ticks_off, nticks;     /* (line, ticks) pairs in ticks[] */
  uint32_t legacy_parent;         /* a `parent` id (old files), NONE without */
  uint32_t trie;                  /* trie node of (function, its first line); NONE for meta */
  uint8_t kind, has_id;
} cp_node;

typedef struct cp_ctx {
  pl__jreader r;
  pl__rb b;
  pl__read_err *err;
  pl_cpu_profile *p;
  cp_node *nodes;
  size_t nnodes, nodes_cap;
  uint32_t *kids; /* raw child ids */
  size_t nkids, kids_cap;
  uint32_t *ticks; /* pairs: line, ticks */
  size_t nticks, ticks_cap;
  /* samples as read, in one array (the model's, once filled): stack holds
   * the raw node id and time_ns the time delta in ns (an int64_t) until
   * build_samples(); either list may come first */
  pl_cpu_sample *sm;
  size_t sm_len, sm_cap;
  size_t nsamples, ndeltas;
  uint64_t samples_off, deltas_off;
  int has_samples, has_deltas, has_start, has_end;
  double start_us, end_us;
  uint32_t root;
  pl__dt_ids ids; /* id -> node index */
  /* children of each node (CSR), built from the parents */
  uint32_t *child_start, *child_list;
} cp_ctx;

/* ---- parsing ------------------------------------------------------------ */

static int nomem(cp_ctx *c) { return pl__read_errno(c->err, -ENOMEM); }

/* After a key: a call frame field (functionName, url, lineNumber; 0-based
 * in a callFrame, 1-based on an old file's node) into nd: 1, or 0 when the
 * key is none of them (the value is not read). */
static int read_frame_field(cp_ctx *c, cp_node *nd, int one_based) {
  return pl__dt_frame_field(&c->r, &c->b, c->err, one_based, &nd->name, &nd->file, &nd->fline);
}

static int read_call_frame(cp_ctx *c, cp_node *nd) {
  pl__jreader *r = &c->r;
  if (r->tok != PL__JT_OBJ) return pl__jr_fail(r, "a callFrame object");
  int k, t;
  while ((k = pl__jr_key(r)) > 0) {
    if ((t = read_frame_field(c, nd, 0)) < 0) return t;
    if (!t && (t = pl__jr_skip_value(r)) < 0) return t;
  }
  return k;
}

static int read_ticks(cp_ctx *c, cp_node *nd) {
  pl__jreader *r = &c->r;
  if (r->tok != PL__JT_ARR) return pl__jr_fail(r, "a positionTicks array");
  nd->ticks_off = (uint32_t)(c->nticks / 2);
  int e;
  while ((e = pl__jr_elem(r)) > 0) {
    if (r->tok != PL__JT_OBJ) return pl__jr_fail(r, "a positionTick object {line, ticks}");
    int64_t line = 0, ticks = 0;
    int k, t;
    while ((k = pl__jr_key(r)) > 0) {
      int is_line = pl__jr_is(r, "line");
      if (!is_line && !pl__jr_is(r, "ticks")) {
        if ((t = pl__jr_skip_value(r)) < 0) return t;
        continue;
      }
      if ((t = pl__jr_next(r)) < 0) return t;
      if ((t = pl__jr_int(r, 0, MAX_ID, is_line ? &line : &ticks,
                          is_line ? "a line number" : "a tick count")) < 0)
        return t;
    }
    if (k < 0) return k;
    if (!line || !ticks) continue;
    if (c->nticks / 2 >= MAX_ID) return pl__jr_failf(r, "too many positionTicks");
    if (PL__RESERVE(c->ticks, c->ticks_cap, c->nticks + 2)) return nomem(c);
    c->ticks[c->nticks++] = (uint32_t)line;
    c->ticks[c->nticks++] = (uint32_t)ticks;
    nd->nticks++;
  }
  return e;
}

static int read_id_list(cp_ctx *c, uint32_t **arr, size_t *n, size_t *cap, const char *what) {
  pl__jreader *r = &c->r;
  int e, t;
  while ((e = pl__jr_elem(r)) > 0) {
    int64_t v;
    if ((t = pl__jr_int(r, 0, MAX_ID, &v, what)) < 0) return t;
    if (*n >= MAX_ID) return pl__jr_failf(r, "more than 4294967294 entries: not read");
    if (PL__RESERVE(*arr, *cap, *n + 1)) return nomem(c);
    (*arr)[(*n)++] = (uint32_t)v;
  }
  return e;
}

static int read_node(cp_ctx *c) {
  pl__jreader *r = &c->r;
  if (r->tok != PL__JT_OBJ) return pl__jr_fail(r, "a node object");
  if (c->nnodes >= MAX_ID) return pl__jr_failf(r, "more than 4294967294 nodes: not read");
  if (PL__RESERVE(c->nodes, c->nodes_cap, c->nnodes + 1)) return nomem(c);
  cp_node *nd = &c->nodes[c->nnodes++];
  memset(nd, 0, sizeof(*nd));
  nd->off = r->tok_off;
  nd->parent = nd->legacy_parent = nd->trie = NONE;
  nd->name = nd->file = NONE;
  int k, t;
  while ((k = pl__jr_key(r)) > 0) {
    int64_t v;
    if (pl__jr_is(r, "id")) {
      if ((t = pl__jr_next(r)) < 0) return t;
      if ((t = pl__jr_int(r, 0, MAX_ID, &v, "a node id (a whole number from 0 to 4294967294)")) < 0)
        return t;
      nd->id = (uint32_t)v;
      nd->has_id = 1;
    } else if (pl__jr_is(r, "callFrame")) {
      if ((t = pl__jr_next(r)) < 0) return t;
      if ((t = read_call_frame(c, nd)) < 0) return t;
    } else if (pl__jr_is(r, "hitCount")) {
      if ((t = pl__jr_next(r)) < 0) return t;
      if ((t = pl__jr_int(r, 0, UINT32_MAX, &v, "a hitCount (a whole number up to 4294967295)")) <
          0)
        return t;
      nd->hit = (uint64_t)v;
    } else if (pl__jr_is(r, "children")) {
      if ((t = pl__jr_next(r)) < 0) return t;
      if (r->tok != PL__JT_ARR) return pl__jr_fail(r, "a children array of node ids");
      size_t before = c->nkids;
      if ((t = read_id_list(c, &c->kids, &c->nkids, &c->kids_cap, "a child node id")) < 0) return t;
      nd->kids_off = (uint32_t)before;
      nd->nkids = (uint32_t)(c->nkids - before);
    } else if (pl__jr_is(r, "positionTicks")) {
      if ((t = pl__jr_next(r)) < 0) return t;
      if ((t = read_ticks(c, nd)) < 0) return t;
    } else if (pl__jr_is(r, "parent")) { /* older files: parent ids instead of children */
      if ((t = pl__jr_next(r)) < 0) return t;
      if ((t = pl__jr_int(r, 0, MAX_ID, &v, "a parent node id")) < 0) return t;
      nd->legacy_parent = (uint32_t)v;
    } else if ((t = read_frame_field(c, nd, 1)) < 0) { /* older files: on the node */
      return t;
    } else if (!t && (t = pl__jr_skip_value(r)) < 0) {
      return t;
    }
  }
  if (k < 0) return k;
  if (!nd->has_id)
    return pl__read_fail(c->err, "offset %llu: expected the node's \"id\", found none",
                         (unsigned long long)nd->off);
  if (nd->name == NONE) {
    int64_t id = pl__rb_name(&c->b, "", 0);
    if (id < 0) return nomem(c);
    nd->name = (uint32_t)id;
  }
  if (nd->file == NONE) {
    int64_t id = pl__rb_str(&c->b, "", 0);
    if (id < 0) return nomem(c);
    nd->file = (uint32_t)id;
  }
  return 0;
}

/* Makes sm[i] exist (zeroed when new). 0 or -errno. */
static int sample_slot(cp_ctx *c, size_t i) {
  if (i < c->sm_len) return 0;
  if (i >= MAX_ID) return pl__jr_failf(&c->r, "more than 4294967294 samples: not read");
  if (PL__RESERVE(c->sm, c->sm_cap, i + 1)) return nomem(c);
  memset(&c->sm[c->sm_len], 0, (i + 1 - c->sm_len) * sizeof(*c->sm));
  c->sm_len = i + 1;
  return 0;
}

static int read_top(cp_ctx *c) {
  pl__jreader *r = &c->r;
  int k, t;
  if ((t = pl__jr_expect(r, PL__JT_OBJ, "a CPU profile (a JSON object)")) < 0) return t;
  while ((k = pl__jr_key(r)) > 0) {
    if (pl__jr_is(r, "nodes")) {
      if ((t = pl__jr_expect(r, PL__JT_ARR, "the nodes array")) < 0) return t;
      int e;
      while ((e = pl__jr_elem(r)) > 0)
        if ((t = read_node(c)) < 0) return t;
      if (e < 0) return e;
    } else if (pl__jr_is(r, "startTime") || pl__jr_is(r, "endTime")) {
      int start = r->str.data[0] == 's';
      if ((t = pl__jr_next(r)) < 0) return t;
      if ((t = pl__jr_num(r, start ? &c->start_us : &c->end_us,
                          start ? "a startTime (microseconds)" : "an endTime (microseconds)")) < 0)
        return t;
      if (start)
        c->has_start = 1;
      else
        c->has_end = 1;
    } else if (pl__jr_is(r, "samples")) {
      if ((t = pl__jr_expect(r, PL__JT_ARR, "the samples array (node ids)")) < 0) return t;
      c->samples_off = r->tok_off;
      c->has_samples = 1;
      c->nsamples = 0;
      int e;
      while ((e = pl__jr_elem(r)) > 0) {
        int64_t v;
        if ((t = pl__jr_int(r, 0, MAX_ID, &v, "a sample (a node id)")) < 0) return t;
        if ((t = sample_slot(c, c->nsamples)) < 0) return t;
        c->sm[c->nsamples++].stack = (uint32_t)v;
      }
      if (e < 0) return e;
    } else if (pl__jr_is(r, "timeDeltas")) {
      if ((t = pl__jr_expect(r, PL__JT_ARR, "the timeDeltas array (microseconds)")) < 0) return t;
      c->deltas_off = r->tok_off;
      c->has_deltas = 1;
      c->ndeltas = 0;
      int e;
      while ((e = pl__jr_elem(r)) > 0) {
        double d;
        if ((t = pl__jr_num(r, &d, "a time delta (microseconds)")) < 0) return t;
        if ((t = sample_slot(c, c->ndeltas)) < 0) return t;
        c->sm[c->ndeltas++].time_ns = (uint64_t)pl__round_i64(d * 1000.0);
      }
      if (e < 0) return e;
    } else if ((t = pl__jr_skip_value(r)) < 0) {
      return t;
    }
  }
  if (k < 0) return k;
  return pl__jr_expect(r, PL__JT_END, "the end of the file after the profile");
}

/* ---- the tree ----------------------------------------------------------- */

static int64_t node_of(const cp_ctx *c, uint32_t id) { return pl__dt_ids_find(&c->ids, id); }

static int index_ids(cp_ctx *c) {
  uint32_t max = 0;
  for (size_t i = 0; i < c->nnodes; i++)
    if (c->nodes[i].id > max) max = c->nodes[i].id;
  if (pl__dt_ids_reserve(&c->ids, max, c->nnodes)) return nomem(c);
  for (size_t i = 0; i < c->nnodes; i++) {
    cp_node *nd = &c->nodes[i];
    if (node_of(c, nd->id) >= 0)
      return pl__read_fail(c->err, "offset %llu: node id %u appears twice",
                           (unsigned long long)nd->off, nd->id);
    if (pl__dt_ids_add(&c->ids, nd->id, (uint32_t)i)) return nomem(c);
  }
  return 0;
}

/* Parents from the children lists (or, in older files, the parent ids); the
 * one root; children lists in node order (CSR). */
static int link_tree(cp_ctx *c) {
  size_t n = c->nnodes;
  int by_kids = c->nkids > 0;
  for (size_t i = 0; i < n; i++) {
    cp_node *nd = &c->nodes[i];
    if (by_kids) {
      for (uint32_t k = 0; k < nd->nkids; k++) {
        uint32_t kid = c->kids[nd->kids_off + k];
        int64_t j = node_of(c, kid);
        if (j < 0)
          return pl__read_fail(c->err, "offset %llu: node %u lists child %u, which does not exist",
                               (unsigned long long)nd->off, nd->id, kid);
        cp_node *ch = &c->nodes[j];
        if ((size_t)j == i)
          return pl__read_fail(c->err, "offset %llu: node %u lists itself as a child",
                               (unsigned long long)nd->off, kid);
        if (ch->parent != NONE)
          return pl__read_fail(c->err,
                               "offset %llu: node %u is a child of node %u and of node %u: "
                               "not a tree",
                               (unsigned long long)nd->off, kid, c->nodes[ch->parent].id, nd->id);
        ch->parent = (uint32_t)i;
      }
    } else if (nd->legacy_parent != NONE) {
      int64_t j = node_of(c, nd->legacy_parent);
      if (j < 0 || (size_t)j == i)
        return pl__read_fail(c->err, "offset %llu: node %u names parent %u, which does not exist",
                             (unsigned long long)nd->off, nd->id, nd->legacy_parent);
      nd->parent = (uint32_t)j;
    }
  }
  c->root = NONE;
  for (size_t i = 0; i < n; i++) {
    if (c->nodes[i].parent != NONE) continue;
    if (c->root != NONE)
      return pl__read_fail(c->err,
                           "offset %llu: node %u has no parent, nor has node %u: a profile has "
                           "one root",
                           (unsigned long long)c->nodes[i].off, c->nodes[i].id,
                           c->nodes[c->root].id);
    c->root = (uint32_t)i;
  }
  if (c->root == NONE)
    return pl__read_fail(c->err, "offset %llu: every node has a parent: no root (a cycle)",
                         (unsigned long long)c->nodes[0].off);
  c->child_start = calloc(n + 1, sizeof(*c->child_start));
  c->child_list = malloc((n ? n : 1) * sizeof(*c->child_list));
  if (!c->child_start || !c->child_list) return nomem(c);
  for (size_t i = 0; i < n; i++)
    if (c->nodes[i].parent != NONE) c->child_start[c->nodes[i].parent + 1]++;
  for (size_t i = 0; i < n; i++) c->child_start[i + 1] += c->child_start[i];
  uint32_t *fill = malloc((n ? n : 1) * sizeof(*fill));
  if (!fill) return nomem(c);
  memcpy(fill, c->child_start, n * sizeof(*fill));
  for (size_t i = 0; i < n; i++)
    if (c->nodes[i].parent != NONE) c->child_list[fill[c->nodes[i].parent]++] = (uint32_t)i;
  free(fill);
  return 0;
}

static int is_named(const cp_ctx *c, const cp_node *nd, const char *name) {
  return strcmp(c->b.strs.strs[nd->name], name) == 0 && c->b.strs.strs[nd->file][0] == '\0';
}

/* Frames and trie nodes, parents first (depth-first from the root); every
 * node must be reached, or the children form a cycle. */
static int build_tree(cp_ctx *c) {
  size_t n = c->nnodes, seen = 0;
  int64_t empty = pl__rb_str(&c->b, "", 0);
  if (empty < 0) return nomem(c);
  uint32_t *todo = malloc((n ? n : 1) * sizeof(*todo));
  if (!todo) return nomem(c);
  size_t top = 0;
  todo[top++] = c->root;
  int rc = 0;
  while (top) {
    uint32_t i = todo[--top];
    cp_node *nd = &c->nodes[i];
    seen++;
    uint32_t nkids = c->child_start[i + 1] - c->child_start[i];
    if (i == c->root && is_named(c, nd, "(root)")) {
      nd->kind = K_ROOT;
    } else if (nd->parent == c->root && !nkids && is_named(c, nd, "(idle)")) {
      nd->kind = K_IDLE;
    } else if (nd->parent == c->root && !nkids && is_named(c, nd, "(program)")) {
      nd->kind = K_PROGRAM;
    } else {
      int64_t f = pl__rb_frame(&c->b, nd->name, nd->file, (uint32_t)empty, nd->fline, nd->fline, 0);
      uint32_t parent = nd->parent == NONE ? PL__RB_ROOT : c->nodes[nd->parent].trie;
      if (parent == NONE) parent = PL__RB_ROOT;
      int64_t t = f < 0 ? f : pl__rb_push(&c->b, parent, (uint32_t)f);
      if (t < 0) {
        rc = pl__read_errno(c->err, (int)t);
        break;
      }
      nd->trie = (uint32_t)t;
    }
    for (uint32_t k = c->child_start[i + 1]; k-- > c->child_start[i];)
      todo[top++] = c->child_list[k];
  }
  free(todo);
  if (rc) return rc;
  if (seen != n) {
    for (size_t i = 0; i < n; i++) {
      const cp_node *nd = &c->nodes[i];
      if (nd->kind == K_NORMAL && nd->trie == NONE)
        return pl__read_fail(c->err,
                             "offset %llu: node %u is not reachable from the root (node %u): "
                             "its parents form a cycle",
                             (unsigned long long)nd->off, nd->id, c->nodes[c->root].id);
    }
  }
  return 0;
}

/* ---- samples ------------------------------------------------------------ */

/* The stack of a sample at node ni whose leaf is at `line` (0: the
 * function's own line). */
static int64_t line_stack(cp_ctx *c, uint32_t ni, uint32_t line) {
  const cp_node *nd = &c->nodes[ni];
  if (nd->kind == K_IDLE) return PL_STACK_IDLE;
  if (nd->kind != K_NORMAL) return PL_STACK_PROGRAM;
  if (!line || line == nd->fline) return pl__rb_stack(&c->b, nd->trie);
  int64_t empty = pl__rb_str(&c->b, "", 0);
  if (empty < 0) return empty;
  int64_t f = pl__rb_frame(&c->b, nd->name, nd->file, (uint32_t)empty, line, nd->fline, 0);
  if (f < 0) return f;
  uint32_t parent = nd->parent == NONE ? NONE : c->nodes[nd->parent].trie;
  int64_t t = pl__rb_push(&c->b, parent == NONE ? PL__RB_ROOT : parent, (uint32_t)f);
  return t < 0 ? t : pl__rb_stack(&c->b, (uint32_t)t);
}

/* Per node while samples are assigned in file order: its positionTicks
 * hand out lines, as many samples each as it has ticks. */
typedef struct cp_cursor {
  uint32_t tick;  /* the current (line, ticks) pair, relative to the node's */
  uint32_t left;  /* samples left for it */
  uint32_t stack; /* its stack, NONE until known */
  uint32_t def;   /* the stack of the function's own line, NONE until known */
} cp_cursor;

static int64_t sample_stack(cp_ctx *c, cp_cursor *cur, uint32_t ni) {
  const cp_node *nd = &c->nodes[ni];
  cp_cursor *k = &cur[ni];
  if (k->left == 0 && k->tick < nd->nticks) { /* the next pair */
    const uint32_t *pair = &c->ticks[2 * ((size_t)nd->ticks_off + k->tick)];
    int64_t s = line_stack(c, ni, pair[0]);
    if (s < 0) return s;
    k->stack = (uint32_t)s;
    k->left = pair[1];
  }
  if (k->left) {
    if (--k->left == 0) k->tick++;
    return k->stack;
  }
  if (k->def == NONE) {
    int64_t s = line_stack(c, ni, 0);
    if (s < 0) return s;
    k->def = (uint32_t)s;
  }
  return k->def;
}

/* Samples from hitCounts (a file without `samples`): per node, one per
 * positionTicks line and one for the rest, weighted. */
static int hit_samples(cp_ctx *c, pl_cpu_sample *samples, size_t *k, uint64_t at) {
  for (size_t i = 0; i < c->nnodes; i++) {
    const cp_node *nd = &c->nodes[i];
    uint64_t hit = nd->hit;
    for (uint32_t tk = 0; tk <= nd->nticks && hit; tk++) {
      const uint32_t *pair = tk < nd->nticks ? &c->ticks[2 * ((size_t)nd->ticks_off + tk)] : NULL;
      uint64_t w = pair ? (pair[1] < hit ? pair[1] : hit) : hit;
      int64_t st = line_stack(c, (uint32_t)i, pair ? pair[0] : 0);
      if (st < 0) return pl__read_errno(c->err, (int)st);
      hit -= w;
      samples[(*k)++] = (pl_cpu_sample){at, (uint32_t)st, (uint32_t)w, 0}; /* hit < 2^32 */
    }
  }
  return 0;
}

static int cmp_sample_time(const void *a, const void *b) {
  const pl_cpu_sample *x = a, *y = b;
  if (x->time_ns != y->time_ns) return x->time_ns < y->time_ns ? -1 : 1;
  return x->tid < y->tid ? -1 : x->tid > y->tid; /* tid holds the file order meanwhile */
}

static uint64_t clamp_ns(int64_t v) { return v < 0 ? 0 : (uint64_t)v; }

static int64_t us_to_ns(double us) { return pl__round_i64(us * 1000.0); }

static int build_samples(cp_ctx *c) {
  pl_cpu_profile *p = c->p;
  size_t n = 0;
  int from_hits = !c->has_samples;
  if (from_hits) {
    for (size_t i = 0; i < c->nnodes; i++) /* a bound: one per line and one for the rest */
      n += c->nodes[i].nticks + 1;
  } else {
    n = c->nsamples;
    if (c->has_deltas && c->ndeltas != c->nsamples)
      return pl__read_fail(c->err, "offset %llu: timeDeltas has %zu entries for %zu samples",
                           (unsigned long long)c->deltas_off, c->ndeltas, c->nsamples);
  }
  cp_cursor *cur = malloc((c->nnodes ? c->nnodes : 1) * sizeof(*cur));
  if (!cur) return nomem(c);
  for (size_t i = 0; i < c->nnodes; i++) cur[i] = (cp_cursor){0, 0, NONE, NONE};
  if (from_hits || !c->sm) { /* a new array (the one read holds deltas at most) */
    free(c->sm);
    c->sm = malloc((n ? n : 1) * sizeof(*c->sm));
    c->sm_len = c->sm_cap = n;
    if (!c->sm) {
      free(cur);
      return nomem(c);
    }
  }
  pl_cpu_sample *samples = c->sm; /* filled in place */
  int rc = 0;

  int64_t start = c->has_start ? us_to_ns(c->start_us) : 0, t = start;
  int64_t end = c->has_end ? us_to_ns(c->end_us) : start;
  size_t k = 0;
  int sorted = 1;
  for (size_t i = 0; !from_hits && i < n; i++) {
    uint32_t id = samples[i].stack;
    int64_t delta = (int64_t)samples[i].time_ns;
    int64_t ni = node_of(c, id);
    if (ni < 0) {
      rc = pl__read_fail(c->err, "offset %llu: samples[%zu] is node %u, which does not exist",
                         (unsigned long long)c->samples_off, i, id);
      goto out;
    }
    int64_t st = sample_stack(c, cur, (uint32_t)ni);
    if (st < 0) {
      rc = pl__read_errno(c->err, (int)st);
      goto out;
    }
    if (c->has_deltas) {
      if (delta < 0) sorted = 0;
      t = (t > 0 && delta > INT64_MAX - t) ? INT64_MAX : t + delta;
    } else {
      t = start + (int64_t)((double)(end - start) * (double)i / (double)n);
    }
    samples[k++] = (pl_cpu_sample){clamp_ns(t), (uint32_t)st, 1, (uint32_t)i};
  }
  if (from_hits && (rc = hit_samples(c, samples, &k, clamp_ns(start))) < 0) goto out;
  if (!sorted) qsort(samples, k, sizeof(*samples), cmp_sample_time); /* as DevTools does */
  uint64_t weight = 0;
  for (size_t i = 0; i < k; i++) {
    samples[i].tid = 0;
    weight += samples[i].weight;
    if (samples[i].stack == PL_STACK_IDLE) p->idle_samples++;
  }
  if ((rc = pl_cpu_profile_adopt(p, samples))) { /* freed by adopt */
    c->sm = NULL;
    rc = nomem(c);
    goto out;
  }
  c->sm = NULL;
  p->samples = samples;
  p->nsamples = k;
  p->start_ns = c->has_start ? clamp_ns(start) : (k ? samples[0].time_ns : 0);
  p->end_ns = c->has_end ? clamp_ns(end) : (k ? samples[k - 1].time_ns : p->start_ns);
  if (p->end_ns < p->start_ns) p->end_ns = p->start_ns;
  /* DevTools' sample time: the profile's duration over its hits */
  uint64_t dur = p->end_ns - p->start_ns;
  p->period_ns = weight && dur ? (dur + weight / 2) / weight : 0;
  if (!p->period_ns) p->period_ns = 1000000; /* no duration: assume 1 ms */
  p->mode = "wall";
out:
  free(cur);
  return rc;
}

/* ---- entry -------------------------------------------------------------- */

static char *dup_cpu(void *model, const char *s) { return pl_cpu_profile_strdup(model, s); }

int pl__cpuprofile_read(pl__rsrc *src, pl_cpu_profile **out, pl__read_err *err) {
  cp_ctx c;
  memset(&c, 0, sizeof(c));
  *out = NULL;
  c.err = err;
  pl__dt_ids_init(&c.ids);
  c.p = pl_cpu_profile_new();
  if (!c.p) return pl__read_errno(err, -ENOMEM);
  pl__rb_init(&c.b, dup_cpu, c.p);
  int rc = pl__jr_init(&c.r, src, err);
  if (rc) goto out;
  if ((rc = read_top(&c)) < 0) goto out;
  if (!c.nnodes) {
    rc = pl__read_fail(err, "offset 0: expected a \"nodes\" array with the root node, found %s",
                       c.has_samples ? "samples without nodes" : "no nodes");
    goto out;
  }
  if ((rc = index_ids(&c)) < 0) goto out;
  if ((rc = link_tree(&c)) < 0) goto out;
  if ((rc = build_tree(&c)) < 0) goto out;
  if ((rc = build_samples(&c)) < 0) goto out;
  if ((rc = pl__rb_finish_cpu(&c.b, c.p)) < 0) {
    rc = pl__read_errno(err, rc);
    goto out;
  }
  *out = c.p;
  c.p = NULL;
out:
  pl__jr_free(&c.r);
  pl__rb_free(&c.b);
  pl_cpu_profile_free(c.p);
  free(c.nodes);
  free(c.kids);
  free(c.ticks);
  free(c.sm);
  free(c.child_start);
  free(c.child_list);
  pl__dt_ids_free(&c.ids);
  return rc < 0 ? pl__read_errno(err, rc) : 0;
}
