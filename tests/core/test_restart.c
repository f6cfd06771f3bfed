/*
 * test_restart.c - unit tests for restart strategies (restart.h), against
 * Flink's RestartStrategies: fixed-delay allows `attempts` restarts;
 * failure-rate gives up on the failure that makes more than max_failures
 * within the interval (older ones leave the window).
 */
#include <string.h>

#include "error.h"
#include "restart.h"
#include "testlib.h"

TD_TEST(test_restart_none_never_restarts) {
  td_restart_t r;
  TD_CHECK_INT(td_restart_init(&r, TD_RESTART_NONE, 0, 0, 0, 0), 0);
  TD_CHECK_INT(td_restart_on_failure(&r, 0), -1);
  TD_CHECK_INT(td_restart_on_failure(&r, 100000), -1);
  td_restart_destroy(&r);
}

TD_TEST(test_restart_fixed_delay_counts_attempts) {
  td_restart_t r;
  TD_CHECK_INT(td_restart_init(&r, TD_RESTART_FIXED_DELAY, 3, 0, 0, 1000), 0);
  TD_CHECK_INT(td_restart_on_failure(&r, 0), 1000);
  TD_CHECK_INT(td_restart_on_failure(&r, 5), 1000);
  TD_CHECK_INT(td_restart_on_failure(&r, 1000000), 1000);
  TD_CHECK_INT(td_restart_on_failure(&r, 1000001), -1);
  TD_CHECK_INT(r.used, 3);
  td_restart_destroy(&r);
  TD_CHECK_INT(td_restart_init(&r, TD_RESTART_FIXED_DELAY, 0, 0, 0, 10), 0);
  TD_CHECK_INT(td_restart_on_failure(&r, 0), -1);
  td_restart_destroy(&r);
}

TD_TEST(test_restart_failure_rate_window) {
  td_restart_t r;
  TD_CHECK_INT(td_restart_init(&r, TD_RESTART_FAILURE_RATE, 0, 2, 10000, 5), 0);
  TD_CHECK_INT(td_restart_on_failure(&r, 0), 5);     /* 1 in (-10 s, 0] */
  TD_CHECK_INT(td_restart_on_failure(&r, 4000), 5);  /* 2 */
  TD_CHECK_INT(td_restart_on_failure(&r, 10000), 5); /* 0 left (it is not > 0): 2 */
  TD_CHECK_INT(td_restart_on_failure(&r, 12000), -1); /* 4000, 10000, 12000: 3 > 2 */
  td_restart_destroy(&r);
  /* failures spread wider than the interval never give up */
  TD_CHECK_INT(td_restart_init(&r, TD_RESTART_FAILURE_RATE, 0, 1, 1000, 0), 0);
  for (int i = 0; i < 100; i++) TD_CHECK_INT(td_restart_on_failure(&r, (int64_t)i * 1000), 0);
  TD_CHECK_INT(td_restart_on_failure(&r, 99500), -1);
  td_restart_destroy(&r);
}

TD_TEST(test_restart_rejects_bad_parameters) {
  td_restart_t r;
  TD_CHECK_INT(td_restart_init(&r, TD_RESTART_FIXED_DELAY, -1, 0, 0, 0), TD_EINVAL);
  TD_CHECK_INT(td_restart_init(&r, TD_RESTART_FIXED_DELAY, 1, 0, 0, -5), TD_EINVAL);
  TD_CHECK_INT(td_restart_init(&r, TD_RESTART_FAILURE_RATE, 0, 0, 1000, 0), TD_EINVAL);
  TD_CHECK_INT(td_restart_init(&r, TD_RESTART_FAILURE_RATE, 0, 1, 0, 0), TD_EINVAL);
  TD_CHECK_INT(td_restart_init(&r, (td_restart_kind_t)9, 0, 1, 1, 0), TD_EINVAL);
  td_restart_destroy(&r);
}

TD_TEST_MAIN(test_restart_none_never_restarts, test_restart_fixed_delay_counts_attempts,
             test_restart_failure_rate_window, test_restart_rejects_bad_parameters)
