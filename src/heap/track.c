/* The heap tracker's core (see heap.h): the sampling decision, stack
 * capture and interning, the records of live sampled blocks and the
 * pointer set free() consults.
 *
 * Why a pointer set and not a header in front of sampled blocks. A header
 * scheme must be able to tell, from the pointer alone, whether a block has
 * one; glibc's chunk header belongs to glibc (its size and flag bits must
 * not be touched), so every block would need our own header or an
 * alignment trick, which costs memory on every allocation, breaks
 * malloc_usable_size and memalign's guarantees, and makes a block allocated
 * before pl_heap_init() (or by ld.so) undecidable at free(). Sampled blocks
 * are rare (one per T bytes), so instead they are kept in a set beside the
 * heap, and the question free() asks — "could p be sampled?" — is answered
 * by the address alone in the interposer (sampled blocks are served from a
 * reserved range of their own: range.c, and heap_internal.h's
 * pl__heap_in_range; the pointer set then only maps a sampled block to its
 * record), and under ASan, whose heap holds every block, by a bitmap over
 * a hash of the pointer (the interposer used it too until the bitmap load
 * was found missing the L1 cache on most frees: ~3 % of the malloc
 * benchmark's time):
 *
 * - filter: a bitmap over the top bits of the pointer's hash
 *   (pl__heap_hash: two multiplies), bit c set while at least one live
 *   sampled block hashes to c (a count per cell, changed under the mutex,
 *   decides when to set and clear it). free(p) of an unsampled block: one
 *   load of the filter word (bitmap pointer and shift packed), the hash, a
 *   shift, one relaxed atomic load, a bit test: no lock, O(1). The bit of a
 *   sampled block is set before malloc returns it, so the free() that the
 *   program orders after that malloc sees it (C11 coherence: a load that
 *   happens-after a store reads it or a later value).
 *   The bitmap must stay in L1 and in the TLB: at 2^18 bits (32 KiB, its
 *   own pages) the load missed on most frees of the benchmark and cost ~6 ns
 *   each. So it starts at 2^12 bits (512 bytes, inside pl__heap_fast, on the
 *   page of the word that points to it) and grows (2^13 ... 2^18) when live
 *   samples exceed bits/64, keeping false positives under ~1.6%. It never
 *   shrinks: a grown level is built (under the mutex) from the live records
 *   in fresh memory and published; an older level is then frozen, still a
 *   superset of the blocks live at the switch, so a reader holding it stays
 *   correct, and a block sampled after the switch is freed through a load
 *   that sees the new level (its insertion follows the switch under the
 *   same mutex).
 * - set: open addressing over buckets of one cache line (5 pointers, their
 *   record indices, a spill count); a pointer lives in its home bucket or,
 *   when that is full, one of the 7 after it (the home's spill count says
 *   how many did). Inserts happen under the mutex into empty slots; a slot
 *   is emptied only by the free of the pointer it holds (lock-free: a
 *   compare-and-swap, so a free from a signal handler inside the tracker
 *   can still remove it). A lookup of an absent key (a filter false
 *   positive) costs one cache line when nothing spilled. No tombstones.
 *   The set is sized to the live samples, not to max_samples: a 2 MiB table
 *   hashed over sparsely costs a cache and TLB miss (and, on this VM, page
 *   faults as the kernel reclaims cold pages) on every sampled malloc and
 *   free — measured 2.3 µs a sample against 1.4 µs with a small table. It
 *   starts at 64 buckets and doubles (under the mutex) at 40% load, up to
 *   2.5 slots per allowed sample (a full 8-bucket window, 40 keys where 16
 *   are expected, also makes it double; that has a probability near 1e-7
 *   per window). Growing copies each live key to the new set, then marks
 *   the old slot "moved" (p | 1) with a CAS; a free racing with it either
 *   empties the old slot first (the copy is then undone) or sees the mark
 *   and follows the old set's `next` to the new one. The new set is
 *   published after the copy; sets are never freed (all levels together
 *   are less than twice the largest).
 *
 * The mutex protects records, stacks and counters. It is taken only on the
 * sampled paths, never while calling glibc's allocator, the unwinder or
 * other foreign code, and the thread's busy guard is held with it, so a
 * signal handler that allocates while its thread holds the mutex is served
 * untracked instead of deadlocking.
 */
#include "heap/heap.h"
#include "heap/heap_internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>

#include "common/util.h"
#include "heap/track_internal.h"
#include "sample/unwind.h"

__thread pl__heap_tls pl__heap_tls_state __attribute__((tls_model("initial-exec")));
pl__heap_fast_state pl__heap_fast = {.range = PL_HEAP_NO_RANGE};
/* A plain mutex: an adaptive one (spin, then sleep) doubled the cost of
 * T = 1 on two threads (heavy contention) and did not help at 512 KiB. */
pl__heap_state pl__heap = {.lock = PTHREAD_MUTEX_INITIALIZER};
#define H pl__heap

#define FILTER_MIN_BITS 12
#define FILTER_MAX_BITS 18
#define SET_MIN_BITS 6 /* 64 buckets, 4 KiB */
#define PROBE_BUCKETS 8
#define DISABLED_INTERVAL (64 * 1024) /* slow-path period before tracking starts */
/* The filter is what free() asks under ASan (hooks: sampled blocks are in
 * ASan's heap). The interposer keeps sampled blocks in their own range
 * (range.c) and asks that instead: no filter to maintain. */
#define USE_FILTER PL_HEAP_ASAN

extern char __start_proflab_heap_text[] __attribute__((weak));
extern char __stop_proflab_heap_text[] __attribute__((weak));

/* ---------------------------------------------------------------- clocks, rng */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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
  uint64_t seed = pl_mix64(now_ns() ^ ((uint64_t)t->tid << 32) ^ (uintptr_t)t);
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

/* ---------------------------------------------------------------- stack capture */

/* How stacks are captured (PROFLAB_HEAP_UNWIND):
 * - fp (default): the CPU sampler's frame-pointer walk (sample/unwind.c)
 *   from the tracker's own frame, over our module's frames, up to the
 *   first return address outside it (libc's start_thread or
 *   __libc_start_call_main, libuv calling our callbacks, strdup calling
 *   malloc); the callers above that foreign frame come from a suffix cache
 *   keyed by (return address, stack pointer) and used only if every return
 *   address it was found through is still in its slot on the stack. On a
 *   miss libgcc's DWARF unwinder runs (outside the mutex), must agree with
 *   the walk frame by frame, and fills the cache. A sample then costs a
 *   few dozen loads instead of ~8000 instructions of DWARF (callgrind, the
 *   malloc benchmark).
 * - dwarf: libgcc alone (a program that links the tracker but is built
 *   without frame pointers; always under ASan, whose frames are skipped by
 *   address range).
 * - verify: both for every sample; DWARF's stack wins and disagreements
 *   are counted (tests). In fp mode every 256th stack of a thread is
 *   checked the same way, and the first disagreement (code in our module
 *   built without frame pointers, whose frames the walk misreads) turns
 *   frame pointers off for the process.
 * Frame pointers are read only inside the mapping that held this thread's
 * stack at its first sample (/proc/self/maps, plain system calls; glibc's
 * pthread_getattr_np cannot be used: it allocates while holding the
 * thread's lock, and that allocation may be the one being sampled), so a
 * sample on a signal stack or a coroutine's stack goes to DWARF. */
enum { UNWIND_DWARF = PL_HEAP_UNWIND_DWARF, UNWIND_FP = PL_HEAP_UNWIND_FP,
       UNWIND_VERIFY = PL_HEAP_UNWIND_VERIFY };
#define SUFFIX_SET_BITS 7 /* 128 sets */
#define SUFFIX_WAYS 4
#define SUFFIXES ((1u << SUFFIX_SET_BITS) * SUFFIX_WAYS) /* ~400 KiB reserved, touched as used */

enum { HOW_FP = 1, HOW_DWARF = 2, HOW_CHECKED = 4 };

typedef struct sample_ctx {
  uintptr_t pcs[PL_HEAP_MAX_FRAMES];
  unsigned depth;
  int truncated;
  unsigned how; /* HOW_*: counted with the sample (count_locked) */
  uint64_t time;
  double w;
} sample_ctx;

typedef struct capture_state {
  uintptr_t *pcs, *sps; /* sps[i]: the CFA libgcc reports with pcs[i] */
  unsigned n, max;
  int seen_ours, truncated;
} capture_state;

static int in_skip(uintptr_t ip) {
  if (ip >= (uintptr_t)__start_proflab_heap_text && ip < (uintptr_t)__stop_proflab_heap_text)
    return 1;
  for (unsigned i = 0; i < H.nskip; i++)
    if (ip >= H.skip_lo[i] && ip < H.skip_hi[i]) return 1;
  return 0;
}

void pl__heap_add_skip_range(uintptr_t lo, uintptr_t hi) {
  if (H.nskip < PL_ARRAY_SIZE(H.skip_lo)) {
    H.skip_lo[H.nskip] = lo;
    H.skip_hi[H.nskip] = hi;
    H.nskip++;
  }
}

/* Frames come innermost first: libgcc's own, then ours (the section, and
 * the sanitizer's allocator), then the program's. Record from the first
 * frame outside them that follows one of ours. */
PL_HEAP_TEXT static _Unwind_Reason_Code capture_step(struct _Unwind_Context *ctx, void *arg) {
  capture_state *st = arg;
  uintptr_t ip = _Unwind_GetIP(ctx);
  if (ip == 0) return _URC_END_OF_STACK;
  if (st->seen_ours < 2) {
    if (in_skip(ip)) {
      st->seen_ours = 1;
      return _URC_NO_REASON;
    }
    if (!st->seen_ours) return _URC_NO_REASON;
    st->seen_ours = 2;
  }
  if (st->n >= st->max) {
    st->truncated = 1;
    return _URC_END_OF_STACK;
  }
  if (st->sps) st->sps[st->n] = _Unwind_GetCFA(ctx);
  st->pcs[st->n++] = ip;
  return _URC_NO_REASON;
}

PL_HEAP_TEXT __attribute__((noinline)) static unsigned capture_dwarf(uintptr_t *pcs,
                                                                     uintptr_t *sps,
                                                                     int *truncated) {
  capture_state st = {.pcs = pcs, .sps = sps, .max = PL_HEAP_MAX_FRAMES};
  _Unwind_Backtrace(capture_step, &st);
  *truncated = st.truncated;
  return st.n;
}

/* This thread's stack, if sp is on it: the main thread's [stack] (down to
 * the mapping below it: it grows), or, for another thread, the mapping
 * holding sp up to the thread's TCB (pthread_self()), which glibc puts at
 * the top of every thread's stack block, its own or one the program gave:
 * [sp, TCB) stays mapped while the thread lives, whatever becomes of the
 * memory around it. On anything else (a signal stack, a coroutine's) the
 * bounds stay unknown (DWARF) and are looked for again 1024 captures
 * later. */
static void stack_bounds(pl__heap_tls *t, uintptr_t sp) {
  uintptr_t lo = 0, hi = 0, tcb = (uintptr_t)pthread_self();
  int main_stack = 0;
  if (pl_unwind_mapping_of(sp, &lo, &hi, &main_stack) == 0 && !main_stack) {
    if (tcb > sp && tcb <= hi) hi = tcb;
    else hi = 0;
  }
  if (hi <= lo || hi - lo < 32 || sp >= hi) {
    lo = 0;
    hi = 1; /* unknown: DWARF */
  }
  t->stack_lo = lo;
  t->stack_hi = hi;
}

/* The frame-pointer walk from frame record fp (the tracker's entry point,
 * whose frame is set up): our frames skipped, then the program's. */
PL_HEAP_TEXT __attribute__((always_inline)) static inline int
capture_fp(pl__heap_tls *t, uintptr_t fp, uintptr_t *pcs, unsigned *n, uintptr_t *cross_ret,
           uintptr_t *cross_sp) {
  if (!t->stack_hi || (t->stack_hi == 1 && (t->captures & 1023) == 0)) stack_bounds(t, fp);
  uintptr_t top = t->stack_hi;
  if (fp < t->stack_lo || fp >= top) return PL_FP_BAD;
  for (unsigned k = 0; k < 8; k++) {
    if ((fp & 7) || fp > top - 16) return PL_FP_BAD;
    const uintptr_t *f = (const uintptr_t *)fp;
    uintptr_t ret = f[1], nfp = f[0];
    if (!in_skip(ret))
      return pl_unwind_fp_walk(ret, fp + 16, nfp, top, pcs, n, PL_HEAP_MAX_FRAMES, cross_ret,
                               cross_sp);
    if (nfp <= fp) return PL_FP_BAD;
    fp = nfp;
  }
  return PL_FP_BAD;
}

/* The set of suffixes for the foreign frame (ret, csp). Several ways: the
 * same foreign function called from two call sites of one caller has the
 * same key and different callers (seen in proflabd: libmicrohttpd calling
 * strdup twice), which would evict each other on every sample if the
 * cache were direct-mapped. */
static pl_unwind_suffix *suffix_set(uintptr_t ret, uintptr_t csp) {
  return &H.suffixes[(pl_unwind_suffix_hash(ret, csp) >> (64 - SUFFIX_SET_BITS)) * SUFFIX_WAYS];
}

/* Locked. Appends the cached callers of (ret, csp) to c->pcs[*n..]. */
static int suffix_lookup_locked(pl__heap_tls *t, uintptr_t ret, uintptr_t csp, uintptr_t *pcs,
                                unsigned *n) {
  pl_unwind_suffix *set = suffix_set(ret, csp);
  for (unsigned w = 0; w < SUFFIX_WAYS; w++)
    if (pl_unwind_suffix_match(&set[w], ret, csp, t->stack_hi, pcs, n, PL_HEAP_MAX_FRAMES))
      return 1;
  return 0;
}

/* Locked. The way to fill for (ret, csp): an empty one, else the next in
 * turn. */
static pl_unwind_suffix *suffix_victim_locked(uintptr_t ret, uintptr_t csp) {
  pl_unwind_suffix *set = suffix_set(ret, csp);
  for (unsigned w = 0; w < SUFFIX_WAYS; w++)
    if (set[w].n == 0) return &set[w];
  return &set[H.suffix_clock++ % SUFFIX_WAYS];
}

/* Slow path of sample_begin (outside the mutex): DWARF, checked against
 * the frame-pointer result (pcs[0, fp_n), the foreign frame (cr, cs) if
 * r == PL_FP_CROSS, or the whole stack if complete), then the cache filled
 * on agreement. Returns with the mutex held. */
PL_HEAP_TEXT __attribute__((noinline)) static void
capture_slow(pl__heap_tls *t, sample_ctx *c, int r, unsigned fp_n, int complete, uintptr_t cr,
             uintptr_t cs) {
  uintptr_t fp_pcs[PL_HEAP_MAX_FRAMES], sps[PL_HEAP_MAX_FRAMES];
  if (fp_n) memcpy(fp_pcs, c->pcs, fp_n * sizeof(*fp_pcs));
  int truncated = 0;
  pl__heap_busy_enter(t); /* the unwinder may allocate (first use in a thread) */
  unsigned n = capture_dwarf(c->pcs, sps, &truncated);
  pl__heap_busy_exit(t);
  int prefix = r != PL_FP_BAD && n >= fp_n && memcmp(fp_pcs, c->pcs, fp_n * sizeof(*fp_pcs)) == 0;
  pl__heap_lock(t);
  c->how |= HOW_DWARF;
  int mismatch = 0;
  if (complete) {
    c->how |= HOW_CHECKED;
    mismatch = !prefix || n != fp_n || truncated != c->truncated;
  } else if (r == PL_FP_CROSS) {
    if (!prefix || n == fp_n || c->pcs[fp_n] != cr || sps[fp_n] != cs) {
      mismatch = 1;
    } else if (!truncated && n - fp_n <= PL_UNWIND_SUFFIX_MAX) {
      pl_unwind_suffix *e = suffix_victim_locked(cr, cs);
      e->ret = cr;
      e->csp = cs;
      e->n = n - fp_n;
      memcpy(e->ip, c->pcs + fp_n, e->n * sizeof(*e->ip));
      memcpy(e->sp, sps + fp_n, e->n * sizeof(*e->sp));
    }
  }
  if (complete || r == PL_FP_CROSS) H.unwind_compared++;
  if (mismatch) H.unwind_mismatch++;
  if (mismatch && !H.unwind_fell_back && pl_unwind_give_up_fp(H.unwind_mismatch, H.unwind_compared) &&
      atomic_load_explicit(&H.unwind, memory_order_relaxed) == UNWIND_FP) {
    /* Frame pointers that keep disagreeing with DWARF: code in our module
     * built without them (a program linking the tracker), whose frames
     * the walk misreads. DWARF for every sample from now on. */
    atomic_store_explicit(&H.unwind, UNWIND_DWARF, memory_order_relaxed);
    H.unwind_fell_back = 1;
  }
  c->depth = n;
  c->truncated = truncated;
}

/* The stack of the allocation being sampled into c; returns with the
 * mutex held. */
PL_HEAP_TEXT __attribute__((always_inline)) static inline void capture(pl__heap_tls *t,
                                                                       sample_ctx *c) {
  unsigned n = 0;
  uintptr_t cr = 0, cs = 0;
  int r = PL_FP_BAD, complete = 0;
  c->truncated = 0;
  c->how = 0;
  t->captures++;
  int mode = atomic_load_explicit(&H.unwind, memory_order_relaxed);
  if (mode != UNWIND_DWARF) {
    r = capture_fp(t, (uintptr_t)__builtin_frame_address(0), c->pcs, &n, &cr, &cs);
    if (r == PL_FP_END || r == PL_FP_FULL) {
      complete = 1;
      c->truncated = r == PL_FP_FULL;
    }
  }
  if (r == PL_FP_CROSS && n >= PL_HEAP_MAX_FRAMES) { /* full: what is above is cut anyway */
    complete = 1;
    c->truncated = 1;
  }
  pl__heap_lock(t);
  if (r == PL_FP_CROSS && !complete) {
    unsigned m = n;
    if (suffix_lookup_locked(t, cr, cs, c->pcs, &m)) {
      complete = 1;
      n = m;
    }
  }
  if (complete) {
    c->how |= HOW_FP;
    c->depth = n;
    /* Every 256th stack of a thread (16th after a disagreement) is checked
     * against DWARF too: a chain misread through code built without frame
     * pointers that ends at a foreign frame cached by another path is
     * caught only so. */
    unsigned every = H.unwind_mismatch ? PL_UNWIND_CHECK_EVERY_SUSPECT : PL_UNWIND_CHECK_EVERY;
    if (mode != UNWIND_VERIFY && t->captures % every != 0) return;
  }
  pl__heap_unlock(t);
  capture_slow(t, c, r, n, complete, cr, cs);
}

/* ---------------------------------------------------------------- stacks (locked) */

static uint64_t stack_hash(const uintptr_t *pcs, unsigned depth) {
  uint64_t h = 0x84222325cbf29ce4ull ^ depth;
  for (unsigned i = 0; i < depth; i++) h = pl_mix64(h ^ pcs[i]);
  return h ? h : 1;
}

static uint32_t intern_locked(const uintptr_t *pcs, unsigned depth, int truncated) {
  uint64_t h = stack_hash(pcs, depth);
  uint32_t mask = H.stk_table_cap - 1;
  uint32_t i = (uint32_t)h & mask;
  while (H.stk_table[i]) {
    uint32_t id = H.stk_table[i] - 1;
    const pl__heap_stk *s = &H.stacks[id];
    if (s->hash == h && s->depth == depth && memcmp(H.pcs + s->off, pcs, depth * sizeof(*pcs)) == 0)
      return id;
    i = (i + 1) & mask;
  }
  if (H.nstacks >= H.max_stacks || H.npcs + depth > H.max_pcs) {
    H.unknown_stacks++;
    return 0;
  }
  uint32_t id = H.nstacks;
  pl__heap_stk *s = &H.stacks[id];
  s->hash = h;
  s->off = (uint32_t)H.npcs;
  s->depth = (uint16_t)depth;
  s->flags = truncated ? PL_HEAP_STACK_TRUNCATED : 0;
  s->alloc_objects = s->alloc_bytes = 0;
  memcpy(H.pcs + H.npcs, pcs, depth * sizeof(*pcs));
  H.npcs += depth;
  H.stk_table[i] = id + 1;
  H.nstacks = id + 1;
  return id;
}

/* ---------------------------------------------------------------- pointer set */

static inline uint64_t ptr_hash(const void *p) { return pl__heap_hash(p); }

static inline size_t cell_of(uintptr_t p) {
  return (size_t)(ptr_hash((const void *)p) >> (64 - H.filter_bits));
}

/* Under the mutex: one more live record at p's cell. The bit is written
 * only if it is not set already (it may still be, see filter_drop_locked):
 * every write invalidates the line in the other cores, whose free() reads
 * it next. */
static void filter_add_locked(uintptr_t p) {
  if (!USE_FILTER) return;
  size_t c = cell_of(p);
  if (H.fcount[c]++ == 0 &&
      !((atomic_load_explicit(&H.filter[c >> 6], memory_order_relaxed) >> (c & 63)) & 1))
    atomic_fetch_or_explicit(&H.filter[c >> 6], 1ull << (c & 63), memory_order_release);
}

/* Under the mutex: clear the bits of cells that are still empty. */
static void filter_flush_locked(void) {
  for (unsigned i = 0; i < H.nclear; i++) {
    size_t c = H.clear_cells[i];
    if (H.fcount[c] == 0 && ((atomic_load_explicit(&H.filter[c >> 6], memory_order_relaxed) >>
                              (c & 63)) & 1))
      atomic_fetch_and_explicit(&H.filter[c >> 6], ~(1ull << (c & 63)), memory_order_relaxed);
  }
  H.nclear = 0;
}

/* Under the mutex: one live record less at p's cell. A bit whose count
 * reaches 0 is cleared later, with PL_HEAP_CLEAR_BATCH others (a set bit
 * over an empty cell only costs a lookup): fewer writes to lines every
 * free() reads. */
static void filter_drop_locked(uintptr_t p) {
  if (!USE_FILTER) return;
  size_t c = cell_of(p);
  if (--H.fcount[c] == 0) {
    H.clear_cells[H.nclear++] = (uint32_t)c;
    if (H.nclear == PL_HEAP_CLEAR_BATCH) filter_flush_locked();
  }
}

static void filter_publish(void) {
  atomic_store_explicit(&pl__heap_fast.filter,
                        (uintptr_t)H.filter | (uintptr_t)(64 - H.filter_bits),
                        memory_order_release);
}

/* Under the mutex: move to a filter level large enough for H.live live
 * records. The counts are rebuilt from the records (every record with an
 * id is counted, including freed ones still queued for the mutex holder). */
static void filter_grow_locked(void) {
  if (!USE_FILTER) return;
  unsigned bits = H.filter_bits;
  while (bits < H.filter_max_bits && (H.live + 1) * 64 > (1ull << bits)) bits++;
  if (bits == H.filter_bits) return;
  H.filter_bits = bits;
  /* level 2^k at filter_mem + (2^k − 2^13) bits; 2^12 is pl__heap_fast.level0 */
  H.filter = H.filter_mem + (((1ull << bits) - (2ull << FILTER_MIN_BITS)) >> 6);
  memset(H.fcount, 0, ((size_t)1 << bits) * sizeof(*H.fcount));
  H.nclear = 0; /* cells of the old level */
  for (uint32_t i = 0; i < H.rec_hw; i++)
    if (H.recs[i].id) filter_add_locked(H.recs[i].ptr);
  filter_publish();
}

/* 0 when the PROBE_BUCKETS buckets from p's home in set st are full. Under
 * the mutex (or, for a set not yet published, by its only writer). */
static int set_put(pl__heap_set *st, uintptr_t p, uint32_t ri) {
  size_t b0 = ptr_hash((const void *)p) >> st->shift;
  for (size_t d = 0; d < PROBE_BUCKETS; d++) {
    pl__heap_bucket *bk = &st->b[(b0 + d) & st->mask];
    for (size_t i = 0; i < PL_HEAP_BUCKET_KEYS; i++) {
      if (atomic_load_explicit(&bk->key[i], memory_order_relaxed) == 0) {
        if (d) atomic_fetch_add_explicit(&st->b[b0].spill, 1, memory_order_relaxed);
        bk->val[i] = ri;
        atomic_store_explicit(&bk->key[i], p, memory_order_release);
        return 1;
      }
    }
  }
  return 0;
}

/* Remove p from st if it is there: its record index, or PL_HEAP_NONE.
 * Follows "moved" marks to newer sets. */
static uint32_t set_take(pl__heap_set *st, uintptr_t p) {
  if (p == 0) return PL_HEAP_NONE; /* free(NULL): 0 is also what an empty slot holds */
  uint64_t h = ptr_hash((const void *)p);
  while (st) {
    size_t b0 = h >> st->shift;
    pl__heap_set *next = NULL;
    for (size_t d = 0; d < PROBE_BUCKETS && !next; d++) {
      pl__heap_bucket *bk = &st->b[(b0 + d) & st->mask];
      for (size_t i = 0; i < PL_HEAP_BUCKET_KEYS; i++) {
        uintptr_t k = atomic_load_explicit(&bk->key[i], memory_order_acquire);
        if (k == p) {
          uint32_t ri = bk->val[i];
          /* Only the free of p empties this slot (before glibc can hand p
           * out again); only a growing set marks it moved. */
          if (atomic_compare_exchange_strong_explicit(&bk->key[i], &k, 0, memory_order_acq_rel,
                                                      memory_order_acquire)) {
            if (d) atomic_fetch_sub_explicit(&st->b[b0].spill, 1, memory_order_relaxed);
            return ri;
          }
          /* lost to the grower: k is now p | 1 */
        }
        if (k == (p | 1)) {
          atomic_fetch_add_explicit(&H.followed_moved, 1, memory_order_relaxed);
          next = atomic_load_explicit(&st->next, memory_order_acquire);
          break;
        }
      }
      /* Nothing of this home spilled: p is not in this set. */
      if (!next && d == 0 && atomic_load_explicit(&st->b[b0].spill, memory_order_relaxed) == 0)
        return PL_HEAP_NONE;
    }
    st = next;
  }
  return PL_HEAP_NONE;
}

uint32_t pl__heap_take(const void *p) {
  pl__heap_set *st = atomic_load_explicit(&H.set, memory_order_acquire);
  return st ? set_take(st, (uintptr_t)p) : PL_HEAP_NONE;
}

static void release_locked(uint32_t ri);

/* Under the mutex: double the set (see the comment at the top). 0 when it
 * is at its maximum already. */
static int set_grow_locked(void) {
  pl__heap_set *old = atomic_load_explicit(&H.set, memory_order_relaxed);
  unsigned bits = 64 - old->shift + 1;
  if (bits > H.set_max_bits) return 0;
  pl__heap_set *nw = &H.sets[bits - SET_MIN_BITS];
  nw->b = H.set_mem + ((1ull << bits) - (1ull << SET_MIN_BITS));
  nw->mask = ((size_t)1 << bits) - 1;
  nw->shift = 64 - bits;
  atomic_store_explicit(&nw->next, NULL, memory_order_relaxed);
  atomic_store_explicit(&old->next, nw, memory_order_release);
  for (size_t b = 0; b <= old->mask; b++) {
    pl__heap_bucket *bk = &old->b[b];
    for (size_t i = 0; i < PL_HEAP_BUCKET_KEYS; i++) {
      uintptr_t k = atomic_load_explicit(&bk->key[i], memory_order_acquire);
      if (k == 0 || (k & 1)) continue;
      uint32_t ri = bk->val[i];
      int copied = set_put(nw, k, ri);
      uintptr_t expect = k;
      if (atomic_compare_exchange_strong_explicit(&bk->key[i], &expect, copied ? k | 1 : 0,
                                                  memory_order_acq_rel, memory_order_acquire)) {
        if (!copied) { /* no room (cannot happen at half the load): forget it */
          H.dropped++;
          release_locked(ri);
        }
      } else if (copied) { /* freed meanwhile: undo the copy */
        H.undone_copies++;
        set_take(nw, k);
      }
    }
  }
  atomic_store_explicit(&H.set, nw, memory_order_release);
  H.set_slots = (nw->mask + 1) * PL_HEAP_BUCKET_KEYS;
  return 1;
}

/* Under the mutex. 0 when the set has no room for p. */
static int set_insert_locked(const void *p, uint32_t ri) {
  if (USE_FILTER && H.fcount[cell_of((uintptr_t)p)] == UINT32_MAX) return 0;
  if ((H.live + 1) * 5 > H.set_slots * 2) set_grow_locked(); /* 40% load */
  pl__heap_set *st = atomic_load_explicit(&H.set, memory_order_relaxed);
  if (!set_put(st, (uintptr_t)p, ri)) {
    if (!set_grow_locked()) return 0;
    st = atomic_load_explicit(&H.set, memory_order_relaxed);
    if (!set_put(st, (uintptr_t)p, ri)) return 0;
  }
  filter_add_locked((uintptr_t)p);
  return 1;
}

/* ---------------------------------------------------------------- records (locked) */

static uint32_t rec_alloc_locked(void) {
  if (H.free_head) {
    uint32_t ri = H.free_head - 1;
    H.free_head = atomic_load_explicit(&H.recs[ri].next, memory_order_relaxed);
    return ri;
  }
  if (H.rec_hw < H.max_samples) return H.rec_hw++;
  return PL_HEAP_NONE;
}

static void rec_free_locked(uint32_t ri) {
  pl__heap_rec *r = &H.recs[ri];
  r->id = 0;
  atomic_store_explicit(&r->freed, 0, memory_order_relaxed);
  atomic_store_explicit(&r->next, H.free_head, memory_order_relaxed);
  H.free_head = ri + 1;
}

static void release_locked(uint32_t ri) {
  pl__heap_rec *r = &H.recs[ri];
  double w = r->weight;
  filter_drop_locked(r->ptr);
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
    release_locked(ri);
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
  /* The filter still counts p's record (release_locked would drop it). */
  filter_drop_locked((uintptr_t)p);
  if (!set_insert_locked(p, ri)) {
    filter_add_locked((uintptr_t)p);
    H.dropped++;
    release_locked(ri);
  }
  pl__heap_unlock(t);
}

/* ---------------------------------------------------------------- sampling */

/* Under the mutex: count a sample of n bytes (weight w) at stack sid, its
 * stack captured as `how` says (HOW_*). Counted here, with the sample, so
 * that unwind_fp + unwind_dwarf - unwind_checked == samples. */
static void account_locked(uint32_t sid, double w, size_t n, unsigned how) {
  H.samples++;
  H.unwind_fp += (how & HOW_FP) != 0;
  H.unwind_dwarf += (how & HOW_DWARF) != 0;
  H.unwind_checked += (how & HOW_CHECKED) != 0;
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
  if (H.live * 64 > (1ull << H.filter_bits) && H.filter_bits < H.filter_max_bits)
    filter_grow_locked();
}

/* What a sample takes before the mutex: its stack, time and weight.
 * Inlined: one frame of ours for the unwinder. */
/* Returns with the mutex held. */
PL_HEAP_TEXT __attribute__((always_inline)) static inline void sample_begin(pl__heap_tls *t,
                                                                            size_t n,
                                                                            sample_ctx *c) {
  c->time = now_ns();
  c->w = pl__heap_weight(n);
  capture(t, c);
}

/* Inlined into pl__heap_on_sample: one frame of ours for the unwinder. */
PL_HEAP_TEXT __attribute__((always_inline)) static inline void record(pl__heap_tls *t, void *p,
                                                                      size_t n) {
  sample_ctx c;
  sample_begin(t, n, &c);
  uint32_t sid = intern_locked(c.pcs, c.depth, c.truncated);
  account_locked(sid, c.w, n, c.how);
  uint32_t ri = rec_alloc_locked();
  if (ri == PL_HEAP_NONE || !set_insert_locked(p, ri)) {
    if (ri != PL_HEAP_NONE) rec_free_locked(ri);
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
PL_HEAP_TEXT __attribute__((noinline)) void *pl__heap_on_sample(void *p, size_t n) {
  pl__heap_tls *t = &pl__heap_tls_state;
  if (t->busy) return p;
  int saved_errno = errno;
  if (decide(t, n)) record(t, p, n);
  errno = saved_errno;
  return p;
}

#if !PL_HEAP_ASAN

/* The interposer's slow path (heap_internal.h): decide, then serve a
 * sample from the range, recorded, or anything else from glibc. */
PL_HEAP_TEXT __attribute__((always_inline)) static inline void *
alloc_decided(pl__heap_tls *t, size_t n, size_t align, int kind, int saved_errno) {
  sample_ctx c;
  sample_begin(t, n, &c);
  int reused = 0;
  uint32_t sid = intern_locked(c.pcs, c.depth, c.truncated);
  uint32_t ri = rec_alloc_locked();
  size_t an = n;
  if (kind == PL_HEAP_KIND_PVALLOC) /* n + align fits: else the range refuses n */
    an = n <= SIZE_MAX - align ? (n ? (n + align - 1) & ~(align - 1) : align) : SIZE_MAX;
  void *p = ri != PL_HEAP_NONE ? pl__heap_range_alloc_locked(an, align, &reused) : NULL;
  if (p && !set_insert_locked(p, ri)) {
    pl__heap_range_free(p); /* lock-free push: taken back by the next allocation */
    p = NULL;
  }
  if (!p) {
    if (ri != PL_HEAP_NONE) rec_free_locked(ri);
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
  if (kind == PL_HEAP_KIND_ZERO && reused) memset(p, 0, n); /* fresh range pages are zero */
  errno = saved_errno;
  return p;
}

PL_HEAP_TEXT __attribute__((noinline)) void *pl__heap_alloc_sampled(size_t n, size_t align,
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

PL_HEAP_TEXT __attribute__((noinline)) void *pl__heap_alloc_decided(size_t n, size_t align,
                                                                      int kind) {
  return alloc_decided(&pl__heap_tls_state, n, align, kind, errno);
}
#endif

/* ---------------------------------------------------------------- fork */

/* pthread_atfork: the forking thread holds the mutex across fork(), so the
 * child never inherits it held by a thread that does not exist there. A
 * fork() from a signal handler that interrupted this thread inside the
 * tracker (busy) must not wait for the mutex (it may hold it): it forks
 * without, and the child starts from a fresh mutex anyway. */
static __thread int fork_locked __attribute__((tls_model("initial-exec")));

static void atfork_prepare(void) {
  pl__heap_tls *t = &pl__heap_tls_state;
  fork_locked = t->busy == 0;
  pl__heap_busy_enter(t);
  if (fork_locked) pthread_mutex_lock(&H.lock);
}

static void atfork_parent(void) {
  if (fork_locked) pthread_mutex_unlock(&H.lock);
  pl__heap_busy_exit(&pl__heap_tls_state);
}

static void atfork_child(void) {
  /* The child has one thread, this one: nothing else can be waiting for
   * the mutex. Start from a fresh one. The records stay: the child's heap
   * is a copy of the parent's. */
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  memcpy(&H.lock, &fresh, sizeof(fresh));
  pl__heap_tls_state.tid = (uint32_t)gettid();
  pl__heap_busy_exit(&pl__heap_tls_state);
}

/* ---------------------------------------------------------------- init */

static int env_u64(const char *name, uint64_t *out) {
  const char *v = getenv(name);
  if (!v || !*v) return 0;
  uint64_t x;
  if (pl_parse_u64(v, &x) != 0) return -EINVAL;
  *out = x;
  return 1;
}

static size_t round_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

static unsigned log2_ceil(uint64_t n) {
  unsigned b = 0;
  while ((1ull << b) < n) b++;
  return b;
}

int pl_heap_init(const pl_heap_options *opts) {
  static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
  pl__heap_tls *t = &pl__heap_tls_state;
  pl_heap_options o = {0};
  if (opts) o = *opts;
  int rc = 0;
  pl__heap_busy_enter(t); /* getenv, dl_iterate_phdr, pthread_atfork may allocate */
  pthread_mutex_lock(&init_lock);
  if (atomic_load(&H.running)) {
    rc = -EALREADY;
    goto out;
  }
  uint64_t v = 0;
  if (!o.sample_bytes) {
    o.sample_bytes = PL_HEAP_DEFAULT_SAMPLE_BYTES;
    if ((rc = env_u64("LAB_HEAP_SAMPLE_BYTES", &v)) < 0) goto out;
    if (rc == 1) o.sample_bytes = v;
  }
  if (!o.max_samples) {
    o.max_samples = o.sample_bytes >= 65536 ? 1u << 16 : 1u << 21;
    if ((rc = env_u64("LAB_HEAP_MAX_SAMPLES", &v)) < 0) goto out;
    if (rc == 1) o.max_samples = v > (1u << 26) ? 0 : (uint32_t)v;
  }
  if (!o.max_stacks) {
    o.max_stacks = 1u << 16;
    if ((rc = env_u64("LAB_HEAP_MAX_STACKS", &v)) < 0) goto out;
    if (rc == 1) o.max_stacks = v > (1u << 24) ? 0 : (uint32_t)v;
  }
  rc = 0;
  if (o.sample_bytes == 0 || o.sample_bytes > (1ull << 40) || o.max_samples == 0 ||
      o.max_samples > (1u << 26) || o.max_stacks < 2 || o.max_stacks > (1u << 24)) {
    rc = -EINVAL;
    goto out;
  }

  /* Sizes: up to 2.5 set slots per allowed sample (every level of the set
   * reserved: they are used one after the other); a stack table at most
   * half full; 32 frames per stack on average. One mapping for everything,
   * touched (and so made resident) only where used. */
  unsigned set_max = log2_ceil((uint64_t)o.max_samples * 5 / 2 / PL_HEAP_BUCKET_KEYS + 1);
  if (set_max < SET_MIN_BITS) set_max = SET_MIN_BITS;
  uint32_t stk_cap = 1u << log2_ceil((uint64_t)o.max_stacks * 2);
  size_t max_pcs = (size_t)o.max_stacks * 32;
  unsigned fmax = log2_ceil((uint64_t)o.max_samples * 64); /* enough for every allowed sample */
  if (fmax > FILTER_MAX_BITS) fmax = FILTER_MAX_BITS;
  if (fmax < FILTER_MIN_BITS) fmax = FILTER_MIN_BITS;
  size_t off_set = 0;
  size_t off_filter =
      round_up(off_set + ((2ull << set_max) - (1ull << SET_MIN_BITS)) * sizeof(pl__heap_bucket),
               4096);
  size_t off_fcount = round_up(off_filter + ((size_t)1 << (fmax + 1)) / 8, 4096);
  size_t off_recs = round_up(off_fcount + ((size_t)1 << fmax) * sizeof(uint32_t), 4096);
  size_t off_stacks = round_up(off_recs + (size_t)o.max_samples * sizeof(pl__heap_rec), 4096);
  size_t off_stab = round_up(off_stacks + (size_t)o.max_stacks * sizeof(pl__heap_stk), 4096);
  size_t off_pcs = round_up(off_stab + (size_t)stk_cap * sizeof(uint32_t), 4096);
  size_t off_suffix = round_up(off_pcs + max_pcs * sizeof(uintptr_t), 4096);
  size_t total = round_up(off_suffix + SUFFIXES * sizeof(pl_unwind_suffix), 4096);
  char *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (m == MAP_FAILED) {
    rc = -ENOMEM;
    goto out;
  }

  H.map = m;
  H.map_bytes = total;
  H.T = o.sample_bytes;
  H.max_samples = o.max_samples;
  H.max_stacks = o.max_stacks;
  H.set_mem = (pl__heap_bucket *)(m + off_set);
  H.set_max_bits = set_max;
  pl__heap_set *st = &H.sets[0];
  st->b = H.set_mem;
  st->mask = ((size_t)1 << SET_MIN_BITS) - 1;
  st->shift = 64 - SET_MIN_BITS;
  H.set_slots = (st->mask + 1) * PL_HEAP_BUCKET_KEYS;
  atomic_store_explicit(&H.set, st, memory_order_release);
  H.filter_mem = (_Atomic uint64_t *)(m + off_filter);
  H.filter = pl__heap_fast.level0;
  memset((void *)pl__heap_fast.level0, 0, sizeof(pl__heap_fast.level0));
  H.filter_bits = FILTER_MIN_BITS;
  H.filter_max_bits = fmax;
  H.fcount = (uint32_t *)(m + off_fcount);
  H.recs = (pl__heap_rec *)(m + off_recs);
  H.stacks = (pl__heap_stk *)(m + off_stacks);
  H.stk_table = (uint32_t *)(m + off_stab);
  H.stk_table_cap = stk_cap;
  H.pcs = (uintptr_t *)(m + off_pcs);
  H.max_pcs = max_pcs;
  /* Stack 0: "unknown", for samples whose stack did not fit. */
  H.stacks[0].flags = PL_HEAP_STACK_UNKNOWN;
  H.nstacks = 1;
  H.next_id = 1;

  /* Stack capture: frame pointers where our module's text is known. */
  const char *uw = getenv("PROFLAB_HEAP_UNWIND");
  pl_unwind_init();
  int mode = PL_HEAP_ASAN || !pl_unwind_text_known() ? UNWIND_DWARF : UNWIND_FP;
  if (uw && *uw && strcmp(uw, "fp") != 0 && strcmp(uw, "dwarf") != 0 &&
      strcmp(uw, "verify") != 0) {
    rc = -EINVAL;
    goto fail_unmap;
  }
  if (uw && strcmp(uw, "dwarf") == 0) mode = UNWIND_DWARF;
  if (uw && strcmp(uw, "verify") == 0 && mode == UNWIND_FP) mode = UNWIND_VERIFY;
  atomic_store_explicit(&H.unwind, mode, memory_order_relaxed);
  H.suffixes = (pl_unwind_suffix *)(m + off_suffix); /* pl_unwind_init warmed libgcc */
  static int atfork_done;
  if (!atfork_done) {
    if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0) {
      rc = -ENOMEM;
      goto fail_unmap;
    }
    atfork_done = 1;
  }
#if !PL_HEAP_ASAN
  /* Sampled blocks live in their own range (range.c); reserved once. */
  if (atomic_load_explicit(&pl__heap_fast.range, memory_order_relaxed) == PL_HEAP_NO_RANGE &&
      (rc = pl__heap_range_init()) != 0)
    goto fail_unmap;
#endif
  /* Last (sanitizer hooks cannot be removed): until `running`, they only
   * forward. */
  rc = pl__heap_observer_install();
  if (rc) goto fail_unmap;
  filter_publish();
  atomic_store_explicit(&H.running, 1, memory_order_release);
  goto out;

fail_unmap:
  munmap(m, total);
  memset(&H.T, 0, sizeof(H) - offsetof(pl__heap_state, T));
out:
  pthread_mutex_unlock(&init_lock);
  pl__heap_busy_exit(t);
  if (rc == 0) { /* the calling thread samples from its next allocation on */
    t->started = 0;
    t->countdown = 0;
  }
  return rc;
}

int pl_heap_running(void) { return atomic_load(&H.running); }

int pl_heap_uses_sanitizer_hooks(void) { return PL_HEAP_ASAN && pl_heap_running(); }

void pl__heap_stats_locked(pl_heap_stats *st) {
  st->sample_bytes = H.T;
  st->alloc_objects = H.alloc_objects;
  st->alloc_bytes = H.alloc_bytes;
  st->inuse_objects = H.inuse_objects > 0 ? H.inuse_objects : 0;
  st->inuse_bytes = H.inuse_bytes > 0 ? H.inuse_bytes : 0;
  st->samples = H.samples;
  st->live_samples = H.live;
  st->dropped_samples = H.dropped;
  st->unknown_stacks = H.unknown_stacks;
  st->stacks = H.nstacks - 1;
  st->max_samples = H.max_samples;
  st->max_stacks = H.max_stacks;
  st->tracker_reserved = H.map_bytes;
  st->unwind_fp = H.unwind_fp;
  st->unwind_dwarf = H.unwind_dwarf;
  st->unwind_mismatch = H.unwind_mismatch;
  st->unwind_checked = H.unwind_checked;
  st->unwind_mode = atomic_load_explicit(&H.unwind, memory_order_relaxed);
  st->unwind_fell_back = H.unwind_fell_back;
}

/* Resident bytes of the tracker's mapping (mincore, 4096 pages a call):
 * its tables are reserved at their maximum and touched sparsely. */
uint64_t pl__heap_resident(void) {
  if (!H.map) return 0;
  long page = sysconf(_SC_PAGESIZE);
  unsigned char vec[4096];
  uint64_t resident = 0;
  for (size_t off = 0; off < H.map_bytes; off += sizeof(vec) * (size_t)page) {
    size_t len = H.map_bytes - off < sizeof(vec) * (size_t)page ? H.map_bytes - off
                                                                 : sizeof(vec) * (size_t)page;
    if (mincore((char *)H.map + off, len, vec) != 0) return H.map_bytes;
    for (size_t i = 0; i < (len + (size_t)page - 1) / (size_t)page; i++)
      resident += vec[i] & 1;
  }
  return resident * (uint64_t)page;
}

void pl_heap_get_stats(pl_heap_stats *st) {
  memset(st, 0, sizeof(*st));
  if (!pl_heap_running()) return;
  pl__heap_tls *t = &pl__heap_tls_state;
  pl__heap_lock(t);
  pl__heap_stats_locked(st);
  pl__heap_unlock(t);
  st->tracker_bytes = pl__heap_resident();
}
