/* The agent's settings from the environment (see settings.h). */
#include "settings.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

/* Copy src into a buffer of n bytes; -ENAMETOOLONG when it does not fit. */
static int copy(char *dst, size_t n, const char *src) {
  size_t l = strlen(src);
  if (l >= n) return -ENAMETOOLONG;
  memcpy(dst, src, l + 1);
  return 0;
}

void agent_escape_controls(char *buf, size_t n) {
  char out[2048];
  if (n > sizeof(out)) n = sizeof(out); /* messages are shorter */
  if (!n) return;
  size_t k = 0;
  const unsigned char *end = (const unsigned char *)buf + n;
  for (const unsigned char *p = (const unsigned char *)buf; p < end && *p; p++) {
    char esc[4] = {(char)*p};
    size_t el = 1;
    if (*p == '\n' || *p == '\r' || *p == '\t') {
      esc[0] = '\\';
      esc[1] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
      el = 2;
    } else if (*p < 0x20 || *p == 0x7f) {
      static const char hex[] = "0123456789abcdef";
      esc[0] = '\\';
      esc[1] = 'x';
      esc[2] = hex[*p >> 4];
      esc[3] = hex[*p & 15];
      el = 4;
    }
    if (k + el > n - 1) break; /* cut, never in the middle of an escape */
    memcpy(out + k, esc, el);
    k += el;
  }
  memcpy(buf, out, k);
  buf[k] = '\0';
}

int agent_runtime_dir(char *dir, size_t n, char *err, size_t errlen) {
  if ((size_t)snprintf(dir, n, "/tmp/proflab-%u", (unsigned)getuid()) >= n) {
    snprintf(err, errlen, "runtime directory name too long");
    return -ENAMETOOLONG;
  }
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    int e = errno;
    snprintf(err, errlen, "cannot create %s: %s", dir, strerror(e));
    return -e;
  }
  struct stat st;
  if (lstat(dir, &st) != 0) {
    int e = errno;
    snprintf(err, errlen, "%s: %s", dir, strerror(e));
    return -e;
  }
  if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077)) {
    snprintf(err, errlen, "%s is not a directory of mode 0700 owned by uid %u", dir,
             (unsigned)getuid());
    return -EPERM;
  }
  return 0;
}

int agent_default_socket(char *out, size_t n, int pid, char *err, size_t errlen) {
  char dir[64];
  int rc = agent_runtime_dir(dir, sizeof(dir), err, errlen);
  if (rc) return rc;
  if ((size_t)snprintf(out, n, "%s/agent-%d.sock", dir, pid) >= n) {
    snprintf(err, errlen, "socket path too long");
    return -ENAMETOOLONG;
  }
  return 0;
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT" (all addresses). */
static int parse_tcp(agent_settings *s, const char *v, char *err, size_t errlen) {
  const char *colon = strrchr(v, ':');
  const char *hend = colon;
  if (v[0] == '[') {
    const char *close = strchr(v, ']');
    if (!close || close[1] != ':')
      colon = NULL;
    else
      hend = close + 1;
  } else if (colon && strchr(v, ':') != colon) {
    colon = NULL; /* an IPv6 address without brackets */
  }
  uint64_t port;
  if (!colon || pl__parse_u64(colon + 1, &port) != 0 || port > 65535) {
    snprintf(err, errlen,
             "PROFLAB_AGENT_LISTEN='%.80s' must be unix, unix:PATH, HOST:PORT or [IPV6]:PORT", v);
    return -EINVAL;
  }
  size_t hl = (size_t)(hend - v);
  if (hl >= sizeof(s->host)) {
    snprintf(err, errlen, "PROFLAB_AGENT_LISTEN: host too long");
    return -EINVAL;
  }
  memcpy(s->host, v, hl);
  s->host[hl] = '\0';
  if (!s->host[0]) snprintf(s->host, sizeof(s->host), "0.0.0.0");
  s->port = (unsigned)port;
  s->tcp = 1;
  return 0;
}

static int env_bool(const char *name, int *out, char *err, size_t errlen) {
  const char *v = getenv(name);
  if (!v || !*v) return 0;
  if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
    *out = 1;
  else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
    *out = 0;
  else {
    snprintf(err, errlen, "%s='%.40s' must be true or false", name, v);
    return -EINVAL;
  }
  return 0;
}

static int env_path(const char *name, char *dst, size_t n, char *err, size_t errlen) {
  const char *v = getenv(name);
  dst[0] = '\0';
  if (!v || !*v) return 0;
  if (copy(dst, n, v) != 0) {
    snprintf(err, errlen, "%s: path too long", name);
    return -EINVAL;
  }
  return 0;
}

static int read_settings(agent_settings *s, char *err, size_t errlen) {
  memset(s, 0, sizeof(*s));
  s->log_fd = 2;
  int rc;
  const char *v = getenv("PROFLAB_AGENT_LOG");
  if (v && strcmp(v, "off") == 0) {
    s->log_fd = -1;
  } else if (v && *v && strcmp(v, "stderr") != 0) {
    s->log_fd = open(v, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (s->log_fd < 0) {
      snprintf(err, errlen, "PROFLAB_AGENT_LOG=%.200s: %s", v, strerror(errno));
      s->log_fd = 2;
      return -EINVAL;
    }
  }

  pl_lab_config_init(&s->lab);
  if ((rc = pl_lab_config_from_env(&s->lab, err, errlen)) != 0) return rc;
  if (s->lab.token && copy(s->token, sizeof(s->token), s->lab.token) != 0) {
    snprintf(err, errlen, "LAB_TOKEN is longer than %zu characters", sizeof(s->token) - 1);
    return -EINVAL;
  }
  s->lab.token = s->lab.token ? s->token : NULL;
  if (copy(s->artifact_dir, sizeof(s->artifact_dir), s->lab.artifact_dir) != 0) {
    snprintf(err, errlen, "LAB_ARTIFACT_DIR: path too long");
    return -EINVAL;
  }
  s->lab.artifact_dir = s->artifact_dir;
  pl_task_id_detect(s->task, sizeof(s->task));
  s->lab.task = s->task;
  s->lab.capture_only = 1;

  v = getenv("PROFLAB_AGENT_LISTEN");
  if (!v || !*v || strcmp(v, "unix") == 0) {
    s->unix_default = 1;
  } else if (strncmp(v, "unix:", 5) == 0) {
    if (copy(s->unix_path, sizeof(s->unix_path), v + 5) != 0 || !v[5]) {
      snprintf(err, errlen, "PROFLAB_AGENT_LISTEN: the socket path must be 1 to %zu bytes",
               sizeof(s->unix_path) - 1);
      return -EINVAL;
    }
  } else if ((rc = parse_tcp(s, v, err, errlen)) != 0) {
    return rc;
  }
  s->lab.unix_socket_only = !s->tcp;
  if ((rc = pl_lab_config_check(&s->lab, &s->lab_active, &s->lab_off_why, err, errlen)) != 0)
    return rc;

  if ((rc = env_path("PROFLAB_CPU_PROFILE", s->cpu_profile, sizeof(s->cpu_profile), err, errlen)) !=
          0 ||
      (rc = env_path("PROFLAB_HEAP_PROFILE", s->heap_profile, sizeof(s->heap_profile), err,
                     errlen)) != 0)
    return rc;
  s->heap_tracking = s->lab_active || s->heap_profile[0];
  if ((rc = env_bool("PROFLAB_HEAP_TRACKING", &s->heap_tracking, err, errlen)) != 0) return rc;
  if ((rc = env_bool("PROFLAB_AGENT_CHILDREN", &s->keep_preload, err, errlen)) != 0) return rc;
  v = getenv("LAB_HEAP_SAMPLE_BYTES");
  if (v && *v &&
      (pl__parse_u64(v, &s->heap_sample_bytes) != 0 || s->heap_sample_bytes == 0 ||
       s->heap_sample_bytes > (1ull << 40))) {
    snprintf(err, errlen, "LAB_HEAP_SAMPLE_BYTES='%.40s' must be a whole number from 1 to 2^40", v);
    return -EINVAL;
  }

  v = getenv("PROFLAB_INSPECT");
  if (v && *v) {
    char e[200];
    if (pl_inspector_parse_address(v, &s->inspect_opts, e, sizeof(e)) != 0) {
      snprintf(err, errlen, "PROFLAB_INSPECT: %s", e);
      return -EINVAL;
    }
    if (s->inspect_opts.host) { /* the parser's static buffer: copy */
      if (copy(s->inspect_host, sizeof(s->inspect_host), s->inspect_opts.host) != 0) {
        snprintf(err, errlen, "PROFLAB_INSPECT: host too long");
        return -EINVAL;
      }
      s->inspect_opts.host = s->inspect_host;
    }
    s->inspect = 1;
  }
  return 0;
}

int agent_settings_read(agent_settings *s, char *err, size_t errlen) {
  int rc = read_settings(s, err, errlen);
  /* A message echoes the variable's value, which may hold a newline:
   * the message stays one line. */
  if (rc) agent_escape_controls(err, errlen);
  return rc;
}
