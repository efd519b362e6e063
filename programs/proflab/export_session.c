/* proflab export: the transfer engine. Runs exec sessions (one remote helper
 * each), requests chunks, verifies every frame and the whole file, keeps
 * resume state, and decides when to retry and when to give up. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
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

#define WINDOW 4 /* chunk requests outstanding */
#define CHUNK_DEFAULT (64u << 10)
#define CHUNK_LIMIT (1u << 20)
#define GROW_EVERY 4 /* accepted chunks before the size doubles */

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

/* ---- the transfer ---------------------------------------------------------- */

enum { SESS_DONE, SESS_NOFRAME, SESS_CUT, SESS_FATAL };

typedef struct req {
  uint64_t off, len;
} req;

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
  /* session */
  pid_t pid;
  int in_fd;
  req fifo[WINDOW];
  int nfifo;
  uint64_t next_req;
  int got_info, frames, accepted;
  int sessions, any_info;
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

/* Frame callback: returns 0 to go on, 1 to end the session (reason set). */
static int on_frame(void *ctx, const char *body, size_t len, int bad) {
  xfer *x = ctx;
  pl__export_frame f;
  if (bad || pl__export_frame_parse(body, len, &f) != 0) {
    snprintf(x->reason, sizeof(x->reason), "a damaged frame arrived");
    return 1;
  }
  x->frames++;
  if (f.kind == PL__FRAME_ERROR) {
    snprintf(x->reason, sizeof(x->reason), "remote: %.*s: %s", (int)f.code_len, f.code, x->remote);
    x->fatal_exit = 1;
    x->remote_err = 1;
    return 1;
  }
  if (f.kind == PL__FRAME_INFO) {
    if (x->got_info) {
      snprintf(x->reason, sizeof(x->reason), "a second info frame arrived");
      return 1;
    }
    char sum[80], ident[256];
    if (f.sum_len + 3 > sizeof(sum) || f.ident_len + 1 > sizeof(ident)) {
      snprintf(x->reason, sizeof(x->reason), "an info frame was too long");
      return 1;
    }
    snprintf(sum, sizeof(sum), "%c:%.*s", f.sum_kind, (int)f.sum_len, f.sum);
    snprintf(ident, sizeof(ident), "%.*s", (int)f.ident_len, f.ident);
    if (x->have_ident &&
        (x->st.size != f.size || strcmp(x->st.sum, sum) != 0 || strcmp(x->st.ident, ident) != 0)) {
      if (!x->o->quiet && x->st.offset > 0)
        fprintf(stderr, "proflab export: %s changed since the last session; starting over\n",
                x->remote);
      if (reset_data(x) != 0) return 1;
    }
    x->st.size = f.size;
    snprintf(x->st.sum, sizeof(x->st.sum), "%s", sum);
    snprintf(x->st.ident, sizeof(x->st.ident), "%s", ident);
    snprintf(x->encs, sizeof(x->encs), "%.*s", (int)(f.encs_len < 15 ? f.encs_len : 15), f.encs);
    x->have_ident = 1;
    x->got_info = 1;
    x->any_info = 1;
    x->next_req = x->st.offset;
    if (x->fd < 0) {
      if (f.size > (64u << 20)) {
        snprintf(x->reason, sizeof(x->reason), "listing too large");
        x->fatal_exit = 1;
        return 1;
      }
      free(x->mem);
      x->mem = malloc(f.size + 1);
      if (!x->mem) {
        snprintf(x->reason, sizeof(x->reason), "out of memory");
        x->fatal_exit = 1;
        return 1;
      }
    }
    if (save_state(x) != 0) {
      snprintf(x->reason, sizeof(x->reason), "cannot write %s: %s", x->statep, strerror(errno));
      x->fatal_exit = 1;
      return 1;
    }
    return 0;
  }
  /* data */
  if (!x->got_info || x->nfifo == 0 || f.offset != x->fifo[0].off || f.length != x->fifo[0].len) {
    snprintf(x->reason, sizeof(x->reason), "an unexpected chunk arrived (offset %llu)",
             (unsigned long long)f.offset);
    return 1;
  }
  int r = pl__export_frame_data(&f, x->raw, PL__EXPORT_CHUNK_MAX, x->scratch, PL__EXPORT_FRAME_MAX);
  if (r != 0) {
    snprintf(x->reason, sizeof(x->reason), "chunk at %llu failed its check (%s)",
             (unsigned long long)f.offset, r == -EBADMSG ? "checksum" : "encoding");
    return 1;
  }
  if (x->fd >= 0) {
    size_t done = 0;
    while (done < f.length) {
      ssize_t w = pwrite(x->fd, x->raw + done, (size_t)f.length - done, (off_t)(f.offset + done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        snprintf(x->reason, sizeof(x->reason), "cannot write %s: %s", x->partial, strerror(errno));
        x->fatal_exit = 1;
        return 1;
      }
      done += (size_t)w;
    }
  } else {
    memcpy(x->mem + f.offset, x->raw, (size_t)f.length);
  }
  x->st.offset += f.length;
  memmove(x->fifo, x->fifo + 1, (size_t)(x->nfifo - 1) * sizeof(req));
  x->nfifo--;
  if (++x->accepted % GROW_EVERY == 0 && x->chunk < CHUNK_LIMIT) x->chunk *= 2;
  if (save_state(x) != 0) {
    snprintf(x->reason, sizeof(x->reason), "cannot write %s: %s", x->statep, strerror(errno));
    x->fatal_exit = 1;
    return 1;
  }
  progress(x, 0);
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

static int send_requests(xfer *x, char enc) {
  while (x->got_info && x->nfifo < WINDOW && x->next_req < x->st.size) {
    uint64_t len = x->st.size - x->next_req;
    if (len > x->chunk) len = x->chunk;
    char line[128];
    int n = snprintf(line, sizeof(line), "g %llu %llu %c\n", (unsigned long long)x->next_req,
                     (unsigned long long)len, enc);
    if (write(x->in_fd, line, (size_t)n) != n) return -1;
    x->fifo[x->nfifo++] = (req){x->next_req, len};
    x->next_req += len;
  }
  return 0;
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

static int run_session(xfer *x, int helper) {
  cli_strv remote = {0}, argv = {0};
  int out_fd = -1, err_fd = -1, result = SESS_CUT;
  x->sessions++;
  x->got_info = x->frames = x->nfifo = 0;
  x->reason[0] = '\0';
  x->fatal_exit = 0;
  unsigned char rnd[PL__EXPORT_MARKER_LEN / 2];
  if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
    snprintf(x->reason, sizeof(x->reason), "no random bytes for the marker");
    return SESS_FATAL;
  }
  for (size_t i = 0; i < sizeof(rnd); i++) snprintf(x->marker + 2 * i, 3, "%02x", rnd[i]);
  pl__export_scanner sc;
  if (pl__export_scanner_init(&sc, x->marker) != 0) {
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
  char line[PL__EXPORT_MARKER_LEN + 2];
  snprintf(line, sizeof(line), "%s\n", x->marker);
  if (write(x->in_fd, line, PL__EXPORT_MARKER_LEN + 1) != PL__EXPORT_MARKER_LEN + 1) {
    snprintf(x->reason, sizeof(x->reason), "the session closed its input");
    goto out;
  }
  char enc = 'b';
  double last = now_s();
  char buf[65536];
  for (;;) {
    if (x->got_info) {
      if (x->st.offset == x->st.size) {
        result = SESS_DONE;
        break;
      }
      enc = pick_encoding(x->encs);
      if (send_requests(x, enc) != 0) {
        snprintf(x->reason, sizeof(x->reason), "the session closed its input");
        break;
      }
    }
    struct pollfd p[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    int np = err_fd >= 0 ? 2 : 1;
    double left = x->o->timeout_s - (now_s() - last);
    if (left <= 0) {
      snprintf(x->reason, sizeof(x->reason), "the session was silent for %g s", x->o->timeout_s);
      break;
    }
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
      last = now_s();
      int s = pl__export_scan(&sc, buf, (size_t)n, on_frame, x);
      if (s < 0) goto oom;
      if (s > 0) break;
    }
  }
  if (result != SESS_DONE) {
    if (x->fatal_exit)
      result = SESS_FATAL;
    else if (x->frames == 0)
      result = SESS_NOFRAME;
  }
  goto out;
oom:
  snprintf(x->reason, sizeof(x->reason), "out of memory");
  result = SESS_FATAL;
out:
  end_session(x);
  if (out_fd >= 0) close(out_fd);
  if (err_fd >= 0) close(err_fd);
  pl__export_scanner_free(&sc);
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
  int fails = 0;
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
      for (int i = 0; i < norder && r == SESS_NOFRAME; i++) {
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
    if (x->st.offset > before)
      fails = 0;
    else
      fails++;
    if (x->chunk > PL__EXPORT_GRANULE) x->chunk /= 2; /* a cut: smaller chunks lose less */
    x->chunk -= x->chunk % PL__EXPORT_GRANULE;
    save_state(x);
    /* Until some helper has answered, the channel itself may be broken
     * (no plugin, no such container): give up sooner. */
    int limit = x->any_info || x->o->retries < 2 ? x->o->retries : 2;
    if (fails > limit) break;
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
