/* Export framing: the text-safe frames a remote export helper writes and the
 * `proflab export` client reads through an exec channel.
 *
 * A frame is `{MARKER|KIND|field|...}` where MARKER is the run's random
 * 32-hex-digit marker (sent to the helper over stdin, never on the command
 * line). Inside a frame only [A-Za-z0-9+/=|:._-] may appear; CR and LF are
 * ignored everywhere (pty CRLF conversion and terminal wrapping), so a frame
 * survives any re-chunking. Any other byte inside a frame (interleaved
 * stderr, a flipped bit) makes the frame bad, never silently different.
 *
 * Kinds (written by each helper):
 *   i  info:  {M|i|SIZE|SUM|IDENT|ENCODINGS|CHECK}
 *             SUM is `s:<sha256 hex>` or `k:<POSIX cksum CRC>` of the file;
 *             IDENT an opaque identity (inode, mtime) or `-`; CHECK (as in
 *             data frames) covers the text `SIZE|SUM|IDENT|ENCODINGS`.
 *   d  data:  {M|d|OFFSET|LENGTH|CHECK|ENC|PAYLOAD}
 *             CHECK is `c<8 hex>` (zlib CRC-32) or `k<decimal>` (POSIX
 *             cksum) of the LENGTH raw bytes; ENC `b` base64, `x` hex,
 *             `z` zstd+base64, `g` gzip+base64.
 *   x  error: {M|x|CODE}  e.g. ENOENT, EACCES, EISDIR.
 *   n  pad:   {M|n|SEQ|FILL}  the answer to `n SEQ PAD`: FILL is PAD dots.
 *             Sent only when asked, so a client that never asks never sees one.
 *
 * Client to helper (stdin lines): the marker, then requests, answered one
 * frame each, in order:
 *   g OFFSET LENGTH ENC   a data frame
 *   n SEQ PAD             a pad frame of PAD (at most PL__EXPORT_PAD_MAX)
 *                         dots: output that pushes a tail the channel holds
 *                         back, and proof that every answer before it was sent
 *   i                     the info frame again (the first one was damaged)
 * A helper that answers `n` and `i` says so with `N` in ENCODINGS; older
 * helpers ignore both lines (they ignore any line they do not know). The
 * helper exits only when its stdin ends. */
#ifndef PROFLAB_EXPORT_FRAME_H
#define PROFLAB_EXPORT_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define PL__EXPORT_MARKER_LEN 32
#define PL__EXPORT_FRAME_MAX (16u << 20) /* longest frame text accepted */
#define PL__EXPORT_CHUNK_MAX (4u << 20)  /* largest chunk a client requests */
#define PL__EXPORT_GRANULE 4096u         /* offsets and chunk sizes are multiples */
#define PL__EXPORT_PAD_MAX (1u << 20)    /* largest pad a helper writes */

/* --- checksums and encodings ------------------------------------------- */

/* zlib CRC-32 of buf. */
uint32_t pl__export_crc32(const void *buf, size_t len);
/* POSIX `cksum` CRC of buf (length appended, complemented), as cksum prints. */
uint32_t pl__export_cksum(const void *buf, size_t len);
/* Streaming form: crc starts at 0; final() appends the total length. */
uint32_t pl__export_cksum_update(uint32_t crc, const void *buf, size_t len);
uint32_t pl__export_cksum_final(uint32_t crc, uint64_t total);

/* Base64 (RFC 4648, padded). encode writes 4*ceil(len/3) bytes + NUL into
 * out (size outsz); returns the length or -1 if too small. */
long pl__export_b64_encode(const void *in, size_t len, char *out, size_t outsz);
/* Decodes base64 (whitespace ignored) or hex (`hex` != 0) into out; returns
 * the decoded length or -1 on a bad character, bad padding or overflow. */
long pl__export_b64_decode(const char *in, size_t len, unsigned char *out, size_t outsz);
long pl__export_hex_decode(const char *in, size_t len, unsigned char *out, size_t outsz);

/* --- frames ------------------------------------------------------------ */

enum { PL__FRAME_INFO = 'i', PL__FRAME_DATA = 'd', PL__FRAME_ERROR = 'x', PL__FRAME_PAD = 'n' };

/* One parsed frame; pointers point into the frame text given to the parser. */
typedef struct pl__export_frame {
  int kind;
  /* info */
  uint64_t size;
  char sum_kind; /* 's' sha256 or 'k' cksum */
  const char *sum;
  size_t sum_len;
  const char *ident;
  size_t ident_len;
  const char *encs;
  size_t encs_len;
  /* data */
  uint64_t offset;
  uint64_t length;
  char check_kind; /* 'c' crc32 or 'k' cksum */
  uint32_t check;
  char enc;
  const char *payload;
  size_t payload_len;
  /* error */
  const char *code;
  size_t code_len;
  /* pad: seq, and the number of fill dots (any other fill is -EINVAL) */
  uint64_t seq;
  size_t fill_len;
} pl__export_frame;

/* Parses the body of a frame (the text between `{MARKER|` and `}`, CR/LF
 * already removed). Returns 0, -EINVAL, or -EBADMSG (an info frame failing
 * its check); never reads past len. */
int pl__export_frame_parse(const char *body, size_t len, pl__export_frame *f);

/* Decodes and checks a data frame's payload into out (size outsz, at least
 * f->length): decompresses, checks length and CHECK. Returns 0, -EINVAL (bad
 * payload), -EBADMSG (check mismatch) or -ENOTSUP (unknown encoding).
 * scratch must hold at least payload_len bytes. */
int pl__export_frame_data(const pl__export_frame *f, unsigned char *out, size_t outsz,
                          unsigned char *scratch, size_t scratchsz);

/* Body length of the pad frame answering `n SEQ PAD` (what the scanner
 * collects for it), so a client can tell how much of one it is missing. */
size_t pl__export_pad_body_len(uint64_t seq, size_t pad);

/* Streaming scanner: finds `{MARKER|...}` in arbitrary channel output. */
typedef struct pl__export_scanner {
  char token[PL__EXPORT_MARKER_LEN + 3]; /* "{" MARKER "|" */
  size_t token_len;
  size_t matched; /* bytes of token matched so far */
  int in_frame;
  char *body; /* frame body being collected */
  size_t body_len, body_cap;
  /* what damaged the last bad frame: the text from the first byte outside
   * the alphabet to the end of its line (or of the buffer), for messages */
  char damage[80];
  size_t damage_len;
  int damage_open;           /* still collecting damage text */
  unsigned char damage_byte; /* the first byte outside the alphabet */
  size_t line_start;         /* body length at the last CR/LF inside the frame */
} pl__export_scanner;

/* Callback for each complete frame (bad = 1: a byte outside the frame
 * alphabet or an overlong frame; body is then not meaningful, and
 * s->damage starts with the offending byte). Return non-zero to stop
 * scanning (pl__export_scan returns that value). */
typedef int (*pl__export_frame_cb)(void *ctx, const char *body, size_t len, int bad);

/* marker: PL__EXPORT_MARKER_LEN hex digits. Returns 0 or -EINVAL. */
int pl__export_scanner_init(pl__export_scanner *s, const char *marker);
void pl__export_scanner_free(pl__export_scanner *s);
/* Feeds bytes; calls cb per frame. Returns 0, the callback's non-zero value,
 * or -ENOMEM. */
int pl__export_scan(pl__export_scanner *s, const char *buf, size_t len, pl__export_frame_cb cb,
                    void *ctx);

/* Decompresses a zstd (`z`) or gzip (`g`) buffer into exactly want bytes.
 * Returns 0 or -EINVAL. */
int pl__export_decompress(char enc, const void *in, size_t inlen, void *out, size_t want);

#endif
