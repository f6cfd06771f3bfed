/*
 * asyncsnap.h - the asynchronous part of a snapshot taken without fork
 * (Flink's AsyncSnapshotCallable: the synchronous part returns at once and
 * a thread finishes the snapshot).
 *
 * A subtask whose keyed state lives in RocksDB snapshots without forking
 * (docs/STATE.md): at the barrier its task thread switches the memtables
 * (a thread of the instance makes the RocksDB checkpoint once they are
 * flushed) and encodes its small state (operator state, source positions,
 * the keyed backends' descriptions) into the state files' bytes. What only
 * the upload can tell (the shared files' names, sizes and CRCs) is left as
 * a hole in those bytes: a MessagePack fixext 1 of type TD_ASNAP_HOLE_EXT
 * whose byte is the hole's number, written where the value goes (the
 * codec writes it for core.snapshot_hole(n)). The snapshot's worker then
 * waits for each RocksDB checkpoint, uploads its files to the shared
 * directory (shared.h; files a journal says are there already are not
 * read again), replaces each hole with the array of the checkpoint's
 * files, [[local name, shared name, size, crc32c], ...] sorted by local
 * name, makes the files a sink pre-committed durable (td_asnap_sync: the
 * fsyncs a snapshot child did), writes the state files with their identity (metadata.h) and, for
 * each state file that had holes, its companion "<name>.shared" listing
 * the shared files, removes the checkpoint directory, and reports.
 *
 * A hole that no upload fills leaves an ext value, which the decoder
 * rejects: such a file is never written (td_asnap_run fails).
 *
 * Thread safety: a td_asnap_t is built by one thread and then run by one
 * (the worker); a worker's functions may be called from its owner's
 * thread only.
 */
#ifndef TD_ASYNCSNAP_H
#define TD_ASYNCSNAP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "metadata.h"
#include "wbuf.h"

/* The MessagePack ext type of a hole, and how many holes a snapshot may
 * have (one per RocksDB instance of the subtask). */
#define TD_ASNAP_HOLE_EXT 0x54
#define TD_ASNAP_MAX_HOLES 64

typedef struct td_asnap td_asnap_t;

/* td_asnap_new - an empty snapshot of checkpoint id. NULL: out of memory. */
td_asnap_t *td_asnap_new(int64_t id);

/* td_asnap_free - free it (NULL is a no-op). */
void td_asnap_free(td_asnap_t *a);

/* td_asnap_id - the checkpoint id given to td_asnap_new. */
int64_t td_asnap_id(const td_asnap_t *a);

/*
 * td_asnap_upload - hole `hole` (0 .. TD_ASNAP_MAX_HOLES-1) is filled with
 * the files of the RocksDB checkpoint being made in dir (its instance's
 * thread renames it into place once complete, or writes "<dir>.failed"
 * holding why it failed: state/rocksdb.h), uploaded to shared_dir; each
 * upload is appended to the journal file (shared.h's
 * td_shared_journal_append). All strings copied. 0, TD_EINVAL (a bad or
 * used hole number), TD_ENOMEM.
 */
int td_asnap_upload(td_asnap_t *a, int hole, const char *dir, const char *shared_dir,
                    const char *journal);

/*
 * td_asnap_known - for hole's upload: the checkpoint file `file` (an SST
 * file, which never changes) was uploaded before as shared file `name` of
 * size bytes and CRC32C crc; if that shared file is still there with that
 * size it is referenced without reading the file again (incremental
 * checkpoints). 0, TD_EINVAL (no such upload), TD_ENOMEM.
 */
int td_asnap_known(td_asnap_t *a, int hole, const char *file, const char *name, uint64_t size,
                   uint32_t crc);

/*
 * td_asnap_sync - before the state files are written, fsync path (a file
 * or a directory); if it is gone and alt is non-NULL, alt instead (a
 * file sink's pending file committed meanwhile under its final name).
 * Strings copied. 0 or TD_ENOMEM.
 */
int td_asnap_sync(td_asnap_t *a, const char *path, const char *alt);

/*
 * td_asnap_file - state file `name` (relative to the checkpoint's
 * directory) holds the MessagePack value data (with holes, if any): the
 * buffer is taken (*data is left empty). 0 or TD_ENOMEM.
 */
int td_asnap_file(td_asnap_t *a, const char *name, td_wbuf_t *data);

/*
 * td_asnap_run - do the asynchronous part (see above), writing the state
 * files into chk_dir with checkpoint id's identity for job job_name.
 * Waiting, uploading and writing stop with TD_ECANCELED when cancel (or
 * NULL) becomes non-zero or wanted(ud, id) (or NULL) returns 0 (the
 * checkpoint was aborted meanwhile: nothing waits for it any more, and a
 * RocksDB checkpoint that never comes must not hold up the next ones).
 * Returns 0, or a code with a one-line message in err naming the file.
 */
int td_asnap_run(td_asnap_t *a, const char *chk_dir, const char *job_name, atomic_int *cancel,
                 int (*wanted)(void *ud, int64_t id), void *ud, char *err, size_t errlen);

/*
 * td_asnap_written - after a successful td_asnap_run: every file the
 * snapshot consists of, as _metadata lists them (metadata.h): its state
 * files and companions with their sizes and trailer CRCs, and the shared
 * files they reference as "../shared/<name>". Borrowed from a; *n of them.
 */
const td_meta_file_t *td_asnap_written(const td_asnap_t *a, size_t *n);

/*
 * td_asnap_write_state - write state file name into dir: the identity of
 * checkpoint id (flags TD_STATE_*, metadata.h) for job job_name, then
 * data[0 .. len) as its data section, atomically (snapshot.h). 0 or a
 * code with a message in err.
 */
int td_asnap_write_state(const char *dir, const char *name, int64_t id, uint32_t flags,
                         const char *job_name, const void *data, size_t len, char *err,
                         size_t errlen);

/*
 * td_asnap_worker_t - a thread that runs one subtask's snapshots, one
 * after the other in the order given; after each it calls done(ud, id,
 * files, n, error) from its thread: on success error is NULL and files[0
 * .. n) what td_asnap_written lists (borrowed for the call), else error
 * is a one-line message and n is 0.
 */
typedef struct td_asnap_worker td_asnap_worker_t;

/* td_asnap_worker_new - a worker for job job_name (copied; the state
 * files' identity). wanted (or NULL): td_asnap_run's, asked of each
 * snapshot while it is written; one no longer wanted stops and is not
 * reported. The thread starts at the first push. NULL: out of memory. */
td_asnap_worker_t *td_asnap_worker_new(const char *job_name,
                                       void (*done)(void *ud, int64_t id,
                                                    const td_meta_file_t *files, size_t n,
                                                    const char *error),
                                       int (*wanted)(void *ud, int64_t id), void *ud);

/* td_asnap_worker_push - queue snapshot a (taken, whatever the result),
 * to be written into chk_dir (copied). 0; or, with a freed and done not
 * called: TD_ENOMEM, TD_ECANCELED (the worker was stopped), -errno (the
 * thread cannot start). */
int td_asnap_worker_push(td_asnap_worker_t *w, td_asnap_t *a, const char *chk_dir);

/* td_asnap_worker_stop - stop the worker: with cancel, the snapshot being
 * written stops at its next wait or file and the queued ones are dropped,
 * none of them reported (done is not called for them); without, the queue
 * is written first.
 * Joins the thread. Idempotent; the worker takes no pushes afterwards. */
void td_asnap_worker_stop(td_asnap_worker_t *w, int cancel);

/* td_asnap_worker_free - stop (cancelling) and free (NULL is a no-op). */
void td_asnap_worker_free(td_asnap_worker_t *w);

#endif
