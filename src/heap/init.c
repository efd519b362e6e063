/* Starting the tracker (pl_heap_init, its options, its one mapping) and carrying it over fork(). */
/* pl_heap_init sizes every table from the options (or LAB_HEAP_* in the
 * environment), reserves them in one mapping, picks the stack capture mode
 * (PROFLAB_HEAP_UNWIND), reserves the sampled-block range (range.c),
 * installs the sanitizer hooks under ASan (interpose.c), and then sets
 * pl__heap.running. The fork handlers it registers keep the tracker's
 * mutex consistent across fork(). */
#include "proflab/heap.h"
#include "heap/heap_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/util.h"
#include "heap/ptrset.h"
#include "heap/stack_capture.h"
#include "heap/track_internal.h"
#include "sample/unwind.h"

#define H pl__heap

/* ---------------------------------------------------------------- fork */

/* pthread_atfork: the forking thread holds the mutex across fork(), so the
 * child never inherits it held by a thread that does not exist there. A
 * fork() from a signal handler that interrupted this thread inside the
 * tracker (busy) must not wait for the mutex (it may hold it): it forks
 * without, and the child starts from a fresh mutex anyway. */
static __thread int fork_locked __attribute__((tls_model("initial-exec")));

static void atfork_prepare(void) {
  pl__heap_tls *t = &pl__heap_tls_state;
  fork_locked = t->busy == 0;
  pl__heap_busy_enter(t);
  if (fork_locked) pthread_mutex_lock(&H.lock);
}

static void atfork_parent(void) {
  if (fork_locked) pthread_mutex_unlock(&H.lock);
  pl__heap_busy_exit(&pl__heap_tls_state);
}

static void atfork_child(void) {
  /* The child has one thread, this one: nothing else can be waiting for
   * the mutex. Start from a fresh one. The records stay: the child's heap
   * is a copy of the parent's. */
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  memcpy(&H.lock, &fresh, sizeof(fresh));
  pl__heap_tls_state.tid = (uint32_t)gettid();
  pl__heap_busy_exit(&pl__heap_tls_state);
}

/* ---------------------------------------------------------------- init */

static int env_u64(const char *name, uint64_t *out) {
  const char *v = getenv(name);
  if (!v || !*v) return 0;
  uint64_t x;
  if (pl__parse_u64(v, &x) != 0) return -EINVAL;
  *out = x;
  return 1;
}

static size_t round_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

static unsigned log2_ceil(uint64_t n) {
  unsigned b = 0;
  while ((1ull << b) < n) b++;
  return b;
}

int pl_heap_init(const pl_heap_options *opts) {
  static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
  pl__heap_tls *t = &pl__heap_tls_state;
  pl_heap_options o = {0};
  if (opts) o = *opts;
  int rc = 0;
  pl__heap_busy_enter(t); /* getenv, dl_iterate_phdr, pthread_atfork may allocate */
  pthread_mutex_lock(&init_lock);
  if (atomic_load(&H.running)) {
    rc = -EALREADY;
    goto out;
  }
  uint64_t v = 0;
  if (!o.sample_bytes) {
    o.sample_bytes = PL_HEAP_DEFAULT_SAMPLE_BYTES;
    if ((rc = env_u64("LAB_HEAP_SAMPLE_BYTES", &v)) < 0) goto out;
    if (rc == 1) o.sample_bytes = v;
  }
  if (!o.max_samples) {
    o.max_samples = o.sample_bytes >= 65536 ? 1u << 16 : 1u << 21;
    if ((rc = env_u64("LAB_HEAP_MAX_SAMPLES", &v)) < 0) goto out;
    if (rc == 1) o.max_samples = v > (1u << 26) ? 0 : (uint32_t)v;
  }
  if (!o.max_stacks) {
    o.max_stacks = 1u << 16;
    if ((rc = env_u64("LAB_HEAP_MAX_STACKS", &v)) < 0) goto out;
    if (rc == 1) o.max_stacks = v > (1u << 24) ? 0 : (uint32_t)v;
  }
  rc = 0;
  if (o.sample_bytes == 0 || o.sample_bytes > (1ull << 40) || o.max_samples == 0 ||
      o.max_samples > (1u << 26) || o.max_stacks < 2 || o.max_stacks > (1u << 24)) {
    rc = -EINVAL;
    goto out;
  }

  /* Sizes: up to 2.5 set slots per allowed sample (every level of the set
   * reserved: they are used one after the other); a stack table at most
   * half full; 32 frames per stack on average. One mapping for everything,
   * touched (and so made resident) only where used. */
  unsigned set_max = log2_ceil((uint64_t)o.max_samples * 5 / 2 / PL__HEAP_BUCKET_KEYS + 1);
  if (set_max < PL__HEAP_SET_MIN_BITS) set_max = PL__HEAP_SET_MIN_BITS;
  uint32_t stk_cap = 1u << log2_ceil((uint64_t)o.max_stacks * 2);
  size_t max_pcs = (size_t)o.max_stacks * 32;
  unsigned fmax = log2_ceil((uint64_t)o.max_samples * 64); /* enough for every allowed sample */
  if (fmax > PL__HEAP_FILTER_MAX_BITS) fmax = PL__HEAP_FILTER_MAX_BITS;
  if (fmax < PL__HEAP_FILTER_MIN_BITS) fmax = PL__HEAP_FILTER_MIN_BITS;
  size_t off_set = 0;
  size_t off_filter = round_up(
      off_set + ((2ull << set_max) - (1ull << PL__HEAP_SET_MIN_BITS)) * sizeof(pl__heap_bucket),
      4096);
  size_t off_fcount = round_up(off_filter + ((size_t)1 << (fmax + 1)) / 8, 4096);
  size_t off_recs = round_up(off_fcount + ((size_t)1 << fmax) * sizeof(uint32_t), 4096);
  size_t off_stacks = round_up(off_recs + (size_t)o.max_samples * sizeof(pl__heap_rec), 4096);
  size_t off_stab = round_up(off_stacks + (size_t)o.max_stacks * sizeof(pl__heap_stk), 4096);
  size_t off_pcs = round_up(off_stab + (size_t)stk_cap * sizeof(uint32_t), 4096);
  size_t off_suffix = round_up(off_pcs + max_pcs * sizeof(uintptr_t), 4096);
  size_t total = round_up(off_suffix + PL__HEAP_SUFFIXES * sizeof(pl__unwind_suffix), 4096);
  char *m =
      mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) {
    rc = -ENOMEM;
    goto out;
  }

  H.map = m;
  H.map_bytes = total;
  H.T = o.sample_bytes;
  H.max_samples = o.max_samples;
  H.max_stacks = o.max_stacks;
  H.set_mem = (pl__heap_bucket *)(m + off_set);
  H.set_max_bits = set_max;
  pl__heap_set *st = &H.sets[0];
  st->b = H.set_mem;
  st->mask = ((size_t)1 << PL__HEAP_SET_MIN_BITS) - 1;
  st->shift = 64 - PL__HEAP_SET_MIN_BITS;
  H.set_slots = (st->mask + 1) * PL__HEAP_BUCKET_KEYS;
  atomic_store_explicit(&H.set, st, memory_order_release);
  H.filter_mem = (_Atomic uint64_t *)(m + off_filter);
  H.filter = pl__heap_fast.level0;
  memset((void *)pl__heap_fast.level0, 0, sizeof(pl__heap_fast.level0));
  H.filter_bits = PL__HEAP_FILTER_MIN_BITS;
  H.filter_max_bits = fmax;
  H.fcount = (uint32_t *)(m + off_fcount);
  H.recs = (pl__heap_rec *)(m + off_recs);
  H.stacks = (pl__heap_stk *)(m + off_stacks);
  H.stk_table = (uint32_t *)(m + off_stab);
  H.stk_table_cap = stk_cap;
  H.pcs = (uintptr_t *)(m + off_pcs);
  H.max_pcs = max_pcs;
  /* Stack 0: "unknown", for samples whose stack did not fit. */
  H.stacks[0].flags = PL_HEAP_STACK_UNKNOWN;
  H.nstacks = 1;
  H.next_id = 1;

  /* Stack capture: frame pointers where our module's text is known. */
  const char *uw = getenv("PROFLAB_HEAP_UNWIND");
  pl__unwind_init();
  int mode = PL__HEAP_ASAN || !pl__unwind_text_known() ? PL_HEAP_UNWIND_DWARF : PL_HEAP_UNWIND_FP;
  if (uw && *uw && strcmp(uw, "fp") != 0 && strcmp(uw, "dwarf") != 0 && strcmp(uw, "verify") != 0) {
    rc = -EINVAL;
    goto fail_unmap;
  }
  if (uw && strcmp(uw, "dwarf") == 0) mode = PL_HEAP_UNWIND_DWARF;
  if (uw && strcmp(uw, "verify") == 0 && mode == PL_HEAP_UNWIND_FP) mode = PL_HEAP_UNWIND_VERIFY;
  atomic_store_explicit(&H.unwind, mode, memory_order_relaxed);
  H.suffixes = (pl__unwind_suffix *)(m + off_suffix); /* pl__unwind_init warmed libgcc */
  static int atfork_done;
  if (!atfork_done) {
    if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0) {
      rc = -ENOMEM;
      goto fail_unmap;
    }
    atfork_done = 1;
  }
#if !PL__HEAP_ASAN
  /* Sampled blocks live in their own range (range.c); reserved once. */
  if (atomic_load_explicit(&pl__heap_fast.range, memory_order_relaxed) == PL__HEAP_NO_RANGE &&
      (rc = pl__heap_range_init()) != 0)
    goto fail_unmap;
#endif
  /* Last (sanitizer hooks cannot be removed): until `running`, they only
   * forward. */
  rc = pl__heap_observer_install();
  if (rc) goto fail_unmap;
  pl__heap_filter_publish();
  atomic_store_explicit(&H.running, 1, memory_order_release);
  goto out;

fail_unmap:
  munmap(m, total);
  memset(&H.T, 0, sizeof(H) - offsetof(pl__heap_state, T));
out:
  pthread_mutex_unlock(&init_lock);
  pl__heap_busy_exit(t);
  if (rc == 0) { /* the calling thread samples from its next allocation on */
    t->started = 0;
    t->countdown = 0;
  }
  return rc;
}

int pl_heap_running(void) { return atomic_load(&H.running); }

int pl_heap_uses_sanitizer_hooks(void) { return PL__HEAP_ASAN && pl_heap_running(); }
