/* control.c - a running job's control endpoint (see control.h). */
#include "control.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#include "checkpoint.h"
#include "error.h"
#include "job.h"
#include "reload.h"
#include "web.h"

/* Savepoint and stop requests kept for polling (the newest). */
#define MAX_OPS 64
/* Largest request body accepted, bytes (a reload carries a script). */
#define MAX_BODY (4 << 20)

typedef struct op {
  int used;
  int64_t request;        /* its request id */
  int stop;               /* TD_STOP_* */
  int reload;             /* a live reload (req), not a savepoint */
  td_reload_request_t req;
  td_reload_times_t times;
  char dir[4096];
  td_job_t *job;          /* referenced while the thread runs */
  pthread_t thread;
  int joinable;
  int done, ok;           /* (c->mu) */
  int fetched;            /* its outcome was read (c->mu) */
  char location[4200];
  char error[1024];
  struct td_control *c;
} op_t;

struct td_control {
  struct MHD_Daemon *d;
  char *job_id;
  char address[128];
  pthread_mutex_t mu;
  op_t ops[MAX_OPS];
  int64_t next_request;
  /* the readings behind the per-second times of /metrics, per subtask of
   * the job started at windows_job (c->mu) */
  td_time_window_t *windows;
  int n_windows;
  int64_t windows_job;
};

/* The body of a request, gathered across calls. */
typedef struct body {
  char *data;
  size_t len;
  int too_big;
} body_t;

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- responses ---------------------------------------------------------------- */

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *o) {
  char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (!text) {
    status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    text = strdup("{\"errors\":[\"out of memory\"]}");
    if (!text) return MHD_NO;
  }
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", "application/json");
  enum MHD_Result ret = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return ret;
}

/* {"errors": [message]}, as Flink's REST errors. */
static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                  ...) __attribute__((format(printf, 3, 4)));

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                  ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return send_json(conn, status, json_pack("{s:[s]}", "errors", msg));
}

/* ---- views of the job ----------------------------------------------------------- */

static const char *ship_strategy(td_partition_t p) {
  switch (p) {
  case TD_PART_FORWARD: return "FORWARD";
  case TD_PART_HASH: return "HASH";
  case TD_PART_REBALANCE: return "REBALANCE";
  case TD_PART_BROADCAST: return "BROADCAST";
  default: return "UNKNOWN";
  }
}

/* A task's name: its operators' names joined by " -> " (Flink's chain
 * names). */
static void task_name(const td_job_spec_t *s, int t, char *buf, size_t len) {
  td_job_task_name(s, t, buf, len);
}

/* Sum of a task's subtask counters. */
static void task_counts(td_job_t *job, int t, int64_t *in, int64_t *out) {
  const td_job_spec_t *s = td_job_spec_of(job);
  int n;
  td_subtask_t *st = td_job_subtasks(job, &n) + td_job_first_subtask(job, t);
  *in = *out = 0;
  for (int i = 0; i < s->parallelism[t]; i++) {
    *in += atomic_load(&st[i].records_in);
    *out += atomic_load(&st[i].records_out);
  }
}

static json_t *job_overview(td_control_t *c, td_job_t *job) {
  td_job_state_t state = job ? td_job_state(job) : td_job_process_state();
  json_t *o = json_pack("{s:s, s:s, s:I}", "jid", c->job_id, "state", td_job_state_name(state),
                        "restarts", (json_int_t)td_job_restarts());
  if (!job) return o;
  const td_job_spec_t *s = td_job_spec_of(job);
  int64_t start = td_job_start_time(job), now = wall_ms();
  json_object_set_new(o, "name", json_string(s->name));
  json_object_set_new(o, "start-time", json_integer(start));
  json_object_set_new(o, "duration", json_integer(now - start));
  json_object_set_new(o, "now", json_integer(now));
  json_object_set_new(o, "max-parallelism", json_integer(s->max_parallelism));
  json_t *vs = json_array();
  for (int t = 0; t < s->n_tasks; t++) {
    char name[2048], id[16];
    int64_t in, out;
    task_name(s, t, name, sizeof name);
    task_counts(job, t, &in, &out);
    snprintf(id, sizeof id, "%d", t);
    json_array_append_new(vs, json_pack("{s:s, s:s, s:i, s:s, s:{s:I, s:I}}", "id", id, "name",
                                        name, "parallelism", s->parallelism[t], "status",
                                        td_job_state_name(state), "metrics", "read-records",
                                        (json_int_t)in, "write-records", (json_int_t)out));
  }
  json_object_set_new(o, "vertices", vs);
  return o;
}

static json_t *job_plan(td_control_t *c, td_job_t *job) {
  const td_job_spec_t *s = td_job_spec_of(job);
  json_t *nodes = json_array();
  for (int t = 0; t < s->n_tasks; t++) {
    char name[2048], id[16];
    task_name(s, t, name, sizeof name);
    snprintf(id, sizeof id, "%d", t);
    json_t *ops = json_array(), *inputs = json_array();
    for (int i = 0; i < s->n_operators; i++)
      if (s->operators[i].task == t)
        json_array_append_new(ops, json_pack("{s:s, s:s, s:s}", "uid", s->operators[i].uid, "name",
                                             s->operators[i].name, "kind", s->operators[i].kind));
    int num = 0;
    for (int e = 0; e < s->n_edges; e++) {
      if (s->edges[e].to != t) continue;
      char from[16];
      snprintf(from, sizeof from, "%d", s->edges[e].from);
      json_array_append_new(inputs, json_pack("{s:i, s:s, s:s}", "num", num++, "id", from,
                                              "ship_strategy",
                                              ship_strategy(s->edges[e].partition)));
    }
    json_array_append_new(nodes, json_pack("{s:s, s:i, s:s, s:s, s:o, s:o}", "id", id,
                                           "parallelism", s->parallelism[t], "operator", name,
                                           "description", name, "operators", ops, "inputs",
                                           inputs));
  }
  return json_pack("{s:{s:s, s:s, s:o}}", "plan", "jid", c->job_id, "name", s->name, "nodes",
                   nodes);
}

/* Flink gives watermarks as strings; no watermark yet is Long.MIN_VALUE. */
static json_t *watermark_value(int64_t wm) {
  char v[32];
  snprintf(v, sizeof v, "%" PRId64, wm);
  return json_string(v);
}

/* The per-subtask figures of checkpoint r (Flink's subtask checkpoint
 * statistics): [{"task", "index", "acknowledged", "start_delay",
 * "alignment": {"duration"}, "checkpoint": {"sync", "async"},
 * "state_size"}], times in ms (fractions: us). */
static json_t *record_subtasks(td_job_t *job, const td_coord_record_t *r) {
  int n;
  td_subtask_t *sts = td_job_subtasks(job, &n);
  td_coord_subtask_stats_t *ss = calloc(n ? (size_t)n : 1, sizeof *ss);
  json_t *a = json_array();
  size_t got = ss ? td_coord_subtask_history(td_job_coordinator(job), r->id, ss, (size_t)n) : 0;
  for (size_t i = 0; i < got; i++)
    json_array_append_new(
        a, json_pack("{s:i, s:i, s:b, s:f, s:{s:f}, s:{s:f, s:f}, s:I}", "task", sts[i].task,
                     "index", sts[i].index, "acknowledged", ss[i].reported,
                     "start_delay", ss[i].start_delay_us / 1e3, "alignment", "duration",
                     ss[i].alignment_us / 1e3, "checkpoint", "sync", ss[i].sync_us / 1e3,
                     "async", ss[i].async_us / 1e3, "state_size", (json_int_t)ss[i].size));
  free(ss);
  return a;
}

static json_t *record_json(td_job_t *job, const td_coord_record_t *r) {
  static const char *const status[] = {"IN_PROGRESS", "COMPLETED", "FAILED"};
  json_t *o = json_pack("{s:I, s:s, s:b, s:I, s:I, s:I, s:s}", "id", (json_int_t)r->id, "status",
                        status[r->status], "is_savepoint", r->kind == TD_CKPT_SAVEPOINT,
                        "trigger_timestamp", (json_int_t)r->trigger_ms, "end_to_end_duration",
                        (json_int_t)r->duration_ms, "state_size", (json_int_t)r->size,
                        "external_path", r->path);
  if (r->final) json_object_set_new(o, "final", json_true());
  if (r->stop) json_object_set_new(o, "stop", json_string(r->stop == TD_STOP_DRAIN ? "drain" : "stop"));
  if (r->status == TD_CKPT_FAILED) json_object_set_new(o, "failure_message", json_string(r->reason));
  json_object_set_new(o, "subtasks", record_subtasks(job, r));
  return o;
}

static json_t *checkpoints(td_job_t *job) {
  static td_coord_record_t rec[TD_COORD_HISTORY];
  static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_lock(&rec_mu);
  size_t n = td_coord_history(td_job_coordinator(job), rec, TD_COORD_HISTORY);
  json_int_t done = 0, failed = 0, running = 0;
  json_t *hist = json_array(), *latest = json_null();
  for (size_t i = n; i-- > 0;) { /* newest first, as Flink */
    json_array_append_new(hist, record_json(job, &rec[i]));
    if (rec[i].status == TD_CKPT_COMPLETED) {
      done++;
      if (json_is_null(latest)) latest = record_json(job, &rec[i]);
    } else if (rec[i].status == TD_CKPT_FAILED) {
      failed++;
    } else {
      running++;
    }
  }
  pthread_mutex_unlock(&rec_mu);
  return json_pack("{s:{s:I, s:I, s:I, s:I}, s:{s:o}, s:o}", "counts", "completed", done, "failed",
                   failed, "in_progress", running, "total", done + failed + running, "latest",
                   "completed", latest, "history", hist);
}

/* ---- savepoints and stops --------------------------------------------------------- */

static void *op_main(void *arg) {
  op_t *o = arg;
  char path[4200] = "", err[1024] = "";
  td_reload_times_t times;
  int rc;
  if (o->reload) {
    /* consumes the reference */
    rc = td_job_reload(o->job, &o->req, path, sizeof path, &times, err, sizeof err);
  } else {
    rc = td_job_savepoint(o->job, o->dir, o->stop, -1, path, sizeof path, err, sizeof err);
    td_job_release(o->job);
  }
  pthread_mutex_lock(&o->c->mu);
  if (o->reload) o->times = times;
  o->job = NULL;
  o->done = 1;
  o->ok = rc == 0;
  snprintf(o->location, sizeof o->location, "%s", path);
  snprintf(o->error, sizeof o->error, "%s", rc ? err : "");
  pthread_mutex_unlock(&o->c->mu);
  return NULL;
}

/* Start a savepoint or stop of job into dir, or a reload with req (its
 * strings taken over); the request id, or -1. */
static int64_t start_op(td_control_t *c, td_job_t *job, const char *dir, int stop,
                        td_reload_request_t *req) {
  pthread_mutex_lock(&c->mu);
  op_t *o = NULL;
  int64_t oldest = INT64_MAX;
  for (int i = 0; i < MAX_OPS; i++) {
    op_t *x = &c->ops[i];
    if (!x->used) {
      o = x;
      break;
    }
    if (x->done && x->request < oldest) {
      oldest = x->request;
      o = x;
    }
  }
  if (!o) {
    pthread_mutex_unlock(&c->mu);
    return -1;
  }
  if (o->joinable) pthread_join(o->thread, NULL);
  td_reload_request_free(&o->req);
  memset(o, 0, sizeof *o);
  o->used = 1;
  o->c = c;
  o->request = ++c->next_request;
  o->stop = stop;
  o->job = job;
  if (req) {
    o->reload = 1;
    o->req = *req;
    memset(req, 0, sizeof *req);
  }
  snprintf(o->dir, sizeof o->dir, "%s", dir ? dir : "");
  if (pthread_create(&o->thread, NULL, op_main, o) != 0) {
    o->used = 0;
    pthread_mutex_unlock(&c->mu);
    return -1;
  }
  o->joinable = 1;
  int64_t id = o->request;
  pthread_mutex_unlock(&c->mu);
  return id;
}

/* A reload's milestones as ms after the request (null: not reached). */
static json_t *reload_timings(const td_reload_times_t *t) {
  json_t *o = json_object();
  const int64_t at[] = {t->cut, t->started, t->flowing, t->settled};
  const char *const names[] = {"cut", "started", "flowing", "settled"};
  for (int i = 0; i < 4; i++)
    json_object_set_new(o, names[i], at[i] ? json_integer(at[i] - t->requested) : json_null());
  return o;
}

/* The status of reload request o (c->mu held). */
static json_t *reload_status(op_t *o) {
  if (!o->done)
    return json_pack("{s:{s:s}, s:s}", "status", "id", "IN_PROGRESS", "phase",
                     td_reload_phase_name(td_reload_phase()));
  json_t *op = json_pack("{s:s, s:o}", "script", o->req.path ? o->req.path : "", "timings",
                         reload_timings(&o->times));
  if (o->location[0]) json_object_set_new(op, "location", json_string(o->location));
  if (!o->ok)
    json_object_set_new(op, "failure-cause", json_pack("{s:s}", "message", o->error));
  return json_pack("{s:{s:s}, s:o}", "status", "id", "COMPLETED", "operation", op);
}

static json_t *op_status(td_control_t *c, int64_t request, int reload) {
  json_t *r = NULL;
  pthread_mutex_lock(&c->mu);
  for (int i = 0; i < MAX_OPS; i++) {
    op_t *o = &c->ops[i];
    if (!o->used || o->request != request || o->reload != reload) continue;
    if (reload) {
      if (o->done) o->fetched = 1;
      r = reload_status(o);
      continue;
    }
    if (o->done) o->fetched = 1;
    if (!o->done)
      r = json_pack("{s:{s:s}}", "status", "id", "IN_PROGRESS");
    else if (o->ok)
      r = json_pack("{s:{s:s}, s:{s:s}}", "status", "id", "COMPLETED", "operation", "location",
                    o->location);
    else
      r = json_pack("{s:{s:s}, s:{s:{s:s}}}", "status", "id", "COMPLETED", "operation",
                    "failure-cause", "message", o->error);
  }
  pthread_mutex_unlock(&c->mu);
  return r;
}

/* The request's target directory: the body's field (Flink's
 * "target-directory" or "targetDirectory"), else the job's default. */
static const char *target_dir(json_t *body, td_job_t *job) {
  const char *dir = NULL;
  json_t *v = json_object_get(body, "target-directory");
  if (!json_is_string(v)) v = json_object_get(body, "targetDirectory");
  if (json_is_string(v)) dir = json_string_value(v);
  if (!dir || !*dir) dir = td_job_spec_of(job)->savepoint_dir;
  return dir;
}

/* ---- Prometheus exposition (GET /metrics) ----------------------------------------- */

/* A text in memory, grown as needed (the exposition). */
typedef struct text {
  char *data;
  size_t len, cap;
  int oom;
} text_t;

static void put(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(text_t *t, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = t->cap - t->len;
    int n = t->oom ? 0 : vsnprintf(t->data ? t->data + t->len : NULL, room, fmt, ap);
    va_end(ap);
    if (t->oom || n < 0) return;
    if ((size_t)n < room) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = t->cap ? t->cap * 2 : 8192;
    while (cap - t->len <= (size_t)n) cap *= 2;
    char *d = realloc(t->data, cap);
    if (!d) {
      t->oom = 1;
      return;
    }
    t->data = d;
    t->cap = cap;
  }
}

/* A label value escaped as the text format wants (\\, \", \n). */
static void label_value(char *out, size_t len, const char *v) {
  size_t n = 0;
  for (; *v && n + 3 < len; v++) {
    if (*v == '\\' || *v == '"') out[n++] = '\\';
    if (*v == '\n') {
      out[n++] = '\\';
      out[n++] = 'n';
      continue;
    }
    out[n++] = *v;
  }
  out[n] = 0;
}

/* The subtask metrics: name (after tide_), type, help. */
enum {
  M_RECORDS_IN, M_RECORDS_OUT, M_RECORDS_READ, M_BYTES_IN, M_BYTES_OUT, M_BUSY, M_IDLE, M_BP,
  M_WM_IN, M_WM_OUT, M_LATE, M_COUNT
};
static const char *const subtask_metric[M_COUNT][3] = {
    {"subtask_records_in_total", "counter", "Records the subtask took from its input gate (Flink's numRecordsIn)."},
    {"subtask_records_out_total", "counter", "Records the subtask sent on its exchanges (Flink's numRecordsOut)."},
    {"subtask_source_records_read_total", "counter", "Records a source subtask's source read."},
    {"subtask_bytes_in_total", "counter", "Bytes of records and events taken from the input gate (Flink's numBytesIn)."},
    {"subtask_bytes_out_total", "counter", "Bytes of the exchange buffers the subtask sent (Flink's numBytesOut)."},
    {"subtask_busy_time_ms_per_second", "gauge", "Ms per second the subtask neither waited for input nor for output credit (Flink's busyTimeMsPerSecond)."},
    {"subtask_idle_time_ms_per_second", "gauge", "Ms per second the subtask waited for input (Flink's idleTimeMsPerSecond)."},
    {"subtask_backpressured_time_ms_per_second", "gauge", "Ms per second the subtask waited for output credit (Flink's backPressuredTimeMsPerSecond)."},
    {"subtask_current_input_watermark_ms", "gauge", "The subtask's input watermark, ms since the epoch (a source: the last it emitted); absent before the first."},
    {"subtask_current_output_watermark_ms", "gauge", "The last watermark the subtask emitted, ms since the epoch; absent before the first."},
    {"operator_late_records_dropped_total", "counter", "Late records the subtask's window operators dropped (not those sent to a late side output; Flink's numLateRecordsDropped)."},
};

/* One subtask's figures, in subtask_metric's order; has[m]: present. */
static void subtask_values(td_control_t *c, td_subtask_t *st, int64_t now_ns, double *v,
                           int *has) {
  const td_job_spec_t *s = td_job_spec_of(st->job);
  int64_t bytes_out = 0;
  for (int e = 0; e < s->n_edges; e++)
    if (st->outputs[e].n) bytes_out += atomic_load_explicit(&st->outputs[e].bytes, memory_order_relaxed);
  v[M_RECORDS_IN] = (double)atomic_load(&st->records_in);
  v[M_RECORDS_OUT] = (double)atomic_load(&st->records_out);
  v[M_RECORDS_READ] = (double)atomic_load(&st->records_read);
  v[M_BYTES_IN] = (double)atomic_load(&st->bytes_in);
  v[M_BYTES_OUT] = (double)bytes_out;
  td_time_rates(&st->time, &c->windows[st->global], now_ns, &v[M_BUSY], &v[M_IDLE], &v[M_BP]);
  int64_t wi = atomic_load(&st->watermark), wo = atomic_load(&st->watermark_out);
  v[M_WM_IN] = (double)wi;
  v[M_WM_OUT] = (double)wo;
  v[M_LATE] = (double)atomic_load(&st->late_dropped);
  for (int m = 0; m < M_COUNT; m++) has[m] = 1;
  if (!td_metrics_enabled()) /* --no-metrics: no time or byte accounting */
    has[M_BYTES_IN] = has[M_BYTES_OUT] = has[M_BUSY] = has[M_IDLE] = has[M_BP] = 0;
  has[M_WM_IN] = wi != INT64_MIN;
  has[M_WM_OUT] = wo != INT64_MIN;
}

/* The time windows for job's subtasks (c->mu held): kept while the same
 * job runs, fresh for a new one. 0 or TD_ENOMEM. */
static int windows_for(td_control_t *c, td_job_t *job, int n) {
  int64_t started = td_job_start_time(job);
  if (c->windows && c->n_windows == n && c->windows_job == started) return 0;
  free(c->windows);
  c->windows = calloc(n ? (size_t)n : 1, sizeof *c->windows);
  c->n_windows = c->windows ? n : 0;
  c->windows_job = started;
  return c->windows ? 0 : TD_ENOMEM;
}

/* GET /jobs/ID/vertices/V (watermarks_only: .../watermarks): per subtask
 * the figures of /metrics (c->mu held). */
static json_t *vertex(td_control_t *c, td_job_t *job, int t, int watermarks_only) {
  const td_job_spec_t *s = td_job_spec_of(job);
  int n;
  td_subtask_t *st = td_job_subtasks(job, &n) + td_job_first_subtask(job, t);
  if (windows_for(c, job, n)) return NULL;
  int64_t now_ns = td_metrics_now_ns();
  json_t *subs = json_array();
  for (int i = 0; i < s->parallelism[t]; i++) {
    int64_t wm = atomic_load(&st[i].watermark);
    if (watermarks_only) {
      char id[48];
      snprintf(id, sizeof id, "%d.currentInputWatermark", i);
      json_array_append_new(subs, json_pack("{s:s, s:o}", "id", id, "value", watermark_value(wm)));
      continue;
    }
    double v[M_COUNT];
    int has[M_COUNT];
    subtask_values(c, &st[i], now_ns, v, has);
    json_array_append_new(
        subs, json_pack("{s:i, s:{s:I, s:I, s:I, s:I, s:o, s:o, s:f, s:f, s:f, s:I}}", "subtask", i,
                        "metrics", "read-records", (json_int_t)v[M_RECORDS_IN], "write-records",
                        (json_int_t)v[M_RECORDS_OUT], "read-bytes", (json_int_t)v[M_BYTES_IN],
                        "write-bytes", (json_int_t)v[M_BYTES_OUT], "current-input-watermark",
                        watermark_value(wm), "current-output-watermark",
                        watermark_value(atomic_load(&st[i].watermark_out)),
                        "busy-time-ms-per-second", v[M_BUSY], "idle-time-ms-per-second",
                        v[M_IDLE], "backpressured-time-ms-per-second", v[M_BP],
                        "late-records-dropped", (json_int_t)v[M_LATE]));
  }
  if (watermarks_only) return subs;
  char name[2048], id[16];
  task_name(s, t, name, sizeof name);
  snprintf(id, sizeof id, "%d", t);
  return json_pack("{s:s, s:s, s:i, s:o}", "id", id, "name", name, "parallelism",
                   s->parallelism[t], "subtasks", subs);
}

/* GET /jobs/ID/exceptions: the last failures, newest first (Flink's
 * exception history): {"exceptions":[{"timestamp", "task", "subtask",
 * "message"}]}. */
static json_t *exceptions(void) {
  static td_job_exception_t ex[TD_JOB_EXCEPTIONS]; /* c->mu */
  int n = td_job_exceptions(ex, TD_JOB_EXCEPTIONS);
  json_t *a = json_array();
  for (int i = 0; i < n; i++)
    json_array_append_new(a, json_pack("{s:I, s:s, s:i, s:s}", "timestamp", (json_int_t)ex[i].timestamp_ms,
                                       "task", ex[i].task, "subtask", ex[i].subtask, "message",
                                       ex[i].message));
  return json_pack("{s:o}", "exceptions", a);
}

/* A job-scope metric: tide_job_<name>{job=jl} v with its HELP and TYPE. */
static void job_metric(text_t *t, const char *jl, const char *name, const char *type,
                       const char *help, double v) {
  put(t, "# HELP tide_job_%s %s\n# TYPE tide_job_%s %s\ntide_job_%s{job=\"%s\"} %.17g\n", name, help,
      name, type, name, jl, v);
}

/* The series of k subtask metrics (names after tide_, type, help in
 * metric[k]) for n subtasks: v[i * k + m] where has[i * k + m]. */
static void put_subtask_series(text_t *t, const td_job_spec_t *s, const td_subtask_t *sts, int n,
                               const char *jl, const char *const (*metric)[3], int k,
                               const double *v, const int *has) {
  for (int m = 0; m < k; m++) {
    put(t, "# HELP tide_%s %s\n# TYPE tide_%s %s\n", metric[m][0], metric[m][2], metric[m][0],
        metric[m][1]);
    for (int i = 0; i < n; i++) {
      if (!has[i * k + m]) continue;
      char name[2048], ol[4200];
      task_name(s, sts[i].task, name, sizeof name);
      label_value(ol, sizeof ol, name);
      put(t, "tide_%s{job=\"%s\",task=\"%d\",operator=\"%s\",subtask=\"%d\"} %.17g\n",
          metric[m][0], jl, sts[i].task, ol, sts[i].index, v[i * k + m]);
    }
  }
}

/* The subtask figures of the last completed checkpoint. */
enum { C_DELAY, C_ALIGN, C_SYNC, C_ASYNC, C_SIZE, C_COUNT };
static const char *const checkpoint_metric[C_COUNT][3] = {
    {"subtask_last_checkpoint_start_delay_ms", "gauge", "Trigger to the first barrier reaching the subtask in the last completed checkpoint (Flink's checkpointStartDelayNanos)."},
    {"subtask_last_checkpoint_alignment_ms", "gauge", "First barrier to the last (the snapshot) in the last completed checkpoint (Flink's checkpointAlignmentTime)."},
    {"subtask_last_checkpoint_sync_ms", "gauge", "The synchronous part of the subtask's snapshot, on its thread, in the last completed checkpoint (Flink's sync duration)."},
    {"subtask_last_checkpoint_async_ms", "gauge", "The asynchronous part (writing its files off the task thread) in the last completed checkpoint (Flink's async duration)."},
    {"subtask_checkpointed_state_size_bytes", "gauge", "Bytes of the subtask's files in the last completed checkpoint (Flink's checkpointed state size)."},
};

/* The checkpoint_metric series of checkpoint id (c->mu held). */
static void checkpoint_series(text_t *t, td_job_t *job, const char *jl, int64_t id) {
  int n;
  td_subtask_t *sts = td_job_subtasks(job, &n);
  td_coord_subtask_stats_t *ss = calloc(n ? (size_t)n : 1, sizeof *ss);
  double *v = calloc(n ? (size_t)n * C_COUNT : 1, sizeof *v);
  int *has = calloc(n ? (size_t)n * C_COUNT : 1, sizeof *has);
  if (!ss || !v || !has) {
    t->oom = 1;
  } else {
    size_t got = td_coord_subtask_history(td_job_coordinator(job), id, ss, (size_t)n);
    for (size_t i = 0; i < got; i++) {
      double *w = v + i * C_COUNT;
      w[C_DELAY] = ss[i].start_delay_us / 1e3;
      w[C_ALIGN] = ss[i].alignment_us / 1e3;
      w[C_SYNC] = ss[i].sync_us / 1e3;
      w[C_ASYNC] = ss[i].async_us / 1e3;
      w[C_SIZE] = (double)ss[i].size;
      /* a subtask that had finished took no snapshot: its size only */
      for (int m = 0; m < C_COUNT; m++) has[i * C_COUNT + m] = ss[i].reported || m == C_SIZE;
    }
    put_subtask_series(t, td_job_spec_of(job), sts, (int)got, jl, checkpoint_metric, C_COUNT, v,
                       has);
  }
  free(ss);
  free(v);
  free(has);
}

static void job_metrics(td_control_t *c, td_job_t *job, const char *jl, text_t *t) {
  const td_job_spec_t *s = td_job_spec_of(job);
  int n;
  td_subtask_t *sts = td_job_subtasks(job, &n);
  if (windows_for(c, job, n)) {
    t->oom = 1;
    return;
  }
  int64_t now_ns = td_metrics_now_ns();
  double(*v)[M_COUNT] = calloc(n ? (size_t)n : 1, sizeof *v);
  int(*has)[M_COUNT] = calloc(n ? (size_t)n : 1, sizeof *has);
  if (!v || !has) {
    free(v);
    free(has);
    t->oom = 1;
    return;
  }
  for (int i = 0; i < n; i++) subtask_values(c, &sts[i], now_ns, v[i], has[i]);
  put_subtask_series(t, s, sts, n, jl, subtask_metric, M_COUNT, (const double *)v,
                     (const int *)has);
  free(v);
  free(has);
  /* the job's checkpoints */
  td_coord_stats_t cs;
  td_coord_stats(td_job_coordinator(job), &cs);
  static td_coord_record_t rec[TD_COORD_HISTORY]; /* c->mu */
  size_t nh = td_coord_history(td_job_coordinator(job), rec, TD_COORD_HISTORY);
  const td_coord_record_t *last = NULL;
  int in_progress = 0;
  for (size_t i = 0; i < nh; i++) {
    if (rec[i].kind == TD_CKPT_CHECKPOINT && rec[i].status == TD_CKPT_COMPLETED) last = &rec[i];
    if (rec[i].status == TD_CKPT_IN_PROGRESS) in_progress++;
  }
  job_metric(t, jl, "checkpoints_completed_total", "counter",
             "Checkpoints completed (Flink's numberOfCompletedCheckpoints).", (double)cs.completed);
  job_metric(t, jl, "checkpoints_failed_total", "counter",
             "Checkpoints aborted or failed (Flink's numberOfFailedCheckpoints).", (double)cs.aborted);
  job_metric(t, jl, "checkpoints_in_progress", "gauge",
             "Checkpoints and savepoints in progress (Flink's numberOfInProgressCheckpoints).",
             in_progress);
  job_metric(t, jl, "checkpoint_sync_time_ms_total", "counter",
             "Ms the subtasks spent in the synchronous part of their snapshots.",
             (double)cs.sum_pause_us / 1000);
  if (last) {
    job_metric(t, jl, "last_checkpoint_id", "gauge", "The id of the last completed checkpoint.",
               (double)last->id);
    job_metric(t, jl, "last_checkpoint_duration_ms", "gauge",
               "Trigger to _metadata of the last completed checkpoint (Flink's "
               "lastCheckpointDuration).",
               (double)last->duration_ms);
    job_metric(t, jl, "last_checkpoint_size_bytes", "gauge",
               "Bytes of the files the last completed checkpoint lists (Flink's lastCheckpointSize).",
               (double)last->size);
    job_metric(t, jl, "last_checkpoint_trigger_timestamp_ms", "gauge",
               "Wall time the last completed checkpoint was triggered, ms since the epoch.",
               (double)last->trigger_ms);
    checkpoint_series(t, job, jl, last->id);
  }
  job_metric(t, jl, "uptime_seconds", "gauge",
             "Seconds since the job (this attempt) started (Flink's uptime).",
             (double)(wall_ms() - td_job_start_time(job)) / 1000);
}

/* The exposition of every metric (Prometheus text format 0.0.4). */
static enum MHD_Result send_metrics(td_control_t *c, struct MHD_Connection *conn, td_job_t *job) {
  text_t t = {0};
  char jl[256];
  label_value(jl, sizeof jl, c->job_id);
  td_job_state_t state = job ? td_job_state(job) : td_job_process_state();
  put(&t, "# HELP tide_job_status 1 for the job's status now (Flink's JobStatus).\n"
          "# TYPE tide_job_status gauge\n"
          "tide_job_status{job=\"%s\",status=\"%s\"} 1\n", jl, td_job_state_name(state));
  job_metric(&t, jl, "restarts_total", "counter",
             "Restarts of the job after failures (Flink's numRestarts).", (double)td_job_restarts());
  if (job) {
    pthread_mutex_lock(&c->mu);
    job_metrics(c, job, jl, &t);
    pthread_mutex_unlock(&c->mu);
  }
  if (t.oom) {
    free(t.data);
    return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
  }
  struct MHD_Response *r = MHD_create_response_from_buffer(t.len, t.data, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(t.data);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

/* ---- routing ---------------------------------------------------------------------- */

/* The dashboard's file f (web.h): not cached, as a new binary may serve
 * other files at the same address. */
static enum MHD_Result send_file(struct MHD_Connection *conn, const td_web_file_t *f) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", f->content_type);
  MHD_add_response_header(r, "Cache-Control", "no-cache");
  enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

/* Split url into at most max parts at '/'; the number of parts. */
static int split(char *url, char **parts, int max) {
  int n = 0;
  for (char *p = strtok(url, "/"); p && n < max; p = strtok(NULL, "/")) parts[n++] = p;
  return n;
}

static enum MHD_Result post_op(td_control_t *c, struct MHD_Connection *conn, td_job_t *job,
                               body_t *b, int stop_request) {
  json_error_t je;
  json_t *body = b->len ? json_loadb(b->data, b->len, 0, &je) : json_object();
  if (!json_is_object(body)) {
    json_decref(body);
    return send_error(conn, MHD_HTTP_BAD_REQUEST, "the request body is not a JSON object");
  }
  int stop = TD_STOP_NONE;
  if (stop_request) stop = json_is_true(json_object_get(body, "drain")) ? TD_STOP_DRAIN : TD_STOP_SUSPEND;
  const char *dir = target_dir(body, job);
  if (!dir) {
    json_decref(body);
    return send_error(conn, MHD_HTTP_BAD_REQUEST,
                      "no target directory: give \"target-directory\" (the job has no checkpoint "
                      "directory to default to)");
  }
  int64_t id = start_op(c, job, dir, stop, NULL);
  json_decref(body);
  if (id < 0) {
    td_job_release(job);
    return send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "too many savepoint requests in progress");
  }
  char rid[32];
  snprintf(rid, sizeof rid, "%" PRId64, id);
  return send_json(conn, MHD_HTTP_ACCEPTED, json_pack("{s:s}", "request-id", rid));
}

/* POST /jobs/ID/reload {"script": path, "text": the script, "args":
 * [arg1, ...] (optional: the running job's), "allow-non-restored-state":
 * bool}: start a live reload (reload.h); 202 with its request id. Takes
 * over the reference to job. */
static enum MHD_Result post_reload(td_control_t *c, struct MHD_Connection *conn, td_job_t *job,
                                   body_t *b) {
  json_error_t je;
  json_t *body = b->len ? json_loadb(b->data, b->len, 0, &je) : NULL;
  const char *bad = NULL;
  json_t *path = json_object_get(body, "script"), *text = json_object_get(body, "text");
  json_t *args = json_object_get(body, "args");
  if (!json_is_object(body)) bad = "the request body is not a JSON object";
  else if (!json_is_string(path) || !json_string_length(path))
    bad = "\"script\" (the new script's path) is missing";
  else if (!json_is_string(text)) bad = "\"text\" (the new script's text) is missing";
  else if (args && !json_is_array(args)) bad = "\"args\" is not an array of strings";
  for (size_t i = 0; !bad && args && i < json_array_size(args); i++)
    if (!json_is_string(json_array_get(args, i))) bad = "\"args\" is not an array of strings";
  if (bad) {
    json_decref(body);
    td_job_release(job);
    return send_error(conn, MHD_HTTP_BAD_REQUEST, "%s", bad);
  }
  /* the request's own copy: op_t owns it (td_reload_request_free) */
  size_t n_args = args ? json_array_size(args) + 1 : 0;
  const char **argv = n_args ? calloc(n_args, sizeof *argv) : NULL;
  td_reload_request_t req = {.path = strdup(json_string_value(path)),
                             .text = malloc(json_string_length(text) + 1),
                             .len = json_string_length(text),
                             .args = argv,
                             .n_args = (int)n_args,
                             .allow_non_restored =
                                 json_is_true(json_object_get(body, "allow-non-restored-state"))};
  int oom = !req.path || !req.text || (n_args && !argv);
  if (req.text) memcpy((char *)req.text, json_string_value(text), req.len + 1);
  for (size_t i = 0; argv && i < n_args; i++)
    if (!(argv[i] = strdup(i ? json_string_value(json_array_get(args, i - 1)) : req.path))) oom = 1;
  json_decref(body);
  int64_t id = oom ? -1 : start_op(c, job, NULL, TD_STOP_NONE, &req);
  td_reload_request_free(&req);
  if (id < 0) {
    td_job_release(job);
    return send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                      oom ? "out of memory" : "too many requests in progress");
  }
  char rid[32];
  snprintf(rid, sizeof rid, "%" PRId64, id);
  return send_json(conn, MHD_HTTP_ACCEPTED, json_pack("{s:s}", "request-id", rid));
}

static enum MHD_Result route(td_control_t *c, struct MHD_Connection *conn, const char *method,
                             const char *url, body_t *b) {
  char buf[2048];
  snprintf(buf, sizeof buf, "%s", url);
  char *q = strchr(buf, '?');
  if (q) *q = 0;
  int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
  td_web_file_t file;
  if (td_web_file(buf, &file)) {
    if (!get) return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "%s %s: use GET", method, buf);
    return send_file(conn, &file);
  }
  char *p[8];
  int n = split(buf, p, 8);
  int patch = strcmp(method, "PATCH") == 0;
  if (n == 1 && strcmp(p[0], "metrics") == 0) {
    if (!get) return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "%s /metrics: use GET", method);
    td_job_t *job = td_job_current();
    enum MHD_Result ret = send_metrics(c, conn, job);
    if (job) td_job_release(job);
    return ret;
  }
  if (n == 0 || strcmp(p[0], "jobs") != 0)
    return send_error(conn, MHD_HTTP_NOT_FOUND, "not found: %s", url);
  if (n == 1) {
    if (!get) return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "%s /jobs: use GET", method);
    return send_json(conn, MHD_HTTP_OK,
                     json_pack("{s:[{s:s, s:s}]}", "jobs", "id", c->job_id, "status",
                               td_job_state_name(td_job_process_state())));
  }
  if (strcmp(p[1], c->job_id) != 0)
    return send_error(conn, MHD_HTTP_NOT_FOUND, "job %s is not the job of this endpoint (%s)", p[1],
                      c->job_id);
  td_job_t *job = td_job_current();
  enum MHD_Result ret;
  if (n == 2 && get) {
    ret = send_json(conn, MHD_HTTP_OK, job_overview(c, job));
  } else if ((n == 2 && patch) || (n == 3 && post && strcmp(p[2], "cancel") == 0)) {
    td_job_cancel_all("cancelled by tide cancel");
    ret = send_json(conn, MHD_HTTP_ACCEPTED, json_object());
  } else if (n == 4 && get && strcmp(p[2], "savepoints") == 0) {
    json_t *r = op_status(c, strtoll(p[3], NULL, 10), 0);
    ret = r ? send_json(conn, MHD_HTTP_OK, r)
            : send_error(conn, MHD_HTTP_NOT_FOUND, "no savepoint request %s", p[3]);
  } else if (n == 4 && get && strcmp(p[2], "reloads") == 0) {
    json_t *r = op_status(c, strtoll(p[3], NULL, 10), 1);
    ret = r ? send_json(conn, MHD_HTTP_OK, r)
            : send_error(conn, MHD_HTTP_NOT_FOUND, "no reload request %s", p[3]);
  } else if (n == 3 && post && strcmp(p[2], "reload") == 0 &&
             td_reload_phase() != TD_RELOAD_IDLE) {
    /* between the cut and the new logic's start no job runs */
    ret = send_error(conn, MHD_HTTP_CONFLICT,
                     "a reload of this job is in progress (%s): one at a time",
                     td_reload_phase_name(td_reload_phase()));
  } else if (n == 3 && get && strcmp(p[2], "exceptions") == 0) {
    pthread_mutex_lock(&c->mu);
    ret = send_json(conn, MHD_HTTP_OK, exceptions());
    pthread_mutex_unlock(&c->mu);
  } else if (!job) {
    ret = send_error(conn, MHD_HTTP_CONFLICT, "the job is not running (%s)",
                     td_job_state_name(td_job_process_state()));
  } else if (n == 3 && get && strcmp(p[2], "plan") == 0) {
    ret = send_json(conn, MHD_HTTP_OK, job_plan(c, job));
  } else if (n == 3 && get && strcmp(p[2], "checkpoints") == 0) {
    ret = send_json(conn, MHD_HTTP_OK, checkpoints(job));
  } else if ((n == 4 || n == 5) && get && strcmp(p[2], "vertices") == 0) {
    char *end;
    long t = strtol(p[3], &end, 10);
    const td_job_spec_t *s = td_job_spec_of(job);
    if (*end || t < 0 || t >= s->n_tasks)
      ret = send_error(conn, MHD_HTTP_NOT_FOUND, "no vertex %s (the job has %d)", p[3], s->n_tasks);
    else if (n == 5 && strcmp(p[4], "watermarks") != 0)
      ret = send_error(conn, MHD_HTTP_NOT_FOUND, "not found: %s", url);
    else {
      pthread_mutex_lock(&c->mu);
      json_t *v = vertex(c, job, (int)t, n == 5);
      pthread_mutex_unlock(&c->mu);
      ret = v ? send_json(conn, MHD_HTTP_OK, v)
              : send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
  } else if (n == 3 && post && (strcmp(p[2], "savepoints") == 0 || strcmp(p[2], "stop") == 0)) {
    ret = post_op(c, conn, job, b, p[2][1] == 't');
    job = NULL; /* the request's thread holds the reference */
  } else if (n == 3 && post && strcmp(p[2], "reload") == 0) {
    ret = post_reload(c, conn, job, b);
    job = NULL;
  } else {
    ret = send_error(conn, MHD_HTTP_NOT_FOUND, "not found: %s %s", method, url);
  }
  td_job_release(job);
  return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls) {
  td_control_t *c = cls;
  (void)version;
  body_t *b = *con_cls;
  if (!b) {
    b = calloc(1, sizeof *b);
    if (!b) return MHD_NO;
    *con_cls = b;
    return MHD_YES;
  }
  if (*upload_size) {
    if (b->len + *upload_size > MAX_BODY) {
      b->too_big = 1;
    } else {
      char *d = realloc(b->data, b->len + *upload_size + 1);
      if (!d) return MHD_NO;
      memcpy(d + b->len, upload_data, *upload_size);
      b->data = d;
      b->len += *upload_size;
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (b->too_big) return send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
  return route(c, conn, method, url, b);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)conn;
  (void)toe;
  body_t *b = *con_cls;
  if (b) {
    free(b->data);
    free(b);
  }
  *con_cls = NULL;
}

int td_control_new(td_control_t **out, const char *bind, int port, const char *job_id, char *err,
                   size_t errlen) {
  *out = NULL;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (!bind || strcmp(bind, "localhost") == 0) bind = "127.0.0.1";
  if (inet_pton(AF_INET, bind, &sa.sin_addr) != 1) {
    snprintf(err, errlen, "--rest-bind needs an IPv4 address, not '%s'", bind);
    return TD_EINVAL;
  }
  if (port < 0 || port > 65535) {
    snprintf(err, errlen, "--rest-port needs a port from 0 to 65535, not %d", port);
    return TD_EINVAL;
  }
  td_control_t *c = calloc(1, sizeof *c);
  if (!c || !(c->job_id = strdup(job_id))) {
    free(c);
    snprintf(err, errlen, "out of memory");
    return TD_ENOMEM;
  }
  pthread_mutex_init(&c->mu, NULL);
  c->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
                          on_request, c, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, c,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
  if (!c->d) {
    int e = errno;
    snprintf(err, errlen, "cannot serve the control endpoint on %s:%d: %s", bind, port,
             e ? strerror(e) : "libmicrohttpd failed to start");
    pthread_mutex_destroy(&c->mu);
    free(c->job_id);
    free(c);
    return e ? -e : TD_EIO;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(c->d, MHD_DAEMON_INFO_BIND_PORT);
  snprintf(c->address, sizeof c->address, "%s:%u", bind, info ? (unsigned)info->port : (unsigned)port);
  *out = c;
  return 0;
}

const char *td_control_address(const td_control_t *c) { return c->address; }

void td_control_free(td_control_t *c) {
  if (!c) return;
  /* the job of a stop ends as its savepoint completes: the client that
   * asked learns where it went before the endpoint goes (5 s at most) */
  for (int waited = 0; waited < 5000; waited += 20) {
    int unread = 0;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < MAX_OPS; i++)
      if (c->ops[i].used && (c->ops[i].stop || c->ops[i].reload) && !c->ops[i].fetched)
        unread = 1;
    pthread_mutex_unlock(&c->mu);
    if (!unread) break;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  MHD_stop_daemon(c->d);
  for (int i = 0; i < MAX_OPS; i++) {
    if (c->ops[i].joinable) pthread_join(c->ops[i].thread, NULL);
    td_reload_request_free(&c->ops[i].req);
  }
  pthread_mutex_destroy(&c->mu);
  free(c->job_id);
  free(c->windows);
  free(c);
}
