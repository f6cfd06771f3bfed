/* valve.c - the watermark valve (see valve.h). */
#include "valve.h"

#include <stdlib.h>

#include "error.h"

int td_valve_init(td_valve_t *v, int n) {
  v->n = n;
  v->last = INT64_MIN;
  v->idle_out = 0;
  v->wm = malloc(sizeof(int64_t) * (size_t)n);
  v->idle = calloc((size_t)n, 3);
  if (!v->wm || !v->idle) {
    td_valve_destroy(v);
    return TD_ENOMEM;
  }
  v->ended = v->idle + n;
  v->aligned = v->idle + 2 * n;
  for (int i = 0; i < n; i++) {
    v->wm[i] = INT64_MIN;
    v->aligned[i] = 1;
  }
  return 0;
}

void td_valve_destroy(td_valve_t *v) {
  free(v->wm);
  free(v->idle);
  v->wm = NULL;
  v->idle = v->ended = v->aligned = NULL;
}

int td_valve_update(td_valve_t *v, int64_t *out) {
  int any_active = 0, any_aligned = 0;
  int64_t min = INT64_MAX;
  for (int i = 0; i < v->n; i++) {
    if (v->idle[i] && !v->ended[i]) continue;
    any_active = 1;
    if (!v->aligned[i] && !v->ended[i]) continue;
    int64_t w = v->ended[i] ? INT64_MAX : v->wm[i];
    any_aligned = 1;
    if (w < min) min = w;
  }
  if (!any_active) {
    if (!v->idle_out) {
      v->idle_out = 1;
      return TD_VALVE_IDLE;
    }
    return TD_VALVE_NONE;
  }
  if (v->idle_out) {
    v->idle_out = 0;
    return TD_VALVE_ACTIVE;
  }
  if (any_aligned && min > v->last) {
    v->last = min;
    *out = min;
    return TD_VALVE_WATERMARK;
  }
  return TD_VALVE_NONE;
}

int td_valve_watermark(td_valve_t *v, int ch, int64_t wm, int64_t *out) {
  if (wm <= v->wm[ch]) return TD_VALVE_NONE;
  v->wm[ch] = wm;
  if (!v->aligned[ch] && wm >= v->last) v->aligned[ch] = 1;
  return v->idle[ch] ? TD_VALVE_NONE : td_valve_update(v, out);
}

int td_valve_status(td_valve_t *v, int ch, int idle, int64_t *out) {
  v->idle[ch] = (unsigned char)(idle != 0);
  if (!idle) v->aligned[ch] = v->wm[ch] >= v->last;
  return td_valve_update(v, out);
}

int td_valve_end(td_valve_t *v, int ch, int64_t *out) {
  v->ended[ch] = 1;
  return td_valve_update(v, out);
}
