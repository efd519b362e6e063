/* Request framing rules against smuggling (see framing.h). */
#include "http/framing.h"

#include <string.h>

void pl__http_framing_init(pl__http_framing *f) { memset(f, 0, sizeof(*f)); }

static pl__http_str trim(pl__http_str v) {
  while (v.n && (v.p[0] == ' ' || v.p[0] == '\t')) v.p++, v.n--;
  while (v.n && (v.p[v.n - 1] == ' ' || v.p[v.n - 1] == '\t')) v.n--;
  return v;
}

void pl__http_framing_add(pl__http_framing *f, pl__http_str name, pl__http_str value) {
  if (!pl__http_is_token(name)) f->bad_name = 1;
  for (size_t i = 0; i < value.n; i++)
    if (!pl__http_is_value_char((unsigned char)value.p[i])) f->bad_value = 1;
  value = trim(value);
  if (pl__http_str_ieq(name, "Host")) {
    f->hosts++;
  } else if (pl__http_str_ieq(name, "Content-Length")) {
    f->lengths++;
    if (value.n == 0 || value.n > 19) f->length_malformed = 1;
    for (size_t i = 0; i < value.n; i++)
      if (value.p[i] < '0' || value.p[i] > '9') f->length_malformed = 1;
  } else if (pl__http_str_ieq(name, "Transfer-Encoding")) {
    f->encodings++;
    f->encoding_chunked_only = f->encodings == 1 && pl__http_str_ieq(value, "chunked");
  }
}

static unsigned refuse(pl__http_refusal *why, unsigned status, const char *code, const char *msg) {
  why->status = status;
  why->code = code;
  why->message = msg;
  return status;
}

unsigned pl__http_framing_verdict(const pl__http_framing *f, pl__http_refusal *why) {
  if (f->bad_name)
    return refuse(why, 400, "bad_request",
                  "a header name is not a token (white space before the colon?); the "
                  "connection is closed");
  if (f->bad_value)
    return refuse(why, 400, "bad_request",
                  "a header value holds a control character; the connection is closed");
  if (f->encodings && f->lengths)
    return refuse(why, 400, "bad_request",
                  "the request has both Transfer-Encoding and Content-Length, a request "
                  "smuggling pattern (RFC 9112 section 6.3); the connection is closed");
  if (f->lengths > 1)
    return refuse(why, 400, "bad_request",
                  "the request has more than one Content-Length; the connection is closed");
  if (f->length_malformed)
    return refuse(why, 400, "bad_request",
                  "Content-Length must be a decimal number of at most 19 digits; the "
                  "connection is closed");
  if (f->hosts > 1)
    return refuse(why, 400, "bad_request", "the request has more than one Host header");
  if (f->encodings && !f->encoding_chunked_only)
    return refuse(why, 400, "bad_request",
                  "Transfer-Encoding must be exactly \"chunked\", once; the connection is "
                  "closed");
  if (f->encodings)
    return refuse(why, 411, "length_required",
                  "chunked request bodies are not accepted: send the body with "
                  "Content-Length; the connection is closed");
  return 0;
}

unsigned pl__http_framing_check_head(const pl__http_head *h, pl__http_refusal *why) {
  pl__http_framing f;
  pl__http_framing_init(&f);
  for (size_t i = 0; i < h->nheaders; i++)
    pl__http_framing_add(&f, h->headers[i].name, h->headers[i].value);
  return pl__http_framing_verdict(&f, why);
}
