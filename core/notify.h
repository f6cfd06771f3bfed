/*
 * notify.h - a subtask's notifier: one wait that wakes on any of several
 * events signalled by other threads (an event count).
 *
 * A task that must not start its next batch before its outputs have room
 * (Flink checks RecordWriter availability before processing the next
 * record, and its mailbox wakes on availability, checkpoint triggers and
 * priority events alike: StreamTask / MailboxProcessor) waits on its own
 * notifier. Channels signal their sender's notifier when a credit comes
 * back, a gate signals its receiver's notifier when a priority event
 * arrives, the coordinator signals a source's when it asks for a barrier,
 * and cancellation signals them all.
 *
 * Usage, without lost wake-ups:
 *
 *   for (;;) {
 *     uint64_t seq = td_notify_seq(n);   first the sequence number,
 *     if (what I wait for holds) break;  then the conditions,
 *     td_notify_wait(n, seq, ms);        then wait for a newer number
 *   }
 *
 * Every signal after td_notify_seq makes the wait return at once. The
 * notifier's mutex is a leaf: it is never held while taking another lock,
 * so td_notify_signal may be called with any lock held.
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef TD_NOTIFY_H
#define TD_NOTIFY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

typedef struct td_notify {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  _Atomic uint64_t seq;
} td_notify_t;

/* td_notify_init - set up a notifier (memory owned by the caller).
 * Returns 0 or -errno from pthread. */
int td_notify_init(td_notify_t *n);

/* td_notify_destroy - release it; no thread may wait on it any more. */
void td_notify_destroy(td_notify_t *n);

/* td_notify_seq - the current sequence number (bumped by every signal). */
uint64_t td_notify_seq(td_notify_t *n);

/* td_notify_signal - bump the sequence number and wake every waiter.
 * n may be NULL (nothing to do). */
void td_notify_signal(td_notify_t *n);

/*
 * td_notify_wait - wait until the sequence number differs from seq.
 * timeout_ms: < 0 waits without limit, otherwise at most that many ms.
 * Returns 1 when signalled (possibly before the call), 0 on timeout.
 */
int td_notify_wait(td_notify_t *n, uint64_t seq, int timeout_ms);

/*
 * td_deadline - *out = now on `clock` plus ms (>= 0) milliseconds: the
 * absolute time pthread_cond_timedwait takes (on the clock its condition
 * variable was set up with).
 */
void td_deadline(struct timespec *out, clockid_t clock, int ms);

#endif
