/* barrier.c - checkpoint barrier alignment for one input gate (barrier.h). */
#include "barrier.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

/* The allocator, overridable so that tests/core/test_barrier.c can build
 * this file with an allocator that fails the Nth call. */
#ifndef TD_BARRIER_CALLOC
#define TD_BARRIER_CALLOC calloc
#define TD_BARRIER_FREE free
#endif

/* A held (or released) buffer. Nodes are not intrusive through
 * td_buffer_t.next because a node must also carry the channel (a buffer's
 * channel index needs a real channel) and the resume offset. */
typedef struct node {
  struct node *next;
  td_buffer_t *buf;
  size_t off;
  int ch;
} node_t;

typedef struct chunk {
  struct chunk *next;
  node_t nodes[];
} chunk_t;

typedef struct queue {
  node_t *head, *tail;
  size_t n;
} queue_t;

struct td_aligner {
  td_align_mode_t mode;
  td_align_mode_t cur_mode; /* checkpoint `cur`'s: mode, or aligned for an
                               aligned barrier (a savepoint's) */
  int n;             /* channels */
  int open;          /* channels not ended */
  int pending;       /* checkpoint `cur` started, not all barriers in */
  int need;          /* open channels still owing barrier `cur` */
  int64_t cur;       /* newest checkpoint id seen: pending, done or aborted */
  int64_t since;     /* now_ms of the first barrier of `cur` */
  int64_t *seen;     /* per channel: newest barrier id it delivered */
  unsigned char *ended;
  queue_t held;      /* held, in arrival order */
  queue_t released;  /* released, not handed back yet; always newer than
                        every held buffer (see td_aligner_next_released) */
  node_t *free;      /* node pool */
  chunk_t *chunks;
  size_t chunk_nodes;
};

/* ---- node pool and queues ---- */

static int grow(td_aligner_t *a) {
  chunk_t *c = TD_BARRIER_CALLOC(1, sizeof *c + a->chunk_nodes * sizeof(node_t));
  if (!c) return TD_ENOMEM;
  c->next = a->chunks;
  a->chunks = c;
  for (size_t i = 0; i < a->chunk_nodes; i++) {
    c->nodes[i].next = a->free;
    a->free = &c->nodes[i];
  }
  return 0;
}

static void push(queue_t *q, node_t *nd) {
  nd->next = NULL;
  if (q->tail) q->tail->next = nd;
  else q->head = nd;
  q->tail = nd;
  q->n++;
}

/* release_held - move every held buffer to the front of the released
 * queue: each was fed before whatever is still in it. */
static void release_held(td_aligner_t *a) {
  if (!a->held.head) return;
  a->held.tail->next = a->released.head;
  if (!a->released.head) a->released.tail = a->held.tail;
  a->released.head = a->held.head;
  a->released.n += a->held.n;
  memset(&a->held, 0, sizeof a->held);
}

/* ---- checkpoint state ---- */

static int classify(const td_aligner_t *a, int ch) {
  if (!a->pending || a->cur_mode == TD_ALIGN_AT_LEAST_ONCE) return TD_ALIGN_PROCESS;
  if (a->seen[ch] == a->cur)
    return a->cur_mode == TD_ALIGN_EXACTLY_ONCE ? TD_ALIGN_HELD : TD_ALIGN_PROCESS;
  return a->cur_mode == TD_ALIGN_UNALIGNED ? TD_ALIGN_INFLIGHT : TD_ALIGN_PROCESS;
}

static void start(td_aligner_t *a, int64_t id, int aligned, int64_t now_ms) {
  a->cur = id;
  a->cur_mode = aligned ? TD_ALIGN_EXACTLY_ONCE : a->mode;
  a->pending = 1;
  a->since = now_ms;
  a->need = a->open;
}

/* complete - the last barrier of `cur` came (or its last channel ended). */
static int complete(td_aligner_t *a, td_align_event_t *ev) {
  a->pending = 0;
  release_held(a);
  if (a->cur_mode == TD_ALIGN_UNALIGNED) {
    ev->captured = a->cur;
    return TD_ALIGN_CAPTURED;
  }
  ev->triggered = a->cur;
  return TD_ALIGN_TRIGGER;
}

static int abort_pending(td_aligner_t *a, td_align_event_t *ev) {
  a->pending = 0;
  release_held(a);
  ev->aborted = a->cur;
  return TD_ALIGN_ABORTED;
}

static int bad_channel(const td_aligner_t *a, int ch) {
  return ch < 0 || ch >= a->n || a->ended[ch];
}

/* ---- public ---- */

int td_aligner_new(td_aligner_t **out, int n_channels, td_align_mode_t mode) {
  *out = NULL;
  if (n_channels < 1 || (mode != TD_ALIGN_EXACTLY_ONCE &&
                         mode != TD_ALIGN_AT_LEAST_ONCE &&
                         mode != TD_ALIGN_UNALIGNED))
    return TD_EINVAL;
  td_aligner_t *a = TD_BARRIER_CALLOC(1, sizeof *a);
  if (!a) return TD_ENOMEM;
  a->mode = a->cur_mode = mode;
  a->n = a->open = n_channels;
  a->seen = TD_BARRIER_CALLOC((size_t)n_channels, sizeof *a->seen);
  a->ended = TD_BARRIER_CALLOC((size_t)n_channels, 1);
  if (!a->seen || !a->ended) goto fail;
  /* Only aligned mode holds buffers: at most credits per channel, since a
   * held buffer keeps its credit; a gate with more credits grows the pool. */
  a->chunk_nodes = (size_t)n_channels * TD_CHANNEL_CREDITS;
  if (mode == TD_ALIGN_EXACTLY_ONCE && grow(a) != 0) goto fail;
  *out = a;
  return 0;
fail:
  td_aligner_free(a);
  return TD_ENOMEM;
}

void td_aligner_free(td_aligner_t *a) {
  if (!a) return;
  while (a->chunks) {
    chunk_t *c = a->chunks;
    a->chunks = c->next;
    TD_BARRIER_FREE(c);
  }
  TD_BARRIER_FREE(a->seen);
  TD_BARRIER_FREE(a->ended);
  TD_BARRIER_FREE(a);
}

int td_aligner_on_buffer_at(td_aligner_t *a, int channel, td_buffer_t *b,
                            size_t offset) {
  if (bad_channel(a, channel) || !b) return TD_EINVAL;
  int v = classify(a, channel);
  if (v != TD_ALIGN_HELD) return v;
  if (!a->free && grow(a) != 0) return TD_ENOMEM;
  node_t *nd = a->free;
  a->free = nd->next;
  nd->buf = b;
  nd->off = offset;
  nd->ch = channel;
  push(&a->held, nd);
  return v;
}

int td_aligner_on_buffer(td_aligner_t *a, int channel, td_buffer_t *b) {
  return td_aligner_on_buffer_at(a, channel, b, 0);
}

/*
 * Order: the caller drains the released queue before it polls the gate, so
 * a buffer is held while the released queue is non-empty only if it came
 * from the head of that queue (or is the rest of such a buffer). Hence every
 * held buffer is older than every released one, release_held may put the
 * held ones in front, and each channel keeps its order.
 */
int td_aligner_next_released(td_aligner_t *a, td_buffer_t **out, int *channel,
                             size_t *offset) {
  node_t *nd;
  while ((nd = a->released.head) != NULL) {
    a->released.head = nd->next;
    if (!a->released.head) a->released.tail = NULL;
    a->released.n--;
    int v = classify(a, nd->ch);
    if (v == TD_ALIGN_HELD) { /* blocked again by a newer checkpoint */
      push(&a->held, nd);
      continue;
    }
    if (out) *out = nd->buf;
    if (channel) *channel = nd->ch;
    if (offset) *offset = nd->off;
    nd->next = a->free;
    a->free = nd;
    return v;
  }
  return 0;
}

int td_aligner_on_barrier(td_aligner_t *a, int channel, int64_t id,
                          int64_t now_ms, td_align_event_t *ev) {
  return td_aligner_on_barrier_kind(a, channel, id, 0, now_ms, ev);
}

int td_aligner_on_barrier_kind(td_aligner_t *a, int channel, int64_t id, int aligned,
                               int64_t now_ms, td_align_event_t *ev) {
  td_align_event_t dummy;
  if (!ev) ev = &dummy;
  memset(ev, 0, sizeof *ev);
  if (bad_channel(a, channel) || id <= 0) return TD_EINVAL;
  int r = 0;
  if (id < a->cur || (id == a->cur && !a->pending)) return 0; /* obsolete */
  if (id == a->cur) {
    if (a->seen[channel] == id) return TD_EINVAL; /* second barrier id */
  } else {
    if (a->pending) r |= abort_pending(a, ev); /* subsumed */
    start(a, id, aligned, now_ms);
    if (a->cur_mode == TD_ALIGN_UNALIGNED) {
      ev->triggered = id;
      r |= TD_ALIGN_TRIGGER;
    }
  }
  a->seen[channel] = id;
  if (--a->need == 0) r |= complete(a, ev);
  return r;
}

int td_aligner_on_cancel(td_aligner_t *a, int channel, int64_t id,
                         td_align_event_t *ev) {
  td_align_event_t dummy;
  if (!ev) ev = &dummy;
  memset(ev, 0, sizeof *ev);
  if (bad_channel(a, channel) || id <= 0) return TD_EINVAL;
  if (id == a->cur && a->pending) return abort_pending(a, ev);
  if (id <= a->cur) return 0; /* old, completed or aborted already */
  int r = a->pending ? abort_pending(a, ev) : 0;
  a->cur = id; /* its barriers are now obsolete */
  ev->cancelled = id;
  return r | TD_ALIGN_CANCELLED;
}

int td_aligner_on_end(td_aligner_t *a, int channel, td_align_event_t *ev) {
  td_align_event_t dummy;
  if (!ev) ev = &dummy;
  memset(ev, 0, sizeof *ev);
  if (bad_channel(a, channel)) return TD_EINVAL;
  a->ended[channel] = 1;
  a->open--;
  if (a->pending && a->seen[channel] != a->cur && --a->need == 0)
    return complete(a, ev);
  return 0;
}

int td_aligner_check_timeout(td_aligner_t *a, int64_t now_ms,
                             int64_t timeout_ms, td_align_event_t *ev) {
  td_align_event_t dummy;
  if (!ev) ev = &dummy;
  memset(ev, 0, sizeof *ev);
  if (!a->pending || timeout_ms <= 0 || now_ms - a->since < timeout_ms)
    return 0;
  return abort_pending(a, ev);
}

int td_aligner_pending(const td_aligner_t *a, int64_t *id, int64_t *since_ms) {
  if (!a->pending) return 0;
  if (id) *id = a->cur;
  if (since_ms) *since_ms = a->since;
  return 1;
}

int64_t td_aligner_last_id(const td_aligner_t *a) { return a->cur; }

size_t td_aligner_held(const td_aligner_t *a) {
  return a->held.n + a->released.n;
}

int td_aligner_blocked(const td_aligner_t *a, int channel) {
  return channel >= 0 && channel < a->n && a->cur_mode == TD_ALIGN_EXACTLY_ONCE &&
         a->pending && a->seen[channel] == a->cur;
}

td_align_mode_t td_aligner_current_mode(const td_aligner_t *a) { return a->cur_mode; }
