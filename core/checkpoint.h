/*
 * checkpoint.h - the checkpoint coordinator of a running job (Flink's
 * CheckpointCoordinator), after Carbone et al., "Lightweight Asynchronous
 * Snapshots for Distributed Dataflows" (2015), as DESIGN.md describes it.
 *
 * One coordinator per job, with a thread of its own:
 *
 *   trigger   every interval_ms (no sooner than min_pause_ms after the last
 *             completion, at most max_concurrent pending) it creates
 *             DIR/chk-<n>/ and asks every running source subtask to inject
 *             barrier n (td_coord_requested, polled by the sources between
 *             batches). Barriers flow with the records; a task with several
 *             inputs aligns them (core/barrier.h) and snapshots.
 *   snapshot  a subtask snapshots at its barrier by forking: the child
 *             process holds a copy-on-write image of the subtask's Lua VM
 *             (the consistent copy; the task thread pauses only for
 *             fork()), writes DIR/chk-<n>/<uid>-<subtask>.state files and
 *             exits 0 (td_coord_snapshot_started). In unaligned mode the
 *             subtask also hands over its in-flight input data
 *             (td_coord_inflight), which this thread writes.
 *   complete  when every subtask acknowledged n (child exited 0, in-flight
 *             data written, or the subtask had finished: its final state
 *             files are linked in), the thread writes DIR/chk-<n>/_metadata
 *             last and atomically; a checkpoint without _metadata does not
 *             exist. Then older pending checkpoints are aborted (subsumed),
 *             completed checkpoints beyond `retained` and incomplete ones
 *             older than n are removed, and waiters are woken
 *             (td_coord_wait: sinks commit what they pre-committed).
 *   abort     a checkpoint not complete after timeout_ms, a declined one
 *             (td_coord_decline: subsumed or timed out at a task) or one
 *             whose child failed is aborted: its children are killed and
 *             its directory removed.
 *   finish    a subtask whose input ended reports its final state
 *             (td_coord_finished; files in DIR/finished/). Later
 *             checkpoints link those files instead of waiting for a barrier
 *             the subtask can no longer see (Flink's checkpoints after tasks
 *             finished, FLIP-147). When every subtask finished, a last
 *             checkpoint marked final completes: bounded jobs commit all
 *             their output through it, and a job resumed from it ends at
 *             once.
 *
 * Without a directory (cfg.dir NULL) nothing is written and no periodic
 * checkpoint is taken, but the final one still completes when every
 * subtask finished: sinks commit only once the whole job is done.
 *
 * _metadata (state/metadata.h) records the checkpoint id, its time, the job
 * description, per-subtask flags, the job name, and every file of the
 * checkpoint with its size and CRC32C, so that a file changed or replaced
 * after completion is detected.
 *
 * Failures (Flink's CheckpointFailureManager): a checkpoint aborted by an
 * I/O error (a snapshot process that failed or was killed, _metadata or
 * in-flight data that could not be written, a missing state file) or by
 * its timeout counts as a failure; declined ones (subsumed, alignment
 * cancelled) do not. More than tolerable_failed consecutive failures fail
 * the job through cfg.fail with the last failure's message.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef TD_CHECKPOINT_H
#define TD_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "wbuf.h"
#include "metadata.h"

typedef struct td_ckpt_config {
  const char *dir;        /* the job's checkpoint directory, created if
                             missing; NULL: no files, final commit only */
  int64_t interval_ms;    /* <= 0: no periodic checkpoints */
  int64_t timeout_ms;     /* abort a checkpoint pending this long (> 0) */
  int64_t min_pause_ms;   /* >= 0: from a completion to the next trigger */
  int max_concurrent;     /* >= 1 checkpoints pending at a time */
  int retained;           /* >= 1 completed checkpoints kept */
  int64_t first_id;       /* >= 1: the first checkpoint's id */
  const void *job_info;   /* stored in every _metadata (TD_META_JOB) */
  size_t job_info_len;
  const char *job_name;   /* stored in _metadata and every state file's
                             identity; NULL: "" */
  /* Per subtask (job order), the names of the state files its snapshot
   * writes, separated by '\n'; a checkpoint missing one is aborted. NULL:
   * not checked, and only in-flight and final-state files are listed in
   * _metadata besides them. */
  const char *const *expected;
  /* Consecutive checkpoint failures tolerated before the job fails
   * (Flink's tolerable-failed-checkpoints); < 0: any number. */
  int tolerable_failed;
  /* Called once, from the coordinator's thread, when the job must fail
   * (too many failed checkpoints); NULL: failures are only logged. */
  void (*fail)(void *ud, const char *message);
  void *fail_ud;
  /* Where warnings go (a checkpoint that could not be written, ...): one
   * line without newline; NULL: dropped. Called from the coordinator's
   * thread. The library never prints. */
  void (*log)(void *ud, const char *line);
  void *log_ud;
  /* Called (from the coordinator's thread, its lock held: do no more than
   * signal) when source subtask `subtask` is asked to inject a barrier, so
   * that a source waiting for output credit wakes up and injects it (a
   * trigger message, Flink's triggerCheckpointAsync); NULL: none. */
  void (*on_trigger)(void *ud, int subtask);
  void *trigger_ud;
  /* The job id users see (tide list), in savepoint directory names
   * (savepoint-<job_id>-<n>); NULL: "job". Copied. */
  const char *job_id;
  /* Cluster mode (docs/CLUSTER.md): a job whose subtasks run in several
   * processes has one coordinator of the whole job, in its job master, and
   * a participant coordinator in each task manager.
   *
   * The whole job's coordinator (local NULL) reaches remote subtasks
   * through these callbacks when they are set, called from its thread with
   * its lock held (do no more than queue a message): on_request asks
   * source subtask `subtask` for barrier id (kind TD_CKPT_*, stop TD_STOP_*,
   * path: a savepoint's directory, else NULL); on_complete tells that id
   * completed (final: the job's final checkpoint); on_abort that it was
   * aborted. Remote subtasks answer with td_coord_remote_ack,
   * td_coord_decline, td_coord_finishing and td_coord_finished.
   *
   * A participant (local non-NULL: local[i] tells whether subtask i runs in
   * this process) triggers nothing, writes no _metadata, removes no
   * directory and times nothing out: checkpoints begin with
   * td_coord_remote_trigger and end with td_coord_remote_complete or
   * td_coord_remote_abort. Each local subtask's acknowledgement (its
   * snapshot child exited 0 and its in-flight data is written) goes to
   * on_ack with the files it wrote (files[0..n), names relative to the
   * checkpoint's directory, shared ones as "../shared/<name>", with their
   * sizes and CRC32Cs; borrowed for the call), a decline or failure to on_decline, a subtask's final state to
   * on_finishing / on_finished; called with the lock held. */
  const unsigned char *local;
  void (*on_request)(void *ud, int subtask, int64_t id, int kind, int stop, const char *path);
  void (*on_complete)(void *ud, int64_t id, int kind, int stop, int final);
  void (*on_abort)(void *ud, int64_t id);
  void (*on_ack)(void *ud, int64_t id, int subtask, const char *inflight,
                 const td_meta_file_t *files, size_t n);
  void (*on_decline)(void *ud, int64_t id, int subtask, const char *reason, int counted);
  void (*on_finishing)(void *ud, int subtask);
  void (*on_finished)(void *ud, int subtask, int n, const char *const *names, int ok);
  void *remote_ud;
} td_ckpt_config_t;

/* What a snapshot is for (td_coord_kind). */
enum {
  TD_CKPT_CHECKPOINT = 1, /* periodic, owned by the runtime */
  TD_CKPT_SAVEPOINT = 2   /* user-triggered, owned by the user */
};

/* What a savepoint does to the job once it completes (Flink's
 * stop-with-savepoint, FLIP-34): nothing, stop (sources end after the
 * savepoint barrier, no final watermark), or drain (sources emit the MAX
 * watermark and end, the savepoint is taken of the finished job). */
enum { TD_STOP_NONE = 0, TD_STOP_SUSPEND = 1, TD_STOP_DRAIN = 2 };

/* Status of a checkpoint or savepoint in td_coord_history. */
enum { TD_CKPT_IN_PROGRESS = 0, TD_CKPT_COMPLETED = 1, TD_CKPT_FAILED = 2 };

/* One entry of the coordinator's history (Flink's checkpoint statistics:
 * /jobs/:jobid/checkpoints). */
typedef struct td_coord_record {
  int64_t id;
  int kind;             /* TD_CKPT_CHECKPOINT or TD_CKPT_SAVEPOINT */
  int stop;             /* TD_STOP_* */
  int status;           /* TD_CKPT_* */
  int final;            /* the final checkpoint of a finished job */
  int64_t trigger_ms;   /* wall time of the trigger, ms since the epoch */
  int64_t duration_ms;  /* trigger to _metadata (or to the failure) */
  uint64_t size;        /* bytes of the files _metadata lists */
  char path[1024];      /* the directory (chk-<n> or the savepoint) */
  char reason[256];     /* why it failed */
} td_coord_record_t;

/* How many entries td_coord_history keeps (the newest). */
#define TD_COORD_HISTORY 64

typedef struct td_coord td_coord_t;

/*
 * td_coord_new - a coordinator for n_subtasks subtasks (job order);
 * is_source[i] tells whether subtask i is a source (has no input gate).
 * The config's strings and job_info are copied.
 * Returns 0 and *out; TD_EINVAL (bad config, with err); -errno when the
 * directory cannot be created; TD_ENOMEM.
 */
int td_coord_new(td_coord_t **out, const td_ckpt_config_t *cfg, int n_subtasks,
                 const unsigned char *is_source, char *err, size_t errlen);

/* td_coord_start - start the coordinator's thread. 0 or TD_ENOMEM. */
int td_coord_start(td_coord_t *c);

/*
 * td_coord_stop - stop the thread (joins it), abort pending checkpoints
 * (their children are killed and reaped, their directories removed) and
 * wake every waiter. Idempotent.
 */
void td_coord_stop(td_coord_t *c);

/* td_coord_free - stop, then free (NULL is a no-op). */
void td_coord_free(td_coord_t *c);

/*
 * td_coord_requested - the newest checkpoint source subtask `subtask` is
 * asked to inject, or 0. A source compares it with the last id it injected.
 */
int64_t td_coord_requested(td_coord_t *c, int subtask);

/*
 * td_coord_chk_dir - the directory of checkpoint id into buf ("" when the
 * coordinator has no directory). Returns buf.
 */
char *td_coord_chk_dir(const td_coord_t *c, int64_t id, char *buf, size_t len);

/* td_coord_finished_dir - DIR/finished into buf ("" without a directory). */
char *td_coord_finished_dir(const td_coord_t *c, char *buf, size_t len);

/*
 * td_coord_snapshot_started - subtask took its snapshot of checkpoint id:
 * the child `pid` writes its state files and exits 0 on success (pid 0: the
 * files are written already; pid TD_COORD_ASYNC: a thread of this process
 * writes them and reports with td_coord_snapshot_written). err_fd (or -1): the read end of a pipe on
 * which the child writes a one-line message before it exits non-zero; the
 * coordinator takes it (closes it) and puts the message into the abort
 * reason. expect_inflight: the subtask will also call td_coord_inflight
 * for id (unaligned mode). An id that is not pending (aborted, unknown)
 * gets its child killed and reaped.
 */
void td_coord_snapshot_started(td_coord_t *c, int64_t id, int subtask,
                               pid_t pid, int err_fd, int expect_inflight);

/* td_coord_snapshot_started's pid of a snapshot written by a thread. */
#define TD_COORD_ASYNC ((pid_t)-1)

/*
 * td_coord_snapshot_written - the thread writing subtask's snapshot of
 * checkpoint id (td_coord_snapshot_started with TD_COORD_ASYNC) is done:
 * its files are written (error NULL) and files[0 .. n) lists every one its
 * snapshot needs, as _metadata will list them (names relative to the
 * checkpoint's directory, shared ones as "../shared/<name>", sizes, CRCs;
 * copied; Flink's acknowledgement with the state handles): _metadata lists
 * those, after checking that they include the expected state files and
 * are in the directory at the size given. Or it failed with the one-line
 * message error and the checkpoint is aborted, counted as a failure (a
 * failure of the asynchronous part, as Flink counts it). An id no longer
 * pending is ignored.
 */
void td_coord_snapshot_written(td_coord_t *c, int64_t id, int subtask,
                               const td_meta_file_t *files, size_t n, const char *error);

/*
 * td_coord_inflight - the in-flight input data of subtask for checkpoint
 * id (unaligned mode): n byte strings, bufs[i] the data received on
 * channel tags[i] between the snapshot and that channel's barrier. The
 * coordinator takes the buffers (and frees them) and writes them, off the
 * task thread, to DIR/chk-<id>/<name> as a state file with one section per
 * channel (tag = channel index).
 */
void td_coord_inflight(td_coord_t *c, int64_t id, int subtask,
                       const char *name, int n, const uint32_t *tags,
                       td_wbuf_t *bufs);

/* td_coord_decline - subtask gave up checkpoint id (subsumed, alignment
 * timed out, snapshot failed): the checkpoint is aborted. */
void td_coord_decline(td_coord_t *c, int64_t id, int subtask,
                      const char *reason);

/*
 * td_coord_abort_snapshots - subtask is failing or cancelled and is about
 * to close its state (a RocksDB backend removes its working directory,
 * where a snapshot process may still be reading and writing): its snapshot
 * processes still running are killed and reaped, its snapshots written by
 * a thread (which the caller stopped first) are given up, and their
 * checkpoints fail (not counted as checkpoint failures: the subtask's failure is what
 * the job reports).
 */
void td_coord_abort_snapshots(td_coord_t *c, int subtask);

/*
 * td_coord_finishing - subtask's input ended and it is taking its final
 * state (which may upload shared files, shared.h): no shared file is
 * swept until it calls td_coord_finished.
 */
void td_coord_finishing(td_coord_t *c, int subtask);

/*
 * td_coord_finished - subtask's input ended and it wrote its final state
 * files, named names[0..n-1], in td_coord_finished_dir (n may be 0).
 * ok 0: writing them failed; the job is failing anyway.
 */
void td_coord_finished(td_coord_t *c, int subtask, int n,
                       const char *const *names, int ok);

/* td_coord_is_pending - whether checkpoint id was triggered and is
 * neither complete nor aborted. */
int td_coord_is_pending(td_coord_t *c, int64_t id);

/* td_coord_error - why the final checkpoint failed, or NULL. */
const char *td_coord_error(td_coord_t *c);

/* td_coord_completed - the newest completed checkpoint id, 0 before any. */
int64_t td_coord_completed(td_coord_t *c);

/*
 * td_coord_wait - wait up to timeout_ms (< 0: no limit) for a completed
 * checkpoint newer than `after` or for the final one.
 * Returns 1 with *completed (newest completed id) and *final (the final
 * checkpoint completed), 0 on timeout, -1 once stopped without a final
 * checkpoint or once the final checkpoint failed (td_coord_error says why).
 */
int td_coord_wait(td_coord_t *c, int64_t after, int timeout_ms,
                  int64_t *completed, int *final);

/* Counters, for tests and benchmarks. */
typedef struct td_coord_stats {
  int64_t completed, aborted;   /* checkpoints written (with a directory,
                                   the final one included) */
  int64_t last_duration_ms;     /* trigger to _metadata of the last one */
  int64_t sum_duration_ms, max_duration_ms; /* over periodic checkpoints */
  int64_t pauses;               /* snapshots taken by subtasks */
  int64_t forked;               /* of them, by a snapshot child (the
                                   others without fork: asyncsnap.h) */
  int64_t sum_pause_us, max_pause_us; /* their synchronous part */
} td_coord_stats_t;

void td_coord_stats(td_coord_t *c, td_coord_stats_t *out);

/* A completed periodic checkpoint's trigger-to-complete time. */
typedef struct td_coord_duration {
  int64_t ms;       /* from the trigger to _metadata */
  int after_finish; /* a subtask had finished (end of input) when it was
                       triggered: it may have waited for a downstream
                       subtask to drain its input and finish too */
} td_coord_duration_t;

/*
 * td_coord_durations - the trigger-to-complete times of the periodic
 * checkpoints completed so far, in completion order, into out[0 .. max).
 * Returns how many completed (may exceed max; only max are written).
 */
size_t td_coord_durations(td_coord_t *c, td_coord_duration_t *out, size_t max);

/*
 * td_coord_trigger_savepoint - trigger a savepoint now (Flink's
 * CheckpointCoordinator.triggerSavepoint): always aligned, into its own
 * directory DIR/savepoint-<job_id>-<n> (DIR created if missing, the
 * savepoint directory must not exist), with the checkpoint id sequence's
 * next id n. Savepoints are not subject to the interval or max_concurrent,
 * do not subsume checkpoints and are not subsumed, do not count as
 * checkpoint failures, and are never removed by the coordinator once
 * complete. A savepoint completes like a checkpoint (every subtask's state
 * files, _metadata last with TD_META_SAVEPOINT); subtasks that finished
 * have their final state files linked (or copied across file systems).
 * stop: TD_STOP_* (td_coord_kind tells the sources). A completed stop
 * savepoint counts as the job's last completed checkpoint (sinks commit
 * what they pre-committed at it), ends periodic checkpoints, and the final
 * checkpoint is then not written (the job did not finish: the savepoint
 * is where it continues).
 * Returns 0 with *id and path (the savepoint directory); TD_EINVAL (no
 * checkpoint directory, every subtask finished, a stop in progress);
 * -EEXIST (the savepoint directory exists); -errno (it cannot be
 * created); TD_ENOMEM; each with a one-line message in err.
 */
int td_coord_trigger_savepoint(td_coord_t *c, const char *dir, int stop, int64_t *id,
                               char *path, size_t pathlen, char *err, size_t errlen);

/*
 * td_coord_remote_ack - (the whole job's coordinator) remote subtask
 * `subtask` acknowledged id: its state files are written; inflight: the
 * name of its in-flight data file (unaligned), or NULL; files[0..n): the
 * files its snapshot wrote (on_ack's list; copied). _metadata lists
 * exactly these for the subtask, once each is found in the checkpoint
 * directory with its size and the subtask's expected state files are
 * among them (else the checkpoint is aborted with a message naming the
 * file). n == 0: the coordinator lists the subtask's files itself.
 */
void td_coord_remote_ack(td_coord_t *c, int64_t id, int subtask, const char *inflight,
                         const td_meta_file_t *files, size_t n);

/*
 * td_coord_remote_decline - (the whole job's coordinator) remote subtask
 * `subtask` could not take its part of id: the checkpoint is aborted;
 * counted: an I/O failure that counts towards tolerable_failed (else a
 * decline, as td_coord_decline).
 */
void td_coord_remote_decline(td_coord_t *c, int64_t id, int subtask, const char *reason,
                             int counted);

/*
 * td_coord_remote_trigger - (a participant) the job's coordinator asks for
 * barrier id (kind TD_CKPT_*, stop TD_STOP_*, path: a savepoint's
 * directory or NULL): the local running sources inject it. Returns 0, or
 * TD_ENOMEM.
 */
int td_coord_remote_trigger(td_coord_t *c, int64_t id, int kind, int stop, const char *path);

/*
 * td_coord_remote_complete - (a participant) id completed (final: the
 * job's final checkpoint): pending checkpoints up to it end, waiters wake
 * (sinks commit).
 */
void td_coord_remote_complete(td_coord_t *c, int64_t id, int kind, int stop, int final);

/* td_coord_remote_abort - (a participant) id was aborted: its snapshot
 * children are killed and reaped. */
void td_coord_remote_abort(td_coord_t *c, int64_t id, const char *why);

/*
 * td_coord_kind - what checkpoint id is: TD_CKPT_CHECKPOINT,
 * TD_CKPT_SAVEPOINT, or 0 when it is not pending; *stop (may be NULL)
 * receives its TD_STOP_* value.
 */
int td_coord_kind(td_coord_t *c, int64_t id, int *stop);

/*
 * td_coord_await - wait up to timeout_ms (< 0: no limit) until checkpoint
 * or savepoint id completed or failed. Returns TD_CKPT_COMPLETED,
 * TD_CKPT_FAILED (reason, may be NULL, receives why), or
 * TD_CKPT_IN_PROGRESS on timeout; an id the history no longer holds (or
 * never held) counts as failed.
 */
int td_coord_await(td_coord_t *c, int64_t id, int timeout_ms, char *reason, size_t len);

/*
 * td_coord_history - the newest checkpoints and savepoints (at most
 * TD_COORD_HISTORY, oldest first) into out[0 .. max). Returns how many
 * were written.
 */
size_t td_coord_history(td_coord_t *c, td_coord_record_t *out, size_t max);

/* One subtask's part in a checkpoint (Flink's checkpoint details per
 * subtask, SubtaskCheckpointStatistics); times in microseconds. */
typedef struct td_coord_subtask_stats {
  int reported;           /* it took a snapshot of this checkpoint (0: not
                             yet, or it had finished: final state linked) */
  int64_t start_delay_us; /* trigger to the first barrier reaching it (a
                             source: to its injection) */
  int64_t alignment_us;   /* first barrier to the last (to the snapshot) */
  int64_t sync_us;        /* the synchronous part, on the task thread
                             (the fork, forwarding the barrier) */
  int64_t async_us;       /* the end of the synchronous part to the
                             acknowledgement (the child wrote the files;
                             to the coordinator's 5 ms tick) */
  uint64_t size;          /* bytes of its files the _metadata lists (Flink's
                             checkpointed size); 0 before completion */
  int64_t sync_end_us;    /* internal: when the synchronous part ended */
} td_coord_subtask_stats_t;

/*
 * td_coord_snapshot_times - subtask's figures for checkpoint id, in
 * microseconds of CLOCK_MONOTONIC (td_task_now_us): when the first barrier
 * of id reached it (a source: when it injected it), when the snapshot
 * started (the last barrier) and when the synchronous part ended. Kept
 * with the history entry of id (td_coord_subtask_history); an id the
 * history does not hold is ignored.
 */
void td_coord_snapshot_times(td_coord_t *c, int64_t id, int subtask, int64_t first_barrier_us,
                             int64_t start_us, int64_t end_us);

/*
 * td_coord_subtask_history - the per-subtask figures of history entry id
 * (job order, one per subtask) into out[0 .. max). Returns how many were
 * written: 0 when the history no longer holds id.
 */
size_t td_coord_subtask_history(td_coord_t *c, int64_t id, td_coord_subtask_stats_t *out,
                                size_t max);

/* td_coord_record_pause - a subtask's synchronous snapshot part took us
 * microseconds (for td_coord_stats). */
void td_coord_record_pause(td_coord_t *c, int64_t us);

#endif
