/* Heap graphs (src/format/read_heapsnapshot.c, src/analysis/dominators.h):
 * small hand-made snapshots read through pl__read_profile_mem, with known
 * dominators and retained sizes (a diamond, a chain, weak edges, shortcut
 * edges, a page-owned object, an unreachable cycle), the Summary's classes
 * (one class nested in itself counts once, shallow sizes moving to owners),
 * the meta variants (5 and 7 node fields, other orders, trace keys before
 * the strings) and the reader's errors with their offsets. */
#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "analysis/dominators.h"
#include "format/readers.h"
#include "proflab/buf.h"

/* node types: hidden 0, array 1, string 2, object 3, code 4, closure 5,
 * regexp 6, number 7, native 8, synthetic 9; edge types: context 0,
 * element 1, property 2, internal 3, hidden 4, shortcut 5, weak 6 */
enum { N_HIDDEN = 0, N_ARRAY = 1, N_OBJECT = 3, N_NATIVE = 8, N_SYNTH = 9 };
enum { E_ELEMENT = 1, E_PROP = 2, E_SHORTCUT = 5, E_WEAK = 6 };

typedef struct tnode {
  int type;
  const char *name;
  unsigned self;
} tnode;
typedef struct tedge {
  int from, type, to;
} tedge;

#define MAXS 64

/* Node 20's layout (7 node fields) unless five; strings: "" then names. */
static char *snapshot_json(const tnode *nodes, int nn, const tedge *edges, int ne, int five) {
  const char *strs[MAXS];
  int ns = 0;
  strs[ns++] = "";
  strs[ns++] = "p";
  pl_buf b;
  pl_buf_init(&b);
  pl_buf_printf(&b,
                "{\"snapshot\":{\"meta\":{\"node_fields\":[\"type\",\"name\",\"id\",\"self_size\","
                "\"edge_count\"%s],\"node_types\":[[\"hidden\",\"array\",\"string\",\"object\","
                "\"code\",\"closure\",\"regexp\",\"number\",\"native\",\"synthetic\"],\"string\"],"
                "\"edge_fields\":[\"type\",\"name_or_index\",\"to_node\"],\"edge_types\":[["
                "\"context\",\"element\",\"property\",\"internal\",\"hidden\",\"shortcut\","
                "\"weak\"],\"string_or_number\",\"node\"]},\"node_count\":%d,\"edge_count\":%d},"
                "\"nodes\":[",
                five ? "" : ",\"trace_node_id\",\"detachedness\"", nn, ne);
  int nf = five ? 5 : 7;
  for (int i = 0; i < nn; i++) {
    int name = -1;
    for (int s = 0; s < ns; s++)
      if (strcmp(strs[s], nodes[i].name) == 0) name = s;
    if (name < 0) strs[name = ns++] = nodes[i].name;
    int ec = 0;
    for (int e = 0; e < ne; e++) ec += edges[e].from == i;
    pl_buf_printf(&b, "%s%d,%d,%d,%u,%d%s", i ? "," : "", nodes[i].type, name, 2 * i + 1,
                  nodes[i].self, ec, five ? "" : ",0,0");
  }
  pl_buf_printf(&b, "],\"edges\":[");
  int first = 1;
  for (int i = 0; i < nn; i++)
    for (int e = 0; e < ne; e++)
      if (edges[e].from == i) {
        pl_buf_printf(&b, "%s%d,%d,%d", first ? "" : ",", edges[e].type,
                      edges[e].type == E_ELEMENT ? e : 1, edges[e].to * nf);
        first = 0;
      }
  pl_buf_printf(&b,
                "],\"trace_function_infos\":[],\"trace_tree\":[],\"samples\":[],"
                "\"locations\":[],\"strings\":[");
  for (int s = 0; s < ns; s++) pl_buf_printf(&b, "%s\"%s\"", s ? "," : "", strs[s]);
  pl_buf_printf(&b, "]}");
  assert_false(pl_buf_failed(&b));
  return b.data;
}

static pl_heap_graph *read_graph(const char *json) {
  pl__profile pf;
  pl__read_err err;
  int rc = pl__read_profile_mem(json, strlen(json), &pf, &err);
  if (rc) fail_msg("read: %d %s", rc, err.msg);
  assert_int_equal(pf.kind, PL__KIND_HEAPSNAPSHOT);
  assert_non_null(pf.graph);
  pl_heap_graph *g = pf.graph;
  pf.graph = NULL;
  pl__profile_free(&pf);
  return g;
}

typedef struct result {
  uint32_t idom[32];
  uint64_t ret[32];
  uint32_t unreachable;
} result;

static void dominate(const tnode *nodes, int nn, const tedge *edges, int ne, result *r) {
  for (int five = 0; five <= 1; five++) {
    char *json = snapshot_json(nodes, nn, edges, ne, five);
    pl_heap_graph *g = read_graph(json);
    assert_int_equal(g->node_count, nn);
    assert_int_equal(g->edge_count, ne);
    assert_int_equal(pl__heap_dominators(g, NULL, r->idom, r->ret, &r->unreachable), 0);
    pl_heap_graph_free(g);
    free(json);
  }
}

static void test_diamond(void **state) {
  (void)state;
  /* root -> A -> {B, C} -> D */
  static const tnode n[] = {{N_SYNTH, "", 0},
                            {N_NATIVE, "A", 1},
                            {N_NATIVE, "B", 10},
                            {N_NATIVE, "C", 100},
                            {N_NATIVE, "D", 1000}};
  static const tedge e[] = {
      {0, E_ELEMENT, 1}, {1, E_PROP, 2}, {1, E_PROP, 3}, {2, E_PROP, 4}, {3, E_PROP, 4}};
  result r;
  dominate(n, 5, e, 5, &r);
  uint32_t want[] = {0, 0, 1, 1, 1};
  for (int i = 0; i < 5; i++) assert_int_equal(r.idom[i], want[i]);
  assert_int_equal(r.ret[1], 1111);
  assert_int_equal(r.ret[2], 10);
  assert_int_equal(r.ret[3], 100);
  assert_int_equal(r.ret[0], 1111);
  assert_int_equal(r.unreachable, 0);
}

static void test_chain(void **state) {
  (void)state;
  /* root -> 1 -> 2 -> 3, and 3 -> 1 (a back edge changes nothing) */
  static const tnode n[] = {
      {N_SYNTH, "", 0}, {N_NATIVE, "a", 1}, {N_NATIVE, "b", 2}, {N_NATIVE, "c", 4}};
  static const tedge e[] = {{0, E_ELEMENT, 1}, {1, E_PROP, 2}, {2, E_PROP, 3}, {3, E_PROP, 1}};
  result r;
  dominate(n, 4, e, 4, &r);
  assert_int_equal(r.idom[1], 0);
  assert_int_equal(r.idom[2], 1);
  assert_int_equal(r.idom[3], 2);
  assert_int_equal(r.ret[1], 7);
  assert_int_equal(r.ret[2], 6);
  assert_int_equal(r.ret[3], 4);
}

static void test_weak(void **state) {
  (void)state;
  /* root -> A -> X; root -> B -weak-> X: A dominates X. root -weak-> Y:
   * Y has only weak retainers, hangs under the root, is unreachable.
   * Z <-> W: a cycle nothing reaches, each under the root. */
  static const tnode n[] = {{N_SYNTH, "", 0},   {N_NATIVE, "A", 1}, {N_NATIVE, "B", 2},
                            {N_NATIVE, "X", 4}, {N_NATIVE, "Y", 8}, {N_NATIVE, "Z", 16},
                            {N_NATIVE, "W", 32}};
  static const tedge e[] = {{0, E_ELEMENT, 1}, {0, E_ELEMENT, 2}, {1, E_PROP, 3}, {2, E_WEAK, 3},
                            {0, E_WEAK, 4},    {5, E_PROP, 6},    {6, E_PROP, 5}};
  result r;
  dominate(n, 7, e, 7, &r);
  assert_int_equal(r.idom[3], 1);
  assert_int_equal(r.ret[1], 5);
  assert_int_equal(r.ret[2], 2);
  assert_int_equal(r.idom[4], 0);
  assert_int_equal(r.idom[5], 0);
  assert_int_equal(r.idom[6], 0);
  assert_int_equal(r.unreachable, 3);
  assert_int_equal(r.ret[0], 63);
}

static void test_shortcut(void **state) {
  (void)state;
  /* root -shortcut-> G (page-owned, as DevTools' Window): G -> X.
   * root -> H -> X: H is not page-owned, so its edge to X does not retain.
   * root -> A -> B, C -shortcut-> B: shortcuts retain only from the root. */
  static const tnode n[] = {{N_SYNTH, "", 0},   {N_NATIVE, "G", 1}, {N_NATIVE, "X", 2},
                            {N_NATIVE, "H", 4}, {N_NATIVE, "A", 8}, {N_NATIVE, "B", 16},
                            {N_NATIVE, "C", 32}};
  static const tedge e[] = {{0, E_SHORTCUT, 1}, {1, E_PROP, 2},    {0, E_ELEMENT, 3},
                            {3, E_PROP, 2},     {0, E_ELEMENT, 4}, {4, E_PROP, 5},
                            {0, E_ELEMENT, 6},  {6, E_SHORTCUT, 5}};
  result r;
  dominate(n, 7, e, 8, &r);
  assert_int_equal(r.idom[1], 0);
  assert_int_equal(r.idom[2], 1);
  assert_int_equal(r.ret[1], 3);
  assert_int_equal(r.ret[3], 4);
  assert_int_equal(r.idom[5], 4);
  assert_int_equal(r.ret[4], 24);
  assert_int_equal(r.ret[6], 32);
}

static const pl__heap_class *find(const pl__heap_summary *s, const char *name) {
  for (size_t i = 0; i < s->nrows; i++)
    if (strcmp(s->rows[i].name, name) == 0) return &s->rows[i];
  fail_msg("no class %s", name);
  return NULL;
}

static void test_summary(void **state) {
  (void)state;
  /* root -> K1 -> K2 -> L; K1 -> arr (an array only K1 holds: its size
   * moves to K1); root -> S (a string, class "(string)"); root -> O (an
   * object named Object, no properties); a node of size 0 is no member */
  static const tnode n[] = {{N_SYNTH, "", 0},          {N_NATIVE, "K", 10}, {N_NATIVE, "K", 20},
                            {N_NATIVE, "L", 40},       {N_ARRAY, "", 80},   {2, "str", 160},
                            {N_OBJECT, "Object", 320}, {N_NATIVE, "Z", 0},  {N_HIDDEN, "h", 5}};
  static const tedge e[] = {{0, E_ELEMENT, 1}, {1, E_PROP, 2},    {2, E_PROP, 3},
                            {1, E_PROP, 4},    {0, E_ELEMENT, 5}, {0, E_ELEMENT, 6},
                            {0, E_ELEMENT, 7}, {0, E_ELEMENT, 8}};
  char *json = snapshot_json(n, 9, e, 8, 0);
  pl_heap_graph *g = read_graph(json);
  pl__heap_summary s;
  assert_int_equal(pl__heap_summary_build(g, &s), 0);
  const pl__heap_class *k = find(&s, "K");
  assert_int_equal(k->count, 2);
  assert_int_equal(k->self, 110); /* 10 + 80 moved from the array, + 20 */
  assert_int_equal(k->retained, 150);
  assert_int_equal(find(&s, "L")->retained, 40);
  assert_int_equal(find(&s, "(string)")->self, 160);
  assert_int_equal(find(&s, "Object")->count, 1);
  assert_int_equal(find(&s, "(system)")->self, 5);
  for (size_t i = 0; i < s.nrows; i++) {
    assert_string_not_equal(s.rows[i].name, "Z");
    assert_string_not_equal(s.rows[i].name, "(array)");
  }
  assert_string_equal(s.rows[0].name, "Object"); /* by retained size */
  assert_int_equal(s.total, 635);
  pl__heap_summary_free(&s);
  pl_heap_graph_free(g);
  free(json);
}

static void expect_error(const char *json, const char *want) {
  pl__profile pf;
  pl__read_err err;
  int rc = pl__read_profile_mem(json, strlen(json), &pf, &err);
  if (rc == 0) {
    pl__profile_free(&pf);
    fail_msg("no error, expected \"%s\"", want);
  }
  if (rc != -EINVAL || !strstr(err.msg, want))
    fail_msg("got %d \"%s\", want \"...%s...\"", rc, err.msg, want);
}

#define META                                                                               \
  "{\"snapshot\":{\"meta\":{\"node_fields\":[\"type\",\"name\",\"id\",\"self_size\","      \
  "\"edge_count\"],\"node_types\":[[\"hidden\",\"synthetic\"]],\"edge_fields\":[\"type\"," \
  "\"name_or_index\",\"to_node\"],\"edge_types\":[[\"element\",\"weak\",\"property\"]]},"
static void test_errors(void **state) {
  (void)state;
  expect_error(META
               "\"node_count\":2,\"edge_count\":1},\"nodes\":[1,0,1,0,1,1,0,3,0,1],"
               "\"edges\":[0,0,5],\"strings\":[\"\"]}",
               "the nodes' edge counts pass edge_count (1)");
  expect_error(META
               "\"node_count\":2,\"edge_count\":2},\"nodes\":[1,0,1,0,1,1,0,3,0,0],"
               "\"edges\":[0,0,5],\"strings\":[\"\"]}",
               "sum to 1, edge_count says 2");
  expect_error(META
               "\"node_count\":2,\"edge_count\":1},\"nodes\":[1,0,1,0,1,1,0,3,0,0],"
               "\"edges\":[0,0,4],\"strings\":[\"\"]}",
               "to_node 4 is not a multiple of the 5 node fields");
  expect_error(META
               "\"node_count\":2,\"edge_count\":1},\"nodes\":[1,0,1,0,1,1,0,3,0,0],"
               "\"edges\":[0,0,10],\"strings\":[\"\"]}",
               "expected a to_node index inside the nodes array");
  expect_error(META
               "\"node_count\":2,\"edge_count\":1},\"nodes\":[1,0,1,0,1,2,0,3,0,0],"
               "\"edges\":[0,0,5],\"strings\":[\"\"]}",
               "offset 264: expected a node type index in range");
  expect_error(META
               "\"node_count\":2,\"edge_count\":1},\"nodes\":[1,0,1,0,1,1,7,3,0,0],"
               "\"edges\":[0,0,5],\"strings\":[\"\"]}",
               "node 1: name 7 not in strings (1)");
  expect_error(META
               "\"node_count\":2,\"edge_count\":1},\"nodes\":[1,0,1,0,1,1,0,3,0,0],"
               "\"edges\":[2,9,5],\"strings\":[\"\"]}",
               "edge 0: name 9 not in strings");
  expect_error(META
               "\"node_count\":2,\"edge_count\":1},\"nodes\":[1,0,1,0,1,1,0,3,0],"
               "\"edges\":[0,0,5],\"strings\":[\"\"]}",
               "1 whole nodes and part of one, node_count says 2");
  expect_error(META
               "\"node_count\":1,\"edge_count\":0},\"nodes\":[1,0,1,0.5,0],"
               "\"edges\":[],\"strings\":[\"\"]}",
               "expected a non-negative integer");
  expect_error("{\"nodes\":[]}", "expected");
  expect_error(META "\"node_count\":1,\"edge_count\":0},\"nodes\":[1,0,1,0,0],\"edges\":[]}",
               "\"strings\" is missing");
  expect_error(META
               "\"node_count\":1,\"edge_count\":0},\"nodes\":[1,0,1,0,0],\"edges\":[],"
               "\"strings\":[\"\"",
               "truncated");
}

static void test_field_order(void **state) {
  (void)state;
  /* fields in another order, an extra field, edge fields reordered */
  const char *json =
      "{\"snapshot\":{\"meta\":{\"node_fields\":[\"edge_count\",\"self_size\",\"x\",\"id\","
      "\"name\",\"type\"],\"node_types\":[[\"synthetic\",\"native\"]],\"edge_fields\":["
      "\"to_node\",\"type\",\"name_or_index\"],\"edge_types\":[[\"element\",\"weak\"]]},"
      "\"node_count\":2,\"edge_count\":1},\"nodes\":[1,0,9,1,0,0, 0,42,9,3,1,1],"
      "\"edges\":[6,0,0],\"samples\":[1,2],\"strings\":[\"\",\"leaf\"]}";
  pl_heap_graph *g = read_graph(json);
  assert_int_equal(g->node_count, 2);
  assert_int_equal(g->node_self[1], 42);
  assert_int_equal(g->node_id[1], 3);
  assert_string_equal(g->strings[g->node_name[1]], "leaf");
  assert_int_equal(g->edge_to[0], 1);
  assert_int_equal(g->first_edge[1], 1);
  assert_null(g->node_detachedness);
  pl_heap_graph_free(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_diamond),     cmocka_unit_test(test_chain),
      cmocka_unit_test(test_weak),        cmocka_unit_test(test_shortcut),
      cmocka_unit_test(test_summary),     cmocka_unit_test(test_errors),
      cmocka_unit_test(test_field_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
