/* The error answer's shape (see json_error.h). */
#include "common/json_error.h"

void pl__json_error_body(pl_buf *b, const char *code, const char *message) {
  pl_json j;
  pl_buf_init(b);
  pl_json_init(&j, b);
  pl_json_obj_open(&j);
  pl_json_key(&j, "error");
  pl_json_obj_open(&j);
  pl_json_kv_str(&j, "code", code);
  pl_json_kv_str(&j, "message", message);
  pl_json_obj_close(&j);
  pl_json_obj_close(&j);
}
