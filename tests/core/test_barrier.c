/*
 * test_barrier.c - unit tests for checkpoint barrier alignment (barrier.h):
 * aligned (exactly-once), at-least-once and unaligned modes, on fake
 * buffers (no gate: the aligner only keeps pointers, never reads them).
 *
 * The scripted cases feed a sequence of gate deliveries and check, as a
 * string, which buffers were processed in which order ("A1 B2* A3": buffer
 * 1 of channel A, buffer 2 of channel B processed as in-flight data, ...).
 * The random cases simulate whole streams of records and barriers on 2-5
 * channels in random interleavings and check the snapshot property of each
 * mode at every trigger (Carbone et al. 2015): aligned, the state holds
 * exactly the records before barrier n on every channel; unaligned, the
 * state plus the in-flight data does; at-least-once, the state holds at
 * least those.
 *
 * barrier.c is compiled into this file with an allocator that fails the
 * Nth call (SQLite's faultsim, Lua's testalloc); the library's own copy
 * is then not linked in.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail_at;  /* fail the fail_at-th allocation (0: never) */
static int n_allocs; /* allocations so far */

static void *test_calloc(size_t n, size_t size) {
  if (fail_at && ++n_allocs == fail_at) return NULL;
  return calloc(n, size);
}

#define TD_BARRIER_CALLOC test_calloc
#define TD_BARRIER_FREE free
#include "barrier.c"

#include "error.h"
#include "testlib.h"

/* ---- scripted rig: fake buffers named by channel letter and number ---- */

#define MAXB 128

typedef struct rig {
  td_aligner_t *a;
  td_buffer_t b[MAXB];
  int ch[MAXB];
  int nb;
  int64_t now;
  td_align_event_t ev;
  char log[2048]; /* processed buffers, in order */
} rig_t;

static void rig_init(rig_t *r, int n, td_align_mode_t mode) {
  memset(r, 0, sizeof *r);
  int rc = td_aligner_new(&r->a, n, mode);
  if (rc != 0) {
    fprintf(stderr, "td_aligner_new: %s\n", td_strerror(rc));
    abort();
  }
}

static void rig_free(rig_t *r) { td_aligner_free(r->a); }

static int index_of(const rig_t *r, const td_buffer_t *b) { return (int)(b - r->b); }

static void log_buf(rig_t *r, td_buffer_t *b, int verdict) {
  int i = index_of(r, b);
  size_t len = strlen(r->log);
  snprintf(r->log + len, sizeof r->log - len, "%s%c%d%s", len ? " " : "",
           'A' + r->ch[i], i + 1, verdict == TD_ALIGN_INFLIGHT ? "*" : "");
}

/* deliver - the gate delivers a new buffer on channel ch; a buffer the
 * aligner lets through is processed (logged). Returns the verdict. */
static int deliver(rig_t *r, int ch) {
  if (r->nb == MAXB) abort();
  int i = r->nb++;
  r->ch[i] = ch;
  r->b[i].count = (uint32_t)i;
  int v = td_aligner_on_buffer(r->a, ch, &r->b[i]);
  if (v == TD_ALIGN_PROCESS || v == TD_ALIGN_INFLIGHT) log_buf(r, &r->b[i], v);
  return v;
}

/* drain - process every released buffer (logged); returns how many. */
static int drain(rig_t *r) {
  td_buffer_t *b;
  int ch, n = 0, v;
  size_t off;
  while ((v = td_aligner_next_released(r->a, &b, &ch, &off)) > 0) {
    TD_CHECK_INT(ch, r->ch[index_of(r, b)]);
    TD_CHECK_INT(off, 0);
    log_buf(r, b, v);
    n++;
  }
  return n;
}

static int barrier(rig_t *r, int ch, int64_t id) {
  return td_aligner_on_barrier(r->a, ch, id, r->now, &r->ev);
}

static void clear_log(rig_t *r) { r->log[0] = 0; }

/* ---- scripted cases ---- */

TD_TEST(test_barrier_new_rejects_bad_arguments) {
  td_aligner_t *a = (td_aligner_t *)&a;
  TD_CHECK_INT(td_aligner_new(&a, 0, TD_ALIGN_EXACTLY_ONCE), TD_EINVAL);
  TD_CHECK(a == NULL);
  TD_CHECK_INT(td_aligner_new(&a, -3, TD_ALIGN_UNALIGNED), TD_EINVAL);
  TD_CHECK_INT(td_aligner_new(&a, 2, (td_align_mode_t)7), TD_EINVAL);
  TD_CHECK(a == NULL);
  td_aligner_free(NULL);
}

TD_TEST(test_barrier_single_channel_triggers_at_once) {
  static const td_align_mode_t modes[] = {
      TD_ALIGN_EXACTLY_ONCE, TD_ALIGN_AT_LEAST_ONCE, TD_ALIGN_UNALIGNED};
  for (int m = 0; m < 3; m++) {
    rig_t r;
    rig_init(&r, 1, modes[m]);
    TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_PROCESS);
    int want = modes[m] == TD_ALIGN_UNALIGNED
                   ? TD_ALIGN_TRIGGER | TD_ALIGN_CAPTURED
                   : TD_ALIGN_TRIGGER;
    TD_CHECK_INT(barrier(&r, 0, 1), want);
    TD_CHECK_INT(r.ev.triggered, 1);
    TD_CHECK_INT(r.ev.aborted, 0);
    TD_CHECK_INT(r.ev.captured, modes[m] == TD_ALIGN_UNALIGNED ? 1 : 0);
    TD_CHECK(!td_aligner_pending(r.a, NULL, NULL));
    TD_CHECK(!td_aligner_blocked(r.a, 0));
    TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_PROCESS);
    TD_CHECK_INT(barrier(&r, 0, 2), want);
    TD_CHECK_INT(r.ev.triggered, 2);
    TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_PROCESS);
    TD_CHECK_STR(r.log, "A1 A2 A3");
    TD_CHECK_INT(td_aligner_held(r.a), 0);
    rig_free(&r);
  }
}

TD_TEST(test_barrier_two_channels_hold_after_barrier) {
  rig_t r;
  rig_init(&r, 2, TD_ALIGN_EXACTLY_ONCE);
  deliver(&r, 0);                                  /* A1 */
  deliver(&r, 1);                                  /* B2 */
  r.now = 100;
  TD_CHECK_INT(barrier(&r, 0, 1), 0);              /* A blocked */
  TD_CHECK(td_aligner_blocked(r.a, 0));
  TD_CHECK(!td_aligner_blocked(r.a, 1));
  int64_t id = 0, since = 0;
  TD_CHECK_INT(td_aligner_pending(r.a, &id, &since), 1);
  TD_CHECK_INT(id, 1);
  TD_CHECK_INT(since, 100);
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_HELD);     /* A3 */
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_PROCESS);  /* B4 */
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_HELD);     /* A5 */
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_PROCESS);  /* B6 */
  TD_CHECK_INT(td_aligner_held(r.a), 2);
  TD_CHECK_INT(drain(&r), 0);                      /* nothing released yet */
  TD_CHECK_STR(r.log, "A1 B2 B4 B6");
  TD_CHECK_INT(barrier(&r, 1, 1), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(r.ev.triggered, 1);
  TD_CHECK(!td_aligner_blocked(r.a, 0));
  TD_CHECK_INT(td_aligner_held(r.a), 2);           /* released, not yet back */
  clear_log(&r);
  TD_CHECK_INT(drain(&r), 2);
  TD_CHECK_STR(r.log, "A3 A5");
  TD_CHECK_INT(td_aligner_held(r.a), 0);
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_PROCESS);
  rig_free(&r);
}

/* A savepoint's aligned barrier in an unaligned or at-least-once gate:
 * held like aligned mode, triggered at the last barrier, no in-flight
 * data; the next ordinary checkpoint is of the gate's mode again. */
TD_TEST(test_barrier_aligned_barrier_in_other_modes) {
  static const td_align_mode_t modes[] = {TD_ALIGN_AT_LEAST_ONCE, TD_ALIGN_UNALIGNED};
  for (int m = 0; m < 2; m++) {
    rig_t r;
    rig_init(&r, 2, modes[m]);
    deliver(&r, 0);                                                /* A1 */
    TD_CHECK_INT(td_aligner_on_barrier_kind(r.a, 0, 1, 1, r.now, &r.ev), 0);
    TD_CHECK_INT(td_aligner_current_mode(r.a), TD_ALIGN_EXACTLY_ONCE);
    TD_CHECK(td_aligner_blocked(r.a, 0));
    TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_HELD);                   /* A2 */
    TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_PROCESS);                /* B3: not in-flight */
    TD_CHECK_INT(td_aligner_on_barrier_kind(r.a, 1, 1, 1, r.now, &r.ev), TD_ALIGN_TRIGGER);
    TD_CHECK_INT(r.ev.triggered, 1);
    TD_CHECK_INT(r.ev.captured, 0);
    TD_CHECK_INT(drain(&r), 1);
    TD_CHECK_STR(r.log, "A1 B3 A2");
    /* an ordinary barrier: the gate's own mode again */
    clear_log(&r);
    int want = modes[m] == TD_ALIGN_UNALIGNED ? TD_ALIGN_TRIGGER : 0;
    TD_CHECK_INT(barrier(&r, 0, 2), want);
    TD_CHECK_INT(td_aligner_current_mode(r.a), modes[m]);
    TD_CHECK(!td_aligner_blocked(r.a, 0));
    TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_PROCESS);                /* A4 */
    TD_CHECK_INT(deliver(&r, 1),
                 modes[m] == TD_ALIGN_UNALIGNED ? TD_ALIGN_INFLIGHT : TD_ALIGN_PROCESS);
    TD_CHECK_STR(r.log, modes[m] == TD_ALIGN_UNALIGNED ? "A4 B5*" : "A4 B5");
    rig_free(&r);
  }
}

TD_TEST(test_barrier_three_channels_release_in_arrival_order) {
  rig_t r;
  rig_init(&r, 3, TD_ALIGN_EXACTLY_ONCE);
  TD_CHECK_INT(barrier(&r, 0, 1), 0);              /* A blocked */
  deliver(&r, 0);                                  /* A1 held */
  deliver(&r, 1);                                  /* B2 */
  deliver(&r, 2);                                  /* C3 */
  TD_CHECK_INT(barrier(&r, 1, 1), 0);              /* B blocked too */
  deliver(&r, 1);                                  /* B4 held */
  deliver(&r, 0);                                  /* A5 held */
  deliver(&r, 2);                                  /* C6 */
  deliver(&r, 1);                                  /* B7 held */
  TD_CHECK_STR(r.log, "B2 C3 C6");
  TD_CHECK_INT(td_aligner_held(r.a), 4);
  TD_CHECK_INT(barrier(&r, 2, 1), TD_ALIGN_TRIGGER);
  clear_log(&r);
  TD_CHECK_INT(drain(&r), 4);
  TD_CHECK_STR(r.log, "A1 B4 A5 B7");
  rig_free(&r);
}

TD_TEST(test_barrier_barrier_on_one_channel_while_another_blocked) {
  rig_t r;
  rig_init(&r, 3, TD_ALIGN_EXACTLY_ONCE);
  TD_CHECK_INT(barrier(&r, 2, 4), 0);              /* C blocked */
  TD_CHECK_INT(deliver(&r, 2), TD_ALIGN_HELD);     /* C1 */
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_PROCESS);  /* A2 */
  TD_CHECK_INT(barrier(&r, 0, 4), 0);              /* A blocked, C still */
  TD_CHECK(td_aligner_blocked(r.a, 0));
  TD_CHECK(!td_aligner_blocked(r.a, 1));
  TD_CHECK(td_aligner_blocked(r.a, 2));
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_HELD);     /* A3 */
  TD_CHECK_INT(deliver(&r, 2), TD_ALIGN_HELD);     /* C4 */
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_PROCESS);  /* B5 */
  TD_CHECK_INT(barrier(&r, 1, 4), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(r.ev.triggered, 4);
  TD_CHECK_INT(drain(&r), 3);
  TD_CHECK_STR(r.log, "A2 B5 C1 A3 C4");
  rig_free(&r);
}

TD_TEST(test_barrier_newer_barrier_aborts_pending) {
  rig_t r;
  rig_init(&r, 2, TD_ALIGN_EXACTLY_ONCE);
  TD_CHECK_INT(barrier(&r, 0, 1), 0);
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_HELD);     /* A1 */
  /* B's upstream skipped checkpoint 1: barrier 2 subsumes it */
  TD_CHECK_INT(barrier(&r, 1, 2), TD_ALIGN_ABORTED);
  TD_CHECK_INT(r.ev.aborted, 1);
  TD_CHECK_INT(r.ev.triggered, 0);
  TD_CHECK(td_aligner_blocked(r.a, 1));            /* now aligning 2 */
  TD_CHECK(!td_aligner_blocked(r.a, 0));
  TD_CHECK_INT(drain(&r), 1);                      /* A1 released */
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_HELD);     /* B2 */
  TD_CHECK_INT(barrier(&r, 1, 1), 0);              /* old id ignored */
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_PROCESS);  /* A3 */
  TD_CHECK_INT(barrier(&r, 0, 2), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(r.ev.triggered, 2);
  TD_CHECK_INT(drain(&r), 1);
  TD_CHECK_STR(r.log, "A1 A3 B2");
  rig_free(&r);
}

TD_TEST(test_barrier_released_buffer_held_again) {
  /* A released buffer that carries the next barrier blocks its channel
   * again: the channel's later released buffers are held again, in order,
   * behind it, while other channels' released buffers still pass. */
  rig_t r;
  rig_init(&r, 3, TD_ALIGN_EXACTLY_ONCE);
  TD_CHECK_INT(barrier(&r, 0, 1), 0);
  TD_CHECK_INT(barrier(&r, 1, 1), 0);
  deliver(&r, 0);                                  /* A1 held: ends with barrier 2 */
  deliver(&r, 1);                                  /* B2 held */
  deliver(&r, 0);                                  /* A3 held */
  deliver(&r, 0);                                  /* A4 held */
  TD_CHECK_INT(barrier(&r, 2, 1), TD_ALIGN_TRIGGER);
  td_buffer_t *b;
  int ch;
  TD_CHECK_INT(td_aligner_next_released(r.a, &b, &ch, NULL), TD_ALIGN_PROCESS);
  TD_CHECK(b == &r.b[0]);
  TD_CHECK_INT(ch, 0);
  TD_CHECK_INT(barrier(&r, 0, 2), 0);              /* decoded at A1's end */
  TD_CHECK_INT(drain(&r), 1);                      /* B2; A3, A4 held again */
  TD_CHECK_STR(r.log, "B2");
  TD_CHECK_INT(td_aligner_held(r.a), 2);
  TD_CHECK_INT(deliver(&r, 2), TD_ALIGN_PROCESS);  /* C5 */
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_HELD);     /* A6, behind A3 A4 */
  TD_CHECK_INT(barrier(&r, 1, 2), 0);
  TD_CHECK_INT(barrier(&r, 2, 2), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(r.ev.triggered, 2);
  clear_log(&r);
  TD_CHECK_INT(drain(&r), 3);
  TD_CHECK_STR(r.log, "A3 A4 A6");
  rig_free(&r);
}

TD_TEST(test_barrier_trigger_while_released_pending_keeps_order) {
  /* Checkpoint 2 triggers while buffers released by checkpoint 1 are still
   * queued: what was held for 2 (older) comes back before them. */
  rig_t r;
  rig_init(&r, 3, TD_ALIGN_EXACTLY_ONCE);
  TD_CHECK_INT(barrier(&r, 0, 1), 0);
  TD_CHECK_INT(barrier(&r, 1, 1), 0);
  deliver(&r, 0);                                  /* A1 held: ends with barrier 2 */
  deliver(&r, 0);                                  /* A2 held */
  deliver(&r, 1);                                  /* B3 held: ends with barrier 2 */
  deliver(&r, 0);                                  /* A4 held */
  TD_CHECK_INT(deliver(&r, 2), TD_ALIGN_PROCESS);  /* C5: barrier 1, barrier 2 */
  TD_CHECK_INT(barrier(&r, 2, 1), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(td_aligner_on_buffer_at(r.a, 2, &r.b[4], 1), TD_ALIGN_PROCESS);
  TD_CHECK_INT(barrier(&r, 2, 2), 0);
  td_buffer_t *b;
  TD_CHECK_INT(td_aligner_next_released(r.a, &b, NULL, NULL), TD_ALIGN_PROCESS);
  TD_CHECK(b == &r.b[0]);
  TD_CHECK_INT(barrier(&r, 0, 2), 0);              /* at A1's end */
  TD_CHECK_INT(td_aligner_next_released(r.a, &b, NULL, NULL), TD_ALIGN_PROCESS);
  TD_CHECK(b == &r.b[2]);                          /* B3; A2 held again */
  TD_CHECK_INT(barrier(&r, 1, 2), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(r.ev.triggered, 2);
  clear_log(&r);
  TD_CHECK_INT(drain(&r), 2);
  TD_CHECK_STR(r.log, "A2 A4");
  rig_free(&r);
}

TD_TEST(test_barrier_cancel_marker_aborts) {
  rig_t r;
  rig_init(&r, 2, TD_ALIGN_EXACTLY_ONCE);
  TD_CHECK_INT(barrier(&r, 0, 1), 0);
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_HELD);
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_HELD);
  TD_CHECK_INT(td_aligner_on_cancel(r.a, 1, 1, &r.ev), TD_ALIGN_ABORTED);
  TD_CHECK_INT(r.ev.aborted, 1);
  TD_CHECK_INT(r.ev.cancelled, 0);
  TD_CHECK(!td_aligner_pending(r.a, NULL, NULL));
  TD_CHECK_INT(drain(&r), 2);
  TD_CHECK_STR(r.log, "A1 A2");
  TD_CHECK_INT(barrier(&r, 1, 1), 0);              /* aborted: ignored */
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_PROCESS);
  TD_CHECK_INT(td_aligner_on_cancel(r.a, 0, 1, &r.ev), 0); /* trailing */

  /* a cancel marker for a checkpoint not started here */
  TD_CHECK_INT(td_aligner_on_cancel(r.a, 1, 3, &r.ev), TD_ALIGN_CANCELLED);
  TD_CHECK_INT(r.ev.cancelled, 3);
  TD_CHECK_INT(r.ev.aborted, 0);
  TD_CHECK_INT(td_aligner_last_id(r.a), 3);
  TD_CHECK_INT(barrier(&r, 0, 3), 0);              /* ignored */
  TD_CHECK(!td_aligner_blocked(r.a, 0));

  /* a cancel marker for a newer checkpoint aborts the pending one */
  TD_CHECK_INT(barrier(&r, 0, 4), 0);
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_HELD);
  TD_CHECK_INT(td_aligner_on_cancel(r.a, 1, 5, &r.ev),
               TD_ALIGN_ABORTED | TD_ALIGN_CANCELLED);
  TD_CHECK_INT(r.ev.aborted, 4);
  TD_CHECK_INT(r.ev.cancelled, 5);
  TD_CHECK_INT(drain(&r), 1);
  TD_CHECK_INT(td_aligner_on_cancel(r.a, 1, 2, &r.ev), 0); /* old */
  TD_CHECK_INT(td_aligner_on_cancel(r.a, 1, 0, &r.ev), TD_EINVAL);
  TD_CHECK_INT(td_aligner_on_cancel(r.a, 2, 6, &r.ev), TD_EINVAL);
  TD_CHECK_INT(barrier(&r, 0, 6), 0);
  TD_CHECK_INT(barrier(&r, 1, 6), TD_ALIGN_TRIGGER); /* life goes on */
  rig_free(&r);
}

TD_TEST(test_barrier_end_of_channel_completes_alignment) {
  rig_t r;
  rig_init(&r, 2, TD_ALIGN_EXACTLY_ONCE);
  TD_CHECK_INT(barrier(&r, 0, 1), 0);
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_HELD);
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_PROCESS);
  TD_CHECK_INT(td_aligner_on_end(r.a, 1, &r.ev), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(r.ev.triggered, 1);
  TD_CHECK_INT(drain(&r), 1);
  TD_CHECK_STR(r.log, "B2 A1");
  /* the one open channel now triggers at once */
  TD_CHECK_INT(barrier(&r, 0, 2), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_PROCESS);
  /* an ended channel delivers nothing more */
  TD_CHECK_INT(deliver(&r, 1), TD_EINVAL);
  TD_CHECK_INT(barrier(&r, 1, 3), TD_EINVAL);
  TD_CHECK_INT(td_aligner_on_end(r.a, 1, &r.ev), TD_EINVAL);
  TD_CHECK_INT(td_aligner_on_end(r.a, 0, &r.ev), 0);  /* all ended */
  TD_CHECK_INT(td_aligner_on_end(r.a, 2, NULL), TD_EINVAL);
  rig_free(&r);
}

TD_TEST(test_barrier_end_after_barrier_counts_once) {
  /* A channel that delivered the barrier and then ended is not counted
   * twice: the checkpoint still waits for the third channel. */
  rig_t r;
  rig_init(&r, 3, TD_ALIGN_AT_LEAST_ONCE);
  TD_CHECK_INT(barrier(&r, 0, 1), 0);
  TD_CHECK_INT(td_aligner_on_end(r.a, 0, &r.ev), 0);
  TD_CHECK_INT(barrier(&r, 1, 1), 0);
  TD_CHECK_INT(td_aligner_pending(r.a, NULL, NULL), 1);
  TD_CHECK_INT(barrier(&r, 2, 1), TD_ALIGN_TRIGGER);
  /* next checkpoint: two open channels */
  TD_CHECK_INT(barrier(&r, 2, 2), 0);
  TD_CHECK_INT(barrier(&r, 1, 2), TD_ALIGN_TRIGGER);
  rig_free(&r);

  /* unaligned: the end of the last owing channel completes the capture */
  rig_init(&r, 2, TD_ALIGN_UNALIGNED);
  TD_CHECK_INT(barrier(&r, 0, 1), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_INFLIGHT);
  TD_CHECK_INT(td_aligner_on_end(r.a, 1, &r.ev), TD_ALIGN_CAPTURED);
  TD_CHECK_INT(r.ev.captured, 1);
  TD_CHECK_INT(r.ev.triggered, 0);
  rig_free(&r);
}

TD_TEST(test_barrier_timeout_aborts_and_releases) {
  rig_t r;
  rig_init(&r, 2, TD_ALIGN_EXACTLY_ONCE);
  TD_CHECK_INT(td_aligner_check_timeout(r.a, 5000, 10, &r.ev), 0); /* idle */
  r.now = 1000;
  TD_CHECK_INT(barrier(&r, 0, 7), 0);
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_HELD);
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_HELD);
  TD_CHECK_INT(td_aligner_check_timeout(r.a, 1999, 1000, &r.ev), 0);
  TD_CHECK_INT(td_aligner_check_timeout(r.a, 9999, 0, &r.ev), 0); /* no limit */
  TD_CHECK_INT(td_aligner_check_timeout(r.a, 9999, -1, NULL), 0);
  TD_CHECK_INT(td_aligner_held(r.a), 2);
  TD_CHECK_INT(td_aligner_check_timeout(r.a, 2000, 1000, &r.ev), TD_ALIGN_ABORTED);
  TD_CHECK_INT(r.ev.aborted, 7);
  TD_CHECK(!td_aligner_pending(r.a, NULL, NULL));
  TD_CHECK_INT(drain(&r), 2);
  TD_CHECK_STR(r.log, "A1 A2");
  TD_CHECK_INT(td_aligner_check_timeout(r.a, 3000, 1000, &r.ev), 0);
  TD_CHECK_INT(barrier(&r, 1, 7), 0);              /* late barrier: ignored */
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_PROCESS);
  rig_free(&r);

  /* unaligned: a capture that never completes times out too */
  rig_init(&r, 2, TD_ALIGN_UNALIGNED);
  TD_CHECK_INT(barrier(&r, 1, 1), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(td_aligner_check_timeout(r.a, 50, 50, &r.ev), TD_ALIGN_ABORTED);
  TD_CHECK_INT(r.ev.aborted, 1);
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_PROCESS);  /* no longer in-flight */
  rig_free(&r);
}

TD_TEST(test_barrier_at_least_once_never_holds) {
  rig_t r;
  rig_init(&r, 3, TD_ALIGN_AT_LEAST_ONCE);
  TD_CHECK_INT(barrier(&r, 0, 1), 0);
  TD_CHECK_INT(td_aligner_pending(r.a, NULL, NULL), 1);
  TD_CHECK(!td_aligner_blocked(r.a, 0));
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_PROCESS);
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_PROCESS);
  TD_CHECK_INT(barrier(&r, 1, 1), 0);
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_PROCESS);
  TD_CHECK_INT(deliver(&r, 2), TD_ALIGN_PROCESS);
  TD_CHECK_INT(barrier(&r, 2, 1), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(r.ev.triggered, 1);
  TD_CHECK_INT(td_aligner_held(r.a), 0);
  TD_CHECK_STR(r.log, "A1 B2 B3 C4");
  /* a channel running ahead to barrier 2 subsumes 1 (one pending at a time) */
  TD_CHECK_INT(barrier(&r, 0, 2), 0);
  TD_CHECK_INT(barrier(&r, 0, 3), TD_ALIGN_ABORTED);
  TD_CHECK_INT(r.ev.aborted, 2);
  TD_CHECK_INT(barrier(&r, 1, 2), 0);
  TD_CHECK_INT(barrier(&r, 1, 3), 0);
  TD_CHECK_INT(barrier(&r, 2, 3), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(r.ev.triggered, 3);
  rig_free(&r);
}

TD_TEST(test_barrier_unaligned_reports_overtaken_buffers) {
  rig_t r;
  rig_init(&r, 3, TD_ALIGN_UNALIGNED);
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_PROCESS);  /* A1: before */
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_PROCESS);  /* B2: before */
  r.now = 40;
  TD_CHECK_INT(barrier(&r, 0, 1), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(r.ev.triggered, 1);
  int64_t id = 0;
  TD_CHECK_INT(td_aligner_pending(r.a, &id, NULL), 1);
  TD_CHECK_INT(id, 1);
  TD_CHECK(!td_aligner_blocked(r.a, 0));           /* nothing blocks */
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_PROCESS);  /* A3: after A's barrier */
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_INFLIGHT); /* B4 */
  TD_CHECK_INT(deliver(&r, 2), TD_ALIGN_INFLIGHT); /* C5 */
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_INFLIGHT); /* B6 ends with barrier 1 */
  TD_CHECK_INT(barrier(&r, 1, 1), 0);
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_PROCESS);  /* B7 */
  TD_CHECK_INT(deliver(&r, 2), TD_ALIGN_INFLIGHT); /* C8 */
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_PROCESS);  /* A9 */
  TD_CHECK_INT(barrier(&r, 2, 1), TD_ALIGN_CAPTURED);
  TD_CHECK_INT(r.ev.captured, 1);
  TD_CHECK_INT(r.ev.triggered, 0);
  TD_CHECK(!td_aligner_pending(r.a, NULL, NULL));
  TD_CHECK_INT(deliver(&r, 2), TD_ALIGN_PROCESS);  /* C10 */
  TD_CHECK_INT(td_aligner_held(r.a), 0);
  TD_CHECK_STR(r.log, "A1 B2 A3 B4* C5* B6* B7 C8* A9 C10");
  rig_free(&r);
}

TD_TEST(test_barrier_unaligned_newer_barrier_aborts_capture) {
  rig_t r;
  rig_init(&r, 2, TD_ALIGN_UNALIGNED);
  TD_CHECK_INT(barrier(&r, 0, 1), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_INFLIGHT); /* B1, for 1 */
  TD_CHECK_INT(barrier(&r, 0, 2), TD_ALIGN_ABORTED | TD_ALIGN_TRIGGER);
  TD_CHECK_INT(r.ev.aborted, 1);
  TD_CHECK_INT(r.ev.triggered, 2);
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_INFLIGHT); /* B2, for 2 */
  int64_t id = 0;
  td_aligner_pending(r.a, &id, NULL);
  TD_CHECK_INT(id, 2);
  TD_CHECK_INT(barrier(&r, 1, 1), 0);              /* obsolete */
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_INFLIGHT); /* B3, still for 2 */
  TD_CHECK_INT(barrier(&r, 1, 2), TD_ALIGN_CAPTURED);
  TD_CHECK_INT(r.ev.captured, 2);
  TD_CHECK_STR(r.log, "B1* B2* B3*");
  rig_free(&r);
}

TD_TEST(test_barrier_ids_increase_old_ignored) {
  rig_t r;
  rig_init(&r, 2, TD_ALIGN_EXACTLY_ONCE);
  TD_CHECK_INT(td_aligner_last_id(r.a), 0);
  TD_CHECK_INT(barrier(&r, 0, 0), TD_EINVAL);
  TD_CHECK_INT(barrier(&r, 0, -5), TD_EINVAL);
  TD_CHECK_INT(barrier(&r, 2, 1), TD_EINVAL);
  TD_CHECK_INT(barrier(&r, -1, 1), TD_EINVAL);
  TD_CHECK_INT(barrier(&r, 0, 5), 0);
  TD_CHECK_INT(barrier(&r, 0, 5), TD_EINVAL);      /* same channel twice */
  TD_CHECK_INT(barrier(&r, 1, 4), 0);              /* older: ignored */
  TD_CHECK_INT(td_aligner_pending(r.a, NULL, NULL), 1);
  TD_CHECK_INT(barrier(&r, 1, 5), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(barrier(&r, 0, 5), 0);              /* completed: ignored */
  TD_CHECK_INT(barrier(&r, 1, 3), 0);
  TD_CHECK(!td_aligner_pending(r.a, NULL, NULL));
  TD_CHECK(!td_aligner_blocked(r.a, 0));
  TD_CHECK_INT(td_aligner_last_id(r.a), 5);
  TD_CHECK_INT(barrier(&r, 1, 9), 0);              /* ids may skip */
  TD_CHECK_INT(barrier(&r, 0, 9), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(r.ev.triggered, 9);
  TD_CHECK_INT(td_aligner_on_buffer(r.a, 0, NULL), TD_EINVAL);
  TD_CHECK_INT(td_aligner_on_buffer(r.a, 5, &r.b[0]), TD_EINVAL);
  TD_CHECK_INT(td_aligner_blocked(r.a, 7), 0);
  TD_CHECK_INT(barrier(&r, 0, 10), 0);
  td_align_event_t ev = {1, 2, 3, 4};
  TD_CHECK_INT(td_aligner_on_barrier(r.a, 1, 8, 0, &ev), 0);
  TD_CHECK(ev.triggered == 0 && ev.aborted == 0 && ev.cancelled == 0 &&
           ev.captured == 0);                      /* cleared */
  TD_CHECK_INT(td_aligner_on_barrier(r.a, 1, 10, 0, NULL), TD_ALIGN_TRIGGER);
  rig_free(&r);
}

TD_TEST(test_barrier_rest_of_buffer_after_barrier) {
  /* A barrier inside a buffer: the rest is classified anew. */
  rig_t r;
  rig_init(&r, 2, TD_ALIGN_EXACTLY_ONCE);
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_PROCESS);  /* A1 */
  TD_CHECK_INT(barrier(&r, 0, 1), 0);              /* at byte 10 of A1 */
  TD_CHECK_INT(td_aligner_on_buffer_at(r.a, 0, &r.b[0], 10), TD_ALIGN_HELD);
  TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_HELD);     /* A2 */
  TD_CHECK_INT(barrier(&r, 1, 1), TD_ALIGN_TRIGGER);
  td_buffer_t *b = NULL;
  int ch = -1;
  size_t off = 99;
  TD_CHECK_INT(td_aligner_next_released(r.a, &b, &ch, &off), TD_ALIGN_PROCESS);
  TD_CHECK(b == &r.b[0]);
  TD_CHECK_INT(ch, 0);
  TD_CHECK_INT(off, 10);
  TD_CHECK_INT(td_aligner_next_released(r.a, &b, &ch, &off), TD_ALIGN_PROCESS);
  TD_CHECK(b == &r.b[1]);
  TD_CHECK_INT(off, 0);
  TD_CHECK_INT(td_aligner_next_released(r.a, &b, &ch, &off), 0);
  TD_CHECK(b == &r.b[1]);                          /* untouched */
  rig_free(&r);

  /* unaligned: after its barrier, the rest of an in-flight buffer is not */
  rig_init(&r, 2, TD_ALIGN_UNALIGNED);
  TD_CHECK_INT(barrier(&r, 0, 1), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(deliver(&r, 1), TD_ALIGN_INFLIGHT);
  TD_CHECK_INT(barrier(&r, 1, 1), TD_ALIGN_CAPTURED);
  TD_CHECK_INT(td_aligner_on_buffer_at(r.a, 1, &r.b[0], 20), TD_ALIGN_PROCESS);
  rig_free(&r);
}

TD_TEST(test_barrier_new_fails_cleanly_without_memory) {
  static const td_align_mode_t modes[] = {
      TD_ALIGN_EXACTLY_ONCE, TD_ALIGN_AT_LEAST_ONCE, TD_ALIGN_UNALIGNED};
  for (int m = 0; m < 3; m++) {
    int ok = 0;
    for (int n = 1; n < 20 && !ok; n++) {
      td_aligner_t *a = (td_aligner_t *)&a;
      fail_at = n;
      n_allocs = 0;
      int rc = td_aligner_new(&a, 3, modes[m]);
      fail_at = 0;
      if (rc == 0) {
        ok = 1;
        TD_CHECK(n_allocs < n); /* succeeded: the Nth call never came */
      } else {
        TD_CHECK_INT(rc, TD_ENOMEM);
        TD_CHECK(a == NULL);
      }
      td_aligner_free(rc == 0 ? a : NULL);
    }
    TD_CHECK(ok);
  }
}

TD_TEST(test_barrier_pool_grows_past_credits) {
  /* More held buffers than credits x channels: the pool grows; when it
   * cannot, the buffer is refused (not held) and nothing else changes. */
  rig_t r;
  rig_init(&r, 2, TD_ALIGN_EXACTLY_ONCE);
  TD_CHECK_INT(barrier(&r, 0, 1), 0);
  int first = 2 * TD_CHANNEL_CREDITS;
  for (int i = 0; i < first; i++) TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_HELD);
  fail_at = 1;
  n_allocs = 0;
  TD_CHECK_INT(deliver(&r, 0), TD_ENOMEM);
  fail_at = 0;
  TD_CHECK_INT(td_aligner_held(r.a), first);
  TD_CHECK_INT(td_aligner_on_buffer(r.a, 0, &r.b[first]), TD_ALIGN_HELD);
  for (int i = 0; i < 3 * first; i++) TD_CHECK_INT(deliver(&r, 0), TD_ALIGN_HELD);
  TD_CHECK_INT(td_aligner_held(r.a), 4 * first + 1);
  TD_CHECK_INT(barrier(&r, 1, 1), TD_ALIGN_TRIGGER);
  TD_CHECK_INT(drain(&r), 4 * first + 1);
  /* the log lists every buffer once, in order */
  char want[2048] = "";
  for (int i = 0; i < r.nb; i++) {
    size_t len = strlen(want);
    snprintf(want + len, sizeof want - len, "%sA%d", i ? " " : "", i + 1);
  }
  TD_CHECK_STR(r.log, want);
  rig_free(&r);
}

TD_TEST(test_barrier_free_with_held_buffers) {
  /* The aligner does not own held buffers: freeing it leaves them alone
   * (valgrind/ASan check that nothing leaks or is touched). */
  rig_t r;
  rig_init(&r, 2, TD_ALIGN_EXACTLY_ONCE);
  TD_CHECK_INT(barrier(&r, 0, 1), 0);
  deliver(&r, 0);
  deliver(&r, 0);
  TD_CHECK_INT(td_aligner_held(r.a), 2);
  rig_free(&r);
}

/* ---- random streams: the snapshot property ---- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state % n);
}

#define SIM_CH 5
#define SIM_K 6     /* checkpoints 1..SIM_K */
#define SIM_BUFS 64 /* max buffers per channel */
#define SIM_ENT 8   /* max entries per buffer */

/* An entry: > 0 the record with that per-channel sequence number (1, 2,
 * ...), < 0 the barrier of checkpoint -e. */
typedef struct sim_buf {
  td_buffer_t b;
  int ch;
  int n;
  int e[SIM_ENT];
} sim_buf_t;

typedef struct sim {
  td_align_mode_t mode;
  int nch;
  sim_buf_t bufs[SIM_CH][SIM_BUFS];
  int nbuf[SIM_CH];
  int before[SIM_CH][SIM_K + 1];  /* records before barrier k on channel */
  int total[SIM_CH];              /* records on channel */
  int done[SIM_CH];               /* records processed (in order) */
  int snap[SIM_K + 1][SIM_CH];    /* done[] at trigger k */
  int inflight[SIM_K + 1][SIM_CH];/* in-flight records recorded for k */
  int triggered[SIM_K + 1], aborted[SIM_K + 1], captured[SIM_K + 1];
  int failures;
} sim_t;

static void sim_build(sim_t *s) {
  for (int c = 0; c < s->nch; c++) {
    int seq = 0, k = 0, nb = 0;
    /* records and barriers 1..K on this channel, cut into buffers; most
     * barriers end their buffer, some sit in the middle */
    while (k < SIM_K || nb == 0) {
      sim_buf_t *sb = &s->bufs[c][nb++];
      memset(sb, 0, sizeof *sb);
      sb->ch = c;
      int len = 1 + (int)rnd(SIM_ENT);
      for (int i = 0; i < len; i++) {
        if (k < SIM_K && rnd(4) == 0) {
          s->before[c][++k] = seq;
          sb->e[sb->n++] = -k;
          if (rnd(3) != 0) break; /* barrier ends its buffer */
        } else {
          sb->e[sb->n++] = ++seq;
        }
      }
      if (nb == SIM_BUFS - 1) { /* flush the remaining barriers */
        sb = &s->bufs[c][nb++];
        memset(sb, 0, sizeof *sb);
        sb->ch = c;
        while (k < SIM_K && sb->n < SIM_ENT) {
          s->before[c][++k] = seq;
          sb->e[sb->n++] = -k;
        }
      }
    }
    s->nbuf[c] = nb;
    s->total[c] = seq;
  }
}

static void sim_check(sim_t *s, int cond) {
  if (!cond) s->failures++;
}

static int sim_id(sim_t *s, int64_t k) {
  sim_check(s, k >= 1 && k <= SIM_K);
  return k >= 1 && k <= SIM_K ? (int)k : 0; /* 0: a slot for bad ids */
}

static void sim_events(sim_t *s, int r, const td_align_event_t *ev) {
  sim_check(s, r >= 0);
  if (r < 0) return;
  if (r & TD_ALIGN_ABORTED) s->aborted[sim_id(s, ev->aborted)]++;
  if (r & TD_ALIGN_TRIGGER) {
    int k = sim_id(s, ev->triggered);
    s->triggered[k]++;
    for (int c = 0; c < s->nch; c++) s->snap[k][c] = s->done[c];
  }
  if (r & TD_ALIGN_CAPTURED) s->captured[sim_id(s, ev->captured)]++;
}

/* sim_decode - process buffer sb from entry i on, as a task would. */
static void sim_decode(sim_t *s, td_aligner_t *a, sim_buf_t *sb, int i,
                       int verdict) {
  int64_t pend = 0;
  td_aligner_pending(a, &pend, NULL);
  for (; i < sb->n; i++) {
    int e = sb->e[i];
    if (e > 0) {
      sim_check(s, e == s->done[sb->ch] + 1); /* each channel in order */
      s->done[sb->ch] = e;
      if (verdict == TD_ALIGN_INFLIGHT) s->inflight[pend][sb->ch]++;
      continue;
    }
    td_align_event_t ev;
    sim_events(s, td_aligner_on_barrier(a, sb->ch, -e, 0, &ev), &ev);
    if (i + 1 < sb->n) {
      verdict = td_aligner_on_buffer_at(a, sb->ch, &sb->b, (size_t)i + 1);
      sim_check(s, verdict > 0);
      if (verdict == TD_ALIGN_HELD) return;
      td_aligner_pending(a, &pend, NULL);
    }
  }
}

static void sim_run(sim_t *s) {
  td_aligner_t *a;
  if (td_aligner_new(&a, s->nch, s->mode) != 0) abort();
  int next[SIM_CH] = {0};
  for (;;) {
    td_buffer_t *b;
    int ch, v;
    size_t off;
    if ((v = td_aligner_next_released(a, &b, &ch, &off)) > 0) {
      sim_buf_t *sb = (sim_buf_t *)b; /* b is the first member */
      sim_check(s, ch == sb->ch);
      sim_decode(s, a, sb, (int)off, v);
      continue;
    }
    /* the gate: a random channel with buffers left */
    int open = 0, pick = -1;
    for (int c = 0; c < s->nch; c++)
      if (next[c] < s->nbuf[c] && rnd((uint32_t)++open) == 0) pick = c;
    if (pick < 0) break;
    sim_buf_t *sb = &s->bufs[pick][next[pick]++];
    v = td_aligner_on_buffer(a, pick, &sb->b);
    sim_check(s, v > 0);
    if (v != TD_ALIGN_HELD) sim_decode(s, a, sb, 0, v);
  }
  sim_check(s, td_aligner_held(a) == 0);
  td_aligner_free(a);
}

static void sim_verify(sim_t *s) {
  for (int c = 0; c < s->nch; c++) sim_check(s, s->done[c] == s->total[c]);
  for (int k = 1; k <= SIM_K; k++) {
    sim_check(s, s->triggered[k] <= 1 && s->aborted[k] <= 1);
    switch (s->mode) {
    case TD_ALIGN_EXACTLY_ONCE: /* never aborts; state = before barrier k */
      sim_check(s, s->triggered[k] == 1 && s->aborted[k] == 0);
      for (int c = 0; c < s->nch; c++)
        sim_check(s, s->snap[k][c] == s->before[c][k]);
      break;
    case TD_ALIGN_AT_LEAST_ONCE: /* triggered or subsumed; state >= before */
      sim_check(s, s->triggered[k] + s->aborted[k] == 1);
      if (s->triggered[k])
        for (int c = 0; c < s->nch; c++)
          sim_check(s, s->snap[k][c] >= s->before[c][k]);
      break;
    case TD_ALIGN_UNALIGNED: /* state + in-flight = before barrier k */
      sim_check(s, s->triggered[k] == 1);
      sim_check(s, s->captured[k] + s->aborted[k] == 1);
      if (s->captured[k])
        for (int c = 0; c < s->nch; c++)
          sim_check(s, s->snap[k][c] + s->inflight[k][c] == s->before[c][k]);
      break;
    }
  }
}

static void sim_many(td_align_mode_t mode, int runs, int *aborts) {
  static sim_t s;
  for (int run = 0; run < runs; run++) {
    memset(&s, 0, sizeof s);
    rng_state = 0x9e3779b97f4a7c15ULL + (uint64_t)run * 7919 + mode;
    s.mode = mode;
    s.nch = 1 + (int)rnd(SIM_CH);
    sim_build(&s);
    sim_run(&s);
    sim_verify(&s);
    for (int k = 1; k <= SIM_K; k++) *aborts += s.aborted[k];
    if (s.failures) {
      fprintf(stderr, "  mode %d run %d: %d failed checks\n", mode, run,
              s.failures);
      td_test_failed_ = 1;
      return;
    }
  }
}

TD_TEST(test_barrier_random_streams_exactly_once) {
  int aborts = 0;
  sim_many(TD_ALIGN_EXACTLY_ONCE, 2000, &aborts);
  TD_CHECK_INT(aborts, 0);
}

TD_TEST(test_barrier_random_streams_at_least_once) {
  int aborts = 0;
  sim_many(TD_ALIGN_AT_LEAST_ONCE, 2000, &aborts);
  TD_CHECK(aborts > 0); /* the runs do exercise subsumption */
}

TD_TEST(test_barrier_random_streams_unaligned) {
  int aborts = 0;
  sim_many(TD_ALIGN_UNALIGNED, 2000, &aborts);
  TD_CHECK(aborts > 0);
}

TD_TEST_MAIN(test_barrier_new_rejects_bad_arguments,
             test_barrier_single_channel_triggers_at_once,
             test_barrier_two_channels_hold_after_barrier,
             test_barrier_aligned_barrier_in_other_modes,
             test_barrier_three_channels_release_in_arrival_order,
             test_barrier_barrier_on_one_channel_while_another_blocked,
             test_barrier_newer_barrier_aborts_pending,
             test_barrier_released_buffer_held_again,
             test_barrier_trigger_while_released_pending_keeps_order,
             test_barrier_cancel_marker_aborts,
             test_barrier_end_of_channel_completes_alignment,
             test_barrier_end_after_barrier_counts_once,
             test_barrier_timeout_aborts_and_releases,
             test_barrier_at_least_once_never_holds,
             test_barrier_unaligned_reports_overtaken_buffers,
             test_barrier_unaligned_newer_barrier_aborts_capture,
             test_barrier_ids_increase_old_ignored,
             test_barrier_rest_of_buffer_after_barrier,
             test_barrier_new_fails_cleanly_without_memory,
             test_barrier_pool_grows_past_credits,
             test_barrier_free_with_held_buffers,
             test_barrier_random_streams_exactly_once,
             test_barrier_random_streams_at_least_once,
             test_barrier_random_streams_unaligned)
