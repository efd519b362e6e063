/* Helpers shared by the CPU profile writers (internal to src/format/). */
#ifndef PL_FORMAT_CPU_COMMON_H
#define PL_FORMAT_CPU_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "proflab/cpu_profile.h"
#include "proflab/buf.h"

/* 0 when every sample's stack, every stack's frames and every weight obey
 * proflab/cpu_profile.h, else -EINVAL. Writers call it first, so later code may
 * index without checks. */
int pl__cpu_profile_check(const pl_cpu_profile *p);

/* The stack a sample is written with: its index, or PL_STACK_IDLE /
 * PL_STACK_PROGRAM (also for a real stack of depth 0). */
static inline uint32_t pl__sample_stack(const pl_cpu_profile *p, const pl_cpu_sample *s) {
  if (s->stack == PL_STACK_IDLE || s->stack == PL_STACK_PROGRAM) return s->stack;
  return p->stacks[s->stack].depth ? s->stack : PL_STACK_PROGRAM;
}

/* Make room for `need` elements in a growable array (arr, cap): 0 or
 * -ENOMEM (arr unchanged). GNU statement expression, typed by arr. */
#define PL__RESERVE(arr, cap, need)                                   \
  __extension__({                                                     \
    int rc_ = 0;                                                      \
    size_t need_ = (need);                                            \
    if (need_ > (cap)) {                                              \
      size_t nc_ = (cap) ? (cap) : 64;                                \
      while (nc_ < need_) nc_ *= 2;                                   \
      __typeof__(arr) np_ = reallocarray((arr), nc_, sizeof(*(arr))); \
      if (np_) {                                                      \
        (arr) = np_;                                                  \
        (cap) = nc_;                                                  \
      } else {                                                        \
        rc_ = -ENOMEM;                                                \
      }                                                               \
    }                                                                 \
    rc_;                                                              \
  })

/* NULL-safe string: the model's optional strings read as "". */
static inline const char *pl__str(const char *s) { return s ? s : ""; }

/* First scriptId of a writer's files in .cpuprofile/.heapprofile callFrames:
 * DevTools matches a loaded profile's scriptIds against the scripts of the
 * page it inspects (its own injected helpers have small ids), and a match
 * hides our frame as "Content script". */
#define PL__SCRIPT_ID_BASE 1000000

/* Appends the url DevTools expects for a source file: "file://" + the path
 * percent-encoded like Node's pathToFileURL for an absolute path, the path
 * itself otherwise ("" stays ""). */
void pl__file_url(pl_buf *b, const char *file);

#endif
