/*
 * tide.h - Tide's public C ABI: what a VM host and the LuaJIT FFI bindings
 * call, and (with the module API) what C modules build against.
 *
 * Versioned: TIDE_ABI_MAJOR changes when something a client relies on
 * changes (a struct's layout, a function's meaning) and is checked
 * exactly; TIDE_ABI_MINOR grows when something is added. tide_abi_version()
 * tells the running core's version, so a client built against one header
 * can check the core it runs in.
 *
 * The part between the TIDE_FFI_BEGIN and TIDE_FFI_END markers holds no
 * preprocessor line: the LuaJIT bindings' ffi.cdef text
 * (lua/tide/cdef.lua) is generated from it (make cdef), and make test
 * fails when the two drift.
 *
 * Errors. Functions return 0 (or a count) or a negative code: TD_ECANCELED
 * (error.h, -4006) when the job was cancelled or failed under this subtask
 * (not a failure of its own: the host unwinds quietly), any other code
 * with a one-line message in td_task_error(t).
 */
#ifndef TIDE_H
#define TIDE_H

#include <stddef.h>
#include <stdint.h>

#define TIDE_ABI_MAJOR 1
#define TIDE_ABI_MINOR 0
/* The version as tide_abi_version() returns it. */
#define TIDE_ABI_VERSION ((TIDE_ABI_MAJOR << 16) | TIDE_ABI_MINOR)

/* A record without a timestamp. */
#define TD_NO_TIMESTAMP INT64_MIN

/* Default buffer timeout (Flink's execution.buffer-timeout), ms. */
#define TD_BUFFER_TIMEOUT_DEFAULT_MS 100

/* TIDE_FFI_BEGIN */

/* tide_abi_version - the core's ABI version: major << 16 | minor. */
uint32_t tide_abi_version(void);

typedef struct td_task td_task_t;

/* What td_task_poll reports after the records of a batch. */
typedef enum {
  TD_TASK_EV_NONE = 0,
  TD_TASK_EV_WATERMARK = 1, /* value: the new input watermark (valve.h) */
  TD_TASK_EV_IDLE = 2,      /* the input turned idle */
  TD_TASK_EV_ACTIVE = 3,    /* the input turned active again */
  TD_TASK_EV_BARRIER = 4    /* value: checkpoint id, aligned per the job's
                               mode: snapshot now (td_task_snapshot) */
} td_task_event_t;

/* Results of td_task_poll. */
enum {
  TD_TASK_END = 0,     /* every input ended */
  TD_TASK_BATCH = 1,   /* *batch holds records and/or an event */
  TD_TASK_TIMEOUT = 2  /* nothing within the timeout */
};

/*
 * A batch of record views. Record i is the MessagePack value
 * data[off[i] .. stop[i]); ts[i] its timestamp or TD_NO_TIMESTAMP. The
 * views are borrowed: valid until the next td_task_poll or td_task_free.
 */
typedef struct td_batch {
  int n;               /* records, >= 0 */
  int edge;            /* the job edge (0-based) they came over; -1 if none */
  int has_ts;          /* some record has a timestamp (else ts is NULL) */
  const char *data;
  const uint32_t *off, *stop;
  const int64_t *ts;
  int event;           /* td_task_event_t, after the records */
  int64_t value;
} td_batch_t;

/* td_task_error - the message of the last error (a static "" if none). */
const char *td_task_error(const td_task_t *t);

/*
 * td_task_poll - the next batch of the input: records up to the first
 * in-band event for the task and at most the input's budget (input.h),
 * then that event if any. A batch starts only when every output has credit
 * for it (waiting meanwhile, still taking unaligned barriers); partly
 * filled output buffers are sent before the task waits, and at the buffer
 * timeout. timeout_ms: < 0 no limit, 0 no wait.
 * Returns TD_TASK_BATCH, TD_TASK_END, TD_TASK_TIMEOUT, TD_ECANCELED, or
 * TD_ECORRUPT / TD_EINVAL (a corrupt exchange buffer, a barrier protocol
 * error: td_task_error says which). A task without inputs gets TD_TASK_END.
 */
int td_task_poll(td_task_t *t, int timeout_ms, td_batch_t *batch);

/*
 * td_task_tick - a source between batches: sends partly filled buffers at
 * the buffer timeout, and waits until every output can take a batch. *id
 * receives a checkpoint the coordinator asks this source to inject (then
 * snapshot with td_task_snapshot and call again), or 0.
 * Returns 0 or TD_ECANCELED.
 */
int td_task_tick(td_task_t *t, int64_t *id);

/*
 * td_task_emit - send one encoded record (len bytes, a MessagePack value)
 * over edge with timestamp ts (or TD_NO_TIMESTAMP); key as for
 * td_task_record_begin; a broadcast edge sends it to every target.
 * Returns 0, TD_ECANCELED, TD_ENOMEM or TD_EINVAL.
 */
int td_task_emit(td_task_t *t, int edge, const void *rec, size_t len, int64_t ts,
                 const void *key, size_t klen);

/*
 * td_task_emit_batch - td_task_emit for n records back to back in data:
 * record i is data[(i ? ends[i-1] : 0) .. ends[i]), with ts[i] (ts may be
 * NULL) and, on a hash edge, key bytes keys[(i ? key_ends[i-1] : 0) ..
 * key_ends[i]). Returns 0 or an error as td_task_emit.
 */
int td_task_emit_batch(td_task_t *t, int edge, const char *data, const uint32_t *ends,
                       int n, const int64_t *ts, const char *keys,
                       const uint32_t *key_ends);

/* td_task_emit_watermark - a watermark (ms) on every channel of edge. */
int td_task_emit_watermark(td_task_t *t, int edge, int64_t wm);

/* td_task_emit_status - watermark status idle (1) or active (0) on every
 * channel of edge. */
int td_task_emit_status(td_task_t *t, int edge, int idle);

/* td_task_flush - send every partly filled output buffer now. */
void td_task_flush(td_task_t *t);

/* td_task_flush_due - send partly filled output buffers if the buffer
 * timeout passed since the last flush (a timeout of 0: always). Hosts call
 * it after each batch they emitted. */
void td_task_flush_due(td_task_t *t);

/* td_task_finish - the end of this subtask's output: end of partition on
 * every output channel, after everything sent. 0 or TD_ECANCELED. */
int td_task_finish(td_task_t *t);

/* td_task_checkpoint_pending - whether checkpoint id is pending (a barrier
 * of a checkpoint no longer pending is forwarded, not snapshot). */
int td_task_checkpoint_pending(td_task_t *t, int64_t id);

/* td_task_forward_barrier - send barrier id on every output without a
 * snapshot (a source: counts as injected). 0 or an error. */
int td_task_forward_barrier(td_task_t *t, int64_t id);

/* td_task_completed - the newest completed checkpoint id, 0 before any. */
int64_t td_task_completed(td_task_t *t);

/* td_task_now_us - the monotonic clock the pause statistics use, us. */
int64_t td_task_now_us(void);

/* td_task_fail - fail the job with message (the first failure wins). */
void td_task_fail(td_task_t *t, const char *message);

/* td_task_cancelled - whether the job failed or was cancelled. */
int td_task_cancelled(const td_task_t *t);

/* TIDE_FFI_END */

#endif
