/* Helpers shared by the profile unit tests (writers, readers, analysis):
 * bytes out of a memory sink, a model read back from memory (or broken
 * bytes read), the aggregation and texts compared, a sink that fails, and
 * allocation-failure torture. Each test program
 * includes it once (it defines malloc and free). */
#ifndef PL_TEST_PROFILE_TEST_H
#define PL_TEST_PROFILE_TEST_H

#include "test.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/top.h"
#include "common/sink.h"
#include "format/cpu_writers.h"
#include "format/heap_writers.h"
#include "format/readers.h"

/* Finishes a memory sink and takes its bytes (free()): NUL-terminated and
 * non-NULL even when empty; their length in *len unless len is NULL. */
static inline char *sink_take(pl__sink *s, size_t *len) {
  assert_int_equal(pl__sink_finish(s), 0);
  if (s->buf.len == 0) pl_buf_putc(&s->buf, '\0'), s->buf.len = 0;
  char *data = pl_buf_steal(&s->buf, len);
  assert_non_null(data);
  return data;
}

/* Reads a profile from memory; its kind must be want. */
static inline pl__profile read_profile_as(const char *data, size_t len, pl__profile_kind want) {
  pl__profile pf;
  pl__read_err err;
  int rc = pl__read_profile_mem(data, len, &pf, &err);
  if (rc) fail_msg("read: %d %s", rc, err.msg);
  assert_int_equal(pf.kind, want);
  return pf;
}

/* The CPU profile read from memory (kind want; no heap model with it). */
static inline pl_cpu_profile *read_cpu_mem(const char *data, size_t len, pl__profile_kind want) {
  pl__profile pf = read_profile_as(data, len, want);
  assert_non_null(pf.cpu);
  assert_null(pf.heap);
  return pf.cpu;
}

/* The heap snapshot read from memory (kind want; no CPU model with it). */
static inline pl_heap_snapshot *read_heap_mem(const char *data, size_t len, pl__profile_kind want) {
  pl__profile pf = read_profile_as(data, len, want);
  assert_non_null(pf.heap);
  assert_null(pf.cpu);
  return pf.heap;
}

/* Every CPU writer accepts the model (a reader built it). */
static inline void cpu_writers_accept(const pl_cpu_profile *p) {
  int (*ws[])(const pl_cpu_profile *, pl__sink *) = {pl__cpuprofile_write, pl__pprof_cpu_write,
                                                     pl__folded_write};
  for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
    pl__sink s;
    pl__sink_init_mem(&s);
    int rc = ws[i](p, &s);
    if (rc) fail_msg("CPU writer %zu refused a model a reader built: %d", i, rc);
    pl__sink_free(&s);
  }
}

/* Every heap writer accepts the model (a reader built it). */
static inline void heap_writers_accept(const pl_heap_snapshot *h) {
  int (*ws[])(const pl_heap_snapshot *, pl__sink *) = {pl__heapsnapshot_write,
                                                       pl__heapprofile_write, pl__pprof_heap_write};
  for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
    pl__sink s;
    pl__sink_init_mem(&s);
    int rc = ws[i](h, &s);
    if (rc) fail_msg("heap writer %zu refused a model a reader built: %d", i, rc);
    pl__sink_free(&s);
  }
}

/* Reads bytes that may be broken: a model that every writer of its kind
 * accepts and the aggregation by function takes (READ_CPU or READ_HEAP,
 * which model), or an error with a message (0); never a crash. */
enum { READ_CPU = 1, READ_HEAP = 2 };
static inline int read_any(const char *data, size_t len) {
  pl__profile pf;
  pl__read_err err;
  if (pl__read_profile_mem(data, len, &pf, &err) != 0) {
    assert_true(err.msg[0] != '\0');
    return 0;
  }
  pl__top t;
  int got = pf.cpu ? READ_CPU : READ_HEAP;
  if (pf.cpu) {
    cpu_writers_accept(pf.cpu);
    assert_int_equal(pl__top_cpu(pf.cpu, &t), 0);
    pl__top_free(&t);
  }
  if (pf.heap) {
    heap_writers_accept(pf.heap);
    assert_int_equal(pl__top_heap(pf.heap, &t), 0);
    pl__top_free(&t);
  }
  pl__profile_free(&pf);
  return got;
}

/* An aggregation by function as text, then freed: head, then its rows by
 * self (function|file|line|self|total). */
static inline char *top_as_text(pl__top *t, const char *head) {
  pl__top_sort(t, 0);
  pl_buf b;
  pl_buf_init(&b);
  pl_buf_puts(&b, head);
  for (size_t i = 0; i < t->nrows; i++)
    pl_buf_printf(&b, "%s|%s|%u|%llu|%llu\n", t->rows[i].function, t->rows[i].file, t->rows[i].line,
                  (unsigned long long)t->rows[i].self, (unsigned long long)t->rows[i].total);
  pl__top_free(t);
  assert_false(pl_buf_failed(&b));
  return pl_buf_steal(&b, NULL);
}

/* Two texts made from the written and the read-back model must be equal;
 * frees both. */
static inline void assert_same_text(char *a, char *b, const char *what) {
  if (strcmp(a, b) != 0) fail_msg("%s differ:\n--- written\n%s--- read back\n%s", what, a, b);
  free(a);
  free(b);
}

/* A sink backend whose disk is full. */
static inline int full_disk(void *ctx, const void *data, size_t n) {
  (void)ctx, (void)data, (void)n;
  return -ENOSPC;
}

/* ---- allocation failures ------------------------------------------------
 * Every allocation of the code under test fails in turn (curl's "torture"):
 * each run must end in -ENOMEM, or 0 once no allocation is left to fail,
 * and free all it allocated. glibc's malloc is wrapped here; not under
 * AddressSanitizer, which owns malloc (that build checks leaks itself). */
#if defined(__SANITIZE_ADDRESS__)
#define TORTURE 0
#else
#define TORTURE 1
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

enum { MAX_LIVE = 1 << 14 };
static int armed;
static long fail_countdown = -1;     /* -1: never fail */
static void *torture_live[MAX_LIVE]; /* allocations made while armed, not freed */
static size_t nlive;

static int alloc_fails(void) { return armed && fail_countdown >= 0 && fail_countdown-- == 0; }

static void track(void *p) {
  if (armed && p && nlive < MAX_LIVE) torture_live[nlive++] = p;
}

static void untrack(void *p) {
  for (size_t i = 0; armed && p && i < nlive; i++) {
    if (torture_live[i] == p) {
      torture_live[i] = torture_live[--nlive];
      return;
    }
  }
}

void *malloc(size_t n) {
  if (alloc_fails()) return NULL;
  void *p = __libc_malloc(n);
  track(p);
  return p;
}

void *calloc(size_t n, size_t size) {
  if (alloc_fails()) return NULL;
  void *p = __libc_calloc(n, size);
  track(p);
  return p;
}

void *realloc(void *old, size_t n) {
  if (alloc_fails()) return NULL;
  void *p = __libc_realloc(old, n);
  if (p) {
    untrack(old);
    track(p);
  }
  return p;
}

void *reallocarray(void *old, size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc(old, n * size);
}

void free(void *p) {
  untrack(p);
  __libc_free(p);
}
#endif

enum { TORTURE_MAX_ALLOCS = 200000 };

/* Runs run(arg) (0 or a negative errno; it frees what it allocated) with
 * allocation n failing for n = 0, 1, ... until a run makes no n-th
 * allocation: every run must free all it allocated and end in -ENOMEM, the
 * last one in 0. check (may be NULL) sees each run's result, with malloc
 * back to normal. name names the code in messages. Returns how many
 * allocations a whole run makes. Under AddressSanitizer: one plain run,
 * which must succeed, and 0. */
static inline long torture_allocs(const char *name, int (*run)(void *arg), void *arg,
                                  void (*check)(void *arg, int rc)) {
#if TORTURE
  long n;
  for (n = 0; n < TORTURE_MAX_ALLOCS; n++) {
    nlive = 0;
    fail_countdown = n;
    armed = 1;
    int rc = run(arg);
    armed = 0;
    int exhausted = fail_countdown >= 0; /* the n-th allocation never came */
    fail_countdown = -1;
    if (nlive) fail_msg("%s: failing allocation %ld leaked %zu blocks", name, n, nlive);
    if (check) check(arg, rc);
    if (exhausted) {
      assert_int_equal(rc, 0);
      break;
    }
    if (rc != -ENOMEM) fail_msg("%s: failing allocation %ld gave %d", name, n, rc);
  }
  if (n == TORTURE_MAX_ALLOCS) fail_msg("%s: more than %ld allocations", name, n);
  fprintf(stderr, "%s: %ld allocations, each failure handled\n", name, n);
  return n;
#else
  int rc = run(arg);
  if (check) check(arg, rc);
  assert_int_equal(rc, 0);
  return 0;
#endif
}

#endif
