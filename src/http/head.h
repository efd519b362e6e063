/* The strict HTTP request-head parser and its checks (the inspector's
 * transport parses with it; the framing rules use its pieces): the request line
 * and headers of one request (at most PL__HTTP_HEAD_MAX bytes), Node's Host
 * rule against DNS rebinding, and the Origin rule of the WebSocket upgrade.
 * Pure functions over caller memory: no I/O, no allocation, any thread. */
#ifndef PL_HTTP_HEAD_H
#define PL_HTTP_HEAD_H

#include <stddef.h>

/* A request head (request line, headers and the empty line) may not be
 * longer than this; nor hold more headers than PL__HTTP_MAX_HEADERS. */
#define PL__HTTP_HEAD_MAX 8192
#define PL__HTTP_MAX_HEADERS 64

/* A piece of the parsed buffer (not NUL-terminated). */
typedef struct pl__http_str {
  const char *p;
  size_t n;
} pl__http_str;

typedef struct pl__http_header {
  pl__http_str name;  /* a token, as sent (compare case-insensitively) */
  pl__http_str value; /* optional white space around it removed */
} pl__http_header;

/* One parsed request head; every string points into the parsed buffer. */
typedef struct pl__http_head {
  pl__http_str method; /* a token, e.g. "GET" */
  pl__http_str target; /* as sent: origin-form, starts with '/' */
  int minor;           /* HTTP/1.<minor>: 0 or 1 */
  size_t nheaders;
  pl__http_header headers[PL__HTTP_MAX_HEADERS];
  size_t len; /* bytes of the head, the final CRLF CRLF included */
} pl__http_head;

/* RFC 9110 tchar: 1 when c may appear in a token (a method, a header
 * name), else 0. */
int pl__http_is_tchar(unsigned char c);

/* 1 when s is a token: one or more tchars (a method, a header name). */
int pl__http_is_token(pl__http_str s);

/* 1 when c may appear in a field value: visible ASCII, space, tab or
 * obs-text (0x80-0xff); 0 for other control characters and DEL. */
int pl__http_is_value_char(unsigned char c);

/* Parse the request head at the start of buf[0..len). Strict: lines end in
 * CRLF; the request line is `token SP target SP HTTP/1.0|1.1`; the target
 * is visible ASCII starting with '/'; header names are tokens with the
 * colon right after; values hold no control characters; no obs-fold.
 * Returns 0 (h filled, h->len set; bytes after it are not looked at),
 * -EAGAIN (no complete head yet and fewer than PL__HTTP_HEAD_MAX bytes),
 * -EMSGSIZE (the head is longer than PL__HTTP_HEAD_MAX or has too many
 * headers) or -EINVAL (malformed). */
int pl__http_head_parse(const char *buf, size_t len, pl__http_head *h);

/* How many headers are named `name` (ASCII case-insensitive); *value (when
 * not NULL) is set to the first one's value, or to an empty string. */
size_t pl__http_header_find(const pl__http_head *h, const char *name, pl__http_str *value);

/* 1 when the comma-separated list v holds `token` (case-insensitive,
 * white space around elements ignored), else 0. For Connection/Upgrade. */
int pl__http_list_has(pl__http_str v, const char *token);

/* 1 when v equals s, ASCII case-insensitively; else 0. */
int pl__http_str_ieq(pl__http_str v, const char *s);

/* Node's IsAllowedHost for a Host header value: the port trimmed (after
 * the last ':' unless inside brackets), the host is allowed when empty, a
 * bracketed IPv6 literal, a dotted IPv4 literal (four decimal octets of at
 * most 255) or "localhost" (any case). 1 allowed, 0 not. */
int pl__http_host_allowed(pl__http_str host);

/* The WebSocket upgrade's Origin rule (Node has none): allowed are exactly
 * "devtools://devtools", and http:// or https:// origins whose host is
 * localhost, an IPv4 literal in 127.0.0.0/8 or [::1], with an optional
 * port and nothing after it. 1 allowed, 0 not. (An absent Origin is the
 * caller's decision: allowed.) */
int pl__http_origin_allowed(pl__http_str origin);

#endif
