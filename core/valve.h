/*
 * valve.h - the receiving side's watermark valve (Flink's
 * StatusWatermarkValve): a task's input watermark is the minimum over its
 * input channels that are active, aligned (caught up with the last emitted
 * watermark) and not ended; an ended channel counts as active at +inf (its
 * sender ended with the final watermark). The valve reports a change only
 * when that minimum advances, or when the input turns idle or active.
 *
 * Thread safety: none; a valve belongs to the thread that polls its input.
 */
#ifndef TD_VALVE_H
#define TD_VALVE_H

#include <stdint.h>

/* What td_valve_* report. */
enum {
  TD_VALVE_NONE = 0,
  TD_VALVE_WATERMARK = 1, /* the input watermark advanced to *wm */
  TD_VALVE_IDLE = 2,      /* every active channel turned idle */
  TD_VALVE_ACTIVE = 3     /* a channel of an idle input turned active */
};

typedef struct td_valve {
  int n;
  int64_t *wm;                           /* per channel */
  unsigned char *idle, *ended, *aligned; /* per channel */
  int64_t last;                          /* last watermark reported */
  int idle_out;                          /* the input is idle */
} td_valve_t;

/* td_valve_init - a valve over n >= 1 channels, all active, aligned, at
 * INT64_MIN. Returns 0 or TD_ENOMEM. */
int td_valve_init(td_valve_t *v, int n);

/* td_valve_destroy - free the valve's arrays. */
void td_valve_destroy(td_valve_t *v);

/* td_valve_watermark - channel ch brought watermark wm (ms). */
int td_valve_watermark(td_valve_t *v, int ch, int64_t wm, int64_t *out);

/* td_valve_status - channel ch turned idle (1) or active (0). */
int td_valve_status(td_valve_t *v, int ch, int idle, int64_t *out);

/* td_valve_end - channel ch ended. */
int td_valve_end(td_valve_t *v, int ch, int64_t *out);

/* td_valve_update - what the valve reports now (after td_valve_end was
 * deferred: its report was not acted on). */
int td_valve_update(td_valve_t *v, int64_t *out);

#endif
