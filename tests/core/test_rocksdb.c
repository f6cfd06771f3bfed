/*
 * test_rocksdb.c - unit tests for the RocksDB state backend (state/rocksdb.h,
 * state/rocksdb.c): every shared backend case of state_cases.h (the heap
 * backend's behaviour, with 100k entries in the growth test), then what is
 * RocksDB's own: the key layout (key groups contiguous and in order, a key
 * that is a prefix of another, empty key/namespace/value), the int64 merge operator, write batches and multi-get, namespace-ordered
 * iteration, checkpoints and restore (same range, clipped to halves for a
 * 1 -> 2 rescale, two instances merged for 2 -> 1), the shared block cache,
 * and bad directories. Each case works under its own directory in
 * ${TMPDIR:-/tmp} and removes it.
 */
#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "error.h"
#include "rocksdb.h"
#include "testlib.h"
#include "tmpdir.h"

/* ---- temporary directories ---- */

/* tmp_dir - a fresh directory under ${TMPDIR:-/tmp} (malloc'd path). */
static char *tmp_dir(void) {
  const char *t = getenv("TMPDIR");
  char *p = malloc(4096);
  if (!p) abort();
  snprintf(p, 4096, "%s/tide-rocksdb-XXXXXX", t && *t ? t : "/tmp");
  if (!mkdtemp(p)) {
    perror("mkdtemp");
    abort();
  }
  return p;
}

static void rm_tree(char *dir) {
  td_tmpdir_remove(dir);
  free(dir);
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* open_at - a backend in dir, removed with it when remove_on_free. */
static td_backend_t *open_at(const char *dir, uint32_t first, uint32_t last,
                             int remove_on_free) {
  td_rocksdb_options_t o = {.dir = dir, .remove_on_free = remove_on_free,
                            .write_buffer = 4 << 20};
  td_backend_t *b = NULL;
  char err[512] = "";
  int rc = td_backend_new_rocksdb(&b, &o, first, last, err, sizeof err);
  if (rc != 0 || !b) {
    fprintf(stderr, "td_backend_new_rocksdb: %s (%s)\n", td_strerror(rc), err);
    abort();
  }
  return b;
}

/* ---- the shared cases, on the rocksdb backend ---- */

#define BIG_N 100000

static const char *backend_name = "rocksdb";

static td_backend_t *new_backend(uint32_t first, uint32_t last) {
  char *dir = tmp_dir(); /* removed by td_backend_free */
  td_backend_t *b = open_at(dir, first, last, 1);
  free(dir);
  return b;
}

#include "state_cases.h"

/* ---- rocksdb only ---- */

TD_TEST(test_rocksdb_bad_arguments) {
  td_backend_t *b = NULL;
  char err[256];
  td_rocksdb_options_t o = {.dir = "/tmp/never-made"};
  TD_CHECK_INT(td_backend_new_rocksdb(&b, &o, 5, 4, err, sizeof err), TD_EINVAL);
  TD_CHECK_INT(td_backend_new_rocksdb(&b, &o, 0, 32768, err, sizeof err),
               TD_EINVAL);
  TD_CHECK(strstr(err, "key group") != NULL);
  td_rocksdb_options_t none = {0};
  TD_CHECK_INT(td_backend_new_rocksdb(&b, &none, 0, 1, err, sizeof err),
               TD_EINVAL);
  TD_CHECK(strstr(err, "no state directory") != NULL);
  TD_CHECK_INT(td_backend_new_rocksdb(&b, NULL, 0, 1, NULL, 0), TD_EINVAL);
  TD_CHECK(b == NULL);
  TD_CHECK(!exists("/tmp/never-made"));
  /* the extra calls refuse a heap backend */
  td_backend_t *h = NULL;
  TD_CHECK_INT(td_backend_new_heap(&h, 0, 0), 0);
  TD_CHECK(!td_backend_is_rocksdb(h));
  TD_CHECK_INT(td_rocksdb_add(h, 1, 0, S("k"), NONE, 1), TD_EINVAL);
  TD_CHECK_INT(td_rocksdb_batch_commit(h), TD_EINVAL);
  td_backend_free(h);
}

/* An unwritable working directory (a path under a regular file: we may run
 * as root, for whom chmod does not bite), a missing checkpoint, a target
 * that already holds a database: errors that name the path. */
TD_TEST(test_rocksdb_bad_directories) {
  char *root = tmp_dir();
  char file[4200], under[4300], err[512] = "";
  snprintf(file, sizeof file, "%s/plain-file", root);
  FILE *f = fopen(file, "w");
  TD_CHECK(f != NULL);
  if (f) fclose(f);
  snprintf(under, sizeof under, "%s/db", file);
  td_rocksdb_options_t o = {.dir = under, .remove_on_free = 1};
  td_backend_t *b = NULL;
  int rc = td_backend_new_rocksdb(&b, &o, 0, 7, err, sizeof err);
  TD_CHECK(rc < 0);
  TD_CHECK(b == NULL);
  TD_CHECK(strstr(err, under) != NULL);
  TD_CHECK(strstr(err, "Not a directory") != NULL);
  TD_CHECK(exists(file)); /* nothing removed */
  /* restore from a checkpoint that is not there */
  char missing[4200], dbdir[4200];
  snprintf(missing, sizeof missing, "%s/no-such-checkpoint", root);
  snprintf(dbdir, sizeof dbdir, "%s/restored", root);
  td_rocksdb_options_t r = {.dir = dbdir, .remove_on_free = 1};
  const char *dirs[] = {missing, missing};
  err[0] = '\0';
  TD_CHECK(td_backend_restore_rocksdb(&b, &r, 0, 7, dirs, 1, err, sizeof err) < 0);
  TD_CHECK(strstr(err, missing) != NULL);
  err[0] = '\0';
  TD_CHECK(td_backend_restore_rocksdb(&b, &r, 0, 7, dirs, 2, err, sizeof err) < 0);
  TD_CHECK(strstr(err, missing) != NULL);
  TD_CHECK(b == NULL);
  /* a checkpoint into a directory that exists already */
  b = open_at(dbdir, 0, 7, 0);
  TD_CHECK_INT(td_backend_put(b, 1, 0, S("k"), NONE, S("v")), 0);
  char **files = NULL;
  size_t n = 0;
  TD_CHECK_INT(td_rocksdb_checkpoint(b, root, &files, &n), TD_ESTATE);
  TD_CHECK(strstr(td_rocksdb_last_error(b), root) != NULL);
  td_backend_free(b);
  /* restore into a directory holding a database */
  const char *one[] = {dbdir};
  err[0] = '\0';
  TD_CHECK_INT(td_backend_restore_rocksdb(&b, &r, 0, 7, one, 1, err, sizeof err),
               TD_EINVAL);
  TD_CHECK(strstr(err, dbdir) != NULL);
  /* ... which is still there, untouched, with its entry */
  b = open_at(dbdir, 0, 7, 1);
  TD_CHECK(get_is(b, 1, 0, "k", "", "v"));
  td_backend_free(b);
  TD_CHECK(!exists(dbdir));
  rm_tree(root);
}

typedef struct kg_log {
  int n, ordered;
  uint32_t last;
  uint32_t kgs[64];
} kg_log_t;

static int kg_visit(const td_state_entry_t *e, void *ud) {
  kg_log_t *l = ud;
  if (l->n && e->key_group < l->last) l->ordered = 0;
  l->last = e->key_group;
  if (l->n < 64) l->kgs[l->n] = e->key_group;
  l->n++;
  /* the key names the key group: "k<kg>" */
  char want[16];
  snprintf(want, sizeof want, "k%u", (unsigned)e->key_group);
  if (e->key.len != strlen(want) || memcmp(e->key.data, want, e->key.len))
    l->ordered = 0;
  return 0;
}

/* Key groups are 2 big-endian bytes: 255 < 256 < 512 in scan order, and a
 * range of key groups is one contiguous scan. */
TD_TEST(test_rocksdb_layout_key_groups) {
  td_backend_t *b = new_backend(0, 32767);
  uint32_t kgs[] = {32767, 256, 255, 1, 0, 512, 257, 254, 4096, 65};
  for (size_t i = 0; i < sizeof kgs / sizeof kgs[0]; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%u", (unsigned)kgs[i]);
    for (uint32_t sid = 1; sid <= 2; sid++)
      TD_CHECK_INT(td_backend_put(b, sid, kgs[i], S(k), S("ns"), S("v")), 0);
  }
  kg_log_t l = {0, 1, 0, {0}};
  TD_CHECK_INT(td_backend_scan(b, UINT32_MAX, 0, UINT32_MAX, kg_visit, &l), 0);
  TD_CHECK_INT(l.n, 20);
  TD_CHECK(l.ordered);
  uint32_t want[] = {0, 1, 65, 254, 255, 256, 257, 512, 4096, 32767};
  for (int i = 0; i < 10; i++) {
    TD_CHECK_INT(l.kgs[2 * i], want[i]);     /* state 1 */
    TD_CHECK_INT(l.kgs[2 * i + 1], want[i]); /* then state 2 */
  }
  memset(&l, 0, sizeof l);
  l.ordered = 1;
  TD_CHECK_INT(td_backend_scan(b, 2, 255, 256, kg_visit, &l), 0);
  TD_CHECK_INT(l.n, 2);
  TD_CHECK(l.ordered);
  TD_CHECK(l.kgs[0] == 255 && l.kgs[1] == 256);
  td_backend_free(b);
}

/* Keys that are prefixes of each other, long keys (2-byte length varint),
 * every split of the same bytes between key and namespace. */
TD_TEST(test_rocksdb_layout_prefix_keys) {
  td_backend_t *b = new_backend(0, 3);
  static char big[300];
  memset(big, 'a', sizeof big);
  size_t lens[] = {0, 1, 2, 126, 127, 128, 129, 255, 256, 299};
  enum { NL = sizeof lens / sizeof lens[0] };
  /* every prefix of one long run of 'a', split every way into key + ns
   * for a few of them */
  for (int i = 0; i < NL; i++) {
    td_bytes_t k = {big, lens[i]};
    char v[16];
    snprintf(v, sizeof v, "len%zu", lens[i]);
    TD_CHECK_INT(td_backend_put(b, 1, 2, k, NONE, S(v)), 0);
  }
  for (size_t split = 0; split <= 5; split++) {
    td_bytes_t k = {big, split}, ns = {big + split, 5 - split};
    char v[16];
    snprintf(v, sizeof v, "split%zu", split);
    TD_CHECK_INT(td_backend_put(b, 2, 2, k, ns, S(v)), 0);
  }
  TD_CHECK_INT(td_backend_count(b), NL + 6);
  for (int i = 0; i < NL; i++) {
    td_bytes_t k = {big, lens[i]}, v;
    char want[16];
    snprintf(want, sizeof want, "len%zu", lens[i]);
    TD_CHECK_INT(td_backend_get(b, 1, 2, k, NONE, &v), 1);
    TD_CHECK(v.len == strlen(want) && memcmp(v.data, want, v.len) == 0);
  }
  for (size_t split = 0; split <= 5; split++) {
    td_bytes_t k = {big, split}, ns = {big + split, 5 - split}, v;
    char want[16];
    snprintf(want, sizeof want, "split%zu", split);
    TD_CHECK_INT(td_backend_get(b, 2, 2, k, ns, &v), 1);
    TD_CHECK(v.len == strlen(want) && memcmp(v.data, want, v.len) == 0);
  }
  /* iteration over key "aa" of state 2 sees only its namespace "aaa" */
  td_rocksdb_iter_t *it = NULL;
  td_bytes_t k2 = {big, 2}, ns, v;
  TD_CHECK_INT(td_rocksdb_iter_new(&it, b, 2, 2, k2, NULL, NULL), 0);
  TD_CHECK_INT(td_rocksdb_iter_next(it, &ns, &v), 1);
  TD_CHECK(ns.len == 3 && memcmp(ns.data, "aaa", 3) == 0);
  TD_CHECK(v.len == 6 && memcmp(v.data, "split2", 6) == 0);
  TD_CHECK_INT(td_rocksdb_iter_next(it, &ns, &v), 0);
  td_rocksdb_iter_free(it);
  /* removing one leaves its prefixes and extensions */
  td_bytes_t k128 = {big, 128};
  TD_CHECK_INT(td_backend_remove(b, 1, 2, k128, NONE), 1);
  td_bytes_t k127 = {big, 127}, k129 = {big, 129};
  TD_CHECK_INT(td_backend_get(b, 1, 2, k127, NONE, &v), 1);
  TD_CHECK_INT(td_backend_get(b, 1, 2, k129, NONE, &v), 1);
  TD_CHECK_INT(td_backend_get(b, 1, 2, k128, NONE, &v), 0);
  td_backend_free(b);
}

/* Empty key, namespace and value through every way in and out. */
TD_TEST(test_rocksdb_empty_bytes) {
  td_backend_t *b = new_backend(0, 0);
  TD_CHECK_INT(td_backend_put(b, 1, 0, NONE, NONE, NONE), 0);
  TD_CHECK_INT(td_rocksdb_batch_put(b, 2, 0, NONE, NONE, NONE), 0);
  TD_CHECK_INT(td_rocksdb_batch_commit(b), 0);
  td_rocksdb_key_t keys[3] = {{1, 0, NONE, NONE}, {2, 0, NONE, NONE},
                              {3, 0, NONE, NONE}};
  td_bytes_t vals[3];
  int found[3];
  TD_CHECK_INT(td_rocksdb_multi_get(b, keys, 3, vals, found), 0);
  TD_CHECK(found[0] && found[1] && !found[2]);
  TD_CHECK(vals[0].len == 0 && vals[0].data != NULL);
  TD_CHECK(vals[1].len == 0 && vals[1].data != NULL);
  td_rocksdb_iter_t *it = NULL;
  td_bytes_t ns, v;
  TD_CHECK_INT(td_rocksdb_iter_new(&it, b, 1, 0, NONE, NULL, NULL), 0);
  TD_CHECK_INT(td_rocksdb_iter_next(it, &ns, &v), 1);
  TD_CHECK(ns.len == 0 && v.len == 0 && v.data != NULL);
  TD_CHECK_INT(td_rocksdb_iter_next(it, &ns, &v), 0);
  td_rocksdb_iter_free(it);
  TD_CHECK_INT(td_backend_count(b), 2);
  TD_CHECK_INT(td_backend_remove(b, 2, 0, NONE, NONE), 1);
  TD_CHECK_INT(td_backend_count(b), 1);
  td_backend_free(b);
}

/* mp_int - the MessagePack integer v holds, or INT64_MIN + 1 when it is
 * not exactly one. */
static int64_t mp_int(td_bytes_t v) {
  const char *p = v.data;
  td_mp_item_t it;
  if (td_mp_read(&p, p + v.len, &it) != 0 || it.type != TD_MP_INT ||
      p != (const char *)v.data + v.len)
    return INT64_MIN + 1;
  return it.v.i;
}

static int64_t get_int(td_backend_t *b, uint32_t sid, uint32_t kg,
                       const char *key) {
  td_bytes_t v;
  if (td_backend_get(b, sid, kg, S(key), NONE, &v) != 1) return INT64_MIN;
  return mp_int(v);
}

/* td_rocksdb_add: sums without reads, as canonical MessagePack integers,
 * across flushes (partial merges in files), onto put values. */
TD_TEST(test_rocksdb_merge_add) {
  char *root = tmp_dir();
  char db[4200], chk[4200];
  snprintf(db, sizeof db, "%s/db", root);
  snprintf(chk, sizeof chk, "%s/chk", root);
  td_backend_t *b = open_at(db, 0, 15, 1);
  TD_CHECK_INT(td_rocksdb_add(b, 1, 3, S("absent"), NONE, 5), 0);
  TD_CHECK_INT(get_int(b, 1, 3, "absent"), 5);
  td_bytes_t v;
  TD_CHECK_INT(td_backend_get(b, 1, 3, S("absent"), NONE, &v), 1);
  TD_CHECK(v.len == 1 && ((const unsigned char *)v.data)[0] == 5);
  for (int i = 0; i < 1000; i++)
    TD_CHECK_INT(td_rocksdb_add(b, 1, 4, S("count"), NONE, 1), 0);
  TD_CHECK_INT(td_backend_get(b, 1, 4, S("count"), NONE, &v), 1);
  TD_CHECK(v.len == 3 && memcmp(v.data, "\xcd\x03\xe8", 3) == 0); /* 1000 */
  /* operands spread over memtable and files: a flush (by a checkpoint)
   * between adds */
  for (int i = 0; i < 10; i++)
    TD_CHECK_INT(td_rocksdb_add(b, 1, 4, S("spread"), NONE, -7), 0);
  char **files = NULL;
  size_t n = 0;
  TD_CHECK_INT(td_rocksdb_checkpoint(b, chk, &files, &n), 0);
  td_rocksdb_files_free(files, n);
  for (int i = 0; i < 10; i++)
    TD_CHECK_INT(td_rocksdb_add(b, 1, 4, S("spread"), NONE, 3), 0);
  TD_CHECK_INT(get_int(b, 1, 4, "spread"), -40);
  /* onto a put MessagePack integer; a put replaces the sum */
  unsigned char mp[9];
  td_bytes_t m = {mp, td_mp_enc_int(mp, 1000000)};
  TD_CHECK_INT(td_backend_put(b, 2, 0, S("k"), NONE, m), 0);
  TD_CHECK_INT(td_rocksdb_add(b, 2, 0, S("k"), NONE, -1), 0);
  TD_CHECK_INT(get_int(b, 2, 0, "k"), 999999);
  m.len = td_mp_enc_int(mp, 7);
  TD_CHECK_INT(td_backend_put(b, 2, 0, S("k"), NONE, m), 0);
  TD_CHECK_INT(get_int(b, 2, 0, "k"), 7);
  /* onto something that is not an integer: replaced by the deltas */
  TD_CHECK_INT(td_backend_put(b, 2, 0, S("s"), NONE, S("\xa3str")), 0);
  TD_CHECK_INT(td_rocksdb_add(b, 2, 0, S("s"), NONE, 42), 0);
  TD_CHECK_INT(get_int(b, 2, 0, "s"), 42);
  /* wraps modulo 2^64 */
  m.len = td_mp_enc_int(mp, INT64_MAX);
  TD_CHECK_INT(td_backend_put(b, 2, 0, S("w"), NONE, m), 0);
  TD_CHECK_INT(td_rocksdb_add(b, 2, 0, S("w"), NONE, 1), 0);
  TD_CHECK(get_int(b, 2, 0, "w") == INT64_MIN);
  /* batched adds, a remove in between, interleaved with writes to keys
   * that sort before and after (a batch is applied in key order, and in
   * call order for one key) */
  for (int i = 0; i < 100; i++) {
    TD_CHECK_INT(td_rocksdb_batch_add(b, 3, 9, S("b"), NONE, i), 0);
    TD_CHECK_INT(td_rocksdb_batch_add(b, 3, 9, S("c"), NONE, 1), 0);
    TD_CHECK_INT(td_rocksdb_batch_add(b, 3, 8, S("z"), NONE, 2), 0);
  }
  TD_CHECK_INT(td_rocksdb_batch_remove(b, 3, 9, S("b"), NONE), 0);
  TD_CHECK_INT(td_rocksdb_batch_remove(b, 3, 8, S("z"), NONE), 0);
  for (int i = 0; i < 10; i++)
    TD_CHECK_INT(td_rocksdb_batch_add(b, 3, 9, S("b"), NONE, 2), 0);
  TD_CHECK_INT(get_int(b, 3, 9, "b"), INT64_MIN); /* not committed */
  TD_CHECK_INT(td_rocksdb_batch_commit(b), 0);
  TD_CHECK_INT(get_int(b, 3, 9, "b"), 20);
  TD_CHECK_INT(get_int(b, 3, 9, "c"), 100);
  TD_CHECK_INT(get_int(b, 3, 8, "z"), INT64_MIN);
  TD_CHECK_INT(td_rocksdb_batch_remove(b, 3, 9, S("c"), NONE), 0);
  TD_CHECK_INT(td_rocksdb_batch_commit(b), 0);
  /* bad addresses */
  TD_CHECK_INT(td_rocksdb_add(b, 1, 16, S("k"), NONE, 1), TD_EINVAL);
  TD_CHECK_INT(td_rocksdb_add(b, UINT32_MAX, 0, S("k"), NONE, 1), TD_EINVAL);
  TD_CHECK_INT(td_backend_count(b), 7);
  td_backend_free(b);
  TD_CHECK(!exists(db));
  rm_tree(root);
}

/* Batches of puts and removes, read back by multi-get entry by entry. */
TD_TEST(test_rocksdb_batch_multi_get) {
  enum { N = 3000 };
  td_backend_t *b = new_backend(0, 127);
  for (int i = 0; i < N; i++) {
    char kb[32], nb[32], vb[64];
    TD_CHECK_INT(td_rocksdb_batch_put(b, big_sid(i), big_kg(i), big_key(i, kb),
                                      big_ns(i, nb), big_value(i, 0, vb)), 0);
  }
  TD_CHECK_INT(td_rocksdb_batch_size(b), N);
  TD_CHECK_INT(td_backend_count(b), 0); /* nothing written yet */
  TD_CHECK_INT(td_rocksdb_batch_commit(b), 0);
  TD_CHECK_INT(td_rocksdb_batch_size(b), 0);
  TD_CHECK_INT(td_backend_count(b), N);
  /* a batch that is dropped */
  TD_CHECK_INT(td_rocksdb_batch_put(b, 1, 0, S("dropped"), NONE, S("x")), 0);
  td_rocksdb_batch_abort(b);
  TD_CHECK_INT(td_rocksdb_batch_commit(b), 0);
  TD_CHECK(absent(b, 1, 0, "dropped", ""));
  /* remove every third, replace every fifth, in one batch */
  for (int i = 0; i < N; i++) {
    char kb[32], nb[32], vb[64];
    if (i % 3 == 0)
      TD_CHECK_INT(td_rocksdb_batch_remove(b, big_sid(i), big_kg(i),
                                           big_key(i, kb), big_ns(i, nb)), 0);
    else if (i % 5 == 0)
      TD_CHECK_INT(td_rocksdb_batch_put(b, big_sid(i), big_kg(i), big_key(i, kb),
                                        big_ns(i, nb), big_value(i, 1, vb)), 0);
  }
  TD_CHECK_INT(td_rocksdb_batch_commit(b), 0);
  /* multi-get everything, plus an unknown state, in one call */
  static char kbuf[N + 1][32], nbuf[N + 1][32];
  td_rocksdb_key_t *keys = calloc(N + 1, sizeof *keys);
  td_bytes_t *vals = calloc(N + 1, sizeof *vals);
  int *found = calloc(N + 1, sizeof *found);
  if (!keys || !vals || !found) abort();
  for (int i = 0; i < N; i++) {
    keys[i].state_id = big_sid(i);
    keys[i].key_group = big_kg(i);
    keys[i].key = big_key(i, kbuf[i]);
    keys[i].ns = big_ns(i, nbuf[i]);
  }
  keys[N].state_id = 77;
  keys[N].key = S("nobody");
  TD_CHECK_INT(td_rocksdb_multi_get(b, keys, N + 1, vals, found), 0);
  long bad = 0, present = 0;
  for (int i = 0; i < N; i++) {
    char vb[64];
    if (i % 3 == 0) {
      bad += found[i] != 0;
      continue;
    }
    present++;
    td_bytes_t want = big_value(i, i % 5 == 0, vb);
    bad += !found[i] || vals[i].len != want.len ||
           (want.len && memcmp(vals[i].data, want.data, want.len) != 0);
  }
  TD_CHECK_INT(bad, 0);
  TD_CHECK_INT(found[N], 0);
  TD_CHECK_INT(td_backend_count(b), present);
  /* an address outside the range: nothing looked up */
  keys[5].key_group = 128;
  TD_CHECK_INT(td_rocksdb_multi_get(b, keys, N, vals, found), TD_EINVAL);
  TD_CHECK_INT(td_rocksdb_multi_get(b, keys, 0, vals, found), 0);
  free(keys);
  free(vals);
  free(found);
  td_backend_free(b);
}

/* Map-style iteration: the namespaces of one key in byte order, bounded,
 * never another key's, on a snapshot. */
TD_TEST(test_rocksdb_map_iteration) {
  td_backend_t *b = new_backend(0, 7);
  /* namespaces 0..199 as 2 big-endian bytes plus a tail, put scrambled */
  for (int j = 0; j < 200; j++) {
    int i = (j * 73) % 200;
    unsigned char ns[3] = {(unsigned char)(i >> 8), (unsigned char)i,
                           (unsigned char)(i % 3 == 0 ? 0xff : 0)};
    char v[16];
    snprintf(v, sizeof v, "v%d", i);
    td_bytes_t nsb = {ns, 3};
    TD_CHECK_INT(td_backend_put(b, 1, 5, S("user"), nsb, S(v)), 0);
    /* neighbours: the same key elsewhere, keys around it */
    TD_CHECK_INT(td_backend_put(b, 2, 5, S("user"), nsb, S("other state")), 0);
    TD_CHECK_INT(td_backend_put(b, 1, 4, S("user"), nsb, S("other group")), 0);
    TD_CHECK_INT(td_backend_put(b, 1, 5, S("use"), nsb, S("shorter key")), 0);
    TD_CHECK_INT(td_backend_put(b, 1, 5, S("users"), nsb, S("longer key")), 0);
    TD_CHECK_INT(td_backend_put(b, 1, 5, S("uses"), nsb, S("next key")), 0);
  }
  /* the highest namespace bytes come last */
  TD_CHECK_INT(td_backend_put(b, 1, 5, S("user"), S("\xff\xff\xff\xff"),
                              S("last")), 0);
  td_rocksdb_iter_t *it = NULL;
  td_bytes_t ns, v;
  TD_CHECK_INT(td_rocksdb_iter_new(&it, b, 1, 5, S("user"), NULL, NULL), 0);
  /* writes after the iterator was made are not seen */
  TD_CHECK_INT(td_backend_put(b, 1, 5, S("user"), S("\x01"), S("late")), 0);
  int n = 0, bad = 0;
  while (td_rocksdb_iter_next(it, &ns, &v) == 1) {
    const unsigned char *p = ns.data;
    if (n == 200) {
      bad += ns.len != 4 || memcmp(ns.data, "\xff\xff\xff\xff", 4) ||
             v.len != 4 || memcmp(v.data, "last", 4);
      n++;
      continue;
    }
    int i = ns.len == 3 ? (p[0] << 8 | p[1]) : -1;
    char want[16];
    snprintf(want, sizeof want, "v%d", i);
    bad += i != n || p[2] != (i % 3 == 0 ? 0xff : 0) ||
           v.len != strlen(want) || memcmp(v.data, want, v.len) != 0;
    n++;
  }
  TD_CHECK_INT(n, 201);
  TD_CHECK_INT(bad, 0);
  TD_CHECK_INT(td_rocksdb_iter_next(it, &ns, &v), 0); /* stays at the end */
  td_rocksdb_iter_free(it);
  /* [ns_from, ns_to): 10 .. 19 */
  unsigned char lo[2] = {0, 10}, hi[2] = {0, 20};
  td_bytes_t from = {lo, 2}, to = {hi, 2};
  TD_CHECK_INT(td_rocksdb_iter_new(&it, b, 1, 5, S("user"), &from, &to), 0);
  n = 0;
  bad = 0;
  while (td_rocksdb_iter_next(it, &ns, &v) == 1) {
    const unsigned char *p = ns.data;
    bad += ns.len != 3 || p[0] != 0 || p[1] != 10 + n;
    n++;
  }
  TD_CHECK_INT(n, 10);
  TD_CHECK_INT(bad, 0);
  td_rocksdb_iter_free(it);
  /* a key without entries, a state without a column family */
  TD_CHECK_INT(td_rocksdb_iter_new(&it, b, 1, 5, S("nobody"), NULL, NULL), 0);
  TD_CHECK_INT(td_rocksdb_iter_next(it, &ns, &v), 0);
  td_rocksdb_iter_free(it);
  TD_CHECK_INT(td_rocksdb_iter_new(&it, b, 9, 5, S("user"), NULL, NULL), 0);
  TD_CHECK_INT(td_rocksdb_iter_next(it, &ns, &v), 0);
  td_rocksdb_iter_free(it);
  TD_CHECK_INT(td_rocksdb_iter_new(&it, b, 1, 8, S("user"), NULL, NULL),
               TD_EINVAL);
  td_rocksdb_iter_free(NULL);
  td_backend_free(b);
}

/* ---- checkpoints and restore ---- */

/* fill - entries 0 .. n-1 of the model (big_* of state_cases.h: states
 * 0..2, key groups 0..127) with version 0 values, through puts, plus an
 * added integer per key group in state 7. */
static void fill(td_backend_t *b, int n) {
  for (int i = 0; i < n; i++) {
    char kb[32], nb[32], vb[64];
    if (td_backend_put(b, big_sid(i), big_kg(i), big_key(i, kb), big_ns(i, nb),
                       big_value(i, 0, vb)))
      abort();
  }
  for (uint32_t kg = 0; kg < 128; kg++)
    if (td_rocksdb_add(b, 7, kg, S("sum"), NONE, (int64_t)kg * 10 + 1))
      abort();
}

typedef struct counter {
  long n, bad;
  uint32_t lo, hi;
} counter_t;

static int count_visit(const td_state_entry_t *e, void *ud) {
  counter_t *c = ud;
  c->n++;
  c->bad += e->key_group < c->lo || e->key_group > c->hi;
  return 0;
}

/* holds_exactly - b holds the entries of fill(.., n) whose key group is
 * in [lo, hi], and no other: each checked by get, plus count and scan.
 * Returns the mismatches. */
static long holds_exactly(td_backend_t *b, int n, uint32_t lo, uint32_t hi) {
  long bad = 0, want = 0;
  for (int i = 0; i < n; i++) {
    char kb[32], nb[32], vb[64];
    uint32_t kg = big_kg(i);
    if (kg < b->kg_first || kg > b->kg_last) continue; /* not addressable */
    td_bytes_t v;
    int rc = td_backend_get(b, big_sid(i), kg, big_key(i, kb), big_ns(i, nb), &v);
    if (kg >= lo && kg <= hi) {
      td_bytes_t w = big_value(i, 0, vb);
      want++;
      bad += rc != 1 || v.len != w.len ||
             (w.len && memcmp(v.data, w.data, w.len) != 0);
    } else {
      bad += rc != 0;
    }
  }
  for (uint32_t kg = b->kg_first; kg <= b->kg_last; kg++) {
    int64_t got = get_int(b, 7, kg, "sum");
    if (kg >= lo && kg <= hi) {
      want++;
      bad += got != (int64_t)kg * 10 + 1;
    } else {
      bad += got != INT64_MIN;
    }
  }
  counter_t c = {0, 0, lo, hi};
  bad += td_backend_scan(b, UINT32_MAX, 0, UINT32_MAX, count_visit, &c) != 0;
  bad += c.n != want || c.bad != 0;
  bad += td_backend_count(b) != (uint64_t)want;
  if (bad)
    fprintf(stderr, "  [%u, %u]: %ld mismatches, scan %ld of %ld\n",
            (unsigned)lo, (unsigned)hi, bad, c.n, want);
  return bad;
}

static int has_file(char **files, size_t n, const char *prefix,
                    const char *suffix) {
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(files[i]), s = strlen(suffix);
    if (strncmp(files[i], prefix, strlen(prefix)) == 0 && l >= s &&
        strcmp(files[i] + l - s, suffix) == 0)
      return 1;
  }
  return 0;
}

/* checkpoint_of - a backend of [first, last] at root/name filled with the
 * model's entries of its range, checkpointed into root/name.chk. */
static char *checkpoint_of(const char *root, const char *name, uint32_t first,
                           uint32_t last, int n) {
  char db[4200];
  char *chk = malloc(4200);
  if (!chk) abort();
  snprintf(db, sizeof db, "%s/%s", root, name);
  snprintf(chk, 4200, "%s/%s.chk", root, name);
  td_backend_t *b = open_at(db, first, last, 1);
  for (int i = 0; i < n; i++) {
    char kb[32], nb[32], vb[64];
    uint32_t kg = big_kg(i);
    if (kg < first || kg > last) continue;
    if (td_backend_put(b, big_sid(i), kg, big_key(i, kb), big_ns(i, nb),
                       big_value(i, 0, vb)))
      abort();
  }
  for (uint32_t kg = first; kg <= last; kg++)
    if (td_rocksdb_add(b, 7, kg, S("sum"), NONE, (int64_t)kg * 10 + 1)) abort();
  char **files = NULL;
  size_t nf = 0;
  if (td_rocksdb_checkpoint(b, chk, &files, &nf)) {
    fprintf(stderr, "%s\n", td_rocksdb_last_error(b));
    abort();
  }
  td_rocksdb_files_free(files, nf);
  td_backend_free(b);
  return chk;
}

static td_backend_t *restore(const char *root, const char *name, uint32_t first,
                             uint32_t last, const char *const *dirs, size_t n) {
  char db[4200], err[512] = "";
  snprintf(db, sizeof db, "%s/%s", root, name);
  td_rocksdb_options_t o = {.dir = db, .remove_on_free = 1};
  td_backend_t *b = NULL;
  int rc = td_backend_restore_rocksdb(&b, &o, first, last, dirs, n, err,
                                      sizeof err);
  if (rc || !b) {
    fprintf(stderr, "  restore: %s (%s)\n", td_strerror(rc), err);
    return NULL;
  }
  return b;
}

#define CHK_N 20000

/* checkpoint -> file list -> restore into a fresh directory: the same
 * entries; the checkpoint directory is not changed by the restore. */
TD_TEST(test_rocksdb_checkpoint_restore) {
  char *root = tmp_dir();
  char db[4200], chk[4200];
  snprintf(db, sizeof db, "%s/db", root);
  snprintf(chk, sizeof chk, "%s/chk-1", root);
  td_backend_t *b = open_at(db, 0, 127, 1);
  fill(b, CHK_N);
  TD_CHECK_INT(holds_exactly(b, CHK_N, 0, 127), 0);
  char **files = NULL;
  size_t n = 0;
  TD_CHECK_INT(td_rocksdb_checkpoint(b, chk, &files, &n), 0);
  TD_CHECK(n >= 4);
  TD_CHECK(has_file(files, n, "CURRENT", ""));
  TD_CHECK(has_file(files, n, "MANIFEST-", ""));
  TD_CHECK(has_file(files, n, "OPTIONS-", ""));
  TD_CHECK(has_file(files, n, "", ".sst"));
  int listed_ok = 1;
  for (size_t i = 0; i < n; i++) {
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", chk, files[i]);
    listed_ok &= exists(p);
    if (i) listed_ok &= strcmp(files[i - 1], files[i]) < 0;
  }
  TD_CHECK(listed_ok);
  /* the backend goes on after its checkpoint; the checkpoint does not see
   * what follows */
  TD_CHECK_INT(td_backend_put(b, 1, 0, S("after"), NONE, S("x")), 0);
  /* a second checkpoint shares the unchanged SST files (same names) */
  char chk2[4200];
  snprintf(chk2, sizeof chk2, "%s/chk-2", root);
  char **files2 = NULL;
  size_t n2 = 0;
  TD_CHECK_INT(td_rocksdb_checkpoint(b, chk2, &files2, &n2), 0);
  size_t shared = 0;
  for (size_t i = 0; i < n; i++)
    if (strstr(files[i], ".sst") && has_file(files2, n2, files[i], ""))
      shared++;
  TD_CHECK(shared >= 1);
  td_rocksdb_files_free(files2, n2);
  td_backend_free(b);
  TD_CHECK(!exists(db));
  const char *dirs[] = {chk};
  b = restore(root, "restored", 0, 127, dirs, 1);
  TD_CHECK(b != NULL);
  if (b) {
    TD_CHECK_INT(holds_exactly(b, CHK_N, 0, 127), 0);
    TD_CHECK(absent(b, 1, 0, "after", ""));
    /* the restored backend writes */
    TD_CHECK_INT(td_backend_put(b, 1, 0, S("new"), NONE, S("y")), 0);
    TD_CHECK(get_is(b, 1, 0, "new", "", "y"));
    td_backend_free(b);
  }
  /* the checkpoint is as it was: restore it again */
  char **tmp = NULL;
  size_t nt = 0;
  b = restore(root, "restored-2", 0, 127, dirs, 1);
  TD_CHECK(b != NULL);
  if (b) {
    TD_CHECK_INT(holds_exactly(b, CHK_N, 0, 127), 0);
    TD_CHECK_INT(td_rocksdb_checkpoint(b, chk2 /* exists */, &tmp, &nt),
                 TD_ESTATE);
    td_backend_free(b);
  }
  td_rocksdb_files_free(files, n);
  rm_tree(root);
}

/* write_late - n values of 1,000 bytes tag in state 9 (the writes after
 * a barrier), in batches of 100: many times the 4 MiB write buffer of
 * open_at. */
static int write_late(td_backend_t *b, int n, char tag) {
  static char big[1000];
  memset(big, tag, sizeof big);
  for (int i = 0; i < n; i++) {
    char kb[32];
    int len = snprintf(kb, sizeof kb, "late-%d", i);
    td_bytes_t k = {kb, (size_t)len}, v = {big, sizeof big};
    if (td_rocksdb_batch_put(b, 9, (uint32_t)i % 128, k, NONE, v)) return -1;
    if (i % 100 == 99 && td_rocksdb_batch_commit(b)) return -1;
  }
  return td_rocksdb_batch_commit(b);
}

typedef struct tagged {
  long n, wrong;
  char tag;
} tagged_t;

static int tag_visit(const td_state_entry_t *e, void *ud) {
  tagged_t *t = ud;
  t->n++;
  t->wrong += e->value.len != 1000 || ((const char *)e->value.data)[0] != t->tag;
  return 0;
}

/* td_rocksdb_checkpoint_begin: the checkpoint its thread makes holds the
 * writes made before the call and none of those after it, though they fill
 * the memtables five times over while the flush of the earlier ones runs
 * (writes wait rather than let RocksDB flush a memtable holding them),
 * round after round; one into a directory that exists fails, with the
 * reason in <dir>.failed; close waits for one under way. */
TD_TEST(test_rocksdb_checkpoint_async) {
  char *root = tmp_dir();
  char db[4200], chk[4200], chk2[4200], failed[4300];
  snprintf(db, sizeof db, "%s/db", root);
  snprintf(chk, sizeof chk, "%s/chk-1", root);
  snprintf(chk2, sizeof chk2, "%s/chk-2", root);
  td_backend_t *b = open_at(db, 0, 127, 1);
  fill(b, CHK_N);
  for (int round = 0; round < 3; round++) {
    /* round k's barrier comes after round k-1's late writes, tag 'a'+k-1 */
    TD_CHECK_INT(td_rocksdb_checkpoint_begin(b, chk), 0);
    char after[8];
    snprintf(after, sizeof after, "%d", round);
    TD_CHECK_INT(td_backend_put(b, 1, 0, S("after"), NONE, S(after)), 0);
    TD_CHECK_INT(write_late(b, 20000, (char)('a' + round)), 0);
    TD_CHECK_INT(td_rocksdb_checkpoint_end(b), 0);
    TD_CHECK_INT(td_rocksdb_checkpoint_end(b), 0); /* none under way: 0 */
    snprintf(failed, sizeof failed, "%s.failed", chk);
    TD_CHECK(exists(chk) && !exists(failed));
    const char *dirs[] = {chk};
    td_backend_t *r = restore(root, "restored", 0, 127, dirs, 1);
    TD_CHECK(r != NULL);
    if (r) {
      tagged_t t = {0, 0, (char)('a' + round - 1)};
      TD_CHECK_INT(td_backend_scan(r, 9, 0, 127, tag_visit, &t), 0);
      TD_CHECK_INT(t.n, round ? 20000 : 0);
      TD_CHECK_INT(t.wrong, 0);
      char before[8];
      snprintf(before, sizeof before, "%d", round - 1);
      TD_CHECK(round ? get_is(r, 1, 0, "after", "", before) : absent(r, 1, 0, "after", ""));
      if (round == 0) TD_CHECK_INT(holds_exactly(r, CHK_N, 0, 127), 0);
      td_backend_free(r);
    }
    td_tmpdir_remove(chk);
  }
  /* a directory that exists: the thread fails, the message in .failed */
  TD_CHECK_INT(mkdir(chk2, 0755), 0);
  TD_CHECK_INT(td_rocksdb_checkpoint_begin(b, chk2), 0);
  TD_CHECK_INT(td_rocksdb_checkpoint_end(b), TD_ESTATE);
  TD_CHECK(strstr(td_rocksdb_last_error(b), "chk-2") != NULL);
  snprintf(failed, sizeof failed, "%s.failed", chk2);
  TD_CHECK(exists(failed));
  /* close waits for one under way */
  rmdir(chk2);
  TD_CHECK_INT(td_rocksdb_checkpoint_begin(b, chk2), 0);
  td_backend_free(b);
  TD_CHECK(exists(chk2));
  rm_tree(root);
}

/* Rescale 1 -> 2: one checkpoint of [0, 127] restored as [0, 63] and
 * [64, 127], each clipped to exactly its key groups. Then 1 -> 3 with
 * ranges that cut through the middle. */
TD_TEST(test_rocksdb_rescale_split) {
  char *root = tmp_dir();
  char *chk = checkpoint_of(root, "old", 0, 127, CHK_N);
  const char *dirs[] = {chk};
  td_backend_t *lo = restore(root, "new-0", 0, 63, dirs, 1);
  td_backend_t *hi = restore(root, "new-1", 64, 127, dirs, 1);
  TD_CHECK(lo && hi);
  if (lo) TD_CHECK_INT(holds_exactly(lo, CHK_N, 0, 63), 0);
  if (hi) TD_CHECK_INT(holds_exactly(hi, CHK_N, 64, 127), 0);
  /* the other half's key groups are not addressable */
  td_bytes_t v;
  if (lo) TD_CHECK_INT(td_backend_get(lo, 1, 64, S("k"), NONE, &v), TD_EINVAL);
  td_backend_free(lo);
  td_backend_free(hi);
  uint32_t cuts[][2] = {{0, 42}, {43, 85}, {86, 127}};
  for (int i = 0; i < 3; i++) {
    char name[32];
    snprintf(name, sizeof name, "third-%d", i);
    td_backend_t *b = restore(root, name, cuts[i][0], cuts[i][1], dirs, 1);
    TD_CHECK(b != NULL);
    if (b) TD_CHECK_INT(holds_exactly(b, CHK_N, cuts[i][0], cuts[i][1]), 0);
    td_backend_free(b);
  }
  free(chk);
  rm_tree(root);
}

/* dir_state - the names, sizes and modification times of dir's entries,
 * sorted, as one string (malloc'd): equal strings, an unchanged dir. */
static char *dir_state(const char *dir) {
  struct dirent **ents = NULL;
  int n = scandir(dir, &ents, NULL, alphasort);
  size_t cap = 64 + (n > 0 ? (size_t)n * 320 : 0), len = 0;
  char *out = malloc(cap);
  if (!out) abort();
  out[0] = '\0';
  for (int i = 0; i < n; i++) {
    char p[4400];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, ents[i]->d_name);
    if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..") &&
        lstat(p, &st) == 0 && len < cap)
      len += (size_t)snprintf(out + len, cap - len, "%s:%lld:%lld.%09ld;",
                              ents[i]->d_name, (long long)st.st_size,
                              (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    free(ents[i]);
  }
  free(ents);
  return out;
}

/* Rescale 2 -> 1: checkpoints of [0, 63] and [64, 127] merged into one
 * [0, 127]; and 2 -> 3's middle subtask [43, 85], which overlaps both;
 * 2 -> 4's second subtask [32, 63] from one of them. No restore changes
 * a checkpoint directory. */
TD_TEST(test_rocksdb_rescale_merge) {
  char *root = tmp_dir();
  char *c0 = checkpoint_of(root, "old-0", 0, 63, CHK_N);
  char *c1 = checkpoint_of(root, "old-1", 64, 127, CHK_N);
  const char *dirs[] = {c0, c1};
  char *before0 = dir_state(c0), *before1 = dir_state(c1);
  td_backend_t *b = restore(root, "merged", 0, 127, dirs, 2);
  TD_CHECK(b != NULL);
  if (b) TD_CHECK_INT(holds_exactly(b, CHK_N, 0, 127), 0);
  td_backend_free(b);
  b = restore(root, "middle", 43, 85, dirs, 2);
  TD_CHECK(b != NULL);
  if (b) TD_CHECK_INT(holds_exactly(b, CHK_N, 43, 85), 0);
  td_backend_free(b);
  /* the old instances' checkpoints are untouched, also by a clipping
   * restore of one of them */
  b = restore(root, "clipped", 32, 63, dirs, 1);
  TD_CHECK(b != NULL);
  if (b) TD_CHECK_INT(holds_exactly(b, CHK_N, 32, 63), 0);
  td_backend_free(b);
  char *after0 = dir_state(c0), *after1 = dir_state(c1);
  TD_CHECK_STR(after0, before0);
  TD_CHECK_STR(after1, before1);
  TD_CHECK(strstr(before0, "CURRENT") != NULL);
  free(before0);
  free(before1);
  free(after0);
  free(after1);
  /* nothing to restore: an empty backend */
  b = restore(root, "empty", 0, 127, NULL, 0);
  TD_CHECK(b != NULL);
  if (b) TD_CHECK_INT(td_backend_count(b), 0);
  td_backend_free(b);
  free(c0);
  free(c1);
  rm_tree(root);
}

/* The shared cache's shards hold at least 32 MiB each (a multi-MiB
 * whole-file filter must fit in one), at most 64 of them: hand-computed. */
TD_TEST(test_rocksdb_cache_shard_bits) {
  TD_CHECK_INT(td_rocksdb_cache_shard_bits(1u << 20), 0);
  TD_CHECK_INT(td_rocksdb_cache_shard_bits((32u << 20) + 1), 0);
  TD_CHECK_INT(td_rocksdb_cache_shard_bits((64u << 20) - 1), 0);
  TD_CHECK_INT(td_rocksdb_cache_shard_bits(64u << 20), 1);
  TD_CHECK_INT(td_rocksdb_cache_shard_bits(256u << 20), 3); /* the default: 8 x 32 MiB */
  TD_CHECK_INT(td_rocksdb_cache_shard_bits((size_t)2 << 30), 6);
  TD_CHECK_INT(td_rocksdb_cache_shard_bits((size_t)64 << 30), 6);
}

/* The shared block cache: one per process, its capacity set by
 * td_rocksdb_shared_cache or an option; gone with the last backend. */
TD_TEST(test_rocksdb_shared_cache) {
  TD_CHECK_INT(td_rocksdb_shared_cache(0), TD_EINVAL);
  TD_CHECK_INT(td_rocksdb_shared_cache(32u << 20), 0);
  TD_CHECK_INT(td_rocksdb_shared_cache_capacity(), 32u << 20);
  td_backend_t *a = new_backend(0, 1);
  TD_CHECK_INT(td_rocksdb_shared_cache_capacity(), 32u << 20);
  char *dir = tmp_dir();
  td_rocksdb_options_t o = {.dir = dir, .remove_on_free = 1,
                            .block_cache = 8u << 20, .write_buffer = 1 << 20,
                            .max_write_buffers = 3};
  td_backend_t *b = NULL;
  char err[256];
  TD_CHECK_INT(td_backend_new_rocksdb(&b, &o, 0, 1, err, sizeof err), 0);
  TD_CHECK_INT(td_rocksdb_shared_cache_capacity(), 8u << 20);
  /* small memtables: many flushes, still every entry */
  char big[1000];
  memset(big, 'x', sizeof big);
  td_bytes_t bv = {big, sizeof big};
  long bad = 0;
  for (int i = 0; i < 5000; i++) {
    char k[16];
    snprintf(k, sizeof k, "%d", i);
    bad += td_backend_put(b, 1, (uint32_t)(i % 2), S(k), NONE, bv) != 0;
  }
  for (int i = 0; i < 5000; i++) {
    char k[16];
    snprintf(k, sizeof k, "%d", i);
    td_bytes_t v;
    bad += td_backend_get(b, 1, (uint32_t)(i % 2), S(k), NONE, &v) != 1 ||
           v.len != sizeof big || memcmp(v.data, big, sizeof big) != 0;
  }
  TD_CHECK_INT(bad, 0);
  td_backend_free(a);
  td_backend_free(b);
  free(dir);
  TD_CHECK_INT(td_rocksdb_shared_cache(TD_ROCKSDB_BLOCK_CACHE_DEFAULT), 0);
}

TD_TEST_MAIN(test_state_ops_name, test_state_put_get, test_state_replace,
             test_state_remove, test_state_states_and_namespaces_apart,
             test_state_empty_key_and_value, test_state_key_group_out_of_range,
             test_state_bad_arguments, test_state_scan_order,
             test_state_scan_single_state, test_state_scan_early_stop,
             test_state_scan_entry_fields, test_state_count,
             test_state_growth_and_removal, test_state_one_group_churn,
             test_rocksdb_bad_arguments, test_rocksdb_bad_directories,
             test_state_value_written_back, test_rocksdb_layout_key_groups,
             test_rocksdb_layout_prefix_keys, test_rocksdb_empty_bytes,
             test_rocksdb_merge_add, test_rocksdb_batch_multi_get,
             test_rocksdb_map_iteration, test_rocksdb_checkpoint_restore, test_rocksdb_checkpoint_async,
             test_rocksdb_rescale_split, test_rocksdb_rescale_merge,
             test_rocksdb_cache_shard_bits, test_rocksdb_shared_cache)
