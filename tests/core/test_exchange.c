/*
 * test_exchange.c - unit tests for the sending side of an exchange
 * (exchange.h): partitioner targets (forward, rebalance, hash, broadcast),
 * when buffers are sent (full, flush, finish), credits handed back by
 * td_output_destroy, cancellation, availability, priority events (sent
 * after the partial buffers, on every target, without credit), and a
 * multi-producer stress test: 4
 * sender threads x 100k records into 3 receiving gates, every record
 * decoded and checked to arrive exactly once, in order per channel, at the
 * target its partitioner chose.
 *
 * Senders write records as raw MessagePack and receivers decode them with
 * the codec (codec.h); hash keys are encoded canonically with the codec,
 * as the host does. Waits are bounded; see test_channel.c for the rules.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "channel.h"
#include "codec.h"
#include "error.h"
#include "exchange.h"
#include "keygroup.h"
#include "testlib.h"

#define GRACE_MS 50
#define BOUND_MS 120000

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

static int wait_flag(atomic_int *f, int v, int ms) {
  double end = now_ms() + ms;
  while (atomic_load(f) != v) {
    if (now_ms() > end) return 0;
    sleep_ms(1);
  }
  return 1;
}

/* join_bounded - join t; after BOUND_MS fail, cancel the gates, join. */
static void join_bounded(pthread_t t, td_gate_t **gates, int n) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += BOUND_MS / 1000;
  if (pthread_timedjoin_np(t, NULL, &dl) != 0) {
    fprintf(stderr, "  thread still blocked after %d ms: cancelling\n",
            BOUND_MS);
    td_test_failed_ = 1;
    for (int i = 0; i < n; i++) td_gate_cancel(gates[i]);
    pthread_join(t, NULL);
  }
}

/* put_uint - append the shortest MessagePack encoding of v. */
static size_t put_uint(unsigned char *p, uint32_t v) {
  if (v < 128) {
    p[0] = (unsigned char)v;
    return 1;
  }
  if (v < 256) {
    p[0] = 0xcc;
    p[1] = (unsigned char)v;
    return 2;
  }
  if (v < 65536) {
    p[0] = 0xcd;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)v;
    return 3;
  }
  p[0] = 0xce;
  p[1] = (unsigned char)(v >> 24);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 8);
  p[4] = (unsigned char)v;
  return 5;
}

/* write_record - append the record [a, b, c] to buffer bf. */
static void write_record(td_buffer_t *bf, uint32_t a, uint32_t b, uint32_t c) {
  if (td_wbuf_reserve(&bf->data, 16) != 0) abort();
  unsigned char *p = (unsigned char *)bf->data.data + bf->data.len;
  size_t n = 0;
  p[n++] = 0x93;
  n += put_uint(p + n, a);
  n += put_uint(p + n, b);
  n += put_uint(p + n, c);
  bf->data.len += n;
}

/* emit - one record to target t of o, as the host does. */
static int emit(td_output_t *o, int t, uint32_t a, uint32_t b, uint32_t c) {
  td_buffer_t *bf;
  int rc = td_output_buffer(o, t, &bf);
  if (rc) return rc;
  write_record(bf, a, b, c);
  td_output_commit(o, t);
  return 0;
}

/* read_record - decode record i of buffer bf (walking from *off) into
 * r[0..2]; returns 0 or -1. */
static int read_record(lua_State *L, const td_buffer_t *bf, size_t *off,
                       uint32_t r[3]) {
  if (td_codec_decode(L, bf->data.data, bf->data.len, off) != 0) return -1;
  int ok = lua_istable(L, -1) && luaL_len(L, -1) == 3;
  for (int k = 0; ok && k < 3; k++) {
    lua_rawgeti(L, -1, k + 1);
    ok = lua_isinteger(L, -1);
    r[k] = (uint32_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return ok ? 0 : -1;
}

/* drain - poll g until it ends (or nothing comes within ms), decoding the
 * records; calls fn for each. Returns the last poll result. */
typedef void (*record_fn)(const td_buffer_t *bf, const uint32_t r[3],
                          void *ud);

static int drain(td_gate_t *g, int ms, record_fn fn, void *ud, long *bad) {
  lua_State *L = luaL_newstate();
  td_buffer_t *bf;
  int rc;
  while ((rc = td_gate_poll(g, &bf, ms)) == 1) {
    size_t off = 0;
    uint32_t n = 0, r[3];
    while (off < bf->data.len) {
      if (read_record(L, bf, &off, r) != 0) {
        ++*bad;
        break;
      }
      n++;
      if (fn) fn(bf, r, ud);
    }
    if (n != bf->count) ++*bad;
    td_gate_recycle(g, bf);
  }
  lua_close(L);
  return rc;
}

static void collect(const td_buffer_t *bf, const uint32_t r[3], void *ud) {
  uint32_t *seen = ud; /* seen[0] = n, then the b fields */
  if (seen[0] < 4096) seen[1 + seen[0]] = r[1];
  seen[0]++;
}

/* canonical_key - the canonical key bytes of the integer k (codec). */
static void canonical_key(lua_State *L, uint32_t k, td_wbuf_t *w) {
  char err[64];
  w->len = 0;
  lua_pushinteger(L, k);
  if (td_codec_encode(L, -1, w, 1, err, sizeof err) != 0) abort();
  lua_pop(L, 1);
}

/* ---- single thread ---- */

TD_TEST(test_exchange_init_invalid) {
  td_gate_t *g = new_gate(1, 2, NULL);
  td_channel_t *c = td_gate_channel(g, 0);
  td_output_t o;
  TD_CHECK_INT(td_output_init(&o, TD_PART_HASH, &c, 0, 128, 0), TD_EINVAL);
  TD_CHECK_INT(td_output_init(&o, TD_PART_HASH, &c, 1, 0, 0), TD_EINVAL);
  td_output_destroy(&o); /* harmless after a failed init */
  TD_CHECK_INT(td_output_init(&o, TD_PART_HASH, &c, 1, 128, 0), 0);
  TD_CHECK_INT(o.n, 1);
  TD_CHECK_INT(o.target_parallelism, 1);
  TD_CHECK_INT(o.max_parallelism, 128);
  TD_CHECK(o.targets[0] == c);
  td_output_destroy(&o);
  td_gate_free(g);
}

TD_TEST(test_exchange_rebalance_round_robin) {
  td_gate_t *g = new_gate(3, 2, NULL);
  td_channel_t *cs[3] = {td_gate_channel(g, 0), td_gate_channel(g, 1),
                         td_gate_channel(g, 2)};
  td_output_t o;
  /* the first target is start % n */
  TD_CHECK_INT(td_output_init(&o, TD_PART_REBALANCE, cs, 3, 128, 5), 0);
  static const int want[] = {2, 0, 1, 2, 0, 1, 2};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    TD_CHECK_INT(td_output_next_target(&o), want[i]);
  td_output_destroy(&o);
  TD_CHECK_INT(td_output_init(&o, TD_PART_REBALANCE, cs, 3, 128, 0), 0);
  int counts[3] = {0};
  for (int i = 0; i < 3000; i++) counts[td_output_next_target(&o)]++;
  for (int i = 0; i < 3; i++) TD_CHECK_INT(counts[i], 1000);
  td_output_destroy(&o);
  td_gate_free(g);
}

/* The hash target is the subtask that owns the key's key group. */
TD_TEST(test_exchange_hash_target_is_key_group_owner) {
  enum { MAXN = 7 };
  td_gate_t *g = new_gate(MAXN, 1, NULL);
  td_channel_t *cs[MAXN];
  for (int i = 0; i < MAXN; i++) cs[i] = td_gate_channel(g, i);
  lua_State *L = luaL_newstate();
  td_wbuf_t key = {0};
  int ns[] = {1, 2, 3, 5, 7};
  int ms[] = {7, 128, 1000, 32768};
  long bad = 0;
  for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
    for (size_t m = 0; m < sizeof ms / sizeof ms[0]; m++) {
      if (ns[a] > ms[m]) continue;
      td_output_t o;
      TD_CHECK_INT(td_output_init(&o, TD_PART_HASH, cs, ns[a], ms[m], 0), 0);
      int hits[MAXN] = {0};
      for (uint32_t k = 0; k < 5000; k++) {
        canonical_key(L, k * 2654435761u, &key);
        int kg = td_keygroup_of(td_keygroup_hash(key.data, key.len), ms[m]);
        int want = td_keygroup_subtask(kg, ns[a], ms[m]);
        int got = td_output_hash_target(&o, key.data, key.len);
        bad += got != want || got < 0 || got >= ns[a];
        if (got >= 0 && got < ns[a]) hits[got]++;
      }
      for (int t = 0; t < ns[a]; t++) TD_CHECK(hits[t] > 0);
      td_output_destroy(&o);
    }
  TD_CHECK_INT(bad, 0);
  td_wbuf_destroy(&key);
  lua_close(L);
  td_gate_free(g);
}

/* Forward: the single target (index 0) gets every record, in order, then
 * the end. */
TD_TEST(test_exchange_forward_to_target_0) {
  td_gate_t *g = new_gate(1, 4, NULL);
  td_channel_t *c = td_gate_channel(g, 0);
  td_output_t o;
  TD_CHECK_INT(td_output_init(&o, TD_PART_FORWARD, &c, 1, 128, 3), 0);
  enum { N = 20000 };
  static uint32_t seen[1 + 4096 * 8];
  memset(seen, 0, sizeof seen);
  /* N records need several buffers: the receiver runs in between, here by
   * draining whenever the sender would otherwise wait for credit */
  long bad = 0;
  for (uint32_t i = 0; i < N; i++) {
    TD_CHECK_INT(emit(&o, 0, 0, i, 0), 0);
    if (o.cur[0] == NULL) { /* a full buffer was just sent */
      TD_CHECK_INT(drain(g, 0, collect, seen, &bad), -EAGAIN);
    }
  }
  TD_CHECK_INT(td_output_finish(&o), 0);
  TD_CHECK_INT(drain(g, 0, collect, seen, &bad), 0);
  TD_CHECK_INT(bad, 0);
  TD_CHECK_INT(seen[0], N);
  for (uint32_t i = 0; i < 4096 && i < N; i++) bad += seen[1 + i] != i;
  TD_CHECK_INT(bad, 0);
  td_output_destroy(&o);
  td_gate_free(g);
}

/* Broadcast (as the host writes it: the record to every target) reaches
 * every target. */
TD_TEST(test_exchange_broadcast_every_target) {
  enum { T = 3, N = 500 };
  td_gate_t *gs[T];
  td_channel_t *cs[T];
  for (int i = 0; i < T; i++) {
    gs[i] = new_gate(1, 4, NULL);
    cs[i] = td_gate_channel(gs[i], 0);
  }
  td_output_t o;
  TD_CHECK_INT(td_output_init(&o, TD_PART_BROADCAST, cs, T, 128, 1), 0);
  for (uint32_t i = 0; i < N; i++)
    for (int t = 0; t < o.n; t++) TD_CHECK_INT(emit(&o, t, 0, i, 0), 0);
  TD_CHECK_INT(td_output_finish(&o), 0);
  for (int t = 0; t < T; t++) {
    static uint32_t seen[1 + 4096];
    memset(seen, 0, sizeof seen);
    long bad = 0;
    TD_CHECK_INT(drain(gs[t], 0, collect, seen, &bad), 0);
    TD_CHECK_INT(bad, 0);
    TD_CHECK_INT(seen[0], N);
    for (uint32_t i = 0; i < N; i++) bad += seen[1 + i] != i;
    TD_CHECK_INT(bad, 0);
  }
  td_output_destroy(&o);
  for (int i = 0; i < T; i++) td_gate_free(gs[i]);
}

/* A buffer is sent once it holds TD_BUFFER_SIZE bytes; a partial one only
 * on flush; flush leaves alone a buffer without records. */
TD_TEST(test_exchange_send_when_full_or_flushed) {
  td_gate_t *g = new_gate(2, 4, NULL);
  td_channel_t *cs[2] = {td_gate_channel(g, 0), td_gate_channel(g, 1)};
  td_output_t o;
  TD_CHECK_INT(td_output_init(&o, TD_PART_REBALANCE, cs, 2, 128, 0), 0);
  /* records of 1024 bytes (a str 16 header and 1021 bytes): the 32nd
   * brings the buffer to exactly TD_BUFFER_SIZE, which is full */
  enum { REC = 1024 };
  int sent_after = 0;
  for (int i = 1; i <= 40 && !sent_after; i++) {
    td_buffer_t *b;
    TD_CHECK_INT(td_output_buffer(&o, 0, &b), 0);
    TD_CHECK_INT(td_wbuf_reserve(&b->data, REC), 0);
    unsigned char *p = (unsigned char *)b->data.data + b->data.len;
    p[0] = 0xda;
    p[1] = (REC - 3) >> 8;
    p[2] = (REC - 3) & 0xff;
    memset(p + 3, 'a' + i % 26, REC - 3);
    b->data.len += REC;
    td_output_commit(&o, 0);
    if (td_gate_available(g)) sent_after = i;
  }
  TD_CHECK_INT(sent_after, TD_BUFFER_SIZE / REC);
  TD_CHECK(o.cur[0] == NULL);
  td_buffer_t *b;
  TD_CHECK_INT(td_gate_poll(g, &b, 0), 1);
  TD_CHECK_INT(b->count, sent_after);
  TD_CHECK(b->data.len >= TD_BUFFER_SIZE);
  td_gate_recycle(g, b);
  /* a partial buffer waits for flush */
  TD_CHECK_INT(emit(&o, 1, 1, 2, 3), 0);
  TD_CHECK_INT(emit(&o, 1, 1, 3, 3), 0);
  TD_CHECK_INT(td_gate_available(g), 0);
  /* a buffer taken but holding no record is not sent by flush */
  TD_CHECK_INT(td_output_buffer(&o, 0, &b), 0);
  td_output_flush(&o);
  TD_CHECK(o.cur[0] == b);
  TD_CHECK(o.cur[1] == NULL);
  TD_CHECK_INT(td_gate_poll(g, &b, 0), 1);
  TD_CHECK_INT(td_channel_tag(b->channel), 0);
  TD_CHECK(b->channel == cs[1]);
  TD_CHECK_INT(b->count, 2);
  td_gate_recycle(g, b);
  TD_CHECK_INT(td_gate_poll(g, &b, 0), -EAGAIN);
  td_output_flush(&o); /* nothing left: no-op */
  TD_CHECK_INT(td_gate_poll(g, &b, 0), -EAGAIN);
  td_output_destroy(&o);
  td_gate_free(g);
}

/* Takes one buffer of the gate after arg's milliseconds and recycles it. */
typedef struct late_taker {
  td_gate_t *g;
  int after_ms;
} late_taker_t;

static void *take_late(void *arg) {
  late_taker_t *lt = arg;
  sleep_ms(lt->after_ms);
  td_buffer_t *b;
  if (td_gate_poll(lt->g, &b, BOUND_MS) == 1) td_gate_recycle(lt->g, b);
  return NULL;
}

/* A sender that waits for a buffer (every credit and the overdraft in
 * use) is backpressured for that time (Flink counts the blocking request
 * of a buffer); taking a buffer that is there costs none. */
TD_TEST(test_exchange_buffer_wait_is_backpressure) {
  td_gate_t *g = new_gate(1, 1, NULL);
  td_gate_set_overdraft(g, 0);
  td_channel_t *c = td_gate_channel(g, 0);
  td_output_t o;
  TD_CHECK_INT(td_output_init(&o, TD_PART_FORWARD, &c, 1, 128, 0), 0);
  td_time_acct_t acct;
  td_time_init(&acct, td_metrics_now_ns());
  o.time = &acct;
  td_buffer_t *b;
  TD_CHECK_INT(td_output_buffer(&o, 0, &b), 0); /* the credit: no wait */
  td_time_totals_t t;
  td_time_read(&acct, td_metrics_now_ns(), &t);
  TD_CHECK_INT(t.bp_ns, 0);
  TD_CHECK_INT(td_wbuf_reserve(&b->data, TD_BUFFER_SIZE), 0);
  memset(b->data.data, 0xc0, TD_BUFFER_SIZE); /* nils: a full buffer, sent */
  b->data.len = TD_BUFFER_SIZE;
  td_output_commit(&o, 0);
  TD_CHECK(o.cur[0] == NULL);
  TD_CHECK(td_channel_would_block(c));
  late_taker_t lt = {g, 100};
  pthread_t th;
  TD_CHECK_INT(pthread_create(&th, NULL, take_late, &lt), 0);
  TD_CHECK_INT(td_output_buffer(&o, 0, &b), 0); /* waits for the taker */
  pthread_join(th, NULL);
  td_time_read(&acct, td_metrics_now_ns(), &t);
  TD_CHECK(t.bp_ns >= 90 * 1000000LL);
  td_output_destroy(&o);
  td_gate_free(g);
}

/* A record larger than TD_BUFFER_SIZE is sent whole, at once. */
TD_TEST(test_exchange_large_record) {
  td_gate_t *g = new_gate(1, 2, NULL);
  td_channel_t *c = td_gate_channel(g, 0);
  td_output_t o;
  TD_CHECK_INT(td_output_init(&o, TD_PART_FORWARD, &c, 1, 128, 0), 0);
  enum { LEN = 3 * TD_BUFFER_SIZE };
  td_buffer_t *b;
  TD_CHECK_INT(td_output_buffer(&o, 0, &b), 0);
  TD_CHECK_INT(td_wbuf_reserve(&b->data, LEN + 5), 0);
  unsigned char *p = (unsigned char *)b->data.data;
  p[0] = 0xdb; /* str 32 */
  p[1] = 0;
  p[2] = (unsigned char)(LEN >> 16);
  p[3] = (unsigned char)(LEN >> 8);
  p[4] = (unsigned char)LEN;
  for (int i = 0; i < LEN; i++) p[5 + i] = (unsigned char)('a' + i % 26);
  b->data.len = LEN + 5;
  td_output_commit(&o, 0);
  TD_CHECK(o.cur[0] == NULL);
  td_buffer_t *got;
  TD_CHECK_INT(td_gate_poll(g, &got, 0), 1);
  TD_CHECK_INT(got->count, 1);
  TD_CHECK_INT(got->data.len, LEN + 5);
  lua_State *L = luaL_newstate();
  size_t off = 0;
  TD_CHECK_INT(td_codec_decode(L, got->data.data, got->data.len, &off), 0);
  size_t n = 0;
  const char *s = lua_tolstring(L, -1, &n);
  TD_CHECK_INT(n, LEN);
  TD_CHECK(s && s[0] == 'a' && s[LEN - 1] == 'a' + (LEN - 1) % 26);
  lua_close(L);
  td_gate_recycle(g, got);
  TD_CHECK_INT(td_output_finish(&o), 0);
  TD_CHECK_INT(td_gate_poll(g, &got, 0), 0);
  td_output_destroy(&o);
  td_gate_free(g);
}

/* finish sends the pending records then END on every target, so every
 * receiving gate ends. */
TD_TEST(test_exchange_finish_ends_every_target) {
  enum { T = 3 };
  td_gate_t *gs[T];
  td_channel_t *cs[T];
  for (int i = 0; i < T; i++) {
    gs[i] = new_gate(1, 1, NULL);
    cs[i] = td_gate_channel(gs[i], 0);
  }
  td_output_t o;
  TD_CHECK_INT(td_output_init(&o, TD_PART_REBALANCE, cs, T, 128, 0), 0);
  for (uint32_t i = 0; i < 4; i++)
    TD_CHECK_INT(emit(&o, td_output_next_target(&o), 0, i, 0), 0);
  /* only one credit per channel: the pending buffers of targets 0 and 1
   * must be sent and drained before finish can take another for END */
  td_output_flush(&o);
  for (int t = 0; t < T; t++) {
    static uint32_t seen[1 + 4096];
    memset(seen, 0, sizeof seen);
    long bad = 0;
    TD_CHECK_INT(drain(gs[t], 0, collect, seen, &bad), -EAGAIN);
    TD_CHECK_INT(seen[0], t == 0 ? 2 : 1);
    TD_CHECK_INT(bad, 0);
  }
  TD_CHECK_INT(td_output_finish(&o), 0);
  for (int t = 0; t < T; t++) {
    td_buffer_t *b;
    TD_CHECK_INT(td_gate_poll(gs[t], &b, 0), 0);
    TD_CHECK(o.cur[t] == NULL);
  }
  td_output_destroy(&o);
  for (int i = 0; i < T; i++) td_gate_free(gs[i]);
}

typedef struct acq {
  td_channel_t *c;
  atomic_int started, done, released;
  int rc, saw_released;
} acq_t;

static void *acq_main(void *arg) {
  acq_t *a = arg;
  td_buffer_t *b;
  atomic_store(&a->started, 1);
  a->rc = td_channel_acquire(a->c, &b);
  a->saw_released = atomic_load(&a->released);
  if (a->rc == 0) td_gate_recycle(NULL, b);
  atomic_store(&a->done, 1);
  return NULL;
}

/* destroy gives held buffers back unsent: the credit is free again. */
TD_TEST(test_exchange_destroy_returns_credits) {
  td_gate_t *g = new_gate(1, 1, NULL);
  td_channel_t *c = td_gate_channel(g, 0);
  td_output_t o;
  TD_CHECK_INT(td_output_init(&o, TD_PART_FORWARD, &c, 1, 128, 0), 0);
  TD_CHECK_INT(emit(&o, 0, 1, 2, 3), 0); /* holds the channel's only buffer */
  td_output_destroy(&o);
  TD_CHECK(o.cur == NULL && o.targets == NULL && o.n == 0);
  td_buffer_t *b;
  TD_CHECK_INT(td_gate_poll(g, &b, 0), -EAGAIN); /* nothing was sent */
  /* the credit is back: acquire returns (in a thread, so that a bug
   * fails the case instead of hanging it) */
  acq_t a = {.c = c};
  pthread_t t;
  if (pthread_create(&t, NULL, acq_main, &a) != 0) abort();
  join_bounded(t, &g, 1);
  TD_CHECK_INT(a.rc, 0);
  td_gate_free(g);
}

/* A writer blocked for credit is released by cancel with TD_ECANCELED,
 * and finish then fails the same way. */
TD_TEST(test_exchange_cancel_unblocks_writer) {
  td_gate_t *g = new_gate(1, 1, NULL);
  td_channel_t *c = td_gate_channel(g, 0);
  td_output_t o;
  TD_CHECK_INT(td_output_init(&o, TD_PART_FORWARD, &c, 1, 128, 0), 0);
  TD_CHECK_INT(emit(&o, 0, 1, 2, 3), 0);
  td_output_flush(&o); /* the only buffer is now queued at the gate */
  acq_t a = {.c = c};
  pthread_t t;
  if (pthread_create(&t, NULL, acq_main, &a) != 0) abort();
  TD_CHECK(wait_flag(&a.started, 1, BOUND_MS));
  TD_CHECK(!wait_flag(&a.done, 1, GRACE_MS));
  atomic_store(&a.released, 1);
  td_gate_cancel(g);
  join_bounded(t, &g, 1);
  TD_CHECK_INT(a.rc, TD_ECANCELED);
  TD_CHECK_INT(a.saw_released, 1);
  td_buffer_t *b;
  TD_CHECK_INT(td_output_buffer(&o, 0, &b), TD_ECANCELED);
  TD_CHECK_INT(td_output_finish(&o), TD_ECANCELED);
  td_output_destroy(&o);
  td_gate_free(g);
}

/* ---- many threads ---- */

#define S_MAX 4
#define G_MAX 4 /* at least S_MAX: forward has a gate per sender */

typedef struct stress {
  td_partition_t part;
  int n_senders, n_gates; /* forward: one gate per sender */
  uint32_t n_records;
  int maxp;
  td_gate_t *gates[G_MAX];
  /* seen[(g * n_senders + s) * n_records + seq]: deliveries per gate */
  unsigned char *seen;
  atomic_long errors;
} stress_t;

typedef struct worker {
  stress_t *st;
  int index;
  long bad;
  pthread_t thread;
} worker_t;

static uint32_t key_of(int s, uint32_t seq) {
  return (seq * 2654435761u) % 50021u + (uint32_t)s;
}

static void *stress_sender(void *arg) {
  worker_t *w = arg;
  stress_t *st = w->st;
  int s = w->index;
  lua_State *L = luaL_newstate();
  td_wbuf_t key = {0};
  td_channel_t *targets[G_MAX];
  int n = 0;
  if (st->part == TD_PART_FORWARD) {
    targets[n++] = td_gate_channel(st->gates[s], 0);
  } else {
    for (int g = 0; g < st->n_gates; g++)
      targets[n++] = td_gate_channel(st->gates[g], s);
  }
  td_output_t o;
  int rc = td_output_init(&o, st->part, targets, n, st->maxp, s);
  for (uint32_t seq = 0; rc == 0 && seq < st->n_records; seq++) {
    uint32_t k = key_of(s, seq);
    switch (st->part) {
    case TD_PART_FORWARD:
      rc = emit(&o, 0, (uint32_t)s, seq, k);
      break;
    case TD_PART_REBALANCE:
      rc = emit(&o, td_output_next_target(&o), (uint32_t)s, seq, k);
      break;
    case TD_PART_HASH:
      canonical_key(L, k, &key);
      rc = emit(&o, td_output_hash_target(&o, key.data, key.len), (uint32_t)s,
                seq, k);
      break;
    case TD_PART_BROADCAST:
      for (int t = 0; t < o.n && rc == 0; t++)
        rc = emit(&o, t, (uint32_t)s, seq, k);
      break;
    }
    if (seq % 1009 == 0) td_output_flush(&o); /* a buffer timeout */
  }
  if (rc == 0) rc = td_output_finish(&o);
  if (rc) {
    fprintf(stderr, "  sender %d: %s\n", s, td_strerror(rc));
    atomic_fetch_add(&st->errors, 1);
  }
  td_output_destroy(&o);
  td_wbuf_destroy(&key);
  lua_close(L);
  return NULL;
}

typedef struct recv_ctx {
  stress_t *st;
  int g;
  lua_State *L;
  td_wbuf_t key;
  int64_t last[S_MAX]; /* last seq per channel (= per sender) */
  long bad;
} recv_ctx_t;

static void stress_record(const td_buffer_t *bf, const uint32_t r[3],
                          void *ud) {
  recv_ctx_t *rc = ud;
  stress_t *st = rc->st;
  int s = (int)r[0];
  uint32_t seq = r[1];
  int ch = td_channel_tag(bf->channel);
  if (s < 0 || s >= st->n_senders || seq >= st->n_records ||
      r[2] != key_of(s, seq)) {
    rc->bad++;
    return;
  }
  /* the channel is the sender's own (tagged with its index), and its
   * order is kept */
  if (ch != s) rc->bad++;
  if ((int64_t)seq <= rc->last[s]) rc->bad++;
  rc->last[s] = seq;
  /* the partitioner's target */
  int want_g = rc->g;
  switch (st->part) {
  case TD_PART_FORWARD:
    want_g = s;
    break;
  case TD_PART_REBALANCE:
    want_g = (int)((s + seq) % (uint32_t)st->n_gates);
    break;
  case TD_PART_HASH:
    canonical_key(rc->L, r[2], &rc->key);
    want_g = td_keygroup_subtask(
        td_keygroup_of(td_keygroup_hash(rc->key.data, rc->key.len), st->maxp),
        st->n_gates, st->maxp);
    break;
  case TD_PART_BROADCAST:
    break;
  }
  if (want_g != rc->g) rc->bad++;
  unsigned char *cell =
      &st->seen[((size_t)rc->g * st->n_senders + s) * st->n_records + seq];
  if (*cell < 255) ++*cell;
}

static void *stress_receiver(void *arg) {
  worker_t *w = arg;
  recv_ctx_t ctx = {.st = w->st, .g = w->index};
  ctx.L = luaL_newstate();
  for (int s = 0; s < S_MAX; s++) ctx.last[s] = -1;
  int rc = drain(w->st->gates[w->index], -1, stress_record, &ctx, &ctx.bad);
  if (rc != 0) {
    fprintf(stderr, "  receiver %d: %s\n", w->index, td_strerror(rc));
    ctx.bad++;
  }
  w->bad = ctx.bad;
  td_wbuf_destroy(&ctx.key);
  lua_close(ctx.L);
  return NULL;
}

static void run_stress(td_partition_t part, int n_senders, int n_gates,
                       uint32_t n_records) {
  stress_t st = {.part = part, .n_senders = n_senders, .n_gates = n_gates,
                 .n_records = n_records, .maxp = 128};
  int tags[S_MAX];
  for (int s = 0; s < S_MAX; s++) tags[s] = s;
  int channels = part == TD_PART_FORWARD ? 1 : n_senders;
  for (int g = 0; g < n_gates; g++) /* forward: gate g's one channel is g's */
    st.gates[g] = new_gate(channels, TD_CHANNEL_CREDITS,
                           part == TD_PART_FORWARD ? &tags[g] : tags);
  st.seen = calloc((size_t)n_gates * n_senders * n_records, 1);
  if (!st.seen) abort();
  worker_t senders[S_MAX], receivers[G_MAX];
  for (int g = 0; g < n_gates; g++) {
    receivers[g] = (worker_t){.st = &st, .index = g};
    if (pthread_create(&receivers[g].thread, NULL, stress_receiver,
                       &receivers[g]) != 0)
      abort();
  }
  for (int s = 0; s < n_senders; s++) {
    senders[s] = (worker_t){.st = &st, .index = s};
    if (pthread_create(&senders[s].thread, NULL, stress_sender, &senders[s]) !=
        0)
      abort();
  }
  for (int s = 0; s < n_senders; s++)
    join_bounded(senders[s].thread, st.gates, n_gates);
  long bad = 0;
  for (int g = 0; g < n_gates; g++) {
    join_bounded(receivers[g].thread, st.gates, n_gates);
    bad += receivers[g].bad;
  }
  TD_CHECK_INT(atomic_load(&st.errors), 0);
  TD_CHECK_INT(bad, 0);
  /* exactly once per record (broadcast: once per gate) */
  long missing = 0, dup = 0;
  for (int s = 0; s < n_senders; s++)
    for (uint32_t seq = 0; seq < n_records; seq++) {
      int total = 0;
      for (int g = 0; g < n_gates; g++) {
        int c = st.seen[((size_t)g * n_senders + s) * n_records + seq];
        if (part == TD_PART_BROADCAST) {
          missing += c == 0;
          dup += c > 1;
        }
        total += c;
      }
      if (part != TD_PART_BROADCAST) {
        missing += total == 0;
        dup += total > 1;
      }
    }
  TD_CHECK_INT(missing, 0);
  TD_CHECK_INT(dup, 0);
  free(st.seen);
  for (int g = 0; g < n_gates; g++) td_gate_free(st.gates[g]);
}

TD_TEST(test_exchange_stress_rebalance) {
  run_stress(TD_PART_REBALANCE, 4, 3, 100000);
}

TD_TEST(test_exchange_stress_hash) { run_stress(TD_PART_HASH, 4, 3, 100000); }

TD_TEST(test_exchange_stress_broadcast) {
  run_stress(TD_PART_BROADCAST, 4, 3, 20000);
}

TD_TEST(test_exchange_stress_forward) {
  run_stress(TD_PART_FORWARD, 4, 4, 50000);
}

/* An output is available while every target has a free credit besides the
 * buffer the output is filling for it. */
TD_TEST(test_exchange_available_needs_every_target) {
  td_gate_t *g0 = new_gate(1, 1, NULL), *g1 = new_gate(1, 1, NULL);
  td_channel_t *cs[2] = {td_gate_channel(g0, 0), td_gate_channel(g1, 0)};
  td_output_t o;
  TD_CHECK_INT(td_output_init(&o, TD_PART_REBALANCE, cs, 2, 128, 0), 0);
  TD_CHECK(td_output_available(&o));
  TD_CHECK_INT(emit(&o, 1, 1, 2, 3), 0); /* target 1's only credit, being filled */
  TD_CHECK(td_output_available(&o));
  td_output_flush(&o); /* sent: the receiver has it */
  TD_CHECK(!td_output_available(&o));
  td_buffer_t *b;
  TD_CHECK_INT(td_gate_poll(g1, &b, 0), 1);
  td_gate_recycle(g1, b);
  TD_CHECK(td_output_available(&o));
  td_output_destroy(&o);
  td_gate_free(g0);
  td_gate_free(g1);
}

/* td_output_send_priority sends the partly filled buffers first, then the
 * event on every target, even without a free credit; the receiver gets
 * the event first and can tell which buffers it overtook. */
TD_TEST(test_exchange_send_priority_after_partial_buffers) {
  td_gate_t *g0 = new_gate(1, 1, NULL), *g1 = new_gate(1, 1, NULL);
  td_channel_t *cs[2] = {td_gate_channel(g0, 0), td_gate_channel(g1, 0)};
  td_output_t o;
  TD_CHECK_INT(td_output_init(&o, TD_PART_REBALANCE, cs, 2, 128, 0), 0);
  TD_CHECK_INT(emit(&o, 0, 1, 2, 3), 0);
  TD_CHECK_INT(td_gate_available(g0), 0); /* partial: not sent yet */
  static const unsigned char ev[10] = {0xd7, 5, 0, 0, 0, 0, 0, 0, 0, 1};
  TD_CHECK_INT(td_output_send_priority(&o, ev, sizeof ev), 0);
  TD_CHECK(o.cur[0] == NULL);
  td_buffer_t *b;
  TD_CHECK_INT(td_gate_poll(g0, &b, 0), 1);
  TD_CHECK_INT(b->kind, TD_BUF_PRIORITY);
  TD_CHECK_INT(b->seq, 1); /* the flushed buffer came before it */
  td_wbuf_t w = {0};
  TD_CHECK_INT(td_gate_copy_queued(g0, 0, b->seq, &w), 0);
  TD_CHECK_INT(w.len, 4); /* [1, 2, 3] */
  td_wbuf_destroy(&w);
  td_gate_recycle(g0, b);
  TD_CHECK_INT(td_gate_poll(g0, &b, 0), 1);
  TD_CHECK_INT(b->kind, TD_BUF_DATA);
  TD_CHECK_INT(b->count, 1);
  td_gate_recycle(g0, b);
  TD_CHECK_INT(td_gate_poll(g1, &b, 0), 1);
  TD_CHECK_INT(b->kind, TD_BUF_PRIORITY);
  TD_CHECK_INT(b->seq, 0);
  td_gate_recycle(g1, b);
  td_output_destroy(&o);
  td_gate_free(g0);
  td_gate_free(g1);
}

TD_TEST_MAIN(test_exchange_init_invalid, test_exchange_rebalance_round_robin,
             test_exchange_hash_target_is_key_group_owner,
             test_exchange_forward_to_target_0,
             test_exchange_broadcast_every_target,
             test_exchange_send_when_full_or_flushed,
             test_exchange_large_record, test_exchange_buffer_wait_is_backpressure,
             test_exchange_finish_ends_every_target,
             test_exchange_destroy_returns_credits,
             test_exchange_cancel_unblocks_writer,
             test_exchange_available_needs_every_target,
             test_exchange_send_priority_after_partial_buffers,
             test_exchange_stress_rebalance, test_exchange_stress_hash,
             test_exchange_stress_broadcast, test_exchange_stress_forward)
