/* What top and diff print about profiles: the --limit and --by values,
 * sizes in bytes, a function's location, a JSON document on stdout and the
 * final flush of stdout (declared in cli.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common/util.h"

int cli_parse_limit(const char *s, uint64_t *out) {
  uint64_t v;
  if (pl__parse_u64(s, &v) != 0 || v > 1000000000) return -EINVAL;
  *out = v;
  return 0;
}

int cli_parse_by(const char *s, int *by_total) {
  if (strcmp(s, "self") == 0)
    *by_total = 0;
  else if (strcmp(s, "total") == 0)
    *by_total = 1;
  else
    return -EINVAL;
  return 0;
}

void cli_put_bytes(char *out, size_t n, double v, int sign) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  const char *s = sign ? (v < 0 ? "-" : "+") : "";
  v = fabs(v);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, u++;
  if (u == 0)
    snprintf(out, n, "%s%.0f %s", s, v, units[u]);
  else
    snprintf(out, n, "%s%.1f %s", s, v, units[u]);
}

void cli_location(const char *file, uint32_t line, const char *module, char *out, size_t n) {
  if (file[0] && line)
    snprintf(out, n, "%s:%u", file, line);
  else if (file[0])
    snprintf(out, n, "%s", file);
  else if (module[0]) {
    const char *s = strrchr(module, '/');
    snprintf(out, n, "%s", s && s[1] ? s + 1 : module);
  } else
    out[0] = '\0';
}

int cli_print_json(const char *cmd, pl_buf *b) {
  pl_buf_putc(b, '\n');
  int rc = CLI_EXIT_OK;
  if (pl_buf_failed(b)) {
    fprintf(stderr, "proflab %s: out of memory\n", cmd);
    rc = CLI_EXIT_FAIL;
  } else {
    fwrite(b->data, 1, b->len, stdout);
  }
  pl_buf_free(b);
  return rc;
}

int cli_flush_stdout(const char *cmd) {
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "proflab %s: cannot write the output: %s\n", cmd, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  return CLI_EXIT_OK;
}
