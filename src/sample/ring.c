/* SIGNAL-SAFE producer side; see ring.h. */
#include "sample/ring.h"

#include <errno.h>
#include <sys/mman.h>

int pl__ring_init(pl__ring *r, size_t capacity) {
  size_t cap = 1;
  while (cap < capacity) cap <<= 1;
  size_t bytes = cap * sizeof(pl__raw_sample);
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return -errno;
  r->slots = p;
  r->bytes = bytes;
  r->mask = cap - 1;
  atomic_store(&r->head, 0);
  r->tail = 0;
  atomic_store(&r->dropped, 0);
  for (size_t i = 0; i < cap; i++) atomic_store_explicit(&r->slots[i].seq, i, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
  return 0;
}

void pl__ring_free(pl__ring *r) {
  if (r->slots) munmap(r->slots, r->bytes);
  r->slots = NULL;
}

pl__raw_sample *pl__ring_claim(pl__ring *r, uint64_t *pos) {
  uint64_t p = atomic_load_explicit(&r->head, memory_order_relaxed);
  for (;;) {
    pl__raw_sample *s = &r->slots[p & r->mask];
    uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
    int64_t diff = (int64_t)(seq - p);
    if (diff == 0) {
      if (atomic_compare_exchange_weak_explicit(&r->head, &p, p + 1, memory_order_relaxed,
                                                memory_order_relaxed)) {
        *pos = p;
        return s;
      }
    } else if (diff < 0) {
      atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
      return NULL;
    } else {
      p = atomic_load_explicit(&r->head, memory_order_relaxed);
    }
  }
}

void pl__ring_publish(pl__raw_sample *s, uint64_t pos) {
  atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
}

pl__raw_sample *pl__ring_peek(pl__ring *r) {
  pl__raw_sample *s = &r->slots[r->tail & r->mask];
  uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
  return seq == r->tail + 1 ? s : NULL;
}

void pl__ring_release(pl__ring *r, pl__raw_sample *s) {
  atomic_store_explicit(&s->seq, r->tail + r->mask + 1, memory_order_release);
  r->tail++;
}
