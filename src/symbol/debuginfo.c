/* Separate debug information found on this machine only (see debuginfo.h). */
#include "symbol/debuginfo.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <elfutils/libdwelf.h>
#include <libelf.h>
#include <zlib.h>

/* The CRC-32 of the whole file (what a .gnu_debuglink records): 0 and *crc, or -1. */
static int file_crc32(int fd, uint32_t *crc) {
  unsigned char buf[65536];
  uLong c = crc32(0L, Z_NULL, 0);
  off_t off = 0;
  for (;;) {
    ssize_t n = pread(fd, buf, sizeof(buf), off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    c = crc32(c, buf, (uInt)n);
    off += n;
  }
  *crc = (uint32_t)c;
  return 0;
}

/* The candidate is the module's debug file: the same build id when the
 * module has one, else the link's CRC when it gives one. */
static int matches(Dwfl_Module *mod, int fd, GElf_Word crc) {
  const unsigned char *want;
  GElf_Addr vaddr;
  int want_len = dwfl_module_build_id(mod, &want, &vaddr);
  if (want_len > 0) {
    Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (!e) return 0;
    const void *got;
    ssize_t got_len = dwelf_elf_gnu_build_id(e, &got);
    int same = got_len == want_len && memcmp(got, want, (size_t)want_len) == 0;
    elf_end(e);
    return same;
  }
  if (crc == 0) return 1;
  uint32_t got;
  return file_crc32(fd, &got) == 0 && got == crc;
}

/* Open dir/name if it is the module's debug file and not the module itself. */
static int try_candidate(Dwfl_Module *mod, const struct stat *main_st, const char *dir,
                         const char *name, GElf_Word crc, char **out_name) {
  char path[PATH_MAX];
  int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= sizeof(path)) return -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      (st.st_dev == main_st->st_dev && st.st_ino == main_st->st_ino) || !matches(mod, fd, crc)) {
    close(fd);
    return -1;
  }
  char *copy = strdup(path);
  if (!copy) {
    close(fd);
    return -1;
  }
  *out_name = copy;
  return fd;
}

/* The debuglink search for the module's file at PATH (absolute). */
static int search_dirs(Dwfl_Module *mod, const char *path, const char *link, GElf_Word crc,
                       char **out_name) {
  const char *slash = strrchr(path, '/');
  if (path[0] != '/' || !slash || !slash[1]) return -1;
  char dir[PATH_MAX], sub[PATH_MAX], name[NAME_MAX + 1];
  size_t dlen = (size_t)(slash - path);
  if (dlen >= sizeof(dir)) return -1;
  memcpy(dir, path, dlen);
  dir[dlen] = '\0';
  const char *base = slash + 1;
  int invented = !link; /* no link: FILE.debug, and FILE itself away from its directory */
  if (invented) {
    int n = snprintf(name, sizeof(name), "%s.debug", base);
    if (n < 0 || (size_t)n >= sizeof(name)) return -1;
    link = name;
  }
  struct stat main_st;
  if (stat(path, &main_st) != 0) memset(&main_st, 0, sizeof(main_st));

  int fd = try_candidate(mod, &main_st, dlen ? dir : "", link, crc, out_name);
  if (fd >= 0) return fd;
  int n = snprintf(sub, sizeof(sub), "%s/.debug", dir);
  if (n > 0 && (size_t)n < sizeof(sub)) {
    if ((fd = try_candidate(mod, &main_st, sub, link, crc, out_name)) >= 0) return fd;
    if (invented && (fd = try_candidate(mod, &main_st, sub, base, 0, out_name)) >= 0) return fd;
  }
  n = snprintf(sub, sizeof(sub), "/usr/lib/debug%s", dir);
  if (n > 0 && (size_t)n < sizeof(sub)) {
    if ((fd = try_candidate(mod, &main_st, sub, link, crc, out_name)) >= 0) return fd;
    if (invented && (fd = try_candidate(mod, &main_st, sub, base, 0, out_name)) >= 0) return fd;
  }
  return -1;
}

int pl__find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                       const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
                       char **debuginfo_file_name) {
  if (!mod) return -1;
  int fd = dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file,
                                        debuglink_crc, debuginfo_file_name);
  if (fd >= 0) return fd;
  errno = 0;
  if (!file_name) return -1;

  /* libdwfl also asks for a dwz alternate file (its name and build id in
   * the DWARF we cannot see here): the build id lookup above is the only
   * one for that. The module's own link tells the two asks apart. */
  GElf_Addr bias;
  Elf *main_elf = dwfl_module_getelf(mod, &bias);
  GElf_Word own_crc = 0;
  const char *own_link = main_elf ? dwelf_elf_gnu_debuglink(main_elf, &own_crc) : NULL;
  if (debuglink_file && (!own_link || strcmp(own_link, debuglink_file) != 0)) return -1;

  fd = search_dirs(mod, file_name, debuglink_file, debuglink_crc, debuginfo_file_name);
  if (fd < 0) {
    /* a symlink's target directory may hold the debug file instead */
    char *canon = realpath(file_name, NULL);
    if (canon && strcmp(canon, file_name) != 0)
      fd = search_dirs(mod, canon, debuglink_file, debuglink_crc, debuginfo_file_name);
    free(canon);
  }
  errno = 0;
  return fd;
}
