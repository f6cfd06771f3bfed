/*
 * heap.c - the in-memory state backend (backend.h): one hash table per key
 * group.
 *
 * Layout. The backend holds an array of tables, one per key group of its
 * range, indexed by kg - kg_first; a table allocates nothing until its first
 * put. A table is open addressing with linear probing over two parallel
 * arrays: a 32-bit hash tag per slot and a pointer to the entry (NULL =
 * empty), 12 bytes a slot. The tag holds enough of the hash to give an
 * entry's home slot (tables are at most 2^31 slots), so growing never reads
 * the entries, and a probe compares tags before it touches an entry's bytes.
 * Each entry is one allocation: a 16-byte header (state id and the three
 * lengths) followed by the key, namespace and value bytes.
 *
 * Hash. XXH3-64 over (state_id, key, ns): the key is hashed with a seed
 * derived from the state id and the namespace with that hash as its seed,
 * so ("ab", "") and ("a", "b") differ. The seed is never 0: with state id 0
 * it would equal the key group hash (keygroup.h), whose low bits are the
 * same for every key of one key group.
 *
 * Load. A table doubles when an insert would take it over 3/4 full, and
 * shrinks when removals leave it under 1/8 full (an empty table frees its
 * arrays). Removal is backward-shift deletion: the entries after the hole
 * that may move closer to their home slot do, so there are no tombstones
 * and lookups stay as short as after a fresh insert.
 *
 * Errors. Allocation failure returns TD_ENOMEM and leaves the table as it
 * was (a replaced value is copied into a new allocation before the old one
 * is released). Key groups outside [kg_first, kg_last], lengths above
 * UINT32_MAX and state id UINT32_MAX (the scan wildcard) are TD_EINVAL, as
 * is a range with kg_first > kg_last or kg_last >= TD_MAX_PARALLELISM_LIMIT
 * (no key group can be that large).
 *
 * Allocation goes through HEAP_MALLOC / HEAP_FREE so that a test can
 * compile this file with a failing allocator (fault injection, see
 * tests/core/test_state.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "backend.h"
#include "error.h"
#include "keygroup.h"

#ifndef HEAP_MALLOC
#define HEAP_MALLOC(n) malloc(n)
#define HEAP_FREE(p) free(p)
#endif

#define MIN_SLOTS 8u
#define MAX_SLOTS (1u << 31)

typedef struct entry {
  uint32_t state_id;
  uint32_t key_len;
  uint32_t ns_len;
  uint32_t val_len;
  unsigned char bytes[]; /* key, then ns, then value */
} entry_t;

typedef struct table {
  uint32_t mask;    /* slots - 1; meaningless while slots == NULL */
  uint32_t count;   /* entries held */
  uint32_t *tags;   /* per slot: the entry's hash tag */
  entry_t **slots;  /* per slot: the entry, or NULL */
} table_t;

typedef struct heap {
  td_backend_t base; /* first: a td_backend_t * is a heap_t * */
  table_t *tables;   /* kg_last - kg_first + 1 of them */
  uint64_t count;
} heap_t;

/* A lookup: where the entry is, or where it would be inserted. */
typedef struct probe {
  uint32_t tag;
  uint32_t pos;
  entry_t *e; /* NULL: absent */
} probe_t;

static uint32_t hash_tag(uint32_t state_id, td_bytes_t key, td_bytes_t ns) {
  uint64_t seed = 0x9E3779B97F4A7C15ull ^ state_id;
  uint64_t h = XXH3_64bits_withSeed(key.data, key.len, seed);
  h = XXH3_64bits_withSeed(ns.data, ns.len, h);
  return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

static int bytes_eq(const unsigned char *p, td_bytes_t b) {
  return b.len == 0 || memcmp(p, b.data, b.len) == 0;
}

static int entry_matches(const entry_t *e, uint32_t state_id, td_bytes_t key,
                         td_bytes_t ns) {
  return e->state_id == state_id && e->key_len == key.len &&
         e->ns_len == ns.len && bytes_eq(e->bytes, key) &&
         bytes_eq(e->bytes + e->key_len, ns);
}

/* find - look (state_id, key, ns) up in t, which must have slots. */
static void find(const table_t *t, uint32_t state_id, td_bytes_t key,
                 td_bytes_t ns, probe_t *p) {
  uint32_t tag = hash_tag(state_id, key, ns);
  uint32_t i = tag & t->mask;
  p->tag = tag;
  for (;;) {
    entry_t *e = t->slots[i];
    if (!e || (t->tags[i] == tag && entry_matches(e, state_id, key, ns))) {
      p->pos = i;
      p->e = e;
      return;
    }
    i = (i + 1) & t->mask;
  }
}

/* resize - move t's entries into fresh arrays of n slots (a power of two
 * that holds them). Returns 0, or TD_ENOMEM with t unchanged. */
static int resize(table_t *t, uint32_t n) {
  uint32_t *tags = HEAP_MALLOC((size_t)n * sizeof *tags);
  entry_t **slots = HEAP_MALLOC((size_t)n * sizeof *slots);
  if (!tags || !slots) {
    HEAP_FREE(tags);
    HEAP_FREE(slots);
    return TD_ENOMEM;
  }
  memset(slots, 0, (size_t)n * sizeof *slots);
  uint32_t mask = n - 1;
  if (t->slots) {
    for (uint64_t i = 0; i <= t->mask; i++) {
      if (!t->slots[i]) continue;
      uint32_t j = t->tags[i] & mask;
      while (slots[j]) j = (j + 1) & mask;
      slots[j] = t->slots[i];
      tags[j] = t->tags[i];
    }
  }
  HEAP_FREE(t->tags);
  HEAP_FREE(t->slots);
  t->tags = tags;
  t->slots = slots;
  t->mask = mask;
  return 0;
}

/* table_of - the table of key group kg, or NULL if kg is not ours. */
static table_t *table_of(heap_t *h, uint32_t kg) {
  if (kg < h->base.kg_first || kg > h->base.kg_last) return NULL;
  return &h->tables[kg - h->base.kg_first];
}

static int check_args(uint32_t state_id, td_bytes_t key, td_bytes_t ns) {
  if (state_id == UINT32_MAX || key.len > UINT32_MAX || ns.len > UINT32_MAX)
    return TD_EINVAL;
  if ((key.len && !key.data) || (ns.len && !ns.data)) return TD_EINVAL;
  return 0;
}

static int heap_get(td_backend_t *b, uint32_t state_id, uint32_t kg,
                    td_bytes_t key, td_bytes_t ns, td_bytes_t *out) {
  table_t *t = table_of((heap_t *)b, kg);
  int rc = check_args(state_id, key, ns);
  if (!t || rc) return TD_EINVAL;
  if (!t->slots) return 0;
  probe_t p;
  find(t, state_id, key, ns, &p);
  if (!p.e) return 0;
  out->data = p.e->bytes + p.e->key_len + p.e->ns_len;
  out->len = p.e->val_len;
  return 1;
}

/* replace_value - give the entry at p a new value. The new entry is built
 * before the old one is freed: value may point into the old one. */
static int replace_value(table_t *t, const probe_t *p, td_bytes_t value) {
  entry_t *old = p->e;
  if (value.len == old->val_len) {
    if (value.len)
      memmove(old->bytes + old->key_len + old->ns_len, value.data, value.len);
    return 0;
  }
  size_t head = sizeof *old + (size_t)old->key_len + old->ns_len;
  entry_t *e = HEAP_MALLOC(head + value.len);
  if (!e) return TD_ENOMEM;
  memcpy(e, old, head);
  e->val_len = (uint32_t)value.len;
  if (value.len) memcpy(e->bytes + e->key_len + e->ns_len, value.data, value.len);
  t->slots[p->pos] = e;
  HEAP_FREE(old);
  return 0;
}

static int heap_put(td_backend_t *b, uint32_t state_id, uint32_t kg,
                    td_bytes_t key, td_bytes_t ns, td_bytes_t value) {
  heap_t *h = (heap_t *)b;
  table_t *t = table_of(h, kg);
  int rc = check_args(state_id, key, ns);
  if (!t || rc || value.len > UINT32_MAX || (value.len && !value.data))
    return TD_EINVAL;
  probe_t p;
  if (t->slots) {
    find(t, state_id, key, ns, &p);
    if (p.e) return replace_value(t, &p, value);
  }
  entry_t *e = HEAP_MALLOC(sizeof *e + key.len + ns.len + value.len);
  if (!e) return TD_ENOMEM;
  e->state_id = state_id;
  e->key_len = (uint32_t)key.len;
  e->ns_len = (uint32_t)ns.len;
  e->val_len = (uint32_t)value.len;
  if (key.len) memcpy(e->bytes, key.data, key.len);
  if (ns.len) memcpy(e->bytes + key.len, ns.data, ns.len);
  if (value.len) memcpy(e->bytes + key.len + ns.len, value.data, value.len);
  /* keep the load at most 3/4 after this insert */
  uint64_t slots = t->slots ? (uint64_t)t->mask + 1 : 0;
  if ((uint64_t)(t->count + 1) * 4 > slots * 3) {
    uint64_t n = slots ? slots * 2 : MIN_SLOTS;
    rc = n > MAX_SLOTS ? TD_ENOMEM : resize(t, (uint32_t)n);
    if (rc) {
      HEAP_FREE(e);
      return rc;
    }
    find(t, state_id, key, ns, &p);
  }
  t->slots[p.pos] = e;
  t->tags[p.pos] = p.tag;
  t->count++;
  h->count++;
  return 0;
}

/* shrink - after a removal, give memory back when t is under 1/8 full.
 * Failing to shrink is harmless: the table stays as it is. */
static void shrink(table_t *t) {
  if (t->count == 0) {
    HEAP_FREE(t->tags);
    HEAP_FREE(t->slots);
    t->tags = NULL;
    t->slots = NULL;
    t->mask = 0;
    return;
  }
  uint64_t slots = (uint64_t)t->mask + 1;
  if (slots <= MIN_SLOTS || (uint64_t)t->count * 8 >= slots) return;
  uint64_t n = MIN_SLOTS;
  while ((uint64_t)t->count * 2 > n) n *= 2; /* at most half full */
  (void)resize(t, (uint32_t)n);
}

static int heap_remove(td_backend_t *b, uint32_t state_id, uint32_t kg,
                       td_bytes_t key, td_bytes_t ns) {
  heap_t *h = (heap_t *)b;
  table_t *t = table_of(h, kg);
  int rc = check_args(state_id, key, ns);
  if (!t || rc) return TD_EINVAL;
  if (!t->slots) return 0;
  probe_t p;
  find(t, state_id, key, ns, &p);
  if (!p.e) return 0;
  HEAP_FREE(p.e);
  /* backward shift: pull later entries of the cluster into the hole when
   * that keeps them at or after their home slot */
  uint32_t mask = t->mask, hole = p.pos, j = p.pos;
  for (;;) {
    j = (j + 1) & mask;
    if (!t->slots[j]) break;
    uint32_t home = t->tags[j] & mask;
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      t->slots[hole] = t->slots[j];
      t->tags[hole] = t->tags[j];
      hole = j;
    }
  }
  t->slots[hole] = NULL;
  t->count--;
  h->count--;
  shrink(t);
  return 1;
}

static int heap_scan(td_backend_t *b, uint32_t state_id, uint32_t kg_from,
                     uint32_t kg_to, td_state_visit_fn fn, void *ud) {
  heap_t *h = (heap_t *)b;
  if (kg_from < b->kg_first) kg_from = b->kg_first;
  if (kg_to > b->kg_last) kg_to = b->kg_last;
  for (uint64_t kg = kg_from; kg <= kg_to; kg++) {
    const table_t *t = &h->tables[kg - b->kg_first];
    if (!t->slots) continue;
    for (uint64_t i = 0; i <= t->mask; i++) {
      const entry_t *e = t->slots[i];
      if (!e || (state_id != UINT32_MAX && e->state_id != state_id)) continue;
      td_state_entry_t se = {
          .state_id = e->state_id,
          .key_group = (uint32_t)kg,
          .key = {e->bytes, e->key_len},
          .ns = {e->bytes + e->key_len, e->ns_len},
          .value = {e->bytes + e->key_len + e->ns_len, e->val_len},
      };
      int rc = fn(&se, ud);
      if (rc) return rc;
    }
  }
  return 0;
}

static uint64_t heap_count(td_backend_t *b) { return ((heap_t *)b)->count; }

static void heap_free(td_backend_t *b) {
  heap_t *h = (heap_t *)b;
  uint64_t n = (uint64_t)b->kg_last - b->kg_first + 1;
  for (uint64_t k = 0; k < n; k++) {
    table_t *t = &h->tables[k];
    if (!t->slots) continue;
    for (uint64_t i = 0; i <= t->mask; i++) HEAP_FREE(t->slots[i]);
    HEAP_FREE(t->tags);
    HEAP_FREE(t->slots);
  }
  HEAP_FREE(h->tables);
  HEAP_FREE(h);
}

static const td_backend_ops_t heap_ops = {
    .name = "heap",
    .get = heap_get,
    .put = heap_put,
    .remove = heap_remove,
    .scan = heap_scan,
    .count = heap_count,
    .free = heap_free,
};

int td_backend_new_heap(td_backend_t **out, uint32_t kg_first,
                        uint32_t kg_last) {
  if (kg_first > kg_last || kg_last >= TD_MAX_PARALLELISM_LIMIT)
    return TD_EINVAL;
  size_t n = (size_t)(kg_last - kg_first) + 1;
  heap_t *h = HEAP_MALLOC(sizeof *h);
  table_t *tables = HEAP_MALLOC(n * sizeof *tables);
  if (!h || !tables) {
    HEAP_FREE(h);
    HEAP_FREE(tables);
    return TD_ENOMEM;
  }
  memset(tables, 0, n * sizeof *tables);
  h->base.ops = &heap_ops;
  h->base.kg_first = kg_first;
  h->base.kg_last = kg_last;
  h->tables = tables;
  h->count = 0;
  *out = &h->base;
  return 0;
}
