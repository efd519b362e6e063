/* The lab's deliberate harm: a memory leak and an event-loop jam, in
 * functions whose names say what they do, so that they stand out in heap
 * snapshots and CPU profiles. Loop thread only. */
#ifndef PL_LAB_HARM_H
#define PL_LAB_HARM_H

#include <stdint.h>

#define PL_LEAK_CHUNK_BYTES (1u << 20)

typedef struct pl_leak_chunk pl_leak_chunk;

typedef struct pl_leak {
  pl_leak_chunk *head;
  uint64_t bytes;
  uint64_t chunks;
} pl_leak;

/* Allocate `mb` MiB in 1 MiB chunks, write every page (so RSS grows), and
 * keep them. All or nothing: on allocation failure what this call took is
 * freed again and -ENOMEM returned. */
int lab_memory_leak_allocate(pl_leak *leak, uint64_t mb);
/* Free every chunk and give memory back to the OS (malloc_trim). Returns the
 * bytes freed. */
uint64_t lab_memory_leak_clear(pl_leak *leak);

/* Keep the calling thread busy with real CPU work for `ms` milliseconds.
 * Returns the work done (iterations); *elapsed_ns gets the time spent. */
uint64_t lab_event_loop_jam_spin(uint64_t ms, uint64_t *elapsed_ns);

#endif
