/* CPU profile writers (src/format/cpu_writers.h) on a fixed, hand-built
 * profile: goldens for .cpuprofile, folded and the uncompressed pprof
 * bytes; the .cpuprofile parsed back with jansson and the pprof gunzipped
 * and decoded with the generated protobuf-c code to check their structure.
 *
 * Goldens live in tests/golden/ (PROFLAB_GOLDEN_DIR, set by meson; else
 * found from this file's path when run from the build directory).
 *   PROFLAB_UPDATE_GOLDEN=1 meson test -C build format-cpu   rewrites them
 *   PROFLAB_FIXTURE_OUT=DIR build/tests/test-format-cpu       also writes the
 *     fixture's outputs (fixture-cpu.cpuprofile, fixture-wall.cpuprofile,
 *     fixture.pb.gz, fixture.folded) to DIR for real clients (go tool pprof,
 *     node, DevTools, speedscope).
 */
#include "writer_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <zlib.h>

#include "common/sink.h"
#include "format/cpu_writers.h"
#include "format/profile.pb-c.h"
#include "proflab/cpu_profile.h"

/* ---- the fixture -------------------------------------------------------- */

#define START_NS 5000000123456ull /* monotonic: 5000.000123456 s */
#define START_US 5000000123ull
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
    {"weird;name\n\"q\"", "lib/rel.c", "/usr/bin/app", 5, 3, 0x405500},          /* 7 */
    {"spaced", "/src/my dir/x#1.c", "/usr/bin/app", 7, 2, 0x406600},             /* 8 */
    {"unused", "/src/app/unused.c", "/usr/bin/app", 1, 1, 0x407700},             /* 9 */
};

static uint32_t st0[] = {2, 1, 0}, st1[] = {3, 1, 0}, st2[] = {4, 2, 1, 0}, st3[] = {5, 6},
                st4[] = {1, 0}, st5[] = {7, 6}, st6[] = {2, 1, 0}, st7[] = {8, 0};

static pl_cpu_stack fx_stacks[] = {
    {3, st0}, {3, st1}, {4, st2}, {2, st3},  {2, st4},
    {2, st5}, {3, st6}, {2, st7}, {0, NULL}, /* 8: no stack taken: written as (program) */
};

#define IDLE PL_STACK_IDLE
#define PROG PL_STACK_PROGRAM
static pl_cpu_sample fx_samples[] = {
    /* time_ns, stack, weight, tid */
    {START_NS + 1000500, 0, 1, 100},    {START_NS + 2001700, 1, 2, 100},
    {START_NS + 3000000, IDLE, 1, 100}, {START_NS + 4100999, 2, 3, 100},
    {START_NS + 4200000, 3, 1, 101},    {START_NS + 5000000, PROG, 1, 101},
    {START_NS + 6000001, 0, 4, 100},    {START_NS + 7000000, 4, 1, 100},
    {START_NS + 7500000, 5, 2, 101},    {START_NS + 8000000, 6, 1, 100},
    {START_NS + 9000000, IDLE, 1, 100}, {START_NS + 9999999, 7, 1, 101},
    {START_NS + 10500000, 8, 1, 101},
};
#define FX_NSAMPLES (sizeof(fx_samples) / sizeof(fx_samples[0]))
#define FX_WEIGHTS 20 /* sum of the weights above */
/* A .cpuprofile writes a sample of weight w as w samples, one per period. */
#define FX_ENTRIES FX_WEIGHTS

/* A profile over the given arrays (mode "cpu" unless the caller changes it). */
static pl_cpu_profile profile_of(pl_frame *frames, size_t nframes, pl_cpu_stack *stacks,
                                 size_t nstacks, pl_cpu_sample *samples, size_t nsamples,
                                 uint64_t end_ns, uint64_t signals) {
  return (pl_cpu_profile){.frames = frames,
                          .nframes = nframes,
                          .stacks = stacks,
                          .nstacks = nstacks,
                          .samples = samples,
                          .nsamples = nsamples,
                          .start_ns = START_NS,
                          .end_ns = end_ns,
                          .start_wall_ns = WALL_NS,
                          .period_ns = PERIOD_NS,
                          .mode = "cpu",
                          .signals = signals};
}

static pl_cpu_profile fixture(const char *mode) {
  pl_cpu_profile p = profile_of(fx_frames, sizeof(fx_frames) / sizeof(fx_frames[0]), fx_stacks,
                                sizeof(fx_stacks) / sizeof(fx_stacks[0]), fx_samples, FX_NSAMPLES,
                                START_NS + 12000000, 17);
  p.mode = mode;
  p.dropped = 1;
  return p;
}

/* ---- helpers ------------------------------------------------------------ */

typedef int (*writer_fn)(const pl_cpu_profile *, pl__sink *);

/* Runs a writer into memory; returns the bytes (free()) and their length. */
static char *write_mem(writer_fn w, const pl_cpu_profile *p, size_t *len) {
  pl__sink s;
  pl__sink_init_mem(&s);
  assert_int_equal(w(p, &s), 0);
  return sink_take(&s, len);
}

/* ---- .cpuprofile checks (parsed back with jansson) ----------------------- */

static json_t *node_by_id(json_t *nodes, json_int_t id) {
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    if (json_integer_value(json_object_get(n, "id")) == id) return n;
  }
  return NULL;
}

static const char *jstr(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  assert_true(json_is_string(v));
  return json_string_value(v);
}

static json_int_t jint(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  assert_true(json_is_integer(v));
  return json_integer_value(v);
}

/* Checks what every .cpuprofile must satisfy; returns the parsed root. */
static json_t *check_cpuprofile(const char *text, size_t len, size_t nsamples) {
  json_t *root = parse_json(text, len);
  json_t *nodes = json_object_get(root, "nodes");
  json_t *samples = json_object_get(root, "samples");
  json_t *deltas = json_object_get(root, "timeDeltas");
  assert_true(json_is_array(nodes));
  assert_true(json_is_array(samples));
  assert_true(json_is_array(deltas));
  assert_int_equal(json_array_size(samples), nsamples);
  assert_int_equal(json_array_size(deltas), nsamples);
  size_t nn = json_array_size(nodes);
  assert_true(nn >= 2);

  /* nodes[0] is (root) with children; ids are unique, 1..nn in order. */
  json_t *r = json_array_get(nodes, 0);
  assert_int_equal(jint(r, "id"), 1);
  assert_string_equal(jstr(json_object_get(r, "callFrame"), "functionName"), "(root)");
  assert_true(json_array_size(json_object_get(r, "children")) > 0);
  int *parents = calloc(nn + 1, sizeof(int));
  uint64_t *hits = calloc(nn + 1, sizeof(uint64_t));
  assert_non_null(parents);
  assert_non_null(hits);
  size_t i, k;
  json_t *n, *v;
  json_array_foreach(nodes, i, n) {
    assert_int_equal(jint(n, "id"), (json_int_t)i + 1);
    json_t *cf = json_object_get(n, "callFrame");
    assert_true(json_is_object(cf));
    jstr(cf, "functionName");
    const char *script = jstr(cf, "scriptId");
    assert_true(*script >= '0' && *script <= '9');
    const char *url = jstr(cf, "url");
    json_int_t line = jint(cf, "lineNumber"), col = jint(cf, "columnNumber");
    assert_true(line >= -1 && col >= -1);
    if (strcmp(script, "0") == 0) assert_string_equal(url, "");
    assert_true(jint(n, "hitCount") >= 0);
    json_t *children = json_object_get(n, "children");
    assert_true(json_is_array(children));
    json_array_foreach(children, k, v) {
      json_int_t c = json_integer_value(v);
      if (c < 2 || c > (json_int_t)nn)
        fail_msg("node %zu: child id %lld does not exist", i + 1, (long long)c);
      if (parents[c])
        fail_msg("node %lld has two parents: %d and %zu", (long long)c, parents[c], i + 1);
      parents[c] = (int)i + 1;
    }
    json_t *ticks = json_object_get(n, "positionTicks");
    if (ticks) {
      json_int_t sum = 0;
      json_array_foreach(ticks, k, v) {
        assert_true(jint(v, "line") >= 1);
        assert_true(jint(v, "ticks") >= 1);
        sum += jint(v, "ticks");
      }
      assert_true(sum <= jint(n, "hitCount"));
    }
  }
  for (size_t id = 2; id <= nn; id++)
    if (!parents[id]) fail_msg("node %zu is nobody's child", id);

  /* Meta nodes: children of the root, scriptId "0", url "", -1/-1. */
  json_array_foreach(nodes, i, n) {
    json_t *cf = json_object_get(n, "callFrame");
    const char *fn = jstr(cf, "functionName");
    if (strcmp(fn, "(program)") && strcmp(fn, "(idle)") && strcmp(fn, "(root)")) continue;
    assert_string_equal(jstr(cf, "scriptId"), "0");
    assert_string_equal(jstr(cf, "url"), "");
    assert_int_equal(jint(cf, "lineNumber"), -1);
    assert_int_equal(jint(cf, "columnNumber"), -1);
    if (i > 0) assert_int_equal(parents[i + 1], 1);
  }
  assert_string_equal(jstr(json_object_get(json_array_get(nodes, 1), "callFrame"), "functionName"),
                      "(program)");

  /* Samples name existing nodes; hitCount counts them exactly. */
  json_array_foreach(samples, i, v) {
    json_int_t id = json_integer_value(v);
    assert_true(id >= 1 && id <= (json_int_t)nn);
    hits[id]++;
  }
  uint64_t total = 0;
  json_array_foreach(nodes, i, n) {
    assert_int_equal(jint(n, "hitCount"), hits[i + 1]);
    total += (uint64_t)jint(n, "hitCount");
  }
  assert_int_equal(total, nsamples);

  /* Time: real microseconds, deltas >= 0, within [startTime, endTime]. */
  json_int_t start = jint(root, "startTime"), end = jint(root, "endTime"), t = start;
  assert_true(start > 0);
  json_array_foreach(deltas, i, v) {
    assert_true(json_is_integer(v));
    assert_true(json_integer_value(v) >= 0);
    t += json_integer_value(v);
  }
  assert_true(t <= end);
  free(parents);
  free(hits);
  return root;
}

/* Function names from the root's child down to the node (ids are 1-based). */
static void path_of(json_t *nodes, json_int_t id, char *out, size_t n) {
  const char *names[64];
  int depth = 0;
  while (id != 1 && depth < 64) {
    json_t *node = node_by_id(nodes, id);
    assert_non_null(node);
    names[depth++] = jstr(json_object_get(node, "callFrame"), "functionName");
    json_int_t parent = 0;
    size_t i;
    json_t *cand;
    json_array_foreach(nodes, i, cand) {
      size_t k;
      json_t *c;
      json_array_foreach(json_object_get(cand, "children"), k, c) {
        if (json_integer_value(c) == id) parent = (json_int_t)i + 1;
      }
    }
    assert_true(parent > 0);
    id = parent;
  }
  out[0] = '\0';
  size_t used = 0;
  for (int d = depth - 1; d >= 0; d--)
    used += (size_t)snprintf(out + used, n - used, "%s%s", names[d], d ? ">" : "");
}

static json_t *find_node(json_t *nodes, const char *fn) {
  size_t i;
  json_t *n;
  json_array_foreach(nodes, i, n) {
    if (strcmp(jstr(json_object_get(n, "callFrame"), "functionName"), fn) == 0) return n;
  }
  fail_msg("no node named %s", fn);
  return NULL;
}

static void test_cpuprofile_cpu_mode(void **state) {
  (void)state;
  pl_cpu_profile p = fixture("cpu");
  size_t len;
  char *out = write_mem(pl__cpuprofile_write, &p, &len);
  json_t *root = check_cpuprofile(out, len, FX_ENTRIES);
  json_t *nodes = json_object_get(root, "nodes");

  /* Synthesized time: each sample owns weight x period, one entry per period. */
  assert_int_equal(jint(root, "startTime"), START_US);
  assert_int_equal(jint(root, "endTime"), START_US + FX_WEIGHTS * PERIOD_NS / 1000);
  json_t *deltas = json_object_get(root, "timeDeltas");
  for (size_t i = 0; i < FX_ENTRIES; i++)
    assert_int_equal(json_integer_value(json_array_get(deltas, i)), i ? 1000 : 0);

  /* The tree: root -> outermost caller -> leaf. Sample k of the fixture
   * starts at entry (sum of the weights before it): 0 1 3 4 7 8 9 13 14 16
   * 17 18 19. */
  json_t *samples = json_object_get(root, "samples");
  char path[512];
  path_of(nodes, json_integer_value(json_array_get(samples, 4)), path, sizeof(path));
  assert_string_equal(path, "main>handle_request>compute>libx.so+0x1234");
  assert_int_equal(json_integer_value(json_array_get(samples, 5)),
                   json_integer_value(json_array_get(samples, 4))); /* weight 3: repeated */
  path_of(nodes, json_integer_value(json_array_get(samples, 14)), path, sizeof(path));
  assert_string_equal(path, "worker_thread>weird;name\n\"q\"");
  path_of(nodes, json_integer_value(json_array_get(samples, 3)), path, sizeof(path));
  assert_string_equal(path, "(idle)");
  path_of(nodes, json_integer_value(json_array_get(samples, 19)), path, sizeof(path));
  assert_string_equal(path, "(program)"); /* a stack of depth 0 */
  /* Stacks 0, 1 and 6 differ by PC or index only: one node. */
  json_int_t leaf = json_integer_value(json_array_get(samples, 0));
  assert_int_equal(json_integer_value(json_array_get(samples, 1)), leaf);
  assert_int_equal(json_integer_value(json_array_get(samples, 16)), leaf);

  /* callFrames: 0-based function line, file URLs, unknowns. */
  json_t *compute = find_node(nodes, "compute"), *cf = json_object_get(compute, "callFrame");
  assert_int_equal(jint(cf, "lineNumber"), 9);
  assert_int_equal(jint(cf, "columnNumber"), 0);
  assert_string_equal(jstr(cf, "url"), "file:///src/app/work.c");
  assert_int_equal(jint(compute, "hitCount"), 8); /* weights 1 + 2 + 4 + 1 */
  json_t *ticks = json_object_get(compute, "positionTicks");
  assert_int_equal(json_array_size(ticks), 2);
  assert_int_equal(jint(json_array_get(ticks, 0), "line"), 15);
  assert_int_equal(jint(json_array_get(ticks, 0), "ticks"), 6); /* weighted: 1 + 4 + 1 */
  assert_int_equal(jint(json_array_get(ticks, 1), "line"), 17);
  assert_int_equal(jint(json_array_get(ticks, 1), "ticks"), 2);
  cf = json_object_get(find_node(nodes, "libx.so+0x1234"), "callFrame");
  assert_string_equal(jstr(cf, "url"), "");
  assert_string_equal(jstr(cf, "scriptId"), "0");
  assert_int_equal(jint(cf, "lineNumber"), -1);
  assert_int_equal(jint(cf, "columnNumber"), -1);
  assert_null(json_object_get(find_node(nodes, "libx.so+0x1234"), "positionTicks"));
  cf = json_object_get(find_node(nodes, "spaced"), "callFrame");
  assert_string_equal(jstr(cf, "url"), "file:///src/my%20dir/x%231.c");
  cf = json_object_get(find_node(nodes, "weird;name\n\"q\""), "callFrame");
  assert_string_equal(jstr(cf, "url"), "lib/rel.c");
  /* One scriptId per file, the same for both compute PCs and distinct otherwise. */
  assert_string_equal(jstr(json_object_get(find_node(nodes, "main"), "callFrame"), "scriptId"),
                      "1000000");
  assert_string_equal(jstr(json_object_get(compute, "callFrame"), "scriptId"), "1000002");
  assert_int_equal(jint(find_node(nodes, "(idle)"), "hitCount"), 2);
  assert_int_equal(jint(find_node(nodes, "(program)"), "hitCount"), 2);
  assert_int_equal(json_array_size(nodes), 11);

  check_golden("cpu-fixture-cpu.cpuprofile", out, len);
  json_decref(root);
  free(out);
}

static void test_cpuprofile_wall_mode(void **state) {
  (void)state;
  pl_cpu_profile p = fixture("wall");
  size_t len;
  char *out = write_mem(pl__cpuprofile_write, &p, &len);
  json_t *root = check_cpuprofile(out, len, FX_ENTRIES);
  /* Real times, truncated to microseconds, first delta from startTime; a
   * sample of weight w ends w entries one period apart at its time, never
   * before the previous entry (then the delta is 0). */
  assert_int_equal(jint(root, "startTime"), START_US);
  assert_int_equal(jint(root, "endTime"), (START_NS + 12000000) / 1000);
  static const json_int_t want_deltas[] = {1000, 2, 1000, 998,  0, 101, 1000, 99,   800,  0,
                                           0,    0, 1000, 1000, 0, 500, 500,  1000, 1000, 500};
  json_t *deltas = json_object_get(root, "timeDeltas");
  for (size_t i = 0; i < FX_ENTRIES; i++)
    assert_int_equal(json_integer_value(json_array_get(deltas, i)), want_deltas[i]);
  check_golden("cpu-fixture-wall.cpuprofile", out, len);
  json_decref(root);
  free(out);
}

/* ---- folded ------------------------------------------------------------- */

static void test_folded(void **state) {
  (void)state;
  pl_cpu_profile p = fixture("cpu");
  size_t len;
  char *out = write_mem(pl__folded_write, &p, &len);
  const char *want =
      "(idle) 2\n"
      "(program) 2\n"
      "main;handle_request 1\n"
      "main;handle_request;compute 8\n"
      "main;handle_request;compute;libx.so+0x1234 3\n"
      "main;spaced 1\n"
      "worker_thread;memcpy 1\n"
      "worker_thread;weird:name \"q\" 2\n";
  assert_int_equal(len, strlen(want));
  assert_string_equal(out, want);
  check_golden("cpu-fixture.folded", out, len);
  free(out);
}

/* ---- pprof -------------------------------------------------------------- */

static const Perftools__Profiles__Mapping *map_by_id(const pb_profile *pr, uint64_t id) {
  for (size_t i = 0; i < pr->n_mapping; i++)
    if (pr->mapping[i]->id == id) return pr->mapping[i];
  fail_msg("no mapping %llu", (unsigned long long)id);
  return NULL;
}

/* Invariants of any pprof profile we write; returns the decoded profile. */
static pb_profile *check_pprof(const char *gz, size_t gzlen, const pl_cpu_profile *p) {
  size_t rawlen;
  char *raw = gunzip(gz, gzlen, &rawlen);
  pb_profile *pr = perftools__profiles__profile__unpack(NULL, rawlen, (uint8_t *)raw);
  assert_non_null(pr);
  free(raw);

  assert_true(pr->n_string_table >= 1);
  assert_string_equal(pr->string_table[0], "");
  for (size_t i = 1; i < pr->n_string_table; i++)
    for (size_t k = 0; k < i; k++)
      if (strcmp(pr->string_table[i], pr->string_table[k]) == 0)
        fail_msg("string %zu and %zu are both \"%s\"", k, i, pr->string_table[i]);

  assert_int_equal(pr->n_sample_type, 2);
  assert_string_equal(pstr(pr, pr->sample_type[0]->type), "samples");
  assert_string_equal(pstr(pr, pr->sample_type[0]->unit), "count");
  assert_string_equal(pstr(pr, pr->sample_type[1]->type), "cpu");
  assert_string_equal(pstr(pr, pr->sample_type[1]->unit), "nanoseconds");
  assert_non_null(pr->period_type);
  assert_string_equal(pstr(pr, pr->period_type->type), "cpu");
  assert_string_equal(pstr(pr, pr->period_type->unit), "nanoseconds");
  assert_int_equal(pr->period, p->period_ns);
  assert_int_equal(pr->time_nanos, p->start_wall_ns);
  assert_int_equal(pr->duration_nanos, p->end_ns - p->start_ns);
  assert_string_equal(pstr(pr, pr->default_sample_type), "cpu");

  /* Ids: non-zero and unique; references resolve. */
  for (size_t i = 0; i < pr->n_mapping; i++) {
    assert_true(pr->mapping[i]->id != 0);
    for (size_t k = 0; k < i; k++) assert_true(pr->mapping[k]->id != pr->mapping[i]->id);
    assert_true(pr->mapping[i]->has_functions);
    assert_true(*pstr(pr, pr->mapping[i]->filename));
  }
  for (size_t i = 0; i < pr->n_function; i++) {
    assert_true(pr->function[i]->id != 0);
    for (size_t k = 0; k < i; k++) assert_true(pr->function[k]->id != pr->function[i]->id);
    assert_true(*pstr(pr, pr->function[i]->name));
    pstr(pr, pr->function[i]->system_name);
    pstr(pr, pr->function[i]->filename);
  }
  for (size_t i = 0; i < pr->n_location; i++) {
    const Perftools__Profiles__Location *l = pr->location[i];
    assert_true(l->id != 0);
    for (size_t k = 0; k < i; k++) assert_true(pr->location[k]->id != l->id);
    if (l->mapping_id) map_by_id(pr, l->mapping_id);
    assert_int_equal(l->n_line, 1);
    assert_true(l->line[0]->function_id != 0);
    func_by_id(pr, l->line[0]->function_id);
  }

  /* Samples: one per model sample, values [weight, weight x period], thread label. */
  assert_int_equal(pr->n_sample, p->nsamples);
  uint64_t count = 0, cpu = 0;
  for (size_t i = 0; i < pr->n_sample; i++) {
    const Perftools__Profiles__Sample *s = pr->sample[i];
    assert_int_equal(s->n_value, 2);
    assert_int_equal(s->value[0], p->samples[i].weight);
    assert_int_equal(s->value[1], (int64_t)p->samples[i].weight * (int64_t)p->period_ns);
    count += (uint64_t)s->value[0];
    cpu += (uint64_t)s->value[1];
    assert_true(s->n_location_id >= 1);
    for (size_t k = 0; k < s->n_location_id; k++) loc_by_id(pr, s->location_id[k]);
    assert_int_equal(s->n_label, 1);
    assert_string_equal(pstr(pr, s->label[0]->key), "thread");
    assert_int_equal(s->label[0]->num, p->samples[i].tid);
  }
  uint64_t weights = 0;
  for (size_t i = 0; i < p->nsamples; i++) weights += p->samples[i].weight;
  assert_int_equal(count, weights);
  assert_int_equal(cpu, weights * p->period_ns);
  return pr;
}

static void test_pprof(void **state) {
  (void)state;
  pl_cpu_profile p = fixture("cpu");
  size_t gzlen, rawlen, unzlen;
  char *gz = write_mem(pl__pprof_cpu_write, &p, &gzlen);
  char *raw = write_mem(pl__pprof_cpu_write_raw, &p, &rawlen);
  assert_true((unsigned char)gz[0] == 0x1f && (unsigned char)gz[1] == 0x8b); /* gzip magic */
  char *unz = gunzip(gz, gzlen, &unzlen);
  assert_int_equal(unzlen, rawlen);
  assert_memory_equal(unz, raw, rawlen);
  free(unz);

  pb_profile *pr = check_pprof(gz, gzlen, &p);
  /* Comments carry mode, signals and dropped. */
  assert_int_equal(pr->n_comment, 3);
  assert_string_equal(pstr(pr, pr->comment[0]), "mode=cpu");
  assert_string_equal(pstr(pr, pr->comment[1]), "signals=17");
  assert_string_equal(pstr(pr, pr->comment[2]), "dropped=1");

  /* Stacks, leaf first. */
  char names[512];
  sample_names(pr, pr->sample[3], names, sizeof(names));
  assert_string_equal(names, "libx.so+0x1234<compute<handle_request<main");
  sample_names(pr, pr->sample[2], names, sizeof(names));
  assert_string_equal(names, "(idle)");
  sample_names(pr, pr->sample[5], names, sizeof(names));
  assert_string_equal(names, "(program)");
  sample_names(pr, pr->sample[12], names, sizeof(names));
  assert_string_equal(names, "(program)");
  assert_int_equal(pr->sample[4]->label[0]->num, 101);

  /* One location per frame (+ idle, program), one function per identity. */
  assert_int_equal(pr->n_location, p.nframes + 2);
  assert_int_equal(pr->n_function, 9 + 2); /* compute's two frames share one */
  const Perftools__Profiles__Location *l2 = loc_by_id(pr, 3), *l3 = loc_by_id(pr, 4);
  assert_int_equal(l2->address, 0x403010);
  assert_int_equal(l2->line[0]->line, 15);
  assert_int_equal(l3->line[0]->line, 17);
  assert_int_equal(l2->line[0]->function_id, l3->line[0]->function_id);
  const Perftools__Profiles__Function *fn = func_by_id(pr, l2->line[0]->function_id);
  assert_string_equal(pstr(pr, fn->name), "compute");
  assert_string_equal(pstr(pr, fn->system_name), "compute");
  assert_string_equal(pstr(pr, fn->filename), "/src/app/work.c");
  assert_int_equal(fn->start_line, 10);

  /* Mappings: one per module; the unknown-symbol frame points at libx. */
  assert_int_equal(pr->n_mapping, 3);
  const Perftools__Profiles__Location *l4 = loc_by_id(pr, 5);
  assert_int_equal(l4->address, 0x7f0000001234);
  const Perftools__Profiles__Mapping *mx = map_by_id(pr, l4->mapping_id);
  assert_string_equal(pstr(pr, mx->filename), "/usr/lib/libx.so");
  assert_false(mx->has_filenames);
  assert_false(mx->has_line_numbers);
  const Perftools__Profiles__Mapping *mapp = map_by_id(pr, l2->mapping_id);
  assert_string_equal(pstr(pr, mapp->filename), "/usr/bin/app");
  assert_true(mapp->has_filenames);
  assert_true(mapp->has_line_numbers);

  perftools__profiles__profile__free_unpacked(pr, NULL);
  check_golden("cpu-fixture.pprof.pb", raw, rawlen);
  free(gz);
  free(raw);
}

/* pprof shows mapping[0] as the profiled program: not libc, not [vdso]. */
static void test_pprof_main_mapping(void **state) {
  (void)state;
  pl_frame frames[] = {
      {"__vdso_clock_gettime", "", "[vdso: 123]", 0, 0, 0x7ffd0000},
      {"clock_gettime", "", "/lib/x86_64-linux-gnu/libc.so.6", 0, 0, 0x7f00001000},
      {"now", "/src/app.c", "/usr/bin/app", 3, 1, 0x401000},
      {"inner", "", "/usr/lib/libfoo.so_1", 0, 0, 0x7e00001000},
      {"main", "/src/app.c", "/usr/bin/app", 9, 8, 0x401100},
  };
  uint32_t fr[] = {0, 1, 2, 3, 4};
  pl_cpu_stack stacks[] = {{5, fr}};
  pl_cpu_sample samples[] = {{START_NS, 0, 1, 7}};
  pl_cpu_profile p = profile_of(frames, 5, stacks, 1, samples, 1, START_NS + 1000000, 1);
  size_t len;
  char *gz = write_mem(pl__pprof_cpu_write, &p, &len);
  pb_profile *pr = check_pprof(gz, len, &p);
  assert_int_equal(pr->n_mapping, 4);
  assert_int_equal(pr->mapping[0]->id, 1);
  assert_string_equal(pstr(pr, pr->mapping[0]->filename), "/usr/bin/app");
  assert_string_equal(pstr(pr, pr->mapping[1]->filename), "[vdso: 123]");
  assert_string_equal(pstr(pr, pr->mapping[2]->filename), "/lib/x86_64-linux-gnu/libc.so.6");
  assert_string_equal(pstr(pr, pr->mapping[3]->filename), "/usr/lib/libfoo.so_1");
  static const char *const want[] = {"[vdso: 123]", "/lib/x86_64-linux-gnu/libc.so.6",
                                     "/usr/bin/app", "/usr/lib/libfoo.so_1", "/usr/bin/app"};
  for (uint64_t id = 1; id <= 5; id++) {
    const Perftools__Profiles__Location *l = loc_by_id(pr, id);
    assert_string_equal(pstr(pr, map_by_id(pr, l->mapping_id)->filename), want[id - 1]);
  }
  perftools__profiles__profile__free_unpacked(pr, NULL);
  free(gz);
}

/* ---- properties of all writers ------------------------------------------ */

static const struct {
  const char *name;
  writer_fn fn;
} writers[] = {
    {"cpuprofile", pl__cpuprofile_write},
    {"pprof", pl__pprof_cpu_write},
    {"pprof-raw", pl__pprof_cpu_write_raw},
    {"folded", pl__folded_write},
};
#define NWRITERS (sizeof(writers) / sizeof(writers[0]))

static void test_deterministic(void **state) {
  (void)state;
  pl_cpu_profile p = fixture("cpu");
  for (size_t w = 0; w < NWRITERS; w++) {
    size_t l1, l2;
    char *a = write_mem(writers[w].fn, &p, &l1);
    char *b = write_mem(writers[w].fn, &p, &l2);
    if (l1 != l2 || memcmp(a, b, l1) != 0) fail_msg("%s: two runs differ", writers[w].name);
    free(a);
    free(b);
  }
}

static void test_sink_error(void **state) {
  (void)state;
  pl_cpu_profile p = fixture("cpu");
  for (size_t w = 0; w < NWRITERS; w++) {
    pl__sink s;
    pl__sink_init_mem(&s);
    s.backend = full_disk;
    s.flush_at = 16; /* fail early, in the middle of the output */
    int rc = writers[w].fn(&p, &s);
    if (rc != -ENOSPC) fail_msg("%s: got %d, want -ENOSPC (%d)", writers[w].name, rc, -ENOSPC);
    pl__sink_free(&s);
  }
}

static void test_invalid_model(void **state) {
  (void)state;
  pl_cpu_sample bad_stack[] = {{START_NS, 9, 1, 1}}; /* only 9 stacks */
  pl_cpu_sample zero_weight[] = {{START_NS, 0, 0, 1}};
  uint32_t bad_frames[] = {0, 10}; /* only 10 frames */
  pl_cpu_stack bad_stacks[] = {{2, bad_frames}};
  pl_cpu_sample one[] = {{START_NS, 0, 1, 1}};
  for (size_t w = 0; w < NWRITERS; w++) {
    pl_cpu_profile p = fixture("cpu");
    pl__sink s;
    pl__sink_init_mem(&s);
    p.samples = bad_stack;
    p.nsamples = 1;
    assert_int_equal(writers[w].fn(&p, &s), -EINVAL);
    p.samples = zero_weight;
    assert_int_equal(writers[w].fn(&p, &s), -EINVAL);
    p.samples = one;
    p.stacks = bad_stacks;
    p.nstacks = 1;
    assert_int_equal(writers[w].fn(&p, &s), -EINVAL);
    assert_int_equal(writers[w].fn(NULL, &s), -EINVAL);
    assert_int_equal(writers[w].fn(&p, NULL), -EINVAL);
    assert_int_equal(s.buf.len, 0); /* nothing written */
    pl__sink_free(&s);
  }
}

static void test_empty_profile(void **state) {
  (void)state;
  pl_cpu_profile p = fixture("cpu");
  p.nsamples = 0;
  size_t len;
  char *out = write_mem(pl__cpuprofile_write, &p, &len);
  json_t *root = check_cpuprofile(out, len, 0);
  assert_int_equal(json_array_size(json_object_get(root, "nodes")), 2); /* (root), (program) */
  assert_int_equal(jint(root, "endTime"), START_US);
  json_decref(root);
  free(out);

  out = write_mem(pl__folded_write, &p, &len);
  assert_int_equal(len, 0);
  free(out);

  out = write_mem(pl__pprof_cpu_write, &p, &len);
  pb_profile *pr = check_pprof(out, len, &p);
  assert_int_equal(pr->n_sample, 0);
  assert_int_equal(pr->n_location, p.nframes); /* no idle/program location when unused */
  perftools__profiles__profile__free_unpacked(pr, NULL);
  free(out);

  /* A profile with nothing at all. */
  pl_cpu_profile z = {.start_ns = START_NS, .end_ns = START_NS, .mode = "wall"};
  out = write_mem(pl__cpuprofile_write, &z, &len);
  json_decref(check_cpuprofile(out, len, 0));
  free(out);
  out = write_mem(pl__pprof_cpu_write, &z, &len);
  perftools__profiles__profile__free_unpacked(check_pprof(out, len, &z), NULL);
  free(out);
}

/* ---- a big random profile through a file sink (streaming, flushes) ------- */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint32_t rnd(uint32_t n) {
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(rng_state >> 33) % n;
}

typedef struct big_profile {
  pl_cpu_profile p;
  char names[400][32], files[40][32], modules[5][32];
} big_profile;

static big_profile *make_big(void) {
  enum { NF = 400, NS = 2000, NSAMP = 60000 };
  big_profile *b = calloc(1, sizeof(*b));
  assert_non_null(b);
  pl_frame *frames = calloc(NF, sizeof(*frames));
  pl_cpu_stack *stacks = calloc(NS, sizeof(*stacks));
  pl_cpu_sample *samples = calloc(NSAMP, sizeof(*samples));
  assert_true(frames && stacks && samples);
  for (int i = 0; i < 40; i++) snprintf(b->files[i], 32, "/src/big/file%d.c", i);
  for (int i = 0; i < 5; i++) snprintf(b->modules[i], 32, "/usr/lib/libbig%d.so", i);
  for (int i = 0; i < NF; i++) {
    snprintf(b->names[i], 32, "fn_%d", i / 2); /* pairs of PCs share a function */
    frames[i] = (pl_frame){b->names[i],
                           (i / 2) % 7 ? b->files[(i / 2) % 40] : "",
                           b->modules[(i / 2) % 5],
                           (uint32_t)(i % 13),
                           (uint32_t)(i / 2) % 11,
                           0x400000u + (uint64_t)i * 16};
  }
  for (int s = 0; s < NS; s++) {
    uint32_t depth = 1 + rnd(24);
    stacks[s].depth = depth;
    stacks[s].frames = calloc(depth, sizeof(uint32_t));
    assert_non_null(stacks[s].frames);
    for (uint32_t d = 0; d < depth; d++) stacks[s].frames[d] = rnd(NF);
  }
  uint64_t t = START_NS;
  for (int i = 0; i < NSAMP; i++) {
    uint32_t r = rnd(100);
    t += 900000 + rnd(200000);
    samples[i] = (pl_cpu_sample){t,
                                 r < 5   ? PL_STACK_IDLE
                                 : r < 7 ? PL_STACK_PROGRAM
                                         : rnd(NS),
                                 1 + (rnd(10) == 0 ? rnd(5) : 0), 1000 + rnd(8)};
  }
  b->p = profile_of(frames, NF, stacks, NS, samples, NSAMP, t + 1000, NSAMP);
  return b;
}

static void free_big(big_profile *b) {
  for (size_t s = 0; s < b->p.nstacks; s++) free(b->p.stacks[s].frames);
  free(b->p.frames);
  free(b->p.stacks);
  free(b->p.samples);
  free(b);
}

/* Writes through an fd sink into a temporary file and reads it back. */
static char *write_file(writer_fn w, const pl_cpu_profile *p, size_t *len) {
  FILE *tmp = tmpfile();
  assert_non_null(tmp);
  int fd = fileno(tmp);
  pl__sink s;
  pl__sink_init_fd(&s, &fd);
  assert_int_equal(w(p, &s), 0);
  assert_int_equal(pl__sink_finish(&s), 0);
  assert_true(s.buf.len == 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  assert_int_equal((uint64_t)st.st_size, s.total);
  pl__sink_free(&s);
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
  big_profile *b = make_big();
  size_t len, mlen;
  char *out = write_file(pl__cpuprofile_write, &b->p, &len);
  assert_true(len > (1 << 16)); /* the sink really flushed in between */
  char *mem = write_mem(pl__cpuprofile_write, &b->p, &mlen);
  assert_int_equal(len, mlen);
  assert_memory_equal(out, mem, len);
  uint64_t weights = 0;
  for (size_t i = 0; i < b->p.nsamples; i++) weights += b->p.samples[i].weight;
  json_t *root = check_cpuprofile(out, len, weights);
  assert_int_equal(jint(root, "endTime") - jint(root, "startTime"), weights * PERIOD_NS / 1000);
  json_decref(root);
  free(out);
  free(mem);

  out = write_file(pl__pprof_cpu_write, &b->p, &len);
  pb_profile *pr = check_pprof(out, len, &b->p);
  assert_int_equal(pr->n_function, 200 + 2);
  assert_int_equal(pr->n_mapping, 5);
  assert_true(pr->n_string_table < 400); /* deduplicated */
  perftools__profiles__profile__free_unpacked(pr, NULL);
  free(out);

  out = write_file(pl__folded_write, &b->p, &len);
  uint64_t sum = 0;
  for (char *line = out; *line;) {
    char *nl = strchr(line, '\n');
    assert_non_null(nl);
    char *sp = nl;
    while (sp > line && sp[-1] != ' ') sp--;
    assert_true(sp > line);
    sum += strtoull(sp, NULL, 10);
    line = nl + 1;
  }
  assert_int_equal(sum, weights);
  free(out);
  free_big(b);
}

/* Every allocation of each writer fails in turn (writer_test.h). */
typedef struct run_arg {
  writer_fn fn;
  const pl_cpu_profile *p;
} run_arg;

static int run_writer(void *arg, pl__sink *out) {
  run_arg *r = arg;
  return r->fn(r->p, out);
}

static void test_alloc_failures(void **state) {
  (void)state;
  if (!TORTURE) skip(); /* AddressSanitizer owns malloc */
  pl_cpu_profile p = fixture("cpu");
  for (size_t w = 0; w < NWRITERS; w++)
    torture_writer(writers[w].name, run_writer, &(run_arg){writers[w].fn, &p});
}

/* ---- fixture outputs for real clients ----------------------------------- */

static void dump(const char *dir, const char *name, writer_fn w, const pl_cpu_profile *p) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  size_t len;
  char *data = write_mem(w, p, &len);
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
  pl_cpu_profile cpu = fixture("cpu"), wall = fixture("wall");
  dump(dir, "fixture-cpu.cpuprofile", pl__cpuprofile_write, &cpu);
  dump(dir, "fixture-wall.cpuprofile", pl__cpuprofile_write, &wall);
  dump(dir, "fixture.pb.gz", pl__pprof_cpu_write, &cpu);
  dump(dir, "fixture.folded", pl__folded_write, &cpu);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cpuprofile_cpu_mode),
      cmocka_unit_test(test_cpuprofile_wall_mode),
      cmocka_unit_test(test_folded),
      cmocka_unit_test(test_pprof),
      cmocka_unit_test(test_pprof_main_mapping),
      cmocka_unit_test(test_deterministic),
      cmocka_unit_test(test_sink_error),
      cmocka_unit_test(test_invalid_model),
      cmocka_unit_test(test_empty_profile),
      cmocka_unit_test(test_big_streaming),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_dump_fixture),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
