/* proflab: the command-line tool. Dispatches to one function per command;
 * each command parses its own options and has its own --help. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* The commands, in the order `proflab --help` lists them. */
static const cli_command commands[] = {
    {"status", "show the lab's state (memory, event-loop lag, profiler, artifacts)",
     cli_cmd_status},
    {"leak", "make the lab leak N MiB", cli_cmd_leak},
    {"clear", "free what the lab leaked", cli_cmd_clear},
    {"jam", "jam the lab's event loop for N ms", cli_cmd_jam},
    {"profile", "record a CPU profile, download and verify it", cli_cmd_profile},
    {"snapshot", "take a heap snapshot, download and verify it", cli_cmd_snapshot},
    {"artifacts", "list the lab's artifacts", cli_cmd_artifacts},
    {"download", "download and verify one artifact", cli_cmd_download},
    {"export", "get an artifact out of a container through an exec channel", cli_cmd_export},
    {"top", "a profile's functions by self and total time, or by live bytes", cli_cmd_top},
    {"convert", "convert a profile to another format (cpuprofile, pprof, folded, ...)",
     cli_cmd_convert},
    {"flame", "a profile as an interactive SVG flame graph", cli_cmd_flame},
    {"diff", "compare two profiles by function, with a noise band", cli_cmd_diff},
    {"leaks", "allocation sites that grow steadily across heap snapshots: leak verdicts",
     cli_cmd_leaks},
    {"run", "run any dynamically linked program with the agent preloaded", cli_cmd_run},
    {"ps", "list the agents on this machine (pids, programs, addresses)", cli_cmd_ps},
    {NULL, NULL, NULL},
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: proflab COMMAND [options]\n"
          "\n"
          "The proflab command-line tool: drive a lab service, get artifacts out of\n"
          "containers, read profiles. `proflab COMMAND --help` describes each command.\n"
          "\n"
          "commands:\n");
  for (const cli_command *c = commands; c->name; c++)
    fprintf(f, "  %-10s %s\n", c->name, c->summary);
  fprintf(f,
          "\n"
          "On a terminal, long work (reading a file of 4 MiB or more, profile, snapshot,\n"
          "download) shows a progress line on stderr, erased when done; nothing when\n"
          "stderr is not a terminal, TERM=dumb or PROFLAB_PROGRESS=0.\n"
          "\n"
          "exit status: 0 success, 1 the operation failed (reason on stderr),\n"
          "2 bad command line; some commands document more.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *name = argv[1];
  if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
    usage(stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
    printf("proflab %s\n", PROFLAB_VERSION);
    return CLI_EXIT_OK;
  }
  for (const cli_command *c = commands; c->name; c++)
    if (strcmp(c->name, name) == 0) return c->run(argc - 1, argv + 1);
  fprintf(stderr, "proflab: unknown command '%s' (see proflab --help)\n", name);
  return CLI_EXIT_USAGE;
}
