/* exchange.c - partitioners and the output writer (see exchange.h). */
#include "exchange.h"
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "keygroup.h"

int td_output_init(td_output_t *o, td_partition_t partition,
                   td_channel_t *const *targets, int n, int max_parallelism,
                   int start) {
  memset(o, 0, sizeof *o);
  if (n < 1 || max_parallelism < 1) return TD_EINVAL;
  o->targets = malloc((size_t)n * sizeof *o->targets);
  o->cur = calloc((size_t)n, sizeof *o->cur);
  if (!o->targets || !o->cur) {
    td_output_destroy(o);
    return TD_ENOMEM;
  }
  memcpy(o->targets, targets, (size_t)n * sizeof *targets);
  o->partition = partition;
  o->n = n;
  o->rr = start % n;
  o->target_parallelism = n;
  o->max_parallelism = max_parallelism;
  o->maxp_shift = -1;
  if ((max_parallelism & (max_parallelism - 1)) == 0)
    for (o->maxp_shift = 0; (1 << o->maxp_shift) < max_parallelism; o->maxp_shift++) {
    }
  return 0;
}

void td_output_destroy(td_output_t *o) {
  if (o->cur) {
    for (int i = 0; i < o->n; i++) {
      td_buffer_t *b = o->cur[i];
      if (b) {
        b->data.len = 0;
        b->count = 0;
        b->kind = TD_BUF_DATA;
        /* hand the credit back without delivering anything */
        td_gate_recycle(NULL, b);
      }
    }
  }
  free(o->targets);
  free(o->cur);
  memset(o, 0, sizeof *o);
}

int td_output_hash_target(const td_output_t *o, const void *key, size_t len) {
  uint64_t h = td_keygroup_hash(key, len);
  if (o->maxp_shift >= 0) {
    /* the same arithmetic as below, without 64-bit divisions (the default
     * max parallelism is a power of two) */
    int64_t kg = (int64_t)(h & (uint64_t)(o->max_parallelism - 1));
    return (int)((kg * o->target_parallelism) >> o->maxp_shift);
  }
  int kg = td_keygroup_of(h, o->max_parallelism);
  return td_keygroup_subtask(kg, o->target_parallelism, o->max_parallelism);
}

/* Send target's buffer b, counting its bytes. */
static void send_buffer(td_output_t *o, int target, td_buffer_t *b) {
  if (td_metrics_enabled())
    atomic_fetch_add_explicit(&o->bytes, (int64_t)b->data.len, memory_order_relaxed);
  td_channel_send(o->targets[target], b);
}

int td_output_buffer(td_output_t *o, int target, td_buffer_t **out) {
  td_buffer_t *b = o->cur[target];
  if (!b) {
    td_channel_t *c = o->targets[target];
    int timed = o->time && td_metrics_enabled() && td_channel_would_block(c);
    if (timed) td_time_wait_begin(o->time, TD_WAIT_BACKPRESSURE, td_metrics_now_ns());
    int rc = td_channel_acquire(c, &b);
    if (timed) td_time_wait_end(o->time, td_metrics_now_ns());
    if (rc) return rc;
    o->cur[target] = b;
  }
  *out = b;
  return 0;
}

void td_output_commit(td_output_t *o, int target) {
  td_buffer_t *b = o->cur[target];
  b->count++;
  if (b->data.len >= TD_BUFFER_SIZE) {
    o->cur[target] = NULL;
    send_buffer(o, target, b);
  }
}

void td_output_flush(td_output_t *o) {
  for (int i = 0; i < o->n; i++) {
    td_buffer_t *b = o->cur[i];
    if (b && b->count) {
      o->cur[i] = NULL;
      send_buffer(o, i, b);
    }
  }
}

int td_output_available(const td_output_t *o) {
  for (int i = 0; i < o->n; i++)
    if (!td_channel_available(o->targets[i], o->cur[i] != NULL)) return 0;
  return 1;
}

int td_output_send_priority(td_output_t *o, const void *event, size_t len) {
  td_output_flush(o);
  int rc = 0;
  for (int i = 0; i < o->n; i++) {
    int r = td_channel_send_priority(o->targets[i], event, len);
    if (r && !rc) rc = r;
  }
  return rc;
}

int td_output_finish(td_output_t *o) {
  td_output_flush(o);
  for (int i = 0; i < o->n; i++) {
    td_buffer_t *b;
    int rc = td_output_buffer(o, i, &b);
    if (rc) return rc;
    o->cur[i] = NULL;
    b->kind = TD_BUF_END;
    send_buffer(o, i, b);
  }
  return 0;
}
