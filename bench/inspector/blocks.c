/* LD_PRELOADed into proflabd by bench/inspector/run.sh: when the file named
 * by PL_BENCH_BLOCKS_GO appears, a thread allocates PL_BENCH_BLOCKS blocks
 * of 16..1024 bytes (16 call sites: bench_blocks_site_0..15), keeps them,
 * and creates PL_BENCH_BLOCKS_GO.done. The lab's own leak is 1 MiB chunks,
 * a handful of heap-snapshot nodes; this gives proflabd a heap whose
 * snapshot is about as large as Node's (one node per live block), as
 * bench/heap/run-snapshot.sh does with its BLOCKS. run.sh creates the file
 * once proflabd answers HTTP, i.e. after main() started the heap tracker,
 * so the blocks are tracked. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void **blocks;

#define SITE(k)                                                           \
  __attribute__((noinline, used)) void *bench_blocks_site_##k(size_t n) { \
    void *p = malloc(n);                                                  \
    if (p) memset(p, 0x5a, n < 16 ? n : 16);                              \
    __asm__ volatile("" ::: "memory");                                    \
    return p;                                                             \
  }                                                                       \
  extern int bench_blocks_site_##k##_defined /* so that a use ends with ; */
SITE(0);
SITE(1);
SITE(2);
SITE(3);
SITE(4);
SITE(5);
SITE(6);
SITE(7);
SITE(8);
SITE(9);
SITE(10);
SITE(11);
SITE(12);
SITE(13);
SITE(14);
SITE(15);

static void *(*const sites[16])(size_t) = {
    bench_blocks_site_0,  bench_blocks_site_1,  bench_blocks_site_2,  bench_blocks_site_3,
    bench_blocks_site_4,  bench_blocks_site_5,  bench_blocks_site_6,  bench_blocks_site_7,
    bench_blocks_site_8,  bench_blocks_site_9,  bench_blocks_site_10, bench_blocks_site_11,
    bench_blocks_site_12, bench_blocks_site_13, bench_blocks_site_14, bench_blocks_site_15,
};

static void *run(void *arg) {
  (void)arg;
  const char *go = getenv("PL_BENCH_BLOCKS_GO");
  unsigned long n = strtoul(getenv("PL_BENCH_BLOCKS"), NULL, 10);
  while (access(go, F_OK) != 0) usleep(20000);
  blocks = calloc(n ? n : 1, sizeof(void *));
  unsigned long x = 88172645463325252ul;
  for (unsigned long i = 0; blocks && i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    blocks[i] = sites[i & 15](16 + x % 1009);
  }
  char done[4096];
  snprintf(done, sizeof(done), "%s.done", go);
  FILE *f = fopen(done, "w");
  if (f) fclose(f);
  return NULL;
}

__attribute__((constructor)) static void start(void) {
  if (!getenv("PL_BENCH_BLOCKS") || !getenv("PL_BENCH_BLOCKS_GO")) return;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread takes none of the process's signals */
  pthread_t t;
  if (pthread_create(&t, NULL, run, NULL) == 0) pthread_detach(t);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}
