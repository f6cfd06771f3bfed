/*
 * test_snapshot.c - unit tests for the snapshot file format
 * (state/snapshot.h, state/snapshot.c): the CRC32C check value, the
 * documented byte layout, round trips (empty, small and 1 MiB sections,
 * repeated tags), argument checks, corruption detection (every single-byte
 * change of a small file, truncation at every length, appended bytes, bad
 * magic, unknown versions, sections that disagree with a trailer whose CRC
 * is right), atomic commit under fault injection (the Nth I/O call fails,
 * for N = 1, 2, ... until a run completes, in four modes), reads under
 * faults, and directory verification.
 *
 * Each case works in its own mkdtemp directory under $TMPDIR (or /tmp) and
 * removes it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "snapshot.h"
#include "testlib.h"

/* ---- helpers ---- */

static char *make_dir(void) {
  const char *t = getenv("TMPDIR");
  char tmpl[512];
  snprintf(tmpl, sizeof tmpl, "%s/tide-snap-XXXXXX", t && *t ? t : "/tmp");
  char *d = mkdtemp(tmpl);
  TD_CHECK(d != NULL);
  return d ? strdup(d) : NULL;
}

static void rm_rf(const char *path) {
  struct stat st;
  if (lstat(path, &st) < 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (d) {
      struct dirent *de;
      while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
        rm_rf(sub);
      }
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

static void free_dir(char *dir) {
  if (!dir) return;
  rm_rf(dir);
  free(dir);
}

static char *path_of(const char *dir, const char *name) {
  static char buf[4][1024];
  static int next;
  char *p = buf[next++ % 4];
  snprintf(p, sizeof buf[0], "%s/%s", dir, name);
  return p;
}

static int exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
  closedir(d);
  return n;
}

static void write_bytes(const char *path, const void *p, size_t len) {
  FILE *f = fopen(path, "wb");
  TD_CHECK(f != NULL);
  if (!f) return;
  TD_CHECK(fwrite(p, 1, len, f) == len);
  TD_CHECK(fclose(f) == 0);
}

static unsigned char *read_bytes(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  *len = 0;
  TD_CHECK(f != NULL);
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *p = malloc(n > 0 ? (size_t)n : 1);
  TD_CHECK(p != NULL && fread(p, 1, (size_t)n, f) == (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return p;
}

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p) {
  return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put_le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Rewrite the trailer's size and CRC so that only the structure is off. */
static void reseal(unsigned char *p, size_t len) {
  put_le64(p + len - 12, len);
  put_le32(p + len - 4, td_snapshot_crc32c(0, p, len - 4));
}

typedef struct sec {
  uint32_t tag;
  const void *data;
  size_t len;
} sec_t;

/* Write DIR/NAME with these sections through io; 0 or the first error.
 * On error the writer has been aborted; *abort_rc gets abort's code. */
static int write_snapshot(const td_snapshot_io_t *io, const char *dir,
                          const char *name, uint32_t kind, const sec_t *s,
                          size_t n, int *abort_rc) {
  td_snapshot_writer_t *w = NULL;
  char err[256];
  if (abort_rc) *abort_rc = 0;
  int rc = td_snapshot_writer_open(&w, io, dir, name, kind, err, sizeof err);
  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = td_snapshot_write_section(w, s[i].tag, s[i].data, s[i].len, err,
                                   sizeof err);
  if (rc == 0) rc = td_snapshot_writer_commit(w, err, sizeof err);
  if (rc < 0) {
    TD_CHECK(err[0] != '\0');
    int arc = td_snapshot_writer_abort(w);
    if (abort_rc) *abort_rc = arc;
  }
  return rc;
}

/* 1 if the file at path is a valid snapshot with exactly these sections. */
static int has_sections(const char *path, uint32_t kind, const sec_t *s,
                        size_t n) {
  td_snapshot_t *snap = NULL;
  char err[256];
  if (td_snapshot_read(&snap, NULL, path, err, sizeof err) != 0) {
    fprintf(stderr, "  %s\n", err);
    return 0;
  }
  int ok = td_snapshot_kind(snap) == kind && td_snapshot_count(snap) == n;
  for (size_t i = 0; ok && i < n; i++) {
    uint32_t tag;
    td_bytes_t b;
    ok = td_snapshot_section(snap, i, &tag, &b) == 0 && tag == s[i].tag &&
         b.len == s[i].len && (n == 0 || !b.len ||
                               memcmp(b.data, s[i].data, b.len) == 0);
  }
  td_snapshot_free(snap);
  return ok;
}

/* Read path expecting TD_ECORRUPT, with a message naming the file. */
static int corrupt(const char *path, const char *needle) {
  td_snapshot_t *snap = (td_snapshot_t *)1;
  char err[512] = "";
  int rc = td_snapshot_read(&snap, NULL, path, err, sizeof err);
  int ok = rc == TD_ECORRUPT && snap == NULL &&
           strncmp(err, path, strlen(path)) == 0 &&
           (!needle || strstr(err, needle) != NULL);
  if (!ok)
    fprintf(stderr, "  %s: rc %d (%s), message \"%s\", expected \"%s\"\n",
            path, rc, td_err_name(rc), err, needle ? needle : "");
  if (rc == 0) td_snapshot_free(snap);
  return ok;
}

/* A small snapshot file's bytes: 2 sections and an empty one. */
static unsigned char *small_file(const char *dir, size_t *len) {
  const sec_t s[] = {{1, "ab", 2}, {2, NULL, 0}, {3, "xyz", 3}};
  TD_CHECK_INT(write_snapshot(NULL, dir, "small", 5, s, 3, NULL), 0);
  unsigned char *p = read_bytes(path_of(dir, "small"), len);
  unlink(path_of(dir, "small"));
  return p;
}

/* ---- fault injection: a method table over the POSIX one ---- */

enum {
  F_EIO_ONE,        /* call N fails with -EIO, the others succeed */
  F_EIO_FROM,       /* calls N, N+1, ... fail (a dead disk, or a crash) */
  F_SHORT,          /* call N, if a write, writes half (the rest succeed) */
  F_SHORT_THEN_EIO, /* call N, if a write, writes half; later calls fail */
  F_SHORT_READ,     /* call N, if a read, reads half */
  F_ZERO_WRITE      /* call N, if a write, writes nothing and returns 0 */
};

typedef struct fault {
  td_snapshot_io_t io;
  int mode;
  long at, calls;
  int renamed;           /* a rename succeeded */
  int dir_fd;            /* the last directory opened, or -1 */
  const char *failed_op; /* the op that failed (or was short), or NULL */
  int nlog;
  const char *log[64];   /* the ops called, in order */
} fault_t;

static const td_snapshot_io_t *P(void) { return td_snapshot_io_posix(); }

/* Count a call: 1 if it must fail with -EIO. */
static int fails(fault_t *f, const char *op) {
  long n = ++f->calls;
  if (f->nlog < 64) f->log[f->nlog++] = op;
  int fail = (f->mode == F_EIO_ONE && n == f->at) ||
             (f->mode == F_EIO_FROM && n >= f->at) ||
             (f->mode == F_SHORT_THEN_EIO && n > f->at);
  if (fail && !f->failed_op) f->failed_op = op;
  return fail;
}

static int f_open(void *ud, const char *path, int how) {
  fault_t *f = ud;
  int dir = how == TD_SNAPSHOT_OPEN_DIR;
  if (fails(f, dir ? "open dir" : "open")) return -EIO;
  int fd = P()->open(NULL, path, how);
  if (dir) f->dir_fd = fd;
  return fd;
}

static ssize_t f_read(void *ud, int fd, void *buf, size_t len) {
  fault_t *f = ud;
  if (fails(f, "read")) return -EIO;
  if (f->mode == F_SHORT_READ && f->calls == f->at && len > 1) {
    f->failed_op = "short read";
    len /= 2;
  }
  return P()->read(NULL, fd, buf, len);
}

static ssize_t f_write(void *ud, int fd, const void *buf, size_t len) {
  fault_t *f = ud;
  if (fails(f, "write")) return -EIO;
  if ((f->mode == F_SHORT || f->mode == F_SHORT_THEN_EIO) &&
      f->calls == f->at) {
    f->failed_op = "short write";
    len /= 2;
    if (len == 0) return 0;
  }
  if (f->mode == F_ZERO_WRITE && f->calls == f->at) {
    f->failed_op = "zero write";
    return 0;
  }
  return P()->write(NULL, fd, buf, len);
}

static int f_fsync(void *ud, int fd) {
  return fails(ud, "fsync") ? -EIO : P()->fsync(NULL, fd);
}

static int f_close(void *ud, int fd) {
  fault_t *f = ud;
  int rc = P()->close(NULL, fd); /* the fd is released either way */
  int dir = fd == f->dir_fd;
  if (dir) f->dir_fd = -1;
  return fails(f, dir ? "close dir" : "close") ? -EIO : rc;
}

static int f_size(void *ud, int fd, uint64_t *out) {
  return fails(ud, "size") ? -EIO : P()->size(NULL, fd, out);
}

static int f_rename(void *ud, const char *from, const char *to) {
  fault_t *f = ud;
  if (fails(f, "rename")) return -EIO;
  int rc = P()->rename(NULL, from, to);
  if (rc == 0) f->renamed = 1;
  return rc;
}

static int f_unlink(void *ud, const char *path) {
  return fails(ud, "unlink") ? -EIO : P()->unlink(NULL, path);
}

static void fault_init(fault_t *f, int mode, long at) {
  memset(f, 0, sizeof *f);
  f->io = (td_snapshot_io_t){f_open,  f_read,   f_write,  f_fsync, f_close,
                             f_size,  f_rename, f_unlink, f};
  f->mode = mode;
  f->at = at;
  f->dir_fd = -1;
}

/* ---- an in-memory method table: reads one buffer, whatever the path ---- */

typedef struct mem {
  td_snapshot_io_t io;
  const unsigned char *p;
  size_t len, pos;
  long size_delta; /* size() reports len + size_delta: the file changed */
} mem_t;

static int m_open(void *ud, const char *path, int how) {
  mem_t *m = ud;
  m->pos = 0;
  return how == TD_SNAPSHOT_OPEN_READ ? 3 : -EROFS;
}

static ssize_t m_read(void *ud, int fd, void *buf, size_t len) {
  mem_t *m = ud;
  size_t n = m->len - m->pos < len ? m->len - m->pos : len;
  memcpy(buf, m->p + m->pos, n);
  m->pos += n;
  return (ssize_t)n;
}

static ssize_t m_write(void *ud, int fd, const void *buf, size_t len) {
  return -EROFS;
}

static int m_fd(void *ud, int fd) { return 0; }

static int m_size(void *ud, int fd, uint64_t *out) {
  mem_t *m = ud;
  *out = (uint64_t)((long)m->len + m->size_delta);
  return 0;
}

static int m_rename(void *ud, const char *from, const char *to) {
  return -EROFS;
}

static int m_unlink(void *ud, const char *path) { return -EROFS; }

static void mem_init(mem_t *m, const unsigned char *p, size_t len) {
  m->io = (td_snapshot_io_t){m_open, m_read,   m_write,  m_fd, m_fd,
                             m_size, m_rename, m_unlink, m};
  m->p = p;
  m->len = len;
  m->pos = 0;
  m->size_delta = 0;
}

/* ---- cases ---- */

TD_TEST(test_snapshot_crc32c_check_value) {
  const char *s = "123456789";
  TD_CHECK_INT(td_snapshot_crc32c(0, s, 9), 0xE3069283u);
  TD_CHECK_INT(td_snapshot_crc32c(0, NULL, 0), 0);
  TD_CHECK_INT(td_snapshot_crc32c(0x12345678u, NULL, 0), 0x12345678u);
  for (size_t k = 0; k <= 9; k++) /* chaining: any split gives the same */
    TD_CHECK_INT(td_snapshot_crc32c(td_snapshot_crc32c(0, s, k), s + k, 9 - k),
                 0xE3069283u);
  /* RFC 3720 B.4: 32 bytes of zeros, 32 bytes of 0xff */
  unsigned char b[32];
  memset(b, 0, sizeof b);
  TD_CHECK_INT(td_snapshot_crc32c(0, b, 32), 0x8A9136AAu);
  memset(b, 0xff, sizeof b);
  TD_CHECK_INT(td_snapshot_crc32c(0, b, 32), 0x62A8AB43u);
}

TD_TEST(test_snapshot_layout) {
  char *dir = make_dir();
  if (!dir) return;
  const sec_t s[] = {{0x01020304u, "hi", 2}, {7, NULL, 0}};
  TD_CHECK_INT(write_snapshot(NULL, dir, "f", 0xA0B0C0D0u, s, 2, NULL), 0);
  size_t len;
  unsigned char *p = read_bytes(path_of(dir, "f"), &len);
  TD_CHECK_INT(len, 16 + 12 + 2 + 12 + 0 + 16);
  if (p && len == 58) {
    TD_CHECK(memcmp(p, "TIDESNAP", 8) == 0);
    TD_CHECK_INT(le32(p + 8), TD_SNAPSHOT_VERSION);
    TD_CHECK_INT(le32(p + 12), 0xA0B0C0D0u);
    TD_CHECK(p[12] == 0xD0); /* little-endian */
    TD_CHECK_INT(le32(p + 16), 0x01020304u);
    TD_CHECK(p[16] == 0x04);
    TD_CHECK_INT(le64(p + 20), 2);
    TD_CHECK(memcmp(p + 28, "hi", 2) == 0);
    TD_CHECK_INT(le32(p + 30), 7);
    TD_CHECK_INT(le64(p + 34), 0);
    TD_CHECK_INT(le32(p + 42), 2);  /* section count */
    TD_CHECK_INT(le64(p + 46), 58); /* total size */
    TD_CHECK_INT(le32(p + 54), td_snapshot_crc32c(0, p, 54));
  }
  free(p);
  TD_CHECK_INT(count_entries(dir), 1); /* no .tmp left */
  free_dir(dir);
}

TD_TEST(test_snapshot_round_trip) {
  char *dir = make_dir();
  if (!dir) return;
  size_t big = 1u << 20, edge = 65536 - 12 - 16; /* fills the buffer */
  unsigned char *mib = malloc(big), *e = malloc(edge);
  uint32_t x = 2463534242u;
  for (size_t i = 0; i < big; i++) { /* xorshift32 */
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    mib[i] = (unsigned char)x;
  }
  memset(e, 'e', edge);
  const sec_t s[] = {{1, "hello", 5},  {2, NULL, 0},   {3, mib, big},
                     {1, "again", 5},  {4, e, edge},   {UINT32_MAX, "", 0},
                     {5, "x", 1}};
  size_t n = sizeof s / sizeof s[0];
  TD_CHECK_INT(write_snapshot(NULL, dir, "op-0.state", TD_SNAPSHOT_KIND_STATE,
                              s, n, NULL),
               0);
  const char *path = path_of(dir, "op-0.state");
  TD_CHECK(has_sections(path, TD_SNAPSHOT_KIND_STATE, s, n));

  td_snapshot_t *snap = NULL;
  char err[256];
  TD_CHECK_INT(td_snapshot_read(&snap, NULL, path, err, sizeof err), 0);
  if (snap) {
    struct stat st;
    TD_CHECK(stat(path, &st) == 0 &&
             td_snapshot_size(snap) == (uint64_t)st.st_size);
    TD_CHECK_INT(td_snapshot_size(snap),
                 16 + 16 + n * 12 + 5 + big + 5 + edge + 1);
    TD_CHECK_INT(td_snapshot_version(snap), TD_SNAPSHOT_VERSION);
    TD_CHECK_INT(td_snapshot_count(snap), n);
    /* by tag: both sections with tag 1, in order */
    td_bytes_t b;
    size_t i = 0, found = 0, at[2] = {0, 0};
    for (; td_snapshot_find(snap, 1, &i, &b) == 1; i++) {
      if (found < 2) at[found] = i;
      found++;
    }
    TD_CHECK_INT(found, 2);
    TD_CHECK_INT(at[0], 0);
    TD_CHECK_INT(at[1], 3);
    i = 0;
    TD_CHECK_INT(td_snapshot_find(snap, 3, &i, &b), 1);
    TD_CHECK(i == 2 && b.len == big && memcmp(b.data, mib, big) == 0);
    i = 0;
    TD_CHECK_INT(td_snapshot_find(snap, 2, &i, &b), 1);
    TD_CHECK_INT(b.len, 0);
    i = 0;
    TD_CHECK_INT(td_snapshot_find(snap, UINT32_MAX, &i, &b), 1);
    TD_CHECK_INT(i, 5);
    i = 4;
    TD_CHECK_INT(td_snapshot_find(snap, 99, &i, &b), 0);
    TD_CHECK_INT(i, 4); /* unchanged when not found */
    i = 4;
    TD_CHECK_INT(td_snapshot_find(snap, 1, &i, NULL), 0); /* from 4 on */
    uint32_t tag = 0;
    TD_CHECK_INT(td_snapshot_section(snap, n, &tag, &b), TD_EINVAL);
    TD_CHECK_INT(td_snapshot_section(snap, n - 1, &tag, NULL), 0);
    TD_CHECK_INT(tag, 5);
    td_snapshot_free(snap);
  }
  TD_CHECK_INT(count_entries(dir), 1);
  free(mib);
  free(e);
  free_dir(dir);
}

TD_TEST(test_snapshot_empty) {
  char *dir = make_dir();
  if (!dir) return;
  TD_CHECK_INT(
      write_snapshot(NULL, dir, "_metadata", TD_SNAPSHOT_KIND_METADATA, NULL,
                     0, NULL),
      0);
  td_snapshot_t *snap = NULL;
  TD_CHECK_INT(td_snapshot_read(&snap, NULL, path_of(dir, "_metadata"), NULL,
                                0),
               0);
  if (snap) {
    TD_CHECK_INT(td_snapshot_count(snap), 0);
    TD_CHECK_INT(td_snapshot_size(snap), 32);
    TD_CHECK_INT(td_snapshot_kind(snap), TD_SNAPSHOT_KIND_METADATA);
    size_t i = 0;
    TD_CHECK_INT(td_snapshot_find(snap, 0, &i, NULL), 0);
    td_snapshot_free(snap);
  }
  /* a trailing slash on dir */
  char slashed[1100];
  snprintf(slashed, sizeof slashed, "%s/", dir);
  TD_CHECK_INT(write_snapshot(NULL, slashed, "x", 1, NULL, 0, NULL), 0);
  TD_CHECK(exists(path_of(dir, "x")));
  free_dir(dir);
}

TD_TEST(test_snapshot_replace) {
  char *dir = make_dir();
  if (!dir) return;
  const sec_t a[] = {{1, "old", 3}}, b[] = {{2, "new", 3}, {3, "more", 4}};
  TD_CHECK_INT(write_snapshot(NULL, dir, "f", 1, a, 1, NULL), 0);
  TD_CHECK(has_sections(path_of(dir, "f"), 1, a, 1));
  TD_CHECK_INT(write_snapshot(NULL, dir, "f", 2, b, 2, NULL), 0);
  TD_CHECK(has_sections(path_of(dir, "f"), 2, b, 2));
  TD_CHECK_INT(count_entries(dir), 1);
  free_dir(dir);
}

TD_TEST(test_snapshot_abort) {
  char *dir = make_dir();
  if (!dir) return;
  const sec_t a[] = {{1, "old", 3}};
  TD_CHECK_INT(write_snapshot(NULL, dir, "f", 1, a, 1, NULL), 0);
  td_snapshot_writer_t *w = NULL;
  TD_CHECK_INT(td_snapshot_writer_open(&w, NULL, dir, "f", 1, NULL, 0), 0);
  TD_CHECK(exists(path_of(dir, "f.tmp")));
  TD_CHECK_INT(td_snapshot_write_section(w, 1, "new", 3, NULL, 0), 0);
  TD_CHECK_INT(td_snapshot_writer_abort(w), 0);
  TD_CHECK(!exists(path_of(dir, "f.tmp")));
  TD_CHECK(has_sections(path_of(dir, "f"), 1, a, 1));
  /* abort of a fresh name leaves nothing; abort(NULL) is a no-op */
  TD_CHECK_INT(td_snapshot_writer_open(&w, NULL, dir, "g", 1, NULL, 0), 0);
  TD_CHECK_INT(td_snapshot_writer_abort(w), 0);
  TD_CHECK_INT(td_snapshot_writer_abort(NULL), 0);
  TD_CHECK_INT(count_entries(dir), 1);
  /* a stale .tmp from a crashed writer is overwritten */
  write_bytes(path_of(dir, "h.tmp"), "stale", 5);
  TD_CHECK_INT(write_snapshot(NULL, dir, "h", 1, a, 1, NULL), 0);
  TD_CHECK(has_sections(path_of(dir, "h"), 1, a, 1));
  TD_CHECK(!exists(path_of(dir, "h.tmp")));
  free_dir(dir);
}

TD_TEST(test_snapshot_bad_arguments) {
  char *dir = make_dir();
  if (!dir) return;
  td_snapshot_writer_t *w = (td_snapshot_writer_t *)1;
  char err[512];
  const char *bad[] = {"", "a/b", ".", "..", "/x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    w = (td_snapshot_writer_t *)1;
    TD_CHECK_INT(td_snapshot_writer_open(&w, NULL, dir, bad[i], 1, err,
                                         sizeof err),
                 TD_EINVAL);
    TD_CHECK(w == NULL);
  }
  TD_CHECK_INT(td_snapshot_writer_open(&w, NULL, dir, NULL, 1, NULL, 0),
               TD_EINVAL);
  TD_CHECK_INT(td_snapshot_writer_open(&w, NULL, NULL, "f", 1, NULL, 0),
               TD_EINVAL);
  TD_CHECK_INT(td_snapshot_writer_open(NULL, NULL, dir, "f", 1, NULL, 0),
               TD_EINVAL);
  TD_CHECK_INT(count_entries(dir), 0);

  /* a directory that does not exist */
  const char *missing = path_of(dir, "no/such");
  TD_CHECK_INT(td_snapshot_writer_open(&w, NULL, missing, "f", 1, err,
                                       sizeof err),
               -ENOENT);
  TD_CHECK(w == NULL && strstr(err, "no/such/f.tmp") != NULL);

  /* NULL data with a length */
  TD_CHECK_INT(td_snapshot_writer_open(&w, NULL, dir, "f", 1, NULL, 0), 0);
  TD_CHECK_INT(td_snapshot_write_section(w, 1, NULL, 3, err, sizeof err),
               TD_EINVAL);
  TD_CHECK_INT(td_snapshot_write_section(w, 1, NULL, 0, err, sizeof err), 0);
  TD_CHECK_INT(td_snapshot_writer_commit(w, err, sizeof err), 0);

  /* reading a missing file, with a tiny error buffer */
  td_snapshot_t *snap = (td_snapshot_t *)1;
  char tiny[8];
  TD_CHECK_INT(td_snapshot_read(&snap, NULL, path_of(dir, "nope"), tiny,
                                sizeof tiny),
               -ENOENT);
  TD_CHECK(snap == NULL && strlen(tiny) == 7);
  TD_CHECK_INT(td_snapshot_read(NULL, NULL, "x", NULL, 0), TD_EINVAL);
  /* a directory is not a snapshot file */
  TD_CHECK(td_snapshot_read(&snap, NULL, dir, NULL, 0) < 0);
  free_dir(dir);
}

TD_TEST(test_snapshot_every_byte_change_detected) {
  char *dir = make_dir();
  if (!dir) return;
  size_t len;
  unsigned char *p = small_file(dir, &len);
  TD_CHECK_INT(len, 16 + 12 * 3 + 5 + 16);
  /* read from memory (a file per change would take seconds) */
  mem_t m;
  mem_init(&m, p, len);
  long missed = 0, unnamed = 0;
  for (size_t i = 0; p && i < len; i++) {
    unsigned char orig = p[i];
    for (int x = 1; x < 256; x++) {
      td_snapshot_t *snap = NULL;
      char err[256] = "";
      p[i] = (unsigned char)(orig ^ x);
      int rc = td_snapshot_read(&snap, &m.io, "chk-3/flipped", err,
                                sizeof err);
      if (rc != TD_ECORRUPT || snap) {
        if (missed++ == 0)
          fprintf(stderr, "  byte %zu ^ %02x: rc %d\n", i, x, rc);
        td_snapshot_free(snap);
      }
      if (strncmp(err, "chk-3/flipped: ", 15) != 0) unnamed++;
    }
    p[i] = orig;
  }
  TD_CHECK_INT(missed, 0);
  TD_CHECK_INT(unnamed, 0);
  const char *path = path_of(dir, "flipped");
  write_bytes(path, p, len); /* and the original reads fine */
  const sec_t s[] = {{1, "ab", 2}, {2, NULL, 0}, {3, "xyz", 3}};
  TD_CHECK(has_sections(path, 5, s, 3));
  free(p);
  free_dir(dir);
}

TD_TEST(test_snapshot_truncation_detected) {
  char *dir = make_dir();
  if (!dir) return;
  size_t len;
  unsigned char *p = small_file(dir, &len);
  const char *path = path_of(dir, "cut");
  for (size_t k = 0; p && k < len; k++) {
    write_bytes(path, p, k);
    TD_CHECK(corrupt(path, k < 16 ? "truncated" : NULL));
  }
  free(p);
  /* a big file cut anywhere, including mid-section */
  size_t big = 200000;
  unsigned char *d = calloc(1, big);
  const sec_t s[] = {{1, d, big}, {2, "end", 3}};
  TD_CHECK_INT(write_snapshot(NULL, dir, "big", 1, s, 2, NULL), 0);
  p = read_bytes(path_of(dir, "big"), &len);
  size_t cuts[] = {16, 27, 28, 1000, 65536, len - 20, len - 16, len - 1};
  for (size_t i = 0; p && i < sizeof cuts / sizeof cuts[0]; i++) {
    write_bytes(path, p, cuts[i]);
    TD_CHECK(corrupt(path, cuts[i] < 32 ? "truncated" : "size mismatch"));
  }
  free(p);
  free(d);
  free_dir(dir);
}

TD_TEST(test_snapshot_appended_bytes_detected) {
  char *dir = make_dir();
  if (!dir) return;
  size_t len;
  unsigned char *p = small_file(dir, &len);
  const char *path = path_of(dir, "long");
  size_t extra[] = {1, 15, 16, 17, len, 1u << 20};
  for (size_t i = 0; p && i < sizeof extra / sizeof extra[0]; i++) {
    unsigned char *q = calloc(1, len + extra[i]);
    memcpy(q, p, len);
    if (extra[i] == len) memcpy(q + len, p, len); /* the file twice */
    write_bytes(path, q, len + extra[i]);
    TD_CHECK(corrupt(path, "size mismatch"));
    free(q);
  }
  free(p);
  free_dir(dir);
}

TD_TEST(test_snapshot_wrong_magic_detected) {
  char *dir = make_dir();
  if (!dir) return;
  size_t len;
  unsigned char *p = small_file(dir, &len);
  const char *path = path_of(dir, "m");
  if (p) {
    memcpy(p, "TIDESNAQ", 8);
    reseal(p, len); /* even with a good CRC */
    write_bytes(path, p, len);
    TD_CHECK(corrupt(path, "bad magic"));
  }
  const char *text = "just some text, long enough to hold a trailer....";
  write_bytes(path, text, strlen(text));
  TD_CHECK(corrupt(path, "bad magic"));
  write_bytes(path, "TIDE", 4); /* a prefix of the magic: truncated */
  TD_CHECK(corrupt(path, "truncated"));
  write_bytes(path, "", 0);
  TD_CHECK(corrupt(path, "truncated"));
  free(p);
  free_dir(dir);
}

TD_TEST(test_snapshot_unknown_version_detected) {
  char *dir = make_dir();
  if (!dir) return;
  size_t len;
  unsigned char *p = small_file(dir, &len);
  const char *path = path_of(dir, "v");
  uint32_t versions[] = {TD_SNAPSHOT_VERSION + 1, 1000, UINT32_MAX, 0};
  for (size_t i = 0; p && i < 4; i++) {
    put_le32(p + 8, versions[i]);
    reseal(p, len);
    write_bytes(path, p, len);
    TD_CHECK(corrupt(path, versions[i] ? "newer than this build reads"
                                       : "bad format version 0"));
  }
  /* a newer version is named before anything else is judged: its trailer
   * may have another layout */
  if (p) {
    put_le32(p + 8, TD_SNAPSHOT_VERSION + 1);
    write_bytes(path, p, len - 3);
    td_snapshot_t *snap;
    char err[256];
    TD_CHECK_INT(td_snapshot_read(&snap, NULL, path, err, sizeof err),
                 TD_ECORRUPT);
    char want[256];
    snprintf(want, sizeof want,
             "%s: format version %u is newer than this build reads (%u)",
             path, TD_SNAPSHOT_VERSION + 1, TD_SNAPSHOT_VERSION);
    TD_CHECK(strncmp(err, want, strlen(want)) == 0);
  }
  free(p);
  free_dir(dir);
}

TD_TEST(test_snapshot_crc_mismatch_message) {
  char *dir = make_dir();
  if (!dir) return;
  size_t len;
  unsigned char *p = small_file(dir, &len);
  const char *path = path_of(dir, "_metadata");
  if (p) {
    p[28] ^= 0x20; /* 'a' -> 'A' in the first section */
    write_bytes(path, p, len);
    td_snapshot_t *snap;
    char err[256], want[512];
    TD_CHECK_INT(td_snapshot_read(&snap, NULL, path, err, sizeof err),
                 TD_ECORRUPT);
    snprintf(want, sizeof want,
             "%s: CRC mismatch (stored %08x, computed %08x)", path,
             le32(p + len - 4), td_snapshot_crc32c(0, p, len - 4));
    TD_CHECK_STR(err, want);
  }
  free(p);
  free_dir(dir);
}

TD_TEST(test_snapshot_bad_structure_detected) {
  /* Files whose size and CRC are right but whose sections disagree with
   * the trailer: only a wrong writer or a crafted file gives these. */
  char *dir = make_dir();
  if (!dir) return;
  size_t len;
  unsigned char *p = small_file(dir, &len); /* sections at 16, 30, 42 */
  unsigned char *q = malloc(len + 64);
  const char *path = path_of(dir, "s");
  if (p && q) {
    memcpy(q, p, len);
    put_le32(q + len - 16, 2); /* count too small */
    reseal(q, len);
    write_bytes(path, q, len);
    TD_CHECK(corrupt(path, "more sections than"));

    memcpy(q, p, len);
    put_le32(q + len - 16, 4); /* more than 41 bytes can hold */
    reseal(q, len);
    write_bytes(path, q, len);
    TD_CHECK(corrupt(path, "counts 4 sections, more than 41 bytes can hold"));

    memcpy(q, p, len);
    put_le32(q + len - 16, UINT32_MAX);
    reseal(q, len);
    write_bytes(path, q, len);
    TD_CHECK(corrupt(path, "more than 41 bytes can hold"));

    memcpy(q, p, len);
    put_le64(q + 20, 3); /* first section's length runs into the next */
    reseal(q, len);
    write_bytes(path, q, len);
    TD_CHECK(corrupt(path, NULL));

    memcpy(q, p, len);
    put_le64(q + 46, UINT64_MAX); /* last section's length: huge */
    reseal(q, len);
    write_bytes(path, q, len);
    TD_CHECK(corrupt(path, "runs into the trailer"));

    /* 5 stray bytes between the last section and the trailer */
    memcpy(q, p, len - 16);
    memcpy(q + len - 16, "\0\0\0\0\0", 5);
    memcpy(q + len - 11, p + len - 16, 16);
    reseal(q, len + 5);
    write_bytes(path, q, len + 5);
    TD_CHECK(corrupt(path, "header runs into the trailer"));
  }
  free(p);
  free(q);
  /* count too large, yet within what the bytes could hold */
  const sec_t one[] = {{1, "thirty bytes of section data..", 30}};
  TD_CHECK_INT(write_snapshot(NULL, dir, "one", 1, one, 1, NULL), 0);
  p = read_bytes(path_of(dir, "one"), &len);
  if (p) {
    put_le32(p + len - 16, 2);
    reseal(p, len);
    write_bytes(path, p, len);
    TD_CHECK(corrupt(path, "1 sections, the trailer counts 2"));
  }
  free(p);
  free_dir(dir);
}

/* Commit under faults: for each N, the Nth I/O call fails (or is short),
 * with a fresh name or over a committed file of the same name. */
static void commit_faults(int mode, int replace) {
  static unsigned char big[100000]; /* > the writer's buffer: written direct */
  memset(big, 'b', sizeof big);
  const sec_t old[] = {{9, "old", 3}};
  const sec_t new[] = {{1, "new-small", 9}, {2, big, sizeof big},
                       {3, "tail", 4}};
  for (long n = 1; n < 100; n++) {
    char *dir = make_dir();
    if (!dir) return;
    const char *path = path_of(dir, "_metadata");
    const char *tmp = path_of(dir, "_metadata.tmp");
    if (replace)
      TD_CHECK_INT(write_snapshot(NULL, dir, "_metadata", 2, old, 1, NULL),
                   0);
    fault_t f;
    fault_init(&f, mode, n);
    int abort_rc = 0;
    int rc = write_snapshot(&f.io, dir, "_metadata", 2, new, 3, &abort_rc);
    int fired = f.failed_op != NULL;

    if (rc == 0) {
      TD_CHECK(has_sections(path, 2, new, 3));
    } else if (f.renamed) { /* failed after the commit point */
      TD_CHECK(f.failed_op && (!strcmp(f.failed_op, "open dir") ||
                               !strcmp(f.failed_op, "fsync")));
      TD_CHECK(has_sections(path, 2, new, 3));
    } else if (replace) {
      TD_CHECK(has_sections(path, 2, old, 1));
    } else {
      TD_CHECK(!exists(path));
    }
    if (rc < 0) TD_CHECK(fired);
    if (rc == 0 && fired && (mode == F_EIO_ONE || mode == F_EIO_FROM)) {
      /* every failure counts, but the directory's close after its fsync */
      TD_CHECK(f.renamed && !strcmp(f.failed_op, "close dir"));
    }
    if (mode == F_EIO_ONE && rc < 0) {
      /* only call n failed: abort cleaned up unless it was abort's unlink */
      TD_CHECK(abort_rc == 0 || !strcmp(f.failed_op, "unlink"));
    }
    if (mode == F_SHORT)
      TD_CHECK_INT(rc, 0); /* a short write is retried, not an error */
    if (abort_rc == 0) TD_CHECK(!exists(tmp));
    /* nothing else is ever left in the directory */
    TD_CHECK(count_entries(dir) <= (exists(path) ? 1 : 0) + 1);
    int done = f.calls < n; /* call n never came: every case was run */
    if (td_test_failed_) {
      fprintf(stderr, "  mode %d, replace %d, N = %ld: rc %d, op %s\n", mode,
              replace, n, rc, f.failed_op ? f.failed_op : "-");
      done = 1;
    }
    free_dir(dir);
    if (done) {
      TD_CHECK(n > 8); /* the loop did reach the end of a commit */
      break;
    }
  }
}

TD_TEST(test_snapshot_commit_call_order) {
  /* The protocol: write, fsync the file, close, rename, fsync the dir. */
  char *dir = make_dir();
  if (!dir) return;
  static unsigned char big[100000];
  const sec_t s[] = {{1, "a", 1}, {2, big, sizeof big}, {3, "b", 1}};
  fault_t f;
  fault_init(&f, F_EIO_ONE, 0); /* never fails; logs */
  TD_CHECK_INT(write_snapshot(&f.io, dir, "f", 1, s, 3, NULL), 0);
  const char *want[] = {"open",   "write",    "write", "write",
                        "fsync",  "close",    "rename", "open dir",
                        "fsync",  "close dir"};
  TD_CHECK_INT(f.nlog, 10);
  for (int i = 0; i < 10 && i < f.nlog; i++) TD_CHECK_STR(f.log[i], want[i]);
  free_dir(dir);
}

TD_TEST(test_snapshot_commit_fails_atomically) {
  commit_faults(F_EIO_ONE, 0);
  commit_faults(F_EIO_ONE, 1);
  commit_faults(F_EIO_FROM, 0);
  commit_faults(F_EIO_FROM, 1);
}

TD_TEST(test_snapshot_commit_survives_short_writes) {
  commit_faults(F_SHORT, 0);
  commit_faults(F_SHORT, 1);
  commit_faults(F_SHORT_THEN_EIO, 0);
  commit_faults(F_SHORT_THEN_EIO, 1);
}

TD_TEST(test_snapshot_failed_writer_is_sticky) {
  char *dir = make_dir();
  if (!dir) return;
  static unsigned char big[70000];
  fault_t f;
  fault_init(&f, F_EIO_ONE, 2); /* 1: open, 2: the first write */
  td_snapshot_writer_t *w = NULL;
  char err[256];
  TD_CHECK_INT(td_snapshot_writer_open(&w, &f.io, dir, "f", 1, err,
                                       sizeof err),
               0);
  TD_CHECK_INT(td_snapshot_write_section(w, 1, big, sizeof big, err,
                                         sizeof err),
               -EIO);
  TD_CHECK(strstr(err, "f.tmp: write:") != NULL);
  TD_CHECK_INT(td_snapshot_write_section(w, 2, "x", 1, err, sizeof err),
               -EIO);
  TD_CHECK(strstr(err, "an earlier step failed") != NULL);
  TD_CHECK_INT(td_snapshot_writer_commit(w, err, sizeof err), -EIO);
  TD_CHECK(exists(path_of(dir, "f.tmp")));
  TD_CHECK_INT(td_snapshot_writer_abort(w), 0);
  TD_CHECK_INT(count_entries(dir), 0);

  /* a write that makes no progress is TD_EIO, not an endless loop */
  fault_init(&f, F_ZERO_WRITE, 2);
  TD_CHECK_INT(td_snapshot_writer_open(&w, &f.io, dir, "g", 1, NULL, 0), 0);
  TD_CHECK_INT(td_snapshot_write_section(w, 1, "z", 1, NULL, 0), 0);
  /* all buffered so far: the write comes at commit */
  TD_CHECK_INT(td_snapshot_writer_commit(w, err, sizeof err), TD_EIO);
  TD_CHECK_INT(td_snapshot_writer_abort(w), 0);
  TD_CHECK_INT(count_entries(dir), 0);
  free_dir(dir);
}

TD_TEST(test_snapshot_read_faults) {
  char *dir = make_dir();
  if (!dir) return;
  static unsigned char big[100000];
  memset(big, 7, sizeof big);
  const sec_t s[] = {{1, "a", 1}, {2, big, sizeof big}};
  TD_CHECK_INT(write_snapshot(NULL, dir, "f", 1, s, 2, NULL), 0);
  const char *path = path_of(dir, "f");
  int modes[] = {F_EIO_ONE, F_EIO_FROM, F_SHORT_READ};
  for (int m = 0; m < 3; m++) {
    for (long n = 1; n < 50; n++) {
      fault_t f;
      fault_init(&f, modes[m], n);
      td_snapshot_t *snap = NULL;
      char err[256] = "";
      int rc = td_snapshot_read(&snap, &f.io, path, err, sizeof err);
      int close_only = f.failed_op && !strcmp(f.failed_op, "close");
      if (modes[m] == F_EIO_FROM && close_only)
        TD_CHECK(f.nlog == n); /* close was the last call */
      if (modes[m] == F_SHORT_READ || !f.failed_op || close_only) {
        TD_CHECK_INT(rc, 0); /* short reads are retried; close is ignored */
      } else {
        TD_CHECK_INT(rc, -EIO);
        TD_CHECK(snap == NULL && strncmp(err, path, strlen(path)) == 0);
      }
      if (rc == 0) {
        td_bytes_t b;
        TD_CHECK(td_snapshot_count(snap) == 2 &&
                 td_snapshot_section(snap, 1, NULL, &b) == 0 &&
                 b.len == sizeof big && memcmp(b.data, big, b.len) == 0);
        td_snapshot_free(snap);
      }
      if (f.calls < n) break;
    }
  }
  free_dir(dir);
}

TD_TEST(test_snapshot_read_sees_size_changes) {
  /* The size first reported disagrees with what the reads return. */
  char *dir = make_dir();
  if (!dir) return;
  size_t len;
  unsigned char *p = small_file(dir, &len);
  mem_t m;
  mem_init(&m, p, len);
  td_snapshot_t *snap = NULL;
  char err[256];
  TD_CHECK_INT(td_snapshot_read(&snap, &m.io, "f", err, sizeof err), 0);
  td_snapshot_free(snap);
  m.size_delta = -10; /* grew after the size was taken */
  TD_CHECK_INT(td_snapshot_read(&snap, &m.io, "f", err, sizeof err),
               TD_ECORRUPT);
  TD_CHECK_STR(err, "f: file grew while being read (past 63 bytes)");
  m.size_delta = 10; /* shrank */
  TD_CHECK_INT(td_snapshot_read(&snap, &m.io, "f", err, sizeof err),
               TD_ECORRUPT);
  TD_CHECK_STR(err, "f: short read: 73 of 83 bytes (file shrank?)");
  TD_CHECK(snap == NULL);
  free(p);
  free_dir(dir);
}

TD_TEST_MAIN(test_snapshot_crc32c_check_value, test_snapshot_layout,
             test_snapshot_round_trip, test_snapshot_empty,
             test_snapshot_replace, test_snapshot_abort,
             test_snapshot_bad_arguments,
             test_snapshot_every_byte_change_detected,
             test_snapshot_truncation_detected,
             test_snapshot_appended_bytes_detected,
             test_snapshot_wrong_magic_detected,
             test_snapshot_unknown_version_detected,
             test_snapshot_crc_mismatch_message,
             test_snapshot_bad_structure_detected,
             test_snapshot_commit_call_order,
             test_snapshot_commit_fails_atomically,
             test_snapshot_commit_survives_short_writes,
             test_snapshot_failed_writer_is_sticky,
             test_snapshot_read_faults, test_snapshot_read_sees_size_changes)
