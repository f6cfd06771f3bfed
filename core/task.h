/*
 * task.h - the task engine of one subtask: everything a subtask does
 * besides running its operators, over bytes, without a Lua VM.
 *
 * A VM host (core/host_lua54.c for Lua 5.4, the FFI bindings for LuaJIT,
 * C modules) runs the operators of a chain and turns record views into its
 * values and back; the engine owns the subtask's I/O:
 *
 *   input    the checkpointed input (input.h: replayed in-flight data,
 *            barrier alignment, the capture of unaligned checkpoints), the
 *            watermark valve (valve.h), the poll budget, and the decoding
 *            of exchange buffers into batches of record views;
 *   output   the partitioners (exchange.h), the exchange buffers records
 *            are encoded into, in-band events, the buffer timeout, and
 *            waiting for output credit between batches (FLIP-227);
 *   snapshot the checkpoint orchestration of a subtask: barriers to inject
 *            (sources), the fork of the snapshot child, the state files it
 *            writes (with their identity, metadata.h), forwarding barriers
 *            and cancel markers, final states, waiting for completion.
 *
 * The part of the engine a host binds (polling, emitting, events, errors)
 * is public, in tide.h, which the LuaJIT host binds by FFI; what needs the
 * job's internals (creating the engine, the snapshot child) is here.
 * Records are MessagePack values (msgpack.h, codec.h). Timestamps travel
 * as in-band entries before their record (inband.h); in the engine's API a
 * record without one has TD_NO_TIMESTAMP.
 *
 * Errors. Functions return 0 (or a count) or a negative code: TD_ECANCELED
 * when the job was cancelled or failed under this subtask (not a failure
 * of its own: the host unwinds quietly), any other code with a one-line
 * message in td_task_error(t).
 *
 * Thread safety: a task belongs to its subtask's thread.
 */
#ifndef TD_TASK_H
#define TD_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "asyncsnap.h"
#include "job.h"
#include "tide.h"
#include "wbuf.h"

/*
 * td_task_new - the engine of subtask st (its gate and outputs are wired by
 * td_job_run), with the job's buffer timeout and alignment mode.
 * Returns 0 and *out, or TD_ENOMEM.
 */
int td_task_new(td_task_t **out, td_subtask_t *st);

/* td_task_free - free the engine (NULL is a no-op); input buffers go back
 * to their channels. */
void td_task_free(td_task_t *t);

/* td_task_subtask - the subtask the engine runs. */
td_subtask_t *td_task_subtask(const td_task_t *t);

/* ---- input ---- */

/*
 * td_task_replay_inflight - queue the in-flight data of an unaligned
 * checkpoint (a state file of one section per input channel, metadata.h)
 * to be delivered before anything from the gate. 0, or a code with a
 * message naming the file.
 */
int td_task_replay_inflight(td_task_t *t, const char *path);

/* ---- output ---- */

/*
 * td_task_record_begin - start a record on job edge `edge` (an output of
 * this subtask; not a broadcast edge): the target is chosen by the edge's
 * partitioner (hash: of the canonical key bytes key[0..klen); forward,
 * rebalance: key ignored), its timestamp entry written if ts is not
 * TD_NO_TIMESTAMP; *buf is the exchange buffer to append the record's
 * MessagePack value to. Finish with td_task_record_end (ok = 1) or undo
 * with ok = 0 (the buffer is set back). Returns 0, TD_ECANCELED, TD_ENOMEM
 * or TD_EINVAL (not an output edge, a broadcast edge).
 */
int td_task_record_begin(td_task_t *t, int edge, const void *key, size_t klen,
                         int64_t ts, td_wbuf_t **buf);

/* td_task_record_end - the record of td_task_record_begin is complete
 * (ok) or abandoned (!ok). */
void td_task_record_end(td_task_t *t, int ok);

/* ---- checkpoints ---- */

/*
 * td_task_snapshot - take this subtask's snapshot of checkpoint id here (a
 * source between batches, a task at its aligned barrier): fork. In the
 * child (*child = 1, return 0) the core's allocations come from an arena
 * (alloc.h: no malloc after fork in a threaded process); the host gathers
 * its state, writes each file with td_task_child_write and ends with
 * td_task_child_exit. In the parent (*child = 0) the coordinator gets the
 * child, the barrier is forwarded at once, and the pause since start_us
 * (td_task_now_us) is recorded. Without a checkpoint directory there is no
 * child and the barrier is just forwarded. If fork fails, the checkpoint
 * is declined, a cancel marker is forwarded, and a code is returned.
 */
int td_task_snapshot(td_task_t *t, int64_t id, int64_t start_us, int *child);

/*
 * td_task_snapshot_async - take this subtask's snapshot of checkpoint id
 * here without fork (asyncsnap.h): a holds the state files' bytes and the
 * RocksDB checkpoints to upload; it is taken (freed whatever the result).
 * The subtask's snapshot thread (started at the first call) writes it and
 * acknowledges to the coordinator (td_coord_snapshot_written); the barrier
 * is forwarded at once and the pause since start_us recorded. Without a
 * checkpoint directory a is dropped and the barrier just forwarded.
 * Returns 0 or a code (TD_ECANCELED, TD_ENOMEM).
 */
int td_task_snapshot_async(td_task_t *t, int64_t id, int64_t start_us, td_asnap_t *a);

/* td_task_snapshot_failed - this subtask's snapshot of checkpoint id
 * could not be taken (error: why, one line): the checkpoint fails (a
 * counted failure, as a failed snapshot child), the barrier is forwarded.
 * Returns 0 or TD_ECANCELED. */
int td_task_snapshot_failed(td_task_t *t, int64_t id, int64_t start_us, const char *error);

/* td_task_child_write - in the snapshot child: write the state file name
 * (the value's bytes: one data section, after the identity section) into
 * the checkpoint's directory. 0 or a code (message: td_task_error). */
int td_task_child_write(td_task_t *t, const char *name, const void *data, size_t len);

/* td_task_child_exit - end the snapshot child: exit 0, or with `error`
 * (non-NULL) reported to the coordinator, which aborts the checkpoint. */
_Noreturn void td_task_child_exit(td_task_t *t, const char *error);

/* td_task_abort_snapshots - this subtask failed or was cancelled, or it
 * is about to close its state at its end: stop its snapshot thread
 * (cancelling what it writes) and kill its snapshot processes still
 * running, before its state is closed (td_coord_abort_snapshots). */
void td_task_abort_snapshots(td_task_t *t);

/* td_task_keeps_final_state - whether this subtask's final state is kept
 * (the job checkpoints: a checkpoint or savepoint taken after the subtask
 * finished holds it). 1 or 0; without checkpoints nothing reads it, and
 * the host need not collect it. */
int td_task_keeps_final_state(td_task_t *t);

/* td_task_finishing - this subtask is about to take its final state
 * (td_coord_finishing); td_task_finished follows. */
void td_task_finishing(td_task_t *t);

/*
 * td_task_finished - this subtask's input ended and its end was sent
 * (td_task_finish): write its final state files (names[i] holding
 * data[i][0 .. lens[i])) when the job checkpoints, and report to the
 * coordinator. 0 or a code.
 */
int td_task_finished(td_task_t *t, int n, const char *const *names,
                     const void *const *data, const size_t *lens);

/*
 * td_task_wait_checkpoint - wait until a checkpoint newer than `after`
 * completed, or the final one: *id (the newest completed) and *final.
 * Returns 0, or TD_ECANCELED (the job failed meanwhile; a failed final
 * checkpoint fails the job first).
 */
int td_task_wait_checkpoint(td_task_t *t, int64_t after, int64_t *id, int *final);

#endif
