/* Heap snapshots compared (src/analysis/heap_compare.h) and drawn as their
 * dominator tree by class (pl__flame_add_heap_graph, src/analysis/flame.h):
 * small hand-made snapshots with chosen ids: new, deleted and kept objects
 * per class, the order of rows and of new objects; the flame tree's frames
 * (one class under its dominator's, a list of one class one frame, siblings
 * of one class sharing one), the root's value the whole snapshot, the depth
 * cap and "(deeper)", a differential tree of two snapshots, and the SVG
 * well-formed. */
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "analysis/flame.h"
#include "analysis/heap_compare.h"
#include "common/sink.h"
#include "format/readers.h"
#include "proflab/buf.h"
#include "xml_check.h"

/* node types: hidden 0, array 1, string 2, object 3, code 4, closure 5,
 * regexp 6, number 7, native 8, synthetic 9; edge types: context 0,
 * element 1, property 2, internal 3, hidden 4, shortcut 5, weak 6 */
enum { N_NATIVE = 8, N_SYNTH = 9 };
enum { E_ELEMENT = 1, E_PROP = 2 };

typedef struct tnode {
  int type;
  const char *name;
  unsigned id, self;
} tnode;
typedef struct tedge {
  int from, type, to;
} tedge;

/* A .heapsnapshot of the nodes and edges (Node's 7 node fields). */
static char *snapshot_json(const tnode *nodes, int nn, const tedge *edges, int ne) {
  const char **strs = calloc((size_t)nn + 2, sizeof(*strs));
  assert_non_null(strs);
  int ns = 0;
  strs[ns++] = "";
  strs[ns++] = "p";
  pl_buf b;
  pl_buf_init(&b);
  pl_buf_printf(&b,
                "{\"snapshot\":{\"meta\":{\"node_fields\":[\"type\",\"name\",\"id\",\"self_size\","
                "\"edge_count\",\"trace_node_id\",\"detachedness\"],\"node_types\":[[\"hidden\","
                "\"array\",\"string\",\"object\",\"code\",\"closure\",\"regexp\",\"number\","
                "\"native\",\"synthetic\"],\"string\"],\"edge_fields\":[\"type\","
                "\"name_or_index\",\"to_node\"],\"edge_types\":[[\"context\",\"element\","
                "\"property\",\"internal\",\"hidden\",\"shortcut\",\"weak\"],"
                "\"string_or_number\",\"node\"]},\"node_count\":%d,\"edge_count\":%d},"
                "\"nodes\":[",
                nn, ne);
  for (int i = 0; i < nn; i++) {
    int name = -1;
    for (int s = 0; s < ns; s++)
      if (strcmp(strs[s], nodes[i].name) == 0) name = s;
    if (name < 0) strs[name = ns++] = nodes[i].name;
    int ec = 0;
    for (int e = 0; e < ne; e++) ec += edges[e].from == i;
    pl_buf_printf(&b, "%s%d,%d,%u,%u,%d,0,0", i ? "," : "", nodes[i].type, name, nodes[i].id,
                  nodes[i].self, ec);
  }
  pl_buf_printf(&b, "],\"edges\":[");
  int first = 1;
  for (int i = 0; i < nn; i++)
    for (int e = 0; e < ne; e++)
      if (edges[e].from == i) {
        pl_buf_printf(&b, "%s%d,%d,%d", first ? "" : ",", edges[e].type,
                      edges[e].type == E_ELEMENT ? e : 1, edges[e].to * 7);
        first = 0;
      }
  pl_buf_printf(&b, "],\"locations\":[],\"strings\":[");
  for (int s = 0; s < ns; s++) pl_buf_printf(&b, "%s\"%s\"", s ? "," : "", strs[s]);
  pl_buf_printf(&b, "]}");
  assert_false(pl_buf_failed(&b));
  free(strs);
  return b.data;
}

static pl_heap_graph *read_graph(const tnode *nodes, int nn, const tedge *edges, int ne) {
  char *json = snapshot_json(nodes, nn, edges, ne);
  pl__profile pf;
  pl__read_err err;
  int rc = pl__read_profile_mem(json, strlen(json), &pf, &err);
  if (rc) fail_msg("read: %d %s", rc, err.msg);
  free(json);
  assert_non_null(pf.graph);
  pl_heap_graph *g = pf.graph;
  pf.graph = NULL;
  pl__profile_free(&pf);
  return g;
}

/* A: Foo 3 (10), Foo 5 (20), Bar 7 (30); B: Foo 5 (25), Foo 9 (40), Bar 7
 * (30), Baz 11 (50). */
static const tnode a_nodes[] = {{N_SYNTH, "", 1, 0},
                                {N_NATIVE, "Foo", 3, 10},
                                {N_NATIVE, "Foo", 5, 20},
                                {N_NATIVE, "Bar", 7, 30}};
static const tedge a_edges[] = {{0, E_ELEMENT, 1}, {0, E_ELEMENT, 2}, {0, E_ELEMENT, 3}};
static const tnode b_nodes[] = {{N_SYNTH, "", 1, 0},
                                {N_NATIVE, "Bar", 7, 30},
                                {N_NATIVE, "Foo", 9, 40},
                                {N_NATIVE, "Foo", 5, 25},
                                {N_NATIVE, "Baz", 11, 50}};
static const tedge b_edges[] = {
    {0, E_ELEMENT, 1}, {0, E_ELEMENT, 2}, {0, E_ELEMENT, 3}, {0, E_ELEMENT, 4}};

static void test_compare(void **state) {
  (void)state;
  pl_heap_graph *a = read_graph(a_nodes, 4, a_edges, 3);
  pl_heap_graph *b = read_graph(b_nodes, 5, b_edges, 4);
  pl__heap_compare c;
  assert_int_equal(pl__heap_compare_build(a, b, &c), 0);
  assert_int_equal(c.nall, 3);
  assert_int_equal(c.nrows, 2); /* Bar did not change */
  const pl__hcmp_class *baz = &c.rows[0], *foo = &c.rows[1], *bar = &c.rows[2];
  assert_string_equal(baz->name, "Baz");
  assert_int_equal(baz->added, 1);
  assert_int_equal(baz->added_bytes, 50);
  assert_int_equal(baz->removed, 0);
  assert_int_equal(baz->count[0], 0);
  assert_int_equal(baz->count[1], 1);
  assert_string_equal(foo->name, "Foo");
  assert_int_equal(foo->added, 1);
  assert_int_equal(foo->added_bytes, 40);
  assert_int_equal(foo->removed, 1);
  assert_int_equal(foo->removed_bytes, 10);
  assert_int_equal(foo->d_count, 0);
  assert_int_equal(foo->d_bytes, 30);
  assert_int_equal(foo->bytes[0], 30);
  assert_int_equal(foo->bytes[1], 65); /* id 5 grew: kept, not new */
  assert_string_equal(bar->name, "Bar");
  assert_int_equal(bar->added + bar->removed, 0);
  assert_int_equal(c.nadded, 2);
  assert_int_equal(c.added[0].id, 11);
  assert_int_equal(c.added[0].self, 50);
  assert_string_equal(c.rows[c.added[0].cls].name, "Baz");
  assert_int_equal(c.added[1].id, 9);
  assert_string_equal(c.rows[c.added[1].cls].name, "Foo");
  assert_int_equal(c.added[1].node, 2);
  assert_int_equal(c.removed, 1);
  assert_int_equal(c.bytes[0], 60);
  assert_int_equal(c.bytes[1], 145);
  assert_int_equal(c.nodes[1], 5);
  pl__heap_compare_free(&c);
  /* nothing changed: no rows, every class unchanged */
  assert_int_equal(pl__heap_compare_build(a, a, &c), 0);
  assert_int_equal(c.nrows, 0);
  assert_int_equal(c.nall, 2);
  assert_int_equal(c.nadded, 0);
  pl__heap_compare_free(&c);
  pl_heap_graph_free(a);
  pl_heap_graph_free(b);
}

/* The flame tree's frame named name under parent, or PL__FLAME_NONE. */
static uint32_t frame(const pl__flame_tree *t, uint32_t parent, const char *name) {
  for (uint32_t i = t->nodes[parent].first_child; i != PL__FLAME_NONE; i = t->nodes[i].next_sibling)
    if (strcmp(t->fns[t->nodes[i].fn].name, name) == 0) return i;
  return PL__FLAME_NONE;
}

static void add_graph(pl__flame_tree *t, int side, const pl_heap_graph *g) {
  pl__heap_classes hc;
  assert_int_equal(pl__heap_classify(g, &hc), 0);
  assert_int_equal(pl__flame_add_heap_graph(t, side, g, &hc), 0);
  pl__heap_classes_free(&hc);
}

static void test_flame_tree(void **state) {
  (void)state;
  /* root -> L1 -> L2 -> L3 -> M4; root -> L5 (a sibling of one class);
   * L1 -> M6, dominated by L1 */
  static const tnode n[] = {{N_SYNTH, "", 1, 0},    {N_NATIVE, "L", 3, 1}, {N_NATIVE, "L", 5, 2},
                            {N_NATIVE, "L", 7, 4},  {N_NATIVE, "M", 9, 8}, {N_NATIVE, "L", 11, 16},
                            {N_NATIVE, "M", 13, 32}};
  static const tedge e[] = {{0, E_ELEMENT, 1}, {1, E_PROP, 2},    {2, E_PROP, 3},
                            {3, E_PROP, 4},    {0, E_ELEMENT, 5}, {1, E_PROP, 6}};
  pl_heap_graph *g = read_graph(n, 7, e, 6);
  pl__flame_tree t;
  assert_int_equal(pl__flame_init(&t, PL__FLAME_BYTES, 0), 0);
  add_graph(&t, PL__FLAME_MAIN, g);
  assert_int_equal(pl__flame_finish(&t), 0);
  assert_int_equal(t.nodes[0].total[0], 63); /* every self size */
  assert_int_equal(t.samples[0], 7);
  uint32_t l = frame(&t, 0, "L");
  assert_int_not_equal(l, PL__FLAME_NONE);
  assert_int_equal(t.nodes[l].self[0], 1 + 2 + 4 + 16);
  assert_int_equal(t.nodes[l].total[0], 63);
  uint32_t m = frame(&t, l, "M");
  assert_int_not_equal(m, PL__FLAME_NONE);
  assert_int_equal(t.nodes[m].self[0], 40); /* M4 and M6 share L's child */
  assert_int_equal(t.nnodes, 3);
  assert_int_equal(t.max_depth, 2);
  /* the SVG is well-formed XML */
  pl__sink s;
  pl__sink_init_mem(&s);
  pl__flame_svg_opts o = {.palette = PL__FLAME_MEM};
  assert_int_equal(pl__flame_write_svg(&t, &o, &s, NULL), 0);
  assert_int_equal(pl__sink_finish(&s), 0);
  size_t at = 0, elements = 0;
  const char *err = xml_check(s.buf.data, s.buf.len, &at, &elements);
  if (err) fail_msg("not well-formed at %zu: %s", at, err);
  pl__sink_free(&s);
  pl__flame_free(&t);
  /* wrong unit, finished tree */
  assert_int_equal(pl__flame_init(&t, PL__FLAME_SAMPLES, 0), 0);
  pl__heap_classes hc;
  assert_int_equal(pl__heap_classify(g, &hc), 0);
  assert_int_equal(pl__flame_add_heap_graph(&t, PL__FLAME_MAIN, g, &hc), -EINVAL);
  pl__flame_free(&t);
  pl__heap_classes_free(&hc);
  pl_heap_graph_free(g);
}

static void test_flame_depth_cap(void **state) {
  (void)state;
  /* a chain of 300 alternating X, Y */
  enum { N = 301 };
  tnode *n = calloc(N, sizeof(*n));
  tedge *e = calloc(N, sizeof(*e));
  assert_non_null(n);
  assert_non_null(e);
  n[0] = (tnode){N_SYNTH, "", 1, 0};
  for (int i = 1; i < N; i++) {
    n[i] = (tnode){N_NATIVE, i % 2 ? "X" : "Y", 2 * (unsigned)i + 1, 1};
    e[i - 1] = (tedge){i - 1, i == 1 ? E_ELEMENT : E_PROP, i};
  }
  pl_heap_graph *g = read_graph(n, N, e, N - 1);
  pl__flame_tree t;
  assert_int_equal(pl__flame_init(&t, PL__FLAME_BYTES, 0), 0);
  add_graph(&t, PL__FLAME_MAIN, g);
  assert_int_equal(pl__flame_finish(&t), 0);
  assert_int_equal(t.max_depth, PL__FLAME_HEAP_DEPTH + 1);
  assert_int_equal(t.nnodes, 1 + PL__FLAME_HEAP_DEPTH + 1);
  uint32_t deepest = PL__FLAME_NONE;
  for (uint32_t i = 0; i < t.nnodes; i++)
    if (t.nodes[i].depth == PL__FLAME_HEAP_DEPTH + 1) deepest = i;
  assert_int_not_equal(deepest, PL__FLAME_NONE);
  assert_string_equal(t.fns[t.nodes[deepest].fn].name, "(deeper)");
  assert_int_equal(t.nodes[deepest].self[0], 300 - PL__FLAME_HEAP_DEPTH);
  assert_int_equal(t.nodes[0].total[0], 300);
  pl__flame_free(&t);
  pl_heap_graph_free(g);
  free(n);
  free(e);
}

static void test_flame_diff(void **state) {
  (void)state;
  pl_heap_graph *a = read_graph(a_nodes, 4, a_edges, 3);
  pl_heap_graph *b = read_graph(b_nodes, 5, b_edges, 4);
  pl__heap_compare c;
  assert_int_equal(pl__heap_compare_build(a, b, &c), 0);
  pl__flame_tree t;
  assert_int_equal(pl__flame_init(&t, PL__FLAME_BYTES, 0), 0);
  assert_int_equal(pl__flame_add_heap_graph(&t, PL__FLAME_MAIN, b, &c.cls[PL__HCMP_B]), 0);
  assert_int_equal(pl__flame_add_heap_graph(&t, PL__FLAME_BASE, a, &c.cls[PL__HCMP_A]), 0);
  assert_int_equal(pl__flame_finish(&t), 0);
  assert_int_equal(t.nodes[0].total[PL__FLAME_MAIN], 145);
  assert_int_equal(t.nodes[0].total[PL__FLAME_BASE], 60);
  uint32_t foo = frame(&t, 0, "Foo"), baz = frame(&t, 0, "Baz");
  assert_int_not_equal(foo, PL__FLAME_NONE);
  assert_int_equal(t.nodes[foo].total[PL__FLAME_MAIN], 65);
  assert_int_equal(t.nodes[foo].total[PL__FLAME_BASE], 30);
  assert_int_equal(t.nodes[baz].total[PL__FLAME_BASE], 0);
  assert_int_equal(t.nnodes, 4);
  pl__flame_free(&t);
  pl__heap_compare_free(&c);
  pl_heap_graph_free(a);
  pl_heap_graph_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_compare),
      cmocka_unit_test(test_flame_tree),
      cmocka_unit_test(test_flame_depth_cap),
      cmocka_unit_test(test_flame_diff),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
