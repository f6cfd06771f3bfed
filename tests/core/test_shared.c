/*
 * test_shared.c - the shared directory of RocksDB checkpoints (state/shared.h):
 * content names and incremental uploads, the check of a reference (size and
 * whole-file CRC32C), the companion file listing a snapshot's references,
 * and the sweep of unreferenced files.
 *
 * The oracles are independent of shared.c: names are recomputed with
 * libxxhash's one-shot XXH64 (shared.c streams) and checked against values
 * from xxhsum(1); CRCs with a bit-by-bit CRC32C written here (and agree
 * with td_snapshot_crc32c over the whole buffer); companion files are
 * MessagePack written byte by byte here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "error.h"
#include "metadata.h"
#include "shared.h"
#include "snapshot.h"
#include "testlib.h"
#include "tmpdir.h"

/* ---- fixtures ---- */

typedef struct fx {
  char root[512];   /* a fresh directory */
  char shared[600]; /* root/shared (not created) */
} fx_t;

static int fx_init(fx_t *f) {
  memset(f, 0, sizeof *f);
  const char *t = getenv("TMPDIR");
  snprintf(f->root, sizeof f->root, "%s/tide-shared-XXXXXX", t && *t ? t : "/tmp");
  if (!mkdtemp(f->root)) {
    TD_CHECK(!"mkdtemp failed");
    return 0;
  }
  snprintf(f->shared, sizeof f->shared, "%s/shared", f->root);
  return 1;
}

static void fx_free(fx_t *f) { td_tmpdir_remove(f->root); }

/* Write len bytes to dir/name; the path in path (if not NULL). */
static int put_file(const char *dir, const char *name, const void *data, size_t len, char *path,
                    size_t pathlen) {
  char p[1200];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  if (path) snprintf(path, pathlen, "%s", p);
  FILE *fp = fopen(p, "wb");
  if (!fp) return 0;
  int ok = fwrite(data, 1, len, fp) == len;
  return fclose(fp) == 0 && ok;
}

/* The whole file at path (malloc'd, *len bytes), or NULL. */
static unsigned char *slurp(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
  if (b && fread(b, 1, (size_t)n, fp) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(fp);
  *len = (size_t)n;
  return b;
}

/* Pseudo-random bytes (xorshift), reproducible. */
static unsigned char *random_bytes(size_t n, uint64_t seed) {
  unsigned char *b = malloc(n ? n : 1);
  uint64_t x = seed * 2654435761u + 1;
  for (size_t i = 0; b && i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b[i] = (unsigned char)(x >> 24);
  }
  return b;
}

/* CRC32C bit by bit (reflected polynomial 0x82F63B78, initial and final
 * inversion): the oracle for shared.c's CRCs. */
static uint32_t crc32c_bitwise(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}

/* The names in dir (sorted, one per line, in buf): what a directory holds. */
static const char *listing(const char *dir, char *buf, size_t len) {
  char names[64][256];
  int n = 0;
  DIR *d = opendir(dir);
  buf[0] = 0;
  if (!d) return "(no directory)";
  struct dirent *de;
  while ((de = readdir(d)) != NULL && n < 64) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    snprintf(names[n++], sizeof names[0], "%s", de->d_name);
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
  size_t used = 0;
  for (int i = 0; i < n; i++)
    used += (size_t)snprintf(buf + used, used < len ? len - used : 0, "%s%s", i ? " " : "", names[i]);
  return buf;
}

/* ---- MessagePack, byte by byte (the companion's data section) ---- */

typedef struct mp {
  unsigned char b[8192];
  size_t n;
} mp_t;

static void mp_byte(mp_t *m, unsigned c) { m->b[m->n++] = (unsigned char)c; }

static void mp_be(mp_t *m, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; i--) mp_byte(m, (unsigned)(v >> (8 * i)) & 0xff);
}

static void mp_array(mp_t *m, uint32_t n) {
  if (n < 16) mp_byte(m, 0x90 | n);
  else {
    mp_byte(m, 0xdd);
    mp_be(m, n, 4);
  }
}

static void mp_str(mp_t *m, const char *s) {
  size_t len = strlen(s);
  if (len < 32) mp_byte(m, 0xa0 | (unsigned)len);
  else {
    mp_byte(m, 0xd9);
    mp_byte(m, (unsigned)len);
  }
  memcpy(m->b + m->n, s, len);
  m->n += len;
}

static void mp_uint(mp_t *m, uint64_t v) {
  if (v < 128) mp_byte(m, (unsigned)v);
  else if (v <= 0xff) {
    mp_byte(m, 0xcc);
    mp_be(m, v, 1);
  } else if (v <= 0xffff) {
    mp_byte(m, 0xcd);
    mp_be(m, v, 2);
  } else if (v <= 0xffffffffu) {
    mp_byte(m, 0xce);
    mp_be(m, v, 4);
  } else {
    mp_byte(m, 0xcf);
    mp_be(m, v, 8);
  }
}

static void mp_ref(mp_t *m, const char *name, uint64_t size, uint64_t crc) {
  mp_array(m, 3);
  mp_str(m, name);
  mp_uint(m, size);
  mp_uint(m, crc);
}

/* A companion file dir/name (a state file: identity, then data). */
static int write_companion(const char *dir, const char *name, const mp_t *m) {
  td_snapshot_writer_t *w;
  char err[256];
  int rc = td_snapshot_writer_open(&w, NULL, dir, name, TD_SNAPSHOT_KIND_STATE, err, sizeof err);
  if (rc) return 0;
  rc = td_meta_identity_write(w, 5, 0, "job", err, sizeof err);
  if (rc == 0) rc = td_snapshot_write_section(w, TD_STATE_DATA, m->b, m->n, err, sizeof err);
  if (rc == 0) rc = td_snapshot_writer_commit(w, err, sizeof err);
  if (rc) td_snapshot_writer_abort(w);
  return rc == 0;
}

/* ---- upload ---- */

/* Known answers (xxhsum -H1; the CRC32C check value): "123456789" and the
 * empty file. */
TD_TEST(test_shared_upload_known_answers) {
  fx_t f;
  if (!fx_init(&f)) return;
  char src[1200], err[1024];
  td_shared_ref_t ref;
  TD_CHECK(put_file(f.root, "digits", "123456789", 9, src, sizeof src));
  TD_CHECK_INT(td_shared_upload(src, f.shared, &ref, err, sizeof err), 0);
  TD_CHECK_STR(ref.name, "8cb841db40e6ae83-9");
  TD_CHECK_INT(ref.size, 9);
  TD_CHECK_INT(ref.crc, 0xE3069283u);
  TD_CHECK(put_file(f.root, "empty", "", 0, src, sizeof src));
  TD_CHECK_INT(td_shared_upload(src, f.shared, &ref, err, sizeof err), 0);
  TD_CHECK_STR(ref.name, "ef46db3751d8e999-0");
  TD_CHECK_INT(ref.size, 0);
  TD_CHECK_INT(ref.crc, 0);
  char ls[2048];
  TD_CHECK_STR(listing(f.shared, ls, sizeof ls), "8cb841db40e6ae83-9 ef46db3751d8e999-0");
  fx_free(&f);
}

/* A file larger than the copy buffer (128 KiB, several reads): its name,
 * size and CRC recomputed over the whole bytes at once, and the shared
 * copy is the same bytes. Nothing temporary is left. */
TD_TEST(test_shared_upload_names_by_content) {
  fx_t f;
  if (!fx_init(&f)) return;
  size_t n = (5u << 19) + 7; /* 2.5 MiB + 7 */
  unsigned char *data = random_bytes(n, 1);
  char src[1200], err[1024], want[64], dst[1400];
  td_shared_ref_t ref;
  memset(&ref, 0, sizeof ref);
  TD_CHECK(put_file(f.root, "000012.sst", data, n, src, sizeof src));
  TD_CHECK_INT(td_shared_upload(src, f.shared, &ref, err, sizeof err), 0);
  snprintf(want, sizeof want, "%016llx-%zu", (unsigned long long)XXH64(data, n, 0), n);
  TD_CHECK_STR(ref.name, want);
  TD_CHECK_INT(ref.size, n);
  TD_CHECK_INT(ref.crc, crc32c_bitwise(data, n));
  TD_CHECK_INT(ref.crc, td_snapshot_crc32c(0, data, n));
  snprintf(dst, sizeof dst, "%s/%s", f.shared, want);
  size_t got_n = 0;
  unsigned char *got = slurp(dst, &got_n);
  TD_CHECK(got != NULL && got_n == n && memcmp(got, data, n) == 0);
  char ls[2048];
  TD_CHECK_STR(listing(f.shared, ls, sizeof ls), want);
  /* the source is left as it was */
  free(got);
  got = slurp(src, &got_n);
  TD_CHECK(got != NULL && got_n == n && memcmp(got, data, n) == 0);
  TD_CHECK_INT(td_shared_check(f.shared, &ref, err, sizeof err), 0);
  free(got);
  free(data);
  fx_free(&f);
}

/* Uploads from several threads at once (finishing subtasks upload their
 * final states in their task threads): each shared file is named by its
 * own content and holds exactly its source's bytes. */
typedef struct {
  const char *src, *shared;
  td_shared_ref_t ref;
  int rc;
} upload_arg_t;

static void *upload_thread(void *p) {
  upload_arg_t *a = p;
  char err[1024];
  for (int i = 0; i < 20 && a->rc == 0; i++) a->rc = td_shared_upload(a->src, a->shared, &a->ref, err, sizeof err);
  return NULL;
}

TD_TEST(test_shared_upload_threads) {
  fx_t f;
  if (!fx_init(&f)) return;
  enum { T = 4 };
  size_t n = (3u << 20) + 11;
  unsigned char *data[T];
  char src[T][1200], name[32];
  upload_arg_t a[T];
  pthread_t th[T];
  for (int t = 0; t < T; t++) {
    data[t] = random_bytes(n, (unsigned)t + 7);
    snprintf(name, sizeof name, "%06d.sst", t);
    TD_CHECK(put_file(f.root, name, data[t], n, src[t], sizeof src[t]));
    a[t] = (upload_arg_t){.src = src[t], .shared = f.shared, .rc = 0};
  }
  for (int t = 0; t < T; t++) TD_CHECK_INT(pthread_create(&th[t], NULL, upload_thread, &a[t]), 0);
  for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
  for (int t = 0; t < T; t++) {
    char want[64], dst[1400], err[1024];
    TD_CHECK_INT(a[t].rc, 0);
    snprintf(want, sizeof want, "%016llx-%zu", (unsigned long long)XXH64(data[t], n, 0), n);
    TD_CHECK_STR(a[t].ref.name, want);
    snprintf(dst, sizeof dst, "%s/%s", f.shared, want);
    size_t got_n = 0;
    unsigned char *got = slurp(dst, &got_n);
    TD_CHECK(got != NULL && got_n == n && memcmp(got, data[t], n) == 0);
    TD_CHECK_INT(td_shared_check(f.shared, &a[t].ref, err, sizeof err), 0);
    free(got);
    free(data[t]);
  }
  fx_free(&f);
}

/* The same content uploaded again (another path, as a later checkpoint's
 * hard link of the same SST file): same reference, the file there is not
 * written again (same inode and modification time); other content: a
 * second file. */
TD_TEST(test_shared_upload_skips_existing) {
  fx_t f;
  if (!fx_init(&f)) return;
  size_t n = 70000;
  unsigned char *data = random_bytes(n, 2);
  char a[1200], b[1200], c[1200], err[1024], dst[1400];
  td_shared_ref_t r1, r2, r3;
  TD_CHECK(put_file(f.root, "a.sst", data, n, a, sizeof a));
  TD_CHECK(put_file(f.root, "b.sst", data, n, b, sizeof b));
  TD_CHECK_INT(td_shared_upload(a, f.shared, &r1, err, sizeof err), 0);
  snprintf(dst, sizeof dst, "%s/%s", f.shared, r1.name);
  struct stat st1, st2;
  TD_CHECK_INT(stat(dst, &st1), 0);
  /* an old modification time, so that a rewrite would show */
  struct timeval tv[2] = {{.tv_sec = time(NULL) - 5000}, {.tv_sec = time(NULL) - 5000}};
  TD_CHECK_INT(utimes(dst, tv), 0);
  TD_CHECK_INT(td_shared_upload(b, f.shared, &r2, err, sizeof err), 0);
  TD_CHECK_STR(r2.name, r1.name);
  TD_CHECK_INT(r2.size, r1.size);
  TD_CHECK_INT(r2.crc, r1.crc);
  TD_CHECK_INT(stat(dst, &st2), 0);
  TD_CHECK_INT(st2.st_ino, st1.st_ino);
  TD_CHECK_INT(st2.st_mtime, tv[1].tv_sec);
  char ls[2048];
  TD_CHECK_STR(listing(f.shared, ls, sizeof ls), r1.name);
  /* one byte different: another name, both there */
  data[n / 2] ^= 1;
  TD_CHECK(put_file(f.root, "c.sst", data, n, c, sizeof c));
  TD_CHECK_INT(td_shared_upload(c, f.shared, &r3, err, sizeof err), 0);
  TD_CHECK(strcmp(r3.name, r1.name) != 0);
  TD_CHECK_INT(r3.crc, crc32c_bitwise(data, n));
  char want[200];
  snprintf(want, sizeof want, "%s %s", strcmp(r1.name, r3.name) < 0 ? r1.name : r3.name,
           strcmp(r1.name, r3.name) < 0 ? r3.name : r1.name);
  TD_CHECK_STR(listing(f.shared, ls, sizeof ls), want);
  free(data);
  fx_free(&f);
}

/* Errors name the file: a missing source, a shared directory that cannot
 * be created. */
TD_TEST(test_shared_upload_errors) {
  fx_t f;
  if (!fx_init(&f)) return;
  char src[1200], err[1024], bad[1200];
  td_shared_ref_t ref;
  snprintf(src, sizeof src, "%s/no-such.sst", f.root);
  err[0] = 0;
  TD_CHECK_INT(td_shared_upload(src, f.shared, &ref, err, sizeof err), -ENOENT);
  TD_CHECK(strstr(err, src) != NULL);
  TD_CHECK(put_file(f.root, "x.sst", "x", 1, src, sizeof src));
  snprintf(bad, sizeof bad, "%s/no/such/dir", f.root);
  err[0] = 0;
  TD_CHECK_INT(td_shared_upload(src, bad, &ref, err, sizeof err), -ENOENT);
  TD_CHECK(strstr(err, bad) != NULL);
  fx_free(&f);
}

/* ---- check ---- */

/* A good file passes; a changed byte (same size), a truncated file, a
 * longer one and a missing one are reported, naming the file. */
TD_TEST(test_shared_check_detects_damage) {
  fx_t f;
  if (!fx_init(&f)) return;
  size_t n = 200000;
  unsigned char *data = random_bytes(n, 3);
  char src[1200], err[1024], dst[1400];
  td_shared_ref_t ref;
  TD_CHECK(put_file(f.root, "s.sst", data, n, src, sizeof src));
  TD_CHECK_INT(td_shared_upload(src, f.shared, &ref, err, sizeof err), 0);
  snprintf(dst, sizeof dst, "%s/%s", f.shared, ref.name);
  TD_CHECK_INT(td_shared_check(f.shared, &ref, err, sizeof err), 0);

  /* a changed byte, same size */
  data[12345] ^= 0x40;
  TD_CHECK(put_file(f.shared, ref.name, data, n, NULL, 0));
  err[0] = 0;
  TD_CHECK_INT(td_shared_check(f.shared, &ref, err, sizeof err), TD_ECORRUPT);
  TD_CHECK(strstr(err, dst) != NULL);
  data[12345] ^= 0x40;

  /* truncated */
  TD_CHECK(put_file(f.shared, ref.name, data, n - 1, NULL, 0));
  err[0] = 0;
  TD_CHECK_INT(td_shared_check(f.shared, &ref, err, sizeof err), TD_ECORRUPT);
  TD_CHECK(strstr(err, dst) != NULL);

  /* a byte appended */
  unsigned char *more = malloc(n + 1);
  memcpy(more, data, n);
  more[n] = 0;
  TD_CHECK(put_file(f.shared, ref.name, more, n + 1, NULL, 0));
  TD_CHECK_INT(td_shared_check(f.shared, &ref, err, sizeof err), TD_ECORRUPT);
  free(more);

  /* back as it was: good again */
  TD_CHECK(put_file(f.shared, ref.name, data, n, NULL, 0));
  TD_CHECK_INT(td_shared_check(f.shared, &ref, err, sizeof err), 0);

  /* a reference whose CRC is off by one bit */
  td_shared_ref_t wrong = ref;
  wrong.crc ^= 1;
  TD_CHECK_INT(td_shared_check(f.shared, &wrong, err, sizeof err), TD_ECORRUPT);

  /* missing */
  TD_CHECK_INT(unlink(dst), 0);
  err[0] = 0;
  TD_CHECK_INT(td_shared_check(f.shared, &ref, err, sizeof err), -ENOENT);
  TD_CHECK(strstr(err, dst) != NULL);
  TD_CHECK(strstr(err, "missing") != NULL);
  free(data);
  fx_free(&f);
}

/* ---- the companion file ---- */

TD_TEST(test_shared_read_good) {
  fx_t f;
  if (!fx_init(&f)) return;
  mp_t m = {.n = 0};
  /* sizes and CRCs at every MessagePack width, a size past 2^32 and
   * the largest CRC */
  const char *names[4] = {"0123456789abcdef-5", "fedcba9876543210-300", "00000000000000ff-70000",
                          "1111111111111111-5000000000"};
  const uint64_t sizes[4] = {5, 300, 70000, 5000000000ull};
  const uint64_t crcs[4] = {0, 200, 0xffffffffu, 65536};
  mp_array(&m, 4);
  for (int i = 0; i < 4; i++) mp_ref(&m, names[i], sizes[i], crcs[i]);
  TD_CHECK(write_companion(f.root, "op-0.state.shared", &m));
  char path[1200], err[1024];
  snprintf(path, sizeof path, "%s/op-0.state.shared", f.root);
  td_shared_ref_t *refs = NULL;
  size_t n = 99;
  TD_CHECK_INT(td_shared_read(path, &refs, &n, err, sizeof err), 0);
  TD_CHECK_INT(n, 4);
  for (size_t i = 0; refs && i < n && i < 4; i++) {
    TD_CHECK_STR(refs[i].name, names[i]);
    TD_CHECK_INT(refs[i].size, sizes[i]);
    TD_CHECK_INT(refs[i].crc, crcs[i]);
  }
  free(refs);

  /* an empty list */
  m.n = 0;
  mp_array(&m, 0);
  TD_CHECK(write_companion(f.root, "empty.state.shared", &m));
  snprintf(path, sizeof path, "%s/empty.state.shared", f.root);
  refs = (td_shared_ref_t *)&m;
  TD_CHECK_INT(td_shared_read(path, &refs, &n, err, sizeof err), 0);
  TD_CHECK_INT(n, 0);
  TD_CHECK(refs == NULL);

  /* 20 entries (an array16/32 header, names of 37 characters: str8) */
  m.n = 0;
  mp_array(&m, 20);
  for (int i = 0; i < 20; i++) {
    char name[40];
    snprintf(name, sizeof name, "%016x-%020d", i, i);
    mp_ref(&m, name, (uint64_t)i, (uint64_t)i * 7);
  }
  TD_CHECK(write_companion(f.root, "many.state.shared", &m));
  snprintf(path, sizeof path, "%s/many.state.shared", f.root);
  TD_CHECK_INT(td_shared_read(path, &refs, &n, err, sizeof err), 0);
  TD_CHECK_INT(n, 20);
  if (refs && n == 20) {
    char name[40];
    snprintf(name, sizeof name, "%016x-%020d", 19, 19);
    TD_CHECK_STR(refs[19].name, name);
    TD_CHECK_INT(refs[19].crc, 133);
  }
  free(refs);

  /* missing */
  snprintf(path, sizeof path, "%s/none.state.shared", f.root);
  TD_CHECK_INT(td_shared_read(path, &refs, &n, err, sizeof err), -ENOENT);
  fx_free(&f);
}

/* Corrupt companions: a flipped byte (the snapshot CRC), and sound
 * snapshots whose data is not a list of [name, size, crc]. Each is
 * TD_ECORRUPT with a message naming the file, and nothing is returned. */
TD_TEST(test_shared_read_corrupt) {
  fx_t f;
  if (!fx_init(&f)) return;
  char path[1200], err[1024];
  td_shared_ref_t *refs = NULL;
  size_t n = 0;
  mp_t m = {.n = 0};
  mp_array(&m, 2);
  mp_ref(&m, "0123456789abcdef-5", 5, 1);
  mp_ref(&m, "0123456789abcdee-6", 6, 2);
  TD_CHECK(write_companion(f.root, "flip.state.shared", &m));
  snprintf(path, sizeof path, "%s/flip.state.shared", f.root);
  size_t len = 0;
  unsigned char *b = slurp(path, &len);
  TD_CHECK(b != NULL && len > 40);
  if (b) {
    b[len - 20] ^= 0x10; /* inside the data section */
    TD_CHECK(put_file(f.root, "flip.state.shared", b, len, NULL, 0));
    free(b);
  }
  err[0] = 0;
  TD_CHECK_INT(td_shared_read(path, &refs, &n, err, sizeof err), TD_ECORRUPT);
  TD_CHECK(strstr(err, path) != NULL);
  TD_CHECK(refs == NULL && n == 0);

  /* truncated */
  b = slurp(path, &len);
  if (b) {
    TD_CHECK(put_file(f.root, "flip.state.shared", b, len / 2, NULL, 0));
    free(b);
  }
  TD_CHECK_INT(td_shared_read(path, &refs, &n, err, sizeof err), TD_ECORRUPT);

  /* sound files, wrong contents */
  enum { CASES = 10 };
  for (int c = 0; c < CASES; c++) {
    m.n = 0;
    switch (c) {
    case 0: /* an entry of two items */
      mp_array(&m, 1);
      mp_array(&m, 2);
      mp_str(&m, "0123456789abcdef-5");
      mp_uint(&m, 5);
      break;
    case 1: /* a name with a '/' */
      mp_array(&m, 1);
      mp_ref(&m, "../chk-1/x", 5, 1);
      break;
    case 2: /* a hidden name (an upload's temporary file) */
      mp_array(&m, 1);
      mp_ref(&m, ".tmp-1-2", 5, 1);
      break;
    case 3: /* an empty name */
      mp_array(&m, 1);
      mp_ref(&m, "", 5, 1);
      break;
    case 4: /* a name too long (TD_SHARED_NAME_MAX with its NUL) */
      mp_array(&m, 1);
      mp_ref(&m, "0123456789abcdef0123456789abcdef01234567", 5, 1);
      break;
    case 5: /* a negative size */
      mp_array(&m, 1);
      mp_array(&m, 3);
      mp_str(&m, "0123456789abcdef-5");
      mp_byte(&m, 0xff); /* -1 */
      mp_uint(&m, 1);
      break;
    case 6: /* a CRC past 32 bits */
      mp_array(&m, 1);
      mp_ref(&m, "0123456789abcdef-5", 5, 0x100000000ull);
      break;
    case 7: /* more entries announced than there are */
      mp_array(&m, 3);
      mp_ref(&m, "0123456789abcdef-5", 5, 1);
      break;
    case 8: /* not an array */
      mp_str(&m, "0123456789abcdef-5");
      break;
    case 9: /* no data at all */
      break;
    }
    char name[64];
    snprintf(name, sizeof name, "bad%d.state.shared", c);
    TD_CHECK(write_companion(f.root, name, &m));
    snprintf(path, sizeof path, "%s/%s", f.root, name);
    err[0] = 0;
    refs = NULL;
    n = 0;
    int rc = td_shared_read(path, &refs, &n, err, sizeof err);
    if (rc != TD_ECORRUPT) fprintf(stderr, "  case %d: rc %d\n", c, rc);
    TD_CHECK_INT(rc, TD_ECORRUPT);
    TD_CHECK(strstr(err, path) != NULL);
    TD_CHECK(strstr(err, "not a list of shared files") != NULL);
    TD_CHECK(refs == NULL && n == 0);
    free(refs);
  }
  fx_free(&f);
}

/* ---- sweep ---- */

static void set_age(const char *dir, const char *name, long seconds) {
  char p[1200];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  struct timeval tv[2] = {{.tv_sec = time(NULL) - seconds}, {.tv_sec = time(NULL) - seconds}};
  TD_CHECK_INT(utimes(p, tv), 0);
}

/* Listed names stay, whatever their age; others go; a temporary file
 * younger than min_age stays (an upload under way), an older one goes. */
TD_TEST(test_shared_sweep_keeps_listed_and_young_tmp) {
  fx_t f;
  if (!fx_init(&f)) return;
  TD_CHECK_INT(mkdir(f.shared, 0777), 0);
  const char *all[] = {"aaaaaaaaaaaaaaaa-1", "bbbbbbbbbbbbbbbb-2", "cccccccccccccccc-3",
                       "dddddddddddddddd-4", ".tmp-100-0",         ".tmp-100-1",
                       ".tmp-200-7"};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    TD_CHECK(put_file(f.shared, all[i], "x", 1, NULL, 0));
  set_age(f.shared, "aaaaaaaaaaaaaaaa-1", 100000); /* old but listed */
  set_age(f.shared, "bbbbbbbbbbbbbbbb-2", 100000);
  set_age(f.shared, ".tmp-100-0", 3600);  /* a dead upload */
  set_age(f.shared, ".tmp-100-1", 30);    /* under way */
  set_age(f.shared, ".tmp-200-7", -3600); /* in the future (clock skew): young */
  char *keep[] = {"aaaaaaaaaaaaaaaa-1", "cccccccccccccccc-3", "zzzzzzzzzzzzzzzz-9"};
  TD_CHECK_INT(td_shared_sweep(f.shared, keep, 3, 600), 3); /* b, d, .tmp-100-0 */
  char ls[2048];
  TD_CHECK_STR(listing(f.shared, ls, sizeof ls),
               ".tmp-100-1 .tmp-200-7 aaaaaaaaaaaaaaaa-1 cccccccccccccccc-3");
  /* again: nothing more to remove */
  TD_CHECK_INT(td_shared_sweep(f.shared, keep, 3, 600), 0);
  /* min_age 0: every temporary file goes (one dated in the future is
   * still young); no list: every file */
  set_age(f.shared, ".tmp-200-7", 1);
  TD_CHECK_INT(td_shared_sweep(f.shared, keep, 3, 0), 2);
  TD_CHECK_STR(listing(f.shared, ls, sizeof ls), "aaaaaaaaaaaaaaaa-1 cccccccccccccccc-3");
  TD_CHECK_INT(td_shared_sweep(f.shared, NULL, 0, 600), 2);
  TD_CHECK_STR(listing(f.shared, ls, sizeof ls), "");
  fx_free(&f);
}

/* A missing directory is nothing to sweep; an upload followed by a sweep
 * that lists it keeps it intact (check passes). */
TD_TEST(test_shared_sweep_missing_dir_and_roundtrip) {
  fx_t f;
  if (!fx_init(&f)) return;
  TD_CHECK_INT(td_shared_sweep(f.shared, NULL, 0, 600), 0);
  unsigned char *data = random_bytes(4096, 4);
  char src[1200], err[1024];
  td_shared_ref_t r1, r2;
  TD_CHECK(put_file(f.root, "1.sst", data, 4096, src, sizeof src));
  TD_CHECK_INT(td_shared_upload(src, f.shared, &r1, err, sizeof err), 0);
  TD_CHECK(put_file(f.root, "2.sst", data, 4000, src, sizeof src));
  TD_CHECK_INT(td_shared_upload(src, f.shared, &r2, err, sizeof err), 0);
  char *keep[] = {r2.name};
  TD_CHECK_INT(td_shared_sweep(f.shared, keep, 1, 600), 1);
  TD_CHECK_INT(td_shared_check(f.shared, &r2, err, sizeof err), 0);
  TD_CHECK_INT(td_shared_check(f.shared, &r1, err, sizeof err), -ENOENT);
  free(data);
  fx_free(&f);
}

TD_TEST_MAIN(test_shared_upload_known_answers, test_shared_upload_names_by_content, test_shared_upload_threads,
             test_shared_upload_skips_existing, test_shared_upload_errors,
             test_shared_check_detects_damage, test_shared_read_good, test_shared_read_corrupt,
             test_shared_sweep_keeps_listed_and_young_tmp,
             test_shared_sweep_missing_dir_and_roundtrip)
