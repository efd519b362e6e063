/* What the readers of DevTools' JSON node trees share (internal to
 * src/format/: .cpuprofile and .heapprofile): a callFrame's fields read
 * into the builder's strings, and node ids mapped to node indexes. */
#ifndef PL_FORMAT_READ_DEVTOOLS_H
#define PL_FORMAT_READ_DEVTOOLS_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/cpu_common.h"
#include "format/hashtab.h"
#include "format/json_reader.h"
#include "format/read_build.h"
#include "format/read_source.h"

/* After a key of a callFrame (or of an old .cpuprofile node, whose
 * lineNumber is 1-based: one_based): reads a functionName, url or
 * lineNumber value (into *name or *file, string ids; or *line, 1-based, 0
 * unknown) and returns 1; 0 when the key is none of them
 * (its value not read); < 0 on an error, reported in err (-ENOMEM) or by
 * the reader (a value of the wrong type, a line out of range). */
static inline int pl__dt_frame_field(pl__jreader *r, pl__rb *b, pl__read_err *err, int one_based,
                                     uint32_t *name, uint32_t *file, uint32_t *line) {
  int t;
  if (pl__jr_is(r, "functionName") || pl__jr_is(r, "url")) {
    int is_name = r->str.data[0] == 'f';
    if ((t = pl__jr_next(r)) < 0) return t;
    if (t != PL__JT_STR) return pl__jr_fail(r, is_name ? "a functionName string" : "a url string");
    int64_t id = is_name ? pl__rb_name(b, r->str.data, r->str.len)
                         : pl__rb_url_file(b, r->str.data, r->str.len);
    if (id < 0) return pl__read_errno(err, -ENOMEM);
    *(is_name ? name : file) = (uint32_t)id;
    return 1;
  }
  if (pl__jr_is(r, "lineNumber")) {
    int64_t v;
    if ((t = pl__jr_next(r)) < 0) return t;
    if ((t = pl__jr_int(r, -1, UINT32_MAX - 2, &v, "a lineNumber (a whole number >= -1)")) < 0)
      return t;
    *line = v < 0 ? 0 : (uint32_t)(v + !one_based);
    return 1;
  }
  return 0;
}

/* Node ids to node indexes: a direct table when the ids are dense enough,
 * else a hash table of ids and their nodes. */
typedef struct pl__dt_ids {
  uint32_t *by_id; /* by id: node index, UINT32_MAX for none */
  size_t by_id_len;
  pl__keytab keys; /* id -> k, its node at[k] */
  uint32_t *at;
  size_t at_cap;
} pl__dt_ids;

static inline void pl__dt_ids_init(pl__dt_ids *x) {
  memset(x, 0, sizeof(*x));
  pl__keytab_init(&x->keys);
}

static inline void pl__dt_ids_free(pl__dt_ids *x) {
  free(x->by_id);
  free(x->at);
  pl__keytab_free(&x->keys);
}

/* Chooses the table for n nodes with ids up to max (once, before any
 * pl__dt_ids_add): 0 or -ENOMEM. */
static inline int pl__dt_ids_reserve(pl__dt_ids *x, uint32_t max, size_t n) {
  if ((uint64_t)max >= 4 * (uint64_t)n + 1024) return 0;
  x->by_id_len = (size_t)max + 1;
  x->by_id = malloc(x->by_id_len * sizeof(*x->by_id));
  if (!x->by_id) return -ENOMEM;
  memset(x->by_id, 0xff, x->by_id_len * sizeof(*x->by_id));
  return 0;
}

/* The node index of id, or -1 when no node has it. */
static inline int64_t pl__dt_ids_find(const pl__dt_ids *x, uint32_t id) {
  if (x->by_id) return id < x->by_id_len && x->by_id[id] != UINT32_MAX ? (int64_t)x->by_id[id] : -1;
  int64_t k = pl__keytab_find(&x->keys, id, 0, 0);
  return k < 0 ? -1 : (int64_t)x->at[k];
}

/* Maps id (not mapped yet; at most the max given to pl__dt_ids_reserve) to
 * node index: 0 or -ENOMEM. */
static inline int pl__dt_ids_add(pl__dt_ids *x, uint32_t id, uint32_t index) {
  if (x->by_id) {
    x->by_id[id] = index;
    return 0;
  }
  int64_t k = pl__keytab_intern(&x->keys, id, 0, 0, NULL);
  if (k < 0 || PL__RESERVE(x->at, x->at_cap, (size_t)k + 1)) return -ENOMEM;
  x->at[k] = index;
  return 0;
}

#endif
