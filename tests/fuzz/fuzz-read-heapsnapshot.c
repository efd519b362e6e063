/* libFuzzer target: the .heapsnapshot reader (src/format/read_heapsnapshot.c)
 * on any bytes: an error with a message, or a graph whose every index is in
 * range (pl_heap_graph_check), on which the dominators and DevTools'
 * Summary (src/analysis/dominators.c) run and add up. */
#include <stdint.h>
#include <stdlib.h>

#include "analysis/dominators.h"
#include "fuzz-read-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pl__read_err err = {{0}};
  pl__rsrc src;
  pl_heap_graph *g = NULL;
  pl__rsrc_init_mem(&src, data, size, &err);
  int rc = pl__heapsnapshot_read(&src, &g, &err);
  pl__rsrc_free(&src);
  if (rc) {
    fuzz_check_error(rc, &err);
    if (g) abort();
    return 0;
  }
  if (pl_heap_graph_check(g, NULL, 0) != 0) abort();
  pl__heap_summary s;
  if (pl__heap_summary_build(g, &s) != 0) abort();
  uint64_t self = 0;
  for (size_t i = 0; i < s.nrows; i++) {
    if (!s.rows[i].count || !s.rows[i].name) abort();
    self += s.rows[i].self;
  }
  if (self != pl_heap_graph_total_self(g) || s.total != self) abort();
  pl__heap_summary_free(&s);
  pl_heap_graph_free(g);
  return 0;
}
