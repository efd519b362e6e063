/* The sampled-block range (interposer builds only; see heap_internal.h).
 *
 * Why. free() must tell a sampled block from the others on every call.
 * With the blocks in glibc's heap that took a hash of the pointer and a load
 * from a bitmap over hashes, and that load missed the L1 cache on most
 * frees of a program that walks megabytes of heap (measured: ~3 % of the
 * malloc benchmark's time). So sampled blocks are not glibc's: they are
 * carved out of one address range reserved at pl_heap_init(), 2^k bytes
 * aligned to 2^k, and "is p sampled?" is `(p ^ word) >> (word & 63) == 0`
 * over one word that never changes after start-up.
 *
 * The allocator. A block of class c is class_size(c) bytes at a 16-byte
 * boundary: four classes per power of two (at most 25 % rounding), 16 to
 * 2^(k−1) bytes. The program's pointer q follows a 16-byte header that
 * holds the block's class and q's offset in it (memalign: q is aligned
 * inside a block large enough for the alignment). Blocks come from free
 * lists per class, else from a bump pointer; the range is reserved
 * PROT_NONE and made writable in steps of RANGE_STEP as the bump pointer
 * advances, so the commit charge follows what was used. Allocation happens
 * under the tracker's mutex (the sampled path holds it anyway). free() is
 * lock-free (a signal handler may free a sampled block while its thread
 * holds the mutex): the block is pushed on its class's pending stack,
 * which an allocation of that class takes whole when the class's free list
 * is empty (the consumer takes the whole list: no ABA, and no walk over
 * cold blocks). Freed blocks of LARGE_CLASS bytes or more keep their pages
 * while such kept blocks total at most KEPT_MAX (a program that cycles
 * large buffers would otherwise fault every page in again), and give them
 * back (MADV_DONTNEED, before the push) beyond that. KEPT_MAX is small on
 * purpose: freeing memory must show in the RSS (glibc returns large blocks
 * at once too, and the lab's memory-clear lesson depends on it).
 *
 * Bounds. Memory in the range is the program's own (the sampled blocks),
 * plus per block its header and class rounding. Address space is reused
 * per class and never returned; when the bump pointer reaches the end of
 * the range, a sampled allocation that finds no free block of its class is
 * served by glibc instead and counted as dropped (as when max_samples is
 * reached).
 */
#include "heap/heap_internal.h"

#if !PL__HEAP_ASAN

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "heap/track_internal.h"

#define RANGE_MAX_BITS 40 /* 1 TiB of address space, tried first */
#define RANGE_MIN_BITS 32
#define RANGE_STEP ((size_t)32 << 20) /* made writable 32 MiB at a time */
#define NCLASS (4 + (RANGE_MAX_BITS - 6) * 4)
#define LARGE_CLASS ((size_t)256 << 10)
#define KEPT_MAX ((size_t)8 << 20) /* freed large blocks keep their pages up to this */
#define HDR_MAGIC 0x706c6862u      /* "plhb" */

typedef struct range_hdr {
  uint32_t magic;
  uint32_t cls;
  uint64_t off; /* q − block */
} range_hdr;
_Static_assert(sizeof(range_hdr) == 16, "header is 16 bytes");

/* A freed block, written over its first bytes. */
typedef struct range_node {
  struct range_node *next;
  size_t kept; /* a large block whose pages were kept: its size, counted in R.kept */
} range_node;

static struct {
  char *base;
  size_t size, bump, writable;
  range_node *free_list[NCLASS];
  _Atomic(range_node *) pending[NCLASS];
  _Atomic size_t kept; /* bytes of freed large blocks whose pages are kept */
  size_t page;
} R;

/* Class of a block of m bytes (m >= 17): 16, 32, 48, 64, then four per
 * power of two. */
static unsigned class_of(size_t m) {
  if (m <= 64) return (unsigned)((m + 15) / 16) - 1;
  unsigned e =
      63u - (unsigned)__builtin_clzll((unsigned long long)(m - 1)); /* 2^e < m <= 2^(e+1) */
  unsigned q = (unsigned)((m - 1) >> (e - 2));                      /* 4..7 */
  return 4 + (e - 6) * 4 + (q - 4);
}

static size_t class_size(unsigned c) {
  if (c < 4) return (size_t)(c + 1) * 16;
  unsigned e = (c - 4) / 4 + 6, q = (c - 4) % 4 + 4;
  return (size_t)(q + 1) << (e - 2);
}

int pl__heap_range_init(void) {
  long page = sysconf(_SC_PAGESIZE);
  R.page = page > 0 ? (size_t)page : 4096;
  for (unsigned bits = RANGE_MAX_BITS; bits >= RANGE_MIN_BITS; bits -= 2) {
    size_t size = (size_t)1 << bits;
    /* Twice the size, then trim to a 2^bits-aligned 2^bits. */
    char *m = mmap(NULL, 2 * size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) continue;
    uintptr_t lo = ((uintptr_t)m + size - 1) & ~(uintptr_t)(size - 1);
    size_t head = lo - (uintptr_t)m, tail = 2 * size - head - size;
    if ((head && munmap(m, head) != 0) || (tail && munmap((char *)lo + size, tail) != 0)) {
      munmap(m, 2 * size); /* what is left of it */
      return -ENOMEM;
    }
    R.base = (char *)lo;
    R.size = size;
    R.bump = R.writable = 0;
    atomic_store_explicit(&pl__heap_fast.range, lo | bits, memory_order_release);
    return 0;
  }
  return -ENOMEM;
}

void *pl__heap_range_alloc_locked(size_t n, size_t align, int *reused) {
  if (!R.base) return NULL;
  if (align < 16) align = 16;
  if (align & (align - 1)) return NULL; /* callers round it to a power of two */
  if (n > R.size / 2 || align > R.size / 4) return NULL;
  size_t m = n + align; /* header and alignment: q <= block + align */
  if (m < 32) m = 32;
  unsigned c = class_of(m);
  size_t cs = class_size(c);
  if (c >= NCLASS || cs > R.size / 2) return NULL;
  char *b;
  if (!R.free_list[c]) /* the blocks freed since: the whole list, no walk */
    R.free_list[c] = atomic_exchange_explicit(&R.pending[c], NULL, memory_order_acquire);
  if (R.free_list[c]) {
    range_node *nd = R.free_list[c];
    R.free_list[c] = nd->next;
    if (nd->kept) atomic_fetch_sub_explicit(&R.kept, nd->kept, memory_order_relaxed);
    b = (char *)nd;
    *reused = 1;
  } else {
    if (cs > R.size - R.bump) return NULL;
    size_t end = R.bump + cs;
    if (end > R.writable) {
      size_t w = (end + RANGE_STEP - 1) & ~(RANGE_STEP - 1);
      if (w > R.size) w = R.size;
      if (mprotect(R.base + R.writable, w - R.writable, PROT_READ | PROT_WRITE) != 0) return NULL;
      R.writable = w;
    }
    b = R.base + R.bump;
    R.bump = end;
    *reused = 0;
  }
  uintptr_t q = ((uintptr_t)b + 16 + align - 1) & ~(uintptr_t)(align - 1);
  range_hdr *h = (range_hdr *)(q - 16);
  h->magic = HDR_MAGIC;
  h->cls = c;
  h->off = q - (uintptr_t)b;
  return (void *)q;
}

/* Lock-free (see the top). */
void pl__heap_range_free(void *p) {
  range_hdr *h = (range_hdr *)((uintptr_t)p - 16);
  unsigned c = h->cls;
  char *b = (char *)p - h->off;
  size_t cs = class_size(c);
  size_t kept = 0;
  if (cs >= LARGE_CLASS) {
    if (atomic_fetch_add_explicit(&R.kept, cs, memory_order_relaxed) + cs <= KEPT_MAX) {
      kept = cs; /* likely reused soon: spare it faulting every page in again */
    } else {
      atomic_fetch_sub_explicit(&R.kept, cs, memory_order_relaxed);
      uintptr_t lo = ((uintptr_t)b + sizeof(range_node) + R.page - 1) & ~(uintptr_t)(R.page - 1);
      uintptr_t hi = ((uintptr_t)b + cs) & ~(uintptr_t)(R.page - 1);
      if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED); /* a hint: may fail */
    }
  }
  range_node *nd = (range_node *)b;
  nd->kept = kept;
  range_node *old = atomic_load_explicit(&R.pending[c], memory_order_relaxed);
  do nd->next = old;
  while (!atomic_compare_exchange_weak_explicit(&R.pending[c], &old, nd, memory_order_release,
                                                memory_order_relaxed));
}

size_t pl__heap_range_usable(const void *p) {
  const range_hdr *h = (const range_hdr *)((uintptr_t)p - 16);
  return class_size(h->cls) - h->off;
}

#endif
