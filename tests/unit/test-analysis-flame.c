/* Flame graphs (src/analysis/flame.h): the tree merged from hand-built CPU
 * profiles and heap snapshots (values, self and total, idle, program,
 * recursion, name order, matching by name, allocation helpers dropped),
 * and the SVG written from it (well-formed XML by a small checker, one
 * group per frame, escaping of hostile names and invalid UTF-8, labels cut
 * to fit with an ellipsis, frames under --minwidth left out, icicle
 * layout, stable colors, a failing sink and every allocation failing in
 * turn). */
#include "profile_test.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "analysis/flame.h"
#include "common/sink.h"
#include "xml_check.h"

/* ---- fixtures ----------------------------------------------------------- */

static pl_frame fx_frames[] = {
    /* function, file, module, line, function_line, address */
    {"main", "/src/app/main.c", "/usr/bin/app", 42, 30, 0x401100},               /* 0 */
    {"handle_request", "/src/app/server.c", "/usr/bin/app", 120, 100, 0x402200}, /* 1 */
    {"compute", "/src/app/work.c", "/usr/bin/app", 15, 10, 0x403010},            /* 2 */
    {"compute", "/src/app/work.c", "/usr/bin/app", 17, 10, 0x403020},            /* 3 */
    {"memcpy", "", "/lib/x86_64-linux-gnu/libc.so.6", 0, 0, 0x7f1000002000},     /* 4 */
    {"recurse", "/src/app/rec.c", "/usr/bin/app", 9, 5, 0x405500},               /* 5 */
    {"a<b>&\"c'\x01\xff", "/src/x&y.c", "/usr/bin/app", 7, 2, 0x406600},         /* 6 */
    {"compute", "/src/other/work.c", "/usr/bin/app", 3, 1, 0x407700},            /* 7 */
};

/* leaf first */
static uint32_t st0[] = {2, 1, 0}, st1[] = {3, 1, 0}, st2[] = {4, 2, 1, 0}, st3[] = {1, 0},
                st4[] = {5, 5, 5, 1, 0}, st5[] = {6, 0}, st7[] = {7, 0};
static pl_cpu_stack fx_stacks[] = {
    {3, st0}, {3, st1}, {4, st2}, {2, st3}, {5, st4}, {2, st5}, {0, NULL}, {2, st7},
};

#define IDLE PL_STACK_IDLE
#define PROG PL_STACK_PROGRAM
static pl_cpu_sample fx_samples[] = {
    /* time_ns, stack, weight, tid */
    {1, 0, 1, 1}, {2, 1, 2, 1},    {3, 2, 3, 1},    {4, 3, 1, 1},     {5, 4, 2, 1},  {6, 5, 1, 1},
    {7, 6, 1, 1}, {8, PROG, 1, 1}, {9, IDLE, 3, 1}, {10, IDLE, 1, 1}, {11, 7, 1, 1},
};

static pl_cpu_profile cpu_fixture(void) {
  return (pl_cpu_profile){
      .frames = fx_frames,
      .nframes = sizeof(fx_frames) / sizeof(fx_frames[0]),
      .stacks = fx_stacks,
      .nstacks = sizeof(fx_stacks) / sizeof(fx_stacks[0]),
      .samples = fx_samples,
      .nsamples = sizeof(fx_samples) / sizeof(fx_samples[0]),
      .period_ns = 1000000,
      .mode = "wall",
  };
}

/* The node at the path of function names below the root (NULL-terminated),
 * or NONE. */
static uint32_t find(const pl__flame_tree *t, ...) {
  va_list ap;
  va_start(ap, t);
  uint32_t n = 0;
  const char *name;
  while ((name = va_arg(ap, const char *)) && n != PL__FLAME_NONE) {
    uint32_t c = t->nodes[n].first_child;
    while (c != PL__FLAME_NONE && strcmp(t->fns[t->nodes[c].fn].name, name) != 0)
      c = t->nodes[c].next_sibling;
    n = c;
  }
  va_end(ap);
  return n;
}

/* The finished tree of one CPU profile (with its times when times is 1). */
static void build_cpu_of(pl__flame_tree *t, const pl_cpu_profile *p, unsigned flags, int times) {
  assert_int_equal(pl__flame_init(t, PL__FLAME_SAMPLES, flags), 0);
  assert_int_equal(pl__flame_add_cpu(t, PL__FLAME_MAIN, p, times), 0);
  assert_int_equal(pl__flame_finish(t), 0);
}

static void build_cpu(pl__flame_tree *t, unsigned flags) {
  pl_cpu_profile p = cpu_fixture();
  build_cpu_of(t, &p, flags, 1);
}

/* The finished tree of one heap snapshot. */
static void build_heap(pl__flame_tree *t, const pl_heap_snapshot *s) {
  assert_int_equal(pl__flame_init(t, PL__FLAME_BYTES, 0), 0);
  assert_int_equal(pl__flame_add_heap(t, PL__FLAME_MAIN, s), 0);
  assert_int_equal(pl__flame_finish(t), 0);
}

#define M PL__FLAME_MAIN
#define NONE PL__FLAME_NONE

/* ---- the tree ----------------------------------------------------------- */

static void test_cpu_tree(void **state) {
  (void)state;
  pl__flame_tree t;
  build_cpu(&t, 0);
  /* everything but the 4 idle periods: 1+2+3+1+2+1+1(program, no frames)+1(program)+1 */
  assert_int_equal(t.nodes[0].total[M], 13);
  assert_int_equal(t.idle[M], 4);
  assert_int_equal(t.samples[M], 9);
  assert_int_equal(t.period_ns[M], 1000000);
  uint32_t main_ = find(&t, "main", NULL), handle = find(&t, "main", "handle_request", NULL);
  uint32_t compute = find(&t, "main", "handle_request", "compute", NULL);
  uint32_t mcpy = find(&t, "main", "handle_request", "compute", "memcpy", NULL);
  uint32_t rec3 = find(&t, "main", "handle_request", "recurse", "recurse", "recurse", NULL);
  uint32_t prog = find(&t, "(program)", NULL);
  assert_true(main_ != NONE && handle != NONE && compute != NONE && mcpy != NONE);
  assert_true(rec3 != NONE && prog != NONE);
  assert_int_equal(find(&t, "(idle)", NULL), NONE);
  assert_int_equal(t.nodes[main_].total[M], 11);
  assert_int_equal(t.nodes[main_].self[M], 0);
  assert_int_equal(t.nodes[handle].total[M], 9);
  assert_int_equal(t.nodes[handle].self[M], 1);
  /* two lines of compute merged into one node: 1 + 2 self, + memcpy's 3 */
  assert_int_equal(t.nodes[compute].total[M], 6);
  assert_int_equal(t.nodes[compute].self[M], 3);
  assert_int_equal(t.nodes[mcpy].self[M], 3);
  assert_int_equal(t.nodes[rec3].self[M], 2);
  assert_int_equal(t.nodes[rec3].depth, 5);
  assert_int_equal(t.nodes[prog].total[M], 2);
  assert_int_equal(t.max_depth, 5);
  /* the root's children by name: "(program)" < "main" */
  assert_int_equal(t.nodes[0].first_child, prog);
  assert_int_equal(t.nodes[prog].next_sibling, main_);
  /* main's: "a<b>..." < "compute" (other.c) < "handle_request" */
  uint32_t c = t.nodes[main_].first_child;
  assert_string_equal(t.fns[t.nodes[c].fn].name, fx_frames[6].function);
  c = t.nodes[c].next_sibling;
  assert_string_equal(t.fns[t.nodes[c].fn].file, "/src/other/work.c");
  c = t.nodes[c].next_sibling;
  assert_int_equal(c, handle);
  assert_int_equal(t.nodes[c].next_sibling, NONE);
  /* every node's total is its self plus its children's totals */
  for (size_t i = 0; i < t.nnodes; i++) {
    uint64_t sum = t.nodes[i].self[M];
    for (uint32_t k = t.nodes[i].first_child; k != NONE; k = t.nodes[k].next_sibling)
      sum += t.nodes[k].total[M];
    assert_int_equal(sum, t.nodes[i].total[M]);
  }
  /* functions: (name, file, first line), so two "compute" */
  size_t computes = 0;
  for (size_t i = 0; i < t.nfns; i++) computes += strcmp(t.fns[i].name, "compute") == 0;
  assert_int_equal(computes, 2);
  assert_int_equal(t.fns[t.nodes[compute].fn].line, 10);
  assert_true(t.fns[t.nodes[prog].fn].meta);
  assert_false(t.fns[t.nodes[main_].fn].meta);
  pl__flame_free(&t);
}

static void test_cpu_tree_idle_and_by_name(void **state) {
  (void)state;
  pl__flame_tree t;
  build_cpu(&t, PL__FLAME_IDLE | PL__FLAME_BY_NAME);
  assert_int_equal(t.nodes[0].total[M], 17);
  uint32_t idle = find(&t, "(idle)", NULL);
  assert_true(idle != NONE);
  assert_int_equal(t.nodes[idle].total[M], 4);
  assert_int_equal(t.nodes[0].first_child, idle); /* "(idle)" < "(program)" */
  assert_int_equal(t.samples[M], 11);
  size_t computes = 0;
  for (size_t i = 0; i < t.nfns; i++) computes += strcmp(t.fns[i].name, "compute") == 0;
  assert_int_equal(computes, 1);
  pl__flame_free(&t);
}

static void test_cpu_tree_two_sides(void **state) {
  (void)state;
  pl__flame_tree t;
  pl_cpu_profile p = cpu_fixture();
  assert_int_equal(pl__flame_init(&t, PL__FLAME_SAMPLES, 0), 0);
  assert_int_equal(pl__flame_add_cpu(&t, PL__FLAME_MAIN, &p, 0), 0);
  assert_int_equal(pl__flame_add_cpu(&t, PL__FLAME_BASE, &p, 1), 0);
  assert_int_equal(pl__flame_add_cpu(&t, 2, &p, 1), -EINVAL);
  assert_int_equal(pl__flame_finish(&t), 0);
  assert_int_equal(pl__flame_add_cpu(&t, PL__FLAME_MAIN, &p, 1), -EINVAL); /* finished */
  assert_int_equal(t.period_ns[PL__FLAME_MAIN], 0);                        /* no times */
  assert_int_equal(t.period_ns[PL__FLAME_BASE], 1000000);
  for (size_t i = 0; i < t.nnodes; i++) {
    assert_int_equal(t.nodes[i].total[0], t.nodes[i].total[1]);
    assert_int_equal(t.nodes[i].self[0], t.nodes[i].self[1]);
  }
  pl__flame_free(&t);
}

static void test_cpu_tree_rejects_bad_models(void **state) {
  (void)state;
  pl__flame_tree t;
  pl_cpu_profile p = cpu_fixture();
  pl_cpu_sample bad[] = {{1, 99, 1, 1}};
  p.samples = bad;
  p.nsamples = 1;
  assert_int_equal(pl__flame_init(&t, PL__FLAME_SAMPLES, 0), 0);
  assert_int_equal(pl__flame_add_cpu(&t, PL__FLAME_MAIN, &p, 1), -EINVAL);
  pl__flame_free(&t);
  /* a heap tree takes no CPU profile, and the reverse */
  p = cpu_fixture();
  assert_int_equal(pl__flame_init(&t, PL__FLAME_BYTES, 0), 0);
  assert_int_equal(pl__flame_add_cpu(&t, PL__FLAME_MAIN, &p, 1), -EINVAL);
  pl__flame_free(&t);
}

/* heap: malloc dropped, unknown and truncated stacks */
static pl_frame hp_frames[] = {
    {"malloc", "", "/lib/libc.so.6", 0, 0, 0x10},             /* 0 */
    {"alloc_site", "/src/a.c", "/usr/bin/app", 12, 10, 0x20}, /* 1 */
    {"caller", "/src/b.c", "/usr/bin/app", 30, 25, 0x30},     /* 2 */
    {"main", "/src/m.c", "/usr/bin/app", 5, 1, 0x40},         /* 3 */
    {"other_site", "/src/a.c", "/usr/bin/app", 50, 48, 0x50}, /* 4 */
};
static uint32_t hs1[] = {0, 1, 2, 3}, hs2[] = {4, 3}, hs4[] = {1, 2};
static const uintptr_t hpcs[] = {1, 2, 3, 4};

static pl_heap_snapshot heap_fixture(pl_heap_stack *stacks) {
  pl_heap_stack s[] = {
      {.depth = 0, .inuse_bytes = 50, .inuse_objects = 1}, /* unknown */
      {.depth = 4, .pcs = hpcs, .frames = hs1, .inuse_bytes = 1000.4, .inuse_objects = 2},
      {.depth = 2, .pcs = hpcs, .frames = hs2, .inuse_bytes = 500, .inuse_objects = 1},
      {.depth = 2, .pcs = hpcs, .frames = hs2, .inuse_bytes = 0}, /* nothing live */
      {.depth = 2,
       .flags = PL_HEAP_STACK_TRUNCATED,
       .pcs = hpcs,
       .frames = hs4,
       .inuse_bytes = 25,
       .inuse_objects = 1},
  };
  memcpy(stacks, s, sizeof(s));
  return (pl_heap_snapshot){
      .stacks = stacks,
      .nstacks = 5,
      .frames = hp_frames,
      .nframes = sizeof(hp_frames) / sizeof(hp_frames[0]),
      .frames_state = PL_HEAP_FRAMES_LINES,
  };
}

static void test_heap_tree(void **state) {
  (void)state;
  pl_heap_stack stacks[5];
  pl_heap_snapshot s = heap_fixture(stacks);
  pl__flame_tree t;
  build_heap(&t, &s);
  assert_int_equal(t.nodes[0].total[M], 1575);
  uint32_t site = find(&t, "main", "caller", "alloc_site", NULL);
  assert_true(site != NONE);
  assert_int_equal(t.nodes[site].self[M], 1000);
  assert_int_equal(t.nodes[site].first_child, NONE); /* malloc dropped */
  assert_int_equal(t.nodes[find(&t, "main", "other_site", NULL)].total[M], 500);
  assert_int_equal(t.nodes[find(&t, "main", NULL)].total[M], 1500);
  assert_int_equal(t.nodes[find(&t, "(unknown)", NULL)].total[M], 50);
  uint32_t tr = find(&t, "(truncated)", "caller", "alloc_site", NULL);
  assert_true(tr != NONE);
  assert_int_equal(t.nodes[tr].total[M], 25);
  pl__flame_free(&t);
}

/* ---- the SVG ------------------------------------------------------------ */

static char *svg_of(const pl__flame_tree *t, const pl__flame_svg_opts *o, pl__flame_svg_stats *st,
                    size_t *len) {
  pl__sink s;
  pl__sink_init_mem(&s);
  assert_int_equal(pl__flame_write_svg(t, o, &s, st), 0);
  return sink_take(&s, len);
}

static void assert_well_formed(const char *svg, size_t n) {
  size_t at = 0, elements = 0;
  const char *err = xml_check(svg, n, &at, &elements);
  if (err) {
    size_t from = at > 60 ? at - 60 : 0;
    fail_msg("not well-formed XML at offset %zu: %s\n  ...%.120s", at, err, svg + from);
  }
  assert_true(elements > 10);
}

static size_t count(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

static void test_svg_well_formed_and_complete(void **state) {
  (void)state;
  pl__flame_tree t;
  build_cpu(&t, 0);
  pl__flame_svg_opts o = {.title = "T <&> \"q\"", .subtitle = "sub & more", .minwidth = 0};
  pl__flame_svg_stats st;
  size_t n;
  char *svg = svg_of(&t, &o, &st, &n);
  assert_well_formed(svg, n);
  assert_true(strncmp(svg, "<?xml version=\"1.0\" encoding=\"UTF-8\"", 36) == 0);
  /* every node with a value is a frame */
  size_t nonzero = 0;
  for (size_t i = 0; i < t.nnodes; i++) nonzero += t.nodes[i].total[M] > 0;
  assert_int_equal(st.frames, nonzero);
  assert_int_equal(st.omitted, 0);
  assert_int_equal(count(svg, "<g data-f="), st.frames);
  assert_int_equal(st.depth, 5);
  assert_int_equal(st.height, 56 + 6 * 16 + 30);
  /* the controls and the script */
  assert_non_null(strstr(svg, "id=\"pl-reset\""));
  assert_non_null(strstr(svg, "id=\"pl-search\""));
  assert_non_null(strstr(svg, "id=\"pl-details\""));
  assert_non_null(strstr(svg, "var plFlameNames = ["));
  assert_non_null(strstr(svg, "window.plFlame"));
  assert_int_equal(count(svg, "]]>"), 2); /* the style's and the script's CDATA ends */
  /* nothing to fetch: no links, no URLs but the SVG namespace */
  assert_null(strstr(svg, "href"));
  assert_null(strstr(svg, "url("));
  assert_int_equal(count(svg, "http"), 1);
  /* title and subtitle escaped */
  assert_non_null(strstr(svg, "<title>T &lt;&amp;&gt; &quot;q&quot;</title>"));
  assert_non_null(strstr(svg, ">sub &amp; more</text>"));
  /* the hostile name: escaped, the control byte and the invalid byte as U+FFFD */
  assert_non_null(
      strstr(svg, "a&lt;b&gt;&amp;&quot;c&apos;\xef\xbf\xbd\xef\xbf\xbd (/src/x&amp;y.c:2)"));
  assert_non_null(strstr(svg, "\"a\\u003cb\\u003e\\u0026\\\"c'\\ufffd\\ufffd\""));
  /* tooltips: function (file:line), value and share; self when any */
  assert_non_null(
      strstr(svg,
             "<title>compute (/src/app/work.c:10)\n6.00 ms (6 samples), 46.15%\nself: 3.00 ms "
             "(3 samples), 23.08%</title>"));
  assert_non_null(strstr(svg, "<title>memcpy (libc.so.6)\n"));
  assert_non_null(strstr(svg, "<title>all\n13.00 ms (13 samples), 100.00%</title>"));
  /* the root spans the width; the flame's root is at the bottom */
  assert_non_null(strstr(svg, "<rect x=\"10.00\" y=\"136\" width=\"1180.00\" height=\"15\""));
  free(svg);
  /* no times: counts */
  pl__flame_tree t2;
  pl_cpu_profile p = cpu_fixture();
  build_cpu_of(&t2, &p, 0, 0);
  svg = svg_of(&t2, &o, NULL, &n);
  assert_non_null(strstr(svg, "<title>all\n13 samples, 100.00%</title>"));
  free(svg);
  pl__flame_free(&t2);
  pl__flame_free(&t);
}

static void test_svg_icicle_and_heap(void **state) {
  (void)state;
  pl_heap_stack stacks[5];
  pl_heap_snapshot s = heap_fixture(stacks);
  pl__flame_tree t;
  build_heap(&t, &s);
  pl__flame_svg_opts o = {.icicle = 1, .palette = PL__FLAME_MEM, .width = 800};
  size_t n;
  char *svg = svg_of(&t, &o, NULL, &n);
  assert_well_formed(svg, n);
  assert_non_null(strstr(svg, "<title>Icicle Graph</title>"));
  assert_non_null(strstr(svg, "data-kind=\"memory\""));
  /* the root at the top, 780 px wide */
  assert_non_null(strstr(svg, "<rect x=\"10.00\" y=\"56\" width=\"780.00\""));
  assert_non_null(strstr(svg, "<title>alloc_site (/src/a.c:10)\n1000 bytes, 63.49%"));
  assert_non_null(strstr(svg, "<title>all\n1.5 KiB, 100.00%</title>"));
  free(svg);
  pl__flame_free(&t);
}

/* A wide and a tiny stack: the tiny one is under 0.1 px at 1200 px. */
static pl_frame tiny_frames[] = {
    {"root_fn", "/r.c", "", 1, 1, 1},
    {"wide", "/w.c", "", 1, 1, 2},
    {"tiny", "/t.c", "", 1, 1, 3},
    {"tiny_callee", "/t.c", "", 9, 9, 4},
    {"a_function_with_a_very_long_name_that_cannot_fit_in_its_box_at_all_\xc3\xa9\xc3\xa9"
     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9_end",
     "/l.c", "", 1, 1, 5},
};
static uint32_t ts0[] = {1, 0}, ts1[] = {3, 2, 0}, ts2[] = {4, 0};
static pl_cpu_stack tiny_stacks[] = {{2, ts0}, {3, ts1}, {2, ts2}};
static pl_cpu_sample tiny_samples[] = {{1, 0, 100000, 1}, {2, 1, 1, 1}, {3, 2, 10000, 1}};

static void test_svg_minwidth_and_labels(void **state) {
  (void)state;
  pl_cpu_profile p = {.frames = tiny_frames,
                      .nframes = 5,
                      .stacks = tiny_stacks,
                      .nstacks = 3,
                      .samples = tiny_samples,
                      .nsamples = 3,
                      .period_ns = 1000};
  pl__flame_tree t;
  build_cpu_of(&t, &p, 0, 1);
  pl__flame_svg_opts o = {.minwidth = 0.1, .subtitle = "s"};
  pl__flame_svg_stats st;
  size_t n;
  char *svg = svg_of(&t, &o, &st, &n);
  assert_well_formed(svg, n);
  assert_int_equal(st.omitted, 2); /* tiny and its callee */
  assert_int_equal(st.frames, 4);
  assert_null(strstr(svg, "tiny"));
  assert_non_null(strstr(svg, ">s; 2 frames narrower than 0.1 px not drawn</text>"));
  /* the long name: its box is 1180 * 10000 / 110001 = 107.27 px, so
   * floor((107.27 - 6) / 7.2) = 14 characters: 13 and an ellipsis */
  assert_non_null(strstr(svg, ">a_function_wi\xe2\x80\xa6</text>"));
  /* the full name is in the tooltip and the script's names, é as \u00e9 */
  assert_non_null(strstr(svg, "\xc3\xa9_end (/l.c:1)"));
  assert_non_null(strstr(svg, "\\u00e9\\u00e9_end\""));
  free(svg);
  /* --minwidth 0: everything */
  o.minwidth = 0;
  svg = svg_of(&t, &o, &st, &n);
  assert_int_equal(st.omitted, 0);
  assert_int_equal(st.frames, 6);
  assert_non_null(strstr(svg, "tiny_callee"));
  assert_null(strstr(svg, "not drawn"));
  free(svg);
  pl__flame_free(&t);
}

static void test_svg_errors(void **state) {
  (void)state;
  pl__flame_tree t;
  pl_cpu_profile p = cpu_fixture();
  assert_int_equal(pl__flame_init(&t, PL__FLAME_SAMPLES, 0), 0);
  assert_int_equal(pl__flame_add_cpu(&t, M, &p, 1), 0);
  pl__sink s;
  pl__sink_init_mem(&s);
  pl__flame_svg_opts o = {.minwidth = 0.1};
  assert_int_equal(pl__flame_write_svg(&t, &o, &s, NULL), -EINVAL); /* not finished */
  assert_int_equal(pl__flame_finish(&t), 0);
  o.width = 100;
  assert_int_equal(pl__flame_write_svg(&t, &o, &s, NULL), -EINVAL);
  o.width = 1200;
  o.minwidth = -1;
  assert_int_equal(pl__flame_write_svg(&t, &o, &s, NULL), -EINVAL);
  o.minwidth = NAN;
  assert_int_equal(pl__flame_write_svg(&t, &o, &s, NULL), -EINVAL);
  assert_int_equal(s.buf.len, 0);
  pl__sink_free(&s);
  pl__flame_free(&t);
}

static void test_svg_failing_sink(void **state) {
  (void)state;
  pl__flame_tree t;
  build_cpu(&t, 0);
  pl__sink s;
  pl__sink_init_backend(&s, full_disk, NULL, 64);
  pl__flame_svg_opts o = {.minwidth = 0.1};
  assert_int_equal(pl__flame_write_svg(&t, &o, &s, NULL), -ENOSPC);
  assert_int_equal(pl__sink_finish(&s), -ENOSPC);
  pl__sink_free(&s);
  pl__flame_free(&t);
}

static void test_empty_profile(void **state) {
  (void)state;
  pl_cpu_profile p = {.period_ns = 1000, .mode = "cpu"};
  pl__flame_tree t;
  build_cpu_of(&t, &p, 0, 1);
  pl__flame_svg_opts o = {.minwidth = 0.1};
  pl__flame_svg_stats st;
  size_t n;
  char *svg = svg_of(&t, &o, &st, &n);
  assert_well_formed(svg, n);
  assert_int_equal(st.frames, 1); /* the root alone */
  free(svg);
  pl__flame_free(&t);
}

static void test_colors(void **state) {
  (void)state;
  unsigned char a[3], b[3], c[3];
  pl__flame_color(PL__FLAME_HOT, "compute", a);
  pl__flame_color(PL__FLAME_HOT, "compute", b);
  assert_memory_equal(a, b, 3);
  pl__flame_color(PL__FLAME_HOT, "compute2", c);
  assert_memory_not_equal(a, c, 3);
  /* pinned: the same name keeps its color across versions and graphs */
  static const char *const names[] = {"main", "compute", "lab_event_loop_jam_spin", "x", ""};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    pl__flame_color(PL__FLAME_HOT, names[i], a);
    assert_true(a[0] >= 205 && a[1] <= 230 && a[2] <= 55); /* warm */
    pl__flame_color(PL__FLAME_MEM, names[i], a);
    assert_true(a[0] <= 20 && a[1] >= 150 && a[2] >= 110); /* greens and blues */
  }
}

/* Build and write, for the allocation-failure torture. */
static int build_and_write(void *arg) {
  (void)arg;
  pl_cpu_profile p = cpu_fixture();
  pl__flame_tree t;
  int rc = pl__flame_init(&t, PL__FLAME_SAMPLES, PL__FLAME_IDLE);
  if (rc) return rc;
  if (!(rc = pl__flame_add_cpu(&t, M, &p, 1)) && !(rc = pl__flame_add_cpu(&t, 1, &p, 1)) &&
      !(rc = pl__flame_finish(&t))) {
    pl__sink s;
    pl__sink_init_mem(&s);
    pl__flame_svg_opts o = {.minwidth = 0.1, .palette = PL__FLAME_DIFF, .noise = 1};
    rc = pl__flame_write_svg(&t, &o, &s, NULL);
    if (!rc) rc = pl__sink_finish(&s);
    pl__sink_free(&s);
  }
  pl__flame_free(&t);
  return rc;
}

static void test_allocation_failures(void **state) {
  (void)state;
  long n = torture_allocs("flame", build_and_write, NULL, NULL);
  assert_true(n > 5 || !TORTURE);
}

/* The checker itself: it must refuse what a browser's XML parser refuses. */
static void test_xml_checker(void **state) {
  (void)state;
  static const char *const good[] = {
      "<a/>",
      "<?xml version=\"1.0\"?>\n<a x='1' y=\"&lt;&#x41;&#66;\">t&amp;<b/><![CDATA[<&]]></a>\n",
      "<a><!-- c --><?pi x?>\xc3\xa9</a>",
  };
  static const char *const bad[] = {
      "<a>",
      "<a></b>",
      "<a>&</a>",
      "<a>&foo;</a>",
      "<a x=1/>",
      "<a x='<'/>",
      "<a x='1' x='2'/>",
      "<a>]]></a>",
      "<a/><b/>",
      "text<a/>",
      "<a>\xff</a>",
      "<a>\x01</a>",
      "<a>&#1;</a>",
      "<a><!-- -- --></a>",
      "<!DOCTYPE a><a/>",
      "<a><b></a></b>",
      "<a>\xed\xa0\x80</a>",
      "",
  };
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    if (xml_check(good[i], strlen(good[i]), NULL, NULL))
      fail_msg("refused: %s: %s", good[i], xml_check(good[i], strlen(good[i]), NULL, NULL));
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (!xml_check(bad[i], strlen(bad[i]), NULL, NULL)) fail_msg("accepted: %s", bad[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cpu_tree),
      cmocka_unit_test(test_cpu_tree_idle_and_by_name),
      cmocka_unit_test(test_cpu_tree_two_sides),
      cmocka_unit_test(test_cpu_tree_rejects_bad_models),
      cmocka_unit_test(test_heap_tree),
      cmocka_unit_test(test_svg_well_formed_and_complete),
      cmocka_unit_test(test_svg_icicle_and_heap),
      cmocka_unit_test(test_svg_minwidth_and_labels),
      cmocka_unit_test(test_svg_errors),
      cmocka_unit_test(test_svg_failing_sink),
      cmocka_unit_test(test_empty_profile),
      cmocka_unit_test(test_colors),
      cmocka_unit_test(test_allocation_failures),
      cmocka_unit_test(test_xml_checker),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
