/* Business endpoints with named functions doing real work, so that CPU
 * profiles taken under load have something meaningful to show. */
#include "business.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>
#include <zlib.h>

#include "proflab/buf.h"
#include "common/util.h"

/* What svc_business_mount was given (loop thread only after that). */
static svc_business_options g_opt;

typedef struct work_record {
  uint32_t id;
  uint32_t score;
  char name[24];
} work_record;

static void on_health(pl_request *r, void *arg) {
  (void)arg;
  static const char ok[] = "{\"status\":\"ok\"}";
  pl_respond(r, 200, "application/json", ok, sizeof(ok) - 1);
}

__attribute__((noinline)) static work_record *work_build_records(uint64_t n, uint32_t seed) {
  work_record *recs = malloc(n * sizeof(*recs));
  if (!recs) return NULL;
  uint32_t x = seed ? seed : 2463534242u;
  for (uint64_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    recs[i].id = (uint32_t)i;
    recs[i].score = x % 100000u;
    snprintf(recs[i].name, sizeof(recs[i].name), "item-%08x", x);
  }
  return recs;
}

__attribute__((noinline)) static void work_serialize(const work_record *recs, uint64_t n,
                                                     pl_buf *out) {
  pl_json j;
  pl_json_init(&j, out);
  pl_json_arr_open(&j);
  for (uint64_t i = 0; i < n; i++) {
    pl_json_obj_open(&j);
    pl_json_kv_uint(&j, "id", recs[i].id);
    pl_json_kv_str(&j, "name", recs[i].name);
    pl_json_kv_uint(&j, "score", recs[i].score);
    pl_json_obj_close(&j);
  }
  pl_json_arr_close(&j);
}

__attribute__((noinline)) static void work_hash(const pl_buf *data, char hex[65]) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)data->data, data->len, d);
  for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static int by_score_desc(const void *a, const void *b) {
  const work_record *x = a, *y = b;
  if (x->score != y->score) return x->score < y->score ? 1 : -1;
  return x->id < y->id ? -1 : x->id > y->id;
}

__attribute__((noinline)) static void work_sort(work_record *recs, uint64_t n) {
  qsort(recs, n, sizeof(*recs), by_score_desc);
}

static void on_work(pl_request *r, void *arg) {
  (void)arg;
  pl_param_spec spec[] = {
      {.name = "n", .kind = PL_PARAM_UINT, .min = 1, .max = 200000, .def = 1000},
      {.name = "seed", .kind = PL_PARAM_UINT, .min = 0, .max = UINT32_MAX, .def = 1},
  };
  uint64_t v[2];
  if (pl_request_params(r, spec, 2, v)) return;
  uint64_t n = v[0];
  work_record *recs = work_build_records(n, (uint32_t)v[1]);
  if (!recs) {
    pl_respond_error(r, 503, "out_of_memory", "could not allocate %llu records",
                     (unsigned long long)n);
    return;
  }
  pl_buf ser;
  pl_buf_init(&ser);
  work_serialize(recs, n, &ser);
  char hex[65] = "";
  if (!pl_buf_failed(&ser)) work_hash(&ser, hex);
  work_sort(recs, n);
  pl_buf b;
  pl_buf_init(&b);
  pl_json j;
  pl_json_init(&j, &b);
  pl_json_obj_open(&j);
  pl_json_kv_uint(&j, "n", n);
  pl_json_kv_uint(&j, "bytes", ser.len);
  pl_json_kv_str(&j, "sha256", hex);
  pl_json_key(&j, "top");
  pl_json_arr_open(&j);
  for (uint64_t i = 0; i < n && i < 3; i++) {
    pl_json_obj_open(&j);
    pl_json_kv_uint(&j, "id", recs[i].id);
    pl_json_kv_str(&j, "name", recs[i].name);
    pl_json_kv_uint(&j, "score", recs[i].score);
    pl_json_obj_close(&j);
  }
  pl_json_arr_close(&j);
  pl_json_obj_close(&j);
  pl_buf_free(&ser);
  free(recs);
  pl_respond_json(r, 200, &b);
}

/* Sieve of Eratosthenes; returns the count of primes <= limit (0 on OOM). */
__attribute__((noinline)) static uint64_t primes_sieve(uint64_t limit, uint64_t *largest) {
  unsigned char *composite = calloc(limit + 1, 1);
  if (!composite) return 0;
  uint64_t count = 0;
  *largest = 0;
  for (uint64_t i = 2; i <= limit; i++) {
    if (composite[i]) continue;
    count++;
    *largest = i;
    for (uint64_t k = i * i; k <= limit; k += i) composite[k] = 1;
  }
  free(composite);
  return count;
}

static void on_primes(pl_request *r, void *arg) {
  (void)arg;
  pl_param_spec spec[] = {
      {.name = "limit", .kind = PL_PARAM_UINT, .min = 2, .max = 50000000, .def = 100000},
  };
  uint64_t limit, largest;
  if (pl_request_params(r, spec, 1, &limit)) return;
  uint64_t count = primes_sieve(limit, &largest);
  if (!count) {
    pl_respond_error(r, 503, "out_of_memory", "could not allocate the sieve");
    return;
  }
  pl_buf b;
  pl_buf_init(&b);
  pl_json j;
  pl_json_init(&j, &b);
  pl_json_obj_open(&j);
  pl_json_kv_uint(&j, "limit", limit);
  pl_json_kv_uint(&j, "count", count);
  pl_json_kv_uint(&j, "largest", largest);
  pl_json_obj_close(&j);
  pl_respond_json(r, 200, &b);
}

static void on_checksum(pl_request *r, void *arg) {
  (void)arg;
  if (pl_request_params(r, NULL, 0, NULL)) return;
  size_t len;
  const unsigned char *body = pl_request_body(r, &len);
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(body, len, d);
  char hex[65];
  for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, body, (uInt)len);
  pl_buf b;
  pl_buf_init(&b);
  pl_json j;
  pl_json_init(&j, &b);
  pl_json_obj_open(&j);
  pl_json_kv_uint(&j, "bytes", len);
  pl_json_kv_str(&j, "sha256", hex);
  pl_json_kv_uint(&j, "crc32", crc);
  pl_json_obj_close(&j);
  pl_respond_json(r, 200, &b);
}

/* ---- GET /api/search: the product catalog ------------------------------
 *
 * 24000 items: 6000 product names ("compact-steel-bracket"), each in four
 * sizes. A search takes a pattern (`*` any run, `?` one character), counts
 * the matching items and the distinct names among them, and answers the
 * first `limit` names. */

static const char *const catalog_adjectives[] = {
    "compact", "heavy",  "light",  "narrow", "wide",   "short",  "long",   "round",
    "square",  "flat",   "curved", "hollow", "solid",  "smooth", "rough",  "bright",
    "dark",    "silent", "rapid",  "sturdy", "simple", "double", "triple", "mini"};
static const char *const catalog_materials[] = {"steel", "brass",  "copper", "nylon", "oak",
                                                "pine",  "rubber", "glass",  "zinc",  "cotton"};
static const char *const catalog_nouns[] = {
    "bracket", "hinge",  "bolt",   "washer", "spring", "valve", "gasket", "pulley", "clamp",
    "socket",  "handle", "lever",  "panel",  "strap",  "hook",  "pin",    "rivet",  "shelf",
    "frame",   "tube",   "nozzle", "filter", "gear",   "wheel", "cable"};
static const char *const catalog_sizes[] = {"S", "M", "L", "XL"};

#define N_ADJ (sizeof(catalog_adjectives) / sizeof(*catalog_adjectives))
#define N_MAT (sizeof(catalog_materials) / sizeof(*catalog_materials))
#define N_NOUN (sizeof(catalog_nouns) / sizeof(*catalog_nouns))
#define N_SIZES (sizeof(catalog_sizes) / sizeof(*catalog_sizes))
#define CATALOG_NAMES (N_ADJ * N_MAT * N_NOUN)
#define CATALOG_ITEMS (CATALOG_NAMES * N_SIZES)
#define SEARCH_MAX_PATTERN 64

typedef struct catalog_item {
  uint32_t sku;
  uint32_t price_cents;
  const char *name;
  const char *size;
} catalog_item;

static catalog_item *catalog_items;
static char *catalog_names;

static int catalog_build(void) {
  enum { NAME_MAX_LEN = 32 };
  catalog_names = malloc(CATALOG_NAMES * NAME_MAX_LEN);
  catalog_items = malloc(CATALOG_ITEMS * sizeof(*catalog_items));
  if (!catalog_names || !catalog_items) return -1;
  size_t k = 0, it = 0;
  for (size_t a = 0; a < N_ADJ; a++)
    for (size_t m = 0; m < N_MAT; m++)
      for (size_t n = 0; n < N_NOUN; n++, k++) {
        char *name = catalog_names + k * NAME_MAX_LEN;
        snprintf(name, NAME_MAX_LEN, "%s-%s-%s", catalog_adjectives[a], catalog_materials[m],
                 catalog_nouns[n]);
        for (size_t z = 0; z < N_SIZES; z++, it++) {
          catalog_items[it].sku = (uint32_t)(100000 + it);
          catalog_items[it].price_cents = (uint32_t)(199 + (pl__mix64(it) % 9800));
          catalog_items[it].name = name;
          catalog_items[it].size = catalog_sizes[z];
        }
      }
  return 0;
}

/* Shell-style wildcard match: `*` any run (also empty), `?` one character.
 * Greedy with one backtrack point: O(len(p) * len(s)) at worst. */
static int glob_match(const char *p, const char *s) {
  const char *star = NULL, *resume = NULL;
  while (*s) {
    if (*p == '?' || (*p && *p != '*' && *p == *s)) {
      p++;
      s++;
    } else if (*p == '*') {
      star = ++p;
      resume = s;
    } else if (star) {
      p = star;
      s = ++resume;
    } else {
      return 0;
    }
  }
  while (*p == '*') p++;
  return !*p;
}

/* The distinct names of a search, in order of first match. */
typedef struct name_set {
  const char **names;
  size_t count, cap;
  const char **slots; /* open-addressing index over names; NULL: none */
  size_t nslots;
} name_set;

static int name_set_init(name_set *set, size_t expected) {
  memset(set, 0, sizeof(*set));
  if (g_opt.exercises & SVC_EXERCISE_CPU) return 0; /* see docs/lab.md, exercise 1 */
  size_t n = 64;
  while (n < 2 * expected) n *= 2;
  set->slots = calloc(n, sizeof(*set->slots));
  if (!set->slots) return -1;
  set->nslots = n;
  return 0;
}

static void name_set_free(name_set *set) {
  free(set->names);
  free(set->slots);
}

/* Where name is in the list, or -1. */
__attribute__((noinline, noclone)) static long distinct_find(const name_set *set,
                                                             const char *name) {
  for (size_t i = 0; i < set->count; i++) {
    const char *a = set->names[i], *b = name;
    while (*a && *a == *b) a++, b++;
    if (*a == *b) return (long)i;
  }
  return -1;
}

/* Adds name unless present: 1 added, 0 present, -1 out of memory. */
static int distinct_add(name_set *set, const char *name) {
  size_t slot = 0;
  if (set->slots) {
    slot = pl__fnv1a(name) & (set->nslots - 1);
    while (set->slots[slot]) {
      if (strcmp(set->slots[slot], name) == 0) return 0;
      slot = (slot + 1) & (set->nslots - 1);
    }
  } else if (distinct_find(set, name) >= 0) {
    return 0;
  }
  if (set->count == set->cap) {
    size_t cap = set->cap ? 2 * set->cap : 256;
    const char **n = realloc(set->names, cap * sizeof(*n));
    if (!n) return -1;
    set->names = n;
    set->cap = cap;
  }
  set->names[set->count++] = name;
  if (set->slots) set->slots[slot] = name;
  return 1;
}

__attribute__((noinline)) static int search_catalog(const char *pattern, name_set *names,
                                                    uint64_t *matches) {
  *matches = 0;
  for (size_t i = 0; i < CATALOG_ITEMS; i++) {
    if (!glob_match(pattern, catalog_items[i].name)) continue;
    ++*matches;
    if (distinct_add(names, catalog_items[i].name) < 0) return -1;
  }
  return 0;
}

static void on_search(pl_request *r, void *arg) {
  (void)arg;
  const char *q = NULL;
  uint64_t limit = 10;
  for (size_t i = 0, n = pl_request_query_count(r); i < n; i++) {
    const char *k, *v;
    pl_request_query_at(r, i, &k, &v);
    if (strcmp(k, "q") == 0 && !q) {
      q = v ? v : "";
    } else if (strcmp(k, "limit") == 0) {
      if (pl__parse_u64(v ? v : "", &limit) != 0 || limit < 1 || limit > 100) {
        pl_respond_error(r, 400, "bad_parameter",
                         "parameter 'limit' must be a whole number from 1 to 100");
        return;
      }
    } else {
      pl_respond_error(r, 400, "bad_parameter",
                       "unknown or repeated parameter '%.64s' (allowed: q, limit)", k);
      return;
    }
  }
  size_t qlen = q ? strlen(q) : 0;
  if (qlen == 0 || qlen > SEARCH_MAX_PATTERN ||
      strspn(q, "abcdefghijklmnopqrstuvwxyz0123456789-*?") != qlen) {
    pl_respond_error(r, 400, "bad_parameter",
                     "parameter 'q' must be 1 to %d characters of a-z, 0-9, '-', '*' (any run) "
                     "and '?' (one character), e.g. q=*steel*",
                     SEARCH_MAX_PATTERN);
    return;
  }
  name_set names;
  uint64_t matches;
  if (name_set_init(&names, CATALOG_NAMES) != 0 || search_catalog(q, &names, &matches) != 0) {
    name_set_free(&names);
    pl_respond_error(r, 503, "out_of_memory", "could not allocate the search's results");
    return;
  }
  pl_buf b;
  pl_buf_init(&b);
  pl_json j;
  pl_json_init(&j, &b);
  pl_json_obj_open(&j);
  pl_json_kv_str(&j, "q", q);
  pl_json_kv_uint(&j, "items", matches);
  pl_json_kv_uint(&j, "distinct", names.count);
  pl_json_key(&j, "names");
  pl_json_arr_open(&j);
  for (size_t i = 0; i < names.count && i < limit; i++) pl_json_str(&j, names.names[i]);
  pl_json_arr_close(&j);
  pl_json_obj_close(&j);
  name_set_free(&names);
  pl_respond_json(r, 200, &b);
}

/* ---- GET /api/report: a customer's orders over the last `days` ----------
 *
 * Rendering is deterministic in (customer, days), so rendered reports are
 * kept in a small LRU cache and answered from it while they stay there. */

typedef struct report_entry {
  struct report_entry *hnext;       /* hash chain */
  struct report_entry *prev, *next; /* LRU list: head is the most recent */
  uint64_t customer;
  uint32_t days;
  size_t len;
  char body[];
} report_entry;

typedef struct report_cache {
  report_entry **buckets;
  size_t nbuckets, count, bytes;
  size_t max_entries; /* 0: no entry limit */
  size_t max_bytes;
  report_entry *head, *tail;
  uint64_t hits, misses;
} report_cache;

static report_cache g_reports;

static size_t report_bucket(const report_cache *c, uint64_t customer, uint32_t days) {
  return pl__mix64(customer * 401u + days) & (c->nbuckets - 1);
}

static void report_lru_unlink(report_cache *c, report_entry *e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    c->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    c->tail = e->prev;
  e->prev = e->next = NULL;
}

static void report_lru_push(report_cache *c, report_entry *e) {
  e->next = c->head;
  if (c->head) c->head->prev = e;
  c->head = e;
  if (!c->tail) c->tail = e;
}

static report_entry *report_cache_get(report_cache *c, uint64_t customer, uint32_t days) {
  if (!c->nbuckets) return NULL;
  for (report_entry *e = c->buckets[report_bucket(c, customer, days)]; e; e = e->hnext)
    if (e->customer == customer && e->days == days) {
      report_lru_unlink(c, e);
      report_lru_push(c, e);
      return e;
    }
  return NULL;
}

static void report_cache_drop(report_cache *c, report_entry *e) {
  report_entry **pp = &c->buckets[report_bucket(c, e->customer, e->days)];
  while (*pp != e) pp = &(*pp)->hnext;
  *pp = e->hnext;
  report_lru_unlink(c, e);
  c->count--;
  c->bytes -= e->len;
  free(e);
}

static int report_cache_rehash(report_cache *c) {
  size_t n = c->nbuckets ? 2 * c->nbuckets : 256;
  report_entry **b = calloc(n, sizeof(*b));
  if (!b) return -1;
  report_entry **old = c->buckets;
  size_t oldn = c->nbuckets;
  c->buckets = b;
  c->nbuckets = n;
  for (size_t i = 0; i < oldn; i++)
    for (report_entry *e = old[i], *next; e; e = next) {
      next = e->hnext;
      size_t k = report_bucket(c, e->customer, e->days);
      e->hnext = b[k];
      b[k] = e;
    }
  free(old);
  return 0;
}

__attribute__((noinline, noclone)) static void report_cache_insert(report_cache *c,
                                                                   uint64_t customer, uint32_t days,
                                                                   const pl_buf *body) {
  if (c->max_bytes && body->len > c->max_bytes) return;
  if (c->count >= c->nbuckets && report_cache_rehash(c) != 0) return;
  report_entry *e = malloc(sizeof(*e) + body->len);
  if (!e) return;
  e->customer = customer;
  e->days = days;
  e->len = body->len;
  memcpy(e->body, body->data, body->len);
  size_t k = report_bucket(c, customer, days);
  e->hnext = c->buckets[k];
  c->buckets[k] = e;
  e->prev = e->next = NULL;
  report_lru_push(c, e);
  c->count++;
  c->bytes += e->len;
  while (c->tail && ((c->max_entries && c->count > c->max_entries) ||
                     (c->max_bytes && c->bytes > c->max_bytes)))
    report_cache_drop(c, c->tail);
}

/* The customer's orders: deterministic in (customer, days). */
__attribute__((noinline)) static void report_render(uint64_t customer, uint32_t days, pl_buf *out) {
  uint64_t x = pl__mix64(customer ^ 0x9e3779b97f4a7c15ull);
  unsigned orders = 12 + (unsigned)(x % 24) + days / 10;
  uint64_t total = 0;
  pl_json j;
  pl_json_init(&j, out);
  pl_json_obj_open(&j);
  pl_json_kv_uint(&j, "customer", customer);
  pl_json_kv_uint(&j, "days", days);
  pl_json_key(&j, "orders");
  pl_json_arr_open(&j);
  for (unsigned i = 0; i < orders; i++) {
    x = pl__mix64(x + i);
    const catalog_item *it = &catalog_items[x % CATALOG_ITEMS];
    unsigned qty = 1 + (unsigned)((x >> 20) % 9);
    total += (uint64_t)qty * it->price_cents;
    pl_json_obj_open(&j);
    pl_json_kv_uint(&j, "day", 1 + (x >> 32) % days);
    pl_json_kv_uint(&j, "sku", it->sku);
    pl_json_kv_str(&j, "name", it->name);
    pl_json_kv_str(&j, "size", it->size);
    pl_json_kv_uint(&j, "qty", qty);
    pl_json_kv_uint(&j, "price_cents", it->price_cents);
    pl_json_obj_close(&j);
  }
  pl_json_arr_close(&j);
  pl_json_kv_uint(&j, "order_count", orders);
  pl_json_kv_uint(&j, "total_cents", total);
  pl_json_obj_close(&j);
}

static void on_report(pl_request *r, void *arg) {
  (void)arg;
  pl_param_spec spec[] = {
      {.name = "customer", .kind = PL_PARAM_UINT, .required = 1, .min = 1, .max = UINT32_MAX},
      {.name = "days", .kind = PL_PARAM_UINT, .min = 1, .max = 365, .def = 30},
  };
  uint64_t v[2];
  if (pl_request_params(r, spec, 2, v)) return;
  report_entry *e = report_cache_get(&g_reports, v[0], (uint32_t)v[1]);
  if (e) {
    g_reports.hits++;
    pl_respond(r, 200, "application/json", e->body, e->len);
    return;
  }
  g_reports.misses++;
  pl_buf b;
  pl_buf_init(&b);
  report_render(v[0], (uint32_t)v[1], &b);
  if (!pl_buf_failed(&b)) report_cache_insert(&g_reports, v[0], (uint32_t)v[1], &b);
  pl_respond_json(r, 200, &b);
}

int svc_business_mount(pl_server *s, const svc_business_options *opt) {
  if (opt) g_opt = *opt;
  if (catalog_build() != 0) return -ENOMEM;
  memset(&g_reports, 0, sizeof(g_reports));
  /* 256 reports of a few KiB: the customers asked about right now. */
  g_reports.max_entries = 256;
  g_reports.max_bytes = 4u << 20;
  if (g_opt.exercises & SVC_EXERCISE_MEMORY) { /* see docs/lab.md, exercise 2 */
    g_reports.max_entries = 0;
    g_reports.max_bytes = g_opt.exercise_max_bytes;
  }
  int rc = 0;
  if (!rc) rc = pl_server_route(s, PL_GET, "/api/health", 0, on_health, NULL);
  if (!rc) rc = pl_server_route(s, PL_GET, "/api/work", 0, on_work, NULL);
  if (!rc) rc = pl_server_route(s, PL_GET, "/api/primes", 0, on_primes, NULL);
  if (!rc) rc = pl_server_route(s, PL_POST, "/api/checksum", 0, on_checksum, NULL);
  if (!rc) rc = pl_server_route(s, PL_GET, "/api/search", 0, on_search, NULL);
  if (!rc) rc = pl_server_route(s, PL_GET, "/api/report", 0, on_report, NULL);
  return rc;
}
