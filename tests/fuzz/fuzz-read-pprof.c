/* libFuzzer target: the pprof reader (src/format/read_pprof.c) on any bytes
 * taken as the uncompressed protobuf: an error with a message, or a CPU
 * profile or heap snapshot every writer accepts (fuzz-read-check.h). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz-read-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pl__read_err err = {{0}};
  pl__rsrc src;
  pl__profile_kind kind;
  pl_cpu_profile *p = NULL;
  pl_heap_snapshot *s = NULL;
  pl__rsrc_init_mem(&src, data, size, &err);
  int rc = pl__pprof_read(&src, &kind, &p, &s, &err);
  pl__rsrc_free(&src);
  if (rc) {
    fuzz_check_error(rc, &err);
    if (p || s) abort();
    return 0;
  }
  if (kind == PL__KIND_PPROF_CPU) {
    if (!p || s) abort();
    fuzz_check_cpu(p);
  } else {
    if (kind != PL__KIND_PPROF_HEAP || !s || p) abort();
    fuzz_check_heap(s);
  }
  pl_cpu_profile_free(p);
  pl_heap_snapshot_free(s);
  return 0;
}
