/* proflab ps: the agents of this user on this machine, found in their
 * runtime directory /tmp/proflab-UID/: the registry file each agent writes
 * (agent-PID.json: its address, Unix socket or TCP, and inspector;
 * programs/agent/registry.h) and the default sockets (agent-PID.sock, for
 * agents that wrote no registry file), with the processes behind them;
 * files of processes that are gone are removed. And the address of one pid
 * for the lab commands' --pid. docs/cli.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "common/util.h"
#include "proflab/buf.h"

/* The directory the agents of this user put their default sockets and
 * registry files in (programs/agent/settings.c, agent_runtime_dir). */
static void agent_dir(char *out, size_t n) {
  snprintf(out, n, "/tmp/proflab-%u", (unsigned)getuid());
}

/* Whether pid is (still) the process that wrote a registry file with
 * starttime (NULL or "": not known, any process of that pid counts). */
static int same_process(int pid, const char *starttime) {
  if (kill(pid, 0) != 0 && errno != EPERM) return 0;
  if (!starttime || !*starttime) return 1;
  char now[32];
  pl__proc_starttime(pid, now, sizeof(now));
  return !now[0] || strcmp(now, starttime) == 0; /* unreadable: assume it is */
}

/* What one registry file says (programs/agent/registry.h). */
typedef struct registry {
  int pid;
  char lab[300], inspector[200], starttime[32], program[256], cmdline[1024];
} registry;

static void copy_str(json_t *o, const char *key, char *out, size_t n) {
  const char *v = json_string_value(json_object_get(o, key));
  snprintf(out, n, "%s", v ? v : "");
}

/* Read the registry file at path (a regular file of this user, written by
 * the agent of pid). 0, or -1 when absent or not one. */
static int read_registry(const char *path, int pid, registry *r) {
  struct stat st;
  if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid() || st.st_size > 65536)
    return -1;
  json_error_t jerr;
  json_t *o = json_load_file(path, 0, &jerr);
  if (!json_is_object(o) || json_integer_value(json_object_get(o, "pid")) != pid) {
    json_decref(o);
    return -1;
  }
  memset(r, 0, sizeof(*r));
  r->pid = pid;
  copy_str(o, "lab", r->lab, sizeof(r->lab));
  copy_str(o, "inspector", r->inspector, sizeof(r->inspector));
  copy_str(o, "starttime", r->starttime, sizeof(r->starttime));
  copy_str(o, "program", r->program, sizeof(r->program));
  copy_str(o, "cmdline", r->cmdline, sizeof(r->cmdline));
  json_decref(o);
  return 0;
}

/* An address as the agent announces it ("http://0.0.0.0:9100": every
 * address) as one to connect to (loopback for a wildcard host). */
static void connectable(const char *addr, char *out, size_t n) {
  if (strncmp(addr, "http://0.0.0.0:", 15) == 0)
    snprintf(out, n, "http://127.0.0.1:%s", addr + 15);
  else if (strncmp(addr, "http://[::]:", 12) == 0)
    snprintf(out, n, "http://[::1]:%s", addr + 12);
  else
    snprintf(out, n, "%s", addr);
}

int cli_agent_socket(const char *cmd, const char *pid_text, char *out, size_t n) {
  uint64_t pid;
  if (pl__parse_u64(pid_text, &pid) != 0 || pid == 0 || pid > INT32_MAX) {
    fprintf(stderr, "proflab %s: --pid '%.40s' must be a process id\n", cmd, pid_text);
    return CLI_EXIT_USAGE;
  }
  char dir[64], path[128];
  agent_dir(dir, sizeof(dir));
  /* the registry file names any agent's address (a Unix socket or TCP) */
  snprintf(path, sizeof(path), "%s/agent-%llu.json", dir, (unsigned long long)pid);
  registry r;
  if (read_registry(path, (int)pid, &r) == 0 && r.lab[0] && same_process((int)pid, r.starttime)) {
    char addr[sizeof(r.lab)];
    connectable(r.lab, addr, sizeof(addr));
    if ((size_t)snprintf(out, n, "%s", addr) >= n) {
      fprintf(stderr, "proflab %s: the address of pid %llu is too long: %.80s\n", cmd,
              (unsigned long long)pid, addr);
      return CLI_EXIT_FAIL;
    }
    return -1;
  }
  if ((size_t)snprintf(out, n, "unix:%s/agent-%llu.sock", dir, (unsigned long long)pid) >= n)
    return CLI_EXIT_USAGE;
  struct stat st;
  if (stat(out + 5, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    fprintf(stderr,
            "proflab %s: no agent of pid %llu: neither %s nor %s is there (proflab ps lists "
            "the agents)\n",
            cmd, (unsigned long long)pid, path, out + 5);
    return CLI_EXIT_FAIL;
  }
  return -1;
}

/* What the files say about an agent. */
typedef enum { AGENT_ALIVE, AGENT_NOT_LISTENING, AGENT_STALE } agent_state;
static const char *const state_names[] = {"alive", "not-listening", "stale"};

typedef struct agent_row {
  int pid;
  agent_state state;
  int removed;       /* the files of a process that is gone were removed */
  char sock[128];    /* the default socket, or "" */
  char json[128];    /* the registry file, or "" */
  registry reg;      /* what the registry file says (when json[0]) */
  char address[300]; /* "unix:PATH" or "http://HOST:PORT" */
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

/* Whether something accepts TCP connections at "http://HOST:PORT" (a
 * wildcard host: on loopback), within a second. Nothing is sent. */
static int tcp_listening(const char *url) {
  char addr[300];
  connectable(url, addr, sizeof(addr));
  if (strncmp(addr, "http://", 7) != 0) return 0;
  char *host = addr + 7, *port = strrchr(host, ':');
  if (!port) return 0;
  *port++ = '\0';
  size_t hl = strlen(host);
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
    host[hl - 1] = '\0';
    host++;
  }
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
  if (getaddrinfo(host, port, &hints, &res) != 0) return 0;
  int ok = 0;
  for (struct addrinfo *ai = res; ai && !ok; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      ok = 1;
    } else if (errno == EINPROGRESS) {
      struct pollfd pf = {.fd = fd, .events = POLLOUT};
      int e = 0;
      socklen_t el = sizeof(e);
      ok = poll(&pf, 1, 1000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && !e;
    }
    close(fd);
  }
  freeaddrinfo(res);
  return ok;
}

/* The program: /proc/PID/exe's target ("" when unreadable). */
static void read_program(int pid, char *out, size_t n) {
  char p[64];
  snprintf(p, sizeof(p), "/proc/%d/exe", pid);
  ssize_t l = readlink(p, out, n - 1);
  out[l > 0 ? l : 0] = '\0';
}

/* The pid in a directory entry "agent-PID<suffix>", or 0. */
static int entry_pid(const char *name, const char *suffix) {
  size_t len = strlen(name), sl = strlen(suffix);
  uint64_t pid;
  if (len <= 6 + sl || strncmp(name, "agent-", 6) != 0 || strcmp(name + len - sl, suffix) != 0 ||
      pl__parse_u64n(name + 6, len - 6 - sl, &pid) != 0 || pid == 0 || pid > INT32_MAX)
    return 0;
  return (int)pid;
}

/* The row of pid in *rows, added when new (NULL: out of memory). */
static agent_row *row_of(agent_row **rows, size_t *n, size_t *cap, int pid) {
  for (size_t i = 0; i < *n; i++)
    if ((*rows)[i].pid == pid) return &(*rows)[i];
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 16;
    agent_row *nr = realloc(*rows, nc * sizeof(*nr));
    if (!nr) return NULL;
    *rows = nr;
    *cap = nc;
  }
  agent_row *r = &(*rows)[(*n)++];
  memset(r, 0, sizeof(*r));
  r->pid = pid;
  return r;
}

/* Note dir/name (a registry file or a default socket) in its pid's row.
 * 0, or -ENOMEM. */
static int note_entry(const char *dir, const char *name, agent_row **rows, size_t *n, size_t *cap) {
  int pid = entry_pid(name, ".json"), is_json = pid != 0;
  if (!pid) pid = entry_pid(name, ".sock");
  if (!pid) return 0;
  char path[128];
  if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) return 0;
  struct stat st;
  if (lstat(path, &st) != 0 || st.st_uid != getuid()) return 0;
  if (is_json ? !S_ISREG(st.st_mode) : !S_ISSOCK(st.st_mode)) return 0;
  registry reg;
  if (is_json && read_registry(path, pid, &reg) != 0) return 0; /* not one */
  agent_row *r = row_of(rows, n, cap, pid);
  if (!r) return -ENOMEM;
  if (is_json) {
    snprintf(r->json, sizeof(r->json), "%s", path);
    r->reg = reg;
  } else {
    snprintf(r->sock, sizeof(r->sock), "%s", path);
  }
  return 0;
}

/* Decide a row's state (removing the files of a process that is gone) and
 * fill in what its process says. */
static void look_at(agent_row *r) {
  int registered = r->json[0] != '\0';
  if (registered && r->reg.lab[0])
    snprintf(r->address, sizeof(r->address), "%s", r->reg.lab);
  else
    snprintf(r->address, sizeof(r->address), "unix:%s", r->sock);
  int exists = same_process(r->pid, registered ? r->reg.starttime : NULL);
  int answers = strncmp(r->address, "unix:", 5) == 0 ? r->address[5] && listening(r->address + 5)
                                                     : tcp_listening(r->address);
  if (answers) {
    r->state = AGENT_ALIVE;
  } else if (!exists) {
    /* its process is gone (killed by a signal: no destructor removed its
     * files), or the pid is another process's now */
    r->state = AGENT_STALE;
    r->removed = 1;
    if (r->json[0] && unlink(r->json) != 0) r->removed = 0;
    if (r->sock[0] && unlink(r->sock) != 0) r->removed = 0;
  } else {
    r->state = AGENT_NOT_LISTENING; /* a reused pid, or an agent starting or stopping */
  }
  if (exists) {
    pl__proc_cmdline(r->pid, r->cmdline, sizeof(r->cmdline));
    read_program(r->pid, r->program, sizeof(r->program));
  }
  if (!r->cmdline[0] && registered) snprintf(r->cmdline, sizeof(r->cmdline), "%s", r->reg.cmdline);
  if (!r->program[0] && registered) snprintf(r->program, sizeof(r->program), "%s", r->reg.program);
}

static int by_pid(const void *a, const void *b) {
  return ((const agent_row *)a)->pid - ((const agent_row *)b)->pid;
}

static void ps_usage(FILE *f) {
  fprintf(f,
          "usage: proflab ps [--json]\n"
          "\n"
          "List the agents of this user on this machine, from the registry files they\n"
          "write in /tmp/proflab-UID/ (and the default sockets there): each with its\n"
          "pid, whether it answers (alive), the address the lab commands take (--url\n"
          "unix:PATH or http://HOST:PORT, or --pid PID) whatever it listens on (the\n"
          "default socket, unix:PATH or TCP), the program and its command line; --json\n"
          "adds the inspector's URL. Files left by a process that is gone (killed by a\n"
          "signal) are stale: they are removed. Tokens are never shown (an agent on\n"
          "TCP takes LAB_TOKEN, as proflab run printed it).\n"
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
    if (note_entry(dir, e->d_name, &rows, &n, &cap) != 0) {
      closedir(d);
      free(rows);
      fprintf(stderr, "proflab ps: out of memory\n");
      return CLI_EXIT_FAIL;
    }
  }
  if (d) closedir(d);
  for (size_t i = 0; i < n; i++) look_at(&rows[i]);
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
      pl_json_obj_open(&j);
      pl_json_kv_int(&j, "pid", rows[i].pid);
      pl_json_kv_str(&j, "state", state_names[rows[i].state]);
      pl_json_kv_str(&j, "address", rows[i].address);
      if (rows[i].json[0] && rows[i].reg.inspector[0])
        pl_json_kv_str(&j, "inspector", rows[i].reg.inspector);
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
    for (size_t i = 0; i < n; i++)
      printf("%-8d %-14s %-44s %s\n", rows[i].pid,
             rows[i].state == AGENT_STALE && rows[i].removed ? "stale,removed"
                                                             : state_names[rows[i].state],
             rows[i].address, rows[i].cmdline[0] ? rows[i].cmdline : rows[i].program);
  }
  free(rows);
  if (rc == CLI_EXIT_OK) rc = cli_flush_stdout("ps");
  return rc;
}
