/*
 * test_asyncsnap.c - the asynchronous part of a fork-free snapshot
 * (core/asyncsnap.h): uploads of a RocksDB checkpoint directory (made here
 * by hand: any files), holes filled with the file lists, companions, the
 * wait for the directory, failures, cancellation and the worker.
 *
 * Oracles: the expected state file bytes are MessagePack written byte by
 * byte here; shared names are recomputed with libxxhash's one-shot XXH64;
 * companions are read back with td_shared_read.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "asyncsnap.h"
#include "error.h"
#include "metadata.h"
#include "shared.h"
#include "snapshot.h"
#include "testlib.h"
#include "tmpdir.h"

typedef struct fx {
  char root[512], shared[600], chk[600], journal[600];
} fx_t;

static int fx_init(fx_t *f) {
  memset(f, 0, sizeof *f);
  if (!td_tmpdir_make(f->root, sizeof f->root, "tide-asnap")) {
    TD_CHECK(!"mkdtemp failed");
    return 0;
  }
  snprintf(f->shared, sizeof f->shared, "%s/shared", f->root);
  snprintf(f->chk, sizeof f->chk, "%s/chk-7", f->root);
  snprintf(f->journal, sizeof f->journal, "%s/uploads-7", f->root);
  TD_CHECK_INT(mkdir(f->chk, 0777), 0);
  return 1;
}

static void fx_free(fx_t *f) { td_tmpdir_remove(f->root); }

static void put(const char *dir, const char *name, const char *text) {
  char path[1400];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *fp = fopen(path, "wb");
  TD_CHECK(fp != NULL);
  if (!fp) return;
  fputs(text, fp);
  fclose(fp);
}

/* A fake RocksDB checkpoint directory root/name with the given files
 * (name, content pairs, NULL-terminated), made in place at once. */
static void make_ckpt(const char *dir, const char *const *files) {
  TD_CHECK_INT(mkdir(dir, 0777), 0);
  for (int i = 0; files[i]; i += 2) put(dir, files[i], files[i + 1]);
}

static void content_name(const char *text, char *out, size_t len) {
  size_t n = strlen(text);
  snprintf(out, len, "%016llx-%zu", (unsigned long long)XXH64(text, n, 0), n);
}

/* The data section of state file dir/name (malloc'd, *n bytes), NULL if
 * it is not a good state file. */
static unsigned char *state_data(const char *dir, const char *name, size_t *n) {
  char path[1400], err[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  td_snapshot_t *s;
  if (td_snapshot_read(&s, NULL, path, err, sizeof err) != 0) return NULL;
  size_t pos = 0;
  td_bytes_t b;
  unsigned char *out = NULL;
  if (td_snapshot_find(s, TD_STATE_DATA, &pos, &b) == 1 && (out = malloc(b.len + 1))) {
    memcpy(out, b.data, b.len);
    *n = b.len;
  }
  td_snapshot_free(s);
  return out;
}

static td_wbuf_t bytes(const void *p, size_t n) {
  td_wbuf_t b = {0};
  TD_CHECK_INT(td_wbuf_reserve(&b, n), 0);
  memcpy(b.data, p, n);
  b.len = n;
  return b;
}

/* Append a fixstr / positive fixint or uint32 by hand. */
static size_t mp_str(unsigned char *p, const char *s) {
  size_t n = strlen(s);
  p[0] = (unsigned char)(0xa0 | n);
  memcpy(p + 1, s, n);
  return n + 1;
}
static size_t mp_uint(unsigned char *p, uint32_t v) {
  /* MessagePack's smallest unsigned form: fixint, uint 8, 16, 32 */
  if (v < 128) {
    p[0] = (unsigned char)v;
    return 1;
  }
  size_t n = v < 256 ? 1 : v < 65536 ? 2 : 4;
  p[0] = (unsigned char)(n == 1 ? 0xcc : n == 2 ? 0xcd : 0xce);
  for (size_t i = 0; i < n; i++) p[1 + i] = (unsigned char)(v >> (8 * (n - 1 - i)));
  return n + 1;
}

/* The encoded file list [[local, shared, size, crc], ...] of files
 * (name, content pairs, in name order). */
static size_t mp_files(unsigned char *p, const char *const *files) {
  size_t n = 0, at = 1;
  while (files[2 * n]) n++;
  p[0] = (unsigned char)(0x90 | n);
  for (size_t i = 0; i < n; i++) {
    char name[64];
    const char *text = files[2 * i + 1];
    content_name(text, name, sizeof name);
    p[at++] = 0x94;
    at += mp_str(p + at, files[2 * i]);
    at += mp_str(p + at, name);
    at += mp_uint(p + at, (uint32_t)strlen(text));
    at += mp_uint(p + at, td_snapshot_crc32c(0, text, strlen(text)));
  }
  return at;
}

/* Two holes in one state file (one in a map, one in an array, between
 * other values), a state file without any: the holes are replaced by the
 * file lists of their checkpoints, the companion lists every shared file
 * of the file's holes, the other file is written as given, files a
 * journal knew are referenced without an upload (their stale shared copy
 * is not rewritten), the new ones are journaled, and the checkpoint
 * directories are removed. */
TD_TEST(test_asyncsnap_fills_holes) {
  fx_t f;
  if (!fx_init(&f)) return;
  static const char *const a_files[] = {"000012.sst", "sst twelve", "MANIFEST-5", "manifest",
                                        "OPTIONS", "opts", NULL};
  static const char *const b_files[] = {"000003.sst", "old sst", "CURRENT", "MANIFEST-1\n",
                                        NULL};
  char da[700], db[700], old[64];
  snprintf(da, sizeof da, "%s/a", f.root);
  snprintf(db, sizeof db, "%s/b", f.root);
  make_ckpt(da, a_files);
  make_ckpt(db, b_files);
  /* 000003.sst was uploaded by an earlier checkpoint (the journal said so) */
  content_name("old sst", old, sizeof old);
  TD_CHECK_INT(mkdir(f.shared, 0777), 0);
  put(f.shared, old, "old sst");
  td_asnap_t *a = td_asnap_new(7);
  TD_CHECK(a != NULL);
  if (!a) return;
  TD_CHECK_INT(td_asnap_upload(a, 3, da, f.shared, f.journal), 0);
  TD_CHECK_INT(td_asnap_upload(a, 0, db, f.shared, f.journal), 0);
  TD_CHECK_INT(td_asnap_upload(a, 0, db, f.shared, f.journal), TD_EINVAL); /* used */
  TD_CHECK_INT(td_asnap_upload(a, TD_ASNAP_MAX_HOLES, db, f.shared, f.journal), TD_EINVAL);
  TD_CHECK_INT(td_asnap_known(a, 0, "000003.sst", old, 7, td_snapshot_crc32c(0, "old sst", 7)), 0);
  TD_CHECK_INT(td_asnap_known(a, 9, "x.sst", old, 7, 1), TD_EINVAL); /* no such upload */
  /* {"k": {"files": <hole 3>, "v": 1}, "l": [true, <hole 0>, "z"]} */
  static const unsigned char with[] = {0x82, 0xa1, 'k', 0x82, 0xa5, 'f', 'i', 'l', 'e', 's',
                                       0xd4, TD_ASNAP_HOLE_EXT, 3, 0xa1, 'v', 0x01, 0xa1, 'l',
                                       0x93, 0xc3, 0xd4, TD_ASNAP_HOLE_EXT, 0, 0xa1, 'z'};
  static const unsigned char plain[] = {0x92, 0x01, 0xa2, 'o', 'k'};
  td_wbuf_t w1 = bytes(with, sizeof with), w2 = bytes(plain, sizeof plain);
  TD_CHECK_INT(td_asnap_file(a, "op-1-0.state", &w1), 0);
  TD_CHECK_INT(td_asnap_file(a, "src-0-0.state", &w2), 0);
  TD_CHECK(w1.data == NULL && w1.len == 0); /* taken */
  char err[1024] = "";
  TD_CHECK_INT(td_asnap_run(a, f.chk, "job", NULL, NULL, NULL, err, sizeof err), 0);
  TD_CHECK_STR(err, "");
  /* what it wrote, for the acknowledgement: both state files and the
   * companion, at their sizes, and the five shared files */
  size_t nw = 0;
  const td_meta_file_t *wr = td_asnap_written(a, &nw);
  TD_CHECK_INT(nw, 8);
  int state_files = 0, shared_files = 0;
  for (size_t i = 0; i < nw; i++) {
    char path[1400];
    struct stat st;
    if (strncmp(wr[i].name, "../shared/", 10) == 0) {
      shared_files++;
      snprintf(path, sizeof path, "%s/%s", f.shared, wr[i].name + 10);
    } else {
      state_files++;
      snprintf(path, sizeof path, "%s/%s", f.chk, wr[i].name);
    }
    TD_CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == wr[i].size);
  }
  TD_CHECK_INT(state_files, 3);
  TD_CHECK_INT(shared_files, 5);
  td_asnap_free(a);
  /* the expected bytes, written out here */
  unsigned char want[1024];
  size_t n = 0;
  memcpy(want, with, 10);
  n = 10;
  n += mp_files(want + n, a_files); /* in name order already */
  memcpy(want + n, with + 13, 7); /* "v": 1, "l": [true, */
  n += 7;
  n += mp_files(want + n, b_files);
  memcpy(want + n, with + 23, 2);
  n += 2;
  size_t got_n = 0;
  unsigned char *got = state_data(f.chk, "op-1-0.state", &got_n);
  TD_CHECK(got != NULL && got_n == n && memcmp(got, want, n) == 0);
  free(got);
  got = state_data(f.chk, "src-0-0.state", &got_n);
  TD_CHECK(got != NULL && got_n == sizeof plain && memcmp(got, plain, sizeof plain) == 0);
  free(got);
  /* the companion: hole 3's files, then hole 0's (the order of the holes) */
  char path[1400];
  snprintf(path, sizeof path, "%s/op-1-0.state.shared", f.chk);
  td_shared_ref_t *refs;
  size_t nr;
  TD_CHECK_INT(td_shared_read(path, &refs, &nr, err, sizeof err), 0);
  TD_CHECK_INT(nr, 5);
  const char *order[] = {"sst twelve", "manifest", "opts", "old sst", "MANIFEST-1\n"};
  for (size_t i = 0; i < nr && i < 5; i++) {
    char name[64];
    content_name(order[i], name, sizeof name);
    TD_CHECK_STR(refs[i].name, name);
    TD_CHECK_INT(td_shared_check(f.shared, &refs[i], err, sizeof err), 0);
  }
  free(refs);
  snprintf(path, sizeof path, "%s/src-0-0.state.shared", f.chk);
  TD_CHECK(access(path, F_OK) != 0);
  /* the journal: the four uploads, not the known file */
  size_t jn = 0;
  FILE *jp = fopen(f.journal, "r");
  char line[512];
  int known_seen = 0;
  while (jp && fgets(line, sizeof line, jp)) {
    jn++;
    if (strncmp(line, "000003.sst ", 11) == 0) known_seen = 1;
  }
  if (jp) fclose(jp);
  TD_CHECK_INT(jn, 4);
  TD_CHECK(!known_seen);
  TD_CHECK(access(da, F_OK) != 0 && access(db, F_OK) != 0);
  fx_free(&f);
}

/* A known file whose shared copy is gone (swept) is uploaded again. */
TD_TEST(test_asyncsnap_known_but_missing_is_uploaded) {
  fx_t f;
  if (!fx_init(&f)) return;
  static const char *const files[] = {"000009.sst", "nine", NULL};
  char d[700], name[64];
  snprintf(d, sizeof d, "%s/a", f.root);
  make_ckpt(d, files);
  content_name("nine", name, sizeof name);
  td_asnap_t *a = td_asnap_new(7);
  TD_CHECK_INT(td_asnap_upload(a, 0, d, f.shared, f.journal), 0);
  TD_CHECK_INT(td_asnap_known(a, 0, "000009.sst", name, 4, td_snapshot_crc32c(0, "nine", 4)), 0);
  static const unsigned char v[] = {0xd4, TD_ASNAP_HOLE_EXT, 0};
  td_wbuf_t w = bytes(v, sizeof v);
  TD_CHECK_INT(td_asnap_file(a, "x.state", &w), 0);
  char err[1024] = "";
  TD_CHECK_INT(td_asnap_run(a, f.chk, "job", NULL, NULL, NULL, err, sizeof err), 0);
  td_asnap_free(a);
  td_shared_ref_t r = {.size = 4, .crc = td_snapshot_crc32c(0, "nine", 4)};
  content_name("nine", r.name, sizeof r.name);
  TD_CHECK_INT(td_shared_check(f.shared, &r, err, sizeof err), 0);
  fx_free(&f);
}

/* A hole no upload fills, and bytes that are not one value: the run
 * fails naming the file, and writes nothing. */
TD_TEST(test_asyncsnap_bad_holes) {
  fx_t f;
  if (!fx_init(&f)) return;
  static const unsigned char v[] = {0x91, 0xd4, TD_ASNAP_HOLE_EXT, 5};
  static const unsigned char two[] = {0x01, 0x02};
  char err[1024] = "";
  td_asnap_t *a = td_asnap_new(7);
  td_wbuf_t w = bytes(v, sizeof v);
  TD_CHECK_INT(td_asnap_file(a, "x.state", &w), 0);
  TD_CHECK(td_asnap_run(a, f.chk, "job", NULL, NULL, NULL, err, sizeof err) != 0);
  TD_CHECK(strstr(err, "x.state: hole 5 of the snapshot was not filled") != NULL);
  td_asnap_free(a);
  a = td_asnap_new(7);
  w = bytes(two, sizeof two);
  TD_CHECK_INT(td_asnap_file(a, "y.state", &w), 0);
  TD_CHECK_INT(td_asnap_run(a, f.chk, "job", NULL, NULL, NULL, err, sizeof err), TD_ECORRUPT);
  TD_CHECK(strstr(err, "y.state: the snapshot's bytes are not one MessagePack value") != NULL);
  td_asnap_free(a);
  /* a hole number past the last hole */
  static const unsigned char big[] = {0xd4, TD_ASNAP_HOLE_EXT, TD_ASNAP_MAX_HOLES};
  a = td_asnap_new(7);
  w = bytes(big, sizeof big);
  TD_CHECK_INT(td_asnap_file(a, "z.state", &w), 0);
  TD_CHECK_INT(td_asnap_run(a, f.chk, "job", NULL, NULL, NULL, err, sizeof err), TD_ECORRUPT);
  td_asnap_free(a);
  char path[1400];
  snprintf(path, sizeof path, "%s/x.state", f.chk);
  TD_CHECK(access(path, F_OK) != 0);
  fx_free(&f);
}

typedef struct later {
  char dir[700];
  int fail;
} later_t;

/* Make the checkpoint directory (renamed into place, as RocksDB does) or
 * its ".failed" file after 100 ms. */
static void *make_later(void *arg) {
  later_t *l = arg;
  struct timespec ts = {0, 100 * 1000000L};
  nanosleep(&ts, NULL);
  char tmp[800];
  if (l->fail) {
    snprintf(tmp, sizeof tmp, "%s.failed", l->dir);
    FILE *fp = fopen(tmp, "w");
    if (fp) {
      fputs("IO error: No space left on device\n", fp);
      fclose(fp);
    }
    return NULL;
  }
  snprintf(tmp, sizeof tmp, "%s.tmp", l->dir);
  mkdir(tmp, 0777);
  put(tmp, "CURRENT", "MANIFEST-2\n");
  rename(tmp, l->dir);
  return NULL;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The run waits for the checkpoint directory; a failed checkpoint fails it
 * with RocksDB's message; a cancel ends the wait. */
TD_TEST(test_asyncsnap_waits_fails_and_cancels) {
  fx_t f;
  if (!fx_init(&f)) return;
  for (int fail = 0; fail <= 1; fail++) {
    later_t l = {.fail = fail};
    snprintf(l.dir, sizeof l.dir, "%s/late-%d", f.root, fail);
    td_asnap_t *a = td_asnap_new(7);
    TD_CHECK_INT(td_asnap_upload(a, 0, l.dir, f.shared, f.journal), 0);
    static const unsigned char v[] = {0xd4, TD_ASNAP_HOLE_EXT, 0};
    td_wbuf_t w = bytes(v, sizeof v);
    TD_CHECK_INT(td_asnap_file(a, fail ? "f.state" : "ok.state", &w), 0);
    pthread_t th;
    pthread_create(&th, NULL, make_later, &l);
    char err[1024] = "";
    int64_t t0 = now_ms();
    int rc = td_asnap_run(a, f.chk, "job", NULL, NULL, NULL, err, sizeof err);
    TD_CHECK(now_ms() - t0 >= 90);
    pthread_join(th, NULL);
    td_asnap_free(a);
    if (fail) {
      TD_CHECK_INT(rc, TD_EIO);
      TD_CHECK_STR(err, "IO error: No space left on device");
    } else {
      TD_CHECK_INT(rc, 0);
      size_t n;
      unsigned char *got = state_data(f.chk, "ok.state", &n);
      TD_CHECK(got != NULL && n > 0 && got[0] == 0x91);
      free(got);
    }
  }
  /* cancelled while waiting for a directory that never comes */
  atomic_int cancel = 1;
  td_asnap_t *a = td_asnap_new(7);
  char never[700], err[1024];
  snprintf(never, sizeof never, "%s/never", f.root);
  TD_CHECK_INT(td_asnap_upload(a, 0, never, f.shared, f.journal), 0);
  TD_CHECK_INT(td_asnap_run(a, f.chk, "job", &cancel, NULL, NULL, err, sizeof err), TD_ECANCELED);
  td_asnap_free(a);
  fx_free(&f);
}

typedef struct reports {
  pthread_mutex_t mu;
  int n;
  int64_t ids[8];
  char errors[8][256];
} reports_t;

static void on_done(void *ud, int64_t id, const td_meta_file_t *files, size_t n,
                    const char *error) {
  reports_t *r = ud;
  TD_CHECK(error ? n == 0 : n == 1 && strcmp(files[0].name, "s.state") == 0);
  pthread_mutex_lock(&r->mu);
  if (r->n < 8) {
    r->ids[r->n] = id;
    snprintf(r->errors[r->n], sizeof r->errors[0], "%s", error ? error : "");
    r->n++;
  }
  pthread_mutex_unlock(&r->mu);
}

/* wanted(): checkpoint 6 is no longer wanted (aborted) after a while. */
static int64_t g_aborted_at;
static int wanted_but_6(void *ud, int64_t id) {
  (void)ud;
  return id != 6 || now_ms() < g_aborted_at;
}

/* The worker writes its snapshots in order and reports each (an error
 * with its message); a stop without cancel writes the queue first; a
 * stop with cancel ends a wait at once and reports nothing of it; a push
 * after the stop is refused; a snapshot whose checkpoint is no longer
 * wanted stops waiting for a RocksDB checkpoint that never comes, is not
 * reported, and the next one is written. */
TD_TEST(test_asyncsnap_worker) {
  fx_t f;
  if (!fx_init(&f)) return;
  reports_t r = {.mu = PTHREAD_MUTEX_INITIALIZER};
  td_asnap_worker_t *w = td_asnap_worker_new("job", on_done, NULL, &r);
  static const unsigned char v[] = {0x01};
  static const unsigned char hole[] = {0xd4, TD_ASNAP_HOLE_EXT, 1};
  for (int i = 1; i <= 3; i++) {
    td_asnap_t *a = td_asnap_new(i);
    td_wbuf_t b = i == 2 ? bytes(hole, sizeof hole) : bytes(v, sizeof v);
    TD_CHECK_INT(td_asnap_file(a, "s.state", &b), 0);
    TD_CHECK_INT(td_asnap_worker_push(w, a, f.chk), 0);
  }
  td_asnap_worker_stop(w, 0);
  TD_CHECK_INT(r.n, 3);
  for (int i = 0; i < 3 && i < r.n; i++) TD_CHECK_INT(r.ids[i], i + 1);
  TD_CHECK_STR(r.errors[0], "");
  TD_CHECK(strstr(r.errors[1], "hole 1 of the snapshot was not filled") != NULL);
  TD_CHECK_STR(r.errors[2], "");
  td_asnap_t *a = td_asnap_new(4);
  TD_CHECK_INT(td_asnap_worker_push(w, a, f.chk), TD_ECANCELED);
  td_asnap_worker_free(w);
  /* cancelled in a wait */
  w = td_asnap_worker_new("job", on_done, NULL, &r);
  char never[700];
  snprintf(never, sizeof never, "%s/never", f.root);
  a = td_asnap_new(5);
  TD_CHECK_INT(td_asnap_upload(a, 0, never, f.shared, f.journal), 0);
  TD_CHECK_INT(td_asnap_worker_push(w, a, f.chk), 0);
  struct timespec ts = {0, 50 * 1000000L};
  nanosleep(&ts, NULL);
  int64_t t0 = now_ms();
  td_asnap_worker_stop(w, 1);
  TD_CHECK(now_ms() - t0 < 1000);
  TD_CHECK_INT(r.n, 3);
  td_asnap_worker_free(w);
  /* aborted while waiting */
  g_aborted_at = now_ms() + 100;
  w = td_asnap_worker_new("job", on_done, wanted_but_6, &r);
  a = td_asnap_new(6);
  TD_CHECK_INT(td_asnap_upload(a, 0, never, f.shared, f.journal), 0);
  TD_CHECK_INT(td_asnap_worker_push(w, a, f.chk), 0);
  a = td_asnap_new(7);
  td_wbuf_t b = bytes(v, sizeof v);
  TD_CHECK_INT(td_asnap_file(a, "s.state", &b), 0);
  TD_CHECK_INT(td_asnap_worker_push(w, a, f.chk), 0);
  td_asnap_worker_stop(w, 0); /* the queue written first */
  TD_CHECK_INT(r.n, 4);
  if (r.n == 4) {
    TD_CHECK_INT(r.ids[3], 7);
    TD_CHECK_STR(r.errors[3], "");
  }
  td_asnap_worker_free(w);
  fx_free(&f);
}

TD_TEST_MAIN(test_asyncsnap_fills_holes, test_asyncsnap_known_but_missing_is_uploaded,
             test_asyncsnap_bad_holes, test_asyncsnap_waits_fails_and_cancels,
             test_asyncsnap_worker)
