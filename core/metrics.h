/*
 * metrics.h - a subtask's time accounting: how much of each second it is
 * busy, idle (waiting for input) or backpressured (waiting for output
 * credit), as Flink's busyTimeMsPerSecond, idleTimeMsPerSecond and
 * backPressuredTimeMsPerSecond (FLIP-27/-156 task metrics).
 *
 * The subtask's thread marks the start and end of each wait (never per
 * record: only when it actually waits); any other thread reads the totals
 * through a sequence lock, including a wait in progress. Busy time is the
 * rest of the elapsed time. Rates are taken between two readings: the
 * reader keeps a td_time_window_t and td_time_rates gives the figures
 * averaged since the reading at least 1 s before (or since the start).
 *
 * Times are in nanoseconds of a monotonic clock the caller passes in
 * (td_metrics_now_ns; unit tests pass a fake clock).
 */
#ifndef TD_METRICS_H
#define TD_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

/* What a subtask waits for. */
typedef enum td_wait_kind {
  TD_WAIT_NONE = 0,
  TD_WAIT_IDLE = 1,          /* input (Flink's idle time) */
  TD_WAIT_BACKPRESSURE = 2   /* output credit (Flink's backpressured time) */
} td_wait_kind_t;

typedef struct td_time_acct {
  _Atomic uint64_t seq;      /* odd while the writer updates */
  _Atomic int64_t start_ns;  /* when accounting began */
  _Atomic int64_t idle_ns, bp_ns; /* finished waits */
  _Atomic int64_t since_ns;  /* start of the wait in progress */
  _Atomic int kind;          /* td_wait_kind_t of the wait in progress */
} td_time_acct_t;

/* Totals at one moment, ns since the accounting began. */
typedef struct td_time_totals {
  int64_t at_ns, elapsed_ns, idle_ns, bp_ns, busy_ns;
} td_time_totals_t;

/* A reader's previous readings, for rates (td_time_rates). */
typedef struct td_time_window {
  td_time_totals_t older, newer; /* newer.at_ns == 0: none yet */
} td_time_window_t;

/*
 * td_metrics_set_enabled - switch the time and byte accounting of every
 * subtask on (the default) or off (`tide run --no-metrics`). Call before a
 * job starts; the record counters and watermarks stay on either way (they
 * predate this switch and the control endpoint's views rely on them).
 */
void td_metrics_set_enabled(int on);

/* td_metrics_enabled - whether time and byte accounting is on. */
int td_metrics_enabled(void);

/* td_metrics_now_ns - CLOCK_MONOTONIC now, in nanoseconds. */
int64_t td_metrics_now_ns(void);

/* td_time_init - start accounting at now_ns (ns): nothing waited yet. */
void td_time_init(td_time_acct_t *a, int64_t now_ns);

/*
 * td_time_wait_begin - the owning thread starts waiting for `kind`
 * (TD_WAIT_IDLE or TD_WAIT_BACKPRESSURE) at now_ns. A wait already in
 * progress is ended first. Only the owning thread calls it.
 */
void td_time_wait_begin(td_time_acct_t *a, td_wait_kind_t kind, int64_t now_ns);

/* td_time_wait_end - the wait in progress (if any) ended at now_ns; its
 * time is added to its kind's total. Only the owning thread calls it. */
void td_time_wait_end(td_time_acct_t *a, int64_t now_ns);

/*
 * td_time_read - the totals at now_ns (a wait in progress counted up to
 * now_ns), consistent with each other; any thread. busy = elapsed - idle
 * - backpressured (never below 0).
 */
void td_time_read(td_time_acct_t *a, int64_t now_ns, td_time_totals_t *out);

/*
 * td_time_rates - busy, idle and backpressured ms per second (each 0 to
 * 1000, summing to 1000 up to rounding) averaged between the reading now_ns
 * and the window's reading at least 1 s older (the oldest kept, or the
 * start of accounting), then records this reading in w (zeroed before the
 * first call). Called by one reader per window.
 */
void td_time_rates(td_time_acct_t *a, td_time_window_t *w, int64_t now_ns, double *busy_ms,
                   double *idle_ms, double *bp_ms);

#endif
