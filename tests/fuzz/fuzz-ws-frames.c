/* libFuzzer target: the inspector's WebSocket layer (src/inspector/
 * websocket.c over the system's wslay), driven from memory as the
 * transport drives it: client bytes in (in pieces), text messages echoed
 * or answered with a close, frames out through a write callback that takes
 * all, part or nothing. The first byte picks the mode; in "builder" mode
 * the rest describes frames that the harness encodes and masks, so the
 * fuzzer reaches fragmentation, control frames, close codes and the size
 * bound instead of stopping at the mask check. Whatever the input, the
 * output must parse as a sequence of well-formed unmasked server frames. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "inspector/websocket.h"

#define MAX_MSG (64u << 10) /* small, so the fuzzer reaches close 1009 */

typedef struct harness {
  pl__ws *ws;
  unsigned char mode;
  unsigned take;      /* bytes the write callback takes per call (0: all) */
  unsigned calls;     /* write callback calls */
  int starve;         /* take nothing every other call */
  unsigned msgs;      /* text messages received */
  unsigned char *out; /* everything written */
  size_t out_len, out_cap;
} harness;

static ssize_t on_write(void *arg, const uint8_t *data, size_t len) {
  harness *h = arg;
  h->calls++;
  if (h->starve && (h->calls & 1)) return 0;
  size_t n = h->take && h->take < len ? h->take : len;
  if (h->out_len + n > h->out_cap) {
    size_t cap = h->out_cap ? h->out_cap * 2 : 4096;
    while (cap < h->out_len + n) cap *= 2;
    unsigned char *p = realloc(h->out, cap);
    if (!p) return -1;
    h->out = p;
    h->out_cap = cap;
  }
  memcpy(h->out + h->out_len, data, n);
  h->out_len += n;
  return (ssize_t)n;
}

static void on_text(void *arg, const char *msg, size_t len) {
  harness *h = arg;
  h->msgs++;
  if (len > MAX_MSG) abort(); /* the bound holds */
  if ((h->mode & 0x10) && h->msgs == 3) {
    pl__ws_close(h->ws, 4000, "third message");
    if (pl__ws_send_text(h->ws, "late", 4) != -EPIPE) abort(); /* closing: nothing more */
    return;
  }
  if (h->mode & 0x08) pl__ws_send_text(h->ws, msg, len);
  if (pl__ws_feed(h->ws, "x", 1) == 0) abort(); /* not reentrant */
}

/* The server's output: unmasked frames, minimal lengths, control frames
 * short and final, nothing after a close frame, no partial frame once
 * everything was drained. */
static void check_output(const harness *h, int drained) {
  size_t i = 0;
  int closed = 0;
  while (i < h->out_len) {
    if (closed) abort();
    if (h->out_len - i < 2) {
      if (drained) abort();
      return;
    }
    unsigned char b0 = h->out[i], b1 = h->out[i + 1];
    unsigned op = b0 & 0x0f;
    if (b1 & 0x80) abort();        /* a server never masks */
    if ((b0 & 0x70) != 0) abort(); /* no extension negotiated */
    uint64_t len = b1 & 0x7f;
    size_t hl = 2;
    if (len == 126 || len == 127) {
      size_t ext = len == 126 ? 2 : 8;
      if (h->out_len - i < 2 + ext) {
        if (drained) abort();
        return;
      }
      len = 0;
      for (size_t k = 0; k < ext; k++) len = len << 8 | h->out[i + 2 + k];
      if ((ext == 2 && len < 126) || (ext == 8 && len < 65536)) abort();
      hl += ext;
    }
    if (op >= 8) {
      if (len > 125 || !(b0 & 0x80)) abort();
      if (op != 8 && op != 9 && op != 10) abort();
      if (op == 8) closed = 1;
    } else if (op != 1) {
      abort(); /* the server sends text only */
    }
    if (h->out_len - i - hl < len) {
      if (drained) abort();
      return;
    }
    i += hl + (size_t)len;
  }
}

/* Builder mode: each frame is [b0][b1][payload...]: b0 is the first
 * header byte as sent (FIN, RSV, opcode); b1's low 7 bits a payload length
 * (taken from the input, shorter at its end), bit 7 set with length 127
 * announces a huge payload; frames are masked unless b0 and b1 are equal. */
static size_t build(const uint8_t *in, size_t n, unsigned char *out, size_t cap) {
  size_t i = 0, o = 0;
  static const unsigned char key[4] = {0xa1, 0x5b, 0x07, 0xe3};
  while (i + 2 <= n && o + 14 + 127 <= cap) {
    unsigned char b0 = in[i], b1 = in[i + 1];
    i += 2;
    int masked = b0 != b1;
    size_t len = b1 & 0x7f;
    if (len > n - i) len = n - i;
    out[o++] = b0;
    if ((b1 & 0x80) && (b1 & 0x7f) == 127) {
      out[o++] = (unsigned char)((masked ? 0x80 : 0) | 127);
      static const unsigned char huge[8] = {0, 0, 0, 1, 0, 0, 0, 0};
      memcpy(out + o, huge, 8);
      o += 8;
    } else if ((b1 & 0x80) && len >= 2) {
      out[o++] = (unsigned char)((masked ? 0x80 : 0) | 126); /* non-minimal 16-bit length */
      out[o++] = 0;
      out[o++] = (unsigned char)len;
    } else {
      out[o++] = (unsigned char)((masked ? 0x80 : 0) | len);
    }
    if (masked) {
      memcpy(out + o, key, 4);
      o += 4;
    }
    for (size_t k = 0; k < len; k++) out[o++] = in[i + k] ^ (masked ? key[k % 4] : 0);
    i += len;
  }
  return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  harness h = {.mode = data[0], .take = data[1] & 0x3f, .starve = data[1] >> 7};
  static const pl__ws_io io = {.write = on_write, .text = on_text};
  if (pl__ws_new(&h.ws, &io, &h, MAX_MSG) != 0) return 0;
  const uint8_t *in = data + 2;
  size_t n = size - 2;
  unsigned char *built = NULL;
  if (h.mode & 1) {
    size_t cap = n * 8 + 256;
    built = malloc(cap);
    if (!built) goto done;
    n = build(in, n, built, cap);
    in = built;
  }
  if (h.mode & 0x20) pl__ws_send_text(h.ws, "{\"method\":\"hello\"}", 18);
  /* feed in pieces, flushing between them as the transport does */
  size_t piece = (size_t)(h.mode >> 6) * 7 + 1;
  for (size_t off = 0; off < n;) {
    size_t k = n - off < piece ? n - off : piece;
    if (pl__ws_feed(h.ws, in + off, k) != 0) break;
    off += k;
    pl__ws_flush(h.ws);
    pl__ws_queued(h.ws);
    pl__ws_closing(h.ws);
    if (pl__ws_finished(h.ws)) break;
  }
  if (h.mode & 0x04)
    pl__ws_close(h.ws, 1001,
                 "going away: a reason long enough to be cut at 123 bytes, at a character "
                 "boundary: 0123456789012345678901234567890123456789\xc3\xa9\xc3\xa9\xc3\xa9");
  /* drain with a writer that takes everything */
  h.take = 0;
  h.starve = 0;
  for (int i = 0; i < 64 && pl__ws_flush(h.ws) == 0; i++) {
  }
  check_output(&h, 1);
  pl__ws_code_sent(h.ws);
  pl__ws_code_received(h.ws);
done:
  pl__ws_free(h.ws);
  free(built);
  free(h.out);
  return 0;
}
