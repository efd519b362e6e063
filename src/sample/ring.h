/* SIGNAL-SAFE. A bounded multi-producer, single-consumer ring of raw stack
 * samples (Vyukov's sequence-numbered slots).
 *
 * Producers are signal handlers on any thread: pl__ring_claim() and
 * pl__ring_publish() use only atomics, never block, never allocate; a full
 * ring drops the sample and counts it. The one consumer (the collector
 * thread) reads published slots in order. Memory is mapped once by
 * pl__ring_init(), before any timer is armed.
 */
#ifndef PL_SAMPLE_RING_H
#define PL_SAMPLE_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define PL__MAX_FRAMES 128

enum {
  PL__RAW_IDLE = 1u << 0,      /* the loop thread was waiting in poll */
  PL__RAW_TRUNCATED = 1u << 1, /* the unwinder never reached the signal frame */
  PL__RAW_BLOCKED = 1u << 2,   /* the thread waited in a system call */
};

typedef struct pl__raw_sample {
  _Atomic uint64_t seq;
  uint64_t time_ns; /* CLOCK_MONOTONIC */
  uint32_t tid;
  uint32_t weight; /* 1 + timer overruns */
  uint32_t depth;
  uint32_t flags;
  /* pcs[0] is the interrupted instruction; the others are return addresses */
  uintptr_t pcs[PL__MAX_FRAMES];
} pl__raw_sample;

typedef struct pl__ring {
  pl__raw_sample *slots;
  size_t bytes;
  uint64_t mask;
  _Atomic uint64_t head; /* next position to claim */
  uint64_t tail;         /* next position to read (consumer only) */
  _Atomic uint64_t dropped;
} pl__ring;

/* Map a ring of `capacity` slots (rounded up to a power of two). 0 or -errno. */
int pl__ring_init(pl__ring *r, size_t capacity);
void pl__ring_free(pl__ring *r);
/* Producer: a slot to fill, or NULL when full (counted in dropped). */
pl__raw_sample *pl__ring_claim(pl__ring *r, uint64_t *pos);
/* Producer: make the filled slot visible to the consumer. */
void pl__ring_publish(pl__raw_sample *s, uint64_t pos);
/* Consumer: the next published slot, or NULL. */
pl__raw_sample *pl__ring_peek(pl__ring *r);
/* Consumer: hand the slot back to producers. */
void pl__ring_release(pl__ring *r, pl__raw_sample *s);

#endif
