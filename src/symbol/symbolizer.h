/* Program counters to function, file and line, with elfutils libdwfl.
 * Runs after a profile stops, on any thread, never in a signal handler.
 *
 * There is one symbolizer per process, kept between uses: reading the
 * modules' symbol tables and DWARF costs tens of ms the first time, and
 * libdwfl caches per module what it has read, so later profiles and heap
 * snapshots symbolize in a fraction of that. Names come from its own
 * index of each module's symbols sorted by address (libdwfl's lookup
 * scans the whole table: tens of us an address in libc), named as libdwfl
 * would name them. It also keeps every answer by address, so a snapshot
 * that asks again for the pcs of every stack recorded since start costs a
 * table lookup and a string copy each. It is rebuilt, its answers forgotten, when the
 * loader's counters (dl_phdr_info.dlpi_adds/dlpi_subs) show a library was
 * loaded or unloaded since its last use, and freed by pl__symbolizer_drop_idle()
 * after a while unused. pl__symbolizer_new() hands it out under a
 * mutex, held until pl__symbolizer_free(): one user at a time, and a
 * thread must not ask for it twice. */
#ifndef PL_SYMBOL_SYMBOLIZER_H
#define PL_SYMBOL_SYMBOLIZER_H

#include <stdint.h>

#include "common/arena.h"
#include "proflab/frame.h"

typedef struct pl__symbolizer pl__symbolizer;

/* Take the process's symbolizer (waiting for another user). 0 or -errno. */
int pl__symbolizer_new(pl__symbolizer **out);
/* Free the process's symbolizer if nobody has used it for idle_ns (its
 * module data is tens of MB). Never waits: returns 0 if it is in use or
 * was used more recently, 1 if it was dropped (the next user rebuilds it). */
int pl__symbolizer_drop_idle(uint64_t idle_ns);
/* In a child after fork() (not in the atfork handler: it frees): the
 * session was the parent's (built for its pid), and a thread of the
 * parent symbolizing at the fork left the lock held with the session
 * half-changed: drop it, or forget it when the lock is held, so the
 * child's next user builds its own. */
void pl__symbolizer_forget_after_fork(void);
/* Give it back (it stays built for the next user). */
void pl__symbolizer_free(pl__symbolizer *s);
/* Fill f for address pc; strings are allocated in arena. Unknown code gets
 * "module+0xoffset" (or "0x<pc>" outside any module), never an empty name.
 * Returns 0 or -ENOMEM. */
int pl__symbolize(pl__symbolizer *s, uintptr_t pc, pl__arena *arena, pl_frame *f);
/* PL__SYMBOLIZE_NAMES: function and module only (file "", lines 0): symbol
 * tables, no DWARF. A module's DWARF is read (and, for Debian's -dbg
 * files, decompressed) the first time a line is looked up in it: libc's
 * costs ~40 ms here. */
enum { PL__SYMBOLIZE_NAMES = 1u << 0 };
int pl__symbolize_flags(pl__symbolizer *s, uintptr_t pc, pl__arena *arena, pl_frame *f,
                        unsigned flags);

/* Where a return address found in a stack is looked up: the call
 * instruction's last byte (an inlined or noreturn call may be the last
 * instruction of a function, its return address the next one's first). */
static inline uintptr_t pl__call_site(uintptr_t return_addr) { return return_addr - 1; }

/* Look up, with flags, the call sites of n return addresses that a model's
 * symbolization will ask for soon, to have the answers kept (the first
 * lookups in a module read its symbol table, and for lines its DWARF:
 * milliseconds): a thread does it while another takes a heap snapshot.
 * Takes the symbolizer (waits for it) and gives it back. 0 or -errno. */
int pl__symbolizer_warm(const uintptr_t *return_addrs, size_t n, unsigned flags);

#endif
