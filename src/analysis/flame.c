/* The flame-graph tree: stacks of CPU profiles and heap snapshots merged by
 * function, root first, and heap graphs' dominator trees by class (see
 * flame.h). */
#include "analysis/flame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/cpu_common.h"
#include "format/heap_common.h"

#define NONE PL__FLAME_NONE
#define NO_FILE UINT32_MAX          /* the file id of PL__FLAME_BY_NAME keys */
#define CLASS_FILE (UINT32_MAX - 1) /* the file id of heap-graph class keys */

static uint64_t sat_add(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }

static const pl_frame root_frame = {"all", "", "", 0, 0, 0};
static const pl_frame idle_frame = {"(idle)", "", "", 0, 0, 0};
static const pl_frame program_frame = {"(program)", "", "", 0, 0, 0};
static const pl_frame unknown_frame = {PL__HEAP_UNKNOWN, "", "", 0, 0, 0};
static const pl_frame truncated_frame = {PL__HEAP_TRUNCATED, "", "", 0, 0, 0};
static const pl_frame deeper_frame = {"(deeper)", "", "", 0, 0, 0};

/* The id of the tree's copy of s: 0.. or -ENOMEM. */
static int64_t intern(pl__flame_tree *t, const char *s) {
  int64_t id = pl__strtab_find(&t->strs, s);
  if (id >= 0) return id;
  char *copy = pl__arena_strdup(&t->arena, s);
  if (!copy) return -ENOMEM;
  return pl__strtab_intern(&t->strs, copy);
}

static int is_meta(const char *name, const char *file) {
  size_t len = strlen(name);
  return !*file && len > 2 && name[0] == '(' && name[len - 1] == ')';
}

/* The function of frame f: its index in t->fns, or -ENOMEM / -EFBIG. */
static int64_t fn_of(pl__flame_tree *t, const pl_frame *f) {
  const char *name = f->function && *f->function ? f->function : "(unknown)";
  const char *file = pl__str(f->file);
  int by_name = (t->flags & PL__FLAME_BY_NAME) != 0;
  int64_t n = intern(t, name);
  if (n < 0) return n;
  int64_t fi = intern(t, file);
  if (fi < 0) return fi;
  int added;
  int64_t r = pl__keytab_intern(&t->fn_keys, (uint32_t)n, by_name ? NO_FILE : (uint32_t)fi,
                                by_name ? 0 : f->function_line, &added);
  if (r < 0) return r;
  size_t fn = (size_t)r + 1; /* fns[0] is the root's */
  if (!added) return (int64_t)fn;
  if (fn >= NONE) return -EFBIG;
  if (PL__RESERVE(t->fns, t->fcap, fn + 1)) return -ENOMEM;
  char *module = pl__arena_strdup(&t->arena, pl__str(f->module));
  if (!module) return -ENOMEM;
  t->fns[fn] = (pl__flame_fn){
      .name = t->strs.strs[n],
      .file = t->strs.strs[fi],
      .module = module,
      .line = f->function_line ? f->function_line : f->line,
      .meta = is_meta(name, file),
  };
  t->nfns = fn + 1;
  return (int64_t)fn;
}

/* The child of node parent for function fn, added when new: its index, or
 * -ENOMEM / -EFBIG. */
static int64_t child(pl__flame_tree *t, uint32_t parent, uint32_t fn) {
  int added;
  int64_t r = pl__keytab_intern(&t->node_keys, parent, fn, 0, &added);
  if (r < 0) return r;
  size_t node = (size_t)r + 1;
  if (!added) return (int64_t)node;
  if (node >= NONE) return -EFBIG;
  if (PL__RESERVE(t->nodes, t->ncap, node + 1)) return -ENOMEM;
  uint32_t depth = t->nodes[parent].depth + 1;
  t->nodes[node] = (pl__flame_node){
      .fn = fn,
      .parent = parent,
      .first_child = NONE,
      .next_sibling = NONE,
      .depth = depth,
  };
  if (depth > t->max_depth) t->max_depth = depth;
  t->nnodes = node + 1;
  return (int64_t)node;
}

/* Adds value w to node (its total) and to every node above it. */
static void add_up(pl__flame_tree *t, int side, uint32_t node, uint64_t w) {
  t->nodes[node].self[side] = sat_add(t->nodes[node].self[side], w);
  for (uint32_t n = node; n != NONE; n = t->nodes[n].parent)
    t->nodes[n].total[side] = sat_add(t->nodes[n].total[side], w);
}

/* Adds a stack of one pseudo-function (e.g. "(idle)") under the root. */
static int add_meta(pl__flame_tree *t, int side, const pl_frame *f, uint64_t w) {
  if (!w) return 0;
  int64_t fn = fn_of(t, f);
  if (fn < 0) return (int)fn;
  int64_t node = child(t, 0, (uint32_t)fn);
  if (node < 0) return (int)node;
  add_up(t, side, (uint32_t)node, w);
  return 0;
}

int pl__flame_init(pl__flame_tree *t, pl__flame_unit unit, unsigned flags) {
  memset(t, 0, sizeof(*t));
  pl__strtab_init(&t->strs);
  pl__keytab_init(&t->fn_keys);
  pl__keytab_init(&t->node_keys);
  pl__arena_init(&t->arena);
  t->unit = unit;
  t->flags = flags;
  int64_t name = intern(t, root_frame.function);
  int64_t file = name < 0 ? name : intern(t, "");
  if (file < 0 || PL__RESERVE(t->fns, t->fcap, 64) || PL__RESERVE(t->nodes, t->ncap, 64)) {
    pl__flame_free(t);
    return -ENOMEM;
  }
  t->fns[0] = (pl__flame_fn){t->strs.strs[name], t->strs.strs[file], t->strs.strs[file], 0, 1};
  t->nfns = 1;
  t->nodes[0] =
      (pl__flame_node){.fn = 0, .parent = NONE, .first_child = NONE, .next_sibling = NONE};
  t->nnodes = 1;
  return 0;
}

void pl__flame_free(pl__flame_tree *t) {
  free(t->nodes);
  free(t->fns);
  pl__strtab_free(&t->strs);
  pl__keytab_free(&t->fn_keys);
  pl__keytab_free(&t->node_keys);
  pl__arena_free(&t->arena);
  memset(t, 0, sizeof(*t));
}

static int bad_side(const pl__flame_tree *t, int side, pl__flame_unit unit) {
  return (side != PL__FLAME_MAIN && side != PL__FLAME_BASE) || t->unit != unit || t->finished ||
         !t->nnodes;
}

/* ---- CPU ---------------------------------------------------------------- */

int pl__flame_add_cpu(pl__flame_tree *t, int side, const pl_cpu_profile *p, int times_known) {
  if (bad_side(t, side, PL__FLAME_SAMPLES)) return -EINVAL;
  int rc = pl__cpu_profile_check(p);
  if (rc) return rc;
  uint64_t idle = 0, program = 0, counted = 0;
  uint64_t *weight = calloc(p->nstacks ? p->nstacks : 1, sizeof(*weight));
  uint32_t *frame_fn = malloc((p->nframes ? p->nframes : 1) * sizeof(*frame_fn));
  if (!weight || !frame_fn) {
    rc = -ENOMEM;
    goto out;
  }
  memset(frame_fn, 0xff, p->nframes * sizeof(*frame_fn));
  int with_idle = (t->flags & PL__FLAME_IDLE) != 0;
  for (size_t i = 0; i < p->nsamples; i++) {
    const pl_cpu_sample *s = &p->samples[i];
    uint32_t st = pl__sample_stack(p, s);
    if (st == PL_STACK_IDLE) {
      idle = sat_add(idle, s->weight);
      if (!with_idle) continue;
    } else if (st == PL_STACK_PROGRAM) {
      program = sat_add(program, s->weight);
    } else {
      weight[st] = sat_add(weight[st], s->weight);
    }
    counted++;
  }
  for (size_t si = 0; si < p->nstacks; si++) {
    if (!weight[si]) continue;
    const pl_cpu_stack *st = &p->stacks[si];
    uint32_t node = 0;
    for (uint32_t d = st->depth; d-- > 0;) { /* root first */
      uint32_t f = st->frames[d];
      if (frame_fn[f] == NONE) {
        int64_t fn = fn_of(t, &p->frames[f]);
        if (fn < 0) {
          rc = (int)fn;
          goto out;
        }
        frame_fn[f] = (uint32_t)fn;
      }
      int64_t c = child(t, node, frame_fn[f]);
      if (c < 0) {
        rc = (int)c;
        goto out;
      }
      node = (uint32_t)c;
    }
    add_up(t, side, node, weight[si]);
  }
  if ((rc = add_meta(t, side, &program_frame, program))) goto out;
  if (with_idle && (rc = add_meta(t, side, &idle_frame, idle))) goto out;
  t->idle[side] = sat_add(t->idle[side], idle);
  t->samples[side] = sat_add(t->samples[side], counted);
  t->period_ns[side] = times_known ? p->period_ns : 0;
out:
  free(weight);
  free(frame_fn);
  return rc;
}

/* ---- heap --------------------------------------------------------------- */

int pl__flame_add_heap(pl__flame_tree *t, int side, const pl_heap_snapshot *s) {
  if (bad_side(t, side, PL__FLAME_BYTES)) return -EINVAL;
  pl__heap_view v;
  int rc = pl__heap_view_init(&v, s);
  if (rc) return rc;
  uint32_t *frame_fn = malloc((v.nframes ? v.nframes : 1) * sizeof(*frame_fn));
  if (!frame_fn) {
    rc = -ENOMEM;
    goto out;
  }
  memset(frame_fn, 0xff, v.nframes * sizeof(*frame_fn));
  for (size_t si = 0; si < s->nstacks; si++) {
    const pl_heap_stack *st = &s->stacks[si];
    uint64_t bytes = pl__heap_round(st->inuse_bytes);
    if (!bytes) continue;
    if (!st->depth) {
      if ((rc = add_meta(t, side, &unknown_frame, bytes))) goto out;
      continue;
    }
    uint32_t node = 0;
    if (st->flags & PL_HEAP_STACK_TRUNCATED) {
      int64_t fn = fn_of(t, &truncated_frame);
      int64_t c = fn < 0 ? fn : child(t, 0, (uint32_t)fn);
      if (c < 0) {
        rc = (int)c;
        goto out;
      }
      node = (uint32_t)c;
    }
    for (uint32_t d = st->depth; d-- > v.first[si];) { /* outermost caller first */
      uint32_t f = v.stack_frames[si][d];
      if (frame_fn[f] == NONE) {
        int64_t fn = fn_of(t, &v.frames[f]);
        if (fn < 0) {
          rc = (int)fn;
          goto out;
        }
        frame_fn[f] = (uint32_t)fn;
      }
      int64_t c = child(t, node, frame_fn[f]);
      if (c < 0) {
        rc = (int)c;
        goto out;
      }
      node = (uint32_t)c;
    }
    add_up(t, side, node, bytes);
  }
  t->samples[side] = sat_add(t->samples[side], s->nsamples);
out:
  free(frame_fn);
  pl__heap_view_free(&v);
  return rc;
}

/* ---- heap graphs: the dominator tree by class --------------------------- */

/* The function of class k of c (keyed by its class key): its index, or
 * -ENOMEM / -EFBIG. */
static int64_t class_fn(pl__flame_tree *t, const pl__heap_classes *c, size_t k) {
  int64_t key = intern(t, c->key[k]);
  if (key < 0) return key;
  int added;
  int64_t r = pl__keytab_intern(&t->fn_keys, (uint32_t)key, CLASS_FILE, 0, &added);
  if (r < 0) return r;
  size_t fn = (size_t)r + 1;
  if (!added) return (int64_t)fn;
  if (fn >= NONE) return -EFBIG;
  if (PL__RESERVE(t->fns, t->fcap, fn + 1)) return -ENOMEM;
  int64_t name = intern(t, c->name[k]);
  int64_t none = name < 0 ? name : intern(t, "");
  if (none < 0) return none;
  t->fns[fn] = (pl__flame_fn){
      .name = t->strs.strs[name],
      .file = t->strs.strs[none],
      .module = t->strs.strs[none],
      .line = 0,
      .meta = is_meta(c->name[k], ""),
  };
  t->nfns = fn + 1;
  return (int64_t)fn;
}

int pl__flame_add_heap_graph(pl__flame_tree *t, int side, const pl_heap_graph *g,
                             const pl__heap_classes *c) {
  if (bad_side(t, side, PL__FLAME_BYTES) || !g->node_count) return -EINVAL;
  uint32_t n = g->node_count;
  uint32_t *idom = malloc((size_t)n * sizeof(*idom));
  uint64_t *ret = malloc((size_t)n * sizeof(*ret));
  uint32_t *kids = calloc((size_t)n + 1, sizeof(*kids)); /* children: kid[kids[v]..kids[v+1]) */
  uint32_t *kid = malloc((size_t)n * sizeof(*kid));
  uint32_t *map = malloc((size_t)n * sizeof(*map)); /* node -> its frame */
  uint32_t *stack = malloc((size_t)n * sizeof(*stack));
  uint32_t *cfn = malloc((c->n ? c->n : 1) * sizeof(*cfn)); /* class -> fn */
  int rc = -ENOMEM;
  if (!idom || !ret || !kids || !kid || !map || !stack || !cfn) goto out;
  if ((rc = pl__heap_dominators(g, c->self, idom, ret, NULL)) < 0) goto out;
  memset(cfn, 0xff, (c->n ? c->n : 1) * sizeof(*cfn));
  int64_t deeper = fn_of(t, &deeper_frame);
  if (deeper < 0) {
    rc = (int)deeper;
    goto out;
  }
  for (uint32_t v = 1; v < n; v++) kids[idom[v] + 1]++;
  for (uint32_t v = 0; v < n; v++) kids[v + 1] += kids[v];
  for (uint32_t v = 1; v < n; v++) kid[kids[idom[v]]++] = v; /* kids[u] ends u's children */
  for (uint32_t v = n; v-- > 1;) kids[v] = kids[v - 1];      /* ... start them again */
  kids[0] = 0;
  /* depth first: every node is mapped from its dominator's frame */
  size_t sp = 0;
  map[0] = 0;
  t->nodes[0].self[side] = sat_add(t->nodes[0].self[side], c->self[0]);
  stack[sp++] = 0;
  while (sp) {
    uint32_t v = stack[--sp];
    uint32_t pf = map[v];
    for (uint32_t i = kids[v]; i < kids[v + 1]; i++) {
      uint32_t w = kid[i], k = c->of[w], f;
      if (cfn[k] == NONE) {
        int64_t fn = class_fn(t, c, k);
        if (fn < 0) {
          rc = (int)fn;
          goto out;
        }
        cfn[k] = (uint32_t)fn;
      }
      uint32_t pfn = t->nodes[pf].fn;
      if (pf && (pfn == cfn[k] || pfn == (uint32_t)deeper)) {
        f = pf; /* the same class as its dominator's frame, or past the cap */
      } else {
        int64_t ch =
            child(t, pf, t->nodes[pf].depth >= PL__FLAME_HEAP_DEPTH ? (uint32_t)deeper : cfn[k]);
        if (ch < 0) {
          rc = (int)ch;
          goto out;
        }
        f = (uint32_t)ch;
      }
      map[w] = f;
      t->nodes[f].self[side] = sat_add(t->nodes[f].self[side], c->self[w]);
      stack[sp++] = w;
    }
  }
  /* totals: a frame is created after its parent, so one backward pass */
  for (size_t i = 0; i < t->nnodes; i++) t->nodes[i].total[side] = t->nodes[i].self[side];
  for (size_t i = t->nnodes; i-- > 1;) {
    pl__flame_node *x = &t->nodes[i];
    t->nodes[x->parent].total[side] = sat_add(t->nodes[x->parent].total[side], x->total[side]);
  }
  t->samples[side] = sat_add(t->samples[side], n);
  rc = 0;
out:
  free(idom);
  free(ret);
  free(kids);
  free(kid);
  free(map);
  free(stack);
  free(cfn);
  return rc;
}

/* ---- order -------------------------------------------------------------- */

static int cmp_nodes(const void *a, const void *b, void *tree) {
  const pl__flame_tree *t = tree;
  const pl__flame_node *x = &t->nodes[*(const uint32_t *)a], *y = &t->nodes[*(const uint32_t *)b];
  if (x->parent != y->parent) return x->parent < y->parent ? -1 : 1;
  const pl__flame_fn *f = &t->fns[x->fn], *g = &t->fns[y->fn];
  int c = strcmp(f->name, g->name);
  if (!c) c = strcmp(f->file, g->file);
  if (!c && f->line != g->line) c = f->line < g->line ? -1 : 1;
  if (!c && x->fn != y->fn) c = x->fn < y->fn ? -1 : 1;
  return c;
}

int pl__flame_finish(pl__flame_tree *t) {
  if (!t->nnodes) return -EINVAL;
  size_t n = t->nnodes - 1;
  uint32_t *order = malloc((n ? n : 1) * sizeof(*order));
  if (!order) return -ENOMEM;
  for (size_t i = 0; i < n; i++) order[i] = (uint32_t)(i + 1);
  if (n) qsort_r(order, n, sizeof(*order), cmp_nodes, t);
  for (size_t i = 0; i < t->nnodes; i++) t->nodes[i].first_child = t->nodes[i].next_sibling = NONE;
  for (size_t i = n; i-- > 0;) { /* pushed to the front: last first */
    pl__flame_node *c = &t->nodes[order[i]];
    c->next_sibling = t->nodes[c->parent].first_child;
    t->nodes[c->parent].first_child = order[i];
  }
  free(order);
  t->finished = 1;
  return 0;
}
