/*
 * job.h - a running job: its tasks, their subtasks (one thread and one Lua
 * VM each), the channels between them, cancellation and failure.
 *
 * The planning VM hands over the job as a plan (built by lua/tide.lua):
 * tasks (chains of operators) with their parallelism and the network edges
 * between tasks with their partitioner. td_job_run wires one input gate per
 * subtask and one output per (subtask, outgoing edge), starts a thread per
 * subtask, waits for all of them, and reports the first failure. A failing
 * subtask cancels every gate, so the others stop at their next wait.
 */
#ifndef TD_JOB_H
#define TD_JOB_H

#include <pthread.h>

#include "channel.h"
#include "checkpoint.h"
#include "exchange.h"
#include "notify.h"

typedef struct td_job td_job_t;
typedef struct td_subtask td_subtask_t;

typedef struct td_job_edge {
  int from, to;           /* task indexes, 0-based */
  td_partition_t partition;
} td_job_edge_t;

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
  const char *fingerprint;    /* the planning VM's graph fingerprint */
  const char *job_id;         /* unique per run: names part files */
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
} td_job_spec_t;

struct td_subtask {
  td_job_t *job;
  int task;                   /* task index, 0-based */
  int global;                 /* index among all subtasks of the job */
  int index;                  /* subtask index, 0-based */
  int parallelism;
  td_gate_t *gate;            /* NULL for tasks without inputs */
  td_output_t *outputs;       /* per job edge; .n == 0 if not ours */
  int ran;                    /* the task loop ran in this subtask's VM */
  void *host;                 /* the Lua host's per-subtask data */
  td_notify_t notify;         /* credit back on an output channel, priority
                                 input, checkpoint trigger, cancellation */
  pthread_t thread;
};

/*
 * td_job_run - run the job described by spec to its end, on one thread per
 * subtask; each thread calls body(subtask). Returns 0 when every subtask
 * finished, or a negative code with the first failure's message in errbuf.
 */
int td_job_run(const td_job_spec_t *spec, void (*body)(td_subtask_t *),
               char *errbuf, size_t errlen);

/* td_job_spec_of - the spec the job was started with. */
const td_job_spec_t *td_job_spec_of(const td_job_t *job);

/*
 * td_job_fail - record a failure (the first one wins) and cancel the job:
 * every gate is woken and every later wait returns TD_ECANCELED.
 */
void td_job_fail(td_job_t *job, const char *message);

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
