/* proflab — the heap tracker: sampled malloc interposition.
 *
 * What it does. Linking this library into a program replaces the malloc
 * family (malloc, free, calloc, realloc, reallocarray, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size) with thin
 * wrappers over glibc's own (__libc_malloc and friends). Until
 * pl_heap_init() they only forward. After it, each thread counts down the
 * bytes it allocates from an exponentially distributed starting value of
 * mean T (the sampling interval); the allocation that crosses zero is
 * sampled: its stack (libgcc's _Unwind_Backtrace, the tracker's own frames
 * skipped), requested size, time and a stable odd id are recorded, and it
 * stands for 1/(1 − e^(−size/T)) allocations of its size (size × that in
 * bytes) — an unbiased estimate (Go's runtime/pprof does the same). T = 1
 * records every allocation with weight exactly 1.
 *
 * Under AddressSanitizer (the build defines __SANITIZE_ADDRESS__) malloc
 * belongs to ASan: nothing is interposed, and pl_heap_init() observes
 * allocations through __sanitizer_install_malloc_and_free_hooks instead,
 * sampled the same way.
 *
 * Concurrency rules:
 * - pl_heap_init() once per process, from any thread, before or after other
 *   threads exist. Threads already running when it is called start sampling
 *   within their next 64 KiB of allocation; threads created later and the
 *   calling thread start at once.
 * - malloc/free and friends: any thread, before main, in constructors, in
 *   the child of fork, and re-entrantly (a signal handler that allocates
 *   while the thread is inside the tracker is served untracked). Sampled
 *   blocks do not come from glibc: they are served from one address range
 *   reserved by pl_heap_init() (2^k bytes, 2^k-aligned; range.c), so the
 *   free() (realloc, malloc_usable_size) of a block that was not sampled
 *   takes no lock and loads nothing but one word written once at start-up:
 *   an xor, a shift and a compare against the range. (Under ASan, where
 *   blocks are ASan's: a hash and one atomic load of a bitmap word; see
 *   ptrset.c.) The free() of a sampled block takes no lock either
 *   (compare-and-swaps and lock-free pushes); its accounting is settled by
 *   the next holder of the mutex, and its memory is reused by the next
 *   sampled allocation of its size class.
 * - A sampled allocation takes one internal mutex for a short, bounded time
 *   (its stack is walked by frame pointers before; the cached callers are
 *   looked up under it); the mutex is never held while calling glibc's
 *   allocator, libgcc's unwinder or any user code, and pthread_atfork
 *   handlers take it around fork() so the child never inherits it held by
 *   a thread that does not exist there.
 * - pl_heap_snapshot_take(), pl_heap_snapshot_prepare(), pl_heap_stack_pcs(), pl_heap_get_stats(),
 *   pl_heap_untracked_begin() and _end(): any thread, concurrently
 *   with allocations in every other thread. A snapshot copies the tracker's
 *   state in chunks (the mutex is held for at most a few thousand records
 *   at a time), so it is consistent per allocation, not globally: an
 *   allocation made or freed while the snapshot is being copied may or may
 *   not be in it.
 * - Nothing here may be called from a signal handler except the malloc
 *   family itself (which is no more signal-safe than glibc's).
 *
 * Memory. Sampled blocks (the program's memory) live in the range: each
 * has a 16-byte header and is rounded up to one of four size classes per
 * power of two (at most 25 %); freed blocks of 256 KiB or more give their
 * pages back. The range is reserved PROT_NONE (1 TiB of address space, or
 * less if that cannot be had; none under ASan) and made writable as it is
 * used; a sampled allocation it cannot serve comes from glibc and counts as
 * a dropped sample. The tracker's own tables live in one mapping made by
 * pl_heap_init() at their maximum size (MAP_NORESERVE: pages become
 * resident as the tables fill; the pointer set and the filter start small
 * and double as live samples grow): at most max_samples live sampled
 * allocations and max_stacks distinct stacks. A sample that does not fit
 * is dropped and counted (pl_heap_stats.dropped_samples; the alloc_*
 * estimates still include it, the inuse_* ones cannot); a stack that does
 * not fit is recorded as the empty "unknown" stack (index 0,
 * PL_HEAP_STACK_UNKNOWN) and counted.
 *
 * Linking. Static, into an executable, whole archive (proflab_heap_dep
 * does link_whole): the malloc family must be in the program even when
 * nothing references the archive member, and the per-thread state uses
 * initial-exec TLS, which a dlopen()ed shared object cannot have.
 */
#ifndef PROFLAB_HEAP_H
#define PROFLAB_HEAP_H

#include <stddef.h>
#include <stdint.h>

#include "proflab/heap_snapshot.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PL_HEAP_DEFAULT_SAMPLE_BYTES 524288u

typedef struct pl_heap_options {
  /* Mean sampling interval T in bytes; 1 records every allocation.
   * 0: LAB_HEAP_SAMPLE_BYTES from the environment, else 524288. */
  uint64_t sample_bytes;
  /* Live sampled allocations kept at most. 0: LAB_HEAP_MAX_SAMPLES, else
   * 65536 when T >= 65536 (32 GiB of live heap at 512 KiB) and 2^21 below. */
  uint32_t max_samples;
  /* Distinct stacks kept at most. 0: LAB_HEAP_MAX_STACKS, else 65536. */
  uint32_t max_stacks;
} pl_heap_options;

/* Start tracking (opts may be NULL: all defaults). Once per process.
 * Returns 0, -EALREADY (already started), -EINVAL (a bad option or
 * environment value), -ENOMEM (tables could not be mapped), -ENOTSUP (the
 * sanitizer refused the hooks). On failure nothing is tracked and the
 * interposer keeps forwarding. */
int pl_heap_init(const pl_heap_options *opts);
/* 1 once pl_heap_init() succeeded. */
int pl_heap_running(void);
/* 1 when allocations are observed through sanitizer hooks, not interposed. */
int pl_heap_uses_sanitizer_hooks(void);

/* Fill st (zeros when not running). Takes the mutex briefly. */
void pl_heap_get_stats(pl_heap_stats *st);

/* Copy the live sampled allocations and all stacks into a new snapshot
 * (heap_snapshot.h; the caller frees it with pl_heap_snapshot_free). 0,
 * -ENOENT (not running) or -ENOMEM. The snapshot's own allocations are not
 * tracked. */
int pl_heap_snapshot_take(pl_heap_snapshot **out);

/* Make ready the memory the next pl_heap_snapshot_take copies the samples
 * into (a mapping populated for the live samples now, kept until that
 * snapshot), so a first snapshot does not wait for fresh pages: for a tool
 * that knows a snapshot is coming. Any thread. 0, -ENOENT (not running) or
 * -ENOMEM. A snapshot's samples memory, when freed, is kept the same way
 * for the next one. */
int pl_heap_snapshot_prepare(void);
/* Unmap the kept samples memory if it has been kept idle_ns or longer.
 * Any thread. 1 when it was unmapped, else 0. */
int pl_heap_snapshot_release_idle(uint64_t idle_ns);

/* Copy the program counters of every stack recorded so far (return
 * addresses, stack after stack, so the same pc recurs) into pcs[0..cap)
 * and return how many there are: more than cap means they did not all fit
 * (call again with that much room). 0 when not running. For a tool that
 * symbolizes them while a snapshot is taken; a snapshot taken afterwards
 * holds no stack beyond them but those recorded in between. Takes the
 * mutex briefly, a few thousand at a time. */
size_t pl_heap_stack_pcs(uintptr_t *pcs, size_t cap);

/* Between begin and end, the calling thread's allocations are not sampled
 * (the symbolizer's, when a snapshot is symbolized: they are the tool's,
 * not the program's). Nests. Without the tracker running: nothing. */
void pl_heap_untracked_begin(void);
void pl_heap_untracked_end(void);

#ifdef __cplusplus
}
#endif
#endif
