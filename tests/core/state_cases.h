/*
 * state_cases.h - the behaviour every state backend (state/backend.h) must
 * have, as test cases shared by tests/core/test_state.c (heap) and
 * tests/core/test_rocksdb.c (rocksdb): put/get/replace/remove, addressing
 * by state id, key group, key and namespace, argument checks, scans in key
 * group order, counts, growth and removal against a reference model,
 * borrowed values written back.
 *
 * The including file defines, before including this:
 *   static td_backend_t *new_backend(uint32_t kg_first, uint32_t kg_last);
 *       a fresh, empty backend (aborts on failure);
 *   static const char *backend_name;  what ops->name must be;
 *   BIG_N  the entries of test_state_growth_and_removal.
 */
#ifndef TD_STATE_CASES_H
#define TD_STATE_CASES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"
#include "testlib.h"

/* ---- helpers ---- */

static td_bytes_t S(const char *s) {
  td_bytes_t b = {s, strlen(s)};
  return b;
}

static const td_bytes_t NONE = {NULL, 0};

/* get_is - whether (sid, kg, key, ns) holds exactly the string want. */
static int get_is(td_backend_t *b, uint32_t sid, uint32_t kg, const char *key,
                  const char *ns, const char *want) {
  td_bytes_t v = {0};
  int rc = td_backend_get(b, sid, kg, S(key), S(ns), &v);
  if (rc != 1) return 0;
  return v.len == strlen(want) && memcmp(v.data, want, v.len) == 0;
}

static int absent(td_backend_t *b, uint32_t sid, uint32_t kg, const char *key,
                  const char *ns) {
  td_bytes_t v = {0};
  return td_backend_get(b, sid, kg, S(key), S(ns), &v) == 0;
}

/* ---- basic operations ---- */

TD_TEST(test_state_ops_name) {
  td_backend_t *b = new_backend(0, 127);
  TD_CHECK_STR(b->ops->name, backend_name);
  TD_CHECK_INT(b->kg_first, 0);
  TD_CHECK_INT(b->kg_last, 127);
  TD_CHECK_INT(td_backend_count(b), 0);
  td_backend_free(b);
  td_backend_free(NULL);
}

TD_TEST(test_state_put_get) {
  td_backend_t *b = new_backend(0, 127);
  TD_CHECK(absent(b, 1, 5, "alice", ""));
  TD_CHECK_INT(td_backend_put(b, 1, 5, S("alice"), S(""), S("42")), 0);
  TD_CHECK(get_is(b, 1, 5, "alice", "", "42"));
  TD_CHECK(absent(b, 1, 5, "bob", ""));
  TD_CHECK(absent(b, 1, 5, "alic", ""));
  TD_CHECK(absent(b, 1, 5, "alicee", ""));
  /* the key group is part of the address */
  TD_CHECK(absent(b, 1, 6, "alice", ""));
  TD_CHECK_INT(td_backend_count(b), 1);
  td_backend_free(b);
}

TD_TEST(test_state_replace) {
  td_backend_t *b = new_backend(0, 0);
  TD_CHECK_INT(td_backend_put(b, 1, 0, S("k"), S(""), S("one")), 0);
  TD_CHECK_INT(td_backend_put(b, 1, 0, S("k"), S(""), S("two")), 0);
  TD_CHECK(get_is(b, 1, 0, "k", "", "two"));
  TD_CHECK_INT(td_backend_put(b, 1, 0, S("k"), S(""), S("a longer value")), 0);
  TD_CHECK(get_is(b, 1, 0, "k", "", "a longer value"));
  TD_CHECK_INT(td_backend_put(b, 1, 0, S("k"), S(""), S("s")), 0);
  TD_CHECK(get_is(b, 1, 0, "k", "", "s"));
  TD_CHECK_INT(td_backend_put(b, 1, 0, S("k"), S(""), S("")), 0);
  TD_CHECK(get_is(b, 1, 0, "k", "", ""));
  TD_CHECK_INT(td_backend_count(b), 1);
  td_backend_free(b);
}

TD_TEST(test_state_remove) {
  td_backend_t *b = new_backend(0, 3);
  TD_CHECK_INT(td_backend_remove(b, 1, 2, S("k"), S("")), 0); /* empty table */
  TD_CHECK_INT(td_backend_put(b, 1, 2, S("k"), S(""), S("v")), 0);
  TD_CHECK_INT(td_backend_put(b, 1, 2, S("j"), S(""), S("w")), 0);
  TD_CHECK_INT(td_backend_remove(b, 1, 2, S("x"), S("")), 0);
  TD_CHECK_INT(td_backend_remove(b, 1, 2, S("k"), S("")), 1);
  TD_CHECK_INT(td_backend_remove(b, 1, 2, S("k"), S("")), 0);
  TD_CHECK(absent(b, 1, 2, "k", ""));
  TD_CHECK(get_is(b, 1, 2, "j", "", "w"));
  TD_CHECK_INT(td_backend_count(b), 1);
  TD_CHECK_INT(td_backend_remove(b, 1, 2, S("j"), S("")), 1);
  TD_CHECK_INT(td_backend_count(b), 0);
  /* the emptied table works again */
  TD_CHECK_INT(td_backend_put(b, 1, 2, S("k"), S(""), S("again")), 0);
  TD_CHECK(get_is(b, 1, 2, "k", "", "again"));
  td_backend_free(b);
}

TD_TEST(test_state_states_and_namespaces_apart) {
  td_backend_t *b = new_backend(0, 127);
  const char *ns[] = {"", "w1", "w2", "w1w2"};
  for (uint32_t sid = 0; sid < 3; sid++)
    for (int n = 0; n < 4; n++) {
      char v[32];
      snprintf(v, sizeof v, "s%u/%s", (unsigned)sid, ns[n]);
      TD_CHECK_INT(td_backend_put(b, sid, 7, S("key"), S(ns[n]), S(v)), 0);
    }
  TD_CHECK_INT(td_backend_count(b), 12);
  for (uint32_t sid = 0; sid < 3; sid++)
    for (int n = 0; n < 4; n++) {
      char v[32];
      snprintf(v, sizeof v, "s%u/%s", (unsigned)sid, ns[n]);
      TD_CHECK(get_is(b, sid, 7, "key", ns[n], v));
    }
  /* the split between key and namespace matters: ("ab","") != ("a","b") */
  TD_CHECK_INT(td_backend_put(b, 0, 7, S("ab"), S(""), S("1")), 0);
  TD_CHECK_INT(td_backend_put(b, 0, 7, S("a"), S("b"), S("2")), 0);
  TD_CHECK_INT(td_backend_put(b, 0, 7, S(""), S("ab"), S("3")), 0);
  TD_CHECK(get_is(b, 0, 7, "ab", "", "1"));
  TD_CHECK(get_is(b, 0, 7, "a", "b", "2"));
  TD_CHECK(get_is(b, 0, 7, "", "ab", "3"));
  /* removing one leaves the others */
  TD_CHECK_INT(td_backend_remove(b, 1, 7, S("key"), S("w1")), 1);
  TD_CHECK(absent(b, 1, 7, "key", "w1"));
  TD_CHECK(get_is(b, 0, 7, "key", "w1", "s0/w1"));
  TD_CHECK(get_is(b, 2, 7, "key", "w1", "s2/w1"));
  TD_CHECK(get_is(b, 1, 7, "key", "", "s1/"));
  TD_CHECK_INT(td_backend_count(b), 14);
  td_backend_free(b);
}

TD_TEST(test_state_empty_key_and_value) {
  td_backend_t *b = new_backend(0, 1);
  /* NULL data with length 0 is an empty byte string */
  TD_CHECK_INT(td_backend_put(b, 1, 0, NONE, NONE, NONE), 0);
  td_bytes_t v = {"junk", 4};
  TD_CHECK_INT(td_backend_get(b, 1, 0, NONE, NONE, &v), 1);
  TD_CHECK_INT(v.len, 0);
  TD_CHECK(v.data != NULL);
  TD_CHECK(get_is(b, 1, 0, "", "", ""));
  TD_CHECK(absent(b, 1, 0, "x", ""));
  TD_CHECK(absent(b, 1, 0, "", "x"));
  TD_CHECK(absent(b, 2, 0, "", ""));
  TD_CHECK_INT(td_backend_put(b, 1, 0, S(""), S(""), S("now full")), 0);
  TD_CHECK(get_is(b, 1, 0, "", "", "now full"));
  TD_CHECK_INT(td_backend_count(b), 1);
  TD_CHECK_INT(td_backend_remove(b, 1, 0, NONE, NONE), 1);
  TD_CHECK_INT(td_backend_count(b), 0);
  /* binary bytes, NUL included */
  td_bytes_t k = {"a\0b", 3}, k2 = {"a\0c", 3}, val = {"\0\0\xff", 3};
  TD_CHECK_INT(td_backend_put(b, 1, 1, k, NONE, val), 0);
  TD_CHECK_INT(td_backend_get(b, 1, 1, k2, NONE, &v), 0);
  TD_CHECK_INT(td_backend_get(b, 1, 1, k, NONE, &v), 1);
  TD_CHECK(v.len == 3 && memcmp(v.data, "\0\0\xff", 3) == 0);
  td_backend_free(b);
}

TD_TEST(test_state_key_group_out_of_range) {
  td_backend_t *b = new_backend(10, 19);
  td_bytes_t v;
  TD_CHECK_INT(td_backend_put(b, 1, 9, S("k"), S(""), S("v")), TD_EINVAL);
  TD_CHECK_INT(td_backend_put(b, 1, 20, S("k"), S(""), S("v")), TD_EINVAL);
  TD_CHECK_INT(td_backend_put(b, 1, UINT32_MAX, S("k"), S(""), S("v")),
               TD_EINVAL);
  TD_CHECK_INT(td_backend_get(b, 1, 9, S("k"), S(""), &v), TD_EINVAL);
  TD_CHECK_INT(td_backend_get(b, 1, 20, S("k"), S(""), &v), TD_EINVAL);
  TD_CHECK_INT(td_backend_remove(b, 1, 0, S("k"), S("")), TD_EINVAL);
  TD_CHECK_INT(td_backend_remove(b, 1, 20, S("k"), S("")), TD_EINVAL);
  TD_CHECK_INT(td_backend_count(b), 0);
  /* the edges of the range are in it */
  TD_CHECK_INT(td_backend_put(b, 1, 10, S("k"), S(""), S("first")), 0);
  TD_CHECK_INT(td_backend_put(b, 1, 19, S("k"), S(""), S("last")), 0);
  TD_CHECK(get_is(b, 1, 10, "k", "", "first"));
  TD_CHECK(get_is(b, 1, 19, "k", "", "last"));
  td_backend_free(b);
  /* a one-group backend at the top of the key group space */
  b = new_backend(32767, 32767);
  TD_CHECK_INT(td_backend_put(b, 1, 32767, S("k"), S(""), S("v")), 0);
  TD_CHECK_INT(td_backend_put(b, 1, 32766, S("k"), S(""), S("v")), TD_EINVAL);
  td_backend_free(b);
}

TD_TEST(test_state_bad_arguments) {
  td_backend_t *b = new_backend(0, 0);
  td_bytes_t v, nulldata = {NULL, 3};
  /* UINT32_MAX is the scan's "every state" and never a state id */
  TD_CHECK_INT(td_backend_put(b, UINT32_MAX, 0, S("k"), S(""), S("v")),
               TD_EINVAL);
  TD_CHECK_INT(td_backend_get(b, UINT32_MAX, 0, S("k"), S(""), &v), TD_EINVAL);
  TD_CHECK_INT(td_backend_remove(b, UINT32_MAX, 0, S("k"), S("")), TD_EINVAL);
  TD_CHECK_INT(td_backend_put(b, 1, 0, nulldata, S(""), S("v")), TD_EINVAL);
  TD_CHECK_INT(td_backend_put(b, 1, 0, S("k"), nulldata, S("v")), TD_EINVAL);
  TD_CHECK_INT(td_backend_put(b, 1, 0, S("k"), S(""), nulldata), TD_EINVAL);
  TD_CHECK_INT(td_backend_count(b), 0);
  td_backend_free(b);
}

/* ---- scans ---- */

typedef struct scan_log {
  int n;
  int stop_at;       /* return 7 from the visit numbered stop_at (1-based) */
  int ordered;       /* key groups never went down */
  uint32_t last_kg;
  uint32_t kgs[64];
  uint32_t sids[64];
  char keys[64][48];
} scan_log_t;

static int log_visit(const td_state_entry_t *e, void *ud) {
  scan_log_t *l = ud;
  if (l->n > 0 && e->key_group < l->last_kg) l->ordered = 0;
  l->last_kg = e->key_group;
  if (l->n < 64) {
    l->kgs[l->n] = e->key_group;
    l->sids[l->n] = e->state_id;
    snprintf(l->keys[l->n], sizeof l->keys[0], "%.*s", (int)e->key.len,
             (const char *)e->key.data);
  }
  l->n++;
  return l->n == l->stop_at ? 7 : 0;
}

static void scan_log_init(scan_log_t *l) {
  memset(l, 0, sizeof *l);
  l->ordered = 1;
}

/* fill_scan - states 1 and 2, key groups 3..8 of a [2, 9] backend, put in
 * descending key group order; the key names its key group and state. */
static td_backend_t *fill_scan(void) {
  td_backend_t *b = new_backend(2, 9);
  for (uint32_t kg = 8; kg >= 3; kg--)
    for (uint32_t sid = 1; sid <= 2; sid++)
      for (int j = 0; j < 3; j++) {
        char key[48], val[16];
        snprintf(key, sizeof key, "g%us%uj%d", (unsigned)kg, (unsigned)sid, j);
        snprintf(val, sizeof val, "v%d", j);
        if (td_backend_put(b, sid, kg, S(key), S(j == 2 ? "ns" : ""), S(val)))
          abort();
      }
  return b;
}

TD_TEST(test_state_scan_order) {
  td_backend_t *b = fill_scan();
  scan_log_t l;
  scan_log_init(&l);
  TD_CHECK_INT(td_backend_scan(b, UINT32_MAX, 0, UINT32_MAX, log_visit, &l), 0);
  TD_CHECK_INT(l.n, 36);
  TD_CHECK(l.ordered);
  TD_CHECK_INT(l.kgs[0], 3);
  TD_CHECK_INT(l.kgs[35], 8);
  /* every entry is reported with its own key group and state id */
  for (int i = 0; i < l.n; i++) {
    char want[48];
    snprintf(want, sizeof want, "g%us%u", (unsigned)l.kgs[i],
             (unsigned)l.sids[i]);
    TD_CHECK(strncmp(l.keys[i], want, strlen(want)) == 0);
  }
  /* a sub-range */
  scan_log_init(&l);
  TD_CHECK_INT(td_backend_scan(b, UINT32_MAX, 5, 6, log_visit, &l), 0);
  TD_CHECK_INT(l.n, 12);
  TD_CHECK(l.ordered);
  for (int i = 0; i < l.n; i++) TD_CHECK(l.kgs[i] == 5 || l.kgs[i] == 6);
  /* ranges clamped to [2, 9], or empty */
  scan_log_init(&l);
  TD_CHECK_INT(td_backend_scan(b, UINT32_MAX, 0, 3, log_visit, &l), 0);
  TD_CHECK_INT(l.n, 6);
  scan_log_init(&l);
  TD_CHECK_INT(td_backend_scan(b, UINT32_MAX, 8, 1000, log_visit, &l), 0);
  TD_CHECK_INT(l.n, 6);
  scan_log_init(&l);
  TD_CHECK_INT(td_backend_scan(b, UINT32_MAX, 6, 5, log_visit, &l), 0);
  TD_CHECK_INT(l.n, 0);
  scan_log_init(&l);
  TD_CHECK_INT(td_backend_scan(b, UINT32_MAX, 10, 20, log_visit, &l), 0);
  TD_CHECK_INT(l.n, 0);
  scan_log_init(&l);
  TD_CHECK_INT(td_backend_scan(b, UINT32_MAX, 0, 1, log_visit, &l), 0);
  TD_CHECK_INT(l.n, 0);
  td_backend_free(b);
}

TD_TEST(test_state_scan_single_state) {
  td_backend_t *b = fill_scan();
  scan_log_t l;
  scan_log_init(&l);
  TD_CHECK_INT(td_backend_scan(b, 2, 0, UINT32_MAX, log_visit, &l), 0);
  TD_CHECK_INT(l.n, 18);
  TD_CHECK(l.ordered);
  for (int i = 0; i < l.n; i++) TD_CHECK_INT(l.sids[i], 2);
  scan_log_init(&l);
  TD_CHECK_INT(td_backend_scan(b, 3, 0, UINT32_MAX, log_visit, &l), 0);
  TD_CHECK_INT(l.n, 0);
  td_backend_free(b);
}

TD_TEST(test_state_scan_early_stop) {
  td_backend_t *b = fill_scan();
  scan_log_t l;
  scan_log_init(&l);
  l.stop_at = 5;
  TD_CHECK_INT(td_backend_scan(b, UINT32_MAX, 0, UINT32_MAX, log_visit, &l), 7);
  TD_CHECK_INT(l.n, 5);
  scan_log_init(&l);
  l.stop_at = 1;
  TD_CHECK_INT(td_backend_scan(b, 1, 7, 8, log_visit, &l), 7);
  TD_CHECK_INT(l.n, 1);
  TD_CHECK_INT(l.kgs[0], 7);
  td_backend_free(b);
}

static int check_entry(const td_state_entry_t *e, void *ud) {
  int *ok = ud;
  *ok = e->key.len == 3 && memcmp(e->key.data, "key", 3) == 0 &&
        e->ns.len == 6 && memcmp(e->ns.data, "nspace", 6) == 0 &&
        e->value.len == 6 && memcmp(e->value.data, "value!", 6) == 0;
  return 0;
}

TD_TEST(test_state_scan_entry_fields) {
  td_backend_t *b = new_backend(0, 0);
  TD_CHECK_INT(td_backend_put(b, 4, 0, S("key"), S("nspace"), S("value!")), 0);
  int ok = 0;
  TD_CHECK_INT(td_backend_scan(b, 4, 0, 0, check_entry, &ok), 0);
  TD_CHECK(ok);
  td_backend_free(b);
}

TD_TEST(test_state_count) {
  td_backend_t *b = new_backend(0, 15);
  for (int i = 0; i < 100; i++) {
    char k[16];
    snprintf(k, sizeof k, "%d", i);
    TD_CHECK_INT(td_backend_put(b, 1, (uint32_t)(i % 16), S(k), S(""), S("v")),
                 0);
  }
  TD_CHECK_INT(td_backend_count(b), 100);
  /* replacing does not count */
  TD_CHECK_INT(td_backend_put(b, 1, 3, S("3"), S(""), S("other")), 0);
  TD_CHECK_INT(td_backend_count(b), 100);
  /* failed calls do not count */
  TD_CHECK_INT(td_backend_put(b, 1, 16, S("x"), S(""), S("v")), TD_EINVAL);
  TD_CHECK_INT(td_backend_remove(b, 1, 3, S("nope"), S("")), 0);
  TD_CHECK_INT(td_backend_count(b), 100);
  for (int i = 0; i < 100; i += 2) {
    char k[16];
    snprintf(k, sizeof k, "%d", i);
    TD_CHECK_INT(td_backend_remove(b, 1, (uint32_t)(i % 16), S(k), S("")), 1);
  }
  TD_CHECK_INT(td_backend_count(b), 50);
  td_backend_free(b);
}

/* ---- growth and deletion against a reference model ---- */

#define BIG_KG 128

/* The model: entry i has a unique (state, key group, key, ns); its value
 * is derived from (i, version) and its presence is in present[i]. */
typedef struct model {
  unsigned char *present;
  unsigned *version;
} model_t;

static uint32_t big_sid(int i) { return (uint32_t)(i % 3); }
/* key groups used: BIG_KG, or fewer for the fault injection test */
static uint32_t big_groups = BIG_KG;
static uint32_t big_kg(int i) { return (uint32_t)i * 7919u % big_groups; }

static td_bytes_t big_key(int i, char *buf) {
  int n = snprintf(buf, 32, "key-%d", i);
  td_bytes_t b = {buf, (size_t)n};
  return b;
}

static td_bytes_t big_ns(int i, char *buf) {
  int n = i % 4 == 0 ? 0 : snprintf(buf, 32, "w%d", i % 5);
  td_bytes_t b = {buf, (size_t)n};
  return b;
}

/* big_value - 0..40 bytes that depend on i and the version */
static td_bytes_t big_value(int i, unsigned version, char *buf) {
  size_t n = (size_t)((i + version * 13u) % 41u);
  for (size_t k = 0; k < n; k++)
    buf[k] = (char)(i * 31 + (int)version * 7 + (int)k);
  td_bytes_t b = {buf, n};
  return b;
}

static int big_put(td_backend_t *b, model_t *m, int i, unsigned version) {
  char kb[32], nb[32], vb[64];
  int rc = td_backend_put(b, big_sid(i), big_kg(i), big_key(i, kb),
                          big_ns(i, nb), big_value(i, version, vb));
  if (rc == 0) {
    m->present[i] = 1;
    m->version[i] = version;
  }
  return rc;
}

/* model_agrees - every entry of the model is found with its value, every
 * absent one is absent, and the count matches. Returns the mismatches. */
static long model_agrees(td_backend_t *b, const model_t *m, int n) {
  long bad = 0;
  uint64_t count = 0;
  for (int i = 0; i < n; i++) {
    char kb[32], nb[32], vb[64];
    td_bytes_t v = {0};
    int rc = td_backend_get(b, big_sid(i), big_kg(i), big_key(i, kb),
                            big_ns(i, nb), &v);
    if (m->present[i]) {
      count++;
      td_bytes_t want = big_value(i, m->version[i], vb);
      if (rc != 1 || v.len != want.len ||
          (want.len && memcmp(v.data, want.data, want.len) != 0))
        bad++;
    } else if (rc != 0) {
      bad++;
    }
  }
  if (td_backend_count(b) != count) bad++;
  return bad;
}

typedef struct big_scan {
  const model_t *m;
  long seen, bad;
  uint32_t last_kg;
} big_scan_t;

static int big_visit(const td_state_entry_t *e, void *ud) {
  big_scan_t *s = ud;
  char kb[40];
  int i;
  snprintf(kb, sizeof kb, "%.*s", (int)e->key.len, (const char *)e->key.data);
  if (sscanf(kb, "key-%d", &i) != 1 || i < 0 || i >= BIG_N ||
      !s->m->present[i] || e->key_group != big_kg(i) ||
      e->state_id != big_sid(i) || e->key_group < s->last_kg)
    s->bad++;
  s->last_kg = e->key_group;
  s->seen++;
  return 0;
}

TD_TEST(test_state_growth_and_removal) {
  big_groups = BIG_KG;
  td_backend_t *b = new_backend(0, BIG_KG - 1);
  model_t m = {calloc(BIG_N, 1), calloc(BIG_N, sizeof(unsigned))};
  if (!m.present || !m.version) abort();
  long errs = 0;
  for (int i = 0; i < BIG_N; i++) errs += big_put(b, &m, i, 0) != 0;
  TD_CHECK_INT(errs, 0);
  TD_CHECK_INT(td_backend_count(b), BIG_N);
  TD_CHECK_INT(model_agrees(b, &m, BIG_N), 0);
  /* replace every third value (other lengths), then remove half of the
   * entries in a scattered order */
  for (int i = 0; i < BIG_N; i += 3) errs += big_put(b, &m, i, 1) != 0;
  uint32_t x = 12345;
  int removed = 0;
  for (int k = 0; k < BIG_N; k++) {
    x = x * 1103515245u + 12345u;
    int i = (int)((x >> 8) % BIG_N);
    if (!m.present[i] || (x >> 4) % 2) continue;
    char kb[32], nb[32];
    int rc = td_backend_remove(b, big_sid(i), big_kg(i), big_key(i, kb),
                               big_ns(i, nb));
    errs += rc != 1;
    m.present[i] = 0;
    removed++;
  }
  for (int i = 0; i < BIG_N && removed < BIG_N / 2; i++) {
    if (!m.present[i]) continue;
    char kb[32], nb[32];
    errs += td_backend_remove(b, big_sid(i), big_kg(i), big_key(i, kb),
                              big_ns(i, nb)) != 1;
    m.present[i] = 0;
    removed++;
  }
  TD_CHECK_INT(errs, 0);
  TD_CHECK_INT(removed, BIG_N / 2);
  TD_CHECK_INT(td_backend_count(b), BIG_N / 2);
  TD_CHECK_INT(model_agrees(b, &m, BIG_N), 0);
  big_scan_t s = {&m, 0, 0, 0};
  TD_CHECK_INT(td_backend_scan(b, UINT32_MAX, 0, BIG_KG - 1, big_visit, &s), 0);
  TD_CHECK_INT(s.seen, BIG_N / 2);
  TD_CHECK_INT(s.bad, 0);
  /* put the removed ones back with a new version; remove everything */
  for (int i = 0; i < BIG_N; i++)
    if (!m.present[i]) errs += big_put(b, &m, i, 2) != 0;
  TD_CHECK_INT(model_agrees(b, &m, BIG_N), 0);
  for (int i = BIG_N - 1; i >= 0; i--) {
    char kb[32], nb[32];
    errs += td_backend_remove(b, big_sid(i), big_kg(i), big_key(i, kb),
                              big_ns(i, nb)) != 1;
    m.present[i] = 0;
  }
  TD_CHECK_INT(errs, 0);
  TD_CHECK_INT(td_backend_count(b), 0);
  TD_CHECK_INT(model_agrees(b, &m, BIG_N), 0);
  free(m.present);
  free(m.version);
  td_backend_free(b);
}

/* Many keys in one key group, removed and re-added in waves, so removal
 * shifts entries across the table's wrap-around and the table shrinks
 * and grows again. */
TD_TEST(test_state_one_group_churn) {
  enum { N = 5000 };
  td_backend_t *b = new_backend(0, 0);
  model_t m = {calloc(N, 1), calloc(N, sizeof(unsigned))};
  if (!m.present || !m.version) abort();
  long errs = 0, bad = 0;
  for (unsigned wave = 0; wave < 6; wave++) {
    for (int i = 0; i < N; i++) {
      char kb[32];
      if ((i + (int)wave) % 3 == 0 && m.present[i]) {
        errs += td_backend_remove(b, 1, 0, big_key(i, kb), NONE) != 1;
        m.present[i] = 0;
      } else if (!m.present[i] || i % 2) {
        char vb[64];
        errs += td_backend_put(b, 1, 0, big_key(i, kb), NONE,
                               big_value(i, wave, vb)) != 0;
        m.present[i] = 1;
        m.version[i] = wave;
      }
    }
    /* all but a few go away: the table shrinks */
    if (wave == 3)
      for (int i = 10; i < N; i++) {
        char kb[32];
        if (!m.present[i]) continue;
        errs += td_backend_remove(b, 1, 0, big_key(i, kb), NONE) != 1;
        m.present[i] = 0;
      }
    uint64_t count = 0;
    for (int i = 0; i < N; i++) {
      char kb[32], vb[64];
      td_bytes_t v = {0};
      int rc = td_backend_get(b, 1, 0, big_key(i, kb), NONE, &v);
      if (m.present[i]) {
        td_bytes_t want = big_value(i, m.version[i], vb);
        count++;
        bad += rc != 1 || v.len != want.len ||
               (want.len && memcmp(v.data, want.data, want.len) != 0);
      } else {
        bad += rc != 0;
      }
    }
    bad += td_backend_count(b) != count;
  }
  TD_CHECK_INT(errs, 0);
  TD_CHECK_INT(bad, 0);
  free(m.present);
  free(m.version);
  td_backend_free(b);
}

/* ---- borrowed values ---- */

/* What every backend allows: a borrowed value written back, whole or in
 * part, or used as the key of the next call. */
TD_TEST(test_state_value_written_back) {
  td_backend_t *b = new_backend(0, 0);
  char val[8] = "abcdef";
  TD_CHECK_INT(td_backend_put(b, 1, 0, S("k"), S(""), S(val)), 0);
  /* the bytes were copied: changing the caller's buffer changes nothing */
  val[0] = 'X';
  TD_CHECK(get_is(b, 1, 0, "k", "", "abcdef"));
  td_bytes_t v1 = {0}, v2 = {0};
  TD_CHECK_INT(td_backend_get(b, 1, 0, S("k"), S(""), &v1), 1);
  TD_CHECK(v1.data != (const void *)val);
  /* putting the borrowed value back (same length and other lengths) */
  TD_CHECK_INT(td_backend_put(b, 1, 0, S("k"), S(""), v1), 0);
  TD_CHECK(get_is(b, 1, 0, "k", "", "abcdef"));
  TD_CHECK_INT(td_backend_get(b, 1, 0, S("k"), S(""), &v1), 1);
  td_bytes_t part = {(const char *)v1.data + 2, 3};
  TD_CHECK_INT(td_backend_put(b, 1, 0, S("k"), S(""), part), 0);
  TD_CHECK(get_is(b, 1, 0, "k", "", "cde"));
  TD_CHECK_INT(td_backend_get(b, 1, 0, S("k"), S(""), &v1), 1);
  td_bytes_t shifted = {(const char *)v1.data + 1, 2};
  TD_CHECK_INT(td_backend_put(b, 1, 0, S("k"), S(""), shifted), 0);
  TD_CHECK(get_is(b, 1, 0, "k", "", "de"));
  /* a value as the key of the next get, and of a remove */
  TD_CHECK_INT(td_backend_put(b, 1, 0, S("de"), S(""), S("found by value")), 0);
  TD_CHECK_INT(td_backend_get(b, 1, 0, S("k"), S(""), &v1), 1);
  TD_CHECK_INT(td_backend_get(b, 1, 0, v1, NONE, &v2), 1);
  TD_CHECK(v2.len == 14 && memcmp(v2.data, "found by value", 14) == 0);
  TD_CHECK_INT(td_backend_get(b, 1, 0, S("k"), S(""), &v1), 1);
  TD_CHECK_INT(td_backend_remove(b, 1, 0, v1, NONE), 1);
  TD_CHECK(absent(b, 1, 0, "de", ""));
  TD_CHECK(get_is(b, 1, 0, "k", "", "de"));
  td_backend_free(b);
}

#endif
