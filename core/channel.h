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
 * Thread safety: one sender thread per channel, one receiver thread per
 * gate; all other calls may come from any thread.
 */
#ifndef TD_CHANNEL_H
#define TD_CHANNEL_H

#include <pthread.h>
#include <stdint.h>

#include "wbuf.h"

/* Soft size of an exchange buffer: a buffer is sent once it holds at least
 * this many bytes; the record that crosses the limit is still appended
 * whole, growing the buffer if it must (a grown buffer keeps its size when
 * recycled, so memory per channel is credits x the largest buffer). */
#define TD_BUFFER_SIZE (32 * 1024)

/* Buffers granted per channel (Flink: 2 exclusive + floating buffers). */
#define TD_CHANNEL_CREDITS 4

typedef enum {
  TD_BUF_DATA = 0, /* encoded records */
  TD_BUF_END       /* end of partition: the sender sends nothing more */
} td_buf_kind_t;

typedef struct td_channel td_channel_t;
typedef struct td_gate td_gate_t;

typedef struct td_buffer {
  struct td_buffer *next;
  td_channel_t *channel; /* the channel it belongs to */
  td_buf_kind_t kind;
  uint32_t count;        /* records in data */
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
 * td_channel_acquire - take an empty buffer (a credit) of channel c for
 * writing, waiting while none is free. Returns 0 and *out (kind DATA, len
 * 0, count 0), or TD_ECANCELED if the gate was cancelled while waiting.
 */
int td_channel_acquire(td_channel_t *c, td_buffer_t **out);

/* td_channel_send - queue a filled buffer at the receiving gate. */
void td_channel_send(td_channel_t *c, td_buffer_t *b);

/*
 * td_gate_poll - wait for the next buffer of any channel, in arrival order.
 * timeout_ms: < 0 waits without limit; otherwise at most that long.
 * Returns 1 and *out for a DATA buffer (hand it back with
 * td_gate_recycle after use); 0 when every channel has ended (END buffers
 * are consumed by the gate itself); TD_ECANCELED when cancelled; -EAGAIN
 * when the timeout passed with nothing to deliver.
 */
int td_gate_poll(td_gate_t *g, td_buffer_t **out, int timeout_ms);

/* td_gate_available - whether a buffer (or the end) can be polled at once. */
int td_gate_available(td_gate_t *g);

/* td_gate_recycle - return a buffer to its channel, granting the credit
 * back to the sender. g may be NULL: the buffer knows its gate. */
void td_gate_recycle(td_gate_t *g, td_buffer_t *b);

/* td_gate_cancel - wake every waiter on this gate (senders and receiver)
 * and make all later waits return TD_ECANCELED. */
void td_gate_cancel(td_gate_t *g);

#endif
