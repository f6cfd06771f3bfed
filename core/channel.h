/*
 * channel.h - channels and input gates: the local exchange, with
 * credit-based flow control.
 *
 * A channel connects one sending subtask to one receiving subtask. The
 * receiver grants each channel `credits` buffers: a sender acquires an
 * empty buffer (waiting while all of the channel's buffers are in flight,
 * which is how a slow receiver backpressures its inputs), fills it with
 * encoded records and sends it; the receiver's input gate queues the
 * buffers of all its channels in arrival order, and recycling a buffer
 * returns the credit to its channel. Memory per channel is therefore
 * bounded by credits * buffer size. Events (end of partition) travel in
 * the same channel, ordered with the records, as Flink's network stack
 * carries them in-band.
 *
 * Overdraft (Flink's overdraft buffers, FLIP-227): a sender may take up to
 * `overdraft` buffers per channel beyond its credits, so that a batch it
 * has started never stops half-way for lack of credit; it checks
 * td_channel_available (a credit is free) before it starts the next batch
 * and waits there instead. Past credits + overdraft, td_channel_acquire
 * blocks as before: memory per channel stays bounded by (credits +
 * overdraft) x buffer size. The sender's notifier is signalled when a
 * recycled buffer makes the channel available again.
 *
 * Priority events (Flink's priority events of unaligned checkpoints,
 * FLIP-76: PipelinedSubpartition.addPriorityEvent, the priority queue of
 * SingleInputGate): td_channel_send_priority queues an event that the
 * gate delivers ahead of every data buffer still queued, of its channel
 * and of the others. It needs no credit. The event carries the channel's
 * sequence number at sending (td_buffer_t.seq): the channel's queued
 * buffers with a sequence number up to it were sent before the event; the
 * receiver can copy them (td_gate_copy_queued) as the data the event
 * overtook.
 *
 * Thread safety: one sender thread per channel, one receiver thread per
 * gate; all other calls may come from any thread.
 */
#ifndef TD_CHANNEL_H
#define TD_CHANNEL_H

#include <pthread.h>
#include <stdint.h>

#include "notify.h"
#include "wbuf.h"

/* Soft size of an exchange buffer: a buffer is sent once it holds at least
 * this many bytes; the record that crosses the limit is still appended
 * whole, growing the buffer if it must (a grown buffer keeps its size when
 * recycled, so memory per channel is credits x the largest buffer). */
#define TD_BUFFER_SIZE (32 * 1024)

/* Buffers granted per channel (Flink: 2 exclusive + floating buffers). */
#define TD_CHANNEL_CREDITS 4

/* Buffers a sender may take per channel beyond its credits to finish a
 * batch (Flink's taskmanager.network.memory.max-overdraft-buffers-per-gate,
 * 5 by default); td_gate_set_overdraft. */
#define TD_CHANNEL_OVERDRAFT 5

typedef enum {
  TD_BUF_DATA = 0, /* encoded records */
  TD_BUF_END,      /* end of partition: the sender sends nothing more */
  TD_BUF_PRIORITY  /* a priority event (data: its bytes); not a credit */
} td_buf_kind_t;

typedef struct td_channel td_channel_t;
typedef struct td_gate td_gate_t;

typedef struct td_buffer {
  struct td_buffer *next;
  td_channel_t *channel; /* the channel it belongs to */
  td_buf_kind_t kind;
  uint32_t count;        /* records in data */
  uint64_t seq;          /* DATA, END: 1, 2, ... per channel, in sending
                            order; PRIORITY: the channel's last seq sent
                            before it */
  td_wbuf_t data;        /* MessagePack, one value per record */
} td_buffer_t;


/*
 * td_gate_new - create an input gate of n_channels channels, each granted
 * `credits` buffers. tags[i] (may be NULL: all 0) is returned with every
 * buffer of channel i, to tell inputs apart (the input edge index).
 * Returns 0 and *out, or TD_ENOMEM / TD_EINVAL.
 */
int td_gate_new(td_gate_t **out, int n_channels, int credits,
                const int *tags);

/*
 * td_gate_set_overdraft - let senders take up to `overdraft` (>= 0) buffers
 * per channel beyond the credits (0 at td_gate_new). Call before any
 * buffer moves.
 */
void td_gate_set_overdraft(td_gate_t *g, int overdraft);

/*
 * td_gate_set_notify - the receiving subtask's notifier (may be NULL): it
 * is signalled when a priority event arrives and when the gate is
 * cancelled. Call before any buffer moves.
 */
void td_gate_set_notify(td_gate_t *g, td_notify_t *n);

/*
 * td_channel_set_notify - the sending subtask's notifier (may be NULL): it
 * is signalled when the channel becomes available again (a credit came
 * back) and when the gate is cancelled. Call before any buffer moves.
 */
void td_channel_set_notify(td_channel_t *c, td_notify_t *n);

/* td_gate_free - free the gate, its channels and their buffers. */
void td_gate_free(td_gate_t *g);

/* td_gate_channel - the i-th channel of the gate (0 <= i < n_channels). */
td_channel_t *td_gate_channel(td_gate_t *g, int i);

/* td_channel_tag - the tag given to this channel at td_gate_new. */
int td_channel_tag(const td_channel_t *c);

/* td_channel_index - the channel's index in its gate (0 .. size-1). */
int td_channel_index(const td_channel_t *c);

/* td_gate_size - the number of channels of the gate. */
int td_gate_size(const td_gate_t *g);

/*
 * td_channel_acquire - take an empty buffer of channel c for writing: one
 * of its credits, or of its overdraft when every credit is in use; waits
 * while credits and overdraft are all in use. Returns 0 and *out (kind
 * DATA, len 0, count 0), TD_ENOMEM, or TD_ECANCELED if the gate was
 * cancelled (before or while waiting).
 */
int td_channel_acquire(td_channel_t *c, td_buffer_t **out);

/*
 * td_channel_available - whether a credit of c is free: fewer than
 * `credits` of its buffers are in use (queued, or with the receiver, or
 * held by the sender), not counting the `held` (>= 0) buffers the sender
 * is still filling (a batch first fills the buffer it has). A sender
 * starts a batch only when its channels are available (Flink's
 * RecordWriter.isAvailable). Lock-free; the answer may be stale at once (a
 * receiver may recycle a buffer right after).
 */
int td_channel_available(const td_channel_t *c, int held);

/*
 * td_channel_would_block - whether td_channel_acquire(c) would wait now:
 * every credit and the overdraft in use. Lock-free and may be stale, as
 * td_channel_available; for the accounting of backpressured time.
 */
int td_channel_would_block(const td_channel_t *c);

/* td_channel_send - queue a filled buffer at the receiving gate. */
void td_channel_send(td_channel_t *c, td_buffer_t *b);

/*
 * td_channel_send_priority - queue a priority event of `len` bytes on c: the
 * gate delivers it before every queued data buffer (see above). Needs no
 * credit. Returns 0, TD_ENOMEM, or TD_ECANCELED (the gate was cancelled:
 * nothing is queued).
 */
int td_channel_send_priority(td_channel_t *c, const void *event, size_t len);

/*
 * td_gate_poll - wait for the next buffer of any channel: priority events
 * first, in their arrival order, then data buffers in arrival order.
 * timeout_ms: < 0 waits without limit; otherwise at most that long.
 * Returns 1 and *out for a DATA or PRIORITY buffer (hand it back with
 * td_gate_recycle after use); 0 when every channel has ended and no
 * priority event is left (END buffers are consumed by the gate itself);
 * TD_ECANCELED when cancelled; -EAGAIN when the timeout passed with
 * nothing to deliver.
 */
int td_gate_poll(td_gate_t *g, td_buffer_t **out, int timeout_ms);

/*
 * td_gate_poll_priority - the next priority event, without waiting and
 * without touching the data buffers. Returns 1 and *out (kind PRIORITY;
 * hand it back with td_gate_recycle), or 0 when there is none. Lock-free
 * when there is none.
 */
int td_gate_poll_priority(td_gate_t *g, td_buffer_t **out);

/* td_gate_priority_pending - whether a priority event waits (lock-free). */
int td_gate_priority_pending(const td_gate_t *g);

/*
 * td_gate_copy_queued - append to *out the bytes of every DATA buffer of
 * channel `channel` still queued in the gate whose seq is <= upto_seq, in
 * sending order (the data a priority event with seq upto_seq overtook).
 * The buffers stay queued. Returns 0 or TD_ENOMEM (*out keeps what it had
 * before the call).
 */
int td_gate_copy_queued(td_gate_t *g, int channel, uint64_t upto_seq,
                        td_wbuf_t *out);

/* td_gate_available - whether a buffer (or the end) can be polled at once. */
int td_gate_available(td_gate_t *g);

/*
 * The transport vtable: the network shuffle is this local exchange plus a
 * transport (DESIGN.md). On the sending process a stub gate stands for the
 * remote receiver: its channels hand every buffer to the transport instead
 * of a local queue, and keep the buffer's credit in use until the receiver
 * gives it back (td_channel_credit). On the receiving process the real
 * gate takes the buffers that arrive (td_channel_deliver) and tells the
 * transport of every buffer recycled, so that it returns the credit.
 */
typedef struct td_channel_transport {
  /* ship buffer b (kind DATA or END, count, seq, data) of channel index;
   * b is reused once this returns. 0, or an error (the gate is then
   * cancelled: the receiver is gone) */
  int (*send)(void *ud, int index, const td_buffer_t *b);
  /* ship a priority event of channel index, sent after the channel's
   * buffer seq: it must reach the receiver after them (it overtakes them
   * in the receiver's gate). 0 or an error, as send */
  int (*send_priority)(void *ud, int index, uint64_t seq, const void *event, size_t len);
  void *ud;
} td_channel_transport_t;

/* td_gate_set_transport - make g a stub gate whose channels ship through t
 * (copied). Call before any buffer moves. */
void td_gate_set_transport(td_gate_t *g, const td_channel_transport_t *t);

/* td_channel_credit - the remote receiver recycled n buffers of stub
 * channel c: their credits are free again (wakes a waiting sender). */
void td_channel_credit(td_channel_t *c, int n);

/* td_gate_set_recycled - call fn(ud, index) whenever a buffer (DATA or
 * END) of channel index is recycled: the credit a remote sender gets back.
 * Call before any buffer moves. */
void td_gate_set_recycled(td_gate_t *g, void (*fn)(void *ud, int index), void *ud);

/*
 * td_channel_deliver - queue at c's gate a buffer that came from a remote
 * sender: kind DATA or END (count records, data of len bytes) or PRIORITY
 * (an event; seq: the sender's last buffer before it, which has arrived).
 * Returns 0; TD_EINVAL when the sender exceeded its credits and overdraft
 * (a protocol violation: nothing is queued), a sequence mismatch, or
 * another kind; TD_ENOMEM; TD_ECANCELED.
 */
int td_channel_deliver(td_channel_t *c, td_buf_kind_t kind, uint32_t count, uint64_t seq,
                       const void *data, size_t len);

/* td_gate_recycle - return a buffer to its channel, granting the credit
 * back to the sender (a PRIORITY buffer is freed). g may be NULL: the
 * buffer knows its gate. */
void td_gate_recycle(td_gate_t *g, td_buffer_t *b);

/* td_gate_cancel - wake every waiter on this gate (senders and receiver,
 * and their notifiers) and make all later waits return TD_ECANCELED. */
void td_gate_cancel(td_gate_t *g);

#endif
