/* notify.c - a subtask's notifier, an event count (notify.h). */
#include "notify.h"

#include <errno.h>
#include <time.h>

int td_notify_init(td_notify_t *n) {
  atomic_init(&n->seq, 0);
  int rc = pthread_mutex_init(&n->mu, NULL);
  if (rc) return -rc;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  rc = pthread_cond_init(&n->cond, &ca);
  pthread_condattr_destroy(&ca);
  if (rc) {
    pthread_mutex_destroy(&n->mu);
    return -rc;
  }
  return 0;
}

void td_notify_destroy(td_notify_t *n) {
  pthread_cond_destroy(&n->cond);
  pthread_mutex_destroy(&n->mu);
}

uint64_t td_notify_seq(td_notify_t *n) { return atomic_load(&n->seq); }

void td_notify_signal(td_notify_t *n) {
  if (!n) return;
  pthread_mutex_lock(&n->mu);
  atomic_fetch_add(&n->seq, 1);
  pthread_cond_broadcast(&n->cond);
  pthread_mutex_unlock(&n->mu);
}

void td_deadline(struct timespec *out, clockid_t clock, int ms) {
  clock_gettime(clock, out);
  out->tv_sec += ms / 1000;
  out->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (out->tv_nsec >= 1000000000L) {
    out->tv_sec++;
    out->tv_nsec -= 1000000000L;
  }
}

int td_notify_wait(td_notify_t *n, uint64_t seq, int timeout_ms) {
  struct timespec deadline;
  if (timeout_ms >= 0) td_deadline(&deadline, CLOCK_MONOTONIC, timeout_ms);
  int woken = 1;
  pthread_mutex_lock(&n->mu);
  while (atomic_load(&n->seq) == seq) {
    if (timeout_ms < 0) {
      pthread_cond_wait(&n->cond, &n->mu);
    } else if (pthread_cond_timedwait(&n->cond, &n->mu, &deadline) == ETIMEDOUT) {
      woken = atomic_load(&n->seq) != seq;
      break;
    }
  }
  pthread_mutex_unlock(&n->mu);
  return woken;
}
