/* Symbolization of whole model objects (include/proflab/symbolize.h) with
 * the process's symbolizer (symbol/symbolizer.h). */
#include "proflab/symbolize.h"

#include <errno.h>
#include <stdlib.h>

#include "common/util.h"
#include "model/owned.h"
#include "symbol/symbolizer.h"

int pl_cpu_profile_symbolize(pl_cpu_profile *p) {
  pl__symbolizer *sym;
  int rc = pl__symbolizer_new(&sym);
  if (rc) return rc;
  pl__arena *arena = pl__owned_arena(p->owner);
  for (size_t i = 0; i < p->nframes && !rc; i++)
    rc = pl__symbolize(sym, p->frames[i].address, arena, &p->frames[i]);
  pl__symbolizer_free(sym);
  return rc;
}

/* Back to "not symbolized" (what was allocated stays in the arena). */
static void drop_frames(pl_heap_snapshot *s) {
  s->frames = NULL;
  s->nframes = 0;
  s->frames_state = PL_HEAP_FRAMES_NONE;
  for (size_t i = 0; i < s->nstacks; i++) s->stacks[i].frames = NULL;
}

/* Distinct pcs → frames, through an open-addressing table of frame ids. */
static int symbolize_heap(pl_heap_snapshot *s, unsigned flags) {
  int want = (flags & PL__SYMBOLIZE_NAMES) ? PL_HEAP_FRAMES_NAMES : PL_HEAP_FRAMES_LINES;
  if (s->frames && s->frames_state >= want) return 0; /* enough */
  if (s->frames) drop_frames(s);                      /* names only so far: again, with lines */
  int rc = -ENOMEM;
  size_t total = 0;
  for (size_t i = 0; i < s->nstacks; i++) total += s->stacks[i].depth;
  size_t cap = 16;
  while (cap < total * 2) cap <<= 1;
  uint32_t *table = calloc(cap, sizeof(uint32_t)); /* frame id + 1 */
  uintptr_t *addrs = malloc((total ? total : 1) * sizeof(uintptr_t));
  uint32_t *frame_ix = pl_heap_snapshot_alloc(s, (total ? total : 1) * sizeof(uint32_t));
  pl__symbolizer *sym = NULL;
  size_t nf = 0;
  if (!table || !addrs || !frame_ix) goto out;
  size_t pos = 0;
  for (size_t i = 0; i < s->nstacks; i++) {
    pl_heap_stack *k = &s->stacks[i];
    k->frames = frame_ix + pos;
    for (uint32_t d = 0; d < k->depth; d++) {
      uintptr_t pc = pl__call_site(k->pcs[d]);
      size_t h = pl__mix64(pc) & (cap - 1);
      while (table[h] && addrs[table[h] - 1] != pc) h = (h + 1) & (cap - 1);
      if (!table[h]) {
        addrs[nf++] = pc;
        table[h] = (uint32_t)nf;
      }
      k->frames[d] = table[h] - 1;
    }
    pos += k->depth;
  }
  s->frames = pl_heap_snapshot_alloc(s, (nf ? nf : 1) * sizeof(pl_frame));
  if (!s->frames) goto out;
  if ((rc = pl__symbolizer_new(&sym)) != 0) goto out;
  pl__arena *arena = pl__owned_arena(s->owner);
  for (size_t i = 0; i < nf && !rc; i++)
    rc = pl__symbolize_flags(sym, addrs[i], arena, &s->frames[i], flags);
  if (!rc) {
    s->nframes = nf;
    s->frames_state = want;
  }
out:
  if (rc) drop_frames(s); /* a later attempt allocates its own */
  pl__symbolizer_free(sym);
  free(table);
  free(addrs);
  return rc;
}

int pl_heap_snapshot_symbolize(pl_heap_snapshot *s) { return symbolize_heap(s, 0); }

int pl_heap_snapshot_symbolize_names(pl_heap_snapshot *s) {
  return symbolize_heap(s, PL__SYMBOLIZE_NAMES);
}
