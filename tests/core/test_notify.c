/*
 * test_notify.c - unit tests for the subtask notifier (notify.h): no lost
 * wake-up between reading the sequence number and waiting, timeouts, and a
 * wait woken from another thread. Cross-thread cases never assert on
 * timing (see test_channel.c): a flag set just before the signal must be
 * seen by the woken thread.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "notify.h"
#include "testlib.h"

TD_TEST(test_notify_signal_before_wait_is_not_lost) {
  td_notify_t n;
  TD_CHECK_INT(td_notify_init(&n), 0);
  uint64_t seq = td_notify_seq(&n);
  td_notify_signal(&n);
  TD_CHECK(td_notify_seq(&n) != seq);
  TD_CHECK_INT(td_notify_wait(&n, seq, -1), 1); /* returns at once */
  td_notify_signal(NULL);                       /* a no-op */
  td_notify_destroy(&n);
}

TD_TEST(test_notify_wait_times_out) {
  td_notify_t n;
  TD_CHECK_INT(td_notify_init(&n), 0);
  uint64_t seq = td_notify_seq(&n);
  TD_CHECK_INT(td_notify_wait(&n, seq, 0), 0);
  TD_CHECK_INT(td_notify_wait(&n, seq, 20), 0);
  td_notify_destroy(&n);
}

typedef struct waiter {
  td_notify_t n;
  uint64_t seq;
  atomic_int started, released;
  int rc, saw_released;
} waiter_t;

static void *wait_main(void *arg) {
  waiter_t *w = arg;
  atomic_store(&w->started, 1);
  w->rc = td_notify_wait(&w->n, w->seq, -1);
  w->saw_released = atomic_load(&w->released);
  return NULL;
}

TD_TEST(test_notify_wakes_another_thread) {
  waiter_t w = {0};
  TD_CHECK_INT(td_notify_init(&w.n), 0);
  w.seq = td_notify_seq(&w.n);
  pthread_t t;
  if (pthread_create(&t, NULL, wait_main, &w) != 0) abort();
  while (!atomic_load(&w.started)) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  struct timespec grace = {0, 50000000};
  nanosleep(&grace, NULL);
  atomic_store(&w.released, 1);
  td_notify_signal(&w.n);
  pthread_join(t, NULL);
  TD_CHECK_INT(w.rc, 1);
  TD_CHECK_INT(w.saw_released, 1);
  td_notify_destroy(&w.n);
}

TD_TEST_MAIN(test_notify_signal_before_wait_is_not_lost, test_notify_wait_times_out,
             test_notify_wakes_another_thread)
