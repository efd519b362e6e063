/* libFuzzer target: the folded-stacks reader (src/format/read_folded.c) on
 * any bytes, with short reads the input chooses: an error with a message,
 * or a CPU profile every writer accepts, the same with and without short
 * reads. */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz-read-check.h"

static int read_it(const uint8_t *data, size_t size, size_t max_read, pl_cpu_profile **p) {
  pl__read_err err = {{0}};
  pl__rsrc src;
  pl__rsrc_init_mem(&src, data, size, &err);
  src.max_read = max_read;
  int rc = pl__folded_read(&src, p, &err);
  pl__rsrc_free(&src);
  if (rc) fuzz_check_error(rc, &err);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pl_cpu_profile *p = NULL, *q = NULL;
  int a = read_it(data, size, 0, &p);
  int b = read_it(data, size, size ? 1 + data[0] % 7 : 1, &q);
  if ((a == 0) != (b == 0)) abort();
  if (!a) {
    if (p->nsamples != q->nsamples || p->nstacks != q->nstacks) abort();
    fuzz_check_cpu(p);
  }
  pl_cpu_profile_free(p);
  pl_cpu_profile_free(q);
  return 0;
}
