/* libFuzzer target: the artifact store's name gate and path resolution
 * (src/artifact/store.c: pl__artifact_name_valid, pl__artifact_kind,
 * pl__artifact_open), against a real directory.
 *
 * Set up once: <tmp>/art is the artifact directory, <tmp>/canary a file
 * outside it. In art: a real artifact, and under artifact-shaped names a
 * symlink to the canary, a hard link to it, a symlink to the directory
 * above, a FIFO and a directory. Each input is a name (bytes up to the
 * first NUL, as a URL path reaches the handler).
 *
 * Checks: a name that passes the gate is only [A-Za-z0-9._-], under 256
 * bytes, never ".", "..", or contains "..", names a kind and an extension;
 * pl__artifact_open returns an fd only for a valid name, only for a
 * regular file with one link inside art, never the canary; the canary and
 * the planted files are never changed. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artifact/store.h"

static pl__artifact_store store;
static char root[64], canary[128];
static struct stat canary_st;
static int ready;

#define GOOD "cpu-20250101T000000.000Z-fuzz.cpuprofile"

static void plant(void) {
  snprintf(root, sizeof(root), "/tmp/proflab-fuzz-name.XXXXXX");
  if (!mkdtemp(root)) abort();
  char p[256], q[256];
  snprintf(canary, sizeof(canary), "%s/canary", root);
  FILE *f = fopen(canary, "w");
  if (!f) abort();
  fputs("CANARY-SECRET", f);
  fclose(f);
  snprintf(p, sizeof(p), "%s/art", root);
  if (pl__artifact_store_init(&store, p, "fuzz", 1000, 0) != 0) abort();
  snprintf(p, sizeof(p), "%s/art/" GOOD, root);
  f = fopen(p, "w");
  if (!f) abort();
  fputs("{\"nodes\":[]}", f);
  fclose(f);
  snprintf(p, sizeof(p), "%s/art/cpu-20250101T000000.001Z-fuzz.cpuprofile", root);
  if (symlink("../canary", p) != 0) abort();
  snprintf(p, sizeof(p), "%s/art/cpu-20250101T000000.002Z-fuzz.cpuprofile", root);
  if (link(canary, p) != 0) abort();
  snprintf(p, sizeof(p), "%s/art/heap-20250101T000000.003Z-fuzz.heapprofile", root);
  if (mkfifo(p, 0600) != 0) abort();
  snprintf(p, sizeof(p), "%s/art/heapdump-20250101T000000.004Z-fuzz.heapsnapshot", root);
  if (mkdir(p, 0700) != 0) abort();
  snprintf(p, sizeof(p), "%s/art/cpu-20250101T000000.005Z-up.folded", root);
  snprintf(q, sizeof(q), "%s", root);
  if (symlink(q, p) != 0) abort();
  if (stat(canary, &canary_st) != 0) abort();
  ready = 1;
}

static int allowed(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!ready) plant();
  char *name = malloc(size + 1);
  if (!name) return 0;
  memcpy(name, data, size);
  name[size] = '\0';
  int valid = pl__artifact_name_valid(name);
  if (valid) {
    size_t n = strlen(name);
    if (n == 0 || n >= 256 || strstr(name, "..") || name[0] == '.') abort();
    for (size_t i = 0; i < n; i++)
      if (!allowed((unsigned char)name[i])) abort();
    if (!pl__artifact_kind(name)) abort();
  }
  struct stat st;
  int fd = pl__artifact_open(&store, name, &st);
  if (fd >= 0) {
    if (!valid) abort();
    struct stat fst;
    if (fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode) || fst.st_nlink != 1) abort();
    if (fst.st_ino == canary_st.st_ino && fst.st_dev == canary_st.st_dev) abort();
    char buf[32] = {0};
    if (read(fd, buf, sizeof(buf) - 1) < 0) abort();
    if (strstr(buf, "CANARY")) abort();
    close(fd);
  } else if (fd != -EINVAL && fd != -ENOENT && fd != -ENOTDIR && fd != -ENAMETOOLONG) {
    abort(); /* only these, whatever the name */
  } else if (!valid && fd != -EINVAL) {
    abort(); /* an invalid name never reaches the file system */
  }
  struct stat now;
  if (stat(canary, &now) != 0 || now.st_size != canary_st.st_size ||
      now.st_mtim.tv_nsec != canary_st.st_mtim.tv_nsec ||
      now.st_mtim.tv_sec != canary_st.st_mtim.tv_sec)
    abort();
  free(name);
  return 0;
}
