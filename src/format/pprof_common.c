/* Building blocks of the pprof writers (see pprof_common.h).
 *
 * protobuf-c needs the whole message as structs; the encoding itself is
 * streamed (through deflate for the gzip variant) into the sink.
 */
#include "format/pprof_common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "format/cpu_common.h"

typedef Perftools__Profiles__Function pb_function;
typedef Perftools__Profiles__Mapping pb_mapping;
typedef Perftools__Profiles__Location pb_location;
typedef Perftools__Profiles__Line pb_line;

void pl__pprof_init(pl__pprof *b) {
  memset(b, 0, sizeof(*b));
  pl__strtab_init(&b->strs);
  pl__keytab_init(&b->func_keys);
  pl__keytab_init(&b->map_keys);
}

void pl__pprof_free(pl__pprof *b) {
  pl__strtab_free(&b->strs);
  pl__keytab_free(&b->func_keys);
  free(b->funcs);
  pl__keytab_free(&b->map_keys);
  free(b->maps);
  free(b->locs);
  free(b->lines);
  free(b->line_ptrs);
  free(b->loc_ptrs);
  free(b->func_ptrs);
  free(b->map_ptrs);
  memset(b, 0, sizeof(*b));
}

int64_t pl__pprof_string(pl__pprof *b, const char *s) { return pl__strtab_intern(&b->strs, s); }

/* Function id (>= 1) for (name, file, start_line), or -ENOMEM. */
static int64_t func_id(pl__pprof *b, const char *name, const char *file, uint32_t start_line) {
  int64_t n = pl__strtab_intern(&b->strs, name);
  int64_t f = pl__strtab_intern(&b->strs, file);
  if (n < 0 || f < 0) return -ENOMEM;
  int added;
  int64_t i = pl__keytab_intern(&b->func_keys, (uint32_t)n, (uint32_t)f, start_line, &added);
  if (i < 0) return i;
  if (added) {
    if (PL__RESERVE(b->funcs, b->funcs_cap, (size_t)i + 1)) return -ENOMEM;
    pb_function *fn = &b->funcs[i];
    perftools__profiles__function__init(fn);
    fn->id = (uint64_t)i + 1;
    fn->name = n;
    fn->system_name = n; /* the model keeps one (demangled or not) name */
    fn->filename = f;
    fn->start_line = start_line;
  }
  return i + 1;
}

/* Mapping id (>= 1) for a module path, 0 for none, or -ENOMEM. */
static int64_t mapping_id(pl__pprof *b, const pl_frame *fr) {
  const char *module = pl__str(fr->module);
  if (!*module) return 0;
  int64_t m = pl__strtab_intern(&b->strs, module);
  if (m < 0) return m;
  int added;
  int64_t i = pl__keytab_intern(&b->map_keys, (uint32_t)m, 0, 0, &added);
  if (i < 0) return i;
  if (added) {
    if (PL__RESERVE(b->maps, b->maps_cap, (size_t)i + 1)) return -ENOMEM;
    pb_mapping *mp = &b->maps[i];
    perftools__profiles__mapping__init(mp);
    mp->id = (uint64_t)i + 1;
    mp->filename = m;
    mp->has_functions = 1;
    mp->has_filenames = 1;
    mp->has_line_numbers = 1;
  }
  if (!*pl__str(fr->file)) b->maps[i].has_filenames = 0;
  if (!fr->line) b->maps[i].has_line_numbers = 0;
  return i + 1;
}

/* Like pprof's own guess for legacy profiles: a path that is neither a
 * shared object ("x.so", "x.so.6", "x.so_1") nor a pseudo-file ("[vdso]"). */
static int looks_like_program(const char *path) {
  if (!*path || path[0] == '[') return 0;
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  for (const char *so = strstr(base, ".so"); so; so = strstr(so + 1, ".so"))
    if (so[3] == '\0' || so[3] == '.' || so[3] == '_') return 0;
  return 1;
}

/* Moves the program's mapping to id 1 (the others keep their order) and
 * fills map_ptrs in id order. */
static void order_mappings(pl__pprof *b) {
  size_t n = b->map_keys.n, main_idx = 0;
  for (size_t i = 0; i < n; i++) {
    if (looks_like_program(b->strs.strs[b->maps[i].filename])) {
      main_idx = i;
      break;
    }
  }
  for (size_t i = 0; i < n; i++) {
    uint64_t id = i == main_idx ? 1 : i < main_idx ? i + 2 : i + 1;
    b->maps[i].id = id;
    b->map_ptrs[id - 1] = &b->maps[i];
  }
  if (main_idx == 0) return;
  for (size_t l = 0; l < b->nlocs; l++) {
    uint64_t old = b->locs[l].mapping_id; /* index + 1 before the move */
    if (old) b->locs[l].mapping_id = b->maps[old - 1].id;
  }
}

/* Appends a location; its id, or -ENOMEM. */
static int64_t add_location(pl__pprof *b, uint64_t mapping, uint64_t address, uint64_t function,
                            uint32_t line) {
  if (PL__RESERVE(b->locs, b->locs_cap, b->nlocs + 1)) return -ENOMEM;
  if (PL__RESERVE(b->lines, b->lines_cap, b->nlocs + 1)) return -ENOMEM;
  size_t i = b->nlocs++;
  pb_location *loc = &b->locs[i];
  perftools__profiles__location__init(loc);
  perftools__profiles__line__init(&b->lines[i]);
  loc->id = (uint64_t)i + 1;
  loc->mapping_id = mapping;
  loc->address = address;
  b->lines[i].function_id = function;
  b->lines[i].line = line;
  return (int64_t)i + 1;
}

int pl__pprof_add_frames(pl__pprof *b, const pl_frame *frames, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const pl_frame *fr = &frames[i];
    int64_t fn = func_id(b, pl__str(fr->function), pl__str(fr->file), fr->function_line);
    if (fn < 0) return (int)fn;
    int64_t mp = mapping_id(b, fr);
    if (mp < 0) return (int)mp;
    int64_t loc = add_location(b, (uint64_t)mp, fr->address, (uint64_t)fn, fr->line);
    if (loc < 0) return (int)loc;
  }
  return 0;
}

int64_t pl__pprof_add_pseudo(pl__pprof *b, const char *name) {
  int64_t fn = func_id(b, name, "", 0);
  if (fn < 0) return fn;
  return add_location(b, 0, 0, (uint64_t)fn, 0);
}

int pl__pprof_finish(pl__pprof *b, pl__pb_profile *prof) {
  size_t nlocs = b->nlocs, nfuncs = b->func_keys.n, nmaps = b->map_keys.n;
  b->line_ptrs = calloc(nlocs ? nlocs : 1, sizeof(*b->line_ptrs));
  b->loc_ptrs = calloc(nlocs ? nlocs : 1, sizeof(*b->loc_ptrs));
  b->func_ptrs = calloc(nfuncs ? nfuncs : 1, sizeof(*b->func_ptrs));
  b->map_ptrs = calloc(nmaps ? nmaps : 1, sizeof(*b->map_ptrs));
  if (!b->line_ptrs || !b->loc_ptrs || !b->func_ptrs || !b->map_ptrs) return -ENOMEM;
  for (size_t i = 0; i < nlocs; i++) {
    b->line_ptrs[i] = &b->lines[i];
    b->locs[i].n_line = 1;
    b->locs[i].line = &b->line_ptrs[i];
    b->loc_ptrs[i] = &b->locs[i];
  }
  for (size_t i = 0; i < nfuncs; i++) b->func_ptrs[i] = &b->funcs[i];
  order_mappings(b);
  prof->n_mapping = nmaps;
  prof->mapping = b->map_ptrs;
  prof->n_location = nlocs;
  prof->location = b->loc_ptrs;
  prof->n_function = nfuncs;
  prof->function = b->func_ptrs;
  /* protobuf-c only reads the table; the strings are borrowed. */
  prof->n_string_table = b->strs.n;
  prof->string_table = (char **)b->strs.strs;
  return 0;
}

/* ---- output: protobuf-c's buffer interface, raw or through deflate ------ */

typedef struct pp_out {
  ProtobufCBuffer base;
  pl__sink *sink;
  int gzip;
  int zerr; /* first zlib error, negative errno */
  z_stream z;
  size_t staged;
  unsigned char stage[1 << 16]; /* protobuf-c appends many tiny pieces */
  unsigned char zout[1 << 16];
} pp_out;

static void pp_deflate(pp_out *o, const unsigned char *data, size_t len, int flush) {
  o->z.next_in = (unsigned char *)data;
  o->z.avail_in = (uInt)len;
  do {
    o->z.next_out = o->zout;
    o->z.avail_out = sizeof(o->zout);
    int zr = deflate(&o->z, flush);
    if (zr == Z_STREAM_ERROR) {
      if (!o->zerr) o->zerr = -EIO;
      return;
    }
    pl__sink_write(o->sink, o->zout, sizeof(o->zout) - o->z.avail_out);
  } while (o->z.avail_out == 0);
}

static void pp_append(ProtobufCBuffer *buffer, size_t len, const uint8_t *data) {
  pp_out *o = (pp_out *)buffer;
  if (!o->gzip) {
    pl__sink_write(o->sink, data, len);
    return;
  }
  while (len > 0) {
    size_t room = sizeof(o->stage) - o->staged;
    size_t k = len < room ? len : room;
    memcpy(o->stage + o->staged, data, k);
    o->staged += k;
    data += k;
    len -= k;
    if (o->staged == sizeof(o->stage)) {
      pp_deflate(o, o->stage, o->staged, Z_NO_FLUSH);
      o->staged = 0;
    }
  }
}

int pl__pprof_pack(const pl__pb_profile *prof, pl__sink *sink, int gzip) {
  pp_out *o = calloc(1, sizeof(*o));
  if (!o) return -ENOMEM;
  o->base.append = pp_append;
  o->sink = sink;
  o->gzip = gzip;
  if (gzip) {
    /* windowBits 15 + 16: a gzip header (mtime 0, so output is deterministic). */
    int zr = deflateInit2(&o->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    if (zr != Z_OK) {
      free(o);
      return zr == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
    }
  }
  protobuf_c_message_pack_to_buffer(&prof->base, &o->base);
  if (gzip) {
    pp_deflate(o, o->stage, o->staged, Z_FINISH);
    deflateEnd(&o->z);
  }
  int rc = o->zerr;
  free(o);
  return rc;
}
