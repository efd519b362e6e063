/* What a model object (a CPU profile, a heap snapshot) owns: an arena for
 * its strings and small arrays, and adopted blocks freed with it, each by
 * its own release function. Not thread-safe: one owner per object. */
#ifndef PL_MODEL_OWNED_H
#define PL_MODEL_OWNED_H

#include <stddef.h>

#include "common/arena.h"

typedef struct pl__owned pl__owned;

/* A new, empty owner, or NULL when out of memory. */
pl__owned *pl__owned_new(void);
/* The arena its strings and arrays come from (freed with the owner). */
pl__arena *pl__owned_arena(pl__owned *o);
/* Take p (n bytes) over: release(p, n) runs when the owner is freed, or
 * now if that cannot be recorded (then -ENOMEM). release NULL: free(p).
 * p NULL: nothing to take, 0. */
int pl__owned_adopt(pl__owned *o, void *p, size_t n, void (*release)(void *p, size_t n));
/* Release adopted blocks (newest first) and the arena. NULL is fine. */
void pl__owned_free(pl__owned *o);

#endif
