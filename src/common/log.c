/* Buffered JSON-lines logger (see include/proflab/log.h). */
#include "proflab/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

#define LOG_FLUSH_AT (64 * 1024)

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static pl_buf log_buf;
static pl_json log_json;
static char log_task[128];
static pl_log_sink_fn log_sink;
static void *log_sink_arg;

/* In a forked child only the forking thread exists: a lock another thread
 * held at the fork would never be released there, and the buffer it was
 * filling may be half-reallocated. So the child starts the log afresh (the
 * parent's unflushed lines stay the parent's to write; the old buffer is
 * kept reachable, not reused). Nothing is taken in the parent: a log write
 * blocked on a full stdout never delays the program's fork(). */
static pl_buf log_buf_before_fork;

static void log_after_fork_child(void) {
  static const pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  memcpy(&log_lock, &fresh, sizeof(fresh));
  log_buf_before_fork = log_buf;
  pl_buf_init(&log_buf);
}

static pthread_once_t log_atfork_once = PTHREAD_ONCE_INIT;
static void log_register_atfork(void) { (void)pthread_atfork(NULL, NULL, log_after_fork_child); }
#define LOG_FORK_SAFE() (void)pthread_once(&log_atfork_once, log_register_atfork)

static void write_all_stdout(const char *p, size_t n, void *arg) {
  (void)arg;
  (void)pl__write_all(STDOUT_FILENO, p, n); /* stdout gone: never take the service down */
}

void pl_log_set_sink(pl_log_sink_fn fn, void *arg) {
  LOG_FORK_SAFE();
  pthread_mutex_lock(&log_lock);
  log_sink = fn;
  log_sink_arg = arg;
  pthread_mutex_unlock(&log_lock);
}

void pl_log_set_task(const char *task) {
  LOG_FORK_SAFE();
  pthread_mutex_lock(&log_lock);
  snprintf(log_task, sizeof(log_task), "%s", task ? task : "");
  pthread_mutex_unlock(&log_lock);
}

static void flush_locked(void) {
  if (log_buf.len) {
    pl_log_sink_fn fn = log_sink ? log_sink : write_all_stdout;
    fn(log_buf.data, log_buf.len, log_sink_arg);
  }
  pl_buf_reset(&log_buf);
}

/* The timestamp's "YYYY-MM-DDTHH:MM:SS" changes once a second: format it
 * then, and only the milliseconds per line (under log_lock). */
static void format_ts(char *ts, size_t n) {
  static uint64_t cached_sec = UINT64_MAX;
  static char cached[32];
  uint64_t now = pl__wall_ns();
  uint64_t sec = now / 1000000000u;
  if (sec != cached_sec) {
    pl__format_iso8601(sec * 1000000000u, cached, sizeof(cached));
    cached[19] = '\0'; /* keep "YYYY-MM-DDTHH:MM:SS" */
    cached_sec = sec;
  }
  unsigned ms = (unsigned)((now / 1000000u) % 1000u);
  if (n < 25) return;
  memcpy(ts, cached, 19);
  ts[19] = '.';
  ts[20] = (char)('0' + ms / 100);
  ts[21] = (char)('0' + ms / 10 % 10);
  ts[22] = (char)('0' + ms % 10);
  ts[23] = 'Z';
  ts[24] = '\0';
}

pl_json *pl_log_begin(const char *level, const char *event) {
  LOG_FORK_SAFE();
  pthread_mutex_lock(&log_lock);
  char ts[40];
  format_ts(ts, sizeof(ts));
  pl_json_init(&log_json, &log_buf);
  pl_json_obj_open(&log_json);
  pl_json_kv_str(&log_json, "ts", ts);
  pl_json_kv_str(&log_json, "level", level);
  pl_json_kv_str(&log_json, "event", event);
  if (log_task[0]) pl_json_kv_str(&log_json, "task", log_task);
  return &log_json;
}

void pl_log_end(void) {
  pl_json_obj_close(&log_json);
  pl_buf_putc(&log_buf, '\n');
  if (pl_buf_failed(&log_buf))
    pl_buf_reset(&log_buf); /* drop, never crash */
  else if (log_buf.len >= LOG_FLUSH_AT)
    flush_locked();
  pthread_mutex_unlock(&log_lock);
}

void pl_log_msg(const char *level, const char *event, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  pl_json *j = pl_log_begin(level, event);
  pl_json_kv_str(j, "msg", msg);
  pl_log_end();
}

void pl_log_flush(void) {
  LOG_FORK_SAFE();
  pthread_mutex_lock(&log_lock);
  flush_locked();
  pthread_mutex_unlock(&log_lock);
}
