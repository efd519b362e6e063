/* Leak verdicts (src/analysis/leaks.h) on synthetic snapshot series: a
 * steady leak, churn, a leak mixed with churn at one site, a site that grew
 * once, a stable site, sampling noise, too little evidence, three
 * snapshots, classes matched by key across snapshots, bad input; and the
 * times in proflab's and Node's file names. */
#include "test.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "analysis/leaks.h"

#define MIB 1048576u

/* A snapshot under construction: objects of classes by key. */
typedef struct build {
  pl__leaks_obj *objs;
  size_t n, cap;
} build;

static void put(build *b, uint64_t id, uint32_t cls, uint32_t bytes) {
  if (b->n == b->cap) {
    b->cap = b->cap ? 2 * b->cap : 64;
    b->objs = realloc(b->objs, b->cap * sizeof(*b->objs));
    assert_non_null(b->objs);
  }
  b->objs[b->n++] = (pl__leaks_obj){id, cls, bytes};
}

static const pl__leak_site *site(const pl__leaks_result *r, const char *name, size_t *rank) {
  for (size_t i = 0; i < r->nsites; i++)
    if (strcmp(r->sites[i].name, name) == 0) {
      if (rank) *rank = i;
      return &r->sites[i];
    }
  fail_msg("no site %s", name);
  return NULL;
}

enum { C_LEAK, C_CHURN, C_MIXED, C_ONCE, C_STABLE, C_NOISE, C_N };
static const char *const keys[C_N] = {"leak", "churn", "mixed", "once", "stable", "noise"};

/* Six snapshots 10 s apart with every kind of site. */
static void six(void **state) {
  (void)state;
  pl__leaks *L = pl__leaks_new();
  assert_non_null(L);
  static const unsigned churn[6] = {5, 2, 6, 1, 4, 3}, mixed_churn[6] = {4, 0, 3, 1, 5, 2};
  uint64_t next = 1001; /* fresh ids */
  for (unsigned k = 0; k < 6; k++) {
    build b = {0};
    for (unsigned i = 0; i < 3 * (k + 1); i++)
      put(&b, 1 + 2 * i, C_LEAK, MIB); /* ids 1,3,.. kept */
    for (unsigned i = 0; i < churn[k]; i++) put(&b, next += 2, C_CHURN, MIB);
    for (unsigned i = 0; i < 2 * (k + 1); i++) put(&b, 100001 + 2 * i, C_MIXED, MIB);
    for (unsigned i = 0; i < mixed_churn[k]; i++) put(&b, next += 2, C_MIXED, MIB);
    for (unsigned i = 0; i < (k < 3 ? 10u : 20u); i++) put(&b, 200001 + 2 * i, C_ONCE, MIB);
    for (unsigned i = 0; i < 5; i++) put(&b, 300001 + 2 * i, C_STABLE, MIB);
    /* sampling noise: rare 512 KiB samples that come and go, one kept */
    static const int noise[6][2] = {{0, 0}, {1, 0}, {2, 0}, {2, 3}, {4, 0}, {4, 0}};
    for (int i = 0; i < 2; i++)
      if (noise[k][i]) put(&b, 400001 + 2 * (uint64_t)noise[k][i], C_NOISE, MIB / 2);
    assert_int_equal(pl__leaks_add(L, 100.0 + 10.0 * k, keys, NULL, C_N, b.objs, b.n), 0);
  }
  assert_int_equal(pl__leaks_count(L), 6);
  pl__leaks_result r;
  assert_int_equal(pl__leaks_analyze(L, NULL, &r), 0);
  assert_int_equal(r.nsnapshots, 6);
  assert_true(r.t[5] == 50.0);

  size_t rank;
  const pl__leak_site *s = site(&r, "leak", &rank);
  assert_int_equal(s->verdict, PL__LEAK_LIKELY);
  assert_int_equal(rank, 0);
  assert_true(s->never_shrinks);
  assert_int_equal(s->grew, 5);
  assert_true(fabs(s->leak_rate - 3.0 * MIB / 10) < 1);
  assert_true(fabs(s->rate - 3.0 * MIB / 10) < 1);
  assert_true(s->leak_r2 > 0.999);
  assert_int_equal(s->freed_objects, 0);
  assert_int_equal(s->bytes[0], 3 * MIB);
  assert_int_equal(s->count[5], 18);

  s = site(&r, "mixed", &rank);
  assert_int_equal(s->verdict, PL__LEAK_LIKELY);
  assert_int_equal(rank, 1);
  assert_false(s->never_shrinks);
  assert_true(s->freed_objects > 0);
  /* the leaked part: 2 MiB per 10 s, churn left out (within the last
   * point's estimate) */
  assert_true(fabs(s->leak_rate - 2.0 * MIB / 10) < 0.05 * 2 * MIB / 10);
  assert_true(s->keep_ratio > 0.3 && s->keep_ratio < 0.6);

  s = site(&r, "churn", NULL);
  assert_int_equal(s->verdict, PL__LEAK_CHURN);
  assert_int_equal(s->grew, 0);
  s = site(&r, "once", NULL);
  assert_int_equal(s->verdict, PL__LEAK_GREW_ONCE);
  assert_int_equal(s->grew, 1);
  s = site(&r, "stable", NULL);
  assert_int_equal(s->verdict, PL__LEAK_STABLE);
  s = site(&r, "noise", NULL);
  assert_true(s->verdict != PL__LEAK_LIKELY && s->verdict != PL__LEAK_POSSIBLE);

  /* a larger --min-growth leaves the small ones out */
  pl__leaks_result r2;
  pl__leaks_opts o = {.min_growth = 12.0 * MIB};
  assert_int_equal(pl__leaks_analyze(L, &o, &r2), 0);
  assert_int_equal(site(&r2, "leak", NULL)->verdict, PL__LEAK_LIKELY);
  assert_int_not_equal(site(&r2, "mixed", NULL)->verdict, PL__LEAK_LIKELY);
  pl__leaks_result_free(&r2);
  pl__leaks_result_free(&r);
  assert_null(r.sites);
  pl__leaks_free(L);
}

/* Three snapshots: enough for a leak with several new objects; one new
 * object per interval is only a possible leak; uneven growth too. */
static void three(void **state) {
  (void)state;
  pl__leaks *L = pl__leaks_new();
  static const char *const k3[3] = {"big", "few", "uneven"};
  /* classes given in a different order in each snapshot: matched by key */
  static const char *const k3r[3] = {"uneven", "few", "big"};
  static const unsigned uneven[3] = {2, 3, 40};
  for (unsigned k = 0; k < 3; k++) {
    build b = {0};
    int rev = k == 1;
    for (unsigned i = 0; i < 4 * (k + 1); i++) put(&b, 1 + 2 * i, rev ? 2 : 0, MIB);
    for (unsigned i = 0; i <= k; i++) put(&b, 1001 + 2 * i, 1, MIB);
    for (unsigned i = 0; i < uneven[k]; i++) put(&b, 2001 + 2 * i, rev ? 0 : 2, MIB);
    assert_int_equal(pl__leaks_add(L, 5.0 * k, rev ? k3r : k3, k3, 3, b.objs, b.n), 0);
  }
  pl__leaks_result r;
  assert_int_equal(pl__leaks_analyze(L, NULL, &r), 0);
  const pl__leak_site *s = site(&r, "big", NULL);
  assert_int_equal(s->verdict, PL__LEAK_LIKELY);
  assert_true(fabs(s->leak_rate - 4.0 * MIB / 5) < 1);
  s = site(&r, "few", NULL);
  assert_int_equal(s->verdict, PL__LEAK_POSSIBLE);
  assert_int_equal(s->evidence, 2);
  assert_non_null(strstr(s->reason, "too few"));
  s = site(&r, "uneven", NULL);
  assert_int_equal(s->verdict, PL__LEAK_POSSIBLE);
  assert_non_null(strstr(s->reason, "uneven"));
  assert_int_equal(s->count[1], 3);
  pl__leaks_result_free(&r);
  pl__leaks_free(L);
}

/* An object that grows in place (a Node array) is evidence as well. */
static void grows_in_place(void **state) {
  (void)state;
  pl__leaks *L = pl__leaks_new();
  static const char *const k1[1] = {"Array"};
  for (unsigned k = 0; k < 5; k++) {
    build b = {0};
    put(&b, 7, 0, (k + 1) * 100000u);
    assert_int_equal(pl__leaks_add(L, k, k1, NULL, 1, b.objs, b.n), 0);
  }
  pl__leaks_result r;
  assert_int_equal(pl__leaks_analyze(L, NULL, &r), 0);
  assert_int_equal(r.sites[0].verdict, PL__LEAK_LIKELY);
  assert_int_equal(r.sites[0].evidence, 4);
  assert_int_equal(r.sites[0].new_objects, 0);
  pl__leaks_result_free(&r);
  pl__leaks_free(L);
}

static void bad_input(void **state) {
  (void)state;
  pl__leaks *L = pl__leaks_new();
  static const char *const k1[1] = {"x"};
  build b = {0};
  put(&b, 1, 0, 10);
  assert_int_equal(pl__leaks_add(L, 1, k1, NULL, 1, b.objs, b.n), 0);
  b = (build){0};
  put(&b, 3, 0, 10);
  assert_int_equal(pl__leaks_add(L, 1, k1, NULL, 1, b.objs, b.n), -EINVAL); /* same time */
  b = (build){0};
  put(&b, 3, 1, 10);
  assert_int_equal(pl__leaks_add(L, 2, k1, NULL, 1, b.objs, b.n), -EINVAL); /* class */
  b = (build){0};
  put(&b, 3, 0, 10);
  put(&b, 3, 0, 10);
  assert_int_equal(pl__leaks_add(L, 2, k1, NULL, 1, b.objs, b.n), -EINVAL); /* same id */
  assert_int_equal(pl__leaks_add(L, 2, k1, NULL, 1, NULL, 0), 0);           /* empty heap */
  pl__leaks_result r;
  assert_int_equal(pl__leaks_analyze(L, NULL, &r), -EINVAL); /* 2 snapshots */
  assert_int_equal(pl__leaks_add(L, 3, k1, NULL, 1, NULL, 0), 0);
  assert_int_equal(pl__leaks_analyze(L, NULL, &r), 0);
  assert_int_equal(r.sites[0].verdict, PL__LEAK_STABLE); /* 10 bytes gone: too little */
  pl__leaks_result_free(&r);
  pl__leaks_free(L);
  pl__leaks_free(NULL);
}

static void name_times(void **state) {
  (void)state;
  pl__leaks_name_time t;
  const char *p = "heap-20261126T013300.123Z-task-1.heapsnapshot";
  assert_int_equal(pl__leaks_parse_name_time(p, strlen(p), &t), 0);
  assert_int_equal(t.year, 2026);
  assert_int_equal(t.month, 11);
  assert_int_equal(t.day, 26);
  assert_int_equal(t.hour, 1);
  assert_int_equal(t.min, 33);
  assert_int_equal(t.sec, 0);
  assert_int_equal(t.msec, 123);
  assert_int_equal(t.utc, 1);
  p = "Heap.20240131.235959.4242.0.007.heapsnapshot";
  assert_int_equal(pl__leaks_parse_name_time(p, strlen(p), &t), 0);
  assert_int_equal(t.year, 2024);
  assert_int_equal(t.day, 31);
  assert_int_equal(t.sec, 59);
  assert_int_equal(t.utc, 0);
  assert_int_equal(t.seq, 7);
  static const char *const bad[] = {"heap.heapsnapshot",
                                    "heap-20261326T013300.123Z-t.heapsnapshot",
                                    "heap-20261126T013300.123Z",
                                    "heap-20261126T013300.12xZ-t",
                                    "Heap.20240131.235959.4242.0",
                                    "Heap.2024013.235959.1.0.1.heapsnapshot",
                                    "Heap.20240131.245959.1.0.1.heapsnapshot",
                                    "-20261126T013300.123Z-t",
                                    "",
                                    "Heap."};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
    assert_int_equal(pl__leaks_parse_name_time(bad[i], strlen(bad[i]), &t), -EINVAL);
  /* len bounds the read: a cut name is not read past */
  p = "heap-20261126T013300.123Z-task";
  assert_int_equal(pl__leaks_parse_name_time(p, 25, &t), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(six),       cmocka_unit_test(three),      cmocka_unit_test(grows_in_place),
      cmocka_unit_test(bad_input), cmocka_unit_test(name_times),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
