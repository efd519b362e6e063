/* Internals shared by the heap tracker's files: the per-thread state and the inline fast paths. */
/* The fast paths are here, inline, so that malloc() and free() compile to
 * a few instructions around glibc's own call. The tracker's files:
 *   interpose.c      the malloc family, or the sanitizer hooks
 *   range.c          the address range sampled blocks are served from
 *   track.c          the sampled path: the decision, the records, the mutex
 *   stack_capture.c  a sample's call stack (fast half: stack_capture.h)
 *   stacks.c         interned stacks
 *   ptrset.c         the pointer set (sampled block → record), ASan's filter
 *   init.c           pl_heap_init, the fork handlers
 *   stats.c          pl_heap_get_stats
 *   snapshot.c       copies for writers
 *   sample_order.c   the copy's samples put in id order as they come
 * Their shared state: track_internal.h. */
#ifndef PL_HEAP_INTERNAL_H
#define PL_HEAP_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__SANITIZE_ADDRESS__)
#define PL__HEAP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PL__HEAP_ASAN 1
#endif
#endif
#ifndef PL__HEAP_ASAN
#define PL__HEAP_ASAN 0
#endif

/* Every function that can be on the stack between the program's call into
 * the allocator and the unwinder lives in this section; the stack capture
 * skips frames inside it (the linker defines __start_/__stop_ symbols for
 * sections named like C identifiers). */
#define PL__HEAP_TEXT __attribute__((section("proflab_heap_text")))

/* The fast paths are inlined into the allocation functions even at -O0
 * (the debug/ASan build): an out-of-line copy would be a frame outside
 * proflab_heap_text in every captured stack. */
#define PL__HEAP_INLINE PL__HEAP_TEXT __attribute__((always_inline)) static inline

#define PL__HEAP_NONE UINT32_MAX

/* Per-thread state, initial-exec TLS: a %fs-relative access, no
 * __tls_get_addr (which may allocate) and usable before main. */
typedef struct pl__heap_tls {
  /* Bytes that may still be allocated before the next sampling point: an
   * allocation of n >= countdown crosses it and takes the slow path (so 0
   * sends every allocation there). */
  uint64_t countdown;
  uint32_t busy;            /* recursion guard: > 0 while this thread is inside the tracker */
  uint32_t started;         /* countdown drawn since tracking started */
  uint64_t rng;             /* xorshift64* state */
  uint32_t tid;             /* cached gettid() */
  uint64_t saved_countdown; /* countdown when busy went from 0 to 1 */
  /* The mapping holding this thread's stack (stack_capture.c);
   * 0, 0 until its first sample, 0, 1 if unknown. */
  uintptr_t stack_lo, stack_hi;
  uint32_t captures; /* stack captures on this thread (every 256th is checked) */
} __attribute__((aligned(64))) pl__heap_tls; /* one cache line, hot with countdown */

extern __thread pl__heap_tls pl__heap_tls_state __attribute__((tls_model("initial-exec")));

/* Enter/leave the tracker on this thread. While busy, allocations are
 * neither tracked nor counted: the countdown is put back as it was, so the
 * tracker's own allocations do not move the program's sampling points. */
PL__HEAP_INLINE void pl__heap_busy_enter(pl__heap_tls *t) {
  if (t->busy++ == 0) t->saved_countdown = t->countdown;
}
PL__HEAP_INLINE void pl__heap_busy_exit(pl__heap_tls *t) {
  if (--t->busy == 0) t->countdown = t->saved_countdown;
}

/* Read by free() under ASan (the interposer asks the range instead): the
 * current filter bitmap and its shift (64 − bits),
 * packed in one word (the bitmap is 64-byte aligned; shifts are 46..52) so
 * that a reader always gets a matching pair. 0 until tracking starts.
 * The first, smallest level (2^12 bits) lives right here, on the same page
 * as the word that points to it: on a workload that walks megabytes of heap
 * a separate page costs a TLB miss on every free (measured: ~6 ns a free
 * on this VM). The struct is aligned so that it never straddles a page. */
typedef struct pl__heap_fast_state {
  _Atomic uintptr_t filter;
  /* The interposer's sampled-block range (range.c): its base, 2^k-aligned,
   * or'ed with k. Until it is reserved, PL__HEAP_NO_RANGE, which no user
   * pointer matches. Written once, before tracking starts. */
  _Atomic uintptr_t range;
  _Alignas(64) _Atomic uint64_t level0[64];
} __attribute__((aligned(1024))) pl__heap_fast_state;
extern pl__heap_fast_state pl__heap_fast;
#define PL__HEAP_NO_RANGE ((UINT64_C(1) << 63) | 63)

/* 1: p is in the sampled-block range (interposer builds: exactly the
 * sampled blocks). A load of a word nobody writes, an xor, a shift. */
PL__HEAP_INLINE int pl__heap_in_range(const void *p) {
  uintptr_t w = atomic_load_explicit(&pl__heap_fast.range, memory_order_relaxed);
  return (((uintptr_t)p ^ w) >> (w & 63)) == 0;
}

/* The pointer hash; filter cells and set buckets take its top bits. Two
 * multiply rounds: a single one (Fibonacci hashing) maps blocks a constant
 * stride apart onto a handful of buckets for unlucky strides — seen under
 * ASan, whose chunks came 46,368 bytes apart (a Fibonacci number), which
 * filled 4 neighbouring buckets at 23% load. */
PL__HEAP_INLINE uint64_t pl__heap_hash(const void *p) {
  uint64_t x = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull;
  x ^= x >> 32;
  return x * 0xd6e8feb86659fd93ull;
}

/* 0: p was certainly not sampled. 1: it may have been (look it up). */
PL__HEAP_INLINE int pl__heap_maybe_sampled(const void *p) {
  uintptr_t w = atomic_load_explicit(&pl__heap_fast.filter, memory_order_acquire);
  if (!w) return 0;
  const _Atomic uint64_t *f = (const _Atomic uint64_t *)(w & ~(uintptr_t)63);
  uint64_t c = pl__heap_hash(p) >> (w & 63);
  return (int)((atomic_load_explicit(&f[c >> 6], memory_order_relaxed) >> (c & 63)) & 1);
}

/* Slow paths (track.c; pl__heap_take: ptrset.c; pl__heap_add_skip_range:
 * stack_capture.c). pl__heap_on_sample returns p so that the
 * allocation functions can tail-call it: their frames are then gone by the
 * time the stack is captured, and every frame the unwinder walks costs
 * ~100 ns here. */
void *pl__heap_on_sample(void *p, size_t n);
/* Remove p from the sampled set: its record index, or PL__HEAP_NONE. Lock-free. */
uint32_t pl__heap_take(const void *p);
/* The record of a freed block: queued lock-free, settled by the next
 * holder of the mutex. */
void pl__heap_release(uint32_t ri);
/* Put back a record taken for a realloc that failed. */
void pl__heap_restore(const void *p, uint32_t ri);
/* Code ranges (besides proflab_heap_text) whose frames the capture skips:
 * the sanitizer's allocator under ASan. */
void pl__heap_add_skip_range(uintptr_t lo, uintptr_t hi);

/* interpose.c: 0, or -ENOTSUP when sanitizer hooks cannot be installed. */
int pl__heap_observer_install(void);

/* The interposer's sampled path (not under ASan). The allocation functions
 * decide before allocating: n >= countdown sends them to
 * pl__heap_alloc_sampled, which decides whether this allocation is a
 * sample and, if so, serves it from the sampled-block range (range.c) and
 * records it; otherwise, or when the range cannot serve it, it allocates
 * from glibc. align: 0 (malloc's), or a power of two; kind: plain, zeroed
 * (calloc), or pvalloc (n rounded up to pages, n recorded).
 * Returns the block or NULL (errno set, by glibc). */
enum { PL__HEAP_KIND_PLAIN, PL__HEAP_KIND_ZERO, PL__HEAP_KIND_PVALLOC };
void *pl__heap_alloc_sampled(size_t n, size_t align, int kind);
/* The two halves of it, for realloc: 1 when an allocation of n bytes (that
 * reached the sampling point) is a sample (errno kept); then allocate it. */
int pl__heap_decide(size_t n);
void *pl__heap_alloc_decided(size_t n, size_t align, int kind);
/* glibc's allocation, as pl__heap_alloc_sampled falls back to (interpose.c). */
void *pl__heap_libc_alloc(size_t n, size_t align, int kind);
/* range.c. init: reserve the range (pl_heap_init); alloc: under the mutex,
 * NULL when it cannot serve (*reused: 1 when the block was used before, so
 * not known to be zero); free: lock-free; usable: malloc_usable_size. */
int pl__heap_range_init(void);
void *pl__heap_range_alloc_locked(size_t n, size_t align, int *reused);
void pl__heap_range_free(void *p);
size_t pl__heap_range_usable(const void *p);

/* Account an allocation of n bytes at p (after it was made); returns p.
 * Use as `return pl__heap_note_alloc(p, n);` so the slow path is a tail
 * call. (malloc itself decides before allocating: interpose.c.) */
PL__HEAP_INLINE void *pl__heap_note_alloc(void *p, size_t n) {
  pl__heap_tls *t = &pl__heap_tls_state;
  if (__builtin_expect(n < t->countdown, 1)) {
    t->countdown -= n;
    return p;
  }
  return pl__heap_on_sample(p, n);
}

/* The free fast path: nothing unless p may be sampled. */
PL__HEAP_INLINE void pl__heap_note_free(const void *p) {
  if (__builtin_expect(pl__heap_maybe_sampled(p), 0)) {
    uint32_t ri = pl__heap_take(p);
    if (ri != PL__HEAP_NONE) pl__heap_release(ri);
  }
}

#endif
