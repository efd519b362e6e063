/* The agent's registry file (see registry.h). */
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "proflab/buf.h"
#include "proflab/log.h"
#include "settings.h"

static char registered[128]; /* the file this process wrote, or "" */
static pid_t registered_by;

static void warn(const char *what, int rc) {
  pl_json *j = pl_log_begin("warn", "agent_registry");
  pl_json_kv_str(j, "message", what);
  if (rc) pl_json_kv_str(j, "error", strerror(-rc));
  pl_json_kv_str(j, "consequence", "proflab ps does not list this agent");
  pl_log_end();
}

int agent_registry_write(const char *program, const char *lab, const char *inspector,
                         const char *task) {
  char dir[64], err[256], path[128], tmp[140];
  int rc = agent_runtime_dir(dir, sizeof(dir), err, sizeof(err));
  if (rc) {
    warn(err, 0);
    return rc;
  }
  snprintf(path, sizeof(path), "%s/agent-%d.json", dir, (int)getpid());
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  char start[32], cmdline[2048];
  pl__proc_starttime(0, start, sizeof(start));
  pl__proc_cmdline(0, cmdline, sizeof(cmdline));
  pl_buf b;
  pl_json j;
  pl_buf_init(&b);
  pl_json_init(&j, &b);
  pl_json_obj_open(&j);
  pl_json_kv_int(&j, "pid", (int64_t)getpid());
  pl_json_kv_str(&j, "starttime", start);
  pl_json_kv_str(&j, "program", program);
  pl_json_kv_str(&j, "cmdline", cmdline);
  pl_json_kv_str(&j, "lab", lab);
  if (inspector) pl_json_kv_str(&j, "inspector", inspector);
  pl_json_kv_str(&j, "task", task);
  pl_json_kv_str(&j, "version", PROFLAB_VERSION);
  pl_json_obj_close(&j);
  pl_buf_putc(&b, '\n');
  rc = pl_buf_failed(&b) ? -ENOMEM : 0;
  int fd = rc ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (!rc && fd < 0) rc = -errno;
  if (!rc && fchmod(fd, 0600) != 0) rc = -errno; /* whatever the umask */
  if (!rc) rc = pl__write_all(fd, b.data, b.len);
  if (fd >= 0 && close(fd) != 0 && !rc) rc = -errno;
  if (!rc && rename(tmp, path) != 0) rc = -errno;
  pl_buf_free(&b);
  if (rc) {
    if (fd >= 0) unlink(tmp);
    warn("cannot write the registry file", rc);
    return rc;
  }
  memcpy(registered, path, sizeof(registered));
  registered_by = getpid();
  return 0;
}

void agent_registry_remove(void) {
  if (!registered[0] || registered_by != getpid()) return;
  unlink(registered);
  registered[0] = '\0';
}
