/* proflab export: get an artifact out of a container through an exec channel
 * (ECS Exec, kubectl exec, docker/podman exec, or any command prefix).
 * Options and channels here; the transfer in export_session.c. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "export.h"
#include "strv.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: proflab export CHANNEL [options] REMOTE LOCAL\n"
          "       proflab export CHANNEL [options] --list\n"
          "       proflab export CHANNEL [options] --latest cpu|heap [LOCAL]\n"
          "\n"
          "Copies an artifact out of a running container through an exec channel that\n"
          "may cut, garble or hang: chunks are checked (CRC-32), the whole file is\n"
          "checked (SHA-256), and an interrupted copy resumes where it stopped. LOCAL\n"
          "either ends up with the source's exact bytes or does not exist.\n"
          "\n"
          "channels (one):\n"
          "  --ecs                 aws ecs execute-command --interactive\n"
          "    --cluster C         cluster    (else ECS_CLUSTER, else Terraform outputs)\n"
          "    --service S         service, to find the task (else ECS_SERVICE, Terraform)\n"
          "    --task ARN          task       (else TASK_ARN; else the service's only task)\n"
          "    --container NAME    container  (else CONTAINER_NAME)\n"
          "    --region R          passed to aws\n"
          "                        TF_ENV_DIR=DIR reads cluster and service from\n"
          "                        DIR/outputs.json or `terraform -chdir=DIR output -json`\n"
          "  --kubectl POD [-n NS] [-c CONTAINER]   kubectl exec -i POD -- ...\n"
          "  --docker CONTAINER    ENGINE exec -i CONTAINER ...\n"
          "    --engine E          docker or podman (else PROFLAB_CONTAINER_ENGINE; docker)\n"
          "  --exec 'PREFIX'       any command prefix; the remote command is appended as\n"
          "                        separate arguments (PREFIX is split like a shell would)\n"
          "\n"
          "options:\n"
          "  --list                list the artifacts in the remote directory\n"
          "  --latest cpu|heap     export the newest cpu-* or heapdump-* artifact\n"
          "  --dir DIR             remote artifact directory for --list, --latest and a\n"
          "                        REMOTE without '/' (else LAB_ARTIFACT_DIR, else /tmp)\n"
          "  --resume, --no-resume continue from LOCAL.proflab-state (default: resume)\n"
          "  --force               overwrite LOCAL if it exists\n"
          "  --timeout SEC         end a session silent this long (default 30)\n"
          "  --retries N           sessions in a row without progress before giving up\n"
          "                        (default 8; at most 2 until a helper has answered)\n"
          "  --max-sessions N      sessions per run at most (default: no limit)\n"
          "  --helper H            auto, proflabd, node or sh (default auto: probe in that\n"
          "                        order once, remember the choice in the state)\n"
          "  --chunk BYTES         first chunk size (multiple of 4096; default 65536)\n"
          "  -q, --quiet           no progress or notes on stderr\n"
          "\n"
          "exit status: 0 LOCAL verified and in place; 1 failed (remote file missing,\n"
          "LOCAL exists, no helper answered, local I/O error); 2 bad command line;\n"
          "3 incomplete but resumable: run the same command again.\n");
}

/* Splits s into words like a shell would (quotes and backslashes; no
 * expansion). Returns 0 or -1 on an unterminated quote. */
static int split_words(const char *s, cli_strv *out) {
  char *w = malloc(strlen(s) + 1);
  if (!w) return -1;
  size_t n = 0;
  int inword = 0;
  for (const char *p = s;; p++) {
    char c = *p;
    if (c == '\0' || c == ' ' || c == '\t' || c == '\n') {
      if (inword) {
        w[n] = '\0';
        if (cli_strv_push(out, w) != 0) goto fail;
        n = 0;
        inword = 0;
      }
      if (c == '\0') break;
      continue;
    }
    inword = 1;
    if (c == '\'') {
      const char *e = strchr(p + 1, '\'');
      if (!e) goto fail;
      memcpy(w + n, p + 1, (size_t)(e - p - 1));
      n += (size_t)(e - p - 1);
      p = e;
    } else if (c == '"') {
      for (p++; *p && *p != '"'; p++) {
        if (*p == '\\' && (p[1] == '"' || p[1] == '\\' || p[1] == '$' || p[1] == '`')) p++;
        w[n++] = *p;
      }
      if (!*p) goto fail;
    } else if (c == '\\' && p[1]) {
      w[n++] = *++p;
    } else {
      w[n++] = c;
    }
  }
  free(w);
  return 0;
fail:
  free(w);
  return -1;
}

/* Runs argv and captures its stdout (at most 1 MiB). Returns 0 if it exited 0. */
static int capture(char *const argv[], char **out) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    if (dup2(fds[1], 1) < 0) _exit(127);
    close(fds[0]);
    close(fds[1]);
    execvp(argv[0], argv);
    dprintf(2, "proflab export: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  size_t cap = 1 << 20, n = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    if (!buf) break;
    ssize_t r = read(fds[0], buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
    if (n == cap) break;
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!buf) return -1;
  buf[n] = '\0';
  *out = buf;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static const char *tf_value(json_t *root, const char *const *keys) {
  for (; *keys; keys++) {
    json_t *v = json_object_get(root, *keys);
    if (json_is_object(v)) v = json_object_get(v, "value");
    if (json_is_string(v) && *json_string_value(v)) return json_string_value(v);
  }
  return NULL;
}

/* Fills cluster/service from Terraform outputs in dir. */
static int tf_outputs(const char *dir, char *cluster, size_t csz, char *service, size_t ssz) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/outputs.json", dir);
  json_error_t jerr;
  json_t *root = NULL;
  if (access(path, R_OK) == 0) {
    root = json_load_file(path, 0, &jerr);
  } else {
    char chdir_arg[4200];
    snprintf(chdir_arg, sizeof(chdir_arg), "-chdir=%s", dir);
    char *argv[] = {"terraform", chdir_arg, "output", "-json", NULL};
    char *text = NULL;
    if (capture(argv, &text) == 0) root = json_loads(text, 0, &jerr);
    free(text);
  }
  if (!json_is_object(root)) {
    fprintf(stderr,
            "proflab export: no Terraform outputs in %s (outputs.json or terraform output)\n", dir);
    json_decref(root);
    return -1;
  }
  static const char *const ckeys[] = {"ecs_cluster_name", "cluster_name", "ecs_cluster", "cluster",
                                      NULL};
  static const char *const skeys[] = {"ecs_service_name", "service_name", "ecs_service", "service",
                                      NULL};
  const char *c = tf_value(root, ckeys), *s = tf_value(root, skeys);
  if (c && !*cluster) snprintf(cluster, csz, "%s", c);
  if (s && !*service) snprintf(service, ssz, "%s", s);
  json_decref(root);
  return 0;
}

typedef struct ecs_opts {
  int on;
  char cluster[512], service[512], task[1024], container[256], region[64];
} ecs_opts;

/* Resolves cluster and task, then builds the aws prefix. Returns an exit code. */
static int ecs_channel(ecs_opts *e, cli_export_channel *ch) {
  const char *v;
  if (!e->cluster[0] && (v = getenv("ECS_CLUSTER")) && *v)
    snprintf(e->cluster, sizeof(e->cluster), "%s", v);
  if (!e->service[0] && (v = getenv("ECS_SERVICE")) && *v)
    snprintf(e->service, sizeof(e->service), "%s", v);
  if (!e->task[0] && (v = getenv("TASK_ARN")) && *v) snprintf(e->task, sizeof(e->task), "%s", v);
  if (!e->container[0] && (v = getenv("CONTAINER_NAME")) && *v)
    snprintf(e->container, sizeof(e->container), "%s", v);
  if ((!e->cluster[0] || (!e->task[0] && !e->service[0])) && (v = getenv("TF_ENV_DIR")) && *v)
    if (tf_outputs(v, e->cluster, sizeof(e->cluster), e->service, sizeof(e->service)) != 0)
      return CLI_EXIT_FAIL;
  if (!e->cluster[0]) {
    fprintf(stderr, "proflab export: --ecs needs --cluster (or ECS_CLUSTER or TF_ENV_DIR)\n");
    return CLI_EXIT_USAGE;
  }
  if (!e->task[0]) {
    if (!e->service[0]) {
      fprintf(stderr, "proflab export: --ecs needs --task (or TASK_ARN) or --service to find it\n");
      return CLI_EXIT_USAGE;
    }
    char *argv[16];
    int n = 0;
    argv[n++] = "aws";
    argv[n++] = "ecs";
    argv[n++] = "list-tasks";
    argv[n++] = "--cluster";
    argv[n++] = e->cluster;
    argv[n++] = "--service-name";
    argv[n++] = e->service;
    argv[n++] = "--desired-status";
    argv[n++] = "RUNNING";
    argv[n++] = "--query";
    argv[n++] = "taskArns";
    argv[n++] = "--output";
    argv[n++] = "text";
    if (e->region[0]) {
      argv[n++] = "--region";
      argv[n++] = e->region;
    }
    argv[n] = NULL;
    char *text = NULL;
    if (capture(argv, &text) != 0) {
      fprintf(stderr, "proflab export: aws ecs list-tasks failed for service %s\n", e->service);
      free(text);
      return CLI_EXIT_FAIL;
    }
    cli_strv arns = {0};
    int bad = split_words(text, &arns);
    free(text);
    size_t real = 0;
    for (size_t i = 0; i < arns.n; i++)
      if (strcmp(arns.v[i], "None") != 0)
        arns.v[real++] = arns.v[i];
      else
        free(arns.v[i]);
    arns.n = real;
    if (bad || arns.n != 1) {
      if (arns.n == 0)
        fprintf(stderr, "proflab export: service %s has no running task\n", e->service);
      else {
        fprintf(stderr, "proflab export: service %s has %zu tasks; choose one with --task:\n",
                e->service, arns.n);
        for (size_t i = 0; i < arns.n; i++) fprintf(stderr, "  %s\n", arns.v[i]);
      }
      size_t count = arns.n;
      cli_strv_free(&arns);
      return count == 0 ? CLI_EXIT_FAIL : CLI_EXIT_USAGE;
    }
    snprintf(e->task, sizeof(e->task), "%s", arns.v[0]);
    cli_strv_free(&arns);
  }
  int r = 0;
  r |= cli_strv_push(&ch->prefix, "aws");
  r |= cli_strv_push(&ch->prefix, "ecs");
  r |= cli_strv_push(&ch->prefix, "execute-command");
  if (e->region[0]) {
    r |= cli_strv_push(&ch->prefix, "--region");
    r |= cli_strv_push(&ch->prefix, e->region);
  }
  r |= cli_strv_push(&ch->prefix, "--cluster");
  r |= cli_strv_push(&ch->prefix, e->cluster);
  r |= cli_strv_push(&ch->prefix, "--task");
  r |= cli_strv_push(&ch->prefix, e->task);
  if (e->container[0]) {
    r |= cli_strv_push(&ch->prefix, "--container");
    r |= cli_strv_push(&ch->prefix, e->container);
  }
  r |= cli_strv_push(&ch->prefix, "--interactive");
  r |= cli_strv_push(&ch->prefix, "--command");
  ch->ecs = 1;
  return r ? CLI_EXIT_FAIL : 0;
}

static int copy_opt(char *dst, size_t dstsz, const char *name, const char *v) {
  if (!*v || strlen(v) >= dstsz) {
    fprintf(stderr, "proflab export: bad %s value\n", name);
    return -1;
  }
  snprintf(dst, dstsz, "%s", v);
  return 0;
}

static int parse_num(const char *name, const char *v, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (errno || end == v || *end || !(d >= lo && d <= hi)) {
    fprintf(stderr, "proflab export: %s wants a number from %g to %g, not '%s'\n", name, lo, hi, v);
    return -1;
  }
  *out = d;
  return 0;
}

/* The newest artifact of a kind in a "SIZE NAME" listing: the names carry a
 * UTC timestamp right after the kind, so the greatest name is the newest. */
static const char *latest_name(char *listing, const char *prefix, char *out, size_t outsz) {
  out[0] = '\0';
  char *save = NULL;
  for (char *line = strtok_r(listing, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *name = strchr(line, ' ');
    if (!name) continue;
    name++;
    if (strncmp(name, prefix, strlen(prefix)) != 0) continue;
    if (strstr(name, ".partial")) continue;
    if (strcmp(name, out) > 0) snprintf(out, outsz, "%s", name);
  }
  return out[0] ? out : NULL;
}

int cli_cmd_export(int argc, char **argv) {
  enum {
    O_ECS = 256,
    O_CLUSTER,
    O_SERVICE,
    O_TASK,
    O_CONTAINER,
    O_REGION,
    O_KUBECTL,
    O_DOCKER,
    O_ENGINE,
    O_EXEC,
    O_LIST,
    O_LATEST,
    O_DIR,
    O_RESUME,
    O_NORESUME,
    O_FORCE,
    O_TIMEOUT,
    O_RETRIES,
    O_HELPER,
    O_CHUNK,
    O_MAXSESS
  };
  static const struct option longopts[] = {{"ecs", no_argument, 0, O_ECS},
                                           {"cluster", required_argument, 0, O_CLUSTER},
                                           {"service", required_argument, 0, O_SERVICE},
                                           {"task", required_argument, 0, O_TASK},
                                           {"container", required_argument, 0, O_CONTAINER},
                                           {"region", required_argument, 0, O_REGION},
                                           {"kubectl", required_argument, 0, O_KUBECTL},
                                           {"namespace", required_argument, 0, 'n'},
                                           {"docker", required_argument, 0, O_DOCKER},
                                           {"engine", required_argument, 0, O_ENGINE},
                                           {"exec", required_argument, 0, O_EXEC},
                                           {"list", no_argument, 0, O_LIST},
                                           {"latest", required_argument, 0, O_LATEST},
                                           {"dir", required_argument, 0, O_DIR},
                                           {"resume", no_argument, 0, O_RESUME},
                                           {"no-resume", no_argument, 0, O_NORESUME},
                                           {"force", no_argument, 0, O_FORCE},
                                           {"timeout", required_argument, 0, O_TIMEOUT},
                                           {"retries", required_argument, 0, O_RETRIES},
                                           {"max-sessions", required_argument, 0, O_MAXSESS},
                                           {"helper", required_argument, 0, O_HELPER},
                                           {"chunk", required_argument, 0, O_CHUNK},
                                           {"quiet", no_argument, 0, 'q'},
                                           {"help", no_argument, 0, 'h'},
                                           {0, 0, 0, 0}};
  cli_export_opts o;
  memset(&o, 0, sizeof(o));
  o.helper_forced = -1;
  o.timeout_s = 30;
  o.retries = 8;
  o.resume = 1;
  ecs_opts ecs;
  memset(&ecs, 0, sizeof(ecs));
  const char *kube_pod = NULL, *kube_ns = NULL, *kube_c = NULL, *docker = NULL, *exec = NULL;
  const char *engine = getenv("PROFLAB_CONTAINER_ENGINE");
  const char *dir = getenv("LAB_ARTIFACT_DIR"), *latest = NULL;
  int list = 0, channels = 0, rc = CLI_EXIT_USAGE, c;
  double d;
  char *listing = NULL;
  /* the ECS options that are plain strings */
  const struct {
    int id;
    char *dst;
    size_t size;
    const char *name;
  } ecs_strings[] = {
      {O_CLUSTER, ecs.cluster, sizeof(ecs.cluster), "--cluster"},
      {O_SERVICE, ecs.service, sizeof(ecs.service), "--service"},
      {O_TASK, ecs.task, sizeof(ecs.task), "--task"},
      {O_CONTAINER, ecs.container, sizeof(ecs.container), "--container"},
      {O_REGION, ecs.region, sizeof(ecs.region), "--region"},
  };
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+n:c:qh", longopts, NULL)) != -1) {
    size_t k = 0;
    while (k < sizeof(ecs_strings) / sizeof(ecs_strings[0]) && ecs_strings[k].id != c) k++;
    if (k < sizeof(ecs_strings) / sizeof(ecs_strings[0])) {
      if (copy_opt(ecs_strings[k].dst, ecs_strings[k].size, ecs_strings[k].name, optarg)) goto out;
      continue;
    }
    switch (c) {
      case O_ECS:
        ecs.on = 1, channels++;
        break;
      case O_KUBECTL:
        kube_pod = optarg, channels++;
        break;
      case 'n':
        kube_ns = optarg;
        break;
      case 'c':
        kube_c = optarg;
        break;
      case O_DOCKER:
        docker = optarg, channels++;
        break;
      case O_ENGINE:
        engine = optarg;
        break;
      case O_EXEC:
        exec = optarg, channels++;
        break;
      case O_LIST:
        list = 1;
        break;
      case O_LATEST:
        latest = optarg;
        break;
      case O_DIR:
        dir = optarg;
        break;
      case O_RESUME:
        o.resume = 1;
        break;
      case O_NORESUME:
        o.resume = 0;
        break;
      case O_FORCE:
        o.force = 1;
        break;
      case O_TIMEOUT:
        if (parse_num("--timeout", optarg, 0.05, 86400, &o.timeout_s)) goto out;
        break;
      case O_RETRIES:
        if (parse_num("--retries", optarg, 0, 100000, &d)) goto out;
        o.retries = (int)d;
        break;
      case O_MAXSESS:
        if (parse_num("--max-sessions", optarg, 0, 1000000, &d)) goto out;
        o.max_sessions = (int)d;
        break;
      case O_CHUNK:
        if (parse_num("--chunk", optarg, 4096, 1 << 20, &d)) goto out;
        if ((uint64_t)d % 4096) {
          fprintf(stderr, "proflab export: --chunk must be a multiple of 4096\n");
          goto out;
        }
        o.chunk0 = (uint64_t)d;
        break;
      case O_HELPER:
        if (strcmp(optarg, "auto") == 0)
          o.helper_forced = -1;
        else {
          o.helper_forced = -2;
          for (int h = 0; h < CLI_EXPORT_HELPER_COUNT; h++)
            if (strcmp(optarg, cli_export_helper_names[h]) == 0) o.helper_forced = h;
          if (o.helper_forced == -2) {
            fprintf(stderr, "proflab export: --helper is auto, proflabd, node or sh\n");
            goto out;
          }
        }
        break;
      case 'q':
        o.quiet = 1;
        break;
      case 'h':
        usage(stdout);
        rc = CLI_EXIT_OK;
        goto out;
      default:
        fprintf(stderr, "proflab export: unknown or incomplete option '%s' (see --help)\n",
                argv[optind - 1]);
        goto out;
    }
  }
  int npos = argc - optind;
  char **pos = argv + optind;
  if (channels != 1) {
    fprintf(stderr, "proflab export: choose one channel: --ecs, --kubectl, --docker or --exec\n");
    goto out;
  }
  if (list + (latest != NULL) > 1 || (list && npos != 0) || (latest && npos > 1) ||
      (!list && !latest && npos != 2)) {
    fprintf(stderr, "proflab export: want REMOTE LOCAL, --list, or --latest cpu|heap [LOCAL]\n");
    goto out;
  }
  const char *prefix = NULL;
  if (latest) {
    if (strcmp(latest, "cpu") == 0)
      prefix = "cpu-";
    else if (strcmp(latest, "heap") == 0)
      prefix = "heapdump-";
    else {
      fprintf(stderr, "proflab export: --latest is cpu or heap\n");
      goto out;
    }
  }
  if (!dir || !*dir) dir = "/tmp";
  if (!engine || !*engine) engine = "docker";
  if ((kube_ns || kube_c) && !kube_pod) {
    fprintf(stderr, "proflab export: -n and -c go with --kubectl\n");
    goto out;
  }
  if ((ecs.cluster[0] || ecs.service[0] || ecs.container[0] || ecs.region[0]) && !ecs.on) {
    fprintf(stderr, "proflab export: --cluster, --service, --container, --region go with --ecs\n");
    goto out;
  }
  if (ecs.task[0] && !ecs.on) {
    fprintf(stderr,
            "proflab export: --task goes with --ecs (with --kubectl or --docker the pod "
            "or container is the task)\n");
    goto out;
  }
  int r = 0;
  if (ecs.on) {
    rc = ecs_channel(&ecs, &o.ch);
    if (rc != 0) goto out;
  } else if (kube_pod) {
    r |= cli_strv_push(&o.ch.prefix, "kubectl");
    r |= cli_strv_push(&o.ch.prefix, "exec");
    r |= cli_strv_push(&o.ch.prefix, "-i");
    if (kube_ns) {
      r |= cli_strv_push(&o.ch.prefix, "-n");
      r |= cli_strv_push(&o.ch.prefix, kube_ns);
    }
    r |= cli_strv_push(&o.ch.prefix, kube_pod);
    if (kube_c) {
      r |= cli_strv_push(&o.ch.prefix, "-c");
      r |= cli_strv_push(&o.ch.prefix, kube_c);
    }
    r |= cli_strv_push(&o.ch.prefix, "--");
  } else if (docker) {
    r |= split_words(engine, &o.ch.prefix);
    r |= cli_strv_push(&o.ch.prefix, "exec");
    r |= cli_strv_push(&o.ch.prefix, "-i");
    r |= cli_strv_push(&o.ch.prefix, docker);
  } else {
    if (split_words(exec, &o.ch.prefix) != 0 || o.ch.prefix.n == 0) {
      fprintf(stderr, "proflab export: --exec wants a command prefix (unbalanced quotes?)\n");
      rc = CLI_EXIT_USAGE;
      goto out;
    }
  }
  if (r) {
    fprintf(stderr, "proflab export: out of memory\n");
    rc = CLI_EXIT_FAIL;
    goto out;
  }
  if (list || latest) {
    size_t len = 0;
    rc = cli_export_list(&o, dir, &listing, &len);
    if (rc != 0) goto out;
    if (list) {
      fputs(listing, stdout);
      goto out;
    }
    char name[512];
    if (!latest_name(listing, prefix, name, sizeof(name))) {
      fprintf(stderr, "proflab export: no %s* artifact in %s\n", prefix, dir);
      rc = CLI_EXIT_FAIL;
      goto out;
    }
    char remote[4096];
    snprintf(remote, sizeof(remote), "%s/%s", dir, name);
    if (!o.quiet) fprintf(stderr, "proflab export: latest is %s\n", remote);
    rc = cli_export_get(&o, remote, npos == 1 ? pos[0] : name);
    if (rc == 0) printf("%s\n", npos == 1 ? pos[0] : name);
    goto out;
  }
  char remote[4096];
  if (strchr(pos[0], '/'))
    snprintf(remote, sizeof(remote), "%s", pos[0]);
  else
    snprintf(remote, sizeof(remote), "%s/%s", dir, pos[0]);
  rc = cli_export_get(&o, remote, pos[1]);
out:
  free(listing);
  cli_strv_free(&o.ch.prefix);
  return rc;
}
