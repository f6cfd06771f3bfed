/*
 * windows_tumbling.c - baseline for the window benchmarks: case (a),
 * tumbling 1 s event-time windows summing v per key, as a hand-written C
 * loop over the same generated events as windows.lua.
 *
 *   windows_tumbling [N]    prints "RESULTS TOTAL OPEN_MAX"
 *
 * Events i = 1..N: key = i % 10000, v = 1, ts = windows_ts(i) (below, the
 * same arithmetic as windows.lua). Watermark = max ts - 300 - 1, checked
 * after every event (a per-record bounded watermark); when it reaches a
 * window's last ms (start + 999) the window is flushed: every (window, key)
 * entry is emitted (its sum added to TOTAL, RESULTS counted) and freed. At
 * the end every open window is flushed (the final watermark). State: a
 * chained hash map of (window start, key) -> sum, plus, per open window, a
 * list of its entries in insertion order. OPEN_MAX is the largest number of
 * entries alive at once: state is bounded by the open windows, not by N.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NKEYS 10000
#define SIZE 1000  /* window size, ms */
#define BOUND 300  /* max out-of-orderness, ms (jitter is 0..299) */
#define NBUCKETS (1u << 17)
#define MAXWIN 64  /* open windows at once (ts spans at most 1 + BOUND/SIZE) */

/* Timestamps: bursts of 10 s of event time at 100 events/ms (1,000,000
 * events each), separated by 6 s pauses, plus a pseudo-random jitter of
 * 0..299 ms. Keep in sync with windows.lua and windows_bare.lua. */
static int64_t windows_ts(int64_t i) {
  int64_t j = i - 1;
  uint64_t h = (uint64_t)i * 2654435761u;
  return j / 100 + 6000 * (j / 1000000) + (int64_t)((h >> 16) % 300);
}

typedef struct entry {
  int64_t start, key, sum;
  struct entry *chain; /* next in the bucket */
  struct entry *wnext; /* next entry of the same window */
} entry;

typedef struct {
  int64_t start;
  entry *head, *tail;
} window;

static entry *buckets[NBUCKETS];
static entry *free_list;
static window wins[MAXWIN]; /* open windows, ascending start (a ring) */
static int wfirst, wcount;
static long long results, total, alive, alive_max;

static uint32_t bucket_of(int64_t start, int64_t key) {
  uint64_t h = (uint64_t)start * 0x9E3779B97F4A7C15ull ^ (uint64_t)key * 0xC2B2AE3D27D4EB4Full;
  h ^= h >> 29;
  return (uint32_t)(h & (NBUCKETS - 1));
}

static entry *new_entry(void) {
  entry *e = free_list;
  if (e) {
    free_list = e->chain;
    return e;
  }
  e = malloc(sizeof *e);
  if (!e) {
    perror("malloc");
    exit(1);
  }
  return e;
}

static window *window_for(int64_t start) {
  for (int n = wcount - 1; n >= 0; n--) { /* new events land in the newest windows */
    window *w = &wins[(wfirst + n) % MAXWIN];
    if (w->start == start) return w;
    if (w->start < start) {
      /* insert after position n (keeps starts ascending) */
      if (wcount == MAXWIN) {
        fprintf(stderr, "too many open windows\n");
        exit(1);
      }
      for (int m = wcount; m > n + 1; m--) wins[(wfirst + m) % MAXWIN] = wins[(wfirst + m - 1) % MAXWIN];
      window *nw = &wins[(wfirst + n + 1) % MAXWIN];
      wcount++;
      nw->start = start;
      nw->head = nw->tail = NULL;
      return nw;
    }
  }
  if (wcount == MAXWIN) {
    fprintf(stderr, "too many open windows\n");
    exit(1);
  }
  wfirst = (wfirst + MAXWIN - 1) % MAXWIN;
  wcount++;
  wins[wfirst].start = start;
  wins[wfirst].head = wins[wfirst].tail = NULL;
  return &wins[wfirst];
}

static void add(int64_t ts, int64_t key, int64_t v) {
  int64_t start = ts - ((ts % SIZE) + SIZE) % SIZE;
  uint32_t b = bucket_of(start, key);
  for (entry *e = buckets[b]; e; e = e->chain) {
    if (e->start == start && e->key == key) {
      e->sum += v;
      return;
    }
  }
  entry *e = new_entry();
  e->start = start;
  e->key = key;
  e->sum = v;
  e->chain = buckets[b];
  buckets[b] = e;
  e->wnext = NULL;
  window *w = window_for(start);
  if (w->tail) w->tail->wnext = e;
  else w->head = e;
  w->tail = e;
  if (++alive > alive_max) alive_max = alive;
}

/* emit and free every window whose last ms is <= wm */
static void flush(int64_t wm) {
  while (wcount > 0 && wins[wfirst].start + SIZE - 1 <= wm) {
    window *w = &wins[wfirst];
    for (entry *e = w->head, *next; e; e = next) {
      next = e->wnext;
      results++; /* the result record (start, key, sum) */
      total += e->sum;
      entry **p = &buckets[bucket_of(e->start, e->key)];
      while (*p != e) p = &(*p)->chain;
      *p = e->chain;
      e->chain = free_list;
      free_list = e;
      alive--;
    }
    wfirst = (wfirst + 1) % MAXWIN;
    wcount--;
  }
}

int main(int argc, char **argv) {
  long long n = argc > 1 ? atoll(argv[1]) : 10000000LL;
  int64_t max_ts = INT64_MIN + BOUND + 1, wm = INT64_MIN;
  for (long long i = 1; i <= n; i++) {
    int64_t ts = windows_ts(i);
    add(ts, i % NKEYS, 1);
    if (ts > max_ts) {
      max_ts = ts;
      if (max_ts - BOUND - 1 > wm) {
        wm = max_ts - BOUND - 1;
        flush(wm);
      }
    }
  }
  flush(INT64_MAX);
  printf("%lld %lld %lld\n", results, total, alive_max);
  return 0;
}
