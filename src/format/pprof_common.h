/* Building blocks of the pprof writers (CPU and heap; internal to
 * src/format/): the string, function, mapping and location tables of a
 * perftools.profiles.Profile built from pl_frame arrays, and its encoding
 * (raw or gzip) streamed into a sink.
 *
 * Tables:
 * - strings: interned, borrowed (they must outlive the builder);
 *   string_table[0] is "" when "" is the first string interned;
 * - one Function per distinct (name, filename, start_line), ids from 1 in
 *   order of first use; system_name = name (the model keeps one name);
 * - one Mapping per distinct non-empty module path, in order of first use,
 *   except that the first one that looks like the program (not a shared
 *   object, not "[vdso]"-like) gets id 1: pprof names Mapping[0] as the
 *   profile's "File". has_functions is set (pprof must not symbolize
 *   again); has_filenames / has_line_numbers when every frame of the
 *   module has them. No load addresses: memory_start/limit are 0;
 * - Locations: one per frame (id = frame index + 1) with the frame's
 *   address and one Line {function, line}; then pseudo-locations (a
 *   function name only, no mapping or address).
 */
#ifndef PL_FORMAT_PPROF_COMMON_H
#define PL_FORMAT_PPROF_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "common/sink.h"
#include "format/hashtab.h"
#include "format/profile.pb-c.h"
#include "proflab/cpu_profile.h"

typedef Perftools__Profiles__Profile pl__pb_profile;

typedef struct pl__pprof {
  pl__strtab strs;
  pl__keytab func_keys; /* (name, filename, start_line) -> index in funcs */
  Perftools__Profiles__Function *funcs;
  size_t funcs_cap;
  pl__keytab map_keys; /* (module string, 0, 0) -> index in maps */
  Perftools__Profiles__Mapping *maps;
  size_t maps_cap;
  Perftools__Profiles__Location *locs;
  Perftools__Profiles__Line *lines; /* one per location */
  size_t nlocs, locs_cap, lines_cap;
  /* filled by pl__pprof_finish() */
  Perftools__Profiles__Line **line_ptrs;
  Perftools__Profiles__Location **loc_ptrs;
  Perftools__Profiles__Function **func_ptrs;
  Perftools__Profiles__Mapping **map_ptrs;
} pl__pprof;

void pl__pprof_init(pl__pprof *b);
void pl__pprof_free(pl__pprof *b);

/* String id of s (borrowed; NULL reads as ""), or -ENOMEM. */
int64_t pl__pprof_string(pl__pprof *b, const char *s);

/* Locations 1..n for frames[0..n). Call once, before any pseudo-location.
 * 0 or -ENOMEM. */
int pl__pprof_add_frames(pl__pprof *b, const pl_frame *frames, size_t n);

/* A location for a pseudo-function ("(idle)", "(unknown)", ...): its id
 * (>= 1), or -ENOMEM. */
int64_t pl__pprof_add_pseudo(pl__pprof *b, const char *name);

/* Orders the mappings (the program's first) and points prof's mapping,
 * location, function and string tables at the builder's. The builder must
 * outlive the packing of prof. 0 or -ENOMEM. */
int pl__pprof_finish(pl__pprof *b, pl__pb_profile *prof);

/* Encodes prof into sink, gzip-compressed (header mtime 0, deterministic)
 * or raw. 0 or a negative errno (the sink's own errors stay in the sink). */
int pl__pprof_pack(const pl__pb_profile *prof, pl__sink *sink, int gzip);

static inline int64_t pl__sat_i64(uint64_t v) { return v > INT64_MAX ? INT64_MAX : (int64_t)v; }

#endif
