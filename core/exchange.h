/*
 * exchange.h - the sending side of an exchange: partitioners and the
 * output writer that fills one buffer per target channel.
 *
 * Partitioners, as Flink's: forward (subtask i to subtask i), hash (by key
 * group of the key bytes, see keygroup.h), rebalance (round robin over the
 * targets, per record) and broadcast (every record to every target).
 * Records are appended to the current buffer of their target channel and a
 * buffer is sent once it holds TD_BUFFER_SIZE bytes, on td_output_flush (the
 * buffer timeout, for latency) or at td_output_finish.
 * td_output_available tells whether a batch may start (every target has a
 * free credit); td_output_send_priority sends an event that overtakes the
 * queued buffers (unaligned checkpoint barriers).
 */
#ifndef TD_EXCHANGE_H
#define TD_EXCHANGE_H

#include <stdatomic.h>
#include <stdint.h>

#include "channel.h"
#include "metrics.h"

typedef enum {
  TD_PART_FORWARD = 0,
  TD_PART_HASH,
  TD_PART_REBALANCE,
  TD_PART_BROADCAST
} td_partition_t;

typedef struct td_output {
  td_partition_t partition;
  int n;                  /* target channels */
  td_channel_t **targets; /* owned array of borrowed channels */
  td_buffer_t **cur;      /* current buffer per target, or NULL */
  int rr;                 /* next round-robin target */
  int target_parallelism; /* parallelism of the receiving operator */
  int max_parallelism;    /* of the receiving keyed operator */
  int maxp_shift;         /* log2(max_parallelism) if a power of two, else -1 */
  _Atomic int64_t bytes;  /* bytes of the buffers sent, counted per buffer
                             (Flink's numBytesOut); read by any thread */
  td_time_acct_t *time;   /* the sender's time accounting, or NULL: a wait
                             for a buffer counts as backpressured time
                             (Flink's requestBufferBuilderBlocking) */
} td_output_t;

/*
 * td_output_init - set up an output over `n` target channels (copied).
 * start: the first round-robin target (Tide starts at the sender's subtask
 * index so runs are reproducible; Flink starts at a random one).
 * Returns 0 or TD_ENOMEM / TD_EINVAL.
 */
int td_output_init(td_output_t *o, td_partition_t partition,
                   td_channel_t *const *targets, int n, int max_parallelism,
                   int start);

/* td_output_destroy - free the output's arrays. Buffers still held are
 * returned to their channels unsent. */
void td_output_destroy(td_output_t *o);

/*
 * td_output_hash_target - the target channel for a record whose key has
 * the given canonical key bytes (hash partitioner).
 */
int td_output_hash_target(const td_output_t *o, const void *key, size_t len);

/* td_output_next_target - the next round-robin target (rebalance). */
static inline int td_output_next_target(td_output_t *o) {
  int t = o->rr;
  if (++o->rr == o->n) o->rr = 0;
  return t;
}

/*
 * td_output_buffer - the buffer being filled for `target`, acquiring one
 * (waiting for credit) if there is none. Append one encoded record to
 * (*out)->data, then call td_output_commit. Returns 0 or TD_ECANCELED /
 * TD_ENOMEM.
 */
int td_output_buffer(td_output_t *o, int target, td_buffer_t **out);

/* td_output_commit - count the record just appended for `target` and send
 * the buffer if it is full. */
void td_output_commit(td_output_t *o, int target);

/* td_output_flush - send every partially filled buffer. */
void td_output_flush(td_output_t *o);

/*
 * td_output_available - whether every target channel has a free credit
 * besides the buffer the output is filling for it (td_channel_available),
 * so that the next batch can be written without
 * waiting (Flink's RecordWriter.isAvailable); with the channels' overdraft
 * a batch started then never waits half-way unless it writes more than
 * the overdraft. Lock-free; may be stale at once.
 */
int td_output_available(const td_output_t *o);

/*
 * td_output_send_priority - flush every partially filled buffer, then send
 * the event (len bytes) on every target channel as a priority event
 * (td_channel_send_priority): an unaligned checkpoint barrier overtakes
 * the output's queued buffers, which the receivers persist as in-flight
 * data (FLIP-76; Flink persists them as the sender's output state, the
 * local exchange lets the receiver do it). Needs no credit.
 * Returns 0, or the first error of td_channel_send_priority (TD_ENOMEM,
 * TD_ECANCELED); the other targets are still sent to.
 */
int td_output_send_priority(td_output_t *o, const void *event, size_t len);

/*
 * td_output_finish - flush, then send end-of-partition on every target
 * channel. Returns 0 or TD_ECANCELED / TD_ENOMEM.
 */
int td_output_finish(td_output_t *o);

#endif
