/* The call tree the .cpuprofile and .heapprofile writers build from a
 * model's stacks (internal to src/format/).
 *
 * A function is identified by (name, file, function_line), so different
 * program counters of one function share it; each distinct file gets a
 * scriptId in order of first use, from PL__SCRIPT_ID_BASE (0 for no file).
 * A node is identified by (parent node, function); a node's children are
 * linked in order of first use. Functions 0..npseudo-1 are the writer's
 * pseudo-frames ("(root)", "(program)", ...: keys no frame can have, no
 * file, scriptId 0) and node 0 is the root, of function 0. Each node has a
 * 64-bit `value` the writer fills (hits, self size). */
#ifndef PL_FORMAT_CALLTREE_H
#define PL_FORMAT_CALLTREE_H

#include <stddef.h>
#include <stdint.h>

#include "format/hashtab.h"
#include "proflab/cpu_profile.h"

#define PL__CT_NONE UINT32_MAX

typedef struct pl__ct_func {
  uint32_t name, file; /* ids in strs */
  uint32_t function_line;
  uint32_t script_id; /* 0 for no file */
} pl__ct_func;

typedef struct pl__ct_node {
  uint32_t func, parent;
  uint32_t first_child, last_child, next_sibling; /* node indices or PL__CT_NONE */
  uint64_t value;
} pl__ct_node;

typedef struct pl__calltree {
  pl__strtab strs;      /* function names and files */
  pl__keytab func_keys; /* (name, file, function_line) -> index in funcs */
  pl__ct_func *funcs;
  size_t funcs_cap;
  pl__keytab script_keys; /* (file, 0, 0) -> scriptId - PL__SCRIPT_ID_BASE */
  pl__keytab node_keys;   /* (parent node, function, 0) -> index in nodes; .n nodes */
  pl__ct_node *nodes;
  size_t nodes_cap;
  const pl_frame *frames;
  uint32_t *frame_func; /* by frame index: function, PL__CT_NONE until used */
} pl__calltree;

/* Set up for frames[0..nframes): the pseudo functions and the root node.
 * 0 or -ENOMEM; pl__calltree_free() either way. */
int pl__calltree_init(pl__calltree *t, const pl_frame *frames, size_t nframes,
                      const char *const *pseudo, uint32_t npseudo);
void pl__calltree_free(pl__calltree *t);
/* The node of `func` under `parent` (PL__CT_NONE: a root), made on first
 * use: node index or -ENOMEM. */
int64_t pl__calltree_node(pl__calltree *t, uint32_t parent, uint32_t func);
/* The function of frame fi, made on first use: function index or -ENOMEM. */
int64_t pl__calltree_frame_func(pl__calltree *t, uint32_t fi);

#endif
