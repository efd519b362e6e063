/* libFuzzer target: channel output -> frame scanner -> frame parser ->
 * payload decoding and checks (src/export/frame.c). Whatever the bytes, the
 * parser must stay in bounds, and a data frame it accepts must decode to
 * exactly the length it claims with a matching check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "export/frame.h"

#define MARKER "0123456789abcdef0123456789abcdef"

static unsigned char out[1 << 16], scratch[1 << 16];

static int on_frame(void *ctx, const char *body, size_t len, int bad) {
  (void)ctx;
  if (bad) return 0;
  pl__export_frame f;
  if (pl__export_frame_parse(body, len, &f) != 0) return 0;
  if (f.kind == PL__FRAME_DATA && f.length <= sizeof(out)) {
    if (pl__export_frame_data(&f, out, sizeof(out), scratch, sizeof(scratch)) == 0) {
      uint32_t c = f.check_kind == 'c' ? pl__export_crc32(out, (size_t)f.length)
                                       : pl__export_cksum(out, (size_t)f.length);
      if (c != f.check) abort();
    }
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pl__export_scanner s;
  if (pl__export_scanner_init(&s, MARKER) != 0) abort();
  /* feed in two pieces: frames split across reads must work the same */
  size_t cut = size ? data[0] % (size + 1) : 0;
  pl__export_scan(&s, (const char *)data, cut, on_frame, NULL);
  pl__export_scan(&s, (const char *)data + cut, size - cut, on_frame, NULL);
  pl__export_scanner_free(&s);
  /* the decoders on raw input */
  pl__export_b64_decode((const char *)data, size, out, sizeof(out));
  pl__export_hex_decode((const char *)data, size, out, sizeof(out));
  if (size > 1) pl__export_decompress(data[0] & 1 ? 'z' : 'g', data + 1, size - 1, out, 4096);
  return 0;
}
