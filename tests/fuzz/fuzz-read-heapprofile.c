/* libFuzzer target: the .heapprofile reader (src/format/read_heapprofile.c)
 * on any bytes: an error with a message, or a heap snapshot every writer
 * accepts (fuzz-read-check.h). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz-read-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pl__read_err err = {{0}};
  pl__rsrc src;
  pl_heap_snapshot *s = NULL;
  pl__rsrc_init_mem(&src, data, size, &err);
  int rc = pl__heapprofile_read(&src, &s, &err);
  pl__rsrc_free(&src);
  if (rc) {
    fuzz_check_error(rc, &err);
    if (s) abort();
    return 0;
  }
  fuzz_check_heap(s);
  pl_heap_snapshot_free(s);
  return 0;
}
