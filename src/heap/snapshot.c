/* Snapshots of the tracker (see proflab/heap.h): copied in chunks under the
 * tracker's mutex into a heap snapshot model (proflab/heap_snapshot.h),
 * then sorted and summed outside it. The calling thread is "busy"
 * throughout, so the snapshot's own allocations are not tracked. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "common/radix_sort.h"
#include "heap/track_internal.h"

#define H pl__heap
#define CHUNK 4096 /* records or stacks copied per hold of the mutex */

/* The samples array (56 bytes a live sample, megabytes at T = 1): its own
 * mapping, in transparent huge pages where the system allows them on
 * request, the part the live samples will fill populated in one go.
 * Faulting it in page by page cost ~2 ms of a 4 MB snapshot's ~12 here (a
 * VM, where each fault is a trap); with 110k samples the whole copy
 * took a median 4.8 ms populated in one go, 3.6 ms in huge pages (several
 * runs each, alternating). n is sized for the record high-water
 * mark, which never goes down: only `used` bytes are populated. */
#define BIG_MIN (1u << 20)
static void *big_alloc(size_t n, size_t used) {
  if (n < BIG_MIN) return malloc(n);
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  if (used > n) used = n;
  (void)madvise(p, n, MADV_HUGEPAGE); /* a hint: "never" leaves small pages */
  (void)madvise(p, (used + 4095) & ~(size_t)4095,
                MADV_POPULATE_WRITE); /* a hint: faults do it too */
  return p;
}

static void big_free(void *p, size_t n) {
  if (n < BIG_MIN)
    free(p);
  else
    munmap(p, n);
}

static int by_id(const void *a, const void *b) {
  const pl_heap_sample *x = a, *y = b;
  return x->id < y->id ? -1 : x->id > y->id;
}

/* Samples by increasing id: (id, index) pairs radix-sorted
 * (common/radix_sort.h), then one move of the samples into place. Several
 * times faster than qsort on 100k+ samples; qsort if the buffers cannot be
 * had. */

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

static void sort_by_id(pl_heap_sample *v, size_t n) {
  /* Records are reused in allocation order: often sorted already, and then
   * nothing is allocated (buffers of this size are fresh pages each time). */
  uint64_t max = 0, min = UINT64_MAX;
  int sorted = 1;
  for (size_t i = 0; i < n; i++) {
    if (v[i].id > max) max = v[i].id;
    if (v[i].id < min) min = v[i].id;
    if (i && v[i].id < v[i - 1].id) sorted = 0;
  }
  if (sorted) return;
  if (place_by_id(v, n, min, max) == 0) return;
  _Static_assert(sizeof(v->id) == sizeof(uint64_t), "the sort key is 64-bit");
  pl__radix_sort_records(v, n, sizeof(*v), offsetof(pl_heap_sample, id), 0, by_id);
}

/* The copy puts samples in id order as it goes. Records are reused in
 * allocation order, so the table is in id order but for the few records
 * reused out of turn: each sample is appended if its id is above the last
 * one's; if not, either the last few samples (up to POP_MAX, whose ids are
 * above its own) or the sample itself are set aside, whichever keeps the
 * rest in order. At the end the ones set aside are sorted and merged in
 * from the back, moving only the samples they land before. When too many
 * are set aside, the copy goes on unordered and sort_by_id does it all. */
#define ASIDE_MAX 8192 /* samples set aside before giving up */
#define POP_MAX 1024   /* samples taken back off the end for one arriving */

typedef struct in_order {
  pl_heap_sample *v; /* room for every record below the high-water mark */
  size_t n;
  pl_heap_sample *aside; /* room for aside_max; NULL: unordered from the start */
  size_t naside, aside_max;
  int unordered; /* the aside buffer was full or missing: v[0..n) in table order */
} in_order;

static void set_aside(in_order *o, const pl_heap_sample *x) {
  if (o->naside < o->aside_max) {
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

static void put_in_order(in_order *o, const pl_heap_sample *x) {
  if (o->unordered || !o->n || o->v[o->n - 1].id < x->id) {
    o->v[o->n++] = *x;
    return;
  }
  if (o->n > POP_MAX && x->id < o->v[o->n - 1 - POP_MAX].id) {
    set_aside(o, x); /* below more than POP_MAX: x is the one out of turn */
    return;
  }
  while (o->n && o->v[o->n - 1].id > x->id && !o->unordered) {
    pl_heap_sample last = o->v[--o->n];
    set_aside(o, &last);
  }
  o->v[o->n++] = *x;
}

/* v[0..n) in id order (and n counts the samples set aside too). */
static void finish_in_order(in_order *o) {
  if (o->unordered) {
    sort_by_id(o->v, o->n);
    return;
  }
  size_t m = o->naside;
  if (!m) return;
  qsort(o->aside, m, sizeof(*o->aside), by_id);
  size_t i = o->n, j = m, w = o->n + m;
  while (j) {
    if (i && o->v[i - 1].id > o->aside[j - 1].id)
      o->v[--w] = o->v[--i];
    else
      o->v[--w] = o->aside[--j];
  }
  o->n += m;
  o->naside = 0;
}

int pl_heap_snapshot_take(pl_heap_snapshot **out) {
  if (!pl_heap_running()) return -ENOENT;
  pl__heap_tls *t = &pl__heap_tls_state;
  int rc = -ENOMEM;
  pl__heap_busy_enter(t);
  pl_heap_snapshot *s = pl_heap_snapshot_new();
  if (!s) goto out;
  s->sample_bytes = H.T;

  /* Records: the ones in use when we start; later ones may or may not be
   * seen (a freed record may be reused for a new block in the meantime). */
  pl__heap_lock(t);
  uint32_t hw = H.rec_hw;
  uint64_t live = H.live;
  pl__heap_unlock(t);
  size_t samples_bytes = (hw ? hw : 1) * sizeof(*s->samples);
  s->samples = big_alloc(samples_bytes, (live + 1024) * sizeof(*s->samples));
  if (!s->samples || pl_heap_snapshot_adopt(s, s->samples, samples_bytes, big_free) != 0) goto out;
  in_order o = {.v = s->samples, .aside_max = hw < ASIDE_MAX ? hw : ASIDE_MAX};
  o.aside = malloc((o.aside_max ? o.aside_max : 1) * sizeof(*o.aside));
  if (!o.aside) o.aside_max = 0; /* unordered once one is out of turn */
  for (uint32_t base = 0; base < hw; base += CHUNK) {
    uint32_t end = hw - base > CHUNK ? base + CHUNK : hw;
    pl__heap_lock(t);
    for (uint32_t i = base; i < end; i++) {
      const pl__heap_rec *r = &H.recs[i];
      if (!r->id || atomic_load_explicit(&r->freed, memory_order_relaxed)) continue;
      pl_heap_sample x = {.id = r->id,
                          .size = r->size,
                          .time_ns = r->time_ns,
                          .address = r->ptr,
                          .weight_objects = r->weight,
                          .weight_bytes = r->weight * (double)r->size,
                          .stack = r->stack,
                          .tid = r->tid};
      put_in_order(&o, &x);
    }
    pl__heap_unlock(t);
  }
  finish_in_order(&o);
  free(o.aside);
  s->nsamples = o.n;

  /* Stacks: append-only, so every stack a copied sample names is below the
   * count read now. Their pcs never change; their counters do. */
  pl__heap_lock(t);
  uint32_t ns = H.nstacks;
  size_t npcs = H.npcs;
  pl__heap_unlock(t);
  s->stacks = calloc(ns ? ns : 1, sizeof(*s->stacks));
  if (!s->stacks || pl_heap_snapshot_adopt(s, s->stacks, 0, NULL) != 0) goto out;
  uintptr_t *pcs = malloc((npcs ? npcs : 1) * sizeof(uintptr_t));
  if (!pcs || pl_heap_snapshot_adopt(s, pcs, 0, NULL) != 0) goto out;
  for (uint32_t base = 0; base < ns; base += CHUNK) {
    uint32_t end = ns - base > CHUNK ? base + CHUNK : ns;
    pl__heap_lock(t);
    for (uint32_t i = base; i < end; i++) {
      const pl__heap_stk *k = &H.stacks[i];
      pl_heap_stack *x = &s->stacks[i];
      x->depth = k->depth;
      x->flags = k->flags;
      x->pcs = pcs + k->off;
      x->alloc_objects = k->alloc_objects;
      x->alloc_bytes = k->alloc_bytes;
      memcpy(pcs + k->off, H.pcs + k->off, k->depth * sizeof(uintptr_t));
    }
    pl__heap_unlock(t);
  }
  s->nstacks = ns;

  pl__heap_lock(t);
  pl__heap_stats_locked(&s->stats);
  pl__heap_unlock(t);
  s->stats.tracker_bytes = pl__heap_resident();
  struct timespec mono, wall;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &wall);
  s->time_ns = (uint64_t)mono.tv_sec * 1000000000u + (uint64_t)mono.tv_nsec;
  s->wall_ns = (uint64_t)wall.tv_sec * 1000000000u + (uint64_t)wall.tv_nsec;

  for (size_t i = 0; i < s->nsamples; i++) {
    const pl_heap_sample *x = &s->samples[i];
    pl_heap_stack *k = &s->stacks[x->stack];
    k->inuse_objects += x->weight_objects;
    k->inuse_bytes += x->weight_bytes;
    s->inuse_objects += x->weight_objects;
    s->inuse_bytes += x->weight_bytes;
  }
  *out = s;
  s = NULL;
  rc = 0;
out:
  pl_heap_snapshot_free(s);
  pl__heap_busy_exit(t);
  return rc;
}

size_t pl_heap_stack_pcs(uintptr_t *pcs, size_t cap) {
  if (!pl_heap_running()) return 0;
  pl__heap_tls *t = &pl__heap_tls_state;
  pl__heap_lock(t);
  size_t n = H.npcs;
  pl__heap_unlock(t);
  if (n > cap) return n;
  /* below n, pcs are written once, before n passed them, and never change */
  for (size_t base = 0; base < n; base += CHUNK) {
    size_t k = n - base > CHUNK ? CHUNK : n - base;
    pl__heap_lock(t);
    memcpy(pcs + base, H.pcs + base, k * sizeof(*pcs));
    pl__heap_unlock(t);
  }
  return n;
}

void pl_heap_untracked_begin(void) { pl__heap_busy_enter(&pl__heap_tls_state); }

void pl_heap_untracked_end(void) { pl__heap_busy_exit(&pl__heap_tls_state); }
