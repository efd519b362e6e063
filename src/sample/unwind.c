/* SIGNAL-SAFE capture path (pl__unwind_capture and what it calls); the rest
 * runs in a normal context before timers are armed. See unwind.h. */
#include "sample/unwind.h"

#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <unwind.h>

#define MAX_TEXT 8
#define MAX_REGIONS 4096
#define CACHE_THREADS 64                 /* timer indexes with a suffix cache */
#define CACHE_WAYS 16                    /* suffixes per thread (direct-mapped) */
#define SUFFIX_MAX PL__UNWIND_SUFFIX_MAX /* deeper suffixes are not cached */
#define MAIN_STACK_GROWTH ((uintptr_t)1 << 30)
/* Reads through frame pointers are bounds-checked, not object-checked: a
 * saved register next to a sanitizer's redzone is fine to read. */
#define NO_ASAN __attribute__((no_sanitize_address))

/* ---- what init/prepare record (read-only while timers run) ----------- */

static uintptr_t text_lo[MAX_TEXT], text_hi[MAX_TEXT];
static unsigned ntext;
static int fp_enabled;
/* Frame pointers disagreed with DWARF too often in this profile (code in
 * our module built without them): DWARF only until the next prepare. */
static _Atomic int fp_off;
static int no_fallback; /* test hook */
static _Atomic uint32_t check_tick[CACHE_THREADS];

typedef struct region {
  uintptr_t lo, hi;
} region;
static region regions[MAX_REGIONS]; /* sorted, disjoint */
static unsigned nregions;

typedef pl__unwind_suffix suffix;
static suffix *cache; /* CACHE_THREADS * CACHE_WAYS, mmap'd at init */
static size_t cache_bytes;

static _Atomic uint64_t st_captures, st_fp, st_cached, st_dwarf, st_verified, st_mismatch;

/* ---- helpers (signal-safe) -------------------------------------------- */

int pl__unwind_pc_is_ours(uintptr_t pc) {
  for (unsigned i = 0; i < ntext; i++)
    if (pc >= text_lo[i] && pc < text_hi[i]) return 1;
  return 0;
}

/* Upper bound of the stack mapping holding sp, or 0 if unknown. */
static uintptr_t stack_top(uintptr_t sp) {
  unsigned a = 0, b = nregions;
  while (a < b) {
    unsigned m = (a + b) / 2;
    if (regions[m].hi <= sp)
      a = m + 1;
    else
      b = m;
  }
  if (a < nregions && regions[a].lo <= sp) return regions[a].hi;
  return 0;
}

static suffix *cache_way(unsigned slot, uintptr_t ret, uintptr_t csp) {
  if (!cache || slot >= CACHE_THREADS) return NULL;
  return &cache[slot * CACHE_WAYS +
                (unsigned)(pl__unwind_suffix_hash(ret, csp) >> 60) % CACHE_WAYS];
}

NO_ASAN int pl__unwind_suffix_match(const pl__unwind_suffix *e, uintptr_t ret, uintptr_t csp,
                                    uintptr_t top, uintptr_t *pcs, unsigned *n, unsigned max) {
  if (!e || e->n == 0 || e->ret != ret || e->csp != csp || *n + e->n > max) return 0;
  for (uint32_t i = 1; i < e->n; i++) {
    uintptr_t a = e->sp[i] - 8;
    if (a < csp || a > top - 8 || (a & 7)) return 0;
    if (*(const uintptr_t *)a != e->ip[i]) return 0;
  }
  memcpy(pcs + *n, e->ip, e->n * sizeof(*pcs));
  *n += e->n;
  return 1;
}

/* Append the cached callers of the foreign frame (ret, csp) if every
 * return address they were found through is still in place on the stack. */
static int cache_lookup(unsigned slot, uintptr_t ret, uintptr_t csp, uintptr_t top, uintptr_t *pcs,
                        unsigned *n, unsigned max) {
  return pl__unwind_suffix_match(cache_way(slot, ret, csp), ret, csp, top, pcs, n, max);
}

/* See unwind.h. The pending frame is the return address `ret` with the
 * caller's stack pointer `csp` and frame pointer `nfp`. */
NO_ASAN int pl__unwind_fp_walk(uintptr_t ret, uintptr_t csp, uintptr_t nfp, uintptr_t top,
                               uintptr_t *pcs, unsigned *n, unsigned max, uintptr_t *cross_ret,
                               uintptr_t *cross_sp) {
  for (;;) {
    if (ret == 0) return PL__FP_END;
    if (!pl__unwind_pc_is_ours(ret)) {
      *cross_ret = ret;
      *cross_sp = csp;
      return PL__FP_CROSS;
    }
    if (*n >= max) return PL__FP_FULL;
    pcs[(*n)++] = ret;
    uintptr_t fp = nfp;
    /* 0 is not an end here: our frames are always called from a foreign
     * frame (libc's start code, start_thread, a library callback) before
     * any outermost frame, so a 0 frame pointer under a frame of ours is a
     * broken chain (DWARF takes over), not a short stack. */
    if (fp == 0 || (fp & 7) || fp < csp || fp > top - 16) return PL__FP_BAD;
    const uintptr_t *f = (const uintptr_t *)fp;
    nfp = f[0];
    ret = f[1];
    csp = fp + 16;
  }
}

/* How to find the caller of an interrupted function of ours, per pc:
 * LEAF_FRAMED (its frame is set up: the frame pointer leads on) or the
 * distance from the stack pointer to the canonical frame address (a leaf
 * that never sets up a frame, which gcc does even with
 * -fno-omit-frame-pointer, or a prologue or epilogue: the return address
 * is at sp + off - 8 and the frame pointer is still the caller's). Learned
 * from DWARF the first time a pc is interrupted; one atomic word per entry
 * (pc << 16 | rule), shared by all threads. */
#define LEAF_RULES 4096
#define LEAF_FRAMED 0xffffu
static _Atomic uint64_t leaf_rules[LEAF_RULES];

static unsigned leaf_slot(uintptr_t pc) {
  return (unsigned)(((uint64_t)pc * 0x9E3779B97F4A7C15ull) >> 52) % LEAF_RULES;
}

/* The rule for pc, or 0 if unknown. */
static unsigned leaf_rule(uintptr_t pc) {
  uint64_t e = atomic_load_explicit(&leaf_rules[leaf_slot(pc)], memory_order_relaxed);
  return (e >> 16) == (uint64_t)pc ? (unsigned)(e & 0xffff) : 0;
}

static void leaf_learn(uintptr_t pc, uintptr_t sp, uintptr_t fp, uintptr_t cfa) {
  unsigned rule;
  if (cfa == fp + 16)
    rule = LEAF_FRAMED;
  else if (cfa > sp && cfa - sp < LEAF_FRAMED && !((cfa - sp) & 7))
    rule = (unsigned)(cfa - sp);
  else
    return;
  if ((uint64_t)pc >> 48) return;
  atomic_store_explicit(&leaf_rules[leaf_slot(pc)], ((uint64_t)pc << 16) | rule,
                        memory_order_relaxed);
}

/* The first pending frame of the interrupted function of ours. */
NO_ASAN static int leaf_frame(unsigned rule, uintptr_t sp, uintptr_t fp, uintptr_t top,
                              uintptr_t *ret, uintptr_t *csp, uintptr_t *nfp) {
  if (rule != LEAF_FRAMED) {
    uintptr_t at = sp + rule - 8;
    if ((sp & 7) || at > top - 8) return -1;
    *ret = *(const uintptr_t *)at;
    *csp = at + 8;
    *nfp = fp;
    return 0;
  }
  if ((fp & 7) || fp < sp || fp > top - 16) return -1;
  const uintptr_t *f = (const uintptr_t *)fp;
  *nfp = f[0];
  *ret = f[1];
  *csp = fp + 16;
  return 0;
}

/* ---- DWARF (libgcc) ---------------------------------------------------- */

enum { PH_HANDLER, PH_CHECK, PH_RECORD };

typedef struct dw_state {
  uintptr_t *pcs;
  unsigned n, max;
  int phase;
  unsigned k;                    /* PH_CHECK: index of the next DWARF frame */
  uintptr_t cross_ret, cross_sp; /* PH_CHECK: the foreign frame at index n */
  int hybrid;                    /* may switch to frame pointers at a frame of ours */
  unsigned slot;
  uintptr_t sp, top;
  int learn; /* learn the leaf rule of the interrupted pc */
  uintptr_t leaf_pc, leaf_sp, leaf_fp;
  unsigned seen; /* frames since the interrupted one */
  suffix *fill;  /* the cache entry being filled, or NULL */
  unsigned fill_n;
  unsigned how;
  int truncated;
  int verified, mismatch; /* PH_CHECK ran to the foreign frame; it disagreed */
} dw_state;

static void start_fill(dw_state *st) {
  st->hybrid = 0;
  st->fill = st->top ? cache_way(st->slot, st->cross_ret, st->cross_sp) : NULL;
  st->fill_n = 0;
  if (st->fill) st->fill->n = 0; /* invalid until complete */
}

NO_ASAN static _Unwind_Reason_Code dw_step(struct _Unwind_Context *ctx, void *arg) {
  dw_state *st = arg;
  int before_insn = 0;
  uintptr_t ip = _Unwind_GetIPInfo(ctx, &before_insn);
  if (st->phase == PH_HANDLER) {
    /* The handler's own frames come first; the frame after the signal
     * trampoline (the interrupted one) is marked "IP before instruction". */
    if (!before_insn) return _URC_NO_REASON;
    st->how |= PL__UNWIND_FOUND;
    st->phase = st->n ? PH_CHECK : PH_RECORD;
  }
  if (ip == 0) return _URC_END_OF_STACK;
  uintptr_t cfa = _Unwind_GetCFA(ctx); /* this frame's stack pointer */
  if (st->learn) {
    /* DWARF's own view of the interrupted registers (not the ucontext
     * passed in): its stack pointer is the CFA of the signal frame below
     * it, and its caller's stack pointer is the interrupted frame's CFA */
    if (st->seen == 0) {
      st->leaf_pc = ip;
      st->leaf_sp = cfa;
      st->leaf_fp = (uintptr_t)_Unwind_GetGR(ctx, 6);
    } else if (st->seen == 1) {
      if (pl__unwind_pc_is_ours(st->leaf_pc))
        leaf_learn(st->leaf_pc, st->leaf_sp, st->leaf_fp, cfa);
      st->learn = 0;
    }
  }
  st->seen++;
  if (st->phase == PH_CHECK) {
    /* Skip the frames the frame-pointer walk found, checking that DWARF
     * agrees, up to the foreign frame, from which DWARF records. */
    if (st->k < st->n) {
      if (ip == st->pcs[st->k]) {
        st->k++;
        return _URC_NO_REASON;
      }
      st->n = st->k; /* disagreement: keep what agreed, DWARF from here */
      st->phase = PH_RECORD;
      st->hybrid = 0;
      st->verified = st->mismatch = 1;
    } else {
      st->phase = PH_RECORD;
      st->verified = 1;
      if (ip == st->cross_ret && cfa == st->cross_sp) {
        start_fill(st);
      } else {
        st->hybrid = 0;
        st->mismatch = 1;
      }
    }
  }
  /* PH_RECORD */
  if (st->n >= st->max) {
    st->truncated = 1;
    return _URC_END_OF_STACK;
  }
  st->pcs[st->n++] = ip;
  if (st->fill) {
    if (st->fill_n < SUFFIX_MAX) {
      st->fill->ip[st->fill_n] = ip;
      st->fill->sp[st->fill_n] = cfa;
      st->fill_n++;
    } else {
      st->fill = NULL; /* too deep to cache */
    }
  }
  if (st->hybrid && st->top && st->seen > 1 && pl__unwind_pc_is_ours(ip)) {
    /* A call site of ours (its frame is set up): its callers by frame
     * pointers. */
    uintptr_t fp = (uintptr_t)_Unwind_GetGR(ctx, 6);
    unsigned n0 = st->n;
    if ((fp & 7) || fp < st->sp || fp > st->top - 16) {
      st->hybrid = 0;
      return _URC_NO_REASON;
    }
    const uintptr_t *f = (const uintptr_t *)fp;
    uintptr_t cr = 0, cs = 0;
    st->how |= PL__UNWIND_FP;
    int r = pl__unwind_fp_walk(f[1], fp + 16, f[0], st->top, st->pcs, &st->n, st->max, &cr, &cs);
    if (r == PL__FP_END) return _URC_END_OF_STACK;
    if (r == PL__FP_FULL) {
      st->truncated = 1;
      return _URC_END_OF_STACK;
    }
    if (r == PL__FP_CROSS) {
      if (cache_lookup(st->slot, cr, cs, st->top, st->pcs, &st->n, st->max)) {
        st->how |= PL__UNWIND_CACHED;
        return _URC_END_OF_STACK;
      }
      st->phase = PH_CHECK;
      st->k = n0;
      st->cross_ret = cr;
      st->cross_sp = cs;
      return _URC_NO_REASON;
    }
    st->n = n0; /* a bad chain: go on with DWARF */
    st->hybrid = 0;
  }
  return _URC_NO_REASON;
}

/* A frame-pointer result was compared with DWARF's: count it, and give
 * frame pointers up for this profile when they disagree too often
 * (pl__unwind_give_up_fp). */
static void verified(int mismatch) {
  uint64_t v = atomic_fetch_add_explicit(&st_verified, 1, memory_order_relaxed) + 1;
  if (!mismatch) return;
  uint64_t m = atomic_fetch_add_explicit(&st_mismatch, 1, memory_order_relaxed) + 1;
  if (pl__unwind_give_up_fp(m, v) && !no_fallback)
    atomic_store_explicit(&fp_off, 1, memory_order_relaxed);
}

static unsigned dwarf(dw_state *st) {
  st->how |= PL__UNWIND_DWARF;
  _Unwind_Backtrace(dw_step, st);
  if (st->verified) verified(st->mismatch);
  if (!(st->how & PL__UNWIND_FOUND)) return 0;
  if (st->fill) {
    if (st->phase == PH_RECORD && !st->truncated && st->fill_n > 0) {
      st->fill->ret = st->cross_ret;
      st->fill->csp = st->cross_sp;
      st->fill->n = st->fill_n;
    }
    st->fill = NULL;
  }
  return st->n;
}

static unsigned capture(const ucontext_t *uc, unsigned slot, uintptr_t *pcs, unsigned max,
                        unsigned *how) {
  uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
  uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
  uintptr_t fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
  atomic_fetch_add_explicit(&st_captures, 1, memory_order_relaxed);
  *how = 0;
  dw_state st = {.pcs = pcs, .max = max, .slot = slot, .sp = sp};
  st.top = fp_enabled && !atomic_load_explicit(&fp_off, memory_order_relaxed) ? stack_top(sp) : 0;
  if (max == 0) return 0;
  unsigned rule = 0;
  if (st.top && pl__unwind_pc_is_ours(pc) && (rule = leaf_rule(pc)) == 0) {
    /* first time at this pc: DWARF, learning how to leave it */
    st.learn = 1;
    st.hybrid = 1;
  } else if (rule) {
    uintptr_t ret, csp, nfp, cr = 0, cs = 0;
    if (leaf_frame(rule, sp, fp, st.top, &ret, &csp, &nfp) == 0) {
      pcs[0] = pc;
      st.n = 1;
      int r = pl__unwind_fp_walk(ret, csp, nfp, st.top, pcs, &st.n, max, &cr, &cs);
      atomic_fetch_add_explicit(&st_fp, 1, memory_order_relaxed);
      st.how = PL__UNWIND_FP | PL__UNWIND_FOUND;
      if (r == PL__FP_END || r == PL__FP_FULL) {
        *how = st.how;
        return st.n;
      }
      if (r == PL__FP_CROSS) {
        if (cache_lookup(slot, cr, cs, st.top, pcs, &st.n, max)) {
          atomic_fetch_add_explicit(&st_cached, 1, memory_order_relaxed);
          *how = st.how | PL__UNWIND_CACHED;
          return st.n;
        }
        /* DWARF from the signal frame: check the frames found, then record
         * (and cache) the callers of the foreign frame */
        st.how = PL__UNWIND_FP;
        st.cross_ret = cr;
        st.cross_sp = cs;
        atomic_fetch_add_explicit(&st_dwarf, 1, memory_order_relaxed);
        unsigned n = dwarf(&st);
        *how = st.how;
        return n;
      }
    }
    st.n = 0; /* a bad chain: DWARF only */
    st.how = 0;
  } else {
    st.hybrid = st.top != 0;
  }
  atomic_fetch_add_explicit(&st_dwarf, 1, memory_order_relaxed);
  unsigned n = dwarf(&st);
  if (st.how & PL__UNWIND_CACHED) atomic_fetch_add_explicit(&st_cached, 1, memory_order_relaxed);
  *how = st.how;
  return n;
}

/* Every PL__UNWIND_CHECK_EVERY-th capture of a slot that used frame pointers and was
 * not compared with DWARF already (a cache hit, or a walk to the end) is
 * compared with a full DWARF unwind: a chain misread through code built
 * without frame pointers that ends at a foreign frame cached by another
 * path is caught only so. DWARF's stack wins. */
unsigned pl__unwind_capture(const ucontext_t *uc, unsigned slot, uintptr_t *pcs, unsigned max,
                            unsigned *how) {
  unsigned n = capture(uc, slot, pcs, max, how);
  if (!(*how & PL__UNWIND_FP) || ((*how & PL__UNWIND_DWARF) && !(*how & PL__UNWIND_CACHED)))
    return n;
  unsigned every = atomic_load_explicit(&st_mismatch, memory_order_relaxed)
                       ? PL__UNWIND_CHECK_EVERY_SUSPECT
                       : PL__UNWIND_CHECK_EVERY;
  if ((atomic_fetch_add_explicit(&check_tick[slot % CACHE_THREADS], 1, memory_order_relaxed) + 1) %
          every !=
      0)
    return n;
  uintptr_t ref[PL__UNWIND_CHECK_MAX];
  dw_state st = {.pcs = ref, .max = max < PL__UNWIND_CHECK_MAX ? max : PL__UNWIND_CHECK_MAX};
  unsigned nref = dwarf(&st);
  if (!(st.how & PL__UNWIND_FOUND)) return n;
  unsigned lim = st.max; /* both cut at DWARF's bound: compare what both have */
  int same = n >= lim && nref >= lim ? memcmp(ref, pcs, lim * sizeof(*ref)) == 0
                                     : nref == n && memcmp(ref, pcs, n * sizeof(*ref)) == 0;
  verified(!same);
  *how |= PL__UNWIND_CHECKED;
  if (!same && nref <= max) {
    memcpy(pcs, ref, nref * sizeof(*ref));
    n = nref;
  }
  return n;
}

void pl__unwind_test_no_fallback(int on) { no_fallback = on; }

unsigned pl__unwind_dwarf(uintptr_t *pcs, unsigned max) {
  dw_state st = {.pcs = pcs, .max = max};
  return max ? dwarf(&st) : 0;
}

void pl__unwind_get_stats(pl__unwind_stats *s) {
  /* dwarf before captures: a handler running between the two loads can
   * only make captures larger (captures - dwarf stays >= 0) */
  s->dwarf = atomic_load(&st_dwarf);
  s->verified = atomic_load(&st_verified);
  s->mismatched = atomic_load(&st_mismatch);
  s->fell_back = atomic_load(&fp_off);
  s->captures = atomic_load(&st_captures);
  s->fp = atomic_load(&st_fp);
  s->cached = atomic_load(&st_cached);
}

/* ---- normal context ----------------------------------------------------- */

static int find_text(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  uintptr_t self = (uintptr_t)arg;
  int mine = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (self >= lo && self < hi) mine = 1;
  }
  if (!mine) return 0;
  for (int i = 0; i < info->dlpi_phnum && ntext < MAX_TEXT; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    text_lo[ntext] = info->dlpi_addr + ph->p_vaddr;
    text_hi[ntext] = text_lo[ntext] + ph->p_memsz;
    ntext++;
  }
  return 1;
}

static _Unwind_Reason_Code warm_step(struct _Unwind_Context *ctx, void *arg) {
  (void)ctx;
  return ++*(int *)arg < 8 ? _URC_NO_REASON : _URC_END_OF_STACK;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_once_fn(void) {
  const char *mode = getenv("PROFLAB_CPU_UNWIND");
  fp_enabled = !(mode && strcmp(mode, "dwarf") == 0);
  ntext = 0;
  dl_iterate_phdr(find_text, (void *)(uintptr_t)pl__unwind_init);
  if (ntext == 0) fp_enabled = 0;
  cache_bytes = (size_t)CACHE_THREADS * CACHE_WAYS * sizeof(suffix);
  void *p = mmap(NULL, cache_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  cache = p == MAP_FAILED ? NULL : p; /* no cache: still correct, slower */
  /* Warm libgcc's unwinder: its first call initializes tables. */
  int frames = 0;
  _Unwind_Backtrace(warm_step, &frames);
}

/* Once per process (the CPU profiler and the heap tracker both call it). */
int pl__unwind_init(void) {
  pthread_once(&init_once, init_once_fn);
  return 0;
}

int pl__unwind_text_known(void) { return ntext > 0; }

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* "lo-hi " at the start of a maps line; returns the index after hi, or -1. */
/* The lowest address the main thread's [stack], ending at hi, may grow
 * down to: the mapping below it (ending at below), at most
 * MAIN_STACK_GROWTH. */
static uintptr_t main_stack_floor(uintptr_t hi, uintptr_t below) {
  uintptr_t floor = hi > MAIN_STACK_GROWTH ? hi - MAIN_STACK_GROWTH : 0;
  return below > floor ? below : floor;
}

static long parse_range(const char *s, size_t len, uintptr_t *lo, uintptr_t *hi) {
  size_t i = 0;
  int v;
  *lo = *hi = 0;
  while (i < len && (v = hexval(s[i])) >= 0) *lo = *lo * 16 + (uintptr_t)v, i++;
  if (i >= len || s[i++] != '-') return -1;
  while (i < len && (v = hexval(s[i])) >= 0) *hi = *hi * 16 + (uintptr_t)v, i++;
  return (long)i;
}

/* One /proc/self/maps line: keep private writable mappings that are
 * anonymous or the main stack (threads' stacks are anonymous). */
static void maps_line(const char *s, size_t len, uintptr_t *prev_hi) {
  uintptr_t lo = 0, hi = 0;
  long at = parse_range(s, len, &lo, &hi);
  if (at < 0) return;
  size_t i = (size_t)at;
  uintptr_t below = *prev_hi; /* end of the mapping before this one */
  *prev_hi = hi;
  if (i + 5 > len || s[i] != ' ' || s[i + 1] != 'r' || s[i + 2] != 'w' || s[i + 4] != 'p') return;
  /* fields: perms offset dev inode [path] */
  unsigned field = 0;
  size_t j = i + 1, inode_at = 0, path_at = 0;
  while (j < len) {
    while (j < len && s[j] == ' ') j++;
    if (j >= len) break;
    field++;
    if (field == 4) inode_at = j;
    if (field == 5) {
      path_at = j;
      break;
    }
    while (j < len && s[j] != ' ') j++;
  }
  if (!inode_at || s[inode_at] != '0' || (inode_at + 1 < len && s[inode_at + 1] != ' ')) return;
  int main_stack = path_at && len - path_at >= 7 && memcmp(s + path_at, "[stack]", 7) == 0;
  if (path_at && !main_stack) return; /* [heap], [vvar], ... */
  if (main_stack) lo = main_stack_floor(hi, below);
  if (nregions >= MAX_REGIONS || hi <= lo) return;
  regions[nregions].lo = lo;
  regions[nregions].hi = hi;
  nregions++;
}

static int by_lo(const void *a, const void *b) {
  const region *x = a, *y = b;
  return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Calls fn on each line of /proc/self/maps; stops early when fn returns
 * nonzero. -1 if unreadable. Raw system calls: no allocation, and not a
 * cancellation point (glibc's open/read/close are; the heap tracker calls
 * this inside malloc). The buffer is small (it may be on a small thread
 * stack inside malloc): a line longer than it (a long path) is dropped. */
static int maps_each(int (*fn)(const char *line, size_t len, void *arg), void *arg) {
  long fdl = syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fdl < 0) return -1;
  int fd = (int)fdl;
  char buf[2048];
  size_t have = 0;
  int stop = 0;
  while (!stop) {
    long got = syscall(SYS_read, fd, buf + have, sizeof(buf) - have);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    have += (size_t)got;
    size_t start = 0;
    for (size_t i = 0; i < have && !stop; i++)
      if (buf[i] == '\n') {
        stop = fn(buf + start, i - start, arg);
        start = i + 1;
      }
    memmove(buf, buf + start, have - start);
    have -= start;
    if (have == sizeof(buf)) have = 0; /* an absurd line: drop it */
  }
  syscall(SYS_close, fd);
  return 0;
}

static int prepare_line(const char *s, size_t len, void *arg) {
  maps_line(s, len, arg);
  return 0;
}

void pl__unwind_prepare(void) {
  atomic_store(&st_captures, 0);
  atomic_store(&st_fp, 0);
  atomic_store(&st_cached, 0);
  atomic_store(&st_dwarf, 0);
  atomic_store(&st_verified, 0);
  atomic_store(&st_mismatch, 0);
  atomic_store(&fp_off, 0);
  for (unsigned i = 0; i < CACHE_THREADS; i++) atomic_store(&check_tick[i], 0);
  if (cache) madvise(cache, cache_bytes, MADV_DONTNEED); /* zero pages: empty */
  nregions = 0;
  if (!fp_enabled) return;
  uintptr_t prev_hi = 0;
  maps_each(prepare_line, &prev_hi);
  qsort(regions, nregions, sizeof(*regions), by_lo); /* maps is sorted already */
}

typedef struct mapping_query {
  uintptr_t addr, lo, hi, prev_hi;
  int found, main_stack;
} mapping_query;

/* The main thread's stack grows: [stack] counts from the mapping below it
 * (at most MAIN_STACK_GROWTH), so addresses it may grow to are in it. */
static int mapping_line(const char *s, size_t len, void *arg) {
  mapping_query *q = arg;
  uintptr_t lo, hi;
  if (parse_range(s, len, &lo, &hi) < 0) return 0;
  uintptr_t below = q->prev_hi;
  q->prev_hi = hi;
  int main_stack = len >= 7 && memcmp(s + len - 7, "[stack]", 7) == 0;
  if (main_stack) lo = main_stack_floor(hi, below);
  if (q->addr < lo || q->addr >= hi) return 0;
  q->lo = lo;
  q->hi = hi;
  q->found = 1;
  q->main_stack = main_stack;
  return 1;
}

int pl__unwind_mapping_of(uintptr_t addr, uintptr_t *lo, uintptr_t *hi, int *main_stack) {
  mapping_query q = {.addr = addr};
  if (maps_each(mapping_line, &q) != 0 || !q.found) return -1;
  *lo = q.lo;
  *hi = q.hi;
  *main_stack = q.main_stack;
  return 0;
}
