/* Leak verdicts across heap snapshots (see leaks.h for the rules). */
#include "analysis/leaks.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/hashtab.h"

#define DEFAULT_MIN_GROWTH 65536.0
#define LIKELY_R2 0.8
#define LIKELY_EVIDENCE 3u

typedef struct snap {
  double t;
  pl__leaks_obj *objs; /* sorted by id, classes global */
  size_t n;
} snap;

struct pl__leaks {
  snap *snaps;
  size_t nsnaps, capsnaps;
  char **keys, **names; /* by global class, owned */
  size_t nclasses, capclasses;
  pl__strtab index; /* key -> class (borrows keys[]) */
};

pl__leaks *pl__leaks_new(void) {
  pl__leaks *L = calloc(1, sizeof(pl__leaks));
  if (L) pl__strtab_init(&L->index);
  return L;
}

void pl__leaks_free(pl__leaks *L) {
  if (!L) return;
  for (size_t i = 0; i < L->nsnaps; i++) free(L->snaps[i].objs);
  free(L->snaps);
  for (size_t c = 0; c < L->nclasses; c++) {
    free(L->keys[c]);
    free(L->names[c]);
  }
  free(L->keys);
  free(L->names);
  pl__strtab_free(&L->index);
  free(L);
}

size_t pl__leaks_count(const pl__leaks *L) { return L->nsnaps; }

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* The global class of key (added with name when new): its index, or
 * -ENOMEM. */
static int64_t intern(pl__leaks *L, const char *key, const char *name) {
  int64_t found = pl__strtab_find(&L->index, key);
  if (found >= 0) return found;
  if (L->nclasses >= UINT32_MAX - 1) return -ENOMEM;
  if (L->nclasses == L->capclasses) {
    size_t cap = L->capclasses ? 2 * L->capclasses : 256;
    char **k = realloc(L->keys, cap * sizeof(*k));
    if (!k) return -ENOMEM;
    L->keys = k;
    char **nm = realloc(L->names, cap * sizeof(*nm));
    if (!nm) return -ENOMEM;
    L->names = nm;
    L->capclasses = cap;
  }
  char *kd = dup_str(key), *nd = dup_str(name ? name : key);
  int64_t c = kd && nd ? pl__strtab_intern(&L->index, kd) : -ENOMEM;
  if (c < 0) {
    free(kd);
    free(nd);
    return -ENOMEM;
  }
  L->keys[c] = kd; /* ids are dense: c == nclasses */
  L->names[c] = nd;
  L->nclasses++;
  return c;
}

static int by_id(const void *a, const void *b) {
  uint64_t x = ((const pl__leaks_obj *)a)->id, y = ((const pl__leaks_obj *)b)->id;
  return x < y ? -1 : x > y;
}

int pl__leaks_add(pl__leaks *L, double t_s, const char *const *keys, const char *const *names,
                  size_t nclasses, pl__leaks_obj *objs, size_t n) {
  uint32_t *map = NULL;
  int rc = -EINVAL;
  if (!isfinite(t_s) || (L->nsnaps && !(t_s > L->snaps[L->nsnaps - 1].t))) goto fail;
  if (n && !objs) goto fail;
  rc = -ENOMEM;
  map = malloc((nclasses ? nclasses : 1) * sizeof(*map));
  if (!map) goto fail;
  for (size_t c = 0; c < nclasses; c++) {
    int64_t g = intern(L, keys[c], names ? names[c] : NULL);
    if (g < 0) goto fail;
    map[c] = (uint32_t)g;
  }
  rc = -EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (objs[i].cls >= nclasses) goto fail;
    objs[i].cls = map[objs[i].cls];
  }
  if (n > 1) qsort(objs, n, sizeof(*objs), by_id);
  for (size_t i = 1; i < n; i++)
    if (objs[i].id == objs[i - 1].id) goto fail;
  rc = -ENOMEM;
  if (L->nsnaps == L->capsnaps) {
    size_t cap = L->capsnaps ? 2 * L->capsnaps : 8;
    snap *s = realloc(L->snaps, cap * sizeof(*s));
    if (!s) goto fail;
    L->snaps = s;
    L->capsnaps = cap;
  }
  L->snaps[L->nsnaps++] = (snap){.t = t_s, .objs = objs, .n = n};
  free(map);
  return 0;
fail:
  free(map);
  free(objs);
  return rc;
}

const char *pl__leak_verdict_name(pl__leak_verdict v) {
  switch (v) {
    case PL__LEAK_LIKELY:
      return "likely leak";
    case PL__LEAK_POSSIBLE:
      return "possible leak";
    case PL__LEAK_GREW_ONCE:
      return "grew once";
    case PL__LEAK_CHURN:
      return "churn";
    case PL__LEAK_SHRINKING:
      return "shrinking";
    default:
      return "stable";
  }
}

/* Least-squares slope of y over t (n points) and R^2 (0 when y is flat). */
static void fit(const double *t, const double *y, size_t n, double *slope, double *r2) {
  double mt = 0, my = 0;
  for (size_t i = 0; i < n; i++) mt += t[i], my += y[i];
  mt /= (double)n;
  my /= (double)n;
  double stt = 0, sty = 0, syy = 0;
  for (size_t i = 0; i < n; i++) {
    stt += (t[i] - mt) * (t[i] - mt);
    sty += (t[i] - mt) * (y[i] - my);
    syy += (y[i] - my) * (y[i] - my);
  }
  *slope = stt > 0 ? sty / stt : 0;
  *r2 = stt > 0 && syy > 0 ? (sty * sty) / (stt * syy) : 0;
}

/* Per-class sums over the intervals (see leaks.h). */
typedef struct acc {
  uint64_t newb_judged, keptb_judged, keptc_judged, grown_judged;
  uint64_t newb_last, newc_last, grown_last;
  uint64_t newc, freedc, newb, freedb;
} acc;

/* alive[j] = 1 when s's object j is in last with the same class. */
static void alive_at_last(const snap *s, const snap *last, uint8_t *alive) {
  size_t j = 0, l = 0;
  while (j < s->n) {
    while (l < last->n && last->objs[l].id < s->objs[j].id) l++;
    alive[j] =
        l < last->n && last->objs[l].id == s->objs[j].id && last->objs[l].cls == s->objs[j].cls;
    j++;
  }
}

/* One interval a -> b (b is snapshot i + 1; judged: not the last
 * interval); alive_b: b's objects alive at the end. */
static void interval(const snap *a, const snap *b, const uint8_t *alive_b, int judged, acc *ac) {
  size_t i = 0, j = 0;
  while (i < a->n || j < b->n) {
    const pl__leaks_obj *x = i < a->n ? &a->objs[i] : NULL, *y = j < b->n ? &b->objs[j] : NULL;
    int freed = 0, fresh = 0;
    if (x && y && x->id == y->id) {
      if (x->cls == y->cls) {
        if (y->bytes > x->bytes && alive_b[j]) {
          if (judged)
            ac[y->cls].grown_judged++;
          else
            ac[y->cls].grown_last++;
        }
      } else {
        freed = fresh = 1;
      }
      i++, j++;
    } else if (x && (!y || x->id < y->id)) {
      freed = 1;
      i++;
    } else {
      fresh = 1;
      j++;
    }
    if (freed) {
      ac[x->cls].freedc++;
      ac[x->cls].freedb += x->bytes;
    }
    if (fresh) {
      acc *c = &ac[y->cls];
      c->newc++;
      c->newb += y->bytes;
      if (judged) {
        c->newb_judged += y->bytes;
        if (alive_b[j - 1]) {
          c->keptb_judged += y->bytes;
          c->keptc_judged++;
        }
      } else {
        c->newb_last += y->bytes;
        c->newc_last++;
      }
    }
  }
}

static int rank_group(pl__leak_verdict v) {
  switch (v) {
    case PL__LEAK_LIKELY:
    case PL__LEAK_POSSIBLE:
      return 0;
    case PL__LEAK_GREW_ONCE:
      return 1;
    case PL__LEAK_CHURN:
      return 2;
    default:
      return 3;
  }
}

static double range_of(const pl__leak_site *s, size_t n) {
  uint64_t lo = UINT64_MAX, hi = 0;
  for (size_t k = 0; k < n; k++) {
    if (s->bytes[k] < lo) lo = s->bytes[k];
    if (s->bytes[k] > hi) hi = s->bytes[k];
  }
  return (double)(hi - lo);
}

static double rank_key(const pl__leak_site *s, size_t n) {
  switch (rank_group(s->verdict)) {
    case 0:
      return s->leak_rate;
    case 1:
      return s->growth;
    case 2:
      return range_of(s, n);
    default:
      return (double)s->bytes[n - 1];
  }
}

/* qsort_r comparator; ctx points to the snapshot count. */
static int by_rank(const void *a, const void *b, void *ctx) {
  const pl__leak_site *x = a, *y = b;
  size_t n = *(const size_t *)ctx;
  int gx = rank_group(x->verdict), gy = rank_group(y->verdict);
  if (gx != gy) return gx < gy ? -1 : 1;
  if (gx == 0 && x->verdict != y->verdict) return x->verdict < y->verdict ? -1 : 1;
  double kx = rank_key(x, n), ky = rank_key(y, n);
  if (kx != ky) return kx > ky ? -1 : 1;
  return strcmp(x->name, y->name);
}

static void classify(pl__leak_site *s, const acc *a, size_t n, double min_growth) {
  size_t m = n - 1;
  s->never_shrinks = s->b_shrank == 0;
  unsigned need = (unsigned)((3 * m + 3) / 4);
  int grows = s->growth >= min_growth && s->leak_rate > 0;
  s->reason = "";
  if (grows && s->grew >= 2) {
    if (s->grew < need) {
      snprintf(s->reason_buf, sizeof(s->reason_buf), "grew in %u of %zu intervals", s->grew, m);
    } else if (s->leak_r2 < LIKELY_R2) {
      snprintf(s->reason_buf, sizeof(s->reason_buf), "uneven growth, R\xc2\xb2 %.2f", s->leak_r2);
    } else if (s->evidence < LIKELY_EVIDENCE) {
      snprintf(s->reason_buf, sizeof(s->reason_buf),
               "only %llu new object%s kept: too few to be sure", (unsigned long long)s->evidence,
               s->evidence == 1 ? "" : "s");
    } else {
      s->verdict = PL__LEAK_LIKELY;
      return;
    }
    s->verdict = PL__LEAK_POSSIBLE;
    s->reason = s->reason_buf;
    return;
  }
  if (grows && s->grew == 1) {
    s->verdict = PL__LEAK_GREW_ONCE;
    return;
  }
  if (a->newc && a->freedc && s->b_grew && s->b_shrank && range_of(s, n) >= min_growth) {
    s->verdict = PL__LEAK_CHURN;
    return;
  }
  if ((double)s->bytes[n - 1] + min_growth <= (double)s->bytes[0]) {
    s->verdict = PL__LEAK_SHRINKING;
    return;
  }
  s->verdict = PL__LEAK_STABLE;
}

int pl__leaks_analyze(const pl__leaks *L, const pl__leaks_opts *o, pl__leaks_result *out) {
  memset(out, 0, sizeof(*out));
  size_t n = L->nsnaps, C = L->nclasses;
  if (n < 3) return -EINVAL;
  size_t m = n - 1;
  double min_growth = o && o->min_growth > 0 ? o->min_growth : DEFAULT_MIN_GROWTH;
  const snap *last = &L->snaps[n - 1];
  int rc = -ENOMEM;
  acc *ac = calloc(C ? C : 1, sizeof(*ac));
  uint8_t *alive_prev = NULL, *alive_cur = NULL;
  double *K = NULL; /* K[c * n + k] */
  double *yb = malloc(n * sizeof(*yb));
  size_t maxobj = 1;
  for (size_t k = 0; k < n; k++)
    if (L->snaps[k].n > maxobj) maxobj = L->snaps[k].n;
  alive_prev = malloc(maxobj);
  alive_cur = malloc(maxobj);
  out->u64 = calloc(2 * C * n + 1, sizeof(uint64_t));
  out->dbl = calloc(C * n + n + 1, sizeof(double));
  out->sites = calloc(C ? C : 1, sizeof(*out->sites));
  if (!ac || !yb || !alive_prev || !alive_cur || !out->u64 || !out->dbl || !out->sites) goto fail;
  uint64_t *B = out->u64, *N = out->u64 + C * n;
  K = out->dbl;
  double *t = out->dbl + C * n;
  for (size_t k = 0; k < n; k++) t[k] = L->snaps[k].t - L->snaps[0].t;

  for (size_t k = 0; k < n; k++) {
    const snap *s = &L->snaps[k];
    alive_at_last(s, last, alive_cur);
    for (size_t j = 0; j < s->n; j++) {
      const pl__leaks_obj *x = &s->objs[j];
      B[x->cls * n + k] += x->bytes;
      N[x->cls * n + k]++;
      if (alive_cur[j]) K[x->cls * n + k] += x->bytes;
    }
    if (k) interval(&L->snaps[k - 1], s, alive_cur, k < m, ac);
    uint8_t *sw = alive_prev;
    alive_prev = alive_cur;
    alive_cur = sw;
  }

  for (size_t c = 0; c < C; c++) {
    pl__leak_site *s = &out->sites[c];
    const acc *a = &ac[c];
    s->key = L->keys[c];
    s->name = L->names[c];
    s->bytes = B + c * n;
    s->count = N + c * n;
    double *Lk = K + c * n;
    s->keep_ratio = a->newb_judged ? (double)a->keptb_judged / (double)a->newb_judged : -1;
    double kr = s->keep_ratio > 0 ? s->keep_ratio : 0;
    Lk[n - 1] = (double)s->bytes[n - 1] - (1 - kr) * (double)a->newb_last;
    s->kept = Lk;
    for (size_t i = 0; i < m; i++) {
      if (Lk[i + 1] > Lk[i] + 0.5) s->grew++;
      if (s->bytes[i + 1] > s->bytes[i]) s->b_grew++;
      if (s->bytes[i + 1] < s->bytes[i]) s->b_shrank++;
    }
    for (size_t k = 0; k < n; k++) yb[k] = (double)s->bytes[k];
    fit(t, yb, n, &s->rate, &s->r2);
    fit(t, Lk, n, &s->leak_rate, &s->leak_r2);
    s->growth = Lk[n - 1] - Lk[0];
    s->evidence =
        a->keptc_judged + a->grown_judged + (uint64_t)(kr * (double)a->newc_last) + a->grown_last;
    s->new_objects = a->newc;
    s->freed_objects = a->freedc;
    s->new_bytes = a->newb;
    s->freed_bytes = a->freedb;
    classify(s, a, n, min_growth);
  }
  if (C > 1) qsort_r(out->sites, C, sizeof(*out->sites), by_rank, &n);
  /* reasons point into their own site: fix them after the move */
  for (size_t c = 0; c < C; c++)
    if (out->sites[c].verdict == PL__LEAK_POSSIBLE) out->sites[c].reason = out->sites[c].reason_buf;
  out->nsites = C;
  out->nsnapshots = n;
  out->t = t;
  rc = 0;
  goto done;
fail:
  pl__leaks_result_free(out);
done:
  free(ac);
  free(yb);
  free(alive_prev);
  free(alive_cur);
  return rc;
}

void pl__leaks_result_free(pl__leaks_result *r) {
  free(r->sites);
  free(r->u64);
  free(r->dbl);
  memset(r, 0, sizeof(*r));
}

/* ---- times in file names ------------------------------------------------ */

/* n digits at p as a number, or -1. */
static long digits(const char *p, size_t n) {
  long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    v = v * 10 + (p[i] - '0');
  }
  return v;
}

static int check_date(pl__leaks_name_time *o) {
  if (o->year < 1970 || o->month < 1 || o->month > 12 || o->day < 1 || o->day > 31 ||
      o->hour > 23 || o->min > 59 || o->sec > 60)
    return -EINVAL;
  return 0;
}

int pl__leaks_parse_name_time(const char *name, size_t len, pl__leaks_name_time *out) {
  memset(out, 0, sizeof(*out));
  /* Node: Heap.YYYYMMDD.HHMMSS.<pid>.<thread>.<seq>.heapsnapshot */
  if (len >= 21 && memcmp(name, "Heap.", 5) == 0 && name[13] == '.' && name[20] == '.') {
    long d = digits(name + 5, 8), t = digits(name + 14, 6);
    if (d < 0 || t < 0) return -EINVAL;
    out->year = (int)(d / 10000);
    out->month = (int)(d / 100 % 100);
    out->day = (int)(d % 100);
    out->hour = (int)(t / 10000);
    out->min = (int)(t / 100 % 100);
    out->sec = (int)(t % 100);
    /* pid, thread, seq: three dot-separated numbers */
    size_t p = 21;
    uint64_t field[3] = {0, 0, 0};
    for (int f = 0; f < 3; f++) {
      size_t start = p;
      while (p < len && name[p] >= '0' && name[p] <= '9' && p - start < 19)
        field[f] = field[f] * 10 + (uint64_t)(name[p++] - '0');
      if (p == start || p >= len || name[p] != '.') return -EINVAL;
      p++;
    }
    out->seq = field[2];
    out->utc = 0;
    return check_date(out);
  }
  /* proflab: <kind>-YYYYMMDDTHHMMSS.mmmZ-<task>... */
  size_t k = 0;
  while (k < len && k < 16 && name[k] >= 'a' && name[k] <= 'z') k++;
  if (k == 0 || k + 21 > len || name[k] != '-') return -EINVAL;
  const char *p = name + k + 1;
  if (p[8] != 'T' || p[15] != '.' || p[19] != 'Z' || (size_t)(p - name) + 20 >= len || p[20] != '-')
    return -EINVAL;
  long d = digits(p, 8), t = digits(p + 9, 6), ms = digits(p + 16, 3);
  if (d < 0 || t < 0 || ms < 0) return -EINVAL;
  out->year = (int)(d / 10000);
  out->month = (int)(d / 100 % 100);
  out->day = (int)(d % 100);
  out->hour = (int)(t / 10000);
  out->min = (int)(t / 100 % 100);
  out->sec = (int)(t % 100);
  out->msec = (int)ms;
  out->utc = 1;
  return check_date(out);
}
