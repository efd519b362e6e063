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

void pl__file_url(pl_buf *b, const char *file) {
  if (file[0] != '/') {
    pl_buf_puts(b, file);
    return;
  }
  static const char hex[] = "0123456789ABCDEF";
  pl_buf_puts(b, "file://");
  const unsigned char *s = (const unsigned char *)file, *run = s;
  for (; *s; s++) {
    if (*s <= 0x20 || *s >= 0x7f || *s == '%' || *s == '#' || *s == '?') {
      pl_buf_append(b, run, (size_t)(s - run));
      char enc[3] = {'%', hex[*s >> 4], hex[*s & 15]};
      pl_buf_append(b, enc, 3);
      run = s + 1;
    }
  }
  pl_buf_append(b, run, (size_t)(s - run));
}
