/* Profile comparison (src/analysis/diff.h): shares and their changes from
 * hand-built CPU profiles, the noise band (2 x the combined standard
 * error) on both sides of its edge, idle left out or counted, functions
 * only in one profile, the order by |change|, heap profiles by bytes, and
 * the differential flame graph's colors and tooltips (well-formed XML). */
#include "profile_test.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "analysis/diff.h"
#include "common/sink.h"
#include "xml_check.h"

static pl_frame frames[] = {
    {"main", "/src/m.c", "/usr/bin/app", 5, 1, 0x10},   /* 0 */
    {"hot", "/src/h.c", "/usr/bin/app", 12, 10, 0x20},  /* 1 */
    {"steady", "/src/s.c", "/usr/bin/app", 7, 6, 0x30}, /* 2 */
    {"other", "/src/o.c", "/usr/bin/app", 3, 2, 0x40},  /* 3 */
    {"fresh", "/src/f.c", "/usr/bin/app", 9, 8, 0x50},  /* 4 */
};
static uint32_t s_hot[] = {1, 0}, s_steady[] = {2, 0}, s_other[] = {3, 0}, s_fresh[] = {4, 0};
static pl_cpu_stack stacks[] = {{2, s_hot}, {2, s_steady}, {2, s_other}, {2, s_fresh}};

/* A profile with these weights on hot, steady, other, fresh and idle. */
typedef struct prof {
  pl_cpu_sample samples[5];
  pl_cpu_profile p;
} prof;

static void make(prof *x, uint32_t hot, uint32_t steady, uint32_t other, uint32_t fresh,
                 uint32_t idle) {
  uint32_t w[5] = {hot, steady, other, fresh, idle};
  size_t n = 0;
  for (uint32_t k = 0; k < 5; k++)
    if (w[k]) x->samples[n++] = (pl_cpu_sample){k + 1, k == 4 ? PL_STACK_IDLE : k, w[k], 1};
  x->p = (pl_cpu_profile){.frames = frames,
                          .nframes = 5,
                          .stacks = stacks,
                          .nstacks = 4,
                          .samples = x->samples,
                          .nsamples = n,
                          .period_ns = 1000000,
                          .mode = "wall"};
}

static const pl__diff_row *row(const pl__diff *d, const char *name) {
  for (size_t i = 0; i < d->nrows; i++)
    if (strcmp(d->rows[i].function, name) == 0) return &d->rows[i];
  fail_msg("no row %s", name);
  return NULL;
}

/* hot grows from 10 % to 40 % of 1000 samples, other shrinks from 60 % to
 * 30 %, steady stays at 30 %: their diff. */
static void diff_hot_grew(prof *a, prof *b, pl__diff *d) {
  make(a, 100, 300, 600, 0, 0);
  make(b, 400, 300, 300, 0, 0);
  assert_int_equal(pl__diff_cpu(&a->p, 1, &b->p, 1, 0, d), 0);
}

#define A PL__DIFF_A
#define B PL__DIFF_B

static void test_band(void **state) {
  (void)state;
  assert_true(fabs(pl__diff_band(0.5, 100, 0.5, 100) - 2 * sqrt(0.005)) < 1e-12);
  assert_true(fabs(pl__diff_band(0.1, 1000, 0.4, 1000) - 2 * sqrt(0.00009 + 0.00024)) < 1e-12);
  assert_true(pl__diff_band(0, 1000, 0, 1000) == 0);
  assert_true(fabs(pl__diff_band(0.3, 0, 0.3, 100) - 2 * sqrt(0.0021)) < 1e-12); /* n 0: no term */
}

static void test_cpu_changes(void **state) {
  (void)state;
  prof a, b;
  pl__diff d;
  diff_hot_grew(&a, &b, &d);
  assert_int_equal(d.total[A], 1000);
  assert_int_equal(d.total[B], 1000);
  assert_true(d.noise);
  assert_int_equal(d.nrows, 4);
  const pl__diff_row *h = row(&d, "hot"), *s = row(&d, "steady"), *o = row(&d, "other"),
                     *m = row(&d, "main");
  assert_int_equal(h->self[A], 100);
  assert_int_equal(h->self[B], 400);
  assert_true(fabs(h->self_share[A] - 0.1) < 1e-12 && fabs(h->self_share[B] - 0.4) < 1e-12);
  assert_true(fabs(h->d_self - 0.3) < 1e-12 && fabs(h->d_total - 0.3) < 1e-12);
  assert_true(fabs(h->self_band - pl__diff_band(0.1, 1000, 0.4, 1000)) < 1e-12);
  assert_false(h->self_noise);
  assert_false(h->total_noise);
  assert_true(o->d_self < -0.29);
  assert_false(o->self_noise);
  assert_true(s->d_self == 0 && s->self_noise && s->total_noise); /* unchanged */
  assert_true(m->d_total == 0 && m->total_noise && m->self_noise);
  assert_int_equal(m->total[A], 1000);
  assert_int_equal(m->self[A], 0);
  assert_string_equal(h->file, "/src/h.c");
  assert_int_equal(h->line, 10);
  pl__diff_sort(&d, 0);
  assert_true(
      (strcmp(d.rows[0].function, "hot") == 0 && strcmp(d.rows[1].function, "other") == 0) ||
      (strcmp(d.rows[0].function, "other") == 0 && strcmp(d.rows[1].function, "hot") == 0));
  assert_string_equal(d.rows[2].function, "main"); /* ties: by name */
  assert_string_equal(d.rows[3].function, "steady");
  pl__diff_free(&d);
  assert_null(d.rows);
}

/* A change of 2 points of a 30 % share: noise over 1000 samples, real over 100000. */
static void test_noise_edge(void **state) {
  (void)state;
  prof a, b;
  pl__diff d;
  make(&a, 100, 300, 600, 0, 0);
  make(&b, 100, 320, 580, 0, 0);
  assert_int_equal(pl__diff_cpu(&a.p, 1, &b.p, 1, 0, &d), 0);
  const pl__diff_row *s = row(&d, "steady");
  assert_true(fabs(s->d_self - 0.02) < 1e-12);
  assert_true(fabs(s->self_band - 2 * sqrt(0.3 * 0.7 / 1000 + 0.32 * 0.68 / 1000)) < 1e-12);
  assert_true(s->self_band > 0.04 && s->self_noise);
  assert_true(row(&d, "hot")->self_noise); /* the same share: no change */
  pl__diff_free(&d);
  make(&a, 10000, 30000, 60000, 0, 0);
  make(&b, 10000, 32000, 58000, 0, 0);
  assert_int_equal(pl__diff_cpu(&a.p, 1, &b.p, 1, 0, &d), 0);
  s = row(&d, "steady");
  assert_true(s->self_band < 0.005);
  assert_false(s->self_noise);
  pl__diff_free(&d);
}

static void test_idle_and_new_functions(void **state) {
  (void)state;
  prof a, b;
  pl__diff d;
  make(&a, 100, 300, 600, 0, 1000);
  make(&b, 100, 300, 550, 50, 0);
  assert_int_equal(pl__diff_cpu(&a.p, 1, &b.p, 1, 0, &d), 0);
  assert_int_equal(d.total[A], 1000); /* busy samples */
  assert_int_equal(d.idle[A], 1000);
  assert_true(row(&d, "hot")->self_noise);
  const pl__diff_row *f = row(&d, "fresh");
  assert_int_equal(f->total[A], 0);
  assert_int_equal(f->total[B], 50);
  assert_false(f->self_noise); /* 5 % out of nothing, over 1000 samples */
  for (size_t i = 0; i < d.nrows; i++) assert_string_not_equal(d.rows[i].function, "(idle)");
  pl__diff_free(&d);
  /* counted: shares of all samples, an (idle) row */
  assert_int_equal(pl__diff_cpu(&a.p, 1, &b.p, 1, PL__FLAME_IDLE, &d), 0);
  assert_int_equal(d.total[A], 2000);
  const pl__diff_row *i = row(&d, "(idle)");
  assert_true(i->meta);
  assert_true(fabs(i->d_self + 0.5) < 1e-12);
  assert_true(fabs(row(&d, "hot")->d_self - 0.05) < 1e-12);
  pl__diff_free(&d);
}

static void test_bad_model(void **state) {
  (void)state;
  prof a, b;
  make(&a, 1, 1, 1, 0, 0);
  make(&b, 1, 1, 1, 0, 0);
  b.samples[0].stack = 77;
  pl__diff d;
  assert_int_equal(pl__diff_cpu(&a.p, 1, &b.p, 1, 0, &d), -EINVAL);
  assert_null(d.rows);
  assert_null(d.tree.nodes);
}

static char *svg_of(const pl__diff *d, size_t *len) {
  pl__sink s;
  pl__sink_init_mem(&s);
  pl__flame_svg_opts o = {.minwidth = 0.1, .palette = PL__FLAME_DIFF, .noise = d->noise};
  assert_int_equal(pl__flame_write_svg(&d->tree, &o, &s, NULL), 0);
  char *data = sink_take(&s, len);
  size_t at;
  const char *err = xml_check(data, *len, &at, NULL);
  if (err) fail_msg("not well-formed XML at offset %zu: %s", at, err);
  return data;
}

/* The fill of the frame whose tooltip starts with "<title>name (". */
static void fill_of(const char *svg, const char *name, unsigned rgb[3]) {
  char key[64];
  snprintf(key, sizeof(key), "<title>%s (", name);
  const char *p = strstr(svg, key);
  assert_non_null(p);
  p = strstr(p, "fill=\"rgb(");
  assert_non_null(p);
  assert_int_equal(sscanf(p, "fill=\"rgb(%u,%u,%u)", &rgb[0], &rgb[1], &rgb[2]), 3);
}

static void test_diff_graph(void **state) {
  (void)state;
  prof a, b;
  pl__diff d;
  diff_hot_grew(&a, &b, &d);
  size_t n;
  char *svg = svg_of(&d, &n);
  unsigned c[3];
  fill_of(svg, "hot", c); /* grew the most: full red */
  assert_true(c[0] == 255 && c[1] == c[2] && c[1] < 60);
  fill_of(svg, "other", c); /* shrank as much: full blue */
  assert_true(c[2] == 255 && c[0] == c[1] && c[0] < 60);
  fill_of(svg, "steady", c); /* unchanged: grey */
  assert_true(c[0] == 222 && c[1] == 222 && c[2] == 222);
  fill_of(svg, "main", c); /* no self time in either */
  assert_true(c[0] == 222 && c[1] == 222 && c[2] == 222);
  assert_non_null(strstr(svg,
                         "<title>hot (/src/h.c:10)\nB: 400.00 ms (400 samples), 40.00% "
                         "(self 40.00%)\nA: 10.00% (self 10.00%)\nself share +30.00 points: "
                         "grew (noise \xc2\xb1"));
  assert_non_null(strstr(svg, "\nself share +0.00 points: within noise (\xc2\xb1"));
  assert_non_null(strstr(svg, "data-kind=\"diff\""));
  free(svg);
  pl__diff_free(&d);
  /* a smaller growth is a paler red */
  make(&b, 200, 300, 500, 0, 0);
  make(&a, 100, 300, 600, 0, 0);
  assert_int_equal(pl__diff_cpu(&a.p, 1, &b.p, 1, 0, &d), 0);
  svg = svg_of(&d, &n);
  fill_of(svg, "hot", c);
  assert_true(c[0] == 255 && c[1] < 60); /* the largest change is the full color */
  free(svg);
  pl__diff_free(&d);
}

static pl_frame hframes[] = {
    {"main", "/src/m.c", "", 5, 1, 0x10},
    {"leaky", "/src/l.c", "", 12, 10, 0x20},
    {"cache", "/src/c.c", "", 7, 6, 0x30},
};
static uint32_t hs_leak[] = {1, 0}, hs_cache[] = {2, 0};
static const uintptr_t hpcs[] = {1, 2};

static pl_heap_snapshot heap(pl_heap_stack *st, double leak, double cache) {
  st[0] = (pl_heap_stack){.depth = 2, .pcs = hpcs, .frames = hs_leak, .inuse_bytes = leak};
  st[1] = (pl_heap_stack){.depth = 2, .pcs = hpcs, .frames = hs_cache, .inuse_bytes = cache};
  return (pl_heap_snapshot){.stacks = st, .nstacks = 2, .frames = hframes, .nframes = 3};
}

static void test_heap(void **state) {
  (void)state;
  pl_heap_stack sa[2], sb[2];
  pl_heap_snapshot a = heap(sa, 1000, 5000), b = heap(sb, 9000, 4000);
  pl__diff d;
  assert_int_equal(pl__diff_heap(&a, &b, 0, &d), 0);
  assert_false(d.noise);
  assert_int_equal(d.total[A], 6000);
  assert_int_equal(d.total[B], 13000);
  pl__diff_sort(&d, 1); /* by total bytes: leaky +8000, main +7000, cache -1000 */
  assert_string_equal(d.rows[0].function, "leaky");
  assert_string_equal(d.rows[1].function, "main");
  assert_string_equal(d.rows[2].function, "cache");
  pl__diff_sort(&d, 0);
  const pl__diff_row *l = row(&d, "leaky"), *c = row(&d, "cache");
  assert_int_equal(l->self[B] - l->self[A], 8000);
  assert_true(l->self_band == 0 && !l->self_noise);
  assert_true((double)c->self[B] - (double)c->self[A] == -1000);
  /* by bytes: leaky (+8000) before main's self (0) and cache (-1000) */
  assert_string_equal(d.rows[0].function, "leaky");
  assert_string_equal(d.rows[1].function, "cache");
  size_t n;
  char *svg = svg_of(&d, &n);
  assert_non_null(strstr(svg,
                         "<title>leaky (/src/l.c:10)\nB: 8.8 KiB, 69.23% (self 69.23%)\n"
                         "A: 16.67% (self 16.67%)\nself share +52.56 points</title>"));
  free(svg);
  pl__diff_free(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_band),       cmocka_unit_test(test_cpu_changes),
      cmocka_unit_test(test_noise_edge), cmocka_unit_test(test_idle_and_new_functions),
      cmocka_unit_test(test_bad_model),  cmocka_unit_test(test_diff_graph),
      cmocka_unit_test(test_heap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
