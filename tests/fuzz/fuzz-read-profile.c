/* libFuzzer target: pl__read_profile_mem (src/format/read_profile.c), the
 * detection by content in front of every reader (gzip, JSON keys, text,
 * protobuf): an error with a message, or a model of the kind it says,
 * which every writer accepts (a .heapsnapshot: a graph that passes
 * pl_heap_graph_check). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz-read-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pl__profile pf;
  pl__read_err err;
  int rc = pl__read_profile_mem(data, size, &pf, &err);
  if (rc) {
    fuzz_check_error(rc, &err);
    if (pf.cpu || pf.heap || pf.graph) abort();
    return 0;
  }
  if (pf.kind == PL__KIND_HEAPSNAPSHOT) {
    if (!pf.graph || pf.cpu || pf.heap || pl_heap_graph_check(pf.graph, NULL, 0) != 0) abort();
  } else if (pl__profile_kind_is_cpu(pf.kind)) {
    if (!pf.cpu || pf.heap) abort();
    fuzz_check_cpu(pf.cpu);
  } else {
    if (!pf.heap || pf.cpu || pf.graph) abort();
    fuzz_check_heap(pf.heap);
  }
  pl__profile_free(&pf);
  return 0;
}
