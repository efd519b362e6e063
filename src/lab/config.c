/* Lab configuration from the environment, and the instance's task id. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "proflab/lab.h"

void pl_lab_config_init(pl_lab_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->artifact_dir = "/tmp";
  cfg->task = "";
  cfg->max_leak_mb = 1024;
  cfg->max_profile_seconds = 60;
  cfg->max_jam_ms = 30000;
  cfg->max_artifacts = 20;
  cfg->max_artifact_mb = 1024;
  cfg->failed_token_limit = 10;
  cfg->failed_token_window_s = 60;
}

static int env_true(const char *name) {
  const char *v = getenv(name);
  return v && strcmp(v, "true") == 0;
}

static int env_bound(const char *name, uint64_t min, uint64_t max, uint64_t *out, char *err,
                     size_t errlen) {
  const char *v = getenv(name);
  if (!v || !*v) return 0;
  uint64_t x;
  if (pl__parse_u64(v, &x) != 0 || x < min || x > max) {
    snprintf(err, errlen, "%s=%.32s: must be a whole number from %llu to %llu", name, v,
             (unsigned long long)min, (unsigned long long)max);
    return -EINVAL;
  }
  *out = x;
  return 0;
}

int pl_lab_config_from_env(pl_lab_config *cfg, char *err, size_t errlen) {
  cfg->enable = env_true("LAB_ENABLE");
  cfg->token = getenv("LAB_TOKEN");
  cfg->allow_prod = env_true("LAB_ALLOW_PROD");
  const char *app = getenv("APP_ENV"), *node = getenv("NODE_ENV");
  if (app && strcmp(app, "production") == 0) {
    cfg->production = 1;
    cfg->production_var = "APP_ENV";
  } else if (node && strcmp(node, "production") == 0) {
    cfg->production = 1;
    cfg->production_var = "NODE_ENV";
  }
  const char *dir = getenv("LAB_ARTIFACT_DIR");
  if (dir && *dir) cfg->artifact_dir = dir;
  int rc = 0;
  if (!rc) rc = env_bound("LAB_MAX_LEAK_MB", 1, 1u << 20, &cfg->max_leak_mb, err, errlen);
  if (!rc)
    rc = env_bound("LAB_MAX_PROFILE_SECONDS", 1, 86400, &cfg->max_profile_seconds, err, errlen);
  if (!rc) rc = env_bound("LAB_MAX_JAM_MS", 1, 3600000, &cfg->max_jam_ms, err, errlen);
  uint64_t count = cfg->max_artifacts;
  if (!rc) rc = env_bound("LAB_MAX_ARTIFACTS", 1, 100000, &count, err, errlen);
  cfg->max_artifacts = (unsigned)count;
  if (!rc) rc = env_bound("LAB_MAX_ARTIFACT_MB", 1, 1u << 24, &cfg->max_artifact_mb, err, errlen);
  return rc;
}

int pl_lab_config_check(const pl_lab_config *cfg, int *active, const char **why, char *err,
                        size_t errlen) {
  *active = 0;
  *why = NULL;
  if (!cfg->enable) return 0;
  size_t tl = cfg->token ? strlen(cfg->token) : 0;
  if (tl < PL_LAB_MIN_TOKEN_LEN && !(tl == 0 && cfg->unix_socket_only)) {
    snprintf(err, errlen,
             "LAB_ENABLE=true needs LAB_TOKEN of at least %d characters (%s); "
             "generate one with: openssl rand -hex 24",
             PL_LAB_MIN_TOKEN_LEN, tl ? "the one given is too short" : "none is set");
    return -EINVAL;
  }
  if (cfg->production && !cfg->allow_prod) {
    *why = cfg->production_var && strcmp(cfg->production_var, "NODE_ENV") == 0
               ? "NODE_ENV=production and LAB_ALLOW_PROD is not true"
               : "APP_ENV=production and LAB_ALLOW_PROD is not true";
    return 0;
  }
  *active = 1;
  return 0;
}

/* Keep [A-Za-z0-9._-] of s (length n) in out; returns the length kept. */
static size_t sanitize(const char *s, size_t n, char *out, size_t outn) {
  size_t k = 0;
  for (size_t i = 0; i < n && k + 1 < outn && k < 64; i++) {
    unsigned char c = (unsigned char)s[i];
    if (isalnum(c) || c == '.' || c == '_' || c == '-') out[k++] = (char)c;
  }
  if (outn) out[k] = '\0';
  return k;
}

/* ECS metadata URI: http://169.254.170.2/v4/<task-id>-<n> on Fargate, or
 * .../v4/<container-id> on EC2. The last path segment names the task. */
static size_t task_from_ecs_uri(const char *uri, char *out, size_t n) {
  const char *end = uri + strlen(uri);
  while (end > uri && end[-1] == '/') end--;
  const char *seg = end;
  while (seg > uri && seg[-1] != '/') seg--;
  if (seg == end) return 0;
  const char *dash = memchr(seg, '-', (size_t)(end - seg));
  size_t len = (size_t)(end - seg);
  if (dash && dash - seg == 32)
    len = 32; /* Fargate: 32-hex task id before '-' */
  else if (!dash && len > 12)
    len = 12; /* docker container id: short form */
  return sanitize(seg, len, out, n);
}

void pl_task_id_from(const char *explicit_id, const char *ecs_uri, const char *hostname, char *out,
                     size_t n) {
  if (explicit_id && sanitize(explicit_id, strlen(explicit_id), out, n)) return;
  if (ecs_uri && task_from_ecs_uri(ecs_uri, out, n)) return;
  if (hostname && sanitize(hostname, strlen(hostname), out, n)) return;
  snprintf(out, n, "unknown");
}

void pl_task_id_detect(char *out, size_t n) {
  const char *ecs = getenv("ECS_CONTAINER_METADATA_URI_V4");
  if (!ecs || !*ecs) ecs = getenv("ECS_CONTAINER_METADATA_URI");
  const char *host = getenv("HOSTNAME");
  char hn[256];
  if ((!host || !*host) && gethostname(hn, sizeof(hn)) == 0) {
    hn[sizeof(hn) - 1] = '\0';
    host = hn;
  }
  pl_task_id_from(getenv("LAB_TASK_ID"), ecs, host, out, n);
}
