/* Heap profile writers (src/format/heap_writers.h) on hand-built
 * snapshots: goldens for .heapsnapshot, .heapprofile and the uncompressed
 * pprof bytes; the JSON parsed back with jansson and the pprof gunzipped
 * and decoded with the generated protobuf-c code to check their structure
 * and totals; an allocation-failure torture.
 *
 * The fixture: three allocating functions holding 50 / 30 / ~20 MB live
 * in a few samples each (grow_cache directly, load_config through strdup,
 * build_index through C++ operator new, from a shared object without
 * debug info), a sample with the tracker's "unknown" stack, a truncated
 * stack, a stack made only of an allocation helper, a function name that
 * needs JSON escaping, a file path that needs URL escaping, and a stack
 * whose allocations were all freed. Snapshot B is A later: grow_cache
 * leaked 30 MB more (3 new samples), one load_config block and one
 * build_index block were freed.
 *
 * Goldens live in tests/golden/ (PROFLAB_GOLDEN_DIR, set by meson):
 *   PROFLAB_UPDATE_GOLDEN=1 meson test -C build format-heap   rewrites them
 *   PROFLAB_FIXTURE_OUT=DIR build/tests/test-format-heap       also writes
 *     heap-a.heapsnapshot, heap-b.heapsnapshot, heap-a.heapprofile,
 *     heap-b.heapprofile, heap-a.pb.gz, heap-b.pb.gz to DIR for real
 *     clients (DevTools, go tool pprof, speedscope); with
 *     PROFLAB_TEST_FILTER=test_dump_fixture only that test runs.
 */
#include "writer_test.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zlib.h>

#include "common/sink.h"
#include "format/heap_common.h"
#include "format/heap_writers.h"
#include "format/profile.pb-c.h"
#include "proflab/heap.h"

/* ---- the fixture -------------------------------------------------------- */

#define T_BYTES 524288u
#define TIME_NS 7000000000000ull
#define WALL_NS 1764100000000000000ull
#define MB 1000000u

static pl_frame fx_frames[] = {
    /* function, file, module, line, function_line, address */
    {"main", "/src/app/main.c", "/usr/bin/app", 40, 30, 0x401100},               /* 0 */
    {"handle_request", "/src/app/server.c", "/usr/bin/app", 120, 100, 0x402200}, /* 1 */
    {"grow_cache", "/src/app/cache.c", "/usr/bin/app", 55, 50, 0x403300},        /* 2 */
    {"grow_cache", "/src/app/cache.c", "/usr/bin/app", 58, 50, 0x403340},        /* 3 */
    {"load_config", "/src/app/config.c", "/usr/bin/app", 21, 12, 0x404400},      /* 4 */
    {"__strdup", "", "/lib/x86_64-linux-gnu/libc.so.6", 0, 0, 0x7f0000010000},   /* 5 */
    {"build_index", "", "/usr/lib/libidx.so", 0, 0, 0x7f1000002000},             /* 6 */
    {"operator new(unsigned long)", "", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", 0, 0,
     0x7f2000003000},                                                       /* 7 */
    {"worker_thread", "/src/my dir/w#1.c", "/usr/bin/app", 9, 3, 0x405500}, /* 8 */
    {"weird\"name\n;x", "lib/rel.c", "/usr/bin/app", 5, 3, 0x406600},       /* 9 */
    {"temp_buffer", "/src/app/tmp.c", "/usr/bin/app", 7, 5, 0x407700},      /* 10 */
};
#define FX_NFRAMES (sizeof(fx_frames) / sizeof(fx_frames[0]))

static uint32_t st1[] = {2, 1, 0}, st2[] = {3, 1, 0}, st3[] = {5, 4, 1, 0}, st4[] = {7, 6, 8},
                st5[] = {9, 8}, st6[] = {10, 0}, st7[] = {7, 6, 1}, st8[] = {5};
static const uintptr_t fx_pcs[] = {0x1001, 0x2001, 0x3001, 0x4001}; /* for unsymbolized runs */

enum {
  S_UNKNOWN,
  S_GROW1,
  S_GROW2,
  S_CONFIG,
  S_INDEX,
  S_WEIRD,
  S_TEMP,
  S_TRUNC,
  S_HELPER,
  FX_NSTACKS
};

static const struct {
  uint32_t depth, flags;
  uint32_t *frames;
} fx_stack_shape[FX_NSTACKS] = {
    {0, PL_HEAP_STACK_UNKNOWN, NULL},
    {3, 0, st1},
    {3, 0, st2},
    {4, 0, st3},
    {3, 0, st4},
    {2, 0, st5},
    {2, 0, st6},
    {3, PL_HEAP_STACK_TRUNCATED, st7},
    {1, 0, st8},
};

/* Sample weights 1/(1 - e^(-size/T)) for T = 524288, as the tracker
 * computes them (written out so the goldens do not depend on libm). */
#define W_10M 1.000000005205832
#define W_15M 1.0000000000003757
#define W_6M 1.00001071269486
#define W_100K 5.758764942927609
#define W_1K 524.7881589456947
#define W_200K 3.1531523112183097
#define W_50K 10.993706081561777

typedef struct fx_sample {
  uint64_t id, size;
  double w;
  uint32_t stack;
  int in_a, in_b; /* live in snapshot A / B */
} fx_sample;

static const fx_sample fx_samples[] = {
    {1, 10 * MB, W_10M, S_GROW1, 1, 1},   {3, 15 * MB, W_15M, S_CONFIG, 1, 1},
    {5, 6 * MB, W_6M, S_INDEX, 1, 1},     {7, 200000, W_200K, S_UNKNOWN, 1, 1},
    {9, 10 * MB, W_10M, S_GROW2, 1, 1},   {11, 100000, W_100K, S_TRUNC, 1, 0},
    {13, 15 * MB, W_15M, S_CONFIG, 1, 0}, {15, 10 * MB, W_10M, S_GROW1, 1, 1},
    {17, 6 * MB, W_6M, S_INDEX, 1, 1},    {19, 1000, W_1K, S_WEIRD, 1, 1},
    {21, 100000, W_100K, S_TRUNC, 1, 1},  {23, 10 * MB, W_10M, S_GROW2, 1, 1},
    {25, 6 * MB, W_6M, S_INDEX, 1, 1},    {27, 100000, W_100K, S_TRUNC, 1, 1},
    {29, 50000, W_50K, S_HELPER, 1, 1},   {31, 10 * MB, W_10M, S_GROW1, 1, 1},
    {33, 100000, W_100K, S_TRUNC, 1, 1},  {41, 10 * MB, W_10M, S_GROW1, 0, 1},
    {43, 10 * MB, W_10M, S_GROW2, 0, 1},  {45, 10 * MB, W_10M, S_GROW1, 0, 1},
};
#define FX_NSAMPLES (sizeof(fx_samples) / sizeof(fx_samples[0]))

/* What each snapshot must show per allocating function (rounded sums). */
#define GROW_A (5ull * 10 * MB)
#define CONFIG_A (2ull * 15 * MB)
#define INDEX_A (3ull * 6000064 + 4ull * 575876)
#define GROW_B (8ull * 10 * MB)
#define CONFIG_B (15ull * MB)
#define INDEX_B (3ull * 6000064 + 3ull * 575876)

typedef struct fixture {
  pl_heap_snapshot s;
  pl_heap_sample samples[FX_NSAMPLES];
  pl_heap_stack stacks[FX_NSTACKS];
} fixture;

/* Snapshot 'a' or 'b'. Stacks' alloc_* are cumulative (B's are larger and
 * include freed blocks); their inuse_* are sums over the live samples, as
 * pl_heap_snapshot_take() computes them. */
static void make_fixture(fixture *f, char which) {
  memset(f, 0, sizeof(*f));
  for (size_t i = 0; i < FX_NSTACKS; i++) {
    f->stacks[i].depth = fx_stack_shape[i].depth;
    f->stacks[i].flags = fx_stack_shape[i].flags;
    f->stacks[i].frames = fx_stack_shape[i].frames;
    f->stacks[i].pcs = f->stacks[i].depth ? fx_pcs : NULL;
  }
  size_t n = 0;
  for (size_t i = 0; i < FX_NSAMPLES; i++) {
    const fx_sample *x = &fx_samples[i];
    pl_heap_stack *st = &f->stacks[x->stack];
    double wb = x->w * (double)x->size;
    int in_a = x->in_a, live = which == 'a' ? x->in_a : x->in_b;
    if (in_a || which == 'b') { /* allocated before the snapshot */
      st->alloc_objects += x->w;
      st->alloc_bytes += wb;
    }
    if (!live) continue;
    f->samples[n++] =
        (pl_heap_sample){x->id, x->size,  TIME_NS + x->id * 1000,     0x10000 + x->id, x->w,
                         wb,    x->stack, 100 + (uint32_t)(x->id % 3)};
    st->inuse_objects += x->w;
    st->inuse_bytes += wb;
    f->s.inuse_objects += x->w;
    f->s.inuse_bytes += wb;
  }
  /* temp_buffer: 7 blocks of 1 MiB, all freed; more of them by B */
  f->stacks[S_TEMP].alloc_objects = which == 'a' ? 7 : 12;
  f->stacks[S_TEMP].alloc_bytes = (which == 'a' ? 7 : 12) * 1048576.0;
  f->s.samples = f->samples;
  f->s.nsamples = n;
  f->s.stacks = f->stacks;
  f->s.nstacks = FX_NSTACKS;
  f->s.frames = fx_frames;
  f->s.nframes = FX_NFRAMES;
  f->s.time_ns = TIME_NS + (which == 'a' ? 1000000000ull : 2000000000ull);
  f->s.wall_ns = WALL_NS + (which == 'a' ? 0 : 1000000000ull);
  f->s.sample_bytes = T_BYTES;
  f->s.stats.sample_bytes = T_BYTES;
  f->s.stats.samples = which == 'a' ? 30 : 40;
  f->s.stats.live_samples = n;
  f->s.stats.dropped_samples = 2;
  f->s.stats.unknown_stacks = 1;
  f->s.stats.stacks = FX_NSTACKS;
}

/* ---- helpers ------------------------------------------------------------ */

typedef int (*writer_fn)(const pl_heap_snapshot *, pl__sink *);

static char *write_mem(writer_fn w, const pl_heap_snapshot *s, size_t *len) {
  pl__sink sk;
  pl__sink_init_mem(&sk);
  int rc = w(s, &sk);
  if (rc) fail_msg("writer failed: %d", rc);
  return sink_take(&sk, len);
}

static json_int_t jint(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  if (!json_is_integer(v)) fail_msg("%s is not an integer", k);
  return json_integer_value(v);
}

static const char *jstr(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  if (!json_is_string(v)) fail_msg("%s is not a string", k);
  return json_string_value(v);
}

/* The keys of an object, in document order (jansson keeps insertion order). */
static void check_keys(json_t *o, const char *const *want, size_t n, const char *what) {
  assert_true(json_is_object(o));
  const char *k;
  json_t *v;
  size_t i = 0;
  json_object_foreach(o, k, v) {
    if (i >= n || strcmp(k, want[i]) != 0)
      fail_msg("%s: key %zu is \"%s\", want \"%s\"", what, i, k, i < n ? want[i] : "(none)");
    i++;
  }
  if (i != n) fail_msg("%s: %zu keys, want %zu", what, i, n);
}

static void check_strings(json_t *arr, const char *const *want, size_t n, const char *what) {
  if (!json_is_array(arr) || json_array_size(arr) != n)
    fail_msg("%s: not an array of %zu", what, n);
  for (size_t i = 0; i < n; i++) {
    json_t *v = json_array_get(arr, i);
    if (!json_is_string(v) || strcmp(json_string_value(v), want[i]) != 0)
      fail_msg("%s[%zu] is not \"%s\"", what, i, want[i]);
  }
}

/* ---- .heapsnapshot ------------------------------------------------------ */

enum { NF = 7 };
enum { T_NATIVE = 8, T_SYNTHETIC = 9 };
enum { E_ELEMENT = 1, E_SHORTCUT = 5 };

/* Per function name: what DevTools' Summary computes (count and shallow
 * size of the native nodes of self size > 0 named so; retained size of the
 * topmost such nodes or of their grouping node). */
typedef struct hs_class {
  const char *name;
  uint64_t count, self, retained;
} hs_class;

typedef struct hs_info {
  json_t *root;
  size_t node_count, edge_count;
  hs_class classes[32];
  size_t nclasses;
  uint64_t ids[64]; /* allocation node ids, in node order */
  size_t nids;
  uint64_t total_self;
} hs_info;

static hs_class *class_of(hs_info *h, const char *name) {
  for (size_t i = 0; i < h->nclasses; i++)
    if (strcmp(h->classes[i].name, name) == 0) return &h->classes[i];
  assert_true(h->nclasses < 32);
  h->classes[h->nclasses] = (hs_class){name, 0, 0, 0};
  return &h->classes[h->nclasses++];
}

static const hs_class *find_class(const hs_info *h, const char *name) {
  for (size_t i = 0; i < h->nclasses; i++)
    if (strcmp(h->classes[i].name, name) == 0) return &h->classes[i];
  fail_msg("no class %s in the snapshot", name);
  return NULL;
}

/* Everything DevTools' loader relies on; fills *h (json_decref(h->root)). */
static void check_heapsnapshot(const char *text, size_t len, hs_info *h) {
  memset(h, 0, sizeof(*h));
  /* Top-level key order, also checked on the raw text: "strings" last. */
  static const char *const top[] = {"snapshot",   "nodes",   "edges",     "trace_function_infos",
                                    "trace_tree", "samples", "locations", "strings"};
  const char *last = NULL;
  for (const char *p = text; (p = strstr(p, "\"strings\":")); p++) last = p;
  assert_non_null(last);
  assert_non_null(strstr(text, "\"locations\":[]"));
  assert_true(strstr(text, "\"locations\":[]") < last);
  assert_true(strncmp(text, "{\"snapshot\":{\"meta\":", 20) == 0);

  json_t *root = h->root = parse_json(text, len);
  check_keys(root, top, 8, "top level");
  json_t *snap = json_object_get(root, "snapshot");
  static const char *const snap_keys[] = {"meta", "node_count", "edge_count",
                                          "trace_function_count"};
  check_keys(snap, snap_keys, 4, "snapshot");
  assert_int_equal(jint(snap, "trace_function_count"), 0);
  json_t *meta = json_object_get(snap, "meta");
  static const char *const meta_keys[] = {"node_fields",
                                          "node_types",
                                          "edge_fields",
                                          "edge_types",
                                          "trace_function_info_fields",
                                          "trace_node_fields",
                                          "sample_fields",
                                          "location_fields"};
  check_keys(meta, meta_keys, 8, "meta");
  static const char *const node_fields[] = {
      "type", "name", "id", "self_size", "edge_count", "trace_node_id", "detachedness"};
  check_strings(json_object_get(meta, "node_fields"), node_fields, 7, "node_fields");
  static const char *const node_types[] = {"hidden",
                                           "array",
                                           "string",
                                           "object",
                                           "code",
                                           "closure",
                                           "regexp",
                                           "number",
                                           "native",
                                           "synthetic",
                                           "concatenated string",
                                           "sliced string",
                                           "symbol",
                                           "bigint",
                                           "object shape",
                                           "wasm object"};
  json_t *nt = json_object_get(meta, "node_types");
  assert_int_equal(json_array_size(nt), 7);
  check_strings(json_array_get(nt, 0), node_types, 16, "node_types[0]");
  assert_string_equal(json_string_value(json_array_get(nt, 1)), "string");
  for (size_t i = 2; i < 7; i++)
    assert_string_equal(json_string_value(json_array_get(nt, i)), "number");
  static const char *const edge_fields[] = {"type", "name_or_index", "to_node"};
  check_strings(json_object_get(meta, "edge_fields"), edge_fields, 3, "edge_fields");
  static const char *const edge_types[] = {"context", "element",  "property", "internal",
                                           "hidden",  "shortcut", "weak"};
  json_t *et = json_object_get(meta, "edge_types");
  assert_int_equal(json_array_size(et), 3);
  check_strings(json_array_get(et, 0), edge_types, 7, "edge_types[0]");
  assert_string_equal(json_string_value(json_array_get(et, 1)), "string_or_number");
  assert_string_equal(json_string_value(json_array_get(et, 2)), "node");
  static const char *const tfi[] = {"function_id", "name", "script_name",
                                    "script_id",   "line", "column"};
  check_strings(json_object_get(meta, "trace_function_info_fields"), tfi, 6,
                "trace_function_info_fields");
  static const char *const tn[] = {"id", "function_info_index", "count", "size", "children"};
  check_strings(json_object_get(meta, "trace_node_fields"), tn, 5, "trace_node_fields");
  static const char *const sf[] = {"timestamp_us", "last_assigned_id"};
  check_strings(json_object_get(meta, "sample_fields"), sf, 2, "sample_fields");
  static const char *const lf[] = {"object_index", "script_id", "line", "column"};
  check_strings(json_object_get(meta, "location_fields"), lf, 4, "location_fields");
  for (size_t i = 3; i < 7; i++) {
    json_t *a = json_object_get(root, top[i]);
    assert_true(json_is_array(a));
    assert_int_equal(json_array_size(a), 0);
  }

  json_t *nodes = json_object_get(root, "nodes"), *edges = json_object_get(root, "edges");
  json_t *strings = json_object_get(root, "strings");
  size_t nn = (size_t)jint(snap, "node_count"), ne = (size_t)jint(snap, "edge_count");
  h->node_count = nn;
  h->edge_count = ne;
  assert_int_equal(json_array_size(nodes), nn * NF);
  assert_int_equal(json_array_size(edges), ne * 3);
  size_t nstr = json_array_size(strings);
  assert_true(nstr >= 1);
  for (size_t i = 0; i < nstr; i++) assert_true(json_is_string(json_array_get(strings, i)));

  /* Flat integer arrays; DevTools' parser reads non-negative integers into uint32. */
  uint64_t *nv = malloc(nn * NF * sizeof(*nv) + 1), *ev = malloc(ne * 3 * sizeof(*ev) + 1);
  assert_true(nv && ev);
  for (size_t i = 0; i < nn * NF; i++) {
    json_t *v = json_array_get(nodes, i);
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > (json_int_t)UINT32_MAX)
      fail_msg("nodes[%zu] is not a uint32", i);
    nv[i] = (uint64_t)json_integer_value(v);
  }
  for (size_t i = 0; i < ne * 3; i++) {
    json_t *v = json_array_get(edges, i);
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > (json_int_t)UINT32_MAX)
      fail_msg("edges[%zu] is not a uint32", i);
    ev[i] = (uint64_t)json_integer_value(v);
  }

  /* Root: first, synthetic, "", id 1. */
  assert_true(nn >= 1);
  assert_int_equal(nv[0], T_SYNTHETIC);
  assert_string_equal(json_string_value(json_array_get(strings, nv[1])), "");
  assert_int_equal(nv[2], 1);

  /* Nodes: types, names, ids unique; edge_count sums to edge_count. */
  uint64_t esum = 0;
  uint64_t *retainers = calloc(nn, sizeof(*retainers)), *parent = calloc(nn, sizeof(*parent));
  assert_true(retainers && parent);
  for (size_t i = 0; i < nn; i++) {
    const uint64_t *n = &nv[i * NF];
    assert_true(n[0] < 16);
    assert_true(n[1] < nstr);
    assert_int_equal(n[5], 0); /* trace_node_id */
    assert_int_equal(n[6], 0); /* detachedness: unknown */
    esum += n[4];
    for (size_t k = 0; k < i; k++)
      if (nv[k * NF + 2] == n[2])
        fail_msg("nodes %zu and %zu share id %llu", k, i, (unsigned long long)n[2]);
    if (n[3] > 0) { /* an allocation: native, odd id */
      assert_int_equal(n[0], T_NATIVE);
      if (!(n[2] & 1))
        fail_msg("allocation node %zu has even id %llu", i, (unsigned long long)n[2]);
      assert_true(h->nids < 64);
      h->ids[h->nids++] = n[2];
    } else if (i > 0) { /* a grouping node: even id (not an object id) */
      if (n[2] & 1) fail_msg("grouping node %zu has odd id %llu", i, (unsigned long long)n[2]);
    }
  }
  assert_int_equal(esum, ne);

  /* Edges: types, names, to_node = ordinal * 7 in range; each non-root node
   * retained exactly once (a tree: dominators are parents). */
  size_t e = 0;
  for (size_t i = 0; i < nn; i++) {
    for (uint64_t k = 0; k < nv[i * NF + 4]; k++, e++) {
      const uint64_t *ed = &ev[e * 3];
      if (ed[2] % NF || ed[2] / NF >= nn)
        fail_msg("edge %zu: to_node %llu is not a node index", e, (unsigned long long)ed[2]);
      uint64_t to = ed[2] / NF;
      assert_true(to != 0);
      if (i == 0) {
        assert_int_equal(ed[0], E_SHORTCUT);
        assert_true(ed[1] < nstr);
        assert_string_equal(json_string_value(json_array_get(strings, ed[1])),
                            json_string_value(json_array_get(strings, nv[to * NF + 1])));
      } else {
        assert_int_equal(ed[0], E_ELEMENT);
        assert_int_equal(ed[1], k); /* [0], [1], ... */
      }
      retainers[to]++;
      parent[to] = i;
    }
  }
  for (size_t i = 1; i < nn; i++)
    if (retainers[i] != 1)
      fail_msg("node %zu has %llu retainers", i, (unsigned long long)retainers[i]);

  /* Summary: by name, nodes of self size > 0; retained = the subtree. */
  for (size_t i = 1; i < nn; i++) {
    const uint64_t *n = &nv[i * NF];
    const char *name = json_string_value(json_array_get(strings, n[1]));
    if (n[3] == 0) {
      assert_true(n[4] > 0); /* grouping nodes hold something */
      assert_int_equal(parent[i], 0);
      continue;
    }
    hs_class *c = class_of(h, name);
    c->count++;
    c->self += n[3];
    c->retained += n[3]; /* leaves: retained = self */
    h->total_self += n[3];
    /* its grouping node is named the same */
    assert_string_equal(json_string_value(json_array_get(strings, nv[parent[i] * NF + 1])), name);
  }
  free(nv);
  free(ev);
  free(retainers);
  free(parent);
}

static uint64_t rounded_live(const pl_heap_snapshot *s) {
  uint64_t t = 0;
  for (size_t i = 0; i < s->nsamples; i++) t += pl__heap_round(s->samples[i].weight_bytes);
  return t;
}

static void test_heapsnapshot_a(void **state) {
  (void)state;
  fixture *f = malloc(sizeof(*f));
  assert_non_null(f);
  make_fixture(f, 'a');
  size_t len;
  char *out = write_mem(pl__heapsnapshot_write, &f->s, &len);
  hs_info h;
  check_heapsnapshot(out, len, &h);

  /* Groups: the allocating function, allocation helpers skipped. */
  const hs_class *grow = find_class(&h, "grow_cache"), *config = find_class(&h, "load_config"),
                 *index = find_class(&h, "build_index");
  assert_int_equal(grow->count, 5);
  assert_int_equal(grow->self, GROW_A);
  assert_int_equal(config->count, 2);
  assert_int_equal(config->self, CONFIG_A);
  assert_int_equal(index->count, 7); /* 3 direct + 4 through the truncated stack */
  assert_int_equal(index->self, INDEX_A);
  assert_int_equal(find_class(&h, PL__HEAP_UNKNOWN)->self, 630630);
  assert_int_equal(find_class(&h, "weird\"name\n;x")->self, 524788);
  assert_int_equal(find_class(&h, "__strdup")->self, 549685); /* only helpers: kept */
  assert_int_equal(h.nclasses, 6);
  assert_int_equal(h.total_self, rounded_live(&f->s));
  assert_int_equal(h.node_count, 1 + 6 + f->s.nsamples);
  assert_int_equal(h.edge_count, 6 + f->s.nsamples);

  /* Ids: tracker id + offset, in sample order. */
  assert_int_equal(h.nids, f->s.nsamples);
  for (size_t i = 0; i < h.nids; i++)
    assert_int_equal(h.ids[i], f->s.samples[i].id + PL__HEAPSNAPSHOT_ID_OFFSET);

  json_decref(h.root);
  check_golden("heap-fixture.heapsnapshot", out, len);
  free(out);
  free(f);
}

/* Node id of the grouping node named `name` (its root edge's target). */
static uint64_t group_id(json_t *root, const char *name) {
  json_t *nodes = json_object_get(root, "nodes"), *edges = json_object_get(root, "edges");
  json_t *strings = json_object_get(root, "strings");
  size_t ng = (size_t)json_integer_value(json_array_get(nodes, 4));
  for (size_t g = 0; g < ng; g++) {
    size_t to = (size_t)json_integer_value(json_array_get(edges, g * 3 + 2));
    size_t name_ix = (size_t)json_integer_value(json_array_get(nodes, to + 1));
    if (strcmp(json_string_value(json_array_get(strings, name_ix)), name) == 0)
      return (uint64_t)json_integer_value(json_array_get(nodes, to + 2));
  }
  fail_msg("no group %s", name);
  return 0;
}

static void test_heapsnapshot_b_vs_a(void **state) {
  (void)state;
  fixture *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
  assert_true(a && b);
  make_fixture(a, 'a');
  make_fixture(b, 'b');
  size_t la, lb;
  char *oa = write_mem(pl__heapsnapshot_write, &a->s, &la);
  char *ob = write_mem(pl__heapsnapshot_write, &b->s, &lb);
  hs_info ha, hb;
  check_heapsnapshot(oa, la, &ha);
  check_heapsnapshot(ob, lb, &hb);
  assert_int_equal(find_class(&hb, "grow_cache")->self, GROW_B);
  assert_int_equal(find_class(&hb, "grow_cache")->count, 8);
  assert_int_equal(find_class(&hb, "load_config")->self, CONFIG_B);
  assert_int_equal(find_class(&hb, "build_index")->self, INDEX_B);

  /* The Comparison view's diff (by name, then by id): what is in B and not
   * in A was allocated in between; what is in A and not in B was freed. */
  uint64_t added = 0, removed = 0, kept = 0;
  for (size_t i = 0; i < hb.nids; i++) {
    int in_a = 0;
    for (size_t k = 0; k < ha.nids; k++) in_a |= ha.ids[k] == hb.ids[i];
    in_a ? kept++ : added++;
  }
  for (size_t k = 0; k < ha.nids; k++) {
    int in_b = 0;
    for (size_t i = 0; i < hb.nids; i++) in_b |= ha.ids[k] == hb.ids[i];
    removed += !in_b;
  }
  assert_int_equal(added, 3);
  assert_int_equal(removed, 2);
  assert_int_equal(kept, 15);
  /* "Objects allocated between snapshots": ids above A's largest. */
  uint64_t max_a = 0;
  for (size_t k = 0; k < ha.nids; k++) max_a = ha.ids[k] > max_a ? ha.ids[k] : max_a;
  for (size_t i = 0; i < hb.nids; i++)
    if (hb.ids[i] > max_a) assert_true(hb.ids[i] >= 41 + PL__HEAPSNAPSHOT_ID_OFFSET);
  /* Grouping nodes keep their ids across snapshots. */
  static const char *const names[] = {"grow_cache", "load_config", "build_index", PL__HEAP_UNKNOWN};
  for (size_t i = 0; i < 4; i++) {
    uint64_t ida = group_id(ha.root, names[i]), idb = group_id(hb.root, names[i]);
    assert_int_equal(ida, idb);
    assert_true(ida % 2 == 0 && ida >= 2 && ida <= UINT32_MAX - 1);
  }
  json_decref(ha.root);
  json_decref(hb.root);
  check_golden("heap-fixture.b.heapsnapshot", ob, lb);
  free(oa);
  free(ob);
  free(a);
  free(b);
}

/* ---- .heapprofile ------------------------------------------------------- */

typedef struct hp_info {
  json_t *root;
  json_t *by_id[256]; /* node objects by id */
  json_int_t parent[256];
  size_t nnodes;
} hp_info;

static void hp_walk(hp_info *h, json_t *node, json_int_t parent) {
  static const char *const keys[] = {"callFrame", "selfSize", "id", "children"};
  check_keys(node, keys, 4, "heapprofile node");
  json_t *cf = json_object_get(node, "callFrame");
  static const char *const cf_keys[] = {"functionName", "scriptId", "url", "lineNumber",
                                        "columnNumber"};
  check_keys(cf, cf_keys, 5, "callFrame");
  jstr(cf, "functionName");
  const char *script = jstr(cf, "scriptId");
  assert_true(*script >= '0' && *script <= '9');
  if (strcmp(script, "0") == 0)
    assert_string_equal(jstr(cf, "url"), "");
  else
    assert_true(strtol(script, NULL, 10) >= 1000000);
  assert_true(jint(cf, "lineNumber") >= -1 && jint(cf, "columnNumber") >= -1);
  assert_true(jint(node, "selfSize") >= 0);
  json_int_t id = jint(node, "id");
  if (id < 1 || id >= 256 || h->by_id[id])
    fail_msg("heapprofile: bad or duplicate node id %lld", (long long)id);
  h->by_id[id] = node;
  h->parent[id] = parent;
  h->nnodes++;
  json_t *children = json_object_get(node, "children");
  assert_true(json_is_array(children));
  size_t i;
  json_t *c;
  json_array_foreach(children, i, c) hp_walk(h, c, id);
}

/* Invariants of a .heapprofile; samples' sizes add up to each node's selfSize. */
static void check_heapprofile(const char *text, size_t len, const pl_heap_snapshot *s, hp_info *h) {
  memset(h, 0, sizeof(*h));
  json_t *root = h->root = parse_json(text, len);
  static const char *const keys[] = {"head", "samples"};
  check_keys(root, keys, 2, "heapprofile");
  json_t *head = json_object_get(root, "head");
  hp_walk(h, head, 0);
  assert_int_equal(jint(head, "id"), 1);
  json_t *cf = json_object_get(head, "callFrame");
  assert_string_equal(jstr(cf, "functionName"), "(root)");
  assert_string_equal(jstr(cf, "scriptId"), "0");
  assert_int_equal(jint(cf, "lineNumber"), -1);
  assert_int_equal(jint(head, "selfSize"), 0);

  json_t *samples = json_object_get(root, "samples");
  assert_int_equal(json_array_size(samples), s->nsamples);
  json_int_t self[256] = {0};
  size_t i;
  json_t *x;
  json_array_foreach(samples, i, x) {
    static const char *const skeys[] = {"size", "nodeId", "ordinal"};
    check_keys(x, skeys, 3, "sample");
    json_int_t id = jint(x, "nodeId");
    assert_true(id >= 1 && id < 256 && h->by_id[id]);
    assert_int_equal(jint(x, "size"), pl__heap_round(s->samples[i].weight_bytes));
    assert_int_equal(jint(x, "ordinal"), s->samples[i].id);
    self[id] += jint(x, "size");
  }
  for (json_int_t id = 1; id < 256; id++)
    if (h->by_id[id]) assert_int_equal(jint(h->by_id[id], "selfSize"), self[id]);
}

static json_t *hp_find(hp_info *h, const char *fn) {
  for (size_t id = 1; id < 256; id++)
    if (h->by_id[id] &&
        strcmp(jstr(json_object_get(h->by_id[id], "callFrame"), "functionName"), fn) == 0)
      return h->by_id[id];
  fail_msg("no node %s", fn);
  return NULL;
}

/* "a>b>c": names from the root's child to the node. */
static void hp_path(hp_info *h, json_int_t id, char *out, size_t n) {
  const char *names[64];
  int depth = 0;
  while (id > 1 && depth < 64) {
    names[depth++] = jstr(json_object_get(h->by_id[id], "callFrame"), "functionName");
    id = h->parent[id];
  }
  size_t used = 0;
  out[0] = '\0';
  for (int d = depth - 1; d >= 0; d--)
    used += (size_t)snprintf(out + used, n - used, "%s%s", names[d], d ? ">" : "");
}

static void test_heapprofile(void **state) {
  (void)state;
  fixture *f = malloc(sizeof(*f));
  assert_non_null(f);
  make_fixture(f, 'a');
  size_t len;
  char *out = write_mem(pl__heapprofile_write, &f->s, &len);
  hp_info h;
  check_heapprofile(out, len, &f->s, &h);

  /* The tree: root > outermost caller > ... > allocating function (helpers dropped). */
  json_t *samples = json_object_get(h.root, "samples");
  char path[512];
  static const struct {
    size_t sample;
    const char *path;
  } want[] = {
      {0, "main>handle_request>grow_cache"},
      {1, "main>handle_request>load_config"},
      {2, "worker_thread>build_index"},
      {3, PL__HEAP_UNKNOWN},
      {5, "(truncated)>handle_request>build_index"},
      {9, "worker_thread>weird\"name\n;x"},
      {14, "__strdup"},
  };
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    hp_path(&h, jint(json_array_get(samples, want[i].sample), "nodeId"), path, sizeof(path));
    assert_string_equal(path, want[i].path);
  }
  /* grow_cache's two pcs share a node; its self size is its live bytes. */
  assert_int_equal(jint(json_array_get(samples, 0), "nodeId"),
                   jint(json_array_get(samples, 4), "nodeId"));
  json_t *grow = hp_find(&h, "grow_cache");
  assert_int_equal(jint(grow, "selfSize"), GROW_A);
  assert_int_equal(jint(hp_find(&h, "load_config"), "selfSize"), CONFIG_A);

  /* callFrames: 0-based function line, file URLs, unknowns. */
  json_t *cf = json_object_get(grow, "callFrame");
  assert_string_equal(jstr(cf, "url"), "file:///src/app/cache.c");
  assert_int_equal(jint(cf, "lineNumber"), 49);
  assert_int_equal(jint(cf, "columnNumber"), 0);
  cf = json_object_get(hp_find(&h, "build_index"), "callFrame");
  assert_string_equal(jstr(cf, "url"), "");
  assert_string_equal(jstr(cf, "scriptId"), "0");
  assert_int_equal(jint(cf, "lineNumber"), -1);
  assert_int_equal(jint(cf, "columnNumber"), -1);
  cf = json_object_get(hp_find(&h, "worker_thread"), "callFrame");
  assert_string_equal(jstr(cf, "url"), "file:///src/my%20dir/w%231.c");
  cf = json_object_get(hp_find(&h, "weird\"name\n;x"), "callFrame");
  assert_string_equal(jstr(cf, "url"), "lib/rel.c");
  assert_string_equal(jstr(json_object_get(hp_find(&h, "main"), "callFrame"), "scriptId"),
                      "1000000");
  assert_string_equal(
      jstr(json_object_get(hp_find(&h, (PL__HEAP_UNKNOWN)), "callFrame"), "scriptId"), "0");

  json_int_t total = 0;
  for (size_t id = 1; id < 256; id++)
    if (h.by_id[id]) total += jint(h.by_id[id], "selfSize");
  assert_int_equal(total, rounded_live(&f->s));
  json_decref(h.root);
  check_golden("heap-fixture.heapprofile", out, len);
  free(out);
  free(f);
}

/* ---- pprof -------------------------------------------------------------- */

/* Invariants of a heap pprof; the totals of each type are the model's. */
static pb_profile *check_pprof(const char *gz, size_t gzlen, const pl_heap_snapshot *s) {
  size_t rawlen;
  char *raw = gunzip(gz, gzlen, &rawlen);
  pb_profile *pr = perftools__profiles__profile__unpack(NULL, rawlen, (uint8_t *)raw);
  assert_non_null(pr);
  free(raw);
  assert_true(pr->n_string_table >= 1);
  assert_string_equal(pr->string_table[0], "");
  for (size_t i = 1; i < pr->n_string_table; i++)
    for (size_t k = 0; k < i; k++)
      assert_true(strcmp(pr->string_table[i], pr->string_table[k]) != 0);
  static const char *const types[4][2] = {{"alloc_objects", "count"},
                                          {"alloc_space", "bytes"},
                                          {"inuse_objects", "count"},
                                          {"inuse_space", "bytes"}};
  assert_int_equal(pr->n_sample_type, 4);
  for (size_t i = 0; i < 4; i++) {
    assert_string_equal(pstr(pr, pr->sample_type[i]->type), types[i][0]);
    assert_string_equal(pstr(pr, pr->sample_type[i]->unit), types[i][1]);
  }
  assert_non_null(pr->period_type);
  assert_string_equal(pstr(pr, pr->period_type->type), "space");
  assert_string_equal(pstr(pr, pr->period_type->unit), "bytes");
  assert_int_equal(pr->period, s->sample_bytes);
  assert_int_equal(pr->time_nanos, s->wall_ns);
  assert_string_equal(pstr(pr, pr->default_sample_type), "inuse_space");
  for (size_t i = 0; i < pr->n_location; i++) {
    const Perftools__Profiles__Location *l = pr->location[i];
    assert_true(l->id != 0);
    assert_int_equal(l->n_line, 1);
    func_by_id(pr, l->line[0]->function_id);
  }
  for (size_t i = 0; i < pr->n_function; i++) {
    assert_true(pr->function[i]->id != 0);
    assert_true(*pstr(pr, pr->function[i]->name));
  }
  uint64_t want[4] = {0}, got[4] = {0};
  for (size_t i = 0; i < s->nstacks; i++) {
    want[0] += pl__heap_round(s->stacks[i].alloc_objects);
    want[1] += pl__heap_round(s->stacks[i].alloc_bytes);
    want[2] += pl__heap_round(s->stacks[i].inuse_objects);
    want[3] += pl__heap_round(s->stacks[i].inuse_bytes);
  }
  for (size_t i = 0; i < pr->n_sample; i++) {
    const Perftools__Profiles__Sample *x = pr->sample[i];
    assert_int_equal(x->n_value, 4);
    assert_true(x->n_location_id >= 1);
    for (size_t k = 0; k < x->n_location_id; k++) loc_by_id(pr, x->location_id[k]);
    for (size_t k = 0; k < 4; k++) {
      assert_true(x->value[k] >= 0);
      got[k] += (uint64_t)x->value[k];
    }
    assert_true(x->value[0] || x->value[1] || x->value[2] || x->value[3]);
    assert_int_equal(x->n_label, 1);
    assert_string_equal(pstr(pr, x->label[0]->key), "bytes");
  }
  for (size_t k = 0; k < 4; k++) assert_int_equal(got[k], want[k]);
  /* inuse_space: within rounding of the sum of the live samples' weights */
  assert_true(fabs((double)got[3] - s->inuse_bytes) <= (double)s->nstacks);
  return pr;
}

static void test_pprof(void **state) {
  (void)state;
  fixture *f = malloc(sizeof(*f));
  assert_non_null(f);
  make_fixture(f, 'a');
  size_t gzlen, rawlen, unzlen;
  char *gz = write_mem(pl__pprof_heap_write, &f->s, &gzlen);
  char *raw = write_mem(pl__pprof_heap_write_raw, &f->s, &rawlen);
  assert_true((unsigned char)gz[0] == 0x1f && (unsigned char)gz[1] == 0x8b);
  char *unz = gunzip(gz, gzlen, &unzlen);
  assert_int_equal(unzlen, rawlen);
  assert_memory_equal(unz, raw, rawlen);
  free(unz);

  pb_profile *pr = check_pprof(gz, gzlen, &f->s);
  assert_int_equal(pr->n_comment, 5);
  assert_string_equal(pstr(pr, pr->comment[0]), "sample_bytes=524288");
  assert_string_equal(pstr(pr, pr->comment[2]), "live_samples=17");
  assert_string_equal(pstr(pr, pr->comment[3]), "dropped_samples=2");
  /* One sample per stack with values, in stack order; helpers dropped. */
  assert_int_equal(pr->n_sample, FX_NSTACKS);
  static const char *const want[FX_NSTACKS] = {
      PL__HEAP_UNKNOWN,
      "grow_cache<handle_request<main",
      "grow_cache<handle_request<main",
      "load_config<handle_request<main",
      "build_index<worker_thread",
      "weird\"name\n;x<worker_thread",
      "temp_buffer<main",
      "build_index<handle_request<(truncated)",
      "__strdup",
  };
  char names[512];
  for (size_t i = 0; i < FX_NSTACKS; i++) {
    sample_names(pr, pr->sample[i], names, sizeof(names));
    assert_string_equal(names, want[i]);
  }
  /* grow_cache: 5 live blocks of 10 MB */
  int64_t grow_inuse = pr->sample[1]->value[3] + pr->sample[2]->value[3];
  assert_int_equal(grow_inuse, GROW_A);
  assert_int_equal(pr->sample[1]->value[2] + pr->sample[2]->value[2], 5);
  /* temp_buffer: allocated, all freed */
  assert_int_equal(pr->sample[6]->value[0], 7);
  assert_int_equal(pr->sample[6]->value[1], 7 * 1048576);
  assert_int_equal(pr->sample[6]->value[2], 0);
  assert_int_equal(pr->sample[6]->value[3], 0);
  assert_int_equal(pr->sample[6]->label[0]->num, 1048576);
  /* locations: one per frame, then the pseudo ones */
  assert_int_equal(pr->n_location, FX_NFRAMES + 2);
  const Perftools__Profiles__Location *l = loc_by_id(pr, 3);
  assert_int_equal(l->address, 0x403300);
  assert_int_equal(l->line[0]->line, 55);
  const Perftools__Profiles__Function *fn = func_by_id(pr, l->line[0]->function_id);
  assert_string_equal(pstr(pr, fn->name), "grow_cache");
  assert_string_equal(pstr(pr, fn->filename), "/src/app/cache.c");
  assert_int_equal(fn->start_line, 50);
  assert_true(pr->n_mapping >= 1);
  assert_string_equal(pstr(pr, pr->mapping[0]->filename), "/usr/bin/app");
  perftools__profiles__profile__free_unpacked(pr, NULL);
  check_golden("heap-fixture.pprof.pb", raw, rawlen);
  free(gz);
  free(raw);
  free(f);
}

/* ---- unsymbolized snapshots, the allocating frame ------------------------ */

static void test_unsymbolized(void **state) {
  (void)state;
  fixture *f = malloc(sizeof(*f));
  assert_non_null(f);
  make_fixture(f, 'a');
  f->s.frames = NULL; /* before pl_heap_snapshot_symbolize(): pcs only */
  f->s.nframes = 0;
  for (size_t i = 0; i < FX_NSTACKS; i++) f->stacks[i].frames = NULL;
  size_t len;
  char *out = write_mem(pl__heapsnapshot_write, &f->s, &len);
  hs_info h;
  check_heapsnapshot(out, len, &h);
  /* every stack's frames[0] is pc 0x1001: named after its call at 0x1000 */
  assert_int_equal(h.nclasses, 2);
  assert_int_equal(find_class(&h, "0x1000")->self + find_class(&h, PL__HEAP_UNKNOWN)->self,
                   rounded_live(&f->s));
  json_decref(h.root);
  free(out);

  out = write_mem(pl__heapprofile_write, &f->s, &len);
  hp_info hp;
  check_heapprofile(out, len, &f->s, &hp);
  json_decref(hp.root);
  free(out);

  out = write_mem(pl__pprof_heap_write, &f->s, &len);
  pb_profile *pr = check_pprof(out, len, &f->s);
  assert_int_equal(pr->n_location, 4 + 2); /* 4 distinct pcs, (unknown), (truncated) */
  assert_int_equal(loc_by_id(pr, 2)->address, 0x2000);
  perftools__profiles__profile__free_unpacked(pr, NULL);
  free(out);
  free(f);
}

static void test_alloc_frame(void **state) {
  (void)state;
  for (size_t i = 1; i < pl__heap_nhelpers; i++)
    if (strcmp(pl__heap_helpers[i - 1], pl__heap_helpers[i]) >= 0)
      fail_msg("helper list not sorted at %s, %s", pl__heap_helpers[i - 1], pl__heap_helpers[i]);
  for (size_t i = 0; i < pl__heap_nhelpers; i++)
    assert_true(pl__heap_is_helper(pl__heap_helpers[i]));
  assert_true(pl__heap_is_helper("operator new[](unsigned long, std::nothrow_t const&)"));
  assert_true(pl__heap_is_helper("_ZnwmSt11align_val_t"));
  assert_false(pl__heap_is_helper("grow_cache"));
  assert_false(pl__heap_is_helper("strdupx"));
  assert_false(pl__heap_is_helper(""));

  fixture *f = malloc(sizeof(*f));
  assert_non_null(f);
  make_fixture(f, 'a');
  assert_int_equal(pl__heap_alloc_frame(&f->s, S_UNKNOWN), -1);
  assert_int_equal(pl__heap_alloc_frame(&f->s, S_GROW1), 0);
  assert_int_equal(pl__heap_alloc_frame(&f->s, S_CONFIG), 1); /* above __strdup */
  assert_int_equal(pl__heap_alloc_frame(&f->s, S_INDEX), 1);  /* above operator new */
  assert_int_equal(pl__heap_alloc_frame(&f->s, S_HELPER), 0); /* only a helper */
  assert_int_equal(pl__heap_alloc_frame(&f->s, FX_NSTACKS), -EINVAL);
  assert_int_equal(pl__heap_alloc_frame(NULL, 0), -EINVAL);
  free(f);
}

/* ---- properties of all writers ------------------------------------------ */

static const struct {
  const char *name;
  writer_fn fn;
} writers[] = {
    {"heapsnapshot", pl__heapsnapshot_write},
    {"heapprofile", pl__heapprofile_write},
    {"pprof", pl__pprof_heap_write},
    {"pprof-raw", pl__pprof_heap_write_raw},
};
#define NWRITERS (sizeof(writers) / sizeof(writers[0]))

static void test_deterministic(void **state) {
  (void)state;
  fixture *f = malloc(sizeof(*f));
  assert_non_null(f);
  make_fixture(f, 'b');
  for (size_t w = 0; w < NWRITERS; w++) {
    size_t l1, l2;
    char *a = write_mem(writers[w].fn, &f->s, &l1);
    char *b = write_mem(writers[w].fn, &f->s, &l2);
    if (l1 != l2 || memcmp(a, b, l1) != 0) fail_msg("%s: two runs differ", writers[w].name);
    free(a);
    free(b);
  }
  free(f);
}

static void test_sink_error(void **state) {
  (void)state;
  fixture *f = malloc(sizeof(*f));
  assert_non_null(f);
  make_fixture(f, 'a');
  for (size_t w = 0; w < NWRITERS; w++) {
    pl__sink s;
    pl__sink_init_mem(&s);
    s.backend = full_disk;
    s.flush_at = 16;
    int rc = writers[w].fn(&f->s, &s);
    if (rc != -ENOSPC) fail_msg("%s: got %d, want -ENOSPC", writers[w].name, rc);
    pl__sink_free(&s);
  }
  free(f);
}

static void test_invalid_model(void **state) {
  (void)state;
  fixture *f = malloc(sizeof(*f));
  assert_non_null(f);
  uint32_t bad_frames[] = {0, FX_NFRAMES};
  for (size_t w = 0; w < NWRITERS; w++) {
    pl__sink s;
    pl__sink_init_mem(&s);
    for (int k = 0; k < 9; k++) {
      make_fixture(f, 'a');
      switch (k) {
        case 0:
          f->samples[3].stack = FX_NSTACKS;
          break; /* stack out of range */
        case 1:
          f->samples[2].id = 4;
          break; /* even id */
        case 2:
          f->samples[5].id = f->samples[4].id;
          break; /* not increasing */
        case 3:
          f->samples[1].weight_bytes = NAN;
          break; /* not finite */
        case 4:
          f->stacks[S_GROW1].inuse_bytes = -1;
          break; /* negative */
        case 5:
          f->stacks[S_GROW1].frames = bad_frames;
          f->stacks[S_GROW1].depth = 2;
          break;
        case 6:
          f->stacks[S_GROW1].frames = NULL;
          break; /* frames missing */
        case 7:
          f->s.samples = NULL;
          break;
        case 8:
          f->s.frames = NULL;
          f->stacks[S_GROW2].pcs = NULL;
          break; /* unsymbolized, no pcs */
      }
      int rc = writers[w].fn(&f->s, &s);
      if (rc != -EINVAL) fail_msg("%s: model break %d gave %d", writers[w].name, k, rc);
    }
    assert_int_equal(writers[w].fn(NULL, &s), -EINVAL);
    make_fixture(f, 'a');
    assert_int_equal(writers[w].fn(&f->s, NULL), -EINVAL);
    assert_int_equal(s.buf.len, 0);
    pl__sink_free(&s);
  }
  free(f);
}

static void test_empty_snapshot(void **state) {
  (void)state;
  /* Nothing live (all freed): only the root; pprof still has the alloc counts. */
  fixture *f = malloc(sizeof(*f));
  assert_non_null(f);
  make_fixture(f, 'a');
  f->s.nsamples = 0;
  f->s.inuse_bytes = f->s.inuse_objects = 0;
  for (size_t i = 0; i < FX_NSTACKS; i++) f->stacks[i].inuse_bytes = f->stacks[i].inuse_objects = 0;
  size_t len;
  char *out = write_mem(pl__heapsnapshot_write, &f->s, &len);
  hs_info h;
  check_heapsnapshot(out, len, &h);
  assert_int_equal(h.node_count, 1);
  assert_int_equal(h.edge_count, 0);
  json_decref(h.root);
  free(out);
  out = write_mem(pl__heapprofile_write, &f->s, &len);
  hp_info hp;
  check_heapprofile(out, len, &f->s, &hp);
  assert_int_equal(hp.nnodes, 1);
  json_decref(hp.root);
  free(out);
  out = write_mem(pl__pprof_heap_write, &f->s, &len);
  pb_profile *pr = check_pprof(out, len, &f->s);
  assert_int_equal(pr->n_sample, FX_NSTACKS); /* alloc_* of every stack */
  perftools__profiles__profile__free_unpacked(pr, NULL);
  free(out);

  /* A snapshot with nothing at all. */
  pl_heap_snapshot z;
  memset(&z, 0, sizeof(z));
  z.sample_bytes = 1;
  out = write_mem(pl__heapsnapshot_write, &z, &len);
  check_heapsnapshot(out, len, &h);
  json_decref(h.root);
  free(out);
  out = write_mem(pl__heapprofile_write, &z, &len);
  check_heapprofile(out, len, &z, &hp);
  json_decref(hp.root);
  free(out);
  out = write_mem(pl__pprof_heap_write, &z, &len);
  pr = check_pprof(out, len, &z);
  assert_int_equal(pr->n_sample, 0);
  perftools__profiles__profile__free_unpacked(pr, NULL);
  free(out);
  free(f);
}

/* Large weights: self_size clamps to what DevTools' uint32 fields hold;
 * ids wrap to 32 bits. */
static void test_limits(void **state) {
  (void)state;
  fixture *f = malloc(sizeof(*f));
  assert_non_null(f);
  make_fixture(f, 'a');
  f->samples[0].weight_bytes = 6e9;
  f->samples[f->s.nsamples - 1].id = (1ull << 32) + 35; /* odd, still increasing */
  size_t len;
  char *out = write_mem(pl__heapsnapshot_write, &f->s, &len);
  hs_info h;
  check_heapsnapshot(out, len, &h);
  assert_int_equal(h.ids[0], f->samples[0].id + PL__HEAPSNAPSHOT_ID_OFFSET);
  assert_int_equal(h.ids[h.nids - 1], 35 + PL__HEAPSNAPSHOT_ID_OFFSET);
  assert_int_equal(find_class(&h, "grow_cache")->self, 4 * 10ull * MB + UINT32_MAX);
  json_decref(h.root);
  free(out);
  free(f);
}

/* ---- a big random snapshot through a file sink (streaming, speed) -------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(rng_state >> 33) % n;
}

typedef struct big {
  pl_heap_snapshot s;
  pl_frame frames[400];
  char names[400][32], files[40][32], modules[5][32];
} big;

static big *make_big(size_t nsamples) {
  enum { NFR = 400, NST = 4000 };
  big *b = calloc(1, sizeof(*b));
  assert_non_null(b);
  pl_heap_stack *stacks = calloc(NST, sizeof(*stacks));
  pl_heap_sample *samples = calloc(nsamples, sizeof(*samples));
  assert_true(stacks && samples);
  for (int i = 0; i < 40; i++) snprintf(b->files[i], 32, "/src/big/file%d.c", i);
  for (int i = 0; i < 5; i++) snprintf(b->modules[i], 32, "/usr/lib/libbig%d.so", i);
  for (int i = 0; i < NFR; i++) {
    if (i % 50 == 0)
      snprintf(b->names[i], 32, "%s", i % 100 ? "operator new(unsigned long)" : "strdup");
    else
      snprintf(b->names[i], 32, "fn_%d", i / 2);
    b->frames[i] = (pl_frame){b->names[i],
                              (i / 2) % 7 ? b->files[(i / 2) % 40] : "",
                              b->modules[(i / 2) % 5],
                              (uint32_t)(i % 13),
                              (uint32_t)(i / 2) % 11,
                              0x400000u + (uint64_t)i * 16};
  }
  stacks[0].flags = PL_HEAP_STACK_UNKNOWN;
  for (int s = 1; s < NST; s++) {
    uint32_t depth = 1 + rnd(40);
    stacks[s].depth = depth;
    stacks[s].flags = rnd(50) == 0 ? PL_HEAP_STACK_TRUNCATED : 0;
    stacks[s].frames = calloc(depth, sizeof(uint32_t));
    assert_non_null(stacks[s].frames);
    for (uint32_t d = 0; d < depth; d++) stacks[s].frames[d] = rnd(NFR);
  }
  uint64_t id = 1;
  for (size_t i = 0; i < nsamples; i++) {
    id += 2 * (1 + rnd(3));
    uint64_t size = 16 + rnd(1 << 20);
    double w = 1.0 + 524288.0 / (double)size * (rnd(1000) / 1000.0); /* any weight >= 1 will do */
    uint32_t st = rnd(100) == 0 ? 0 : 1 + rnd(NST - 1);
    samples[i] = (pl_heap_sample){
        id, size, TIME_NS + i, 0x10000000 + i * 64, w, w * (double)size, st, 1000 + rnd(4)};
    stacks[st].inuse_objects += w;
    stacks[st].inuse_bytes += w * (double)size;
    stacks[st].alloc_objects += 2 * w;
    stacks[st].alloc_bytes += 2 * w * (double)size;
    b->s.inuse_bytes += w * (double)size;
  }
  b->s.samples = samples;
  b->s.nsamples = nsamples;
  b->s.stacks = stacks;
  b->s.nstacks = NST;
  b->s.frames = b->frames;
  b->s.nframes = NFR;
  b->s.sample_bytes = 524288;
  b->s.wall_ns = WALL_NS;
  return b;
}

static void free_big(big *b) {
  for (size_t s = 0; s < b->s.nstacks; s++) free(b->s.stacks[s].frames);
  free(b->s.stacks);
  free(b->s.samples);
  free(b);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes through an fd sink into a temporary file; returns the bytes. */
static char *write_file(writer_fn w, const pl_heap_snapshot *s, size_t *len, double *secs) {
  FILE *tmp = tmpfile();
  assert_non_null(tmp);
  int fd = fileno(tmp);
  pl__sink sk;
  pl__sink_init_fd(&sk, &fd);
  double t0 = now_s();
  assert_int_equal(w(s, &sk), 0);
  *secs = now_s() - t0;
  assert_int_equal(pl__sink_finish(&sk), 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  assert_int_equal((uint64_t)st.st_size, sk.total);
  pl__sink_free(&sk);
  char *data = malloc((size_t)st.st_size + 1);
  assert_non_null(data);
  assert_int_equal(pread(fd, data, (size_t)st.st_size, 0), st.st_size);
  data[st.st_size] = '\0';
  fclose(tmp);
  *len = (size_t)st.st_size;
  return data;
}

static void test_big_streaming(void **state) {
  (void)state;
  const size_t n = 200000;
  big *b = make_big(n);
  size_t len, mlen;
  double secs;
  char *out = write_file(pl__heapsnapshot_write, &b->s, &len, &secs);
  assert_true(len > (1 << 20));
  fprintf(stderr, "heapsnapshot: %zu samples, %.1f MB in %.1f ms (%.0f MB/s)\n", n, len / 1e6,
          secs * 1e3, len / 1e6 / secs);
  char *mem = write_mem(pl__heapsnapshot_write, &b->s, &mlen);
  assert_int_equal(len, mlen);
  assert_memory_equal(out, mem, len);
  free(mem);
  /* the invariants on a big graph (without the O(n^2) id check) */
  json_t *root = parse_json(out, len);
  json_t *snap = json_object_get(root, "snapshot");
  size_t nn = (size_t)jint(snap, "node_count"), ne = (size_t)jint(snap, "edge_count");
  json_t *nodes = json_object_get(root, "nodes"), *edges = json_object_get(root, "edges");
  assert_int_equal(json_array_size(nodes), nn * NF);
  assert_int_equal(json_array_size(edges), ne * 3);
  uint64_t esum = 0, self = 0;
  for (size_t i = 0; i < nn; i++) {
    esum += (uint64_t)json_integer_value(json_array_get(nodes, i * NF + 4));
    self += (uint64_t)json_integer_value(json_array_get(nodes, i * NF + 3));
  }
  assert_int_equal(esum, ne);
  assert_int_equal(self, rounded_live(&b->s));
  /* grouping nodes (the root's edges): even, distinct ids; allocations odd */
  size_t ng = (size_t)json_integer_value(json_array_get(nodes, 4));
  assert_true(ng > 100 && ng < 400);
  for (size_t g = 1; g <= ng; g++) {
    json_int_t id = json_integer_value(json_array_get(nodes, g * NF + 2));
    assert_true(id % 2 == 0 && id > 0);
    for (size_t k = 1; k < g; k++)
      assert_true(json_integer_value(json_array_get(nodes, k * NF + 2)) != id);
  }
  for (size_t i = 1 + ng; i < nn; i++)
    assert_true(json_integer_value(json_array_get(nodes, i * NF + 2)) % 2 == 1);
  for (size_t e = 0; e < ne; e++) {
    json_int_t to = json_integer_value(json_array_get(edges, e * 3 + 2));
    assert_true(to % NF == 0 && to / NF < (json_int_t)nn && to > 0);
  }
  json_decref(root);
  free(out);

  out = write_file(pl__heapprofile_write, &b->s, &len, &secs);
  fprintf(stderr, "heapprofile: %.1f MB in %.1f ms\n", len / 1e6, secs * 1e3);
  root = parse_json(out, len);
  assert_int_equal(json_array_size(json_object_get(root, "samples")), n);
  json_decref(root);
  free(out);

  out = write_file(pl__pprof_heap_write, &b->s, &len, &secs);
  fprintf(stderr, "pprof heap: %.2f MB in %.1f ms\n", len / 1e6, secs * 1e3);
  pb_profile *pr = check_pprof(out, len, &b->s);
  perftools__profiles__profile__free_unpacked(pr, NULL);
  free(out);
  free_big(b);
}

typedef struct run_arg {
  writer_fn fn;
  const pl_heap_snapshot *s;
} run_arg;

static int run_writer(void *arg, pl__sink *out) {
  run_arg *r = arg;
  return r->fn(r->s, out);
}

/* Every allocation of each writer fails in turn (writer_test.h). */
static void torture(const pl_heap_snapshot *s, const char *what) {
  for (size_t w = 0; w < NWRITERS; w++) {
    char name[96];
    snprintf(name, sizeof(name), "%s (%s)", writers[w].name, what);
    torture_writer(name, run_writer, &(run_arg){writers[w].fn, s});
  }
}

static void test_alloc_failures(void **state) {
  (void)state;
  if (!TORTURE) skip(); /* AddressSanitizer owns malloc */
  fixture *f = malloc(sizeof(*f));
  assert_non_null(f);
  make_fixture(f, 'b');
  torture(&f->s, "symbolized");
  f->s.frames = NULL;
  f->s.nframes = 0;
  torture(&f->s, "unsymbolized");
  free(f);
}

/* ---- fixture outputs for real clients ----------------------------------- */

static void dump(const char *dir, const char *name, writer_fn w, const pl_heap_snapshot *s) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  size_t len;
  char *data = write_mem(w, s, &len);
  FILE *f = fopen(path, "wb");
  if (!f) fail_msg("cannot write %s: %s", path, strerror(errno));
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
  fprintf(stderr, "wrote %s (%zu bytes)\n", path, len);
  free(data);
}

static void test_dump_fixture(void **state) {
  (void)state;
  const char *dir = getenv("PROFLAB_FIXTURE_OUT");
  if (!dir || !*dir) skip();
  fixture *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
  assert_true(a && b);
  make_fixture(a, 'a');
  make_fixture(b, 'b');
  dump(dir, "heap-a.heapsnapshot", pl__heapsnapshot_write, &a->s);
  dump(dir, "heap-b.heapsnapshot", pl__heapsnapshot_write, &b->s);
  dump(dir, "heap-a.heapprofile", pl__heapprofile_write, &a->s);
  dump(dir, "heap-b.heapprofile", pl__heapprofile_write, &b->s);
  dump(dir, "heap-a.pb.gz", pl__pprof_heap_write, &a->s);
  dump(dir, "heap-b.pb.gz", pl__pprof_heap_write, &b->s);
  free(a);
  free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_heapsnapshot_a), cmocka_unit_test(test_heapsnapshot_b_vs_a),
      cmocka_unit_test(test_heapprofile),    cmocka_unit_test(test_pprof),
      cmocka_unit_test(test_unsymbolized),   cmocka_unit_test(test_alloc_frame),
      cmocka_unit_test(test_deterministic),  cmocka_unit_test(test_sink_error),
      cmocka_unit_test(test_invalid_model),  cmocka_unit_test(test_empty_snapshot),
      cmocka_unit_test(test_limits),         cmocka_unit_test(test_big_streaming),
      cmocka_unit_test(test_alloc_failures), cmocka_unit_test(test_dump_fixture),
  };
  const char *filter = getenv("PROFLAB_TEST_FILTER");
  if (filter && *filter) cmocka_set_test_filter(filter);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
