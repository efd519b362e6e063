/* Deliberate harm for the lab (see harm.h). The work is done in static
 * functions kept whole (noipa: never inlined, cloned or renamed), so each
 * keeps its own frame and its exact name in profiles. */
#include "lab/harm.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct pl__leak_chunk {
  pl__leak_chunk *next;
};

static __attribute__((noipa)) int lab_memory_leak_allocate(pl__leak *leak, uint64_t mb) {
  pl__leak_chunk *taken = NULL;
  for (uint64_t i = 0; i < mb; i++) {
    pl__leak_chunk *c = malloc(PL__LEAK_CHUNK_BYTES);
    if (!c) {
      while (taken) {
        pl__leak_chunk *n = taken->next;
        free(taken);
        taken = n;
      }
      return -ENOMEM;
    }
    /* Touch every page with non-zero bytes so the memory is really resident. */
    memset(c, 0xA5, PL__LEAK_CHUNK_BYTES);
    c->next = taken;
    taken = c;
  }
  while (taken) {
    pl__leak_chunk *n = taken->next;
    taken->next = leak->head;
    leak->head = taken;
    leak->bytes += PL__LEAK_CHUNK_BYTES;
    leak->chunks++;
    taken = n;
  }
  return 0;
}

uint64_t pl__lab_memory_leak_clear(pl__leak *leak) {
  uint64_t freed = leak->bytes;
  while (leak->head) {
    pl__leak_chunk *n = leak->head->next;
    free(leak->head);
    leak->head = n;
  }
  leak->bytes = 0;
  leak->chunks = 0;
  malloc_trim(0);
  return freed;
}

static volatile uint64_t jam_sink;

static __attribute__((noipa)) uint64_t lab_event_loop_jam_spin(uint64_t ms, uint64_t *elapsed_ns) {
  uint64_t start = pl__now_ns();
  uint64_t deadline = start + ms * 1000000u;
  uint64_t x = start | 1, acc = 0, iters = 0, now;
  do {
    /* xorshift and a modulus: real ALU work the compiler cannot remove */
    for (int i = 0; i < 2048; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      acc += x % 1000003u;
    }
    iters += 2048;
    now = pl__now_ns();
  } while (now < deadline);
  jam_sink = acc;
  *elapsed_ns = now - start;
  return iters;
}

int pl__lab_memory_leak(pl__leak *leak, uint64_t mb) { return lab_memory_leak_allocate(leak, mb); }

uint64_t pl__lab_event_loop_jam(uint64_t ms, uint64_t *elapsed_ns) {
  return lab_event_loop_jam_spin(ms, elapsed_ns);
}
