/* Lab configuration: environment, security decisions, task ids. */
#include "test.h"

#include <errno.h>
#include <stdlib.h>

#include "proflab/lab.h"

static void clear_env(void) {
  const char *vars[] = {
      "LAB_ENABLE",       "LAB_TOKEN",       "LAB_ALLOW_PROD",          "APP_ENV",       "NODE_ENV",
      "LAB_ARTIFACT_DIR", "LAB_MAX_LEAK_MB", "LAB_MAX_PROFILE_SECONDS", "LAB_MAX_JAM_MS"};
  for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) unsetenv(vars[i]);
}

static void check(int *active, const char **why, int *rc) {
  pl_lab_config cfg;
  char err[256] = "";
  pl_lab_config_init(&cfg);
  assert_int_equal(pl_lab_config_from_env(&cfg, err, sizeof(err)), 0);
  *rc = pl_lab_config_check(&cfg, active, why, err, sizeof(err));
}

static void test_layers(void **state) {
  (void)state;
  int active, rc;
  const char *why;
  clear_env();
  check(&active, &why, &rc);
  assert_int_equal(rc, 0);
  assert_false(active);

  setenv("LAB_ENABLE", "TRUE", 1); /* only exactly "true" */
  setenv("LAB_TOKEN", "0123456789abcdef", 1);
  check(&active, &why, &rc);
  assert_false(active);

  setenv("LAB_ENABLE", "true", 1);
  check(&active, &why, &rc);
  assert_int_equal(rc, 0);
  assert_true(active);

  setenv("LAB_TOKEN", "0123456789abcde", 1); /* 15 characters */
  check(&active, &why, &rc);
  assert_int_equal(rc, -EINVAL);
  unsetenv("LAB_TOKEN");
  check(&active, &why, &rc);
  assert_int_equal(rc, -EINVAL);

  setenv("LAB_TOKEN", "0123456789abcdef", 1);
  setenv("NODE_ENV", "production", 1);
  check(&active, &why, &rc);
  assert_int_equal(rc, 0);
  assert_false(active);
  assert_non_null(why);
  assert_non_null(strstr(why, "NODE_ENV=production"));

  setenv("LAB_ALLOW_PROD", "true", 1);
  check(&active, &why, &rc);
  assert_true(active);
  clear_env();
}

static void test_bounds_from_env(void **state) {
  (void)state;
  clear_env();
  pl_lab_config cfg;
  char err[256] = "";
  pl_lab_config_init(&cfg);
  setenv("LAB_MAX_JAM_MS", "500", 1);
  assert_int_equal(pl_lab_config_from_env(&cfg, err, sizeof(err)), 0);
  assert_int_equal(cfg.max_jam_ms, 500);
  assert_int_equal(cfg.max_leak_mb, 1024);
  setenv("LAB_MAX_LEAK_MB", "lots", 1);
  assert_int_equal(pl_lab_config_from_env(&cfg, err, sizeof(err)), -EINVAL);
  assert_non_null(strstr(err, "LAB_MAX_LEAK_MB"));
  clear_env();
}

static void test_task_ids(void **state) {
  (void)state;
  char out[80];
  pl_task_id_from("task-a", "http://169.254.170.2/v4/x", "host", out, sizeof(out));
  assert_string_equal(out, "task-a");
  pl_task_id_from(NULL, "http://169.254.170.2/v4/5fe57d1ff1c04de49ac56f8b5ac2b1a4-3822082590",
                  "host", out, sizeof(out));
  assert_string_equal(out, "5fe57d1ff1c04de49ac56f8b5ac2b1a4");
  pl_task_id_from(NULL, NULL, "web-7d9f/../x y", out, sizeof(out));
  assert_string_equal(out, "web-7d9f..xy");
  pl_task_id_from("///", NULL, NULL, out, sizeof(out));
  assert_string_equal(out, "unknown");
  char longid[200];
  memset(longid, 'a', sizeof(longid) - 1);
  longid[sizeof(longid) - 1] = '\0';
  pl_task_id_from(longid, NULL, NULL, out, sizeof(out));
  assert_int_equal(strlen(out), 64);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_layers),
      cmocka_unit_test(test_bounds_from_env),
      cmocka_unit_test(test_task_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
