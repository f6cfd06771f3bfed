/*
 * rocksdb.h - the RocksDB state backend (backend.h) and what the keyed-state
 * layer needs of it beyond backend.h: an int64 merge operator, write
 * batches, multi-get, namespace-ordered iteration over one key, checkpoints
 * (hard links, for incremental upload) and restore with rescaling.
 *
 * The model is Flink's EmbeddedRocksDBStateBackend / RocksDBKeyedStateBackend:
 * one RocksDB instance per subtask in a local working directory, a column
 * family per state, keys prefixed by their key group so that a key group is
 * a contiguous range (RocksDBKeySerializationUtils), snapshots as RocksDB
 * checkpoints (RocksIncrementalSnapshotStrategy), and restore of several
 * old instances by clipping or copying key-group ranges
 * (RocksDBIncrementalRestoreOperation). The entry layout is described in
 * state/rocksdb.c.
 *
 * Errors: calls return 0 (or a count / found flag) or a negative code:
 * TD_EINVAL (bad arguments, a key group outside the backend's range),
 * TD_ENOMEM, TD_ESTATE (RocksDB said no), or -errno (file system). The
 * detailed message, naming the path and RocksDB's own text, is kept in
 * the backend's last-error buffer: td_rocksdb_last_error(). The library
 * never prints.
 *
 * Threads: a backend is used by one thread at a time, as backend.h says;
 * the shared block cache may be used by backends on several threads.
 *
 * Borrowed bytes: a value given out by get, multi-get or a scan callback
 * stays valid until the next call on the same backend (any call: unlike the
 * heap backend, a second get releases the first one's value).
 */
#ifndef TD_ROCKSDB_H
#define TD_ROCKSDB_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/* Defaults of td_rocksdb_options_t's zero fields. */
#define TD_ROCKSDB_BLOCK_CACHE_DEFAULT ((size_t)256 << 20) /* bytes */
#define TD_ROCKSDB_WRITE_BUFFER_DEFAULT ((size_t)64 << 20) /* bytes */
#define TD_ROCKSDB_MAX_WRITE_BUFFERS_DEFAULT 2

typedef struct td_rocksdb_options {
  /* The working directory: created (with its parents) if missing. An
   * existing database in it is opened as it is. Required. */
  const char *dir;
  /* Bytes of the process's one shared block cache (LRU). Non-zero sets its
   * capacity as td_rocksdb_shared_cache() does (process-wide: the last
   * setting wins); 0 leaves it as it is (TD_ROCKSDB_BLOCK_CACHE_DEFAULT
   * if it was never set). */
  size_t block_cache;
  /* Bytes of one memtable (RocksDB's write_buffer_size); 0: default. */
  size_t write_buffer;
  /* Memtables per column family (max_write_buffer_number); 0: default.
   * A DB's memtables over all column families are bounded by
   * write_buffer * max_write_buffers (db_write_buffer_size). */
  int max_write_buffers;
  /* Non-zero: td_backend_free removes the working directory. */
  int remove_on_free;
} td_rocksdb_options_t;

/*
 * td_backend_new_rocksdb - open a RocksDB backend for key groups
 * [kg_first, kg_last] in opt->dir. The backend's ops->name is "rocksdb".
 * Column families ("s<state id>") are created on the first put of a state.
 * Writes skip the write-ahead log: durability comes from checkpoints, as in
 * Flink.
 * err: at least errlen bytes, receives a message naming the path and
 * RocksDB's error on failure (may be NULL when errlen is 0).
 * Returns 0 and *out; TD_EINVAL (no dir, kg_first > kg_last, kg_last >=
 * TD_MAX_PARALLELISM_LIMIT); -errno when the directory cannot be created
 * or is not writable; TD_ESTATE when RocksDB cannot open it; TD_ENOMEM.
 */
int td_backend_new_rocksdb(td_backend_t **out, const td_rocksdb_options_t *opt,
                           uint32_t kg_first, uint32_t kg_last, char *err,
                           size_t errlen);

/*
 * td_backend_restore_rocksdb - open a RocksDB backend for [kg_first,
 * kg_last] in opt->dir (which must hold no database) from the checkpoint
 * directories dirs[0 .. n) of old subtasks (made by td_rocksdb_checkpoint),
 * whose key-group ranges overlap [kg_first, kg_last]; entries outside the
 * range are dropped (Flink's restore at another parallelism).
 * n == 1: the checkpoint is copied (SST files hard-linked when the file
 * system allows, else copied) and clipped: on every column family, whole
 * SST files outside the range are dropped (delete_file_in_range) and the
 * rest deleted by delete_range. n > 1: a fresh database is filled with the
 * range's entries of each old instance, read in place (read-only).
 * n == 0 gives an empty backend. The checkpoint directories are not
 * modified. Errors as td_backend_new_rocksdb, and -errno / TD_ESTATE
 * naming the checkpoint directory that could not be read.
 */
int td_backend_restore_rocksdb(td_backend_t **out,
                               const td_rocksdb_options_t *opt,
                               uint32_t kg_first, uint32_t kg_last,
                               const char *const *dirs, size_t n, char *err,
                               size_t errlen);

/*
 * td_rocksdb_shared_cache - set the capacity of the block cache shared by
 * every RocksDB backend of the process, in bytes (> 0), creating it if
 * needed. Memory for blocks read from SST files is bounded by it (index
 * and filter blocks are charged to it too). Thread-safe.
 * Returns 0, or TD_EINVAL for 0.
 */
int td_rocksdb_shared_cache(size_t size_bytes);

/* td_rocksdb_cache_shard_bits - log2 of the number of shards the shared
 * cache of capacity bytes is made with: the most (up to 6, RocksDB's
 * limit) that leave every shard at least 32 MiB, so that the whole-file
 * bloom filter of a 64 MiB SST file (several MiB) fits in one shard and is
 * cached (RocksDB's default, shards of 512 KiB and up, gives a 256 MiB
 * cache 64 shards of 4 MiB). */
int td_rocksdb_cache_shard_bits(size_t capacity);

/* td_rocksdb_shared_cache_capacity - the shared cache's capacity in bytes,
 * or 0 while no backend holds it (and it was never set). Thread-safe. */
size_t td_rocksdb_shared_cache_capacity(void);

/* td_rocksdb_last_error - the message of the backend's last failed call
 * ("" if none): valid until the next call. b must be a RocksDB backend. */
const char *td_rocksdb_last_error(td_backend_t *b);

/* td_backend_is_rocksdb - whether b was made by this file (the calls below
 * return TD_EINVAL for other backends). */
int td_backend_is_rocksdb(const td_backend_t *b);

/*
 * td_rocksdb_add - add delta to the integer at (state, kg, key, ns) by a
 * RocksDB merge operand: no read (Flink's RocksDB backend uses merge
 * operators for the same reason). An absent entry counts as 0. The stored
 * value is the canonical MessagePack integer (what td_backend_get then
 * returns); a present value that is not a MessagePack integer in int64
 * range is replaced by the sum of the deltas. Sums wrap modulo 2^64.
 * Returns 0, TD_EINVAL, TD_ENOMEM or TD_ESTATE.
 */
int td_rocksdb_add(td_backend_t *b, uint32_t state_id, uint32_t kg,
                   td_bytes_t key, td_bytes_t ns, int64_t delta);

/*
 * Write batches: td_rocksdb_batch_put / _remove / _add collect writes in
 * the backend's one batch (created on first use) and td_rocksdb_batch_commit
 * writes them at once, atomically, in order (Flink's RocksDBWriteBatchWrapper).
 * Reads do not see uncommitted writes; direct td_backend_put/remove/add
 * write at once, past the batch. A remove in a batch is blind (no count
 * of what it removed). td_rocksdb_batch_abort drops the collected writes.
 * The bytes are copied. Each returns 0, TD_EINVAL, TD_ENOMEM or TD_ESTATE
 * (a failed commit leaves the database as it was and the batch empty).
 */
int td_rocksdb_batch_put(td_backend_t *b, uint32_t state_id, uint32_t kg,
                         td_bytes_t key, td_bytes_t ns, td_bytes_t value);
int td_rocksdb_batch_remove(td_backend_t *b, uint32_t state_id, uint32_t kg,
                            td_bytes_t key, td_bytes_t ns);
int td_rocksdb_batch_add(td_backend_t *b, uint32_t state_id, uint32_t kg,
                         td_bytes_t key, td_bytes_t ns, int64_t delta);
/* td_rocksdb_batch_size - writes collected and not committed. */
size_t td_rocksdb_batch_size(td_backend_t *b);
int td_rocksdb_batch_commit(td_backend_t *b);
void td_rocksdb_batch_abort(td_backend_t *b);

/* One address of a multi-get. */
typedef struct td_rocksdb_key {
  uint32_t state_id;
  uint32_t key_group;
  td_bytes_t key;
  td_bytes_t ns;
} td_rocksdb_key_t;

/*
 * td_rocksdb_multi_get - look n addresses up at once (RocksDB's MultiGet:
 * one pass over memtables and files). found[i] is 1 and values[i] the
 * value (borrowed until the next call on b), or found[i] 0.
 * Returns 0; TD_EINVAL (an address outside the range, a bad state id: no
 * lookup done), TD_ENOMEM, TD_ESTATE (a lookup failed).
 */
int td_rocksdb_multi_get(td_backend_t *b, const td_rocksdb_key_t *keys,
                         size_t n, td_bytes_t *values, int *found);

/*
 * Iteration over the namespaces of one (state, key group, key), in
 * namespace byte order (what a map state or a key's windows need; Flink's
 * RocksDBMapState iterator). ns_from (inclusive) and ns_to (exclusive)
 * bound it; NULL means unbounded. The iterator reads a snapshot taken at
 * td_rocksdb_iter_new: writes made during the iteration are not seen, and
 * are allowed. td_rocksdb_iter_next gives the next entry's namespace and
 * value (borrowed until the next iter call) and returns 1, 0 at the end,
 * or TD_ESTATE. _new returns 0 and *out, TD_EINVAL or TD_ENOMEM.
 * td_rocksdb_iter_free: NULL ok; free every iterator before the backend.
 */
typedef struct td_rocksdb_iter td_rocksdb_iter_t;
int td_rocksdb_iter_new(td_rocksdb_iter_t **out, td_backend_t *b,
                        uint32_t state_id, uint32_t kg, td_bytes_t key,
                        const td_bytes_t *ns_from, const td_bytes_t *ns_to);
int td_rocksdb_iter_next(td_rocksdb_iter_t *it, td_bytes_t *ns,
                         td_bytes_t *value);
void td_rocksdb_iter_free(td_rocksdb_iter_t *it);

/*
 * td_rocksdb_checkpoint - flush every column family's memtables, then make
 * a RocksDB checkpoint in dir (which must not exist; its parent must):
 * SST files are hard links to the live ones (so unchanged files keep their
 * names from one checkpoint to the next: upload only the new ones), plus
 * MANIFEST, CURRENT, OPTIONS. *files receives the names of the files in
 * dir (relative to it, sorted), *n their number; free with
 * td_rocksdb_files_free. Returns 0; TD_EINVAL; TD_ESTATE (message names
 * dir); -errno (dir could not be listed); TD_ENOMEM.
 */
int td_rocksdb_checkpoint(td_backend_t *b, const char *dir, char ***files,
                          size_t *n);
void td_rocksdb_files_free(char **files, size_t n);

/*
 * td_rocksdb_checkpoint_begin - the same checkpoint in dir, made off the
 * calling thread: switches every column family's memtable (RocksDB's
 * Flush with wait = false: the writes made so far become immutable
 * memtables, and the call returns without waiting for their write), then
 * a thread of the backend waits until they are flushed and makes the
 * RocksDB checkpoint, with no further flush, in dir (RocksDB makes it in
 * dir.tmp and renames it into place once complete). Its files hold
 * exactly the writes made before the call: until the checkpoint exists,
 * a write that could make RocksDB flush a memtable on its own (one past
 * half its write_buffer, or all of them past a quarter of the database's
 * memtable budget) first waits for it. On failure the thread leaves the
 * message in dir.failed. One at a time: a second call, close,
 * td_rocksdb_checkpoint and td_rocksdb_compact wait for the one under
 * way. This is Flink's incremental RocksDB snapshot with the flush taken
 * out of the synchronous part. Returns 0, TD_EINVAL, TD_ENOMEM or
 * TD_ESTATE (the switch failed: nothing started).
 * td_rocksdb_checkpoint_end - wait for the one under way, if any: 0, or
 * TD_ESTATE when it failed (td_rocksdb_last_error says why).
 */
int td_rocksdb_checkpoint_begin(td_backend_t *b, const char *dir);
int td_rocksdb_checkpoint_end(td_backend_t *b);

/*
 * td_rocksdb_checkpoint_await - from any thread or process (a snapshot
 * child or thread): wait until the checkpoint td_rocksdb_checkpoint_begin
 * makes in dir is in place (0) or has failed (TD_EIO, the first line of
 * dir.failed in err), polling every 0.1 ms, doubling to 10 ms. stop (or
 * NULL) is asked between polls: non-zero ends the wait with TD_ECANCELED.
 * Calls no malloc (stat, open, read, nanosleep; alloc.h).
 */
int td_rocksdb_checkpoint_await(const char *dir, int (*stop)(void *ud), void *ud, char *err,
                                size_t errlen);

/*
 * State TTL in compactions (Flink's RocksDB TTL compaction filter): every
 * column family has a compaction filter that, once td_rocksdb_set_ttl gave
 * its state a TTL, drops entries whose value is a MessagePack [value, ms]
 * pair with ms + ttl_ms <= the time td_rocksdb_set_time last set (list
 * states, list = 1: arrays of such pairs lose their expired elements, and
 * the entry goes when none is left). Values of another shape are kept.
 * The tide.state layer stores TTL state so (docs/STATE.md). ttl_ms 0
 * turns the filter off. Expiry also happens on access, in the layer.
 * td_rocksdb_set_time: processing time in ms (0: never expire), read by
 * compaction threads. td_rocksdb_compact: compact every family now
 * (tests). Each returns 0, TD_EINVAL (not a RocksDB backend, ttl_ms < 0)
 * or TD_ENOMEM.
 */
int td_rocksdb_set_ttl(td_backend_t *b, uint32_t state_id, int64_t ttl_ms, int list);
int td_rocksdb_set_time(td_backend_t *b, int64_t now_ms);
int td_rocksdb_compact(td_backend_t *b);

#endif
