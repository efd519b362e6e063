/* Profiles in and out of files for the commands that read them (top,
 * convert, flame, diff): reading any format the readers know, and writing
 * an output file so that a failure never leaves one under its final name. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Files at least this large (or stdin once this much was read) show
 * "reading FILE" progress on a terminal. */
#define PROGRESS_MIN_BYTES (4u << 20)

typedef struct read_progress {
  cli_progress *p;
  const char *cmd, *name;
} read_progress;

static void on_read_progress(void *ctx, uint64_t done, uint64_t total) {
  read_progress *rp = ctx;
  if (!rp->p->active) {
    if ((total ? total : done) < PROGRESS_MIN_BYTES) return;
    char cmd[64], what[256];
    snprintf(cmd, sizeof(cmd), "proflab %s", rp->cmd);
    snprintf(what, sizeof(what), "reading %s", rp->name);
    cli_progress_begin(rp->p, cmd, what);
  }
  cli_progress_bytes(rp->p, done, total);
}

int cli_read_profile_progress(const char *cmd, const char *path, pl__profile *out,
                              cli_progress *p) {
  pl__read_err err;
  int is_stdin = strcmp(path, "-") == 0;
  const char *name = is_stdin ? "stdin" : path;
  read_progress rp = {.p = p, .cmd = cmd, .name = name};
  pl__read_opts opts = {.progress = on_read_progress, .progress_ctx = &rp};
  int rc = pl__read_profile_ex(name, is_stdin ? 0 : -1, &opts, out, &err);
  if (rc == 0 && out->graph && strcmp(cmd, "top") != 0 && strcmp(cmd, "flame") != 0 &&
      strcmp(cmd, "diff") != 0) {
    cli_progress_end(p);
    fprintf(stderr,
            "proflab %s: %s: heap snapshots: not supported by proflab %s (only by top, flame "
            "and diff)\n",
            cmd, name, cmd);
    pl__profile_free(out);
    return CLI_EXIT_FAIL;
  }
  if (rc == 0) return CLI_EXIT_OK;
  cli_progress_end(p);
  fprintf(stderr, "proflab %s: %s: %s\n", cmd, name, err.msg[0] ? err.msg : strerror(-rc));
  return CLI_EXIT_FAIL;
}

int cli_read_profile(const char *cmd, const char *path, pl__profile *out) {
  cli_progress p = {0};
  int rc = cli_read_profile_progress(cmd, path, out, &p);
  cli_progress_end(&p);
  return rc;
}

const char *cli_profile_description(const pl__profile *p) {
  switch (p->kind) {
    case PL__KIND_CPUPROFILE:
      return ".cpuprofile";
    case PL__KIND_PPROF_CPU:
      return p->gzipped ? "pprof CPU profile" : "pprof CPU profile (uncompressed)";
    case PL__KIND_FOLDED:
      return "folded stacks";
    case PL__KIND_HEAPPROFILE:
      return ".heapprofile";
    case PL__KIND_PPROF_HEAP:
      return p->gzipped ? "pprof heap profile" : "pprof heap profile (uncompressed)";
    default:
      return pl__profile_kind_name(p->kind);
  }
}

int cli_write_output(const char *cmd, const char *out, int (*write)(void *ctx, int fd), void *ctx) {
  if (strcmp(out, "-") == 0) {
    int rc = write(ctx, 1);
    if (!rc) return CLI_EXIT_OK;
    fprintf(stderr, "proflab %s: cannot write to stdout: %s\n", cmd, strerror(-rc));
    return CLI_EXIT_FAIL;
  }
  size_t n = strlen(out) + sizeof(".partial");
  char *partial = malloc(n);
  if (!partial) {
    fprintf(stderr, "proflab %s: out of memory\n", cmd);
    return CLI_EXIT_FAIL;
  }
  snprintf(partial, n, "%s.partial", out);
  const char *step = "create";
  int rc = 0;
  int fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    rc = -errno;
    goto fail;
  }
  step = "write";
  if ((rc = write(ctx, fd))) goto fail;
  step = "sync";
  if (fsync(fd) != 0) {
    rc = -errno;
    goto fail;
  }
  int cfd = fd;
  fd = -1;
  step = "close";
  if (close(cfd) != 0) {
    rc = -errno;
    goto fail;
  }
  step = "rename";
  if (rename(partial, out) != 0) {
    rc = -errno;
    goto fail;
  }
  free(partial);
  return CLI_EXIT_OK;
fail:
  if (fd >= 0) close(fd);
  if (strcmp(step, "create") != 0) unlink(partial);
  fprintf(stderr, "proflab %s: %s: cannot %s %s: %s\n", cmd, out, step,
          strcmp(step, "rename") == 0 ? "into place" : partial,
          rc == -EINVAL ? "the profile does not fit the format (an index out of range)"
                        : strerror(-rc));
  free(partial);
  return CLI_EXIT_FAIL;
}
