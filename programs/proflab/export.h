/* proflab export: private interfaces between the command (export.c), the
 * transfer engine (export_session.c) and the remote helper scripts
 * (export_scripts.c). */
#ifndef PROFLAB_CLI_EXPORT_H
#define PROFLAB_CLI_EXPORT_H

#include <stddef.h>
#include <stdint.h>

/* Exit codes of `proflab export` (PL_EXIT_OK/FAIL/USAGE plus this one). */
enum { PL_EXIT_RESUMABLE = 3 }; /* transfer incomplete; run again to resume */

enum { HELPER_PROFLABD, HELPER_NODE, HELPER_SH, HELPER_COUNT };

/* A string vector (owned strings). */
typedef struct strv {
  char **v;
  size_t n, cap;
} strv;

int strv_push(strv *s, const char *str);
void strv_free(strv *s);

/* How a remote command reaches the container. */
typedef struct channel {
  strv prefix; /* e.g. kubectl exec -i POD -- */
  int ecs;     /* 1: remote argv joined into the last element (--command) */
} channel;

typedef struct export_opts {
  channel ch;
  int helper_forced; /* -1 auto, else HELPER_* */
  double timeout_s;  /* silence timeout of a session */
  int retries;       /* sessions in a row without progress before giving up */
  int max_sessions;  /* sessions per run at most (0: no limit) */
  uint64_t chunk0;   /* first chunk size (0: from state or default) */
  int resume, force, quiet;
} export_opts;

extern const char *const export_helper_names[HELPER_COUNT];
extern const char export_sh_script[];
extern const char export_node_script[];

/* Builds the remote argv for helper h doing op ("get"/"list") on path. */
int export_remote_argv(int h, const char *op, const char *path, strv *out);
/* Quotes argv for a command string split like a shell (ECS --command). */
char *export_shell_join(const strv *argv);

/* Downloads remote into local (with resume state). Returns an exit code. */
int export_get(const export_opts *o, const char *remote, const char *local);
/* Fetches the listing of dir ("SIZE NAME" lines) into *out (malloc'd,
 * NUL-terminated). Returns an exit code. */
int export_list(const export_opts *o, const char *dir, char **out, size_t *outlen);

#endif
