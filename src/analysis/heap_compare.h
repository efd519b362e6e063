/* Two heap snapshots compared class by class and object by object, as
 * Chrome DevTools' Comparison view does, for `proflab diff` (internal to
 * the library; layer 5).
 *
 * Classes are the Summary's (analysis/dominators.h, pl__heap_classify):
 * B's own, and A's classified with B's inferred interfaces (DevTools'
 * aggregatesForDiff), matched by class key (name, and for an object with a
 * constructor location that location). Only nodes with a self size count
 * (self size as DevTools shows it: pl__heap_classes.self), as in the
 * Summary. Within a class, objects are matched by node id: an id of B's
 * class that A's class lacks is new ("# New", its bytes "Alloc. Size"), an
 * id of A's class that B's lacks is deleted ("# Deleted", "Freed Size");
 * an object that changed class (a plain object that gained a property)
 * is deleted from one class and new in the other, as in DevTools. */
#ifndef PL_ANALYSIS_HEAP_COMPARE_H
#define PL_ANALYSIS_HEAP_COMPARE_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/dominators.h"
#include "proflab/heap_graph.h"

/* Indices of the per-snapshot arrays. */
enum { PL__HCMP_A = 0, PL__HCMP_B = 1 };

/* One class of the comparison. */
typedef struct pl__hcmp_class {
  const char *name;         /* shown name (borrowed from the comparison) */
  const char *key;          /* class key: snapshots match by it */
  uint64_t count[2];        /* by snapshot (A, B): counted objects of the class */
  uint64_t bytes[2];        /* by snapshot: their self sizes */
  uint64_t added, removed;  /* # New (ids in B not in A), # Deleted */
  uint64_t added_bytes;     /* Alloc. Size: self sizes of the new objects (B's) */
  uint64_t removed_bytes;   /* Freed Size: self sizes of the deleted ones (A's) */
  int64_t d_count, d_bytes; /* # Delta = added - removed, Size Delta = the bytes' */
} pl__hcmp_class;

/* One new object of B. */
typedef struct pl__hcmp_object {
  uint64_t id;      /* its node id */
  uint64_t self;    /* its self size as DevTools shows it */
  uint32_t node;    /* its ordinal in B */
  uint32_t cls;     /* its class: an index into rows[0..nall) */
  const char *name; /* its node name in B (borrowed from B's graph) */
} pl__hcmp_object;

typedef struct pl__heap_compare {
  /* every class of A or B: those with a new or deleted object first (the
   * rows DevTools lists), sorted by Alloc. Size, then Size Delta, largest
   * first, then name; then the unchanged ones (same order) */
  pl__hcmp_class *rows;
  size_t nrows; /* the changed classes: rows[0..nrows) */
  size_t nall;  /* all classes */
  /* every new object of B, largest self size first, ties by id */
  pl__hcmp_object *added;
  size_t nadded;
  uint64_t nodes[2]; /* by snapshot: node count */
  uint64_t count[2]; /* by snapshot: counted objects (with a self size) */
  uint64_t bytes[2]; /* by snapshot: their self sizes (top's total) */
  uint64_t removed;  /* deleted objects, all classes */
  uint64_t removed_bytes, added_bytes;
  /* implementation: the classifications the names point into */
  pl__heap_classes cls[2];
} pl__heap_compare;

/* Compares snapshot a (before) with b (after) into out (zeroed first). The
 * graphs must outlive out (objects' names point into b). 0, -ENOMEM, or
 * -EINVAL for an empty graph; on error nothing is left to free. */
int pl__heap_compare_build(const pl_heap_graph *a, const pl_heap_graph *b, pl__heap_compare *out);

/* Releases what out holds; out is zeroed. */
void pl__heap_compare_free(pl__heap_compare *out);

#endif
