/* Program counters to function, file and line, with elfutils libdwfl.
 * Runs after a profile stops, on any thread, never in a signal handler.
 *
 * There is one symbolizer per process, kept between uses: reading the
 * modules' symbol tables and DWARF costs tens of ms the first time, and
 * libdwfl caches per module what it has read, so later profiles and heap
 * snapshots symbolize in a fraction of that. It is rebuilt when the
 * loader's counters (dl_phdr_info.dlpi_adds/dlpi_subs) show a library was
 * loaded or unloaded since its last use, and freed by pl_symbolizer_drop_idle()
 * after a while unused. pl_symbolizer_new() hands it out under a
 * mutex, held until pl_symbolizer_free(): one user at a time, and a
 * thread must not ask for it twice. */
#ifndef PL_SYMBOL_SYMBOLIZER_H
#define PL_SYMBOL_SYMBOLIZER_H

#include <stdint.h>

#include "common/arena.h"
#include "proflab/frame.h"

typedef struct pl_symbolizer pl_symbolizer;

/* Take the process's symbolizer (waiting for another user). 0 or -errno. */
int pl_symbolizer_new(pl_symbolizer **out);
/* Free the process's symbolizer if nobody has used it for idle_ns (its
 * module data is tens of MB). Never waits: returns 0 if it is in use or
 * was used more recently, 1 if it was dropped (the next user rebuilds it). */
int pl_symbolizer_drop_idle(uint64_t idle_ns);
/* Give it back (it stays built for the next user). */
void pl_symbolizer_free(pl_symbolizer *s);
/* Fill f for address pc; strings are allocated in arena. Unknown code gets
 * "module+0xoffset" (or "0x<pc>" outside any module), never an empty name.
 * Returns 0 or -ENOMEM. */
int pl_symbolize(pl_symbolizer *s, uintptr_t pc, pl_arena *arena, pl_frame *f);
/* PL_SYMBOLIZE_NAMES: function and module only (file "", lines 0): symbol
 * tables, no DWARF. A module's DWARF is read (and, for Debian's -dbg
 * files, decompressed) the first time a line is looked up in it: libc's
 * costs ~40 ms here. */
enum { PL_SYMBOLIZE_NAMES = 1u << 0 };
int pl_symbolize_flags(pl_symbolizer *s, uintptr_t pc, pl_arena *arena, pl_frame *f,
                       unsigned flags);

#endif
