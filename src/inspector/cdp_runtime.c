/* The CDP Runtime domain, as much of it as a C process has: the execution
 * context DevTools waits for, heap usage from the heap tracker, the isolate
 * id, and the debugger handshake. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "capture/heap_tracker.h"
#include "common/util.h"
#include "inspector/cdp.h"

static void on_enable(pl__cdp *c, json_int_t id, json_t *params) {
  (void)params;
  /* V8 announces the default context before answering. The program's name
   * may hold anything: escaped by the JSON writer. */
  char name[300], unique[96];
  snprintf(name, sizeof(name), "%s[%d]", program_invocation_short_name, (int)getpid());
  snprintf(unique, sizeof(unique), "%d.%s", (int)getpid(), c->target->id);
  pl_buf b;
  pl_json j;
  pl_buf_init(&b);
  pl_json_init(&j, &b);
  pl_json_obj_open(&j);
  pl_json_kv_str(&j, "method", "Runtime.executionContextCreated");
  pl_json_key(&j, "params");
  pl_json_obj_open(&j);
  pl_json_key(&j, "context");
  pl_json_obj_open(&j);
  pl_json_kv_int(&j, "id", 1);
  pl_json_kv_str(&j, "origin", "");
  pl_json_kv_str(&j, "name", name);
  pl_json_kv_str(&j, "uniqueId", unique);
  pl_json_key(&j, "auxData");
  pl_json_obj_open(&j);
  pl_json_kv_bool(&j, "isDefault", 1);
  pl_json_obj_close(&j);
  pl_json_obj_close(&j);
  pl_json_obj_close(&j);
  pl_json_obj_close(&j);
  if (!pl_buf_failed(&b)) pl__cdp_send_raw(c, b.data, b.len);
  pl_buf_free(&b);
  pl__cdp_reply_empty(c, id);
}

static void on_ok(pl__cdp *c, json_int_t id, json_t *params) {
  (void)params;
  pl__cdp_reply_empty(c, id);
}

static void on_isolate_id(pl__cdp *c, json_int_t id, json_t *params) {
  (void)params;
  pl_buf b;
  pl_json j;
  char iso[96];
  snprintf(iso, sizeof(iso), "%d.%s", (int)getpid(), c->target->id);
  pl__cdp_result_open(&b, &j, id);
  pl_json_kv_str(&j, "id", iso);
  pl__cdp_send_result(c, &b, &j);
}

/* usedSize: the heap tracker's estimate of live bytes (glibc's in-use bytes
 * without it); totalSize: the process's resident memory, what it holds. */
static void on_heap_usage(pl__cdp *c, json_int_t id, json_t *params) {
  (void)params;
  pl__heap_figures f;
  uint64_t used;
  if (pl__heap_tracker_figures(&f) == 0) {
    used = (uint64_t)(f.live_bytes + 0.5);
  } else {
    struct mallinfo2 mi = mallinfo2();
    used = (uint64_t)(mi.uordblks + mi.hblkhd);
  }
  uint64_t total = pl__rss_bytes();
  if (total < used) total = used;
  pl_buf b;
  pl_json j;
  pl__cdp_result_open(&b, &j, id);
  pl_json_kv_uint(&j, "usedSize", used);
  pl_json_kv_uint(&j, "totalSize", total);
  pl__cdp_send_result(c, &b, &j);
}

pl__cdp_handler pl__cdp_runtime_method(const char *m) {
  if (!strcmp(m, "enable")) return on_enable;
  if (!strcmp(m, "disable")) return on_ok;
  if (!strcmp(m, "runIfWaitingForDebugger")) return on_ok;
  if (!strcmp(m, "getIsolateId")) return on_isolate_id;
  if (!strcmp(m, "getHeapUsage")) return on_heap_usage;
  return NULL;
}
