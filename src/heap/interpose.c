/* The malloc family, forwarded to glibc's exported __libc_* entry points
 * (no dlsym bootstrap: they exist from the first instruction), with the
 * tracker's fast paths around them. A program that links this object gets
 * these definitions ahead of libc.so's, and libc's internal allocations
 * (strdup, fopen, ...) come here too.
 *
 * Under AddressSanitizer the family belongs to ASan: nothing is defined,
 * and the same fast paths run from ASan's malloc/free hooks instead.
 *
 * Every function here is in proflab_heap_text, so stack capture skips it.
 */
#include "heap/heap_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if !PL__HEAP_ASAN

#include <malloc.h>

/* noplt: called through the GOT, one jump less than through the PLT. */
#define LIBC __attribute__((noplt))
extern void *__libc_malloc(size_t n) LIBC;
extern void __libc_free(void *p) LIBC;
extern void *__libc_calloc(size_t n, size_t size) LIBC;
extern void *__libc_realloc(void *p, size_t n) LIBC;
extern void *__libc_memalign(size_t align, size_t n) LIBC;
extern void *__libc_valloc(size_t n) LIBC;
extern void *__libc_pvalloc(size_t n) LIBC;

/* Sampled blocks live in a reserved range of their own (range.c), never in
 * glibc's heap: free(), realloc() and malloc_usable_size() tell them apart
 * by address alone, with no memory load beyond one constant word. So every
 * function here decides before allocating: the fast path (n < countdown) is
 * a countdown in TLS and a tail jump to glibc; the rest goes to
 * pl__heap_alloc_sampled (a tail call too: the allocation function's frame
 * is gone when the stack is captured). (A failed allocation on the fast
 * path still counts down: harmless, and only under ENOMEM.) */
#define FAST(n) __builtin_expect((n) < pl__heap_tls_state.countdown, 1)
#define COUNT(n) (pl__heap_tls_state.countdown -= (n))

void *pl__heap_libc_alloc(size_t n, size_t align, int kind) {
  if (kind == PL__HEAP_KIND_ZERO) return __libc_calloc(1, n);
  if (kind == PL__HEAP_KIND_PVALLOC) return __libc_pvalloc(n);
  return align ? __libc_memalign(align, n) : __libc_malloc(n);
}

PL__HEAP_TEXT void *malloc(size_t n) {
  if (FAST(n)) {
    COUNT(n);
    return __libc_malloc(n);
  }
  return pl__heap_alloc_sampled(n, 0, PL__HEAP_KIND_PLAIN);
}

/* A sampled block: its record, then the block itself, lock-free. */
PL__HEAP_TEXT __attribute__((noinline)) static void free_sampled(void *p) {
  uint32_t ri = pl__heap_take(p);
  if (ri != PL__HEAP_NONE) pl__heap_release(ri);
  pl__heap_range_free(p);
}

/* The fast path keeps no registers across a call: two tail jumps. (NULL is
 * never in the range.) */
PL__HEAP_TEXT void free(void *p) {
  if (__builtin_expect(pl__heap_in_range(p), 0)) return free_sampled(p);
  __libc_free(p);
}

PL__HEAP_TEXT void *calloc(size_t n, size_t size) {
  size_t bytes;
  if (__builtin_expect(__builtin_mul_overflow(n, size, &bytes), 0))
    return __libc_calloc(n, size); /* its ENOMEM */
  if (FAST(bytes)) {
    COUNT(bytes);
    return __libc_calloc(n, size);
  }
  return pl__heap_alloc_sampled(bytes, 0, PL__HEAP_KIND_ZERO);
}

/* glibc's own malloc_usable_size (below). */
static size_t libc_usable(void *p);

/* realloc of a sampled block: always a move (the new block is sampled or
 * not by the countdown, like any allocation); on failure p stays, tracked. */
PL__HEAP_TEXT __attribute__((noinline)) static void *realloc_sampled(void *p, size_t n) {
  size_t old = pl__heap_range_usable(p);
  void *q = malloc(n);
  if (!q) return NULL;
  memcpy(q, p, old < n ? old : n);
  free_sampled(p);
  return q;
}

/* realloc of a glibc block reaching the sampling point: if this one is a
 * sample, it moves into the range. */
PL__HEAP_TEXT __attribute__((noinline)) static void *realloc_crossing(void *p, size_t n) {
  if (!pl__heap_decide(n)) return __libc_realloc(p, n);
  size_t old = libc_usable(p);
  void *q = pl__heap_alloc_decided(n, 0, PL__HEAP_KIND_PLAIN);
  if (!q) return NULL;
  memcpy(q, p, old < n ? old : n);
  __libc_free(p);
  return q;
}

/* glibc semantics: realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and
 * returns NULL; on failure p is untouched (and stays tracked). */
PL__HEAP_TEXT void *realloc(void *p, size_t n) {
  if (!p) return malloc(n);
  if (n == 0) {
    free(p);
    return NULL;
  }
  if (__builtin_expect(pl__heap_in_range(p), 0)) return realloc_sampled(p, n);
  if (FAST(n)) {
    COUNT(n);
    return __libc_realloc(p, n);
  }
  return realloc_crossing(p, n);
}

PL__HEAP_TEXT void *reallocarray(void *p, size_t n, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc(p, bytes);
}

/* glibc's memalign: an alignment up to 16 is malloc's; others are rounded
 * up to a power of two (0: malloc's). */
static size_t norm_align(size_t align) {
  if (align <= 16) return 0;
  if (align & (align - 1)) align = (size_t)1 << (64 - __builtin_clzll((unsigned long long)align));
  return align;
}

PL__HEAP_TEXT void *memalign(size_t align, size_t n) {
  if (__builtin_expect(align > SIZE_MAX / 2 + 1, 0)) return __libc_memalign(align, n); /* EINVAL */
  if (FAST(n)) {
    COUNT(n);
    return __libc_memalign(align, n);
  }
  return pl__heap_alloc_sampled(n, norm_align(align), PL__HEAP_KIND_PLAIN);
}

/* glibc 2.36's aligned_alloc is an alias of memalign (no extra checks). */
PL__HEAP_TEXT void *aligned_alloc(size_t align, size_t n) { return memalign(align, n); }

PL__HEAP_TEXT int posix_memalign(void **out, size_t align, size_t n) {
  /* glibc's checks: a power of two multiple of sizeof(void *). */
  if (align % sizeof(void *) != 0 || align == 0 || (align & (align - 1)) != 0) return EINVAL;
  int saved_errno = errno;
  void *p = memalign(align, n);
  errno = saved_errno; /* posix_memalign reports through its result only */
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

PL__HEAP_TEXT void *valloc(size_t n) {
  if (FAST(n)) {
    COUNT(n);
    return __libc_valloc(n);
  }
  return pl__heap_alloc_sampled(n, (size_t)getpagesize(), PL__HEAP_KIND_PLAIN);
}

/* Page-aligned and page-rounded (0: one page); recorded at the size asked. */
PL__HEAP_TEXT void *pvalloc(size_t n) {
  if (FAST(n)) {
    COUNT(n);
    return __libc_pvalloc(n);
  }
  return pl__heap_alloc_sampled(n, (size_t)getpagesize(), PL__HEAP_KIND_PVALLOC);
}

/* glibc exports no __libc_malloc_usable_size: find its own with
 * dlsym(RTLD_NEXT) once (at start-up, or on first use; dlsym's own
 * allocations come back here through the busy guard). */
typedef size_t (*usable_fn)(void *);
static _Atomic(usable_fn) real_usable;

static usable_fn resolve_usable(void) {
  usable_fn f = atomic_load_explicit(&real_usable, memory_order_acquire);
  if (f) return f;
  pl__heap_busy_enter(&pl__heap_tls_state);
  f = (usable_fn)dlvsym(RTLD_NEXT, "malloc_usable_size", "GLIBC_2.2.5");
  if (!f) f = (usable_fn)dlsym(RTLD_NEXT, "malloc_usable_size");
  pl__heap_busy_exit(&pl__heap_tls_state);
  if (f) atomic_store_explicit(&real_usable, f, memory_order_release);
  return f;
}

__attribute__((constructor(101))) static void resolve_at_start(void) { resolve_usable(); }

static size_t libc_usable(void *p) {
  usable_fn f = resolve_usable();
  return f ? f(p) : 0;
}

PL__HEAP_TEXT size_t malloc_usable_size(void *p) {
  if (!p) return 0;
  if (pl__heap_in_range(p)) return pl__heap_range_usable(p);
  return libc_usable(p);
}

int pl__heap_observer_install(void) {
  resolve_usable();
  return 0;
}

#else /* PL__HEAP_ASAN */

/* From compiler-rt's <sanitizer/allocator_interface.h>, which GCC does not
 * install; libasan exports it. At most 5 hook pairs per process. */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));

/* ASan calls these on the allocating thread, after an allocation and
 * before a deallocation (realloc: both), outside its allocator locks. */
PL__HEAP_TEXT static void on_asan_malloc(const volatile void *p, size_t n) {
  if (p) (void)pl__heap_note_alloc((void *)(uintptr_t)p, n);
}

PL__HEAP_TEXT static void on_asan_free(const volatile void *p) {
  if (p) pl__heap_note_free((const void *)(uintptr_t)p);
}

typedef struct find_module {
  uintptr_t addr, lo, hi;
} find_module;

static int find_exec_range(struct dl_phdr_info *info, size_t size, void *arg) {
  find_module *fm = arg;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (fm->addr >= lo && fm->addr < hi) {
      fm->lo = lo;
      fm->hi = hi;
      return 1;
    }
  }
  return 0;
}

int pl__heap_observer_install(void) {
  /* Frames of ASan's allocator and interceptors sit between our hook and
   * the program: skip the code of the module that defines malloc. */
  find_module fm = {.addr = (uintptr_t)dlsym(RTLD_DEFAULT, "malloc")};
  if (fm.addr && dl_iterate_phdr(find_exec_range, &fm) && fm.lo)
    pl__heap_add_skip_range(fm.lo, fm.hi);
  if (!__sanitizer_install_malloc_and_free_hooks(on_asan_malloc, on_asan_free)) return -ENOTSUP;
  return 0;
}

#endif
