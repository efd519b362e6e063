/* The agent's settings: read once from the environment in the constructor
 * and copied, because the host may change or replace its environment later
 * (nginx's workers keep only TZ). Names and defaults: docs/agent.md. */
#ifndef PROFLAB_AGENT_SETTINGS_H
#define PROFLAB_AGENT_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "proflab/inspector.h"
#include "proflab/lab.h"

#define AGENT_PATH_MAX 4096

typedef struct agent_settings {
  pl_lab_config lab;       /* LAB_*; its strings point into the buffers below */
  int lab_active;          /* LAB_ENABLE=true and allowed (production rules) */
  const char *lab_off_why; /* why an enabled lab stays off, or NULL */
  /* PROFLAB_AGENT_LISTEN: "unix" (default), "unix:PATH" or "HOST:PORT" */
  int tcp;
  char host[256];
  unsigned port;
  char unix_path[108]; /* sun_path's size */
  int unix_default;    /* the path was derived from the pid (a fork gets its own) */
  int heap_tracking;   /* PROFLAB_HEAP_TRACKING; default: on with the lab or a heap profile */
  uint64_t heap_sample_bytes; /* LAB_HEAP_SAMPLE_BYTES; 0: the tracker's default */
  int log_fd;                 /* PROFLAB_AGENT_LOG: stderr (2), off (-1) or a file */
  int inspect;                /* PROFLAB_INSPECT set */
  pl_inspector_options inspect_opts;
  char inspect_host[256];
  char cpu_profile[AGENT_PATH_MAX];  /* PROFLAB_CPU_PROFILE, or "" */
  char heap_profile[AGENT_PATH_MAX]; /* PROFLAB_HEAP_PROFILE, or "" */
  int keep_preload;                  /* PROFLAB_AGENT_CHILDREN=true */
  char token[512];
  char artifact_dir[AGENT_PATH_MAX];
  char task[80];
} agent_settings;

/* Fill s from the environment. 0, or -EINVAL with one line in err saying
 * which variable is wrong and what it accepts. Opens the log file. */
int agent_settings_read(agent_settings *s, char *err, size_t errlen);
/* Make the NUL-terminated text in buf (of n bytes) printable on one line:
 * control characters (a newline in a variable's value that a message
 * echoes) become \n, \r, \t or \xNN, in place; the result is cut to fit
 * n. Other bytes (UTF-8) are kept. */
void agent_escape_controls(char *buf, size_t n);
/* The runtime directory of this user's agents, /tmp/proflab-<uid>: their
 * default sockets and registry files (registry.h). Created mode 0700; it
 * must be the caller's, a directory, and nobody else's to read. 0 or
 * -errno with a message in err. */
int agent_runtime_dir(char *dir, size_t n, char *err, size_t errlen);
/* The default Unix socket path for pid: /tmp/proflab-<uid>/agent-<pid>.sock
 * (the directory is created mode 0700 and must be the caller's). 0 or
 * -errno with a message in err. */
int agent_default_socket(char *out, size_t n, int pid, char *err, size_t errlen);

#endif
