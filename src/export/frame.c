/* Export framing: checksums, base64/hex, frame scanning and parsing. */
#include "export/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

/* ---- checksums ---------------------------------------------------------- */

uint32_t pl__export_crc32(const void *buf, size_t len) {
  uLong c = crc32(0L, Z_NULL, 0);
  const unsigned char *p = buf;
  while (len > 0) { /* zlib takes uInt lengths */
    uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
    c = crc32(c, p, n);
    p += n;
    len -= n;
  }
  return (uint32_t)c;
}

static uint32_t cksum_table[256];
static int cksum_ready;

static void cksum_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i << 24;
    for (int k = 0; k < 8; k++) c = (c & 0x80000000u) ? (c << 1) ^ 0x04C11DB7u : (c << 1);
    cksum_table[i] = c;
  }
  cksum_ready = 1;
}

static uint32_t cksum_byte(uint32_t c, unsigned char b) {
  return (c << 8) ^ cksum_table[((c >> 24) ^ b) & 0xff];
}

uint32_t pl__export_cksum_update(uint32_t crc, const void *buf, size_t len) {
  if (!cksum_ready) cksum_init();
  const unsigned char *p = buf;
  for (size_t i = 0; i < len; i++) crc = cksum_byte(crc, p[i]);
  return crc;
}

uint32_t pl__export_cksum_final(uint32_t crc, uint64_t total) {
  for (; total; total >>= 8) crc = cksum_byte(crc, (unsigned char)(total & 0xff));
  return ~crc;
}

uint32_t pl__export_cksum(const void *buf, size_t len) {
  return pl__export_cksum_final(pl__export_cksum_update(0, buf, len), len);
}

/* ---- base64 and hex ----------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

long pl__export_b64_encode(const void *in, size_t len, char *out, size_t outsz) {
  const unsigned char *p = in;
  size_t need = (len + 2) / 3 * 4 + 1;
  if (outsz < need) return -1;
  size_t o = 0, i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    out[o++] = b64[v >> 18];
    out[o++] = b64[(v >> 12) & 63];
    out[o++] = b64[(v >> 6) & 63];
    out[o++] = b64[v & 63];
  }
  if (i < len) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
    out[o++] = b64[v >> 18];
    out[o++] = b64[(v >> 12) & 63];
    out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  out[o] = '\0';
  return (long)o;
}

static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

long pl__export_b64_decode(const char *in, size_t len, unsigned char *out, size_t outsz) {
  uint32_t acc = 0;
  int bits = 0, pad = 0;
  size_t o = 0, digits = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (is_space(c)) continue;
    if (c == '=') {
      pad++;
      continue;
    }
    int v = b64_value(c);
    if (v < 0 || pad) return -1; /* data after padding */
    digits++;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o >= outsz) return -1;
      out[o++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if ((digits + (size_t)pad) % 4 != 0 || pad > 2) return -1;
  if (digits % 4 == 1) return -1;
  if (acc != 0) return -1; /* non-canonical trailing bits */
  return (long)o;
}

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

long pl__export_hex_decode(const char *in, size_t len, unsigned char *out, size_t outsz) {
  size_t o = 0;
  int hi = -1;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (is_space(c)) continue;
    int v = hex_value(c);
    if (v < 0) return -1;
    if (hi < 0) {
      hi = v;
      continue;
    }
    if (o >= outsz) return -1;
    out[o++] = (unsigned char)(hi << 4 | v);
    hi = -1;
  }
  return hi < 0 ? (long)o : -1;
}

/* ---- frame body parsing --------------------------------------------------- */

typedef struct field {
  const char *p;
  size_t n;
} field;

/* Splits body on '|' into at most max fields; returns the count or -1. */
static int split_fields(const char *body, size_t len, field *out, int max) {
  int n = 0;
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || body[i] == '|') {
      if (n == max) return -1;
      out[n].p = body + start;
      out[n].n = i - start;
      n++;
      start = i + 1;
    }
  }
  return n;
}

static int parse_u64(field f, int base, uint64_t *v) {
  if (f.n == 0 || f.n > 20) return -1;
  uint64_t x = 0;
  for (size_t i = 0; i < f.n; i++) {
    int d = base == 16 ? hex_value((unsigned char)f.p[i])
                       : (f.p[i] >= '0' && f.p[i] <= '9' ? f.p[i] - '0' : -1);
    if (d < 0) return -1;
    if (x > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return -1;
    x = x * (uint64_t)base + (uint64_t)d;
  }
  *v = x;
  return 0;
}

/* Parses a check field: `c<8 hex>` (zlib CRC-32) or `k<decimal>` (cksum). */
static int parse_check(field fc, char *kind, uint32_t *check) {
  uint64_t v;
  if (fc.n < 2) return -1;
  *kind = fc.p[0];
  if (*kind == 'c') {
    if (fc.n != 9 || parse_u64((field){fc.p + 1, 8}, 16, &v) != 0) return -1;
  } else if (*kind == 'k') {
    if (parse_u64((field){fc.p + 1, fc.n - 1}, 10, &v) != 0 || v > UINT32_MAX) return -1;
  } else {
    return -1;
  }
  *check = (uint32_t)v;
  return 0;
}

int pl__export_frame_parse(const char *body, size_t len, pl__export_frame *f) {
  field fl[8];
  memset(f, 0, sizeof(*f));
  int n = split_fields(body, len, fl, 8);
  if (n < 1 || fl[0].n != 1) return -EINVAL;
  f->kind = fl[0].p[0];
  uint64_t v;
  switch (f->kind) {
    case PL__FRAME_INFO:
      if (n != 6 || parse_u64(fl[1], 10, &f->size) != 0) return -EINVAL;
      if (fl[2].n < 3 || fl[2].p[1] != ':') return -EINVAL;
      f->sum_kind = fl[2].p[0];
      f->sum = fl[2].p + 2;
      f->sum_len = fl[2].n - 2;
      if (f->sum_kind == 's') {
        if (f->sum_len != 64) return -EINVAL;
        for (size_t i = 0; i < 64; i++)
          if (hex_value((unsigned char)f->sum[i]) < 0) return -EINVAL;
      } else if (f->sum_kind == 'k') {
        if (parse_u64((field){f->sum, f->sum_len}, 10, &v) != 0 || v > UINT32_MAX) return -EINVAL;
      } else {
        return -EINVAL;
      }
      if (fl[3].n == 0 || fl[4].n == 0) return -EINVAL;
      f->ident = fl[3].p;
      f->ident_len = fl[3].n;
      f->encs = fl[4].p;
      f->encs_len = fl[4].n;
      /* the info frame's own check covers "SIZE|SUM|IDENT|ENCODINGS" */
      if (parse_check(fl[5], &f->check_kind, &f->check) != 0) return -EINVAL;
      {
        size_t tn = (size_t)(fl[4].p + fl[4].n - fl[1].p);
        uint32_t c =
            f->check_kind == 'c' ? pl__export_crc32(fl[1].p, tn) : pl__export_cksum(fl[1].p, tn);
        if (c != f->check) return -EBADMSG;
      }
      return 0;
    case PL__FRAME_DATA:
      if (n != 6) return -EINVAL;
      if (parse_u64(fl[1], 10, &f->offset) != 0 || parse_u64(fl[2], 10, &f->length) != 0)
        return -EINVAL;
      if (f->length > PL__EXPORT_CHUNK_MAX || f->offset > UINT64_MAX - f->length) return -EINVAL;
      if (parse_check(fl[3], &f->check_kind, &f->check) != 0) return -EINVAL;
      if (fl[4].n != 1) return -EINVAL;
      f->enc = fl[4].p[0];
      f->payload = fl[5].p;
      f->payload_len = fl[5].n;
      return 0;
    case PL__FRAME_ERROR:
      if (n != 2 || fl[1].n == 0) return -EINVAL;
      f->code = fl[1].p;
      f->code_len = fl[1].n;
      return 0;
    case PL__FRAME_PAD:
      if (n != 3 || parse_u64(fl[1], 10, &f->seq) != 0 || fl[2].n > PL__EXPORT_PAD_MAX)
        return -EINVAL;
      for (size_t i = 0; i < fl[2].n; i++)
        if (fl[2].p[i] != '.') return -EINVAL;
      f->fill_len = fl[2].n;
      return 0;
    default:
      return -EINVAL;
  }
}

int pl__export_decompress(char enc, const void *in, size_t inlen, void *out, size_t want) {
  if (enc == 'z') {
    unsigned long long sz = ZSTD_getFrameContentSize(in, inlen);
    if (sz != want) return -EINVAL;
    size_t r = ZSTD_decompress(out, want, in, inlen);
    if (ZSTD_isError(r) || r != want) return -EINVAL;
    return 0;
  }
  if (enc == 'g') {
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 16) != Z_OK) return -EINVAL;
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)inlen;
    z.next_out = out;
    z.avail_out = (uInt)want;
    int r = inflate(&z, Z_FINISH);
    size_t got = want - z.avail_out;
    inflateEnd(&z);
    if (r != Z_STREAM_END || got != want || z.avail_in != 0) return -EINVAL;
    return 0;
  }
  return -ENOTSUP;
}

int pl__export_frame_data(const pl__export_frame *f, unsigned char *out, size_t outsz,
                          unsigned char *scratch, size_t scratchsz) {
  if (f->kind != PL__FRAME_DATA || f->length > outsz) return -EINVAL;
  long n;
  switch (f->enc) {
    case 'b':
      n = pl__export_b64_decode(f->payload, f->payload_len, out, outsz);
      if (n < 0 || (uint64_t)n != f->length) return -EINVAL;
      break;
    case 'x':
      n = pl__export_hex_decode(f->payload, f->payload_len, out, outsz);
      if (n < 0 || (uint64_t)n != f->length) return -EINVAL;
      break;
    case 'z':
    case 'g':
      n = pl__export_b64_decode(f->payload, f->payload_len, scratch, scratchsz);
      if (n < 0) return -EINVAL;
      if (pl__export_decompress(f->enc, scratch, (size_t)n, out, (size_t)f->length) != 0)
        return -EINVAL;
      break;
    default:
      return -ENOTSUP;
  }
  uint32_t c = f->check_kind == 'c' ? pl__export_crc32(out, (size_t)f->length)
                                    : pl__export_cksum(out, (size_t)f->length);
  return c == f->check ? 0 : -EBADMSG;
}

size_t pl__export_pad_body_len(uint64_t seq, size_t pad) {
  size_t digits = 1;
  for (uint64_t v = seq; v >= 10; v /= 10) digits++;
  return 2 + digits + 1 + pad; /* "n|" SEQ "|" FILL */
}

/* ---- streaming scanner ---------------------------------------------------- */

int pl__export_scanner_init(pl__export_scanner *s, const char *marker) {
  memset(s, 0, sizeof(*s));
  if (strlen(marker) != PL__EXPORT_MARKER_LEN) return -EINVAL;
  for (size_t i = 0; i < PL__EXPORT_MARKER_LEN; i++)
    if (hex_value((unsigned char)marker[i]) < 0) return -EINVAL;
  s->token[0] = '{';
  memcpy(s->token + 1, marker, PL__EXPORT_MARKER_LEN);
  s->token[PL__EXPORT_MARKER_LEN + 1] = '|';
  s->token_len = PL__EXPORT_MARKER_LEN + 2;
  return 0;
}

void pl__export_scanner_free(pl__export_scanner *s) {
  free(s->body);
  s->body = NULL;
  s->body_len = s->body_cap = 0;
}

static int frame_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/' || c == '=' || c == '|' || c == ':' || c == '.' || c == '_' || c == '-';
}

int pl__export_scan(pl__export_scanner *s, const char *buf, size_t len, pl__export_frame_cb cb,
                    void *ctx) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)buf[i];
    if (s->damage_open) {
      if (c == '\r' || c == '\n') {
        if (s->damage_len > 0) s->damage_open = 0; /* the damaging line ended */
      } else if (c < 0x20 || c >= 0x7f || s->damage_len + 1 >= sizeof(s->damage)) {
        s->damage_open = 0;
      } else {
        s->damage[s->damage_len++] = (char)c;
        s->damage[s->damage_len] = '\0';
      }
    }
    if (c == '\r' || c == '\n') {
      s->line_start = s->body_len;
      continue;
    }
    if (!s->in_frame) {
      /* The token starts with '{', which it contains nowhere else, so a
       * mismatch restarts the match at this byte. */
      if (c == (unsigned char)s->token[s->matched]) {
        if (++s->matched == s->token_len) {
          s->in_frame = 1;
          s->matched = 0;
          s->body_len = 0;
          s->line_start = 0;
        }
      } else {
        s->matched = c == '{' ? 1 : 0;
      }
      continue;
    }
    if (c == '}') {
      s->in_frame = 0;
      int r = cb(ctx, s->body ? s->body : "", s->body_len, 0);
      if (r) return r;
      continue;
    }
    if (!frame_char(c) || s->body_len >= PL__EXPORT_FRAME_MAX) {
      s->in_frame = 0;
      s->matched = c == '{' ? 1 : 0;
      s->damage_len = 0;
      s->damage[0] = '\0';
      s->damage_open = 0;
      s->damage_byte = c;
      if (c >= 0x20 && c < 0x7f) {
        /* the injected text, for messages: from the start of its line (when
         * that is near: text injected after a line break) to its end */
        size_t from = s->body_len - s->line_start <= 32 ? s->line_start : s->body_len;
        for (size_t k = from; k < s->body_len; k++) s->damage[s->damage_len++] = s->body[k];
        s->damage[s->damage_len++] = (char)c;
        s->damage[s->damage_len] = '\0';
        s->damage_open = 1;
      }
      int r = cb(ctx, "", 0, 1);
      if (r) return r;
      continue;
    }
    if (s->body_len == s->body_cap) {
      size_t cap = s->body_cap ? s->body_cap * 2 : 4096;
      char *nb = realloc(s->body, cap);
      if (!nb) return -ENOMEM;
      s->body = nb;
      s->body_cap = cap;
    }
    s->body[s->body_len++] = (char)c;
  }
  return 0;
}
