/* The lab's security gate and answer helpers (see answer.h). */
#include "lab/answer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "http/request.h"
#include "proflab/log.h"

void pl__lab_answer_open(pl_lab *lab, pl_buf *b, pl_json *j) {
  pl_buf_init(b);
  pl_json_init(j, b);
  pl_json_obj_open(j);
  pl_json_kv_str(j, "task", lab->cfg.task);
}

void pl__lab_answer_artifact(pl_json *j, const pl__artifact *a, const char *format) {
  pl_json_kv_str(j, "file", a->name);
  pl_json_kv_str(j, "path", a->path);
  pl_json_kv_uint(j, "bytes", a->bytes);
  pl_json_kv_str(j, "sha256", a->sha256);
  pl_json_kv_str(j, "format", format);
}

void pl__lab_answer_write_failed(pl_lab *lab, pl_request *r, int rc, const char *code,
                                 const char *what, const char *step) {
  pl_json_kv_str(pl_request_log_fields(r), "error", strerror(-rc));
  if (rc == -ENOSPC || rc == -EDQUOT)
    pl_respond_error(r, 507, "no_space", "the artifact directory %s is full; nothing was kept",
                     lab->store.dir);
  else if (rc == -EFBIG)
    pl_respond_error(r, 507, "no_space",
                     "the artifact is larger than this process may write (its file size limit, "
                     "RLIMIT_FSIZE / ulimit -f); nothing was kept in %s",
                     lab->store.dir);
  else if (rc == -ELOOP || rc == -ESTALE)
    pl_respond_error(r, 500, code,
                     "%s %s refused: the artifact directory %s was replaced (by a symbolic "
                     "link or another directory) since start; nothing was written",
                     what, step ? step : "write", lab->store.dir);
  else
    pl_respond_error(r, 500, code, "%s %s failed: %s; nothing was kept", what,
                     step ? step : "write", strerror(-rc));
}

int pl__lab_guard(pl_lab *lab, pl_request *r) {
  const char *remote = pl_request_remote(r);
  uint64_t now = pl__now_ns();
  unsigned wait_s = pl__rl_blocked(&lab->rl, remote, now);
  if (wait_s) {
    char ra[16];
    snprintf(ra, sizeof(ra), "%u", wait_s);
    pl_request_add_header(r, "Retry-After", ra);
    pl_respond_error(r, 429, "too_many_failed_tokens",
                     "too many requests with a wrong token from %s; retry in %u s", remote, wait_s);
    return -EACCES;
  }
  const char *want = lab->cfg.token;
  if ((!want || !*want) && lab->cfg.unix_socket_only) return 0; /* the socket's mode guards */
  const char *tok = pl_request_header(r, "x-lab-token");
  if (!tok || !*tok) {
    pl__rl_fail(&lab->rl, remote, now);
    pl_respond_error(r, 401, "unauthorized", "missing x-lab-token header");
    return -EACCES;
  }
  /* Several x-lab-token headers are refused whatever they hold: hops
   * disagree on which one counts (the first, the last, or all joined by
   * commas, RFC 9110 5.3), so no answer may depend on the choice. */
  if (pl__request_header_count(r, "x-lab-token") > 1) {
    pl__rl_fail(&lab->rl, remote, now);
    pl_json *j = pl_log_begin("warn", "lab_token_rejected");
    pl_json_kv_str(j, "remote", remote);
    pl_json_kv_str(j, "path", pl_request_path(r));
    pl_json_kv_str(j, "reason", "several x-lab-token headers");
    pl_log_end();
    pl_respond_error(r, 401, "unauthorized", "several x-lab-token headers; send exactly one");
    return -EACCES;
  }
  /* The field value without its optional whitespace (RFC 9110 5.5):
   * libmicrohttpd drops the leading part only. */
  size_t tl = strlen(tok);
  while (tl && (tok[tl - 1] == ' ' || tok[tl - 1] == '\t')) tl--;
  if (!pl__secret_equal(tok, tl, want, strlen(want))) {
    pl__rl_fail(&lab->rl, remote, now);
    pl_json *j = pl_log_begin("warn", "lab_token_rejected");
    pl_json_kv_str(j, "remote", remote);
    pl_json_kv_str(j, "path", pl_request_path(r));
    pl_log_end();
    pl_respond_error(r, 401, "unauthorized", "wrong x-lab-token");
    return -EACCES;
  }
  pl__rl_success(&lab->rl, remote);
  return 0;
}
