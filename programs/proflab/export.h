/* proflab export: private interfaces between the command (export.c), the
 * transfer engine (export_session.c) and the remote helper scripts
 * (export_scripts.c). */
#ifndef PROFLAB_CLI_EXPORT_H
#define PROFLAB_CLI_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "strv.h"

/* Exit codes of `proflab export` (CLI_EXIT_OK/FAIL/USAGE plus this one). */
enum { CLI_EXIT_RESUMABLE = 3 }; /* transfer incomplete; run again to resume */

/* The remote helpers, in the order they are probed when none is forced;
 * each value indexes cli_export_helper_names. CLI_EXPORT_HELPER_COUNT is
 * the number of helpers, not a helper. */
enum {
  CLI_EXPORT_HELPER_PROFLABD, /* `proflabd export-helper` in the container */
  CLI_EXPORT_HELPER_NODE,     /* cli_export_node_script run by `node -e` */
  CLI_EXPORT_HELPER_SH,       /* cli_export_sh_script run by `sh -c` */
  CLI_EXPORT_HELPER_COUNT
};

/* How a remote command reaches the container. Owns prefix; the owner frees
 * it with cli_strv_free. */
typedef struct cli_export_channel {
  cli_strv prefix; /* e.g. kubectl exec -i POD -- */
  int ecs;         /* 1: remote argv joined into the last element (--command) */
} cli_export_channel;

/* Options of one `proflab export` run, filled by the command (export.c) and
 * only read by the transfer engine. */
typedef struct cli_export_opts {
  cli_export_channel ch;
  int helper_forced; /* -1 auto, else CLI_EXPORT_HELPER_* */
  double timeout_s;  /* silence timeout of a session */
  int retries;       /* sessions in a row without progress before giving up */
  int max_sessions;  /* sessions per run at most (0: no limit) */
  uint64_t chunk0;   /* first chunk size (0: from state or default) */
  int resume, force, quiet;
} cli_export_opts;

/* The helpers' names as the user gives them to --helper and as the resume
 * state records them ("proflabd", "node", "sh"), indexed by
 * CLI_EXPORT_HELPER_*. */
extern const char *const cli_export_helper_names[CLI_EXPORT_HELPER_COUNT];
/* The POSIX sh helper, for `sh -c SCRIPT sh get|list PATH`. Contains no
 * single quote. */
extern const char cli_export_sh_script[];
/* The Node.js helper, for `node -e SCRIPT get|list PATH`. Contains no
 * single quote. */
extern const char cli_export_node_script[];

/* Appends to out the remote argv for helper h (a CLI_EXPORT_HELPER_*; an
 * unknown value means sh) doing op ("get"/"list") on path. Returns 0, or -1
 * when out of memory (out then holds a partial argv; the caller frees it). */
int cli_export_remote_argv(int h, const char *op, const char *path, cli_strv *out);
/* Quotes argv into one command string that a shell-like splitter (ECS
 * --command) turns back into the same words. Returns a malloc'd string the
 * caller frees, or NULL when out of memory. */
char *cli_export_shell_join(const cli_strv *argv);

/* Downloads remote into local through o's channel: local appears only with
 * the verified bytes; an interrupted copy keeps LOCAL.proflab-partial and
 * LOCAL.proflab-state to resume from. Reasons go to stderr. Returns
 * CLI_EXIT_OK, CLI_EXIT_FAIL, CLI_EXIT_USAGE (unusable path) or
 * CLI_EXIT_RESUMABLE. */
int cli_export_get(const cli_export_opts *o, const char *remote, const char *local);
/* Fetches the listing of dir ("SIZE NAME" lines) into *out (malloc'd,
 * NUL-terminated, freed by the caller; set only on CLI_EXIT_OK) and its
 * length into *outlen. Returns an exit code (CLI_EXIT_*). */
int cli_export_list(const cli_export_opts *o, const char *dir, char **out, size_t *outlen);

#endif
