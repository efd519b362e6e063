/* The framing rules a request head must meet before any of its body is read:
 * what request smuggling relies on (RFC 9112 §6.3, RFC 9110 §7.2) is
 * refused, never interpreted. Pure functions: no I/O, no allocation. */
#ifndef PL_HTTP_FRAMING_H
#define PL_HTTP_FRAMING_H

#include <stddef.h>

#include "http/head.h"

/* What the headers seen so far say about the request's framing. Zero it
 * (or pl__http_framing_init), feed every header with pl__http_framing_add,
 * then ask pl__http_framing_verdict. */
typedef struct pl__http_framing {
  unsigned hosts;            /* Host headers */
  unsigned lengths;          /* Content-Length headers */
  unsigned encodings;        /* Transfer-Encoding headers */
  int length_malformed;      /* a Content-Length that is not 1-19 digits */
  int encoding_chunked_only; /* the one Transfer-Encoding is exactly "chunked" */
  int bad_name;              /* a header name that is not a token */
  int bad_value;             /* a header value with a control character */
} pl__http_framing;

/* Why a request is refused: HTTP status, JSON error code and a message
 * (static strings; no header value is echoed). */
typedef struct pl__http_refusal {
  unsigned status;
  const char *code;
  const char *message;
} pl__http_refusal;

void pl__http_framing_init(pl__http_framing *f);

/* One header as received: name and value with their lengths (the value
 * with the white space around it removed or not; both are accepted). */
void pl__http_framing_add(pl__http_framing *f, pl__http_str name, pl__http_str value);

/* 0 when the framing is unambiguous: at most one Host, at most one
 * Content-Length of digits only, no Transfer-Encoding, header names that
 * are tokens and values without control characters. Otherwise the status
 * to answer with, *why filled: 400 for every ambiguous or malformed head
 * (Transfer-Encoding with Content-Length, two Content-Lengths, a
 * Transfer-Encoding other than exactly "chunked", more than one of it, a
 * non-token name — white space before the colon —, a control character in
 * a value, two Hosts); 411 for a lone "Transfer-Encoding: chunked" (request
 * bodies must come with Content-Length). The caller answers and closes the
 * connection: its remaining bytes cannot be framed safely. */
unsigned pl__http_framing_verdict(const pl__http_framing *f, pl__http_refusal *why);

/* pl__http_framing_add over every header of a parsed head, then the
 * verdict. */
unsigned pl__http_framing_check_head(const pl__http_head *h, pl__http_refusal *why);

#endif
