/* Frames and stacks of a model being read from a file (see read_build.h). */
#include "format/read_build.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/cpu_common.h"

#define NONE UINT32_MAX
#define MAX_IDS (UINT32_MAX - 1u)

void pl__rb_init(pl__rb *b, char *(*dup)(void *model, const char *s), void *model) {
  memset(b, 0, sizeof(*b));
  b->dup = dup;
  b->model = model;
  b->root_stack = NONE;
  pl__strtab_init(&b->strs);
  pl__keytab_init(&b->line_keys);
  pl__keytab_init(&b->frame_keys);
  pl__keytab_init(&b->node_keys);
}

void pl__rb_free(pl__rb *b) {
  pl__strtab_free(&b->strs);
  pl__keytab_free(&b->line_keys);
  pl__keytab_free(&b->frame_keys);
  pl__keytab_free(&b->node_keys);
  free(b->frames);
  free(b->node_parent);
  free(b->node_frame);
  free(b->node_stack);
  free(b->node_depth);
  free(b->stack_node);
  memset(b, 0, sizeof(*b));
}

int64_t pl__rb_str(pl__rb *b, const char *s, size_t n) {
  n = strnlen(s, n);
  if (s[n] == '\0') { /* the usual case: look up in place */
    int64_t id = pl__strtab_find(&b->strs, s);
    if (id >= 0) return id;
    char *copy = b->dup(b->model, s);
    if (!copy) return -ENOMEM;
    return pl__strtab_intern(&b->strs, copy);
  }
  char *tmp = strndup(s, n);
  if (!tmp) return -ENOMEM;
  int64_t id = pl__strtab_find(&b->strs, tmp);
  if (id < 0) {
    char *copy = b->dup(b->model, tmp);
    id = copy ? pl__strtab_intern(&b->strs, copy) : -ENOMEM;
  }
  free(tmp);
  return id;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int64_t pl__rb_url_file(pl__rb *b, const char *url, size_t len) {
  len = strnlen(url, len);
  if (len < 8 || memcmp(url, "file:///", 8) != 0) return pl__rb_str(b, url, len);
  char *path = malloc(len + 1);
  if (!path) return -ENOMEM;
  size_t n = 0;
  for (size_t i = 7; i < len; i++) { /* keeps the path's leading '/' */
    int hi, lo;
    if (url[i] == '%' && i + 2 < len && (hi = hexval(url[i + 1])) >= 0 &&
        (lo = hexval(url[i + 2])) >= 0 && (hi || lo)) {
      path[n++] = (char)(hi << 4 | lo);
      i += 2;
    } else {
      path[n++] = url[i];
    }
  }
  path[n] = '\0';
  int64_t id = pl__rb_str(b, path, n);
  free(path);
  return id;
}

int64_t pl__rb_name(pl__rb *b, const char *s, size_t len) {
  if (!len || !s[0]) return pl__rb_str(b, "(anonymous)", 11);
  return pl__rb_str(b, s, len);
}

int64_t pl__rb_frame(pl__rb *b, uint32_t function, uint32_t file, uint32_t module, uint32_t line,
                     uint32_t function_line, uint64_t address) {
  int64_t lk = pl__keytab_intern(&b->line_keys, line, function_line, module, NULL);
  if (lk < 0) return lk;
  int added;
  size_t before = b->frame_keys.n;
  if (before >= MAX_IDS) {
    int64_t f = pl__keytab_find(&b->frame_keys, function, file, (uint32_t)lk);
    return f >= 0 ? f : -E2BIG;
  }
  int64_t f = pl__keytab_intern(&b->frame_keys, function, file, (uint32_t)lk, &added);
  if (f < 0 || !added) return f;
  if (PL__RESERVE(b->frames, b->frames_cap, (size_t)f + 1)) return -ENOMEM;
  b->frames[f] = (pl_frame){b->strs.strs[function], b->strs.strs[file],
                            b->strs.strs[module],   line,
                            function_line,          address};
  return f;
}

int64_t pl__rb_push(pl__rb *b, uint32_t parent, uint32_t frame) {
  uint32_t pk = parent == PL__RB_ROOT ? 0 : parent + 1;
  size_t before = b->node_keys.n;
  if (before >= MAX_IDS) {
    int64_t nd = pl__keytab_find(&b->node_keys, pk, frame, 0);
    return nd >= 0 ? nd : -E2BIG;
  }
  int added;
  int64_t nd = pl__keytab_intern(&b->node_keys, pk, frame, 0, &added);
  if (nd < 0 || !added) return nd;
  if ((size_t)nd >= b->nodes_cap) {
    size_t cap = b->nodes_cap ? b->nodes_cap * 2 : 256;
    uint32_t *np = reallocarray(b->node_parent, cap, sizeof(uint32_t));
    if (np) b->node_parent = np;
    uint32_t *nf = np ? reallocarray(b->node_frame, cap, sizeof(uint32_t)) : NULL;
    if (nf) b->node_frame = nf;
    uint32_t *ns = nf ? reallocarray(b->node_stack, cap, sizeof(uint32_t)) : NULL;
    if (ns) b->node_stack = ns;
    uint32_t *nd2 = ns ? reallocarray(b->node_depth, cap, sizeof(uint32_t)) : NULL;
    if (nd2) b->node_depth = nd2;
    if (!nd2) return -ENOMEM;
    b->nodes_cap = cap;
  }
  b->node_parent[nd] = parent;
  b->node_frame[nd] = frame;
  b->node_stack[nd] = NONE;
  b->node_depth[nd] = parent == PL__RB_ROOT ? 1 : b->node_depth[parent] + 1;
  return nd;
}

int64_t pl__rb_stack(pl__rb *b, uint32_t node) {
  uint32_t *known = node == PL__RB_ROOT ? &b->root_stack : &b->node_stack[node];
  if (*known != NONE) return *known;
  if (b->nstacks >= MAX_IDS) return -E2BIG;
  uint32_t depth = node == PL__RB_ROOT ? 0 : b->node_depth[node];
  if (b->total_depth + depth > PL__RB_MAX_FRAMES) return -E2BIG;
  if (PL__RESERVE(b->stack_node, b->stacks_cap, b->nstacks + 1)) return -ENOMEM;
  b->stack_node[b->nstacks] = node;
  *known = (uint32_t)b->nstacks;
  b->total_depth += depth;
  return (int64_t)b->nstacks++;
}

/* Frames (adopted by adopt()) and one pool of all stacks' frame indices. */
static int take_arrays(pl__rb *b, int (*adopt)(void *model, void *block), pl_frame **frames,
                       uint32_t **pool) {
  size_t nf = b->frame_keys.n;
  *frames = NULL;
  *pool = NULL;
  if (nf) {
    *frames = b->frames;
    b->frames = NULL;
    b->frames_cap = 0;
    if (adopt(b->model, *frames)) return -ENOMEM;
  }
  if (b->total_depth > SIZE_MAX / sizeof(uint32_t)) return -ENOMEM;
  *pool = malloc(b->total_depth ? (size_t)b->total_depth * sizeof(uint32_t) : 1);
  if (!*pool || adopt(b->model, *pool)) return -ENOMEM;
  return 0;
}

/* Fills stack si's frames (leaf first) at dst; returns the depth. */
static uint32_t fill_stack(const pl__rb *b, size_t si, uint32_t *dst) {
  uint32_t d = 0;
  for (uint32_t n = b->stack_node[si]; n != PL__RB_ROOT; n = b->node_parent[n])
    dst[d++] = b->node_frame[n];
  return d;
}

static int adopt_cpu(void *model, void *block) { return pl_cpu_profile_adopt(model, block); }

static int adopt_heap(void *model, void *block) {
  return pl_heap_snapshot_adopt(model, block, 0, NULL);
}

int pl__rb_finish_cpu(pl__rb *b, pl_cpu_profile *p) {
  pl_frame *frames;
  uint32_t *pool;
  int rc = take_arrays(b, adopt_cpu, &frames, &pool);
  if (rc) return rc;
  pl_cpu_stack *stacks = malloc((b->nstacks ? b->nstacks : 1) * sizeof(*stacks));
  if (!stacks || pl_cpu_profile_adopt(p, stacks)) return -ENOMEM;
  size_t pos = 0;
  for (size_t i = 0; i < b->nstacks; i++) {
    stacks[i].frames = pool + pos;
    stacks[i].depth = fill_stack(b, i, pool + pos);
    pos += stacks[i].depth;
  }
  p->frames = frames;
  p->nframes = b->frame_keys.n;
  p->stacks = stacks;
  p->nstacks = b->nstacks;
  return 0;
}

int pl__rb_finish_heap(pl__rb *b, pl_heap_snapshot *s) {
  pl_frame *frames;
  uint32_t *pool;
  int rc = take_arrays(b, adopt_heap, &frames, &pool);
  if (rc) return rc;
  pl_heap_stack *stacks = calloc(b->nstacks ? b->nstacks : 1, sizeof(*stacks));
  if (!stacks || pl_heap_snapshot_adopt(s, stacks, 0, NULL)) return -ENOMEM;
  size_t pos = 0;
  for (size_t i = 0; i < b->nstacks; i++) {
    stacks[i].frames = pool + pos;
    stacks[i].depth = fill_stack(b, i, pool + pos);
    pos += stacks[i].depth;
  }
  /* frames non-NULL even when empty: it tells the writers the snapshot is symbolized */
  s->frames = frames ? frames : pl_heap_snapshot_alloc(s, sizeof(pl_frame));
  if (!s->frames) return -ENOMEM;
  s->nframes = b->frame_keys.n;
  s->stacks = stacks;
  s->nstacks = b->nstacks;
  s->frames_state = PL_HEAP_FRAMES_LINES;
  return 0;
}
