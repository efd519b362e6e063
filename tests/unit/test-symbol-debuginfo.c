/* Separate debug files as the symbolizer finds them: by .gnu_debuglink next
 * to a module or in its .debug/ directory, checked by build id or CRC,
 * and never through libdw's debuginfod client. */
#include "test.h"

#include <elf.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <elfutils/libdwfl.h>

#include "common/arena.h"
#include "symbol/debuginfo.h"
#include "symbol/symbolizer.h"

static char dir[64];

static void sh(const char *fmt, ...) {
  char cmd[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
  va_end(ap);
  assert_true(n > 0 && (size_t)n < sizeof(cmd));
  if (system(cmd) != 0) fail_msg("failed: %s", cmd);
}

/* dir/prog: a copy of this test without its DWARF, its .gnu_debuglink
 * naming prog.debug, which holds the DWARF (objcopy, as users split them). */
static void make_split(int keep_build_id) {
  snprintf(dir, sizeof(dir), "/tmp/proflab-debuginfo.XXXXXX");
  assert_non_null(mkdtemp(dir));
  sh("cp /proc/%d/exe %s/prog", (int)getpid(), dir);
  if (!keep_build_id) sh("objcopy --remove-section=.note.gnu.build-id %s/prog", dir);
  sh("cd %s && objcopy --only-keep-debug prog prog.debug && "
     "objcopy --strip-debug --add-gnu-debuglink=prog.debug prog",
     dir);
}

static void cleanup(void) { sh("rm -rf %s", dir); }

/* The debug file libdwfl uses for dir/prog with our finder, or "" when it
 * finds none (then there is no DWARF: prog has none of its own). */
static void debug_file(char *out, size_t n) {
  static char *debuginfo_path = NULL;
  static const Dwfl_Callbacks cb = {
      .find_elf = dwfl_build_id_find_elf,
      .find_debuginfo = pl__find_debuginfo,
      .section_address = dwfl_offline_section_address,
      .debuginfo_path = &debuginfo_path,
  };
  char path[128];
  snprintf(path, sizeof(path), "%s/prog", dir);
  Dwfl *d = dwfl_begin(&cb);
  assert_non_null(d);
  dwfl_report_begin(d);
  Dwfl_Module *mod = dwfl_report_offline(d, "prog", path, -1);
  assert_non_null(mod);
  assert_int_equal(dwfl_report_end(d, NULL, NULL), 0);
  Dwarf_Addr bias;
  Dwarf *dw = dwfl_module_getdwarf(mod, &bias);
  const char *debugfile = NULL;
  dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, &debugfile);
  snprintf(out, n, "%s", dw && debugfile ? debugfile : "");
  dwfl_end(d);
}

/* The debug file found is dir/REL ("": none). */
static void expect_debug_file(const char *rel) {
  char got[256], want[256] = "";
  debug_file(got, sizeof(got));
  if (rel[0]) snprintf(want, sizeof(want), "%s/%s", dir, rel);
  assert_string_equal(got, want);
}

static void test_debuglink_next_to_the_file(void **state) {
  (void)state;
  make_split(1);
  expect_debug_file("prog.debug");
  /* in the module's .debug/ directory */
  sh("mkdir %s/.debug && mv %s/prog.debug %s/.debug/", dir, dir, dir);
  expect_debug_file(".debug/prog.debug");
  cleanup();
}

static void test_other_build_id_refused(void **state) {
  (void)state;
  make_split(1);
  /* the same name, not the same build: no build id at all */
  sh("objcopy --remove-section=.note.gnu.build-id %s/prog.debug", dir);
  expect_debug_file("");
  cleanup();
}

static void test_crc_without_build_id(void **state) {
  (void)state;
  make_split(0);
  expect_debug_file("prog.debug");
  sh("printf x >> %s/prog.debug", dir); /* a different file now: its CRC differs */
  expect_debug_file("");
  cleanup();
}

/* The first executable address of each loaded object. */
typedef struct {
  uintptr_t pcs[256];
  size_t n;
} text_starts;

static int add_text(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  text_starts *t = arg;
  for (int i = 0; i < info->dlpi_phnum && t->n < 256; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
      t->pcs[t->n++] = info->dlpi_addr + ph->p_vaddr + ph->p_memsz / 2;
      break;
    }
  }
  return 0;
}

static int find_debuginfod(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  if (strstr(info->dlpi_name, "libdebuginfod")) *(int *)arg = 1;
  return 0;
}

/* Lines asked in every loaded object, most without debug files here:
 * dwfl_standard_find_debuginfo would have loaded libdebuginfod (and
 * libcurl) for those. */
static void test_never_loads_debuginfod(void **state) {
  (void)state;
  text_starts t = {.n = 0};
  dl_iterate_phdr(add_text, &t);
  assert_true(t.n >= 3);
  pl__symbolizer *s;
  pl__arena a;
  pl__arena_init(&a);
  assert_int_equal(pl__symbolizer_new(&s), 0);
  pl_frame f;
  for (size_t i = 0; i < t.n; i++) assert_int_equal(pl__symbolize_flags(s, t.pcs[i], &a, &f, 0), 0);
  /* this test's own code has its DWARF */
  assert_int_equal(pl__symbolize_flags(s, (uintptr_t)&test_crc_without_build_id, &a, &f, 0), 0);
  assert_true(f.line > 0);
  pl__symbolizer_free(s);
  pl__arena_free(&a);
  int loaded = 0;
  dl_iterate_phdr(find_debuginfod, &loaded);
  assert_int_equal(loaded, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_never_loads_debuginfod),
      cmocka_unit_test(test_debuglink_next_to_the_file),
      cmocka_unit_test(test_other_build_id_refused),
      cmocka_unit_test(test_crc_without_build_id),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
