/* The writers' call tree (see calltree.h). */
#include "format/calltree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/cpu_common.h"

static int64_t func_intern(pl__calltree *t, uint32_t name, uint32_t file, uint32_t line,
                           uint32_t script_id) {
  int added;
  int64_t f = pl__keytab_intern(&t->func_keys, name, file, line, &added);
  if (f < 0 || !added) return f;
  if (PL__RESERVE(t->funcs, t->funcs_cap, (size_t)f + 1)) return -ENOMEM;
  t->funcs[f] = (pl__ct_func){name, file, line, script_id};
  return f;
}

int64_t pl__calltree_node(pl__calltree *t, uint32_t parent, uint32_t func) {
  int added;
  int64_t n = pl__keytab_intern(&t->node_keys, parent, func, 0, &added);
  if (n < 0 || !added) return n;
  if (PL__RESERVE(t->nodes, t->nodes_cap, (size_t)n + 1)) return -ENOMEM;
  t->nodes[n] = (pl__ct_node){func, parent, PL__CT_NONE, PL__CT_NONE, PL__CT_NONE, 0};
  if (parent != PL__CT_NONE) {
    pl__ct_node *pa = &t->nodes[parent];
    if (pa->last_child == PL__CT_NONE)
      pa->first_child = (uint32_t)n;
    else
      t->nodes[pa->last_child].next_sibling = (uint32_t)n;
    pa->last_child = (uint32_t)n;
  }
  return n;
}

int64_t pl__calltree_frame_func(pl__calltree *t, uint32_t fi) {
  if (t->frame_func[fi] != PL__CT_NONE) return t->frame_func[fi];
  const pl_frame *fr = &t->frames[fi];
  const char *file = pl__str(fr->file);
  int64_t name = pl__strtab_intern(&t->strs, pl__str(fr->function));
  if (name < 0) return name;
  int64_t fid = pl__strtab_intern(&t->strs, file);
  if (fid < 0) return fid;
  int64_t script = 0;
  if (*file) {
    script = pl__keytab_intern(&t->script_keys, (uint32_t)fid, 0, 0, NULL);
    if (script < 0) return script;
    script += PL__SCRIPT_ID_BASE;
  }
  int64_t f = func_intern(t, (uint32_t)name, (uint32_t)fid, fr->function_line, (uint32_t)script);
  if (f < 0) return f;
  t->frame_func[fi] = (uint32_t)f;
  return f;
}

int pl__calltree_init(pl__calltree *t, const pl_frame *frames, size_t nframes,
                      const char *const *pseudo, uint32_t npseudo) {
  memset(t, 0, sizeof(*t));
  pl__strtab_init(&t->strs);
  pl__keytab_init(&t->func_keys);
  pl__keytab_init(&t->script_keys);
  pl__keytab_init(&t->node_keys);
  t->frames = frames;
  t->frame_func = malloc((nframes ? nframes : 1) * sizeof(*t->frame_func));
  if (!t->frame_func) return -ENOMEM;
  memset(t->frame_func, 0xff, nframes * sizeof(*t->frame_func));
  int64_t empty = pl__strtab_intern(&t->strs, "");
  if (empty < 0) return -ENOMEM;
  for (uint32_t k = 0; k < npseudo; k++) { /* keys no frame has (string ids are never NONE) */
    int64_t name = pl__strtab_intern(&t->strs, pseudo[k]);
    if (name < 0 || func_intern(t, PL__CT_NONE, PL__CT_NONE, k, 0) < 0) return -ENOMEM;
    t->funcs[k].name = (uint32_t)name;
    t->funcs[k].file = (uint32_t)empty;
  }
  return pl__calltree_node(t, PL__CT_NONE, 0) < 0 ? -ENOMEM : 0;
}

void pl__calltree_free(pl__calltree *t) {
  pl__strtab_free(&t->strs);
  pl__keytab_free(&t->func_keys);
  free(t->funcs);
  pl__keytab_free(&t->script_keys);
  pl__keytab_free(&t->node_keys);
  free(t->nodes);
  free(t->frame_func);
}
