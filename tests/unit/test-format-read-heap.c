/* Heap profile readers (src/format/readers.h: .heapprofile, pprof heap) and
 * the heap aggregation by function (src/analysis/top.h): a hand-built
 * snapshot written with our writers and read back (same allocating
 * functions, stacks and bytes; pprof keeps all four estimates); a chain of
 * conversions; a real profile from `node --heap-prof` with a known leak;
 * bad input ends in a clear error or a model every writer accepts. */
#include "profile_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "analysis/top.h"
#include "common/sink.h"
#include "format/heap_common.h"
#include "format/heap_writers.h"
#include "format/readers.h"

/* ---- the fixture -------------------------------------------------------- */

#define MB 1000000.0

static pl_frame fx_frames[] = {
    /* function, file, module, line, function_line, address */
    {"main", "/src/app/main.c", "/usr/bin/app", 40, 30, 0x401100},               /* 0 */
    {"handle_request", "/src/app/server.c", "/usr/bin/app", 120, 100, 0x402200}, /* 1 */
    {"grow_cache", "/src/app/cache.c", "/usr/bin/app", 55, 50, 0x403300},        /* 2 */
    {"load_config", "/src/app/config.c", "/usr/bin/app", 21, 12, 0x404400},      /* 3 */
    {"__strdup", "", "/lib/x86_64-linux-gnu/libc.so.6", 0, 0, 0x7f0000010000},   /* 4 */
    {"malloc", "", "/lib/x86_64-linux-gnu/libc.so.6", 0, 0, 0x7f0000020000},     /* 5 */
    {"worker \"q\"", "/src/my dir/w#1.c", "/usr/bin/app", 9, 3, 0x405500},       /* 6 */
};

/* innermost first */
static uint32_t s_grow[] = {2, 1, 0}, s_config[] = {4, 3, 1, 0}, s_worker[] = {5, 6},
                s_trunc[] = {2, 1}, s_freed[] = {3, 0};

enum { S_UNKNOWN, S_GROW, S_CONFIG, S_WORKER, S_TRUNC, S_FREED, NSTACKS };

static pl_heap_stack fx_stacks[NSTACKS] = {
    {0, PL_HEAP_STACK_UNKNOWN, NULL, NULL, 0, 0, 0, 0},
    {3, 0, NULL, s_grow, 0, 0, 0, 0},
    {4, 0, NULL, s_config, 0, 0, 0, 0},
    {2, 0, NULL, s_worker, 0, 0, 0, 0},
    {2, PL_HEAP_STACK_TRUNCATED, NULL, s_trunc, 0, 0, 0, 0},
    {2, 0, NULL, s_freed, 0, 0, 0, 0},
};

static pl_heap_sample fx_samples[] = {
    /* id, size, time, address, weight_objects, weight_bytes, stack, tid */
    {1, 10000000, 0, 0, 1.0, 10 * MB, S_GROW, 1},
    {3, 300, 0, 0, 1747.6, 524288.0, S_CONFIG, 1},
    {5, 12000000, 0, 0, 1.0, 12 * MB, S_GROW, 2},
    {7, 200000, 0, 0, 3.153, 630600.0, S_UNKNOWN, 1},
    {9, 100000, 0, 0, 5.759, 575900.0, S_TRUNC, 2},
    {11, 2000000, 0, 0, 1.0, 2 * MB, S_WORKER, 2},
};
#define FX_NSAMPLES (sizeof(fx_samples) / sizeof(fx_samples[0]))

static pl_heap_snapshot fixture(void) {
  for (size_t i = 0; i < NSTACKS; i++) {
    fx_stacks[i].inuse_objects = fx_stacks[i].inuse_bytes = 0;
    fx_stacks[i].alloc_objects = fx_stacks[i].alloc_bytes = 0;
  }
  for (size_t i = 0; i < FX_NSAMPLES; i++) {
    pl_heap_stack *st = &fx_stacks[fx_samples[i].stack];
    st->inuse_objects += fx_samples[i].weight_objects;
    st->inuse_bytes += fx_samples[i].weight_bytes;
  }
  for (size_t i = 0; i < NSTACKS; i++) { /* allocated more than is live */
    fx_stacks[i].alloc_objects = fx_stacks[i].inuse_objects * 2 + 1;
    fx_stacks[i].alloc_bytes = fx_stacks[i].inuse_bytes * 3 + 100;
  }
  return (pl_heap_snapshot){.samples = fx_samples,
                            .nsamples = FX_NSAMPLES,
                            .stacks = fx_stacks,
                            .nstacks = NSTACKS,
                            .frames = fx_frames,
                            .nframes = sizeof(fx_frames) / sizeof(fx_frames[0]),
                            .sample_bytes = 524288,
                            .wall_ns = 1764100000000000000ull,
                            .frames_state = PL_HEAP_FRAMES_LINES};
}

/* ---- helpers ------------------------------------------------------------ */

typedef int (*writer_fn)(const pl_heap_snapshot *, pl__sink *);

static char *write_mem(writer_fn w, const pl_heap_snapshot *s, size_t *len) {
  pl__sink k;
  pl__sink_init_mem(&k);
  assert_int_equal(w(s, &k), 0);
  return sink_take(&k, len);
}

/* Each stack with live or allocated data, by name from its outermost
 * caller to the allocating function (helpers dropped, as the writers do),
 * "(truncated)" first when cut, with its values; sorted. values: 1 live
 * bytes only, 4 all estimates. */
static char *stacks_text(const pl_heap_snapshot *s, int values) {
  pl__heap_view v;
  assert_int_equal(pl__heap_view_init(&v, s), 0);
  size_t n = 0;
  char **lines = calloc(s->nstacks + 1, sizeof(*lines));
  assert_non_null(lines);
  for (size_t i = 0; i < s->nstacks; i++) {
    const pl_heap_stack *st = &s->stacks[i];
    uint64_t ib = pl__heap_round(st->inuse_bytes);
    if (values == 1 ? !ib
                    : !(ib || pl__heap_round(st->alloc_bytes) ||
                        pl__heap_round(st->inuse_objects) || pl__heap_round(st->alloc_objects)))
      continue;
    pl_buf b;
    pl_buf_init(&b);
    if (st->flags & PL_HEAP_STACK_TRUNCATED) pl_buf_puts(&b, "(truncated);");
    if (!st->depth) pl_buf_puts(&b, "(unknown)");
    for (uint32_t d = st->depth; d-- > v.first[i];)
      pl_buf_printf(&b, "%s%s", pl__heap_frame(&v, i, d)->function, d > v.first[i] ? ";" : "");
    if (values == 1)
      pl_buf_printf(&b, " %llu", (unsigned long long)ib);
    else
      pl_buf_printf(&b, " %llu %llu %llu %llu",
                    (unsigned long long)pl__heap_round(st->alloc_objects),
                    (unsigned long long)pl__heap_round(st->alloc_bytes),
                    (unsigned long long)pl__heap_round(st->inuse_objects), (unsigned long long)ib);
    lines[n++] = pl_buf_steal(&b, NULL);
  }
  pl__heap_view_free(&v);
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (strcmp(lines[i], lines[j]) > 0) {
        char *t = lines[i];
        lines[i] = lines[j];
        lines[j] = t;
      }
  pl_buf out;
  pl_buf_init(&out);
  for (size_t i = 0; i < n; i++) {
    pl_buf_printf(&out, "%s\n", lines[i]);
    free(lines[i]);
  }
  free(lines);
  return pl_buf_steal(&out, NULL);
}

/* Allocating functions with self and total live bytes, sorted. */
static char *top_text(const pl_heap_snapshot *s) {
  pl__top t;
  assert_int_equal(pl__top_heap(s, &t), 0);
  char head[64];
  snprintf(head, sizeof(head), "total %llu\n", (unsigned long long)t.total);
  return top_as_text(&t, head);
}

/* ---- round trips -------------------------------------------------------- */

static void test_roundtrip_heapprofile(void **state) {
  (void)state;
  pl_heap_snapshot fx = fixture();
  size_t len;
  char *data = write_mem(pl__heapprofile_write, &fx, &len);
  pl_heap_snapshot *s = read_heap_mem(data, len, PL__KIND_HEAPPROFILE);
  heap_writers_accept(s);
  assert_int_equal(s->nsamples, FX_NSAMPLES);
  for (size_t i = 0; i < FX_NSAMPLES; i++) { /* ordinals are the tracker's ids */
    assert_int_equal(s->samples[i].id, fx_samples[i].id);
    assert_int_equal(s->samples[i].size, pl__heap_round(fx_samples[i].weight_bytes));
  }
  assert_same_text(stacks_text(&fx, 1), stacks_text(s, 1), "stacks");
  assert_same_text(top_text(&fx), top_text(s), "functions");
  /* the format has only live data */
  for (size_t i = 0; i < s->nstacks; i++)
    assert_true(s->stacks[i].alloc_bytes == s->stacks[i].inuse_bytes);
  pl_heap_snapshot_free(s);
  free(data);
}

static void roundtrip_pprof(writer_fn w) {
  pl_heap_snapshot fx = fixture();
  size_t len;
  char *data = write_mem(w, &fx, &len);
  pl_heap_snapshot *s = read_heap_mem(data, len, PL__KIND_PPROF_HEAP);
  heap_writers_accept(s);
  assert_int_equal(s->sample_bytes, 524288);
  assert_int_equal(s->wall_ns, fx.wall_ns);
  assert_same_text(stacks_text(&fx, 4), stacks_text(s, 4), "stacks and estimates");
  assert_same_text(top_text(&fx), top_text(s), "functions");
  /* frames keep files and lines */
  int found = 0;
  for (size_t i = 0; i < s->nframes; i++)
    if (strcmp(s->frames[i].function, "worker \"q\"") == 0) {
      assert_string_equal(s->frames[i].file, "/src/my dir/w#1.c");
      assert_int_equal(s->frames[i].line, 9);
      assert_int_equal(s->frames[i].function_line, 3);
      found = 1;
    }
  assert_true(found);
  pl_heap_snapshot_free(s);
  free(data);
}

static void test_roundtrip_pprof(void **state) {
  (void)state;
  roundtrip_pprof(pl__pprof_heap_write);
  roundtrip_pprof(pl__pprof_heap_write_raw);
}

static void test_conversion_chain(void **state) {
  (void)state;
  pl_heap_snapshot fx = fixture();
  char *want = stacks_text(&fx, 1);
  size_t len;
  char *data = write_mem(pl__heapprofile_write, &fx, &len);
  pl_heap_snapshot *s = read_heap_mem(data, len, PL__KIND_HEAPPROFILE);
  static const struct {
    writer_fn w;
    pl__profile_kind kind;
  } steps[] = {{pl__pprof_heap_write, PL__KIND_PPROF_HEAP},
               {pl__heapprofile_write, PL__KIND_HEAPPROFILE},
               {pl__pprof_heap_write_raw, PL__KIND_PPROF_HEAP},
               {pl__heapprofile_write, PL__KIND_HEAPPROFILE}};
  for (size_t i = 0; i < sizeof(steps) / sizeof(*steps); i++) {
    free(data);
    data = write_mem(steps[i].w, s, &len);
    pl_heap_snapshot_free(s);
    s = read_heap_mem(data, len, steps[i].kind);
    char *got = stacks_text(s, 1);
    if (strcmp(got, want) != 0) fail_msg("step %zu:\n%s\nvs\n%s", i, got, want);
    free(got);
  }
  free(want);
  free(data);
  pl_heap_snapshot_free(s);
}

/* A pprof heap whose stacks end with one without any estimate (a pprof
 * sample of zeros reads so): pprof_heap.c once wrote that stack's values
 * one past its array. */
static void test_zero_stack_last(void **state) {
  (void)state;
  pl_heap_snapshot fx = fixture();
  pl_heap_stack stacks[NSTACKS + 1];
  memcpy(stacks, fx_stacks, sizeof(fx_stacks));
  stacks[NSTACKS] = (pl_heap_stack){2, 0, NULL, s_freed, 0, 0, 0, 0};
  fx.stacks = stacks;
  fx.nstacks = NSTACKS + 1;
  size_t len;
  char *data = write_mem(pl__pprof_heap_write, &fx, &len);
  pl_heap_snapshot *s = read_heap_mem(data, len, PL__KIND_PPROF_HEAP);
  assert_same_text(stacks_text(&fx, 4), stacks_text(s, 4), "stacks and estimates");
  pl_heap_snapshot_free(s);
  free(data);
}

/* ---- other shapes and errors -------------------------------------------- */

static void expect_error(const char *text, const char *want) {
  pl__profile pf;
  pl__read_err err;
  int rc = pl__read_profile_mem(text, strlen(text), &pf, &err);
  if (rc == 0) {
    pl__profile_free(&pf);
    fail_msg("%s: read, expected \"%s\"", text, want);
  }
  if (rc != -EINVAL || !strstr(err.msg, want))
    fail_msg("%s:\n  got %d \"%s\"\n  want \"...%s...\"", text, rc, err.msg, want);
}

#define CF(name) "\"callFrame\":{\"functionName\":\"" name "\",\"url\":\"\",\"lineNumber\":-1}"

/* The snapshot read from a .heapprofile's text; its live stacks must be want. */
static pl_heap_snapshot *read_stacks(const char *json, const char *want) {
  pl_heap_snapshot *s = read_heap_mem(json, strlen(json), PL__KIND_HEAPPROFILE);
  char *t = stacks_text(s, 1);
  assert_string_equal(t, want);
  free(t);
  return s;
}

static void test_shapes(void **state) {
  (void)state;
  /* samples before head; children before the node's own fields */
  const char *a = "{\"samples\":[{\"size\":100,\"nodeId\":3,\"ordinal\":4},{\"size\":50,\"nodeId\":2,"
                  "\"ordinal\":2}],\"head\":{\"children\":[{\"children\":[{" CF("leaf")
                  ",\"selfSize\":100,\"id\":3,\"children\":[]}]," CF("mid")
                  ",\"selfSize\":50,\"id\":2}]," CF("(root)") ",\"selfSize\":0,\"id\":1}}";
  pl_heap_snapshot *s = read_stacks(a, "mid 50\nmid;leaf 100\n");
  /* ordinals 2 and 4 are not odd: ids are made from their order */
  assert_int_equal(s->samples[0].id, 1);
  assert_int_equal(s->samples[0].size, 50);
  assert_int_equal(s->samples[1].id, 3);
  heap_writers_accept(s);
  pl_heap_snapshot_free(s);
  /* no samples: one per node with a selfSize */
  const char *b = "{\"head\":{" CF("(root)") ",\"selfSize\":0,\"id\":1,\"children\":[{" CF("f")
                  ",\"selfSize\":700,\"id\":2,\"children\":[{" CF("g")
                  ",\"selfSize\":300,\"id\":3,\"children\":[]}]}]},\"samples\":[]}";
  s = read_stacks(b, "f 700\nf;g 300\n");
  assert_true(s->inuse_bytes == 1000);
  pl_heap_snapshot_free(s);

  /* a sample naming a node the tree lacks (Node writes such files): the
   * tree's selfSize counts, as with no samples */
  const char *c = "{\"head\":{" CF("(root)") ",\"selfSize\":0,\"id\":1,\"children\":[{" CF("f")
                  ",\"selfSize\":700,\"id\":2,\"children\":[]}]},\"samples\":[{\"size\":1,"
                  "\"nodeId\":7,\"ordinal\":1},{\"size\":700,\"nodeId\":2,\"ordinal\":3}]}";
  s = read_stacks(c, "f 700\n");
  assert_true(s->inuse_bytes == 700);
  pl_heap_snapshot_free(s);
  /* ids too sparse for a direct table, and a root without one: each
   * sample still names its own node */
  const char *d = "{\"head\":{" CF("(root)") ",\"children\":[{" CF("f")
                  ",\"id\":100000,\"children\":[]},{" CF("g")
                  ",\"id\":200000,\"children\":[]}]},\"samples\":[{\"size\":10,"
                  "\"nodeId\":200000,\"ordinal\":1},{\"size\":3,\"nodeId\":100000,"
                  "\"ordinal\":2}]}";
  s = read_stacks(d, "f 3\ng 10\n");
  pl_heap_snapshot_free(s);
  expect_error("{\"head\":{" CF("(root)") ",\"id\":1,\"children\":[{" CF(
                   "a") ",\"id\":1,\"children\":[]}]}}",
               "node id 1 appears twice");
  expect_error("{\"samples\":[{\"size\":1,\"nodeId\":1}]}",
               "offset 0: expected a \"head\" node tree, found none");
  expect_error("{\"head\":{\"children\":[7]}}",
               "offset 21: expected a node object, found the number 7");
  expect_error("{\"head\":{\"selfSize\":-5}}", "expected a selfSize of 0 or more bytes");
  expect_error("{\"head\":{\"id\":1},\"samples\":[{\"size\":\"big\",\"nodeId\":1}]}",
               "expected a sample size (bytes), found the string \"big\"");
  expect_error("{\"head\":{\"id\":1},\"samples\":[{\"size\":1}]}",
               "expected the sample's \"nodeId\", found none");
  expect_error("{\"head\":{" CF("(root)") ",\"id\":1},\"samples\":[{\"size\":1,\"nodeId\":1}]}",
               "samples[0] names node 1, the root");
  expect_error("{\"head\":{\"id\":1,\"children\":[{\"id\":2,\"children\":[",
               "found the end of the file (truncated?)");
}

static void test_every_truncation(void **state) {
  (void)state;
  pl_heap_snapshot fx = fixture();
  writer_fn ws[] = {pl__heapprofile_write, pl__pprof_heap_write, pl__pprof_heap_write_raw};
  for (size_t k = 0; k < 3; k++) {
    size_t len;
    char *data = write_mem(ws[k], &fx, &len);
    size_t whole = len;
    while (whole && data[whole - 1] == '\n') whole--;
    for (size_t cut = 0; cut < len; cut++) {
      if (read_any(data, cut) && k < 2 && cut < whole)
        fail_msg("writer %zu: a prefix of %zu bytes was read", k, cut);
    }
    free(data);
  }
}

static void test_corruption(void **state) {
  (void)state;
  pl_heap_snapshot fx = fixture();
  writer_fn ws[] = {pl__heapprofile_write, pl__pprof_heap_write_raw};
  uint64_t seed = 7;
  for (size_t k = 0; k < 2; k++) {
    size_t len;
    char *data = write_mem(ws[k], &fx, &len);
    char *copy = malloc(len);
    assert_non_null(copy);
    for (int round = 0; round < 2000; round++) {
      memcpy(copy, data, len);
      for (int m = 0; m < 1 + round % 3; m++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        copy[(seed >> 33) % len] = (char)(seed >> 8);
      }
      read_any(copy, len);
    }
    free(copy);
    free(data);
  }
}

/* ---- a real Node heap profile ------------------------------------------- */

static const char node_script[] =
    "globalThis.kept = [];\n"
    "function leakyAllocator() { for (let i = 0; i < 20000; i++) globalThis.kept.push({a: i, b: "
    "'x' + i, c: new Array(16).fill(i)}); }\n"
    "function churn() { let a = []; for (let i = 0; i < 1000; i++) a.push(new Array(10).fill(i)); "
    "return a.length; }\n"
    "function main() { for (let k = 0; k < 20; k++) { leakyAllocator(); churn(); } }\n"
    "main();\n"
    "console.log(globalThis.kept.length);\n";

static void test_node_heap_profile(void **state) {
  (void)state;
  if (system("node --version >/dev/null 2>&1") != 0) {
    fprintf(stderr, "node not installed: skipped\n");
    skip();
  }
  char dir[] = "/tmp/pl-read-heap-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[512], cmd[1200];
  snprintf(path, sizeof(path), "%s/leak.js", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(node_script, f);
  fclose(f);
  snprintf(cmd, sizeof(cmd),
           "cd %s && node --heap-prof --heap-prof-dir=%s --heap-prof-name=leak.heapprofile "
           "leak.js >/dev/null",
           dir, dir);
  assert_int_equal(system(cmd), 0);
  snprintf(path, sizeof(path), "%s/leak.heapprofile", dir);
  pl__profile pf;
  pl__read_err err;
  int rc = pl__read_profile(path, -1, &pf, &err);
  if (rc) fail_msg("%s: %s", path, err.msg);
  assert_int_equal(pf.kind, PL__KIND_HEAPPROFILE);
  heap_writers_accept(pf.heap);
  pl__top t;
  assert_int_equal(pl__top_heap(pf.heap, &t), 0);
  pl__top_sort(&t, 0);
  assert_true(t.nrows >= 2);
  double share = (double)t.rows[0].self / (double)t.total;
  fprintf(stderr, "node: %s %.1f MB (%.1f%% of %.1f MB live)\n", t.rows[0].function,
          (double)t.rows[0].self / 1e6, 100 * share, (double)t.total / 1e6);
  assert_string_equal(t.rows[0].function, "leakyAllocator");
  assert_true(share > 0.9);
  /* 400000 kept objects with a 16-element array and a string each: > 40 MB */
  assert_true(t.rows[0].self > 40000000);
  /* the pprof heap written from it says the same */
  size_t len;
  char *data = write_mem(pl__pprof_heap_write, pf.heap, &len);
  pl_heap_snapshot *s = read_heap_mem(data, len, PL__KIND_PPROF_HEAP);
  pl__top t2;
  assert_int_equal(pl__top_heap(s, &t2), 0);
  pl__top_sort(&t2, 0);
  assert_string_equal(t2.rows[0].function, "leakyAllocator");
  assert_int_equal(t2.rows[0].self, t.rows[0].self);
  pl__top_free(&t2);
  pl_heap_snapshot_free(s);
  free(data);
  pl__top_free(&t);
  pl__profile_free(&pf);
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_heapprofile),
      cmocka_unit_test(test_roundtrip_pprof),
      cmocka_unit_test(test_conversion_chain),
      cmocka_unit_test(test_zero_stack_last),
      cmocka_unit_test(test_shapes),
      cmocka_unit_test(test_every_truncation),
      cmocka_unit_test(test_corruption),
      cmocka_unit_test(test_node_heap_profile),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
