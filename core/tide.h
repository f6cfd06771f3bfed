/*
 * tide.h - Tide's public C ABI: what a VM host and the LuaJIT FFI bindings
 * call, and what C modules build against (the module API, after the FFI
 * part; docs/MODULES.md walks through it).
 *
 * Versioned: TIDE_ABI_MAJOR changes when something a client relies on
 * changes (a struct's layout, a function's meaning) and is checked
 * exactly; TIDE_ABI_MINOR grows when something is added. tide_abi_version()
 * tells the running core's version, so a client built against one header
 * can check the core it runs in; a module declares the version it was
 * built for (TIDE_MODULE), and tide.load_module refuses another major.
 *
 * The part between the TIDE_FFI_BEGIN and TIDE_FFI_END markers holds no
 * preprocessor line: the LuaJIT bindings' ffi.cdef text
 * (lua/tide/cdef.lua) is generated from it (make cdef), and make test
 * fails when the two drift.
 *
 * Errors. Functions return 0 (or a count) or a negative code: TD_ECANCELED
 * (-4006) when the job was cancelled or failed under this subtask (not a
 * failure of its own: the host unwinds quietly), any other code with a
 * one-line message in td_task_error(t). The codes are TD_ERRNO_MAP below
 * and negated errno values.
 *
 * This header includes nothing but <stddef.h>, <stdint.h> and <string.h>:
 * installed alone (make install), it is all a module needs.
 */
#ifndef TIDE_H
#define TIDE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TIDE_ABI_MAJOR 1
#define TIDE_ABI_MINOR 1
/* The version as tide_abi_version() returns it. */
#define TIDE_ABI_VERSION ((TIDE_ABI_MAJOR << 16) | TIDE_ABI_MINOR)

/* A record without a timestamp. */
#define TD_NO_TIMESTAMP INT64_MIN

/* Default buffer timeout (Flink's execution.buffer-timeout), ms. */
#define TD_BUFFER_TIMEOUT_DEFAULT_MS 100

/*
 * Tide's error codes, all below -4000 so that they never collide with
 * negated errno values. One X-macro list generates the enum, td_strerror()
 * and td_err_name() (core/error.c) and the Lua constants core.errors
 * (libuv's UV_ERRNO_MAP pattern).
 */
#define TD_ERRNO_MAP(X)                                                   \
  X(EINVAL,    -4001, "invalid argument")                                 \
  X(ENOMEM,    -4002, "out of memory")                                    \
  X(ECODEC,    -4003, "value cannot be encoded")                          \
  X(ECORRUPT,  -4004, "malformed or truncated data")                      \
  X(EPARSE,    -4005, "malformed input line")                             \
  X(ECANCELED, -4006, "job was cancelled")                                \
  X(ESCRIPT,   -4007, "error in job script")                              \
  X(EIO,       -4008, "input/output error")                               \
  X(ESTATE,    -4009, "state backend error")                              \
  X(EOVERFLOW, -4010, "more output than the output buffer allows")        \
  X(EABI,      -4011, "incompatible ABI version")

enum {
#define TD_ERR_ENUM(name, code, msg) TD_##name = (code),
  TD_ERRNO_MAP(TD_ERR_ENUM)
#undef TD_ERR_ENUM
};

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

/* ======================================================================
 * The module API: C modules loaded by tide.load_module(path)
 *
 * A module is a shared object that defines one symbol, `tide_module` (a
 * td_module_decl_t, written by the TIDE_MODULE macro), and nothing else
 * Tide looks for. Loading is a handshake in the manner of Redis's
 * RedisModule_Init and SQLite's loadable extensions:
 *
 *   1. the host reads the declaration's frozen prefix (magic, abi, size,
 *      name: these four never move, whatever the major), refuses another
 *      ABI major, and a minor newer than its own;
 *   2. it calls init(m, api) once per process: api is the host's routine
 *      table (td_api_t), append-only with its size first, so a module
 *      built for 1.N finds every routine of 1.N at the same place in any
 *      core 1.M, M >= N; init registers the module's operators
 *      (api->register_op), each described by a td_op_t with its size
 *      first;
 *   3. the host copies the descriptors it was given, reading only the
 *      bytes the module's struct has (its size field) and taking zero for
 *      fields the module does not know: the host never reads past the
 *      module's struct, nor the module past the host's (Fluent Bit's copy
 *      by the host's struct size is the pattern avoided here).
 *
 * Records are MessagePack values (the helpers below read and write them).
 * Memory: everything a callback receives is owned by the host; what it
 * may keep, and for how long, is said with each callback. A module
 * allocates only its own state (open .. close).
 *
 * Threads: a module is loaded once per process and init runs once; then
 * its operators run as instances, one per subtask, each called by one
 * thread at a time (its subtask's), many instances at once. A module's
 * global data is shared by all of them.
 * ====================================================================== */

#define TIDE_MODULE_MAGIC 0x54494445u /* "TIDE" */
#define TIDE_MODULE_SYMBOL "tide_module"

typedef struct td_module td_module_t; /* a loaded module (host-owned) */
typedef struct td_ctx td_ctx_t;       /* one operator instance (host-owned) */
typedef struct td_api td_api_t;       /* the host's routine table */

/* What TIDE_MODULE defines. The first four fields never change. */
typedef struct td_module_decl {
  uint32_t magic;       /* TIDE_MODULE_MAGIC */
  uint32_t abi;         /* the TIDE_ABI_VERSION the module was built for */
  uint32_t size;        /* sizeof(td_module_decl_t) as the module was built */
  const char *name;     /* the module's name (messages; m.name in Lua) */
  /* ---- 1.1 ---- */
  const char *version;  /* the module's own version string, or NULL */
  /* init - register the module's operators with api->register_op (only
   * during init). api stays valid for the life of the process: keep it.
   * Returns 0, or a negative code (with api->module_error) to refuse the
   * load. */
  int (*init)(td_module_t *m, const td_api_t *api);
} td_module_decl_t;

#if defined(__GNUC__)
#define TIDE_EXPORT __attribute__((visibility("default")))
#else
#define TIDE_EXPORT
#endif

/* TIDE_MODULE(name, version, init) - declare the module (once, in one of
 * its files): its name, version string and init function. */
#define TIDE_MODULE(name, version, init)                                   \
  TIDE_EXPORT const td_module_decl_t tide_module = {                      \
      TIDE_MODULE_MAGIC, TIDE_ABI_VERSION, sizeof(td_module_decl_t), name, \
      version, init}

/* Operator kinds. */
typedef enum td_op_kind {
  TD_OP_MAP = 1,      /* process: exactly one record out per record in */
  TD_OP_FLAT_MAP = 2, /* process: 0..max_fanout records out per record in */
  TD_OP_FILTER = 3,   /* filter: a keep flag per record (no copy) */
  TD_OP_PROCESS = 4,  /* keyed process: on_record / on_timer, keyed state
                         and event-time timers (a KeyedStream only) */
  TD_OP_SOURCE = 5,   /* read (splits, positions, bounded or not) */
  TD_OP_SINK = 6      /* write, pre_commit / commit (two-phase commit) */
} td_op_kind_t;

/* What read returns besides errors. */
enum {
  TD_SOURCE_MORE = 0, /* call again (zero records: nothing right now) */
  TD_SOURCE_END = 1   /* the source ended (after this call's records) */
};

/* The pre-commit / commit id of the final checkpoint (end of input). */
#define TD_FINAL_CHECKPOINT INT64_MAX

/*
 * A growable byte buffer in host memory. Write into it with the
 * td_mp_put_* helpers (or reserve room with td_buf_reserve and append to
 * data + len yourself); never free or realloc data: grow() is the
 * host's. len fits in 32 bits (batches are at most 4 GiB).
 */
typedef struct td_buf {
  char *data;
  size_t len, cap;
  /* grow - make room for extra more bytes (data may move).
   * 0 or TD_ENOMEM. */
  int (*grow)(struct td_buf *b, size_t extra);
} td_buf_t;

/*
 * The output of one callback: records the operator emits, in host memory.
 * Write a record's MessagePack value into buf (td_mp_put_*), then end it
 * with td_out_end(out, ts); or emit encoded bytes with td_out_emit.
 *
 * The output buffer contract: one call may emit at most `max` records
 * (map: exactly one per input record; flat_map: max_fanout per input
 * record; keyed process: max_fanout per on_record or on_timer call;
 * source: the batch the host asks for). A record beyond that is refused
 * (TD_EOVERFLOW) and fails the task with a message naming the operator,
 * whether or not the callback passes the code on. Bytes are not limited
 * (buf grows) below 4 GiB per batch.
 */
typedef struct td_out {
  td_buf_t buf;          /* record bytes, back to back */
  uint32_t n;            /* records emitted by this call so far */
  uint32_t max;          /* the most records this call may emit */
  uint32_t mark;         /* where the record being written starts */
  uint32_t overflow;     /* records refused for want of room */
  uint32_t *off, *stop;  /* record i is buf.data[off[i] .. stop[i]) */
  int64_t *ts;           /* record i's timestamp, or TD_NO_TIMESTAMP */
  int has_ts;            /* some record has a timestamp */
} td_out_t;

/* Static facts about an instance, from api->info(ctx). The strings live as
 * long as the instance. Read a field only if size covers it. */
typedef struct td_info {
  uint32_t size;            /* sizeof(td_info_t) in the core */
  int32_t subtask;          /* this instance's subtask index, 0-based */
  int32_t parallelism;      /* of the operator */
  int32_t max_parallelism;  /* key groups of the job */
  const char *uid;          /* the operator's uid */
  const char *name;         /* its display name */
  const char *job;          /* the job's name */
  const char *module;       /* the module's name */
  const char *op;           /* the operator's registered name */
} td_info_t;

/*
 * An operator, as init registers it (api->register_op copies it: it may
 * be a local). Unused callbacks are NULL. Each kind needs: map, flat_map
 * process; filter filter; keyed process on_record (on_timer if it sets
 * timers); source read; sink write. open, close, snapshot and restore are
 * optional for every kind; pre_commit and commit for sinks.
 *
 * Lifecycle of an instance: open (config) -> [restore (the checkpoint it
 * resumes from)] -> records, timers, checkpoints (snapshot, and for sinks
 * pre_commit / commit) -> [end of input: finish] -> close. A failed task
 * calls close too, but not finish.
 *
 * Every callback returns 0 (or a TD_SOURCE_* value for read) or a negative
 * code, after api->error(ctx, code, "...") for the message: the task then
 * fails with the module's, the operator's name and uid and that message.
 */
typedef struct td_op {
  uint32_t size;        /* sizeof(td_op_t) as the module was built: first */
  uint32_t kind;        /* td_op_kind_t */
  const char *name;     /* m.<name> in Lua: [A-Za-z_][A-Za-z0-9_]* */
  uint32_t max_fanout;  /* flat_map, process: see td_out_t (0: 16) */
  uint32_t flags;       /* reserved: 0 */

  /* open - config is the MessagePack encoding of the Lua config (nil
   * when none), borrowed for the call: copy what you keep. *state is
   * yours (NULL before), given to every later callback. */
  int (*open)(td_ctx_t *ctx, const char *config, size_t len, void **state);
  /* close - free state. Always called once after a successful open. */
  void (*close)(td_ctx_t *ctx, void *state);

  /* map, flat_map: records in (views borrowed for the call: in->data,
   * off, stop, ts), records out into out. */
  int (*process)(td_ctx_t *ctx, void *state, const td_batch_t *in, td_out_t *out);
  /* filter: keep[i] = 1 to pass record i on (0: drop it). */
  int (*filter)(td_ctx_t *ctx, void *state, const td_batch_t *in, uint8_t *keep);

  /* keyed process: one record (rec[0 .. len) borrowed for the call, ts its
   * timestamp or TD_NO_TIMESTAMP) of the current key (api->current_key):
   * keyed state and timers act on that key. */
  int (*on_record)(td_ctx_t *ctx, void *state, const char *rec, size_t len, int64_t ts,
                   td_out_t *out);
  /* keyed process: the event-time timer ts of the current key fired (the
   * watermark passed it); records emitted should carry ts. */
  int (*on_timer)(td_ctx_t *ctx, void *state, int64_t ts, td_out_t *out);

  /* source: emit up to out->max records, then return TD_SOURCE_MORE or
   * TD_SOURCE_END. Split the input by api->info's subtask and
   * parallelism. Called between checkpoints: what it emitted is before the
   * next snapshot's position. */
  int (*read)(td_ctx_t *ctx, void *state, td_out_t *out);

  /* sink: records in (views borrowed for the call). */
  int (*write)(td_ctx_t *ctx, void *state, const td_batch_t *in);
  /* sink: checkpoint `checkpoint`'s barrier: make what was written so far
   * durable and pending (not visible); its snapshot follows. At the end of
   * input, checkpoint is TD_FINAL_CHECKPOINT. */
  int (*pre_commit)(td_ctx_t *ctx, void *state, int64_t checkpoint);
  /* sink: checkpoint `checkpoint` completed: publish what was pending up
   * to it (idempotent: it may see an id twice after a restore). */
  int (*commit)(td_ctx_t *ctx, void *state, int64_t checkpoint);

  /* snapshot - write the instance's own state (a source's position, a
   * sink's pending files, ...) into out, in any format. Runs in the
   * checkpoint's forked child: no malloc, no locks, no threads; only out
   * and system calls. Keyed state and timers are saved by the host.
   * Own state cannot be split by key group: a checkpoint in which any
   * subtask wrote some is not restored at another parallelism (keyed state
   * and timers are redistributed; docs/MODULES.md, "Rescaling"). */
  int (*snapshot)(td_ctx_t *ctx, void *state, td_buf_t *out);
  /* restore - state from the snapshot of the checkpoint the job resumes
   * from (data borrowed for the call), after open. A sink commits here
   * what that checkpoint had pending. At another parallelism: len 0 (the
   * old subtasks wrote nothing). */
  int (*restore)(td_ctx_t *ctx, void *state, const char *data, size_t len);
  /* finish - the input ended (bounded sources only): flush what is held.
   * Sinks get pre_commit(TD_FINAL_CHECKPOINT) instead. */
  int (*finish)(td_ctx_t *ctx, void *state, td_out_t *out);
} td_op_t;

/*
 * The host's routine table, given to init. Append-only: a routine, once
 * there, keeps its place and meaning for the whole major version, and new
 * ones go at the end (SQLite's sqlite3_api_routines). size tells how much
 * of it this core has: a routine at an offset >= size does not exist.
 */
struct td_api {
  uint32_t size;  /* sizeof(td_api_t) in the core */
  uint32_t abi;   /* the core's TIDE_ABI_VERSION */
  /* ---- 1.1 ---- */

  /* register_op - during init: add an operator (copied, see td_op_t).
   * 0, or TD_EINVAL (bad or missing fields, a name used twice, not during
   * init) with the reason in the module's error. */
  int (*register_op)(td_module_t *m, const td_op_t *op);
  /* module_error - during init: set the message of the code init is about
   * to return (printf format). Returns code. */
  int (*module_error)(td_module_t *m, int code, const char *fmt, ...);

  /* error - set the message of the code a callback is about to return
   * (printf format, one line). Returns code, for `return api->error(...)`. */
  int (*error)(td_ctx_t *ctx, int code, const char *fmt, ...);
  /* warn - a warning line for the job's stderr (printf format). */
  void (*warn)(td_ctx_t *ctx, const char *fmt, ...);
  /* info - facts about the instance; valid while it lives. */
  const td_info_t *(*info)(const td_ctx_t *ctx);
  /* now_ms - wall-clock time, ms since the epoch. */
  int64_t (*now_ms)(void);
  /* strerror - the message of an error code (static). */
  const char *(*strerror)(int code);

  /* Keyed state of a keyed process: values addressed by (state, current
   * key, namespace), namespace any bytes (ns may be NULL when nslen is 0;
   * e.g. a window's start). Saved in checkpoints and restored by the host.
   *
   * state - the id of the state called name (declare in open; the same
   * name gives the same id, across restores). 0 or TD_EINVAL (not keyed). */
  int (*state)(td_ctx_t *ctx, const char *name, uint32_t *id);
  /* value_get - *val, *len: the value, borrowed until the next state call
   * of this instance. Returns 1 found, 0 absent, or a negative code. */
  int (*value_get)(td_ctx_t *ctx, uint32_t state, const void *ns, size_t nslen,
                   const char **val, size_t *len);
  /* value_put - set the value (copied). 0 or a negative code. */
  int (*value_put)(td_ctx_t *ctx, uint32_t state, const void *ns, size_t nslen,
                   const void *val, size_t len);
  /* value_clear - remove the value. 1 removed, 0 absent, or < 0. */
  int (*value_clear)(td_ctx_t *ctx, uint32_t state, const void *ns, size_t nslen);
  /* current_key - the canonical MessagePack bytes of the current key
   * (borrowed for the callback). 0, or TD_EINVAL outside on_record and
   * on_timer. */
  int (*current_key)(td_ctx_t *ctx, const char **key, size_t *len);

  /* Event-time timers of a keyed process (Flink's TimerService): one per
   * (key, timestamp); on_timer(ts) runs with that key current once the
   * watermark reaches ts (ts <= watermark), in timestamp order. Saved in
   * checkpoints and restored.
   *
   * timer_register - for the current key at ts (ms); again: no-op. */
  int (*timer_register)(td_ctx_t *ctx, int64_t ts);
  /* timer_delete - the current key's timer at ts, if any. */
  int (*timer_delete)(td_ctx_t *ctx, int64_t ts);
  /* watermark - the operator's current event time (INT64_MIN before the
   * first watermark). */
  int64_t (*watermark)(const td_ctx_t *ctx);
};

/* ---- reading MessagePack --------------------------------------------- */

typedef enum {
  TD_MP_NIL = 0,
  TD_MP_BOOL,
  TD_MP_INT,    /* v.i */
  TD_MP_FLOAT,  /* v.f (float32 widened, uint64 > INT64_MAX converted) */
  TD_MP_STR,    /* v.s (str or bin) */
  TD_MP_ARRAY,  /* v.n items follow */
  TD_MP_MAP,    /* v.n key/value pairs follow */
  TD_MP_EXT     /* v.ext */
} td_mp_type_t;

/* One item of a MessagePack value, as td_mp_read gives it. */
typedef struct td_mp_item {
  td_mp_type_t type;
  union {
    int b;
    int64_t i;
    double f;
    struct {
      const char *p;  /* borrowed from the input */
      uint32_t len;
    } s;
    uint32_t n;
    struct {
      int8_t type;
      const char *p;
      uint32_t len;
    } ext;
  } v;
} td_mp_item_t;

static inline uint64_t td_mp_be_(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

/*
 * td_mp_read - read one item at *p (p < end): a scalar whole (a string's
 * bytes are borrowed from the input), a container's header only (its
 * items follow). *p advances past what was read. Rejects what Tide's
 * codec rejects: the unused byte 0xc1, truncated items.
 * Returns 0, or TD_ECORRUPT (truncated, 0xc1, p >= end) with *p unchanged.
 */
static inline int td_mp_read(const char **pp, const char *end, td_mp_item_t *out) {
  const unsigned char *p = (const unsigned char *)*pp, *e = (const unsigned char *)end;
  if (p >= e) return TD_ECORRUPT;
  unsigned c = *p++;
  size_t avail = (size_t)(e - p);
  uint64_t len = 0;
  int n; /* width of the length or value that follows */
  if (c <= 0x7f) {
    out->type = TD_MP_INT;
    out->v.i = c;
    *pp = (const char *)p;
    return 0;
  }
  if (c >= 0xe0) {
    out->type = TD_MP_INT;
    out->v.i = (int8_t)c;
    *pp = (const char *)p;
    return 0;
  }
  if (c >= 0xa0 && c <= 0xbf) {
    len = c & 0x1f;
    goto str;
  }
  if (c <= 0x9f) { /* 0x80 .. 0x9f: fixmap, fixarray */
    out->type = c >= 0x90 ? TD_MP_ARRAY : TD_MP_MAP;
    out->v.n = c & 0x0f;
    *pp = (const char *)p;
    return 0;
  }
  switch (c) {
  case 0xc0: out->type = TD_MP_NIL; break;
  case 0xc2:
  case 0xc3:
    out->type = TD_MP_BOOL;
    out->v.b = c == 0xc3;
    break;
  case 0xcc: case 0xcd: case 0xce: case 0xcf: {
    n = 1 << (c - 0xcc);
    if (avail < (size_t)n) return TD_ECORRUPT;
    uint64_t u = td_mp_be_(p, n);
    p += n;
    if (u > (uint64_t)INT64_MAX) {
      out->type = TD_MP_FLOAT;
      out->v.f = (double)u;
    } else {
      out->type = TD_MP_INT;
      out->v.i = (int64_t)u;
    }
    break;
  }
  case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
    n = 1 << (c - 0xd0);
    if (avail < (size_t)n) return TD_ECORRUPT;
    uint64_t u = td_mp_be_(p, n);
    p += n;
    out->type = TD_MP_INT;
    out->v.i = n == 1 ? (int8_t)u : n == 2 ? (int16_t)u : n == 4 ? (int32_t)u : (int64_t)u;
    break;
  }
  case 0xca: {
    if (avail < 4) return TD_ECORRUPT;
    uint32_t u = (uint32_t)td_mp_be_(p, 4);
    float f;
    memcpy(&f, &u, 4);
    p += 4;
    out->type = TD_MP_FLOAT;
    out->v.f = f;
    break;
  }
  case 0xcb: {
    if (avail < 8) return TD_ECORRUPT;
    uint64_t u = td_mp_be_(p, 8);
    double d;
    memcpy(&d, &u, 8);
    p += 8;
    out->type = TD_MP_FLOAT;
    out->v.f = d;
    break;
  }
  case 0xd9: case 0xda: case 0xdb:
  case 0xc4: case 0xc5: case 0xc6:
    n = (c >= 0xd9) ? 1 << (c - 0xd9) : 1 << (c - 0xc4);
    if (avail < (size_t)n) return TD_ECORRUPT;
    len = td_mp_be_(p, n);
    p += n;
    avail -= (size_t)n;
    goto str;
  case 0xdc: case 0xdd:
  case 0xde: case 0xdf:
    n = (c == 0xdc || c == 0xde) ? 2 : 4;
    if (avail < (size_t)n) return TD_ECORRUPT;
    out->type = c <= 0xdd ? TD_MP_ARRAY : TD_MP_MAP;
    out->v.n = (uint32_t)td_mp_be_(p, n);
    p += n;
    break;
  case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
    len = 1u << (c - 0xd4);
    if (avail < 1) return TD_ECORRUPT;
    out->type = TD_MP_EXT;
    out->v.ext.type = (int8_t)p[0];
    p++;
    avail--;
    goto ext;
  case 0xc7: case 0xc8: case 0xc9:
    n = 1 << (c - 0xc7);
    if (avail < (size_t)n + 1) return TD_ECORRUPT;
    len = td_mp_be_(p, n);
    out->type = TD_MP_EXT;
    out->v.ext.type = (int8_t)p[n];
    p += n + 1;
    avail -= (size_t)n + 1;
    goto ext;
  default: /* 0xc1 */
    return TD_ECORRUPT;
  }
  *pp = (const char *)p;
  return 0;
str:
  if (avail < len) return TD_ECORRUPT;
  out->type = TD_MP_STR;
  out->v.s.p = (const char *)p;
  out->v.s.len = (uint32_t)len;
  *pp = (const char *)(p + len);
  return 0;
ext:
  if (avail < len) return TD_ECORRUPT;
  out->v.ext.p = (const char *)p;
  out->v.ext.len = (uint32_t)len;
  *pp = (const char *)(p + len);
  return 0;
}

/*
 * td_mp_skip - skip one whole value at *p (a container with everything in
 * it), iteratively (no depth limit, no recursion). Returns 0, or
 * TD_ECORRUPT with *p unchanged.
 */
static inline int td_mp_skip(const char **pp, const char *end) {
  /* the record path's boundary scan: one byte decides most items (the fix
   * formats of small records), td_mp_read the rest */
  const unsigned char *p = (const unsigned char *)*pp, *e = (const unsigned char *)end;
  uint64_t left = 1;
  while (left > 0) {
    if (p >= e) return TD_ECORRUPT;
    unsigned c = *p;
    size_t step;
    left--;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
      step = 1;
    } else if (c >= 0xa0 && c <= 0xbf) {
      step = 1 + (c & 0x1f);
    } else if (c >= 0x80 && c <= 0x9f) {
      left += c <= 0x8f ? 2u * (c & 0x0f) : (c & 0x0f);
      step = 1;
    } else if (c >= 0xcc && c <= 0xd3) { /* ints: 1 + 1, 2, 4, 8 bytes */
      step = 1 + (1u << ((c - 0xcc) & 3));
    } else if (c == 0xcb || c == 0xca) {
      step = c == 0xcb ? 9 : 5;
    } else if (c == 0xd9) {
      if (e - p < 2) return TD_ECORRUPT;
      step = 2 + (size_t)p[1];
    } else {
      td_mp_item_t it;
      const char *q = (const char *)p;
      if (td_mp_read(&q, end, &it) != 0) return TD_ECORRUPT;
      step = (size_t)((const unsigned char *)q - p);
      if (it.type == TD_MP_ARRAY) left += it.v.n;
      else if (it.type == TD_MP_MAP) left += 2 * (uint64_t)it.v.n;
    }
    if (step > (size_t)(e - p)) return TD_ECORRUPT;
    p += step;
    /* every item takes at least one byte: more items than bytes is corrupt */
    if (left > (uint64_t)(e - p)) return TD_ECORRUPT;
  }
  *pp = (const char *)p;
  return 0;
}

/*
 * td_mp_map_get - in the map value at p (< end), find the entry whose key
 * is the string `key` (klen bytes); *value points at its value (borrowed
 * from the input). Returns 1 found, 0 not found (or p is not a map),
 * TD_ECORRUPT.
 */
static inline int td_mp_map_get(const char *p, const char *end, const char *key, size_t klen,
                                const char **value) {
  td_mp_item_t it;
  if (td_mp_read(&p, end, &it) != 0) return TD_ECORRUPT;
  if (it.type != TD_MP_MAP) return 0;
  for (uint32_t i = 0; i < it.v.n; i++) {
    const char *k0 = p;
    td_mp_item_t k;
    if (td_mp_read(&p, end, &k) != 0) return TD_ECORRUPT;
    if (k.type == TD_MP_STR && k.v.s.len == klen && memcmp(k.v.s.p, key, klen) == 0) {
      const char *v = p;
      if (td_mp_skip(&p, end) != 0) return TD_ECORRUPT;
      *value = v;
      return 1;
    }
    if (k.type == TD_MP_ARRAY || k.type == TD_MP_MAP) { /* skip a container key whole */
      p = k0;
      if (td_mp_skip(&p, end) != 0) return TD_ECORRUPT;
    }
    if (td_mp_skip(&p, end) != 0) return TD_ECORRUPT;
  }
  return 0;
}

/* td_in_ts - record i's timestamp in a batch (TD_NO_TIMESTAMP if none). */
static inline int64_t td_in_ts(const td_batch_t *in, int i) {
  return in->ts ? in->ts[i] : TD_NO_TIMESTAMP;
}

/* td_in_record - record i of a batch: *len bytes at the returned pointer
 * (borrowed like the batch). */
static inline const char *td_in_record(const td_batch_t *in, int i, size_t *len) {
  *len = in->stop[i] - in->off[i];
  return in->data + in->off[i];
}

/* ---- writing MessagePack ---------------------------------------------- */

/* The most bytes one td_mp_enc_* call writes. */
#define TD_MP_MAX_HEAD 9

static inline void td_mp_put_be_(unsigned char *p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--) {
    p[i] = (unsigned char)v;
    v >>= 8;
  }
}

/* td_mp_enc_int - encode an integer in its smallest form (Tide's codec
 * writes integers so: the result is canonical) at p, which has room for
 * TD_MP_MAX_HEAD bytes. Returns the bytes written. */
static inline size_t td_mp_enc_int(unsigned char *p, int64_t v) {
  if (v >= 0 && v < 128) {
    p[0] = (unsigned char)v;
    return 1;
  }
  if (v < 0 && v >= -32) {
    p[0] = (unsigned char)(0xe0 | (v & 0x1f));
    return 1;
  }
  int w;
  if (v >= 0) {
    w = v < 256 ? 1 : v < 65536 ? 2 : v <= (int64_t)UINT32_MAX ? 4 : 8;
    p[0] = (unsigned char)(w == 1 ? 0xcc : w == 2 ? 0xcd : w == 4 ? 0xce : 0xcf);
  } else {
    w = v >= -128 ? 1 : v >= -32768 ? 2 : v >= INT32_MIN ? 4 : 8;
    p[0] = (unsigned char)(w == 1 ? 0xd0 : w == 2 ? 0xd1 : w == 4 ? 0xd2 : 0xd3);
  }
  td_mp_put_be_(p + 1, (uint64_t)v, w);
  return 1 + (size_t)w;
}

/* td_mp_enc_float - a float64 at p (9 bytes). Returns 9. */
static inline size_t td_mp_enc_float(unsigned char *p, double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  p[0] = 0xcb;
  td_mp_put_be_(p + 1, u, 8);
  return 9;
}

/* Container and string headers. */
typedef enum { TD_MP_HEAD_STR, TD_MP_HEAD_ARRAY, TD_MP_HEAD_MAP } td_mp_head_t;

/* td_mp_enc_head - the header of a string of n bytes, an array or a map of
 * n items, at p (at most 5 bytes). Returns the bytes written. */
static inline size_t td_mp_enc_head(unsigned char *p, td_mp_head_t kind, uint32_t n) {
  static const unsigned char fix[3] = {0xa0, 0x90, 0x80};
  static const uint32_t fixmax[3] = {31, 15, 15};
  static const unsigned char c16[3] = {0xda, 0xdc, 0xde};
  if (n <= fixmax[kind]) {
    p[0] = (unsigned char)(fix[kind] | n);
    return 1;
  }
  if (kind == TD_MP_HEAD_STR && n < 256) {
    p[0] = 0xd9;
    p[1] = (unsigned char)n;
    return 2;
  }
  if (n < 65536) {
    p[0] = c16[kind];
    td_mp_put_be_(p + 1, n, 2);
    return 3;
  }
  p[0] = (unsigned char)(c16[kind] + 1);
  td_mp_put_be_(p + 1, n, 4);
  return 5;
}

/* td_buf_reserve - room for extra more bytes after b->len.
 * 0 or TD_ENOMEM. */
static inline int td_buf_reserve(td_buf_t *b, size_t extra) {
  return b->cap - b->len >= extra ? 0 : b->grow(b, extra);
}

/* Append one item to b; each returns 0 or TD_ENOMEM. Containers: the
 * header with the count, then the items (td_mp_put_array(b, 2), then two
 * values). */
static inline int td_mp_put_int(td_buf_t *b, int64_t v) {
  if (td_buf_reserve(b, TD_MP_MAX_HEAD)) return TD_ENOMEM;
  b->len += td_mp_enc_int((unsigned char *)b->data + b->len, v);
  return 0;
}
static inline int td_mp_put_float(td_buf_t *b, double v) {
  if (td_buf_reserve(b, TD_MP_MAX_HEAD)) return TD_ENOMEM;
  b->len += td_mp_enc_float((unsigned char *)b->data + b->len, v);
  return 0;
}
static inline int td_mp_put_raw(td_buf_t *b, const void *bytes, size_t len) {
  if (td_buf_reserve(b, len)) return TD_ENOMEM;
  if (len) memcpy(b->data + b->len, bytes, len);
  b->len += len;
  return 0;
}
static inline int td_mp_put_nil(td_buf_t *b) { return td_mp_put_raw(b, "\xc0", 1); }
static inline int td_mp_put_bool(td_buf_t *b, int v) {
  return td_mp_put_raw(b, v ? "\xc3" : "\xc2", 1);
}
static inline int td_mp_put_head_(td_buf_t *b, td_mp_head_t kind, uint32_t n) {
  if (td_buf_reserve(b, TD_MP_MAX_HEAD)) return TD_ENOMEM;
  b->len += td_mp_enc_head((unsigned char *)b->data + b->len, kind, n);
  return 0;
}
/* td_mp_put_str - a string of len bytes (len < 4 GiB). */
static inline int td_mp_put_str(td_buf_t *b, const char *s, size_t len) {
  if (len > UINT32_MAX) return TD_EINVAL;
  if (td_mp_put_head_(b, TD_MP_HEAD_STR, (uint32_t)len)) return TD_ENOMEM;
  return td_mp_put_raw(b, s, len);
}
static inline int td_mp_put_array(td_buf_t *b, uint32_t n) {
  return td_mp_put_head_(b, TD_MP_HEAD_ARRAY, n);
}
static inline int td_mp_put_map(td_buf_t *b, uint32_t n) {
  return td_mp_put_head_(b, TD_MP_HEAD_MAP, n);
}

/* ---- emitting records ------------------------------------------------- */

/*
 * td_out_end - the record written into out->buf since the last one is
 * complete: emit it with timestamp ts (TD_NO_TIMESTAMP: none). Returns 0,
 * or TD_EOVERFLOW when the call already emitted out->max records (the
 * record is dropped, and the task fails after the callback returns).
 */
static inline int td_out_end(td_out_t *o, int64_t ts) {
  if (o->n >= o->max) {
    o->overflow++;
    o->buf.len = o->mark;
    return TD_EOVERFLOW;
  }
  o->off[o->n] = o->mark;
  o->stop[o->n] = (uint32_t)o->buf.len;
  o->ts[o->n] = ts;
  o->has_ts |= ts != TD_NO_TIMESTAMP;
  o->n++;
  o->mark = (uint32_t)o->buf.len;
  return 0;
}

/* td_out_emit - emit one encoded record (len bytes, one MessagePack
 * value) with timestamp ts. 0, TD_ENOMEM or TD_EOVERFLOW. */
static inline int td_out_emit(td_out_t *o, const void *rec, size_t len, int64_t ts) {
  if (o->n >= o->max) {
    o->overflow++;
    return TD_EOVERFLOW;
  }
  int rc = td_mp_put_raw(&o->buf, rec, len);
  return rc ? rc : td_out_end(o, ts);
}

/* ---- configuration ----------------------------------------------------- */

/* td_cfg_get - the value of field `key` of a config map (the bytes open
 * gets): 1 and *value, 0 when absent (or config is not a map), or
 * TD_ECORRUPT. */
static inline int td_cfg_get(const char *config, size_t len, const char *key, const char **value) {
  if (!config || !len) return 0;
  return td_mp_map_get(config, config + len, key, strlen(key), value);
}

/* td_cfg_int - config field key as an integer: 1 and *v, 0 absent,
 * TD_EINVAL not an integer. */
static inline int td_cfg_int(const char *config, size_t len, const char *key, int64_t *v) {
  const char *p;
  int rc = td_cfg_get(config, len, key, &p);
  if (rc != 1) return rc;
  td_mp_item_t it;
  if (td_mp_read(&p, config + len, &it) != 0 || it.type != TD_MP_INT) return TD_EINVAL;
  *v = it.v.i;
  return 1;
}

/* td_cfg_str - config field key as a string: 1 and *s (borrowed from
 * config, not NUL-terminated), *slen; 0 absent; TD_EINVAL not a string. */
static inline int td_cfg_str(const char *config, size_t len, const char *key, const char **s,
                             size_t *slen) {
  const char *p;
  int rc = td_cfg_get(config, len, key, &p);
  if (rc != 1) return rc;
  td_mp_item_t it;
  if (td_mp_read(&p, config + len, &it) != 0 || it.type != TD_MP_STR) return TD_EINVAL;
  *s = it.v.s.p;
  *slen = it.v.s.len;
  return 1;
}

#endif
