/* proflab, the command-line tool: one function per command.
 *
 * Every command takes the arguments after its name (argv[0] is the command
 * name), prints results on stdout and one-line reasons on stderr, and
 * returns the process exit status (see usage in main.c for the codes). */
#ifndef PROFLAB_CLI_H
#define PROFLAB_CLI_H

/* Exit codes shared by every command. */
enum {
  PL_EXIT_OK = 0,
  PL_EXIT_FAIL = 1,  /* the operation failed (reason on stderr) */
  PL_EXIT_USAGE = 2, /* bad command line */
};

typedef struct pl_cli_command {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
} pl_cli_command;

/* lab_client.c: commands that talk to a lab over HTTP */
int pl_cmd_status(int argc, char **argv);
int pl_cmd_leak(int argc, char **argv);
int pl_cmd_clear(int argc, char **argv);
int pl_cmd_jam(int argc, char **argv);
int pl_cmd_profile(int argc, char **argv);
int pl_cmd_snapshot(int argc, char **argv);
int pl_cmd_artifacts(int argc, char **argv);
int pl_cmd_download(int argc, char **argv);

/* export.c: get an artifact out of a container through an exec channel */
int pl_cmd_export(int argc, char **argv);

#endif
