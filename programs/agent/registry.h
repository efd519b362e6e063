/* The agent's registry file: where `proflab ps` (programs/proflab/ps.c)
 * finds every agent of this user, whatever it listens on (the default Unix
 * socket, unix:PATH or TCP). One file per process in the runtime
 * directory, /tmp/proflab-<uid>/agent-<pid>.json, mode 0600, one JSON
 * object: pid, starttime (field 22 of /proc/PID/stat: a reused pid is
 * told from the process that wrote it), program, cmdline (at start), lab
 * (the listener's address as agent_start announces it), inspector (its
 * WebSocket URL, when it runs), task, version. Never the token. Written
 * once the agent's listener (and inspector) run, by a forked child for
 * itself; removed at exit by the process that wrote it; a file whose
 * process is gone (killed by a signal) is pruned by `proflab ps`. */
#ifndef PROFLAB_AGENT_REGISTRY_H
#define PROFLAB_AGENT_REGISTRY_H

/* Write (or replace) this process's file. lab: the listener's address;
 * inspector: its URL or NULL. 0, or -errno (logged as a warning: the
 * agent runs on, unlisted). */
int agent_registry_write(const char *program, const char *lab, const char *inspector,
                         const char *task);
/* Remove the file if this process wrote it (a forked child leaves its
 * parent's alone). */
void agent_registry_remove(void);

#endif
