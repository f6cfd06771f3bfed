/*
 * job.h - a running job: its tasks, their subtasks (one thread and one Lua
 * VM each), the channels between them, cancellation and failure, and the
 * job handle through which another thread (the control endpoint,
 * core/control.c) reaches a running job.
 *
 * The planning VM hands over the job as a plan (built by lua/tide.lua):
 * tasks (chains of operators) with their parallelism and the network edges
 * between tasks with their partitioner. td_job_start wires one input gate
 * per subtask and one output per (subtask, outgoing edge) and starts a
 * thread per subtask; td_job_wait waits for all of them and reports the
 * first failure. A failing subtask cancels every gate, so the others stop
 * at their next wait.
 *
 * Lifecycle (Flink's JobStatus): RUNNING from td_job_start; CANCELLING
 * once cancelled or failed while subtasks still run; then FINISHED,
 * FAILED or CANCELED when td_job_wait returns. While it runs, any thread
 * may take a reference (td_job_current), read its status and per-subtask
 * counters, cancel it, take a savepoint or stop it with one
 * (td_job_savepoint); td_job_free waits until those references are
 * released.
 */
#ifndef TD_JOB_H
#define TD_JOB_H

#include <pthread.h>
#include <stdatomic.h>

#include "channel.h"
#include "checkpoint.h"
#include "exchange.h"
#include "metrics.h"
#include "notify.h"

typedef struct td_job td_job_t;
typedef struct td_subtask td_subtask_t;

typedef struct td_job_edge {
  int from, to;           /* task indexes, 0-based */
  td_partition_t partition;
} td_job_edge_t;

/* An operator of the graph, for the control endpoint's job graph. */
typedef struct td_job_operator {
  int task;               /* the task (chain) it runs in, 0-based */
  const char *uid, *name, *kind;
} td_job_operator_t;

struct td_netx;
struct td_net_peer;

/* Cluster mode (docs/CLUSTER.md): the job's subtasks run in several
 * processes, the task managers, and its checkpoints are coordinated by
 * its job master. A task manager's td_job_t runs the subtasks placed on
 * it: a channel whose sender and receiver run in different processes goes
 * over the network shuffle (netexchange.h), on wire channel
 * td_job_wire_channel; its coordinator is a participant (checkpoint.h).
 * The job master's td_job_t runs no subtask: its coordinator is the whole
 * job's, and td_job_wait waits for the task managers (await). */
typedef struct td_job_cluster {
  const int *placement;     /* per subtask (job order): the index of the
                               process that runs it */
  int self;                 /* this process's index; -1: the job master */
  struct td_netx *netx;     /* the shuffle's routes (task managers) */
  struct td_net_peer *const *peers; /* per process index: the connection
                                       to it (NULL for self) */
  /* the coordinator's cluster callbacks and remote_ud (checkpoint.h);
   * nothing else of it is used */
  td_ckpt_config_t hooks;
  /* called by td_job_start once the channels are routed and the
   * coordinator runs, before any subtask starts (a task manager: report
   * ready and wait for the go of the job master); 0, or a code with err:
   * the job does not start */
  int (*started)(void *ud, struct td_job *job, char *err, size_t errlen);
  /* the job master: wait until the task managers ended the job's
   * subtasks; 0, or a negative code with the first failure in err */
  int (*await)(void *ud, struct td_job *job, char *err, size_t errlen);
  /* the job failed or was cancelled in this process (why): tell the
   * others; may be NULL */
  void (*cancel)(void *ud, const char *why);
  void *ud;
} td_job_cluster_t;

/* A file the job script named while it built the graph (lua/tide/ship.lua):
 * what cluster mode ships to the task managers, named by content. */
typedef struct td_job_file {
  const char *kind;           /* "lua": a module it required; "module": a C
                                 module it loaded (tide.load_module) */
  const char *name;           /* the module name, or the path as given */
  const char *path;           /* the file: the planner's, or on a task
                                 manager the shipped copy */
  const char *origin;         /* the path on the planner's host (error
                                 messages name it); NULL: path */
} td_job_file_t;

/* Everything the subtask threads need to rebuild the job in their VMs. */
typedef struct td_job_spec {
  const char *name;
  const char *script;         /* path of the job script */
  const char *script_text;    /* its text, read once at submission: every
                                 subtask VM loads this, never the file */
  size_t script_len;
  const char *const *args;    /* args[0] = script, args[1..n_args-1] */
  int n_args;
  const char *lua_path;       /* package.path and package.cpath to use */
  const char *lua_cpath;
  int n_files;                /* the files the script named (td_job_file_t);
                                 subtask VMs resolve require and
                                 load_module to them when set */
  const td_job_file_t *files;
  const char *fingerprint;    /* the planning VM's graph fingerprint */
  const char *job_id;         /* unique per run: names part files */
  const char *run_id;         /* the id users see (tide list), in
                                 savepoint names; NULL: job_id */
  const char *savepoint_dir;  /* where savepoints go when a request names
                                 no directory (--checkpoint-dir), or NULL */
  int n_operators;            /* the graph's operators (may be 0) */
  const td_job_operator_t *operators;
  int job_index;              /* which env:execute() call of the script */
  int default_parallelism;
  int max_parallelism;
  int n_tasks;
  const int *parallelism;     /* per task */
  int n_edges;
  const td_job_edge_t *edges;
  /* Checkpoints (checkpoint.h). checkpoint NULL: no directory and no
   * periodic checkpoints; the coordinator still runs the final commit. */
  const td_ckpt_config_t *checkpoint;
  int align_mode;             /* td_align_mode_t (barrier.h) */
  int64_t buffer_timeout_ms;  /* partly filled output buffers are sent at
                                 least this often; 0: after every batch
                                 (Flink's execution.buffer-timeout) */
  int64_t align_timeout_ms;   /* alignment gives up after this; <= 0 none */
  const char *restore_dir;    /* the chk-<n> directory to restore, or NULL */
  /* Warnings and statistics, one line each (NULL: dropped); the library
   * never prints. */
  void (*log)(void *ud, const char *line);
  void *log_ud;
  /* Notes for the job's exit summary (files a recovery rewrote, ...), one
   * line each, from any subtask's thread (serialized by the job); NULL:
   * dropped. */
  void (*note)(void *ud, const char *line);
  void *note_ud;
  /* The command line's defaults the subtask VMs see (host.h's
   * td_host_defaults_t), or NULL: this process's (cluster mode: a task
   * manager's jobs carry their masters'). */
  const void *host_defaults;
  /* Cluster mode: where the subtasks run (NULL: all in this process). */
  const td_job_cluster_t *cluster;
} td_job_spec_t;

struct td_subtask {
  td_job_t *job;
  int task;                   /* task index, 0-based */
  int global;                 /* index among all subtasks of the job */
  int index;                  /* subtask index, 0-based */
  int parallelism;
  int local;                  /* runs in this process (cluster mode: else
                                 its gate, if any, is a stub shipping to
                                 the process that runs it) */
  td_gate_t *gate;            /* NULL for tasks without inputs */
  td_output_t *outputs;       /* per job edge; .n == 0 if not ours */
  int ran;                    /* the task loop ran in this subtask's VM */
  void *host;                 /* the Lua host's per-subtask data */
  td_notify_t notify;         /* credit back on an output channel, priority
                                 input, checkpoint trigger, cancellation */
  pthread_t thread;
  int thread_started;
  /* Counters for the control endpoint, updated once per batch by the
   * subtask's thread, read by any (Flink's numRecordsIn/Out and
   * currentInputWatermark): records taken from the input gate, records
   * sent on the outputs, the current input watermark (sources: the last
   * one emitted; INT64_MIN before any). */
  _Atomic int64_t records_in, records_out, watermark;
  /* Records a source subtask's source read (0 elsewhere), per batch
   * (Flink's numRecordsIn of a source operator). */
  _Atomic int64_t records_read;
  /* Bytes of records and events taken from the input gate and appended to
   * the outputs (Flink's numBytesIn/Out), per batch; the last watermark the
   * subtask emitted (Flink's currentOutputWatermark; INT64_MIN before any);
   * busy / idle / backpressured time (metrics.h), marked per wait. */
  _Atomic int64_t bytes_in, bytes_out, watermark_out;
  /* Late records the subtask's window operators dropped (not those sent to
   * a late side output; Flink's numLateRecordsDropped), set per batch. */
  _Atomic int64_t late_dropped;
  /* File sources: the bytes of the subtask's splits and how many of them
   * it read (td_reader_progress), per batch; the progress line's. */
  _Atomic int64_t source_bytes_total, source_bytes_read;
  td_time_acct_t time;
};

/* A job's status (Flink's JobStatus names: td_job_state_name). */
typedef enum td_job_state {
  TD_JOB_CREATED = 0,   /* no job started yet (the process is planning) */
  TD_JOB_RUNNING,
  TD_JOB_CANCELLING,    /* cancelled or failed, subtasks still stopping */
  TD_JOB_FINISHED,      /* every subtask finished (or stopped with a
                           savepoint) */
  TD_JOB_FAILED,
  TD_JOB_CANCELED,
  TD_JOB_RESTARTING     /* between a failure and the restart */
} td_job_state_t;

/*
 * td_job_wire_channel - the wire channel (>= 2; 1 is the control channel)
 * that carries channel `index` of the input gate of subtask `global` (job
 * order) when its sender runs in another process: numbered by gate, in
 * job order, so that every process computes the same.
 */
uint32_t td_job_wire_channel(const td_job_spec_t *spec, int global, int index);

/*
 * td_job_run - td_job_start, td_job_wait, td_job_free: run the job to its
 * end. Returns 0 when every subtask finished, or a negative code with the
 * first failure's message in errbuf.
 */
int td_job_run(const td_job_spec_t *spec, void (*body)(td_subtask_t *),
               char *errbuf, size_t errlen);

/*
 * td_job_start - wire the job described by spec (which must outlive the
 * job) and start one thread per subtask, each calling body(subtask), and
 * the checkpoint coordinator's thread. The job becomes td_job_current.
 * Returns 0 and *out (RUNNING), or a negative code with the message in
 * errbuf (nothing to free).
 */
int td_job_start(td_job_t **out, const td_job_spec_t *spec, void (*body)(td_subtask_t *),
                 char *errbuf, size_t errlen);

/*
 * td_job_wait - wait until every subtask's thread ended, stop the
 * coordinator (pending checkpoints and savepoints are aborted), and set
 * the final status. Call once, from the thread that started the job.
 * Returns 0 (FINISHED), or TD_ESCRIPT with the first failure's message in
 * errbuf (FAILED or CANCELED).
 */
int td_job_wait(td_job_t *job, char *errbuf, size_t errlen);

/* td_job_free - after td_job_wait: drop the starter's reference, wait
 * until every other reference is released, free the job. */
void td_job_free(td_job_t *job);

/*
 * td_job_current - the job running now (the newest started and not yet
 * waited for), with a reference the caller releases with td_job_release;
 * NULL when none runs. Thread-safe.
 */
td_job_t *td_job_current(void);

/* td_job_release - release a reference taken by td_job_current. */
void td_job_release(td_job_t *job);

/*
 * td_job_process_state - the status of the process's job: the current
 * job's (td_job_state), else the last one's final status, RESTARTING
 * after td_job_set_restarting, or CREATED before the first start.
 */
td_job_state_t td_job_process_state(void);

/* td_job_set_restarting - the planning VM restarts the failed job after
 * a delay: td_job_process_state says RESTARTING until the next start. */
void td_job_set_restarting(void);

/* td_job_restarts - how many times the process's job was restarted after
 * a failure (td_job_set_restarting calls; Flink's numRestarts).
 * Thread-safe. */
int64_t td_job_restarts(void);

/* td_job_state - the job's status now. Thread-safe. */
td_job_state_t td_job_state(td_job_t *job);

/* td_job_state_name - "CREATED", "RUNNING", "CANCELLING", "FINISHED",
 * "FAILED", "CANCELED" or "RESTARTING" (Flink's names). */
const char *td_job_state_name(td_job_state_t s);

/* td_job_start_time - wall time of td_job_start, ms since the epoch. */
int64_t td_job_start_time(const td_job_t *job);

/* td_job_subtasks - the job's subtasks (n_out: how many), task by task
 * in subtask order: index td_job_first_subtask(job, task) + i. */
td_subtask_t *td_job_subtasks(td_job_t *job, int *n_out);
int td_job_first_subtask(const td_job_t *job, int task);

/*
 * td_job_savepoint - take a savepoint of the running job into
 * dir/savepoint-<run id>-<n> and wait up to timeout_ms (< 0: no limit) for
 * it (td_coord_trigger_savepoint). stop: TD_STOP_NONE; TD_STOP_SUSPEND
 * (Flink's stop-with-savepoint: the sources end right after the savepoint
 * barrier, the job's operators are not finished, sinks commit what they
 * pre-committed at the savepoint, and the job ends FINISHED); or
 * TD_STOP_DRAIN (stop --drain: the sources emit the MAX watermark and end,
 * every operator finishes, and the savepoint is taken of the finished
 * job). Savepoints are always aligned, also in a job checkpointing
 * unaligned or at least once (their barriers travel in band as aligned
 * barriers: inband.h). Thread-safe; called with a reference.
 * Returns 0 with the savepoint directory in path; TD_EINVAL (refused:
 * why in err), -EEXIST or -errno (the directory), TD_EIO (the savepoint
 * failed: why in err), TD_ECANCELED (the job ended first), or
 * -ETIMEDOUT (still in progress after timeout_ms).
 */
int td_job_savepoint(td_job_t *job, const char *dir, int stop, int timeout_ms, char *path,
                     size_t pathlen, char *err, size_t errlen);

/* A flag or-ed into td_job_savepoint's stop: the stop is a live reload's
 * cut (reload.h); td_job_stopped_for_reload tells the planning thread. */
#define TD_STOP_FOR_RELOAD 0x100

/* td_job_stopped_for_reload - whether the job ended stopped with the
 * savepoint of a live reload's cut (TD_STOP_FOR_RELOAD). */
int td_job_stopped_for_reload(td_job_t *job);

/* td_job_stop_mode - TD_STOP_SUSPEND or TD_STOP_DRAIN once a stop with a
 * savepoint was triggered (and has not failed), else TD_STOP_NONE. */
int td_job_stop_mode(const td_job_t *job);

/* td_job_stopped_at - the savepoint a completed stop took (copied into
 * buf), or NULL when the job was not stopped with a savepoint. */
const char *td_job_stopped_at(td_job_t *job, char *buf, size_t len);

/* td_job_spec_of - the spec the job was started with. */
const td_job_spec_t *td_job_spec_of(const td_job_t *job);

/*
 * td_job_fail - record a failure (the first one wins) and cancel the job:
 * every gate is woken and every later wait returns TD_ECANCELED.
 */
void td_job_fail(td_job_t *job, const char *message);

/*
 * td_subtask_fail - as td_job_fail, and when it is the job's first failure
 * the exception history (td_job_exceptions) names st's task and subtask.
 */
void td_subtask_fail(td_subtask_t *st, const char *message);

/* The last failures kept (Flink's exception history, bounded). */
#define TD_JOB_EXCEPTIONS 16

/* A failure of the process's job: the first failure of a job attempt that
 * ended FAILED (so each one that triggered a restart, and the final one). */
typedef struct td_job_exception {
  int64_t timestamp_ms;  /* when it happened, ms since the epoch */
  char task[512];        /* the task's name ("a -> b"), "(job)" if no subtask's */
  int subtask;           /* its subtask index, -1 if no subtask's */
  char message[1024];    /* the failure message (truncated) */
} td_job_exception_t;

/*
 * td_job_exceptions - copy the process's last failures, newest first, into
 * out[0..max); returns how many (at most TD_JOB_EXCEPTIONS). Recorded by
 * td_job_wait when a job attempt ends FAILED (Flink's JobExceptionsHandler
 * history). Thread-safe.
 */
int td_job_exceptions(td_job_exception_t *out, int max);

/*
 * td_job_task_name - task t's name into buf (len bytes): its operators'
 * names joined by " -> " as Flink names a chain, or "task <t+1>".
 */
void td_job_task_name(const td_job_spec_t *s, int t, char *buf, size_t len);

/* td_job_note - add a line to the job's exit summary (spec->note). */
void td_job_note(td_job_t *job, const char *line);

/* td_job_coordinator - the job's checkpoint coordinator (never NULL
 * while subtasks run). */
td_coord_t *td_job_coordinator(const td_job_t *job);

/*
 * td_job_cancel_all - fail every job td_job_run is running with `reason`
 * (copied), and every job started after this call at its start: how a
 * SIGINT/SIGTERM cancels (core/main.c). Thread-safe; not async-signal-safe
 * (call it from a thread, not a signal handler).
 */
void td_job_cancel_all(const char *reason);

/* td_job_cancel_reason - the reason td_job_cancel_all was called with
 * (copied into buf), or NULL when it was not called. */
const char *td_job_cancel_reason(char *buf, size_t len);

/* td_job_cancelled - whether the job has failed or been cancelled. */
int td_job_cancelled(const td_job_t *job);

/* td_subtask_outputs_available - whether every output of the subtask can
 * take a batch now (td_output_available; 1 without outputs). */
int td_subtask_outputs_available(const td_subtask_t *st);

/* Results of td_subtask_await_outputs. */
enum {
  TD_AWAIT_READY = 1,    /* every output has a free credit */
  TD_AWAIT_PRIORITY = 2, /* a priority event waits at the input gate */
  TD_AWAIT_TRIGGER = 3,  /* a source is asked for a barrier newer than
                            `injected` (td_coord_requested) */
  TD_AWAIT_TIMEOUT = 4
};

/*
 * td_subtask_await_outputs - wait, between two batches, until the
 * subtask's outputs can take the next batch, while still answering what a
 * task must act on meanwhile (Flink's mailbox loop suspended on output
 * availability, still running checkpoint and priority-event mails):
 * priority events at the input gate (when watch_priority), checkpoint
 * triggers (sources: a requested id > injected; injected < 0: ignore),
 * cancellation. timeout_ms: < 0 no limit, otherwise at most that long.
 * Returns TD_AWAIT_READY, TD_AWAIT_PRIORITY, TD_AWAIT_TRIGGER,
 * TD_AWAIT_TIMEOUT, or TD_ECANCELED.
 */
int td_subtask_await_outputs(td_subtask_t *st, int watch_priority,
                             int64_t injected, int timeout_ms);

#endif
