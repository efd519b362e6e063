/* The lab's deliberate harm: a memory leak and an event-loop jam, done in
 * functions whose names say what they do (PL__LAB_LEAK_FUNCTION,
 * PL__LAB_JAM_FUNCTION), so that they stand out in heap snapshots and CPU
 * profiles. Loop thread only. */
#ifndef PL_LAB_HARM_H
#define PL_LAB_HARM_H

#include <stdint.h>

#define PL__LEAK_CHUNK_BYTES (1u << 20)
/* The names the work is done under, as profiles and snapshots show them. */
#define PL__LAB_LEAK_FUNCTION "lab_memory_leak_allocate"
#define PL__LAB_JAM_FUNCTION "lab_event_loop_jam_spin"

typedef struct pl__leak_chunk pl__leak_chunk;

typedef struct pl__leak {
  pl__leak_chunk *head;
  uint64_t bytes;
  uint64_t chunks;
} pl__leak;

/* Allocate `mb` MiB in 1 MiB chunks, write every page (so RSS grows), and
 * keep them. All or nothing: on allocation failure what this call took is
 * freed again and -ENOMEM returned. */
int pl__lab_memory_leak(pl__leak *leak, uint64_t mb);
/* Free every chunk and give memory back to the OS (malloc_trim). Returns the
 * bytes freed. */
uint64_t pl__lab_memory_leak_clear(pl__leak *leak);

/* Keep the calling thread busy with real CPU work for `ms` milliseconds.
 * Returns the work done (iterations); *elapsed_ns gets the time spent. */
uint64_t pl__lab_event_loop_jam(uint64_t ms, uint64_t *elapsed_ns);

#endif
