/* proflabd export-helper: serves a file (or a directory listing) as frames.
 * It never exits on its own after the last frame: the client ends the
 * session by closing stdin once it has verified everything (an exec channel
 * may drop output still in flight when the remote command exits). */
#include "export/helper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "export/frame.h"

typedef struct helper {
  char marker[PL__EXPORT_MARKER_LEN + 1];
  int fd;             /* the file, or -1 when serving mem */
  unsigned char *mem; /* listing */
  size_t mem_len;
  unsigned char *raw, *comp;
  char *text;
  size_t raw_cap, comp_cap, text_cap;
  char info[256]; /* the info frame, for `i` */
  size_t info_len;
  unsigned long long size; /* of the file when opened, or of the listing */
  ZSTD_CCtx *zctx;         /* made at the first `z` chunk, kept for the next ones */
  char in[4096];           /* stdin as read: requests arrive a line or a few at a time */
  size_t in_pos, in_len;
} helper;

static int write_all(const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(STDOUT_FILENO, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int emitf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int emitf(const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof(line)) return -1;
  return write_all(line, (size_t)n);
}

/* Writes the info frame and keeps it for `i`; returns 0 or 1. ENCODINGS:
 * z (zstd), b (base64), N (answers `n` and `i`). */
static int emit_info(helper *h, unsigned long long size, const char *sum, const char *ident) {
  char text[200];
  int n = snprintf(text, sizeof(text), "%llu|s:%s|%s|zbN", size, sum, ident);
  if (n < 0 || (size_t)n >= sizeof(text)) return 1;
  int m = snprintf(h->info, sizeof(h->info), "{%s|i|%s|c%08x}\n", h->marker, text,
                   pl__export_crc32(text, (size_t)n));
  if (m < 0 || (size_t)m >= sizeof(h->info)) return 1;
  h->info_len = (size_t)m;
  return write_all(h->info, h->info_len) != 0;
}

/* Answers `n SEQ PAD`: a pad frame of PAD dots, written in pieces. */
static int serve_pad(const helper *h, unsigned long long seq, unsigned long long pad) {
  static const char dots[] =
      "................................................................"
      "................................................................";
  if (pad > PL__EXPORT_PAD_MAX) pad = PL__EXPORT_PAD_MAX;
  if (emitf("{%s|n|%llu|", h->marker, seq) != 0) return -1;
  char buf[4096];
  for (size_t i = 0; i < sizeof(buf); i += sizeof(dots) - 1)
    memcpy(buf + i, dots, sizeof(dots) - 1);
  while (pad > 0) {
    size_t k = pad < sizeof(buf) ? (size_t)pad : sizeof(buf);
    if (write_all(buf, k) != 0) return -1;
    pad -= k;
  }
  return write_all("}\n", 2);
}

/* Reads one line from stdin (without the newline, CR dropped; a last line
 * without its newline is a line too). Returns the length, or -1 at end of
 * input. A read takes what the channel has (a pipe never waits to fill
 * the buffer), so requests are answered as they come. */
static long read_line(helper *h, char *buf, size_t cap) {
  size_t n = 0;
  int any = 0;
  for (;;) {
    if (h->in_pos == h->in_len) {
      ssize_t r = read(STDIN_FILENO, h->in, sizeof(h->in));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        if (!any) return -1;
        break;
      }
      h->in_pos = 0;
      h->in_len = (size_t)r;
    }
    char c = h->in[h->in_pos++];
    any = 1;
    if (c == '\n') break;
    if (c == '\r') continue;
    if (n + 1 < cap) buf[n++] = c;
  }
  buf[n] = '\0';
  return (long)n;
}

static void drain_stdin(void) {
  char buf[4096];
  for (;;) {
    ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
  }
}

static int sha256_fd(int fd, char hex[65]) {
  unsigned char buf[65536], md[32];
  unsigned mdlen = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) goto fail;
  off_t off = 0;
  for (;;) {
    ssize_t n = pread(fd, buf, sizeof(buf), off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) goto fail;
    if (n == 0) break;
    if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) goto fail;
    off += n;
  }
  if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) goto fail;
  EVP_MD_CTX_free(ctx);
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  return 0;
fail:
  EVP_MD_CTX_free(ctx);
  return -1;
}

static int sha256_mem(const void *p, size_t n, char hex[65]) {
  unsigned char md[32];
  unsigned mdlen = 0;
  if (EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) return -1;
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  return 0;
}

static int grow(void *pp, size_t *cap, size_t want) {
  if (*cap >= want) return 0;
  void *p = realloc(*(void **)pp, want);
  if (!p) return -1;
  *(void **)pp = p;
  *cap = want;
  return 0;
}

/* Answers one `g OFFSET LENGTH ENC` request with a data frame. */
static int serve_chunk(helper *h, unsigned long long off, unsigned long long len, char enc) {
  if (len > PL__EXPORT_CHUNK_MAX) len = PL__EXPORT_CHUNK_MAX;
  unsigned long long avail = off < h->size ? h->size - off : 0;
  if (len > avail) len = avail; /* no buffer for bytes past the end */
  if (grow(&h->raw, &h->raw_cap, len ? len : 1) != 0) return -1;
  size_t got = 0;
  if (h->fd >= 0) {
    while (got < len) {
      ssize_t n = pread(h->fd, h->raw + got, len - got, (off_t)(off + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return -1;
      if (n == 0) break;
      got += (size_t)n;
    }
  } else if (off < h->mem_len) {
    got = h->mem_len - off < len ? h->mem_len - off : len;
    memcpy(h->raw, h->mem + off, got);
  }
  const unsigned char *payload = h->raw;
  size_t plen = got;
  char used = 'b';
  if (enc == 'z' && got > 0) {
    size_t bound = ZSTD_compressBound(got);
    if (grow(&h->comp, &h->comp_cap, bound) != 0) return -1;
    if (!h->zctx && !(h->zctx = ZSTD_createCCtx())) return -1;
    size_t c = ZSTD_compressCCtx(h->zctx, h->comp, bound, h->raw, got, 3);
    if (!ZSTD_isError(c) && c < got) {
      payload = h->comp;
      plen = c;
      used = 'z';
    }
  }
  size_t tlen = (plen + 2) / 3 * 4 + 1;
  if (grow(&h->text, &h->text_cap, tlen) != 0) return -1;
  long t = pl__export_b64_encode(payload, plen, h->text, h->text_cap);
  if (t < 0) return -1;
  if (emitf("{%s|d|%llu|%zu|c%08x|%c|", h->marker, off, got, pl__export_crc32(h->raw, got), used) !=
      0)
    return -1;
  if (write_all(h->text, (size_t)t) != 0) return -1;
  return write_all("}\n", 2);
}

static int serve_requests(helper *h) {
  char line[256];
  while (read_line(h, line, sizeof(line)) >= 0) {
    unsigned long long a, b;
    char enc;
    if (sscanf(line, "g %llu %llu %c", &a, &b, &enc) == 3) {
      if (serve_chunk(h, a, b, enc) != 0) return 1;
    } else if (sscanf(line, "n %llu %llu", &a, &b) == 2) {
      if (serve_pad(h, a, b) != 0) return 1;
    } else if (strcmp(line, "i") == 0 && h->info_len) {
      if (write_all(h->info, h->info_len) != 0) return 1;
    } /* anything else is noise (an echo, a banner) */
  }
  return 0;
}

/* Builds "SIZE NAME\n" lines for the regular files in dir. */
static int build_listing(const char *dir, helper *h) {
  DIR *d = opendir(dir);
  if (!d) return -errno;
  size_t cap = 0;
  struct dirent *e;
  int dfd = dirfd(d);
  while ((e = readdir(d))) {
    struct stat st;
    if (strchr(e->d_name, '\n')) continue;
    if (fstatat(dfd, e->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode)) continue;
    char line[600];
    int n = snprintf(line, sizeof(line), "%lld %s\n", (long long)st.st_size, e->d_name);
    if (n < 0 || (size_t)n >= sizeof(line)) continue;
    if (grow(&h->mem, &cap, h->mem_len + (size_t)n) != 0) {
      closedir(d);
      return -ENOMEM;
    }
    memcpy(h->mem + h->mem_len, line, (size_t)n);
    h->mem_len += (size_t)n;
  }
  closedir(d);
  return 0;
}

static const char *err_code(int e) {
  switch (e) {
    case ENOENT:
      return "ENOENT";
    case EACCES:
      return "EACCES";
    case EISDIR:
      return "EISDIR";
    case ENOTDIR:
      return "ENOTDIR";
    default:
      return "EIO";
  }
}

int pl__export_helper_main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[1], "get") != 0 && strcmp(argv[1], "list") != 0)) {
    fprintf(stderr,
            "usage: proflabd export-helper get FILE | list DIR\n"
            "(the remote side of `proflab export`; reads requests on stdin)\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  helper h;
  memset(&h, 0, sizeof(h));
  h.fd = -1;
  char line[256];
  /* The first line is the run's marker; stray lines before it (a terminal's
   * noise) are skipped. */
  for (;;) {
    if (read_line(&h, line, sizeof(line)) < 0) return 0;
    if (strlen(line) == PL__EXPORT_MARKER_LEN &&
        strspn(line, "0123456789abcdef") == PL__EXPORT_MARKER_LEN)
      break;
  }
  memcpy(h.marker, line, sizeof(h.marker));
  int rc = 0;
  char sum[65];
  if (strcmp(argv[1], "list") == 0) {
    int e = build_listing(argv[2], &h);
    if (e < 0) {
      rc = emitf("{%s|x|%s}\n", h.marker, err_code(-e)) != 0;
    } else if (sha256_mem(h.mem ? (void *)h.mem : (void *)"", h.mem_len, sum) != 0) {
      rc = 1;
    } else {
      h.size = h.mem_len;
      rc = emit_info(&h, h.size, sum, "-");
      if (rc == 0) rc = serve_requests(&h);
    }
  } else {
    struct stat st;
    h.fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    int e = h.fd < 0 ? errno : 0;
    if (!e && fstat(h.fd, &st) != 0) e = errno;
    if (!e && S_ISDIR(st.st_mode)) e = EISDIR;
    if (!e && !S_ISREG(st.st_mode)) e = EACCES;
    if (!e && sha256_fd(h.fd, sum) != 0) e = EIO;
    if (e) {
      rc = emitf("{%s|x|%s}\n", h.marker, err_code(e)) != 0;
    } else {
      char ident[96];
      snprintf(ident, sizeof(ident), "%llu.%lld.%ld", (unsigned long long)st.st_ino,
               (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
      h.size = (unsigned long long)st.st_size;
      rc = emit_info(&h, h.size, sum, ident);
      if (rc == 0) rc = serve_requests(&h);
    }
  }
  drain_stdin();
  if (h.fd >= 0) close(h.fd);
  free(h.mem);
  free(h.raw);
  free(h.comp);
  free(h.text);
  ZSTD_freeCCtx(h.zctx);
  return rc;
}
