/* Aggregation of CPU profiles and heap snapshots by function, for `proflab
 * top` (see top.h). */
#include "analysis/top.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/cpu_common.h"
#include "format/hashtab.h"
#include "format/heap_common.h"

#define NONE UINT32_MAX

/* Functions seen so far: (name, file, first line) -> row. */
typedef struct fn_table {
  pl__strtab strs;
  pl__keytab keys;
  pl__top_row *rows;
  size_t cap;
  uint32_t *last; /* by row: 1 + the stack that last counted its total */
} fn_table;

static void fns_free(fn_table *t) {
  pl__strtab_free(&t->strs);
  pl__keytab_free(&t->keys);
  free(t->rows);
  free(t->last);
}

/* The row of frame f: its index, or -ENOMEM. */
static int64_t fn_row(fn_table *t, const pl_frame *f) {
  const char *name = f->function && *f->function ? f->function : "(unknown)";
  const char *file = pl__str(f->file);
  int64_t n = pl__strtab_intern(&t->strs, name);
  int64_t fi = n < 0 ? n : pl__strtab_intern(&t->strs, file);
  if (fi < 0) return fi;
  int added;
  int64_t r = pl__keytab_intern(&t->keys, (uint32_t)n, (uint32_t)fi, f->function_line, &added);
  if (r < 0 || !added) return r;
  if ((size_t)r >= t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    pl__top_row *nr = reallocarray(t->rows, cap, sizeof(*nr));
    if (!nr) return -ENOMEM;
    t->rows = nr;
    uint32_t *nl = reallocarray(t->last, cap, sizeof(*nl));
    if (!nl) return -ENOMEM;
    t->last = nl;
    t->cap = cap;
  }
  size_t len = strlen(name);
  t->rows[r] = (pl__top_row){
      .function = name,
      .file = file,
      .module = pl__str(f->module),
      .line = f->function_line ? f->function_line : f->line,
      .meta = !*file && len > 2 && name[0] == '(' && name[len - 1] == ')',
  };
  t->last[r] = 0;
  return r;
}

/* Moves the rows with a total into out (the table's arrays are freed). */
static int take_rows(fn_table *t, pl__top *out, size_t extra) {
  size_t n = t->keys.n;
  out->rows = calloc(n + extra ? n + extra : 1, sizeof(*out->rows));
  if (!out->rows) return -ENOMEM;
  for (size_t i = 0; i < n; i++)
    if (t->rows[i].total || t->rows[i].total_objects > 0) out->rows[out->nrows++] = t->rows[i];
  return 0;
}

/* ---- CPU ---------------------------------------------------------------- */

int pl__top_cpu(const pl_cpu_profile *p, pl__top *out) {
  memset(out, 0, sizeof(*out));
  int rc = pl__cpu_profile_check(p);
  if (rc) return rc;
  fn_table t;
  memset(&t, 0, sizeof(t));
  pl__strtab_init(&t.strs);
  pl__keytab_init(&t.keys);
  uint64_t program = 0;
  uint64_t *weight = calloc(p->nstacks ? p->nstacks : 1, sizeof(*weight));
  uint32_t *frame_row = malloc((p->nframes ? p->nframes : 1) * sizeof(*frame_row));
  if (!weight || !frame_row) {
    rc = -ENOMEM;
    goto out;
  }
  memset(frame_row, 0xff, p->nframes * sizeof(*frame_row));
  for (size_t i = 0; i < p->nsamples; i++) {
    const pl_cpu_sample *s = &p->samples[i];
    uint32_t st = pl__sample_stack(p, s);
    if (st == PL_STACK_IDLE)
      out->idle += s->weight;
    else if (st == PL_STACK_PROGRAM)
      program += s->weight;
    else
      weight[st] += s->weight;
    out->total += s->weight;
  }
  out->samples = p->nsamples;
  for (size_t si = 0; si < p->nstacks; si++) {
    if (!weight[si]) continue;
    const pl_cpu_stack *st = &p->stacks[si];
    for (uint32_t d = 0; d < st->depth; d++) {
      uint32_t f = st->frames[d];
      if (frame_row[f] == NONE) {
        int64_t r = fn_row(&t, &p->frames[f]);
        if (r < 0) {
          rc = (int)r;
          goto out;
        }
        frame_row[f] = (uint32_t)r;
      }
      pl__top_row *row = &t.rows[frame_row[f]];
      if (d == 0) row->self += weight[si];
      if (t.last[frame_row[f]] != si + 1) { /* once per stack, however deep it recurses */
        t.last[frame_row[f]] = (uint32_t)(si + 1);
        row->total += weight[si];
      }
    }
  }
  if ((rc = take_rows(&t, out, 2))) goto out;
  static const pl__top_row idle_row = {"(idle)", "", "", 0, 1, 0, 0, 0, 0};
  static const pl__top_row program_row = {"(program)", "", "", 0, 1, 0, 0, 0, 0};
  if (out->idle) {
    out->rows[out->nrows] = idle_row;
    out->rows[out->nrows].self = out->rows[out->nrows].total = out->idle;
    out->nrows++;
  }
  if (program) {
    out->rows[out->nrows] = program_row;
    out->rows[out->nrows].self = out->rows[out->nrows].total = program;
    out->nrows++;
  }
out:
  free(weight);
  free(frame_row);
  fns_free(&t); /* the rows keep the model's strings, not the table's */
  if (rc) pl__top_free(out);
  return rc;
}

/* ---- heap --------------------------------------------------------------- */

/* What a heap top keeps alive: the view whose synthesized names rows borrow. */
typedef struct heap_keep {
  pl__heap_view v;
} heap_keep;

int pl__top_heap(const pl_heap_snapshot *s, pl__top *out) {
  memset(out, 0, sizeof(*out));
  heap_keep *keep = calloc(1, sizeof(*keep));
  if (!keep) return -ENOMEM;
  int rc = pl__heap_view_init(&keep->v, s);
  if (rc) {
    free(keep);
    return rc;
  }
  const pl__heap_view *v = &keep->v;
  fn_table t;
  memset(&t, 0, sizeof(t));
  pl__strtab_init(&t.strs);
  pl__keytab_init(&t.keys);
  uint32_t *frame_row = malloc((v->nframes ? v->nframes : 1) * sizeof(*frame_row));
  if (!frame_row) {
    rc = -ENOMEM;
    goto out;
  }
  memset(frame_row, 0xff, v->nframes * sizeof(*frame_row));
  static const pl_frame unknown = {"(unknown)", "", "", 0, 0, 0};
  int64_t unknown_row = -1;
  for (size_t si = 0; si < s->nstacks; si++) {
    const pl_heap_stack *st = &s->stacks[si];
    uint64_t bytes = pl__heap_round(st->inuse_bytes);
    double objects = st->inuse_objects > 0 ? st->inuse_objects : 0;
    if (!bytes && !(objects > 0)) continue;
    out->total += bytes;
    out->total_objects += objects;
    if (!st->depth) {
      if (unknown_row < 0 && (unknown_row = fn_row(&t, &unknown)) < 0) {
        rc = (int)unknown_row;
        goto out;
      }
      pl__top_row *row = &t.rows[unknown_row];
      row->self += bytes;
      row->total += bytes;
      row->self_objects += objects;
      row->total_objects += objects;
      continue;
    }
    for (uint32_t d = v->first[si]; d < st->depth; d++) {
      uint32_t f = v->stack_frames[si][d];
      if (frame_row[f] == NONE) {
        int64_t r = fn_row(&t, &v->frames[f]);
        if (r < 0) {
          rc = (int)r;
          goto out;
        }
        frame_row[f] = (uint32_t)r;
      }
      pl__top_row *row = &t.rows[frame_row[f]];
      if (d == v->first[si]) {
        row->self += bytes;
        row->self_objects += objects;
      }
      if (t.last[frame_row[f]] != si + 1) {
        t.last[frame_row[f]] = (uint32_t)(si + 1);
        row->total += bytes;
        row->total_objects += objects;
      }
    }
  }
  out->samples = s->nsamples;
  rc = take_rows(&t, out, 0);
out:
  free(frame_row);
  fns_free(&t);
  if (rc) {
    pl__heap_view_free(&keep->v);
    free(keep);
    pl__top_free(out);
    return rc;
  }
  out->keep = keep; /* the rows may borrow the view's names: freed with them */
  return 0;
}

/* ---- order -------------------------------------------------------------- */

static int cmp_rows(const void *a, const void *b, void *by_total) {
  const pl__top_row *x = a, *y = b;
  uint64_t x1 = *(int *)by_total ? x->total : x->self, y1 = *(int *)by_total ? y->total : y->self;
  uint64_t x2 = *(int *)by_total ? x->self : x->total, y2 = *(int *)by_total ? y->self : y->total;
  if (x1 != y1) return x1 > y1 ? -1 : 1;
  if (x2 != y2) return x2 > y2 ? -1 : 1;
  int c = strcmp(x->function, y->function);
  return c ? c : strcmp(x->file, y->file);
}

void pl__top_sort(pl__top *t, int by_total) {
  if (t->nrows) qsort_r(t->rows, t->nrows, sizeof(*t->rows), cmp_rows, &by_total);
}

void pl__top_free(pl__top *t) {
  free(t->rows);
  if (t->keep) {
    heap_keep *k = t->keep;
    pl__heap_view_free(&k->v);
    free(k);
  }
  memset(t, 0, sizeof(*t));
}
