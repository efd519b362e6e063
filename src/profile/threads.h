/* The process's threads as the sampler sees them (/proc/self/task): their
 * names, whether their signal mask blocks SIGPROF, and which are proflab's
 * own. Normal context only (reads files); never in a signal handler. */
#ifndef PL_PROFILE_THREADS_H
#define PL_PROFILE_THREADS_H

#include <stdint.h>

/* proflab's own threads (the agent's, the inspector's, the profiler's
 * ticker and collector, and the threads they start, which inherit the
 * name) are named with this prefix and never sampled as the program's. */
#define PL__THREAD_NAME_PREFIX "proflab-"

typedef struct pl__thread_info {
  char name[16];      /* comm, NUL-terminated */
  int blocks_sigprof; /* SigBlk has SIGPROF */
  int proflab;        /* name starts with PL__THREAD_NAME_PREFIX */
} pl__thread_info;

/* Read thread tid of this process from /proc/self/task/TID/status.
 * 0, -ENOENT (no such thread now) or another -errno. */
int pl__thread_info_read(uint32_t tid, pl__thread_info *out);

/* Name the calling thread (cosmetic: best effort). name is at most 15
 * characters and should start with PL__THREAD_NAME_PREFIX. */
void pl__thread_name_self(const char *name);

#endif
