/*
 * restart.h - a job's restart strategy (Flink's RestartStrategies): after
 * each failure of the job, whether and after what delay the planning
 * thread restarts it from the checkpoint recovery chooses
 * (td_meta_latest).
 *
 *   none          never restart
 *   fixed_delay   at most `attempts` restarts, each after `delay_ms`
 *                 (Flink's fixed-delay)
 *   failure_rate  restart after `delay_ms` unless more than `max_failures`
 *                 failures fell within the last `interval_ms` (Flink's
 *                 failure-rate)
 *
 * lua/tide/checkpoint.lua parses env{restart = ...} into one (with its
 * defaults and error messages); Lua-free, not thread-safe (the planning
 * thread owns it).
 */
#ifndef TD_RESTART_H
#define TD_RESTART_H

#include <stdint.h>

typedef enum td_restart_kind {
  TD_RESTART_NONE = 0,
  TD_RESTART_FIXED_DELAY,
  TD_RESTART_FAILURE_RATE
} td_restart_kind_t;

typedef struct td_restart {
  td_restart_kind_t kind;
  int attempts;           /* fixed_delay: restarts allowed (>= 0) */
  int max_failures;       /* failure_rate: failures allowed per interval (>= 1) */
  int64_t interval_ms;    /* failure_rate: the window, ms */
  int64_t delay_ms;       /* before each restart, ms (>= 0) */
  int used;               /* restarts granted so far */
  int64_t *times;         /* failure_rate: failure times in the window,
                             oldest first (max_failures + 1 at most) */
  int n_times;
} td_restart_t;

/*
 * td_restart_init - a strategy of `kind` with its parameters (those the
 * kind does not use are ignored). Returns 0, TD_EINVAL (a parameter out of
 * range: attempts < 0, max_failures < 1, interval_ms <= 0 or delay_ms < 0
 * for the kind), or TD_ENOMEM.
 */
int td_restart_init(td_restart_t *r, td_restart_kind_t kind, int attempts, int max_failures,
                    int64_t interval_ms, int64_t delay_ms);

/*
 * td_restart_on_failure - the job failed at now_ms (any monotonic or wall
 * clock in ms, the same for every call): the delay in ms before the
 * restart, or -1 when the strategy gives up (the job fails for good).
 */
int64_t td_restart_on_failure(td_restart_t *r, int64_t now_ms);

/* td_restart_destroy - release what td_restart_init allocated. */
void td_restart_destroy(td_restart_t *r);

#endif
