/* proflab — a symbolized code location, shared by the CPU profile and the
 * heap snapshot models (cpu_profile.h, heap_snapshot.h). */
#ifndef PROFLAB_FRAME_H
#define PROFLAB_FRAME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A code location: one per distinct program counter of a profile from this
 * process, one per distinct (function, file, line) of a profile read from a
 * file. Strings belong to the model object holding the frame. */
typedef struct pl_frame {
  const char *function;   /* never empty: a name, or "module+0xoffset" */
  const char *file;       /* source file path, "" when unknown */
  const char *module;     /* ELF module path ("" when unknown) */
  uint32_t line;          /* 1-based line of this location, 0 when unknown */
  uint32_t function_line; /* 1-based first line of the function, 0 when unknown */
  uint64_t address;       /* the program counter (a call site for callers), 0 when unknown */
} pl_frame;

#ifdef __cplusplus
}
#endif
#endif
