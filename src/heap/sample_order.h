/* A heap snapshot's samples put in id order as snapshot.c copies them from
 * the tracker's records. Records are reused in allocation order, so the
 * table is in id order but for the few records reused out of turn: each
 * sample is appended if its id is above the last one's; if not, either the
 * last few (up to PL__SAMPLE_ORDER_POP, whose ids are above its own) or the
 * sample itself are set aside, whichever keeps the rest in order. At the
 * end those are sorted and merged in, moving only the samples on one side
 * of them. When more than PL__SAMPLE_ORDER_ASIDE are set aside, the copy
 * goes on in table order and the end sorts it all. Plain memory: no lock,
 * no tracker state; memory is allocated only for samples set aside. */
#ifndef PL_HEAP_SAMPLE_ORDER_H
#define PL_HEAP_SAMPLE_ORDER_H

#include <stddef.h>

#include "proflab/heap_snapshot.h"

enum {
  PL__SAMPLE_ORDER_ASIDE = 8192, /* samples set aside before giving up */
  PL__SAMPLE_ORDER_POP = 1024,   /* samples taken back off the end for one arriving */
  PL__SAMPLE_ORDER_HEAD = 256,   /* room the caller leaves below v */
};

typedef struct pl__sample_order {
  pl_heap_sample *v; /* the samples so far; after finish, the result */
  size_t n;
  pl_heap_sample *aside; /* room for aside_cap, grown on demand up to aside_max */
  size_t naside, aside_cap, aside_max;
  int unordered; /* gave up: v[0..n) in the order put */
} pl__sample_order;

/* Start with v, which has room for max samples and PL__SAMPLE_ORDER_HEAD
 * more below it. Allocates nothing; without memory for the ones set
 * aside, it gives up (the result is the same). */
void pl__sample_order_init(pl__sample_order *o, pl_heap_sample *v, size_t max);

/* Out of line: set x aside, or give up. */
void pl__sample_order_set_aside(pl__sample_order *o, const pl_heap_sample *x);

/* Put the next sample (at most max in all); ids are unique. */
static inline void pl__sample_order_put(pl__sample_order *o, const pl_heap_sample *x) {
  if (o->unordered || !o->n || o->v[o->n - 1].id < x->id) {
    o->v[o->n++] = *x;
    return;
  }
  if (o->n > PL__SAMPLE_ORDER_POP && x->id < o->v[o->n - 1 - PL__SAMPLE_ORDER_POP].id) {
    pl__sample_order_set_aside(o, x); /* below more than POP: x is the one out of turn */
    return;
  }
  while (o->n && o->v[o->n - 1].id > x->id && !o->unordered) {
    pl_heap_sample last = o->v[--o->n];
    pl__sample_order_set_aside(o, &last);
  }
  o->v[o->n++] = *x;
}

/* o->v[0..o->n) are then every sample put, by increasing id; o->v may have
 * moved down into the room below it. Frees what init allocated. */
void pl__sample_order_finish(pl__sample_order *o);

#endif
