/* proflab — structured logging: one JSON object per line.
 *
 * Lines are buffered and written to standard output when pl_log_flush() runs
 * (the server flushes once per loop iteration) or when the buffer grows past
 * 64 KiB, so a busy server makes one write() per batch, not per request.
 * Thread-safe: pl_log_begin() takes a lock that pl_log_end() releases.
 * Not async-signal-safe: never call from a signal handler.
 */
#ifndef PROFLAB_LOG_H
#define PROFLAB_LOG_H

#include <stddef.h>

#include "proflab/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where complete batches of lines go. Default: write(2) to fd 1. */
typedef void (*pl_log_sink_fn)(const char *data, size_t len, void *arg);
void pl_log_set_sink(pl_log_sink_fn fn, void *arg);
/* Task id written into every line as "task". The string is copied. */
void pl_log_set_task(const char *task);
/* Start a line {"ts":…,"level":…,"event":…,"task":…; add fields with the
 * returned writer, then call pl_log_end(). */
pl_json *pl_log_begin(const char *level, const char *event);
void pl_log_end(void);
/* A whole line with a message. */
void pl_log_msg(const char *level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Write out buffered lines. */
void pl_log_flush(void);

#ifdef __cplusplus
}
#endif
#endif
