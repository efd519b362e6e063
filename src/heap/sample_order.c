/* A heap snapshot's samples put in id order as they are copied (see
 * sample_order.h). */
#include "heap/sample_order.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/radix_sort.h"

static int by_id(const void *a, const void *b) {
  const pl_heap_sample *x = a, *y = b;
  return x->id < y->id ? -1 : x->id > y->id;
}

/* Ids are odd and come from one counter, so the live ones are usually
 * dense: each finds its place directly in a table of 4-byte slots, and the
 * samples move into order in place, cycle by cycle. Returns -1 (nothing
 * done) when the ids are too sparse for the table or it cannot be had. */
static int place_by_id(pl_heap_sample *v, size_t n, uint64_t min, uint64_t max) {
  uint64_t span = ((max - min) >> 1) + 1;
  if (n > UINT32_MAX - 1 || span > 4 * (uint64_t)n + 1024) return -1;
  uint32_t *pos = calloc((size_t)span, sizeof(*pos));
  if (!pos) return -1;
  for (size_t i = 0; i < n; i++) {
    uint64_t d = v[i].id - min;
    if ((d & 1) || pos[d >> 1]) { /* not the counter's ids: leave it to the radix sort */
      free(pos);
      return -1;
    }
    pos[d >> 1] = (uint32_t)i + 1;
  }
  size_t k = 0; /* pos[k]: where the k-th sample in id order is now */
  for (uint64_t j = 0; j < span; j++)
    if (pos[j]) pos[k++] = pos[j] - 1;
  for (size_t c = 0; c < n; c++) {
    if (pos[c] == c) continue; /* in place, or moved already */
    pl_heap_sample tmp = v[c];
    size_t j = c;
    for (;;) {
      size_t from = pos[j];
      pos[j] = (uint32_t)j;
      if (from == c) {
        v[j] = tmp;
        break;
      }
      v[j] = v[from];
      j = from;
    }
  }
  free(pos);
  return 0;
}

/* All of v[0..n) by increasing id, once the copy gave up keeping them in
 * order: in place through the table of slots when the ids are dense, else
 * (id, index) pairs radix-sorted (common/radix_sort.h) and one move of the
 * samples into place; qsort if the buffers cannot be had. */
static void sort_by_id(pl_heap_sample *v, size_t n) {
  uint64_t max = 0, min = UINT64_MAX;
  for (size_t i = 0; i < n; i++) {
    if (v[i].id > max) max = v[i].id;
    if (v[i].id < min) min = v[i].id;
  }
  if (place_by_id(v, n, min, max) == 0) return;
  _Static_assert(sizeof(v->id) == sizeof(uint64_t), "the sort key is 64-bit");
  pl__radix_sort_records(v, n, sizeof(*v), offsetof(pl_heap_sample, id), 0, by_id);
}

void pl__sample_order_init(pl__sample_order *o, pl_heap_sample *v, size_t max) {
  memset(o, 0, sizeof(*o));
  o->v = v;
  o->aside_max = max < PL__SAMPLE_ORDER_ASIDE ? max : PL__SAMPLE_ORDER_ASIDE;
}

/* Room for one more set aside: 64, then four times as many, up to
 * aside_max. 0, or -1 when the limit is reached or memory is short. */
static int aside_room(pl__sample_order *o) {
  if (o->naside < o->aside_cap) return 0;
  if (o->aside_cap >= o->aside_max) return -1;
  size_t cap = o->aside_cap ? o->aside_cap * 4 : 64;
  if (cap > o->aside_max) cap = o->aside_max;
  pl_heap_sample *a = realloc(o->aside, cap * sizeof(*a));
  if (!a) return -1;
  o->aside = a;
  o->aside_cap = cap;
  return 0;
}

void pl__sample_order_set_aside(pl__sample_order *o, const pl_heap_sample *x) {
  if (aside_room(o) == 0) {
    o->aside[o->naside++] = *x;
    return;
  }
  /* give up: what was set aside goes back, at the end, and so does x */
  if (o->naside) memcpy(o->v + o->n, o->aside, o->naside * sizeof(*x));
  o->n += o->naside;
  o->naside = 0;
  o->v[o->n++] = *x;
  o->unordered = 1;
}

/* Number of v[0..n) whose id is below id (v in id order). */
static size_t below(const pl_heap_sample *v, size_t n, uint64_t id) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* The ones set aside are merged from whichever end moves fewer samples:
 * from the top, the samples above the lowest of them move up; from the
 * bottom (when they fit the room below), the samples below the highest
 * move down. */
void pl__sample_order_finish(pl__sample_order *o) {
  size_t m = o->naside;
  if (o->unordered || !m) {
    if (o->unordered) sort_by_id(o->v, o->n);
    free(o->aside);
    o->aside = NULL;
    return;
  }
  qsort(o->aside, m, sizeof(*o->aside), by_id);
  size_t up = o->n - below(o->v, o->n, o->aside[0].id);
  size_t down = below(o->v, o->n, o->aside[m - 1].id);
  if (m <= PL__SAMPLE_ORDER_HEAD && down < up) {
    pl_heap_sample *w = o->v - m;
    size_t i = 0, j = 0;
    while (j < m) {
      if (i < o->n && o->v[i].id < o->aside[j].id)
        *w++ = o->v[i++];
      else
        *w++ = o->aside[j++];
    }
    o->v -= m;
  } else {
    size_t i = o->n, j = m, w = o->n + m;
    while (j) {
      if (i && o->v[i - 1].id > o->aside[j - 1].id)
        o->v[--w] = o->v[--i];
      else
        o->v[--w] = o->aside[--j];
    }
  }
  o->n += m;
  o->naside = 0;
  free(o->aside);
  o->aside = NULL;
}
