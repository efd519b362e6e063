/* proflab export: the transfer engine. Runs exec sessions (one remote helper
 * each), requests chunks, verifies every frame and the whole file, keeps
 * resume state, and decides when to retry and when to give up. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cli.h"
#include "export.h"
#include "strv.h"
#include "export/frame.h"
#include "export/state.h"

#define WINDOW 4      /* chunk requests outstanding */
#define WINDOW_MAX 16 /* ... at most, when the channel holds back a tail */
#define CHUNK_DEFAULT (64u << 10)
#define CHUNK_LIMIT (1u << 20)
#define GROW_EVERY 4     /* accepted chunks in a row before the size doubles */
#define QMAX 48          /* requests outstanding, of any kind */
#define RMAX 32          /* ranges of this session beyond the verified prefix */
#define TRAILER_PAD 1024 /* padding behind the last request of a burst */
#define DAMAGE_LIMIT 12  /* damaged or lost chunks in a row: the session ends */
#define INFO_TRIES 4     /* `i` requests per session */
#define STALL_MIN_S 5.0  /* a stall is declared after at least this long */

/* Nudges: while answers are outstanding and the channel is silent this
 * long, ask for this much padding (the channel may hold back a tail until
 * more output pushes it). Before the info frame only the first three. */
static const double nudge_after_s[] = {0.2, 0.4, 0.8, 1.2, 1.6}; /* all before a stall */
static const size_t nudge_pad[] = {1024, 4096, 16384, 65536, 262144};
#define NUDGES (int)(sizeof(nudge_pad) / sizeof(nudge_pad[0]))
#define NUDGES_BEFORE_INFO 4

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* PROFLAB_EXPORT_TRACE=1: one stderr line per request, answer and nudge,
 * timed from the start, for looking at what a channel does. */
static int trace_on = -1;
static double trace_t0;
static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...) {
  if (trace_on < 0) {
    const char *e = getenv("PROFLAB_EXPORT_TRACE");
    trace_on = e && *e && strcmp(e, "0") != 0;
    trace_t0 = now_s();
  }
  if (!trace_on) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "[%8.3f] ", now_s() - trace_t0);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* ---- the transfer ---------------------------------------------------------- */

enum { SESS_DONE, SESS_NOFRAME, SESS_CUT, SESS_FATAL };
/* How a session that was not done ended, for the retry policy: a fault the
 * channel repeats identically (a stall it never releases, damage in every
 * chunk) is not retried as often as a random cut. */
enum { END_OTHER, END_STALL, END_DAMAGE };

/* One request sent and not yet answered; the helper answers in order. */
enum { Q_INFO, Q_DATA, Q_PAD };
typedef struct qent {
  int kind;
  uint64_t off, len; /* Q_DATA */
  uint64_t seq;      /* Q_PAD */
  size_t pad;        /* Q_PAD */
  double sent;       /* Q_PAD sent after the info frame: when (else 0) */
} qent;

/* A range of the file requested in this session and not yet part of the
 * verified prefix: ranges are contiguous from the prefix, in order. */
enum { R_PENDING, R_DONE, R_REDO };
typedef struct range {
  uint64_t off, len;
  int state;
} range;

typedef struct xfer {
  const cli_export_opts *o;
  const char *op, *remote;
  /* sink: the partial file (get) or memory (list) */
  int fd;
  unsigned char *mem;
  size_t mem_cap;
  char local[4096], partial[4200], statep[4200], statetmp[4300];
  pl__export_state st;
  int have_ident;
  char encs[16];
  uint64_t chunk;
  int helper;
  char marker[PL__EXPORT_MARKER_LEN + 1];
  unsigned char *raw, *scratch;
  char reason[8192];     /* why the last session ended early */
  char stderr_line[512]; /* last line the channel wrote on stderr */
  int fatal_exit;
  int remote_err; /* the helper said the source is missing or unreadable */
  int end_kind;   /* END_* of the last session */
  int silent;     /* the last session ended silent, not one frame seen */
  /* session */
  pid_t pid;
  int in_fd;
  pl__export_scanner sc;
  qent q[QMAX];
  int nq;
  range rg[RMAX];
  int nrg;
  uint64_t next_req; /* end of the last range */
  int got_info, frames, accepted;
  int caps_pad;  /* the helper answers `n` and `i` */
  int need_info; /* the info frame was lost or damaged: ask again */
  int info_asks;
  double info_asked; /* when `i` was last sent (0: never) */
  uint64_t pad_seq;
  int trailer_sent; /* a pad follows the last request of this burst */
  int nudge_level;  /* nudges since the front of the queue was answered */
  double last_nudge;
  size_t nudged;             /* padding asked for since the front was answered */
  double last_byte, max_rtt; /* the slowest pad answer of the session */
  int bad_streak, good_streak;
  int bad_answers;  /* answers damaged or lost since the last good one */
  uint64_t redone;  /* chunks asked again in this session */
  size_t held;      /* bytes the channel was seen to hold back (estimate) */
  size_t push;      /* padding that once pushed a held tail through */
  double frame_avg; /* bytes of frame text per data frame (running average) */
  int held_noted;
  int sessions, any_info;
  /* what damaged frames (for messages): count and the last injected text */
  uint64_t damaged;
  char damage[160];
  /* progress */
  int tty;
  double t0, last_draw;
  uint64_t off0;
} xfer;

static int save_state(xfer *x) {
  if (x->fd < 0 || !x->have_ident) return 0; /* nothing worth resuming yet */
  char text[PL__EXPORT_STATE_FIELD + 1024];
  x->st.chunk = x->chunk;
  snprintf(x->st.helper, sizeof(x->st.helper), "%s",
           x->helper >= 0 ? cli_export_helper_names[x->helper] : "auto");
  long n = pl__export_state_format(&x->st, text, sizeof(text));
  if (n < 0) return -1;
  int fd = open(x->statetmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  ssize_t w = write(fd, text, (size_t)n);
  if (close(fd) != 0 || w != n) return -1;
  return rename(x->statetmp, x->statep);
}

static void progress(xfer *x, int final) {
  if (!x->tty || x->o->quiet || !x->got_info) return;
  double t = now_s();
  if (!final && t - x->last_draw < 0.1) return;
  x->last_draw = t;
  uint64_t size = x->st.size, done = x->st.offset;
  int pct = size ? (int)(done * 100 / size) : 100;
  char bar[31];
  int fill = pct * 30 / 100;
  for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : ' ';
  bar[30] = '\0';
  double rate = t > x->t0 ? (double)(done - x->off0) / (t - x->t0) : 0;
  fprintf(stderr, "\r%3d%% [%s] %.1f/%.1f MiB %.0f KiB/s session %d ", pct, bar,
          (double)done / 1048576.0, (double)size / 1048576.0, rate / 1024.0, x->sessions);
  if (final) fputc('\n', stderr);
  fflush(stderr);
}

/* Throws the verified prefix away. Returns 0 or -1 (reason set). */
static int reset_data(xfer *x) {
  x->st.offset = 0;
  if (x->fd >= 0 && ftruncate(x->fd, 0) != 0) {
    snprintf(x->reason, sizeof(x->reason), "cannot truncate %s: %s", x->partial, strerror(errno));
    x->fatal_exit = 1;
    return -1;
  }
  return 0;
}

/* ---- requests -------------------------------------------------------------- */

static int send_line(xfer *x, const char *line, size_t n) {
  return write(x->in_fd, line, n) == (ssize_t)n ? 0 : -1;
}

static int queue_push(xfer *x, qent e) {
  if (x->nq == QMAX) return -1;
  x->q[x->nq++] = e;
  return 0;
}

static void queue_drop(xfer *x, int n) {
  memmove(x->q, x->q + n, (size_t)(x->nq - n) * sizeof(qent));
  x->nq -= n;
}

/* Asks for a pad frame of pad dots; returns 0, or -1 if the input closed. */
static int send_pad(xfer *x, size_t pad) {
  if (x->nq == QMAX) return 0;
  char line[64];
  int n = snprintf(line, sizeof(line), "n %llu %zu\n", (unsigned long long)++x->pad_seq, pad);
  if (send_line(x, line, (size_t)n) != 0) return -1;
  qent e = {Q_PAD, 0, 0, x->pad_seq, pad, x->got_info ? now_s() : 0};
  queue_push(x, e);
  trace("-> n %llu %zu (queue %d)", (unsigned long long)x->pad_seq, pad, x->nq);
  return 0;
}

static int send_info_request(xfer *x) {
  x->need_info = 0;
  if (x->info_asks >= INFO_TRIES || x->nq == QMAX) return 0;
  x->info_asks++;
  x->info_asked = now_s();
  if (send_line(x, "i\n", 2) != 0) return -1;
  qent e = {Q_INFO, 0, 0, 0, 0, 0};
  queue_push(x, e);
  trace("-> i");
  return 0;
}

static void chunk_shrink(xfer *x) {
  if (x->chunk > PL__EXPORT_GRANULE) x->chunk /= 2;
  x->chunk -= x->chunk % PL__EXPORT_GRANULE;
  x->good_streak = 0;
}

static range *range_at(xfer *x, uint64_t off) {
  for (int i = 0; i < x->nrg; i++)
    if (x->rg[i].off == off) return &x->rg[i];
  return NULL;
}

/* A data answer that never arrived whole: ask for that range again. */
static void data_lost(xfer *x, uint64_t off) {
  range *r = range_at(x, off);
  if (r && r->state == R_PENDING) r->state = R_REDO;
  x->bad_streak++;
  chunk_shrink(x);
}

/* Entry e's answer was lost or damaged. */
static void answer_lost(xfer *x, const qent *e) {
  x->bad_answers++;
  trace("   lost: %s %llu",
        e->kind == Q_DATA   ? "data"
        : e->kind == Q_INFO ? "info"
                            : "pad",
        (unsigned long long)(e->kind == Q_DATA ? e->off : e->seq));
  if (e->kind == Q_DATA)
    data_lost(x, e->off);
  else if (e->kind == Q_INFO && !x->got_info)
    x->need_info = 1;
}

/* The answer to q[j] arrived: every earlier request's answer was lost
 * (the helper answers in order), and the channel is moving again. */
static void answered(xfer *x, int j) {
  for (int i = 0; i < j; i++) answer_lost(x, &x->q[i]);
  if (x->q[j].kind == Q_PAD && x->q[j].sent > 0 && now_s() - x->q[j].sent > x->max_rtt)
    x->max_rtt = now_s() - x->q[j].sent;
  queue_drop(x, j + 1);
  if (x->nudged > x->push) x->push = x->nudged; /* what it took: the next trailer */
  x->nudge_level = 0;
  x->nudged = 0;
  x->bad_answers = 0;
}

/* Splits range i into pieces of at most the current chunk size (after
 * damage the size shrinks, and a smaller frame is less likely to be hit). */
static void range_split(xfer *x, int i) {
  while (x->rg[i].len > x->chunk && x->nrg < RMAX) {
    memmove(x->rg + i + 2, x->rg + i + 1, (size_t)(x->nrg - i - 1) * sizeof(range));
    x->nrg++;
    x->rg[i + 1] = (range){x->rg[i].off + x->chunk, x->rg[i].len - x->chunk, x->rg[i].state};
    x->rg[i].len = x->chunk;
  }
}

static int send_data(xfer *x, range *r, char enc) {
  char line[128];
  int n = snprintf(line, sizeof(line), "g %llu %llu %c\n", (unsigned long long)r->off,
                   (unsigned long long)r->len, enc);
  if (send_line(x, line, (size_t)n) != 0) return -1;
  qent e = {Q_DATA, r->off, r->len, 0, 0, 0};
  queue_push(x, e);
  trace("-> g %llu %llu %c", (unsigned long long)r->off, (unsigned long long)r->len, enc);
  r->state = R_PENDING;
  x->trailer_sent = 0;
  return 0;
}

/* Keeps WINDOW data requests outstanding: ranges to ask again first, then
 * new ones; behind the last request of a burst, a pad (a channel holding
 * back a tail gets the output that pushes it through). */
static int send_requests(xfer *x, char enc) {
  if (x->need_info && send_info_request(x) != 0) return -1;
  if (!x->got_info) return 0;
  for (;;) {
    int pending = 0, redo = -1;
    for (int i = 0; i < x->nrg; i++) {
      if (x->rg[i].state == R_PENDING) pending++;
      if (x->rg[i].state == R_REDO && redo < 0) redo = i;
    }
    /* A channel that holds back a tail stalls whenever the answers in
     * flight are shorter than what it holds: keep more in flight. */
    int window = WINDOW;
    if (x->push && x->frame_avg > 0) window += (int)((double)x->push / x->frame_avg) + 1;
    if (window > WINDOW_MAX) window = WINDOW_MAX;
    if (pending >= window || x->nq >= QMAX - 2) break;
    if (redo >= 0) {
      range_split(x, redo);
      x->redone++;
      if (send_data(x, &x->rg[redo], enc) != 0) return -1;
      continue;
    }
    if (x->next_req >= x->st.size || x->nrg == RMAX) break;
    uint64_t len = x->st.size - x->next_req;
    if (len > x->chunk) len = x->chunk;
    x->rg[x->nrg++] = (range){x->next_req, len, R_PENDING};
    x->next_req += len;
    if (send_data(x, &x->rg[x->nrg - 1], enc) != 0) return -1;
  }
  int more = x->next_req < x->st.size && x->nrg < RMAX;
  for (int i = 0; i < x->nrg; i++) more |= x->rg[i].state == R_REDO;
  if (x->caps_pad && !more && x->nq > 0 && !x->trailer_sent) {
    size_t pad = x->push > TRAILER_PAD ? x->push : TRAILER_PAD;
    if (pad > PL__EXPORT_PAD_MAX) pad = PL__EXPORT_PAD_MAX;
    if (send_pad(x, pad) != 0) return -1;
    x->trailer_sent = 1;
  }
  return 0;
}

/* Moves finished ranges into the verified prefix. Returns 0 or 1 (reason). */
static int advance_prefix(xfer *x) {
  int n = 0;
  while (n < x->nrg && x->rg[n].state == R_DONE) x->st.offset += x->rg[n++].len;
  if (!n) return 0;
  memmove(x->rg, x->rg + n, (size_t)(x->nrg - n) * sizeof(range));
  x->nrg -= n;
  if (save_state(x) != 0) {
    snprintf(x->reason, sizeof(x->reason), "cannot write %s: %s", x->statep, strerror(errno));
    x->fatal_exit = 1;
    return 1;
  }
  progress(x, 0);
  return 0;
}

/* Estimates how many bytes of the frame being received are missing, when
 * the front of the queue is a pad (its length is known); 0 if unknown. */
static size_t missing_of_front(const xfer *x) {
  if (!x->nq || x->q[0].kind != Q_PAD || !x->sc.in_frame) return 0;
  size_t want = pl__export_pad_body_len(x->q[0].seq, x->q[0].pad) + 2; /* "}\n" */
  return want > x->sc.body_len ? want - x->sc.body_len : 0;
}

/* ---- frames ---------------------------------------------------------------- */

/* Keeps what damaged the last frame, once the scanner has all of it: text
 * with a space in it (an injected line), else the byte that broke it. */
static void keep_damage(xfer *x) {
  if (x->sc.damage_open || !x->sc.damage_byte) return;
  if (strchr(x->sc.damage, ' '))
    snprintf(x->damage, sizeof(x->damage), "text injected into it: \"%s\"", x->sc.damage);
  else
    snprintf(x->damage, sizeof(x->damage), "a byte 0x%02x inside a frame", x->sc.damage_byte);
  x->sc.damage_byte = 0;
}

static void note_damage(xfer *x) {
  x->damaged++;
  x->bad_answers++;
  if (!x->damage[0] && x->sc.damage_byte) /* the first: what there is so far */
    snprintf(x->damage, sizeof(x->damage), "a byte 0x%02x inside a frame", x->sc.damage_byte);
}

static int damage_limit(xfer *x) {
  if (x->bad_streak < DAMAGE_LIMIT) return 0;
  snprintf(x->reason, sizeof(x->reason),
           "%d chunks in a row arrived damaged, down to %llu bytes each: the channel damages its "
           "output%s%s%s",
           x->bad_streak, (unsigned long long)x->chunk, x->damage[0] ? " (" : "", x->damage,
           x->damage[0] ? ")" : "");
  x->end_kind = END_DAMAGE;
  return 1;
}

static int on_info(xfer *x, const pl__export_frame *f) {
  char sum[80], ident[256];
  if (f->sum_len + 3 > sizeof(sum) || f->ident_len + 1 > sizeof(ident)) {
    snprintf(x->reason, sizeof(x->reason), "an info frame was too long");
    return 1;
  }
  snprintf(sum, sizeof(sum), "%c:%.*s", f->sum_kind, (int)f->sum_len, f->sum);
  snprintf(ident, sizeof(ident), "%.*s", (int)f->ident_len, f->ident);
  if (x->got_info) { /* asked again, or repeated: must be the same source */
    if (x->st.size != f->size || strcmp(x->st.sum, sum) != 0 || strcmp(x->st.ident, ident) != 0) {
      snprintf(x->reason, sizeof(x->reason), "a second, different info frame arrived");
      return 1;
    }
    return 0;
  }
  if (x->have_ident &&
      (x->st.size != f->size || strcmp(x->st.sum, sum) != 0 || strcmp(x->st.ident, ident) != 0)) {
    if (!x->o->quiet && x->st.offset > 0)
      fprintf(stderr, "proflab export: %s changed since the last session; starting over\n",
              x->remote);
    if (reset_data(x) != 0) return 1;
  }
  x->st.size = f->size;
  snprintf(x->st.sum, sizeof(x->st.sum), "%s", sum);
  snprintf(x->st.ident, sizeof(x->st.ident), "%s", ident);
  snprintf(x->encs, sizeof(x->encs), "%.*s", (int)(f->encs_len < 15 ? f->encs_len : 15), f->encs);
  x->caps_pad = strchr(x->encs, 'N') != NULL;
  if (!x->caps_pad) { /* an older helper: it will never answer `n` or `i` */
    int k = 0;
    for (int i = 0; i < x->nq; i++)
      if (x->q[i].kind == Q_DATA) x->q[k++] = x->q[i];
    x->nq = k;
  }
  x->need_info = 0;
  x->have_ident = 1;
  x->got_info = 1;
  x->any_info = 1;
  x->next_req = x->st.offset;
  x->nrg = 0;
  if (x->fd < 0) {
    if (f->size > (64u << 20)) {
      snprintf(x->reason, sizeof(x->reason), "listing too large");
      x->fatal_exit = 1;
      return 1;
    }
    if (!x->mem || x->mem_cap != f->size + 1) { /* a listing's prefix lives in mem */
      free(x->mem);
      x->mem_cap = 0;
      x->st.offset = x->next_req = 0;
      x->mem = malloc(f->size + 1);
      if (!x->mem) {
        snprintf(x->reason, sizeof(x->reason), "out of memory");
        x->fatal_exit = 1;
        return 1;
      }
      x->mem_cap = f->size + 1;
    }
  }
  if (save_state(x) != 0) {
    snprintf(x->reason, sizeof(x->reason), "cannot write %s: %s", x->statep, strerror(errno));
    x->fatal_exit = 1;
    return 1;
  }
  return 0;
}

static int on_data(xfer *x, const pl__export_frame *f) {
  int j = -1;
  for (int i = 0; i < x->nq && j < 0; i++)
    if (x->q[i].kind == Q_DATA && x->q[i].off == f->offset) j = i;
  if (j < 0) return 0; /* an answer to a request already written off */
  if (f->length != x->q[j].len) {
    /* a shorter read that checks out: the source shrank under the helper;
     * anything else is a damaged length field */
    if (f->length < x->q[j].len && pl__export_frame_data(f, x->raw, PL__EXPORT_CHUNK_MAX,
                                                         x->scratch, PL__EXPORT_FRAME_MAX) == 0) {
      snprintf(x->reason, sizeof(x->reason),
               "the chunk at %llu came back with %llu bytes instead of %llu: the source changed "
               "during the session",
               (unsigned long long)f->offset, (unsigned long long)f->length,
               (unsigned long long)x->q[j].len);
      return 1;
    }
    answered(x, j); /* it was the answer to q[j], damaged */
    x->damaged++;
    data_lost(x, f->offset);
    return damage_limit(x);
  }
  answered(x, j);
  range *r = range_at(x, f->offset);
  if (!r || r->state == R_DONE || r->len != f->length) return 0; /* a duplicate */
  int rc = pl__export_frame_data(f, x->raw, PL__EXPORT_CHUNK_MAX, x->scratch, PL__EXPORT_FRAME_MAX);
  if (rc != 0) {
    /* damaged inside the alphabet (a flipped bit, injected letters): the
     * same range again, smaller */
    if (!x->damage[0])
      snprintf(x->damage, sizeof(x->damage), "bytes changed inside a chunk: its %s failed",
               rc == -EBADMSG ? "checksum" : "encoding");
    x->damaged++;
    data_lost(x, f->offset);
    return damage_limit(x);
  }
  if (x->fd >= 0) {
    size_t done = 0;
    while (done < f->length) {
      ssize_t w = pwrite(x->fd, x->raw + done, (size_t)f->length - done, (off_t)(f->offset + done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        snprintf(x->reason, sizeof(x->reason), "cannot write %s: %s", x->partial, strerror(errno));
        x->fatal_exit = 1;
        return 1;
      }
      done += (size_t)w;
    }
  } else {
    memcpy(x->mem + f->offset, x->raw, (size_t)f->length);
  }
  r->state = R_DONE;
  x->bad_streak = 0;
  x->accepted++;
  x->frame_avg =
      x->frame_avg > 0 ? 0.8 * x->frame_avg + 0.2 * (double)f->payload_len : (double)f->payload_len;
  if (++x->good_streak % GROW_EVERY == 0 && x->chunk < CHUNK_LIMIT) x->chunk *= 2;
  return advance_prefix(x);
}

/* Frame callback: returns 0 to go on, 1 to end the session (reason set). */
static int on_frame(void *ctx, const char *body, size_t len, int bad) {
  xfer *x = ctx;
  pl__export_frame f;
  x->frames++; /* even a damaged frame carried the marker: a helper answered */
  int pr = bad ? -EINVAL : pl__export_frame_parse(body, len, &f);
  trace("<- %s%c %llu", pr ? "damaged " : "", pr ? '-' : f.kind,
        pr ? 0ULL
           : (unsigned long long)(f.kind == PL__FRAME_DATA  ? f.offset
                                  : f.kind == PL__FRAME_PAD ? f.seq
                                                            : 0));
  if (pr != 0) {
    /* The helper answers in order: this was the answer to the front. */
    note_damage(x);
    if (x->nq > 0) {
      qent e = x->q[0];
      queue_drop(x, 1);
      answer_lost(x, &e);
    } else if (!x->got_info) {
      x->need_info = 1;
    }
    return damage_limit(x);
  }
  if (f.kind == PL__FRAME_ERROR) {
    snprintf(x->reason, sizeof(x->reason), "remote: %.*s: %s", (int)f.code_len, f.code, x->remote);
    x->fatal_exit = 1;
    x->remote_err = 1;
    return 1;
  }
  if (f.kind == PL__FRAME_INFO) {
    for (int i = 0; i < x->nq; i++)
      if (x->q[i].kind == Q_INFO) {
        answered(x, i);
        break;
      }
    return on_info(x, &f);
  }
  if (f.kind == PL__FRAME_PAD) {
    for (int i = 0; i < x->nq; i++)
      if (x->q[i].kind == Q_PAD && x->q[i].seq == f.seq) {
        if (f.fill_len != x->q[i].pad) note_damage(x); /* lost or gained bytes */
        answered(x, i);
        break;
      }
    return 0;
  }
  if (f.kind == PL__FRAME_DATA) {
    if (!x->got_info) {
      snprintf(x->reason, sizeof(x->reason), "a chunk arrived before the file's info");
      return 1;
    }
    return on_data(x, &f);
  }
  return 0;
}

/* Starts argv in its own process group with pipes on stdin, stdout and
 * stderr. Returns 0, -1 (errno set) if it could not be started, or 1 with
 * errno set if the program could not be executed (reported by the child
 * through a close-on-exec pipe: nothing to retry). */
static int spawn(xfer *x, const cli_strv *argv, int *out_fd, int *err_fd) {
  int in[2], out[2], err[2], ex[2];
  if (pipe2(in, O_CLOEXEC) != 0) return -1;
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]), close(in[1]);
    return -1;
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(in[0]), close(in[1]), close(out[0]), close(out[1]);
    return -1;
  }
  if (pipe2(ex, O_CLOEXEC) != 0) {
    close(in[0]), close(in[1]), close(out[0]), close(out[1]), close(err[0]), close(err[1]);
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    close(in[0]), close(in[1]), close(out[0]), close(out[1]), close(err[0]), close(err[1]);
    close(ex[0]), close(ex[1]);
    return -1;
  }
  if (pid == 0) {
    setpgid(0, 0);
    signal(SIGPIPE, SIG_DFL);
    if (dup2(in[0], 0) >= 0 && dup2(out[1], 1) >= 0 && dup2(err[1], 2) >= 0)
      execvp(argv->v[0], argv->v);
    int e = errno;
    if (write(ex[1], &e, sizeof(e)) != (ssize_t)sizeof(e)) _exit(127);
    _exit(127);
  }
  setpgid(pid, pid);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  close(ex[1]);
  int e = 0;
  ssize_t n;
  while ((n = read(ex[0], &e, sizeof(e))) < 0 && errno == EINTR) {
  }
  close(ex[0]);
  if (n == (ssize_t)sizeof(e)) {
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    close(in[1]);
    close(out[0]);
    close(err[0]);
    errno = e;
    return 1;
  }
  x->pid = pid;
  x->in_fd = in[1];
  *out_fd = out[0];
  *err_fd = err[0];
  return 0;
}

/* Ends the session: closes its stdin (the helper's cue to exit), then
 * terminates what is left of its process group. */
static void end_session(xfer *x) {
  if (x->in_fd >= 0) close(x->in_fd);
  x->in_fd = -1;
  if (x->pid <= 0) return;
  int status;
  for (int i = 0; i < 50; i++) {
    if (waitpid(x->pid, &status, WNOHANG) == x->pid) goto reap_group;
    sleep_ms(10);
  }
  kill(-x->pid, SIGTERM);
  for (int i = 0; i < 20; i++) {
    if (waitpid(x->pid, &status, WNOHANG) == x->pid) goto reap_group;
    sleep_ms(10);
  }
  kill(-x->pid, SIGKILL);
  while (waitpid(x->pid, &status, 0) < 0 && errno == EINTR) {
  }
reap_group:
  kill(-x->pid, SIGKILL); /* anything the channel left behind */
  x->pid = -1;
}

static char pick_encoding(const char *encs) {
  if (strchr(encs, 'z')) return 'z';
  if (strchr(encs, 'g')) return 'g';
  if (strchr(encs, 'b')) return 'b';
  return 'x';
}

static void keep_stderr(xfer *x, const char *buf, size_t n) {
  /* the last non-empty line, for the final message */
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(x->stderr_line);
    char c = buf[i];
    if (c == '\n' || c == '\r') {
      if (len) x->stderr_line[sizeof(x->stderr_line) - 1] = 1; /* line complete */
      continue;
    }
    if (x->stderr_line[sizeof(x->stderr_line) - 1] == 1) {
      memset(x->stderr_line, 0, sizeof(x->stderr_line));
      len = 0;
    }
    if (len + 2 < sizeof(x->stderr_line)) x->stderr_line[len] = c;
  }
}

/* The channel has been silent while answers are due: asks for padding
 * (a held-back tail is pushed out by more output) and, after long enough,
 * ends the session naming what the channel did. Returns 0, -1 (input
 * closed) or 1 (session over, reason set). */
static int nudge_or_stall(xfer *x, double t, double *wake) {
  double quiet = t - x->last_byte;
  int levels = x->got_info ? NUDGES : NUDGES_BEFORE_INFO;
  int can = x->caps_pad || !x->got_info; /* before the info: try, it costs little */
  if (x->nq > 0 && can && x->nudge_level < levels) {
    double at = nudge_after_s[x->nudge_level];
    double due = x->last_byte > x->last_nudge ? x->last_byte + at : x->last_nudge + at;
    if (t >= due) {
      size_t missing = missing_of_front(x);
      if (missing > x->held) x->held = missing;
      size_t pad = nudge_pad[x->nudge_level];
      if (pad < 2 * x->held)
        pad = 2 * x->held > PL__EXPORT_PAD_MAX ? PL__EXPORT_PAD_MAX : 2 * x->held;
      if (send_pad(x, pad) != 0) return -1;
      x->nudged += pad;
      x->nudge_level++;
      x->last_nudge = t;
      due = t + (x->nudge_level < levels ? nudge_after_s[x->nudge_level] : 1);
    }
    if (due < *wake) *wake = due;
  }
  /* Once a helper that answers padding is talking, silence despite padding
   * asked for is a stall: it is not worth the whole --timeout. */
  if (x->got_info && x->caps_pad && x->nudge_level > 0 && x->nq > 0) {
    double stall = 4 * x->max_rtt; /* a slow link answers padding slowly */
    if (stall < STALL_MIN_S) stall = STALL_MIN_S;
    if (stall > x->o->timeout_s) stall = x->o->timeout_s;
    if (quiet >= stall) {
      size_t missing = missing_of_front(x);
      x->end_kind = END_STALL;
      if (x->bad_answers > 0) {
        snprintf(x->reason, sizeof(x->reason),
                 "the last %d answers arrived damaged or not at all%s%s%s, then none came in %g s",
                 x->bad_answers, x->damage[0] ? " (" : "", x->damage, x->damage[0] ? ")" : "",
                 stall);
        x->end_kind = END_DAMAGE;
      } else if (x->sc.in_frame && missing)
        snprintf(x->reason, sizeof(x->reason),
                 "the channel held back at least the last %zu bytes of its output and never "
                 "delivered them, not even behind %zu bytes of padding (%g s)",
                 missing, x->nudged, stall);
      else if (x->sc.in_frame)
        snprintf(x->reason, sizeof(x->reason),
                 "the channel stopped in the middle of a frame (%zu bytes of it arrived) and "
                 "never delivered the rest, not even behind %zu bytes of padding (%g s)",
                 x->sc.body_len, x->nudged, stall);
      else
        snprintf(x->reason, sizeof(x->reason),
                 "the channel stopped delivering output: no answer to %zu bytes of padding in "
                 "%g s",
                 x->nudged, stall);
      return 1;
    }
    if (x->last_byte + stall < *wake) *wake = x->last_byte + stall;
  }
  /* An `i` an older helper ignores: end the session rather than wait for
   * the whole --timeout (the info frame arrived damaged). */
  if (!x->got_info && x->info_asked > 0 && t - x->info_asked > 2.0 && t - x->last_byte > 1.0) {
    snprintf(x->reason, sizeof(x->reason), "the info frame arrived damaged%s%s%s",
             x->damage[0] ? " (" : "", x->damage, x->damage[0] ? ")" : "");
    x->end_kind = END_DAMAGE;
    return 1;
  }
  return 0;
}

static int run_session(xfer *x, int helper) {
  cli_strv remote = {0}, argv = {0};
  int out_fd = -1, err_fd = -1, result = SESS_CUT;
  x->sessions++;
  x->got_info = x->frames = x->nq = x->nrg = 0;
  x->caps_pad = x->need_info = x->info_asks = x->trailer_sent = x->nudge_level = 0;
  x->bad_streak = x->good_streak = x->bad_answers = 0;
  x->info_asked = x->last_nudge = x->max_rtt = 0;
  x->pad_seq = 0;
  x->nudged = 0;
  x->redone = 0;
  x->accepted = 0;
  x->reason[0] = '\0';
  x->fatal_exit = 0;
  x->end_kind = END_OTHER;
  x->silent = 0;
  unsigned char rnd[PL__EXPORT_MARKER_LEN / 2];
  if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
    snprintf(x->reason, sizeof(x->reason), "no random bytes for the marker");
    return SESS_FATAL;
  }
  for (size_t i = 0; i < sizeof(rnd); i++) snprintf(x->marker + 2 * i, 3, "%02x", rnd[i]);
  if (pl__export_scanner_init(&x->sc, x->marker) != 0) {
    snprintf(x->reason, sizeof(x->reason), "bad marker");
    return SESS_FATAL;
  }

  if (cli_export_remote_argv(helper, x->op, x->remote, &remote) != 0) goto oom;
  for (size_t i = 0; i < x->o->ch.prefix.n; i++)
    if (cli_strv_push(&argv, x->o->ch.prefix.v[i]) != 0) goto oom;
  if (x->o->ch.ecs) {
    char *cmd = cli_export_shell_join(&remote);
    if (!cmd || cli_strv_push(&argv, cmd) != 0) {
      free(cmd);
      goto oom;
    }
    free(cmd);
  } else {
    for (size_t i = 0; i < remote.n; i++)
      if (cli_strv_push(&argv, remote.v[i]) != 0) goto oom;
  }
  int sp = spawn(x, &argv, &out_fd, &err_fd);
  if (sp != 0) {
    snprintf(x->reason, sizeof(x->reason), "cannot run %s: %s", argv.v[0], strerror(errno));
    out_fd = err_fd = -1;
    result = SESS_FATAL;
    goto out;
  }
  /* The marker, then a pad: the info frame comes first, and a channel that
   * holds back a tail gets the output that pushes it out. The implicit
   * first entry of the queue is the info frame the helper sends unasked. */
  char line[PL__EXPORT_MARKER_LEN + 2];
  snprintf(line, sizeof(line), "%s\n", x->marker);
  x->q[x->nq++] = (qent){Q_INFO, 0, 0, 0, 0, 0};
  if (write(x->in_fd, line, PL__EXPORT_MARKER_LEN + 1) != PL__EXPORT_MARKER_LEN + 1 ||
      send_pad(x, TRAILER_PAD) != 0) {
    snprintf(x->reason, sizeof(x->reason), "the session closed its input");
    goto out;
  }
  char enc = 'b';
  double t_start = now_s(), last = t_start;
  x->last_byte = t_start;
  char buf[65536];
  for (;;) {
    if (x->got_info) {
      if (x->st.offset == x->st.size) {
        result = SESS_DONE;
        break;
      }
      enc = pick_encoding(x->encs);
    }
    if (send_requests(x, enc) != 0) {
      snprintf(x->reason, sizeof(x->reason), "the session closed its input");
      break;
    }
    double t = now_s(), wake = last + x->o->timeout_s;
    if (t >= wake) {
      x->silent = x->frames == 0 && !x->sc.in_frame;
      if (x->silent && x->nudged)
        snprintf(x->reason, sizeof(x->reason),
                 "the session was silent for %g s, even with %zu bytes of padding asked for (a "
                 "channel that hangs, or holds back all its output)",
                 x->o->timeout_s, x->nudged + TRAILER_PAD);
      else
        snprintf(x->reason, sizeof(x->reason), "the session was silent for %g s", x->o->timeout_s);
      break;
    }
    int ns = nudge_or_stall(x, t, &wake);
    if (ns < 0) {
      snprintf(x->reason, sizeof(x->reason), "the session closed its input");
      break;
    }
    if (ns > 0) break;
    struct pollfd p[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    int np = err_fd >= 0 ? 2 : 1;
    double left = wake - t;
    if (left > 1) left = 1;
    int r = poll(p, (nfds_t)np, (int)(left * 1000) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      snprintf(x->reason, sizeof(x->reason), "poll: %s", strerror(errno));
      break;
    }
    if (np == 2 && (p[1].revents & (POLLIN | POLLHUP))) {
      ssize_t n = read(err_fd, buf, sizeof(buf));
      if (n > 0)
        keep_stderr(x, buf, (size_t)n);
      else if (n == 0 || errno != EINTR) {
        close(err_fd);
        err_fd = -1;
      }
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(out_fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (!x->reason[0]) snprintf(x->reason, sizeof(x->reason), "the session ended early");
        break;
      }
      t = now_s();
      last = x->last_byte = t;
      int s = pl__export_scan(&x->sc, buf, (size_t)n, on_frame, x);
      keep_damage(x);
      if (s < 0) goto oom;
      if (s > 0) break;
    }
  }
  trace("session %d ends: %s (%d chunks accepted, %llu asked again; %llu damaged frames so far)",
        x->sessions, result == SESS_DONE ? "done" : x->reason, x->accepted,
        (unsigned long long)x->redone, (unsigned long long)x->damaged);
  if (result != SESS_DONE) {
    if (x->fatal_exit)
      result = SESS_FATAL;
    else if (x->frames == 0 && !x->sc.in_frame)
      result = SESS_NOFRAME;
  }
  if (x->held > 0 && !x->held_noted && !x->o->quiet && result == SESS_DONE) {
    x->held_noted = 1;
    fprintf(stderr,
            "proflab export: note: the channel holds back at least %zu bytes of output until "
            "more follows; padding pushed them through\n",
            x->held);
  }
  goto out;
oom:
  snprintf(x->reason, sizeof(x->reason), "out of memory");
  result = SESS_FATAL;
out:
  end_session(x);
  if (out_fd >= 0) close(out_fd);
  if (err_fd >= 0) close(err_fd);
  pl__export_scanner_free(&x->sc);
  cli_strv_free(&remote);
  cli_strv_free(&argv);
  return result;
}

/* ---- whole-file check and the retry loop ------------------------------------ */

/* Checks the partial file against the source's sum ("s:hex" or "k:dec"). */
static int verify_file(xfer *x, int *match) {
  unsigned char buf[65536], md[32];
  unsigned mdlen = 0;
  uint32_t ck = 0;
  uint64_t total = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) goto fail;
  for (;;) {
    ssize_t n = pread(x->fd, buf, sizeof(buf), (off_t)total);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) goto fail;
    if (n == 0) break;
    if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) goto fail;
    ck = pl__export_cksum_update(ck, buf, (size_t)n);
    total += (uint64_t)n;
  }
  if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) goto fail;
  EVP_MD_CTX_free(ctx);
  char want[80];
  if (x->st.sum[0] == 's') {
    for (int i = 0; i < 32; i++) snprintf(want + 2 * i, 3, "%02x", md[i]);
    *match = total == x->st.size && strcmp(want, x->st.sum + 2) == 0;
  } else {
    snprintf(want, sizeof(want), "%u", pl__export_cksum_final(ck, total));
    *match = total == x->st.size && strcmp(want, x->st.sum + 2) == 0;
  }
  return 0;
fail:
  EVP_MD_CTX_free(ctx);
  return -1;
}

static int fsync_dir_of(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof(dir), "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash)
    snprintf(dir, sizeof(dir), ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int r = fsync(fd);
  close(fd);
  return r;
}

/* Moves the verified partial file to its final name. */
static int finish(xfer *x) {
  if (fsync(x->fd) != 0) {
    fprintf(stderr, "proflab export: fsync %s: %s\n", x->partial, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  int r = x->o->force ? rename(x->partial, x->local)
                      : renameat2(AT_FDCWD, x->partial, AT_FDCWD, x->local, RENAME_NOREPLACE);
  if (r != 0) {
    fprintf(stderr, "proflab export: cannot create %s: %s%s\n", x->local, strerror(errno),
            errno == EEXIST ? " (use --force to overwrite)" : "");
    return CLI_EXIT_FAIL;
  }
  if (fsync_dir_of(x->local) != 0 && !x->o->quiet)
    fprintf(stderr, "proflab export: warning: cannot fsync the directory of %s: %s\n", x->local,
            strerror(errno));
  if (unlink(x->statep) != 0 && errno != ENOENT && !x->o->quiet)
    fprintf(stderr, "proflab export: warning: cannot remove %s: %s\n", x->statep, strerror(errno));
  return CLI_EXIT_OK;
}

static long backoff_ms(int fails) {
  const char *e = getenv("PROFLAB_EXPORT_BACKOFF_MS");
  long base = 200;
  if (e && *e) {
    char *end;
    long v = strtol(e, &end, 10);
    if (*end == '\0' && v >= 0 && v <= 60000) base = v;
  }
  long ms = base * fails;
  return ms > 5000 ? 5000 : ms;
}

/* Runs sessions until the data is complete or retries run out. */
static int transfer(xfer *x) {
  int order[CLI_EXPORT_HELPER_COUNT], norder = 0;
  if (x->o->helper_forced >= 0)
    order[norder++] = x->o->helper_forced;
  else
    for (int h = 0; h < CLI_EXPORT_HELPER_COUNT; h++) order[norder++] = h;
  int fails = 0, same = 0, last_kind = END_OTHER;
  x->tty = isatty(STDERR_FILENO);
  x->t0 = now_s();
  x->off0 = x->st.offset;
  for (;;) {
    uint64_t before = x->st.offset;
    int r = SESS_NOFRAME;
    if (x->helper >= 0) {
      r = run_session(x, x->helper);
      if (r == SESS_NOFRAME && x->o->helper_forced < 0) x->helper = -1; /* probe again */
    } else {
      /* a silent session is no missing helper: the next would be as silent */
      x->silent = 0;
      for (int i = 0; i < norder && r == SESS_NOFRAME && !x->silent; i++) {
        r = run_session(x, order[i]);
        if (r != SESS_NOFRAME) x->helper = order[i];
      }
    }
    if (r == SESS_FATAL) {
      progress(x, 1);
      fprintf(stderr, "proflab export: %s\n", x->reason);
      return CLI_EXIT_FAIL;
    }
    if (r == SESS_DONE) {
      if (x->fd < 0) return CLI_EXIT_OK;
      int match = 0;
      if (verify_file(x, &match) != 0) {
        fprintf(stderr, "proflab export: cannot read %s: %s\n", x->partial, strerror(errno));
        return CLI_EXIT_FAIL;
      }
      if (match) {
        progress(x, 1);
        save_state(x);
        return finish(x);
      }
      snprintf(x->reason, sizeof(x->reason),
               "the whole file did not match the source's %s; starting over",
               x->st.sum[0] == 's' ? "SHA-256" : "cksum");
      if (!x->o->quiet) fprintf(stderr, "proflab export: %s\n", x->reason);
      x->have_ident = 0;
      unlink(x->statep);
      if (reset_data(x) != 0) {
        fprintf(stderr, "proflab export: %s\n", x->reason);
        return CLI_EXIT_FAIL;
      }
    }
    if (x->st.offset > before) {
      fails = same = 0;
    } else {
      fails++;
      /* a stall the channel never releases, or damage in every chunk, that
       * repeats without progress is the channel's nature, not bad luck */
      same = x->end_kind != END_OTHER && x->end_kind == last_kind ? same + 1 : 1;
    }
    last_kind = x->end_kind;
    if (x->chunk > PL__EXPORT_GRANULE) x->chunk /= 2; /* a cut: smaller chunks lose less */
    x->chunk -= x->chunk % PL__EXPORT_GRANULE;
    save_state(x);
    /* Until some helper has answered, the channel itself may be broken
     * (no plugin, no such container): give up sooner. */
    int limit = x->any_info || x->o->retries < 2 ? x->o->retries : 2;
    if (fails > limit) break;
    /* Nothing at all came back for --timeout, padding asked for included:
     * another session would wait as long again. */
    if (!x->any_info && x->silent) break;
    if (x->end_kind != END_OTHER && same >= 3 && fails >= 3) break;
    if (x->o->max_sessions && x->sessions >= x->o->max_sessions) {
      if (!x->reason[0]) snprintf(x->reason, sizeof(x->reason), "--max-sessions reached");
      break;
    }
    sleep_ms(backoff_ms(fails));
  }
  progress(x, 1);
  const char *why = x->reason[0] ? x->reason : "no answer";
  if (!x->any_info && (x->fd < 0 || x->st.offset == 0)) {
    fprintf(stderr, "proflab export: no remote helper answered after %d sessions: %s%s%s\n",
            x->sessions, why, x->stderr_line[0] ? "; last error: " : "", x->stderr_line);
    return CLI_EXIT_FAIL;
  }
  if (x->fd < 0) {
    fprintf(stderr, "proflab export: listing incomplete after %d sessions: %s\n", x->sessions, why);
    return CLI_EXIT_FAIL;
  }
  fprintf(stderr,
          "proflab export: incomplete: %llu of %llu bytes verified after %d sessions (%s); run "
          "the same command again to resume\n",
          (unsigned long long)x->st.offset, (unsigned long long)x->st.size, x->sessions, why);
  return CLI_EXIT_RESUMABLE;
}

static int xfer_init(xfer *x, const cli_export_opts *o, const char *op, const char *remote) {
  memset(x, 0, sizeof(*x));
  x->o = o;
  x->op = op;
  x->remote = remote;
  x->fd = -1;
  x->in_fd = -1;
  x->pid = -1;
  x->helper = o->helper_forced;
  x->chunk = o->chunk0 ? o->chunk0 : CHUNK_DEFAULT;
  x->raw = malloc(PL__EXPORT_CHUNK_MAX);
  x->scratch = malloc(PL__EXPORT_FRAME_MAX);
  if (!x->raw || !x->scratch) {
    fprintf(stderr, "proflab export: out of memory\n");
    return -1;
  }
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

static void xfer_free(xfer *x) {
  free(x->raw);
  free(x->scratch);
  free(x->mem);
  if (x->fd >= 0) close(x->fd);
}

int cli_export_list(const cli_export_opts *o, const char *dir, char **out, size_t *outlen) {
  xfer x;
  if (xfer_init(&x, o, "list", dir) != 0) {
    xfer_free(&x);
    return CLI_EXIT_FAIL;
  }
  x.chunk = CHUNK_LIMIT;
  int rc = transfer(&x);
  if (rc == CLI_EXIT_OK) {
    /* a listing has no resume state; check its SHA-256 here */
    unsigned char md[32];
    unsigned mdlen = 0;
    char hex[65];
    EVP_Digest(x.mem, (size_t)x.st.size, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (x.st.sum[0] == 's' && strcmp(hex, x.st.sum + 2) != 0) {
      fprintf(stderr, "proflab export: the listing failed its SHA-256 check; try again\n");
      rc = CLI_EXIT_FAIL;
    } else {
      x.mem[x.st.size] = '\0';
      *out = (char *)x.mem;
      *outlen = (size_t)x.st.size;
      x.mem = NULL;
    }
  }
  xfer_free(&x);
  return rc;
}

/* Opens (or starts) the resume state for local; returns 0 or an exit code. */
static int open_state(xfer *x, const char *local) {
  const cli_export_opts *o = x->o;
  if (snprintf(x->local, sizeof(x->local), "%s", local) >= (int)sizeof(x->local)) {
    fprintf(stderr, "proflab export: destination path too long\n");
    return CLI_EXIT_USAGE;
  }
  snprintf(x->partial, sizeof(x->partial), "%s.proflab-partial", local);
  snprintf(x->statep, sizeof(x->statep), "%s.proflab-state", local);
  snprintf(x->statetmp, sizeof(x->statetmp), "%s.proflab-state.tmp", local);
  struct stat sb;
  if (!o->force && stat(local, &sb) == 0) {
    fprintf(stderr, "proflab export: %s exists (use --force to overwrite)\n", local);
    return CLI_EXIT_FAIL;
  }
  x->fd = open(x->partial, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (x->fd < 0) {
    fprintf(stderr, "proflab export: cannot open %s: %s\n", x->partial, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  if (flock(x->fd, LOCK_EX | LOCK_NB) != 0) {
    fprintf(stderr, "proflab export: another export is writing %s\n", x->partial);
    return CLI_EXIT_FAIL;
  }
  /* Resume only from a state that parses, names the same source and agrees
   * with the partial file; anything else starts over. */
  int resumed = 0;
  if (o->resume) {
    char text[PL__EXPORT_STATE_FIELD + 1024];
    int sfd = open(x->statep, O_RDONLY | O_CLOEXEC);
    if (sfd >= 0) {
      ssize_t n = read(sfd, text, sizeof(text));
      close(sfd);
      pl__export_state st;
      if (n > 0 && pl__export_state_parse(text, (size_t)n, &st) == 0 &&
          strcmp(st.remote, x->remote) == 0 && fstat(x->fd, &sb) == 0) {
        uint64_t have = (uint64_t)sb.st_size < st.offset ? (uint64_t)sb.st_size : st.offset;
        if (have < st.size) have -= have % PL__EXPORT_GRANULE;
        st.offset = have;
        x->st = st;
        x->have_ident = 1;
        if (!o->chunk0 && st.chunk >= PL__EXPORT_GRANULE && st.chunk <= CHUNK_LIMIT)
          x->chunk = st.chunk - st.chunk % PL__EXPORT_GRANULE;
        if (o->helper_forced < 0) {
          x->helper = -1;
          for (int h = 0; h < CLI_EXPORT_HELPER_COUNT; h++)
            if (strcmp(st.helper, cli_export_helper_names[h]) == 0) x->helper = h;
        }
        resumed = 1;
        if (!o->quiet && have > 0)
          fprintf(stderr, "proflab export: resuming %s at %llu of %llu bytes\n", x->remote,
                  (unsigned long long)have, (unsigned long long)st.size);
      } else if (n > 0 && !o->quiet) {
        fprintf(stderr, "proflab export: ignoring unusable state %s; starting over\n", x->statep);
      }
    }
  }
  if (!resumed) {
    memset(&x->st, 0, sizeof(x->st));
    x->have_ident = 0;
  }
  snprintf(x->st.remote, sizeof(x->st.remote), "%s", x->remote);
  if (ftruncate(x->fd, (off_t)x->st.offset) != 0) {
    fprintf(stderr, "proflab export: cannot truncate %s: %s\n", x->partial, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  return 0;
}

int cli_export_get(const cli_export_opts *o, const char *remote, const char *local) {
  if (strchr(remote, '\n') || strlen(remote) >= PL__EXPORT_STATE_FIELD) {
    fprintf(stderr, "proflab export: unusable remote path\n");
    return CLI_EXIT_USAGE;
  }
  xfer x;
  int rc;
  if (xfer_init(&x, o, "get", remote) != 0) {
    rc = CLI_EXIT_FAIL;
    goto out;
  }
  rc = open_state(&x, local);
  if (rc != 0) goto out;
  rc = transfer(&x);
  if (rc == CLI_EXIT_FAIL && (x.remote_err || (!x.have_ident && x.st.offset == 0))) {
    /* the source is missing or unreadable: nothing to resume */
    unlink(x.partial);
    unlink(x.statep);
  }
out:
  xfer_free(&x);
  return rc;
}
