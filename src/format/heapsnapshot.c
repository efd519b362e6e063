/* Chrome .heapsnapshot writer (see heap_writers.h for the graph and ids).
 *
 * Memory: a few 32-bit integers per sample and per group (group of each
 * sample, members by group); the JSON is formatted straight into the
 * sink's buffer, one node or edge per line, and flushed as it goes.
 */
#include "format/heap_writers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/put_u64.h"
#include "common/radix_sort.h"
#include "common/util.h"
#include "format/cpu_common.h"
#include "format/hashtab.h"
#include "format/heap_common.h"

#define NONE UINT32_MAX

/* Node 20's meta (reference/cdp/node20-heapsnapshot-meta-excerpt.json). */
static const char META[] =
    "{\"node_fields\":[\"type\",\"name\",\"id\",\"self_size\",\"edge_count\",\"trace_node_id\","
    "\"detachedness\"],"
    "\"node_types\":[[\"hidden\",\"array\",\"string\",\"object\",\"code\",\"closure\",\"regexp\","
    "\"number\",\"native\",\"synthetic\",\"concatenated string\",\"sliced string\",\"symbol\","
    "\"bigint\",\"object shape\",\"wasm object\"],\"string\",\"number\",\"number\",\"number\","
    "\"number\",\"number\"],"
    "\"edge_fields\":[\"type\",\"name_or_index\",\"to_node\"],"
    "\"edge_types\":[[\"context\",\"element\",\"property\",\"internal\",\"hidden\",\"shortcut\","
    "\"weak\"],\"string_or_number\",\"node\"],"
    "\"trace_function_info_fields\":[\"function_id\",\"name\",\"script_name\",\"script_id\","
    "\"line\",\"column\"],"
    "\"trace_node_fields\":[\"id\",\"function_info_index\",\"count\",\"size\",\"children\"],"
    "\"sample_fields\":[\"timestamp_us\",\"last_assigned_id\"],"
    "\"location_fields\":[\"object_index\",\"script_id\",\"line\",\"column\"]}";

enum { NODE_FIELDS = 7 };
enum { TYPE_NATIVE = 8, TYPE_SYNTHETIC = 9 }; /* node_types[0] */
enum { EDGE_ELEMENT = 1, EDGE_SHORTCUT = 5 }; /* edge_types[0] */
_Static_assert(TYPE_NATIVE == 8 && EDGE_ELEMENT == 1,
               "put_alloc_node and put_element_edge write these");

typedef struct hs_ctx {
  pl__heap_view v;
  pl__strtab strs;       /* strings[]: "" (the root's name) first */
  pl__keytab groups;     /* (name string, 0, 0) -> group, in order of first use */
  pl__keytab used_ids;   /* (grouping node id, 0, 0) */
  uint32_t *stack_group; /* by stack: group, NONE when no sample names it */
  uint32_t *group_start; /* by group (+1): first index in members */
  uint32_t *members;     /* sample indices, grouped, in sample order */
  uint32_t *group_id;    /* by group: its node id (even) */
} hs_ctx;

/* Group of every stack that samples name, group sizes and grouping node
 * ids, from the view's samples per stack: no pass over the samples before
 * the first bytes. Groups are numbered in order of first use by the
 * samples (the stacks by their first sample). The members by group wait
 * for the edges (build_members). */
static int build_groups(hs_ctx *c) {
  const pl_heap_snapshot *s = c->v.s;
  size_t ns = s->nstacks ? s->nstacks : 1, used = 0;
  c->stack_group = malloc(ns * sizeof(*c->stack_group));
  c->group_start = calloc(ns + 1, sizeof(*c->group_start)); /* a group per stack at most */
  pl__key_ix *order = malloc(2 * ns * sizeof(*order));
  if (!c->stack_group || !c->group_start || !order) {
    free(order);
    return -ENOMEM;
  }
  memset(c->stack_group, 0xff, s->nstacks * sizeof(*c->stack_group));
  for (size_t si = 0; si < s->nstacks; si++)
    if (c->v.samples[si]) order[used++] = (pl__key_ix){c->v.first_sample[si], si};
  const pl__key_ix *by_first = pl__radix_sort(order, order + ns, used, s->nsamples);
  int rc = pl__strtab_intern(&c->strs, "") < 0 ? -ENOMEM : 0;
  for (size_t k = 0; k < used && !rc; k++) {
    size_t si = by_first[k].ix;
    int64_t name = pl__strtab_intern(&c->strs, pl__heap_alloc_name(&c->v, si));
    int64_t g = name < 0 ? name : pl__keytab_intern(&c->groups, (uint32_t)name, 0, 0, NULL);
    if (g < 0) {
      rc = (int)g;
      break;
    }
    c->stack_group[si] = (uint32_t)g;
    c->group_start[g + 1] += c->v.samples[si];
  }
  free(order);
  if (rc) return rc;

  size_t ng = c->groups.n;
  for (size_t g = 0; g < ng; g++) c->group_start[g + 1] += c->group_start[g];
  c->group_id = malloc((ng ? ng : 1) * sizeof(*c->group_id));
  if (!c->group_id) return -ENOMEM;

  /* Even ids in [2, 2^32 - 2], from the name; the next free one on a collision. */
  for (size_t g = 0; g < ng; g++) {
    uint64_t k = pl__fnv1a(c->strs.strs[c->groups.keys[g].a]) % 2147483647u; /* 2^31 - 1 */
    for (;;) {
      uint32_t id = (uint32_t)(2 + 2 * k);
      int added;
      if (pl__keytab_intern(&c->used_ids, id, 0, 0, &added) < 0) return -ENOMEM;
      if (added) {
        c->group_id[g] = id;
        break;
      }
      k = (k + 1) % 2147483647u;
    }
  }
  return 0;
}

/* Sample indices by group, in sample order within each. */
static int build_members(hs_ctx *c) {
  const pl_heap_snapshot *s = c->v.s;
  size_t ng = c->groups.n;
  c->members = malloc((s->nsamples ? s->nsamples : 1) * sizeof(*c->members));
  uint32_t *next = malloc((ng ? ng : 1) * sizeof(*next));
  if (!c->members || !next) {
    free(next);
    return -ENOMEM;
  }
  memcpy(next, c->group_start, ng * sizeof(*next));
  for (size_t i = 0; i < s->nsamples; i++)
    c->members[next[c->stack_group[s->samples[i].stack]]++] = (uint32_t)i;
  free(next);
  return 0;
}

/* ---- output ------------------------------------------------------------- */

/* One node or edge: "[,]a,b,c...", formatted in place at the buffer's end.
 * Rows are not put on lines of their own (Node's files do): a newline is
 * one more byte to escape in every row of a snapshot streamed over the
 * DevTools protocol, and a string with escapes is several times slower
 * for the client's JSON.parse than one without. */
static void put_row(pl__sink *out, int first, const uint64_t *f, int nf) {
  pl_buf *b = &out->buf;
  if (pl_buf_reserve(b, (size_t)nf * 21 + 2)) return; /* failed: the sink reports it */
  char *p = b->data + b->len;
  if (!first) *p++ = ',';
  for (int i = 0; i < nf; i++) {
    if (i) *p++ = ',';
    p = pl__put_u64(p, f[i]);
  }
  *p = '\0';
  b->len = (size_t)(p - b->data);
}

/* Rows are formatted in batches: room for BATCH of the longest is made
 * once, and the sink may flush after each batch (so a chunk is up to one
 * batch past its size). */
enum { BATCH = 64, NODE_MAX = 3 * 20 + 12, EDGE_MAX = 2 * 20 + 5 };

/* An allocation's node at p: ",8,<name>,<id>,<size>,0,0,0" (native, no
 * edges). Returns the end. */
static char *put_alloc_node(char *p, uint64_t name, uint64_t id, uint64_t size) {
  memcpy(p, ",8,", 3);
  p = pl__put_u64(p + 3, name);
  *p++ = ',';
  p = pl__put_u64(p, id);
  *p++ = ',';
  p = pl__put_u64(p, size);
  memcpy(p, ",0,0,0", 6);
  return p + 6;
}

/* An element edge at p: ",1,<index>,<to_node>". Returns the end. */
static char *put_element_edge(char *p, uint64_t index, uint64_t to) {
  memcpy(p, ",1,", 3);
  p = pl__put_u64(p + 3, index);
  *p++ = ',';
  return pl__put_u64(p, to);
}

/* Room at the end of the sink's buffer for n bytes, or NULL (failed: the
 * sink reports it). */
static char *room(pl__sink *out, size_t n) {
  pl_buf *b = &out->buf;
  return pl_buf_reserve(b, n) ? NULL : b->data + b->len;
}

/* The rows written at the end of the sink's buffer, up to end. */
static void rows_done(pl__sink *out, char *end) {
  pl_buf *b = &out->buf;
  *end = '\0';
  b->len = (size_t)(end - b->data);
  pl__sink_maybe_flush(out);
}

static void put_str(pl__sink *out, const char *s) {
  pl_buf_putc(&out->buf, '"');
  pl_json_escape(&out->buf, s, strlen(s));
  pl_buf_putc(&out->buf, '"');
}

static int write_json(hs_ctx *c, pl__sink *out) {
  const pl_heap_snapshot *s = c->v.s;
  size_t ng = c->groups.n, n = s->nsamples;
  uint64_t node_count = 1 + ng + n, edge_count = ng + n;
  pl_buf *b = &out->buf;

  pl_buf_puts(b, "{\"snapshot\":{\"meta\":");
  pl_buf_puts(b, META);
  pl_buf_printf(b, ",\"node_count\":%llu,\"edge_count\":%llu,\"trace_function_count\":0},\n",
                (unsigned long long)node_count, (unsigned long long)edge_count);

  /* nodes: root, grouping nodes, allocations */
  pl_buf_puts(b, "\"nodes\":[");
  uint64_t f[NODE_FIELDS] = {TYPE_SYNTHETIC, 0, 1, 0, ng, 0, 0};
  put_row(out, 1, f, NODE_FIELDS);
  for (size_t g = 0; g < ng && !out->error; g++) {
    uint64_t row[NODE_FIELDS] = {TYPE_NATIVE,
                                 c->groups.keys[g].a,
                                 c->group_id[g],
                                 0,
                                 c->group_start[g + 1] - c->group_start[g],
                                 0,
                                 0};
    put_row(out, 0, row, NODE_FIELDS);
    pl__sink_maybe_flush(out);
  }
  for (size_t i = 0; i < n && !out->error;) {
    size_t end = n - i > BATCH ? i + BATCH : n;
    char *p = room(out, (end - i) * NODE_MAX);
    if (!p) break;
    for (; i < end; i++) {
      const pl_heap_sample *x = &s->samples[i];
      uint64_t size = pl__heap_round(x->weight_bytes);
      p = put_alloc_node(p, c->groups.keys[c->stack_group[x->stack]].a,
                         (uint32_t)(x->id + PL__HEAPSNAPSHOT_ID_OFFSET),
                         size > UINT32_MAX ? UINT32_MAX : size);
    }
    rows_done(out, p);
  }

  /* edges: root -> groups (shortcut, named), group -> allocations (element [i]) */
  int rc = build_members(c);
  if (rc) return rc;
  pl_buf_puts(b, "],\n\"edges\":[");
  int first = 1;
  for (size_t g = 0; g < ng && !out->error; g++) {
    uint64_t row[3] = {EDGE_SHORTCUT, c->groups.keys[g].a, (1 + g) * NODE_FIELDS};
    put_row(out, first, row, 3);
    first = 0;
  }
  for (size_t g = 0; g < ng && !out->error; g++) {
    /* a group may hold every sample: batches keep the buffer small */
    for (uint32_t k = c->group_start[g], last = c->group_start[g + 1]; k < last && !out->error;) {
      uint32_t end = last - k > BATCH ? k + BATCH : last;
      char *p = room(out, (end - k) * EDGE_MAX);
      if (!p) break;
      for (; k < end; k++)
        p = put_element_edge(p, k - c->group_start[g], (1 + ng + c->members[k]) * NODE_FIELDS);
      rows_done(out, p);
    }
  }
  pl_buf_puts(b,
              "],\n\"trace_function_infos\":[],\n\"trace_tree\":[],\n\"samples\":[],\n"
              "\"locations\":[],\n\"strings\":[");
  for (size_t i = 0; i < c->strs.n && !out->error; i++) {
    if (i) pl_buf_puts(b, ",\n");
    put_str(out, c->strs.strs[i]);
    pl__sink_maybe_flush(out);
  }
  pl_buf_puts(b, "]}\n");
  return 0;
}

int pl__heapsnapshot_write(const pl_heap_snapshot *s, pl__sink *out) {
  if (!out) return -EINVAL;
  hs_ctx c;
  memset(&c, 0, sizeof(c));
  int rc = pl__heap_view_init(&c.v, s);
  if (rc) return rc;
  pl__strtab_init(&c.strs);
  pl__keytab_init(&c.groups);
  pl__keytab_init(&c.used_ids);

  if ((rc = build_groups(&c))) goto out;
  /* DevTools reads node and edge fields as uint32: to_node must fit. */
  if ((1 + c.groups.n + s->nsamples) * NODE_FIELDS > UINT32_MAX) {
    rc = -EOVERFLOW;
    goto out;
  }
  rc = write_json(&c, out);

out:
  pl__strtab_free(&c.strs);
  pl__keytab_free(&c.groups);
  pl__keytab_free(&c.used_ids);
  free(c.stack_group);
  free(c.group_start);
  free(c.members);
  free(c.group_id);
  pl__heap_view_free(&c.v);
  if (rc) return rc;
  return pl__sink_finish(out);
}
