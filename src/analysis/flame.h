/* Flame graphs (internal to the library; layer 5, above the models and the
 * formats): a profile's stacks merged into a tree of functions
 * (flame.c), and that tree written as a self-contained interactive SVG
 * (flame_svg.c, with the script of flame_script.c).
 *
 * The tree. Node 0 is the root ("all"); every other node is a function
 * called from its parent's function along some stack, so two samples share
 * a node exactly as far as their stacks (root first) name the same
 * functions. A function is (name, file, first line), as in `proflab top`
 * (analysis/top.h), or its name alone (PL__FLAME_BY_NAME: profiles that
 * name their files differently). A tree holds two sides: PL__FLAME_MAIN,
 * the profile that is drawn, and PL__FLAME_BASE, the profile a
 * differential graph compares it with (analysis/diff.h); a plain flame
 * graph uses the main side only.
 *
 * Values. CPU: sampling periods (sample weights), "(idle)" samples left out
 * unless PL__FLAME_IDLE (their sum is kept in idle[]), "(program)" samples
 * a child of the root; times are value x period_ns[side] when the format
 * has times (period_ns 0 otherwise). Heap: estimated live bytes per stack
 * (pl_heap_stack.inuse_bytes, rounded), from the allocating function
 * outwards (allocation helpers such as malloc are dropped, as the heap
 * writers do), "(unknown)" for a stack without frames and "(truncated)" as
 * the outermost caller of a truncated one.
 *
 * Heap snapshots (pl__flame_add_heap_graph): the dominator tree by class.
 * Every node of the graph is counted once, its value its self size as
 * DevTools shows it (pl__heap_classes.self), so a frame's width is the
 * retained size of the objects it stands for and the root's is the whole
 * snapshot (`proflab top`'s total). The graph's root is the root frame
 * ("all"); a node's frame is its class (keyed by the class key, labelled
 * with the class name) under the frame of its immediate dominator, except
 * that a node of the same class as that frame joins it (a linked list of
 * one class is one frame, not a tower); siblings of one class share a
 * frame. At most PL__FLAME_HEAP_DEPTH class frames stack above the root:
 * everything dominated by a frame at that depth is one "(deeper)" frame
 * above it. Nodes the root does not reach hang under the root, as in the
 * Summary. O(nodes) after the dominators: the dominator tree is walked
 * once, depth first, each node mapped from its dominator's frame.
 */
#ifndef PL_ANALYSIS_FLAME_H
#define PL_ANALYSIS_FLAME_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/dominators.h"
#include "common/arena.h"
#include "common/sink.h"
#include "format/hashtab.h"
#include "proflab/cpu_profile.h"
#include "proflab/heap_snapshot.h"

#define PL__FLAME_NONE UINT32_MAX

/* Heap snapshots: class frames above the root before "(deeper)". */
#define PL__FLAME_HEAP_DEPTH 128u

/* The two sides of a tree: the drawn profile and the base of a diff. */
enum { PL__FLAME_MAIN = 0, PL__FLAME_BASE = 1 };

/* pl__flame_init() flags. */
enum {
  PL__FLAME_IDLE = 1u << 0,    /* CPU: "(idle)" samples are a child of the root */
  PL__FLAME_BY_NAME = 1u << 1, /* functions are told apart by name only */
};

typedef enum pl__flame_unit {
  PL__FLAME_SAMPLES = 0, /* CPU: sampling periods (times: x period_ns) */
  PL__FLAME_BYTES,       /* heap: estimated live bytes */
} pl__flame_unit;

/* A function of the tree. Strings are the tree's own copies. */
typedef struct pl__flame_fn {
  const char *name;
  const char *file;   /* "" when unknown */
  const char *module; /* "" when unknown */
  uint32_t line;      /* first line of the function, else a frame's line; 0 unknown */
  int meta;           /* the root, "(idle)", "(program)", "(unknown)", ...: no file */
} pl__flame_fn;

typedef struct pl__flame_node {
  uint32_t fn;           /* index into fns; 0 (the root's "all") for node 0 only */
  uint32_t parent;       /* PL__FLAME_NONE for the root */
  uint32_t first_child;  /* PL__FLAME_NONE; after pl__flame_finish() only */
  uint32_t next_sibling; /* children in name order; PL__FLAME_NONE */
  uint32_t depth;        /* 0 for the root */
  uint64_t total[2];     /* by side: value of the node and everything it called */
  uint64_t self[2];      /* by side: value with this node as the leaf */
} pl__flame_node;

typedef struct pl__flame_tree {
  pl__flame_node *nodes; /* nodes[0] is the root */
  size_t nnodes;
  pl__flame_fn *fns; /* fns[0] is "all" */
  size_t nfns;
  pl__flame_unit unit;
  unsigned flags;        /* PL__FLAME_* */
  uint64_t samples[2];   /* by side: model samples (CPU), live samples (heap) or graph nodes */
  uint64_t idle[2];      /* by side, CPU: periods in "(idle)", counted in the tree or not */
  uint64_t period_ns[2]; /* by side, CPU: the sampling interval; 0 when unknown (folded) */
  uint32_t max_depth;    /* deepest node */
  int finished;          /* pl__flame_finish() ran */
  /* implementation */
  size_t ncap, fcap;
  pl__strtab strs;      /* the arena's copies of names and files */
  pl__keytab fn_keys;   /* (name, file, line) -> fn - 1 */
  pl__keytab node_keys; /* (parent, fn, 0) -> node - 1 */
  pl__arena arena;
} pl__flame_tree;

/* An empty tree of the given unit and flags (just the root): 0 or -ENOMEM
 * (nothing to free then). */
int pl__flame_init(pl__flame_tree *t, pl__flame_unit unit, unsigned flags);

/* Adds every sample of p to side `side` of t (a tree of unit
 * PL__FLAME_SAMPLES): 0, -EINVAL (p breaks cpu_profile.h, side or unit
 * wrong, t finished), -ENOMEM, -EFBIG (more than 2^32 - 2 nodes or
 * functions); after an error t may only be freed. Sets period_ns[side] to p's
 * interval, or to 0 when times_known is 0 (folded stacks). */
int pl__flame_add_cpu(pl__flame_tree *t, int side, const pl_cpu_profile *p, int times_known);

/* Adds the live bytes of s (symbolized or not: unsymbolized pcs read as
 * "0x..." as the heap writers name them) to side `side` of t (a tree of
 * unit PL__FLAME_BYTES). Errors as pl__flame_add_cpu(). */
int pl__flame_add_heap(pl__flame_tree *t, int side, const pl_heap_snapshot *s);

/* Adds heap graph g (a .heapsnapshot) to side `side` of t (a tree of unit
 * PL__FLAME_BYTES) as its dominator tree by class (see the top of this
 * file); c is g's classification (pl__heap_classify or _with: two sides
 * match frames by class key). Adds g's node count to samples[side]. 0,
 * -EINVAL (side or unit wrong, t finished, an empty graph), -ENOMEM,
 * -EFBIG; after an error t may only be freed. */
int pl__flame_add_heap_graph(pl__flame_tree *t, int side, const pl_heap_graph *g,
                             const pl__heap_classes *c);

/* Links every node's children in order of function name (then file and
 * line), so a graph reads left to right alphabetically; no more adds
 * after it. 0 or -ENOMEM (t unchanged). */
int pl__flame_finish(pl__flame_tree *t);

/* Releases what t holds; t may be initialized again. */
void pl__flame_free(pl__flame_tree *t);

/* ---- the SVG ------------------------------------------------------------ */

typedef enum pl__flame_palette {
  PL__FLAME_HOT = 0, /* CPU: warm colors by a hash of the function name */
  PL__FLAME_MEM,     /* memory: greens and blues by the same hash */
  PL__FLAME_DIFF,    /* red = the node's self share grew from the base, blue = shrank */
} pl__flame_palette;

typedef struct pl__flame_svg_opts {
  const char *title;    /* NULL: "Flame Graph" (or "Icicle Graph") */
  const char *subtitle; /* NULL: none */
  unsigned width;       /* image width in px, 0: 1200 (at least 200) */
  double minwidth;      /* frames narrower than this (px) are left out, with their callees */
  int icicle;           /* 1: the root at the top, callees below */
  pl__flame_palette palette;
  /* PL__FLAME_DIFF: the noise model. A self-share change below twice the
   * combined standard error sqrt(p(1-p)/n) of both sides is drawn grey
   * ("within noise"); n is the side's sampling periods (CPU). noise 0:
   * no band (heap). */
  int noise;
} pl__flame_svg_opts;

/* What pl__flame_write_svg() drew. */
typedef struct pl__flame_svg_stats {
  size_t frames;   /* frames drawn, the root included */
  size_t omitted;  /* nodes with a value left out: narrower than minwidth */
  uint32_t depth;  /* deepest frame drawn */
  unsigned height; /* image height in px */
} pl__flame_svg_stats;

/* Writes t (finished) as an SVG document into out: one <g class="f"> per
 * frame wider than o->minwidth (a <title> tooltip with the function, its
 * file:line, value and share, a rect, a label cut to fit with an ellipsis),
 * the title and subtitle, "Reset zoom" and "Search" controls, and a script
 * (no network access, no other file) for hover details, click-to-zoom,
 * search (the Search box, Ctrl-F or "/"; a regular expression, else a
 * substring, over function names: matches are drawn magenta and their share
 * shown) and reset. The subtitle gets "; N frames narrower than X px not
 * drawn" when frames were left out. All text is XML-escaped; invalid UTF-8 reads as U+FFFD.
 * Returns 0, -EINVAL (t not finished, width or minwidth out of range), or
 * the sink's error (pl__sink_finish() is the caller's). stats may be NULL. */
int pl__flame_write_svg(const pl__flame_tree *t, const pl__flame_svg_opts *o, pl__sink *out,
                        pl__flame_svg_stats *stats);

/* The color of a function under palette p (HOT or MEM): the same name gets
 * the same color in every graph. rgb receives 3 bytes. */
void pl__flame_color(pl__flame_palette p, const char *name, unsigned char rgb[3]);

/* The script inside every graph (flame_script.c): JavaScript without "]]>",
 * placed in a CDATA section. */
extern const char pl__flame_script[];

#endif
