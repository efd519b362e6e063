/* Where a module's separate debug information is, on this machine only. */
#ifndef PL_SYMBOL_DEBUGINFO_H
#define PL_SYMBOL_DEBUGINFO_H

#include <elfutils/libdwfl.h>

/* A Dwfl_Callbacks.find_debuginfo for local files: the debug file named by
 * the module's build id (/usr/lib/debug/.build-id/, libdwfl's own lookup,
 * which also finds a dwz alternate file), else the file its
 * .gnu_debuglink names (FILE.debug when it names none) next to the module,
 * in the module's .debug/ directory, or under /usr/lib/debug/ followed by
 * the module's directory; a candidate counts only with the module's build
 * id (or, when the module has none, the link's CRC). Unlike
 * dwfl_standard_find_debuginfo it never falls back to libdw's debuginfod
 * client: a capture must not load libcurl into the process (4 ms and a
 * dozen libraries the first time) nor fetch files over the network when
 * DEBUGINFOD_URLS happens to be set. Returns an open descriptor and sets
 * *debuginfo_file_name (malloc'ed), or -1 with errno 0 when nothing
 * matches. */
int pl__find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                       const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
                       char **debuginfo_file_name);

#endif
