/*
 * fuzz_snapshot.c - libFuzzer target for the snapshot file reader
 * (state/snapshot.c, td_snapshot_read), through an in-memory
 * td_snapshot_io_t that serves the input as the file.
 *
 * Input: one flags byte, one byte N, then the file's bytes.
 *   flags & 1   fix the trailer up first (the file's size and a right
 *               CRC32C), so that the checks after the CRC are reached
 *   flags & 2   reads return at most 7 bytes at a time
 *   flags & 4   the size method reports one byte less than the file has
 *   flags & 8   the size method reports one byte more
 *   flags & 16  the Nth read fails with -EIO
 * Property: never a crash or a leak; a file is accepted only if its magic
 * and version are right, its trailer's size is the file's, its CRC32C
 * (computed here, bit by bit, independently of ISA-L) matches, and its
 * sections, walked here, fill it exactly; then every section the reader
 * hands out is the bytes at its place in the file. A file whose size the
 * I/O misreports, or whose read fails, is never accepted.
 */
#include <errno.h>
#include <string.h>

#include "error.h"
#include "fuzz.h"
#include "snapshot.h"

typedef struct {
  const uint8_t *data;
  size_t size, pos;
  unsigned flags;
  unsigned reads, fail_at;
  int open;
} memfile_t;

static int m_open(void *ud, const char *path, int how) {
  memfile_t *m = ud;
  if (how != TD_SNAPSHOT_OPEN_READ || m->open) return -EACCES;
  m->open = 1;
  m->pos = 0;
  return 3;
}

static ssize_t m_read(void *ud, int fd, void *buf, size_t len) {
  memfile_t *m = ud;
  FUZZ_CHECK(fd == 3 && m->open, "read of fd %d", fd);
  if ((m->flags & 16) && ++m->reads == m->fail_at) return -EIO;
  size_t n = m->size - m->pos;
  if (n > len) n = len;
  if ((m->flags & 2) && n > 7) n = 7;
  memcpy(buf, m->data + m->pos, n);
  m->pos += n;
  return (ssize_t)n;
}

static ssize_t m_write(void *ud, int fd, const void *buf, size_t len) {
  FUZZ_CHECK(0, "the reader wrote");
  return -EBADF;
}

static int m_fsync(void *ud, int fd) { return 0; }

static int m_close(void *ud, int fd) {
  memfile_t *m = ud;
  FUZZ_CHECK(fd == 3 && m->open, "close of fd %d", fd);
  m->open = 0;
  return 0;
}

/* The size the I/O reports: flags 4 and 8 may cancel out. */
static uint64_t reported_size(const memfile_t *m) {
  uint64_t s = m->size;
  if ((m->flags & 4) && s > 0) s--;
  if (m->flags & 8) s++;
  return s;
}

static int m_size(void *ud, int fd, uint64_t *out) {
  *out = reported_size(ud);
  return 0;
}

static int m_rename(void *ud, const char *a, const char *b) { return -EROFS; }
static int m_unlink(void *ud, const char *p) { return -EROFS; }

/* CRC32C, bit by bit (Castagnoli, reflected polynomial 0x82F63B78). */
static uint32_t crc32c_ref(const uint8_t *p, size_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0x82F63B78u & -(crc & 1));
  }
  return ~crc;
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) {
  return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put_le(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  memfile_t m = {0};
  m.flags = data[0];
  m.fail_at = 1u + data[1] % 4u;
  m.size = size - 2;
  uint8_t *file = malloc(m.size ? m.size : 1);
  FUZZ_CHECK(file != NULL, "out of memory");
  memcpy(file, data + 2, m.size);
  if ((m.flags & 1) && m.size >= 32) {
    put_le(file + m.size - 12, m.size, 8);
    put_le(file + m.size - 4, crc32c_ref(file, m.size - 4), 4);
  }
  m.data = file;
  td_snapshot_io_t io = {m_open, m_read, m_write, m_fsync, m_close,
                         m_size, m_rename, m_unlink, &m};
  td_snapshot_t *s = (td_snapshot_t *)&m; /* must be reset */
  char err[512] = "";
  int rc = td_snapshot_read(&s, &io, "fuzz.state", err, sizeof err);
  FUZZ_CHECK(!m.open, "the file was left open");
  if (rc != 0) {
    FUZZ_CHECK(s == NULL, "a failed read handed out a snapshot");
    FUZZ_CHECK(rc < 0 && err[0] != '\0', "rc %d without a message", rc);
    FUZZ_CHECK(strncmp(err, "fuzz.state: ", 12) == 0, "the message does "
               "not name the file: %s", err);
    free(file);
    return 0;
  }
  /* accepted: check everything independently */
  size_t n = m.size;
  FUZZ_CHECK(reported_size(&m) == n, "accepted a file whose size the I/O "
             "misreported");
  FUZZ_CHECK(!(m.flags & 16) || m.reads < m.fail_at, "accepted a file "
             "whose read failed");
  FUZZ_CHECK(n >= 32 && memcmp(file, "TIDESNAP", 8) == 0, "bad magic");
  uint32_t version = le32(file + 8);
  FUZZ_CHECK(version >= 1 && version <= TD_SNAPSHOT_VERSION, "version %u",
             version);
  FUZZ_CHECK(td_snapshot_version(s) == version, "version");
  FUZZ_CHECK(td_snapshot_kind(s) == le32(file + 12), "kind");
  FUZZ_CHECK(td_snapshot_size(s) == n, "size");
  FUZZ_CHECK(le64(file + n - 12) == n, "trailer size");
  FUZZ_CHECK(le32(file + n - 4) == crc32c_ref(file, n - 4),
             "accepted a file whose CRC does not match");
  size_t off = 16, end = n - 16, i = 0;
  while (off < end) {
    FUZZ_CHECK(end - off >= 12, "a section header runs into the trailer");
    uint64_t len = le64(file + off + 4);
    FUZZ_CHECK(len <= end - off - 12, "a section runs into the trailer");
    uint32_t tag = 0;
    td_bytes_t b = {0};
    FUZZ_CHECK(td_snapshot_section(s, i, &tag, &b) == 0, "section %zu", i);
    FUZZ_CHECK(tag == le32(file + off), "section %zu: tag", i);
    FUZZ_CHECK(b.len == len && (len == 0 || memcmp(b.data, file + off + 12,
                                                   len) == 0),
               "section %zu: bytes", i);
    off += 12 + (size_t)len;
    i++;
  }
  FUZZ_CHECK(td_snapshot_count(s) == i && le32(file + n - 16) == i,
             "section count: %zu walked, reader %zu, trailer %u", i,
             td_snapshot_count(s), le32(file + n - 16));
  FUZZ_CHECK(td_snapshot_section(s, i, NULL, NULL) == TD_EINVAL,
             "section past the end");
  td_snapshot_free(s);
  free(file);
  return 0;
}
