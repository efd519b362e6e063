/* exec-sim: a fault-injecting exec channel for testing `proflab export`.
 *
 *   exec-sim CMD [ARGS...]
 *
 * Runs CMD locally, relays stdin to it and its output back, and injects the
 * faults F1-F12 of the exec-channel fault model (docs/export.md) chosen from
 * a seed. Configuration is in the environment so wrapper scripts (fake aws,
 * kubectl, docker) can simply exec it:
 *
 *   EXECSIM_SEED      seed (default 1); with EXECSIM_COUNTER each session
 *                     draws from seed + session number
 *   EXECSIM_COUNTER   file holding the session count (created as needed)
 *   EXECSIM_FAULTS    comma list: F1..F12, all, none (default none)
 *   EXECSIM_P         per-session probability of each enabled fault (0.35)
 *   EXECSIM_SCALE     time scale: F8's 1 s start and 0.5 MB/s, F9's idle
 *                     timeout all scale with it (default 1)
 *   EXECSIM_SPAN      bytes of output within which cuts, flips and injected
 *                     lines are placed (default 262144)
 *   EXECSIM_PTY=1     ECS-like terminal: CRLF, stdin echoed, stderr merged,
 *                     banners, exit status always 0, and stdin EOF ends the
 *                     session with "Cannot perform start session: EOF"
 *   EXECSIM_SOURCE    file that F12 changes at the start of a session
 *   EXECSIM_F12_MAX   at most this many F12 changes per counter file (2)
 *   EXECSIM_LOG       append one line per session naming the faults fired
 *
 * Hostile channels (issue 14), each in every session, independent of the
 * fault draw above (so they combine with it):
 *   EXECSIM_WRAP=W        a terminal wrapping lines at W columns (CRLF inserted)
 *   EXECSIM_CRLF=1        LF becomes CRLF (a pty)
 *   EXECSIM_INJECT_EVERY=B  a warning line injected mid-stream about every B
 *                         bytes of output (the first at a random point below
 *                         B): inside frames, inside their opening marker, in
 *                         the info frame, anywhere
 *   EXECSIM_INJECT_BRACE=K,...  the warning line injected 8 bytes after the
 *                         K-th '{' of the command's stdout (K = 1: inside
 *                         the opening marker of the first frame, the info)
 *   EXECSIM_HOLD=N        the last N bytes of output stay in the channel until
 *                         more output pushes them out (pty or agent-side
 *                         buffering); whatever is held when the command exits
 *                         is lost
 *   EXECSIM_FREEZE=B      after B bytes of output the channel delivers
 *                         nothing more, yet stays open and keeps relaying
 *                         stdin (a tail that is never delivered)
 *   EXECSIM_RATE=R        link rate in bytes/s (0: unlimited), and
 *   EXECSIM_START=S       seconds to start a session: a link like F8's at a
 *                         chosen speed; not scaled by EXECSIM_SCALE
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng;
static uint64_t rnd(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 2685821657736338717ULL;
}
static uint64_t rnd_below(uint64_t n) { return n ? rnd() % n : 0; }
static double rnd01(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s) {
  if (s <= 0) return;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static double env_num(const char *name, double def) {
  const char *v = getenv(name);
  if (!v || !*v) return def;
  char *end;
  double d = strtod(v, &end);
  if (*end || end == v) {
    fprintf(stderr, "exec-sim: bad %s\n", name);
    exit(2);
  }
  return d;
}

/* "1".."12" -> the fault number, else 0. */
static int fault_no(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  return end != s && *end == '\0' && v >= 1 && v <= 12 ? (int)v : 0;
}

/* Reads and increments a counter file under a lock; returns the old value. */
static long bump(const char *path, long limit) {
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  long v = 0;
  if (flock(fd, LOCK_EX) == 0) {
    char buf[32] = {0};
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n > 0) v = strtol(buf, NULL, 10);
    if (limit < 0 || v < limit) {
      int m = snprintf(buf, sizeof(buf), "%ld\n", v + 1);
      if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)m, 0) != m) v = -1;
    }
  }
  close(fd);
  return v;
}

/* ---- state ------------------------------------------------------------------ */

static int fault[13];
static int pty;
static double scale;
static FILE *logfp;
static pid_t child = -1;

static char *outq;
static size_t outq_len, outq_cap;
static uint64_t produced, written; /* bytes into / out of the queue */
static size_t since_nl;
static uint64_t cut_at = UINT64_MAX, hang_at = UINT64_MAX, stall_at = UINT64_MAX;
static uint64_t flip_at[3] = {UINT64_MAX, UINT64_MAX, UINT64_MAX};
static uint64_t inject_at = UINT64_MAX;
static size_t wrap_w, holdback, hold_push;
static uint64_t inject_every, freeze_at = UINT64_MAX;
static long brace_at[8], braces; /* EXECSIM_INJECT_BRACE targets, '{' seen */
static int nbrace_at;
static long injected;
static int crlf;
static double rate; /* bytes/s, 0 = unlimited */
static double idle_s;
static char session_id[32];
static long session_no;

static void die_child(void) {
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    child = -1;
  }
}

static void raw_write(const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(STDOUT_FILENO, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      die_child();
      _exit(0);
    }
    p += w;
    n -= (size_t)w;
  }
}

static void banner_end(void) {
  if (fault[3] || pty) {
    char b[128];
    int n =
        snprintf(b, sizeof(b), "\r\n\r\nExiting session with sessionId: %s.\r\n\r\n", session_id);
    raw_write(b, (size_t)n);
  }
}

static void push(char c) {
  if (outq_len == outq_cap) {
    outq_cap = outq_cap ? outq_cap * 2 : 65536;
    outq = realloc(outq, outq_cap);
    if (!outq) _exit(3);
  }
  if (produced == flip_at[0] || produced == flip_at[1] || produced == flip_at[2])
    c ^= (char)(1 << rnd_below(8));
  outq[outq_len++] = c;
  produced++;
}

static void emit(const char *p, size_t n);

static void emit_byte(char c) {
  if (produced >= inject_at) {
    inject_at = inject_every ? produced + inject_every / 2 + rnd_below(inject_every) : UINT64_MAX;
    static const char warn[] =
        "\nbash: warning: setlocale: LC_ALL: cannot change locale (en_US.UTF-8)\n";
    emit(warn, sizeof(warn) - 1);
    if (logfp && !injected++)
      fprintf(logfp, "session %ld: injected a line at %llu\n", session_no,
              (unsigned long long)produced);
  }
  if (c == '\n') {
    if (pty || fault[4] || crlf) push('\r');
    push('\n');
    since_nl = 0;
    return;
  }
  if (wrap_w && since_nl >= wrap_w) {
    push('\r');
    push('\n');
    since_nl = 0;
  }
  push(c);
  since_nl++;
}

static void emit(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) emit_byte(p[i]);
}

/* Sends what the link allows; returns seconds until it may send more. */
static double last_send, last_produce, last_write;
static double tokens;

static double flush_out(int final) {
  double t = now_s();
  if (rate > 0) {
    tokens += (t - last_send) * rate;
    if (tokens > rate * 0.05 + 1024) tokens = rate * 0.05 + 1024;
  }
  last_send = t;
  for (;;) {
    size_t avail = outq_len;
    /* F2: the tail stays in flight until output has been quiet a while */
    if (holdback && !final && t - last_produce < 0.05 * scale + 0.005)
      avail = avail > holdback ? avail - holdback : 0;
    /* EXECSIM_HOLD: the tail leaves only when more output pushes it */
    if (hold_push) avail = avail > hold_push ? avail - hold_push : 0;
    if (avail == 0) return -1;
    size_t n = avail > 1024 && fault[5] ? 1024 : avail;
    if (rate > 0) {
      if (tokens < 1) return 1.0 / rate * 64;
      if ((double)n > tokens) n = (size_t)tokens;
    }
    if (written + n > hang_at) n = (size_t)(hang_at - written);
    if (written + n > stall_at) n = (size_t)(stall_at - written);
    if (written + n > cut_at) n = (size_t)(cut_at - written);
    if (written + n > freeze_at) n = (size_t)(freeze_at - written);
    if (n == 0) {
      if (written == cut_at) {
        raw_write("Cannot perform start session: EOF", 33);
        if (logfp)
          fprintf(logfp, "session %ld: cut at %llu\n", session_no, (unsigned long long)cut_at);
        die_child();
        _exit(0);
      }
      return -1; /* hang or stall: nothing more leaves */
    }
    raw_write(outq, n);
    memmove(outq, outq + n, outq_len - n);
    outq_len -= n;
    written += n;
    tokens -= (double)n;
    last_write = t;
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: exec-sim CMD [ARGS...] (configuration in EXECSIM_* variables)\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  uint64_t seed = (uint64_t)env_num("EXECSIM_SEED", 1);
  scale = env_num("EXECSIM_SCALE", 1);
  double p = env_num("EXECSIM_P", 0.35);
  uint64_t span = (uint64_t)env_num("EXECSIM_SPAN", 262144);
  pty = getenv("EXECSIM_PTY") && strcmp(getenv("EXECSIM_PTY"), "1") == 0;
  const char *counter = getenv("EXECSIM_COUNTER");
  long session = counter ? bump(counter, -1) : 0;
  session_no = session;
  rng =
      (seed * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)session * 0xD1B54A32D192ED03ULL) ^ 0x5DEECE66DULL;
  if (!rng) rng = 1;
  for (int i = 0; i < 8; i++) rnd();
  snprintf(session_id, sizeof(session_id), "ecs-execute-command-%08llx",
           (unsigned long long)(rnd() & 0xffffffff));

  const char *fl = getenv("EXECSIM_FAULTS");
  int enabled[13] = {0};
  if (fl && *fl) {
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", fl);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
      if (strcmp(t, "all") == 0)
        for (int i = 1; i <= 12; i++) enabled[i] = 1;
      else if (strcmp(t, "none") == 0) {
      } else if ((t[0] == 'F' || t[0] == 'f') && fault_no(t + 1) > 0)
        enabled[fault_no(t + 1)] = 1;
      else {
        fprintf(stderr, "exec-sim: unknown fault %s\n", t);
        return 2;
      }
    }
  }
  for (int i = 1; i <= 12; i++) fault[i] = enabled[i] && rnd01() < p;
  const char *logp = getenv("EXECSIM_LOG");
  if (logp) logfp = fopen(logp, "a");
  if (logfp) {
    setvbuf(logfp, NULL, _IOLBF, 0);
    fprintf(logfp, "session %ld:", session);
    for (int i = 1; i <= 12; i++)
      if (fault[i]) fprintf(logfp, " F%d", i);
    fprintf(logfp, "\n");
  }
  /* F10: the API refuses; nothing runs */
  if (fault[10]) {
    fprintf(stderr,
            "\nAn error occurred (TargetNotConnectedException) when calling the ExecuteCommand "
            "operation: The execute command failed due to an internal error. Try again later.\n");
    return 255;
  }
  /* F12: the source changes between sessions */
  const char *src = getenv("EXECSIM_SOURCE");
  if (fault[12] && src && counter) {
    char f12[4200];
    snprintf(f12, sizeof(f12), "%s.f12", counter);
    if (bump(f12, (long)env_num("EXECSIM_F12_MAX", 2)) < (long)env_num("EXECSIM_F12_MAX", 2)) {
      int grow = rnd() & 1;
      int fd = open(src, grow ? O_WRONLY | O_APPEND : O_WRONLY);
      if (fd >= 0) {
        char junk[4096];
        for (size_t i = 0; i < sizeof(junk); i++) junk[i] = (char)rnd();
        if (grow) {
          if (write(fd, junk, 1 + rnd_below(sizeof(junk))) < 0) perror("exec-sim: F12");
        } else {
          off_t end = lseek(fd, 0, SEEK_END);
          if (end > 0 && pwrite(fd, junk, 64, (off_t)rnd_below((uint64_t)end / 2)) < 0)
            perror("exec-sim: F12");
        }
        close(fd);
        if (logfp) fprintf(logfp, "session %ld: source %s\n", session, grow ? "grew" : "rewritten");
      }
    }
  }
  if (fault[1]) cut_at = rnd_below(span + 1);
  if (fault[2]) holdback = 1 + rnd_below(4096);
  if (fault[4]) inject_at = rnd_below(span);
  if (fault[5]) wrap_w = 80 + rnd_below(120);
  if (fault[6])
    for (int i = 0; i < 3; i++) flip_at[i] = i == 0 || (rnd() & 1) ? rnd_below(span) : UINT64_MAX;
  if (fault[7]) hang_at = rnd_below(span);
  if (fault[8]) rate = 500000.0 / scale;
  wrap_w = (size_t)env_num("EXECSIM_WRAP", (double)wrap_w);
  crlf = env_num("EXECSIM_CRLF", 0) != 0;
  inject_every = (uint64_t)env_num("EXECSIM_INJECT_EVERY", 0);
  if (inject_every && inject_every < 256) inject_every = 256; /* longer than the line itself */
  if (inject_every) inject_at = rnd_below(inject_every);
  hold_push = (size_t)env_num("EXECSIM_HOLD", 0);
  const char *br = getenv("EXECSIM_INJECT_BRACE");
  for (char *e; br && *br && nbrace_at < 8; br = *e ? e + 1 : e) {
    brace_at[nbrace_at] = strtol(br, &e, 10);
    if (e == br || (*e && *e != ',') || brace_at[nbrace_at] < 1) {
      fprintf(stderr, "exec-sim: bad EXECSIM_INJECT_BRACE\n");
      return 2;
    }
    nbrace_at++;
  }
  double fz = env_num("EXECSIM_FREEZE", -1);
  if (fz >= 0) freeze_at = (uint64_t)fz;
  if (getenv("EXECSIM_RATE") && *getenv("EXECSIM_RATE")) rate = env_num("EXECSIM_RATE", 0);
  double start_s = env_num("EXECSIM_START", 0);
  if (logfp &&
      (wrap_w || crlf || inject_every || nbrace_at || hold_push || freeze_at != UINT64_MAX))
    fprintf(logfp,
            "session %ld: hostile wrap=%zu crlf=%d inject_every=%llu inject_brace=%d hold=%zu "
            "freeze=%lld\n",
            session, wrap_w, crlf, (unsigned long long)inject_every, nbrace_at, hold_push,
            freeze_at == UINT64_MAX ? -1LL : (long long)freeze_at);
  idle_s = 2.0 * scale + 0.05;
  if (fault[9]) stall_at = rnd_below(span);

  if (fault[8]) sleep_s(1.0 * scale); /* session start */
  sleep_s(start_s);
  if (fault[3] || pty) {
    char b[256];
    int n = snprintf(b, sizeof(b),
                     "\r\nThe Session Manager plugin was installed successfully. Use the AWS CLI "
                     "to start a session.\r\n\r\n\r\nStarting session with SessionId: %s\r\n%s",
                     session_id, rnd() & 1 ? "This session is encrypted using AWS KMS.\r\n" : "");
    raw_write(b, (size_t)n);
  }

  int in[2], out[2], err[2];
  if (pipe(in) || pipe(out) || pipe(err)) return 3;
  child = fork();
  if (child < 0) return 3;
  if (child == 0) {
    signal(SIGPIPE, SIG_DFL);
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    close(in[0]), close(in[1]), close(out[0]), close(out[1]), close(err[0]), close(err[1]);
    execvp(argv[1], argv + 1);
    fprintf(stderr, "exec-sim: %s: %s\n", argv[1], strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  int to_child = in[1], from_out = out[0], from_err = err[0], our_in = STDIN_FILENO;
  last_send = last_produce = last_write = now_s();
  char buf[65536];
  int status = 0;
  for (;;) {
    double wait = flush_out(0);
    if (written == stall_at && now_s() - last_write > idle_s) {
      raw_write("\r\n\r\nSession idle timeout reached. Exiting session.\r\n", 51);
      if (logfp) fprintf(logfp, "session %ld: idle kill\n", session);
      die_child();
      return 0;
    }
    if (from_out < 0 && from_err < 0 && child < 0) break;
    struct pollfd pf[3];
    int n = 0, i_in = -1, i_out = -1, i_err = -1;
    if (our_in >= 0 && written < hang_at) pf[i_in = n++] = (struct pollfd){our_in, POLLIN, 0};
    if (from_out >= 0 && outq_len < (8u << 20))
      pf[i_out = n++] = (struct pollfd){from_out, POLLIN, 0};
    if (from_err >= 0 && outq_len < (8u << 20))
      pf[i_err = n++] = (struct pollfd){from_err, POLLIN, 0};
    int ms = wait < 0 ? 50 : (int)(wait * 1000) + 1;
    if (ms > 50) ms = 50;
    int r = poll(pf, (nfds_t)n, ms);
    if (r < 0 && errno != EINTR) return 3;
    if (r <= 0) goto reap;
    if (i_in >= 0 && pf[i_in].revents) {
      ssize_t k = read(our_in, buf, sizeof(buf));
      if (k > 0) {
        if (pty || fault[4]) {
          emit(buf, (size_t)k);
          last_produce = now_s();
        }
        if (to_child >= 0 && write(to_child, buf, (size_t)k) < 0) {
          close(to_child);
          to_child = -1;
        }
      } else if (k == 0 || errno != EINTR) {
        our_in = -1;
        if (pty) {
          /* the session-manager-plugin reads keystrokes: EOF ends everything */
          flush_out(1);
          raw_write("\r\nCannot perform start session: EOF\r\n", 37);
          if (logfp) fprintf(logfp, "session %ld: stdin EOF\n", session);
          die_child();
          return 0;
        }
        if (to_child >= 0) close(to_child);
        to_child = -1;
      }
    }
    for (int w = 0; w < 2; w++) {
      int idx = w == 0 ? i_out : i_err;
      int *fdp = w == 0 ? &from_out : &from_err;
      if (idx < 0 || !pf[idx].revents) continue;
      ssize_t k = read(*fdp, buf, sizeof(buf));
      if (k > 0) {
        if (w == 0 && nbrace_at) {
          for (ssize_t i = 0; i < k && written < hang_at; i++) {
            emit_byte(buf[i]);
            if (buf[i] != '{') continue;
            braces++;
            for (int b = 0; b < nbrace_at; b++)
              if (brace_at[b] == braces) inject_at = produced + 8;
          }
          last_produce = now_s();
        } else if (w == 0 || pty || fault[4]) {
          if (written < hang_at) emit(buf, (size_t)k);
          last_produce = now_s();
        } else if (write(STDERR_FILENO, buf, (size_t)k) < 0) {
        }
      } else if (k == 0 || errno != EINTR) {
        close(*fdp);
        *fdp = -1;
      }
    }
  reap:
    if (child > 0 && from_out < 0 && from_err < 0 && waitpid(child, &status, WNOHANG) == child)
      child = -1;
    if (child < 0 && from_out < 0 && from_err < 0) break;
  }
  /* the command exited: F2 loses what is still in flight */
  if (holdback) {
    size_t drop = holdback < outq_len ? holdback : outq_len;
    outq_len -= drop;
    if (logfp) fprintf(logfp, "session %ld: dropped %zu tail bytes\n", session, drop);
  }
  while (outq_len > 0 && written < hang_at && written < stall_at) {
    double w = flush_out(1);
    if (outq_len && w > 0) sleep_s(w);
    if (w < 0) break;
  }
  if (written >= hang_at) {
    for (;;) pause(); /* F7: no data and no exit */
  }
  banner_end();
  if (pty || fault[11]) return 0;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
