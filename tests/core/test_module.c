/*
 * test_module.c - C modules without a Lua VM: loading and the version
 * handshake (core/module.h), module operators over batches in a chain
 * (core/modchain.h: map, flat_map, filter, keyed process, source, sink,
 * boundaries), the output buffer contract, module errors, keyed state and
 * event-time timers (core/keyed.h), snapshots and restores, and canonical
 * key bytes (td_mp_canonical). The modules are built by the Makefile into
 * TD_MODULES_DIR: the example streamkit.so and the tests/modules files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "keyed.h"
#include "keygroup.h"
#include "modchain.h"
#include "module.h"
#include "msgpack.h"
#include "testlib.h"

#ifndef TD_MODULES_DIR
#define TD_MODULES_DIR "build/modules"
#endif
#define MOD(name) TD_MODULES_DIR "/" name ".so"

static td_module_t *load_ok(const char *path) {
  td_module_t *m = NULL;
  char err[1024];
  int rc = td_module_load(&m, path, err, sizeof err);
  if (rc) fprintf(stderr, "  load %s: %s\n", path, err);
  TD_CHECK_INT(rc, 0);
  return m;
}

static int load_err(const char *path, char *err, size_t len) {
  td_module_t *m = NULL;
  int rc = td_module_load(&m, path, err, len);
  TD_CHECK(m == NULL);
  return rc;
}

/* ---- a batch of encoded records, built in tests ---- */

typedef struct batch {
  td_wbuf_t data;
  uint32_t off[4096], stop[4096];
  int64_t ts[4096];
  int n, has_ts;
  td_batch_t b;
} batch_t;

static void batch_end(batch_t *t, size_t start, int64_t ts) {
  t->off[t->n] = (uint32_t)start;
  t->stop[t->n] = (uint32_t)t->data.len;
  t->ts[t->n] = ts;
  t->has_ts |= ts != TD_NO_TIMESTAMP;
  t->n++;
}

static void add_int(batch_t *t, int64_t v, int64_t ts) {
  size_t start = t->data.len;
  td_mp_write_int(&t->data, v);
  batch_end(t, start, ts);
}

static void add_str(batch_t *t, const char *s, int64_t ts) {
  size_t start = t->data.len;
  td_mp_write_str(&t->data, s, strlen(s));
  batch_end(t, start, ts);
}

/* [key, value] */
static void add_pair(batch_t *t, const char *key, int64_t v, int64_t ts) {
  size_t start = t->data.len;
  td_mp_write_array(&t->data, 2);
  td_mp_write_str(&t->data, key, strlen(key));
  td_mp_write_int(&t->data, v);
  batch_end(t, start, ts);
}

static const td_batch_t *view(batch_t *t) {
  memset(&t->b, 0, sizeof t->b);
  t->b.n = t->n;
  t->b.edge = -1;
  t->b.has_ts = t->has_ts;
  t->b.data = t->data.data;
  t->b.off = t->off;
  t->b.stop = t->stop;
  t->b.ts = t->has_ts ? t->ts : NULL;
  return &t->b;
}

static void batch_reset(batch_t *t) {
  t->n = 0;
  t->has_ts = 0;
  t->data.len = 0;
}

static void batch_free(batch_t *t) { td_wbuf_destroy(&t->data); }

/* config bytes: a map of n (key, int) pairs */
static size_t config_ints(td_wbuf_t *b, int n, const char *const *keys, const int64_t *vals) {
  b->len = 0;
  td_mp_write_map(b, (uint32_t)n);
  for (int i = 0; i < n; i++) {
    td_mp_write_str(b, keys[i], strlen(keys[i]));
    td_mp_write_int(b, vals[i]);
  }
  return b->len;
}

static td_module_spec_t spec_of(const char *uid, int subtask, int parallelism) {
  td_module_spec_t s = {.uid = uid, .name = uid, .job = "test", .subtask = subtask,
                        .parallelism = parallelism, .max_parallelism = 128};
  return s;
}

/* The integers of boundary b, into out (at most max); returns the count and
 * clears the boundary. */
static int take_ints(td_modchain_t *c, int b, int64_t *out, int max) {
  td_batch_t v;
  int n = td_modchain_boundary(c, b, &v);
  for (int i = 0; i < n && i < max; i++) {
    const char *p = v.data + v.off[i];
    td_mp_item_t it;
    TD_CHECK_INT(td_mp_read(&p, v.data + v.stop[i], &it), 0);
    TD_CHECK_INT(it.type, TD_MP_INT);
    out[i] = it.v.i;
  }
  td_modchain_clear(c, b);
  return n;
}

/* ---- loading and the handshake ---- */

TD_TEST(test_module_load) {
  td_module_t *m = load_ok(MOD("streamkit"));
  if (!m) return;
  TD_CHECK_STR(td_module_name(m), "streamkit");
  TD_CHECK_STR(td_module_version(m), "1.0");
  TD_CHECK_INT(td_module_abi(m), TIDE_ABI_VERSION);
  TD_CHECK(td_module_op_count(m) >= 9);
  const td_op_t *op = td_module_find_op(m, "window_count");
  TD_CHECK(op != NULL);
  if (op) {
    TD_CHECK_INT(op->kind, TD_OP_PROCESS);
    TD_CHECK_INT(op->size, sizeof(td_op_t));
    TD_CHECK_STR(td_module_kind_name(op->kind), "process");
  }
  op = td_module_find_op(m, "words");
  TD_CHECK(op && op->max_fanout == 4096);
  op = td_module_find_op(m, "affine");
  TD_CHECK(op && op->max_fanout == 1); /* a map: one per record */
  TD_CHECK(td_module_find_op(m, "nope") == NULL);
  /* once per process: the same module again, also by another path */
  TD_CHECK(load_ok(MOD("streamkit")) == m);
  TD_CHECK(load_ok(TD_MODULES_DIR "/./streamkit.so") == m);
  const td_api_t *api = td_module_api();
  TD_CHECK_INT(api->size, sizeof(td_api_t));
  TD_CHECK_INT(api->abi, TIDE_ABI_VERSION);
}

TD_TEST(test_module_load_missing) {
  char err[1024];
  TD_CHECK_INT(load_err("/nonexistent/dir/nothing.so", err, sizeof err), -2 /* ENOENT */);
  TD_CHECK(strstr(err, "cannot load module '/nonexistent/dir/nothing.so'") != NULL);
  TD_CHECK(strstr(err, "No such file") != NULL);
  TD_CHECK_INT(load_err(TD_MODULES_DIR, err, sizeof err), TD_EINVAL);
  TD_CHECK(strstr(err, "not a regular file") != NULL);
}

TD_TEST(test_module_load_not_a_module) {
  char err[1024];
  TD_CHECK_INT(load_err(MOD("notmod"), err, sizeof err), TD_EINVAL);
  TD_CHECK(strstr(err, "is not a Tide module") != NULL);
  TD_CHECK(strstr(err, "notmod.so") != NULL);
  /* a text file: dlopen refuses it */
  char path[] = "/tmp/tide-test-module-XXXXXX";
  int fd = mkstemp(path);
  TD_CHECK(fd >= 0);
  if (fd < 0) return;
  TD_CHECK(write(fd, "just text\n", 10) == 10);
  close(fd);
  TD_CHECK_INT(load_err(path, err, sizeof err), TD_EINVAL);
  TD_CHECK(strstr(err, "cannot load module") != NULL);
  TD_CHECK(strstr(err, path) != NULL);
  unlink(path);
}

TD_TEST(test_module_abi_major_mismatch) {
  char err[1024], want[64];
  TD_CHECK_INT(load_err(MOD("badabi"), err, sizeof err), TD_EABI);
  TD_CHECK(strstr(err, "module 'badabi'") != NULL);
  TD_CHECK(strstr(err, "built for Tide ABI 99.0") != NULL);
  snprintf(want, sizeof want, "this core's ABI %d.%d", TIDE_ABI_MAJOR, TIDE_ABI_MINOR);
  TD_CHECK(strstr(err, want) != NULL);
  TD_CHECK(strstr(err, "incompatible") != NULL);
}

TD_TEST(test_module_abi_newer_minor) {
  char err[1024];
  TD_CHECK_INT(load_err(MOD("newminor"), err, sizeof err), TD_EABI);
  TD_CHECK(strstr(err, "newer than this core's") != NULL);
}

TD_TEST(test_module_init_fails) {
  char err[1024];
  TD_CHECK_INT(load_err(MOD("failinit"), err, sizeof err), TD_EINVAL);
  TD_CHECK(strstr(err, "module 'failinit'") != NULL);
  TD_CHECK(strstr(err, "init failed: register_op: map operator 'broken' has no process") != NULL);
}

/* ---- operators over batches ---- */

TD_TEST(test_module_source_map_filter) {
  td_module_t *m = load_ok(MOD("streamkit"));
  if (!m) return;
  td_modchain_t *c;
  TD_CHECK_INT(td_modchain_new(&c, NULL), 0);
  td_module_spec_t s = spec_of("seq", 0, 1);
  int src, map, flt, b;
  td_wbuf_t cfg = {0};
  TD_CHECK_INT(td_modchain_add(c, m, "seq", &s, NULL, &src), 0);
  TD_CHECK_INT(td_modchain_add(c, m, "affine", &s, NULL, &map), 0);
  TD_CHECK_INT(td_modchain_add(c, m, "modulo", &s, NULL, &flt), 0);
  TD_CHECK_INT(td_modchain_to_node(c, src, map), 0);
  TD_CHECK_INT(td_modchain_to_node(c, map, flt), 0);
  TD_CHECK_INT(td_modchain_to_boundary(c, flt, &b), 0);
  TD_CHECK_INT(td_modchain_to_edge(c, flt, 0, NULL), TD_EINVAL); /* no task: no exchange */
  const char *ck[] = {"count"};
  int64_t cv[] = {1000};
  config_ints(&cfg, 1, ck, cv);
  TD_CHECK_INT(td_modchain_open(c, src, cfg.data, cfg.len), 0);
  const char *mk[] = {"mul", "add"};
  int64_t mv[] = {3, 1};
  config_ints(&cfg, 2, mk, mv);
  TD_CHECK_INT(td_modchain_open(c, map, cfg.data, cfg.len), 0);
  TD_CHECK_INT(td_modchain_open(c, flt, NULL, 0), 0); /* divisor 2, remainder 0 */
  int64_t got[1000];
  int total = 0, ended = 0, reads = 0;
  while (!ended && reads < 100) {
    uint32_t n;
    TD_CHECK_INT(td_modchain_read(c, src, 300, &n, &ended), 0);
    TD_CHECK(n <= 300);
    TD_CHECK_INT(td_modchain_pending(c), td_modchain_boundary(c, b, &(td_batch_t){0}) > 0);
    total += take_ints(c, b, got + total, 1000 - total);
    reads++;
  }
  TD_CHECK_INT(reads, 4);
  /* x = 3i + 1 even: i odd, 500 of them */
  TD_CHECK_INT(total, 500);
  for (int i = 0; i < total && i < 500; i++) TD_CHECK_INT(got[i], 3 * (2 * i + 1) + 1);
  td_wbuf_destroy(&cfg);
  td_modchain_free(c);
}

TD_TEST(test_module_flat_map_and_timestamps) {
  td_module_t *m = load_ok(MOD("streamkit"));
  if (!m) return;
  td_modchain_t *c;
  td_modchain_new(&c, NULL);
  td_module_spec_t s = spec_of("words", 0, 1);
  int w, b;
  TD_CHECK_INT(td_modchain_add(c, m, "words", &s, NULL, &w), 0);
  td_modchain_to_boundary(c, w, &b);
  TD_CHECK_INT(td_modchain_push(c, w, &(td_batch_t){0}, NULL, NULL), TD_EINVAL); /* not open */
  TD_CHECK(strstr(td_modchain_error(c), "used before it was opened") != NULL);
  TD_CHECK_INT(td_modchain_open(c, w, NULL, 0), 0);
  static batch_t in;
  add_str(&in, "Hello, World!", 7);
  add_str(&in, "", 8);
  add_str(&in, "a b  C9", TD_NO_TIMESTAMP);
  TD_CHECK_INT(td_modchain_push(c, w, view(&in), NULL, NULL), 0);
  td_batch_t v;
  TD_CHECK_INT(td_modchain_boundary(c, b, &v), 5);
  const char *want[] = {"hello", "world", "a", "b", "c9"};
  int64_t want_ts[] = {7, 7, TD_NO_TIMESTAMP, TD_NO_TIMESTAMP, TD_NO_TIMESTAMP};
  for (int i = 0; i < v.n && i < 5; i++) {
    const char *p = v.data + v.off[i];
    td_mp_item_t it;
    td_mp_read(&p, v.data + v.stop[i], &it);
    TD_CHECK(it.type == TD_MP_STR && it.v.s.len == strlen(want[i]) &&
             memcmp(it.v.s.p, want[i], it.v.s.len) == 0);
    TD_CHECK(v.ts != NULL);
    if (v.ts) TD_CHECK_INT(v.ts[i], want_ts[i]);
  }
  td_modchain_clear(c, b);
  batch_free(&in);
  batch_reset(&in);
  td_modchain_free(c);
}

TD_TEST(test_module_output_buffer_overflow) {
  td_module_t *m = load_ok(MOD("testmod"));
  if (!m) return;
  td_modchain_t *c;
  td_modchain_new(&c, NULL);
  td_module_spec_t s = spec_of("ovf", 0, 1);
  int o, mc, b;
  TD_CHECK_INT(td_modchain_add(c, m, "overflow", &s, NULL, &o), 0);
  s.uid = "mis";
  TD_CHECK_INT(td_modchain_add(c, m, "miscount", &s, NULL, &mc), 0);
  td_modchain_to_boundary(c, o, &b);
  td_modchain_open(c, o, NULL, 0);
  td_modchain_open(c, mc, NULL, 0);
  static batch_t in;
  for (int i = 0; i < 10; i++) add_int(&in, i, TD_NO_TIMESTAMP);
  TD_CHECK_INT(td_modchain_push(c, o, view(&in), NULL, NULL), TD_EOVERFLOW);
  const char *e = td_modchain_error(c);
  TD_CHECK(strstr(e, "module 'testmod' operator 'overflow' (uid 'ovf')") != NULL);
  TD_CHECK(strstr(e, "emitted more records than its output buffer allows: at most 10") != NULL);
  TD_CHECK_INT(td_modchain_failed(c), o);
  TD_CHECK_INT(td_modchain_pending(c), 0); /* nothing of the failed call went on */
  TD_CHECK_INT(td_modchain_push(c, mc, view(&in), NULL, NULL), TD_EINVAL);
  TD_CHECK(strstr(td_modchain_error(c), "a map emits exactly one record per input record: "
                                        "this one emitted 5 for 10") != NULL);
  batch_free(&in);
  batch_reset(&in);
  td_modchain_free(c);
}

TD_TEST(test_module_errors) {
  td_module_t *m = load_ok(MOD("testmod"));
  if (!m) return;
  td_modchain_t *c;
  td_modchain_new(&c, NULL);
  td_module_spec_t s = spec_of("u1", 0, 1);
  int fo, fp, fr, b;
  TD_CHECK_INT(td_modchain_add(c, m, "fail_open", &s, NULL, &fo), 0);
  s.uid = "u2";
  TD_CHECK_INT(td_modchain_add(c, m, "fail_process", &s, NULL, &fp), 0);
  s.uid = "u3";
  TD_CHECK_INT(td_modchain_add(c, m, "fail_read", &s, NULL, &fr), 0);
  TD_CHECK_INT(td_modchain_add(c, m, "no_such_op", &s, NULL, &b), TD_EINVAL);
  TD_CHECK(strstr(td_modchain_error(c), "module 'testmod' has no operator 'no_such_op'") != NULL);
  td_modchain_to_boundary(c, fp, &b);
  TD_CHECK_INT(td_modchain_open(c, fo, NULL, 0), TD_EINVAL);
  TD_CHECK_STR(td_modchain_error(c), "module 'testmod' operator 'fail_open' (uid 'u1'): refusing to open");
  TD_CHECK_INT(td_modchain_failed(c), fo);
  td_wbuf_t cfg = {0};
  const char *k[] = {"after"};
  int64_t v[] = {3};
  config_ints(&cfg, 1, k, v);
  TD_CHECK_INT(td_modchain_open(c, fp, cfg.data, cfg.len), 0);
  static batch_t in;
  add_int(&in, 1, TD_NO_TIMESTAMP);
  add_int(&in, 2, TD_NO_TIMESTAMP);
  TD_CHECK_INT(td_modchain_push(c, fp, view(&in), NULL, NULL), 0);
  TD_CHECK_INT(td_modchain_push(c, fp, view(&in), NULL, NULL), TD_EPARSE);
  TD_CHECK_STR(td_modchain_error(c),
               "module 'testmod' operator 'fail_process' (uid 'u2'): record 3 is not to my liking");
  TD_CHECK_INT(td_modchain_open(c, fr, NULL, 0), 0);
  uint32_t n;
  int ended;
  TD_CHECK_INT(td_modchain_read(c, fr, 10, &n, &ended), 0);
  TD_CHECK_INT(n, 1);
  TD_CHECK_INT(td_modchain_read(c, fr, 10, &n, &ended), TD_EIO);
  TD_CHECK(strstr(td_modchain_error(c), "(uid 'u3'): the source's device caught fire") != NULL);
  td_wbuf_destroy(&cfg);
  batch_free(&in);
  batch_reset(&in);
  td_modchain_free(c);
}

/* ---- keyed state and timers ---- */

/* canonical key bytes of a string */
static size_t key_bytes(char *buf, const char *s) {
  td_wbuf_t b = {0};
  td_mp_write_str(&b, s, strlen(s));
  size_t n = b.len;
  memcpy(buf, b.data, n);
  td_wbuf_destroy(&b);
  return n;
}

TD_TEST(test_keyed_state_and_ranges) {
  td_keyed_t *k;
  TD_CHECK_INT(td_keyed_new(&k, 0, 2, 128), 0);
  int first, last;
  td_keyed_range(k, &first, &last);
  TD_CHECK_INT(first, 0);
  TD_CHECK_INT(last, 63);
  uint32_t a, b2, a2;
  TD_CHECK_INT(td_keyed_state_id(k, "a", &a), 0);
  TD_CHECK_INT(td_keyed_state_id(k, "b", &b2), 0);
  TD_CHECK_INT(td_keyed_state_id(k, "a", &a2), 0);
  TD_CHECK_INT(a, a2);
  TD_CHECK(a != b2);
  TD_CHECK_INT(td_keyed_state_id(k, "", &a2), TD_EINVAL);
  const char *v;
  size_t len;
  TD_CHECK_INT(td_keyed_get(k, a, NULL, 0, &v, &len), TD_EINVAL); /* no current key */
  /* keys of this subtask's range and of the other's */
  char key[64];
  int mine = 0, other = 0;
  for (int i = 0; i < 50; i++) {
    char s[16];
    snprintf(s, sizeof s, "k%d", i);
    size_t kl = key_bytes(key, s);
    int rc = td_keyed_set_key(k, key, kl);
    if (rc == TD_EINVAL) {
      other++;
      continue;
    }
    TD_CHECK_INT(rc, 0);
    mine++;
    int64_t x = i;
    TD_CHECK_INT(td_keyed_put(k, a, "ns", 2, &x, sizeof x), 0);
    TD_CHECK_INT(td_keyed_get(k, a, "ns", 2, &v, &len), 1);
    TD_CHECK_INT(td_keyed_get(k, a, "nt", 2, &v, &len), 0);
    TD_CHECK_INT(td_keyed_get(k, b2, "ns", 2, &v, &len), 0);
  }
  TD_CHECK(mine > 10 && other > 10);
  TD_CHECK_INT(td_keyed_entries(k), mine);
  size_t kl = key_bytes(key, "k0");
  if (td_keyed_set_key(k, key, kl) == 0) {
    TD_CHECK_INT(td_keyed_clear(k, a, "ns", 2), 1);
    TD_CHECK_INT(td_keyed_clear(k, a, "ns", 2), 0);
  }
  td_keyed_free(k);
}

TD_TEST(test_keyed_timers_order_and_snapshot) {
  td_keyed_t *k;
  TD_CHECK_INT(td_keyed_new(&k, 0, 1, 128), 0);
  char key[64];
  const char *names[] = {"b", "a", "c"};
  int64_t when[] = {30, 10, 20};
  for (int i = 0; i < 3; i++) {
    size_t kl = key_bytes(key, names[i]);
    TD_CHECK_INT(td_keyed_set_key(k, key, kl), 0);
    TD_CHECK_INT(td_keyed_timer_add(k, when[i]), 0);
    TD_CHECK_INT(td_keyed_timer_add(k, when[i]), 0); /* once per (key, ts) */
    TD_CHECK_INT(td_keyed_timer_add(k, 100), 0);
  }
  TD_CHECK_INT(td_keyed_timers(k), 6);
  size_t kl = key_bytes(key, "c");
  td_keyed_set_key(k, key, kl);
  TD_CHECK_INT(td_keyed_timer_del(k, 100), 1);
  TD_CHECK_INT(td_keyed_timer_del(k, 100), 0);
  TD_CHECK_INT(td_keyed_timers(k), 5);
  /* snapshot, then restore into another instance */
  td_wbuf_t snap = {0};
  TD_CHECK_INT(td_keyed_snapshot(k, &snap), 0);
  td_keyed_t *r;
  TD_CHECK_INT(td_keyed_new(&r, 0, 1, 128), 0);
  char err[256];
  TD_CHECK_INT(td_keyed_restore(r, snap.data, snap.len, err, sizeof err), 0);
  TD_CHECK_INT(td_keyed_timers(r), 5);
  td_keyed_t *both[2] = {k, r};
  for (int j = 0; j < 2; j++) {
    int64_t ts;
    const char *cur;
    size_t cl;
    TD_CHECK_INT(td_keyed_next_timer(both[j], 5, &ts), 0);
    const char *order[] = {"a", "c", "b"};
    for (int i = 0; i < 3; i++) {
      TD_CHECK_INT(td_keyed_next_timer(both[j], 50, &ts), 1);
      TD_CHECK_INT(ts, when[i == 0 ? 1 : i == 1 ? 2 : 0]);
      TD_CHECK_INT(td_keyed_key(both[j], &cur, &cl), 0);
      TD_CHECK(cl == 2 && cur[1] == order[i][0]);
    }
    TD_CHECK_INT(td_keyed_next_timer(both[j], 50, &ts), 0);
    TD_CHECK_INT(td_keyed_next_timer(both[j], INT64_MAX, &ts), 1);
    TD_CHECK_INT(ts, 100);
    TD_CHECK_INT(td_keyed_next_timer(both[j], INT64_MAX, &ts), 1);
    TD_CHECK_INT(td_keyed_next_timer(both[j], INT64_MAX, &ts), 0);
    TD_CHECK_INT(td_keyed_timers(both[j]), 0);
  }
  /* a corrupt snapshot is refused */
  snap.data[1] ^= 0x55;
  TD_CHECK_INT(td_keyed_restore(r, snap.data, snap.len, err, sizeof err), TD_ECORRUPT);
  TD_CHECK(strstr(err, "keyed state snapshot") != NULL);
  td_wbuf_destroy(&snap);
  td_keyed_free(k);
  td_keyed_free(r);
}

TD_TEST(test_keyed_restore_takes_own_key_groups) {
  /* parallelism 1 holds every key; restored at parallelism 2 each subtask
   * keeps its own key groups */
  td_keyed_t *k, *h0, *h1;
  td_keyed_new(&k, 0, 1, 128);
  uint32_t a;
  td_keyed_state_id(k, "a", &a);
  char key[64];
  for (int i = 0; i < 40; i++) {
    char s[16];
    snprintf(s, sizeof s, "x%d", i);
    size_t kl = key_bytes(key, s);
    td_keyed_set_key(k, key, kl);
    td_keyed_put(k, a, NULL, 0, "v", 1);
  }
  td_wbuf_t snap = {0};
  td_keyed_snapshot(k, &snap);
  td_keyed_new(&h0, 0, 2, 128);
  td_keyed_new(&h1, 1, 2, 128);
  char err[256];
  TD_CHECK_INT(td_keyed_restore(h0, snap.data, snap.len, err, sizeof err), 0);
  TD_CHECK_INT(td_keyed_restore(h1, snap.data, snap.len, err, sizeof err), 0);
  TD_CHECK_INT(td_keyed_entries(h0) + td_keyed_entries(h1), 40);
  TD_CHECK(td_keyed_entries(h0) > 0 && td_keyed_entries(h1) > 0);
  td_wbuf_destroy(&snap);
  td_keyed_free(k);
  td_keyed_free(h0);
  td_keyed_free(h1);
}

/* ---- rescaling: keyed snapshots restored by key-group range ---- */

/* streamkit's seq source of 1..100 as subtask s of p, opened, its output
 * into boundary *b */
static td_modchain_t *seq_chain(td_module_t *m, int s, int p, int *node, int *b) {
  td_wbuf_t cfg = {0};
  const char *k[] = {"count"};
  int64_t v[] = {100};
  config_ints(&cfg, 1, k, v);
  td_modchain_t *c;
  td_modchain_new(&c, NULL);
  td_module_spec_t sp = spec_of("seq", s, p);
  TD_CHECK_INT(td_modchain_add(c, m, "seq", &sp, NULL, node), 0);
  td_modchain_to_boundary(c, *node, b);
  TD_CHECK_INT(td_modchain_open(c, *node, cfg.data, cfg.len), 0);
  td_wbuf_destroy(&cfg);
  return c;
}

#define RS_KEYS 60

/* the subtask of p (max parallelism 128) that holds string key s */
static int owner_of(const char *s, int p) {
  char key[64];
  size_t kl = key_bytes(key, s);
  return td_keygroup_subtask(td_keygroup_of(td_keygroup_hash(key, kl), 128), p, 128);
}

/* p instances holding keys r0..r59 between them (each in its owner):
 * value "v<i>" in state "a", "w<i>" in state "b" namespace "ns", a timer
 * at 1000 + i; states declared in another order by odd subtasks (a
 * snapshot restores by name) */
static void rs_fill(td_keyed_t **ks, int p) {
  for (int s = 0; s < p; s++) {
    TD_CHECK_INT(td_keyed_new(&ks[s], s, p, 128), 0);
    uint32_t a, b;
    if (s % 2) {
      td_keyed_state_id(ks[s], "b", &b);
      td_keyed_state_id(ks[s], "a", &a);
    } else {
      td_keyed_state_id(ks[s], "a", &a);
      td_keyed_state_id(ks[s], "b", &b);
    }
    for (int i = 0; i < RS_KEYS; i++) {
      char name[16], key[64], v[16];
      snprintf(name, sizeof name, "r%d", i);
      size_t kl = key_bytes(key, name);
      if (td_keyed_set_key(ks[s], key, kl) != 0) continue; /* another subtask's */
      TD_CHECK_INT(owner_of(name, p), s);
      snprintf(v, sizeof v, "v%d", i);
      TD_CHECK_INT(td_keyed_put(ks[s], a, NULL, 0, v, strlen(v)), 0);
      snprintf(v, sizeof v, "w%d", i);
      TD_CHECK_INT(td_keyed_put(ks[s], b, "ns", 2, v, strlen(v)), 0);
      TD_CHECK_INT(td_keyed_timer_add(ks[s], 1000 + i), 0);
    }
  }
}

/* The p new instances, each restored from all n old snapshots, hold every
 * key exactly once, in its owner, with its values and its timer. */
static void rs_check(td_wbuf_t *snaps, int n, int p) {
  td_keyed_t *ks[8];
  char err[256];
  uint64_t entries = 0, timers = 0;
  for (int s = 0; s < p; s++) {
    TD_CHECK_INT(td_keyed_new(&ks[s], s, p, 128), 0);
    for (int j = 0; j < n; j++)
      TD_CHECK_INT(td_keyed_restore(ks[s], snaps[j].data, snaps[j].len, err, sizeof err), 0);
    entries += td_keyed_entries(ks[s]);
    timers += td_keyed_timers(ks[s]);
  }
  TD_CHECK_INT(entries, 3 * RS_KEYS); /* a, b and the timer of every key, once */
  TD_CHECK_INT(timers, RS_KEYS);
  for (int i = 0; i < RS_KEYS; i++) {
    char name[16], key[64], want[16];
    snprintf(name, sizeof name, "r%d", i);
    size_t kl = key_bytes(key, name);
    int own = owner_of(name, p);
    for (int s = 0; s < p; s++) {
      if (s != own) continue;
      uint32_t a, b;
      td_keyed_state_id(ks[s], "a", &a);
      td_keyed_state_id(ks[s], "b", &b);
      TD_CHECK_INT(td_keyed_set_key(ks[s], key, kl), 0);
      const char *v;
      size_t len;
      snprintf(want, sizeof want, "v%d", i);
      TD_CHECK_INT(td_keyed_get(ks[s], a, NULL, 0, &v, &len), 1);
      TD_CHECK(len == strlen(want) && memcmp(v, want, len) == 0);
      snprintf(want, sizeof want, "w%d", i);
      TD_CHECK_INT(td_keyed_get(ks[s], b, "ns", 2, &v, &len), 1);
      TD_CHECK(len == strlen(want) && memcmp(v, want, len) == 0);
      TD_CHECK_INT(td_keyed_get(ks[s], b, NULL, 0, &v, &len), 0);
    }
  }
  /* each instance fires the timers of its own keys, in timestamp order */
  int fired = 0;
  for (int s = 0; s < p; s++) {
    int64_t ts, last = INT64_MIN;
    while (td_keyed_next_timer(ks[s], INT64_MAX, &ts) == 1) {
      const char *key;
      size_t kl;
      TD_CHECK_INT(td_keyed_key(ks[s], &key, &kl), 0);
      char name[16], want[64];
      snprintf(name, sizeof name, "r%d", (int)(ts - 1000));
      size_t wl = key_bytes(want, name);
      TD_CHECK(kl == wl && memcmp(key, want, kl) == 0); /* the timer's own key */
      TD_CHECK_INT(owner_of(name, p), s);
      TD_CHECK(ts > last);
      last = ts;
      fired++;
    }
    td_keyed_free(ks[s]);
  }
  TD_CHECK_INT(fired, RS_KEYS);
}

TD_TEST(test_keyed_rescale_by_key_group_range) {
  /* several old snapshots into one instance and into several (3 -> 1, 3 ->
   * 2, 2 -> 5), one snapshot into several (1 -> 4, 1 -> 3) */
  static const int cases[][2] = {{3, 1}, {3, 2}, {2, 5}, {1, 4}, {1, 3}, {2, 2}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int from = cases[c][0], to = cases[c][1];
    td_keyed_t *old[8];
    td_wbuf_t snaps[8];
    memset(snaps, 0, sizeof snaps);
    rs_fill(old, from);
    for (int s = 0; s < from; s++) {
      TD_CHECK_INT(td_keyed_snapshot(old[s], &snaps[s]), 0);
      td_keyed_free(old[s]);
    }
    rs_check(snaps, from, to);
    for (int s = 0; s < from; s++) td_wbuf_destroy(&snaps[s]);
  }
}

/* window_count (windows of 10 ms per key, index 1 of [key, value]
 * records) as subtask s of p, with a boundary *b */
static td_modchain_t *wc_chain(td_module_t *m, int s, int p, int *node, int *b) {
  td_modchain_t *c;
  td_modchain_new(&c, NULL);
  td_module_spec_t sp = spec_of("wc", s, p);
  td_keyspec_t key = {.kind = TD_KEY_INDEX, .index = 1};
  TD_CHECK_INT(td_modchain_add(c, m, "window_count", &sp, &key, node), 0);
  td_modchain_to_boundary(c, *node, b);
  return c;
}

static void wc_open(td_modchain_t *c, int node) {
  td_wbuf_t cfg = {0};
  const char *k[] = {"size"};
  int64_t v[] = {10};
  config_ints(&cfg, 1, k, v);
  TD_CHECK_INT(td_modchain_open(c, node, cfg.data, cfg.len), 0);
  td_wbuf_destroy(&cfg);
}

static void append(td_wbuf_t *b, const char *s, size_t n) {
  TD_CHECK_INT(td_wbuf_reserve(b, n), 0);
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

/* the window_count records of boundary b as "key@start=count\n" lines */
static void wc_take(td_modchain_t *c, int b, td_wbuf_t *out) {
  td_batch_t v;
  int n = td_modchain_boundary(c, b, &v);
  for (int j = 0; j < n; j++) {
    const char *rec = v.data + v.off[j], *end = v.data + v.stop[j], *f;
    td_mp_item_t key, start, count;
    TD_CHECK_INT(td_mp_map_get(rec, end, "key", 3, &f), 1);
    td_mp_read(&f, end, &key);
    TD_CHECK_INT(td_mp_map_get(rec, end, "window_start", 12, &f), 1);
    td_mp_read(&f, end, &start);
    TD_CHECK_INT(td_mp_map_get(rec, end, "count", 5, &f), 1);
    td_mp_read(&f, end, &count);
    char line[128];
    int len = snprintf(line, sizeof line, "%.*s@%lld=%lld\n", (int)key.v.s.len, key.v.s.p,
                       (long long)start.v.i, (long long)count.v.i);
    append(out, line, (size_t)len);
  }
  td_modchain_clear(c, b);
}

static int cmp_lines(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* out's lines sorted, in place */
static void sort_lines(td_wbuf_t *out) {
  char *lines[4096];
  int n = 0;
  append(out, "", 1);
  for (char *p = out->data; *p && n < 4096; n++) {
    lines[n] = p;
    p = strchr(p, '\n');
    *p++ = 0;
  }
  qsort(lines, (size_t)n, sizeof *lines, cmp_lines);
  td_wbuf_t s = {0};
  for (int i = 0; i < n; i++) {
    append(&s, lines[i], strlen(lines[i]));
    append(&s, "\n", 1);
  }
  td_wbuf_destroy(out);
  *out = s;
}

/* 3000 records of 17 keys in windows of 10 ms, through window_count at
 * parallelism `from`, a snapshot of every subtask at record 1500, then at
 * parallelism `to` (each new subtask restored from every old snapshot
 * with td_modchain_rescale); to == 0: no failure. The windows, sorted. */
static void wc_run(td_module_t *m, int from, int to, td_wbuf_t *out) {
  static batch_t in[8];
  td_modchain_t *c[8];
  int node[8], b[8], p = from;
  for (int s = 0; s < p; s++) {
    c[s] = wc_chain(m, s, p, &node[s], &b[s]);
    wc_open(c[s], node[s]);
  }
  for (int i = 0; i < 3000; i++) {
    char key[16];
    snprintf(key, sizeof key, "key%d", (i * 7) % 17);
    add_pair(&in[owner_of(key, p)], key, i, i / 10);
    if ((i + 1) % 100 != 0) continue;
    for (int s = 0; s < p; s++) {
      if (in[s].n) TD_CHECK_INT(td_modchain_push(c[s], node[s], view(&in[s]), NULL, NULL), 0);
      batch_reset(&in[s]);
      TD_CHECK_INT(td_modchain_watermark(c[s], node[s], i / 10 - 3), 0);
      wc_take(c[s], b[s], out);
    }
    if (i + 1 == 1500 && to > 0) {
      td_wbuf_t snaps[8];
      memset(snaps, 0, sizeof snaps);
      for (int s = 0; s < p; s++) {
        TD_CHECK_INT(td_modchain_snapshot(c[s], node[s], &snaps[s]), 0);
        td_modchain_free(c[s]);
      }
      for (int s = 0; s < to; s++) {
        c[s] = wc_chain(m, s, to, &node[s], &b[s]);
        for (int j = 0; j < p; j++)
          TD_CHECK_INT(td_modchain_rescale(c[s], node[s], snaps[j].data, snaps[j].len), 0);
        wc_open(c[s], node[s]);
      }
      for (int j = 0; j < p; j++) td_wbuf_destroy(&snaps[j]);
      p = to;
    }
  }
  for (int s = 0; s < p; s++) {
    TD_CHECK_INT(td_modchain_watermark(c[s], node[s], INT64_MAX), 0);
    wc_take(c[s], b[s], out);
    td_modchain_free(c[s]);
  }
  for (int s = 0; s < 8; s++) {
    batch_free(&in[s]);
    batch_reset(&in[s]);
  }
  sort_lines(out);
}

TD_TEST(test_module_keyed_rescale_exact) {
  /* window_count's state and timers taken at parallelism 2 (and 3)
   * restored at 1, 3 and 4: exactly the windows of a run at parallelism 1
   * without a failure */
  td_module_t *m = load_ok(MOD("streamkit"));
  if (!m) return;
  td_wbuf_t want = {0};
  wc_run(m, 1, 0, &want);
  TD_CHECK(want.len > 1000);
  static const int cases[][2] = {{2, 1}, {2, 3}, {2, 4}, {3, 2}, {1, 4}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    td_wbuf_t got = {0};
    wc_run(m, cases[i][0], cases[i][1], &got);
    TD_CHECK(got.len == want.len && memcmp(got.data, want.data, want.len) == 0);
    if (got.len != want.len || memcmp(got.data, want.data, want.len) != 0)
      fprintf(stderr, "  %d -> %d: %zu bytes of windows, expected %zu\n", cases[i][0], cases[i][1],
              got.len, want.len);
    td_wbuf_destroy(&got);
  }
  td_wbuf_destroy(&want);
}

TD_TEST(test_module_rescale_refuses_own_state) {
  /* a source's position (state of the module's own) cannot be split by
   * key group: td_modchain_rescale refuses it, naming the operator */
  td_module_t *m = load_ok(MOD("streamkit"));
  if (!m) return;
  td_wbuf_t snap = {0};
  int node, b;
  td_modchain_t *c = seq_chain(m, 0, 2, &node, &b);
  uint32_t n;
  int ended = 0;
  TD_CHECK_INT(td_modchain_read(c, node, 20, &n, &ended), 0);
  TD_CHECK_INT(td_modchain_snapshot(c, node, &snap), 0);
  td_modchain_free(c);
  c = seq_chain(m, 0, 1, &node, &b);
  TD_CHECK_INT(td_modchain_rescale(c, node, snap.data, snap.len), TD_EINVAL);
  TD_CHECK(strstr(td_modchain_error(c), "operator 'seq' (uid 'seq')") != NULL);
  TD_CHECK(strstr(td_modchain_error(c), "state of the module's own") != NULL);
  TD_CHECK(strstr(td_modchain_error(c), "cannot be split by key group") != NULL);
  /* a corrupt snapshot is refused as by td_modchain_restore */
  TD_CHECK_INT(td_modchain_rescale(c, node, "\x93\x01\x02\x03", 4), TD_ECORRUPT);
  td_modchain_free(c);
  td_wbuf_destroy(&snap);
}

/* keyed_sum keyed by index 1 of [key, value] records, timers at 100 */
static td_modchain_t *keyed_chain(td_module_t *m, int *node, int *b) {
  td_modchain_t *c;
  td_modchain_new(&c, NULL);
  td_module_spec_t s = spec_of("ksum", 0, 1);
  td_keyspec_t key = {.kind = TD_KEY_INDEX, .index = 1};
  TD_CHECK_INT(td_modchain_add(c, m, "keyed_sum", &s, &key, node), 0);
  td_modchain_to_boundary(c, *node, b);
  td_wbuf_t cfg = {0};
  const char *k[] = {"timer"};
  int64_t v[] = {100};
  config_ints(&cfg, 1, k, v);
  TD_CHECK_INT(td_modchain_open(c, *node, cfg.data, cfg.len), 0);
  td_wbuf_destroy(&cfg);
  return c;
}

/* the [key, sum] records of boundary b as "key=sum;" into out */
static void take_sums(td_modchain_t *c, int b, char *out, size_t len) {
  td_batch_t v;
  int n = td_modchain_boundary(c, b, &v);
  out[0] = 0;
  for (int i = 0; i < n; i++) {
    const char *p = v.data + v.off[i], *end = v.data + v.stop[i];
    td_mp_item_t a, k, s;
    td_mp_read(&p, end, &a);
    td_mp_read(&p, end, &k);
    td_mp_read(&p, end, &s);
    TD_CHECK(v.ts && v.ts[i] == 100);
    size_t at = strlen(out);
    snprintf(out + at, len - at, "%.*s=%lld;", (int)k.v.s.len, k.v.s.p, (long long)s.v.i);
  }
  td_modchain_clear(c, b);
}

TD_TEST(test_module_keyed_state_timers_snapshot) {
  td_module_t *m = load_ok(MOD("testmod"));
  if (!m) return;
  int node, b;
  td_modchain_t *c = keyed_chain(m, &node, &b);
  static batch_t in;
  add_pair(&in, "b", 1, 5);
  add_pair(&in, "a", 2, 6);
  add_pair(&in, "b", 3, 7);
  TD_CHECK_INT(td_modchain_push(c, node, view(&in), NULL, NULL), 0);
  TD_CHECK_INT(td_modchain_watermark(c, node, 99), 0); /* before the timers */
  TD_CHECK_INT(td_modchain_pending(c), 0);
  /* a snapshot now, restored into a fresh chain later */
  td_wbuf_t snap = {0};
  TD_CHECK_INT(td_modchain_snapshot(c, node, &snap), 0);
  batch_reset(&in);
  add_pair(&in, "a", 10, 8);
  TD_CHECK_INT(td_modchain_push(c, node, view(&in), NULL, NULL), 0);
  TD_CHECK_INT(td_modchain_watermark(c, node, 100), 0);
  char got[256];
  take_sums(c, b, got, sizeof got);
  TD_CHECK_STR(got, "a=12;b=4;"); /* timestamp order, then key bytes */
  TD_CHECK_INT(td_modchain_watermark(c, node, 1000), 0);
  TD_CHECK_INT(td_modchain_pending(c), 0); /* fired once */
  td_modchain_free(c);
  /* restored: the same state and timers as at the snapshot */
  c = keyed_chain(m, &node, &b);
  TD_CHECK_INT(td_modchain_restore(c, node, snap.data, snap.len), 0);
  TD_CHECK_INT(td_modchain_watermark(c, node, 100), 0);
  take_sums(c, b, got, sizeof got);
  TD_CHECK_STR(got, "a=2;b=4;");
  /* keys given with the push instead of a key spec */
  td_modchain_free(c);
  td_modchain_new(&c, NULL);
  td_module_spec_t s = spec_of("ksum2", 0, 1);
  td_modchain_add(c, m, "keyed_sum", &s, NULL, &node);
  td_modchain_to_boundary(c, node, &b);
  td_modchain_open(c, node, NULL, 0);
  batch_reset(&in);
  add_int(&in, 5, TD_NO_TIMESTAMP);
  TD_CHECK_INT(td_modchain_push(c, node, view(&in), NULL, NULL), TD_EINVAL);
  TD_CHECK(strstr(td_modchain_error(c), "records without keys") != NULL);
  char keys[16];
  uint32_t ends[1] = {(uint32_t)key_bytes(keys, "z")};
  TD_CHECK_INT(td_modchain_push(c, node, view(&in), keys, ends), 0);
  /* a snapshot of a restored module must be restorable: corrupt ones are not */
  TD_CHECK_INT(td_modchain_restore(c, node, "\x93\x01\x02\x03", 4), TD_ECORRUPT);
  TD_CHECK(strstr(td_modchain_error(c), "not a snapshot of a module operator") != NULL);
  td_wbuf_destroy(&snap);
  batch_free(&in);
  batch_reset(&in);
  td_modchain_free(c);
}

TD_TEST(test_module_window_count_restore_exact) {
  /* event-time windows of 10 ms over 2000 records; a snapshot at record
   * 1000 restored into a new chain gives the same output as the run
   * without a failure */
  td_module_t *m = load_ok(MOD("streamkit"));
  if (!m) return;
  char out[2][8192];
  for (int run = 0; run < 2; run++) {
    td_modchain_t *c;
    td_modchain_new(&c, NULL);
    td_module_spec_t s = spec_of("wc", 0, 1);
    td_keyspec_t key = {.kind = TD_KEY_INDEX, .index = 1};
    int node, b;
    TD_CHECK_INT(td_modchain_add(c, m, "window_count", &s, &key, &node), 0);
    td_modchain_to_boundary(c, node, &b);
    td_wbuf_t cfg = {0};
    const char *k[] = {"size"};
    int64_t v[] = {10};
    config_ints(&cfg, 1, k, v);
    TD_CHECK_INT(td_modchain_open(c, node, cfg.data, cfg.len), 0);
    static batch_t in;
    int64_t counts = 0;
    size_t used = 0;
    out[run][0] = 0;
    for (int i = 0; i < 2000; i++) {
      const char *keys[] = {"x", "y", "z"};
      add_pair(&in, keys[i % 3], i, i / 10);
      if (in.n == 100) {
        TD_CHECK_INT(td_modchain_push(c, node, view(&in), NULL, NULL), 0);
        batch_reset(&in);
        TD_CHECK_INT(td_modchain_watermark(c, node, i / 10 - 5), 0);
        td_batch_t vw;
        int n = td_modchain_boundary(c, b, &vw);
        for (int j = 0; j < n; j++) {
          const char *p = vw.data + vw.off[j];
          td_mp_item_t it;
          td_mp_read(&p, vw.data + vw.stop[j], &it);
          TD_CHECK_INT(it.type, TD_MP_MAP);
          const char *cnt;
          TD_CHECK_INT(td_mp_map_get(vw.data + vw.off[j], vw.data + vw.stop[j], "count", 5, &cnt), 1);
          td_mp_read(&cnt, vw.data + vw.stop[j], &it);
          counts += it.v.i;
          used += (size_t)snprintf(out[run] + used, sizeof out[run] - used, "%lld,",
                                   (long long)it.v.i);
        }
        td_modchain_clear(c, b);
        if (run == 1 && i == 999) { /* fail here: restore from a snapshot */
          td_wbuf_t snap = {0};
          TD_CHECK_INT(td_modchain_snapshot(c, node, &snap), 0);
          td_modchain_free(c);
          td_modchain_new(&c, NULL);
          td_modchain_add(c, m, "window_count", &s, &key, &node);
          td_modchain_to_boundary(c, node, &b);
          TD_CHECK_INT(td_modchain_restore(c, node, snap.data, snap.len), 0);
          TD_CHECK_INT(td_modchain_open(c, node, cfg.data, cfg.len), 0);
          td_wbuf_destroy(&snap);
        }
      }
    }
    TD_CHECK_INT(td_modchain_watermark(c, node, INT64_MAX), 0);
    td_batch_t vw;
    int n = td_modchain_boundary(c, b, &vw);
    TD_CHECK(n > 0);
    for (int j = 0; j < n; j++) {
      const char *cnt;
      td_mp_map_get(vw.data + vw.off[j], vw.data + vw.stop[j], "count", 5, &cnt);
      td_mp_item_t it;
      td_mp_read(&cnt, vw.data + vw.stop[j], &it);
      counts += it.v.i;
    }
    TD_CHECK_INT(counts, 2000);
    td_wbuf_destroy(&cfg);
    batch_free(&in);
    batch_reset(&in);
    td_modchain_free(c);
  }
  TD_CHECK_STR(out[1], out[0]);
}

TD_TEST(test_module_source_snapshot_position) {
  td_module_t *m = load_ok(MOD("streamkit"));
  if (!m) return;
  td_wbuf_t snap = {0};
  int64_t got[200];
  int total = 0;
  for (int run = 0; run < 2; run++) {
    int node, b;
    td_modchain_t *c = seq_chain(m, 1, 2, &node, &b); /* subtask 1 of 2: 51..100 */
    if (run == 1) TD_CHECK_INT(td_modchain_restore(c, node, snap.data, snap.len), 0);
    uint32_t n;
    int ended = 0;
    TD_CHECK_INT(td_modchain_read(c, node, 20, &n, &ended), 0);
    total += take_ints(c, b, got + total, 200 - total);
    if (run == 0) TD_CHECK_INT(td_modchain_snapshot(c, node, &snap), 0);
    else
      while (!ended && td_modchain_read(c, node, 20, &n, &ended) == 0)
        total += take_ints(c, b, got + total, 200 - total);
    td_modchain_free(c);
  }
  /* 51..70, then the restored run from the snapshot's position: 71..100 */
  TD_CHECK_INT(total, 50);
  TD_CHECK_INT(got[0], 51);
  TD_CHECK_INT(got[20], 71);
  TD_CHECK_INT(got[total - 1], 100);
  td_wbuf_destroy(&snap);
}

TD_TEST(test_module_canonical_keys) {
  /* what the Lua codec's canonical encoding writes for the decoded value */
  struct {
    const char *in;
    size_t inlen;
    const char *want;
    size_t wantlen;
  } cases[] = {
      {"\xd3\0\0\0\0\0\0\0\x05", 9, "\x05", 1},                  /* int64 5 -> fixint */
      {"\xcb\x40\x14\0\0\0\0\0\0", 9, "\x05", 1},                /* 5.0 -> 5 */
      {"\xcb\x7f\xf8\0\0\0\0\0\x01", 9, "\xcb\x7f\xf8\0\0\0\0\0\0", 9}, /* one NaN */
      {"\xc4\x02hi", 4, "\xa2hi", 3},                            /* bin -> str */
      {"\x82\xa1\x62\x01\xa1\x61\x02", 7, "\x82\xa1\x61\x02\xa1\x62\x01", 7}, /* sorted */
      {"\x82\x02\xa1\x62\x01\xa1\x61", 7, "\x92\xa1\x61\xa1\x62", 5}, /* keys 1..2: array */
      {"\x80", 1, "\x90", 1},                                    /* {} -> [] */
      {"\x93\x01\xc0\x03", 4, "\x82\x01\x01\x03\x03", 5},        /* a hole: a map */
      {"\x92\x01\xc0", 3, "\x91\x01", 2},                        /* trailing nil */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    td_wbuf_t out = {0};
    const char *p = cases[i].in;
    TD_CHECK_INT(td_mp_canonical(&p, cases[i].in + cases[i].inlen, &out), 0);
    TD_CHECK(p == cases[i].in + cases[i].inlen);
    TD_CHECK(out.len == cases[i].wantlen && memcmp(out.data, cases[i].want, out.len) == 0);
    if (!(out.len == cases[i].wantlen && memcmp(out.data, cases[i].want, out.len) == 0))
      fprintf(stderr, "  case %zu\n", i);
    td_wbuf_destroy(&out);
  }
  td_wbuf_t out = {0};
  const char *p = "\x92\x01";
  TD_CHECK_INT(td_mp_canonical(&p, p + 2, &out), TD_ECORRUPT);
  TD_CHECK_INT(out.len, 0);
  td_wbuf_destroy(&out);
}

TD_TEST(test_module_sink_two_phase_commit) {
  td_module_t *m = load_ok(MOD("streamkit"));
  if (!m) return;
  char dir[] = "/tmp/tide-test-sink-XXXXXX";
  TD_CHECK(mkdtemp(dir) != NULL);
  td_modchain_t *c;
  td_modchain_new(&c, NULL);
  td_module_spec_t s = spec_of("sink", 0, 1);
  int node;
  TD_CHECK_INT(td_modchain_add(c, m, "jsonl", &s, NULL, &node), 0);
  td_wbuf_t cfg = {0};
  td_mp_write_map(&cfg, 2);
  td_mp_write_str(&cfg, "dir", 3);
  td_mp_write_str(&cfg, dir, strlen(dir));
  td_mp_write_str(&cfg, "prefix", 6);
  td_mp_write_str(&cfg, "p", 1);
  TD_CHECK_INT(td_modchain_open(c, node, cfg.data, cfg.len), 0);
  static batch_t in;
  add_pair(&in, "a\"b", 1, TD_NO_TIMESTAMP);
  TD_CHECK_INT(td_modchain_push(c, node, view(&in), NULL, NULL), 0);
  char path[512];
  snprintf(path, sizeof path, "%s/.p-0-0.inprogress", dir);
  TD_CHECK(access(path, F_OK) == 0);
  TD_CHECK_INT(td_modchain_pre_commit(c, node, 1), 0);
  snprintf(path, sizeof path, "%s/.p-0-0.pending", dir);
  TD_CHECK(access(path, F_OK) == 0);
  td_wbuf_t snap = {0};
  TD_CHECK_INT(td_modchain_snapshot(c, node, &snap), 0);
  TD_CHECK_INT(td_modchain_push(c, node, view(&in), NULL, NULL), 0); /* after the barrier */
  td_modchain_free(c); /* a crash: checkpoint 1 completed, nothing committed */
  td_modchain_new(&c, NULL);
  td_modchain_add(c, m, "jsonl", &s, NULL, &node);
  TD_CHECK_INT(td_modchain_open(c, node, cfg.data, cfg.len), 0);
  TD_CHECK_INT(td_modchain_restore(c, node, snap.data, snap.len), 0); /* commits part 0 */
  snprintf(path, sizeof path, "%s/p-0-0.jsonl", dir);
  FILE *f = fopen(path, "r");
  TD_CHECK(f != NULL);
  char line[128] = "";
  if (f) {
    TD_CHECK(fgets(line, sizeof line, f) != NULL);
    fclose(f);
  }
  TD_CHECK_STR(line, "[\"a\\\"b\",1]\n");
  snprintf(path, sizeof path, "%s/.p-0-1.inprogress", dir);
  TD_CHECK(access(path, F_OK) != 0); /* written after the checkpoint: removed */
  TD_CHECK_INT(td_modchain_finish(c, node), 0);
  TD_CHECK_INT(td_modchain_commit(c, node, TD_FINAL_CHECKPOINT), 0);
  td_modchain_free(c);
  unlink(path);
  snprintf(path, sizeof path, "%s/p-0-0.jsonl", dir);
  unlink(path);
  TD_CHECK_INT(rmdir(dir), 0);
  td_wbuf_destroy(&cfg);
  td_wbuf_destroy(&snap);
  batch_free(&in);
  batch_reset(&in);
}

TD_TEST_MAIN(test_module_load, test_module_load_missing, test_module_load_not_a_module,
             test_module_abi_major_mismatch, test_module_abi_newer_minor, test_module_init_fails,
             test_module_source_map_filter, test_module_flat_map_and_timestamps,
             test_module_output_buffer_overflow, test_module_errors, test_keyed_state_and_ranges,
             test_keyed_timers_order_and_snapshot, test_keyed_restore_takes_own_key_groups,
             test_module_keyed_state_timers_snapshot, test_module_window_count_restore_exact,
             test_module_source_snapshot_position, test_module_canonical_keys,
             test_module_sink_two_phase_commit, test_keyed_rescale_by_key_group_range,
             test_module_keyed_rescale_exact, test_module_rescale_refuses_own_state)
