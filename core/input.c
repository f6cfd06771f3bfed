/* input.c - a subtask's checkpointed input (input.h). */
#include "input.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "inband.h"

struct td_input {
  td_gate_t *gate;
  td_aligner_t *aligner;
  td_align_mode_t mode;
  int n;                    /* channels */
  /* the buffer being decoded */
  td_buffer_t *cur;
  size_t off;               /* decoded up to here */
  int verdict;              /* the aligner's verdict on cur from off */
  int cur_replay;           /* cur is replayed data: freed, not recycled */
  size_t inflight_from;     /* INFLIGHT: cur's bytes from here are not
                               captured yet */
  td_buffer_t *replay, *replay_tail; /* restored in-flight data, first */
  /* unaligned: the capture of checkpoint capture_id, per channel */
  int64_t capture_id;
  int capture_failed;       /* bytes were lost (out of memory) */
  td_wbuf_t *capture;
  /* poll budget */
  int budget;
  int returned_n;
  int64_t returned_us;
};

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void) { return mono_us() / 1000; }

static int channel_of(const td_buffer_t *b) { return td_channel_index(b->channel); }

/* ---- capture ---- */

static void append(td_input_t *in, int ch, const char *p, size_t len) {
  td_wbuf_t *w = &in->capture[ch];
  if (td_wbuf_reserve(w, len) != 0) {
    in->capture_failed = 1;
    return;
  }
  memcpy(w->data + w->len, p, len);
  w->len += len;
}

static void drop(td_input_t *in) {
  for (int i = 0; i < in->n; i++) in->capture[i].len = 0;
  in->capture_id = 0;
  in->capture_failed = 0;
}

/* Capture cur's bytes [inflight_from, upto) if they are in-flight data. */
static void capture_to(td_input_t *in, size_t upto) {
  if (!in->cur || in->verdict != TD_ALIGN_INFLIGHT || !in->capture_id ||
      upto <= in->inflight_from)
    return;
  append(in, channel_of(in->cur), in->cur->data.data + in->inflight_from,
         upto - in->inflight_from);
  in->inflight_from = upto;
}

/* Follow the aligner's events: an aborted capture is dropped, a trigger
 * (unaligned) starts a new one. CAPTURED is for the caller. */
static void apply(td_input_t *in, int r, const td_align_event_t *ev) {
  if ((r & TD_ALIGN_ABORTED) && in->capture_id == ev->aborted) drop(in);
  if ((r & TD_ALIGN_TRIGGER) && td_aligner_current_mode(in->aligner) == TD_ALIGN_UNALIGNED) {
    drop(in);
    in->capture_id = ev->triggered;
  }
}

/* ---- the current buffer ---- */

static void set_cur(td_input_t *in, td_buffer_t *b, size_t off, int verdict,
                    int replay) {
  in->cur = b;
  in->off = off;
  in->inflight_from = off;
  in->verdict = verdict;
  in->cur_replay = replay;
}

static void free_replayed(td_buffer_t *b) {
  td_wbuf_destroy(&b->data);
  free(b);
}

static void release_cur(td_input_t *in) {
  if (!in->cur) return;
  if (in->cur_replay) free_replayed(in->cur);
  else td_gate_recycle(in->gate, in->cur);
  in->cur = NULL;
  in->cur_replay = 0;
}

/* Classify the rest of cur anew after a barrier event. 0 or an error. */
static int reclassify(td_input_t *in) {
  if (!in->cur || in->cur_replay || in->off >= in->cur->data.len) return 0;
  int v = td_aligner_on_buffer_at(in->aligner, channel_of(in->cur), in->cur, in->off);
  if (v < 0) return v;
  if (v == TD_ALIGN_HELD) { /* the aligner has it (aligned mode) */
    in->cur = NULL;
    return 0;
  }
  in->verdict = v;
  in->inflight_from = in->off;
  return 0;
}

/* A priority event b: an unaligned barrier that overtook the queued data
 * of its channel (the capture rule, input.h). Returns the event mask or an
 * error. */
static int on_priority(td_input_t *in, td_buffer_t *b, td_align_event_t *ev) {
  int ch = channel_of(b);
  uint64_t seq = b->seq;
  const unsigned char *p = (const unsigned char *)b->data.data;
  int ok = b->data.len == TD_EXT8_SIZE && p[0] == 0xd7 && p[1] == TD_EXT_BARRIER;
  int64_t id = ok ? td_get_be64(p + 2) : 0;
  td_gate_recycle(in->gate, b);
  if (!ok) return TD_ECORRUPT;
  /* what was processed of cur so far belongs to the capture running now */
  if (in->cur) capture_to(in, in->off);
  int r = td_aligner_on_barrier(in->aligner, ch, id, mono_ms(), ev);
  if (r < 0) return r;
  apply(in, r, ev);
  if (in->capture_id == id) {
    /* the barrier closes channel ch of this capture: what it overtook */
    if (in->cur && !in->cur_replay && channel_of(in->cur) == ch && in->off < in->cur->data.len)
      append(in, ch, in->cur->data.data + in->off, in->cur->data.len - in->off);
    if (td_gate_copy_queued(in->gate, ch, seq, &in->capture[ch]) != 0) in->capture_failed = 1;
  }
  int rc = reclassify(in);
  return rc < 0 ? rc : r;
}

/* ---- public ---- */

int td_input_new(td_input_t **out, td_gate_t *gate, td_align_mode_t mode) {
  *out = NULL;
  int n = gate ? td_gate_size(gate) : 0;
  if (n < 1) return TD_EINVAL;
  td_input_t *in = calloc(1, sizeof *in);
  if (!in) return TD_ENOMEM;
  in->gate = gate;
  in->mode = mode;
  in->n = n;
  in->budget = TD_INPUT_BUDGET_START;
  in->capture = calloc((size_t)n, sizeof *in->capture);
  int rc = in->capture ? td_aligner_new(&in->aligner, n, mode) : TD_ENOMEM;
  if (rc) {
    free(in->capture);
    free(in);
    return rc;
  }
  *out = in;
  return 0;
}

void td_input_free(td_input_t *in) {
  if (!in) return;
  release_cur(in);
  /* buffers are held only while a checkpoint is pending (aligned mode):
   * giving it up releases them */
  td_align_event_t ev;
  td_aligner_check_timeout(in->aligner, INT64_MAX, 1, &ev);
  td_buffer_t *b;
  while (td_aligner_next_released(in->aligner, &b, NULL, NULL) > 0) td_gate_recycle(in->gate, b);
  td_aligner_free(in->aligner);
  while ((b = in->replay) != NULL) {
    in->replay = b->next;
    free_replayed(b);
  }
  for (int i = 0; i < in->n; i++) td_wbuf_destroy(&in->capture[i]);
  free(in->capture);
  free(in);
}

int td_input_replay(td_input_t *in, int channel, const void *data, size_t len) {
  if (channel < 0 || channel >= in->n) return TD_EINVAL;
  td_buffer_t *b = calloc(1, sizeof *b);
  if (!b || td_wbuf_reserve(&b->data, len ? len : 1) != 0) {
    free(b);
    return TD_ENOMEM;
  }
  if (len) memcpy(b->data.data, data, len);
  b->data.len = len;
  b->channel = td_gate_channel(in->gate, channel);
  if (in->replay_tail) in->replay_tail->next = b;
  else in->replay = b;
  in->replay_tail = b;
  return 0;
}

int td_input_replaying(const td_input_t *in) {
  return in->replay != NULL || (in->cur && in->cur_replay);
}

int td_input_priority(td_input_t *in, int *events, td_align_event_t *ev) {
  *events = 0;
  memset(ev, 0, sizeof *ev);
  td_buffer_t *b;
  if (td_input_replaying(in) || !td_gate_poll_priority(in->gate, &b)) return 0;
  int r = on_priority(in, b, ev);
  if (r < 0) return r;
  *events = r;
  return 1;
}

int td_input_next(td_input_t *in, int timeout_ms, int64_t align_timeout_ms,
                  int *events, td_align_event_t *ev) {
  for (;;) {
    td_buffer_t *b;
    int p = td_input_priority(in, events, ev);
    if (p < 0) return p;
    if (p > 0) {
      if (*events) return TD_INPUT_EVENTS;
      continue;
    }
    if (in->cur) return TD_INPUT_DATA;
    if (in->replay) {
      b = in->replay;
      in->replay = b->next;
      if (!in->replay) in->replay_tail = NULL;
      b->next = NULL;
      set_cur(in, b, 0, TD_ALIGN_PROCESS, 1);
      return TD_INPUT_DATA;
    }
    size_t off = 0;
    int v = td_aligner_next_released(in->aligner, &b, NULL, &off);
    if (v > 0) {
      set_cur(in, b, off, v, 0);
      return TD_INPUT_DATA;
    }
    int wait = timeout_ms;
    int64_t since;
    int aligning = align_timeout_ms > 0 && td_aligner_pending(in->aligner, NULL, &since);
    if (aligning) {
      int64_t left = since + align_timeout_ms - mono_ms();
      if (left < 0) left = 0;
      if (wait < 0 || left < wait) wait = (int)left;
    }
    int rc = td_gate_poll(in->gate, &b, wait);
    if (rc == -EAGAIN) {
      if (aligning) {
        int r = td_aligner_check_timeout(in->aligner, mono_ms(), align_timeout_ms, ev);
        if (r > 0) {
          apply(in, r, ev);
          *events = r;
          return TD_INPUT_EVENTS;
        }
      }
      return TD_INPUT_TIMEOUT;
    }
    if (rc < 0) return rc;
    if (rc == 0) return TD_INPUT_END;
    if (b->kind == TD_BUF_PRIORITY) { /* arrived while waiting */
      int r = on_priority(in, b, ev);
      if (r < 0) return r;
      if (r > 0) {
        *events = r;
        return TD_INPUT_EVENTS;
      }
      continue;
    }
    v = td_aligner_on_buffer(in->aligner, channel_of(b), b);
    if (v == TD_ALIGN_HELD) continue;
    if (v < 0) {
      td_gate_recycle(in->gate, b);
      return v;
    }
    set_cur(in, b, 0, v, 0);
    return TD_INPUT_DATA;
  }
}

int td_input_view(const td_input_t *in, td_input_view_t *v) {
  if (!in->cur) return 0;
  v->data = in->cur->data.data;
  v->len = in->cur->data.len;
  v->off = in->off;
  v->channel = channel_of(in->cur);
  v->tag = td_channel_tag(in->cur->channel);
  v->replay = in->cur_replay;
  return 1;
}

int td_input_control(td_input_t *in, int kind, size_t at, size_t size,
                     int64_t id, td_align_event_t *ev) {
  td_align_event_t dummy;
  if (!ev) ev = &dummy;
  memset(ev, 0, sizeof *ev);
  if (!in->cur) return TD_EINVAL;
  capture_to(in, at);
  in->off = at + size;
  in->inflight_from = in->off; /* control entries are never in-flight data */
  if (in->cur_replay) return 0; /* its barriers belong to the previous run */
  int ch = channel_of(in->cur), r;
  switch (kind) {
  case TD_EXT_BARRIER:
  case TD_EXT_ALIGNED_BARRIER:
    r = td_aligner_on_barrier_kind(in->aligner, ch, id, kind == TD_EXT_ALIGNED_BARRIER,
                                   mono_ms(), ev);
    break;
  case TD_EXT_CANCEL:
    r = td_aligner_on_cancel(in->aligner, ch, id, ev);
    break;
  case TD_EXT_END:
    r = td_aligner_on_end(in->aligner, ch, ev);
    break;
  default:
    return TD_EINVAL;
  }
  if (r < 0) return r;
  apply(in, r, ev);
  int rc = reclassify(in);
  return rc < 0 ? rc : r;
}

void td_input_advance(td_input_t *in, size_t off) {
  if (!in->cur) return;
  in->off = off;
  if (off >= in->cur->data.len) {
    capture_to(in, in->cur->data.len);
    release_cur(in);
  }
}

int td_input_budget(td_input_t *in) {
  if (in->returned_n > 0) {
    int64_t took = mono_us() - in->returned_us;
    int64_t want = took > 0 ? (int64_t)TD_INPUT_BATCH_TARGET_US * in->returned_n / took
                            : TD_INPUT_BUDGET_MAX;
    if (want > 2 * (int64_t)in->budget) want = 2 * (int64_t)in->budget;
    if (want < TD_INPUT_BUDGET_MIN) want = TD_INPUT_BUDGET_MIN;
    if (want > TD_INPUT_BUDGET_MAX) want = TD_INPUT_BUDGET_MAX;
    in->budget = (int)want;
    in->returned_n = 0;
  }
  return in->budget;
}

void td_input_returned(td_input_t *in, int n) {
  if (n <= 0) return;
  in->returned_n = n;
  in->returned_us = mono_us();
}

int td_input_take_inflight(td_input_t *in, int64_t id, int *n, uint32_t *tags,
                           td_wbuf_t *bufs) {
  *n = 0;
  if (id <= 0 || id != in->capture_id) return TD_EINVAL;
  if (in->capture_failed) {
    drop(in);
    return TD_ENOMEM;
  }
  int k = 0;
  for (int i = 0; i < in->n; i++) {
    if (in->capture[i].len == 0) continue;
    tags[k] = (uint32_t)i;
    bufs[k++] = in->capture[i];
    memset(&in->capture[i], 0, sizeof in->capture[i]);
  }
  in->capture_id = 0;
  *n = k;
  return 0;
}
