/*
 * keyed.h - the keyed state and event-time timers of one keyed operator
 * instance (a C module's keyed process), over the byte-oriented state
 * backend (state/backend.h, the heap backend today).
 *
 * State is addressed as the backend addresses it: (state id, key group,
 * key bytes, namespace bytes). Key bytes are the canonical MessagePack
 * encoding of the key (msgpack.h td_mp_canonical, codec.h); the key group
 * is hash(key bytes) % max_parallelism (keygroup.h), and an instance holds
 * the key groups of its subtask (Flink's KeyGroupRangeAssignment): a key
 * of another subtask's range is refused, since the exchange sent it to
 * the wrong place.
 *
 * Callers set the current key (td_keyed_set_key) and read and write values
 * of that key. State ids come from names (td_keyed_state_id), so a
 * snapshot restores by name whatever order an operator declares them in.
 *
 * Timers, as Flink's InternalTimerService for event time: at most one per
 * (key, timestamp); td_keyed_next_timer hands out the due ones (timestamp
 * <= watermark) in timestamp order (then key bytes), each with its key made
 * current. They live in the backend (state "" of the reserved id 0,
 * namespace = the timestamp) so they are snapshotted with the state, and
 * in a min-heap for firing order; deleting one removes it from the backend
 * and the heap skips it later.
 *
 * Snapshots are one MessagePack value: ["keyed", 1, [state names], [state
 * id, key group, key, namespace, value, ...]], written by scanning the
 * backend without allocating beyond the output buffer (td_wbuf: the
 * snapshot child's arena).
 *
 * Thread safety: one thread at a time (the subtask's).
 */
#ifndef TD_KEYED_H
#define TD_KEYED_H

#include <stddef.h>
#include <stdint.h>

#include "wbuf.h"

typedef struct td_keyed td_keyed_t;

/*
 * td_keyed_new - state and timers of subtask `subtask` of `parallelism`,
 * for a job of max_parallelism key groups (1 <= parallelism <=
 * max_parallelism <= TD_MAX_PARALLELISM_LIMIT). Returns 0 and *out,
 * TD_EINVAL or TD_ENOMEM.
 */
int td_keyed_new(td_keyed_t **out, int subtask, int parallelism, int max_parallelism);

/* td_keyed_free - free everything (NULL is a no-op). */
void td_keyed_free(td_keyed_t *k);

/* td_keyed_range - the key groups [*first, *last] the instance holds. */
void td_keyed_range(const td_keyed_t *k, int *first, int *last);

/*
 * td_keyed_set_key - make key[0 .. len) (canonical key bytes, copied) the
 * current key. Returns 0, TD_ENOMEM, or TD_EINVAL when its key group is
 * not this instance's (the key stays unset).
 */
int td_keyed_set_key(td_keyed_t *k, const void *key, size_t len);

/* td_keyed_key - the current key's bytes (borrowed until the next
 * td_keyed_set_key or td_keyed_next_timer). 0, or TD_EINVAL when unset. */
int td_keyed_key(const td_keyed_t *k, const char **key, size_t *len);

/* td_keyed_clear_key - no current key (outside on_record / on_timer). */
void td_keyed_clear_key(td_keyed_t *k);

/*
 * td_keyed_state_id - the id of the state called name (a non-empty
 * string): the same id for the same name. 0 and *id, TD_EINVAL, TD_ENOMEM.
 */
int td_keyed_state_id(td_keyed_t *k, const char *name, uint32_t *id);

/* td_keyed_get - the current key's value of state sid in namespace ns:
 * *val, *len borrowed until the next put, clear, timer change or restore.
 * Returns 1 found, 0 absent, TD_EINVAL (no current key, unknown state). */
int td_keyed_get(td_keyed_t *k, uint32_t sid, const void *ns, size_t nslen, const char **val,
                 size_t *len);

/* td_keyed_put - set it (copied). 0, TD_EINVAL, TD_ENOMEM. */
int td_keyed_put(td_keyed_t *k, uint32_t sid, const void *ns, size_t nslen, const void *val,
                 size_t len);

/* td_keyed_clear - remove it. 1 removed, 0 absent, TD_EINVAL. */
int td_keyed_clear(td_keyed_t *k, uint32_t sid, const void *ns, size_t nslen);

/* td_keyed_timer_add - an event-time timer at ts for the current key (no-op
 * if it exists). 0, TD_EINVAL (no current key), TD_ENOMEM. */
int td_keyed_timer_add(td_keyed_t *k, int64_t ts);

/* td_keyed_timer_del - remove the current key's timer at ts. 1 removed, 0
 * absent, TD_EINVAL. */
int td_keyed_timer_del(td_keyed_t *k, int64_t ts);

/*
 * td_keyed_next_timer - the next timer due at watermark wm (timestamp <=
 * wm), removed, its key made current: returns 1 and *ts; 0 when none is
 * due; TD_ENOMEM.
 */
int td_keyed_next_timer(td_keyed_t *k, int64_t wm, int64_t *ts);

/* td_keyed_timers - pending timers; td_keyed_entries - state entries
 * (timers included). */
uint64_t td_keyed_timers(const td_keyed_t *k);
uint64_t td_keyed_entries(const td_keyed_t *k);

/* td_keyed_snapshot - append the snapshot (see above) to out. 0 or
 * TD_ENOMEM. Allocates nothing but out's growth. */
int td_keyed_snapshot(td_keyed_t *k, td_wbuf_t *out);

/*
 * td_keyed_restore - add the state and timers of a snapshot (entries of
 * key groups outside this instance's range are left out: the snapshot of
 * another parallelism). Returns 0, TD_ENOMEM, or TD_ECORRUPT with a
 * message in err.
 */
int td_keyed_restore(td_keyed_t *k, const char *data, size_t len, char *err, size_t errlen);

#endif
