/* libFuzzer target: the remote side of `proflab export` (src/export/helper.c,
 * `proflabd export-helper`): what arrives on its stdin through an exec
 * channel — the marker line, then `g OFFSET LENGTH ENC` requests amid
 * whatever noise the channel adds. Byte 0 picks `get FILE` (a 1 KiB file:
 * enough for ranges inside, across and past its end; a larger one only
 * made each input slower, its chunks base64-encoded under coverage
 * instrumentation) or `list DIR`; the rest is stdin (from a file, so the helper reads it at
 * its own pace); stdout goes to /dev/null.
 *
 * Checks: the helper returns 0 or 1 (a failed write or read), never
 * crashes, reads nothing past its buffers, leaks nothing, and leaves stdin
 * and stdout as it found them. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export/helper.h"

static char dir[64], file[128], in[128];
static int ready, saved_in, saved_out, devnull;

static void setup(void) {
  snprintf(dir, sizeof(dir), "/tmp/proflab-fuzz-helper.XXXXXX");
  if (!mkdtemp(dir)) abort();
  snprintf(file, sizeof(file), "%s/cpu-20250101T000000.000Z-t.cpuprofile", dir);
  FILE *f = fopen(file, "w");
  if (!f) abort();
  for (int i = 0; i < 1024 / 16; i++) fprintf(f, "%015d\n", i * 7919);
  fclose(f);
  snprintf(in, sizeof(in), "%s/stdin", dir);
  saved_in = dup(0);
  saved_out = dup(1);
  devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (saved_in < 0 || saved_out < 0 || devnull < 0) abort();
  ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!ready) setup();
  if (size < 1) return 0;
  int fd = open(in, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) abort();
  if (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) abort();
  lseek(fd, 0, SEEK_SET);
  fflush(stdout);
  dup2(fd, 0);
  dup2(devnull, 1);
  close(fd);
  char *argv_get[] = {"export-helper", "get", file, NULL};
  char *argv_list[] = {"export-helper", "list", dir, NULL};
  int rc = pl__export_helper_main(3, (data[0] & 1) ? argv_list : argv_get);
  dup2(saved_in, 0);
  dup2(saved_out, 1);
  if (rc != 0 && rc != 1) abort();
  return 0;
}
