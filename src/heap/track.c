/* The sampled path: whether an allocation is a sample, and the records of live samples. */
/* The tracker's core (see proflab/heap.h). Each thread counts down the
 * bytes it allocates (heap_internal.h); the allocation that reaches the
 * sampling point comes here: decide() draws the next point (Exp(T) bytes
 * on), and a sample gets its stack (stack_capture.c), its interned stack
 * id (stacks.c), a record with its size, time and weight, and a place in
 * the pointer set (ptrset.c) through which its free() finds the record.
 * Records live in pl__heap.recs, allocated from a free list; the free()
 * of a sampled block queues its record lock-free (pl__heap_release), and
 * the next holder of the mutex settles it.
 *
 * The mutex protects records, stacks and counters. It is taken only on the
 * sampled paths, never while calling glibc's allocator, the unwinder or
 * other foreign code, and the thread's busy guard is held with it, so a
 * signal handler that allocates while its thread holds the mutex is served
 * untracked instead of deadlocking.
 */
#include "proflab/heap.h"
#include "heap/heap_internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "heap/ptrset.h"
#include "heap/stack_capture.h"
#include "heap/track_internal.h"

__thread pl__heap_tls pl__heap_tls_state __attribute__((tls_model("initial-exec")));
pl__heap_fast_state pl__heap_fast = {.range = PL__HEAP_NO_RANGE};
/* A plain mutex: an adaptive one (spin, then sleep) doubled the cost of
 * T = 1 on two threads (heavy contention) and did not help at 512 KiB. */
pl__heap_state pl__heap = {.lock = PTHREAD_MUTEX_INITIALIZER};

#define H pl__heap

#define DISABLED_INTERVAL (64 * 1024) /* slow-path period before tracking starts */

/* ---------------------------------------------------------------- clocks, rng */

static uint64_t rng_next(pl__heap_tls *t) {
  uint64_t x = t->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  t->rng = x;
  return x * 0x2545f4914f6cdd1dull;
}

static void thread_start(pl__heap_tls *t) {
  if (!t->tid) t->tid = (uint32_t)gettid();
  uint64_t seed = pl__mix64(pl__heap_now_ns() ^ ((uint64_t)t->tid << 32) ^ (uintptr_t)t);
  t->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
  t->started = 1;
}

/* Bytes to the next sample: Exp(T), rounded up (so that an allocation of
 * n bytes is sampled with probability 1 − e^(−n/T); truncating + 1 differs
 * from ceil only on exact integers, which have probability 0). */
static uint64_t draw(pl__heap_tls *t) {
  double u = (double)((rng_next(t) >> 11) + 1) * 0x1.0p-53; /* (0, 1] */
  double v = -log(u) * (double)H.T;
  if (v > 0x1.0p62) v = 0x1.0p62;
  return (uint64_t)v + 1;
}

/* 1 / (1 − e^(−x)), x = size/T. Most samples are small blocks (x < 1/16):
 * the Laurent series 1/x + 1/2 + x/12 − x³/720 is then exact to 1e-9
 * relative and saves a libm call on the sampled path. */
double pl__heap_weight(uint64_t size) {
  if (H.T == 1 || size == 0) return 1.0;
  double x = (double)size / (double)H.T;
  if (x < 0.0625) return 1.0 / x + 0.5 + x / 12.0 - x * x * x / 720.0;
  return 1.0 / -expm1(-x);
}

/* ---------------------------------------------------------------- records (locked) */

static uint32_t rec_alloc_locked(void) {
  if (H.free_head) {
    uint32_t ri = H.free_head - 1;
    H.free_head = atomic_load_explicit(&H.recs[ri].next, memory_order_relaxed);
    return ri;
  }
  if (H.rec_hw < H.max_samples) return H.rec_hw++;
  return PL__HEAP_NONE;
}

static void rec_free_locked(uint32_t ri) {
  pl__heap_rec *r = &H.recs[ri];
  r->id = 0;
  atomic_store_explicit(&r->freed, 0, memory_order_relaxed);
  atomic_store_explicit(&r->next, H.free_head, memory_order_relaxed);
  H.free_head = ri + 1;
}

void pl__heap_release_locked(uint32_t ri) {
  pl__heap_rec *r = &H.recs[ri];
  double w = r->weight;
  pl__heap_filter_drop_locked(r->ptr);
  H.inuse_objects -= w;
  H.inuse_bytes -= w * (double)r->size;
  if (--H.live == 0) H.inuse_objects = H.inuse_bytes = 0; /* no rounding residue */
  rec_free_locked(ri);
}

static void drain_locked(void) {
  uint32_t head = atomic_exchange_explicit(&H.pending, 0, memory_order_acquire);
  while (head) {
    uint32_t ri = head - 1;
    head = atomic_load_explicit(&H.recs[ri].next, memory_order_relaxed);
    pl__heap_release_locked(ri);
  }
}

void pl__heap_lock(pl__heap_tls *t) {
  pl__heap_busy_enter(t);
  pthread_mutex_lock(&H.lock);
  drain_locked();
}

void pl__heap_unlock(pl__heap_tls *t) {
  pthread_mutex_unlock(&H.lock);
  pl__heap_busy_exit(t);
}

/* A sampled block was freed (its key is already out of the set). The
 * accounting is deferred to the next holder of the mutex (the next sample
 * on any thread, a snapshot, stats): a lock-free push; the holder takes the
 * whole list at once, so there is no ABA. This keeps free() of a sampled
 * block off the mutex, which matters for the same reason as everything
 * else on the sampled path: every line it touches is cold or owned by
 * another core. It is also what makes a free safe when this thread is
 * inside the tracker already (a signal handler), holding the mutex. */
void pl__heap_release(uint32_t ri) {
  pl__heap_rec *r = &H.recs[ri];
  atomic_store_explicit(&r->freed, 1, memory_order_relaxed);
  uint32_t old = atomic_load_explicit(&H.pending, memory_order_relaxed);
  do atomic_store_explicit(&r->next, old, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(&H.pending, &old, ri + 1, memory_order_release,
                                                memory_order_relaxed));
}

void pl__heap_restore(const void *p, uint32_t ri) {
  pl__heap_tls *t = &pl__heap_tls_state;
  if (t->busy) { /* cannot insert without the mutex: forget the block */
    pl__heap_release(ri);
    return;
  }
  pl__heap_lock(t);
  /* The filter still counts p's record (pl__heap_release_locked would drop it). */
  pl__heap_filter_drop_locked((uintptr_t)p);
  if (!pl__heap_set_insert_locked(p, ri)) {
    pl__heap_filter_add_locked((uintptr_t)p);
    H.dropped++;
    pl__heap_release_locked(ri);
  }
  pl__heap_unlock(t);
}

/* ---------------------------------------------------------------- sampling */

/* Under the mutex: count a sample of n bytes (weight w) at stack sid, its
 * stack captured as `how` says (PL__HEAP_HOW_*). Counted here, with the
 * sample, so that unwind_fp + unwind_dwarf - unwind_checked == samples. */
static void account_locked(uint32_t sid, double w, size_t n, unsigned how) {
  H.samples++;
  H.unwind_fp += (how & PL__HEAP_HOW_FP) != 0;
  H.unwind_dwarf += (how & PL__HEAP_HOW_DWARF) != 0;
  H.unwind_checked += (how & PL__HEAP_HOW_CHECKED) != 0;
  H.alloc_objects += w;
  H.alloc_bytes += w * (double)n;
  H.stacks[sid].alloc_objects += w;
  H.stacks[sid].alloc_bytes += w * (double)n;
}

/* Under the mutex: record ri is the live sample p (already in the set). */
static void fill_locked(pl__heap_tls *t, uint32_t ri, void *p, size_t n, uint32_t sid, double w,
                        uint64_t time) {
  pl__heap_rec *r = &H.recs[ri];
  r->ptr = (uintptr_t)p;
  r->size = n;
  r->time_ns = time;
  r->stack = sid;
  r->tid = t->tid;
  r->weight = w;
  r->id = H.next_id;
  H.next_id += 2;
  H.inuse_objects += w;
  H.inuse_bytes += w * (double)n;
  H.live++;
  if (PL__HEAP_USE_FILTER && H.live * 64 > (1ull << H.filter_bits) &&
      H.filter_bits < H.filter_max_bits)
    pl__heap_filter_grow_locked();
}

/* What a sample takes before the mutex: its stack, time and weight.
 * Inlined: one frame of ours for the unwinder. */
/* Returns with the mutex held. */
PL__HEAP_TEXT __attribute__((always_inline)) static inline void sample_begin(
    pl__heap_tls *t, size_t n, pl__heap_sample_ctx *c) {
  c->time = pl__heap_now_ns();
  c->w = pl__heap_weight(n);
  pl__heap_capture(t, c);
}

/* Inlined into pl__heap_on_sample: one frame of ours for the unwinder. */
PL__HEAP_TEXT __attribute__((always_inline)) static inline void record(pl__heap_tls *t, void *p,
                                                                       size_t n) {
  pl__heap_sample_ctx c;
  sample_begin(t, n, &c);
  uint32_t sid = pl__heap_intern_locked(c.pcs, c.depth, c.truncated);
  account_locked(sid, c.w, n, c.how);
  uint32_t ri = rec_alloc_locked();
  if (ri == PL__HEAP_NONE || !pl__heap_set_insert_locked(p, ri)) {
    if (ri != PL__HEAP_NONE) rec_free_locked(ri);
    H.dropped++;
  } else {
    fill_locked(t, ri, p, n, sid, c.w, c.time);
  }
  pl__heap_unlock(t);
}

/* An allocation of n bytes reached the current sampling point
 * (n >= countdown), or tracking is not set up on this thread yet: 1 when it
 * is to be sampled. Sets the next sampling point. May change errno. */
static inline int decide(pl__heap_tls *t, size_t n) {
  if (t->busy) return 0; /* the tracker's own: busy_exit restores the countdown */
  if (!atomic_load_explicit(&H.running, memory_order_acquire)) {
    t->countdown = DISABLED_INTERVAL;
    t->started = 0;
    return 0;
  }
  if (!t->started) thread_start(t);
  if (H.T == 1) {
    t->countdown = 0; /* every allocation comes here */
    return 1;
  }
  if (t->started == 1) {
    /* First allocation since this thread started sampling: its countdown
     * so far is meaningless; draw one and apply n to it. */
    t->started = 2;
    uint64_t c = draw(t);
    if (n < c) {
      t->countdown = c - n;
      return 0;
    }
  }
  /* Memoryless: the next sampling point is Exp(T) past this block. */
  t->countdown = draw(t);
  return 1;
}

/* Allocated (by glibc) already: the ASan hooks' path, and pl__heap_note_alloc. */
PL__HEAP_TEXT __attribute__((noinline)) void *pl__heap_on_sample(void *p, size_t n) {
  pl__heap_tls *t = &pl__heap_tls_state;
  if (t->busy) return p;
  int saved_errno = errno;
  if (decide(t, n)) record(t, p, n);
  errno = saved_errno;
  return p;
}

#if !PL__HEAP_ASAN

/* The interposer's slow path (heap_internal.h): decide, then serve a
 * sample from the range, recorded, or anything else from glibc. */
PL__HEAP_TEXT __attribute__((always_inline)) static inline void *alloc_decided(
    pl__heap_tls *t, size_t n, size_t align, int kind, int saved_errno) {
  pl__heap_sample_ctx c;
  sample_begin(t, n, &c);
  int reused = 0;
  uint32_t sid = pl__heap_intern_locked(c.pcs, c.depth, c.truncated);
  uint32_t ri = rec_alloc_locked();
  size_t an = n;
  if (kind == PL__HEAP_KIND_PVALLOC) /* n + align fits: else the range refuses n */
    an = n <= SIZE_MAX - align ? (n ? (n + align - 1) & ~(align - 1) : align) : SIZE_MAX;
  void *p = ri != PL__HEAP_NONE ? pl__heap_range_alloc_locked(an, align, &reused) : NULL;
  if (p && !pl__heap_set_insert_locked(p, ri)) {
    pl__heap_range_free(p); /* lock-free push: taken back by the next allocation */
    p = NULL;
  }
  if (!p) {
    if (ri != PL__HEAP_NONE) rec_free_locked(ri);
    pl__heap_unlock(t);
    /* Dropped: glibc serves it (outside the mutex), counted if it succeeds. */
    pl__heap_busy_enter(t);
    p = pl__heap_libc_alloc(n, align, kind);
    pl__heap_busy_exit(t);
    if (!p) return NULL; /* errno from glibc */
    pl__heap_lock(t);
    account_locked(sid, c.w, n, c.how);
    H.dropped++;
    pl__heap_unlock(t);
    errno = saved_errno;
    return p;
  }
  account_locked(sid, c.w, n, c.how);
  fill_locked(t, ri, p, n, sid, c.w, c.time);
  pl__heap_unlock(t);
  if (kind == PL__HEAP_KIND_ZERO && reused) memset(p, 0, n); /* fresh range pages are zero */
  errno = saved_errno;
  return p;
}

PL__HEAP_TEXT __attribute__((noinline)) void *pl__heap_alloc_sampled(size_t n, size_t align,
                                                                     int kind) {
  pl__heap_tls *t = &pl__heap_tls_state;
  int saved_errno = errno;
  if (!decide(t, n)) {
    errno = saved_errno;
    return pl__heap_libc_alloc(n, align, kind);
  }
  return alloc_decided(t, n, align, kind, saved_errno);
}

int pl__heap_decide(size_t n) {
  int saved_errno = errno;
  int r = decide(&pl__heap_tls_state, n);
  errno = saved_errno;
  return r;
}

PL__HEAP_TEXT __attribute__((noinline)) void *pl__heap_alloc_decided(size_t n, size_t align,
                                                                     int kind) {
  return alloc_decided(&pl__heap_tls_state, n, align, kind, errno);
}
#endif
