/* Failed-token limiting per address. */
#include "test.h"

#include <stdio.h>

#include "lab/ratelimit.h"

#define SEC 1000000000ull

static void test_blocks_after_limit(void **state) {
  (void)state;
  static pl__ratelimit rl;
  pl__rl_init(&rl, 3, 60);
  uint64_t t = 1000 * SEC;
  for (int i = 0; i < 3; i++) {
    assert_int_equal(pl__rl_blocked(&rl, "10.0.0.1", t), 0);
    pl__rl_fail(&rl, "10.0.0.1", t);
  }
  assert_int_equal(pl__rl_blocked(&rl, "10.0.0.1", t), 60);
  assert_int_equal(pl__rl_blocked(&rl, "10.0.0.1", t + 30 * SEC), 30);
  assert_int_equal(pl__rl_blocked(&rl, "10.0.0.2", t), 0);            /* others unaffected */
  assert_int_equal(pl__rl_blocked(&rl, "10.0.0.1", t + 60 * SEC), 0); /* window over */
}

static void test_success_resets(void **state) {
  (void)state;
  static pl__ratelimit rl;
  pl__rl_init(&rl, 3, 60);
  pl__rl_fail(&rl, "a", SEC);
  pl__rl_fail(&rl, "a", SEC);
  pl__rl_success(&rl, "a");
  pl__rl_fail(&rl, "a", SEC);
  pl__rl_fail(&rl, "a", SEC);
  assert_int_equal(pl__rl_blocked(&rl, "a", SEC), 0);
}

static void test_old_failures_expire(void **state) {
  (void)state;
  static pl__ratelimit rl;
  pl__rl_init(&rl, 2, 10);
  pl__rl_fail(&rl, "a", SEC);
  pl__rl_fail(&rl, "a", 20 * SEC); /* first one is 19 s old: a fresh count */
  assert_int_equal(pl__rl_blocked(&rl, "a", 20 * SEC), 0);
}

static void test_bounded_table(void **state) {
  (void)state;
  static pl__ratelimit rl;
  pl__rl_init(&rl, 1, 60);
  char addr[32];
  for (int i = 0; i < PL__RL_ENTRIES * 4; i++) {
    snprintf(addr, sizeof(addr), "10.1.%d.%d", i / 256, i % 256);
    pl__rl_fail(&rl, addr, (uint64_t)(i + 1) * SEC);
  }
  /* the most recent addresses are still blocked, the oldest were evicted */
  assert_true(pl__rl_blocked(&rl, addr, (uint64_t)(PL__RL_ENTRIES * 4) * SEC) > 0);
  assert_int_equal(pl__rl_blocked(&rl, "10.1.0.0", (uint64_t)(PL__RL_ENTRIES * 4) * SEC), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_blocks_after_limit),
      cmocka_unit_test(test_success_resets),
      cmocka_unit_test(test_old_failures_expire),
      cmocka_unit_test(test_bounded_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
