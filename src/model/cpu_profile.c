/* The CPU profile model's memory and summary (include/proflab/cpu_profile.h). */
#include "proflab/cpu_profile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model/owned.h"

pl_cpu_profile *pl_cpu_profile_new(void) {
  pl_cpu_profile *p = calloc(1, sizeof(*p));
  if (!p) return NULL;
  p->owner = pl__owned_new();
  if (!p->owner) {
    free(p);
    return NULL;
  }
  return p;
}

void *pl_cpu_profile_alloc(pl_cpu_profile *p, size_t n) {
  return pl__arena_alloc(pl__owned_arena(p->owner), n);
}

char *pl_cpu_profile_strdup(pl_cpu_profile *p, const char *s) {
  return pl__arena_strdup(pl__owned_arena(p->owner), s);
}

int pl_cpu_profile_adopt(pl_cpu_profile *p, void *block) {
  return pl__owned_adopt(p->owner, block, 0, NULL);
}

void pl_cpu_profile_free(pl_cpu_profile *p) {
  if (!p) return;
  pl__owned_free(p->owner);
  free(p);
}

void pl_cpu_profile_get_info(const pl_cpu_profile *p, pl_cpu_profile_info *info) {
  memset(info, 0, sizeof(*info));
  info->samples = p->nsamples;
  info->idle_samples = p->idle_samples;
  info->signals = p->signals;
  info->unwind_fp = p->unwind_fp;
  info->unwind_cached = p->unwind_cached;
  info->unwind_dwarf = p->unwind_dwarf;
  info->unwind_verified = p->unwind_verified;
  info->unwind_mismatched = p->unwind_mismatched;
  info->unwind_fell_back = p->unwind_fell_back;
  info->dropped = p->dropped;
  info->period_ns = p->period_ns;
  info->duration_ns = p->end_ns - p->start_ns;
  uint32_t seen[64];
  unsigned nseen = 0;
  for (size_t i = 0; i < p->nsamples; i++) {
    info->weight += p->samples[i].weight;
    unsigned k;
    for (k = 0; k < nseen; k++)
      if (seen[k] == p->samples[i].tid) break;
    if (k == nseen && nseen < 64) seen[nseen++] = p->samples[i].tid;
  }
  info->threads = nseen;
  info->blocked_samples = p->blocked_samples;
  info->sigprof_lost = p->sigprof_lost;
  for (size_t i = 0; i < p->nthreads; i++)
    if (p->threads[i].flags & PL_CPU_THREAD_SIGPROF_BLOCKED) info->threads_blocking_sigprof++;
}
