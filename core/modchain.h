/*
 * modchain.h - the module operators of one task's chain, run in C over
 * batches of encoded records.
 *
 * A chain (runtime.lua) may hold C module operators beside Lua ones. The
 * module operators of a task are nodes of one td_modchain_t; each node's
 * output goes to targets wired when the chain is built:
 *
 *   node      another module operator of the chain: its batch is handed
 *             over as record views, in C, with no conversion;
 *   edge      an exchange: every record is emitted as bytes with
 *             td_task_emit (a hash edge's key bytes taken from the record
 *             by field name or index, canonical: td_mp_canonical);
 *   boundary  a Lua consumer: the records are copied into the boundary's
 *             buffer, which the Lua binding decodes into Lua values after
 *             the call that filled it (td_modchain_pending);
 *   discard   nothing (a discard sink).
 *
 * Entry points hand a batch to one node and run everything reachable from
 * it, depth first: td_modchain_push (records from Lua, encoded, or from a
 * test), td_modchain_poll (td_task_poll's record views, straight from the
 * exchange), td_modchain_read (a source's next batch), td_modchain_watermark
 * (a keyed process fires its due timers), td_modchain_finish. A chain of
 * module operators from a source to a discard runs with no Lua per record:
 * the Lua task loop calls td_modchain_read once per batch.
 *
 * Output buffers. A node's output is a td_out_t (tide.h) whose arrays the
 * chain sizes before each call for what that call may emit: map one record
 * per input record, flat_map max_fanout per input record (a batch is
 * handed over in slices so that one call never may emit more than 65536
 * records), keyed process max_fanout per on_record / on_timer call, source
 * the batch asked for. More is refused and fails the task.
 *
 * Errors. Functions return 0 (or what is said) or a negative code with a
 * one-line message in td_modchain_error naming the module, the operator
 * and its uid, and td_modchain_failed telling which node failed (-1: the
 * chain itself, e.g. an exchange); TD_ECANCELED (the job failed under this
 * subtask) has no message.
 *
 * Thread safety: a chain belongs to its subtask's thread.
 */
#ifndef TD_MODCHAIN_H
#define TD_MODCHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "module.h"
#include "tide.h"
#include "wbuf.h"

typedef struct td_modchain td_modchain_t;

/* How a key is taken from an encoded record: a map's field `field`
 * (flen bytes), or an array's item `index` (1-based; a map's integer key).
 * TD_KEY_NONE: keys come with each push (td_modchain_push's keys). */
typedef enum { TD_KEY_NONE = 0, TD_KEY_FIELD, TD_KEY_INDEX } td_key_kind_t;
typedef struct td_keyspec {
  td_key_kind_t kind;
  const char *field; /* copied by the chain */
  size_t flen;
  int64_t index;
} td_keyspec_t;

/* td_modchain_new - an empty chain of a subtask's task (task NULL: no
 * exchange targets, as in a test harness). 0 and *out, or TD_ENOMEM. */
int td_modchain_new(td_modchain_t **out, td_task_t *task);

/* td_modchain_free - close every opened instance and free the chain
 * (NULL is a no-op). */
void td_modchain_free(td_modchain_t *c);

/*
 * td_modchain_add - a node running operator op_name of module m, an
 * instance for spec (not opened yet); key: a keyed process's key (NULL or
 * TD_KEY_NONE: keys come with every push). 0 and *node (its index), or
 * TD_EINVAL (no such operator), TD_ENOMEM.
 */
int td_modchain_add(td_modchain_t *c, const td_module_t *m, const char *op_name,
                    const td_module_spec_t *spec, const td_keyspec_t *key, int *node);

/* td_modchain_ctx - a node's instance (for tests). */
td_ctx_t *td_modchain_ctx(td_modchain_t *c, int node);

/* Targets of a node's output (0 or TD_EINVAL / TD_ENOMEM):
 * to_node - module operator `to` of this chain (from != to);
 * to_edge - job edge `edge` (0-based), an output of the task; a hash edge
 *   needs key (TD_KEY_FIELD or TD_KEY_INDEX);
 * to_boundary - a new Lua boundary: *b its index;
 * to_discard - nothing. */
int td_modchain_to_node(td_modchain_t *c, int from, int to);
int td_modchain_to_edge(td_modchain_t *c, int from, int edge, const td_keyspec_t *key);
int td_modchain_to_boundary(td_modchain_t *c, int from, int *b);
int td_modchain_to_discard(td_modchain_t *c, int from);

/* td_modchain_open - the node's open with its config (MessagePack bytes),
 * then the module's own part of a restored snapshot, if one came first. */
int td_modchain_open(td_modchain_t *c, int node, const char *config, size_t len);

/*
 * td_modchain_push - run records in (views; keys[(i ? key_ends[i-1] : 0)
 * .. key_ends[i]) the canonical key bytes of record i for a keyed process
 * without a key spec, else NULL) through node and what follows it.
 */
int td_modchain_push(td_modchain_t *c, int node, const td_batch_t *in, const char *keys,
                     const uint32_t *key_ends);

/*
 * td_modchain_poll - td_task_poll(timeout_ms), and the batch's records
 * (views into the exchange buffer) through node. Returns td_task_poll's
 * result (TD_TASK_BATCH, TD_TASK_END, TD_TASK_TIMEOUT) or an error; *ev
 * gets the batch (its edge, event and value; its views are stale).
 */
int td_modchain_poll(td_modchain_t *c, int node, int timeout_ms, td_batch_t *ev);

/* td_modchain_read - a source node's next batch of at most max records,
 * through what follows it: *n records, *ended when the source ended. */
int td_modchain_read(td_modchain_t *c, int node, uint32_t max, uint32_t *n, int *ended);

/* td_modchain_watermark - the node's event time advances to wm (ms): a
 * keyed process fires its timers <= wm, their output going on. */
int td_modchain_watermark(td_modchain_t *c, int node, int64_t wm);

/* td_modchain_finish - end of input: a sink pre-commits under
 * TD_FINAL_CHECKPOINT, other nodes call their finish (its output goes
 * on). */
int td_modchain_finish(td_modchain_t *c, int node);

/* td_modchain_pre_commit / td_modchain_commit - a sink node's two-phase
 * commit for checkpoint id (no-ops for other nodes). */
int td_modchain_pre_commit(td_modchain_t *c, int node, int64_t id);
int td_modchain_commit(td_modchain_t *c, int node, int64_t id);

/*
 * td_modchain_snapshot - append the node's snapshot to out: one
 * MessagePack value ["module", 1, keyed state or nil, the module's own
 * bytes or nil]. Safe in a snapshot child (no malloc but out's growth,
 * td_realloc). 0, or an error.
 */
int td_modchain_snapshot(td_modchain_t *c, int node, td_wbuf_t *out);

/* td_modchain_restore - a snapshot of the node (from td_modchain_snapshot):
 * keyed state now, the module's own part at open (or now, if open).
 * 0, TD_ECORRUPT, TD_ENOMEM or the module's restore code. */
int td_modchain_restore(td_modchain_t *c, int node, const char *data, size_t len);

/*
 * td_modchain_rescale - one old subtask's snapshot of the node taken at
 * another parallelism; call it with every old subtask's whose key groups
 * overlap this instance's, in any order. Its keyed state and timers of
 * this instance's key-group range are added (Flink's restore of keyed
 * state by key-group range: keyed.h td_keyed_restore). The module's own
 * part (its snapshot callback's bytes) cannot be split by key group: it
 * must be nil or empty (then the module's restore is called once, with no
 * bytes, as at the same parallelism), else TD_EINVAL with a message. 0,
 * TD_ECORRUPT, TD_ENOMEM, TD_EINVAL or the module's restore code.
 */
int td_modchain_rescale(td_modchain_t *c, int node, const char *data, size_t len);

/* td_modchain_pending - how many boundaries hold records. */
int td_modchain_pending(const td_modchain_t *c);

/* td_modchain_boundary - the records boundary b holds (views valid until
 * td_modchain_clear or the next run); returns their count. */
int td_modchain_boundary(td_modchain_t *c, int b, td_batch_t *view);

/* td_modchain_clear - empty boundary b. */
void td_modchain_clear(td_modchain_t *c, int b);

/* td_modchain_boundaries - the number of boundaries. */
int td_modchain_boundaries(const td_modchain_t *c);

/* td_modchain_error - the last error's message; td_modchain_failed - the
 * node that failed (-1: none, or the chain itself). */
const char *td_modchain_error(const td_modchain_t *c);
int td_modchain_failed(const td_modchain_t *c);

#endif
