/* libFuzzer target: the agent's settings (programs/agent/settings.c:
 * agent_settings_read, which reads the LAB_* variables through
 * pl_lab_config_from_env / _check and pl_task_id_detect from src/lab/, and
 * PROFLAB_INSPECT through pl_inspector_parse_address).
 *
 * Input: values separated by NUL bytes, one per variable of the list below
 * in order; a value that is absent leaves its variable unset, an empty one
 * sets it empty; nothing else is in the environment. PROFLAB_AGENT_LOG is never set (it opens a
 * file) and the default socket directory is not created (agent_default_socket is not called).
 *
 * Checks: 0 or -EINVAL; on failure a message of one line (no control
 * character, whatever the values hold); on success the
 * strings are terminated inside their buffers, the lab's strings point
 * into the settings (not into the environment, which the host may
 * change), a TCP port is at most 65535, the task is [A-Za-z0-9._-]. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "settings.h"

static const char *const vars[] = {
    "LAB_ENABLE",
    "LAB_TOKEN",
    "APP_ENV",
    "NODE_ENV",
    "LAB_ALLOW_PROD",
    "LAB_ARTIFACT_DIR",
    "LAB_TASK_ID",
    "LAB_MAX_LEAK_MB",
    "LAB_MAX_PROFILE_SECONDS",
    "LAB_MAX_JAM_MS",
    "LAB_MAX_ARTIFACTS",
    "LAB_MAX_ARTIFACT_MB",
    "LAB_HEAP_SAMPLE_BYTES",
    "PROFLAB_AGENT_LISTEN",
    "PROFLAB_CPU_PROFILE",
    "PROFLAB_HEAP_PROFILE",
    "PROFLAB_HEAP_TRACKING",
    "PROFLAB_AGENT_CHILDREN",
    "PROFLAB_INSPECT",
    "ECS_CONTAINER_METADATA_URI_V4",
    "HOSTNAME",
};
#define NVARS (sizeof(vars) / sizeof(vars[0]))

static int terminated(const char *s, size_t n) { return memchr(s, '\0', n) != NULL; }

static int inside(const agent_settings *s, const char *p) {
  return p >= (const char *)s && p < (const char *)s + sizeof(*s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* The environment is built here and swapped in whole (setenv would keep
   * every value ever set: glibc never frees them). */
  extern char **environ;
  static char *env[NVARS + 1];
  static char *bufs[NVARS];
  size_t ne = 0;
  const char *p = (const char *)data, *end = p + size;
  for (size_t i = 0; i < NVARS && p < end; i++) {
    const char *z = memchr(p, '\0', (size_t)(end - p));
    size_t n = z ? (size_t)(z - p) : (size_t)(end - p);
    size_t vl = strlen(vars[i]);
    free(bufs[i]);
    bufs[i] = malloc(vl + 1 + n + 1);
    if (!bufs[i]) return 0;
    memcpy(bufs[i], vars[i], vl);
    bufs[i][vl] = '=';
    memcpy(bufs[i] + vl + 1, p, n);
    bufs[i][vl + 1 + n] = '\0';
    env[ne++] = bufs[i];
    p += n + 1;
  }
  env[ne] = NULL;
  char **saved = environ;
  environ = env;
  static agent_settings s;
  char err[256];
  memset(err, 'x', sizeof(err));
  err[sizeof(err) - 1] = '\0';
  int rc = agent_settings_read(&s, err, sizeof(err));
  environ = saved;
  if (s.log_fd > 2) abort(); /* never opened here */
  if (rc != 0) {
    if (rc != -EINVAL) abort();
    if (!terminated(err, sizeof(err)) || err[0] == 'x') abort();
    /* one line: a value the message echoes is escaped (a newline in it
     * becomes \n) */
    for (const char *c = err; *c; c++)
      if ((unsigned char)*c < 0x20 || *c == 0x7f) abort();
    return 0;
  }
  if (!terminated(s.host, sizeof(s.host)) || !terminated(s.unix_path, sizeof(s.unix_path)) ||
      !terminated(s.cpu_profile, sizeof(s.cpu_profile)) ||
      !terminated(s.heap_profile, sizeof(s.heap_profile)) ||
      !terminated(s.token, sizeof(s.token)) ||
      !terminated(s.artifact_dir, sizeof(s.artifact_dir)) || !terminated(s.task, sizeof(s.task)))
    abort();
  if (s.tcp && s.port > 65535) abort();
  if (s.lab.token && !inside(&s, s.lab.token)) abort();
  if (!inside(&s, s.lab.artifact_dir) || !inside(&s, s.lab.task)) abort();
  if (s.inspect && s.inspect_opts.host && !inside(&s, s.inspect_opts.host)) abort();
  if (!s.task[0] || strlen(s.task) > 64) abort();
  for (const char *t = s.task; *t; t++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *t)) abort();
  if (s.lab_active && s.lab.token && s.lab.token[0] && strlen(s.lab.token) < PL_LAB_MIN_TOKEN_LEN)
    abort(); /* a short token never runs (an empty one is none: the socket's mode guards) */
  if (s.lab_active && s.tcp && (!s.lab.token || strlen(s.lab.token) < PL_LAB_MIN_TOKEN_LEN))
    abort(); /* over TCP, always a token */
  return 0;
}
