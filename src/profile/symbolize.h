/* Program counters to function, file and line, with elfutils libdwfl.
 * Runs after a profile stops, on any thread, never in a signal handler.
 * One symbolizer reads this process's modules as they are when it is made;
 * lookups are cached per module by libdwfl. */
#ifndef PL_PROFILE_SYMBOLIZE_H
#define PL_PROFILE_SYMBOLIZE_H

#include <stdint.h>

#include "common/arena.h"
#include "profile/cpu_model.h"

typedef struct pl_symbolizer pl_symbolizer;

/* 0 or -errno. */
int pl_symbolizer_new(pl_symbolizer **out);
void pl_symbolizer_free(pl_symbolizer *s);
/* Fill f for address pc; strings are allocated in arena. Unknown code gets
 * "module+0xoffset" (or "0x<pc>" outside any module), never an empty name.
 * Returns 0 or -ENOMEM. */
int pl_symbolize(pl_symbolizer *s, uintptr_t pc, pl_arena *arena, pl_frame *f);

#endif
