/* Server-side WebSocket connections over wslay's event API (see
 * websocket.h): wslay parses and builds the frames; this file gives it the
 * bytes and takes them back, and applies the inspector's rules (text only,
 * a message size bound). */
#include "inspector/websocket.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <wslay/wslay.h>

struct pl__ws {
  wslay_event_context_ptr ctx;
  pl__ws_io io;
  void *arg;
  const uint8_t *in; /* bytes being fed (pl__ws_feed) */
  size_t in_len;
  int blocked;     /* io->write took nothing this round */
  size_t wrote;    /* bytes io->write took this round */
  int closing;     /* a close frame was queued (by us) or received */
  int broken;      /* io->write failed or memory ran out */
  int in_text;     /* inside io->text (feeding is not reentrant) */
  unsigned frames; /* frames of the data message being received */
};

/* Frames one message may come in: wslay keeps a chunk of its own per frame,
 * so a message of many tiny fragments would cost far more memory than its
 * bytes (CDP clients send each request in one frame). */
#define WS_MAX_FRAMES 64
/* What a queued message costs besides its payload (an empty pong is not
 * free): counted by pl__ws_queued so that reading pauses under a ping flood. */
#define WS_MSG_OVERHEAD 64

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user) {
  (void)flags;
  pl__ws *w = user;
  if (w->in_len == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = len < w->in_len ? len : w->in_len;
  memcpy(buf, w->in, n);
  w->in += n;
  w->in_len -= n;
  return (ssize_t)n;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user) {
  (void)flags;
  pl__ws *w = user;
  ssize_t r = w->io.write(w->arg, data, len);
  if (r < 0) {
    w->broken = 1;
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  if (r == 0) {
    w->blocked = 1;
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  w->wrote += (size_t)r;
  return r;
}

/* Refuse a binary message at its first frame, before wslay buffers it. */
static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *a, void *user) {
  pl__ws *w = user;
  if (w->closing) return;
  if (a->opcode == WSLAY_TEXT_FRAME) w->frames = 1;
  if (a->opcode == WSLAY_CONTINUATION_FRAME && ++w->frames > WS_MAX_FRAMES) {
    static const char many[] = "a message in more than 64 frames";
    if (wslay_event_queue_close(ctx, WSLAY_CODE_MESSAGE_TOO_BIG, (const uint8_t *)many,
                                sizeof(many) - 1) == 0)
      w->closing = 1;
    wslay_event_shutdown_read(ctx);
    return;
  }
  if (a->opcode != WSLAY_BINARY_FRAME) return;
  static const char reason[] = "binary messages are not supported";
  if (wslay_event_queue_close(ctx, WSLAY_CODE_UNSUPPORTED_DATA, (const uint8_t *)reason,
                              sizeof(reason) - 1) == 0)
    w->closing = 1;
  wslay_event_shutdown_read(ctx);
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                   void *user) {
  (void)ctx;
  pl__ws *w = user;
  if (a->opcode == WSLAY_CONNECTION_CLOSE) {
    w->closing = 1; /* wslay queued the answering close frame */
    return;
  }
  if (a->opcode != WSLAY_TEXT_FRAME || w->closing) return;
  w->in_text = 1;
  w->io.text(w->arg, (const char *)a->msg, a->msg_length);
  w->in_text = 0;
}

int pl__ws_new(pl__ws **out, const pl__ws_io *io, void *arg, uint64_t max_msg) {
  *out = NULL;
  pl__ws *w = calloc(1, sizeof(*w));
  if (!w) return -ENOMEM;
  w->io = *io;
  w->arg = arg;
  struct wslay_event_callbacks cb = {
      .recv_callback = on_recv,
      .send_callback = on_send,
      .on_frame_recv_start_callback = on_frame_start,
      .on_msg_recv_callback = on_msg,
  };
  if (wslay_event_context_server_init(&w->ctx, &cb, w) != 0) {
    free(w);
    return -ENOMEM;
  }
  wslay_event_config_set_max_recv_msg_length(w->ctx, max_msg);
  *out = w;
  return 0;
}

void pl__ws_free(pl__ws *w) {
  if (!w) return;
  wslay_event_context_free(w->ctx);
  free(w);
}

int pl__ws_feed(pl__ws *w, const void *data, size_t len) {
  if (w->in_text) return -EINVAL;
  if (w->broken) return 0;
  w->in = data;
  w->in_len = len;
  int r = wslay_event_recv(w->ctx);
  w->in = NULL;
  w->in_len = 0;
  if (!wslay_event_get_read_enabled(w->ctx)) w->closing = 1;
  if (r == WSLAY_ERR_NOMEM) {
    w->broken = 1;
    return -ENOMEM;
  }
  /* Any other failure (a frame-level protocol error) queued a close frame
   * and stopped reading: the connection finishes once that is sent. */
  return 0;
}

int pl__ws_send_text(pl__ws *w, const char *msg, size_t len) {
  if (w->closing || w->broken) return -EPIPE;
  struct wslay_event_msg m = {
      .opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)msg, .msg_length = len};
  int r = wslay_event_queue_msg(w->ctx, &m);
  if (r == 0) return 0;
  return r == WSLAY_ERR_NOMEM ? -ENOMEM : -EPIPE;
}

int pl__ws_close(pl__ws *w, uint16_t code, const char *reason) {
  if (w->closing || w->broken) return -EPIPE;
  size_t n = reason ? strlen(reason) : 0;
  if (n > 123) {
    n = 123; /* a control frame's payload is at most 125 bytes, 2 for the code */
    while (n > 0 && ((unsigned char)reason[n] & 0xc0) == 0x80) n--;
  }
  int r = wslay_event_queue_close(w->ctx, code, (const uint8_t *)reason, n);
  if (r == WSLAY_ERR_NOMEM) return -ENOMEM;
  w->closing = 1;
  wslay_event_shutdown_read(w->ctx);
  return r == 0 ? 0 : -EPIPE;
}

int pl__ws_flush(pl__ws *w) {
  while (!w->broken && wslay_event_want_write(w->ctx)) {
    w->blocked = 0;
    w->wrote = 0;
    int r = wslay_event_send(w->ctx);
    if (r != 0) w->broken = 1;
    if (w->broken) return -EPIPE;
    if (w->blocked || w->wrote == 0) break;
  }
  return 0;
}

size_t pl__ws_queued(const pl__ws *w) {
  return wslay_event_get_queued_msg_length(w->ctx) +
         wslay_event_get_queued_msg_count(w->ctx) * WS_MSG_OVERHEAD;
}

int pl__ws_closing(const pl__ws *w) { return w->closing || w->broken; }

int pl__ws_finished(const pl__ws *w) {
  wslay_event_context_ptr ctx = w->ctx;
  if (w->broken) return 1;
  return !wslay_event_get_read_enabled(ctx) && !wslay_event_want_write(ctx);
}

uint16_t pl__ws_code_sent(const pl__ws *w) { return wslay_event_get_status_code_sent(w->ctx); }

uint16_t pl__ws_code_received(const pl__ws *w) {
  return wslay_event_get_status_code_received(w->ctx);
}

size_t pl__ws_text_head(uint8_t out[PL__WS_HEAD_MAX], uint64_t len) {
  out[0] = 0x80 | WSLAY_TEXT_FRAME; /* FIN: the whole message */
  if (len < 126) {
    out[1] = (uint8_t)len;
    return 2;
  }
  if (len <= UINT16_MAX) {
    out[1] = 126;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
  return 10;
}
