/*
 * test_metrics.c - unit tests for the time accounting (metrics.h) with a
 * fake clock: waits for input count as idle, waits for output credit as
 * backpressured, the rest as busy, and the three sum to 1000 ms per second;
 * a wait in progress counts up to the reading; rates are taken over the
 * last second (not since the start) once readings are 1 s apart. Expected
 * values are worked out by hand from the fake timeline. The exception
 * history (td_job_exceptions): jobs of C subtask bodies that fail at a
 * known subtask are listed newest first with that task's name and
 * subtask, at most TD_JOB_EXCEPTIONS; a finished job adds none.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "job.h"
#include "metrics.h"
#include "testlib.h"

#define MS 1000000LL /* ns */

static int near(double a, double b) { return fabs(a - b) < 0.01; }

TD_TEST(test_time_totals_by_kind) {
  td_time_acct_t a;
  td_time_totals_t t;
  td_time_init(&a, 1000 * MS);
  td_time_wait_begin(&a, TD_WAIT_IDLE, 1100 * MS);
  td_time_wait_end(&a, 1400 * MS);         /* idle 300 */
  td_time_wait_begin(&a, TD_WAIT_BACKPRESSURE, 1500 * MS);
  td_time_wait_end(&a, 1600 * MS);         /* backpressured 100 */
  td_time_wait_end(&a, 1650 * MS);         /* no wait in progress: nothing */
  td_time_read(&a, 2000 * MS, &t);
  TD_CHECK_INT(t.elapsed_ns, 1000 * MS);
  TD_CHECK_INT(t.idle_ns, 300 * MS);
  TD_CHECK_INT(t.bp_ns, 100 * MS);
  TD_CHECK_INT(t.busy_ns, 600 * MS);
}

TD_TEST(test_time_wait_in_progress_counts) {
  td_time_acct_t a;
  td_time_totals_t t;
  td_time_init(&a, 0);
  td_time_wait_begin(&a, TD_WAIT_BACKPRESSURE, 200 * MS);
  td_time_read(&a, 1000 * MS, &t); /* still waiting: 800 so far */
  TD_CHECK_INT(t.bp_ns, 800 * MS);
  TD_CHECK_INT(t.busy_ns, 200 * MS);
  /* a new wait ends the one in progress */
  td_time_wait_begin(&a, TD_WAIT_IDLE, 1200 * MS);
  td_time_read(&a, 1500 * MS, &t);
  TD_CHECK_INT(t.bp_ns, 1000 * MS);
  TD_CHECK_INT(t.idle_ns, 300 * MS);
  TD_CHECK_INT(t.busy_ns, 200 * MS);
}

TD_TEST(test_time_rates_sum_to_a_second) {
  td_time_acct_t a;
  td_time_window_t w = {0};
  double busy, idle, bp;
  td_time_init(&a, 0);
  /* second 0..1: idle 250, backpressured 500, busy 250 */
  td_time_wait_begin(&a, TD_WAIT_IDLE, 0);
  td_time_wait_end(&a, 250 * MS);
  td_time_wait_begin(&a, TD_WAIT_BACKPRESSURE, 500 * MS);
  td_time_wait_end(&a, 1000 * MS);
  td_time_rates(&a, &w, 1000 * MS, &busy, &idle, &bp);
  TD_CHECK(near(idle, 250) && near(bp, 500) && near(busy, 250));
  TD_CHECK(near(busy + idle + bp, 1000));
  /* second 1..2: idle the whole second; the rate covers that second only */
  td_time_wait_begin(&a, TD_WAIT_IDLE, 1000 * MS);
  td_time_rates(&a, &w, 2000 * MS, &busy, &idle, &bp);
  TD_CHECK(near(idle, 1000) && near(bp, 0) && near(busy, 0));
  /* a reading 0.5 s later averages over the last 1.5 s (the reading 1 s
   * before): idle 1500 of 1500 */
  td_time_rates(&a, &w, 2500 * MS, &busy, &idle, &bp);
  TD_CHECK(near(idle, 1000));
  /* second 2.5..3.5 (base: the newest reading 1 s old, at 2.5): idle
   * until 3.0, then busy: 500 each */
  td_time_wait_end(&a, 3000 * MS);
  td_time_rates(&a, &w, 3500 * MS, &busy, &idle, &bp);
  TD_CHECK(near(idle, 500));
  TD_CHECK(near(busy, 500));
  TD_CHECK(near(busy + idle + bp, 1000));
}

TD_TEST(test_time_rates_before_any_time_passed) {
  td_time_acct_t a;
  td_time_window_t w = {0};
  double busy, idle, bp;
  td_time_init(&a, 5 * MS);
  td_time_rates(&a, &w, 5 * MS, &busy, &idle, &bp);
  TD_CHECK(near(busy, 0) && near(idle, 0) && near(bp, 0));
}

/* The subtask of task 1 whose index is fail_at fails with "failure <run>"
 * (fail_at < 0: none fails). */
static int fail_at, run;

static void failing_body(td_subtask_t *st) {
  if (st->task == 1 && st->index == fail_at) {
    char msg[64];
    snprintf(msg, sizeof msg, "failure %d", run);
    td_subtask_fail(st, msg);
  }
}

TD_TEST(test_exception_history) {
  static const char *args[1] = {"test"};
  int par[2] = {1, 3};
  td_job_operator_t ops[3] = {{0, "src", "src", "source"}, {1, "m", "enrich", "map"},
                              {1, "s", "out", "sink"}};
  td_job_spec_t spec;
  memset(&spec, 0, sizeof spec);
  spec.name = "exceptions";
  spec.script = "test";
  spec.args = args;
  spec.n_args = 1;
  spec.fingerprint = "";
  spec.job_id = "0";
  spec.max_parallelism = 128;
  spec.n_tasks = 2;
  spec.parallelism = par;
  spec.n_operators = 3;
  spec.operators = ops;
  char err[512];
  static td_job_exception_t ex[TD_JOB_EXCEPTIONS + 4];
  int before = td_job_exceptions(ex, TD_JOB_EXCEPTIONS);
  TD_CHECK_INT(before, 0);
  /* 20 failed attempts, subtask run % 3 failing in run r */
  for (run = 0; run < 20; run++) {
    fail_at = run % 3;
    TD_CHECK_INT(td_job_run(&spec, failing_body, err, sizeof err), TD_ESCRIPT);
  }
  /* a finished job adds nothing */
  fail_at = -1;
  TD_CHECK_INT(td_job_run(&spec, failing_body, err, sizeof err), 0);
  int n = td_job_exceptions(ex, TD_JOB_EXCEPTIONS + 4);
  TD_CHECK_INT(n, TD_JOB_EXCEPTIONS);
  for (int i = 0; i < n; i++) {
    int r = 19 - i; /* newest first: runs 19, 18, ... 4 */
    char want[64];
    snprintf(want, sizeof want, "failure %d", r);
    TD_CHECK_STR(ex[i].message, want);
    TD_CHECK_STR(ex[i].task, "enrich -> out");
    TD_CHECK_INT(ex[i].subtask, r % 3);
    TD_CHECK(ex[i].timestamp_ms > 1600000000000LL); /* wall time, ms */
    if (i > 0) TD_CHECK(ex[i].timestamp_ms <= ex[i - 1].timestamp_ms);
  }
  /* a shorter copy: the newest ones */
  TD_CHECK_INT(td_job_exceptions(ex, 2), 2);
  TD_CHECK_STR(ex[1].message, "failure 18");
}

TD_TEST_MAIN(test_time_totals_by_kind, test_time_wait_in_progress_counts,
             test_time_rates_sum_to_a_second, test_time_rates_before_any_time_passed,
             test_exception_history)
