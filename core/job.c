/* job.c - wiring, running and cancelling a job's subtasks (see job.h). */
#include "job.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>

#include "barrier.h"
#include "error.h"
#include "netexchange.h"
#include "reload.h"

struct td_job {
  const td_job_spec_t *spec;
  void (*body)(td_subtask_t *);
  int n_subtasks;
  int n_notify;               /* subtasks whose notifier is initialized */
  td_subtask_t *subtasks;     /* all subtasks, task by task */
  int *first_subtask;         /* per task: index into subtasks */
  pthread_mutex_t mu;
  atomic_int cancelled;
  td_coord_t *coord;
  char *error;                /* first failure */
  int error_task, error_subtask; /* where it happened (-1: not a subtask) */
  int64_t error_ms;           /* when, ms since the epoch */
  td_job_t *next_running;     /* the list td_job_cancel_all walks */
  int started;                /* subtask threads started */
  int refs;                   /* the starter's and td_job_current's (mu) */
  pthread_cond_t released;    /* refs dropped (mu) */
  td_job_state_t final;       /* set by td_job_wait; CREATED before */
  atomic_int stop_mode;       /* TD_STOP_* of a stop savepoint */
  char *stopped_at;           /* the savepoint a completed stop took (mu) */
  int stopped_for_reload;     /* that stop was a live reload's cut (mu) */
  int64_t start_ms;
  atomic_int told;            /* cluster->cancel was called */
};

/* The jobs td_job_run is running, and the reason of td_job_cancel_all
 * (NULL until it is called): a job started after it fails at once. */
static pthread_mutex_t running_mu = PTHREAD_MUTEX_INITIALIZER;
static td_job_t *running;
static char *cancel_all_reason;
static td_job_state_t last_state = TD_JOB_CREATED; /* running_mu */
static int64_t restarts;                            /* running_mu */
/* The last failures, a ring (running_mu): exceptions[(n_exceptions - 1 -
 * i) % TD_JOB_EXCEPTIONS] is the i-th newest. */
static td_job_exception_t exceptions[TD_JOB_EXCEPTIONS];
static int64_t n_exceptions;

static void running_add(td_job_t *job) {
  pthread_mutex_lock(&running_mu);
  job->next_running = running;
  running = job;
  const char *why = cancel_all_reason;
  pthread_mutex_unlock(&running_mu);
  if (why) td_job_fail(job, why);
}

static void running_remove(td_job_t *job) {
  pthread_mutex_lock(&running_mu);
  for (td_job_t **p = &running; *p; p = &(*p)->next_running) {
    if (*p == job) {
      *p = job->next_running;
      break;
    }
  }
  pthread_mutex_unlock(&running_mu);
}

const char *td_job_cancel_reason(char *buf, size_t len) {
  pthread_mutex_lock(&running_mu);
  const char *r = cancel_all_reason ? buf : NULL;
  if (r) snprintf(buf, len, "%s", cancel_all_reason);
  pthread_mutex_unlock(&running_mu);
  return r;
}

void td_job_cancel_all(const char *reason) {
  pthread_mutex_lock(&running_mu);
  if (!cancel_all_reason) cancel_all_reason = strdup(reason ? reason : "cancelled");
  const char *why = cancel_all_reason ? cancel_all_reason : "cancelled";
  /* td_job_fail takes only the job's own lock: no order with running_mu */
  for (td_job_t *j = running; j; j = j->next_running) td_job_fail(j, why);
  pthread_mutex_unlock(&running_mu);
}

/* Channels of the gate of (task, subtask) that belong to edge e start at
 * this offset: edges in order, each with 1 (forward) or p(from) channels. */
static int gate_offset(const td_job_spec_t *s, int task, int edge) {
  int off = 0;
  for (int e = 0; e < edge; e++) {
    if (s->edges[e].to != task) continue;
    off += s->edges[e].partition == TD_PART_FORWARD
               ? 1
               : s->parallelism[s->edges[e].from];
  }
  return off;
}

uint32_t td_job_wire_channel(const td_job_spec_t *s, int global, int index) {
  uint32_t ch = 2;
  for (int t = 0, g = 0; t < s->n_tasks; t++) {
    uint32_t size = (uint32_t)gate_offset(s, t, s->n_edges);
    for (int i = 0; i < s->parallelism[t]; i++, g++) {
      if (g == global) return ch + (uint32_t)index;
      ch += size;
    }
  }
  return 0;
}

/* Cluster mode: route the channels between this process's subtasks and
 * the others' over the network shuffle. */
static int route_remote(td_job_t *job) {
  const td_job_spec_t *s = job->spec;
  const td_job_cluster_t *cl = s->cluster;
  int credits = TD_CHANNEL_CREDITS + TD_CHANNEL_OVERDRAFT, rc = 0;
  for (int e = 0; e < s->n_edges && rc == 0; e++) {
    const td_job_edge_t *ed = &s->edges[e];
    int pf = s->parallelism[ed->from], pt = s->parallelism[ed->to];
    int off = gate_offset(s, ed->to, e);
    for (int j = 0; j < pf && rc == 0; j++) {
      td_subtask_t *from = &job->subtasks[job->first_subtask[ed->from] + j];
      for (int i = 0; i < pt && rc == 0; i++) {
        if (ed->partition == TD_PART_FORWARD && i != j) continue;
        td_subtask_t *to = &job->subtasks[job->first_subtask[ed->to] + i];
        int idx = ed->partition == TD_PART_FORWARD ? off : off + j;
        if (from->local == to->local) continue;
        uint32_t ch = td_job_wire_channel(s, to->global, idx);
        if (from->local)
          rc = td_netx_route_out(cl->netx, to->gate, idx, credits,
                                 cl->peers[cl->placement[to->global]], ch);
        else
          rc = td_netx_route_in(cl->netx, to->gate, idx, credits,
                                cl->peers[cl->placement[from->global]], ch);
      }
    }
  }
  return rc;
}

static int wire(td_job_t *job) {
  const td_job_spec_t *s = job->spec;
  int rc = 0;
  /* the job master runs no subtask: nothing to wire */
  if (s->cluster && s->cluster->self < 0) return 0;
  for (int t = 0; t < s->n_tasks; t++) {
    int n_ch = gate_offset(s, t, s->n_edges);
    int *tags = n_ch ? malloc((size_t)n_ch * sizeof *tags) : NULL;
    if (n_ch && !tags) return TD_ENOMEM;
    for (int e = 0, k = 0; e < s->n_edges; e++) {
      if (s->edges[e].to != t) continue;
      int m = s->edges[e].partition == TD_PART_FORWARD
                  ? 1
                  : s->parallelism[s->edges[e].from];
      for (int j = 0; j < m; j++) tags[k++] = e;
    }
    for (int i = 0; i < s->parallelism[t] && rc == 0; i++) {
      td_subtask_t *st = &job->subtasks[job->first_subtask[t] + i];
      if (n_ch) rc = td_gate_new(&st->gate, n_ch, TD_CHANNEL_CREDITS, tags);
      if (st->gate) {
        td_gate_set_overdraft(st->gate, TD_CHANNEL_OVERDRAFT);
        td_gate_set_notify(st->gate, &st->notify);
      }
    }
    free(tags);
    if (rc) return rc;
  }
  td_channel_t **targets = NULL;
  int max_targets = 1;
  for (int t = 0; t < s->n_tasks; t++)
    if (s->parallelism[t] > max_targets) max_targets = s->parallelism[t];
  targets = malloc((size_t)max_targets * sizeof *targets);
  if (!targets) return TD_ENOMEM;
  for (int e = 0; e < s->n_edges && rc == 0; e++) {
    const td_job_edge_t *ed = &s->edges[e];
    int pf = s->parallelism[ed->from], pt = s->parallelism[ed->to];
    int off = gate_offset(s, ed->to, e);
    for (int j = 0; j < pf && rc == 0; j++) {
      td_subtask_t *st = &job->subtasks[job->first_subtask[ed->from] + j];
      if (!st->local) continue; /* its outputs are another process's */
      int n;
      if (ed->partition == TD_PART_FORWARD) {
        if (pf != pt) {
          rc = TD_EINVAL;
          break;
        }
        targets[0] =
            td_gate_channel(job->subtasks[job->first_subtask[ed->to] + j].gate, off);
        n = 1;
      } else {
        for (int i = 0; i < pt; i++)
          targets[i] = td_gate_channel(
              job->subtasks[job->first_subtask[ed->to] + i].gate, off + j);
        n = pt;
      }
      for (int i = 0; i < n; i++) td_channel_set_notify(targets[i], &st->notify);
      rc = td_output_init(&st->outputs[e], ed->partition, targets, n,
                          s->max_parallelism, j);
      st->outputs[e].time = &st->time;
    }
  }
  free(targets);
  if (rc == 0 && s->cluster) rc = route_remote(job);
  return rc;
}

/* The coordinator asks source subtask s for a barrier: wake it. */
static void on_trigger(void *ud, int s) {
  td_job_t *job = ud;
  td_notify_signal(&job->subtasks[s].notify);
}

/* "checkpoint durations: 812 790 ... ms; triggered after a subtask
 * finished: 2405 ms" (TIDE_CHECKPOINT_STATS): every periodic checkpoint's
 * trigger-to-complete time, for the benchmarks. */
static void log_durations(td_job_t *job) {
  enum { MAX = 256 };
  td_coord_duration_t d[MAX];
  size_t n = td_coord_durations(job->coord, d, MAX);
  char line[8192];
  int len = snprintf(line, sizeof line, "checkpoint durations:");
  for (int late = 0; late < 2; late++) {
    if (late) len += snprintf(line + len, sizeof line - (size_t)len, " ms; triggered after a subtask finished:");
    for (size_t i = 0; i < n && i < MAX && len < (int)sizeof line - 64; i++)
      if (d[i].after_finish == late)
        len += snprintf(line + len, sizeof line - (size_t)len, " %lld", (long long)d[i].ms);
  }
  snprintf(line + len, sizeof line - (size_t)len, "%s ms", n > MAX ? " ..." : "");
  job->spec->log(job->spec->log_ud, line);
}

static void *thread_main(void *arg) {
  td_subtask_t *st = arg;
  st->job->body(st);
  /* a finished subtask waits for nothing more: idle from now on */
  td_time_wait_begin(&st->time, TD_WAIT_IDLE, td_metrics_now_ns());
  return NULL;
}

static void job_free(td_job_t *job) {
  for (int i = 0; i < job->n_subtasks; i++) {
    td_subtask_t *st = &job->subtasks[i];
    if (st->outputs) {
      for (int e = 0; e < job->spec->n_edges; e++)
        if (st->outputs[e].n) td_output_destroy(&st->outputs[e]);
      free(st->outputs);
    }
  }
  /* gates last: outputs return their buffers to the gates' channels */
  for (int i = 0; i < job->n_subtasks; i++) td_gate_free(job->subtasks[i].gate);
  for (int i = 0; i < job->n_notify; i++) td_notify_destroy(&job->subtasks[i].notify);
  free(job->subtasks);
  free(job->first_subtask);
  free(job->error);
  free(job->stopped_at);
  td_coord_free(job->coord);
  pthread_cond_destroy(&job->released);
  pthread_mutex_destroy(&job->mu);
  free(job);
}

/* The coordinator fails the job (too many failed checkpoints). */
static void fail_job(void *ud, const char *message) { td_job_fail(ud, message); }

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int td_job_start(td_job_t **out, const td_job_spec_t *spec, void (*body)(td_subtask_t *),
                 char *errbuf, size_t errlen) {
  *out = NULL;
  td_job_t *job = calloc(1, sizeof *job);
  if (!job) return TD_ENOMEM;
  job->spec = spec;
  job->body = body;
  job->refs = 1;
  job->start_ms = wall_ms();
  pthread_mutex_init(&job->mu, NULL);
  pthread_cond_init(&job->released, NULL);
  atomic_init(&job->cancelled, 0);
  atomic_init(&job->stop_mode, TD_STOP_NONE);
  job->first_subtask = calloc((size_t)spec->n_tasks + 1, sizeof(int));
  int total = 0;
  for (int t = 0; job->first_subtask && t < spec->n_tasks; t++) {
    job->first_subtask[t] = total;
    total += spec->parallelism[t];
  }
  job->n_subtasks = total;
  job->subtasks = calloc(total ? (size_t)total : 1, sizeof *job->subtasks);
  int rc = (job->first_subtask && job->subtasks) ? 0 : TD_ENOMEM;
  for (int t = 0; rc == 0 && t < spec->n_tasks; t++) {
    for (int i = 0; i < spec->parallelism[t]; i++) {
      td_subtask_t *st = &job->subtasks[job->first_subtask[t] + i];
      st->job = job;
      st->task = t;
      st->index = i;
      st->global = job->first_subtask[t] + i;
      st->parallelism = spec->parallelism[t];
      st->local = !spec->cluster || spec->cluster->placement[st->global] == spec->cluster->self;
      atomic_init(&st->records_in, 0);
      atomic_init(&st->records_out, 0);
      atomic_init(&st->records_read, 0);
      atomic_init(&st->bytes_in, 0);
      atomic_init(&st->bytes_out, 0);
      atomic_init(&st->watermark_out, INT64_MIN);
      td_time_init(&st->time, td_metrics_now_ns());
      atomic_init(&st->watermark, INT64_MIN);
      st->outputs = calloc(spec->n_edges ? (size_t)spec->n_edges : 1,
                           sizeof *st->outputs);
      if (!st->outputs) rc = TD_ENOMEM;
    }
  }
  while (rc == 0 && job->n_notify < total) {
    if (td_notify_init(&job->subtasks[job->n_notify].notify) != 0) rc = TD_ENOMEM;
    else job->n_notify++;
  }
  if (rc == 0) rc = wire(job);
  if (rc) {
    snprintf(errbuf, errlen, "cannot set up the job: %s", td_strerror(rc));
    job_free(job);
    return rc;
  }
  unsigned char *is_source = malloc((size_t)total + 1);
  td_ckpt_config_t cfg = {.timeout_ms = 600000, .max_concurrent = 1, .retained = 1,
                          .first_id = 1, .tolerable_failed = -1};
  if (spec->checkpoint) cfg = *spec->checkpoint;
  if (!cfg.job_name) cfg.job_name = spec->name;
  if (!cfg.job_id) cfg.job_id = spec->run_id ? spec->run_id : spec->job_id;
  cfg.log = spec->log;
  cfg.log_ud = spec->log_ud;
  cfg.fail = fail_job;
  cfg.fail_ud = job;
  cfg.on_trigger = on_trigger;
  cfg.trigger_ud = job;
  unsigned char *local = NULL;
  if (spec->cluster) {
    const td_ckpt_config_t *h = &spec->cluster->hooks;
    cfg.on_request = h->on_request;
    cfg.on_complete = h->on_complete;
    cfg.on_abort = h->on_abort;
    cfg.on_ack = h->on_ack;
    cfg.on_decline = h->on_decline;
    cfg.on_finishing = h->on_finishing;
    cfg.on_finished = h->on_finished;
    cfg.remote_ud = h->remote_ud;
    if (spec->cluster->self >= 0) {
      local = malloc((size_t)total + 1);
      for (int i = 0; local && i < total; i++) local[i] = (unsigned char)job->subtasks[i].local;
      cfg.local = local;
    } else {
      cfg.on_trigger = NULL; /* no subtask here to wake */
    }
  }
  rc = is_source && (!spec->cluster || spec->cluster->self < 0 || local) ? 0 : TD_ENOMEM;
  /* sources: the subtasks of tasks without input edges */
  for (int i = 0; rc == 0 && i < total; i++) {
    int t = job->subtasks[i].task, in = 0;
    for (int e = 0; e < spec->n_edges; e++) in |= spec->edges[e].to == t;
    is_source[i] = !in;
  }
  if (rc == 0)
    rc = td_coord_new(&job->coord, &cfg, total,
                      is_source, errbuf, errlen);
  free(is_source);
  free(local);
  if (rc == 0) rc = td_coord_start(job->coord);
  if (rc) {
    if (rc == TD_ENOMEM) snprintf(errbuf, errlen, "cannot set up the job: %s", td_strerror(rc));
    job_free(job);
    return rc;
  }
  if (spec->cluster && spec->cluster->started &&
      (rc = spec->cluster->started(spec->cluster->ud, job, errbuf, errlen)) != 0) {
    td_coord_stop(job->coord);
    job_free(job);
    return rc;
  }
  running_add(job);
  td_reload_on_start(job);
  for (; job->started < total; job->started++) {
    td_subtask_t *st = &job->subtasks[job->started];
    st->ran = 0;
    if (!st->local) continue;
    if (pthread_create(&st->thread, NULL, thread_main, st) != 0) {
      td_job_fail(job, "cannot start a subtask thread");
      break;
    }
    st->thread_started = 1;
  }
  *out = job;
  return 0;
}

int td_job_wait(td_job_t *job, char *errbuf, size_t errlen) {
  const td_job_spec_t *spec = job->spec;
  for (int i = 0; i < job->started; i++)
    if (job->subtasks[i].thread_started) pthread_join(job->subtasks[i].thread, NULL);
  if (spec->cluster && spec->cluster->self < 0 && spec->cluster->await) {
    /* the job master: the task managers run the subtasks */
    char why[1024];
    if (spec->cluster->await(spec->cluster->ud, job, why, sizeof why) != 0) td_job_fail(job, why);
  }
  td_coord_stop(job->coord);
  if (spec->log && getenv("TIDE_CHECKPOINT_STATS")) {
    td_coord_stats_t cs;
    char line[512];
    td_coord_stats(job->coord, &cs);
    int64_t periodic = cs.completed > 0 ? cs.completed - 1 : 0; /* minus the final */
    snprintf(line, sizeof line,
             "checkpoint stats: completed %lld (+ final), aborted %lld; trigger to "
             "complete avg %.1f ms, max %lld ms; task pause avg %.3f ms, max %.3f ms over "
             "%lld snapshots (%lld forked)",
             (long long)periodic, (long long)cs.aborted,
             periodic ? (double)cs.sum_duration_ms / (double)periodic : 0.0,
             (long long)cs.max_duration_ms,
             cs.pauses ? (double)cs.sum_pause_us / 1e3 / (double)cs.pauses : 0.0,
             (double)cs.max_pause_us / 1e3, (long long)cs.pauses, (long long)cs.forked);
    spec->log(spec->log_ud, line);
    log_durations(job);
  }
  int rc = 0;
  pthread_mutex_lock(&running_mu);
  int user_cancel = cancel_all_reason != NULL;
  pthread_mutex_unlock(&running_mu);
  pthread_mutex_lock(&job->mu);
  if (job->error) {
    snprintf(errbuf, errlen, "%s", job->error);
    rc = TD_ESCRIPT;
  }
  job->final = rc == 0 ? TD_JOB_FINISHED : user_cancel ? TD_JOB_CANCELED : TD_JOB_FAILED;
  td_job_exception_t ex = {0};
  if (job->final == TD_JOB_FAILED) {
    ex.timestamp_ms = job->error_ms;
    ex.subtask = job->error_subtask;
    if (job->error_task >= 0) td_job_task_name(spec, job->error_task, ex.task, sizeof ex.task);
    else snprintf(ex.task, sizeof ex.task, "(job)");
    snprintf(ex.message, sizeof ex.message, "%s", job->error);
  }
  pthread_mutex_unlock(&job->mu);
  running_remove(job);
  pthread_mutex_lock(&running_mu);
  if (job->final == TD_JOB_FAILED) exceptions[n_exceptions++ % TD_JOB_EXCEPTIONS] = ex;
  last_state = job->final;
  pthread_mutex_unlock(&running_mu);
  return rc;
}

void td_job_free(td_job_t *job) {
  if (!job) return;
  pthread_mutex_lock(&job->mu);
  job->refs--;
  while (job->refs > 0) pthread_cond_wait(&job->released, &job->mu);
  pthread_mutex_unlock(&job->mu);
  job_free(job);
}

int td_job_run(const td_job_spec_t *spec, void (*body)(td_subtask_t *),
               char *errbuf, size_t errlen) {
  td_job_t *job;
  int rc = td_job_start(&job, spec, body, errbuf, errlen);
  if (rc) return rc;
  rc = td_job_wait(job, errbuf, errlen);
  td_job_free(job);
  return rc;
}

td_job_t *td_job_current(void) {
  pthread_mutex_lock(&running_mu);
  td_job_t *job = running;
  if (job) {
    pthread_mutex_lock(&job->mu);
    job->refs++;
    pthread_mutex_unlock(&job->mu);
  }
  pthread_mutex_unlock(&running_mu);
  return job;
}

void td_job_release(td_job_t *job) {
  if (!job) return;
  pthread_mutex_lock(&job->mu);
  if (--job->refs == 0) pthread_cond_broadcast(&job->released);
  pthread_mutex_unlock(&job->mu);
}

td_job_state_t td_job_state(td_job_t *job) {
  pthread_mutex_lock(&job->mu);
  td_job_state_t s = job->final;
  pthread_mutex_unlock(&job->mu);
  if (s != TD_JOB_CREATED) return s;
  return td_job_cancelled(job) ? TD_JOB_CANCELLING : TD_JOB_RUNNING;
}

td_job_state_t td_job_process_state(void) {
  td_job_t *job = td_job_current();
  if (job) {
    td_job_state_t s = td_job_state(job);
    td_job_release(job);
    return s;
  }
  pthread_mutex_lock(&running_mu);
  td_job_state_t s = last_state;
  pthread_mutex_unlock(&running_mu);
  return s;
}

void td_job_set_restarting(void) {
  pthread_mutex_lock(&running_mu);
  last_state = TD_JOB_RESTARTING;
  restarts++;
  pthread_mutex_unlock(&running_mu);
}

int64_t td_job_restarts(void) {
  pthread_mutex_lock(&running_mu);
  int64_t n = restarts;
  pthread_mutex_unlock(&running_mu);
  return n;
}

const char *td_job_state_name(td_job_state_t s) {
  static const char *const names[] = {"CREATED", "RUNNING", "CANCELLING", "FINISHED",
                                      "FAILED", "CANCELED", "RESTARTING"};
  return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "UNKNOWN";
}

int64_t td_job_start_time(const td_job_t *job) { return job->start_ms; }

td_subtask_t *td_job_subtasks(td_job_t *job, int *n_out) {
  *n_out = job->n_subtasks;
  return job->subtasks;
}

int td_job_first_subtask(const td_job_t *job, int task) { return job->first_subtask[task]; }

int td_job_stop_mode(const td_job_t *job) {
  return atomic_load(&((td_job_t *)job)->stop_mode);
}

const char *td_job_stopped_at(td_job_t *job, char *buf, size_t len) {
  pthread_mutex_lock(&job->mu);
  const char *r = job->stopped_at ? buf : NULL;
  if (r) snprintf(buf, len, "%s", job->stopped_at);
  pthread_mutex_unlock(&job->mu);
  return r;
}

int td_job_stopped_for_reload(td_job_t *job) {
  pthread_mutex_lock(&job->mu);
  int r = job->stopped_at && job->stopped_for_reload;
  pthread_mutex_unlock(&job->mu);
  return r;
}

int td_job_savepoint(td_job_t *job, const char *dir, int stop, int timeout_ms, char *path,
                     size_t pathlen, char *err, size_t errlen) {
  path[0] = 0;
  int for_reload = (stop & TD_STOP_FOR_RELOAD) != 0;
  stop &= ~TD_STOP_FOR_RELOAD;
  if (td_job_cancelled(job)) {
    snprintf(err, errlen, "the job is not running (%s)", td_job_state_name(td_job_state(job)));
    return TD_ECANCELED;
  }
  int none = TD_STOP_NONE;
  if (stop && !atomic_compare_exchange_strong(&job->stop_mode, &none, stop)) {
    snprintf(err, errlen, "the job is stopping with a savepoint already");
    return TD_EINVAL;
  }
  int64_t id;
  int rc = td_coord_trigger_savepoint(job->coord, dir, stop, &id, path, pathlen, err, errlen);
  if (rc) {
    if (stop) atomic_store(&job->stop_mode, TD_STOP_NONE);
    return rc;
  }
  char why[256] = "";
  int st = td_coord_await(job->coord, id, timeout_ms, why, sizeof why);
  if (st == TD_CKPT_COMPLETED) {
    if (stop) {
      pthread_mutex_lock(&job->mu);
      free(job->stopped_at);
      job->stopped_at = strdup(path);
      job->stopped_for_reload = for_reload;
      pthread_mutex_unlock(&job->mu);
    }
    return 0;
  }
  if (st == TD_CKPT_IN_PROGRESS) {
    snprintf(err, errlen, "savepoint %lld is still in progress after %d ms", (long long)id,
             timeout_ms);
    return -ETIMEDOUT;
  }
  if (stop) atomic_store(&job->stop_mode, TD_STOP_NONE);
  snprintf(err, errlen, "savepoint %lld failed: %s", (long long)id,
           why[0] ? why : "aborted");
  return td_job_cancelled(job) ? TD_ECANCELED : TD_EIO;
}

const td_job_spec_t *td_job_spec_of(const td_job_t *job) { return job->spec; }

td_coord_t *td_job_coordinator(const td_job_t *job) { return job->coord; }

/* Record the first failure (at task t, subtask i; -1: not a subtask's) and
 * cancel every subtask. */
static void fail_at(td_job_t *job, int t, int i, const char *message) {
  pthread_mutex_lock(&job->mu);
  if (!job->error) {
    job->error = strdup(message ? message : "unknown failure");
    job->error_task = t;
    job->error_subtask = i;
    job->error_ms = wall_ms();
  }
  pthread_mutex_unlock(&job->mu);
  atomic_store(&job->cancelled, 1);
  const td_job_cluster_t *cl = job->spec->cluster;
  if (cl && cl->cancel && !atomic_exchange(&job->told, 1))
    cl->cancel(cl->ud, message ? message : "unknown failure");
  for (int i = 0; i < job->n_subtasks; i++)
    if (job->subtasks[i].gate) td_gate_cancel(job->subtasks[i].gate);
  for (int i = 0; i < job->n_notify; i++) td_notify_signal(&job->subtasks[i].notify);
}

void td_job_fail(td_job_t *job, const char *message) { fail_at(job, -1, -1, message); }

void td_subtask_fail(td_subtask_t *st, const char *message) {
  fail_at(st->job, st->task, st->index, message);
}

int td_job_exceptions(td_job_exception_t *out, int max) {
  pthread_mutex_lock(&running_mu);
  int n = 0;
  for (; n < max && n < TD_JOB_EXCEPTIONS && n < n_exceptions; n++)
    out[n] = exceptions[(n_exceptions - 1 - n) % TD_JOB_EXCEPTIONS];
  pthread_mutex_unlock(&running_mu);
  return n;
}

void td_job_task_name(const td_job_spec_t *s, int t, char *buf, size_t len) {
  size_t n = 0;
  buf[0] = 0;
  for (int i = 0; i < s->n_operators && n < len; i++) {
    if (s->operators[i].task != t) continue;
    n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? " -> " : "", s->operators[i].name);
  }
  if (!buf[0]) snprintf(buf, len, "task %d", t + 1);
}

void td_job_note(td_job_t *job, const char *line) {
  if (!job->spec->note) return;
  pthread_mutex_lock(&job->mu);
  job->spec->note(job->spec->note_ud, line);
  pthread_mutex_unlock(&job->mu);
}

int td_job_cancelled(const td_job_t *job) {
  return atomic_load(&((td_job_t *)job)->cancelled);
}

int td_subtask_outputs_available(const td_subtask_t *st) {
  const td_job_spec_t *spec = st->job->spec;
  for (int e = 0; e < spec->n_edges; e++)
    if (st->outputs[e].n && !td_output_available(&st->outputs[e])) return 0;
  return 1;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int td_subtask_await_outputs(td_subtask_t *st, int watch_priority,
                             int64_t injected, int timeout_ms) {
  int64_t deadline = timeout_ms >= 0 ? mono_ms() + timeout_ms : 0;
  for (;;) {
    uint64_t seq = td_notify_seq(&st->notify);
    if (td_job_cancelled(st->job)) return TD_ECANCELED;
    if (watch_priority && st->gate && td_gate_priority_pending(st->gate)) return TD_AWAIT_PRIORITY;
    if (!st->gate && injected >= 0 &&
        td_coord_requested(st->job->coord, st->global) > injected)
      return TD_AWAIT_TRIGGER;
    if (td_subtask_outputs_available(st)) return TD_AWAIT_READY;
    int wait = -1;
    if (timeout_ms >= 0) {
      int64_t left = deadline - mono_ms();
      if (left <= 0) return TD_AWAIT_TIMEOUT;
      wait = (int)left;
    }
    td_notify_wait(&st->notify, seq, wait);
  }
}
