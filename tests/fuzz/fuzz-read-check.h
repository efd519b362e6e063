/* Shared by the reader fuzz targets (fuzz-read-*.c): what must hold for any
 * model a reader builds, whatever the bytes: every writer accepts it
 * (cpu_writers.h / heap_writers.h: -EINVAL would mean the reader broke the
 * model's contract) and the aggregation of `proflab top` runs on it. A
 * violation aborts, which libFuzzer reports with the input. */
#ifndef PL_FUZZ_READ_CHECK_H
#define PL_FUZZ_READ_CHECK_H

#include <errno.h>
#include <stdlib.h>

#include "analysis/top.h"
#include "common/sink.h"
#include "format/cpu_writers.h"
#include "format/heap_writers.h"
#include "format/readers.h"

static void fuzz_check_cpu(const pl_cpu_profile *p) {
  int (*const writers[])(const pl_cpu_profile *, pl__sink *) = {
      pl__pprof_cpu_write_raw, pl__folded_write, pl__cpuprofile_write};
  /* the .cpuprofile has one entry per sampling period: a folded count of
   * 4e9 is 4e9 entries, which is right but no use to a fuzzer; past a few
   * thousand, more entries only run the same loop longer (with 100,000,
   * writing them was two thirds of read-folded's time) */
  uint64_t weight = 0;
  for (size_t i = 0; i < p->nsamples; i++) weight += p->samples[i].weight;
  size_t n = weight > 4096 ? 2 : 3;
  for (size_t i = 0; i < n; i++) {
    pl__sink s;
    pl__sink_init_mem(&s);
    int rc = writers[i](p, &s);
    pl__sink_free(&s);
    if (rc && rc != -ENOMEM) abort();
  }
  pl__top t;
  int rc = pl__top_cpu(p, &t);
  if (rc && rc != -ENOMEM) abort();
  if (!rc) {
    pl__top_sort(&t, 1);
    pl__top_free(&t);
  }
}

static void fuzz_check_heap(const pl_heap_snapshot *s) {
  int (*const writers[])(const pl_heap_snapshot *, pl__sink *) = {
      pl__heapsnapshot_write, pl__heapprofile_write, pl__pprof_heap_write_raw};
  for (size_t i = 0; i < sizeof(writers) / sizeof(*writers); i++) {
    pl__sink k;
    pl__sink_init_mem(&k);
    int rc = writers[i](s, &k);
    pl__sink_free(&k);
    /* -EOVERFLOW: a graph too large for DevTools' 32-bit indexes, not a contract breach */
    if (rc && rc != -ENOMEM && rc != -EOVERFLOW) abort();
  }
  pl__top t;
  int rc = pl__top_heap(s, &t);
  if (rc && rc != -ENOMEM) abort();
  if (!rc) pl__top_free(&t);
}

/* A failed read must say why. */
static void fuzz_check_error(int rc, const pl__read_err *err) {
  if (rc >= 0 || !err->msg[0]) abort();
}

#endif
