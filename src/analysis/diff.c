/* Two profiles compared by function, with a sampling-noise band (see
 * diff.h). */
#include "analysis/diff.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NONE PL__FLAME_NONE

static uint64_t sat_add(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }

static double share(uint64_t part, uint64_t whole) {
  return whole ? (double)part / (double)whole : 0.0;
}

double pl__diff_band(double pa, uint64_t na, double pb, uint64_t nb) {
  double va = na ? pa * (1 - pa) / (double)na : 0, vb = nb ? pb * (1 - pb) / (double)nb : 0;
  if (va < 0) va = 0;
  if (vb < 0) vb = 0;
  return 2 * sqrt(va + vb);
}

/* The tree's side of profile k (A is the base, B the drawn one). */
static int side_of(int k) { return k == PL__DIFF_B ? PL__FLAME_MAIN : PL__FLAME_BASE; }

/* Rows from the finished tree: self summed over a function's nodes, total
 * over its outermost nodes on each path (recursion counted once). */
static int make_rows(pl__diff *d) {
  const pl__flame_tree *t = &d->tree;
  int rc = 0;
  pl__diff_row *rows = calloc(t->nfns ? t->nfns : 1, sizeof(*rows));
  uint32_t *onpath = calloc(t->nfns ? t->nfns : 1, sizeof(*onpath));
  /* entries: node * 2 + 1 to enter, node * 2 to leave (nodes < 2^32 - 1) */
  uint64_t *stack = malloc(2 * t->nnodes * sizeof(*stack));
  if (!rows || !onpath || !stack) {
    rc = -ENOMEM;
    goto out;
  }
  size_t top = 0;
  for (uint32_t c = t->nodes[0].first_child; c != NONE; c = t->nodes[c].next_sibling)
    stack[top++] = (uint64_t)c * 2 + 1;
  while (top) {
    uint64_t e = stack[--top];
    uint32_t ni = (uint32_t)(e >> 1);
    const pl__flame_node *n = &t->nodes[ni];
    if (!(e & 1)) {
      onpath[n->fn]--;
      continue;
    }
    pl__diff_row *r = &rows[n->fn];
    for (int k = 0; k < 2; k++) {
      int s = side_of(k);
      r->self[k] = sat_add(r->self[k], n->self[s]);
      if (!onpath[n->fn]) r->total[k] = sat_add(r->total[k], n->total[s]);
    }
    onpath[n->fn]++;
    stack[top++] = (uint64_t)ni * 2;
    for (uint32_t c = n->first_child; c != NONE; c = t->nodes[c].next_sibling)
      stack[top++] = (uint64_t)c * 2 + 1;
  }
  for (int k = 0; k < 2; k++) d->total[k] = t->nodes[0].total[side_of(k)];
  size_t n = 0;
  for (size_t fn = 1; fn < t->nfns; fn++) {
    pl__diff_row r = rows[fn];
    if (!r.total[0] && !r.total[1]) continue;
    const pl__flame_fn *f = &t->fns[fn];
    r.function = f->name;
    r.file = f->file;
    r.module = f->module;
    r.line = f->line;
    r.meta = f->meta;
    for (int k = 0; k < 2; k++) {
      r.self_share[k] = share(r.self[k], d->total[k]);
      r.total_share[k] = share(r.total[k], d->total[k]);
    }
    r.d_self = r.self_share[1] - r.self_share[0];
    r.d_total = r.total_share[1] - r.total_share[0];
    if (d->noise) {
      r.self_band = pl__diff_band(r.self_share[0], d->total[0], r.self_share[1], d->total[1]);
      r.total_band = pl__diff_band(r.total_share[0], d->total[0], r.total_share[1], d->total[1]);
    }
    r.self_noise = r.d_self == 0 || fabs(r.d_self) < r.self_band;
    r.total_noise = r.d_total == 0 || fabs(r.d_total) < r.total_band;
    rows[n++] = r;
  }
  d->rows = rows;
  d->nrows = n;
  rows = NULL;
out:
  free(rows);
  free(onpath);
  free(stack);
  return rc;
}

int pl__diff_cpu(const pl_cpu_profile *a, int a_times, const pl_cpu_profile *b, int b_times,
                 unsigned flags, pl__diff *out) {
  memset(out, 0, sizeof(*out));
  int rc = pl__flame_init(&out->tree, PL__FLAME_SAMPLES, flags);
  if (rc) return rc;
  if (!(rc = pl__flame_add_cpu(&out->tree, PL__FLAME_BASE, a, a_times)) &&
      !(rc = pl__flame_add_cpu(&out->tree, PL__FLAME_MAIN, b, b_times)) &&
      !(rc = pl__flame_finish(&out->tree))) {
    out->noise = 1;
    out->idle[PL__DIFF_A] = out->tree.idle[PL__FLAME_BASE];
    out->idle[PL__DIFF_B] = out->tree.idle[PL__FLAME_MAIN];
    rc = make_rows(out);
  }
  if (rc) pl__diff_free(out);
  return rc;
}

int pl__diff_heap(const pl_heap_snapshot *a, const pl_heap_snapshot *b, unsigned flags,
                  pl__diff *out) {
  memset(out, 0, sizeof(*out));
  int rc = pl__flame_init(&out->tree, PL__FLAME_BYTES, flags & PL__FLAME_BY_NAME);
  if (rc) return rc;
  if (!(rc = pl__flame_add_heap(&out->tree, PL__FLAME_BASE, a)) &&
      !(rc = pl__flame_add_heap(&out->tree, PL__FLAME_MAIN, b)) &&
      !(rc = pl__flame_finish(&out->tree)))
    rc = make_rows(out);
  if (rc) pl__diff_free(out);
  return rc;
}

typedef struct sort_ctx {
  int by_total; /* order by the total change, else by the self change */
  int bytes;    /* heap: by the change in bytes, else in shares */
} sort_ctx;

/* |B - A| of a row: of shares, or of values (heap). */
static double change(const pl__diff_row *r, int total, int bytes) {
  if (bytes) {
    const uint64_t *v = total ? r->total : r->self;
    return fabs((double)v[1] - (double)v[0]);
  }
  return fabs(total ? r->d_total : r->d_self);
}

static int cmp_rows(const void *x, const void *y, void *ctx) {
  const pl__diff_row *a = x, *b = y;
  const sort_ctx *c = ctx;
  double a1 = change(a, c->by_total, c->bytes), b1 = change(b, c->by_total, c->bytes);
  double a2 = change(a, !c->by_total, c->bytes), b2 = change(b, !c->by_total, c->bytes);
  if (a1 != b1) return a1 > b1 ? -1 : 1;
  if (a2 != b2) return a2 > b2 ? -1 : 1;
  int k = strcmp(a->function, b->function);
  if (!k) k = strcmp(a->file, b->file);
  if (!k && a->line != b->line) k = a->line < b->line ? -1 : 1;
  return k;
}

void pl__diff_sort(pl__diff *d, int by_total) {
  sort_ctx c = {by_total, d->tree.unit == PL__FLAME_BYTES};
  if (d->nrows) qsort_r(d->rows, d->nrows, sizeof(*d->rows), cmp_rows, &c);
}

void pl__diff_free(pl__diff *d) {
  free(d->rows);
  pl__flame_free(&d->tree);
  memset(d, 0, sizeof(*d));
}
