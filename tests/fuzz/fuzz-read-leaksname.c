/* libFuzzer target: the leak analysis (src/analysis/leaks.c): the times in
 * snapshot file names (proflab's and Node's) on any bytes, and a series of
 * snapshots built from the bytes (ids, classes, sizes, times) classified
 * without a crash, with every verdict one of the six and ranks in order. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/leaks.h"

static const char *const keys[4] = {"a", "b", "c", "d"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pl__leaks_name_time nt;
  if (pl__leaks_parse_name_time((const char *)data, size, &nt) == 0) {
    if (nt.month < 1 || nt.month > 12 || nt.day < 1 || nt.day > 31 || nt.hour > 23 || nt.min > 59 ||
        nt.sec > 60 || nt.msec > 999)
      abort();
  }
  /* snapshots: first byte = count (3..6), then per object 3 bytes: id,
   * class and size; a 0xff id byte ends a snapshot */
  if (size < 1) return 0;
  pl__leaks *L = pl__leaks_new();
  if (!L) return 0;
  size_t nsnap = 3 + data[0] % 4, p = 1;
  for (size_t k = 0; k < nsnap; k++) {
    pl__leaks_obj *objs = malloc(64 * sizeof(*objs));
    size_t n = 0;
    while (objs && p + 3 <= size && data[p] != 0xff && n < 64) {
      objs[n++] = (pl__leaks_obj){data[p], data[p + 1] % 5u, data[p + 2] * 4096u};
      p += 3;
    }
    if (p < size && data[p] == 0xff) p++;
    if (!objs) break;
    if (pl__leaks_add(L, (double)k * (1 + (size & 3)), keys, NULL, 4, objs, n) != 0) break;
  }
  pl__leaks_result r;
  if (pl__leaks_count(L) >= 3) {
    if (pl__leaks_analyze(L, NULL, &r) != 0) abort();
    for (size_t i = 0; i < r.nsites; i++) {
      if (r.sites[i].verdict > PL__LEAK_STABLE || !r.sites[i].reason) abort();
      if (i && r.sites[i].verdict <= PL__LEAK_POSSIBLE &&
          r.sites[i - 1].verdict > PL__LEAK_POSSIBLE)
        abort();
    }
    pl__leaks_result_free(&r);
  } else if (pl__leaks_analyze(L, NULL, &r) == 0) {
    abort();
  }
  pl__leaks_free(L);
  return 0;
}
