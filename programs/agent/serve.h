/* The agent thread: its own libuv loop serving the capture side of the lab
 * API (status, cpu-profile, heap-snapshot, artifacts) on the agent's
 * listener, with every signal blocked so the host's signals never land
 * there. One per process; a forked child forgets its parent's and may
 * start its own. */
#ifndef PROFLAB_AGENT_SERVE_H
#define PROFLAB_AGENT_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "settings.h"

/* Bind the listener (s's address; unix_path overrides s->unix_path when
 * not NULL), mount the lab and start the thread. Wall-mode profiles
 * sample main_tid. On success *where names the address ("unix:PATH" or
 * "http://HOST:PORT"). 0, or a negative errno with one line in err; then
 * nothing is left running. */
int agent_serve_start(const agent_settings *s, const char *unix_path, uint32_t main_tid,
                      char *where, size_t wn, char *err, size_t errlen);
/* Stop serving: drain, close, join the thread, waiting at most timeout_ms
 * (then the thread is left to the process's exit). The calling process
 * must be the one that started it. */
void agent_serve_stop(unsigned timeout_ms);
/* In a forked child: the parent's thread does not exist here; close the
 * copy of its listener and drop every reference to it and its loop
 * without touching them (their memory is left: it is a copy of the
 * parent's). 1 when the parent was serving. */
int agent_serve_forget(void);
/* pthread_atfork: before fork, park the agent thread at a point where it
 * holds no lock (waiting at most timeout_ms); 1 when it is parked (or not
 * running), 0 when it could not be reached. After fork, in the parent:
 * let it go on. (The child calls agent_serve_forget.) */
int agent_serve_fork_prepare(unsigned timeout_ms);
void agent_serve_fork_parent(void);
/* 1 while the thread serves in this process. */
int agent_serve_running(void);

#endif
