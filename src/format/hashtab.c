/* Interning tables for the format writers (see hashtab.h). */
#include "format/hashtab.h"

#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s) { return pl__mix64(pl__fnv1a(s)); }

static uint64_t hash_key3(uint32_t a, uint32_t b, uint32_t c) {
  return pl__mix64(((uint64_t)a << 32 | b) ^ pl__mix64((uint64_t)c + 0x9e3779b97f4a7c15ull));
}

/* Capacity for one more id, or 0 when ids would not fit the 32-bit slots. */
static size_t next_cap(size_t cap, size_t n) {
  if (n < cap) return cap;
  if (n >= UINT32_MAX - 1) return 0; /* slots store id + 1 */
  return cap ? cap * 2 : 64;
}

/* ---- strings ------------------------------------------------------------ */

void pl__strtab_init(pl__strtab *t) { memset(t, 0, sizeof(*t)); }

void pl__strtab_free(pl__strtab *t) {
  free(t->strs);
  free(t->hashes);
  free(t->slots);
  memset(t, 0, sizeof(*t));
}

static int strtab_rehash(pl__strtab *t, size_t nslots) {
  uint32_t *slots = calloc(nslots, sizeof(*slots));
  if (!slots) return -ENOMEM;
  for (size_t id = 0; id < t->n; id++) {
    size_t i = (size_t)t->hashes[id] & (nslots - 1);
    while (slots[i]) i = (i + 1) & (nslots - 1);
    slots[i] = (uint32_t)id + 1;
  }
  free(t->slots);
  t->slots = slots;
  t->nslots = nslots;
  return 0;
}

/* Slot index holding s, or of the empty slot where it would go. */
static size_t strtab_probe(const pl__strtab *t, const char *s, uint64_t h) {
  size_t i = (size_t)h & (t->nslots - 1);
  for (;;) {
    uint32_t v = t->slots[i];
    if (!v) return i;
    if (t->hashes[v - 1] == h && strcmp(t->strs[v - 1], s) == 0) return i;
    i = (i + 1) & (t->nslots - 1);
  }
}

int64_t pl__strtab_find(const pl__strtab *t, const char *s) {
  if (!s) s = "";
  if (!t->nslots) return -1;
  uint32_t v = t->slots[strtab_probe(t, s, hash_str(s))];
  return v ? (int64_t)v - 1 : -1;
}

int64_t pl__strtab_intern(pl__strtab *t, const char *s) {
  if (!s) s = "";
  uint64_t h = hash_str(s);
  if (t->nslots) {
    uint32_t v = t->slots[strtab_probe(t, s, h)];
    if (v) return (int64_t)v - 1;
  }
  if ((t->n + 1) * 2 > t->nslots) {
    if (strtab_rehash(t, t->nslots ? t->nslots * 2 : 256)) return -ENOMEM;
  }
  size_t cap = next_cap(t->cap, t->n);
  if (!cap) return -ENOMEM;
  if (cap != t->cap) {
    /* Both arrays always have room for cap entries once t->cap is set. */
    const char **strs = realloc(t->strs, cap * sizeof(*strs));
    if (!strs) return -ENOMEM;
    t->strs = strs;
    uint64_t *hashes = realloc(t->hashes, cap * sizeof(*hashes));
    if (!hashes) return -ENOMEM;
    t->hashes = hashes;
    t->cap = cap;
  }
  size_t slot = strtab_probe(t, s, h);
  t->strs[t->n] = s;
  t->hashes[t->n] = h;
  t->slots[slot] = (uint32_t)t->n + 1;
  return (int64_t)t->n++;
}

/* ---- integer triples ---------------------------------------------------- */

void pl__keytab_init(pl__keytab *t) { memset(t, 0, sizeof(*t)); }

void pl__keytab_free(pl__keytab *t) {
  free(t->keys);
  free(t->slots);
  memset(t, 0, sizeof(*t));
}

static int keytab_rehash(pl__keytab *t, size_t nslots) {
  uint32_t *slots = calloc(nslots, sizeof(*slots));
  if (!slots) return -ENOMEM;
  for (size_t id = 0; id < t->n; id++) {
    const pl__key3 *k = &t->keys[id];
    size_t i = (size_t)hash_key3(k->a, k->b, k->c) & (nslots - 1);
    while (slots[i]) i = (i + 1) & (nslots - 1);
    slots[i] = (uint32_t)id + 1;
  }
  free(t->slots);
  t->slots = slots;
  t->nslots = nslots;
  return 0;
}

static size_t keytab_probe(const pl__keytab *t, uint32_t a, uint32_t b, uint32_t c) {
  size_t i = (size_t)hash_key3(a, b, c) & (t->nslots - 1);
  for (;;) {
    uint32_t v = t->slots[i];
    if (!v) return i;
    const pl__key3 *k = &t->keys[v - 1];
    if (k->a == a && k->b == b && k->c == c) return i;
    i = (i + 1) & (t->nslots - 1);
  }
}

int64_t pl__keytab_find(const pl__keytab *t, uint32_t a, uint32_t b, uint32_t c) {
  if (!t->nslots) return -1;
  uint32_t v = t->slots[keytab_probe(t, a, b, c)];
  return v ? (int64_t)v - 1 : -1;
}

int64_t pl__keytab_intern(pl__keytab *t, uint32_t a, uint32_t b, uint32_t c, int *added) {
  if (added) *added = 0;
  if (t->nslots) {
    uint32_t v = t->slots[keytab_probe(t, a, b, c)];
    if (v) return (int64_t)v - 1;
  }
  if ((t->n + 1) * 2 > t->nslots) {
    if (keytab_rehash(t, t->nslots ? t->nslots * 2 : 256)) return -ENOMEM;
  }
  size_t cap = next_cap(t->cap, t->n);
  if (!cap) return -ENOMEM;
  if (cap != t->cap) {
    pl__key3 *keys = realloc(t->keys, cap * sizeof(*keys));
    if (!keys) return -ENOMEM;
    t->keys = keys;
    t->cap = cap;
  }
  size_t slot = keytab_probe(t, a, b, c);
  t->keys[t->n] = (pl__key3){a, b, c};
  t->slots[slot] = (uint32_t)t->n + 1;
  if (added) *added = 1;
  return (int64_t)t->n++;
}
