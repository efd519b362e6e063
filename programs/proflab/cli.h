/* proflab, the command-line tool: one function per command.
 *
 * Every command takes the arguments after its name (argv[0] is the command
 * name), prints results on stdout and one-line reasons on stderr, and
 * returns the process exit status (see usage in main.c for the codes). */
#ifndef PROFLAB_CLI_H
#define PROFLAB_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "format/readers.h"
#include "progress.h"
#include "proflab/buf.h"

/* Exit codes shared by every command. */
enum {
  CLI_EXIT_OK = 0,
  CLI_EXIT_FAIL = 1,  /* the operation failed (reason on stderr) */
  CLI_EXIT_USAGE = 2, /* bad command line */
};

/* One entry of main.c's command table: the name typed after `proflab`, a
 * one-line summary for `proflab --help`, and the function that runs it. */
typedef struct cli_command {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
} cli_command;

/* lab_client.c: commands that talk to a lab over HTTP. Each parses its
 * options (--url, --token, ... and --help), makes its requests and returns
 * a CLI_EXIT_* code; nothing is sent when the command line is bad. */
int cli_cmd_status(int argc, char **argv);    /* GET the lab's state */
int cli_cmd_leak(int argc, char **argv);      /* make the lab leak --mb N MiB */
int cli_cmd_clear(int argc, char **argv);     /* free what the lab leaked */
int cli_cmd_jam(int argc, char **argv);       /* jam the event loop for --ms N */
int cli_cmd_profile(int argc, char **argv);   /* CPU profile, downloaded and verified */
int cli_cmd_snapshot(int argc, char **argv);  /* heap snapshot, downloaded and verified */
int cli_cmd_artifacts(int argc, char **argv); /* list the answering task's artifacts */
int cli_cmd_download(int argc, char **argv);  /* download and verify one artifact */
/* For other commands that take evidence from a lab (leaks): opens a
 * connection to url (NULL or "": LAB_URL, else the default) with token,
 * else the first line of token_file, else LAB_TOKEN, checked as the lab
 * commands check them. CLI_EXIT_OK with *out set (cli_conn_free it), or
 * CLI_EXIT_USAGE / CLI_EXIT_FAIL after a one-line reason on stderr. */
struct cli_conn;
int cli_lab_connect(const char *cmd, const char *url, const char *token, const char *token_file,
                    int verbose, struct cli_conn **out);
/* Takes a heap snapshot (.heapsnapshot) on the lab and downloads it,
 * verified, to dir/<artifact name> (the full path in path); the task that
 * took it in task_out. task (NULL or "": any) is the task it must come
 * from: another one is an error. attempts bounds the download's requests
 * (0: 20). CLI_EXIT_OK, or CLI_EXIT_FAIL after "proflab CMD: reason" on
 * stderr (nothing left under path). */
int cli_lab_heap_snapshot(const char *cmd, struct cli_conn *conn, const char *task, const char *dir,
                          unsigned attempts, char *path, size_t path_len, char *task_out,
                          size_t task_len);

/* run.c: run CMD with the agent preloaded (exec: on success it does not
 * return). Returns a CLI_EXIT_* code, 127 (CMD not found) or 126. */
int cli_cmd_run(int argc, char **argv);

/* proflab ps (ps.c): the agents of this user from their registry files
 * and default sockets in /tmp/proflab-UID/, their processes, stale files
 * removed. */
int cli_cmd_ps(int argc, char **argv);
/* --pid PID of the lab commands: the address the agent of PID registered
 * ("unix:PATH" or "http://HOST:PORT"), else its default socket
 * "unix:/tmp/proflab-UID/agent-PID.sock", into out. -1 when found, else
 * an exit status after a one-line reason ("proflab CMD: ...") on stderr. */
int cli_agent_socket(const char *cmd, const char *pid_text, char *out, size_t n);

/* export.c: get an artifact out of a container through an exec channel.
 * Returns a CLI_EXIT_* code, or CLI_EXIT_RESUMABLE (export.h) when the
 * transfer stopped incomplete and can be resumed. */
int cli_cmd_export(int argc, char **argv);

/* top.c and convert.c: read profiles from files (any format the readers
 * know, told by content). top lists functions by self/total time or live
 * bytes; convert writes a profile in another format. */
int cli_cmd_top(int argc, char **argv);
int cli_cmd_convert(int argc, char **argv);
/* profile_files.c, for top, convert, flame and diff. */
/* Reads the profile at path ("-": stdin) into *out: CLI_EXIT_OK, or
 * CLI_EXIT_FAIL after "proflab CMD: PATH: reason" on stderr. */
int cli_read_profile(const char *cmd, const char *path, pl__profile *out);
/* The same, and files of 4 MiB or more (stdin: once 4 MiB were read) show
 * "proflab CMD: reading PATH" progress in p (zeroed or ended by the
 * caller), on a terminal. On success p is left running so the caller can
 * show its next phase and must cli_progress_end it (a no-op when it was
 * never begun); on failure it is ended before the message. */
int cli_read_profile_progress(const char *cmd, const char *path, pl__profile *out, cli_progress *p);
/* What p is, for people: ".cpuprofile", "pprof heap profile", ... */
const char *cli_profile_description(const pl__profile *p);
/* Writes out ("-": stdout) through write(ctx, fd) (0 or -errno): into
 * out.partial, fsynced, renamed over out; on failure nothing is left under
 * either name and "proflab CMD: OUT: cannot STEP ...: reason" is on stderr.
 * Returns CLI_EXIT_OK or CLI_EXIT_FAIL. */
int cli_write_output(const char *cmd, const char *out, int (*write)(void *ctx, int fd), void *ctx);

/* flame.c and diff.c: a profile as an interactive SVG flame graph; two
 * profiles compared by function, with a noise band and a differential
 * flame graph. */
int cli_cmd_flame(int argc, char **argv);
int cli_cmd_diff(int argc, char **argv);
/* leaks.c: allocation sites whose live bytes grow steadily across three
 * or more heap snapshots (files, or taken from a lab with --url), ranked,
 * with a verdict (src/analysis/leaks.h). */
int cli_cmd_leaks(int argc, char **argv);
/* --width (whole px, 200 to 100000) and --minwidth (px, 0 to 10000) values:
 * 0 or -EINVAL. */
int cli_parse_width(const char *s, unsigned *out);
int cli_parse_minwidth(const char *s, double *out);

/* profile_report.c: what top and diff print about profiles. */
/* --limit (whole rows, 0 to 1000000000) and --by (self: 0, total: 1)
 * values: 0, or -EINVAL with *out untouched. */
int cli_parse_limit(const char *s, uint64_t *out);
int cli_parse_by(const char *s, int *by_total);
/* v bytes for people ("512 B", "1.5 MiB"), with a + or - first when sign. */
void cli_put_bytes(char *out, size_t n, double v, int sign);
/* A function's location: "file:line", the file, the module's base name
 * when there is no file, or "". */
void cli_location(const char *file, uint32_t line, const char *module, char *out, size_t n);
/* Prints the JSON document in b and a newline on stdout, then frees b:
 * CLI_EXIT_OK, or CLI_EXIT_FAIL after "proflab CMD: out of memory" on
 * stderr when b failed to grow (nothing printed). */
int cli_print_json(const char *cmd, pl_buf *b);
/* Flushes stdout: CLI_EXIT_OK, or CLI_EXIT_FAIL after "proflab CMD: cannot
 * write the output: reason" on stderr. */
int cli_flush_stdout(const char *cmd);

#endif
