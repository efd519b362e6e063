/* Helpers shared by the heap profile writers (see heap_common.h). */
#include "format/heap_common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/heap_writers.h"
#include "format/hashtab.h"

/* Functions that allocate on their caller's behalf (exact names, as the
 * symbolizer prints them), sorted for bsearch. C++'s operator new in all
 * its forms is matched by prefix below. */
const char *const pl__heap_helpers[] = {
    "__asprintf",
    "__asprintf_chk",
    "__getdelim",
    "__libc_calloc",
    "__libc_malloc",
    "__libc_memalign",
    "__libc_pvalloc",
    "__libc_realloc",
    "__libc_reallocarray",
    "__libc_valloc",
    "__posix_memalign",
    "__realpath",
    "__strdup",
    "__strndup",
    "__vasprintf",
    "__vasprintf_chk",
    "__vasprintf_internal",
    "__wcsdup",
    "_mid_memalign",
    "aligned_alloc",
    "asprintf",
    "calloc",
    "canonicalize_file_name",
    "g_malloc",
    "g_malloc0",
    "g_malloc0_n",
    "g_malloc_n",
    "g_memdup",
    "g_memdup2",
    "g_realloc",
    "g_realloc_n",
    "g_slice_alloc",
    "g_slice_alloc0",
    "g_strdup",
    "g_strndup",
    "g_try_malloc",
    "g_try_malloc0",
    "g_try_realloc",
    "getdelim",
    "getline",
    "malloc",
    "memalign",
    "open_memstream",
    "open_wmemstream",
    "posix_memalign",
    "pvalloc",
    "realloc",
    "reallocarray",
    "realpath",
    "strdup",
    "strndup",
    "valloc",
    "vasprintf",
    "wcsdup",
    "xcalloc",
    "xmalloc",
    "xmemdup",
    "xrealloc",
    "xstrdup",
    "xstrndup",
    "xzalloc",
};

static int cmp_name(const void *key, const void *elem) {
  return strcmp((const char *)key, *(const char *const *)elem);
}

const size_t pl__heap_nhelpers = sizeof(pl__heap_helpers) / sizeof(pl__heap_helpers[0]);

int pl__heap_is_helper(const char *name) {
  if (!name || !*name) return 0;
  /* operator new / new[] (demangled, any overload), _Znwm/_Znam... (mangled) */
  if (strncmp(name, "operator new", 12) == 0) return 1;
  if (strncmp(name, "_Znw", 4) == 0 || strncmp(name, "_Zna", 4) == 0) return 1;
  return bsearch(name, pl__heap_helpers, pl__heap_nhelpers, sizeof(pl__heap_helpers[0]),
                 cmp_name) != NULL;
}

static int bad_estimate(double x) { return !isfinite(x) || x < 0; }

/* Also counts the samples of each stack into samples[] (zeroed, one per
 * stack) and notes the first of them in first[]: the one pass over the
 * samples a writer needs before its output. */
static int check(const pl_heap_snapshot *s, uint32_t *samples, size_t *first) {
  if (!s) return -EINVAL;
  if ((s->nsamples && !s->samples) || (s->nstacks && !s->stacks)) return -EINVAL;
  if (s->nstacks > UINT32_MAX) return -EINVAL;
  for (size_t i = 0; i < s->nstacks; i++) {
    const pl_heap_stack *st = &s->stacks[i];
    if (bad_estimate(st->alloc_objects) || bad_estimate(st->alloc_bytes) ||
        bad_estimate(st->inuse_objects) || bad_estimate(st->inuse_bytes))
      return -EINVAL;
    if (!st->depth) continue;
    if (s->frames) {
      if (!st->frames) return -EINVAL;
      for (uint32_t d = 0; d < st->depth; d++)
        if (st->frames[d] >= s->nframes) return -EINVAL;
    } else if (!st->pcs) {
      return -EINVAL;
    }
  }
  uint64_t prev = 0;
  for (size_t i = 0; i < s->nsamples; i++) {
    const pl_heap_sample *x = &s->samples[i];
    if (x->stack >= s->nstacks) return -EINVAL;
    if (!samples[x->stack]++) first[x->stack] = i;
    if (!(x->id & 1) || (i && x->id <= prev)) return -EINVAL;
    prev = x->id;
    if (bad_estimate(x->weight_bytes) || bad_estimate(x->weight_objects)) return -EINVAL;
  }
  return 0;
}

/* Unsymbolized: one frame per distinct pc, named after its call address. */
static int synthesize(pl__heap_view *v) {
  const pl_heap_snapshot *s = v->s;
  size_t total = 0;
  for (size_t i = 0; i < s->nstacks; i++) total += s->stacks[i].depth;
  v->own_ix = malloc((total ? total : 1) * sizeof(*v->own_ix));
  v->own_frames = malloc((total ? total : 1) * sizeof(*v->own_frames));
  if (!v->own_ix || !v->own_frames) return -ENOMEM;
  pl__keytab pcs; /* (pc low, pc high, 0) -> frame */
  pl__keytab_init(&pcs);
  int rc = 0;
  size_t pos = 0;
  for (size_t i = 0; i < s->nstacks && !rc; i++) {
    const pl_heap_stack *st = &s->stacks[i];
    v->stack_frames[i] = v->own_ix + pos;
    for (uint32_t d = 0; d < st->depth; d++) {
      uint64_t pc = (uint64_t)st->pcs[d] - (st->pcs[d] ? 1 : 0); /* the call instruction */
      int added;
      int64_t f = pl__keytab_intern(&pcs, (uint32_t)pc, (uint32_t)(pc >> 32), 0, &added);
      if (f < 0) {
        rc = (int)f;
        break;
      }
      if (added) {
        char *name = pl__arena_alloc(&v->names, 20);
        if (!name) {
          rc = -ENOMEM;
          break;
        }
        snprintf(name, 20, "0x%llx", (unsigned long long)pc);
        v->own_frames[f] = (pl_frame){name, "", "", 0, 0, pc};
      }
      v->own_ix[pos++] = (uint32_t)f;
    }
  }
  v->nframes = pcs.n;
  pl__keytab_free(&pcs);
  v->frames = v->own_frames;
  return rc;
}

int pl__heap_view_init(pl__heap_view *v, const pl_heap_snapshot *s) {
  memset(v, 0, sizeof(*v));
  if (!s) return -EINVAL;
  v->s = s;
  pl__arena_init(&v->names);
  size_t n = s->nstacks ? s->nstacks : 1;
  int rc;
  v->stack_frames = calloc(n, sizeof(*v->stack_frames));
  v->first = calloc(n, sizeof(*v->first));
  v->samples = calloc(n, sizeof(*v->samples));
  v->first_sample = malloc(n * sizeof(*v->first_sample));
  if (!v->stack_frames || !v->first || !v->samples || !v->first_sample) {
    rc = -ENOMEM;
    goto fail;
  }
  if ((rc = check(s, v->samples, v->first_sample))) goto fail;
  if (s->frames) {
    v->frames = s->frames;
    v->nframes = s->nframes;
    for (size_t i = 0; i < s->nstacks; i++) v->stack_frames[i] = s->stacks[i].frames;
  } else if ((rc = synthesize(v))) {
    goto fail;
  }
  for (size_t i = 0; i < s->nstacks; i++) {
    uint32_t depth = s->stacks[i].depth, d = 0;
    while (d < depth && pl__heap_is_helper(pl__heap_frame(v, i, d)->function)) d++;
    v->first[i] = d < depth ? d : 0;
  }
  return 0;
fail:
  pl__heap_view_free(v);
  return rc;
}

void pl__heap_view_free(pl__heap_view *v) {
  free(v->stack_frames);
  free(v->first);
  free(v->samples);
  free(v->first_sample);
  free(v->own_frames);
  free(v->own_ix);
  pl__arena_free(&v->names);
  memset(v, 0, sizeof(*v));
}

const char *pl__heap_alloc_name(const pl__heap_view *v, size_t si) {
  if (!v->s->stacks[si].depth) return PL__HEAP_UNKNOWN;
  const char *name = pl__heap_frame(v, si, v->first[si])->function;
  return name && *name ? name : PL__HEAP_UNKNOWN;
}

int pl__heap_alloc_frame(const pl_heap_snapshot *s, size_t si) {
  if (!s || si >= s->nstacks || !s->stacks) return -EINVAL;
  const pl_heap_stack *st = &s->stacks[si];
  if (!st->depth) return -1;
  if (!s->frames) return 0;
  if (!st->frames) return -EINVAL;
  uint32_t d = 0;
  for (; d < st->depth; d++) {
    if (st->frames[d] >= s->nframes) return -EINVAL;
    if (!pl__heap_is_helper(s->frames[st->frames[d]].function)) break;
  }
  return d < st->depth ? (int)d : 0;
}
