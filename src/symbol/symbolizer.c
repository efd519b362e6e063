/* The process's libdwfl session: addresses to function, file and line (see symbolizer.h). */
#include "symbol/symbolizer.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <elfutils/libdwfl.h>

#include "common/radix_sort.h"
#include "common/util.h"
#include "symbol/debuginfo.h"

/* A symbolized address, kept with the session: a heap snapshot asks again
 * for every pc of every stack recorded since the tracker started, snapshot
 * after snapshot, and a frame with lines costs line-table searches and
 * string copies. */
typedef struct cached {
  uintptr_t pc; /* 0: empty slot */
  int lines;    /* the frame has file and lines (else names only) */
  pl_frame f;   /* strings in the cache's arena */
} cached;

/* libstdc++'s abi::__cxa_demangle: malloc'ed result, status 0 on success. */
typedef char *(*cxa_demangle_fn)(const char *mangled, char *buf, size_t *len, int *status);

struct pl__symbolizer {
  Dwfl *dwfl;
  cxa_demangle_fn demangle;      /* looked up when dwfl is made; NULL in a C program */
  unsigned long long adds, subs; /* the loader's counters when dwfl was made */
  cached *cache;                 /* open addressing by pc; NULL when out of memory */
  size_t cache_cap, cache_n;
  pl__arena cache_arena;
};

#define CACHE_MAX (1u << 20) /* entries at most; then it stops growing */

/* A module's symbols in address order, built the first time an address in
 * it is looked up and kept in the module's user data: libdwfl's
 * dwfl_module_addrinfo() scans the whole symbol table for every address
 * (libc's has thousands), which made the first snapshot of a process cost
 * ~120 ms of symbol scanning for 1000 pcs. */
typedef struct sym_entry {
  uintptr_t addr;
  uintptr_t end_max; /* the highest end (addr + size) of this and every earlier entry */
  size_t size;
  const char *name; /* libdwfl's string, alive as long as the session */
  uint32_t order;   /* its index in the module's symbol table */
  int bind;         /* 3 global, 2 weak, 1 local (libdwfl's preference) */
} sym_entry;

typedef struct sym_index {
  size_t n;
  sym_entry e[];
} sym_index;

/* The user data of a module whose index could not be built: libdwfl's
 * own lookup answers for it. */
static sym_index no_index;

static int free_index(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr start,
                      void *arg) {
  (void)mod, (void)name, (void)start, (void)arg;
  if (*userdata && *userdata != &no_index) free(*userdata);
  *userdata = NULL;
  return DWARF_CB_OK;
}

/* Drop the session and what it cached (a module came or went, or idle). */
static void drop(pl__symbolizer *s) {
  if (s->dwfl) dwfl_getmodules(s->dwfl, free_index, NULL, 0);
  if (s->dwfl) dwfl_end(s->dwfl);
  s->dwfl = NULL;
  free(s->cache);
  s->cache = NULL;
  s->cache_cap = s->cache_n = 0;
  pl__arena_free(&s->cache_arena);
}

static char *debuginfo_path = NULL;
static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = pl__find_debuginfo,
    .debuginfo_path = &debuginfo_path,
};

/* The process-wide symbolizer and its lock (libdwfl is not thread-safe). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pl__symbolizer shared;
static uint64_t last_used_ns; /* CLOCK_MONOTONIC when the last user left */

static int read_counters(struct dl_phdr_info *info, size_t size, void *arg) {
  unsigned long long *c = arg;
  if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
    c[0] = info->dlpi_adds;
    c[1] = info->dlpi_subs;
  }
  return 1; /* the counters are the same in every entry: one is enough */
}

static int build(pl__symbolizer *s) {
  pl__arena_init(&s->cache_arena);
  /* C++ names are demangled by the process's own libstdc++, which every C++
   * program has loaded; a C program is not made to load it (its names are
   * not mangled), and libstdc++ dlopened later is found at the next
   * rebuild (the loader's counters changed). */
  s->demangle = (cxa_demangle_fn)dlsym(RTLD_DEFAULT, "__cxa_demangle");
  s->dwfl = dwfl_begin(&callbacks);
  if (!s->dwfl) return -EIO;
  dwfl_report_begin(s->dwfl);
  if (dwfl_linux_proc_report(s->dwfl, getpid()) != 0 || dwfl_report_end(s->dwfl, NULL, NULL) != 0) {
    dwfl_end(s->dwfl);
    s->dwfl = NULL;
    return -EIO;
  }
  return 0;
}

int pl__symbolizer_new(pl__symbolizer **out) {
  unsigned long long c[2] = {~0ull, ~0ull}; /* unknown: rebuild every time */
  dl_iterate_phdr(read_counters, c);
  pthread_mutex_lock(&lock);
  if (shared.dwfl && (c[0] != shared.adds || c[1] != shared.subs || c[0] == ~0ull))
    drop(&shared); /* a library was loaded or unloaded since */
  if (!shared.dwfl) {
    int rc = build(&shared);
    if (rc) {
      pthread_mutex_unlock(&lock);
      return rc;
    }
  }
  *out = &shared; /* held until pl__symbolizer_free() */
  return 0;
}

void pl__symbolizer_free(pl__symbolizer *s) {
  if (!s) return;
  /* The counters as the user leaves: a library loaded by the lookups
   * themselves (dwfl_standard_find_debuginfo loaded libdw's debuginfod
   * client and libcurl; debuginfo.c does not) must not look like a change
   * of the program's modules next time. */
  unsigned long long c[2] = {~0ull, ~0ull};
  dl_iterate_phdr(read_counters, c);
  s->adds = c[0];
  s->subs = c[1];
  last_used_ns = pl__now_ns();
  pthread_mutex_unlock(&lock);
}

void pl__symbolizer_forget_after_fork(void) {
  if (pthread_mutex_trylock(&lock) == 0) {
    drop(&shared);
    pthread_mutex_unlock(&lock);
    return;
  }
  /* held by a thread that is not in this process: the session may be
   * half-changed; leave its memory */
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  memcpy(&lock, &fresh, sizeof(fresh));
  memset(&shared, 0, sizeof(shared));
}

int pl__symbolizer_drop_idle(uint64_t idle_ns) {
  if (pthread_mutex_trylock(&lock) != 0) return 0; /* in use right now */
  int dropped = 0;
  if (shared.dwfl && pl__now_ns() - last_used_ns >= idle_ns) {
    drop(&shared);
    dropped = 1;
  }
  pthread_mutex_unlock(&lock);
  return dropped;
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* dir + "/" + rel with "." and ".." folded lexically (no file access):
 * DWARF records paths relative to the compile directory, like
 * "../src/lab/harm.c" for a build in build/. */
static void join_path(const char *dir, const char *rel, char *out, size_t n) {
  char tmp[1024];
  snprintf(tmp, sizeof(tmp), "%s/%s", dir, rel);
  const char *seg[128];
  size_t len[128], k = 0;
  for (const char *p = tmp; *p;) {
    while (*p == '/') p++;
    if (!*p) break;
    const char *e = strchr(p, '/');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l == 1 && p[0] == '.') {
    } else if (l == 2 && p[0] == '.' && p[1] == '.') {
      if (k) k--;
    } else if (k < 128) {
      seg[k] = p;
      len[k++] = l;
    }
    p += l;
  }
  size_t off = 0;
  out[0] = '\0';
  for (size_t i = 0; i < k && off + 1 < n; i++) {
    int w = snprintf(out + off, n - off, "/%.*s", (int)len[i], seg[i]);
    if (w < 0) break;
    off += (size_t)w;
  }
}

static size_t slot_of(const pl__symbolizer *s, uintptr_t pc) {
  size_t h = pl__mix64(pc) & (s->cache_cap - 1);
  while (s->cache[h].pc && s->cache[h].pc != pc) h = (h + 1) & (s->cache_cap - 1);
  return h;
}

/* The cached frame for pc with at least what flags ask, or NULL. */
static const pl_frame *cache_find(const pl__symbolizer *s, uintptr_t pc, unsigned flags) {
  if (!s->cache || !pc) return NULL;
  const cached *e = &s->cache[slot_of(s, pc)];
  if (!e->pc || (!e->lines && !(flags & PL__SYMBOLIZE_NAMES))) return NULL;
  return &e->f;
}

/* Remember f (best effort: nothing happens when memory is short). */
static void cache_put(pl__symbolizer *s, uintptr_t pc, const pl_frame *f, unsigned flags) {
  if (!pc) return;
  if (s->cache_n * 2 >= s->cache_cap) {
    if (s->cache_cap >= CACHE_MAX) return;
    size_t cap = s->cache_cap ? s->cache_cap * 2 : 1024;
    cached *n = calloc(cap, sizeof(*n));
    if (!n) return;
    cached *old = s->cache;
    size_t old_cap = s->cache_cap;
    s->cache = n;
    s->cache_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
      if (old[i].pc) s->cache[slot_of(s, old[i].pc)] = old[i];
    free(old);
  }
  cached *e = &s->cache[slot_of(s, pc)];
  pl_frame c = *f;
  c.function = pl__arena_strdup(&s->cache_arena, f->function);
  c.file = pl__arena_strdup(&s->cache_arena, f->file);
  c.module = pl__arena_strdup(&s->cache_arena, f->module);
  if (!c.function || !c.file || !c.module) return;
  if (!e->pc) s->cache_n++;
  e->pc = pc;
  e->lines = !(flags & PL__SYMBOLIZE_NAMES);
  e->f = c;
}

/* f from a cached frame, its strings copied into arena. */
static int from_cache(const pl_frame *c, pl__arena *arena, pl_frame *f) {
  *f = *c;
  f->function = pl__arena_strdup(arena, c->function);
  f->file = c->file[0] ? pl__arena_strdup(arena, c->file) : "";
  f->module = pl__arena_strdup(arena, c->module);
  if (!f->function || !f->file || !f->module) return -ENOMEM;
  return 0;
}

static int lookup(pl__symbolizer *s, uintptr_t pc, pl__arena *arena, pl_frame *f, unsigned flags);

int pl__symbolize(pl__symbolizer *s, uintptr_t pc, pl__arena *arena, pl_frame *f) {
  return pl__symbolize_flags(s, pc, arena, f, 0);
}

int pl__symbolize_flags(pl__symbolizer *s, uintptr_t pc, pl__arena *arena, pl_frame *f,
                        unsigned flags) {
  const pl_frame *c = cache_find(s, pc, flags);
  if (c) {
    int rc = from_cache(c, arena, f);
    if (!rc && (flags & PL__SYMBOLIZE_NAMES)) { /* as asked: names only */
      f->file = "";
      f->line = f->function_line = 0;
    }
    return rc;
  }
  int rc = lookup(s, pc, arena, f, flags);
  if (!rc) cache_put(s, pc, f, flags);
  return rc;
}

int pl__symbolizer_warm(const uintptr_t *return_addrs, size_t n, unsigned flags) {
  pl__symbolizer *s;
  int rc = pl__symbolizer_new(&s);
  if (rc) return rc;
  pl__arena scratch;
  pl__arena_init(&scratch);
  for (size_t i = 0; i < n && !rc; i++) {
    uintptr_t pc = pl__call_site(return_addrs[i]);
    pl_frame f;
    if (!cache_find(s, pc, flags)) rc = pl__symbolize_flags(s, pc, &scratch, &f, flags);
  }
  pl__arena_free(&scratch);
  pl__symbolizer_free(s);
  return rc;
}

/* The name to show for a symbol: C++ names demangled ("_ZN3foo3barEv" ->
 * "foo::bar()") when the demangler is there, a symbol version cut
 * ("clock_nanosleep@GLIBC_2.2.5" -> "clock_nanosleep": libc's .symtab in
 * /usr/lib/debug carries them). A copy in arena, or NULL (no memory). */
static const char *display_name(const pl__symbolizer *s, const char *name, pl__arena *arena) {
  if (name[0] == '_' && name[1] == 'Z' && s->demangle) {
    int status = -1;
    char *d = s->demangle(name, NULL, NULL, &status);
    if (d && status == 0) {
      char *c = pl__arena_strdup(arena, d);
      free(d);
      return c;
    }
    free(d);
  }
  const char *at = strchr(name, '@');
  if (at && at != name) {
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%.*s", (int)(at - name), name);
    return pl__arena_strdup(arena, tmp);
  }
  return pl__arena_strdup(arena, name);
}

static int binding_rank(const GElf_Sym *sym) {
  switch (GELF_ST_BIND(sym->st_info)) {
    case STB_GLOBAL:
      return 3;
    case STB_WEAK:
      return 2;
    case STB_LOCAL:
      return 1;
    default:
      return 0;
  }
}

static int by_addr(const void *a, const void *b) {
  const sym_entry *x = a, *y = b;
  if (x->addr != y->addr) return x->addr < y->addr ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

/* ix's entries by address, in table order at one address (they were
 * added in table order and the radix sort is stable): libc's 7,600 took
 * qsort ~0.9 ms of a first heap snapshot. */
static void sort_index(sym_index *ix, uintptr_t start) {
  _Static_assert(sizeof(ix->e[0].addr) == sizeof(uint64_t), "the sort key is 64-bit");
  pl__radix_sort_records(ix->e, ix->n, sizeof(sym_entry), offsetof(sym_entry, addr), start,
                         by_addr);
}

/* The symbols of mod that can name an address inside [start, end): what
 * libdwfl's lookup considers (named, defined, not a section, file or TLS
 * symbol), sorted by address. NULL when the table cannot be read or memory
 * is short. */
static sym_index *build_index(Dwfl_Module *mod, Dwarf_Addr start, Dwarf_Addr end) {
  int n = dwfl_module_getsymtab(mod);
  if (n <= 0 || (size_t)n > (SIZE_MAX - sizeof(sym_index)) / sizeof(sym_entry)) return NULL;
  sym_index *ix = malloc(sizeof(*ix) + (size_t)n * sizeof(sym_entry));
  if (!ix) return NULL;
  ix->n = 0;
  for (int i = 1; i < n; i++) {
    GElf_Sym sym;
    GElf_Addr addr = 0;
    const char *name = dwfl_module_getsym_info(mod, i, &sym, &addr, NULL, NULL, NULL);
    int type = GELF_ST_TYPE(sym.st_info);
    if (!name || !*name || sym.st_shndx == SHN_UNDEF || type == STT_SECTION || type == STT_FILE ||
        type == STT_TLS || addr < start || addr >= end)
      continue;
    sym_entry *e = &ix->e[ix->n++];
    e->addr = (uintptr_t)addr;
    e->size = (size_t)sym.st_size;
    e->name = name;
    e->order = (uint32_t)i;
    e->bind = binding_rank(&sym);
  }
  sort_index(ix, (uintptr_t)start);
  uintptr_t end_max = 0;
  for (size_t i = 0; i < ix->n; i++) {
    uintptr_t e = ix->e[i].addr + ix->e[i].size;
    if (e > end_max) end_max = e;
    ix->e[i].end_max = end_max;
  }
  return ix;
}

/* Whether a is a better name for an address than b (both hold it), as
 * libdwfl ranks them: a global or weak symbol before a local one (it
 * searches the locals only when no other symbol matched), then the
 * nearest start, then global before weak, then the earlier in the table. */
static int better(const sym_entry *a, const sym_entry *b) {
  int al = a->bind <= 1, bl = b->bind <= 1;
  if (al != bl) return bl;
  if (a->addr != b->addr) return a->addr > b->addr;
  if (a->bind != b->bind) return a->bind > b->bind;
  return a->order < b->order;
}

/* The symbol naming pc in ix, or NULL: the best sized symbol holding pc;
 * else the nearest sizeless one (an assembly label) below pc that no
 * sized symbol overlaps. */
static const sym_entry *index_find(const sym_index *ix, uintptr_t pc) {
  size_t lo = 0, hi = ix->n; /* k = entries with addr <= pc */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (ix->e[mid].addr <= pc)
      lo = mid + 1;
    else
      hi = mid;
  }
  size_t k = lo;
  if (k == 0) return NULL;
  const sym_entry *best = NULL;
  for (size_t j = k; j-- > 0 && ix->e[j].end_max > pc;) {
    const sym_entry *e = &ix->e[j];
    if (e->size && pc < e->addr + e->size && (!best || better(e, best))) best = e;
  }
  if (best) return best;
  const sym_entry *label = NULL;
  for (size_t j = k; j-- > 0 && !ix->e[j].size;) {
    const sym_entry *e = &ix->e[j];
    if (label && e->addr != label->addr) break;
    if (!label || better(e, label)) label = e;
  }
  return label && label->addr >= ix->e[k - 1].end_max ? label : NULL;
}

/* The symbol name for pc in mod and pc's offset from its start, or NULL. */
static const char *symbol_of(Dwfl_Module *mod, void **userdata, Dwarf_Addr start, Dwarf_Addr end,
                             uintptr_t pc, GElf_Off *offset) {
  if (!*userdata) {
    sym_index *ix = build_index(mod, start, end);
    *userdata = ix ? (void *)ix : (void *)&no_index;
  }
  if (*userdata == &no_index) {
    GElf_Sym sym;
    return dwfl_module_addrinfo(mod, pc, offset, &sym, NULL, NULL, NULL);
  }
  const sym_entry *e = index_find(*userdata, pc);
  if (!e) return NULL;
  *offset = pc - e->addr;
  return e->name;
}

/* libdwfl's answer for pc. */
static int lookup(pl__symbolizer *s, uintptr_t pc, pl__arena *arena, pl_frame *f, unsigned flags) {
  memset(f, 0, sizeof(*f));
  f->address = pc;
  f->file = "";
  f->module = "";
  Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, pc);
  char tmp[512];
  if (!mod) {
    snprintf(tmp, sizeof(tmp), "0x%lx", (unsigned long)pc);
    f->function = pl__arena_strdup(arena, tmp);
    return f->function ? 0 : -ENOMEM;
  }
  Dwarf_Addr mod_start = 0, mod_end = 0;
  const char *mainfile = NULL;
  void **userdata = NULL;
  const char *modname =
      dwfl_module_info(mod, &userdata, &mod_start, &mod_end, NULL, NULL, &mainfile, NULL);
  const char *modpath = mainfile ? mainfile : modname ? modname : "";
  f->module = pl__arena_strdup(arena, modpath);
  if (!f->module) return -ENOMEM;

  GElf_Off offset = 0;
  const char *name = symbol_of(mod, userdata, mod_start, mod_end, pc, &offset);
  if (name && *name) {
    f->function = display_name(s, name, arena);
  } else {
    snprintf(tmp, sizeof(tmp), "%s+0x%lx", base_name(modpath), (unsigned long)(pc - mod_start));
    f->function = pl__arena_strdup(arena, tmp);
  }
  if (!f->function) return -ENOMEM;
  if (flags & PL__SYMBOLIZE_NAMES) return 0;

  /* The line table's nearest row at or below pc: only when it lies inside
   * pc's function (a function without debug info, such as crt1's _start,
   * would otherwise get the last line of whatever was compiled before it). */
  Dwarf_Addr sym_start = name && *name ? pc - offset : 0;
  Dwfl_Line *line = dwfl_module_getsrc(mod, pc);
  if (line) {
    int lineno = 0;
    Dwarf_Addr line_addr = 0;
    const char *file = dwfl_lineinfo(line, &line_addr, &lineno, NULL, NULL, NULL);
    if (file && line_addr >= sym_start) {
      const char *dir = file[0] != '/' ? dwfl_line_comp_dir(line) : NULL;
      char abs[1024];
      if (dir && dir[0] == '/') {
        join_path(dir, file, abs, sizeof(abs));
        file = abs;
      }
      f->file = pl__arena_strdup(arena, file);
      if (!f->file) return -ENOMEM;
      f->line = lineno > 0 ? (uint32_t)lineno : 0;
    }
  }
  if (name && *name) {
    Dwfl_Line *first = dwfl_module_getsrc(mod, sym_start);
    int lineno = 0;
    Dwarf_Addr line_addr = 0;
    if (first && dwfl_lineinfo(first, &line_addr, &lineno, NULL, NULL, NULL) && lineno > 0 &&
        line_addr >= sym_start)
      f->function_line = (uint32_t)lineno;
  }
  return 0;
}
