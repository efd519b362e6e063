/* CDP sampling heap profile writer (.heapprofile, see heap_writers.h).
 *
 * The live samples' stacks (leaf first, allocation helpers dropped) become
 * a call tree "(root)" -> outermost caller -> allocating function. A tree
 * node is identified by its parent node and its function (name, file,
 * function_line), so different program counters of one function share a
 * node. The tree is held in memory (a few words per node); the JSON is
 * streamed, written by hand because the tree is deeper than pl_json nests.
 */
#include "format/heap_writers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/calltree.h"
#include "format/cpu_common.h"
#include "format/hashtab.h"
#include "format/heap_common.h"

#define NONE PL__CT_NONE

/* Function indices of the pseudo-frames (inserted first, keys no frame has). */
enum { FN_ROOT, FN_UNKNOWN, FN_TRUNCATED, FN_PSEUDO };

typedef struct hp_ctx {
  pl__heap_view v;
  pl__calltree t;       /* node values: self size */
  uint32_t *stack_leaf; /* by stack: leaf node, NONE until used */
  uint32_t *sample_node;
  pl_buf scratch; /* the url being built */
  int oom;        /* building a url failed */
} hp_ctx;

/* Leaf node of stack si, creating its path from the root. */
static int64_t stack_leaf(hp_ctx *c, uint32_t si) {
  if (c->stack_leaf[si] != NONE) return c->stack_leaf[si];
  const pl_heap_stack *st = &c->v.s->stacks[si];
  int64_t node = 0; /* root */
  if (!st->depth) {
    node = pl__calltree_node(&c->t, 0, FN_UNKNOWN);
  } else {
    if (st->flags & PL_HEAP_STACK_TRUNCATED) node = pl__calltree_node(&c->t, 0, FN_TRUNCATED);
    for (uint32_t d = st->depth; d-- > c->v.first[si] && node >= 0;) { /* outermost first */
      int64_t f = pl__calltree_frame_func(&c->t, c->v.stack_frames[si][d]);
      if (f < 0) return f;
      node = pl__calltree_node(&c->t, (uint32_t)node, (uint32_t)f);
    }
  }
  if (node < 0) return node;
  c->stack_leaf[si] = (uint32_t)node;
  return node;
}

static int build_tree(hp_ctx *c) {
  const pl_heap_snapshot *s = c->v.s;
  for (size_t i = 0; i < s->nsamples; i++) {
    int64_t leaf = stack_leaf(c, s->samples[i].stack);
    if (leaf < 0) return (int)leaf;
    c->sample_node[i] = (uint32_t)leaf;
    c->t.nodes[leaf].value += pl__heap_round(s->samples[i].weight_bytes);
  }
  return 0;
}

/* ---- output ------------------------------------------------------------- */

static void put_str(pl_buf *b, const char *s, size_t n) {
  pl_buf_putc(b, '"');
  pl_json_escape(b, s, n);
  pl_buf_putc(b, '"');
}

/* Everything of a node up to the opening of its children array. */
static void open_node(hp_ctx *c, pl_buf *b, uint32_t idx) {
  const pl__ct_node *nd = &c->t.nodes[idx];
  const pl__ct_func *fn = &c->t.funcs[nd->func];
  int pseudo = nd->func < FN_PSEUDO;
  const char *file = c->t.strs.strs[fn->file];
  /* lineNumber/columnNumber are 0-based; -1 when unknown (and for pseudo-frames). */
  long long line = (!pseudo && fn->function_line) ? (long long)fn->function_line - 1 : -1;
  pl_buf_puts(b, "{\"callFrame\":{\"functionName\":");
  const char *name = c->t.strs.strs[fn->name];
  put_str(b, name, strlen(name));
  pl_buf_printf(b, ",\"scriptId\":\"%u\",\"url\":", (unsigned)fn->script_id);
  pl_buf_reset(&c->scratch);
  if (!pseudo) pl__file_url(&c->scratch, file);
  if (pl_buf_failed(&c->scratch)) c->oom = 1;
  put_str(b, c->scratch.data ? c->scratch.data : "", c->scratch.len);
  pl_buf_printf(
      b, ",\"lineNumber\":%lld,\"columnNumber\":%d},\"selfSize\":%llu,\"id\":%u,\"children\":[",
      line, line < 0 ? -1 : 0, (unsigned long long)nd->value, idx + 1);
}

/* Depth-first, iteratively: the tree can be as deep as the stacks. */
static void write_tree(hp_ctx *c, pl__sink *out) {
  pl_buf *b = &out->buf;
  uint32_t cur = 0;
  open_node(c, b, cur);
  for (;;) {
    if (c->t.nodes[cur].first_child != NONE) {
      cur = c->t.nodes[cur].first_child;
      pl_buf_putc(b, '\n');
      open_node(c, b, cur);
      pl__sink_maybe_flush(out);
      continue;
    }
    /* cur is done: close it and its finished ancestors */
    for (;;) {
      pl_buf_puts(b, "]}");
      if (cur == 0) return;
      if (c->t.nodes[cur].next_sibling != NONE) {
        cur = c->t.nodes[cur].next_sibling;
        pl_buf_puts(b, ",\n");
        open_node(c, b, cur);
        pl__sink_maybe_flush(out);
        break;
      }
      cur = c->t.nodes[cur].parent;
    }
    if (out->error || pl_buf_failed(b)) return;
  }
}

static void write_json(hp_ctx *c, pl__sink *out) {
  const pl_heap_snapshot *s = c->v.s;
  pl_buf *b = &out->buf;
  pl_buf_puts(b, "{\"head\":");
  write_tree(c, out);
  if (out->error || pl_buf_failed(b)) return;
  pl_buf_puts(b, ",\n\"samples\":[");
  for (size_t i = 0; i < s->nsamples && !out->error; i++) {
    const pl_heap_sample *x = &s->samples[i];
    pl_buf_printf(b, "%s{\"size\":%llu,\"nodeId\":%u,\"ordinal\":%llu}", i ? ",\n" : "\n",
                  (unsigned long long)pl__heap_round(x->weight_bytes), c->sample_node[i] + 1,
                  (unsigned long long)x->id);
    pl__sink_maybe_flush(out);
  }
  pl_buf_puts(b, "]}\n");
}

int pl__heapprofile_write(const pl_heap_snapshot *s, pl__sink *out) {
  if (!out) return -EINVAL;
  hp_ctx c;
  memset(&c, 0, sizeof(c));
  int rc = pl__heap_view_init(&c.v, s);
  if (rc) return rc;
  pl_buf_init(&c.scratch);

  static const char *const pseudo[FN_PSEUDO] = {"(root)", PL__HEAP_UNKNOWN, PL__HEAP_TRUNCATED};
  size_t ns = s->nstacks, n = s->nsamples;
  rc = pl__calltree_init(&c.t, c.v.frames, c.v.nframes, pseudo, FN_PSEUDO);
  c.stack_leaf = malloc((ns ? ns : 1) * sizeof(*c.stack_leaf));
  c.sample_node = malloc((n ? n : 1) * sizeof(*c.sample_node));
  if (rc || !c.stack_leaf || !c.sample_node) {
    rc = -ENOMEM;
    goto out;
  }
  memset(c.stack_leaf, 0xff, ns * sizeof(*c.stack_leaf));
  if ((rc = build_tree(&c))) goto out;
  write_json(&c, out);
  if (c.oom) rc = -ENOMEM;

out:
  pl__calltree_free(&c.t);
  free(c.stack_leaf);
  free(c.sample_node);
  pl_buf_free(&c.scratch);
  pl__heap_view_free(&c.v);
  if (rc) return rc;
  return pl__sink_finish(out);
}
