/* keyed.c - keyed state and event-time timers over a backend (see keyed.h). */
#include "keyed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"
#include "keygroup.h"
#include "msgpack.h"

#define TIMERS 0u /* the reserved state id of timers (name "") */

typedef struct timer {
  int64_t ts;
  uint32_t kg;
  uint32_t klen;
  char *key;
} timer_t_;

struct td_keyed {
  td_backend_t *be;
  int maxp;
  int kg_first, kg_last;
  /* the current key */
  td_wbuf_t key;
  uint32_t kg;
  int has_key;
  /* state names by id */
  char **names;
  uint32_t n_names, cap_names;
  /* timers: a binary min-heap by (ts, key bytes) */
  timer_t_ *heap;
  size_t n_heap, cap_heap;
  uint64_t n_timers; /* live ones (in the backend) */
};

int td_keyed_new(td_keyed_t **out, int subtask, int parallelism, int maxp) {
  *out = NULL;
  if (parallelism < 1 || maxp < parallelism || maxp > TD_MAX_PARALLELISM_LIMIT || subtask < 0 ||
      subtask >= parallelism)
    return TD_EINVAL;
  td_keyed_t *k = calloc(1, sizeof *k);
  if (!k) return TD_ENOMEM;
  k->maxp = maxp;
  /* Flink's computeKeyGroupRangeForOperatorIndex */
  k->kg_first = (int)(((int64_t)subtask * maxp + parallelism - 1) / parallelism);
  k->kg_last = (int)((((int64_t)subtask + 1) * maxp - 1) / parallelism);
  int rc = td_backend_new_heap(&k->be, (uint32_t)k->kg_first, (uint32_t)k->kg_last);
  if (rc == 0) {
    k->names = calloc(8, sizeof *k->names);
    k->cap_names = 8;
    k->names[0] = k->names ? strdup("") : NULL;
    k->n_names = 1;
    rc = k->names && k->names[0] ? 0 : TD_ENOMEM;
  }
  if (rc) {
    td_keyed_free(k);
    return rc;
  }
  *out = k;
  return 0;
}

void td_keyed_free(td_keyed_t *k) {
  if (!k) return;
  td_backend_free(k->be);
  for (uint32_t i = 0; k->names && i < k->n_names; i++) free(k->names[i]);
  free(k->names);
  for (size_t i = 0; i < k->n_heap; i++) free(k->heap[i].key);
  free(k->heap);
  td_wbuf_destroy(&k->key);
  free(k);
}

void td_keyed_range(const td_keyed_t *k, int *first, int *last) {
  *first = k->kg_first;
  *last = k->kg_last;
}

/* Make bytes[0 .. len) the current key (copied), of key group kg. */
static int set_current(td_keyed_t *k, const void *bytes, size_t len, uint32_t kg) {
  k->key.len = 0;
  if (len && td_wbuf_reserve(&k->key, len)) {
    k->has_key = 0;
    return TD_ENOMEM;
  }
  if (len) memcpy(k->key.data, bytes, len);
  k->key.len = len;
  k->kg = kg;
  k->has_key = 1;
  return 0;
}

int td_keyed_set_key(td_keyed_t *k, const void *key, size_t len) {
  int kg = td_keygroup_of(td_keygroup_hash(key, len), k->maxp);
  if (kg < k->kg_first || kg > k->kg_last) {
    k->has_key = 0;
    return TD_EINVAL;
  }
  return set_current(k, key, len, (uint32_t)kg);
}

int td_keyed_key(const td_keyed_t *k, const char **key, size_t *len) {
  if (!k->has_key) return TD_EINVAL;
  *key = k->key.data ? k->key.data : "";
  *len = k->key.len;
  return 0;
}

void td_keyed_clear_key(td_keyed_t *k) { k->has_key = 0; }

int td_keyed_state_id(td_keyed_t *k, const char *name, uint32_t *id) {
  if (!name || !*name) return TD_EINVAL;
  for (uint32_t i = 1; i < k->n_names; i++)
    if (strcmp(k->names[i], name) == 0) {
      *id = i;
      return 0;
    }
  if (k->n_names == k->cap_names) {
    char **n = realloc(k->names, sizeof *n * k->cap_names * 2);
    if (!n) return TD_ENOMEM;
    k->names = n;
    k->cap_names *= 2;
  }
  char *s = strdup(name);
  if (!s) return TD_ENOMEM;
  k->names[k->n_names] = s;
  *id = k->n_names++;
  return 0;
}

static td_bytes_t bytes(const void *p, size_t n) {
  td_bytes_t b = {n ? p : "", n};
  return b;
}

static int check(const td_keyed_t *k, uint32_t sid) {
  return k->has_key && sid > TIMERS && sid < k->n_names ? 0 : TD_EINVAL;
}

int td_keyed_get(td_keyed_t *k, uint32_t sid, const void *ns, size_t nslen, const char **val,
                 size_t *len) {
  if (check(k, sid)) return TD_EINVAL;
  td_bytes_t v;
  int rc = td_backend_get(k->be, sid, k->kg, bytes(k->key.data, k->key.len), bytes(ns, nslen), &v);
  if (rc == 1) {
    *val = v.data;
    *len = v.len;
  }
  return rc;
}

int td_keyed_put(td_keyed_t *k, uint32_t sid, const void *ns, size_t nslen, const void *val,
                 size_t len) {
  if (check(k, sid)) return TD_EINVAL;
  return td_backend_put(k->be, sid, k->kg, bytes(k->key.data, k->key.len), bytes(ns, nslen),
                        bytes(val, len));
}

int td_keyed_clear(td_keyed_t *k, uint32_t sid, const void *ns, size_t nslen) {
  if (check(k, sid)) return TD_EINVAL;
  return td_backend_remove(k->be, sid, k->kg, bytes(k->key.data, k->key.len), bytes(ns, nslen));
}

/* ---- timers ---- */

static void ts_bytes(unsigned char *b, int64_t ts) {
  uint64_t u = (uint64_t)ts;
  for (int i = 7; i >= 0; i--) {
    b[i] = (unsigned char)u;
    u >>= 8;
  }
}

static int timer_less(const timer_t_ *a, const timer_t_ *b) {
  if (a->ts != b->ts) return a->ts < b->ts;
  size_t n = a->klen < b->klen ? a->klen : b->klen;
  int c = n ? memcmp(a->key, b->key, n) : 0;
  return c ? c < 0 : a->klen < b->klen;
}

static void sift_up(td_keyed_t *k, size_t i) {
  timer_t_ t = k->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!timer_less(&t, &k->heap[parent])) break;
    k->heap[i] = k->heap[parent];
    i = parent;
  }
  k->heap[i] = t;
}

static void sift_down(td_keyed_t *k, size_t i) {
  timer_t_ t = k->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= k->n_heap) break;
    if (c + 1 < k->n_heap && timer_less(&k->heap[c + 1], &k->heap[c])) c++;
    if (!timer_less(&k->heap[c], &t)) break;
    k->heap[i] = k->heap[c];
    i = c;
  }
  k->heap[i] = t;
}

/* Add (ts, key, kg) to the heap (the key copied). */
static int heap_push(td_keyed_t *k, int64_t ts, const char *key, size_t klen, uint32_t kg) {
  if (k->n_heap == k->cap_heap) {
    size_t cap = k->cap_heap ? 2 * k->cap_heap : 64;
    timer_t_ *h = realloc(k->heap, sizeof *h * cap);
    if (!h) return TD_ENOMEM;
    k->heap = h;
    k->cap_heap = cap;
  }
  char *copy = malloc(klen ? klen : 1);
  if (!copy) return TD_ENOMEM;
  if (klen) memcpy(copy, key, klen);
  timer_t_ *t = &k->heap[k->n_heap];
  t->ts = ts;
  t->kg = kg;
  t->klen = (uint32_t)klen;
  t->key = copy;
  sift_up(k, k->n_heap++);
  return 0;
}

int td_keyed_timer_add(td_keyed_t *k, int64_t ts) {
  if (!k->has_key) return TD_EINVAL;
  unsigned char ns[8];
  ts_bytes(ns, ts);
  td_bytes_t key = bytes(k->key.data, k->key.len), v;
  int rc = td_backend_get(k->be, TIMERS, k->kg, key, bytes(ns, 8), &v);
  if (rc != 0) return rc < 0 ? rc : 0; /* there already */
  rc = heap_push(k, ts, k->key.data, k->key.len, k->kg);
  if (rc == 0) rc = td_backend_put(k->be, TIMERS, k->kg, key, bytes(ns, 8), bytes(NULL, 0));
  if (rc == 0) k->n_timers++;
  /* on failure a heap entry without its backend entry is skipped later */
  return rc;
}

int td_keyed_timer_del(td_keyed_t *k, int64_t ts) {
  if (!k->has_key) return TD_EINVAL;
  unsigned char ns[8];
  ts_bytes(ns, ts);
  int rc = td_backend_remove(k->be, TIMERS, k->kg, bytes(k->key.data, k->key.len), bytes(ns, 8));
  if (rc == 1) k->n_timers--;
  return rc;
}

int td_keyed_next_timer(td_keyed_t *k, int64_t wm, int64_t *ts) {
  while (k->n_heap > 0 && k->heap[0].ts <= wm) {
    timer_t_ t = k->heap[0];
    k->heap[0] = k->heap[--k->n_heap];
    if (k->n_heap) sift_down(k, 0);
    unsigned char ns[8];
    ts_bytes(ns, t.ts);
    int rc = td_backend_remove(k->be, TIMERS, t.kg, bytes(t.key, t.klen), bytes(ns, 8));
    if (rc == 1) {
      k->n_timers--;
      rc = set_current(k, t.key, t.klen, t.kg);
      free(t.key);
      if (rc) return rc;
      *ts = t.ts;
      return 1;
    }
    free(t.key); /* deleted, or a duplicate of one that fired */
  }
  return 0;
}

uint64_t td_keyed_timers(const td_keyed_t *k) { return k->n_timers; }

uint64_t td_keyed_entries(const td_keyed_t *k) { return td_backend_count(k->be); }

/* ---- snapshots ---- */

static int visit(const td_state_entry_t *e, void *ud) {
  td_wbuf_t *out = ud;
  int rc = td_mp_write_int(out, e->state_id);
  if (rc == 0) rc = td_mp_write_int(out, e->key_group);
  if (rc == 0) rc = td_mp_write_str(out, e->key.data, e->key.len);
  if (rc == 0) rc = td_mp_write_str(out, e->ns.data, e->ns.len);
  if (rc == 0) rc = td_mp_write_str(out, e->value.data, e->value.len);
  return rc;
}

int td_keyed_snapshot(td_keyed_t *k, td_wbuf_t *out) {
  uint64_t n = td_backend_count(k->be);
  if (n * 5 > UINT32_MAX) return TD_ENOMEM;
  int rc = td_mp_write_array(out, 4);
  if (rc == 0) rc = td_mp_write_str(out, "keyed", 5);
  if (rc == 0) rc = td_mp_write_int(out, 1);
  if (rc == 0) rc = td_mp_write_array(out, k->n_names);
  for (uint32_t i = 0; rc == 0 && i < k->n_names; i++)
    rc = td_mp_write_str(out, k->names[i], strlen(k->names[i]));
  if (rc == 0) rc = td_mp_write_array(out, (uint32_t)(n * 5));
  if (rc == 0)
    rc = td_backend_scan(k->be, UINT32_MAX, (uint32_t)k->kg_first, (uint32_t)k->kg_last, visit, out);
  return rc;
}

static int corrupt(char *err, size_t errlen, const char *what) {
  snprintf(err, errlen, "keyed state snapshot: %s", what);
  return TD_ECORRUPT;
}

int td_keyed_restore(td_keyed_t *k, const char *data, size_t len, char *err, size_t errlen) {
  const char *p = data, *end = data + len;
  td_mp_item_t it;
  if (td_mp_read(&p, end, &it) || it.type != TD_MP_ARRAY || it.v.n != 4)
    return corrupt(err, errlen, "not a keyed state snapshot");
  if (td_mp_read(&p, end, &it) || it.type != TD_MP_STR || it.v.s.len != 5 ||
      memcmp(it.v.s.p, "keyed", 5) != 0)
    return corrupt(err, errlen, "not a keyed state snapshot");
  if (td_mp_read(&p, end, &it) || it.type != TD_MP_INT || it.v.i != 1)
    return corrupt(err, errlen, "unknown format version");
  if (td_mp_read(&p, end, &it) || it.type != TD_MP_ARRAY || it.v.n < 1)
    return corrupt(err, errlen, "bad state names");
  uint32_t n_names = it.v.n;
  uint32_t *map = calloc(n_names, sizeof *map); /* snapshot id -> our id */
  if (!map) return TD_ENOMEM;
  int rc = 0;
  for (uint32_t i = 0; rc == 0 && i < n_names; i++) {
    if (td_mp_read(&p, end, &it) || it.type != TD_MP_STR || it.v.s.len > 1024) {
      rc = corrupt(err, errlen, "bad state name");
      break;
    }
    char name[1025];
    memcpy(name, it.v.s.p, it.v.s.len);
    name[it.v.s.len] = 0;
    if (i == 0) {
      if (name[0]) rc = corrupt(err, errlen, "bad timer state");
      map[0] = TIMERS;
    } else {
      rc = td_keyed_state_id(k, name, &map[i]);
      if (rc == TD_EINVAL) rc = corrupt(err, errlen, "empty state name");
    }
  }
  if (rc == 0 && (td_mp_read(&p, end, &it) || it.type != TD_MP_ARRAY || it.v.n % 5 != 0))
    rc = corrupt(err, errlen, "bad entries");
  uint32_t n = rc == 0 ? it.v.n / 5 : 0;
  for (uint32_t i = 0; rc == 0 && i < n; i++) {
    td_mp_item_t f[5];
    for (int j = 0; j < 5 && rc == 0; j++)
      if (td_mp_read(&p, end, &f[j]) || f[j].type != (j < 2 ? TD_MP_INT : TD_MP_STR))
        rc = corrupt(err, errlen, "bad entry");
    if (rc) break;
    if (f[0].v.i < 0 || f[0].v.i >= n_names || f[1].v.i < 0 || f[1].v.i >= k->maxp) {
      rc = corrupt(err, errlen, "bad entry");
      break;
    }
    uint32_t kg = (uint32_t)f[1].v.i;
    if ((int)kg < k->kg_first || (int)kg > k->kg_last) continue; /* another subtask's */
    uint32_t sid = map[f[0].v.i];
    td_bytes_t key = bytes(f[2].v.s.p, f[2].v.s.len), ns = bytes(f[3].v.s.p, f[3].v.s.len);
    if (sid == TIMERS) {
      if (ns.len != 8) {
        rc = corrupt(err, errlen, "bad timer");
        break;
      }
      const unsigned char *b = ns.data;
      uint64_t u = 0;
      for (int j = 0; j < 8; j++) u = (u << 8) | b[j];
      td_bytes_t v;
      if (td_backend_get(k->be, TIMERS, kg, key, ns, &v) == 1) continue;
      rc = heap_push(k, (int64_t)u, key.data, key.len, kg);
      if (rc == 0) k->n_timers++;
    }
    if (rc == 0) rc = td_backend_put(k->be, sid, kg, key, ns, bytes(f[4].v.s.p, f[4].v.s.len));
  }
  free(map);
  if (rc == TD_ENOMEM) snprintf(err, errlen, "out of memory");
  return rc;
}
