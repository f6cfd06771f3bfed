/*
 * snapshot.c - the durable file format for checkpoint pieces (snapshot.h
 * has the byte layout and the contract).
 *
 * Writer. The header, section headers and small sections are gathered in
 * a 64 KiB buffer inside the writer; a section that does not fit is
 * written straight from the caller's memory after the buffer is flushed.
 * The CRC and the byte count run over everything as it is queued, so
 * commit only has to append the trailer. Any failed step is sticky
 * (w->rc); after one, only abort is useful.
 *
 * Reader. The file is read whole (its size from the method table's size,
 * then a probe read that must see end of file) and checked in an order
 * that gives the most useful message: magic, version (before anything
 * whose layout a newer version could change), size < minimum, trailer
 * size, CRC, and last the section walk, which cannot fail on a file with
 * a good CRC unless a writer was wrong or the file was crafted.
 *
 * Every file operation goes through the td_snapshot_io_t table.
 */
#include "snapshot.h"

#include "alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <isa-l/crc.h>

#include "bytes.h"
#include "error.h"

#define WBUF_SIZE 65536u
#define MIN_SIZE (TD_SNAPSHOT_HEADER_SIZE + TD_SNAPSHOT_TRAILER_SIZE)
#define MAGIC_LEN 8u

/* ---- helpers ---- */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

uint32_t td_snapshot_crc32c(uint32_t crc, const void *buf, size_t len) {
  /* ISA-L's crc32_iscsi works on the register without the final xor and
   * takes an int length: invert around it, feed it at most 1 GiB a call.
   * Its buffer is not const-qualified, but it only reads. */
  const unsigned char *p = buf;
  uint32_t c = ~crc;
  while (len > 0) {
    size_t n = len < (1u << 30) ? len : (1u << 30);
    c = crc32_iscsi((unsigned char *)p, (int)n, c);
    p += n;
    len -= n;
  }
  return ~c;
}

/* a copy of s from td_malloc, or NULL */
static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = td_malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

/* "dir/name" (one '/' even when dir ends with one) plus `suffix`, or NULL. */
static char *join_path(const char *dir, const char *name, const char *suffix) {
  size_t dl = strlen(dir), nl = strlen(name), sl = strlen(suffix);
  int slash = dl > 0 && dir[dl - 1] != '/';
  char *p = td_malloc(dl + (size_t)slash + nl + sl + 1);
  if (!p) return NULL;
  memcpy(p, dir, dl);
  if (slash) p[dl] = '/';
  memcpy(p + dl + slash, name, nl);
  memcpy(p + dl + slash + nl, suffix, sl + 1);
  return p;
}

/* ---- POSIX method table ---- */

static int posix_open(void *ud, const char *path, int how) {
  int flags;
  switch (how) {
  case TD_SNAPSHOT_OPEN_READ: flags = O_RDONLY | O_CLOEXEC; break;
  case TD_SNAPSHOT_OPEN_CREATE:
    flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    break;
  case TD_SNAPSHOT_OPEN_DIR: flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC; break;
  default: return TD_EINVAL;
  }
  int fd;
  do fd = open(path, flags, 0644);
  while (fd < 0 && errno == EINTR);
  return fd < 0 ? -errno : fd;
}

static ssize_t posix_read(void *ud, int fd, void *buf, size_t len) {
  ssize_t n;
  do n = read(fd, buf, len);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

static ssize_t posix_write(void *ud, int fd, const void *buf, size_t len) {
  ssize_t n;
  do n = write(fd, buf, len);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

static int posix_fsync(void *ud, int fd) {
  int rc;
  do rc = fsync(fd);
  while (rc < 0 && errno == EINTR);
  return rc < 0 ? -errno : 0;
}

static int posix_close(void *ud, int fd) {
  /* Linux releases fd even when close fails with EINTR: never retry. */
  if (close(fd) == 0 || errno == EINTR) return 0;
  return -errno;
}

static int posix_size(void *ud, int fd, uint64_t *out) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  *out = st.st_size < 0 ? 0 : (uint64_t)st.st_size;
  return 0;
}

static int posix_rename(void *ud, const char *from, const char *to) {
  return rename(from, to) < 0 ? -errno : 0;
}

static int posix_unlink(void *ud, const char *path) {
  return unlink(path) < 0 ? -errno : 0;
}

static const td_snapshot_io_t posix_io = {
    posix_open,  posix_read,   posix_write,  posix_fsync, posix_close,
    posix_size,  posix_rename, posix_unlink, NULL,
};

const td_snapshot_io_t *td_snapshot_io_posix(void) { return &posix_io; }

/* write all len bytes, looping over short writes: 0, -errno or TD_EIO. */
static int write_all(const td_snapshot_io_t *io, int fd, const void *buf,
                     size_t len) {
  const unsigned char *p = buf;
  while (len > 0) {
    ssize_t n = io->write(io->ud, fd, p, len);
    if (n < 0) return (int)n;
    if (n == 0 || (size_t)n > len) return TD_EIO; /* no progress / nonsense */
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* ---- writer ---- */

struct td_snapshot_writer {
  const td_snapshot_io_t *io;
  int fd;         /* the .tmp, -1 once closed */
  int rc;         /* first failure (sticky), 0 while healthy */
  int created;    /* the .tmp was created */
  int renamed;    /* the .tmp has become DIR/NAME */
  uint32_t crc;   /* CRC32C of every byte queued so far */
  uint64_t size;  /* bytes queued so far (written + buffered) */
  uint32_t count; /* sections written */
  size_t buflen;
  char *dir, *path, *tmp; /* DIR, DIR/NAME, DIR/NAME.tmp */
  unsigned char buf[WBUF_SIZE];
};

static int fail(td_snapshot_writer_t *w, int rc, const char *what, char *err,
                size_t errlen) {
  w->rc = rc;
  seterr(err, errlen, "%s: %s: %s", w->tmp, what, td_strerror(rc));
  return rc;
}

static int flush(td_snapshot_writer_t *w, char *err, size_t errlen) {
  if (w->buflen == 0) return 0;
  int rc = write_all(w->io, w->fd, w->buf, w->buflen);
  if (rc < 0) return fail(w, rc, "write", err, errlen);
  w->buflen = 0;
  return 0;
}

/* Queue len bytes: into the buffer, or straight to the file when they do
 * not fit in it. */
static int emit(td_snapshot_writer_t *w, const void *data, size_t len,
                char *err, size_t errlen) {
  if (len == 0) return 0;
  w->crc = td_snapshot_crc32c(w->crc, data, len);
  w->size += len;
  if (len <= WBUF_SIZE - w->buflen) {
    memcpy(w->buf + w->buflen, data, len);
    w->buflen += len;
    return 0;
  }
  int rc = flush(w, err, errlen);
  if (rc < 0) return rc;
  if (len < WBUF_SIZE) {
    memcpy(w->buf, data, len);
    w->buflen = len;
    return 0;
  }
  rc = write_all(w->io, w->fd, data, len);
  return rc < 0 ? fail(w, rc, "write", err, errlen) : 0;
}

static int bad_name(const char *name) {
  return !name[0] || strchr(name, '/') || !strcmp(name, ".") ||
         !strcmp(name, "..");
}

int td_snapshot_writer_open(td_snapshot_writer_t **out,
                            const td_snapshot_io_t *io, const char *dir,
                            const char *name, uint32_t kind, char *err,
                            size_t errlen) {
  if (!out) return TD_EINVAL;
  *out = NULL;
  if (!dir || !name || bad_name(name)) {
    seterr(err, errlen, "snapshot: bad file name \"%s\"",
           name ? name : "(null)");
    return TD_EINVAL;
  }
  td_snapshot_writer_t *w = td_malloc(sizeof *w);
  if (w) memset(w, 0, sizeof *w);
  if (!w) goto nomem;
  w->io = io ? io : &posix_io;
  w->fd = -1;
  w->dir = dup_str(dir[0] ? dir : "."); /* "" : name is relative to "." */
  w->path = join_path(dir, name, "");
  w->tmp = join_path(dir, name, ".tmp");
  if (!w->dir || !w->path || !w->tmp) goto nomem;

  unsigned char hdr[TD_SNAPSHOT_HEADER_SIZE];
  memcpy(hdr, TD_SNAPSHOT_MAGIC, MAGIC_LEN);
  td_le_put32(hdr + 8, TD_SNAPSHOT_VERSION);
  td_le_put32(hdr + 12, kind);
  emit(w, hdr, sizeof hdr, NULL, 0); /* fits in the empty buffer */

  int fd = w->io->open(w->io->ud, w->tmp, TD_SNAPSHOT_OPEN_CREATE);
  if (fd < 0) {
    seterr(err, errlen, "%s: open: %s", w->tmp, td_strerror(fd));
    td_snapshot_writer_abort(w); /* frees; nothing was created */
    return fd;
  }
  w->fd = fd;
  w->created = 1;
  *out = w;
  return 0;

nomem:
  seterr(err, errlen, "%s/%s: out of memory", dir, name);
  if (w) {
    td_free(w->dir);
    td_free(w->path);
    td_free(w->tmp);
    td_free(w);
  }
  return TD_ENOMEM;
}

static int failed_before(td_snapshot_writer_t *w, char *err, size_t errlen) {
  seterr(err, errlen, "%s: an earlier step failed (%s)", w->tmp,
         td_strerror(w->rc));
  return w->rc;
}

int td_snapshot_write_section(td_snapshot_writer_t *w, uint32_t tag,
                              const void *data, size_t len, char *err,
                              size_t errlen) {
  if (!w || (!data && len > 0)) {
    seterr(err, errlen, "snapshot: section without data");
    return TD_EINVAL;
  }
  if (w->rc) return failed_before(w, err, errlen);
  if (w->fd < 0 || w->count == UINT32_MAX) {
    seterr(err, errlen, "%s: no more sections can be written", w->tmp);
    return TD_EINVAL;
  }
  unsigned char sh[TD_SNAPSHOT_SECTION_HEADER_SIZE];
  td_le_put32(sh, tag);
  td_le_put64(sh + 4, (uint64_t)len);
  int rc = emit(w, sh, sizeof sh, err, errlen);
  if (rc == 0) rc = emit(w, data, len, err, errlen);
  if (rc == 0) w->count++;
  return rc;
}

int td_snapshot_writer_commit(td_snapshot_writer_t *w, char *err,
                              size_t errlen) {
  if (!w) return TD_EINVAL;
  if (w->rc) return failed_before(w, err, errlen);
  if (w->fd < 0) {
    seterr(err, errlen, "%s: already committed", w->path);
    return TD_EINVAL;
  }
  const td_snapshot_io_t *io = w->io;
  unsigned char tr[TD_SNAPSHOT_TRAILER_SIZE];
  td_le_put32(tr, w->count);
  td_le_put64(tr + 4, w->size + TD_SNAPSHOT_TRAILER_SIZE);
  uint32_t crc = td_snapshot_crc32c(w->crc, tr, 12);
  td_le_put32(tr + 12, crc);
  int rc = emit(w, tr, sizeof tr, err, errlen);
  if (rc == 0) rc = flush(w, err, errlen);
  if (rc < 0) return rc;

  if ((rc = io->fsync(io->ud, w->fd)) < 0)
    return fail(w, rc, "fsync", err, errlen);
  rc = io->close(io->ud, w->fd);
  w->fd = -1;
  if (rc < 0) return fail(w, rc, "close", err, errlen);
  if ((rc = io->rename(io->ud, w->tmp, w->path)) < 0)
    return fail(w, rc, "rename", err, errlen);
  w->renamed = 1; /* the commit point */

  int dfd = io->open(io->ud, w->dir, TD_SNAPSHOT_OPEN_DIR);
  if (dfd < 0) {
    w->rc = dfd;
    seterr(err, errlen, "%s: open directory to fsync it: %s", w->dir,
           td_strerror(dfd));
    return dfd;
  }
  rc = io->fsync(io->ud, dfd);
  /* Some file systems cannot fsync a directory and say EINVAL; their
   * renames are as durable as they get (PostgreSQL's fsync_fname too). */
  if (rc == -EINVAL) rc = 0;
  (void)io->close(io->ud, dfd); /* after a good fsync, nothing to lose */
  if (rc < 0) {
    w->rc = rc;
    seterr(err, errlen, "%s: fsync directory after renaming %s: %s", w->dir,
           w->path, td_strerror(rc));
    return rc;
  }
  td_free(w->dir);
  td_free(w->path);
  td_free(w->tmp);
  td_free(w);
  return 0;
}

int td_snapshot_writer_abort(td_snapshot_writer_t *w) {
  if (!w) return 0;
  int rc = 0;
  if (w->fd >= 0) (void)w->io->close(w->io->ud, w->fd);
  if (w->created && !w->renamed) {
    rc = w->io->unlink(w->io->ud, w->tmp);
    if (rc == -ENOENT) rc = 0;
  }
  td_free(w->dir);
  td_free(w->path);
  td_free(w->tmp);
  td_free(w);
  return rc;
}

/* ---- reader ---- */

typedef struct section {
  uint32_t tag;
  size_t off, len;
} section_t;

struct td_snapshot {
  unsigned char *data;
  size_t size;
  uint32_t kind, version;
  size_t count;
  section_t *secs;
};

/* Read the whole file into *buf (malloc'd) and *size. */
static int read_file(const td_snapshot_io_t *io, const char *path,
                     unsigned char **buf, size_t *size, char *err,
                     size_t errlen) {
  *buf = NULL;
  *size = 0;
  int fd = io->open(io->ud, path, TD_SNAPSHOT_OPEN_READ);
  if (fd < 0) {
    seterr(err, errlen, "%s: open: %s", path, td_strerror(fd));
    return fd;
  }
  uint64_t want = 0;
  unsigned char *p = NULL;
  size_t got = 0;
  int rc = io->size(io->ud, fd, &want);
  if (rc < 0) {
    seterr(err, errlen, "%s: size: %s", path, td_strerror(rc));
    goto done;
  }
  if (want > SIZE_MAX - 1) {
    rc = TD_ENOMEM;
    seterr(err, errlen, "%s: too large to read (%llu bytes)", path,
           (unsigned long long)want);
    goto done;
  }
  p = malloc(want ? (size_t)want : 1);
  if (!p) {
    rc = TD_ENOMEM;
    seterr(err, errlen, "%s: out of memory for %llu bytes", path,
           (unsigned long long)want);
    goto done;
  }
  while (got < want) {
    ssize_t n = io->read(io->ud, fd, p + got, (size_t)want - got);
    if (n < 0) {
      rc = (int)n;
      seterr(err, errlen, "%s: read: %s", path, td_strerror(rc));
      goto done;
    }
    if (n == 0 || (size_t)n > (size_t)want - got) break;
    got += (size_t)n;
  }
  if (got < want) {
    rc = TD_ECORRUPT;
    seterr(err, errlen, "%s: short read: %zu of %llu bytes (file shrank?)",
           path, got, (unsigned long long)want);
    goto done;
  }
  unsigned char probe;
  ssize_t n = io->read(io->ud, fd, &probe, 1);
  if (n < 0) {
    rc = (int)n;
    seterr(err, errlen, "%s: read: %s", path, td_strerror(rc));
  } else if (n > 0) {
    rc = TD_ECORRUPT;
    seterr(err, errlen, "%s: file grew while being read (past %llu bytes)",
           path, (unsigned long long)want);
  }
done:
  (void)io->close(io->ud, fd); /* read only: a failed close loses nothing */
  if (rc < 0) {
    free(p);
    return rc;
  }
  *buf = p;
  *size = got;
  return 0;
}

#define CORRUPT(...)                                                      \
  do {                                                                    \
    seterr(err, errlen, __VA_ARGS__);                                     \
    return TD_ECORRUPT;                                                   \
  } while (0)

/* Check the bytes of a whole file and index its sections into s. */
static int parse(td_snapshot_t *s, const char *path, char *err,
                 size_t errlen) {
  const unsigned char *p = s->data;
  size_t size = s->size;
  unsigned long long usize = size;

  if (size < MAGIC_LEN || memcmp(p, TD_SNAPSHOT_MAGIC, MAGIC_LEN) != 0) {
    if (memcmp(p, TD_SNAPSHOT_MAGIC, size < MAGIC_LEN ? size : MAGIC_LEN))
      CORRUPT("%s: bad magic (not a Tide snapshot file)", path);
    CORRUPT("%s: truncated: %llu bytes", path, usize);
  }
  if (size < TD_SNAPSHOT_HEADER_SIZE)
    CORRUPT("%s: truncated: %llu bytes, shorter than the header", path,
            usize);
  s->version = td_le_get32(p + 8);
  s->kind = td_le_get32(p + 12);
  if (s->version == 0) CORRUPT("%s: bad format version 0", path);
  if (s->version > TD_SNAPSHOT_VERSION)
    CORRUPT("%s: format version %u is newer than this build reads (%u): "
            "written by a newer Tide, or corrupt",
            path, s->version, TD_SNAPSHOT_VERSION);
  if (size < MIN_SIZE)
    CORRUPT("%s: truncated: %llu bytes, an empty snapshot has %u", path,
            usize, MIN_SIZE);

  const unsigned char *tr = p + size - TD_SNAPSHOT_TRAILER_SIZE;
  uint32_t count = td_le_get32(tr);
  uint64_t tsize = td_le_get64(tr + 4);
  uint32_t stored = td_le_get32(tr + 12);
  if (tsize != (uint64_t)size)
    CORRUPT("%s: size mismatch: the trailer says %llu bytes, the file has "
            "%llu (truncated or appended to)",
            path, (unsigned long long)tsize, usize);
  uint32_t computed = td_snapshot_crc32c(0, p, size - 4);
  if (stored != computed)
    CORRUPT("%s: CRC mismatch (stored %08x, computed %08x)", path, stored,
            computed);

  /* Sections fill [HEADER_SIZE, end) exactly. Each takes at least 12
   * bytes, which bounds count before anything is allocated for it. */
  size_t off = TD_SNAPSHOT_HEADER_SIZE, end = size - TD_SNAPSHOT_TRAILER_SIZE;
  if (count > (end - off) / TD_SNAPSHOT_SECTION_HEADER_SIZE)
    CORRUPT("%s: the trailer counts %u sections, more than %llu bytes can "
            "hold",
            path, count, (unsigned long long)(end - off));
  s->secs = malloc((count ? count : 1) * sizeof *s->secs);
  if (!s->secs) {
    seterr(err, errlen, "%s: out of memory", path);
    return TD_ENOMEM;
  }
  size_t n = 0;
  while (off < end) {
    if (end - off < TD_SNAPSHOT_SECTION_HEADER_SIZE)
      CORRUPT("%s: section %zu at offset %zu: header runs into the trailer",
              path, n, off);
    uint32_t tag = td_le_get32(p + off);
    uint64_t len = td_le_get64(p + off + 4);
    size_t data = off + TD_SNAPSHOT_SECTION_HEADER_SIZE;
    if (len > (uint64_t)(end - data))
      CORRUPT("%s: section %zu (tag %u) at offset %zu: length %llu runs "
              "into the trailer",
              path, n, tag, off, (unsigned long long)len);
    if (n == count)
      CORRUPT("%s: more sections than the %u the trailer counts", path,
              count);
    s->secs[n].tag = tag;
    s->secs[n].off = data;
    s->secs[n].len = (size_t)len;
    n++;
    off = data + (size_t)len;
  }
  if (n != count)
    CORRUPT("%s: %zu sections, the trailer counts %u", path, n, count);
  s->count = n;
  return 0;
}

int td_snapshot_read(td_snapshot_t **out, const td_snapshot_io_t *io,
                     const char *path, char *err, size_t errlen) {
  if (!out) return TD_EINVAL;
  *out = NULL;
  if (!path) return TD_EINVAL;
  if (!io) io = &posix_io;
  td_snapshot_t *s = calloc(1, sizeof *s);
  if (!s) {
    seterr(err, errlen, "%s: out of memory", path);
    return TD_ENOMEM;
  }
  int rc = read_file(io, path, &s->data, &s->size, err, errlen);
  if (rc == 0) rc = parse(s, path, err, errlen);
  if (rc < 0) {
    td_snapshot_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void td_snapshot_free(td_snapshot_t *s) {
  if (!s) return;
  free(s->secs);
  free(s->data);
  free(s);
}

uint32_t td_snapshot_kind(const td_snapshot_t *s) { return s->kind; }

uint32_t td_snapshot_version(const td_snapshot_t *s) { return s->version; }

uint64_t td_snapshot_size(const td_snapshot_t *s) { return s->size; }

size_t td_snapshot_count(const td_snapshot_t *s) { return s->count; }

int td_snapshot_section(const td_snapshot_t *s, size_t i, uint32_t *tag,
                        td_bytes_t *out) {
  if (i >= s->count) return TD_EINVAL;
  if (tag) *tag = s->secs[i].tag;
  if (out) {
    out->data = s->data + s->secs[i].off;
    out->len = s->secs[i].len;
  }
  return 0;
}

int td_snapshot_find(const td_snapshot_t *s, uint32_t tag, size_t *pos,
                     td_bytes_t *out) {
  for (size_t i = *pos; i < s->count; i++) {
    if (s->secs[i].tag != tag) continue;
    *pos = i;
    return td_snapshot_section(s, i, NULL, out) == 0;
  }
  return 0;
}
