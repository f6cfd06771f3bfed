/* metrics.c - a subtask's busy / idle / backpressured time (metrics.h). */
#include "metrics.h"

#include <string.h>
#include <time.h>

#define SECOND_NS 1000000000LL

static int enabled = 1;

void td_metrics_set_enabled(int on) { enabled = on != 0; }

int td_metrics_enabled(void) { return enabled; }

int64_t td_metrics_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * SECOND_NS + ts.tv_nsec;
}

void td_time_init(td_time_acct_t *a, int64_t now_ns) {
  atomic_init(&a->seq, 0);
  atomic_init(&a->start_ns, now_ns);
  atomic_init(&a->idle_ns, 0);
  atomic_init(&a->bp_ns, 0);
  atomic_init(&a->since_ns, 0);
  atomic_init(&a->kind, TD_WAIT_NONE);
}

/* The writer's half of the sequence lock. */
static void write_begin(td_time_acct_t *a) {
  atomic_fetch_add_explicit(&a->seq, 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
}

static void write_end(td_time_acct_t *a) {
  atomic_fetch_add_explicit(&a->seq, 1, memory_order_release);
}

/* Add the wait in progress to its total (inside a write). */
static void close_wait(td_time_acct_t *a, int64_t now_ns) {
  int kind = atomic_load_explicit(&a->kind, memory_order_relaxed);
  if (kind == TD_WAIT_NONE) return;
  int64_t d = now_ns - atomic_load_explicit(&a->since_ns, memory_order_relaxed);
  if (d < 0) d = 0;
  _Atomic int64_t *total = kind == TD_WAIT_IDLE ? &a->idle_ns : &a->bp_ns;
  atomic_store_explicit(total, atomic_load_explicit(total, memory_order_relaxed) + d,
                        memory_order_relaxed);
  atomic_store_explicit(&a->kind, TD_WAIT_NONE, memory_order_relaxed);
}

void td_time_wait_begin(td_time_acct_t *a, td_wait_kind_t kind, int64_t now_ns) {
  write_begin(a);
  close_wait(a, now_ns);
  atomic_store_explicit(&a->since_ns, now_ns, memory_order_relaxed);
  atomic_store_explicit(&a->kind, (int)kind, memory_order_relaxed);
  write_end(a);
}

void td_time_wait_end(td_time_acct_t *a, int64_t now_ns) {
  if (atomic_load_explicit(&a->kind, memory_order_relaxed) == TD_WAIT_NONE) return;
  write_begin(a);
  close_wait(a, now_ns);
  write_end(a);
}

void td_time_read(td_time_acct_t *a, int64_t now_ns, td_time_totals_t *out) {
  int64_t start, idle, bp, since;
  int kind;
  uint64_t s0, s1;
  do {
    s0 = atomic_load_explicit(&a->seq, memory_order_acquire);
    start = atomic_load_explicit(&a->start_ns, memory_order_relaxed);
    idle = atomic_load_explicit(&a->idle_ns, memory_order_relaxed);
    bp = atomic_load_explicit(&a->bp_ns, memory_order_relaxed);
    since = atomic_load_explicit(&a->since_ns, memory_order_relaxed);
    kind = atomic_load_explicit(&a->kind, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    s1 = atomic_load_explicit(&a->seq, memory_order_relaxed);
  } while ((s0 & 1) || s0 != s1);
  if (kind != TD_WAIT_NONE && now_ns > since) {
    if (kind == TD_WAIT_IDLE) idle += now_ns - since;
    else bp += now_ns - since;
  }
  out->at_ns = now_ns;
  out->elapsed_ns = now_ns > start ? now_ns - start : 0;
  out->idle_ns = idle;
  out->bp_ns = bp;
  int64_t busy = out->elapsed_ns - idle - bp;
  out->busy_ns = busy > 0 ? busy : 0;
}

/* ms per second of part over the span d (ns), within 0..1000. */
static double per_second(int64_t part, int64_t d) {
  if (d <= 0) return 0;
  double v = 1000.0 * (double)part / (double)d;
  return v < 0 ? 0 : v > 1000 ? 1000 : v;
}

void td_time_rates(td_time_acct_t *a, td_time_window_t *w, int64_t now_ns, double *busy_ms,
                   double *idle_ms, double *bp_ms) {
  td_time_totals_t now, base;
  td_time_read(a, now_ns, &now);
  /* the base: the newest reading at least 1 s old, else the start */
  memset(&base, 0, sizeof base);
  base.at_ns = now_ns - now.elapsed_ns;
  if (w->newer.at_ns && now_ns - w->newer.at_ns >= SECOND_NS) base = w->newer;
  else if (w->older.at_ns && now_ns - w->older.at_ns >= SECOND_NS) base = w->older;
  int64_t d = now.at_ns - base.at_ns;
  *idle_ms = per_second(now.idle_ns - base.idle_ns, d);
  *bp_ms = per_second(now.bp_ns - base.bp_ns, d);
  double busy = 1000.0 - *idle_ms - *bp_ms;
  *busy_ms = d > 0 ? (busy < 0 ? 0 : busy) : 0;
  /* keep the newest reading, and the one before it once that is 1 s old */
  if (!w->newer.at_ns || now_ns - w->newer.at_ns >= SECOND_NS) w->older = w->newer;
  w->newer = now;
}
