/* SIGNAL-SAFE capture path (pl__unwind_capture and what it calls); the rest
 * runs in a normal context before timers are armed. See unwind.h. */
#include "sample/unwind.h"

#include <dlfcn.h>
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
 * caller's stack pointer `csp` and frame pointer `nfp`; at a foreign
 * frame, *cross_fp is its rbp (saved in our callee's frame record). */
NO_ASAN static inline __attribute__((always_inline)) int fp_walk(
    uintptr_t ret, uintptr_t csp, uintptr_t nfp, uintptr_t top, uintptr_t *pcs, unsigned *n,
    unsigned max, uintptr_t *cross_ret, uintptr_t *cross_sp, uintptr_t *cross_fp) {
  for (;;) {
    if (ret == 0) return PL__FP_END;
    if (!pl__unwind_pc_is_ours(ret)) {
      *cross_ret = ret;
      *cross_sp = csp;
      *cross_fp = nfp;
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

NO_ASAN int pl__unwind_fp_walk(uintptr_t ret, uintptr_t csp, uintptr_t nfp, uintptr_t top,
                               uintptr_t *pcs, unsigned *n, unsigned max, uintptr_t *cross_ret,
                               uintptr_t *cross_sp) {
  uintptr_t cross_fp;
  return fp_walk(ret, csp, nfp, top, pcs, n, max, cross_ret, cross_sp, &cross_fp);
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

/* ---- per-pc CFA rules for every module ------------------------------------
 *
 * A rule says how to get from a frame at a pc to its caller, as the
 * module's .eh_frame says it (x86-64): CFA = rsp + k or rbp + k (k > 0, a
 * multiple of 8), the return address at CFA - 8, the caller's rsp = CFA,
 * its rbp unchanged or saved at CFA - 8v; or the frame is the outermost
 * (return address undefined, or no unwind info where libgcc ended the
 * walk); or "DWARF only" (anything else: expressions, signal frames, the
 * CFA in another register). Rules are keyed by the address libgcc looks
 * the pc up at (the interrupted pc, else return address - 1) and tied to
 * the identity of the module holding it, checked at every use. */

/* what _Unwind_Find_FDE (libgcc_s, GCC_3.0; not in <unwind.h>) fills */
struct eh_bases {
  void *tbase, *dbase, *func;
};
extern const void *_Unwind_Find_FDE(void *pc, struct eh_bases *bases);

#define R_KIND 3u
#define R_CFA 1u   /* a CFA rule */
#define R_END 2u   /* outermost frame */
#define R_DWARF 3u /* DWARF only */
#define R_BP_BASE (1u << 2)
#define R_OFF_SHIFT 3 /* CFA offset / 8, 15 bits */
#define R_OFF_MAX 0x7fffu
#define R_SLOT_SHIFT 18 /* caller's rbp at CFA - 8 * slot (0: unchanged), 14 bits */
#define R_SLOT_MAX 0x3fffu
/* parse results that are not rules */
#define R_NO_FDE 0x80000000u /* no unwind info: outermost if libgcc ends there */

/* An interrupted function's epilogue may have popped the register it
 * saved: the slot lies below the stack pointer, in the red zone, which
 * the kernel keeps when it delivers the signal (x86-64 ABI: 128 bytes). */
#define RED_ZONE 128

#define RULE_SETS 2048 /* power of 2 */
#define RULE_WAYS 4
/* seq: even when stable, odd while a writer fills the entry; pc: the
 * lookup address; data: module identity << 32 | rule */
typedef struct rule_entry {
  _Atomic uint64_t seq, pc, data;
} rule_entry;
static rule_entry *rules; /* RULE_SETS * RULE_WAYS, mmap'd at init */
static size_t rules_bytes;
static int rules_mode = PL__UNWIND_RULES_ON;

static _Atomic uint64_t st_rules, st_rule_frames, st_rule_misses, st_dwarf_frames;
static _Atomic uint64_t st_learned, st_inexpressible, st_stale, st_rules_checked, st_rules_mismatch;
static _Atomic uint64_t st_disagreed;

static rule_entry *rule_set(uintptr_t a) {
  return &rules[((uint64_t)a * 0x9E3779B97F4A7C15ull >> 40) % RULE_SETS * RULE_WAYS];
}

/* The identity of the module holding a pc: its mapping and its unwind
 * table's header (version, encodings, table size, first and last entry),
 * hashed. The same file loaded again at the same address keeps it (its
 * rules still hold); another file there does not. */
#define MODC 4 /* modules a walk remembers (a stack goes exe, libc, exe...) */
typedef struct modc {
  uintptr_t lo[MODC], hi[MODC]; /* hi == 0: nothing cached */
  uint32_t ids[MODC];
  unsigned next, last;
  uint32_t id; /* the last answer */
} modc;

static uint64_t mix64(uint64_t x) {
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ull;
  x ^= x >> 27;
  x *= 0x81dadef4bc2dd44dull;
  return x ^ (x >> 33);
}

/* 0 and m->id, or -1 when pc is in no module with unwind tables. Reads
 * the header of the table of a module that holds a live frame of the
 * interrupted thread (it is mapped). A walk's modc is its own: modules
 * are looked up again at every capture. SIGNAL-SAFE: _dl_find_object is. */
static __attribute__((noinline)) int mod_lookup(modc *m, uintptr_t pc) {
  for (unsigned i = 0; i < MODC; i++)
    if (pc >= m->lo[i] && pc < m->hi[i]) {
      m->id = m->ids[i];
      m->last = i;
      return 0;
    }
  struct dl_find_object d;
  if (_dl_find_object((void *)pc, &d) != 0 || !d.dlfo_eh_frame) return -1;
  const unsigned char *h = d.dlfo_eh_frame;
  uint32_t w;
  memcpy(&w, h, 4);
  uint64_t x = (uintptr_t)d.dlfo_map_start ^ (uint64_t)(uintptr_t)d.dlfo_map_end << 21 ^
               (uint64_t)(uintptr_t)h * 0x9E3779B97F4A7C15ull ^ w;
  /* version 1, eh_frame_ptr pcrel sdata4, fde_count udata4, table datarel
   * sdata4: gcc's and lld's layout */
  if (w == 0x3b031b01u) {
    uint32_t ptr, count;
    memcpy(&ptr, h + 4, 4);
    memcpy(&count, h + 8, 4);
    x = mix64(x) ^ ptr ^ (uint64_t)count << 32;
    if (count) {
      uint64_t first, last;
      memcpy(&first, h + 12, 8);
      memcpy(&last, h + 12 + 8 * (size_t)(count - 1), 8);
      x = mix64(x ^ first) ^ last;
    }
  }
  unsigned i = m->next++ % MODC;
  m->lo[i] = (uintptr_t)d.dlfo_map_start;
  m->hi[i] = (uintptr_t)d.dlfo_map_end;
  m->ids[i] = m->id = (uint32_t)(mix64(x) >> 32);
  m->last = i;
  return 0;
}

static inline int mod_id(modc *m, uintptr_t pc) {
  if (pc - m->lo[m->last] < m->hi[m->last] - m->lo[m->last]) return 0; /* same as the last */
  return mod_lookup(m, pc);
}

/* The rule for lookup address a of module id, or 0. A rule of another
 * module at a (unloaded since) counts as stale and is not used. */
static unsigned rule_get(uintptr_t a, uint32_t id) {
  if (!rules || a == 0) return 0;
  rule_entry *set = rule_set(a);
  for (unsigned w = 0; w < RULE_WAYS; w++) {
    rule_entry *e = &set[w];
    uint64_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
    if (s1 & 1) continue;
    uint64_t pc = atomic_load_explicit(&e->pc, memory_order_relaxed);
    uint64_t data = atomic_load_explicit(&e->data, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&e->seq, memory_order_relaxed) != s1 || pc != a) continue;
    if ((uint32_t)(data >> 32) == id) return (unsigned)data;
    atomic_fetch_add_explicit(&st_stale, 1, memory_order_relaxed);
  }
  return 0;
}

/* Stores the rule for (a, id): in the way that holds a, else an empty
 * one, else the next in turn (a rule of an unloaded module stays until
 * then). A writer never waits: if another is filling that entry, the rule
 * is not stored (learned again later). */
static _Atomic unsigned victim_tick;

static void rule_put(uintptr_t a, uint32_t id, unsigned rule) {
  if (!rules || a == 0) return;
  rule_entry *set = rule_set(a), *e = NULL;
  for (unsigned w = 0; w < RULE_WAYS && !e; w++)
    if (atomic_load_explicit(&set[w].pc, memory_order_relaxed) == a) e = &set[w];
  for (unsigned w = 0; w < RULE_WAYS && !e; w++)
    if (atomic_load_explicit(&set[w].pc, memory_order_relaxed) == 0) e = &set[w];
  if (!e) e = &set[atomic_fetch_add_explicit(&victim_tick, 1, memory_order_relaxed) % RULE_WAYS];
  uint64_t s = atomic_load_explicit(&e->seq, memory_order_relaxed);
  if ((s & 1) || !atomic_compare_exchange_strong_explicit(&e->seq, &s, s + 1, memory_order_relaxed,
                                                          memory_order_relaxed))
    return;
  atomic_thread_fence(memory_order_release);
  atomic_store_explicit(&e->pc, a, memory_order_relaxed);
  atomic_store_explicit(&e->data, (uint64_t)id << 32 | rule, memory_order_relaxed);
  atomic_store_explicit(&e->seq, s + 2, memory_order_release);
}

/* "DWARF only" for a (a rule that disagreed with DWARF). */
static void rule_poison(uintptr_t a) {
  modc m = {0};
  if (mod_id(&m, a) == 0) rule_put(a, m.id, R_DWARF);
}

/* ---- .eh_frame: the CFA rule at one address ------------------------------
 * The subset of DWARF call frame instructions compilers and assemblers
 * emit for x86-64, executed as libgcc's execute_cfa_program does
 * (DW_CFA_restore and same_value make a register "unsaved",
 * remember_state keeps the CFA too). Anything else makes the address
 * "DWARF only". Reads only the module's unwind table (mapped: it holds a
 * frame of the interrupted thread). */

typedef struct cfi_in {
  const uint8_t *p, *end;
  int bad;
} cfi_in;

static uint64_t cfi_uleb(cfi_in *r) {
  uint64_t v = 0;
  for (unsigned shift = 0;; shift += 7) {
    if (r->p >= r->end || shift > 63) {
      r->bad = 1;
      return 0;
    }
    uint8_t b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
}

static int64_t cfi_sleb(cfi_in *r) {
  uint64_t v = 0;
  unsigned shift = 0;
  uint8_t b;
  do {
    if (r->p >= r->end || shift > 63) {
      r->bad = 1;
      return 0;
    }
    b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    shift += 7;
  } while (b & 0x80);
  if (shift < 64 && (b & 0x40)) v |= ~(uint64_t)0 << shift;
  return (int64_t)v;
}

static uint64_t cfi_fixed(cfi_in *r, unsigned n) { /* little-endian, n <= 8 */
  uint64_t v = 0;
  if ((size_t)(r->end - r->p) < n) {
    r->bad = 1;
    return 0;
  }
  memcpy(&v, r->p, n);
  r->p += n;
  return v;
}

/* Skips an encoded pointer of the CIE augmentation (read_encoded_value). */
static void cfi_skip_encoded(cfi_in *r, uint8_t enc) {
  if (enc == 0xff) return; /* DW_EH_PE_omit */
  switch (enc & 0x0f) {
    case 0x00: /* absptr */
    case 0x04: /* udata8 */
    case 0x0c: /* sdata8 */
      cfi_fixed(r, 8);
      break;
    case 0x01:
      cfi_uleb(r);
      break;
    case 0x09:
      cfi_sleb(r);
      break;
    case 0x02:
    case 0x0a:
      cfi_fixed(r, 2);
      break;
    case 0x03:
    case 0x0b:
      cfi_fixed(r, 4);
      break;
    default:
      r->bad = 1;
  }
  if ((enc & 0x70) == 0x50) r->bad = 1; /* aligned */
}

/* libgcc's size_of_encoded_value (FDE pc_begin and pc_range): 0 if not
 * one it accepts. */
static unsigned cfi_encoded_size(uint8_t enc) {
  if (enc == 0xff) return 0;
  switch (enc & 0x07) {
    case 0:
      return 8;
    case 2:
      return 2;
    case 3:
      return 4;
    case 4:
      return 8;
    default:
      return 0;
  }
}

enum { RH_UNSAVED, RH_OFFSET, RH_UNDEFINED, RH_OTHER };
typedef struct cfi_row {
  uint64_t cfa_reg;
  int64_t cfa_off;
  int cfa_expr;
  uint8_t how[2]; /* rbp (DWARF 6), return address (16) */
  int64_t off[2];
} cfi_row;

static int cfi_reg_index(uint64_t reg) { return reg == 6 ? 0 : reg == 16 ? 1 : -1; }

static void cfi_set(cfi_row *row, uint64_t reg, int how, int64_t off) {
  int i = cfi_reg_index(reg);
  if (i < 0) return; /* a register the walk does not need */
  row->how[i] = (uint8_t)how;
  row->off[i] = off;
}

#define CFI_STACK 8

/* v * factor without signed overflow (a corrupt table gives a wrong
 * number, which the rule's checks refuse, not undefined behaviour) */
static int64_t cfi_factor(uint64_t v, int64_t factor) { return (int64_t)(v * (uint64_t)factor); }

/* Runs instructions [r->p, r->end) while the location *loc <= a. */
static int cfi_run(cfi_in *r, cfi_row *row, uintptr_t *loc, uintptr_t a, uint64_t caf,
                   int64_t daf) {
  cfi_row saved[CFI_STACK];
  unsigned depth = 0;
  while (r->p < r->end && *loc <= a && !r->bad) {
    uint8_t op = *r->p++;
    uint64_t reg, delta;
    switch (op >> 6) {
      case 1: /* advance_loc */
        *loc += (op & 0x3f) * caf;
        continue;
      case 2: /* offset */
        reg = op & 0x3f;
        cfi_set(row, reg, RH_OFFSET, cfi_factor(cfi_uleb(r), daf));
        continue;
      case 3: /* restore */
        cfi_set(row, op & 0x3f, RH_UNSAVED, 0);
        continue;
      default:
        break;
    }
    switch (op) {
      case 0x00: /* nop */
        break;
      case 0x02: /* advance_loc1 */
      case 0x03: /* advance_loc2 */
      case 0x04: /* advance_loc4 */
        delta = cfi_fixed(r, op == 0x02 ? 1 : op == 0x03 ? 2 : 4);
        *loc += delta * caf;
        break;
      case 0x05: /* offset_extended */
        reg = cfi_uleb(r);
        cfi_set(row, reg, RH_OFFSET, cfi_factor(cfi_uleb(r), daf));
        break;
      case 0x06: /* restore_extended */
      case 0x08: /* same_value */
        cfi_set(row, cfi_uleb(r), RH_UNSAVED, 0);
        break;
      case 0x07: /* undefined */
        cfi_set(row, cfi_uleb(r), RH_UNDEFINED, 0);
        break;
      case 0x0a: /* remember_state */
        if (depth == CFI_STACK) return -1;
        saved[depth++] = *row;
        break;
      case 0x0b: /* restore_state */
        if (depth == 0) return -1;
        *row = saved[--depth];
        break;
      case 0x0c: /* def_cfa */
        row->cfa_reg = cfi_uleb(r);
        row->cfa_off = (int64_t)cfi_uleb(r);
        row->cfa_expr = 0;
        break;
      case 0x0d: /* def_cfa_register */
        row->cfa_reg = cfi_uleb(r);
        row->cfa_expr = 0;
        break;
      case 0x0e: /* def_cfa_offset (an expression stays one, as in libgcc) */
        row->cfa_off = (int64_t)cfi_uleb(r);
        break;
      case 0x0f: /* def_cfa_expression */
        delta = cfi_uleb(r);
        if (delta > (uint64_t)(r->end - r->p)) return -1;
        r->p += delta;
        row->cfa_expr = 1;
        break;
      case 0x10: /* expression */
      case 0x16: /* val_expression */
        reg = cfi_uleb(r);
        delta = cfi_uleb(r);
        if (delta > (uint64_t)(r->end - r->p)) return -1;
        r->p += delta;
        cfi_set(row, reg, RH_OTHER, 0);
        break;
      case 0x11: /* offset_extended_sf */
        reg = cfi_uleb(r);
        cfi_set(row, reg, RH_OFFSET, cfi_factor((uint64_t)cfi_sleb(r), daf));
        break;
      case 0x12: /* def_cfa_sf */
        row->cfa_reg = cfi_uleb(r);
        row->cfa_off = cfi_factor((uint64_t)cfi_sleb(r), daf);
        row->cfa_expr = 0;
        break;
      case 0x13: /* def_cfa_offset_sf */
        row->cfa_off = cfi_factor((uint64_t)cfi_sleb(r), daf);
        break;
      case 0x09: /* register */
      case 0x14: /* val_offset */
        reg = cfi_uleb(r);
        cfi_uleb(r);
        cfi_set(row, reg, RH_OTHER, 0);
        break;
      case 0x15: /* val_offset_sf */
        reg = cfi_uleb(r);
        cfi_sleb(r);
        cfi_set(row, reg, RH_OTHER, 0);
        break;
      case 0x2e: /* GNU_args_size */
        cfi_uleb(r);
        break;
      case 0x2f: /* GNU_negative_offset_extended */
        reg = cfi_uleb(r);
        cfi_set(row, reg, RH_OFFSET, cfi_factor(0 - cfi_uleb(r), daf));
        break;
      default: /* set_loc, vendor extensions */
        return -1;
    }
  }
  return r->bad ? -1 : 0;
}

/* The rule at lookup address a (interrupted pc, or return address - 1),
 * from the module's .eh_frame; R_DWARF if it cannot be one, R_NO_FDE if
 * there is no unwind information for a. SIGNAL-SAFE. */
static unsigned cfi_rule(uintptr_t a) {
  struct eh_bases bases;
  const uint8_t *fde = _Unwind_Find_FDE((void *)a, &bases);
  if (!fde) return R_NO_FDE;
  uint32_t len, delta;
  memcpy(&len, fde, 4);
  memcpy(&delta, fde + 4, 4);
  if (len == 0 || len == 0xffffffffu || delta == 0) return R_DWARF;
  const uint8_t *cie = fde + 4 - delta;
  uint32_t clen, cid;
  memcpy(&clen, cie, 4);
  memcpy(&cid, cie + 4, 4);
  if (clen == 0 || clen == 0xffffffffu || cid != 0) return R_DWARF;
  cfi_in r = {cie + 8, cie + 4 + clen, 0};
  uint8_t version = (uint8_t)cfi_fixed(&r, 1);
  if (version != 1 && version != 3) return R_DWARF;
  const char *aug = (const char *)r.p;
  while (r.p < r.end && *r.p) r.p++;
  if (r.p >= r.end) return R_DWARF;
  r.p++;
  uint64_t caf = cfi_uleb(&r);
  int64_t daf = cfi_sleb(&r);
  uint64_t ra = version == 1 ? cfi_fixed(&r, 1) : cfi_uleb(&r);
  if (r.bad || ra != 16) return R_DWARF;
  uint8_t fde_enc = 0; /* absptr */
  int saw_z = aug[0] == 'z';
  if (aug[0] && !saw_z) return R_DWARF; /* libgcc gives up on it too */
  if (saw_z) {
    uint64_t alen = cfi_uleb(&r);
    if (r.bad || alen > (uint64_t)(r.end - r.p)) return R_DWARF;
    const uint8_t *insns = r.p + alen;
    for (const char *c = aug + 1; *c && !r.bad; c++) {
      if (*c == 'R')
        fde_enc = (uint8_t)cfi_fixed(&r, 1);
      else if (*c == 'L')
        cfi_fixed(&r, 1);
      else if (*c == 'P')
        cfi_skip_encoded(&r, (uint8_t)cfi_fixed(&r, 1));
      else /* 'S' (a signal frame) or unknown */
        return R_DWARF;
    }
    if (r.bad || r.p > insns) return R_DWARF;
    r.p = insns;
  }
  cfi_row row = {.cfa_reg = 7, .cfa_off = 8};
  uintptr_t loc = (uintptr_t)bases.func;
  if (cfi_run(&r, &row, &loc, a, caf, daf) != 0) return R_DWARF;
  /* the FDE: pc_begin and pc_range, augmentation data, instructions */
  unsigned esize = cfi_encoded_size(fde_enc);
  if (!esize) return R_DWARF;
  cfi_in f = {fde + 8, fde + 4 + len, 0};
  f.p += 2 * esize;
  if (saw_z) {
    uint64_t alen = cfi_uleb(&f);
    if (f.bad || alen > (uint64_t)(f.end - f.p)) return R_DWARF;
    f.p += alen;
  }
  if (f.p > f.end || cfi_run(&f, &row, &loc, a, caf, daf) != 0) return R_DWARF;
  /* the row as a rule */
  if (row.how[1] == RH_UNDEFINED) return R_END;
  if (row.cfa_expr || (row.cfa_reg != 7 && row.cfa_reg != 6)) return R_DWARF;
  if (row.how[1] != RH_OFFSET || row.off[1] != -8) return R_DWARF;
  if (row.cfa_off <= 0 || row.cfa_off > 8 * (int64_t)R_OFF_MAX || (row.cfa_off & 7)) return R_DWARF;
  unsigned rule =
      R_CFA | (row.cfa_reg == 6 ? R_BP_BASE : 0) | (unsigned)(row.cfa_off / 8) << R_OFF_SHIFT;
  if (row.how[0] == RH_OFFSET) {
    if (row.off[0] >= 0 || row.off[0] < -8 * (int64_t)R_SLOT_MAX || (row.off[0] & 7))
      return R_DWARF;
    rule |= (unsigned)(-row.off[0] / 8) << R_SLOT_SHIFT;
  } else if (row.how[0] != RH_UNSAVED) {
    return R_DWARF;
  }
  return rule;
}

/* ---- walking with rules ------------------------------------------------ */

enum { RW_DONE, RW_MISS };

typedef struct rwalk {
  uintptr_t top; /* reads lie below top, and above the interrupted sp */
  unsigned slot;
  int fp; /* frames of ours by frame pointers and the suffix cache */
  modc mod;
  unsigned how;                              /* PL__UNWIND_FP, _CACHED */
  unsigned rule_frames;                      /* frames found by a rule */
  int end_by_rule;                           /* the last frame's rule ended the stack */
  uint64_t ruled[PL__UNWIND_CHECK_MAX / 64]; /* frame i came from frame i - 1's rule */
} rwalk;

static void mark_ruled(rwalk *w, unsigned i) {
  if (i < PL__UNWIND_CHECK_MAX) w->ruled[i / 64] |= 1ull << (i % 64);
}

static int was_ruled(const rwalk *w, unsigned i) {
  return i < PL__UNWIND_CHECK_MAX && (w->ruled[i / 64] >> (i % 64) & 1);
}

/* From the frame (pc, sp, bp) (first: the interrupted one), appending to
 * pcs[*n..max): RW_DONE with the whole stack (or max frames), RW_MISS at a
 * pc without a usable rule. Every read lies in [sp - RED_ZONE, top) (the
 * red zone only for the interrupted frame). SIGNAL-SAFE. */
NO_ASAN static int rules_walk(rwalk *w, uintptr_t pc, uintptr_t sp, uintptr_t bp, int first,
                              uintptr_t *pcs, unsigned *n, unsigned max) {
  w->end_by_rule = 0;
  for (;;) {
    if (!first && w->fp && pl__unwind_pc_is_ours(pc)) {
      /* a call site of ours: its frame is set up, frame pointers lead on */
      uintptr_t cr = 0, cs = 0, cb = 0;
      unsigned n0 = *n;
      int r = fp_walk(pc, sp, bp, w->top, pcs, n, max, &cr, &cs, &cb);
      w->how |= PL__UNWIND_FP;
      if (r == PL__FP_END || r == PL__FP_FULL) return RW_DONE;
      if (r == PL__FP_CROSS) {
        if (cache_lookup(w->slot, cr, cs, w->top, pcs, n, max)) {
          w->how |= PL__UNWIND_CACHED;
          return RW_DONE;
        }
        pc = cr;
        sp = cs;
        bp = cb;
      } else {
        *n = n0; /* a broken chain: this frame by its rule */
      }
    }
    if (*n >= max) return RW_DONE;
    pcs[(*n)++] = pc;
    uintptr_t a = first ? pc : pc - 1;
    if (mod_id(&w->mod, a) != 0) return RW_MISS;
    unsigned rule = rule_get(a, w->mod.id);
    if ((rule & R_KIND) == R_END) {
      w->end_by_rule = 1;
      return RW_DONE;
    }
    if ((rule & R_KIND) != R_CFA) return RW_MISS;
    uintptr_t cfa = ((rule & R_BP_BASE) ? bp : sp) + 8 * ((rule >> R_OFF_SHIFT) & R_OFF_MAX);
    if (cfa <= sp || (cfa & 7) || cfa > w->top) return RW_MISS;
    uintptr_t ret = *(const uintptr_t *)(cfa - 8);
    unsigned slot = (rule >> R_SLOT_SHIFT) & R_SLOT_MAX;
    if (slot) {
      uintptr_t at = cfa - 8 * (uintptr_t)slot;
      if (at < sp - (first ? RED_ZONE : 0) || at >= cfa) return RW_MISS;
      bp = *(const uintptr_t *)at;
    }
    if (ret == 0) {
      w->end_by_rule = 1;
      return RW_DONE;
    }
    mark_ruled(w, *n);
    w->rule_frames++;
    pc = ret;
    sp = cfa;
    first = 0;
  }
}

/* A stack found with rules (pcs, n) compared with DWARF's (ref, nref):
 * if the first difference is a rule's doing, that rule becomes "DWARF
 * only" and 1 is returned; 0 when they agree or the difference lies in
 * frame-pointer frames. */
static int blame_rule(const rwalk *w, const uintptr_t *pcs, unsigned n, const uintptr_t *ref,
                      unsigned nref, int *differ) {
  unsigned i = 0;
  while (i < n && i < nref && pcs[i] == ref[i]) i++;
  *differ = !(i == n && i == nref);
  if (!*differ) return 0;
  /* pcs[0] is the interrupted pc (looked up as is), the others return
   * addresses (looked up at the call) */
  if (i < n && was_ruled(w, i)) {
    rule_poison(i == 1 ? pcs[0] : pcs[i - 1] - 1);
    return 1;
  }
  if (i == n && n > 0 && w->end_by_rule) {
    rule_poison(n == 1 ? pcs[0] : pcs[n - 1] - 1);
    return 1;
  }
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
  /* per-pc rules: learn them from this walk; the previous frame's rule,
   * kept once this frame shows it gives libgcc's caller */
  int learn_rules;
  modc mod;
  unsigned pend;
  int pend_first; /* the candidate is the interrupted frame's */
  uintptr_t pend_a, pend_sp, pend_bp;
  uint32_t pend_id;
  unsigned dwarf_frames; /* frames recorded by DWARF */
  int count_frames;      /* a capture's run (not a check's) */
} dw_state;

/* A frame DWARF passes (sp: its stack pointer, libgcc's CFA of the frame
 * below; bp: its rbp): checks the previous frame's candidate rule against
 * it (its CFA is this sp, the return address at CFA - 8 is this ip, the
 * caller's rbp is this bp) and keeps it, or "DWARF only" if it disagrees;
 * then finds the candidate for this frame in the unwind table. Every read
 * is one libgcc made (the return address slot) or lies inside the
 * previous frame, between its stack pointer (less the red zone for the
 * interrupted frame) and its CFA. SIGNAL-SAFE. */
NO_ASAN static void learn_rules(dw_state *st, uintptr_t ip, int before_insn, uintptr_t sp,
                                uintptr_t bp) {
  if (st->pend) {
    unsigned r = st->pend, keep = R_DWARF;
    st->pend = 0;
    if ((r & R_KIND) == R_CFA) {
      uintptr_t cfa =
          ((r & R_BP_BASE) ? st->pend_bp : st->pend_sp) + 8 * ((r >> R_OFF_SHIFT) & R_OFF_MAX);
      unsigned slot = (r >> R_SLOT_SHIFT) & R_SLOT_MAX;
      uintptr_t at = cfa - 8 * (uintptr_t)slot;
      uintptr_t lo = st->pend_sp - (st->pend_first ? RED_ZONE : 0);
      if (cfa == sp && *(const uintptr_t *)(cfa - 8) == ip &&
          (slot ? at >= lo && at < cfa && *(const uintptr_t *)at == bp : bp == st->pend_bp))
        keep = r;
    } else if (ip == 0) {
      /* outermost: libgcc makes an undefined return address 0 and ends */
      keep = R_END;
    } /* else libgcc went on past a frame the table calls outermost (or
       * one without unwind information: a signal trampoline it knows) */
    rule_put(st->pend_a, st->pend_id, keep);
    atomic_fetch_add_explicit(keep == R_DWARF ? &st_inexpressible : &st_learned, 1,
                              memory_order_relaxed);
    if (keep == R_DWARF && r != R_NO_FDE)
      atomic_fetch_add_explicit(&st_disagreed, 1, memory_order_relaxed);
  }
  if (ip == 0) return;
  uintptr_t a = before_insn ? ip : ip - 1;
  if (mod_id(&st->mod, a) != 0 || rule_get(a, st->mod.id)) return;
  unsigned r = cfi_rule(a);
  if (r == R_DWARF) {
    rule_put(a, st->mod.id, R_DWARF);
    atomic_fetch_add_explicit(&st_inexpressible, 1, memory_order_relaxed);
    return;
  }
  st->pend = r;
  st->pend_first = before_insn;
  st->pend_a = a;
  st->pend_id = st->mod.id;
  st->pend_sp = sp;
  st->pend_bp = bp;
}

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
  uintptr_t cfa = _Unwind_GetCFA(ctx); /* this frame's stack pointer */
  if (st->learn_rules) learn_rules(st, ip, before_insn, cfa, (uintptr_t)_Unwind_GetGR(ctx, 6));
  if (ip == 0) return _URC_END_OF_STACK;
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
  st->dwarf_frames++;
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
  _Unwind_Reason_Code rc = _Unwind_Backtrace(dw_step, st);
  if (st->pend) {
    /* libgcc ended the walk itself right after the last frame: outermost
     * (no unwind information there), which a CFA rule contradicts. Ended
     * by us (full, our frames, a cached suffix): nothing learned. */
    if (rc == _URC_END_OF_STACK) {
      int cfa = (st->pend & R_KIND) == R_CFA;
      rule_put(st->pend_a, st->pend_id, cfa ? R_DWARF : R_END);
      atomic_fetch_add_explicit(cfa ? &st_inexpressible : &st_learned, 1, memory_order_relaxed);
      if (cfa) atomic_fetch_add_explicit(&st_disagreed, 1, memory_order_relaxed);
    }
    st->pend = 0;
  }
  if (st->dwarf_frames && st->count_frames)
    atomic_fetch_add_explicit(&st_dwarf_frames, st->dwarf_frames, memory_order_relaxed);
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

static void rules_done(const rwalk *w) {
  atomic_fetch_add_explicit(&st_rules, 1, memory_order_relaxed);
  if (w->how & PL__UNWIND_CACHED) atomic_fetch_add_explicit(&st_cached, 1, memory_order_relaxed);
  if (w->rule_frames)
    atomic_fetch_add_explicit(&st_rule_frames, w->rule_frames, memory_order_relaxed);
}

/* The rules met a pc without one (found: pcs[0, n)): DWARF from the
 * signal frame, learning, which must agree with what the rules found. Its
 * own frame: the copy of the rules' frames costs stack only on this path. */
__attribute__((noinline)) static unsigned rules_missed(dw_state *st, rwalk *w, unsigned n,
                                                       int hybrid) {
  uintptr_t found[PL__UNWIND_CHECK_MAX];
  unsigned nf = n < PL__UNWIND_CHECK_MAX ? n : PL__UNWIND_CHECK_MAX;
  memcpy(found, st->pcs, nf * sizeof(*found));
  atomic_fetch_add_explicit(&st_rule_misses, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&st_dwarf, 1, memory_order_relaxed);
  st->n = 0;
  st->how = 0;
  st->hybrid = hybrid && st->top != 0;
  unsigned got = dwarf(st);
  if (st->how & PL__UNWIND_CACHED) atomic_fetch_add_explicit(&st_cached, 1, memory_order_relaxed);
  if ((st->how & PL__UNWIND_FOUND) && nf > 1) {
    int differ;
    atomic_fetch_add_explicit(&st_rules_checked, 1, memory_order_relaxed);
    if (blame_rule(w, found, nf, st->pcs, got < nf ? got : nf, &differ))
      atomic_fetch_add_explicit(&st_rules_mismatch, 1, memory_order_relaxed);
  }
  return got;
}

static unsigned capture(const ucontext_t *uc, unsigned slot, uintptr_t *pcs, unsigned max,
                        unsigned *how, rwalk *w) {
  uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
  uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
  uintptr_t fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
  atomic_fetch_add_explicit(&st_captures, 1, memory_order_relaxed);
  *how = 0;
  dw_state st = {.pcs = pcs, .max = max, .slot = slot, .sp = sp, .count_frames = 1};
  uintptr_t bound = stack_top(sp);
  st.top = fp_enabled && !atomic_load_explicit(&fp_off, memory_order_relaxed) ? bound : 0;
  st.learn_rules = rules && rules_mode != PL__UNWIND_RULES_OFF;
  /* rules read only the interrupted thread's recorded stack mapping */
  int use_rules = st.learn_rules && bound && !(sp & 7);
  w->top = bound;
  w->slot = slot;
  w->fp = st.top != 0;
  if (max == 0) return 0;
  unsigned rule = 0;
  int bad_chain = 0;
  if (st.top && pl__unwind_pc_is_ours(pc) && (rule = leaf_rule(pc)) == 0) {
    /* first time at this pc: DWARF, learning how to leave it */
    st.learn = 1;
    st.hybrid = 1;
  } else if (rule) {
    uintptr_t ret, csp, nfp, cr = 0, cs = 0, cb = 0;
    if (leaf_frame(rule, sp, fp, st.top, &ret, &csp, &nfp) == 0) {
      pcs[0] = pc;
      st.n = 1;
      int r = fp_walk(ret, csp, nfp, st.top, pcs, &st.n, max, &cr, &cs, &cb);
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
        if (use_rules) {
          /* the callers of the foreign frame by rules, while they have one */
          unsigned n0 = st.n;
          if (rules_walk(w, cr, cs, cb, 0, pcs, &st.n, max) == RW_DONE) {
            rules_done(w);
            *how = st.how | w->how | PL__UNWIND_RULES;
            return st.n;
          }
          atomic_fetch_add_explicit(&st_rule_misses, 1, memory_order_relaxed);
          st.n = n0;
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
    st.n = 0; /* a bad chain: rules, or DWARF only */
    st.how = 0;
    bad_chain = 1;
  }
  if (!st.learn && use_rules) {
    /* every frame by its rule (frames of ours by frame pointers) */
    unsigned n = 0;
    if (rules_walk(w, pc, sp, fp, 1, pcs, &n, max) == RW_DONE) {
      rules_done(w);
      *how = PL__UNWIND_FOUND | PL__UNWIND_RULES | w->how;
      return n;
    }
    unsigned got = rules_missed(&st, w, n, !bad_chain);
    *how = st.how;
    return got;
  }
  if (!st.learn) st.hybrid = !bad_chain && st.top != 0;
  atomic_fetch_add_explicit(&st_dwarf, 1, memory_order_relaxed);
  unsigned n = dwarf(&st);
  if (st.how & PL__UNWIND_CACHED) atomic_fetch_add_explicit(&st_cached, 1, memory_order_relaxed);
  *how = st.how;
  return n;
}

/* Every PL__UNWIND_CHECK_EVERY-th capture of a slot that used frame
 * pointers or rules and was not compared with DWARF already (a cache hit,
 * a walk to the end, rules all the way) is compared with a full DWARF
 * unwind (every one of the rules' with PROFLAB_CPU_UNWIND_RULES=verify):
 * a chain misread through code built without frame pointers that ends at
 * a foreign frame cached by another path is caught only so. DWARF's stack
 * wins; a rule found wrong becomes "DWARF only" for its pc. */
unsigned pl__unwind_capture(const ucontext_t *uc, unsigned slot, uintptr_t *pcs, unsigned max,
                            unsigned *how) {
  rwalk w = {0};
  unsigned n = capture(uc, slot, pcs, max, how, &w);
  int ruled = (*how & PL__UNWIND_RULES) != 0;
  if (!(*how & (PL__UNWIND_FP | PL__UNWIND_RULES))) return n;
  if (!ruled && (*how & PL__UNWIND_DWARF) && !(*how & PL__UNWIND_CACHED)) return n;
  if (!ruled || rules_mode != PL__UNWIND_RULES_VERIFY) {
    unsigned every = atomic_load_explicit(&st_mismatch, memory_order_relaxed) ||
                             atomic_load_explicit(&st_rules_mismatch, memory_order_relaxed)
                         ? PL__UNWIND_CHECK_EVERY_SUSPECT
                         : PL__UNWIND_CHECK_EVERY;
    if ((atomic_fetch_add_explicit(&check_tick[slot % CACHE_THREADS], 1, memory_order_relaxed) +
         1) %
            every !=
        0)
      return n;
  }
  uintptr_t ref[PL__UNWIND_CHECK_MAX];
  dw_state st = {.pcs = ref, .max = max < PL__UNWIND_CHECK_MAX ? max : PL__UNWIND_CHECK_MAX};
  unsigned nref = dwarf(&st);
  if (!(st.how & PL__UNWIND_FOUND)) return n;
  unsigned lim = st.max; /* both cut at DWARF's bound: compare what both have */
  int same = n >= lim && nref >= lim ? memcmp(ref, pcs, lim * sizeof(*ref)) == 0
                                     : nref == n && memcmp(ref, pcs, n * sizeof(*ref)) == 0;
  if (ruled) {
    int differ,
        blamed = blame_rule(&w, pcs, n < lim ? n : lim, ref, nref < lim ? nref : lim, &differ);
    atomic_fetch_add_explicit(&st_rules_checked, 1, memory_order_relaxed);
    if (blamed) atomic_fetch_add_explicit(&st_rules_mismatch, 1, memory_order_relaxed);
    /* frame pointers are blamed only for a difference in their frames */
    if (*how & PL__UNWIND_FP) verified(!same && !blamed);
  } else {
    verified(!same);
  }
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
  s->rules = atomic_load(&st_rules);
  s->rule_frames = atomic_load(&st_rule_frames);
  s->rule_misses = atomic_load(&st_rule_misses);
  s->dwarf_frames = atomic_load(&st_dwarf_frames);
  s->rules_learned = atomic_load(&st_learned);
  s->rules_inexpressible = atomic_load(&st_inexpressible);
  s->rules_stale = atomic_load(&st_stale);
  s->rules_checked = atomic_load(&st_rules_checked);
  s->rules_mismatched = atomic_load(&st_rules_mismatch);
  s->rules_disagreed = atomic_load(&st_disagreed);
  s->rules_mode = rules ? rules_mode : PL__UNWIND_RULES_OFF;
}

/* Test hooks (no handler running). */
void pl__unwind_test_fp(int on) { fp_enabled = on && ntext > 0; }

void pl__unwind_test_rules(int mode) { rules_mode = mode; }

int pl__unwind_test_rule_of(uintptr_t pc, int first) {
  modc m = {0};
  uintptr_t a = first ? pc : pc - 1;
  if (mod_id(&m, a) != 0) return 0;
  return (int)(rule_get(a, m.id) & R_KIND);
}

int pl__unwind_test_break_rule(uintptr_t pc, int first, int outermost) {
  modc m = {0};
  uintptr_t a = first ? pc : pc - 1;
  if (mod_id(&m, a) != 0) return 0;
  unsigned r = rule_get(a, m.id);
  if ((r & R_KIND) != R_CFA || ((r >> R_OFF_SHIFT) & R_OFF_MAX) == R_OFF_MAX) return 0;
  rule_put(a, m.id, outermost ? R_END : r + (1u << R_OFF_SHIFT));
  return 1;
}

void pl__unwind_test_forget_rules(void) {
  if (rules) memset(rules, 0, rules_bytes);
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

/* PROFLAB_CPU_UNWIND_STATS=1: the counters on stderr at exit (benchmarks
 * of programs that cannot be asked: bench/agent/capture-cost.sh). */
static int stats_at_exit;

static char *put_u64(char *p, uint64_t v) {
  char d[24];
  int k = 0;
  do d[k++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  while (k) *p++ = d[--k];
  return p;
}

__attribute__((destructor)) static void stats_dump(void) {
  if (!stats_at_exit) return;
  pl__unwind_stats s;
  pl__unwind_get_stats(&s);
  static const char *const names[] = {
      "captures",      "dwarf",         "fp",          "cached",        "verified",
      "mismatched",    "rules",         "rule_frames", "rule_misses",   "dwarf_frames",
      "rules_learned", "inexpressible", "stale",       "rules_checked", "rules_mismatched",
      "disagreed"};
  const uint64_t v[] = {s.captures,       s.dwarf,         s.fp,
                        s.cached,         s.verified,      s.mismatched,
                        s.rules,          s.rule_frames,   s.rule_misses,
                        s.dwarf_frames,   s.rules_learned, s.rules_inexpressible,
                        s.rules_stale,    s.rules_checked, s.rules_mismatched,
                        s.rules_disagreed};
  char line[768], *p = line;
  memcpy(p, "proflab-unwind-stats:", 21);
  p += 21;
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    size_t len = strlen(names[i]);
    *p++ = ' ';
    memcpy(p, names[i], len);
    p += len;
    *p++ = '=';
    p = put_u64(p, v[i]);
  }
  *p++ = '\n';
  ssize_t w = write(2, line, (size_t)(p - line));
  (void)w;
}

/* The environment as the program started (a program may clear it before
 * its first profile: nginx keeps only TZ), then as it is at the first
 * profile, which wins where set. */
static int env_fp = 1, env_rules = PL__UNWIND_RULES_ON;

static void read_env(void) {
  const char *mode = getenv("PROFLAB_CPU_UNWIND");
  if (mode) env_fp = strcmp(mode, "dwarf") != 0;
  const char *rm = getenv("PROFLAB_CPU_UNWIND_RULES");
  if (rm)
    env_rules = strcmp(rm, "off") == 0      ? PL__UNWIND_RULES_OFF
                : strcmp(rm, "verify") == 0 ? PL__UNWIND_RULES_VERIFY
                                            : PL__UNWIND_RULES_ON;
  const char *sx = getenv("PROFLAB_CPU_UNWIND_STATS");
  if (sx) stats_at_exit = strcmp(sx, "1") == 0;
}

__attribute__((constructor)) static void read_env_at_start(void) { read_env(); }

static void init_once_fn(void) {
  read_env();
  fp_enabled = env_fp;
  rules_mode = env_rules;
  rules_bytes = (size_t)RULE_SETS * RULE_WAYS * sizeof(rule_entry);
  void *rp = mmap(NULL, rules_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  rules = rp == MAP_FAILED ? NULL : rp; /* no rules: DWARF as before */
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
  static _Atomic uint64_t *const zero[] = {
      &st_rules,         &st_rule_frames, &st_rule_misses,   &st_dwarf_frames,   &st_learned,
      &st_inexpressible, &st_stale,       &st_rules_checked, &st_rules_mismatch, &st_disagreed};
  for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++) atomic_store(zero[i], 0);
  /* A writer a fork left behind (another thread of the parent) or that a
   * handler never finished: the entry is freed. Rules are kept otherwise:
   * each is checked against its module's identity at every use. */
  for (size_t i = 0; rules && i < (size_t)RULE_SETS * RULE_WAYS; i++) {
    uint64_t q = atomic_load_explicit(&rules[i].seq, memory_order_relaxed);
    if (q & 1) {
      atomic_store_explicit(&rules[i].pc, 0, memory_order_relaxed);
      atomic_store_explicit(&rules[i].seq, q + 1, memory_order_release);
    }
  }
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
  if (!fp_enabled && (!rules || rules_mode == PL__UNWIND_RULES_OFF)) return;
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
