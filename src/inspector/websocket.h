/* One server-side WebSocket connection over wslay's event API, after the
 * handshake: bytes in, whole text messages out to a callback; text
 * messages and a close frame queued, frames handed to a write callback.
 * No I/O of its own (the transport moves the bytes), so a fuzzer can drive
 * it from memory. One thread at a time per connection. */
#ifndef PL_INSPECTOR_WEBSOCKET_H
#define PL_INSPECTOR_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct pl__ws pl__ws;

/* What the connection calls back into its owner (arg). */
typedef struct pl__ws_io {
  /* Take up to len bytes of outgoing frames. Returns how many were taken
   * (0: none for now; pl__ws_flush stops and is called again later) or -1
   * when the connection is broken (pl__ws_flush then returns -EPIPE). */
  ssize_t (*write)(void *arg, const uint8_t *data, size_t len);
  /* One whole text message from the peer (valid UTF-8, not
   * NUL-terminated, only valid during the call). The callee may call
   * pl__ws_send_text and pl__ws_close, not pl__ws_feed or pl__ws_free. */
  void (*text)(void *arg, const char *msg, size_t len);
} pl__ws_io;

/* Create a server connection: client frames must be masked, no extension
 * is negotiated, a message longer than max_msg bytes gets close 1009, a
 * binary message close 1003, a protocol error close 1002 (or a close
 * without code where wslay sends one). 0 or -ENOMEM. */
int pl__ws_new(pl__ws **out, const pl__ws_io *io, void *arg, uint64_t max_msg);
/* Free w and everything queued. NULL is fine. */
void pl__ws_free(pl__ws *w);

/* Process bytes from the peer, all of them (bytes after the connection
 * stopped reading are dropped). Calls io->text per message; ping, pong and
 * close frames are answered by queuing frames (pl__ws_flush sends them).
 * 0, -ENOMEM (the connection is then finished) or -EINVAL (called from
 * io->text). */
int pl__ws_feed(pl__ws *w, const void *data, size_t len);

/* Queue one text message (copied). 0, -EPIPE (closing: a close frame was
 * queued or received) or -ENOMEM. */
int pl__ws_send_text(pl__ws *w, const char *msg, size_t len);
/* Queue a close frame with code and reason (cut to 123 bytes at a UTF-8
 * boundary) and stop reading. 0, -EPIPE (already closing) or -ENOMEM. */
int pl__ws_close(pl__ws *w, uint16_t code, const char *reason);

/* Hand queued frames to io->write until it takes no more or nothing is
 * left. 0, or -EPIPE when io->write failed (the connection is finished). */
int pl__ws_flush(pl__ws *w);

/* The head of one unmasked, unfragmented server text frame of len payload
 * bytes (RFC 6455 5.2: FIN and opcode, then the length in 7, 7+16 or 7+64
 * bits), as wslay heads the frames it queues: for a message written to the
 * socket outside this connection's queue, when nothing is queued ahead of
 * it. Returns the head's length (2, 4 or 10). */
#define PL__WS_HEAD_MAX 10
size_t pl__ws_text_head(uint8_t out[PL__WS_HEAD_MAX], uint64_t len);

/* Payload bytes of queued messages not yet completely handed to io->write
 * (a message partly written counts whole). */
size_t pl__ws_queued(const pl__ws *w);
/* 1 once a close frame was queued or received (no more messages go in or
 * out), else 0. */
int pl__ws_closing(const pl__ws *w);
/* 1 when nothing more will be read or written: the close frame went out,
 * or the connection broke. The owner then closes the socket. */
int pl__ws_finished(const pl__ws *w);
/* The close code sent (1006 when none went out) and received (1006 when
 * none came), for logs. */
uint16_t pl__ws_code_sent(const pl__ws *w);
uint16_t pl__ws_code_received(const pl__ws *w);

#endif
