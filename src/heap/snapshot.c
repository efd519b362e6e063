/* Snapshots of the tracker (see proflab/heap.h): copied in chunks under the
 * tracker's mutex into a heap snapshot model (proflab/heap_snapshot.h),
 * put in id order as they come (sample_order.c), then summed outside it. The calling thread is
 * "busy" throughout, so the snapshot's own allocations are not tracked. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "heap/sample_order.h"
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

/* One samples mapping is kept when its snapshot is freed, for the next
 * one: its pages are there (a first write into fresh pages, kernel
 * zeroing included, cost ~0.35 ms for 6 MB here, ~1.2 ms the first time in
 * a process), and pl_heap_snapshot_prepare makes one before a first
 * snapshot. The slot is one atomic pointer (a lock would need fork care);
 * a kept mapping starts with its header. pl_heap_snapshot_release_idle
 * unmaps it once unused for a while. */
typedef struct spare_head {
  size_t bytes;
  uint64_t since_ns; /* kept since */
} spare_head;
static _Atomic(spare_head *) spare;
#define SPARE_ALIGN ((size_t)2 << 20) /* x86-64's huge page */

static void spare_put(void *p, size_t n) {
  spare_head *h = p;
  h->bytes = n;
  h->since_ns = pl__heap_now_ns();
  spare_head *old = atomic_exchange(&spare, h);
  if (old) munmap(old, old->bytes);
}

/* A mapping of at least n bytes, its first `used` bytes populated, in huge
 * pages where allowed; *got: its size. The kept one when large enough. */
static void *map_samples(size_t n, size_t used, size_t *got) {
  spare_head *h = atomic_exchange(&spare, NULL);
  void *p = NULL;
  if (h && h->bytes >= n) {
    p = h;
    *got = h->bytes;
  } else {
    if (h) munmap(h, h->bytes);
    /* room to grow: the record high-water mark creeps up between snapshots
     * (a kept mapping then still fits), to a whole huge page */
    size_t want = n + n / 8;
    want = (want + SPARE_ALIGN - 1) & ~(size_t)(SPARE_ALIGN - 1);
    p = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    *got = want;
    (void)madvise(p, want, MADV_HUGEPAGE); /* a hint: "never" leaves small pages */
  }
  if (used > *got) used = *got;
  /* a hint (faults do it too); nearly free where the pages are there */
  (void)madvise(p, (used + 4095) & ~(size_t)4095, MADV_POPULATE_WRITE);
  return p;
}

/* The samples array's room: malloc below BIG_MIN, else map_samples. */
static void *big_alloc(size_t n, size_t used, size_t *got) {
  *got = n;
  return n < BIG_MIN ? malloc(n) : map_samples(n, used, got);
}

static void big_free(void *p, size_t n) {
  if (n < BIG_MIN)
    free(p);
  else
    spare_put(p, n);
}

/* The room a snapshot taken now needs: bytes for the record high-water
 * mark (and the order's room below), and the part live samples fill. */
static void samples_room(pl__heap_tls *t, uint32_t *hw, size_t *bytes, size_t *used) {
  pl__heap_lock(t);
  *hw = H.rec_hw;
  uint64_t live = H.live;
  pl__heap_unlock(t);
  *bytes = ((size_t)*hw + PL__SAMPLE_ORDER_HEAD) * sizeof(pl_heap_sample);
  *used = (live + PL__SAMPLE_ORDER_HEAD + 1024) * sizeof(pl_heap_sample);
}

int pl_heap_snapshot_prepare(void) {
  if (!pl_heap_running()) return -ENOENT;
  pl__heap_tls *t = &pl__heap_tls_state;
  uint32_t hw;
  size_t bytes, used, got;
  samples_room(t, &hw, &bytes, &used);
  if (bytes < BIG_MIN) return 0; /* malloc's: nothing to prepare */
  void *p = map_samples(bytes, used, &got);
  if (!p) return -ENOMEM;
  spare_put(p, got);
  return 0;
}

int pl_heap_snapshot_release_idle(uint64_t idle_ns) {
  spare_head *h = atomic_exchange(&spare, NULL);
  if (!h) return 0;
  if (pl__heap_now_ns() - h->since_ns >= idle_ns) {
    munmap(h, h->bytes);
    return 1;
  }
  spare_head *old = atomic_exchange(&spare, h); /* not yet: back, unless another came */
  if (old) munmap(old, old->bytes);
  return 0;
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
  uint32_t hw;
  size_t samples_bytes, used;
  samples_room(t, &hw, &samples_bytes, &used);
  pl_heap_sample *room = big_alloc(samples_bytes, used, &samples_bytes);
  if (!room || pl_heap_snapshot_adopt(s, room, samples_bytes, big_free) != 0) goto out;
  pl__sample_order o;
  pl__sample_order_init(&o, room + PL__SAMPLE_ORDER_HEAD, hw);
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
      pl__sample_order_put(&o, &x);
    }
    pl__heap_unlock(t);
  }
  pl__sample_order_finish(&o);
  s->samples = o.v;
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
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  s->time_ns = pl__heap_now_ns();
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
