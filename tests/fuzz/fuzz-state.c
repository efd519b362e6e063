/* libFuzzer target: the resume-state parser (src/export/state.c). Accepted
 * state must format and parse back to the same values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "export/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pl__export_state a, b;
  if (pl__export_state_parse((const char *)data, size, &a) != 0) return 0;
  static char text[PL__EXPORT_STATE_FIELD + 1024];
  long n = pl__export_state_format(&a, text, sizeof(text));
  if (n < 0) return 0; /* a field holds a newline-free value too long to format: refused */
  if (pl__export_state_parse(text, (size_t)n, &b) != 0) abort();
  if (memcmp(&a, &b, sizeof(a)) != 0) abort();
  return 0;
}
