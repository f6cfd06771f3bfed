/*
 * barrier.h - the receiving side's checkpoint barrier handler for one
 * subtask's input gate: barrier alignment (Flink's CheckpointBarrierHandler).
 *
 * Asynchronous barrier snapshotting (Carbone et al., "Lightweight
 * Asynchronous Snapshots for Distributed Dataflows", 2015): sources inject
 * barrier n into their outputs; a barrier flows in order with the records of
 * each channel and splits them into "before checkpoint n" and "after". A
 * subtask with several input channels must snapshot its state at a point
 * where it has processed everything before barrier n on every channel and
 * nothing after it. The aligner decides, buffer by buffer, how to get there:
 *
 *   TD_ALIGN_EXACTLY_ONCE (aligned; Flink's SingleCheckpointBarrierHandler,
 *     aligned): once a channel delivered barrier n, its later buffers are
 *     held until every channel delivered barrier n, then the snapshot is
 *     triggered and the held buffers are released in arrival order.
 *   TD_ALIGN_AT_LEAST_ONCE (Flink's CheckpointBarrierTracker): barriers are
 *     only counted, nothing is held; the snapshot is triggered by the last
 *     barrier n. Records after barrier n on an early channel are already in
 *     the state, so recovery may replay them twice.
 *   TD_ALIGN_UNALIGNED (Flink's unaligned checkpoints, FLIP-76): the first
 *     barrier n triggers the snapshot at once. Every buffer that then arrives
 *     on a channel that has not yet delivered barrier n is "before n" but
 *     after the snapshot: it is in-flight data, processed now AND persisted
 *     with snapshot n, so that recovery replays it into the restored state.
 *     Nothing is held. (Unaligned barriers travel as priority events that
 *     overtake queued buffers; core/input.h captures what they overtook.)
 *
 * The aligner sees what the gate delivers, in arrival order, and knows
 * nothing of records or Lua. The caller (the subtask's input loop) feeds it:
 *
 *   for (;;) {
 *     td_buffer_t *b; int ch; size_t off = 0;
 *     int v = td_aligner_next_released(a, &b, &ch, &off);  released first
 *     if (v == 0) {                                        then the gate
 *       poll b from the gate; ch = its channel index;
 *       v = td_aligner_on_buffer(a, ch, b);
 *       if (v == TD_ALIGN_HELD) continue;                  the aligner has it
 *     }
 *     decode b from off; INFLIGHT: also persist its bytes (the records
 *     before its barrier, if it has one) as in-flight data of the pending
 *     checkpoint (td_aligner_pending). On an in-band entry:
 *       barrier n  -> td_aligner_on_barrier: TRIGGER: snapshot, forward the
 *                     barrier downstream; ABORTED/CANCELLED: decline and
 *                     forward a cancel marker. If b has entries after the
 *                     barrier, hand the rest back with td_aligner_on_buffer_at
 *                     (b, offset) and obey the new verdict (HELD: stop
 *                     decoding b, it comes back later at that offset).
 *       cancel n   -> td_aligner_on_cancel, likewise.
 *       end        -> td_aligner_on_end.
 *     recycle b when done with it (never while the aligner holds it); when
 *     the poll times out, td_aligner_check_timeout.
 *   }
 *
 * Rules (Flink's, checked against SingleCheckpointBarrierHandler and
 * CheckpointBarrierTracker): checkpoint ids are positive and increase; a
 * barrier of a newer checkpoint while one is pending aborts the pending one
 * (it is subsumed); barriers and cancel markers of the pending checkpoint's
 * predecessors, or of a checkpoint that completed or was aborted, are
 * ignored; a channel that ended counts as having delivered every later
 * barrier (Flink with checkpoints after tasks finished, FLIP-147: the
 * coordinator must then know the upstream subtask as finished). One
 * checkpoint is pending at a time in every mode: Flink's at-least-once
 * tracker follows up to 50 concurrent ones, but Tide's coordinator is to run
 * one checkpoint at a time (Flink's default max-concurrent-checkpoints, 1),
 * so a newer barrier simply subsumes the older.
 *
 * Held buffers keep their credit, so a blocked channel's sender stalls after
 * `credits` buffers (the backpressure Flink's blocked channels exert) and the
 * aligner holds at most credits x channels buffers. It does not own them:
 * td_aligner_free drops the references, the gate frees the buffers.
 *
 * Cost: O(1) per buffer, barrier, cancel marker and end of channel; starting
 * a checkpoint resets nothing (per-channel state is keyed by checkpoint id).
 * Holding a buffer takes a list node from a pool sized for credits x
 * channels at td_aligner_new (aligned mode only); the pool grows only past
 * that. The nodes are not intrusive through td_buffer_t.next, although it
 * is free while a buffer is held, because a node also keeps the channel
 * index and the resume offset.
 *
 * Thread safety: none; one aligner belongs to the thread that polls its gate.
 */
#ifndef TD_BARRIER_H
#define TD_BARRIER_H

#include <stddef.h>
#include <stdint.h>

#include "channel.h"

typedef enum {
  TD_ALIGN_EXACTLY_ONCE = 0, /* aligned: hold buffers after the barrier */
  TD_ALIGN_AT_LEAST_ONCE,    /* count barriers, hold nothing */
  TD_ALIGN_UNALIGNED         /* trigger on the first barrier, report in-flight */
} td_align_mode_t;

/* Verdicts on a buffer (td_aligner_on_buffer, td_aligner_next_released). */
enum {
  TD_ALIGN_PROCESS = 1,  /* process it now */
  TD_ALIGN_INFLIGHT = 2, /* unaligned: process it now and persist it as
                            in-flight data of the pending checkpoint */
  TD_ALIGN_HELD = 3      /* the aligner keeps it; it comes back through
                            td_aligner_next_released */
};

/* Events, OR-ed in the return value of the calls that take a
 * td_align_event_t; the matching field holds the checkpoint id. */
enum {
  TD_ALIGN_TRIGGER = 1 << 0,   /* triggered: snapshot this checkpoint now,
                                  then forward its barrier downstream */
  TD_ALIGN_ABORTED = 1 << 1,   /* aborted: the pending checkpoint is given up
                                  (subsumed, cancelled, timed out): decline
                                  it, forward a cancel marker, and in
                                  unaligned mode drop the snapshot and the
                                  in-flight data recorded for it */
  TD_ALIGN_CANCELLED = 1 << 2, /* cancelled: a cancel marker named a newer
                                  checkpoint that had not started here:
                                  decline it and forward the marker */
  TD_ALIGN_CAPTURED = 1 << 3   /* captured (unaligned): every channel
                                  delivered this checkpoint's barrier or
                                  ended: its in-flight data is complete */
};

typedef struct td_align_event {
  int64_t triggered; /* TD_ALIGN_TRIGGER, else 0 */
  int64_t aborted;   /* TD_ALIGN_ABORTED, else 0 */
  int64_t cancelled; /* TD_ALIGN_CANCELLED, else 0 */
  int64_t captured;  /* TD_ALIGN_CAPTURED, else 0 */
} td_align_event_t;

typedef struct td_aligner td_aligner_t;

/*
 * td_aligner_new - an aligner for a gate of n_channels channels (>= 1),
 * numbered 0 .. n_channels-1 as td_channel_index numbers them.
 * Returns 0 and *out, TD_EINVAL (n_channels < 1, unknown mode) or
 * TD_ENOMEM.
 */
int td_aligner_new(td_aligner_t **out, int n_channels, td_align_mode_t mode);

/*
 * td_aligner_free - free the aligner (NULL is a no-op). Buffers it still
 * holds or has released but not handed back are not touched: they belong
 * to their gate (td_gate_free frees them; drain td_aligner_next_released
 * first to recycle them instead).
 */
void td_aligner_free(td_aligner_t *a);

/*
 * td_aligner_on_buffer - classify buffer b, just delivered on `channel`,
 * before decoding it. Buffers must be fed in the order the gate delivers
 * them, and released buffers (td_aligner_next_released) before any newer
 * one from the gate, so each channel's order is kept.
 * Returns TD_ALIGN_PROCESS; TD_ALIGN_INFLIGHT (unaligned mode, a checkpoint
 * is pending and `channel` has not delivered its barrier yet: td_aligner_
 * pending gives the id); TD_ALIGN_HELD (aligned mode, a checkpoint is
 * pending and `channel` already delivered its barrier: the aligner keeps b
 * until the checkpoint triggers or aborts); or TD_EINVAL (channel out of
 * range or ended, b NULL) or TD_ENOMEM (the node pool could not grow; b is
 * not held).
 */
int td_aligner_on_buffer(td_aligner_t *a, int channel, td_buffer_t *b);

/*
 * td_aligner_on_buffer_at - td_aligner_on_buffer for the rest of b from
 * byte `offset`: a barrier was met inside b and the entries after it must be
 * classified anew. If held, b comes back from td_aligner_next_released with
 * this offset. Same returns.
 */
int td_aligner_on_buffer_at(td_aligner_t *a, int channel, td_buffer_t *b,
                            size_t offset);

/*
 * td_aligner_next_released - hand back the next buffer released by a
 * trigger or an abort, oldest first, with its channel and the offset to
 * resume decoding at (0 unless it was held through td_aligner_on_buffer_at).
 * It is classified again on the way out, as td_aligner_on_buffer would: a
 * buffer of a channel that is blocked by a newer checkpoint in the meantime
 * is held again and skipped. Drain it before polling the gate again.
 * Returns 0 when there is nothing to hand back (outputs untouched), or
 * TD_ALIGN_PROCESS with *out, *channel and *offset (either pointer may be
 * NULL).
 */
int td_aligner_next_released(td_aligner_t *a, td_buffer_t **out, int *channel,
                             size_t *offset);

/*
 * td_aligner_on_barrier - `channel` delivered the barrier of checkpoint id
 * (> 0) at now_ms (any monotonic clock in ms; it starts the alignment timer).
 * Fills *ev (may be NULL) and returns the OR of its events, 0 when there is
 * nothing to do yet, or TD_EINVAL (channel out of range or ended, id <= 0,
 * or a second barrier id on the same channel: a protocol error, nothing
 * changes):
 *   - id older than the newest seen, or equal to it when that checkpoint is
 *     no longer pending (completed or aborted): ignored, 0.
 *   - id newer: a pending checkpoint is aborted (ABORTED, subsumed; its held
 *     buffers are released) and id starts. Unaligned mode: TRIGGER at once.
 *   - the last channel of id (with the ended ones): aligned and at-least-
 *     once: TRIGGER, and held buffers are released; unaligned: CAPTURED.
 * Several events may come from one call: act on ABORTED (the older id)
 * first, then TRIGGER, then CAPTURED (unaligned, one open channel: the
 * same id as TRIGGER).
 */
int td_aligner_on_barrier(td_aligner_t *a, int channel, int64_t id,
                          int64_t now_ms, td_align_event_t *ev);

/*
 * td_aligner_on_barrier_kind - td_aligner_on_barrier, for a barrier that
 * may be aligned whatever the mode: aligned (non-zero) when checkpoint id
 * is a savepoint (an aligned barrier, inband.h). A checkpoint's first
 * barrier decides its mode; it is aligned (TD_ALIGN_EXACTLY_ONCE's
 * holding, TRIGGER when the last barrier comes, no in-flight data) in
 * at-least-once and unaligned gates too, as Flink takes savepoints aligned
 * (CheckpointOptions' AlignmentType ALIGNED).
 */
int td_aligner_on_barrier_kind(td_aligner_t *a, int channel, int64_t id, int aligned,
                               int64_t now_ms, td_align_event_t *ev);

/* td_aligner_current_mode - the mode of the newest checkpoint seen (the
 * gate's mode, or TD_ALIGN_EXACTLY_ONCE for an aligned barrier's). */
td_align_mode_t td_aligner_current_mode(const td_aligner_t *a);

/*
 * td_aligner_on_cancel - `channel` delivered a cancel marker for checkpoint
 * id (> 0): an upstream subtask declined it (Flink's CancelCheckpointMarker,
 * SingleCheckpointBarrierHandler.processCancellationBarrier).
 * Fills *ev (may be NULL) and returns its events, 0, or TD_EINVAL (channel
 * out of range or ended, id <= 0):
 *   - id is the pending checkpoint: ABORTED id, held buffers released.
 *   - id newer than any seen: a pending checkpoint is ABORTED (subsumed),
 *     and id is CANCELLED; its barriers will be ignored.
 *   - otherwise (old, completed or aborted already): ignored, 0.
 */
int td_aligner_on_cancel(td_aligner_t *a, int channel, int64_t id,
                         td_align_event_t *ev);

/*
 * td_aligner_on_end - `channel` ended: it counts from now on as having
 * delivered every barrier (Flink's CheckpointBarrierTracker with
 * checkpoints after tasks finished). If that was the last barrier the
 * pending checkpoint waited for: TRIGGER (aligned, at-least-once; held
 * buffers are released) or CAPTURED (unaligned).
 * Fills *ev (may be NULL); returns its events, 0, or TD_EINVAL (channel out
 * of range or ended already).
 */
int td_aligner_on_end(td_aligner_t *a, int channel, td_align_event_t *ev);

/*
 * td_aligner_check_timeout - abort the pending checkpoint if it started
 * (first barrier) at least timeout_ms before now_ms (Flink declines it with
 * CHECKPOINT_EXPIRED via the coordinator; here the subtask stops blocking
 * its channels on its own). timeout_ms <= 0 means no limit.
 * Returns TD_ALIGN_ABORTED with ev->aborted = id (held buffers released),
 * or 0.
 */
int td_aligner_check_timeout(td_aligner_t *a, int64_t now_ms,
                             int64_t timeout_ms, td_align_event_t *ev);

/*
 * td_aligner_pending - whether a checkpoint is pending: its first barrier
 * came and not yet the last (triggered already in unaligned mode).
 * Returns 1 with *id and *since_ms (either may be NULL: the now_ms of the
 * first barrier), or 0.
 */
int td_aligner_pending(const td_aligner_t *a, int64_t *id, int64_t *since_ms);

/* td_aligner_last_id - the newest checkpoint id seen (barrier or cancel
 * marker), 0 before any. */
int64_t td_aligner_last_id(const td_aligner_t *a);

/* td_aligner_held - buffers the aligner holds, plus those released and
 * not handed back yet. */
size_t td_aligner_held(const td_aligner_t *a);

/* td_aligner_blocked - whether `channel` is blocked: aligned (the mode or
 * the pending checkpoint's), a
 * checkpoint pending, and the channel delivered its barrier. 0 for a
 * channel out of range. */
int td_aligner_blocked(const td_aligner_t *a, int channel);

#endif
