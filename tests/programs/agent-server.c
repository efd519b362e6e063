/* A small HTTP-ish server with no proflab code, for the agent's tests
 * (tests/integration/agent*.test.mjs), built -O2 -fomit-frame-pointer:
 * GET /work runs a hot function, GET /leak keeps 64 KiB forever from a
 * leaking function, GET /exit/N exits with status N, anything else 404.
 * One thread, poll(2) on the listener and the connections; answers with
 * "Connection: close". Prints "port N" on stdout once listening.
 * Usage: agent-server [PORT=0] */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void **leaked;
static size_t nleaked, capleaked;

/* The hot function: CPU work a profile must show with its source line. */
__attribute__((noinline)) static uint64_t agent_test_hot_checksum(unsigned rounds) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned r = 0; r < rounds; r++)
    for (unsigned i = 0; i < 4096; i++) h = (h ^ (i + r)) * 1099511628211ull;
  return h;
}

/* The leaking function: 64 KiB a call, never freed. */
__attribute__((noinline)) static int agent_test_leak_remember(void) {
  if (nleaked == capleaked) {
    size_t cap = capleaked ? capleaked * 2 : 64;
    void **n = realloc(leaked, cap * sizeof(*n));
    if (!n) return -1;
    leaked = n;
    capleaked = cap;
  }
  char *p = malloc(65536);
  if (!p) return -1;
  memset(p, 0x5a, 65536);
  leaked[nleaked++] = p;
  return 0;
}

static void answer(int fd, int status, const char *body) {
  char buf[512];
  int n = snprintf(buf, sizeof(buf),
                   "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", status,
                   status == 200 ? "OK" : "Not Found", strlen(body), body);
  if (n > 0 && write(fd, buf, (size_t)n) < 0) perror("write");
}

static int serve(int fd) {
  char req[2048];
  ssize_t got = read(fd, req, sizeof(req) - 1);
  if (got <= 0) return -1;
  req[got] = '\0';
  char body[64];
  if (strncmp(req, "GET /work ", 10) == 0) {
    snprintf(body, sizeof(body), "%llu\n", (unsigned long long)agent_test_hot_checksum(400));
    answer(fd, 200, body);
  } else if (strncmp(req, "GET /leak ", 10) == 0) {
    if (agent_test_leak_remember() != 0) return -1;
    snprintf(body, sizeof(body), "%zu\n", nleaked);
    answer(fd, 200, body);
  } else if (strncmp(req, "GET /exit/", 10) == 0) {
    answer(fd, 200, "bye\n");
    close(fd);
    exit(atoi(req + 10));
  } else {
    answer(fd, 404, "no\n");
  }
  return 0;
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0;
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (ls < 0) return perror("socket"), 1;
  int one = 1;
  if (setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) perror("setsockopt");
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof(sa);
  if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(ls, 128) != 0 ||
      getsockname(ls, (struct sockaddr *)&sa, &sl) != 0)
    return perror("bind"), 1;
  printf("port %u\n", ntohs(sa.sin_port));
  fflush(stdout);
  for (;;) {
    struct pollfd p = {.fd = ls, .events = POLLIN};
    if (poll(&p, 1, -1) < 0) {
      if (errno == EINTR) continue;
      return perror("poll"), 1;
    }
    int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) continue;
    serve(fd);
    close(fd);
  }
}
