/* task.c - the task engine of a subtask (see task.h). */
#include "task.h"

#include "asyncsnap.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "checkpoint.h"
#include "error.h"
#include "exchange.h"
#include "forkguard.h"
#include "inband.h"
#include "input.h"
#include "metadata.h"
#include "msgpack.h"
#include "snapshot.h"
#include "valve.h"

struct td_task {
  td_subtask_t *st;
  const td_job_spec_t *spec;
  td_coord_t *coord;
  td_input_t *input;        /* tasks with inputs */
  td_valve_t valve;
  int valve_dirty;          /* a channel ended at a barrier trigger: the
                               valve's report comes with the next poll */
  int64_t injected;         /* sources: the last barrier injected */
  int64_t first_bar_id;     /* the newest checkpoint whose barrier came in */
  int64_t first_bar_us;     /* when its first barrier came (td_task_now_us) */
  int64_t buffer_timeout_ms;
  int64_t last_flush_ms;
  /* the batch handed out by the last poll */
  uint32_t *off, *end;
  int64_t *ts;
  int cap;
  int advance;              /* the current buffer is to be advanced to */
  size_t advance_to;        /* advance_to at the next poll */
  /* td_task_record_begin .. end */
  td_output_t *rec_out;
  int rec_target;
  size_t rec_before;
  td_wbuf_t scratch;
  /* the thread writing fork-free snapshots (asyncsnap.h), from the first */
  td_asnap_worker_t *asnap;
  /* the snapshot child */
  int child_err_fd;
  int64_t child_id;
  char chk_dir[4200];
  char err[1024];
};

__attribute__((format(printf, 3, 4))) static int fail_with(td_task_t *t, int rc,
                                                          const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->err, sizeof t->err, fmt, ap);
  va_end(ap);
  return rc;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t td_task_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int td_task_new(td_task_t **out, td_subtask_t *st) {
  *out = NULL;
  td_task_t *t = calloc(1, sizeof *t);
  if (!t) return TD_ENOMEM;
  t->st = st;
  t->spec = td_job_spec_of(st->job);
  t->coord = td_job_coordinator(st->job);
  t->buffer_timeout_ms = t->spec->buffer_timeout_ms;
  t->last_flush_ms = mono_ms();
  t->child_err_fd = -1;
  int rc = 0;
  if (st->gate) {
    rc = td_valve_init(&t->valve, td_gate_size(st->gate));
    if (rc == 0) rc = td_input_new(&t->input, st->gate, (td_align_mode_t)t->spec->align_mode);
  }
  if (rc) {
    td_task_free(t);
    return rc;
  }
  *out = t;
  return 0;
}

void td_task_free(td_task_t *t) {
  if (!t) return;
  td_asnap_worker_free(t->asnap);
  td_input_free(t->input);
  td_valve_destroy(&t->valve);
  td_wbuf_destroy(&t->scratch);
  free(t->off);
  free(t->end);
  free(t->ts);
  free(t);
}

td_subtask_t *td_task_subtask(const td_task_t *t) { return t->st; }

const char *td_task_error(const td_task_t *t) { return t->err; }

void td_task_fail(td_task_t *t, const char *message) { td_subtask_fail(t->st, message); }

int td_task_cancelled(const td_task_t *t) { return td_job_cancelled(t->st->job); }

/* ---- output ---- */

void td_task_flush(td_task_t *t) {
  for (int e = 0; e < t->spec->n_edges; e++)
    if (t->st->outputs[e].n) td_output_flush(&t->st->outputs[e]);
  t->last_flush_ms = mono_ms();
}

/* Send partly filled buffers once the buffer timeout passed. */
static void flush_due(td_task_t *t) {
  if (mono_ms() - t->last_flush_ms >= t->buffer_timeout_ms) td_task_flush(t);
}

/* The output of edge e, or NULL (with the error set) if it is not ours. */
static td_output_t *output_of(td_task_t *t, int e) {
  if (e < 0 || e >= t->spec->n_edges || !t->st->outputs[e].n) {
    fail_with(t, TD_EINVAL, "edge %d is not an output of this task", e + 1);
    return NULL;
  }
  return &t->st->outputs[e];
}

/* Append bytes to one target's buffer of o. */
static int append_to(td_output_t *o, int target, const void *bytes, size_t len) {
  td_buffer_t *b;
  int rc = td_output_buffer(o, target, &b);
  if (rc) return rc;
  if (td_wbuf_reserve(&b->data, len)) return TD_ENOMEM;
  memcpy(b->data.data + b->data.len, bytes, len);
  b->data.len += len;
  td_output_commit(o, target);
  return 0;
}

/* Append bytes to every target of o. */
static int append_all(td_output_t *o, const void *bytes, size_t len) {
  for (int i = 0; i < o->n; i++) {
    int rc = append_to(o, i, bytes, len);
    if (rc) return rc;
  }
  return 0;
}

static int out_error(td_task_t *t, int rc) {
  if (rc == TD_ECANCELED) return rc;
  return fail_with(t, rc, "cannot send: %s", td_strerror(rc));
}

/* Whether checkpoint id is a savepoint: always aligned, whatever the
 * job's checkpointing mode. */
static int savepoint(td_task_t *t, int64_t id) {
  return td_coord_kind(t->coord, id, NULL) == TD_CKPT_SAVEPOINT;
}

/* An in-band entry on every output; an unaligned checkpoint's barrier goes
 * as a priority event that overtakes the buffers queued on the way
 * (FLIP-76); a savepoint's goes in band as an aligned barrier. */
static int forward_event(td_task_t *t, int kind, int64_t v) {
  unsigned char ev[TD_EXT8_SIZE];
  if (kind == TD_EXT_BARRIER && t->spec->align_mode != TD_ALIGN_EXACTLY_ONCE && savepoint(t, v))
    kind = TD_EXT_ALIGNED_BARRIER;
  td_ext8(ev, kind, v);
  int priority = kind == TD_EXT_BARRIER && t->spec->align_mode == TD_ALIGN_UNALIGNED;
  for (int e = 0; e < t->spec->n_edges; e++) {
    td_output_t *o = &t->st->outputs[e];
    if (!o->n) continue;
    int rc = priority ? td_output_send_priority(o, ev, sizeof ev) : append_all(o, ev, sizeof ev);
    if (rc == TD_ECANCELED) return rc;
    if (rc)
      return fail_with(t, rc, "cannot send checkpoint %s %lld: %s",
                       kind == TD_EXT_CANCEL ? "cancel marker" : "barrier", (long long)v,
                       td_strerror(rc));
  }
  td_task_flush(t);
  return 0;
}

/* The target of a record on o. */
static int target_of(td_output_t *o, const void *key, size_t klen) {
  switch (o->partition) {
  case TD_PART_REBALANCE: return td_output_next_target(o);
  case TD_PART_HASH: return td_output_hash_target(o, key, klen);
  default: return 0;
  }
}

int td_task_record_begin(td_task_t *t, int edge, const void *key, size_t klen, int64_t ts,
                         td_wbuf_t **buf) {
  td_output_t *o = output_of(t, edge);
  if (!o) return TD_EINVAL;
  if (o->partition == TD_PART_BROADCAST)
    return fail_with(t, TD_EINVAL, "edge %d is a broadcast edge: use td_task_emit", edge + 1);
  int target = target_of(o, key, klen);
  td_buffer_t *b;
  int rc = td_output_buffer(o, target, &b);
  if (rc) return out_error(t, rc);
  t->rec_out = o;
  t->rec_target = target;
  t->rec_before = b->data.len;
  if (ts != TD_NO_TIMESTAMP) {
    if (td_wbuf_reserve(&b->data, TD_EXT8_SIZE)) return out_error(t, TD_ENOMEM);
    td_ext8((unsigned char *)b->data.data + b->data.len, TD_EXT_TIMESTAMP, ts);
    b->data.len += TD_EXT8_SIZE;
  }
  *buf = &b->data;
  return 0;
}

void td_task_record_end(td_task_t *t, int ok) {
  td_output_t *o = t->rec_out;
  if (!o) return;
  t->rec_out = NULL;
  if (ok) {
    td_output_commit(o, t->rec_target);
  } else {
    td_buffer_t *b;
    if (td_output_buffer(o, t->rec_target, &b) == 0) b->data.len = t->rec_before;
  }
}

int td_task_emit(td_task_t *t, int edge, const void *rec, size_t len, int64_t ts,
                 const void *key, size_t klen) {
  td_output_t *o = output_of(t, edge);
  if (!o) return TD_EINVAL;
  if (o->partition != TD_PART_BROADCAST) {
    td_wbuf_t *b;
    int rc = td_task_record_begin(t, edge, key, klen, ts, &b);
    if (rc) return rc;
    if (td_wbuf_reserve(b, len)) {
      td_task_record_end(t, 0);
      return out_error(t, TD_ENOMEM);
    }
    memcpy(b->data + b->len, rec, len);
    b->len += len;
    td_task_record_end(t, 1);
    return 0;
  }
  /* broadcast: the whole entry once, then to every target */
  td_wbuf_t *s = &t->scratch;
  s->len = 0;
  if (td_wbuf_reserve(s, len + TD_EXT8_SIZE)) return out_error(t, TD_ENOMEM);
  if (ts != TD_NO_TIMESTAMP) {
    td_ext8((unsigned char *)s->data, TD_EXT_TIMESTAMP, ts);
    s->len = TD_EXT8_SIZE;
  }
  memcpy(s->data + s->len, rec, len);
  s->len += len;
  int rc = append_all(o, s->data, s->len);
  return rc ? out_error(t, rc) : 0;
}

int td_task_emit_batch(td_task_t *t, int edge, const char *data, const uint32_t *ends, int n,
                       const int64_t *ts, const char *keys, const uint32_t *key_ends) {
  td_output_t *o = output_of(t, edge);
  if (!o) return TD_EINVAL;
  uint32_t start = 0, kstart = 0;
  if (o->partition == TD_PART_BROADCAST) {
    for (int i = 0; i < n; i++) {
      int rc = td_task_emit(t, edge, data + start, ends[i] - start,
                            ts ? ts[i] : TD_NO_TIMESTAMP, NULL, 0);
      if (rc) return rc;
      start = ends[i];
    }
    flush_due(t);
    return 0;
  }
  /* td_task_record_begin, append, td_task_record_end per record, with the
   * output looked up once: the LuaJIT host's whole batch in one call */
  for (int i = 0; i < n; i++) {
    const char *k = NULL;
    size_t klen = 0;
    if (keys && key_ends) {
      k = keys + kstart;
      klen = key_ends[i] - kstart;
      kstart = key_ends[i];
    }
    int target = target_of(o, k, klen);
    td_buffer_t *b = o->cur[target];
    if (!b) {
      int rc = td_output_buffer(o, target, &b);
      if (rc) return out_error(t, rc);
    }
    size_t len = ends[i] - start;
    int64_t tsv = ts ? ts[i] : TD_NO_TIMESTAMP;
    size_t need = len + (tsv != TD_NO_TIMESTAMP ? TD_EXT8_SIZE : 0);
    td_wbuf_t *w = &b->data;
    if (w->cap - w->len < need && td_wbuf_reserve(w, need)) return out_error(t, TD_ENOMEM);
    if (tsv != TD_NO_TIMESTAMP) {
      td_ext8((unsigned char *)w->data + w->len, TD_EXT_TIMESTAMP, tsv);
      w->len += TD_EXT8_SIZE;
    }
    memcpy(w->data + w->len, data + start, len);
    w->len += len;
    td_output_commit(o, target);
    start = ends[i];
  }
  if (n > 0) atomic_fetch_add_explicit(&t->st->records_out, n, memory_order_relaxed);
  flush_due(t);
  return 0;
}

void td_task_flush_due(td_task_t *t) { flush_due(t); }

int td_task_emit_watermark(td_task_t *t, int edge, int64_t wm) {
  td_output_t *o = output_of(t, edge);
  if (!o) return TD_EINVAL;
  unsigned char ev[TD_EXT8_SIZE];
  td_ext8(ev, TD_EXT_WATERMARK, wm);
  int rc = append_all(o, ev, sizeof ev);
  if (!t->st->gate) atomic_store_explicit(&t->st->watermark, wm, memory_order_relaxed);
  atomic_store_explicit(&t->st->watermark_out, wm, memory_order_relaxed);
  return rc ? out_error(t, rc) : 0;
}

int td_task_emit_status(td_task_t *t, int edge, int idle) {
  td_output_t *o = output_of(t, edge);
  if (!o) return TD_EINVAL;
  unsigned char ev[TD_EXT1_SIZE] = {0xd4, TD_EXT_STATUS, (unsigned char)(idle != 0)};
  int rc = append_all(o, ev, sizeof ev);
  return rc ? out_error(t, rc) : 0;
}

int td_task_finish(td_task_t *t) {
  static const unsigned char end_marker[TD_EXT1_SIZE] = {0xd4, TD_EXT_END, 0};
  for (int e = 0; e < t->spec->n_edges; e++) {
    td_output_t *o = &t->st->outputs[e];
    if (!o->n) continue;
    int rc = append_all(o, end_marker, sizeof end_marker);
    if (rc == 0) rc = td_output_finish(o);
    if (rc) return out_error(t, rc);
  }
  /* finished: what the subtask does from now on (waiting for the final
   * checkpoint) is idle time, as Flink's finished tasks report none */
  td_time_wait_begin(&t->st->time, TD_WAIT_IDLE, td_metrics_now_ns());
  return 0;
}

/* Wait until every output can take the next batch, sending partly filled
 * buffers at the buffer timeout meanwhile. A TD_AWAIT_* code
 * (TD_AWAIT_TIMEOUT only once timeout_ms, if >= 0, passed), or
 * TD_ECANCELED. */
static int await_outputs(td_task_t *t, int watch_priority, int64_t injected, int timeout_ms) {
  int64_t start = mono_ms();
  int waiting = 0;
  for (;;) {
    int64_t now = mono_ms();
    int64_t period = t->buffer_timeout_ms > 0 ? t->buffer_timeout_ms : TD_BUFFER_TIMEOUT_DEFAULT_MS;
    int wait = (int)(t->last_flush_ms + t->buffer_timeout_ms - now) + 1;
    if (wait <= 1) {
      td_task_flush(t);
      wait = (int)period;
    }
    int last = 0;
    if (timeout_ms >= 0) {
      int left = (int)(start + timeout_ms - now);
      if (left <= wait) {
        wait = left < 0 ? 0 : left;
        last = 1;
      }
    }
    if (!waiting && td_metrics_enabled() && !td_subtask_outputs_available(t->st)) {
      /* waiting for output credit: backpressured time (metrics.h) */
      waiting = 1;
      td_time_wait_begin(&t->st->time, TD_WAIT_BACKPRESSURE, td_metrics_now_ns());
    }
    int r = td_subtask_await_outputs(t->st, watch_priority, injected, wait);
    if (r == TD_ECANCELED || r != TD_AWAIT_TIMEOUT || last) {
      if (waiting) td_time_wait_end(&t->st->time, td_metrics_now_ns());
      return r;
    }
  }
}

int td_task_tick(td_task_t *t, int64_t *id) {
  *id = 0;
  if (td_job_cancelled(t->st->job)) return TD_ECANCELED;
  flush_due(t);
  if (t->st->gate) return 0;
  for (;;) {
    int64_t req = td_coord_requested(t->coord, t->st->global);
    if (req > t->injected) {
      *id = req;
      return 0;
    }
    int r = await_outputs(t, 0, t->injected, -1);
    if (r < 0) return r;
    if (r == TD_AWAIT_READY) return 0;
  }
}

/* ---- input ---- */

/* Unaligned: checkpoint id's in-flight data is complete; hand it to the
 * coordinator, which writes it. */
static void hand_inflight(td_task_t *t, int64_t id) {
  td_subtask_t *st = t->st;
  int n = td_gate_size(st->gate), k = 0;
  uint32_t *tags = malloc(sizeof *tags * (size_t)n);
  td_wbuf_t *bufs = malloc(sizeof *bufs * (size_t)n);
  int rc = tags && bufs ? td_input_take_inflight(t->input, id, &k, tags, bufs) : TD_ENOMEM;
  if (rc == TD_ENOMEM) {
    td_coord_decline(t->coord, id, st->global, "out of memory keeping in-flight data");
  } else if (rc == 0) {
    char name[64];
    snprintf(name, sizeof name, "inflight-%d-%d.state", st->task + 1, st->index);
    td_coord_inflight(t->coord, id, st->global, name, k, tags, bufs);
  }
  free(tags);
  free(bufs);
}

/* Act on the aligner's events: *trigger receives the checkpoint to
 * snapshot now (TRIGGER) or stays. 0 or an error. */
static int align_events(td_task_t *t, int r, const td_align_event_t *ev, int64_t *trigger) {
  if (r <= 0) return 0;
  int rc = 0;
  if (r & TD_ALIGN_ABORTED) {
    td_coord_decline(t->coord, ev->aborted, t->st->global, "barrier alignment aborted");
    rc = forward_event(t, TD_EXT_CANCEL, ev->aborted);
  }
  if (rc == 0 && (r & TD_ALIGN_CANCELLED)) {
    td_coord_decline(t->coord, ev->cancelled, t->st->global, "cancelled upstream");
    rc = forward_event(t, TD_EXT_CANCEL, ev->cancelled);
  }
  if (r & TD_ALIGN_CAPTURED) hand_inflight(t, ev->captured);
  if (r & TD_ALIGN_TRIGGER) *trigger = ev->triggered;
  return rc;
}

static int align_error(td_task_t *t, int rc) {
  if (rc == TD_ECANCELED) return rc;
  return fail_with(t, rc, "checkpoint barrier alignment: %s", td_strerror(rc));
}

/* The next step of the input: without waiting first, and if there is
 * nothing, with partly filled output buffers sent before waiting up to
 * timeout_ms (a task about to wait for input flushes). */
static int input_next(td_task_t *t, int timeout, int *events, td_align_event_t *ev) {
  int64_t align_timeout = t->spec->align_timeout_ms;
  int r = td_input_next(t->input, 0, align_timeout, events, ev);
  if (r == TD_INPUT_TIMEOUT) {
    td_task_flush(t);
    if (timeout != 0 && td_metrics_enabled()) { /* waiting for input: idle time (metrics.h) */
      td_time_wait_begin(&t->st->time, TD_WAIT_IDLE, td_metrics_now_ns());
      r = td_input_next(t->input, timeout, align_timeout, events, ev);
      td_time_wait_end(&t->st->time, td_metrics_now_ns());
    } else if (timeout != 0) {
      r = td_input_next(t->input, timeout, align_timeout, events, ev);
    }
  } else {
    flush_due(t);
  }
  return r < 0 ? align_error(t, r) : r;
}

/* Room for one more record view in the batch arrays. */
static int grow(td_task_t *t, int n) {
  if (n < t->cap) return 0;
  int cap = t->cap ? 2 * t->cap : 256;
  uint32_t *off = realloc(t->off, sizeof *off * (size_t)cap);
  if (off) t->off = off;
  uint32_t *end = off ? realloc(t->end, sizeof *end * (size_t)cap) : NULL;
  if (end) t->end = end;
  int64_t *ts = end ? realloc(t->ts, sizeof *ts * (size_t)cap) : NULL;
  if (!ts) return TD_ENOMEM;
  t->ts = ts;
  t->cap = cap;
  return 0;
}

static int batch_event(td_batch_t *b, int valve_report, int64_t value) {
  switch (valve_report) {
  case TD_VALVE_WATERMARK:
    b->event = TD_TASK_EV_WATERMARK;
    b->value = value;
    return 1;
  case TD_VALVE_IDLE: b->event = TD_TASK_EV_IDLE; return 1;
  case TD_VALVE_ACTIVE: b->event = TD_TASK_EV_ACTIVE; return 1;
  default: return 0;
  }
}

int td_task_poll(td_task_t *t, int timeout, td_batch_t *b) {
  memset(b, 0, sizeof *b);
  b->edge = -1;
  if (!t->st->gate) return TD_TASK_END;
  td_input_t *in = t->input;
  if (t->advance) { /* the views of the last batch are no longer needed */
    t->advance = 0;
    td_input_advance(in, t->advance_to);
  }
  if (t->valve_dirty) {
    int64_t wm = 0;
    t->valve_dirty = 0;
    if (batch_event(b, td_valve_update(&t->valve, &wm), wm)) {
      if (b->event == TD_TASK_EV_WATERMARK)
        atomic_store_explicit(&t->st->watermark, wm, memory_order_relaxed);
      return TD_TASK_BATCH;
    }
  }
  int events, rc;
  td_align_event_t aev;
  int64_t trigger = 0;
  /* priority events, and outputs with room for a batch, first */
  for (;;) {
    int r = td_input_priority(in, &events, &aev);
    if (r < 0) return align_error(t, r);
    if (r > 0) {
      if ((rc = align_events(t, events, &aev, &trigger))) return rc;
      if (trigger) goto barrier;
      continue;
    }
    if (td_subtask_outputs_available(t->st)) break;
    r = await_outputs(t, !td_input_replaying(in), -1, timeout);
    if (r < 0) return r;
    if (r == TD_AWAIT_TIMEOUT) return TD_TASK_TIMEOUT;
  }
  for (;;) {
    int r = input_next(t, timeout, &events, &aev);
    if (r < 0) return r;
    if (r == TD_INPUT_DATA) break;
    if (r == TD_INPUT_END) return TD_TASK_END;
    if (r == TD_INPUT_TIMEOUT) return TD_TASK_TIMEOUT;
    if ((rc = align_events(t, events, &aev, &trigger))) return rc;
    if (trigger) goto barrier;
  }
  td_input_view_t view;
  td_input_view(in, &view);
  int ch = view.channel;
  b->edge = view.tag;
  b->data = view.data;
  const unsigned char *p = (const unsigned char *)view.data;
  size_t len = view.len, off = view.off;
  size_t off0 = off;
  int budget = td_input_budget(in);
  int n = 0, gone = 0, event = 0;
  td_valve_t *v = &t->valve;
  while (off < len && !event && !trigger && n < budget) {
    const unsigned char *e = p + off;
    if (e[0] == 0xd7 && off + TD_EXT8_SIZE <= len && e[1] == TD_EXT_WATERMARK) {
      off += TD_EXT8_SIZE;
      int64_t wm = 0;
      int rep = td_valve_watermark(v, ch, td_get_be64(e + 2), &wm);
      event = batch_event(b, rep, wm);
      continue;
    }
    int control = 0;
    size_t size = 0;
    if (e[0] == 0xd7 && off + TD_EXT8_SIZE <= len &&
        (e[1] == TD_EXT_BARRIER || e[1] == TD_EXT_CANCEL || e[1] == TD_EXT_ALIGNED_BARRIER)) {
      control = e[1];
      size = TD_EXT8_SIZE;
    } else if (e[0] == 0xd4 && off + TD_EXT1_SIZE <= len && e[1] == TD_EXT_END) {
      control = TD_EXT_END;
      size = TD_EXT1_SIZE;
    }
    if (control) {
      int64_t id = control == TD_EXT_END ? 0 : td_get_be64(e + 2);
      if (control != TD_EXT_END && control != TD_EXT_CANCEL && id > t->first_bar_id) {
        t->first_bar_id = id; /* the start delay ends, the alignment begins */
        t->first_bar_us = td_task_now_us();
      }
      int r = td_input_control(in, control, off, size, id, &aev);
      if (r < 0)
        return fail_with(t, r, "checkpoint barrier %lld on channel %d: %s", (long long)id, ch,
                         td_strerror(r));
      if ((rc = align_events(t, r, &aev, &trigger))) return rc;
      if (control == TD_EXT_END) {
        int64_t wm = 0;
        int rep = td_valve_end(v, ch, &wm);
        if (trigger) t->valve_dirty = 1; /* reported after the barrier */
        else event = batch_event(b, rep, wm);
      }
      if (!td_input_view(in, &view)) { /* the aligner holds the rest */
        gone = 1;
        break;
      }
      off = view.off;
      continue;
    }
    if (e[0] == 0xd4 && off + TD_EXT1_SIZE <= len && e[1] == TD_EXT_STATUS) {
      off += TD_EXT1_SIZE;
      int64_t wm = 0;
      int rep = td_valve_status(v, ch, e[2] != 0, &wm);
      event = batch_event(b, rep, wm);
      continue;
    }
    int64_t tsv = TD_NO_TIMESTAMP;
    if (e[0] == 0xd7 && off + TD_EXT8_SIZE <= len && e[1] == TD_EXT_TIMESTAMP) {
      tsv = td_get_be64(e + 2);
      off += TD_EXT8_SIZE;
      b->has_ts = 1;
    }
    const char *q = view.data + off;
    if (td_mp_skip_value(&q, view.data + len) != 0)
      return fail_with(t, TD_ECORRUPT, "corrupt exchange buffer (channel %d, byte %zu)", ch, off);
    if (grow(t, n)) return fail_with(t, TD_ENOMEM, "out of memory");
    t->off[n] = (uint32_t)off;
    off = (size_t)(q - view.data);
    t->end[n] = (uint32_t)off;
    t->ts[n] = tsv;
    n++;
  }
  if (!gone) {
    t->advance = 1;
    t->advance_to = off;
  }
  td_input_returned(in, n);
  /* the control endpoint's counters: once per batch */
  if (n) atomic_fetch_add_explicit(&t->st->records_in, n, memory_order_relaxed);
  if (td_metrics_enabled())
    atomic_fetch_add_explicit(&t->st->bytes_in, (int64_t)(off - off0), memory_order_relaxed);
  if (b->event == TD_TASK_EV_WATERMARK)
    atomic_store_explicit(&t->st->watermark, b->value, memory_order_relaxed);
  b->n = n;
  b->off = t->off;
  b->stop = t->end;
  b->ts = b->has_ts ? t->ts : NULL;
  if (trigger) {
    /* a watermark or status change in the same call is impossible:
     * decoding stops at the first event of either kind */
    b->event = TD_TASK_EV_BARRIER;
    b->value = trigger;
  }
  return TD_TASK_BATCH;
barrier:
  b->event = TD_TASK_EV_BARRIER;
  b->value = trigger;
  return TD_TASK_BATCH;
}

int td_task_replay_inflight(td_task_t *t, const char *path) {
  if (!t->st->gate) return fail_with(t, TD_EINVAL, "%s: the task has no input", path);
  td_snapshot_t *s;
  int rc = td_snapshot_read(&s, NULL, path, t->err, sizeof t->err);
  if (rc) return rc;
  for (size_t i = 0; rc == 0 && i < td_snapshot_count(s); i++) {
    uint32_t tag;
    td_bytes_t bytes;
    td_snapshot_section(s, i, &tag, &bytes);
    if (tag == TD_STATE_IDENTITY) continue;
    rc = tag < (uint32_t)td_gate_size(t->st->gate)
             ? td_input_replay(t->input, (int)tag, bytes.data, bytes.len)
             : TD_EINVAL;
    if (rc == TD_EINVAL)
      fail_with(t, rc, "%s: in-flight data for channel %d of %d", path, (int)tag,
                td_gate_size(t->st->gate));
    else if (rc)
      fail_with(t, rc, "out of memory");
  }
  td_snapshot_free(s);
  return rc;
}

/* ---- checkpoints ---- */

int td_task_checkpoint_pending(td_task_t *t, int64_t id) {
  return td_coord_is_pending(t->coord, id);
}

int td_task_forward_barrier(td_task_t *t, int64_t id) {
  if (!t->st->gate) t->injected = id;
  return forward_event(t, TD_EXT_BARRIER, id);
}

/* Write one state file: identity of checkpoint id (flags), then the data. */
static int write_state(td_task_t *t, const char *dir, const char *name, int64_t id,
                       uint32_t flags, const void *data, size_t len) {
  return td_asnap_write_state(dir, name, id, flags, t->spec->name, data, len, t->err,
                              sizeof t->err);
}

/* Whether this subtask's snapshot of id also hands over in-flight data
 * (td_coord_inflight): an unaligned checkpoint of a task with inputs. */
static int expects_inflight(td_task_t *t, int64_t id) {
  return t->st->gate && t->spec->align_mode == TD_ALIGN_UNALIGNED && !savepoint(t, id);
}

/* The end of the synchronous part of checkpoint id's snapshot, begun at
 * start_us: the barrier forwarded, the pause recorded. */
static int snapshot_taken(td_task_t *t, int64_t id, int64_t start_us) {
  int rc = forward_event(t, TD_EXT_BARRIER, id);
  int64_t end_us = td_task_now_us();
  td_coord_record_pause(t->coord, end_us - start_us);
  /* a source injects (and an unaligned barrier overtakes) at the snapshot */
  td_coord_snapshot_times(t->coord, id, t->st->global,
                          t->first_bar_id == id ? t->first_bar_us : start_us, start_us, end_us);
  return rc;
}

int td_task_snapshot(td_task_t *t, int64_t id, int64_t start_us, int *child) {
  td_subtask_t *st = t->st;
  *child = 0;
  td_coord_chk_dir(t->coord, id, t->chk_dir, sizeof t->chk_dir);
  if (!st->gate) t->injected = id;
  pid_t pid = 0;
  int pipefd[2] = {-1, -1};
  if (t->chk_dir[0]) {
    pid_t parent = getpid();
    if (pipe2(pipefd, O_CLOEXEC) != 0) pipefd[0] = pipefd[1] = -1;
    pid = td_fork_guarded();
    if (pid == 0) {
      /* the child: no malloc from here on (alloc.h) */
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);
      td_alloc_use_arena();
      if (pipefd[0] >= 0) close(pipefd[0]);
      t->child_err_fd = pipefd[1] >= 0 ? pipefd[1] : 2;
      t->child_id = id;
      *child = 1;
      return 0;
    }
    if (pipefd[1] >= 0) close(pipefd[1]);
    if (pid < 0) {
      int e = errno;
      if (pipefd[0] >= 0) close(pipefd[0]);
      td_coord_decline(t->coord, id, st->global, "fork failed");
      int rc = forward_event(t, TD_EXT_CANCEL, id);
      if (rc) return rc;
      return fail_with(t, -e, "cannot fork the snapshot of checkpoint %lld: %s", (long long)id,
                       strerror(e));
    }
  }
  td_coord_snapshot_started(t->coord, id, st->global, pid, pipefd[0], expects_inflight(t, id));
  return snapshot_taken(t, id, start_us);
}

/* Whether the worker is to go on writing checkpoint id: not once the
 * coordinator aborted it (timed out, subsumed, declined elsewhere). */
static int asnap_wanted(void *ud, int64_t id) {
  td_task_t *t = ud;
  return td_coord_is_pending(t->coord, id);
}

/* The worker's report: to the coordinator. */
static void asnap_done(void *ud, int64_t id, const td_meta_file_t *files, size_t n,
                       const char *error) {
  td_task_t *t = ud;
  td_coord_snapshot_written(t->coord, id, t->st->global, files, n, error);
}

int td_task_snapshot_async(td_task_t *t, int64_t id, int64_t start_us, td_asnap_t *a) {
  td_subtask_t *st = t->st;
  td_coord_chk_dir(t->coord, id, t->chk_dir, sizeof t->chk_dir);
  if (!st->gate) t->injected = id;
  int expect_inflight = expects_inflight(t, id);
  if (!t->chk_dir[0]) {
    td_asnap_free(a);
    td_coord_snapshot_started(t->coord, id, st->global, 0, -1, expect_inflight);
  } else {
    if (!t->asnap && !(t->asnap = td_asnap_worker_new(t->spec->name, asnap_done, asnap_wanted, t))) {
      td_asnap_free(a);
      return td_task_snapshot_failed(t, id, start_us, "out of memory");
    }
    td_coord_snapshot_started(t->coord, id, st->global, TD_COORD_ASYNC, -1, expect_inflight);
    int rc = td_asnap_worker_push(t->asnap, a, t->chk_dir);
    if (rc) td_coord_snapshot_written(t->coord, id, st->global, NULL, 0, td_strerror(rc));
  }
  return snapshot_taken(t, id, start_us);
}

int td_task_snapshot_failed(td_task_t *t, int64_t id, int64_t start_us, const char *error) {
  td_subtask_t *st = t->st;
  if (!st->gate) t->injected = id;
  td_coord_snapshot_started(t->coord, id, st->global, TD_COORD_ASYNC, -1, 0);
  td_coord_snapshot_written(t->coord, id, st->global, NULL, 0, error);
  return snapshot_taken(t, id, start_us);
}

int td_task_child_write(td_task_t *t, const char *name, const void *data, size_t len) {
  return write_state(t, t->chk_dir, name, t->child_id, 0, data, len);
}

_Noreturn void td_task_child_exit(td_task_t *t, const char *error) {
  if (!error) _exit(0);
  ssize_t w = write(t->child_err_fd, error, strnlen(error, 1000));
  (void)w;
  _exit(1);
}

void td_task_abort_snapshots(td_task_t *t) {
  if (t->asnap) td_asnap_worker_stop(t->asnap, 1);
  td_coord_abort_snapshots(t->coord, t->st->global);
}

int td_task_keeps_final_state(td_task_t *t) {
  char dir[4200];
  return td_coord_finished_dir(t->coord, dir, sizeof dir)[0] != 0;
}

void td_task_finishing(td_task_t *t) { td_coord_finishing(t->coord, t->st->global); }

int td_task_finished(td_task_t *t, int n, const char *const *names, const void *const *data,
                     const size_t *lens) {
  char dir[4200];
  td_coord_finished_dir(t->coord, dir, sizeof dir);
  if (!dir[0]) n = 0; /* no checkpoints: nothing to write */
  for (int i = 0; i < n; i++) {
    int rc = write_state(t, dir, names[i], 0, TD_STATE_FINAL, data[i], lens[i]);
    if (rc) {
      char m[sizeof t->err];
      snprintf(m, sizeof m, "%s", t->err);
      return fail_with(t, rc, "cannot write the final state: %.900s", m);
    }
  }
  td_coord_finished(t->coord, t->st->global, n, names, 1);
  return 0;
}

int td_task_wait_checkpoint(td_task_t *t, int64_t after, int64_t *id, int *final) {
  for (;;) {
    int r = td_coord_wait(t->coord, after, 100, id, final);
    if (r == 1) return 0;
    if (r < 0 && !td_job_cancelled(t->st->job)) {
      const char *why = td_coord_error(t->coord);
      td_job_fail(t->st->job, why ? why : "the job's checkpoint coordinator stopped");
    }
    if (r < 0 || td_job_cancelled(t->st->job)) return TD_ECANCELED;
  }
}

int64_t td_task_completed(td_task_t *t) { return td_coord_completed(t->coord); }

uint32_t tide_abi_version(void) { return TIDE_ABI_VERSION; }
