/* Two heap snapshots compared by class and object id, as DevTools'
 * Comparison view does (see heap_compare.h). */
#include "analysis/heap_compare.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/hashtab.h"

/* One snapshot's counted nodes bucketed by global class, by id within. */
typedef struct bucketed {
  uint32_t *first; /* nglob + 1 entries: class k's nodes are ord[first[k]..first[k+1]) */
  uint32_t *ord;   /* node ordinals */
} bucketed;

static int by_id(const void *a, const void *b, void *graph) {
  const pl_heap_graph *g = graph;
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  if (g->node_id[x] != g->node_id[y]) return g->node_id[x] < g->node_id[y] ? -1 : 1;
  return x < y ? -1 : x > y;
}

/* Buckets g's nodes with a self size by glob[class]: 0 or -ENOMEM. */
static int bucket(const pl_heap_graph *g, const pl__heap_classes *c, const uint32_t *glob,
                  size_t nglob, bucketed *out) {
  uint32_t n = g->node_count;
  out->first = calloc(nglob + 2, sizeof(*out->first));
  out->ord = malloc((n ? n : 1) * sizeof(*out->ord));
  if (!out->first || !out->ord) return -ENOMEM;
  for (uint32_t v = 0; v < n; v++)
    if (c->self[v]) out->first[glob[c->of[v]] + 2]++;
  for (size_t k = 0; k < nglob; k++) out->first[k + 2] += out->first[k + 1];
  for (uint32_t v = 0; v < n; v++)
    if (c->self[v]) out->ord[out->first[glob[c->of[v]] + 1]++] = v;
  /* first[k + 1] now ends class k, first[0] = 0 starts class 0 */
  for (size_t k = 0; k < nglob; k++) {
    uint32_t from = out->first[k], to = out->first[k + 1];
    if (to - from > 1) qsort_r(out->ord + from, to - from, sizeof(*out->ord), by_id, (void *)g);
  }
  return 0;
}

static int row_cmp(const void *a, const void *b, void *rows) {
  const pl__hcmp_class *x = &((const pl__hcmp_class *)rows)[*(const uint32_t *)a];
  const pl__hcmp_class *y = &((const pl__hcmp_class *)rows)[*(const uint32_t *)b];
  int cx = x->added || x->removed, cy = y->added || y->removed;
  if (cx != cy) return cx ? -1 : 1;
  if (x->added_bytes != y->added_bytes) return x->added_bytes > y->added_bytes ? -1 : 1;
  if (x->d_bytes != y->d_bytes) return x->d_bytes > y->d_bytes ? -1 : 1;
  int c = strcmp(x->name, y->name);
  return c ? c : strcmp(x->key, y->key);
}

static int obj_cmp(const void *a, const void *b) {
  const pl__hcmp_object *x = a, *y = b;
  if (x->self != y->self) return x->self > y->self ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

int pl__heap_compare_build(const pl_heap_graph *a, const pl_heap_graph *b, pl__heap_compare *out) {
  memset(out, 0, sizeof(*out));
  if (!a->node_count || !b->node_count) return -EINVAL;
  pl__strtab keys;
  pl__strtab_init(&keys);
  uint32_t *glob[2] = {NULL, NULL}, *perm = NULL, *pos = NULL;
  bucketed bk[2] = {{NULL, NULL}, {NULL, NULL}};
  pl__hcmp_class *tmp = NULL;
  const pl_heap_graph *g[2] = {a, b};
  int rc;
  /* A with B's interfaces, as DevTools' aggregatesForDiff */
  if ((rc = pl__heap_classify_with(a, b, &out->cls[0])) < 0) goto fail;
  if ((rc = pl__heap_classify(b, &out->cls[1])) < 0) goto fail;
  rc = -ENOMEM;
  for (int s = 0; s < 2; s++) {
    const pl__heap_classes *c = &out->cls[s];
    glob[s] = malloc((c->n ? c->n : 1) * sizeof(*glob[s]));
    if (!glob[s]) goto fail;
    for (size_t k = 0; k < c->n; k++) {
      int64_t id = pl__strtab_intern(&keys, c->key[k]);
      if (id < 0) goto fail;
      glob[s][k] = (uint32_t)id;
    }
  }
  size_t nglob = keys.n;
  tmp = calloc(nglob ? nglob : 1, sizeof(*tmp));
  if (!tmp) goto fail;
  for (int s = 1; s >= 0; s--) { /* B's name first, else A's (DevTools) */
    const pl__heap_classes *c = &out->cls[s];
    for (size_t k = 0; k < c->n; k++)
      if (!tmp[glob[s][k]].name) {
        tmp[glob[s][k]].name = c->name[k];
        tmp[glob[s][k]].key = c->key[k];
      }
  }
  for (int s = 0; s < 2; s++) {
    if ((rc = bucket(g[s], &out->cls[s], glob[s], nglob, &bk[s])) < 0) goto fail;
    rc = -ENOMEM;
    out->nodes[s] = g[s]->node_count;
  }
  /* the merge of DevTools' calculateDiffForClass, per class */
  size_t nadded = 0, cap = 0;
  for (size_t k = 0; k < nglob; k++) {
    pl__hcmp_class *r = &tmp[k];
    const uint64_t *sa = out->cls[0].self, *sb = out->cls[1].self;
    uint32_t i = bk[0].first[k], l = bk[0].first[k + 1];
    uint32_t j = bk[1].first[k], m = bk[1].first[k + 1];
    r->count[0] = l - i;
    r->count[1] = m - j;
    for (uint32_t x = i; x < l; x++) r->bytes[0] += sa[bk[0].ord[x]];
    for (uint32_t x = j; x < m; x++) r->bytes[1] += sb[bk[1].ord[x]];
    while (i < l || j < m) {
      uint32_t va = i < l ? bk[0].ord[i] : 0, vb = j < m ? bk[1].ord[j] : 0;
      if (j == m || (i < l && a->node_id[va] < b->node_id[vb])) {
        r->removed++;
        r->removed_bytes += sa[va];
        i++;
      } else if (i == l || a->node_id[va] > b->node_id[vb]) {
        if (nadded == cap) {
          size_t nc = cap ? cap * 2 : 256;
          pl__hcmp_object *q = realloc(out->added, nc * sizeof(*q));
          if (!q) goto fail;
          out->added = q;
          cap = nc;
        }
        out->added[nadded++] = (pl__hcmp_object){
            .id = b->node_id[vb],
            .self = sb[vb],
            .node = vb,
            .cls = (uint32_t)k,
            .name = b->strings[b->node_name[vb]],
        };
        r->added++;
        r->added_bytes += sb[vb];
        j++;
      } else {
        i++;
        j++;
      }
    }
    r->d_count = (int64_t)r->added - (int64_t)r->removed;
    r->d_bytes = (int64_t)r->added_bytes - (int64_t)r->removed_bytes;
    for (int s = 0; s < 2; s++) {
      out->count[s] += r->count[s];
      out->bytes[s] += r->bytes[s];
    }
    out->removed += r->removed;
    out->removed_bytes += r->removed_bytes;
    out->added_bytes += r->added_bytes;
  }
  out->nadded = nadded;
  /* rows: classes with counted objects, changed first, in order */
  perm = malloc((nglob ? nglob : 1) * sizeof(*perm));
  pos = malloc((nglob ? nglob : 1) * sizeof(*pos));
  out->rows = malloc((nglob ? nglob : 1) * sizeof(*out->rows));
  if (!perm || !pos || !out->rows) goto fail;
  size_t np = 0;
  for (size_t k = 0; k < nglob; k++)
    if (tmp[k].count[0] || tmp[k].count[1]) perm[np++] = (uint32_t)k;
  if (np > 1) qsort_r(perm, np, sizeof(*perm), row_cmp, tmp);
  for (size_t i = 0; i < np; i++) {
    out->rows[i] = tmp[perm[i]];
    pos[perm[i]] = (uint32_t)i;
    if (tmp[perm[i]].added || tmp[perm[i]].removed) out->nrows = i + 1;
  }
  out->nall = np;
  for (size_t i = 0; i < nadded; i++) out->added[i].cls = pos[out->added[i].cls];
  if (nadded > 1) qsort(out->added, nadded, sizeof(*out->added), obj_cmp);
  rc = 0;
  goto done;
fail:
  pl__heap_compare_free(out);
done:
  pl__strtab_free(&keys);
  for (int s = 0; s < 2; s++) {
    free(glob[s]);
    free(bk[s].first);
    free(bk[s].ord);
  }
  free(tmp);
  free(perm);
  free(pos);
  return rc;
}

void pl__heap_compare_free(pl__heap_compare *out) {
  free(out->rows);
  free(out->added);
  pl__heap_classes_free(&out->cls[0]);
  pl__heap_classes_free(&out->cls[1]);
  memset(out, 0, sizeof(*out));
}
