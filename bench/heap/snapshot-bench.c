/* Heap snapshot speed: how fast the tracker's live allocations become a
 * file, the way POST /api/lab/heap-snapshot does it (copy, symbolize,
 * write through a file sink).
 *
 * Starts the tracker with T = 1 (every allocation recorded), keeps BLOCKS
 * live blocks of 16..1024 bytes allocated through SITES distinct stacks
 * (call chains of different depths through named functions), then times
 * pl_heap_snapshot_take(), pl_heap_snapshot_symbolize() and the writer into
 * OUT, REPEAT times, and prints one line of key=value figures per snapshot
 * (the first one also pays for reading the modules' symbols; later ones
 * find them cached, as a service taking snapshot after snapshot does).
 * run-snapshot.sh compares it with Node's v8.writeHeapSnapshot() in the
 * same run.
 *
 *   bench-heap-snapshot [--blocks N] [--sites K] [--repeat R]
 *                       [--format heapsnapshot|heapprofile|pprof] --out FILE
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/sink.h"
#include "common/util.h"
#include "format/heap_writers.h"
#include "proflab/heap.h"
#include "proflab/symbolize.h"

static void **blocks;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* The allocating functions: a chain of `depth` frames, then malloc. */
__attribute__((noinline)) static void *site_alloc(size_t size) {
  void *p = malloc(size);
  if (p) memset(p, 1, 16);
  return p;
}

__attribute__((noinline)) static void *site_chain_a(int depth, size_t size);
__attribute__((noinline)) static void *site_chain_b(int depth, size_t size) {
  void *p = depth ? site_chain_a(depth - 1, size) : site_alloc(size);
  __asm__ volatile("" ::: "memory"); /* keep the frame (no tail call) */
  return p;
}
__attribute__((noinline)) static void *site_chain_a(int depth, size_t size) {
  void *p = depth ? site_chain_b(depth - 1, size) : site_alloc(size);
  __asm__ volatile("" ::: "memory");
  return p;
}

static double ms_since(uint64_t t0) { return (double)(pl__now_ns() - t0) / 1e6; }

/* Page faults served without I/O so far (the writer's fresh memory). */
static long minor_faults(void) {
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_minflt : 0;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "bench-heap-snapshot: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
  exit(1);
}

int main(int argc, char **argv) {
  uint64_t nblocks = 300000, sites = 64, repeat = 1;
  const char *out = NULL, *format = "heapsnapshot";
  static const struct option opts[] = {
      {"blocks", required_argument, 0, 'n'},
      {"sites", required_argument, 0, 's'},
      {"format", required_argument, 0, 'f'},
      {"out", required_argument, 0, 'o'},
      {"repeat", required_argument, 0, 'r'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 'n':
        if (pl__parse_u64(optarg, &nblocks) || !nblocks || nblocks > 10000000) {
          fprintf(stderr, "bench-heap-snapshot: --blocks must be 1..10000000\n");
          return 2;
        }
        break;
      case 's':
        if (pl__parse_u64(optarg, &sites) || !sites || sites > 1000) {
          fprintf(stderr, "bench-heap-snapshot: --sites must be 1..1000\n");
          return 2;
        }
        break;
      case 'r':
        if (pl__parse_u64(optarg, &repeat) || !repeat || repeat > 100) {
          fprintf(stderr, "bench-heap-snapshot: --repeat must be 1..100\n");
          return 2;
        }
        break;
      case 'f':
        format = optarg;
        break;
      case 'o':
        out = optarg;
        break;
      case 'h':
        printf(
            "usage: bench-heap-snapshot [--blocks N] [--sites K] [--repeat R] [--format F] --out "
            "FILE\n");
        return 0;
      default:
        return 2;
    }
  }
  int (*writer)(const pl_heap_snapshot *, pl__sink *) = NULL;
  if (strcmp(format, "heapsnapshot") == 0)
    writer = pl__heapsnapshot_write;
  else if (strcmp(format, "heapprofile") == 0)
    writer = pl__heapprofile_write;
  else if (strcmp(format, "pprof") == 0)
    writer = pl__pprof_heap_write;
  if (!out || !writer) {
    fprintf(stderr,
            "bench-heap-snapshot: need --out FILE and --format heapsnapshot|heapprofile|pprof\n");
    return 2;
  }
  pl_heap_options o = {.sample_bytes = 1};
  int rc = pl_heap_init(&o);
  if (rc) die("pl_heap_init", rc);
  blocks = calloc(nblocks, sizeof(*blocks));
  if (!blocks) die("calloc", ENOMEM);
  uint64_t t0 = pl__now_ns();
  for (uint64_t i = 0; i < nblocks; i++) {
    blocks[i] = site_chain_a((int)(i % sites), 16 + next_rand() % 1009);
    if (!blocks[i]) die("malloc", ENOMEM);
  }
  double alloc_ms = ms_since(t0);

  for (uint64_t run = 1; run <= repeat; run++) {
    t0 = pl__now_ns();
    pl_heap_snapshot *s;
    if ((rc = pl_heap_snapshot_take(&s))) die("pl_heap_snapshot_take", rc);
    double take_ms = ms_since(t0);
    t0 = pl__now_ns();
    /* as the lab does: names only for a .heapsnapshot (it shows no lines) */
    pl_heap_untracked_begin(); /* as the capture path does */
    rc = writer == pl__heapsnapshot_write ? pl_heap_snapshot_symbolize_names(s)
                                          : pl_heap_snapshot_symbolize(s);
    pl_heap_untracked_end();
    if (rc) die("pl_heap_snapshot_symbolize", rc);
    double sym_ms = ms_since(t0);
    t0 = pl__now_ns();
    long flt0 = minor_faults();
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) die(out, errno);
    pl__sink sk;
    pl__sink_init_fd(&sk, &fd);
    rc = writer(s, &sk);
    int rc2 = pl__sink_finish(&sk);
    pl__sink_free(&sk);
    if (rc || rc2) die("write", rc ? rc : rc2);
    if (close(fd)) die("close", errno);
    double write_ms = ms_since(t0);
    long write_faults = minor_faults() - flt0;
    struct stat st;
    if (stat(out, &st)) die(out, errno);
    double total_ms = take_ms + sym_ms + write_ms;
    double mb = (double)st.st_size / 1e6;
    printf(
        "run=%llu format=%s blocks=%llu samples=%zu stacks=%zu bytes=%lld alloc_ms=%.1f "
        "take_ms=%.1f "
        "symbolize_ms=%.1f write_ms=%.1f write_faults=%ld total_ms=%.1f mb_per_s=%.1f\n",
        (unsigned long long)run, format, (unsigned long long)nblocks, s->nsamples, s->nstacks,
        (long long)st.st_size, alloc_ms, take_ms, sym_ms, write_ms, write_faults, total_ms,
        mb / (total_ms / 1e3));
    pl_heap_snapshot_free(s);
  }
  for (uint64_t i = 0; i < nblocks; i++) free(blocks[i]);
  free(blocks);
  return 0;
}
