/*
 * test_channel.c - unit tests for channels and input gates (channel.h):
 * FIFO order, tags, credit-based flow control, end of partition, poll
 * timeouts and cancellation, overdraft and availability, priority events
 * (they overtake queued buffers, need no credit, wake a blocked poll) and
 * the copy of the buffers they overtook, notifiers, on one thread and
 * across threads.
 *
 * Cross-thread tests never assert on timing. To check that a call blocks,
 * the main thread sets a flag just before it does what should release the
 * call, and the woken thread checks that it saw the flag: an implementation
 * that did not block is caught (unless the machine is so loaded that the
 * other thread did not even run for the grace period), and a correct one
 * can never fail. Every wait is bounded; a thread still stuck after the
 * bound fails the case and is released by cancelling its gate.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel.h"
#include "error.h"
#include "testlib.h"

#define GRACE_MS 50    /* time given to a thread to reach its wait */
#define BOUND_MS 60000 /* longest a correct run could take, even loaded */

/* ---- helpers ---- */

static td_gate_t *new_gate(int n, int credits, const int *tags) {
  td_gate_t *g = NULL;
  int rc = td_gate_new(&g, n, credits, tags);
  if (rc != 0 || !g) {
    fprintf(stderr, "td_gate_new: %s\n", td_strerror(rc));
    abort();
  }
  return g;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void sleep_ms(int ms) {
  struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* wait_flag - wait until *f == v, at most ms; returns whether it is. */
static int wait_flag(atomic_int *f, int v, int ms) {
  double end = now_ms() + ms;
  while (atomic_load(f) != v) {
    if (now_ms() > end) return 0;
    sleep_ms(1);
  }
  return 1;
}

/* join_bounded - join t; if it is still running after BOUND_MS, fail,
 * cancel g to release it, then join. */
static void join_bounded(pthread_t t, td_gate_t *g) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += BOUND_MS / 1000;
  if (pthread_timedjoin_np(t, NULL, &dl) != 0) {
    fprintf(stderr, "  thread still blocked after %d ms: cancelling\n",
            BOUND_MS);
    td_test_failed_ = 1;
    td_gate_cancel(g);
    pthread_join(t, NULL);
  }
}

/* put_u32 / get_u32 - a record: the msgpack uint32 of v (0xce + 4 bytes) */
static void put_u32(td_buffer_t *b, uint32_t v) {
  if (td_wbuf_reserve(&b->data, 5) != 0) abort();
  unsigned char *p = (unsigned char *)b->data.data + b->data.len;
  p[0] = 0xce;
  p[1] = (unsigned char)(v >> 24);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 8);
  p[4] = (unsigned char)v;
  b->data.len += 5;
  b->count++;
}

static uint32_t get_u32(const td_buffer_t *b, size_t i) {
  const unsigned char *p = (const unsigned char *)b->data.data + 5 * i;
  if (5 * i + 5 > b->data.len || p[0] != 0xce) return UINT32_MAX;
  return (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 |
         p[4];
}

/* send_u32 - acquire a buffer of c, put one record v in it, send it. */
static void send_u32(td_channel_t *c, uint32_t v) {
  td_buffer_t *b;
  if (td_channel_acquire(c, &b) != 0) abort();
  put_u32(b, v);
  td_channel_send(c, b);
}

static void send_end(td_channel_t *c) {
  td_buffer_t *b;
  if (td_channel_acquire(c, &b) != 0) abort();
  b->kind = TD_BUF_END;
  td_channel_send(c, b);
}

/* poll_u32 - poll one buffer (waiting at most ms), check it holds the one
 * record want, recycle it. Returns the poll's result. */
static int poll_u32(td_gate_t *g, uint32_t want, int ms) {
  td_buffer_t *b = NULL;
  int rc = td_gate_poll(g, &b, ms);
  if (rc == 1) {
    TD_CHECK_INT(b->kind, TD_BUF_DATA);
    TD_CHECK_INT(b->count, 1);
    TD_CHECK_INT(get_u32(b, 0), want);
    td_gate_recycle(g, b);
  }
  return rc;
}

/* ---- creation ---- */

TD_TEST(test_channel_new_invalid) {
  td_gate_t *g = NULL;
  TD_CHECK_INT(td_gate_new(&g, -1, 4, NULL), TD_EINVAL);
  TD_CHECK_INT(td_gate_new(&g, 2, 0, NULL), TD_EINVAL);
  TD_CHECK(g == NULL);
  td_gate_free(NULL);
}

TD_TEST(test_channel_tags) {
  int tags[3] = {7, 0, 42};
  td_gate_t *g = new_gate(3, 2, tags);
  TD_CHECK_INT(td_channel_tag(td_gate_channel(g, 0)), 7);
  TD_CHECK_INT(td_channel_tag(td_gate_channel(g, 1)), 0);
  TD_CHECK_INT(td_channel_tag(td_gate_channel(g, 2)), 42);
  td_gate_free(g);
  g = new_gate(2, 2, NULL);
  TD_CHECK_INT(td_channel_tag(td_gate_channel(g, 0)), 0);
  TD_CHECK_INT(td_channel_tag(td_gate_channel(g, 1)), 0);
  td_gate_free(g);
}

/* A gate without channels has ended from the start. */
TD_TEST(test_channel_no_channels) {
  td_gate_t *g = new_gate(0, 4, NULL);
  td_buffer_t *b = NULL;
  TD_CHECK(td_gate_available(g));
  TD_CHECK_INT(td_gate_poll(g, &b, BOUND_MS), 0);
  td_gate_free(g);
}

/* ---- one thread ---- */

TD_TEST(test_channel_acquire_fresh_buffer) {
  td_gate_t *g = new_gate(2, 2, NULL);
  td_channel_t *c = td_gate_channel(g, 1);
  td_buffer_t *b;
  TD_CHECK_INT(td_channel_acquire(c, &b), 0);
  TD_CHECK(b->channel == c);
  TD_CHECK_INT(b->kind, TD_BUF_DATA);
  TD_CHECK_INT(b->count, 0);
  TD_CHECK_INT(b->data.len, 0);
  /* a used buffer comes back cleared */
  put_u32(b, 1);
  put_u32(b, 2);
  td_channel_send(c, b);
  td_buffer_t *got;
  TD_CHECK_INT(td_gate_poll(g, &got, 0), 1);
  TD_CHECK(got == b);
  TD_CHECK_INT(got->count, 2);
  TD_CHECK_INT(get_u32(got, 1), 2);
  td_gate_recycle(NULL, got); /* the buffer knows its gate */
  td_buffer_t *b2, *b3;
  TD_CHECK_INT(td_channel_acquire(c, &b2), 0);
  TD_CHECK_INT(td_channel_acquire(c, &b3), 0);
  TD_CHECK(b2 != b3);
  TD_CHECK(b2 == b || b3 == b);
  TD_CHECK(b2->count == 0 && b2->data.len == 0 && b2->kind == TD_BUF_DATA);
  TD_CHECK(b3->count == 0 && b3->data.len == 0 && b3->kind == TD_BUF_DATA);
  td_gate_recycle(g, b2);
  td_gate_recycle(g, b3);
  td_gate_free(g);
}

TD_TEST(test_channel_fifo_one_channel) {
  td_gate_t *g = new_gate(1, 16, NULL);
  td_channel_t *c = td_gate_channel(g, 0);
  for (uint32_t i = 0; i < 16; i++) send_u32(c, 100 + i);
  for (uint32_t i = 0; i < 16; i++) TD_CHECK_INT(poll_u32(g, 100 + i, 0), 1);
  TD_CHECK_INT(poll_u32(g, 0, 0), -EAGAIN);
  /* again, with the recycled buffers, interleaving sends and polls */
  for (uint32_t i = 0; i < 1000; i++) {
    send_u32(c, i);
    if (i % 3 == 2)
      for (uint32_t j = i - 2; j <= i; j++) TD_CHECK_INT(poll_u32(g, j, 0), 1);
  }
  TD_CHECK_INT(poll_u32(g, 999, 0), 1);
  td_gate_free(g);
}

/* Buffers of several channels come out in arrival order, so each
 * channel's own order is kept. */
TD_TEST(test_channel_fifo_channels_interleaved) {
  int tags[3] = {0, 1, 2};
  td_gate_t *g = new_gate(3, 4, tags);
  static const int order[] = {0, 1, 0, 2, 2, 1, 0, 2, 1, 1, 0, 2};
  uint32_t seq[3] = {0, 0, 0};
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    int ch = order[i];
    send_u32(td_gate_channel(g, ch), (uint32_t)ch * 1000 + seq[ch]++);
  }
  uint32_t want[3] = {0, 0, 0};
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    td_buffer_t *b;
    TD_CHECK_INT(td_gate_poll(g, &b, 0), 1);
    int ch = td_channel_tag(b->channel);
    TD_CHECK_INT(ch, order[i]);
    TD_CHECK_INT(get_u32(b, 0), (uint32_t)ch * 1000 + want[ch]++);
    td_gate_recycle(g, b);
  }
  TD_CHECK_INT(td_gate_available(g), 0);
  td_gate_free(g);
}

/* A channel lends at most `credits` buffers at once, and credits are per
 * channel; recycling one lends it again. (Single thread: no blocking.) */
TD_TEST(test_channel_credits_per_channel) {
  td_gate_t *g = new_gate(2, 3, NULL);
  td_channel_t *c0 = td_gate_channel(g, 0), *c1 = td_gate_channel(g, 1);
  td_buffer_t *held[3], *other[3];
  for (int i = 0; i < 3; i++) TD_CHECK_INT(td_channel_acquire(c0, &held[i]), 0);
  /* channel 1 is not affected by channel 0 having used its credits */
  for (int i = 0; i < 3; i++) TD_CHECK_INT(td_channel_acquire(c1, &other[i]), 0);
  for (int i = 0; i < 3; i++) td_gate_recycle(g, other[i]);
  td_gate_recycle(g, held[1]);
  td_buffer_t *again;
  TD_CHECK_INT(td_channel_acquire(c0, &again), 0);
  TD_CHECK(again == held[1]);
  td_gate_recycle(g, again);
  td_gate_recycle(g, held[0]);
  td_gate_recycle(g, held[2]);
  td_gate_free(g);
}

TD_TEST(test_channel_end_after_data) {
  td_gate_t *g = new_gate(2, 4, NULL);
  td_channel_t *c0 = td_gate_channel(g, 0), *c1 = td_gate_channel(g, 1);
  send_u32(c0, 1);
  send_end(c0);
  send_u32(c1, 2);
  TD_CHECK_INT(poll_u32(g, 1, 0), 1);
  /* channel 0's END is consumed by the gate, channel 1's data follows */
  TD_CHECK_INT(poll_u32(g, 2, 0), 1);
  /* channel 1 has not ended: nothing to deliver, not the end */
  TD_CHECK_INT(td_gate_available(g), 0);
  TD_CHECK_INT(poll_u32(g, 0, 0), -EAGAIN);
  send_u32(c1, 3);
  send_end(c1);
  TD_CHECK_INT(td_gate_available(g), 1);
  TD_CHECK_INT(poll_u32(g, 3, 0), 1);
  td_buffer_t *b;
  TD_CHECK_INT(td_gate_poll(g, &b, 0), 0);
  TD_CHECK_INT(td_gate_poll(g, &b, BOUND_MS), 0); /* and stays ended */
  TD_CHECK_INT(td_gate_available(g), 1);
  td_gate_free(g);
}

/* END first on one channel while the other still sends. */
TD_TEST(test_channel_end_before_other_data) {
  td_gate_t *g = new_gate(2, 4, NULL);
  send_end(td_gate_channel(g, 0));
  TD_CHECK_INT(poll_u32(g, 0, 0), -EAGAIN);
  send_u32(td_gate_channel(g, 1), 5);
  send_end(td_gate_channel(g, 1));
  TD_CHECK_INT(poll_u32(g, 5, 0), 1);
  td_buffer_t *b;
  TD_CHECK_INT(td_gate_poll(g, &b, 0), 0);
  td_gate_free(g);
}

/* END uses up a credit only until the gate consumes it. */
TD_TEST(test_channel_end_returns_credit) {
  td_gate_t *g = new_gate(1, 1, NULL);
  td_channel_t *c = td_gate_channel(g, 0);
  send_end(c);
  td_buffer_t *b;
  TD_CHECK_INT(td_gate_poll(g, &b, 0), 0);
  TD_CHECK_INT(td_channel_acquire(c, &b), 0);
  td_gate_recycle(g, b);
  td_gate_free(g);
}

TD_TEST(test_channel_poll_timeout) {
  td_gate_t *g = new_gate(1, 2, NULL);
  td_buffer_t *b = NULL;
  TD_CHECK_INT(td_gate_poll(g, &b, 0), -EAGAIN);
  double t0 = now_ms();
  TD_CHECK_INT(td_gate_poll(g, &b, 30), -EAGAIN);
  /* a monotonic timed wait cannot end early (1 ms slack for rounding) */
  TD_CHECK(now_ms() - t0 >= 29.0);
  TD_CHECK(b == NULL);
  t0 = now_ms();
  TD_CHECK_INT(td_gate_poll(g, &b, 1100), -EAGAIN); /* whole seconds too */
  TD_CHECK(now_ms() - t0 >= 1099.0);
  /* a buffer already queued is returned at once, even with timeout 0 */
  send_u32(td_gate_channel(g, 0), 9);
  TD_CHECK_INT(poll_u32(g, 9, 0), 1);
  td_gate_free(g);
}

TD_TEST(test_channel_cancel_later_waits) {
  td_gate_t *g = new_gate(2, 2, NULL);
  send_u32(td_gate_channel(g, 0), 1);
  td_gate_cancel(g);
  td_buffer_t *b;
  /* cancelled: even a queued buffer or a free credit is not handed out */
  TD_CHECK_INT(td_gate_poll(g, &b, -1), TD_ECANCELED);
  TD_CHECK_INT(td_gate_poll(g, &b, 0), TD_ECANCELED);
  TD_CHECK_INT(td_channel_acquire(td_gate_channel(g, 1), &b), TD_ECANCELED);
  TD_CHECK_INT(td_gate_available(g), 1);
  td_gate_cancel(g); /* twice is fine */
  td_gate_free(g);   /* frees the queued buffer */
}

/* Freeing a gate frees buffers queued, free and consumed ENDs. */
TD_TEST(test_channel_free_with_queued_buffers) {
  td_gate_t *g = new_gate(3, 4, NULL);
  for (int i = 0; i < 4; i++) send_u32(td_gate_channel(g, 0), (uint32_t)i);
  send_u32(td_gate_channel(g, 1), 1);
  td_buffer_t *b;
  TD_CHECK_INT(td_channel_acquire(td_gate_channel(g, 2), &b), 0);
  td_gate_recycle(g, b);
  send_end(td_gate_channel(g, 2));
  TD_CHECK_INT(poll_u32(g, 0, 0), 1);
  td_gate_free(g);
}

/* ---- across threads ---- */

typedef struct waiter {
  td_gate_t *g;
  td_channel_t *c;
  td_buffer_t *b;
  int rc;
  atomic_int started, done, released;
  int saw_released; /* `released` as seen when the call returned */
} waiter_t;

static void *acquire_main(void *arg) {
  waiter_t *w = arg;
  atomic_store(&w->started, 1);
  w->rc = td_channel_acquire(w->c, &w->b);
  w->saw_released = atomic_load(&w->released);
  atomic_store(&w->done, 1);
  return NULL;
}

static void *poll_main(void *arg) {
  waiter_t *w = arg;
  atomic_store(&w->started, 1);
  w->rc = td_gate_poll(w->g, &w->b, -1);
  w->saw_released = atomic_load(&w->released);
  atomic_store(&w->done, 1);
  return NULL;
}

/* start - run fn on w in a new thread and give it time to reach its wait;
 * fails the case if it returned during that time. */
static pthread_t start(void *(*fn)(void *), waiter_t *w) {
  pthread_t t;
  if (pthread_create(&t, NULL, fn, w) != 0) abort();
  TD_CHECK(wait_flag(&w->started, 1, BOUND_MS));
  /* a correct call stays blocked: done stays 0 for the whole grace */
  TD_CHECK(!wait_flag(&w->done, 1, GRACE_MS));
  return t;
}

/* A sender holding all of its channel's buffers blocks in acquire until
 * the receiver recycles one. */
TD_TEST(test_channel_acquire_blocks_until_recycle) {
  td_gate_t *g = new_gate(1, 2, NULL);
  waiter_t w = {.g = g, .c = td_gate_channel(g, 0)};
  send_u32(w.c, 1);
  send_u32(w.c, 2);
  pthread_t t = start(acquire_main, &w);
  td_buffer_t *b;
  TD_CHECK_INT(td_gate_poll(g, &b, 0), 1);
  TD_CHECK_INT(get_u32(b, 0), 1);
  /* polling alone gives no credit back: only recycling does */
  TD_CHECK(!wait_flag(&w.done, 1, GRACE_MS));
  atomic_store(&w.released, 1);
  td_gate_recycle(g, b);
  join_bounded(t, g);
  TD_CHECK_INT(w.rc, 0);
  TD_CHECK_INT(w.saw_released, 1);
  if (w.rc == 0) {
    TD_CHECK(w.b == b);
    TD_CHECK(w.b->count == 0 && w.b->data.len == 0);
    td_gate_recycle(g, w.b);
  }
  TD_CHECK_INT(poll_u32(g, 2, 0), 1);
  td_gate_free(g);
}

TD_TEST(test_channel_cancel_wakes_sender) {
  td_gate_t *g = new_gate(1, 1, NULL);
  waiter_t w = {.g = g, .c = td_gate_channel(g, 0)};
  send_u32(w.c, 1);
  pthread_t t = start(acquire_main, &w);
  atomic_store(&w.released, 1);
  td_gate_cancel(g);
  join_bounded(t, g);
  TD_CHECK_INT(w.rc, TD_ECANCELED);
  TD_CHECK_INT(w.saw_released, 1);
  td_gate_free(g);
}

TD_TEST(test_channel_cancel_wakes_receiver) {
  td_gate_t *g = new_gate(2, 1, NULL);
  waiter_t w = {.g = g};
  pthread_t t = start(poll_main, &w);
  atomic_store(&w.released, 1);
  td_gate_cancel(g);
  join_bounded(t, g);
  TD_CHECK_INT(w.rc, TD_ECANCELED);
  TD_CHECK_INT(w.saw_released, 1);
  td_gate_free(g);
}

/* A receiver waiting without limit (or with a long timeout) is woken by a
 * send, and by the last END. */
TD_TEST(test_channel_poll_wakes_on_send) {
  td_gate_t *g = new_gate(2, 1, NULL);
  waiter_t w = {.g = g};
  pthread_t t = start(poll_main, &w);
  atomic_store(&w.released, 1);
  send_u32(td_gate_channel(g, 1), 77);
  join_bounded(t, g);
  TD_CHECK_INT(w.rc, 1);
  TD_CHECK_INT(w.saw_released, 1);
  if (w.rc == 1) {
    TD_CHECK_INT(get_u32(w.b, 0), 77);
    td_gate_recycle(g, w.b);
  }
  send_end(td_gate_channel(g, 0));
  waiter_t w2 = {.g = g};
  t = start(poll_main, &w2);
  atomic_store(&w2.released, 1);
  send_end(td_gate_channel(g, 1));
  join_bounded(t, g);
  TD_CHECK_INT(w2.rc, 0);
  TD_CHECK_INT(w2.saw_released, 1);
  td_gate_free(g);
}

typedef struct timed_poll {
  td_gate_t *g;
  atomic_int started;
  int rc;
  uint32_t v;
} timed_poll_t;

static void *timed_poll_main(void *arg) {
  timed_poll_t *p = arg;
  td_buffer_t *b;
  atomic_store(&p->started, 1);
  p->rc = td_gate_poll(p->g, &b, BOUND_MS);
  if (p->rc == 1) {
    p->v = get_u32(b, 0);
    td_gate_recycle(p->g, b);
  }
  return NULL;
}

TD_TEST(test_channel_timed_poll_wakes_on_send) {
  td_gate_t *g = new_gate(1, 1, NULL);
  timed_poll_t p = {.g = g};
  pthread_t t;
  if (pthread_create(&t, NULL, timed_poll_main, &p) != 0) abort();
  TD_CHECK(wait_flag(&p.started, 1, BOUND_MS));
  sleep_ms(GRACE_MS);
  send_u32(td_gate_channel(g, 0), 5);
  join_bounded(t, g);
  TD_CHECK_INT(p.rc, 1);
  TD_CHECK_INT(p.v, 5);
  td_gate_free(g);
}

/* Flow control under load: one sender streams numbered buffers through a
 * channel of 2 credits; the receiver sees them in order and the sender
 * never holds more buffers than its credits. */
typedef struct flow {
  td_gate_t *g;
  int n, credits;
  atomic_int outstanding, max_outstanding, errors;
} flow_t;

static void *flow_sender(void *arg) {
  flow_t *f = arg;
  td_channel_t *c = td_gate_channel(f->g, 0);
  for (int i = 0; i <= f->n; i++) {
    td_buffer_t *b;
    if (td_channel_acquire(c, &b) != 0) {
      atomic_fetch_add(&f->errors, 1);
      return NULL;
    }
    /* counted after acquire, uncounted before recycle: never above the
     * true number of buffers lent out */
    int now = atomic_fetch_add(&f->outstanding, 1) + 1;
    int max = atomic_load(&f->max_outstanding);
    while (now > max &&
           !atomic_compare_exchange_weak(&f->max_outstanding, &max, now)) {
    }
    if (i == f->n) {
      b->kind = TD_BUF_END;
    } else {
      for (int k = 0; k < 1 + i % 7; k++) put_u32(b, (uint32_t)i);
    }
    td_channel_send(c, b);
  }
  return NULL;
}

TD_TEST(test_channel_flow_control_stress) {
  flow_t f = {.n = 50000, .credits = 2};
  f.g = new_gate(1, f.credits, NULL);
  pthread_t t;
  if (pthread_create(&t, NULL, flow_sender, &f) != 0) abort();
  int next = 0, bad = 0, rc;
  td_buffer_t *b;
  while ((rc = td_gate_poll(f.g, &b, BOUND_MS)) == 1) {
    bad += b->count != (uint32_t)(1 + next % 7);
    for (uint32_t k = 0; k < b->count; k++) bad += get_u32(b, k) != (uint32_t)next;
    next++;
    atomic_fetch_sub(&f.outstanding, 1);
    td_gate_recycle(f.g, b);
  }
  TD_CHECK_INT(rc, 0);
  if (rc != 0) td_gate_cancel(f.g);
  join_bounded(t, f.g);
  TD_CHECK_INT(next, f.n);
  TD_CHECK_INT(bad, 0);
  TD_CHECK_INT(atomic_load(&f.errors), 0);
  TD_CHECK(atomic_load(&f.max_outstanding) <= f.credits);
  TD_CHECK(atomic_load(&f.max_outstanding) >= 1);
  td_gate_free(f.g);
}

/* Several senders end at different times: the gate ends only after every
 * buffer sent before every END was delivered. */
typedef struct ender {
  td_gate_t *g;
  int ch, n;
} ender_t;

static void *ender_main(void *arg) {
  ender_t *e = arg;
  td_channel_t *c = td_gate_channel(e->g, e->ch);
  for (int i = 0; i < e->n; i++) send_u32(c, (uint32_t)(e->ch << 24 | i));
  send_end(c);
  return NULL;
}

TD_TEST(test_channel_end_multithread) {
  enum { CH = 3 };
  int tags[CH] = {0, 1, 2};
  td_gate_t *g = new_gate(CH, 3, tags);
  ender_t e[CH];
  pthread_t t[CH];
  for (int i = 0; i < CH; i++) {
    e[i] = (ender_t){g, i, 1000 * (i + 1) * (i + 1)};
    if (pthread_create(&t[i], NULL, ender_main, &e[i]) != 0) abort();
  }
  int got[CH] = {0}, bad = 0, rc;
  td_buffer_t *b;
  while ((rc = td_gate_poll(g, &b, BOUND_MS)) == 1) {
    int ch = td_channel_tag(b->channel);
    bad += get_u32(b, 0) != (uint32_t)(ch << 24 | got[ch]);
    got[ch]++;
    td_gate_recycle(g, b);
  }
  TD_CHECK_INT(rc, 0);
  if (rc != 0) td_gate_cancel(g);
  for (int i = 0; i < CH; i++) join_bounded(t[i], g);
  for (int i = 0; i < CH; i++) TD_CHECK_INT(got[i], e[i].n);
  TD_CHECK_INT(bad, 0);
  td_gate_free(g);
}

/* ---- overdraft, availability, priority events, notifiers ---- */

static const unsigned char PRIO[10] = {0xd7, 5, 0, 0, 0, 0, 0, 0, 0, 7};

/* poll_priority - poll one buffer at once; check it is the priority event
 * PRIO of channel ch with sequence number seq; free it. */
static void poll_priority(td_gate_t *g, int ch, uint64_t seq) {
  td_buffer_t *b = NULL;
  TD_CHECK_INT(td_gate_poll(g, &b, 0), 1);
  if (!b) return;
  TD_CHECK_INT(b->kind, TD_BUF_PRIORITY);
  TD_CHECK_INT(td_channel_index(b->channel), ch);
  TD_CHECK_INT(b->seq, seq);
  TD_CHECK_INT(b->data.len, sizeof PRIO);
  TD_CHECK(b->data.len == sizeof PRIO && memcmp(b->data.data, PRIO, sizeof PRIO) == 0);
  td_gate_recycle(g, b);
}

/* A priority event is delivered before every queued buffer, of its channel
 * and of the others; the buffers then follow in arrival order. */
TD_TEST(test_channel_priority_overtakes_queued_buffers) {
  td_gate_t *g = new_gate(2, 4, NULL);
  send_u32(td_gate_channel(g, 0), 1);
  send_u32(td_gate_channel(g, 1), 2);
  send_u32(td_gate_channel(g, 0), 3);
  TD_CHECK_INT(td_channel_send_priority(td_gate_channel(g, 0), PRIO, sizeof PRIO), 0);
  send_u32(td_gate_channel(g, 0), 4);
  TD_CHECK(td_gate_priority_pending(g));
  poll_priority(g, 0, 2); /* two buffers of channel 0 sent before it */
  TD_CHECK(!td_gate_priority_pending(g));
  for (uint32_t v = 1; v <= 4; v++) TD_CHECK_INT(poll_u32(g, v, 0), 1);
  TD_CHECK_INT(poll_u32(g, 0, 0), -EAGAIN);
  td_gate_free(g);
}

/* Priority events keep their own order, and come even after every
 * channel ended. */
TD_TEST(test_channel_priority_fifo_and_after_end) {
  td_gate_t *g = new_gate(2, 2, NULL);
  send_u32(td_gate_channel(g, 1), 9);
  TD_CHECK_INT(td_channel_send_priority(td_gate_channel(g, 1), PRIO, sizeof PRIO), 0);
  TD_CHECK_INT(td_channel_send_priority(td_gate_channel(g, 0), PRIO, sizeof PRIO), 0);
  send_end(td_gate_channel(g, 0));
  send_end(td_gate_channel(g, 1));
  poll_priority(g, 1, 1);
  poll_priority(g, 0, 0);
  TD_CHECK_INT(poll_u32(g, 9, 0), 1);
  TD_CHECK_INT(poll_u32(g, 0, 0), 0);
  td_gate_free(g);
}

/* A priority event needs no credit: it is queued while the sender holds
 * every buffer of the channel (a send that waited for credit would hang
 * this single-threaded case). */
TD_TEST(test_channel_priority_needs_no_credit) {
  td_gate_t *g = new_gate(1, 1, NULL);
  td_channel_t *c = td_gate_channel(g, 0);
  send_u32(c, 1);
  TD_CHECK(!td_channel_available(c, 0));
  TD_CHECK_INT(td_channel_send_priority(c, PRIO, sizeof PRIO), 0);
  TD_CHECK_INT(td_channel_send_priority(c, PRIO, sizeof PRIO), 0);
  TD_CHECK(!td_channel_available(c, 0)); /* and it takes none */
  poll_priority(g, 0, 1);
  poll_priority(g, 0, 1);
  TD_CHECK_INT(poll_u32(g, 1, 0), 1);
  TD_CHECK(td_channel_available(c, 0));
  td_gate_free(g);
}

/* td_gate_poll_priority takes priority events only, never data. */
TD_TEST(test_channel_poll_priority_leaves_data) {
  td_gate_t *g = new_gate(1, 2, NULL);
  td_buffer_t *b = NULL;
  send_u32(td_gate_channel(g, 0), 1);
  TD_CHECK_INT(td_gate_poll_priority(g, &b), 0);
  TD_CHECK_INT(td_channel_send_priority(td_gate_channel(g, 0), PRIO, sizeof PRIO), 0);
  TD_CHECK_INT(td_gate_poll_priority(g, &b), 1);
  if (b) {
    TD_CHECK_INT(b->kind, TD_BUF_PRIORITY);
    td_gate_recycle(g, b);
  }
  TD_CHECK_INT(td_gate_poll_priority(g, &b), 0);
  TD_CHECK_INT(poll_u32(g, 1, 0), 1);
  td_gate_free(g);
}

/* A receiver blocked in td_gate_poll wakes for a priority event. */
TD_TEST(test_channel_priority_wakes_blocked_poll) {
  td_gate_t *g = new_gate(2, 1, NULL);
  waiter_t w = {.g = g};
  pthread_t t = start(poll_main, &w);
  atomic_store(&w.released, 1);
  TD_CHECK_INT(td_channel_send_priority(td_gate_channel(g, 1), PRIO, sizeof PRIO), 0);
  join_bounded(t, g);
  TD_CHECK_INT(w.rc, 1);
  TD_CHECK_INT(w.saw_released, 1);
  if (w.rc == 1) {
    TD_CHECK_INT(w.b->kind, TD_BUF_PRIORITY);
    TD_CHECK_INT(td_channel_index(w.b->channel), 1);
    td_gate_recycle(g, w.b);
  }
  td_gate_free(g);
}

TD_TEST(test_channel_priority_after_cancel_fails) {
  td_gate_t *g = new_gate(1, 1, NULL);
  td_gate_cancel(g);
  TD_CHECK_INT(td_channel_send_priority(td_gate_channel(g, 0), PRIO, sizeof PRIO), TD_ECANCELED);
  TD_CHECK(!td_gate_priority_pending(g));
  td_gate_free(g);
}

/* td_gate_copy_queued copies the queued buffers of one channel sent before
 * the priority event (seq <= its seq), in order, and leaves them queued. */
TD_TEST(test_channel_copy_queued_up_to_seq) {
  td_gate_t *g = new_gate(2, 4, NULL);
  td_channel_t *c0 = td_gate_channel(g, 0), *c1 = td_gate_channel(g, 1);
  send_u32(c0, 10);
  send_u32(c1, 20);
  send_u32(c0, 11);
  TD_CHECK_INT(td_channel_send_priority(c0, PRIO, sizeof PRIO), 0);
  send_u32(c0, 12); /* after the event: not overtaken */
  td_buffer_t *ev = NULL;
  TD_CHECK_INT(td_gate_poll(g, &ev, 0), 1);
  if (!ev) return;
  td_wbuf_t w = {0};
  TD_CHECK_INT(td_gate_copy_queued(g, 0, ev->seq, &w), 0);
  td_buffer_t got = {.data = w};
  TD_CHECK_INT(w.len, 10);
  TD_CHECK_INT(get_u32(&got, 0), 10);
  TD_CHECK_INT(get_u32(&got, 1), 11);
  /* the copy changed nothing: everything is still delivered */
  TD_CHECK_INT(poll_u32(g, 10, 0), 1);
  w.len = 0;
  TD_CHECK_INT(td_gate_copy_queued(g, 0, ev->seq, &w), 0);
  got.data = w;
  TD_CHECK_INT(w.len, 5); /* 10 was consumed meanwhile */
  TD_CHECK_INT(get_u32(&got, 0), 11);
  w.len = 0;
  TD_CHECK_INT(td_gate_copy_queued(g, 1, ev->seq, &w), 0);
  TD_CHECK_INT(w.len, 5); /* channel 1's own numbering: seq 1 <= 2 */
  td_gate_recycle(g, ev);
  for (uint32_t v = 20; v <= 22; v++) {
    uint32_t want = v == 20 ? 20 : v == 21 ? 11 : 12;
    TD_CHECK_INT(poll_u32(g, want, 0), 1);
  }
  td_wbuf_destroy(&w);
  td_gate_free(g);
}

/* With an overdraft, a sender takes buffers beyond its credits without
 * waiting; the channel is unavailable from `credits` buffers in use on,
 * and acquire blocks only past credits + overdraft. */
TD_TEST(test_channel_overdraft_beyond_credits) {
  td_gate_t *g = new_gate(1, 2, NULL);
  td_gate_set_overdraft(g, 2);
  td_channel_t *c = td_gate_channel(g, 0);
  TD_CHECK(td_channel_available(c, 0));
  send_u32(c, 1);
  TD_CHECK(td_channel_available(c, 0));
  send_u32(c, 2);
  TD_CHECK(!td_channel_available(c, 0));
  send_u32(c, 3); /* overdraft: no wait */
  send_u32(c, 4);
  TD_CHECK(!td_channel_available(c, 0));
  waiter_t w = {.g = g, .c = c};
  pthread_t t = start(acquire_main, &w); /* a fifth waits */
  td_buffer_t *b;
  TD_CHECK_INT(td_gate_poll(g, &b, 0), 1);
  atomic_store(&w.released, 1);
  td_gate_recycle(g, b);
  join_bounded(t, g);
  TD_CHECK_INT(w.rc, 0);
  TD_CHECK_INT(w.saw_released, 1);
  if (w.rc == 0) td_gate_recycle(g, w.b);
  TD_CHECK(!td_channel_available(c, 0)); /* 3 in use of 2 credits */
  TD_CHECK_INT(poll_u32(g, 2, 0), 1);
  TD_CHECK(!td_channel_available(c, 0));
  TD_CHECK_INT(poll_u32(g, 3, 0), 1);
  TD_CHECK(td_channel_available(c, 0));
  TD_CHECK_INT(poll_u32(g, 4, 0), 1);
  td_gate_free(g);
}

/* The sender's notifier is signalled when its channel becomes available
 * again (for a sender that fills a buffer of it: one buffer in use beyond
 * the credits; for one that does not); the receiver's when a priority event
 * arrives; both on cancel. */
TD_TEST(test_channel_notifiers) {
  td_notify_t snd, rcv;
  TD_CHECK_INT(td_notify_init(&snd), 0);
  TD_CHECK_INT(td_notify_init(&rcv), 0);
  td_gate_t *g = new_gate(1, 1, NULL);
  td_gate_set_overdraft(g, 2);
  td_gate_set_notify(g, &rcv);
  td_channel_t *c = td_gate_channel(g, 0);
  td_channel_set_notify(c, &snd);
  send_u32(c, 1);
  send_u32(c, 2);
  send_u32(c, 3);
  uint64_t s0 = td_notify_seq(&snd), r0 = td_notify_seq(&rcv);
  TD_CHECK_INT(poll_u32(g, 1, 0), 1); /* 2 in use of 1 credit: still full */
  TD_CHECK_INT(td_notify_seq(&snd), s0);
  TD_CHECK(!td_channel_available(c, 1));
  TD_CHECK_INT(poll_u32(g, 2, 0), 1); /* available to a sender filling one */
  TD_CHECK(td_notify_seq(&snd) != s0);
  TD_CHECK(td_channel_available(c, 1) && !td_channel_available(c, 0));
  s0 = td_notify_seq(&snd);
  TD_CHECK_INT(poll_u32(g, 3, 0), 1); /* and to any sender */
  TD_CHECK(td_notify_seq(&snd) != s0);
  TD_CHECK(td_channel_available(c, 0));
  TD_CHECK_INT(td_notify_seq(&rcv), r0);
  TD_CHECK_INT(td_channel_send_priority(c, PRIO, sizeof PRIO), 0);
  TD_CHECK(td_notify_seq(&rcv) != r0);
  TD_CHECK_INT(td_notify_wait(&rcv, r0, 0), 1);
  s0 = td_notify_seq(&snd);
  r0 = td_notify_seq(&rcv);
  td_gate_cancel(g);
  TD_CHECK(td_notify_seq(&snd) != s0);
  TD_CHECK(td_notify_seq(&rcv) != r0);
  td_gate_free(g);
  td_notify_destroy(&snd);
  td_notify_destroy(&rcv);
}

TD_TEST_MAIN(test_channel_new_invalid, test_channel_tags,
             test_channel_no_channels, test_channel_acquire_fresh_buffer,
             test_channel_fifo_one_channel,
             test_channel_fifo_channels_interleaved,
             test_channel_credits_per_channel, test_channel_end_after_data,
             test_channel_end_before_other_data,
             test_channel_end_returns_credit, test_channel_poll_timeout,
             test_channel_cancel_later_waits,
             test_channel_free_with_queued_buffers,
             test_channel_acquire_blocks_until_recycle,
             test_channel_cancel_wakes_sender,
             test_channel_cancel_wakes_receiver,
             test_channel_poll_wakes_on_send,
             test_channel_timed_poll_wakes_on_send,
             test_channel_flow_control_stress, test_channel_end_multithread,
             test_channel_priority_overtakes_queued_buffers,
             test_channel_priority_fifo_and_after_end,
             test_channel_priority_needs_no_credit,
             test_channel_poll_priority_leaves_data,
             test_channel_priority_wakes_blocked_poll,
             test_channel_priority_after_cancel_fails,
             test_channel_copy_queued_up_to_seq,
             test_channel_overdraft_beyond_credits, test_channel_notifiers)
