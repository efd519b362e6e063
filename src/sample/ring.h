/* SIGNAL-SAFE. A bounded multi-producer, single-consumer ring of raw stack
 * samples (Vyukov's sequence-numbered slots).
 *
 * Producers are signal handlers on any thread: pl_ring_claim() and
 * pl_ring_publish() use only atomics, never block, never allocate; a full
 * ring drops the sample and counts it. The one consumer (the collector
 * thread) reads published slots in order. Memory is mapped once by
 * pl_ring_init(), before any timer is armed.
 */
#ifndef PL_SAMPLE_RING_H
#define PL_SAMPLE_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define PL_MAX_FRAMES 128

enum {
  PL_RAW_IDLE = 1u << 0,      /* the loop thread was waiting in poll */
  PL_RAW_TRUNCATED = 1u << 1, /* the unwinder never reached the signal frame */
};

typedef struct pl_raw_sample {
  _Atomic uint64_t seq;
  uint64_t time_ns;  /* CLOCK_MONOTONIC */
  uint32_t tid;
  uint32_t weight;   /* 1 + timer overruns */
  uint32_t depth;
  uint32_t flags;
  /* pcs[0] is the interrupted instruction; the others are return addresses */
  uintptr_t pcs[PL_MAX_FRAMES];
} pl_raw_sample;

typedef struct pl_ring {
  pl_raw_sample *slots;
  size_t bytes;
  uint64_t mask;
  _Atomic uint64_t head; /* next position to claim */
  uint64_t tail;         /* next position to read (consumer only) */
  _Atomic uint64_t dropped;
} pl_ring;

/* Map a ring of `capacity` slots (rounded up to a power of two). 0 or -errno. */
int pl_ring_init(pl_ring *r, size_t capacity);
void pl_ring_free(pl_ring *r);
/* Producer: a slot to fill, or NULL when full (counted in dropped). */
pl_raw_sample *pl_ring_claim(pl_ring *r, uint64_t *pos);
/* Producer: make the filled slot visible to the consumer. */
void pl_ring_publish(pl_raw_sample *s, uint64_t pos);
/* Consumer: the next published slot, or NULL. */
pl_raw_sample *pl_ring_peek(pl_ring *r);
/* Consumer: hand the slot back to producers. */
void pl_ring_release(pl_ring *r, pl_raw_sample *s);

#endif
