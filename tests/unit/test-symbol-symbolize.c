/* The process-wide symbolizer: names and lines of our own code, kept
 * between users, dropped when idle. */
#include "test.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <elfutils/libdwfl.h>

#include "common/arena.h"
#include "symbol/symbolizer.h"

__attribute__((noinline)) static int symbolize_me(int x) { return x * 3 + 1; }

static void lookup(pl_frame *f, pl__arena *a) {
  pl__symbolizer *s;
  assert_int_equal(pl__symbolizer_new(&s), 0);
  assert_int_equal(pl__symbolize(s, (uintptr_t)&symbolize_me, a, f), 0);
  pl__symbolizer_free(s);
}

static void test_names_our_code(void **state) {
  (void)state;
  pl__arena a;
  pl__arena_init(&a);
  pl_frame f;
  lookup(&f, &a);
  assert_string_equal(f.function, "symbolize_me");
  assert_non_null(strstr(f.file, "tests/unit/test-symbol-symbolize.c"));
  assert_true(f.line > 0);
  pl__arena_free(&a);
  assert_int_equal(symbolize_me(1), 4);
}

static void test_kept_then_dropped_when_idle(void **state) {
  (void)state;
  pl__arena a;
  pl__arena_init(&a);
  pl_frame f;
  lookup(&f, &a);
  assert_int_equal(pl__symbolizer_drop_idle(3600ull * 1000000000ull), 0); /* used just now: kept */
  assert_int_equal(pl__symbolizer_drop_idle(0), 1); /* idle long enough: dropped */
  assert_int_equal(pl__symbolizer_drop_idle(0), 0); /* nothing left to drop */
  lookup(&f, &a);                                   /* rebuilt on demand */
  assert_string_equal(f.function, "symbolize_me");
  assert_int_equal(pl__symbolizer_drop_idle(0), 1);
  pl__arena_free(&a);
}

/* Answers from the session's cache equal libdwfl's own, and are the caller's
 * to keep: names only, then lines, then names only again. */
static void test_cached_answers(void **state) {
  (void)state;
  assert_int_equal(pl__symbolizer_drop_idle(0) >= 0, 1); /* a fresh session, empty cache */
  uintptr_t pc = (uintptr_t)&symbolize_me;
  pl__symbolizer *s;
  pl__arena a;
  pl__arena_init(&a);
  pl_frame n1, l1, l2, n2;
  assert_int_equal(pl__symbolizer_new(&s), 0);
  assert_int_equal(pl__symbolize_flags(s, pc, &a, &n1, PL__SYMBOLIZE_NAMES), 0);
  assert_int_equal(pl__symbolize(s, pc, &a, &l1), 0); /* misses: needs lines */
  assert_int_equal(pl__symbolize(s, pc, &a, &l2), 0); /* from the cache */
  assert_int_equal(pl__symbolize_flags(s, pc, &a, &n2, PL__SYMBOLIZE_NAMES), 0);
  pl__symbolizer_free(s);
  assert_string_equal(n1.function, "symbolize_me");
  assert_string_equal(n1.file, "");
  assert_int_equal(n1.line, 0);
  assert_string_equal(l2.function, l1.function);
  assert_string_equal(l2.file, l1.file);
  assert_string_equal(l2.module, l1.module);
  assert_int_equal(l2.line, l1.line);
  assert_int_equal(l2.function_line, l1.function_line);
  assert_true(l2.function != l1.function); /* a copy in the caller's arena */
  assert_string_equal(n2.function, "symbolize_me");
  assert_string_equal(n2.file, ""); /* names only, as asked */
  assert_int_equal(n2.line, 0);
  assert_int_equal(n2.function_line, 0);
  /* the cache goes with the session: answers stay valid after it */
  assert_int_equal(pl__symbolizer_drop_idle(0), 1);
  assert_string_equal(l2.function, "symbolize_me");
  pl__arena_free(&a);
}

/* Warming looks up call sites ahead (a return address less one), in the
 * process's session, and gives the symbolizer back; names-only answers it
 * kept do not stand in for lines. */
static void test_warm(void **state) {
  (void)state;
  assert_int_equal(pl__symbolizer_drop_idle(0) >= 0, 1); /* no session */
  uintptr_t ret = (uintptr_t)&symbolize_me + 1;
  assert_int_equal(pl__symbolizer_warm(&ret, 1, PL__SYMBOLIZE_NAMES), 0);
  assert_int_equal(pl__symbolizer_warm(NULL, 0, 0), 0);
  assert_int_equal(pl__symbolizer_drop_idle(3600ull * 1000000000ull), 0); /* built, kept */
  pl__arena a;
  pl__arena_init(&a);
  pl_frame f;
  lookup(&f, &a); /* not waiting: it was given back */
  assert_string_equal(f.function, "symbolize_me");
  assert_non_null(strstr(f.file, "tests/unit/test-symbol-symbolize.c"));
  assert_true(f.line > 0);
  pl__arena_free(&a);
  assert_int_equal(pl__call_site(ret), (uintptr_t)&symbolize_me);
  assert_int_equal(pl__symbolizer_drop_idle(0), 1);
}

/* The symbolizer's own symbol index names every address as libdwfl's
 * dwfl_module_addrinfo() does (in a session of the test's own): the start,
 * middle and last byte of every sized symbol of every module of this
 * process (up to ~1200 symbols a module), and the byte after it (a gap,
 * or the next symbol). */
typedef struct probe_state {
  pl__symbolizer *s;
  pl__arena *a;
  size_t probes, mismatches;
} probe_state;

static void probe(probe_state *ps, Dwfl_Module *mod, uintptr_t pc) {
  GElf_Off off = 0;
  GElf_Sym sym;
  const char *want = dwfl_module_addrinfo(mod, pc, &off, &sym, NULL, NULL, NULL);
  char cut[4096] = "";
  if (want && *want) {
    /* as the symbolizer shows names: C++ ones demangled by the process's
     * own demangler when it has one (an ASan build loads libstdc++),
     * versions cut */
    typedef char *(*demangle_fn)(const char *, char *, size_t *, int *);
    demangle_fn dm = (demangle_fn)dlsym(RTLD_DEFAULT, "__cxa_demangle");
    int status = -1;
    char *d = want[0] == '_' && want[1] == 'Z' && dm ? dm(want, NULL, NULL, &status) : NULL;
    if (d && status == 0) {
      snprintf(cut, sizeof(cut), "%s", d);
    } else {
      snprintf(cut, sizeof(cut), "%s", want);
      char *at = strchr(cut, '@');
      if (at && at != cut) *at = '\0';
    }
    free(d);
  }
  pl_frame f;
  assert_int_equal(pl__symbolize_flags(ps->s, pc, ps->a, &f, PL__SYMBOLIZE_NAMES), 0);
  ps->probes++;
  int same = cut[0] ? !strcmp(f.function, cut) : strchr(f.function, '+') != NULL;
  if (!same && ps->mismatches++ < 10)
    fprintf(stderr, "0x%lx: libdwfl %s, symbolizer %s\n", (unsigned long)pc,
            cut[0] ? cut : "(none)", f.function);
}

static int probe_module(Dwfl_Module *mod, void **ud, const char *name, Dwarf_Addr start,
                        void *arg) {
  (void)ud, (void)name, (void)start;
  probe_state *ps = arg;
  Dwarf_Addr end = 0;
  dwfl_module_info(mod, NULL, NULL, &end, NULL, NULL, NULL, NULL);
  int n = dwfl_module_getsymtab(mod);
  int stride = n > 1200 ? n / 1200 : 1; /* libdwfl's own lookup scans the table: a sample */
  for (int i = 1; i < n; i += stride) {
    GElf_Sym sym;
    GElf_Addr addr = 0;
    const char *sname = dwfl_module_getsym_info(mod, i, &sym, &addr, NULL, NULL, NULL);
    if (!sname || GELF_ST_TYPE(sym.st_info) != STT_FUNC || !sym.st_size ||
        sym.st_shndx == SHN_UNDEF)
      continue;
    probe(ps, mod, addr);
    probe(ps, mod, addr + sym.st_size / 2);
    probe(ps, mod, addr + sym.st_size - 1);
    if (addr + sym.st_size < end) probe(ps, mod, addr + sym.st_size);
  }
  return DWARF_CB_OK;
}

static void test_index_names_as_libdwfl(void **state) {
  (void)state;
  static char *debuginfo_path = NULL;
  static const Dwfl_Callbacks cb = {
      .find_elf = dwfl_linux_proc_find_elf,
      .find_debuginfo = dwfl_standard_find_debuginfo,
      .debuginfo_path = &debuginfo_path,
  };
  /* No session of ours while libdwfl reads /proc/self/maps: the ELF files
   * it maps to read symbols would be reported as modules of their own. */
  (void)pl__symbolizer_drop_idle(0);
  Dwfl *d = dwfl_begin(&cb);
  assert_non_null(d);
  dwfl_report_begin(d);
  assert_int_equal(dwfl_linux_proc_report(d, getpid()), 0);
  assert_int_equal(dwfl_report_end(d, NULL, NULL), 0);
  pl__arena a;
  pl__arena_init(&a);
  probe_state ps = {.a = &a};
  assert_int_equal(pl__symbolizer_new(&ps.s), 0);
  assert_int_equal(dwfl_getmodules(d, probe_module, &ps, 0), 0);
  pl__symbolizer_free(ps.s);
  dwfl_end(d);
  pl__arena_free(&a);
  fprintf(stderr, "%zu addresses, %zu named differently\n", ps.probes, ps.mismatches);
  assert_true(ps.probes > 1000); /* libc's functions at least */
  assert_int_equal(ps.mismatches, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names_our_code),
      cmocka_unit_test(test_kept_then_dropped_when_idle),
      cmocka_unit_test(test_cached_answers),
      cmocka_unit_test(test_warm),
      cmocka_unit_test(test_index_names_as_libdwfl),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
