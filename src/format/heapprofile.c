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

#include "format/cpu_common.h"
#include "format/hashtab.h"
#include "format/heap_common.h"

#define NONE UINT32_MAX

/* Function indices of the pseudo-frames (inserted first, keys no frame has). */
enum { FN_ROOT, FN_UNKNOWN, FN_TRUNCATED, FN_PSEUDO };

typedef struct hp_func {
  uint32_t name, file; /* ids in hp_ctx.strs */
  uint32_t function_line;
  uint32_t script_id; /* 0 for no file */
} hp_func;

typedef struct hp_node {
  uint32_t func, parent;
  uint32_t first_child, last_child, next_sibling; /* node indices or NONE */
  uint64_t self;
} hp_node;

typedef struct hp_ctx {
  pl__heap_view v;
  pl__strtab strs;
  pl__keytab func_keys; /* (name, file, function_line) -> index in funcs */
  hp_func *funcs;
  size_t funcs_cap;
  pl__keytab script_keys; /* (file, 0, 0) -> script id - PL_SCRIPT_ID_BASE */
  uint32_t *frame_func;   /* by frame index: function, NONE until used */
  pl__keytab node_keys;   /* (parent node, function, 0) -> index in nodes */
  hp_node *nodes;
  size_t nodes_cap;
  uint32_t *stack_leaf; /* by stack: leaf node, NONE until used */
  uint32_t *sample_node;
  pl_buf scratch; /* the url being built */
  int oom;        /* building a url failed */
} hp_ctx;

static int64_t node_intern(hp_ctx *c, uint32_t parent, uint32_t func) {
  int added;
  int64_t n = pl__keytab_intern(&c->node_keys, parent, func, 0, &added);
  if (n < 0 || !added) return n;
  if (PL__RESERVE(c->nodes, c->nodes_cap, (size_t)n + 1)) return -ENOMEM;
  c->nodes[n] = (hp_node){func, parent, NONE, NONE, NONE, 0};
  if (parent != NONE) {
    hp_node *pa = &c->nodes[parent];
    if (pa->last_child == NONE)
      pa->first_child = (uint32_t)n;
    else
      c->nodes[pa->last_child].next_sibling = (uint32_t)n;
    pa->last_child = (uint32_t)n;
  }
  return n;
}

static int64_t func_intern(hp_ctx *c, uint32_t name, uint32_t file, uint32_t line,
                           uint32_t script_id) {
  int added;
  int64_t f = pl__keytab_intern(&c->func_keys, name, file, line, &added);
  if (f < 0 || !added) return f;
  if (PL__RESERVE(c->funcs, c->funcs_cap, (size_t)f + 1)) return -ENOMEM;
  c->funcs[f] = (hp_func){name, file, line, script_id};
  return f;
}

static int64_t frame_func(hp_ctx *c, uint32_t fi) {
  if (c->frame_func[fi] != NONE) return c->frame_func[fi];
  const pl_frame *fr = &c->v.frames[fi];
  const char *file = pl__str(fr->file);
  int64_t name = pl__strtab_intern(&c->strs, pl__str(fr->function));
  if (name < 0) return name;
  int64_t fid = pl__strtab_intern(&c->strs, file);
  if (fid < 0) return fid;
  int64_t script = 0;
  if (*file) {
    script = pl__keytab_intern(&c->script_keys, (uint32_t)fid, 0, 0, NULL);
    if (script < 0) return script;
    script += PL_SCRIPT_ID_BASE;
  }
  int64_t f = func_intern(c, (uint32_t)name, (uint32_t)fid, fr->function_line, (uint32_t)script);
  if (f < 0) return f;
  c->frame_func[fi] = (uint32_t)f;
  return f;
}

/* Leaf node of stack si, creating its path from the root. */
static int64_t stack_leaf(hp_ctx *c, uint32_t si) {
  if (c->stack_leaf[si] != NONE) return c->stack_leaf[si];
  const pl_heap_stack *st = &c->v.s->stacks[si];
  int64_t node = 0; /* root */
  if (!st->depth) {
    node = node_intern(c, 0, FN_UNKNOWN);
  } else {
    if (st->flags & PL_HEAP_STACK_TRUNCATED) node = node_intern(c, 0, FN_TRUNCATED);
    for (uint32_t d = st->depth; d-- > c->v.first[si] && node >= 0;) { /* outermost first */
      int64_t f = frame_func(c, c->v.stack_frames[si][d]);
      if (f < 0) return f;
      node = node_intern(c, (uint32_t)node, (uint32_t)f);
    }
  }
  if (node < 0) return node;
  c->stack_leaf[si] = (uint32_t)node;
  return node;
}

static int build_tree(hp_ctx *c) {
  const pl_heap_snapshot *s = c->v.s;
  static const char *const pseudo[FN_PSEUDO] = {"(root)", PL__HEAP_UNKNOWN, PL__HEAP_TRUNCATED};
  int64_t empty = pl__strtab_intern(&c->strs, "");
  if (empty < 0) return -ENOMEM;
  for (uint32_t k = 0; k < FN_PSEUDO; k++) {
    int64_t name = pl__strtab_intern(&c->strs, pseudo[k]);
    if (name < 0 || func_intern(c, NONE, NONE, k, 0) < 0) return -ENOMEM;
    c->funcs[k].name = (uint32_t)name;
    c->funcs[k].file = (uint32_t)empty;
  }
  if (node_intern(c, NONE, FN_ROOT) < 0) return -ENOMEM;
  for (size_t i = 0; i < s->nsamples; i++) {
    int64_t leaf = stack_leaf(c, s->samples[i].stack);
    if (leaf < 0) return (int)leaf;
    c->sample_node[i] = (uint32_t)leaf;
    c->nodes[leaf].self += pl__heap_round(s->samples[i].weight_bytes);
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
  const hp_node *nd = &c->nodes[idx];
  const hp_func *fn = &c->funcs[nd->func];
  int pseudo = nd->func < FN_PSEUDO;
  const char *file = c->strs.strs[fn->file];
  /* lineNumber/columnNumber are 0-based; -1 when unknown (and for pseudo-frames). */
  long long line = (!pseudo && fn->function_line) ? (long long)fn->function_line - 1 : -1;
  pl_buf_puts(b, "{\"callFrame\":{\"functionName\":");
  const char *name = c->strs.strs[fn->name];
  put_str(b, name, strlen(name));
  pl_buf_printf(b, ",\"scriptId\":\"%u\",\"url\":", (unsigned)fn->script_id);
  pl_buf_reset(&c->scratch);
  if (!pseudo) pl__file_url(&c->scratch, file);
  if (pl_buf_failed(&c->scratch)) c->oom = 1;
  put_str(b, c->scratch.data ? c->scratch.data : "", c->scratch.len);
  pl_buf_printf(
      b, ",\"lineNumber\":%lld,\"columnNumber\":%d},\"selfSize\":%llu,\"id\":%u,\"children\":[",
      line, line < 0 ? -1 : 0, (unsigned long long)nd->self, idx + 1);
}

/* Depth-first, iteratively: the tree can be as deep as the stacks. */
static void write_tree(hp_ctx *c, pl_sink *out) {
  pl_buf *b = &out->buf;
  uint32_t cur = 0;
  open_node(c, b, cur);
  for (;;) {
    if (c->nodes[cur].first_child != NONE) {
      cur = c->nodes[cur].first_child;
      pl_buf_putc(b, '\n');
      open_node(c, b, cur);
      pl_sink_maybe_flush(out);
      continue;
    }
    /* cur is done: close it and its finished ancestors */
    for (;;) {
      pl_buf_puts(b, "]}");
      if (cur == 0) return;
      if (c->nodes[cur].next_sibling != NONE) {
        cur = c->nodes[cur].next_sibling;
        pl_buf_puts(b, ",\n");
        open_node(c, b, cur);
        pl_sink_maybe_flush(out);
        break;
      }
      cur = c->nodes[cur].parent;
    }
    if (out->error || pl_buf_failed(b)) return;
  }
}

static void write_json(hp_ctx *c, pl_sink *out) {
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
    pl_sink_maybe_flush(out);
  }
  pl_buf_puts(b, "]}\n");
}

int pl_heapprofile_write(const pl_heap_snapshot *s, pl_sink *out) {
  if (!out) return -EINVAL;
  hp_ctx c;
  memset(&c, 0, sizeof(c));
  int rc = pl__heap_view_init(&c.v, s);
  if (rc) return rc;
  pl__strtab_init(&c.strs);
  pl__keytab_init(&c.func_keys);
  pl__keytab_init(&c.script_keys);
  pl__keytab_init(&c.node_keys);
  pl_buf_init(&c.scratch);

  size_t nf = c.v.nframes, ns = s->nstacks, n = s->nsamples;
  c.frame_func = malloc((nf ? nf : 1) * sizeof(*c.frame_func));
  c.stack_leaf = malloc((ns ? ns : 1) * sizeof(*c.stack_leaf));
  c.sample_node = malloc((n ? n : 1) * sizeof(*c.sample_node));
  if (!c.frame_func || !c.stack_leaf || !c.sample_node) {
    rc = -ENOMEM;
    goto out;
  }
  memset(c.frame_func, 0xff, nf * sizeof(*c.frame_func));
  memset(c.stack_leaf, 0xff, ns * sizeof(*c.stack_leaf));
  if ((rc = build_tree(&c))) goto out;
  write_json(&c, out);
  if (c.oom) rc = -ENOMEM;

out:
  pl__strtab_free(&c.strs);
  pl__keytab_free(&c.func_keys);
  free(c.funcs);
  pl__keytab_free(&c.script_keys);
  free(c.frame_func);
  pl__keytab_free(&c.node_keys);
  free(c.nodes);
  free(c.stack_leaf);
  free(c.sample_node);
  pl_buf_free(&c.scratch);
  pl__heap_view_free(&c.v);
  if (rc) return rc;
  return pl_sink_finish(out);
}
