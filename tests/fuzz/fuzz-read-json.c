/* libFuzzer target: the streaming JSON tokenizer (src/format/json_reader.c)
 * on any bytes, read with short reads of a size the input chooses: it must
 * end at PL__JT_END or in an error with a message, keep its nesting
 * balanced, and stay in bounds; skipping a container must land where
 * reading it token by token does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/json_reader.h"

static int walk(const uint8_t *data, size_t size, size_t max_read, int skip) {
  pl__read_err err = {{0}};
  pl__rsrc src;
  pl__jreader r;
  pl__rsrc_init_mem(&src, data, size, &err);
  src.max_read = max_read;
  if (pl__jr_init(&r, &src, &err)) abort();
  r.max_depth = 512;
  r.max_string = 4096;
  int t, tokens = 0;
  while ((t = pl__jr_next(&r)) > 0) {
    tokens++;
    if ((t == PL__JT_KEY || t == PL__JT_STR) && r.str.data[r.str.len] != '\0') abort();
    if (skip && (t == PL__JT_OBJ || t == PL__JT_ARR) && tokens % 3 == 0) {
      size_t depth = r.depth;
      if (pl__jr_skip(&r) < 0) break;
      if (r.depth != depth - 1) abort();
    }
  }
  if (t == PL__JT_END && r.depth != 0) abort();
  if (t < 0 && !err.msg[0]) abort();
  pl__jr_free(&r);
  pl__rsrc_free(&src);
  return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t max_read = size ? 1 + data[size - 1] % 16 : 1;
  int a = walk(data, size, 0, 0);
  int b = walk(data, size, max_read, 0); /* short reads change nothing */
  if ((a < 0) != (b < 0)) abort();
  walk(data, size, 0, 1);
  return 0;
}
