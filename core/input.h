/*
 * input.h - a subtask's checkpointed input: its input gate, the barrier
 * aligner, the restored in-flight data to replay, the buffer being decoded,
 * and the in-flight data captured for an unaligned checkpoint (Flink's
 * CheckpointedInputGate with its CheckpointBarrierHandler, and the
 * ChannelStatePersister of each input channel).
 *
 * The input works on buffers and byte offsets; it knows nothing of records
 * or of Lua. The caller (the task loop) decodes the current buffer entry by
 * entry and reports the in-band control entries it meets:
 *
 *   for (;;) {
 *     int r = td_input_next(in, timeout, align_timeout, &events, &ev);
 *     EVENTS: act on events (barrier.h: ABORTED, then TRIGGER: snapshot and
 *             forward the barrier, then CAPTURED: td_input_take_inflight),
 *             then call again. DATA: decode:
 *     td_input_view(in, &v);  size_t off = v.off;
 *     while (off < v.len && fewer than td_input_budget(in) records) {
 *       barrier, cancel marker or end of channel at off ->
 *         events = td_input_control(in, kind, off, size, id, &ev); act;
 *         if (!td_input_view(in, &v)) stop (the aligner holds the buffer);
 *         off = v.off;
 *       anything else: decode it, off = after it
 *     }
 *     td_input_advance(in, off);            releases the buffer at its end
 *     ... td_input_returned(in, records) when handing the batch on
 *   }
 *
 * Unaligned checkpoints (FLIP-76). Barriers travel as priority events
 * (channel.h) and overtake the data queued in the gate. td_input_next
 * delivers a priority event before anything else, even while a buffer is
 * half decoded, and applies the capture rule. When barrier n of channel c
 * arrives and checkpoint n is the one being captured (it just triggered,
 * or triggered earlier on another channel), everything sent on c before
 * the barrier and not processed yet is in-flight data of n: the undecoded
 * rest of the current buffer if it is c's, and every buffer of c still
 * queued in the gate with a sequence number up to the barrier's. Those
 * bytes are copied into the capture of c at once, and processed normally
 * afterwards. Bytes that arrive on a channel that has not delivered barrier
 * n yet are captured as they are processed (the aligner's INFLIGHT
 * verdict). So every byte sent before barrier n on each channel is either
 * processed before the snapshot (it is in the state) or captured (replayed
 * into the restored state), never both, never neither: the first barrier
 * triggers the snapshot before another record is processed, and the current
 * buffer is classified again from its offset at every barrier.
 *
 * Restored in-flight data (td_input_replay) is delivered before anything
 * from the gate, and priority events wait until it has all been handed out
 * (td_input_replaying): a barrier never overtakes data of the previous
 * run, which is then always in the new snapshot's state. Control entries
 * inside replayed data are ignored.
 *
 * Aligned and at-least-once modes keep barriers in band; the input then
 * only passes buffers between the gate, the aligner and the caller.
 *
 * Poll budget: a batch of records that takes long to process delays the
 * next priority barrier. td_input_budget bounds the records to decode in
 * the next call, from how long the previous batch took (from
 * td_input_returned to the next td_input_budget): about
 * TD_INPUT_BATCH_TARGET_US per batch, doubling at most per call, at least
 * one record.
 *
 * Thread safety: none; an input belongs to the thread that polls its gate.
 */
#ifndef TD_INPUT_H
#define TD_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "barrier.h"
#include "channel.h"

/* Processing time aimed at per decoded batch, in microseconds. */
#define TD_INPUT_BATCH_TARGET_US 2000
/* The budget's bounds, in records, and the first budget. */
#define TD_INPUT_BUDGET_MIN 1
#define TD_INPUT_BUDGET_MAX 65536
#define TD_INPUT_BUDGET_START 64

/* Results of td_input_next. */
enum {
  TD_INPUT_END = 0,    /* every channel ended and nothing is left */
  TD_INPUT_DATA = 1,   /* a buffer is current: td_input_view */
  TD_INPUT_EVENTS = 2, /* checkpoint events: act on them, call again */
  TD_INPUT_TIMEOUT = 3 /* nothing came within the timeout */
};

typedef struct td_input td_input_t;

/* The buffer being decoded. */
typedef struct td_input_view {
  const char *data; /* its bytes, data[0 .. len) */
  size_t len;
  size_t off;       /* decode from here (an entry boundary) */
  int channel;      /* index of its channel in the gate */
  int tag;          /* its channel's tag (td_gate_new: the input edge) */
  int replay;       /* restored in-flight data (control entries ignored) */
} td_input_view_t;

/*
 * td_input_new - the input of a subtask over `gate` (not owned; it must
 * outlive the input), aligning barriers per `mode`.
 * Returns 0 and *out, TD_EINVAL (a gate without channels, a bad mode) or
 * TD_ENOMEM.
 */
int td_input_new(td_input_t **out, td_gate_t *gate, td_align_mode_t mode);

/*
 * td_input_free - free the input (NULL is a no-op): the current buffer and
 * those the aligner holds or released go back to the gate, replayed and
 * captured data are freed.
 */
void td_input_free(td_input_t *in);

/*
 * td_input_replay - queue `len` bytes of restored in-flight data of
 * `channel` (a copy is kept), delivered before anything from the gate, in
 * the order queued. Returns 0, TD_EINVAL (channel out of range) or
 * TD_ENOMEM.
 */
int td_input_replay(td_input_t *in, int channel, const void *data, size_t len);

/* td_input_replaying - whether restored in-flight data is still to be
 * decoded (priority events wait until it is not). */
int td_input_replaying(const td_input_t *in);

/*
 * td_input_next - make a buffer current or report checkpoint events.
 * First a priority event (unaligned barrier; none while replaying): the
 * capture rule above runs and its events are returned, or, when the
 * barrier starts or ends nothing, the call goes on. Then the current
 * buffer, if it has bytes left; then replayed data, buffers the aligner
 * released, and the gate, waiting up to timeout_ms (< 0: no limit; 0: not
 * at all), or less while an alignment must end after align_timeout_ms
 * (<= 0: no limit; Flink's checkpoint timeout at the task).
 * Returns TD_INPUT_DATA, TD_INPUT_EVENTS (*events: the barrier.h event
 * mask, > 0; *ev: their ids), TD_INPUT_TIMEOUT, TD_INPUT_END, or an
 * error: TD_ECANCELED (the gate was cancelled), TD_ECORRUPT (a priority
 * event that is not a barrier), TD_EINVAL (a second barrier of one id on a
 * channel: barrier.h), TD_ENOMEM.
 */
int td_input_next(td_input_t *in, int timeout_ms, int64_t align_timeout_ms,
                  int *events, td_align_event_t *ev);

/*
 * td_input_priority - deliver the next priority event, if one waits (and
 * no restored data is left to replay), without touching data buffers: the
 * step td_input_next takes first, for a task that waits for its outputs
 * before it decodes more. Returns 1 when an event was handled (*events: the
 * event mask, possibly 0), 0 when none waits, or an error as td_input_next.
 */
int td_input_priority(td_input_t *in, int *events, td_align_event_t *ev);

/* td_input_view - the current buffer into *v; 1, or 0 when there is none. */
int td_input_view(const td_input_t *in, td_input_view_t *v);

/*
 * td_input_control - the caller met an in-band control entry of the current
 * buffer at byte `at`, `size` bytes long: kind TD_EXT_BARRIER or
 * TD_EXT_CANCEL with checkpoint id, or TD_EXT_END (id ignored). What was
 * decoded before it is captured if in-flight, the entry is skipped (never
 * captured), the aligner is told (not for replayed data) and the rest of
 * the buffer is classified again; if the aligner holds it (aligned mode),
 * there is no current buffer any more.
 * Returns the event mask (>= 0; act on it as on td_input_next's), or an
 * error of the aligner (TD_EINVAL: a protocol error, TD_ENOMEM), or
 * TD_EINVAL when no buffer is current.
 */
int td_input_control(td_input_t *in, int kind, size_t at, size_t size,
                     int64_t id, td_align_event_t *ev);

/*
 * td_input_advance - the caller decoded the current buffer up to `off` (an
 * entry boundary) and stops for now. At the end of the buffer, its
 * in-flight bytes are captured and it goes back to its channel.
 */
void td_input_advance(td_input_t *in, size_t off);

/* td_input_budget - the most records to decode in this call (see above). */
int td_input_budget(td_input_t *in);

/* td_input_returned - the caller hands on n decoded records now; their
 * processing time, until the next td_input_budget, sets the budget. */
void td_input_returned(td_input_t *in, int n);

/*
 * td_input_take_inflight - hand over the in-flight data captured for
 * checkpoint id once it is complete (TD_ALIGN_CAPTURED): *n byte strings,
 * bufs[i] for channel tags[i], channels without data left out; the caller
 * owns them (td_wbuf_destroy). tags and bufs must hold td_gate_size
 * entries. Returns 0; TD_ENOMEM when bytes could not be kept (decline the
 * checkpoint; nothing is handed over); TD_EINVAL when id is not the
 * checkpoint being captured (aborted meanwhile; nothing to do).
 */
int td_input_take_inflight(td_input_t *in, int64_t id, int *n,
                           uint32_t *tags, td_wbuf_t *bufs);

#endif
