/*
 * snapshot.h - the durable file format for checkpoint pieces.
 *
 * Every file the runtime writes for state (a subtask's `<uid>-<n>.state`, a
 * checkpoint's `_metadata`, ...) is a snapshot file: a header, any number
 * of tagged, length-prefixed sections, and a trailer that ends with a
 * CRC32C. A writer builds DIR/NAME.tmp, fsyncs it, renames it to DIR/NAME
 * and fsyncs DIR, so DIR/NAME is only ever absent, the previous complete
 * file, or the new complete file. A reader checks everything before it
 * hands out a byte: a corrupt file is detected, never loaded.
 *
 * Byte layout (format version 1). Every integer is little-endian and
 * unsigned; offsets are from the start of the file.
 *
 *   header, 16 bytes
 *     0   8  magic, the ASCII bytes "TIDESNAP"
 *     8   4  format version (u32), TD_SNAPSHOT_VERSION
 *    12   4  kind (u32), chosen by the writer (TD_SNAPSHOT_KIND_*)
 *   sections, each 12 + len bytes, back to back, in the order written
 *     +0  4  tag (u32), chosen by the writer; tags may repeat
 *     +4  8  len (u64), the number of data bytes that follow
 *    +12 len data
 *   trailer, 16 bytes, at size - 16
 *     +0  4  section count (u32)
 *     +4  8  total file size in bytes (u64), trailer included
 *    +12  4  CRC32C (Castagnoli, as in iSCSI and ext4) of bytes
 *            [0, size - 4): everything before the CRC itself
 *
 * So an empty snapshot is 32 bytes, and a file is valid only when: its
 * magic is right; its version is one this build reads (a larger one is
 * reported as "newer than this build reads"); the trailer's size equals
 * the file's; the CRC matches; and the sections exactly fill the bytes
 * between header and trailer, as many as the trailer counts. CRC32C
 * detects every change confined to 4 consecutive bytes, so in particular
 * every single-byte change.
 *
 * I/O. All file access goes through a td_snapshot_io_t method table (pass
 * NULL for the POSIX one). Tests wrap td_snapshot_io_posix() to fail the
 * Nth call (SQLite's os.c and fault-simulation tests); later backends
 * (object stores) can implement it too.
 *
 * Errors. Functions return 0 or a negative code: -errno from the file
 * system (through the method table), TD_ECORRUPT for a file that is not a
 * valid snapshot (short read, truncation, bad magic, unknown version, size
 * or CRC mismatch, bad section structure), TD_EIO for a write that made no
 * progress, TD_EINVAL for bad arguments, TD_ENOMEM. Those that take
 * (err, errlen) write a one-line message there, naming the file and what is
 * wrong, e.g. "chk-3/_metadata: CRC mismatch (stored 1a2b3c4d, computed
 * 9e8f7a6b)"; err may be NULL (errlen is then ignored) and a message is
 * cut to errlen - 1 bytes. The library never prints.
 *
 * Threads. Writers and snapshots are used by one thread at a time; distinct
 * ones may be used concurrently (the POSIX method table holds no state).
 */
#ifndef TD_SNAPSHOT_H
#define TD_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h" /* td_bytes_t */

#define TD_SNAPSHOT_MAGIC "TIDESNAP" /* 8 bytes, no terminator on disk */
#define TD_SNAPSHOT_VERSION 1u       /* the format version this build writes */
#define TD_SNAPSHOT_HEADER_SIZE 16u
#define TD_SNAPSHOT_SECTION_HEADER_SIZE 12u
#define TD_SNAPSHOT_TRAILER_SIZE 16u

/* Kinds the runtime uses (any u32 is accepted). */
#define TD_SNAPSHOT_KIND_STATE 1u    /* a subtask's operator / keyed state */
#define TD_SNAPSHOT_KIND_METADATA 2u /* a checkpoint's _metadata */

/* ---- I/O method table ---- */

/* How td_snapshot_io_t.open opens a path. */
enum {
  TD_SNAPSHOT_OPEN_READ = 1,   /* an existing file, read only */
  TD_SNAPSHOT_OPEN_CREATE = 2, /* write only; created (mode 0644) or truncated */
  TD_SNAPSHOT_OPEN_DIR = 3     /* a directory, only to fsync and close it */
};

/*
 * The file operations a snapshot needs. Every member is required. Each
 * returns a negative errno on failure; `ud` is passed back unchanged.
 *   open:   a descriptor >= 0 for `path` opened as `how`
 *           (TD_SNAPSHOT_OPEN_*), or -errno.
 *   read:   up to len bytes into buf: the count (0 at end of file), or
 *           -errno. May return fewer bytes than asked.
 *   write:  up to len (> 0) bytes from buf: the count written, or -errno.
 *           May write fewer bytes than asked; 0 counts as a failure.
 *   fsync:  flush fd (file or directory) to stable storage: 0 or -errno.
 *   close:  0 or -errno; fd is released either way.
 *   size:   *out = the size in bytes of the open file fd: 0 or -errno.
 *   rename: atomically replace `to` with `from`: 0 or -errno.
 *   unlink: remove `path`: 0 or -errno (-ENOENT if it does not exist).
 * The POSIX implementation retries EINTR.
 */
typedef struct td_snapshot_io {
  int (*open)(void *ud, const char *path, int how);
  ssize_t (*read)(void *ud, int fd, void *buf, size_t len);
  ssize_t (*write)(void *ud, int fd, const void *buf, size_t len);
  int (*fsync)(void *ud, int fd);
  int (*close)(void *ud, int fd);
  int (*size)(void *ud, int fd, uint64_t *out);
  int (*rename)(void *ud, const char *from, const char *to);
  int (*unlink)(void *ud, const char *path);
  void *ud;
} td_snapshot_io_t;

/* td_snapshot_io_posix - the default method table (open(2), read(2), ...).
 * Returns a static table; never NULL. A fault-injecting table for tests
 * forwards to it. */
const td_snapshot_io_t *td_snapshot_io_posix(void);

/* td_snapshot_crc32c - CRC32C (Castagnoli; check value: CRC32C of
 * "123456789" is 0xE3069283) of len bytes at buf, continuing from `crc`:
 * pass 0 to start, or the result for the preceding bytes to go on (zlib's
 * crc32() convention), so crc(crc(0, a), b) == crc(0, a || b). Uses
 * ISA-L's hardware-accelerated implementation. */
uint32_t td_snapshot_crc32c(uint32_t crc, const void *buf, size_t len);

/* ---- writer ---- */

typedef struct td_snapshot_writer td_snapshot_writer_t;

/*
 * td_snapshot_writer_open - start writing the snapshot DIR/NAME: create (or
 * truncate) DIR/NAME.tmp and queue the header.
 * out:  receives the writer, which must end in td_snapshot_writer_commit()
 *       (success) or td_snapshot_writer_abort().
 * io:   the method table, or NULL for td_snapshot_io_posix(); the table
 *       must outlive the writer.
 * dir:  an existing directory. name: a file name (no '/', not "." or "..",
 *       not empty). One writer per DIR/NAME at a time.
 * kind: stored in the header (TD_SNAPSHOT_KIND_* or the caller's own).
 * Returns 0; TD_EINVAL (bad name, NULL argument; *out is NULL);
 * TD_ENOMEM; -errno from open (e.g. -ENOENT when dir does not exist).
 * On error nothing is left on disk (the .tmp is created last).
 */
int td_snapshot_writer_open(td_snapshot_writer_t **out,
                            const td_snapshot_io_t *io, const char *dir,
                            const char *name, uint32_t kind, char *err,
                            size_t errlen);

/*
 * td_snapshot_write_section - append one section: `tag`, then len bytes
 * from data (data may be NULL when len is 0). The writer buffers up to
 * 64 KiB; larger sections go to the file directly, not copied.
 * Returns 0; TD_EINVAL (data NULL with len > 0, or the 2^32-1 sections the
 * count field holds are used up); -errno or TD_EIO from a write. After a
 * write fails the writer is failed: every later call returns the same
 * code, and only td_snapshot_writer_abort() remains to call.
 */
int td_snapshot_write_section(td_snapshot_writer_t *w, uint32_t tag,
                              const void *data, size_t len, char *err,
                              size_t errlen);

/*
 * td_snapshot_writer_commit - finish the file and publish it: write the
 * trailer, fsync the .tmp, close it, rename it to DIR/NAME (replacing a
 * previous DIR/NAME), then open, fsync and close DIR.
 * Returns 0 when DIR/NAME is complete and durable; the writer is then
 * freed. On failure the writer stays allocated and must be passed to
 * td_snapshot_writer_abort(); the code is -errno / TD_EIO from the failing
 * step (or the writer's earlier failure).
 * The rename is the commit point. A failure before it leaves DIR/NAME
 * untouched: absent, or the previous file intact. A failure after it (the
 * directory fsync) leaves DIR/NAME holding the new, complete file, whose
 * rename may not survive a crash; the caller must not count the snapshot
 * as durable. DIR/NAME is never a partial file. The directory's close is
 * the one step whose failure is ignored (its fsync has succeeded).
 */
int td_snapshot_writer_commit(td_snapshot_writer_t *w, char *err,
                              size_t errlen);

/*
 * td_snapshot_writer_abort - give up: close the .tmp if still open, remove
 * it unless commit already renamed it, and free the writer. Never touches
 * DIR/NAME. w may be NULL (no-op, returns 0).
 * Returns 0, or -errno when the .tmp could not be removed (it is left
 * behind; the writer is freed all the same). A .tmp that is already gone
 * is not an error.
 */
int td_snapshot_writer_abort(td_snapshot_writer_t *w);

/* ---- reader ---- */

typedef struct td_snapshot td_snapshot_t;

/*
 * td_snapshot_read - read the whole file at `path` into memory and check it
 * (magic, version, trailer size, CRC, section structure, in that order).
 * out:  receives the snapshot (NULL on error); free it with
 *       td_snapshot_free(). io: the method table or NULL (POSIX).
 * Returns 0; TD_ECORRUPT (not a valid snapshot, with err naming the file
 * and the fault: "bad magic", "format version 2 is newer than this build
 * reads (1)", "truncated", "size mismatch", "CRC mismatch (stored ...,
 * computed ...)", a short read, ...); -errno from open/size/read (a
 * failed close of the read-only file is ignored); TD_ENOMEM.
 */
int td_snapshot_read(td_snapshot_t **out, const td_snapshot_io_t *io,
                     const char *path, char *err, size_t errlen);

/* td_snapshot_free - release a snapshot and its bytes. NULL is a no-op. */
void td_snapshot_free(td_snapshot_t *s);

/* td_snapshot_kind - the kind stored in the header. */
uint32_t td_snapshot_kind(const td_snapshot_t *s);

/* td_snapshot_version - the format version stored in the header (at most
 * TD_SNAPSHOT_VERSION). */
uint32_t td_snapshot_version(const td_snapshot_t *s);

/* td_snapshot_size - the file's size in bytes. */
uint64_t td_snapshot_size(const td_snapshot_t *s);

/* td_snapshot_count - the number of sections. */
size_t td_snapshot_count(const td_snapshot_t *s);

/*
 * td_snapshot_section - section number i (0-based, in the order written).
 * tag: receives its tag (may be NULL). out: receives its bytes (may be
 * NULL), borrowed from the snapshot until td_snapshot_free(), with no
 * alignment guarantee (data.len 0 for an empty section).
 * Returns 0, or TD_EINVAL when i >= td_snapshot_count(s).
 */
int td_snapshot_section(const td_snapshot_t *s, size_t i, uint32_t *tag,
                        td_bytes_t *out);

/*
 * td_snapshot_find - the first section with `tag` at index *pos or later.
 * pos: in, where to start (0 for the first match); out, when found, the
 * index of the match, so that
 *   for (size_t i = 0; td_snapshot_find(s, tag, &i, &b) == 1; i++) ...
 * visits every section with that tag. out: receives the bytes, as for
 * td_snapshot_section (may be NULL).
 * Returns 1 found, 0 not found (*pos and *out unchanged).
 */
int td_snapshot_find(const td_snapshot_t *s, uint32_t tag, size_t *pos,
                     td_bytes_t *out);

/* ---- checking a directory's files (`tide verify`, state/metadata.h) ---- */

/* What a check found for one directory entry. */
enum {
  TD_SNAPSHOT_CHECK_OK = 0,      /* a snapshot file, valid */
  TD_SNAPSHOT_CHECK_BAD = 1,     /* should be a snapshot file and is not */
  TD_SNAPSHOT_CHECK_SKIPPED = 2  /* not a snapshot file, not expected to be */
};

typedef struct td_snapshot_check {
  const char *name; /* the entry's name within the directory */
  int status;       /* TD_SNAPSHOT_CHECK_* */
  int rc;           /* BAD: the error code (TD_ECORRUPT, -errno); else 0 */
  const char *msg;  /* one line: the error (it names the file), the reason
                       for skipping, or for OK a summary such as "kind 1,
                       version 1, 3 sections, 1234 bytes" */
  uint32_t kind, version, sections; /* OK only, else 0 */
  uint64_t size;                    /* OK only: file size in bytes */
} td_snapshot_check_t;

/* Called once per directory entry; the strings are valid during the call
 * only. */
typedef void (*td_snapshot_check_fn)(const td_snapshot_check_t *c, void *ud);

#endif
