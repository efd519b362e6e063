/* Helpers shared by the CPU profile writers (see cpu_common.h). */
#include "format/cpu_common.h"

#include <errno.h>
#include <stddef.h>

int pl__cpu_profile_check(const pl_cpu_profile *p) {
  if (!p) return -EINVAL;
  if ((p->nsamples && !p->samples) || (p->nstacks && !p->stacks) || (p->nframes && !p->frames))
    return -EINVAL;
  for (size_t i = 0; i < p->nstacks; i++) {
    const pl_cpu_stack *st = &p->stacks[i];
    if (st->depth && !st->frames) return -EINVAL;
    for (uint32_t d = 0; d < st->depth; d++)
      if (st->frames[d] >= p->nframes) return -EINVAL;
  }
  for (size_t i = 0; i < p->nsamples; i++) {
    const pl_cpu_sample *s = &p->samples[i];
    if (s->weight == 0) return -EINVAL;
    if (s->stack != PL_STACK_IDLE && s->stack != PL_STACK_PROGRAM && s->stack >= p->nstacks)
      return -EINVAL;
  }
  return 0;
}
