/* CPU profile readers (src/format/readers.h) and their aggregation by
 * function (src/analysis/top.h): a hand-built profile written with our
 * writers (.cpuprofile in both modes, pprof gzip and raw, folded) and read
 * back (same functions, stacks, lines and weights); chains of conversions;
 * detection by content; a real profile from `node --cpu-prof` with a known
 * hot function; bad input (a table of cases, every truncation, short reads,
 * random corruption) ends in a clear error or a model every writer
 * accepts, never a crash.
 *
 *   PROFLAB_KEEP_NODE_PROFILE=DIR build/tests/test-format-read-cpu   keeps
 *     the node profile in DIR.
 */
#include "profile_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/top.h"
#include "common/sink.h"
#include "format/cpu_writers.h"
#include "format/profile.pb-c.h"
#include "format/readers.h"

/* ---- the fixture -------------------------------------------------------- */

#define START_NS 5000000123456ull
#define PERIOD_NS 1000000ull
#define WALL_NS 1764100000000000000ull

static pl_frame fx_frames[] = {
    /* function, file, module, line, function_line, address */
    {"main", "/src/app/main.c", "/usr/bin/app", 42, 30, 0x401100},               /* 0 */
    {"handle_request", "/src/app/server.c", "/usr/bin/app", 120, 100, 0x402200}, /* 1 */
    {"compute", "/src/app/work.c", "/usr/bin/app", 15, 10, 0x403010},            /* 2 */
    {"compute", "/src/app/work.c", "/usr/bin/app", 17, 10, 0x403020},            /* 3 */
    {"libx.so+0x1234", "", "/usr/lib/libx.so", 0, 0, 0x7f0000001234},            /* 4 */
    {"memcpy", "", "/lib/x86_64-linux-gnu/libc.so.6", 0, 0, 0x7f1000002000},     /* 5 */
    {"worker_thread", "/src/app/worker.c", "/usr/bin/app", 60, 50, 0x404400},    /* 6 */
    {"recurse", "/src/app/rec.c", "/usr/bin/app", 9, 5, 0x405500},               /* 7 */
    {"spaced name", "/src/my dir/x#1.c", "/usr/bin/app", 7, 2, 0x406600},        /* 8 */
    {"unused", "/src/app/unused.c", "/usr/bin/app", 1, 1, 0x407700},             /* 9 */
};

/* leaf first */
static uint32_t st0[] = {2, 1, 0}, st1[] = {3, 1, 0}, st2[] = {4, 2, 1, 0}, st3[] = {5, 6},
                st4[] = {1, 0}, st5[] = {7, 7, 7, 1, 0}, st6[] = {8, 0};

static pl_cpu_stack fx_stacks[] = {
    {3, st0}, {3, st1}, {4, st2}, {2, st3}, {2, st4}, {5, st5}, {2, st6}, {0, NULL},
};

#define IDLE PL_STACK_IDLE
#define PROG PL_STACK_PROGRAM
static pl_cpu_sample fx_samples[] = {
    /* time_ns, stack, weight, tid */
    {START_NS + 1000000, 0, 1, 100},     {START_NS + 3000000, 1, 2, 100},
    {START_NS + 4000000, IDLE, 1, 100},  {START_NS + 7000000, 2, 3, 100},
    {START_NS + 8000000, 3, 1, 101},     {START_NS + 9000000, PROG, 1, 101},
    {START_NS + 13000000, 0, 4, 100},    {START_NS + 14000000, 4, 1, 100},
    {START_NS + 16000000, 5, 2, 101},    {START_NS + 17000000, 6, 1, 100},
    {START_NS + 18000000, IDLE, 1, 100}, {START_NS + 19000000, 7, 1, 101},
    {START_NS + 20000000, 5, 1, 100},
};
#define FX_NSAMPLES (sizeof(fx_samples) / sizeof(fx_samples[0]))
#define FX_WEIGHT 20

static pl_cpu_profile fixture(const char *mode) {
  return (pl_cpu_profile){.frames = fx_frames,
                          .nframes = sizeof(fx_frames) / sizeof(fx_frames[0]),
                          .stacks = fx_stacks,
                          .nstacks = sizeof(fx_stacks) / sizeof(fx_stacks[0]),
                          .samples = fx_samples,
                          .nsamples = FX_NSAMPLES,
                          .start_ns = START_NS,
                          .end_ns = START_NS + 20000000,
                          .start_wall_ns = WALL_NS,
                          .period_ns = PERIOD_NS,
                          .mode = mode,
                          .signals = 17};
}

/* ---- helpers ------------------------------------------------------------ */

typedef int (*writer_fn)(const pl_cpu_profile *, pl__sink *);

static char *write_mem(writer_fn w, const pl_cpu_profile *p, size_t *len) {
  pl__sink s;
  pl__sink_init_mem(&s);
  assert_int_equal(w(p, &s), 0);
  return sink_take(&s, len);
}

/* The folded form: stacks by name with their summed weights, sorted. */
static char *folded(const pl_cpu_profile *p) {
  size_t len;
  return write_mem(pl__folded_write, p, &len);
}

/* Functions by (name, file, first line) with self and total, sorted. */
static char *top_text(const pl_cpu_profile *p) {
  pl__top t;
  assert_int_equal(pl__top_cpu(p, &t), 0);
  char head[96];
  snprintf(head, sizeof(head), "total %llu idle %llu\n", (unsigned long long)t.total,
           (unsigned long long)t.idle);
  return top_as_text(&t, head);
}

/* A sample's leaf: "function:line", "(idle)" or "(program)". */
static void leaf_key(const pl_cpu_profile *p, const pl_cpu_sample *s, char *key, size_t n) {
  if (s->stack == IDLE || s->stack == PROG || !p->stacks[s->stack].depth)
    snprintf(key, n, "%s", s->stack == IDLE ? "(idle)" : "(program)");
  else {
    const pl_frame *f = &p->frames[p->stacks[s->stack].frames[0]];
    snprintf(key, n, "%s:%u", f->function, f->line);
  }
}

/* Self weight by (leaf function, leaf line). */
static char *leaf_lines(const pl_cpu_profile *p) {
  pl_buf b;
  pl_buf_init(&b);
  char(*lines)[128] = calloc(p->nsamples + 1, sizeof(*lines));
  assert_non_null(lines);
  size_t n = 0;
  for (size_t i = 0; i < p->nsamples; i++) {
    char key[128];
    leaf_key(p, &p->samples[i], key, sizeof(key));
    size_t k = 0;
    while (k < n && strcmp(lines[k], key) != 0) k++;
    if (k == n) snprintf(lines[n++], sizeof(lines[0]), "%s", key);
  }
  qsort(lines, n, sizeof(*lines), (int (*)(const void *, const void *))strcmp);
  for (size_t k = 0; k < n; k++) {
    uint64_t sum = 0;
    for (size_t i = 0; i < p->nsamples; i++) {
      char key[128];
      leaf_key(p, &p->samples[i], key, sizeof(key));
      if (strcmp(key, lines[k]) == 0) sum += p->samples[i].weight;
    }
    pl_buf_printf(&b, "%s %llu\n", lines[k], (unsigned long long)sum);
  }
  free(lines);
  return pl_buf_steal(&b, NULL);
}

static uint64_t total_weight(const pl_cpu_profile *p) {
  uint64_t w = 0;
  for (size_t i = 0; i < p->nsamples; i++) w += p->samples[i].weight;
  return w;
}

/* ---- round trips -------------------------------------------------------- */

static void roundtrip_cpuprofile(const char *mode) {
  pl_cpu_profile fx = fixture(mode);
  size_t len;
  char *data = write_mem(pl__cpuprofile_write, &fx, &len);
  pl_cpu_profile *p = read_cpu_mem(data, len, PL__KIND_CPUPROFILE);
  cpu_writers_accept(p);
  assert_int_equal(total_weight(p), FX_WEIGHT); /* one entry per period, weight 1 each */
  assert_int_equal(p->nsamples, FX_WEIGHT);
  assert_string_equal(p->mode, "wall");
  assert_int_equal(p->idle_samples, 2);
  /* DevTools' sample time: the profile's span over its samples */
  assert_true(p->period_ns > 0);
  assert_same_text(folded(&fx), folded(p), "folded stacks");
  assert_same_text(top_text(&fx), top_text(p), "functions");
  /* positionTicks give the leaves their lines back */
  assert_same_text(leaf_lines(&fx), leaf_lines(p), "leaf lines");
  /* times: non-decreasing, within the profile */
  for (size_t i = 1; i < p->nsamples; i++)
    assert_true(p->samples[i].time_ns >= p->samples[i - 1].time_ns);
  assert_true(p->start_ns / 1000 == START_NS / 1000);
  assert_true(p->samples[p->nsamples - 1].time_ns <= p->end_ns);
  /* files come back from file:// urls, percent-decoded */
  int found = 0;
  for (size_t i = 0; i < p->nframes; i++)
    if (strcmp(p->frames[i].function, "spaced name") == 0) {
      assert_string_equal(p->frames[i].file, "/src/my dir/x#1.c");
      assert_int_equal(p->frames[i].function_line, 2);
      found = 1;
    }
  assert_true(found);
  pl_cpu_profile_free(p);
  free(data);
}

static void test_roundtrip_cpuprofile(void **state) {
  (void)state;
  roundtrip_cpuprofile("cpu");
  roundtrip_cpuprofile("wall");
}

static void roundtrip_pprof(writer_fn w) {
  pl_cpu_profile fx = fixture("cpu");
  size_t len;
  char *data = write_mem(w, &fx, &len);
  pl_cpu_profile *p = read_cpu_mem(data, len, PL__KIND_PPROF_CPU);
  cpu_writers_accept(p);
  /* pprof keeps every sample and every frame field */
  assert_int_equal(p->nsamples, FX_NSAMPLES);
  assert_int_equal(p->period_ns, PERIOD_NS);
  assert_int_equal(p->start_wall_ns, WALL_NS);
  assert_int_equal(p->signals, 17);
  for (size_t i = 0; i < FX_NSAMPLES; i++) {
    const pl_cpu_sample *a = &fx_samples[i], *b = &p->samples[i];
    assert_int_equal(a->weight, b->weight);
    assert_int_equal(a->tid, b->tid);
    if (a->stack == IDLE || a->stack == PROG || !fx_stacks[a->stack].depth) {
      assert_int_equal(b->stack, a->stack == IDLE ? IDLE : PROG);
      continue;
    }
    const pl_cpu_stack *sa = &fx_stacks[a->stack], *sb = &p->stacks[b->stack];
    assert_int_equal(sa->depth, sb->depth);
    for (uint32_t d = 0; d < sa->depth; d++) {
      const pl_frame *fa = &fx_frames[sa->frames[d]], *fb = &p->frames[sb->frames[d]];
      assert_string_equal(fa->function, fb->function);
      assert_string_equal(fa->file, fb->file);
      assert_string_equal(fa->module, fb->module);
      assert_int_equal(fa->line, fb->line);
      assert_int_equal(fa->function_line, fb->function_line);
      assert_int_equal(fa->address, fb->address);
    }
  }
  assert_same_text(top_text(&fx), top_text(p), "functions");
  /* one stack per distinct stack, however many samples repeat it */
  assert_int_equal(p->nstacks, 7);
  pl_cpu_profile_free(p);
  free(data);
}

static void test_roundtrip_pprof(void **state) {
  (void)state;
  roundtrip_pprof(pl__pprof_cpu_write);
  roundtrip_pprof(pl__pprof_cpu_write_raw);
}

static void test_roundtrip_folded(void **state) {
  (void)state;
  pl_cpu_profile fx = fixture("cpu");
  size_t len;
  char *data = write_mem(pl__folded_write, &fx, &len);
  pl_cpu_profile *p = read_cpu_mem(data, len, PL__KIND_FOLDED);
  cpu_writers_accept(p);
  assert_int_equal(total_weight(p), FX_WEIGHT);
  assert_int_equal(p->period_ns, 1000000);
  char *again = folded(p);
  assert_string_equal(again, data);
  free(again);
  pl_cpu_profile_free(p);
  free(data);
}

/* .cpuprofile -> pprof -> folded -> .cpuprofile -> pprof: the stacks by
 * name and their weights survive every step. */
static void test_conversion_chain(void **state) {
  (void)state;
  pl_cpu_profile fx = fixture("wall");
  char *want = folded(&fx);
  size_t len;
  char *data = write_mem(pl__cpuprofile_write, &fx, &len);
  pl_cpu_profile *p = read_cpu_mem(data, len, PL__KIND_CPUPROFILE);
  static const struct {
    writer_fn w;
    pl__profile_kind kind;
  } steps[] = {{pl__pprof_cpu_write, PL__KIND_PPROF_CPU},
               {pl__folded_write, PL__KIND_FOLDED},
               {pl__cpuprofile_write, PL__KIND_CPUPROFILE},
               {pl__pprof_cpu_write_raw, PL__KIND_PPROF_CPU}};
  for (size_t i = 0; i < sizeof(steps) / sizeof(*steps); i++) {
    free(data);
    data = write_mem(steps[i].w, p, &len);
    pl_cpu_profile_free(p);
    p = read_cpu_mem(data, len, steps[i].kind);
    char *got = folded(p);
    if (strcmp(got, want) != 0) fail_msg("step %zu:\n%s\nvs\n%s", i, got, want);
    free(got);
  }
  free(want);
  free(data);
  pl_cpu_profile_free(p);
}

/* ---- detection ---------------------------------------------------------- */

static char *gzip_bytes(const char *in, size_t n, size_t *outlen) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  size_t cap = deflateBound(&z, (uLong)n) + 64;
  char *out = malloc(cap);
  assert_non_null(out);
  z.next_in = (unsigned char *)in;
  z.avail_in = (uInt)n;
  z.next_out = (unsigned char *)out;
  z.avail_out = (uInt)cap;
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  *outlen = cap - z.avail_out;
  deflateEnd(&z);
  return out;
}

static void expect_error(const char *data, size_t len, int want_rc, const char *want_msg) {
  pl__profile pf;
  pl__read_err err;
  int rc = pl__read_profile_mem(data, len, &pf, &err);
  if (rc == 0) {
    pl__profile_free(&pf);
    fail_msg("read %.60s: no error, expected \"%s\"", data, want_msg);
  }
  if (rc != want_rc || !strstr(err.msg, want_msg))
    fail_msg("read %.80s:\n  got %d \"%s\"\n  want %d \"...%s...\"", data, rc, err.msg, want_rc,
             want_msg);
}

static void test_detection(void **state) {
  (void)state;
  pl_cpu_profile fx = fixture("cpu");
  size_t len, glen;
  /* gzip'd .cpuprofile and gzip'd folded stacks are read too */
  char *data = write_mem(pl__cpuprofile_write, &fx, &len);
  char *gz = gzip_bytes(data, len, &glen);
  pl__profile pf;
  pl__read_err err;
  assert_int_equal(pl__read_profile_mem(gz, glen, &pf, &err), 0);
  assert_int_equal(pf.kind, PL__KIND_CPUPROFILE);
  assert_true(pf.gzipped);
  pl__profile_free(&pf);
  free(gz);
  /* keys in another order: samples first */
  const char *reordered =
      "{\"samples\":[2,2,3],\"timeDeltas\":[10,1000,1000],\"startTime\":100,\"endTime\":3100,"
      "\"nodes\":[{\"id\":1,\"callFrame\":{\"functionName\":\"(root)\",\"url\":\"\",\"lineNumber\":"
      "-1}"
      ",\"children\":[2,3]},{\"id\":2,\"callFrame\":{\"functionName\":\"a\",\"url\":\"file:///"
      "x.js\","
      "\"lineNumber\":4}},{\"id\":3,\"callFrame\":{\"functionName\":\"\",\"url\":\"\","
      "\"lineNumber\":-1"
      "}}]}";
  pl_cpu_profile *p = read_cpu_mem(reordered, strlen(reordered), PL__KIND_CPUPROFILE);
  assert_int_equal(p->nsamples, 3);
  assert_int_equal(p->period_ns, 1000000); /* (3100 - 100) us / 3 */
  char *f = folded(p);
  assert_string_equal(f, "(anonymous) 1\na 2\n");
  free(f);
  assert_string_equal(p->frames[p->stacks[p->samples[0].stack].frames[0]].file, "/x.js");
  assert_int_equal(p->frames[p->stacks[p->samples[0].stack].frames[0]].function_line, 5);
  pl_cpu_profile_free(p);
  /* an old file: parents instead of children, no samples (hitCounts instead) */
  const char *old =
      "{\"nodes\":[{\"id\":1,\"callFrame\":{\"functionName\":\"(root)\"}},"
      "{\"id\":2,\"parent\":1,\"callFrame\":{\"functionName\":\"f\"},\"hitCount\":3},"
      "{\"id\":3,\"parent\":2,\"callFrame\":{\"functionName\":\"g\"},\"hitCount\":2}],"
      "\"startTime\":0,\"endTime\":5000}";
  p = read_cpu_mem(old, strlen(old), PL__KIND_CPUPROFILE);
  f = folded(p);
  assert_string_equal(f, "f 3\nf;g 2\n");
  free(f);
  cpu_writers_accept(p);
  pl_cpu_profile_free(p);
  /* folded stacks with CRLF, blanks, spaces in names, no final newline */
  const char *text = "main;work 3\r\n\r\nmain;operator new(unsigned long) 2\nmain 1";
  p = read_cpu_mem(text, strlen(text), PL__KIND_FOLDED);
  f = folded(p);
  assert_string_equal(f, "main 1\nmain;operator new(unsigned long) 2\nmain;work 3\n");
  free(f);
  pl_cpu_profile_free(p);
  free(data);

  expect_error("", 0, -EINVAL, "offset 0: expected a profile, found an empty file");
  expect_error(" \n ", 3, -EINVAL, "found only white space");
  expect_error("[1,2]", 5, -EINVAL, "Chrome trace files are not read");
  expect_error("{\"a\":1}", 7, -EINVAL, "found a JSON object without them");
  expect_error("{\"snapshot\":{}}", 15, -EINVAL, "the snapshot's meta lacks node_fields");
  expect_error("\x08\x96\x01\xff\xff", 5, -EINVAL, "offset");
}

/* ---- errors ------------------------------------------------------------- */

#define ROOT "{\"id\":1,\"callFrame\":{\"functionName\":\"(root)\",\"url\":\"\"}"

static void test_errors(void **state) {
  (void)state;
  static const struct {
    const char *text, *msg;
  } cases[] = {
      {"{\"nodes\":[" ROOT ",\"children\":[2]}],\"samples\":[1],\"timeDeltas\":[1]}",
       "offset 10: node 1 lists child 2, which does not exist"},
      {"{\"nodes\":[" ROOT "}],\"samples\":[9],\"timeDeltas\":[1]}",
       "samples[0] is node 9, which does not exist"},
      {"{\"nodes\":[" ROOT "},{\"id\":1}]}", "node id 1 appears twice"},
      {"{\"nodes\":[" ROOT
       ",\"children\":[2]},{\"id\":2,\"children\":[3]},{\"id\":3,\"children\":[2]}"
       "]}",
       "node 2 is a child of node 1 and of node 3: not a tree"},
      {"{\"nodes\":[" ROOT "},{\"id\":2,\"children\":[3]},{\"id\":3,\"children\":[2]}]}",
       "node 2 is not reachable from the root (node 1): its parents form a cycle"},
      {"{\"nodes\":[" ROOT "},{\"id\":2}]}", "node 2 has no parent, nor has node 1"},
      {"{\"nodes\":[" ROOT ",\"children\":[1]}]}", "offset 10: node 1 lists itself as a child"},
      {"{\"nodes\":[" ROOT "}],\"samples\":[1,1],\"timeDeltas\":[1]}",
       "timeDeltas has 1 entries for 2 samples"},
      {"{\"nodes\":[{\"id\":\"x\"}]}",
       "offset 16: expected a node id (a whole number from 0 to 4294967294), found the string "
       "\"x\""},
      {"{\"nodes\":[{\"callFrame\":{}}]}", "offset 10: expected the node's \"id\", found none"},
      {"{\"nodes\":{}}", "offset 9: expected the nodes array, found an object"},
      {"{\"nodes\":[" ROOT "}],\"samples\":[-1]}",
       "expected a sample (a node id), found the number -1"},
      {"{\"nodes\":[" ROOT "}],\"timeDeltas\":[\"1\"]}",
       "expected a time delta (microseconds), found the string \"1\""},
      {"{\"nodes\":[" ROOT "}],\"startTime\":[]}", "expected a startTime (microseconds), found"},
      {"{\"nodes\":[" ROOT ",\"positionTicks\":[{\"line\":1.5,\"ticks\":1}]}]}",
       "expected a line number, found the number 1.5"},
      {"{\"nodes\":[" ROOT "}]", "expected ',' or '}', found the end of the file (truncated?)"},
      {"{\"startTime\":1}", "expected a \"nodes\" array with the root node, found no nodes"},
      {"{\"nodes\":[" ROOT "}]} {}", "expected the end of the file after the top-level value"},
      {"main;work\n", "line 1 (offset 0): expected \"frame;frame;... COUNT\", found no count"},
      {"main 3\nmain;work x3\n",
       "line 2 (offset 17): expected a sample count (a whole number "
       "up to 4294967295) at the end of the line, found \"x3\""},
      {"main 4294967296\n",
       "expected a sample count (a whole number up to 4294967295) at the end "
       "of the line, found \"4294967296\""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
    expect_error(cases[i].text, strlen(cases[i].text), -EINVAL, cases[i].msg);
}

/* pprof built by hand with protobuf-c, then broken in one place. */
typedef Perftools__Profiles__Profile pb_profile;

static char *pack(const pb_profile *pr, size_t *len) {
  *len = perftools__profiles__profile__get_packed_size(pr);
  char *buf = malloc(*len + 1);
  assert_non_null(buf);
  perftools__profiles__profile__pack(pr, (uint8_t *)buf);
  return buf;
}

static void test_pprof_errors(void **state) {
  (void)state;
  char *strings[] = {"", "samples", "count", "f", "cpu", "nanoseconds"};
  Perftools__Profiles__ValueType vt = PERFTOOLS__PROFILES__VALUE_TYPE__INIT, *vts[] = {&vt};
  vt.type = 1;
  vt.unit = 2;
  Perftools__Profiles__Function fn = PERFTOOLS__PROFILES__FUNCTION__INIT, *fns[] = {&fn};
  fn.id = 1;
  fn.name = 3;
  Perftools__Profiles__Line line = PERFTOOLS__PROFILES__LINE__INIT, *lines[] = {&line};
  line.function_id = 1;
  line.line = 7;
  Perftools__Profiles__Location loc = PERFTOOLS__PROFILES__LOCATION__INIT, *locs[] = {&loc};
  loc.id = 1;
  loc.n_line = 1;
  loc.line = lines;
  uint64_t loc_ids[] = {1};
  int64_t values[] = {5};
  Perftools__Profiles__Sample s = PERFTOOLS__PROFILES__SAMPLE__INIT, *ss[] = {&s};
  s.n_location_id = 1;
  s.location_id = loc_ids;
  s.n_value = 1;
  s.value = values;
  pb_profile pr = PERFTOOLS__PROFILES__PROFILE__INIT;
  pr.n_sample_type = 1;
  pr.sample_type = vts;
  pr.n_sample = 1;
  pr.sample = ss;
  pr.n_location = 1;
  pr.location = locs;
  pr.n_function = 1;
  pr.function = fns;
  pr.n_string_table = 6;
  pr.string_table = strings;

  size_t len;
  char *data = pack(&pr, &len);
  pl_cpu_profile *p = read_cpu_mem(data, len, PL__KIND_PPROF_CPU);
  assert_int_equal(p->nsamples, 1);
  assert_int_equal(p->samples[0].weight, 5);
  assert_string_equal(p->frames[0].function, "f");
  assert_int_equal(p->frames[0].line, 7);
  pl_cpu_profile_free(p);
  free(data);

  loc_ids[0] = 9;
  data = pack(&pr, &len);
  expect_error(data, len, -EINVAL, "sample 0: location 9 does not exist");
  free(data);
  loc_ids[0] = 1;
  line.function_id = 4;
  data = pack(&pr, &len);
  expect_error(data, len, -EINVAL, "location 1: function 4 does not exist");
  free(data);
  line.function_id = 1;
  fn.name = 60;
  data = pack(&pr, &len);
  expect_error(data, len, -EINVAL, "function: string index 60 is out of the string table");
  free(data);
  fn.name = 3;
  values[0] = -1;
  data = pack(&pr, &len);
  expect_error(data, len, -EINVAL, "sample 0: value -1 is negative");
  free(data);
  values[0] = 5;
  vt.type = 3; /* "f/count": neither samples nor nanoseconds */
  data = pack(&pr, &len);
  expect_error(data, len, -EINVAL, "not a CPU profile");
  free(data);
  /* only cpu/nanoseconds: weights from the period */
  vt.type = 4;
  vt.unit = 5;
  values[0] = 30000000;
  Perftools__Profiles__ValueType period = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
  period.type = 4;
  period.unit = 5;
  pr.period_type = &period;
  pr.period = 10000000;
  data = pack(&pr, &len);
  p = read_cpu_mem(data, len, PL__KIND_PPROF_CPU);
  assert_int_equal(p->samples[0].weight, 3);
  assert_int_equal(p->period_ns, 10000000);
  pl_cpu_profile_free(p);
  /* the wire format broken: a field length past the end */
  char bad[] = {0x0a, 0x7f, 0x08, 0x01};
  expect_error(bad, sizeof(bad), -EINVAL,
               "offset 0: expected a length for field 1 within the data (2 bytes left)");
  char badwt[] = {0x0b, 0x00}; /* field 1, wire type 3 (a group) */
  expect_error(
      badwt, sizeof(badwt), -EINVAL,
      "offset 0: expected field 1 (Profile.sample_type) of wire type 2, found wire type 3");
  free(data);
}

/* Every prefix of each format: an error or (pprof raw, folded) a model the
 * writers accept; never a crash, an infinite loop or a leak. */
static void truncations(const char *data, size_t len, int prefixes_may_parse) {
  size_t whole = len; /* the data without its final newline is whole too */
  while (whole && data[whole - 1] == '\n') whole--;
  for (size_t cut = 0; cut < len; cut++) {
    int got = read_any(data, cut);
    if (got && !prefixes_may_parse && cut < whole)
      fail_msg("a prefix of %zu of %zu bytes was read", cut, len);
    if (got) assert_int_equal(got, READ_CPU);
  }
}

static void test_every_truncation(void **state) {
  (void)state;
  pl_cpu_profile fx = fixture("cpu");
  size_t len;
  char *data = write_mem(pl__cpuprofile_write, &fx, &len);
  truncations(data, len, 0);
  free(data);
  data = write_mem(pl__pprof_cpu_write, &fx, &len);
  truncations(data, len, 0);
  free(data);
  data = write_mem(pl__pprof_cpu_write_raw, &fx, &len);
  truncations(data, len, 1);
  free(data);
  data = write_mem(pl__folded_write, &fx, &len);
  truncations(data, len, 1);
  free(data);
}

/* Deterministic corruption: flipped, dropped and repeated bytes. */
static void test_corruption(void **state) {
  (void)state;
  pl_cpu_profile fx = fixture("wall");
  writer_fn ws[] = {pl__cpuprofile_write, pl__pprof_cpu_write_raw, pl__folded_write};
  uint64_t seed = 42;
  for (size_t k = 0; k < 3; k++) {
    size_t len;
    char *data = write_mem(ws[k], &fx, &len);
    char *copy = malloc(len + 8);
    assert_non_null(copy);
    for (int round = 0; round < 2000; round++) {
      memcpy(copy, data, len);
      size_t n = len;
      for (int m = 0; m < 1 + round % 4; m++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t at = (size_t)(seed >> 33) % n;
        switch ((seed >> 20) % 3) {
          case 0:
            copy[at] = (char)(seed >> 8);
            break;
          case 1:
            memmove(copy + at, copy + at + 1, n - at - 1);
            n--;
            break;
          default:
            if (n < len + 8) {
              memmove(copy + at + 1, copy + at, n - at);
              n++;
            }
        }
      }
      read_any(copy, n);
    }
    free(copy);
    free(data);
  }
}

/* The readers on a source that hands out a few bytes per read. */
static void test_short_reads(void **state) {
  (void)state;
  pl_cpu_profile fx = fixture("cpu");
  static const size_t sizes[] = {1, 3, 64};
  static const struct {
    writer_fn w;
    int (*r)(pl__rsrc *, pl_cpu_profile **, pl__read_err *);
  } fmts[] = {{pl__cpuprofile_write, pl__cpuprofile_read}, {pl__folded_write, pl__folded_read}};
  for (size_t k = 0; k < sizeof(sizes) / sizeof(*sizes); k++) {
    for (size_t f = 0; f < sizeof(fmts) / sizeof(*fmts); f++) {
      size_t len;
      pl__read_err err;
      pl__rsrc src;
      pl_cpu_profile *p;
      char *data = write_mem(fmts[f].w, &fx, &len);
      pl__rsrc_init_mem(&src, data, len, &err);
      src.max_read = sizes[k];
      assert_int_equal(fmts[f].r(&src, &p, &err), 0);
      assert_same_text(folded(&fx), folded(p), "folded stacks");
      pl_cpu_profile_free(p);
      pl__rsrc_free(&src);
      free(data);
    }
  }
}

/* ---- allocation failures ------------------------------------------------
 * Every allocation of a reader, and of the aggregation, fails in turn
 * (torture_allocs in profile_test.h). */

typedef struct read_arg {
  const char *name, *data;
  size_t len;
  pl__read_err err;
} read_arg;

static int read_run(void *arg) {
  read_arg *r = arg;
  pl__profile pf;
  int rc = pl__read_profile_mem(r->data, r->len, &pf, &r->err);
  if (rc == 0) pl__profile_free(&pf);
  return rc;
}

/* Each failure is told as such; any other error fails with its message. */
static void read_check(void *arg, int rc) {
  read_arg *r = arg;
  if (rc == -ENOMEM) assert_string_equal(r->err.msg, "out of memory");
  if (rc && rc != -ENOMEM) fail_msg("%s: %d %s", r->name, rc, r->err.msg);
}

static void torture_read(const char *name, const char *data, size_t len) {
  torture_allocs(name, read_run, &(read_arg){.name = name, .data = data, .len = len}, read_check);
}

typedef struct top_arg {
  const pl_cpu_profile *cpu;
  const pl_heap_snapshot *heap;
} top_arg;

static int top_run(void *arg) {
  top_arg *a = arg;
  pl__top t;
  int rc = a->heap ? pl__top_heap(a->heap, &t) : pl__top_cpu(a->cpu, &t);
  if (rc == 0) pl__top_free(&t);
  return rc;
}

static void test_alloc_failures(void **state) {
  (void)state;
  pl_cpu_profile fx = fixture("cpu");
  static const struct {
    const char *name;
    writer_fn w;
  } ws[] = {{".cpuprofile", pl__cpuprofile_write},
            {"pprof", pl__pprof_cpu_write},
            {"pprof raw", pl__pprof_cpu_write_raw},
            {"folded", pl__folded_write}};
  for (size_t i = 0; i < sizeof(ws) / sizeof(*ws); i++) {
    size_t len;
    char *data = write_mem(ws[i].w, &fx, &len);
    torture_read(ws[i].name, data, len);
    free(data);
  }
  const char *heap =
      "{\"head\":{\"callFrame\":{\"functionName\":\"(root)\",\"url\":\"\"},"
      "\"id\":1,\"children\":[{\"callFrame\":{\"functionName\":\"f\",\"url\":"
      "\"file:///a.js\",\"lineNumber\":3},\"selfSize\":10,\"id\":2,\"children\":[]}]},"
      "\"samples\":[{\"size\":10,\"nodeId\":2,\"ordinal\":1}]}";
  torture_read(".heapprofile", heap, strlen(heap));

  /* the aggregation too */
  pl__profile pf;
  pl__read_err err;
  assert_int_equal(pl__read_profile_mem(heap, strlen(heap), &pf, &err), 0);
  torture_allocs("top cpu", top_run, &(top_arg){.cpu = &fx}, NULL);
  torture_allocs("top heap", top_run, &(top_arg){.heap = pf.heap}, NULL);
  pl__profile_free(&pf);
}

/* ---- a real Node profile ------------------------------------------------ */

static const char node_script[] =
    "function hotFunction(n) { let s = 0; for (let i = 0; i < n; i++) s += Math.sqrt(i) * "
    "Math.sin(i); return s; }\n"
    "function coldFunction(n) { let s = 0; for (let i = 0; i < n; i++) s += i % 7; return s; }\n"
    "let hot = 0n, cold = 0n, x = 0;\n"
    "const t0 = process.hrtime.bigint();\n"
    "while (process.hrtime.bigint() - t0 < 700000000n) {\n"
    "  const a = process.hrtime.bigint(); x += hotFunction(200000);\n"
    "  const b = process.hrtime.bigint(); x += coldFunction(20000);\n"
    "  const c = process.hrtime.bigint(); hot += b - a; cold += c - b;\n"
    "}\n"
    "console.log(JSON.stringify({hot_ms: Number(hot) / 1e6, cold_ms: Number(cold) / 1e6, x}));\n";

static int have_node(void) { return system("node --version >/dev/null 2>&1") == 0; }

/* Runs the script under `node --cpu-prof` in dir and reads the profile:
 * hot's time as the script measured it, the profile's top function by
 * self; 1 when the profile's time for it is within 15 % of that. */
static int node_run(const char *dir, double *hot_ms, pl__profile *pf, pl__top *t) {
  char cmd[1400], path[512], line[512] = "";
  snprintf(cmd, sizeof(cmd),
           "cd %s && node --cpu-prof --cpu-prof-dir=%s --cpu-prof-name=hot.cpuprofile hot.js", dir,
           dir);
  FILE *out = popen(cmd, "r");
  assert_non_null(out);
  assert_non_null(fgets(line, sizeof(line), out));
  assert_int_equal(pclose(out), 0);
  assert_non_null(strstr(line, "\"hot_ms\":"));
  *hot_ms = strtod(strstr(line, "\"hot_ms\":") + 9, NULL);
  snprintf(path, sizeof(path), "%s/hot.cpuprofile", dir);
  pl__read_err err;
  int rc = pl__read_profile(path, -1, pf, &err);
  if (rc) fail_msg("%s: %s", path, err.msg);
  assert_int_equal(pf->kind, PL__KIND_CPUPROFILE);
  cpu_writers_accept(pf->cpu);
  assert_int_equal(pl__top_cpu(pf->cpu, t), 0);
  pl__top_sort(t, 0);
  assert_true(t->nrows > 3);
  const pl__top_row *top = &t->rows[0];
  double ms = (double)top->total * (double)pf->cpu->period_ns / 1e6;
  double share = 100.0 * (double)top->self / (double)t->total;
  double profile_ms = (double)t->total * (double)pf->cpu->period_ns / 1e6;
  fprintf(stderr, "node: %s self %.1f%%, total %.1f ms (measured %.1f ms of %.1f ms)\n",
          top->function, share, ms, *hot_ms, profile_ms);
  /* the function, its file and first line: always */
  assert_string_equal(top->function, "hotFunction");
  assert_true(strstr(top->file, "/hot.js") != NULL);
  assert_int_equal(top->line, 1);
  /* its time and share are the script's own measure, unless the machine is
   * so busy that V8's sampler thread loses samples unevenly */
  return ms > 0.85 * *hot_ms && ms < 1.15 * *hot_ms && share > 100.0 * 0.85 * *hot_ms / profile_ms;
}

static void test_node_cpu_profile(void **state) {
  (void)state;
  if (!have_node()) {
    fprintf(stderr, "node not installed: skipped\n");
    skip();
  }
  char dir[] = "/tmp/pl-read-cpu-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[512], cmd[1400];
  snprintf(path, sizeof(path), "%s/hot.js", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(node_script, f);
  fclose(f);
  int good = 0;
  for (int attempt = 0; attempt < 3 && !good; attempt++) { /* a loaded machine: try again */
    pl__profile pf;
    pl__top t;
    double hot_ms;
    good = node_run(dir, &hot_ms, &pf, &t);
    pl__top_free(&t);
    pl__profile_free(&pf);
  }
  assert_true(good);
  const char *keep = getenv("PROFLAB_KEEP_NODE_PROFILE");
  snprintf(path, sizeof(path), "%s/hot.cpuprofile", dir);
  snprintf(cmd, sizeof(cmd), "%s%s%s rm -rf %s", keep ? "cp " : "", keep ? path : "",
           keep ? " \"$PROFLAB_KEEP_NODE_PROFILE\";" : "", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_cpuprofile),
      cmocka_unit_test(test_roundtrip_pprof),
      cmocka_unit_test(test_roundtrip_folded),
      cmocka_unit_test(test_conversion_chain),
      cmocka_unit_test(test_detection),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_pprof_errors),
      cmocka_unit_test(test_every_truncation),
      cmocka_unit_test(test_corruption),
      cmocka_unit_test(test_short_reads),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_node_cpu_profile),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
