/* Dominators, retained sizes and the Summary of a heap graph, computed as
 * Chrome DevTools' heap-snapshot worker does (internal; layer 5).
 *
 * Edges that retain ("essential" edges, as DevTools): not weak; not an
 * internal edge of a WeakMap table to its ephemeron value (name "N / part
 * of key (...) -> value (...) pair in WeakMap (table @ID)" on the table
 * ID); not a node's edge to itself; shortcut edges only from the root; and
 * from a node other than the root, no edge from a node that is not
 * page-owned to one that is (page-owned: reachable without weak edges from
 * the root's shortcut targets and its element edges to "(Document DOM
 * trees)"). The root is node 0. Nodes the root does not reach: those with
 * no retaining edge hang under the root (with what they reach), then the
 * rest one by one; then the Lengauer-Tarjan dominator tree over that DFS.
 *
 * Summary classes as DevTools names them: hidden "(system)", object and
 * native their name ("<div id=x>" -> "<div>"), code "(compiled code)",
 * closure "Function", regexp "RegExp", any other type "(type)"; as
 * DevTools, objects of one name are split by the constructor's location
 * (the class key), plain objects are named after their properties ("{a,
 * b}", interfaces inferred from the snapshot, or from another one when two
 * are compared), and native nodes DevTools calls detached are "Detached
 * <name>". */
#ifndef PL_ANALYSIS_DOMINATORS_H
#define PL_ANALYSIS_DOMINATORS_H

#include <stddef.h>
#include <stdint.h>

#include "proflab/heap_graph.h"

/* Self sizes as DevTools shows them (self: g->node_count entries, the
 * caller's): when the root has a child other than a synthetic node (a "user
 * root", as in every Node/Chrome snapshot), the size of each hidden or
 * array node (and native "system / ExternalStringData") reachable through
 * non-weak edges from exactly one other node's objects moves to that
 * owner, unless the owner is the root or synthetic; otherwise the file's
 * sizes. 0 or -ENOMEM. */
int pl__heap_shallow_sizes(const pl_heap_graph *g, uint64_t *self);

/* idom[v]: v's immediate dominator (the root's is itself); retained[v]:
 * v's retained size from the self sizes self (NULL: the file's). Both
 * arrays have g->node_count entries (caller's; also the computation's
 * scratch space, so neither may alias self). *unreachable (may be
 * NULL): nodes the root does not reach through retaining edges. 0,
 * -ENOMEM, -EINVAL for an empty graph. */
int pl__heap_dominators(const pl_heap_graph *g, const uint64_t *self, uint32_t *idom,
                        uint64_t *retained, uint32_t *unreachable);

/* Every node's Summary class, as pl__heap_summary_build() groups them. A
 * class is told apart by its key: the shown name, prefixed for an object
 * with a constructor location by "\001script,line,col\001" (DevTools shows
 * one row per location); snapshots of one program can be compared by key. */
typedef struct pl__heap_classes {
  uint32_t *of;      /* by node ordinal: its class */
  uint64_t *self;    /* by node ordinal: self size as DevTools shows it
                        (pl__heap_shallow_sizes) */
  const char **key;  /* by class: its key */
  const char **name; /* by class: the name shown (points into its key) */
  size_t n;          /* classes */
  char **owned;      /* implementation */
  size_t nowned;
} pl__heap_classes;

/* Classifies every node of g into out (zeroed first): 0, -ENOMEM, or
 * -EINVAL for an empty graph (nothing to free on error). */
int pl__heap_classify(const pl_heap_graph *g, pl__heap_classes *out);

/* The same, with plain objects named after the interfaces ("{a, b}")
 * inferred from the plain objects of ifaces (NULL: g) instead of g's: the
 * base snapshot of a comparison is classified with the other snapshot's
 * interfaces, as DevTools' aggregatesForDiff() does, so that one object
 * gets one key in both. Property names are matched by content. */
int pl__heap_classify_with(const pl_heap_graph *g, const pl_heap_graph *ifaces,
                           pl__heap_classes *out);

/* Releases what pl__heap_classify() made; c is zeroed. */
void pl__heap_classes_free(pl__heap_classes *c);

typedef struct pl__heap_class {
  const char *name;  /* borrowed from the graph or static */
  uint64_t count;    /* nodes of the class with a self size */
  uint64_t self;     /* their self sizes */
  uint64_t retained; /* retained sizes of those not dominated by one of the class */
} pl__heap_class;

typedef struct pl__heap_summary {
  pl__heap_class *rows;
  size_t nrows;
  uint64_t total;       /* the root's retained size: every node's self size */
  uint64_t nodes;       /* node count */
  uint32_t unreachable; /* nodes the root did not reach */
  char **owned;         /* class names made here (implementation) */
  size_t nowned;
} pl__heap_summary;

/* DevTools' Summary of g into out (zeroed first), rows sorted by retained
 * size, largest first (ties: shallow, then name). 0, -ENOMEM, -EINVAL. */
int pl__heap_summary_build(const pl_heap_graph *g, pl__heap_summary *out);

/* Releases out's rows; out is zeroed. */
void pl__heap_summary_free(pl__heap_summary *out);

#endif
