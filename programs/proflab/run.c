/* proflab run: run any dynamically linked program with the agent
 * (libproflab-agent.so) preloaded and its settings in the environment,
 * then become that program (exec: its pid, signals and exit status are
 * the program's own). docs/agent.md. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define AGENT_SO "libproflab-agent.so"

static void run_usage(FILE *f) {
  fprintf(f,
          "usage: proflab run [options] -- CMD [ARGS...]\n"
          "\n"
          "Run CMD with the proflab agent preloaded: the heap tracker samples its\n"
          "allocations from the first one, and an agent thread serves the lab's capture\n"
          "endpoints (status, cpu-profile, heap-snapshot, artifacts) inside it, without\n"
          "any change to CMD. CMD keeps its pid, signals and exit status.\n"
          "\n"
          "  --listen ADDR        where the agent listens (PROFLAB_AGENT_LISTEN):\n"
          "                       unix (default: /tmp/proflab-UID/agent-PID.sock, mode\n"
          "                       0600, no token), unix:PATH, or HOST:PORT (needs\n"
          "                       LAB_TOKEN of >= 16 characters; one is generated and\n"
          "                       printed when none is set)\n"
          "  --inspect[=[HOST:]PORT]  the DevTools inspector (PROFLAB_INSPECT)\n"
          "                       [127.0.0.1:9229]\n"
          "  --cpu-profile FILE   profile the whole run, write FILE at exit\n"
          "                       (PROFLAB_CPU_PROFILE; .cpuprofile, .pb.gz, .folded)\n"
          "  --heap-profile FILE  heap profile at exit (PROFLAB_HEAP_PROFILE;\n"
          "                       .heapsnapshot, .heapprofile, .pb.gz)\n"
          "  --children           exec'd children keep the agent (PROFLAB_AGENT_CHILDREN)\n"
          "  -h, --help           this text\n"
          "\n"
          "The agent is looked up in PROFLAB_AGENT_LIB, next to this program (a build\n"
          "directory), then in " PROFLAB_LIBDIR
          ". Other settings (LAB_ARTIFACT_DIR,\n"
          "LAB_TASK_ID, LAB_HEAP_SAMPLE_BYTES, PROFLAB_AGENT_LOG, ...) pass through the\n"
          "environment. A statically linked CMD cannot take the agent: it runs without\n"
          "it, with one line on stderr.\n"
          "\n"
          "exit status: CMD's; 2 bad command line; 127 CMD not found, 126 not runnable.\n");
}

static int file_ok(const char *p) { return access(p, R_OK) == 0; }

/* The agent library: PROFLAB_AGENT_LIB, next to /proc/self/exe, then the
 * install libdir. 0 with the path in out, else -ENOENT. */
static int find_agent(char *out, size_t n) {
  const char *env = getenv("PROFLAB_AGENT_LIB");
  if (env && *env) {
    if (!file_ok(env) || (size_t)snprintf(out, n, "%s", env) >= n) return -ENOENT;
    if (env[0] != '/' && realpath(env, out) == NULL) return -ENOENT;
    return 0;
  }
  char self[PATH_MAX];
  ssize_t l = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (l > 0) {
    self[l] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) {
      *slash = '\0';
      const char *rel[] = {"", "/../lib", "/../lib64"};
      for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++)
        if ((size_t)snprintf(out, n, "%s%s/" AGENT_SO, self, rel[i]) < n && file_ok(out)) return 0;
    }
  }
  if ((size_t)snprintf(out, n, "%s/" AGENT_SO, PROFLAB_LIBDIR) < n && file_ok(out)) return 0;
  return -ENOENT;
}

/* CMD as execvp would find it: 0 with the path in out, else -errno. */
static int resolve_cmd(const char *cmd, char *out, size_t n) {
  if (strchr(cmd, '/')) {
    if ((size_t)snprintf(out, n, "%s", cmd) >= n) return -ENAMETOOLONG;
    return access(out, F_OK) == 0 ? 0 : -errno;
  }
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
  for (const char *p = path; *p;) {
    const char *e = strchr(p, ':');
    size_t dl = e ? (size_t)(e - p) : strlen(p);
    if ((size_t)snprintf(out, n, "%.*s/%s", (int)dl, dl ? p : ".", cmd) < n &&
        access(out, X_OK) == 0) {
      struct stat st;
      if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) return 0;
    }
    p = e ? e + 1 : p + dl;
  }
  return -ENOENT;
}

/* 1 when path is an ELF executable without PT_INTERP (static: the loader
 * never runs, so nothing is preloaded); a "#!" script is judged by its
 * interpreter. 0 otherwise, or when it cannot be told. */
static int is_static(const char *path, int depth) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  unsigned char head[256];
  ssize_t got = pread(fd, head, sizeof(head) - 1, 0);
  int result = 0;
  if (got >= 2 && head[0] == '#' && head[1] == '!' && depth < 4) {
    head[got] = '\0';
    char *s = (char *)head + 2;
    while (*s == ' ' || *s == '\t') s++;
    char *e = s;
    while (*e && *e != ' ' && *e != '\t' && *e != '\n') e++;
    *e = '\0';
    result = *s ? is_static(s, depth + 1) : 0;
  } else if (got >= (ssize_t)sizeof(Elf64_Ehdr) && memcmp(head, ELFMAG, SELFMAG) == 0 &&
             head[EI_CLASS] == ELFCLASS64) {
    Elf64_Ehdr eh;
    memcpy(&eh, head, sizeof(eh));
    int interp = 0, ok = eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum < 4096;
    for (unsigned i = 0; ok && i < eh.e_phnum; i++) {
      Elf64_Phdr ph;
      if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph))) !=
          (ssize_t)sizeof(ph)) {
        ok = 0;
        break;
      }
      if (ph.p_type == PT_INTERP) interp = 1;
    }
    result = ok && !interp && (eh.e_type == ET_EXEC || eh.e_type == ET_DYN);
  }
  close(fd);
  return result;
}

static int set(const char *name, const char *value) {
  if (setenv(name, value, 1) == 0) return 0;
  fprintf(stderr, "proflab run: cannot set %s: %s\n", name, strerror(errno));
  return -1;
}

int cli_cmd_run(int argc, char **argv) {
  enum { O_LISTEN = 256, O_INSPECT, O_CPU, O_HEAP, O_CHILDREN };
  static const struct option opts[] = {
      {"listen", required_argument, 0, O_LISTEN},
      {"inspect", optional_argument, 0, O_INSPECT},
      {"cpu-profile", required_argument, 0, O_CPU},
      {"heap-profile", required_argument, 0, O_HEAP},
      {"children", no_argument, 0, O_CHILDREN},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0},
  };
  const char *listen = NULL, *inspect = NULL, *cpu = NULL, *heap = NULL;
  int children = 0, c;
  optind = 1;
  opterr = 0;
  /* "+": stop at the first non-option, so CMD's own options stay CMD's. */
  while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
    switch (c) {
      case O_LISTEN:
        listen = optarg;
        break;
      case O_INSPECT:
        inspect = optarg ? optarg : "127.0.0.1:9229";
        break;
      case O_CPU:
        cpu = optarg;
        break;
      case O_HEAP:
        heap = optarg;
        break;
      case O_CHILDREN:
        children = 1;
        break;
      case 'h':
        run_usage(stdout);
        return CLI_EXIT_OK;
      case ':':
        fprintf(stderr, "proflab run: option %s needs a value (see --help)\n", argv[optind - 1]);
        return CLI_EXIT_USAGE;
      default:
        fprintf(stderr, "proflab run: unknown option '%.60s' (see --help)\n", argv[optind - 1]);
        return CLI_EXIT_USAGE;
    }
  }
  if (optind >= argc) {
    fprintf(stderr, "proflab run: no command to run: proflab run [options] -- CMD [ARGS...]\n");
    return CLI_EXIT_USAGE;
  }
  char **cmd = argv + optind;
  char path[PATH_MAX];
  int rc = resolve_cmd(cmd[0], path, sizeof(path));
  if (rc) {
    fprintf(stderr, "proflab run: %s: %s\n", cmd[0],
            rc == -ENOENT ? "command not found" : strerror(-rc));
    return 127;
  }
  if (listen && strncmp(listen, "unix", 4) != 0 && strchr(listen, ':') == NULL) {
    fprintf(stderr, "proflab run: --listen '%.80s' must be unix, unix:PATH or HOST:PORT\n", listen);
    return CLI_EXIT_USAGE;
  }
  if (is_static(path, 0)) {
    fprintf(stderr,
            "proflab run: %s is statically linked: the agent cannot be preloaded into it; "
            "running it without the agent\n",
            path);
  } else {
    char agent[PATH_MAX];
    if (find_agent(agent, sizeof(agent)) != 0) {
      fprintf(stderr, "proflab run: " AGENT_SO
                      " not found (PROFLAB_AGENT_LIB, next to this program, "
                      "or " PROFLAB_LIBDIR ")\n");
      return CLI_EXIT_FAIL;
    }
    const char *old = getenv("LD_PRELOAD");
    char pre[2 * PATH_MAX];
    if ((size_t)snprintf(pre, sizeof(pre), "%s%s%s", agent, old && *old ? " " : "",
                         old ? old : "") >= sizeof(pre)) {
      fprintf(stderr, "proflab run: LD_PRELOAD is too long\n");
      return CLI_EXIT_FAIL;
    }
    if (set("LD_PRELOAD", pre) || set("LAB_ENABLE", "true")) return CLI_EXIT_FAIL;
    if (listen && set("PROFLAB_AGENT_LISTEN", listen)) return CLI_EXIT_FAIL;
    const char *tok = getenv("LAB_TOKEN");
    if (listen && strncmp(listen, "unix", 4) != 0 && (!tok || !*tok)) {
      unsigned char rnd[24];
      char hex[2 * sizeof(rnd) + 1];
      if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        fprintf(stderr, "proflab run: cannot generate a token: %s\n", strerror(errno));
        return CLI_EXIT_FAIL;
      }
      for (size_t i = 0; i < sizeof(rnd); i++) snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
      if (set("LAB_TOKEN", hex)) return CLI_EXIT_FAIL;
      fprintf(stderr, "proflab run: LAB_TOKEN=%s (generated; pass it as --token or LAB_TOKEN)\n",
              hex);
    }
    if (inspect && set("PROFLAB_INSPECT", inspect)) return CLI_EXIT_FAIL;
    if (cpu && set("PROFLAB_CPU_PROFILE", cpu)) return CLI_EXIT_FAIL;
    if (heap && set("PROFLAB_HEAP_PROFILE", heap)) return CLI_EXIT_FAIL;
    if (children && set("PROFLAB_AGENT_CHILDREN", "true")) return CLI_EXIT_FAIL;
    /* the pid CMD will have: what CMD execs under it (a wrapper script,
     * env, a version manager's shim) keeps the agent, its children do not */
    char pid[24];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    if (set("PROFLAB_AGENT_PID", pid)) return CLI_EXIT_FAIL;
  }
  fflush(stdout);
  execv(path, cmd);
  int e = errno;
  fprintf(stderr, "proflab run: %s: %s\n", path, strerror(e));
  return e == ENOENT ? 127 : 126;
}
