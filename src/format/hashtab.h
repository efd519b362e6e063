/* Interning tables for the format writers (internal to src/format/).
 *
 * Both tables hand out dense ids 0, 1, 2, ... in insertion order, so a
 * writer can keep per-id data in plain arrays and its output order follows
 * first use (deterministic for a given model). Open addressing with linear
 * probing, power-of-two sizes, at most half full.
 *
 * Errors: functions return an id >= 0 or -ENOMEM; on failure the table is
 * unchanged and still valid (it can be freed).
 */
#ifndef PL_FORMAT_HASHTAB_H
#define PL_FORMAT_HASHTAB_H

#include <stddef.h>
#include <stdint.h>

/* Strings -> ids. The table borrows the strings: they must outlive it. */
typedef struct pl__strtab {
  const char **strs; /* by id */
  uint64_t *hashes;  /* by id */
  size_t n, cap;     /* ids in use, capacity of strs/hashes */
  uint32_t *slots;   /* id + 1, or 0 for an empty slot */
  size_t nslots;     /* power of two, or 0 before the first insert */
} pl__strtab;

void pl__strtab_init(pl__strtab *t);
void pl__strtab_free(pl__strtab *t);
/* Id of the string equal to s, adding s (borrowed) when new; NULL counts as "". */
int64_t pl__strtab_intern(pl__strtab *t, const char *s);
/* Id of the string equal to s, or -1 when absent. */
int64_t pl__strtab_find(const pl__strtab *t, const char *s);

/* Keys of three 32-bit integers -> ids (e.g. (parent node, function, 0)). */
typedef struct pl__key3 {
  uint32_t a, b, c;
} pl__key3;

typedef struct pl__keytab {
  pl__key3 *keys; /* by id */
  size_t n, cap;
  uint32_t *slots; /* id + 1, or 0 for an empty slot */
  size_t nslots;
} pl__keytab;

void pl__keytab_init(pl__keytab *t);
void pl__keytab_free(pl__keytab *t);
/* Id of (a, b, c), adding it when new; *added (if not NULL) tells which. */
int64_t pl__keytab_intern(pl__keytab *t, uint32_t a, uint32_t b, uint32_t c, int *added);
/* Id of (a, b, c), or -1 when absent. */
int64_t pl__keytab_find(const pl__keytab *t, uint32_t a, uint32_t b, uint32_t c);

#endif
