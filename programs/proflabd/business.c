/* Business endpoints with named functions doing real work, so that CPU
 * profiles taken under load have something meaningful to show. */
#include "business.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>
#include <zlib.h>

#include "proflab/buf.h"

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

int svc_business_mount(pl_server *s) {
  int rc = 0;
  if (!rc) rc = pl_server_route(s, PL_GET, "/api/health", 0, on_health, NULL);
  if (!rc) rc = pl_server_route(s, PL_GET, "/api/work", 0, on_work, NULL);
  if (!rc) rc = pl_server_route(s, PL_GET, "/api/primes", 0, on_primes, NULL);
  if (!rc) rc = pl_server_route(s, PL_POST, "/api/checksum", 0, on_checksum, NULL);
  return rc;
}
