/*
 * test_netexchange.c - the network shuffle (core/netexchange.h): a sender's
 * output (core/exchange.h) writing into a stub gate in one endpoint, the
 * receiver's gate in another, over loopback TCP (core/net.h). The bytes,
 * their order per channel and the end of partition arrive as through a
 * local gate; a receiver that stops taking buffers stops the sender after
 * its credits and overdraft; a priority event overtakes the queued data,
 * which the receiver copies as from a local gate.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "exchange.h"
#include "log.h"
#include "netexchange.h"
#include "testlib.h"

#define CREDITS 2
#define OVERDRAFT 1
#define WINDOW (CREDITS + OVERDRAFT)

static const unsigned char SECRET[] = "the secret of the test cluster!";

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* The connection the receiver's endpoint accepted. */
static _Atomic(td_net_peer_t *) g_accepted;
static void on_ready(void *ud, td_net_peer_t *p) {
  if (ud) atomic_store(&g_accepted, p);
}

static td_netx_t *endpoint(int receiver) {
  td_log_configure(TD_LOG_ERROR, 0);
  td_net_config_t cfg = {.secret = SECRET, .secret_len = 31, .on_ready = on_ready,
                         .ud = receiver ? (void *)1 : NULL};
  memcpy(cfg.cluster_id, "netexchange-test", TD_WIRE_CLUSTER_ID);
  td_netx_t *x;
  char err[256];
  if (td_netx_new(&x, &cfg, err, sizeof err) != 0) abort();
  return x;
}

static td_gate_t *gate(int n) {
  td_gate_t *g;
  if (td_gate_new(&g, n, CREDITS, NULL) != 0) abort();
  td_gate_set_overdraft(g, OVERDRAFT);
  return g;
}

/* The sender's process (a) and the receiver's (b), connected; a's stub
 * gate and b's gate of n channels, channel i over wire channel 10 + i;
 * a's output over the stub's channels. */
typedef struct setup {
  td_netx_t *a, *b;
  td_gate_t *stub, *in;
  td_output_t out;
} setup_t;

static void connect_pair(setup_t *s, int n) {
  atomic_store(&g_accepted, NULL);
  s->a = endpoint(0);
  s->b = endpoint(1);
  char err[256];
  int port;
  if (td_net_listen(td_netx_net(s->b), NULL, 0, &port, err, sizeof err) != 0) abort();
  td_net_peer_t *to_b;
  if (td_net_connect(td_netx_net(s->a), NULL, port, &to_b, err, sizeof err) != 0) abort();
  for (int i = 0; i < 2000 && !atomic_load(&g_accepted); i++) sleep_ms(5);
  td_net_peer_t *from_a = atomic_load(&g_accepted);
  TD_CHECK(from_a != NULL);
  s->stub = gate(n);
  s->in = gate(n);
  td_channel_t *targets[8];
  for (int i = 0; i < n; i++) {
    TD_CHECK_INT(td_netx_route_out(s->a, s->stub, i, WINDOW, to_b, 10 + (uint32_t)i), 0);
    TD_CHECK_INT(td_netx_route_in(s->b, s->in, i, WINDOW, from_a, 10 + (uint32_t)i), 0);
    targets[i] = td_gate_channel(s->stub, i);
  }
  TD_CHECK_INT(td_output_init(&s->out, TD_PART_REBALANCE, targets, n, 128, 0), 0);
}

static void teardown(setup_t *s) {
  td_output_destroy(&s->out);
  td_netx_free(s->a);
  td_netx_free(s->b);
  td_gate_free(s->stub);
  td_gate_free(s->in);
}

/* Write buffer k of channel t: 100 + k bytes, all t * 100 + k. */
static int write_buffer(td_output_t *o, int t, int k) {
  td_buffer_t *b;
  int rc = td_output_buffer(o, t, &b);
  if (rc) return rc;
  size_t len = 100 + (size_t)k;
  if (td_wbuf_reserve(&b->data, len) != 0) return TD_ENOMEM;
  memset(b->data.data + b->data.len, t * 100 + k, len);
  b->data.len += len;
  td_output_commit(o, t);
  td_output_flush(o);
  return 0;
}

static int buffer_ok(const td_buffer_t *b, int t, int k) {
  if (b->data.len != 100 + (size_t)k) return 0;
  for (size_t i = 0; i < b->data.len; i++)
    if ((unsigned char)b->data.data[i] != (unsigned char)(t * 100 + k)) return 0;
  return 1;
}

typedef struct sender {
  td_output_t *out;
  int n_channels, per_channel;
  int event_after;  /* send a priority event on channel 0 after this many buffers (-1: none) */
  atomic_int sent;
  int rc;
} sender_t;

static void *send_all(void *arg) {
  sender_t *s = arg;
  for (int k = 0; k < s->per_channel && !s->rc; k++)
    for (int t = 0; t < s->n_channels && !s->rc; t++) {
      if (atomic_load(&s->sent) == s->event_after)
        s->rc = td_output_send_priority(s->out, "barrier", 7);
      if (!s->rc) s->rc = write_buffer(s->out, t, k);
      atomic_fetch_add(&s->sent, 1);
    }
  if (!s->rc) s->rc = td_output_finish(s->out);
  return NULL;
}

/* Take every buffer of the gate until all channels ended; checks each
 * against what channel t's k-th buffer holds. Returns the buffers seen. */
static int receive_all(td_gate_t *g, int n, int *next) {
  int got = 0;
  for (;;) {
    td_buffer_t *b;
    int rc = td_gate_poll(g, &b, 10000);
    if (rc != 1) {
      TD_CHECK_INT(rc, 0); /* every channel ended */
      break;
    }
    if (b->kind == TD_BUF_PRIORITY) {
      td_gate_recycle(g, b);
      continue;
    }
    int t = td_channel_index(b->channel);
    TD_CHECK(t >= 0 && t < n);
    if (!buffer_ok(b, t, next[t])) {
      fprintf(stderr, "  channel %d: buffer %d wrong (%zu bytes)\n", t, next[t], b->data.len);
      td_test_failed_ = 1;
    }
    next[t]++;
    got++;
    td_gate_recycle(g, b);
  }
  return got;
}

/* Every buffer arrives, in order per channel, then the end of every
 * channel. */
TD_TEST(test_netexchange_buffers_arrive_in_order) {
  setup_t s;
  connect_pair(&s, 3);
  sender_t snd = {.out = &s.out, .n_channels = 3, .per_channel = 60, .event_after = -1};
  pthread_t th;
  TD_CHECK_INT(pthread_create(&th, NULL, send_all, &snd), 0);
  int next[3] = {0, 0, 0};
  TD_CHECK_INT(receive_all(s.in, 3, next), 180);
  pthread_join(th, NULL);
  TD_CHECK_INT(snd.rc, 0);
  for (int t = 0; t < 3; t++) TD_CHECK_INT(next[t], 60);
  teardown(&s);
}

/* A receiver that takes nothing stops the sender after its window (the
 * credits and the overdraft); a priority event overtakes the queued
 * buffers, whose bytes the receiver copies; then everything flows. */
TD_TEST(test_netexchange_backpressure_and_priority) {
  setup_t s;
  connect_pair(&s, 1);
  sender_t snd = {.out = &s.out, .n_channels = 1, .per_channel = 20, .event_after = WINDOW};
  pthread_t th;
  TD_CHECK_INT(pthread_create(&th, NULL, send_all, &snd), 0);
  int before = -1;
  for (int i = 0; i < 100 && atomic_load(&snd.sent) != before; i++) {
    before = atomic_load(&snd.sent);
    sleep_ms(100);
  }
  /* the window shipped; the next buffer waits for a credit */
  TD_CHECK_INT(atomic_load(&snd.sent), WINDOW);
  TD_CHECK(td_channel_would_block(td_gate_channel(s.stub, 0)));
  /* the event comes first, and the data it overtook is the window */
  td_buffer_t *b;
  TD_CHECK_INT(td_gate_poll(s.in, &b, 10000), 1);
  TD_CHECK_INT(b->kind, TD_BUF_PRIORITY);
  TD_CHECK(b->data.len == 7 && memcmp(b->data.data, "barrier", 7) == 0);
  TD_CHECK_INT(b->seq, WINDOW);
  td_wbuf_t copy = {0};
  TD_CHECK_INT(td_gate_copy_queued(s.in, 0, b->seq, &copy), 0);
  TD_CHECK_INT(copy.len, 100 + 101 + 102);
  td_wbuf_destroy(&copy);
  td_gate_recycle(s.in, b);
  int next[1] = {0};
  TD_CHECK_INT(receive_all(s.in, 1, next), 20);
  pthread_join(th, NULL);
  TD_CHECK_INT(snd.rc, 0);
  teardown(&s);
}

TD_TEST_MAIN(test_netexchange_buffers_arrive_in_order, test_netexchange_backpressure_and_priority)
