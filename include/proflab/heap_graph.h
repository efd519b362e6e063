/* proflab — the heap graph model: a whole .heapsnapshot's objects and
 * references (Node's, Chrome's or proflab's) in compact arrays, as the
 * .heapsnapshot reader builds it and the dominator analysis reads it. The
 * graph owns its arrays and strings (pl_heap_graph_free). Not thread-safe:
 * one thread at a time.
 *
 * Nodes are numbered by ordinal 0..node_count-1 (node 0 is the root, as in
 * the file); node i's edges are first_edge[i]..first_edge[i+1]-1, edges are
 * numbered 0..edge_count-1 in file order. Every index is checked by the
 * reader: edge_to < node_count, node_name < nstrings, names of edges other
 * than element/hidden < nstrings, types < the meta's type counts.
 */
#ifndef PROFLAB_HEAP_GRAPH_H
#define PROFLAB_HEAP_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Most node and edge types a graph may name (the meta's type lists). */
#define PL_HEAP_GRAPH_MAX_TYPES 64u

typedef struct pl_heap_graph {
  uint32_t node_count;
  uint32_t edge_count;
  /* by node ordinal */
  uint8_t *node_type;         /* index into node_type_names */
  uint32_t *node_name;        /* index into strings */
  uint64_t *node_id;          /* the snapshot's object id */
  uint64_t *node_self;        /* self (shallow) size in bytes */
  uint32_t *first_edge;       /* node_count + 1 entries */
  uint8_t *node_detachedness; /* 0 unknown, 1 attached, 2 detached (& 3); NULL:
                                 the file has no detachedness field */
  /* by edge */
  uint8_t *edge_type;  /* index into edge_type_names */
  uint32_t *edge_name; /* string index, or the index of element/hidden edges */
  uint32_t *edge_to;   /* the target's node ordinal */
  /* locations (of constructors and functions): 4 entries each, node
   * ordinal, script id, line, column, in file order */
  uint32_t *locations;
  uint32_t nlocations;
  /* strings[i] points into string_data, NUL-terminated (a string holding
   * NULs reads short) */
  const char **strings;
  uint32_t nstrings;
  char *string_data;
  /* the meta's type names, each its own block */
  char *node_type_names[PL_HEAP_GRAPH_MAX_TYPES];
  uint32_t n_node_types;
  char *edge_type_names[PL_HEAP_GRAPH_MAX_TYPES];
  uint32_t n_edge_types;
} pl_heap_graph;

/* Every pointer above is NULL or a block from malloc owned by the graph: a
 * builder (the reader) allocates and grows them with malloc/realloc and
 * pl_heap_graph_free releases them with free. */

/* A new, empty graph (all counts 0, every pointer NULL), or NULL when out
 * of memory. */
pl_heap_graph *pl_heap_graph_new(void);

/* Frees g and every block it holds. NULL is fine. */
void pl_heap_graph_free(pl_heap_graph *g);

/* The index of the node (or edge) type named name, or -1. */
int pl_heap_graph_node_type(const pl_heap_graph *g, const char *name);
int pl_heap_graph_edge_type(const pl_heap_graph *g, const char *name);

/* Checks every index of g against the counts (see the top of this file):
 * 0, or -EINVAL with the first problem in msg (msg_len bytes, may be 0). */
int pl_heap_graph_check(const pl_heap_graph *g, char *msg, size_t msg_len);

/* Total of all nodes' self sizes. */
uint64_t pl_heap_graph_total_self(const pl_heap_graph *g);

#ifdef __cplusplus
}
#endif

#endif
