/* The process's libdwfl session: addresses to function, file and line (see symbolizer.h). */
#include "symbol/symbolizer.h"

#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <elfutils/libdwfl.h>

#include "common/util.h"

struct pl__symbolizer {
  Dwfl *dwfl;
  unsigned long long adds, subs; /* the loader's counters when dwfl was made */
};

static char *debuginfo_path = NULL;
static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
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
  if (shared.dwfl && (c[0] != shared.adds || c[1] != shared.subs || c[0] == ~0ull)) {
    dwfl_end(shared.dwfl); /* a library was loaded or unloaded since */
    shared.dwfl = NULL;
  }
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
  /* The counters as the user leaves: libdw loads its debuginfod client
   * (and its dependencies) during the first lookups, which must not look
   * like a change of the program's modules next time. */
  unsigned long long c[2] = {~0ull, ~0ull};
  dl_iterate_phdr(read_counters, c);
  s->adds = c[0];
  s->subs = c[1];
  last_used_ns = pl__now_ns();
  pthread_mutex_unlock(&lock);
}

int pl__symbolizer_drop_idle(uint64_t idle_ns) {
  if (pthread_mutex_trylock(&lock) != 0) return 0; /* in use right now */
  int dropped = 0;
  if (shared.dwfl && pl__now_ns() - last_used_ns >= idle_ns) {
    dwfl_end(shared.dwfl);
    shared.dwfl = NULL;
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

int pl__symbolize(pl__symbolizer *s, uintptr_t pc, pl__arena *arena, pl_frame *f) {
  return pl__symbolize_flags(s, pc, arena, f, 0);
}

int pl__symbolize_flags(pl__symbolizer *s, uintptr_t pc, pl__arena *arena, pl_frame *f,
                        unsigned flags) {
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
  Dwarf_Addr mod_start = 0;
  const char *mainfile = NULL;
  const char *modname = dwfl_module_info(mod, NULL, &mod_start, NULL, NULL, NULL, &mainfile, NULL);
  const char *modpath = mainfile ? mainfile : modname ? modname : "";
  f->module = pl__arena_strdup(arena, modpath);
  if (!f->module) return -ENOMEM;

  GElf_Off offset = 0;
  GElf_Sym sym;
  const char *name = dwfl_module_addrinfo(mod, pc, &offset, &sym, NULL, NULL, NULL);
  if (name && *name) {
    f->function = pl__arena_strdup(arena, name);
  } else {
    snprintf(tmp, sizeof(tmp), "%s+0x%lx", base_name(modpath), (unsigned long)(pc - mod_start));
    f->function = pl__arena_strdup(arena, tmp);
  }
  if (!f->function) return -ENOMEM;
  if (flags & PL__SYMBOLIZE_NAMES) return 0;

  Dwfl_Line *line = dwfl_module_getsrc(mod, pc);
  if (line) {
    int lineno = 0;
    const char *file = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
    if (file) {
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
    Dwfl_Line *first = dwfl_module_getsrc(mod, pc - offset);
    int lineno = 0;
    if (first && dwfl_lineinfo(first, NULL, &lineno, NULL, NULL, NULL) && lineno > 0)
      f->function_line = (uint32_t)lineno;
  }
  return 0;
}
