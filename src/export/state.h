/* Export resume state: a small text file next to the destination
 * (`LOCAL.proflab-state`) describing the verified prefix held in
 * `LOCAL.proflab-partial` and the identity of the source it came from.
 *
 *   proflab-export-state 1
 *   remote=/tmp/cpu-....cpuprofile
 *   helper=proflabd
 *   size=123456
 *   sum=s:<sha256 hex>          (or k:<POSIX cksum>)
 *   ident=<opaque>              (inode.mtime, or -)
 *   offset=65536                (bytes verified and written)
 *   chunk=131072                (chunk size to start the next session with)
 *
 * Any line that does not parse makes the whole file invalid: the caller then
 * starts over, it never resumes from a state it does not understand. */
#ifndef PROFLAB_EXPORT_STATE_H
#define PROFLAB_EXPORT_STATE_H

#include <stddef.h>
#include <stdint.h>

#define PL__EXPORT_STATE_FIELD 4096

typedef struct pl__export_state {
  char remote[PL__EXPORT_STATE_FIELD];
  char helper[32];
  uint64_t size;
  char sum[80]; /* "s:<64 hex>" or "k:<decimal>" */
  char ident[256];
  uint64_t offset;
  uint64_t chunk;
} pl__export_state;

/* Parses state text (len bytes, need not be NUL-terminated). Returns 0 or
 * -EINVAL; st is zeroed first. */
int pl__export_state_parse(const char *text, size_t len, pl__export_state *st);
/* Formats st into out; returns the length or -1 if it does not fit or a
 * field holds a newline. */
long pl__export_state_format(const pl__export_state *st, char *out, size_t outsz);

#endif
