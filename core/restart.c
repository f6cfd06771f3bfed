/* restart.c - a job's restart strategy (restart.h). */
#include "restart.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

int td_restart_init(td_restart_t *r, td_restart_kind_t kind, int attempts, int max_failures,
                    int64_t interval_ms, int64_t delay_ms) {
  memset(r, 0, sizeof *r);
  r->kind = kind;
  r->delay_ms = delay_ms;
  switch (kind) {
  case TD_RESTART_NONE:
    return 0;
  case TD_RESTART_FIXED_DELAY:
    if (attempts < 0 || delay_ms < 0) return TD_EINVAL;
    r->attempts = attempts;
    return 0;
  case TD_RESTART_FAILURE_RATE:
    if (max_failures < 1 || interval_ms <= 0 || delay_ms < 0) return TD_EINVAL;
    r->max_failures = max_failures;
    r->interval_ms = interval_ms;
    r->times = calloc((size_t)max_failures + 1, sizeof *r->times);
    return r->times ? 0 : TD_ENOMEM;
  }
  return TD_EINVAL;
}

int64_t td_restart_on_failure(td_restart_t *r, int64_t now_ms) {
  switch (r->kind) {
  case TD_RESTART_FIXED_DELAY:
    if (r->used >= r->attempts) return -1;
    r->used++;
    return r->delay_ms;
  case TD_RESTART_FAILURE_RATE: {
    /* forget the failures that left the window, then count this one */
    int keep = 0;
    for (int i = 0; i < r->n_times; i++)
      if (r->times[i] > now_ms - r->interval_ms) r->times[keep++] = r->times[i];
    r->n_times = keep;
    if (r->n_times == r->max_failures) return -1; /* this one is one too many */
    r->times[r->n_times++] = now_ms;
    r->used++;
    return r->delay_ms;
  }
  default:
    return -1;
  }
}

void td_restart_destroy(td_restart_t *r) {
  free(r->times);
  r->times = NULL;
  r->n_times = 0;
}
