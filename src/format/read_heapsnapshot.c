/* The .heapsnapshot reader (Node's, Chrome's, proflab's): streams the JSON
 * with json_reader.h and reads the nodes and edges arrays as integers
 * straight into the compact arrays of a pl_heap_graph (heap_graph.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "format/json_reader.h"
#include "format/readers.h"
#include "proflab/heap_graph.h"

#define MAX_FIELDS 64u
#define FIRST_CAP 4096u

typedef struct hs_reader {
  pl__jreader r;
  pl_heap_graph *g;
  int have_meta, have_nodes, have_edges, have_strings;
  int64_t node_count, edge_count;                         /* declared; -1 until read */
  uint32_t nf, ef;                                        /* node and edge field counts */
  int nf_type, nf_name, nf_id, nf_self, nf_edges, nf_det; /* field positions, -1 absent */
  uint32_t lf;                                            /* location field count */
  int lf_node, lf_script, lf_line, lf_col;
  uint32_t loc_cap;
  int ef_type, ef_name, ef_to;
  uint32_t node_cap, edge_cap;
  size_t str_bytes, str_cap;
  uint64_t *str_off; /* by string while reading */
  uint32_t str_n, str_off_cap;
} hs_reader;

/* The position of name in the field list, or -1. */
static int field_pos(char **names, uint32_t n, const char *name) {
  for (uint32_t i = 0; i < n; i++)
    if (strcmp(names[i], name) == 0) return (int)i;
  return -1;
}

static void free_names(char **names, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) free(names[i]);
}

/* After ARR: an array of strings into names (at most MAX_FIELDS), *n. */
static int read_str_list(hs_reader *h, char **names, uint32_t *n, const char *what) {
  pl__jreader *r = &h->r;
  int e;
  while ((e = pl__jr_elem(r)) > 0) {
    if (r->tok != PL__JT_STR) return pl__jr_fail(r, what);
    if (*n >= MAX_FIELDS) return pl__jr_failf(r, "more than %u entries in %s", MAX_FIELDS, what);
    names[*n] = strndup(r->str.data ? r->str.data : "", r->str.len);
    if (!names[*n]) return -ENOMEM;
    (*n)++;
  }
  return e;
}

/* After ARR: [[type names...], ...] — the first element into names. */
static int read_types(hs_reader *h, char **names, uint32_t *n, const char *what) {
  pl__jreader *r = &h->r;
  int e = pl__jr_elem(r);
  if (e < 0) return e;
  if (e == 0 || r->tok != PL__JT_ARR) return pl__jr_fail(r, what);
  int rc = read_str_list(h, names, n, what);
  if (rc < 0) return rc;
  while ((e = pl__jr_elem(r)) > 0)
    if ((rc = pl__jr_skip(r)) < 0) return rc;
  return e;
}

static int read_meta(hs_reader *h, char **node_fields, uint32_t *nnf, char **edge_fields,
                     uint32_t *nef, char **loc_fields, uint32_t *nlf) {
  pl__jreader *r = &h->r;
  pl_heap_graph *g = h->g;
  int k, rc;
  while ((k = pl__jr_key(r)) > 0) {
    if (pl__jr_is(r, "node_fields") || pl__jr_is(r, "edge_fields")) {
      int node = pl__jr_is(r, "node_fields");
      if ((rc = pl__jr_expect(r, PL__JT_ARR, "an array of field names")) < 0) return rc;
      rc = node ? read_str_list(h, node_fields, nnf, "node field names (strings)")
                : read_str_list(h, edge_fields, nef, "edge field names (strings)");
    } else if (pl__jr_is(r, "location_fields")) {
      if (*nlf) return pl__jr_failf(r, "location_fields given twice");
      if ((rc = pl__jr_expect(r, PL__JT_ARR, "an array of field names")) < 0) return rc;
      rc = read_str_list(h, loc_fields, nlf, "location field names (strings)");
    } else if (pl__jr_is(r, "node_types") || pl__jr_is(r, "edge_types")) {
      int node = pl__jr_is(r, "node_types");
      if ((rc = pl__jr_expect(r, PL__JT_ARR, "an array of field types")) < 0) return rc;
      if (node ? g->n_node_types : g->n_edge_types)
        return pl__jr_failf(r, "the types are given twice");
      rc = node ? read_types(h, g->node_type_names, &g->n_node_types,
                             "node types: an array of type names first")
                : read_types(h, g->edge_type_names, &g->n_edge_types,
                             "edge types: an array of type names first");
    } else {
      rc = pl__jr_skip_value(r);
    }
    if (rc < 0) return rc;
  }
  return k;
}

static int read_snapshot(hs_reader *h) {
  pl__jreader *r = &h->r;
  char *nfn[MAX_FIELDS], *efn[MAX_FIELDS], *lfn[MAX_FIELDS];
  uint32_t nnf = 0, nef = 0, nlf = 0;
  int k, rc = 0, meta = 0;
  if ((rc = pl__jr_expect(r, PL__JT_OBJ, "the snapshot's object")) < 0) return rc;
  while ((k = pl__jr_key(r)) > 0) {
    if (pl__jr_is(r, "meta")) {
      if (meta) {
        rc = pl__jr_failf(r, "\"meta\" given twice");
        break;
      }
      meta = 1;
      if ((rc = pl__jr_expect(r, PL__JT_OBJ, "the meta object")) < 0) break;
      if ((rc = read_meta(h, nfn, &nnf, efn, &nef, lfn, &nlf)) < 0) break;
    } else if (pl__jr_is(r, "node_count") || pl__jr_is(r, "edge_count")) {
      int64_t *dst = pl__jr_is(r, "node_count") ? &h->node_count : &h->edge_count;
      if ((rc = pl__jr_next(r)) < 0) break;
      if ((rc = pl__jr_int(r, 0, UINT32_MAX - 1, dst, "a count from 0 to 4294967294")) < 0) break;
    } else if ((rc = pl__jr_skip_value(r)) < 0) {
      break;
    }
  }
  if (k < 0 && rc >= 0) rc = k;
  if (rc >= 0) {
    h->nf_type = field_pos(nfn, nnf, "type");
    h->nf_name = field_pos(nfn, nnf, "name");
    h->nf_id = field_pos(nfn, nnf, "id");
    h->nf_self = field_pos(nfn, nnf, "self_size");
    h->nf_edges = field_pos(nfn, nnf, "edge_count");
    h->nf_det = field_pos(nfn, nnf, "detachedness");
    if (nlf) {
      h->lf = nlf;
      h->lf_node = field_pos(lfn, nlf, "object_index");
      h->lf_script = field_pos(lfn, nlf, "script_id");
      h->lf_line = field_pos(lfn, nlf, "line");
      h->lf_col = field_pos(lfn, nlf, "column");
    }
    h->ef_type = field_pos(efn, nef, "type");
    h->ef_name = field_pos(efn, nef, "name_or_index");
    h->ef_to = field_pos(efn, nef, "to_node");
    h->nf = nnf;
    h->ef = nef;
    if (!meta || h->nf_type < 0 || h->nf_name < 0 || h->nf_id < 0 || h->nf_self < 0 ||
        h->nf_edges < 0 || h->ef_type < 0 || h->ef_name < 0 || h->ef_to < 0)
      rc = pl__jr_failf(r,
                        "the snapshot's meta lacks node_fields (type, name, id, self_size, "
                        "edge_count) or edge_fields (type, name_or_index, to_node)");
    else if (!h->g->n_node_types || !h->g->n_edge_types)
      rc = pl__jr_failf(r, "the snapshot's meta lacks node_types or edge_types");
    else if (h->node_count < 0 || h->edge_count < 0)
      rc = pl__jr_failf(r, "the snapshot lacks node_count or edge_count");
    else
      h->have_meta = 1;
  }
  free_names(nfn, nnf);
  free_names(efn, nef);
  free_names(lfn, nlf);
  return rc < 0 ? rc : 0;
}

static int grow(void **p, size_t n, size_t size) {
  void *q = realloc(*p, n ? n * size : size); /* n * size: n < 2^32, size <= 8 */
  if (!q) return -ENOMEM;
  *p = q;
  return 0;
}

/* Room for cap nodes (first_edge: cap + 1). */
static int grow_nodes(hs_reader *h, uint32_t cap) {
  pl_heap_graph *g = h->g;
  if (grow((void **)&g->node_type, cap, 1) || grow((void **)&g->node_name, cap, 4) ||
      grow((void **)&g->node_id, cap, 8) || grow((void **)&g->node_self, cap, 8) ||
      grow((void **)&g->first_edge, (size_t)cap + 1, 4) ||
      (h->nf_det >= 0 && grow((void **)&g->node_detachedness, cap, 1)))
    return -ENOMEM;
  h->node_cap = cap;
  return 0;
}

static int grow_edges(hs_reader *h, uint32_t cap) {
  pl_heap_graph *g = h->g;
  if (grow((void **)&g->edge_type, cap, 1) || grow((void **)&g->edge_name, cap, 4) ||
      grow((void **)&g->edge_to, cap, 4))
    return -ENOMEM;
  h->edge_cap = cap;
  return 0;
}

/* The next capacity: doubled, at most want. */
static uint32_t next_cap(uint32_t cap, uint32_t want) {
  uint64_t c = cap ? (uint64_t)cap * 2 : FIRST_CAP;
  return c > want ? want : (uint32_t)c;
}

/* One node field's value v (already checked against its bounds) into
 * node n; the edge counts are summed into *edges. */
static inline void store_node_field(hs_reader *h, uint32_t n, uint32_t f, uint64_t v,
                                    uint64_t *edges) {
  pl_heap_graph *g = h->g;
  if ((int)f == h->nf_type)
    g->node_type[n] = (uint8_t)v;
  else if ((int)f == h->nf_name)
    g->node_name[n] = (uint32_t)v;
  else if ((int)f == h->nf_id)
    g->node_id[n] = v;
  else if ((int)f == h->nf_self)
    g->node_self[n] = v;
  else if ((int)f == h->nf_det)
    g->node_detachedness[n] = (uint8_t)(v & 3);
  else if ((int)f == h->nf_edges) {
    *edges += v;
    g->first_edge[n + 1] = (uint32_t)*edges;
  }
}

/* Node n's fields read fast (pl__jr_uints), whole nodes while they come:
 * how many fields of the node at *n it read past *f. The bounds are those
 * the slow path checks, so a value outside them is left to it. */
static void read_nodes_fast(hs_reader *h, uint32_t want, uint32_t *n, uint32_t *f, uint64_t *edges,
                            uint64_t *max, const uint32_t *mult) {
  uint64_t vals[MAX_FIELDS];
  while (*n < want && *n < h->node_cap) {
    max[h->nf_edges] = (uint64_t)h->edge_count - *edges; /* the sum stays within edge_count */
    size_t k = pl__jr_uints(&h->r, vals, h->nf - *f, max + *f, mult + *f);
    for (size_t i = 0; i < k; i++) store_node_field(h, *n, *f + (uint32_t)i, vals[i], edges);
    *f += (uint32_t)k;
    if (*f < h->nf) return;
    *f = 0;
    (*n)++;
  }
}

static int read_nodes(hs_reader *h) {
  pl__jreader *r = &h->r;
  pl_heap_graph *g = h->g;
  if (!h->have_meta) return pl__jr_failf(r, "\"nodes\" before the snapshot's meta");
  if (h->have_nodes) return pl__jr_failf(r, "\"nodes\" given twice");
  int rc;
  if ((rc = pl__jr_expect(r, PL__JT_ARR, "the nodes array")) < 0) return rc;
  uint32_t want = (uint32_t)h->node_count, n = 0, f = 0;
  uint64_t edges = 0;
  int64_t v;
  if ((rc = grow_nodes(h, want < FIRST_CAP ? want : FIRST_CAP)) < 0) return rc;
  g->first_edge[0] = 0;
  uint64_t max[MAX_FIELDS];
  uint32_t mult[MAX_FIELDS];
  for (uint32_t i = 0; i < h->nf; i++) {
    max[i] = (int)i == h->nf_type                            ? (uint64_t)g->n_node_types - 1
             : (int)i == h->nf_name || (int)i == h->nf_edges ? UINT32_MAX - 1
                                                             : INT64_MAX;
    mult[i] = 1;
  }
  int e;
  for (;;) {
    /* grown as the nodes come (node_count may be garbled) */
    if (n >= h->node_cap && n < want && (rc = grow_nodes(h, next_cap(h->node_cap, want))) < 0)
      return rc;
    read_nodes_fast(h, want, &n, &f, &edges, max, mult);
    if (n >= h->node_cap && n < want) continue;
    if ((e = pl__jr_elem(r)) <= 0) break;
    if (n >= want) return pl__jr_failf(r, "more nodes than node_count (%" PRIu32 ")", want);
    int64_t vmax = (int)f == h->nf_type ? (int64_t)g->n_node_types - 1 : INT64_MAX;
    if ((int)f == h->nf_name || (int)f == h->nf_edges) vmax = UINT32_MAX - 1;
    if ((rc = pl__jr_int(
             r, 0, vmax, &v,
             (int)f == h->nf_type ? "a node type index in range" : "a non-negative integer")) < 0)
      return rc;
    if ((int)f == h->nf_edges && edges + (uint64_t)v > (uint64_t)h->edge_count)
      return pl__jr_failf(r, "the nodes' edge counts pass edge_count (%" PRId64 ")", h->edge_count);
    store_node_field(h, n, f, (uint64_t)v, &edges);
    if (++f == h->nf) f = 0, n++;
  }
  if (e < 0) return e;
  if (f != 0 || n != want)
    return pl__jr_failf(r,
                        "the nodes array holds %" PRIu32 " whole nodes%s, node_count says %" PRIu32,
                        n, f ? " and part of one" : "", want);
  if (edges != (uint64_t)h->edge_count)
    return pl__jr_failf(r, "the nodes' edge counts sum to %" PRIu64 ", edge_count says %" PRId64,
                        edges, h->edge_count);
  g->node_count = n;
  h->have_nodes = 1;
  return 0;
}

/* One edge field's value v (checked) into edge n. */
static inline void store_edge_field(hs_reader *h, uint32_t n, uint32_t f, uint64_t v) {
  pl_heap_graph *g = h->g;
  if ((int)f == h->ef_type)
    g->edge_type[n] = (uint8_t)v;
  else if ((int)f == h->ef_name)
    g->edge_name[n] = (uint32_t)v;
  else if ((int)f == h->ef_to)
    g->edge_to[n] = (uint32_t)(v / h->nf);
}

static int read_edges(hs_reader *h) {
  pl__jreader *r = &h->r;
  pl_heap_graph *g = h->g;
  if (!h->have_meta) return pl__jr_failf(r, "\"edges\" before the snapshot's meta");
  if (h->have_edges) return pl__jr_failf(r, "\"edges\" given twice");
  int rc;
  if ((rc = pl__jr_expect(r, PL__JT_ARR, "the edges array")) < 0) return rc;
  uint32_t want = (uint32_t)h->edge_count, n = 0, f = 0;
  int64_t v, to_max = (int64_t)h->node_count * h->nf - 1; /* < 2^32 * 64 */
  if ((rc = grow_edges(h, want < FIRST_CAP ? want : FIRST_CAP)) < 0) return rc;
  /* the fast path's bounds: those below, for batch edges at a time */
  enum { VALS = 768 };
  uint64_t max[VALS], vals[VALS];
  uint32_t mult[VALS], batch = VALS / h->ef; /* ef <= MAX_FIELDS: at least 12 */
  for (uint32_t i = 0; i < batch * h->ef; i++) {
    uint32_t k = i % h->ef;
    max[i] = (int)k == h->ef_type ? (uint64_t)g->n_edge_types - 1
             : (int)k == h->ef_to ? (uint64_t)to_max
                                  : (uint64_t)UINT32_MAX - 1;
    mult[i] = (int)k == h->ef_to ? h->nf : 1;
  }
  int e;
  for (;;) {
    /* fast: up to batch edges at a time, never past edge_count nor the
     * arrays' room (grown as the edges come: edge_count may be garbled) */
    for (;;) {
      if (n >= h->edge_cap && n < want && (rc = grow_edges(h, next_cap(h->edge_cap, want))) < 0)
        return rc;
      uint32_t room = (want < h->edge_cap ? want : h->edge_cap) - n;
      size_t ask = (size_t)(room < batch ? room : batch) * h->ef - f;
      if (!room) break;
      size_t k = pl__jr_uints(r, vals, ask, max + f, mult + f);
      for (size_t i = 0; i < k; i++) {
        store_edge_field(h, n, f, vals[i]);
        if (++f == h->ef) f = 0, n++;
      }
      if (k < ask) break;
    }
    if ((e = pl__jr_elem(r)) <= 0) break;
    if (n >= want) return pl__jr_failf(r, "more edges than edge_count (%" PRIu32 ")", want);
    int64_t vmax = (int)f == h->ef_type ? (int64_t)g->n_edge_types - 1
                   : (int)f == h->ef_to ? to_max
                                        : (int64_t)UINT32_MAX - 1;
    if ((rc = pl__jr_int(r, 0, vmax, &v,
                         (int)f == h->ef_type ? "an edge type index in range"
                         : (int)f == h->ef_to ? "a to_node index inside the nodes array"
                                              : "a non-negative integer")) < 0)
      return rc;
    if ((int)f == h->ef_to && v % h->nf)
      return pl__jr_failf(r, "to_node %" PRId64 " is not a multiple of the %" PRIu32 " node fields",
                          v, h->nf);
    store_edge_field(h, n, f, (uint64_t)v);
    if (++f == h->ef) f = 0, n++;
  }
  if (e < 0) return e;
  if (f != 0 || n != want)
    return pl__jr_failf(r,
                        "the edges array holds %" PRIu32 " whole edges%s, edge_count says %" PRIu32,
                        n, f ? " and part of one" : "", want);
  g->edge_count = n;
  h->have_edges = 1;
  return 0;
}

/* "locations": [object_index, script_id, line, column] per entry (or the
 * order location_fields gives); object_index must name a node. */
static int read_locations(hs_reader *h) {
  pl__jreader *r = &h->r;
  pl_heap_graph *g = h->g;
  if (!h->have_meta) return pl__jr_failf(r, "\"locations\" before the snapshot's meta");
  if (g->locations) return pl__jr_failf(r, "\"locations\" given twice");
  if (h->lf_node < 0 || h->lf_script < 0 || h->lf_line < 0 || h->lf_col < 0)
    return pl__jr_skip_value(r); /* fields we do not know: not used */
  int rc, e;
  if ((rc = pl__jr_expect(r, PL__JT_ARR, "the locations array")) < 0) return rc;
  uint32_t n = 0, f = 0, vals[4] = {0};
  int64_t v, node_max = h->node_count * (int64_t)h->nf - 1;
  while ((e = pl__jr_elem(r)) > 0) {
    int is_node = (int)f == h->lf_node;
    if ((rc = pl__jr_int(
             r, 0, is_node ? node_max : (int64_t)UINT32_MAX, &v,
             is_node ? "a node index inside the nodes array" : "a non-negative integer")) < 0)
      return rc;
    if (is_node && v % h->nf)
      return pl__jr_failf(
          r, "object_index %" PRId64 " is not a multiple of the %" PRIu32 " node fields", v, h->nf);
    if (is_node)
      vals[0] = (uint32_t)(v / h->nf);
    else if ((int)f == h->lf_script)
      vals[1] = (uint32_t)v;
    else if ((int)f == h->lf_line)
      vals[2] = (uint32_t)v;
    else if ((int)f == h->lf_col)
      vals[3] = (uint32_t)v;
    if (++f < h->lf) continue;
    f = 0;
    if (n >= UINT32_MAX / 4 - 1) return pl__jr_failf(r, "too many locations");
    if (n >= h->loc_cap) {
      uint32_t c = next_cap(h->loc_cap, UINT32_MAX / 4 - 1);
      if (grow((void **)&g->locations, (size_t)c * 4, 4)) return -ENOMEM;
      h->loc_cap = c;
    }
    memcpy(g->locations + 4 * (size_t)n, vals, sizeof(vals));
    n++;
  }
  if (e < 0) return e;
  if (f) return pl__jr_failf(r, "the locations array ends inside an entry");
  if (!g->locations && grow((void **)&g->locations, 4, 4)) return -ENOMEM;
  g->nlocations = n;
  return 0;
}

static int read_strings(hs_reader *h) {
  pl__jreader *r = &h->r;
  pl_heap_graph *g = h->g;
  if (h->have_strings) return pl__jr_failf(r, "\"strings\" given twice");
  int rc, e;
  if ((rc = pl__jr_expect(r, PL__JT_ARR, "the strings array")) < 0) return rc;
  while ((e = pl__jr_elem(r)) > 0) {
    if (r->tok != PL__JT_STR) return pl__jr_fail(r, "a string");
    if (h->str_n >= UINT32_MAX - 1) return pl__jr_failf(r, "too many strings");
    if (h->str_n >= h->str_off_cap) {
      uint32_t c = next_cap(h->str_off_cap, UINT32_MAX - 1);
      if (grow((void **)&h->str_off, c, sizeof(*h->str_off))) return -ENOMEM;
      h->str_off_cap = c;
    }
    size_t len = r->str.len;
    if (h->str_cap - h->str_bytes < len + 1) {
      size_t c = h->str_cap ? h->str_cap : 65536;
      while (c - h->str_bytes < len + 1) {
        if (c > SIZE_MAX / 2) return -EFBIG;
        c *= 2;
      }
      if (grow((void **)&g->string_data, c, 1)) return -ENOMEM;
      h->str_cap = c;
    }
    if (len) memcpy(g->string_data + h->str_bytes, r->str.data, len);
    g->string_data[h->str_bytes + len] = '\0';
    h->str_off[h->str_n++] = h->str_bytes;
    h->str_bytes += len + 1;
  }
  if (e < 0) return e;
  g->strings = malloc((h->str_n ? h->str_n : 1) * sizeof(*g->strings));
  if (!g->strings) return -ENOMEM;
  for (uint32_t i = 0; i < h->str_n; i++) g->strings[i] = g->string_data + h->str_off[i];
  g->nstrings = h->str_n;
  h->have_strings = 1;
  return 0;
}

static int read_all(hs_reader *h) {
  pl__jreader *r = &h->r;
  int rc, k;
  if ((rc = pl__jr_expect(r, PL__JT_OBJ, "a heap snapshot (a JSON object)")) < 0) return rc;
  while ((k = pl__jr_key(r)) > 0) {
    if (pl__jr_is(r, "snapshot")) {
      if (h->have_meta) return pl__jr_failf(r, "\"snapshot\" given twice");
      rc = read_snapshot(h);
    } else if (pl__jr_is(r, "nodes")) {
      rc = read_nodes(h);
    } else if (pl__jr_is(r, "edges")) {
      rc = read_edges(h);
    } else if (pl__jr_is(r, "locations")) {
      rc = read_locations(h);
    } else if (pl__jr_is(r, "strings")) {
      rc = read_strings(h);
    } else {
      rc = pl__jr_skip_value(r); /* trace_function_infos, trace_tree, samples, locations */
    }
    if (rc < 0) return rc;
  }
  if (k < 0) return k;
  if ((rc = pl__jr_expect(r, PL__JT_END, "the end of the file")) < 0) return rc;
  if (!h->have_meta || !h->have_nodes || !h->have_edges || !h->have_strings)
    return pl__jr_failf(r,
                        "a heap snapshot needs \"snapshot\", \"nodes\", \"edges\" and "
                        "\"strings\"; \"%s\" is missing",
                        !h->have_meta    ? "snapshot"
                        : !h->have_nodes ? "nodes"
                        : !h->have_edges ? "edges"
                                         : "strings");
  char msg[200];
  if (pl_heap_graph_check(h->g, msg, sizeof(msg)) < 0)
    return pl__jr_failf(r, "inconsistent snapshot: %s", msg);
  return 0;
}

int pl__heapsnapshot_read(pl__rsrc *src, pl_heap_graph **out, pl__read_err *err) {
  *out = NULL;
  hs_reader h;
  memset(&h, 0, sizeof(h));
  h.node_count = h.edge_count = -1;
  h.nf_det = -1;
  h.lf = 4; /* Node's location_fields when the meta does not list them */
  h.lf_node = 0, h.lf_script = 1, h.lf_line = 2, h.lf_col = 3;
  h.g = pl_heap_graph_new();
  if (!h.g) return -ENOMEM;
  int rc = pl__jr_init(&h.r, src, err);
  if (rc == 0) rc = read_all(&h);
  pl__jr_free(&h.r);
  free(h.str_off);
  if (rc < 0) {
    pl_heap_graph_free(h.g);
    return rc;
  }
  *out = h.g;
  return 0;
}
