/* proflab — symbolization of a whole model object: every program counter
 * of a CPU profile or heap snapshot taken in this process resolved to
 * function, file and line (elfutils libdwfl over the process's own
 * modules). Slow the first time (tens of ms to read symbol tables and
 * DWARF): call it off the event loop. Any thread; one call at a time per
 * object. Nothing here is needed for a model read back from a file: its
 * frames carry their names already. */
#ifndef PROFLAB_SYMBOLIZE_H
#define PROFLAB_SYMBOLIZE_H

#include "proflab/cpu_profile.h"
#include "proflab/heap_snapshot.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fill function, file, line and module of every frame of p (frames hold
 * their address). Strings are owned by p. 0 or -errno. */
int pl_cpu_profile_symbolize(pl_cpu_profile *p);

/* Build s->frames from the distinct pcs of its stacks (each looked up at
 * pc − 1, the call instruction) and each stack's frame indices, with
 * function, module, file and lines (frames_state PL_HEAP_FRAMES_LINES).
 * 0 or -errno; on failure s is left without frames. */
int pl_heap_snapshot_symbolize(pl_heap_snapshot *s);
/* The same with function and module names only (file "", lines 0;
 * PL_HEAP_FRAMES_NAMES): all a .heapsnapshot shows, and no DWARF to read
 * (a few ms where the full symbolization first costs tens). A later
 * pl_heap_snapshot_symbolize() redoes it with lines. */
int pl_heap_snapshot_symbolize_names(pl_heap_snapshot *s);

#ifdef __cplusplus
}
#endif
#endif
