/* libFuzzer target: the .cpuprofile reader (src/format/read_cpuprofile.c)
 * on any bytes: an error with a message, or a CPU profile every writer
 * accepts (fuzz-read-check.h). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz-read-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pl__read_err err = {{0}};
  pl__rsrc src;
  pl_cpu_profile *p = NULL;
  pl__rsrc_init_mem(&src, data, size, &err);
  int rc = pl__cpuprofile_read(&src, &p, &err);
  pl__rsrc_free(&src);
  if (rc) {
    fuzz_check_error(rc, &err);
    if (p) abort();
    return 0;
  }
  fuzz_check_cpu(p);
  pl_cpu_profile_free(p);
  return 0;
}
