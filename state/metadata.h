/*
 * metadata.h - a checkpoint's `_metadata` file, the identity every state
 * file carries, and the one check of a checkpoint directory that both
 * `tide verify` and recovery (`--resume`, restarts) apply.
 *
 * A checkpoint directory DIR/chk-<n>/ exists only once its `_metadata` is
 * written (DESIGN.md). `_metadata` is a snapshot file (snapshot.h) of kind
 * TD_SNAPSHOT_KIND_METADATA with these sections (integers little-endian):
 *
 *   TD_META_INFO      32 bytes: u64 checkpoint id, u64 wall time of
 *                     completion (ms since the epoch), u32 flags
 *                     (TD_META_FINAL, TD_META_SAVEPOINT), u32 number of subtasks, 8 zero bytes
 *   TD_META_JOB       the planner's job description (opaque here:
 *                     MessagePack with the graph fingerprint, tasks, uids)
 *   TD_META_SUBTASKS  one byte per subtask, in job order:
 *                     TD_META_SUB_FINISHED | TD_META_SUB_INFLIGHT
 *   TD_META_NAME      the job name (bytes, no terminator)
 *   TD_META_FILES     every file of the checkpoint, back to back:
 *                     u32 subtask, u64 size in bytes, u32 CRC32C (the
 *                     file's own trailer CRC), u16 name length, the name
 *
 * Every state file (`<uid>-<subtask>.state`, `inflight-<t>-<s>.state`)
 * holds, besides its data, a TD_STATE_IDENTITY section naming the
 * checkpoint and the job it was written for:
 *
 *   u64 checkpoint id (0 for a final state, written once when a subtask
 *   finished and linked into every later checkpoint), u32 flags
 *   (TD_STATE_FINAL), the job name (the rest of the section)
 *
 * So a file copied from another checkpoint or another job is detected
 * twice: its identity does not match, and its size or CRC differs from
 * what `_metadata` recorded.
 *
 * Thread safety: no shared state; td_meta_identity_write is async-signal
 * safe enough for a forked child (no malloc: it builds the section on the
 * stack).
 */
#ifndef TD_METADATA_H
#define TD_METADATA_H

#include <stddef.h>
#include <stdint.h>

#include "snapshot.h"

enum {
  TD_META_INFO = 1,
  TD_META_JOB = 2,
  TD_META_SUBTASKS = 3,
  TD_META_NAME = 4,
  TD_META_FILES = 5
};
enum { TD_META_FINAL = 1, TD_META_SAVEPOINT = 2 };
enum { TD_META_SUB_FINISHED = 1, TD_META_SUB_INFLIGHT = 2 };

/* The section of a state file that holds its data (an operator's encoded
 * snapshot). */
#define TD_STATE_DATA 1u

/* The section of a state file that names its checkpoint and job (a tag no
 * data section uses: in-flight files tag their sections by channel). */
#define TD_STATE_IDENTITY 0x80000000u
enum { TD_STATE_FINAL = 1 };

/* Longest job name stored in an identity section, in bytes. */
#define TD_META_NAME_MAX 1024

typedef struct td_meta_file {
  char *name;       /* file name within the checkpoint directory */
  int subtask;      /* the subtask (job order) it belongs to */
  uint64_t size;    /* bytes */
  uint32_t crc;     /* the CRC32C stored in its trailer */
} td_meta_file_t;

typedef struct td_meta {
  int64_t id;
  int64_t time_ms;          /* wall time of completion */
  uint32_t flags;           /* TD_META_FINAL */
  int n_subtasks;
  unsigned char *subtasks;  /* n_subtasks flag bytes */
  char *job_name;
  unsigned char *job_info;  /* TD_META_JOB bytes */
  size_t job_info_len;
  td_meta_file_t *files;
  size_t n_files;
} td_meta_t;

/*
 * td_meta_stat_file - size and trailer CRC of the snapshot file DIR/NAME,
 * read from its last bytes without reading the file (cheap; the full
 * check is td_snapshot_read). Returns 0; -errno (e.g. -ENOENT);
 * TD_ECORRUPT when it is shorter than an empty snapshot.
 */
int td_meta_stat_file(const char *dir, const char *name, uint64_t *size,
                      uint32_t *crc);

/*
 * td_meta_write - write DIR/_metadata from m (every field used; files may
 * be empty) atomically and durably (snapshot.h: tmp, fsync, rename, fsync
 * DIR). Returns 0, or a negative code with a one-line message in err.
 */
int td_meta_write(const char *dir, const td_meta_t *m, char *err,
                  size_t errlen);

/*
 * td_meta_read - read and check DIR/_metadata (snapshot checks, then every
 * section present and well formed). *out receives a td_meta_t to free
 * with td_meta_free. Returns 0; -ENOENT when there is no _metadata (not a
 * completed checkpoint); TD_ECORRUPT (with err naming the fault); -errno;
 * TD_ENOMEM.
 */
int td_meta_read(const char *dir, td_meta_t **out, char *err, size_t errlen);

/* td_meta_free - release what td_meta_read returned (NULL: no-op). */
void td_meta_free(td_meta_t *m);

/*
 * td_meta_identity_write - append the TD_STATE_IDENTITY section (checkpoint
 * id, flags TD_STATE_FINAL or 0, job name cut to TD_META_NAME_MAX bytes)
 * to a snapshot being written. Returns what td_snapshot_write_section
 * returns.
 */
int td_meta_identity_write(td_snapshot_writer_t *w, int64_t id,
                           uint32_t flags, const char *job, char *err,
                           size_t errlen);

/*
 * td_meta_verify - check the checkpoint directory DIR as recovery does,
 * reporting every entry through fn (may be NULL; entries in name order,
 * then files _metadata lists that are missing):
 *  - _metadata must exist and be sound (else BAD, and nothing else is
 *    checked: "not a completed checkpoint");
 *  - every file it lists must exist, be a sound snapshot file (magic,
 *    version, CRC32C) of the recorded size and CRC, and carry an identity
 *    naming this checkpoint (or a final state) and this job;
 *  - files it does not list are SKIPPED (not part of the checkpoint).
 * job: the job name the checkpoint must belong to, or NULL to take the one
 * _metadata records. *meta_out (may be NULL) receives the metadata when
 * the checkpoint is sound (free with td_meta_free).
 * Returns 0 when sound; otherwise the first fault's code (-ENOENT for a
 * missing _metadata or file, TD_ECORRUPT) with a summary in err
 * ("DIR: 2 of 5 files bad, first: ..."); -errno when DIR cannot be listed.
 */
int td_meta_verify(const char *dir, const char *job, td_snapshot_check_fn fn,
                   void *ud, td_meta_t **meta_out, char *err, size_t errlen);

/* What td_meta_latest found of one chk-<n> directory. */
typedef enum td_meta_found {
  TD_META_INCOMPLETE = 0, /* no _metadata: not a checkpoint, never restored */
  TD_META_SOUND,          /* passes td_meta_verify */
  TD_META_CORRUPT,        /* completed (has a _metadata) but not sound */
  TD_META_CHECKING        /* completed: about to be checked (then SOUND or
                             CORRUPT follows) */
} td_meta_found_t;

/*
 * td_meta_latest - the checkpoint recovery restores from a job's
 * checkpoint directory job_dir: the newest chk-<n> (by n) that is sound
 * for job (td_meta_verify; NULL: any job). Checkpoints are visited newest
 * first: visit(ud, id, found, err) (may be NULL) is called for each (a
 * completed one twice: CHECKING, then SOUND or CORRUPT with the fault's
 * summary in err), and per-file checks go, in between, to fn/fn_ud
 * as in td_meta_verify (may be NULL). all: 0 stops at the first sound one
 * (recovery); 1 visits every checkpoint (tide verify). Returns the id of
 * the newest sound checkpoint (its directory in path), 0 when none is
 * sound, or -errno when job_dir cannot be listed; *n_complete (may be
 * NULL) receives how many completed checkpoints were visited, so "none
 * yet" (0) and "all corrupt" can be told apart.
 */
int64_t td_meta_latest(const char *job_dir, const char *job, int all,
                       void (*visit)(void *ud, int64_t id, td_meta_found_t found,
                                     const char *err),
                       void *ud, td_snapshot_check_fn fn, void *fn_ud, char *path,
                       size_t pathlen, int *n_complete);

#endif
