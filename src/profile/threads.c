/* The process's threads as the sampler sees them (see threads.h). */
#include "profile/threads.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Valgrind keeps every signal blocked in its threads' kernel masks and
 * delivers them itself, so each thread would look as if it blocked
 * SIGPROF. bench/agent/capture-cost.sh (callgrind) sets
 * PROFLAB_BENCH_IGNORE_SIGBLK=1 so the sampler does not refuse them. Read
 * at load: nginx clears its environment before a profile starts. */
static int ignore_sigblk;
__attribute__((constructor)) static void read_bench_switch(void) {
  const char *v = getenv("PROFLAB_BENCH_IGNORE_SIGBLK");
  ignore_sigblk = v && v[0] == '1';
}

/* The value after "Key:\t" on its line of a /proc status file, or NULL. */
static const char *status_field(const char *buf, const char *key, size_t *len) {
  size_t kl = strlen(key);
  for (const char *p = buf; p && *p;) {
    const char *nl = strchr(p, '\n');
    if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
      const char *v = p + kl + 1;
      while (*v == '\t' || *v == ' ') v++;
      *len = nl ? (size_t)(nl - v) : strlen(v);
      return v;
    }
    p = nl ? nl + 1 : NULL;
  }
  return NULL;
}

int pl__thread_info_read(uint32_t tid, pl__thread_info *out) {
  char path[64], buf[2048];
  memset(out, 0, sizeof(*out));
  snprintf(path, sizeof(path), "/proc/self/task/%u/status", (unsigned)tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT || errno == ESRCH ? -ENOENT : -errno;
  size_t got = 0;
  while (got < sizeof(buf) - 1) {
    ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno == ESRCH ? -ENOENT : -errno;
      close(fd);
      return e;
    }
    if (n == 0) break;
    got += (size_t)n;
  }
  close(fd);
  buf[got] = '\0';
  size_t len;
  const char *v = status_field(buf, "Name", &len);
  if (v) {
    if (len >= sizeof(out->name)) len = sizeof(out->name) - 1;
    memcpy(out->name, v, len);
    out->name[len] = '\0';
  }
  out->proflab = strncmp(out->name, PL__THREAD_NAME_PREFIX, strlen(PL__THREAD_NAME_PREFIX)) == 0;
  /* SigBlk: 16 hex digits, the lowest bit is signal 1 */
  v = status_field(buf, "SigBlk", &len);
  if (!v || len == 0 || len > 16) return -EINVAL;
  unsigned bit = SIGPROF - 1, digit_from_right = bit / 4;
  if (digit_from_right >= len) return 0;
  char c = v[len - 1 - digit_from_right];
  unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
               : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                                      : 0;
  out->blocks_sigprof = !ignore_sigblk && ((d >> (bit % 4)) & 1);
  return 0;
}

void pl__thread_name_self(const char *name) { (void)pthread_setname_np(pthread_self(), name); }
