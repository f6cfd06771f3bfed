/*
 * backend.h - the state backend interface.
 *
 * Keyed state is addressed by (state id, key group, key bytes, namespace
 * bytes) and holds value bytes; key bytes are the canonical MessagePack
 * encoding of the key (codec.h) and the key group is derived from them
 * (keygroup.h). The runtime holds a td_backend_t and never knows which
 * implementation it is: "heap" (in-memory hash tables, state/heap.c) or
 * "rocksdb" (an embedded RocksDB, state/rocksdb.h). All calls go through the method table, so tests can
 * wrap a backend to inject faults (SQLite's os.c pattern).
 *
 * A backend belongs to one subtask and is used by one thread at a time.
 * It covers a contiguous range of key groups [kg_first, kg_last]; access
 * outside it is TD_EINVAL.
 *
 * Note on the Lua side: the heap backend's live-value mode keeps state as
 * Lua values in the subtask's VM (lua/tide/state.lua) and uses a backend
 * only to snapshot and restore; byte-oriented backends (RocksDB) serve every
 * access through this interface.
 */
#ifndef TD_BACKEND_H
#define TD_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct td_backend td_backend_t;

/* A borrowed byte string. */
typedef struct td_bytes {
  const void *data;
  size_t len;
} td_bytes_t;

/* One entry, as given to a scan callback. */
typedef struct td_state_entry {
  uint32_t state_id;
  uint32_t key_group;
  td_bytes_t key;
  td_bytes_t ns;
  td_bytes_t value;
} td_state_entry_t;

/* Scan callback: return 0 to go on, non-zero to stop the scan (that value
 * is then returned by the scan). */
typedef int (*td_state_visit_fn)(const td_state_entry_t *e, void *ud);

typedef struct td_backend_ops {
  const char *name;
  /* get: *out borrows the stored value, valid until the next call on this
   * backend (heap keeps it valid across gets, until the next put, remove
   * or clear; rocksdb does not). Returns 1 found, 0 absent, or < 0. */
  int (*get)(td_backend_t *b, uint32_t state_id, uint32_t kg, td_bytes_t key,
             td_bytes_t ns, td_bytes_t *out);
  /* put: insert or replace (the bytes are copied). 0 or < 0. */
  int (*put)(td_backend_t *b, uint32_t state_id, uint32_t kg, td_bytes_t key,
             td_bytes_t ns, td_bytes_t value);
  /* remove: 1 removed, 0 absent, or < 0. */
  int (*remove)(td_backend_t *b, uint32_t state_id, uint32_t kg,
                td_bytes_t key, td_bytes_t ns);
  /* scan: visit every entry of key groups [kg_from, kg_to] in key group
   * order (entries within a key group in no particular order); state_id
   * UINT32_MAX visits every state. Must not be modified during a scan. */
  int (*scan)(td_backend_t *b, uint32_t state_id, uint32_t kg_from,
              uint32_t kg_to, td_state_visit_fn fn, void *ud);
  /* count: number of entries held. */
  uint64_t (*count)(td_backend_t *b);
  void (*free)(td_backend_t *b);
} td_backend_ops_t;

struct td_backend {
  const td_backend_ops_t *ops;
  uint32_t kg_first, kg_last;
};

/*
 * td_backend_new_heap - an in-memory backend for key groups
 * [kg_first, kg_last]. Returns 0 and *out, or TD_ENOMEM / TD_EINVAL.
 */
int td_backend_new_heap(td_backend_t **out, uint32_t kg_first,
                        uint32_t kg_last);

/* Thin wrappers over the method table. */
static inline int td_backend_get(td_backend_t *b, uint32_t sid, uint32_t kg,
                                 td_bytes_t key, td_bytes_t ns,
                                 td_bytes_t *out) {
  return b->ops->get(b, sid, kg, key, ns, out);
}
static inline int td_backend_put(td_backend_t *b, uint32_t sid, uint32_t kg,
                                 td_bytes_t key, td_bytes_t ns,
                                 td_bytes_t value) {
  return b->ops->put(b, sid, kg, key, ns, value);
}
static inline int td_backend_remove(td_backend_t *b, uint32_t sid,
                                    uint32_t kg, td_bytes_t key,
                                    td_bytes_t ns) {
  return b->ops->remove(b, sid, kg, key, ns);
}
static inline int td_backend_scan(td_backend_t *b, uint32_t sid,
                                  uint32_t kg_from, uint32_t kg_to,
                                  td_state_visit_fn fn, void *ud) {
  return b->ops->scan(b, sid, kg_from, kg_to, fn, ud);
}
static inline uint64_t td_backend_count(td_backend_t *b) {
  return b->ops->count(b);
}
/* td_backend_free - free the backend and everything it holds; NULL ok. */
static inline void td_backend_free(td_backend_t *b) {
  if (b) b->ops->free(b);
}

#endif
