/* CDP sampling heap profile reader (.heapprofile: {head: nested nodes,
 * samples: [{size, nodeId, ordinal}]}; see readers.h): the nested tree is
 * read iteratively with the streaming tokenizer (it is as deep as the
 * stacks), keeping a few words per node and per sample. */
#include "format/readers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/cpu_common.h"
#include "format/json_reader.h"
#include "format/read_build.h"
#include "format/read_devtools.h"

#define NONE UINT32_MAX
#define MAX_ID (UINT32_MAX - 1u)

enum { K_NORMAL, K_ROOT, K_UNKNOWN, K_TRUNCATED };

typedef struct hp_node {
  uint64_t off;  /* stream offset of the node object */
  uint64_t self; /* selfSize */
  uint32_t id, name, file, fline, parent;
  uint32_t trie; /* NONE for the pseudo-nodes */
  uint8_t has_id, kind, truncated, nkids_any;
} hp_node;

typedef struct hp_sample {
  uint64_t size, ordinal;
  uint32_t node_id, order;
} hp_sample;

typedef struct hp_ctx {
  pl__jreader r;
  pl__rb b;
  pl__read_err *err;
  pl_heap_snapshot *s;
  hp_node *nodes;
  size_t nnodes, nodes_cap;
  hp_sample *samples;
  size_t nsamples, samples_cap;
  uint64_t samples_off;
  int has_head;
  pl__dt_ids ids; /* id -> node index */
} hp_ctx;

static int nomem(hp_ctx *c) { return pl__read_errno(c->err, -ENOMEM); }

static int64_t new_node(hp_ctx *c, uint32_t parent) {
  pl__jreader *r = &c->r;
  if (r->tok != PL__JT_OBJ) return pl__jr_fail(r, "a node object");
  if (c->nnodes >= MAX_ID) return pl__jr_failf(r, "more than 4294967294 nodes: not read");
  if (PL__RESERVE(c->nodes, c->nodes_cap, c->nnodes + 1)) return nomem(c);
  hp_node *nd = &c->nodes[c->nnodes];
  memset(nd, 0, sizeof(*nd));
  nd->off = r->tok_off;
  nd->parent = parent;
  nd->trie = NONE;
  int64_t name = pl__rb_name(&c->b, "", 0), file = pl__rb_str(&c->b, "", 0);
  if (name < 0 || file < 0) return nomem(c);
  nd->name = (uint32_t)name;
  nd->file = (uint32_t)file;
  if (parent != NONE) c->nodes[parent].nkids_any = 1;
  return (int64_t)c->nnodes++;
}

static int read_call_frame(hp_ctx *c, hp_node *nd) {
  pl__jreader *r = &c->r;
  int k, t;
  if ((t = pl__jr_expect(r, PL__JT_OBJ, "a callFrame object")) < 0) return t;
  while ((k = pl__jr_key(r)) > 0) {
    if ((t = pl__dt_frame_field(r, &c->b, c->err, 0, &nd->name, &nd->file, &nd->fline)) < 0)
      return t;
    if (!t && (t = pl__jr_skip_value(r)) < 0) return t;
  }
  return k;
}

/* A key of node cur other than children. */
static int read_node_key(hp_ctx *c, uint32_t cur) {
  pl__jreader *r = &c->r;
  int t;
  int64_t v;
  double d;
  if (pl__jr_is(r, "callFrame")) return read_call_frame(c, &c->nodes[cur]);
  if (pl__jr_is(r, "selfSize")) {
    if ((t = pl__jr_next(r)) < 0) return t;
    if ((t = pl__jr_num(r, &d, "a selfSize (bytes)")) < 0) return t;
    if (d < 0) return pl__jr_fail(r, "a selfSize of 0 or more bytes");
    c->nodes[cur].self = pl__round_u64(d);
    return 0;
  }
  if (pl__jr_is(r, "id")) {
    if ((t = pl__jr_next(r)) < 0) return t;
    if ((t = pl__jr_int(r, 0, MAX_ID, &v, "a node id (a whole number from 0 to 4294967294)")) < 0)
      return t;
    c->nodes[cur].id = (uint32_t)v;
    c->nodes[cur].has_id = 1;
    return 0;
  }
  return pl__jr_skip_value(r);
}

/* The nested tree under "head", iteratively. */
static int read_tree(hp_ctx *c) {
  pl__jreader *r = &c->r;
  int t;
  if ((t = pl__jr_next(r)) < 0) return t;
  int64_t n = new_node(c, NONE);
  if (n < 0) return (int)n;
  uint32_t cur = (uint32_t)n;
  for (;;) {
    int k = pl__jr_key(r);
    if (k < 0) return k;
    if (k > 0 && !pl__jr_is(r, "children")) {
      if ((t = read_node_key(c, cur)) < 0) return t;
      continue;
    }
    int e;
    if (k > 0) { /* children: the first one, or an empty array */
      if ((t = pl__jr_expect(r, PL__JT_ARR, "a children array of node objects")) < 0) return t;
    } else { /* cur ended: back in its parent's children array */
      if (c->nodes[cur].parent == NONE) return 0;
      cur = c->nodes[cur].parent;
    }
    if ((e = pl__jr_elem(r)) < 0) return e;
    if (e == 0) continue; /* the children array ended: cur's keys go on */
    if ((n = new_node(c, cur)) < 0) return (int)n;
    cur = (uint32_t)n;
  }
}

static int read_samples(hp_ctx *c) {
  pl__jreader *r = &c->r;
  int t, e;
  if ((t = pl__jr_expect(r, PL__JT_ARR, "the samples array")) < 0) return t;
  c->samples_off = r->tok_off;
  c->nsamples = 0;
  while ((e = pl__jr_elem(r)) > 0) {
    if (r->tok != PL__JT_OBJ) return pl__jr_fail(r, "a sample object {size, nodeId, ordinal}");
    if (c->nsamples >= MAX_ID) return pl__jr_failf(r, "more than 4294967294 samples: not read");
    if (PL__RESERVE(c->samples, c->samples_cap, c->nsamples + 1)) return nomem(c);
    hp_sample *x = &c->samples[c->nsamples];
    memset(x, 0, sizeof(*x));
    x->order = (uint32_t)c->nsamples;
    x->ordinal = c->nsamples;
    uint64_t off = r->tok_off;
    int k, has_node = 0;
    while ((k = pl__jr_key(r)) > 0) {
      int64_t v;
      double d;
      if (pl__jr_is(r, "size")) {
        if ((t = pl__jr_next(r)) < 0) return t;
        if ((t = pl__jr_num(r, &d, "a sample size (bytes)")) < 0) return t;
        if (d < 0) return pl__jr_fail(r, "a sample size of 0 or more bytes");
        x->size = pl__round_u64(d);
      } else if (pl__jr_is(r, "nodeId")) {
        if ((t = pl__jr_next(r)) < 0) return t;
        if ((t = pl__jr_int(r, 0, MAX_ID, &v, "a nodeId")) < 0) return t;
        x->node_id = (uint32_t)v;
        has_node = 1;
      } else if (pl__jr_is(r, "ordinal")) {
        if ((t = pl__jr_next(r)) < 0) return t;
        if ((t = pl__jr_num(r, &d, "an ordinal (a whole number)")) < 0) return t;
        if (!(d >= 0 && d < 1.8e19) || d != (double)(uint64_t)d)
          return pl__jr_fail(r, "an ordinal (a whole number >= 0)");
        x->ordinal = (uint64_t)d;
      } else if ((t = pl__jr_skip_value(r)) < 0) {
        return t;
      }
    }
    if (k < 0) return k;
    if (!has_node)
      return pl__read_fail(c->err, "offset %llu: expected the sample's \"nodeId\", found none",
                           (unsigned long long)off);
    c->nsamples++;
  }
  return e;
}

static int read_top(hp_ctx *c) {
  pl__jreader *r = &c->r;
  int k, t;
  if ((t = pl__jr_expect(r, PL__JT_OBJ, "a heap profile (a JSON object)")) < 0) return t;
  while ((k = pl__jr_key(r)) > 0) {
    if (pl__jr_is(r, "head")) {
      if (c->has_head) return pl__jr_failf(r, "a second \"head\"");
      c->has_head = 1;
      if ((t = read_tree(c)) < 0) return t;
    } else if (pl__jr_is(r, "samples")) {
      if ((t = read_samples(c)) < 0) return t;
    } else if ((t = pl__jr_skip_value(r)) < 0) {
      return t;
    }
  }
  if (k < 0) return k;
  if (!c->has_head)
    return pl__read_fail(c->err, "offset 0: expected a \"head\" node tree, found none");
  return pl__jr_expect(r, PL__JT_END, "the end of the file after the profile");
}

/* ---- the model ---------------------------------------------------------- */

static int64_t node_of(const hp_ctx *c, uint32_t id) { return pl__dt_ids_find(&c->ids, id); }

static int index_ids(hp_ctx *c) {
  uint32_t max = 0;
  for (size_t i = 0; i < c->nnodes; i++)
    if (c->nodes[i].has_id && c->nodes[i].id > max) max = c->nodes[i].id;
  if (pl__dt_ids_reserve(&c->ids, max, c->nnodes)) return nomem(c);
  for (size_t i = 0; i < c->nnodes; i++) {
    const hp_node *nd = &c->nodes[i];
    if (!nd->has_id) continue;
    if (node_of(c, nd->id) >= 0)
      return pl__read_fail(c->err, "offset %llu: node id %u appears twice",
                           (unsigned long long)nd->off, nd->id);
    if (pl__dt_ids_add(&c->ids, nd->id, (uint32_t)i)) return nomem(c);
  }
  return 0;
}

static int named(const hp_ctx *c, const hp_node *nd, const char *name) {
  return strcmp(c->b.strs.strs[nd->name], name) == 0 && c->b.strs.strs[nd->file][0] == '\0';
}

/* Frames and trie nodes; nodes come parents first (pre-order). */
static int build_tree(hp_ctx *c) {
  int64_t empty = pl__rb_str(&c->b, "", 0);
  if (empty < 0) return nomem(c);
  for (size_t i = 0; i < c->nnodes; i++) {
    hp_node *nd = &c->nodes[i];
    const hp_node *up = nd->parent == NONE ? NULL : &c->nodes[nd->parent];
    if (!up && named(c, nd, "(root)")) {
      nd->kind = K_ROOT;
      continue;
    }
    if (up && up->kind == K_ROOT && named(c, nd, "(unknown)") && !nd->nkids_any) {
      nd->kind = K_UNKNOWN; /* the writer's stack without frames */
      continue;
    }
    if (up && up->kind == K_ROOT && named(c, nd, "(truncated)") && nd->nkids_any) {
      nd->kind = K_TRUNCATED; /* the writer's mark of stacks cut at their outermost end */
      nd->truncated = 1;
      continue;
    }
    nd->truncated = up ? up->truncated : 0;
    int64_t f = pl__rb_frame(&c->b, nd->name, nd->file, (uint32_t)empty, nd->fline, nd->fline, 0);
    uint32_t parent = up && up->trie != NONE ? up->trie : PL__RB_ROOT;
    int64_t t = f < 0 ? f : pl__rb_push(&c->b, parent, (uint32_t)f);
    if (t < 0) return pl__read_errno(c->err, (int)t);
    nd->trie = (uint32_t)t;
  }
  return 0;
}

static int cmp_ordinal(const void *a, const void *b) {
  const hp_sample *x = a, *y = b;
  if (x->ordinal != y->ordinal) return x->ordinal < y->ordinal ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

/* Without samples: one per node with a selfSize (ordinals in node order). */
static int samples_from_nodes(hp_ctx *c) {
  for (size_t i = 0; i < c->nnodes; i++) {
    const hp_node *nd = &c->nodes[i];
    if (!nd->self || nd->kind == K_ROOT || nd->kind == K_TRUNCATED) continue;
    if (PL__RESERVE(c->samples, c->samples_cap, c->nsamples + 1)) return nomem(c);
    /* node_id holds the node's index here */
    c->samples[c->nsamples] =
        (hp_sample){nd->self, c->nsamples, (uint32_t)i, (uint32_t)c->nsamples};
    c->nsamples++;
  }
  return 0;
}

static int build_samples(hp_ctx *c, uint32_t *stack_of_node, int from_nodes) {
  pl_heap_snapshot *s = c->s;
  size_t n = c->nsamples;
  if (n) qsort(c->samples, n, sizeof(*c->samples), cmp_ordinal);
  int keep_ids = 1;
  for (size_t i = 0; i < n; i++) {
    uint64_t o = c->samples[i].ordinal;
    if (!(o & 1) || (i && o <= c->samples[i - 1].ordinal)) keep_ids = 0;
  }
  pl_heap_sample *x = calloc(n ? n : 1, sizeof(*x));
  if (!x || pl_heap_snapshot_adopt(s, x, 0, NULL)) return nomem(c);
  for (size_t i = 0; i < n; i++) {
    const hp_sample *h = &c->samples[i];
    int64_t ni = from_nodes ? (int64_t)h->node_id : node_of(c, h->node_id);
    if (ni < 0)
      return pl__read_fail(c->err, "offset %llu: samples[%u] names node %u, which does not exist",
                           (unsigned long long)c->samples_off, h->order, h->node_id);
    hp_node *nd = &c->nodes[ni];
    if (nd->kind == K_ROOT || nd->kind == K_TRUNCATED)
      return pl__read_fail(c->err, "offset %llu: samples[%u] names node %u, %s",
                           (unsigned long long)c->samples_off, h->order, h->node_id,
                           nd->kind == K_ROOT ? "the root" : "a pseudo-node");
    if (stack_of_node[ni] == NONE) {
      int64_t st = pl__rb_stack(&c->b, nd->kind == K_UNKNOWN ? PL__RB_ROOT : nd->trie);
      if (st < 0) return pl__read_errno(c->err, (int)st);
      stack_of_node[ni] = (uint32_t)st;
    }
    x[i] = (pl_heap_sample){.id = keep_ids ? h->ordinal : 2 * (uint64_t)i + 1,
                            .size = h->size,
                            .weight_objects = 1,
                            .weight_bytes = (double)h->size,
                            .stack = stack_of_node[ni]};
  }
  s->samples = x;
  s->nsamples = n;
  return 0;
}

static int finish(hp_ctx *c, const uint32_t *stack_of_node) {
  pl_heap_snapshot *s = c->s;
  int rc = pl__rb_finish_heap(&c->b, s);
  if (rc) return pl__read_errno(c->err, rc);
  for (size_t i = 0; i < c->nnodes; i++) /* stacks of nodes under "(truncated)" */
    if (stack_of_node[i] != NONE && c->nodes[i].truncated)
      s->stacks[stack_of_node[i]].flags |= PL_HEAP_STACK_TRUNCATED;
  for (size_t i = 0; i < s->nstacks; i++)
    if (!s->stacks[i].depth) s->stacks[i].flags |= PL_HEAP_STACK_UNKNOWN;
  for (size_t i = 0; i < s->nsamples; i++) {
    const pl_heap_sample *x = &s->samples[i];
    pl_heap_stack *st = &s->stacks[x->stack];
    st->inuse_objects += x->weight_objects;
    st->inuse_bytes += x->weight_bytes;
    st->alloc_objects = st->inuse_objects; /* only live data in this format */
    st->alloc_bytes = st->inuse_bytes;
    s->inuse_objects += x->weight_objects;
    s->inuse_bytes += x->weight_bytes;
  }
  s->stats.inuse_objects = s->stats.alloc_objects = s->inuse_objects;
  s->stats.inuse_bytes = s->stats.alloc_bytes = s->inuse_bytes;
  s->stats.samples = s->stats.live_samples = s->nsamples;
  s->stats.stacks = s->nstacks;
  return 0;
}

static char *dup_heap(void *model, const char *str) { return pl_heap_snapshot_strdup(model, str); }

int pl__heapprofile_read(pl__rsrc *src, pl_heap_snapshot **out, pl__read_err *err) {
  hp_ctx c;
  memset(&c, 0, sizeof(c));
  *out = NULL;
  c.err = err;
  pl__dt_ids_init(&c.ids);
  uint32_t *stack_of_node = NULL;
  c.s = pl_heap_snapshot_new();
  if (!c.s) return pl__read_errno(err, -ENOMEM);
  pl__rb_init(&c.b, dup_heap, c.s);
  int rc = pl__jr_init(&c.r, src, err);
  if (rc) goto out;
  if ((rc = read_top(&c)) < 0) goto out;
  if ((rc = index_ids(&c)) < 0) goto out;
  if ((rc = build_tree(&c)) < 0) goto out;
  int from_nodes = c.nsamples == 0;
  /* Node (v20's --heap-prof) writes samples that name nodes missing from
   * its tree; then the tree's selfSize is what counts, as DevTools' view
   * of the profile shows it. */
  for (size_t i = 0; !from_nodes && i < c.nsamples; i++)
    if (node_of(&c, c.samples[i].node_id) < 0) {
      c.nsamples = 0;
      from_nodes = 1;
    }
  if (from_nodes && (rc = samples_from_nodes(&c)) < 0) goto out;
  stack_of_node = malloc((c.nnodes ? c.nnodes : 1) * sizeof(*stack_of_node));
  if (!stack_of_node) {
    rc = nomem(&c);
    goto out;
  }
  memset(stack_of_node, 0xff, c.nnodes * sizeof(*stack_of_node));
  if ((rc = build_samples(&c, stack_of_node, from_nodes)) < 0) goto out;
  if ((rc = finish(&c, stack_of_node)) < 0) goto out;
  *out = c.s;
  c.s = NULL;
out:
  pl__jr_free(&c.r);
  pl__rb_free(&c.b);
  pl_heap_snapshot_free(c.s);
  free(c.nodes);
  free(c.samples);
  free(stack_of_node);
  pl__dt_ids_free(&c.ids);
  return rc < 0 ? pl__read_errno(err, rc) : 0;
}
