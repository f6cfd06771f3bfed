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

#include "job.h"
#include "wbuf.h"

/* A record without a timestamp. */
#define TD_NO_TIMESTAMP INT64_MIN

/* Default buffer timeout (Flink's execution.buffer-timeout), ms. */
#define TD_BUFFER_TIMEOUT_DEFAULT_MS 100

typedef struct td_task td_task_t;

/* What td_task_poll reports after the records of a batch. */
typedef enum {
  TD_TASK_EV_NONE = 0,
  TD_TASK_EV_WATERMARK = 1, /* value: the new input watermark (valve.h) */
  TD_TASK_EV_IDLE = 2,      /* the input turned idle */
  TD_TASK_EV_ACTIVE = 3,    /* the input turned active again */
  TD_TASK_EV_BARRIER = 4    /* value: checkpoint id, aligned per the job's
                               mode: snapshot now (td_task_snapshot) */
} td_task_event_t;

/* Results of td_task_poll. */
enum {
  TD_TASK_END = 0,     /* every input ended */
  TD_TASK_BATCH = 1,   /* *batch holds records and/or an event */
  TD_TASK_TIMEOUT = 2  /* nothing within the timeout */
};

/*
 * A batch of record views. Record i is the MessagePack value
 * data[off[i] .. end[i]); ts[i] its timestamp or TD_NO_TIMESTAMP. The
 * views are borrowed: valid until the next td_task_poll or td_task_free.
 */
typedef struct td_batch {
  int n;               /* records, >= 0 */
  int edge;            /* the job edge (0-based) they came over; -1 if none */
  int has_ts;          /* some record has a timestamp (else ts is NULL) */
  const char *data;
  const uint32_t *off, *end;
  const int64_t *ts;
  int event;           /* td_task_event_t, after the records */
  int64_t value;
} td_batch_t;

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

/* td_task_error - the message of the last error (a static "" if none). */
const char *td_task_error(const td_task_t *t);

/* ---- input ---- */

/*
 * td_task_poll - the next batch of the input: records up to the first
 * in-band event for the task and at most the input's budget (input.h),
 * then that event if any. A batch starts only when every output has credit
 * for it (waiting meanwhile, still taking unaligned barriers); partly
 * filled output buffers are sent before the task waits, and at the buffer
 * timeout. timeout_ms: < 0 no limit, 0 no wait.
 * Returns TD_TASK_BATCH, TD_TASK_END, TD_TASK_TIMEOUT, TD_ECANCELED, or
 * TD_ECORRUPT / TD_EINVAL (a corrupt exchange buffer, a barrier protocol
 * error: td_task_error says which). A task without inputs gets TD_TASK_END.
 */
int td_task_poll(td_task_t *t, int timeout_ms, td_batch_t *batch);

/*
 * td_task_replay_inflight - queue the in-flight data of an unaligned
 * checkpoint (a state file of one section per input channel, metadata.h)
 * to be delivered before anything from the gate. 0, or a code with a
 * message naming the file.
 */
int td_task_replay_inflight(td_task_t *t, const char *path);

/*
 * td_task_tick - a source between batches: sends partly filled buffers at
 * the buffer timeout, and waits until every output can take a batch. *id
 * receives a checkpoint the coordinator asks this source to inject (then
 * snapshot with td_task_snapshot and call again), or 0.
 * Returns 0 or TD_ECANCELED.
 */
int td_task_tick(td_task_t *t, int64_t *id);

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

/*
 * td_task_emit - send one encoded record (len bytes, a MessagePack value)
 * over edge with timestamp ts (or TD_NO_TIMESTAMP); key as for
 * td_task_record_begin; a broadcast edge sends it to every target.
 * Returns 0, TD_ECANCELED, TD_ENOMEM or TD_EINVAL.
 */
int td_task_emit(td_task_t *t, int edge, const void *rec, size_t len, int64_t ts,
                 const void *key, size_t klen);

/*
 * td_task_emit_batch - td_task_emit for n records back to back in data:
 * record i is data[(i ? ends[i-1] : 0) .. ends[i]), with ts[i] (ts may be
 * NULL) and, on a hash edge, key bytes keys[(i ? key_ends[i-1] : 0) ..
 * key_ends[i]). Returns 0 or an error as td_task_emit.
 */
int td_task_emit_batch(td_task_t *t, int edge, const char *data, const uint32_t *ends,
                       int n, const int64_t *ts, const char *keys,
                       const uint32_t *key_ends);

/* td_task_emit_watermark - a watermark (ms) on every channel of edge. */
int td_task_emit_watermark(td_task_t *t, int edge, int64_t wm);

/* td_task_emit_status - watermark status idle (1) or active (0) on every
 * channel of edge. */
int td_task_emit_status(td_task_t *t, int edge, int idle);

/* td_task_flush - send every partly filled output buffer now. */
void td_task_flush(td_task_t *t);

/* td_task_flush_due - send partly filled output buffers if the buffer
 * timeout passed since the last flush (a timeout of 0: always). Hosts call
 * it after each batch they emitted. */
void td_task_flush_due(td_task_t *t);

/* td_task_finish - the end of this subtask's output: end of partition on
 * every output channel, after everything sent. 0 or TD_ECANCELED. */
int td_task_finish(td_task_t *t);

/* ---- checkpoints ---- */

/* td_task_checkpoint_pending - whether checkpoint id is pending (a barrier
 * of a checkpoint no longer pending is forwarded, not snapshot). */
int td_task_checkpoint_pending(td_task_t *t, int64_t id);

/* td_task_forward_barrier - send barrier id on every output without a
 * snapshot (a source: counts as injected). 0 or an error. */
int td_task_forward_barrier(td_task_t *t, int64_t id);

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

/* td_task_child_write - in the snapshot child: write the state file name
 * (the value's bytes: one data section, after the identity section) into
 * the checkpoint's directory. 0 or a code (message: td_task_error). */
int td_task_child_write(td_task_t *t, const char *name, const void *data, size_t len);

/* td_task_child_exit - end the snapshot child: exit 0, or with `error`
 * (non-NULL) reported to the coordinator, which aborts the checkpoint. */
_Noreturn void td_task_child_exit(td_task_t *t, const char *error);

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

/* td_task_completed - the newest completed checkpoint id, 0 before any. */
int64_t td_task_completed(td_task_t *t);

/* td_task_now_us - the monotonic clock the pause statistics use, us. */
int64_t td_task_now_us(void);

/* ---- the job ---- */

/* td_task_fail - fail the job with message (the first failure wins). */
void td_task_fail(td_task_t *t, const char *message);

/* td_task_cancelled - whether the job failed or was cancelled. */
int td_task_cancelled(const td_task_t *t);

#endif
