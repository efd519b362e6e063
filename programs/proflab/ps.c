/* proflab ps: the agents on this machine (their Unix sockets in
 * /tmp/proflab-UID/, the processes behind them), with stale sockets of
 * dead processes removed; and the socket of one pid for the lab
 * commands' --pid. docs/cli.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "common/util.h"
#include "proflab/buf.h"

/* The directory the agents of this user put their default sockets in
 * (programs/agent/settings.c, agent_default_socket). */
static void agent_dir(char *out, size_t n) {
  snprintf(out, n, "/tmp/proflab-%u", (unsigned)getuid());
}

int cli_agent_socket(const char *cmd, const char *pid_text, char *out, size_t n) {
  uint64_t pid;
  if (pl__parse_u64(pid_text, &pid) != 0 || pid == 0 || pid > INT32_MAX) {
    fprintf(stderr, "proflab %s: --pid '%.40s' must be a process id\n", cmd, pid_text);
    return CLI_EXIT_USAGE;
  }
  char dir[64];
  agent_dir(dir, sizeof(dir));
  if ((size_t)snprintf(out, n, "unix:%s/agent-%llu.sock", dir, (unsigned long long)pid) >= n)
    return CLI_EXIT_USAGE;
  struct stat st;
  if (stat(out + 5, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    fprintf(stderr,
            "proflab %s: no agent of pid %llu: %s %s (proflab ps lists the agents; an agent "
            "listening on TCP or on unix:PATH takes --url)\n",
            cmd, (unsigned long long)pid, out + 5,
            errno == ENOENT || !S_ISSOCK(st.st_mode) ? "is not there" : strerror(errno));
    return CLI_EXIT_FAIL;
  }
  return -1;
}

/* What a socket file says about its agent. */
typedef enum { AGENT_ALIVE, AGENT_NOT_LISTENING, AGENT_STALE } agent_state;
static const char *const state_names[] = {"alive", "not-listening", "stale"};

typedef struct agent_row {
  int pid;
  agent_state state;
  int removed; /* stale socket unlinked */
  char path[128];
  char program[256];
  char cmdline[1024];
} agent_row;

/* Whether something accepts connections on the socket at path. */
static int listening(const char *path) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(sa.sun_path)) return 0;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
  close(fd);
  return ok;
}

/* /proc/PID/cmdline with its NULs as spaces ("" when unreadable). */
static void read_cmdline(int pid, char *out, size_t n) {
  char p[64];
  snprintf(p, sizeof(p), "/proc/%d/cmdline", pid);
  out[0] = '\0';
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t got = read(fd, out, n - 1);
  close(fd);
  if (got <= 0) return;
  while (got > 0 && out[got - 1] == '\0') got--;
  for (ssize_t i = 0; i < got; i++)
    if (out[i] == '\0') out[i] = ' ';
  out[got] = '\0';
}

/* The program: /proc/PID/exe's target ("" when unreadable). */
static void read_program(int pid, char *out, size_t n) {
  char p[64];
  snprintf(p, sizeof(p), "/proc/%d/exe", pid);
  ssize_t l = readlink(p, out, n - 1);
  out[l > 0 ? l : 0] = '\0';
}

static int look_at(const char *dir, const char *name, agent_row *r) {
  uint64_t pid;
  size_t len = strlen(name);
  if (len < 11 || strncmp(name, "agent-", 6) != 0 || strcmp(name + len - 5, ".sock") != 0 ||
      pl__parse_u64n(name + 6, len - 11, &pid) != 0 || pid == 0 || pid > INT32_MAX)
    return -1;
  memset(r, 0, sizeof(*r));
  r->pid = (int)pid;
  if ((size_t)snprintf(r->path, sizeof(r->path), "%s/%s", dir, name) >= sizeof(r->path)) return -1;
  struct stat st;
  if (lstat(r->path, &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_uid != getuid()) return -1;
  int exists = kill(r->pid, 0) == 0 || errno == EPERM;
  if (listening(r->path)) {
    r->state = AGENT_ALIVE;
  } else if (!exists) {
    /* its process is gone (killed by a signal: no destructor removed it) */
    r->state = AGENT_STALE;
    r->removed = unlink(r->path) == 0;
  } else {
    r->state = AGENT_NOT_LISTENING; /* a reused pid, or an agent stopping */
  }
  if (exists) {
    read_cmdline(r->pid, r->cmdline, sizeof(r->cmdline));
    read_program(r->pid, r->program, sizeof(r->program));
  }
  return 0;
}

static int by_pid(const void *a, const void *b) {
  return ((const agent_row *)a)->pid - ((const agent_row *)b)->pid;
}

static void ps_usage(FILE *f) {
  fprintf(f,
          "usage: proflab ps [--json]\n"
          "\n"
          "List the agents of this user on this machine: the Unix sockets in\n"
          "/tmp/proflab-UID/ (proflab run's default), each with its pid, whether it\n"
          "answers (alive), the program and its command line, and the address the lab\n"
          "commands take (--url unix:PATH, or --pid PID). A socket left by a process\n"
          "that is gone (killed by a signal) is stale: it is removed. Agents listening\n"
          "on TCP or on unix:PATH are not listed (their agent_start line says where).\n"
          "\n"
          "  --json      one JSON object on stdout\n"
          "  -h, --help  this help\n"
          "\n"
          "exit status: 0 success (also when no agent runs), 1 failure, 2 bad command line\n");
}

int cli_cmd_ps(int argc, char **argv) {
  static const struct option opts[] = {
      {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  int json = 0, ch;
  opterr = 0;
  optind = 1;
  while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    if (ch == 'j') {
      json = 1;
    } else if (ch == 'h') {
      ps_usage(stdout);
      return CLI_EXIT_OK;
    } else {
      fprintf(stderr, "proflab ps: unknown option '%.60s' (see proflab ps --help)\n",
              argv[optind - 1]);
      return CLI_EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "proflab ps: unexpected argument '%.60s' (see proflab ps --help)\n",
            argv[optind]);
    return CLI_EXIT_USAGE;
  }
  char dir[64];
  agent_dir(dir, sizeof(dir));
  agent_row *rows = NULL;
  size_t n = 0, cap = 0;
  DIR *d = opendir(dir);
  if (!d && errno != ENOENT) {
    fprintf(stderr, "proflab ps: cannot read %s: %s\n", dir, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 16;
      agent_row *nr = realloc(rows, nc * sizeof(*nr));
      if (!nr) {
        closedir(d);
        free(rows);
        fprintf(stderr, "proflab ps: out of memory\n");
        return CLI_EXIT_FAIL;
      }
      rows = nr;
      cap = nc;
    }
    if (look_at(dir, e->d_name, &rows[n]) == 0) n++;
  }
  if (d) closedir(d);
  if (n) qsort(rows, n, sizeof(*rows), by_pid);
  int rc = CLI_EXIT_OK;
  if (json) {
    pl_buf b;
    pl_json j;
    pl_buf_init(&b);
    pl_json_init(&j, &b);
    pl_json_obj_open(&j);
    pl_json_kv_str(&j, "dir", dir);
    pl_json_key(&j, "agents");
    pl_json_arr_open(&j);
    for (size_t i = 0; i < n; i++) {
      char addr[160];
      snprintf(addr, sizeof(addr), "unix:%s", rows[i].path);
      pl_json_obj_open(&j);
      pl_json_kv_int(&j, "pid", rows[i].pid);
      pl_json_kv_str(&j, "state", state_names[rows[i].state]);
      pl_json_kv_str(&j, "address", addr);
      pl_json_kv_str(&j, "program", rows[i].program);
      pl_json_kv_str(&j, "cmdline", rows[i].cmdline);
      if (rows[i].state == AGENT_STALE) pl_json_kv_bool(&j, "removed", rows[i].removed);
      pl_json_obj_close(&j);
    }
    pl_json_arr_close(&j);
    pl_json_obj_close(&j);
    rc = cli_print_json("ps", &b); /* frees b */
  } else if (n == 0) {
    printf("no agents in %s\n", dir);
  } else {
    printf("%-8s %-14s %-44s %s\n", "PID", "STATE", "ADDRESS", "COMMAND");
    for (size_t i = 0; i < n; i++) {
      char addr[160];
      snprintf(addr, sizeof(addr), "unix:%s", rows[i].path);
      printf("%-8d %-14s %-44s %s\n", rows[i].pid,
             rows[i].state == AGENT_STALE && rows[i].removed ? "stale,removed"
                                                             : state_names[rows[i].state],
             addr, rows[i].cmdline[0] ? rows[i].cmdline : rows[i].program);
    }
  }
  free(rows);
  if (rc == CLI_EXIT_OK) rc = cli_flush_stdout("ps");
  return rc;
}
