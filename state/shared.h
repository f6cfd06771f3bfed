/*
 * shared.h - the shared directory of a job's checkpoints: the files of
 * RocksDB snapshots (SST files, MANIFEST, OPTIONS, CURRENT), stored once
 * and referenced by any number of checkpoints (Flink's SharedStateRegistry
 * over <checkpoint-dir>/<job>/shared/, as RocksIncrementalSnapshotStrategy
 * uploads to it).
 *
 * A shared file is named by its content: "<XXH64 of the bytes, 16 hex
 * digits>-<size in bytes>". An upload of a file whose content is there
 * already writes nothing: that is what makes checkpoints incremental, and
 * what makes a crash during an upload harmless (a half-copied file only
 * ever exists under a temporary ".tmp-*" name). Each reference records the
 * file's size and CRC32C (snapshot.h's), so a corrupt or replaced shared
 * file is detected before RocksDB sees it.
 *
 * A checkpoint's references are listed in a companion of its state file,
 * "<uid>-<subtask>.state.shared": a state file like the others (task.h),
 * whose data section is a MessagePack array of [name, size, crc] arrays,
 * written before the subtask acknowledges. The coordinator lists
 * the referenced files in _metadata as "../shared/<name>" and removes a
 * shared file only when no retained checkpoint, no pending one and no
 * finished subtask's final state references it (td_shared_sweep).
 *
 * td_shared_upload runs in forked snapshot children: it calls no malloc
 * (alloc.h). Errors as snapshot.h: 0 or a negative code, a one-line
 * message in err.
 */
#ifndef TD_SHARED_H
#define TD_SHARED_H

#include <stddef.h>
#include <stdint.h>


/* The suffix of a state file's companion that lists its shared files. */
#define TD_SHARED_SUFFIX ".shared"
/* The prefix of shared files in _metadata, relative to chk-<n>/. */
#define TD_SHARED_PREFIX "../shared/"
/* Longest shared file name, with its NUL. */
#define TD_SHARED_NAME_MAX 40

/* One reference to a shared file. */
typedef struct td_shared_ref {
  char name[TD_SHARED_NAME_MAX];
  uint64_t size; /* bytes */
  uint32_t crc;  /* CRC32C of the whole file */
} td_shared_ref_t;

/*
 * td_shared_upload - store the file at path in shared_dir (created if
 * missing) under its content name, unless a file of that name is there
 * already; *ref receives the name, size and CRC32C. The copy is written
 * to a temporary name, fsynced, and renamed. Returns 0, -errno (the
 * message names the file), TD_ENOMEM.
 */
int td_shared_upload(const char *path, const char *shared_dir, td_shared_ref_t *ref,
                     char *err, size_t errlen);

/*
 * td_shared_journal_append - append "<file name> <shared name> <size>
 * <crc>\n" for the upload of path as ref to the journal file (created if
 * missing) with one write (no stdio, no malloc: snapshot children call
 * it), file name being path's last component. A RocksDB backend reads its
 * journals to know which SST files are uploaded already. Best effort: a
 * journal that cannot be written only makes a later checkpoint upload the
 * file again.
 */
void td_shared_journal_append(const char *journal, const char *path, const td_shared_ref_t *ref);

/*
 * td_shared_check - whether shared_dir/ref->name is there with ref's size
 * and CRC32C. Returns 0; -ENOENT ("missing"), TD_ECORRUPT (size or CRC
 * differ), or -errno, with a message naming the file.
 */
int td_shared_check(const char *shared_dir, const td_shared_ref_t *ref, char *err,
                    size_t errlen);

/*
 * td_shared_read - the references listed by the companion file at path
 * (*refs malloc'd, *n of them; free(*refs)). Returns 0, -ENOENT when there
 * is no such file, TD_ECORRUPT (with a message) for a bad one, -errno.
 */
int td_shared_read(const char *path, td_shared_ref_t **refs, size_t *n, char *err,
                   size_t errlen);

/*
 * td_shared_sweep - remove every file of shared_dir whose name is not in
 * keep[0 .. n) (sorted with strcmp), except temporary files younger than
 * min_age_s seconds (an upload in progress). Returns the number removed,
 * or -errno when the directory cannot be read (a missing one: 0).
 */
int td_shared_sweep(const char *shared_dir, char **keep, size_t n, int min_age_s);

#endif
