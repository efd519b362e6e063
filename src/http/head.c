/* The strict HTTP request-head parser, Host and Origin checks (see head.h). */
#include "http/head.h"

#include <errno.h>
#include <arpa/inet.h>
#include <string.h>

int pl__http_is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int pl__http_is_token(pl__http_str s) {
  if (!s.n) return 0;
  for (size_t i = 0; i < s.n; i++)
    if (!pl__http_is_tchar((unsigned char)s.p[i])) return 0;
  return 1;
}

int pl__http_is_value_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

int pl__http_str_ieq(pl__http_str v, const char *s) {
  size_t n = strlen(s);
  if (v.n != n) return 0;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)v.p[i]) != lower((unsigned char)s[i])) return 0;
  return 1;
}

/* The request line buf[0..n) (no CRLF). */
static int parse_request_line(const char *buf, size_t n, pl__http_head *h) {
  size_t i = 0;
  while (i < n && pl__http_is_tchar((unsigned char)buf[i])) i++;
  if (i == 0 || i > 32 || i >= n || buf[i] != ' ') return -EINVAL;
  h->method = (pl__http_str){buf, i};
  size_t t = ++i;
  while (i < n && (unsigned char)buf[i] > 0x20 && (unsigned char)buf[i] < 0x7f) i++;
  if (i == t || i >= n || buf[i] != ' ' || buf[t] != '/') return -EINVAL;
  h->target = (pl__http_str){buf + t, i - t};
  i++;
  static const char version[] = "HTTP/1.";
  if (n - i != sizeof(version) || memcmp(buf + i, version, sizeof(version) - 1) != 0)
    return -EINVAL;
  char minor = buf[n - 1];
  if (minor != '0' && minor != '1') return -EINVAL;
  h->minor = minor - '0';
  return 0;
}

/* One header line buf[0..n) (no CRLF). */
static int parse_header_line(const char *buf, size_t n, pl__http_head *h) {
  size_t i = 0;
  while (i < n && pl__http_is_tchar((unsigned char)buf[i])) i++;
  if (i == 0 || i >= n || buf[i] != ':') return -EINVAL; /* also obs-fold, space before ':' */
  if (h->nheaders >= PL__HTTP_MAX_HEADERS) return -EMSGSIZE;
  pl__http_header *hd = &h->headers[h->nheaders];
  hd->name = (pl__http_str){buf, i};
  size_t v = i + 1, e = n;
  for (size_t k = v; k < n; k++)
    if (!pl__http_is_value_char((unsigned char)buf[k])) return -EINVAL;
  while (v < e && (buf[v] == ' ' || buf[v] == '\t')) v++;
  while (e > v && (buf[e - 1] == ' ' || buf[e - 1] == '\t')) e--;
  hd->value = (pl__http_str){buf + v, e - v};
  h->nheaders++;
  return 0;
}

int pl__http_head_parse(const char *buf, size_t len, pl__http_head *h) {
  size_t scan = len < PL__HTTP_HEAD_MAX ? len : PL__HTTP_HEAD_MAX;
  const char *end = memmem(buf, scan, "\r\n\r\n", 4);
  if (!end) return len >= PL__HTTP_HEAD_MAX ? -EMSGSIZE : -EAGAIN;
  memset(h, 0, sizeof(*h));
  size_t head_len = (size_t)(end - buf) + 4;
  size_t pos = 0, line = 0;
  /* Lines up to and including the last one before the empty line. */
  while (pos < head_len - 2) {
    const char *nl = memmem(buf + pos, head_len - 2 - pos, "\r\n", 2);
    if (!nl) return -EINVAL; /* cannot happen: the line before the empty one ends in CRLF */
    size_t n = (size_t)(nl - (buf + pos)); /* a CRLF always follows: the head ends in one */
    if (memchr(buf + pos, '\r', n) || memchr(buf + pos, '\n', n)) return -EINVAL;
    int rc = line == 0 ? parse_request_line(buf + pos, n, h) : parse_header_line(buf + pos, n, h);
    if (rc) return rc;
    pos += n + 2;
    line++;
  }
  if (line == 0) return -EINVAL; /* an empty line first */
  h->len = head_len;
  return 0;
}

size_t pl__http_header_find(const pl__http_head *h, const char *name, pl__http_str *value) {
  size_t count = 0;
  if (value) *value = (pl__http_str){"", 0};
  for (size_t i = 0; i < h->nheaders; i++) {
    if (!pl__http_str_ieq(h->headers[i].name, name)) continue;
    if (count++ == 0 && value) *value = h->headers[i].value;
  }
  return count;
}

int pl__http_list_has(pl__http_str v, const char *token) {
  size_t i = 0;
  while (i < v.n) {
    size_t s = i;
    while (i < v.n && v.p[i] != ',') i++;
    size_t e = i;
    while (s < e && (v.p[s] == ' ' || v.p[s] == '\t')) s++;
    while (e > s && (v.p[e - 1] == ' ' || v.p[e - 1] == '\t')) e--;
    if (pl__http_str_ieq((pl__http_str){v.p + s, e - s}, token)) return 1;
    i++; /* past the comma */
  }
  return 0;
}

/* A dotted IPv4 literal as inet_pton reads it: four decimal octets of at
 * most 255, no leading zeros (Node's IsAllowedHost uses uv_inet_pton since
 * the fix of CVE-2022-43548). *first gets the first octet. */
static int is_ipv4(const char *p, size_t n, unsigned *first) {
  unsigned quads = 0, acc = 0, digits = 0, lead0 = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || p[i] == '.') {
      if (digits == 0 || ++quads > 4 || (lead0 && digits > 1)) return 0;
      if (quads == 1 && first) *first = acc;
      acc = digits = lead0 = 0;
    } else if (p[i] >= '0' && p[i] <= '9') {
      if (digits == 0 && p[i] == '0') lead0 = 1;
      acc = acc * 10 + (unsigned)(p[i] - '0');
      if (acc > 255) return 0;
      digits++;
    } else {
      return 0;
    }
  }
  return quads == 4;
}

/* What Node accepts between brackets: an IPv6 address inet_pton reads,
 * without a zone ('%') and not the unspecified address "::". */
static int is_bracketed_ipv6(const char *p, size_t n) {
  char tmp[64];
  unsigned char addr[16];
  static const unsigned char unspecified[16];
  if (n < 2 || n - 2 >= sizeof(tmp) || memchr(p + 1, '%', n - 2)) return 0;
  memcpy(tmp, p + 1, n - 2);
  tmp[n - 2] = '\0';
  return inet_pton(AF_INET6, tmp, addr) == 1 && memcmp(addr, unspecified, 16) != 0;
}

int pl__http_host_allowed(pl__http_str host) {
  size_t n = host.n;
  /* TrimPort: cut at the last ':' unless it is inside a bracketed address. */
  size_t colon = n, bracket = n;
  for (size_t i = n; i-- > 0;) {
    if (host.p[i] == ':' && colon == n) colon = i;
    if (host.p[i] == ']' && bracket == n) bracket = i;
  }
  if (colon != n && (bracket == n || colon > bracket)) n = colon;
  if (n == 0) return 1;
  if (host.p[0] == '[') return host.p[n - 1] == ']' && is_bracketed_ipv6(host.p, n);
  unsigned first = 0;
  if (is_ipv4(host.p, n, &first)) return first != 0; /* 0.x.x.x: not an address to reach */
  return pl__http_str_ieq((pl__http_str){host.p, n}, "localhost");
}

int pl__http_origin_allowed(pl__http_str o) {
  if (o.n == 19 && memcmp(o.p, "devtools://devtools", 19) == 0) return 1;
  size_t skip;
  if (o.n > 7 && pl__http_str_ieq((pl__http_str){o.p, 7}, "http://"))
    skip = 7;
  else if (o.n > 8 && pl__http_str_ieq((pl__http_str){o.p, 8}, "https://"))
    skip = 8;
  else
    return 0;
  const char *p = o.p + skip;
  size_t n = o.n - skip, hn;
  if (p[0] == '[') {
    const char *close = memchr(p, ']', n);
    if (!close) return 0;
    hn = (size_t)(close - p) + 1;
    if (!(hn == 5 && memcmp(p, "[::1]", 5) == 0)) return 0;
  } else {
    const char *colon = memchr(p, ':', n);
    hn = colon ? (size_t)(colon - p) : n;
    unsigned first = 0;
    int ok = pl__http_str_ieq((pl__http_str){p, hn}, "localhost") ||
             (is_ipv4(p, hn, &first) && first == 127);
    if (!ok) return 0;
  }
  if (hn == n) return 1;
  /* ":PORT", digits only, 1 to 5 of them */
  if (p[hn] != ':' || n - hn - 1 < 1 || n - hn - 1 > 5) return 0;
  for (size_t i = hn + 1; i < n; i++)
    if (p[i] < '0' || p[i] > '9') return 0;
  return 1;
}
