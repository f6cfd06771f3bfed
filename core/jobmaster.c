/* jobmaster.c - the job master of `tide run --jobmanager` (cluster.h):
 * slots from the job manager, deployment to the task managers, and the
 * whole job's checkpoint coordination through messages. */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "error.h"
#include "log.h"
#include "netexchange.h"

/* One task manager of the current attempt. */
typedef struct proc {
  char tm[64], data[80];
  td_net_peer_t *peer;
  int deployed, done, ok;
  int64_t last_trigger; /* the newest barrier id asked of it */
} proc_t;

/* A barrier asked of a source subtask before the task managers started. */
typedef struct request {
  int64_t id;
  int kind, stop;
  char path[1024];
} request_t;

static struct {
  pthread_mutex_t mu;
  pthread_cond_t changed;
  int enabled;
  unsigned char *secret;
  size_t secret_len;
  td_netx_t *netx;
  td_net_peer_t *jm;
  char jm_addr[80], rest[80];
  char jm_host[64];
  int jm_port;
  json_t *reply;         /* the job manager's last allocation reply */
  /* the attempt */
  int attempt, started;
  proc_t *procs;
  int n_procs;
  int *placement;
  int n_subtasks;
  request_t *requests;   /* per subtask */
  char failure[1024];    /* the attempt's first failure, "" if none */
  int failure_lost_peer; /* failure is a task manager's lost connection to
                            another task manager (see fail_locked) */
  td_job_cluster_t cluster;
  td_job_t *job;
  int busy;              /* loop-thread calls into job's coordinator */
  json_t *shipped;       /* the attempt's files: content name -> path */
} jmr = {.mu = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

static proc_t *proc_of(td_net_peer_t *p) {
  for (int i = 0; i < jmr.n_procs; i++)
    if (jmr.procs[i].peer == p) return &jmr.procs[i];
  return NULL;
}

/* What a task manager reports when its connection to another task manager
 * closed (taskmanager.c, on_closed). */
static const char LOST_PEER[] = "lost the connection to the task manager at ";

/* Record the attempt's first failure (mu held) and wake the waiter. A task
 * manager whose part failed closes its connections to the others, which
 * then report a lost connection; both reports race to the master. So a
 * lost connection between task managers is replaced by the next failure
 * that is not one: the job's error is the cause, not its echo (as Flink
 * reports the root cause of a failover, not the tasks it cancelled). The
 * attempt's error is read once every task manager ended its part (or 30 s
 * after the cancel), and the cause's report comes before its own "done". */
static void fail_locked(const char *why) {
  int lost_peer = strstr(why, LOST_PEER) != NULL;
  if (!jmr.failure[0] || (jmr.failure_lost_peer && !lost_peer)) {
    snprintf(jmr.failure, sizeof jmr.failure, "%s", why);
    jmr.failure_lost_peer = lost_peer;
  }
  pthread_cond_broadcast(&jmr.changed);
}

/* Send msg to every task manager of the attempt still running its part. */
static void send_all(json_t *msg) {
  for (int i = 0; i < jmr.n_procs; i++)
    if (jmr.procs[i].peer && !jmr.procs[i].done) td_cluster_send(jmr.procs[i].peer, json_incref(msg));
  json_decref(msg);
}

/* An "ack" message: subtask's part of checkpoint id, with the files its
 * snapshot wrote ([name, size, crc] each); a malformed list is passed on
 * empty, so the coordinator lists the subtask's files itself. */
static void ack(td_coord_t *c, int64_t id, int subtask, json_t *msg) {
  json_t *list = json_object_get(msg, "files");
  size_t n = json_array_size(list), k = 0;
  td_meta_file_t *files = calloc(n ? n : 1, sizeof *files);
  for (size_t i = 0; files && i < n; i++) {
    json_t *e = json_array_get(list, i);
    const char *name = json_string_value(json_array_get(e, 0));
    json_t *size = json_array_get(e, 1), *crc = json_array_get(e, 2);
    if (!name || !json_is_integer(size) || !json_is_integer(crc) || json_integer_value(size) < 0)
      break;
    files[k].name = (char *)name;
    files[k].size = (uint64_t)json_integer_value(size);
    files[k].crc = (uint32_t)json_integer_value(crc);
    files[k++].subtask = subtask;
  }
  td_coord_remote_ack(c, id, subtask, json_string_value(json_object_get(msg, "inflight")),
                      files, k == n ? k : 0);
  free(files);
}

/* ---- messages ---------------------------------------------------------------- */

/* A task manager's message (mu held; released around calls into the
 * coordinator, whose hooks take mu: jmr.busy keeps the job alive). */
static void on_tm_message(proc_t *pr, const char *t, json_t *msg) {
  td_coord_t *c = jmr.job ? td_job_coordinator(jmr.job) : NULL;
  if (strcmp(t, "fetch") == 0) { /* a file of the job the task manager lacks */
    const char *hash = json_string_value(json_object_get(msg, "hash"));
    const char *tag = json_string_value(json_object_get(msg, "tag"));
    td_cluster_send_file(pr->peer, tag ? tag : "", hash ? hash : "",
                         json_string_value(json_object_get(jmr.shipped, hash ? hash : "")));
    return;
  }
  if (strcmp(t, "deployed") == 0 || strcmp(t, "done") == 0 || strcmp(t, "failing") == 0) {
    if (strcmp(t, "deployed") == 0) {
      pr->deployed = 1;
    } else if (strcmp(t, "done") == 0) {
      pr->done = 1;
      pr->ok = json_is_true(json_object_get(msg, "ok"));
      if (!pr->ok) {
        char why[1024];
        snprintf(why, sizeof why, "%s", json_string_value(json_object_get(msg, "message")));
        fail_locked(why);
      }
    } else {
      const char *why = json_string_value(json_object_get(msg, "message"));
      fail_locked(why ? why : "a subtask failed");
    }
    pthread_cond_broadcast(&jmr.changed);
    return;
  }
  if (c) {
    jmr.busy++;
    pthread_mutex_unlock(&jmr.mu);
  }
  int64_t id = (int64_t)json_integer_value(json_object_get(msg, "id"));
  int subtask = (int)json_integer_value(json_object_get(msg, "subtask"));
  int valid = subtask >= 0 && subtask < jmr.n_subtasks &&
              jmr.placement[subtask] == (int)(pr - jmr.procs);
  if (c && valid && strcmp(t, "ack") == 0) {
    ack(c, id, subtask, msg);
  } else if (c && valid && strcmp(t, "decline") == 0) {
    td_coord_remote_decline(c, id, subtask, json_string_value(json_object_get(msg, "reason")),
                            json_is_true(json_object_get(msg, "counted")));
  } else if (c && valid && strcmp(t, "finishing") == 0) {
    td_coord_finishing(c, subtask);
  } else if (c && valid && strcmp(t, "finished") == 0) {
    json_t *names = json_object_get(msg, "names");
    size_t n = json_array_size(names);
    const char **v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; v && i < n; i++) v[i] = json_string_value(json_array_get(names, i));
    td_coord_finished(c, subtask, (int)n, v, v && json_is_true(json_object_get(msg, "ok")));
    free(v);
  }
  if (c) {
    pthread_mutex_lock(&jmr.mu);
    jmr.busy--;
  }
  pthread_cond_broadcast(&jmr.changed);
}

static void on_frame(void *ud, td_net_peer_t *p, uint8_t type, uint8_t flags, uint32_t channel,
                     const unsigned char *payload, uint32_t len) {
  (void)ud;
  (void)flags;
  const char *t;
  json_t *msg = td_cluster_parse(type, channel, payload, len, &t);
  if (!msg) return;
  pthread_mutex_lock(&jmr.mu);
  if (p == jmr.jm) {
    if (strcmp(t, "allocation") == 0) {
      json_decref(jmr.reply);
      jmr.reply = json_incref(msg);
      pthread_cond_broadcast(&jmr.changed);
    } else if (strcmp(t, "tm_lost") == 0) {
      const char *id = json_string_value(json_object_get(msg, "tm"));
      for (int i = 0; id && i < jmr.n_procs; i++)
        if (strcmp(jmr.procs[i].tm, id) == 0) {
          char why[600];
          snprintf(why, sizeof why, "task manager %s (%s) was lost: %s", id, jmr.procs[i].data,
                   json_string_value(json_object_get(msg, "message")));
          fail_locked(why);
          /* gone: nothing more will come from it (a link down leaves its
           * connection open) */
          if (!jmr.procs[i].done && jmr.procs[i].peer) td_net_shutdown(jmr.procs[i].peer, why);
          jmr.procs[i].done = 1;
        }
    }
  } else {
    proc_t *pr = proc_of(p);
    if (pr) on_tm_message(pr, t, msg);
  }
  pthread_mutex_unlock(&jmr.mu);
  json_decref(msg);
}

static void on_closed(void *ud, td_net_peer_t *p, const char *why) {
  (void)ud;
  pthread_mutex_lock(&jmr.mu);
  if (p == jmr.jm) {
    jmr.jm = NULL;
    char line[300];
    snprintf(line, sizeof line, "lost the connection to the job manager at %s: %s (the job runs on; "
             "a restart needs it back)", jmr.jm_addr, why);
    td_log(TD_LOG_WARN, "jobmaster", NULL, line);
    pthread_cond_broadcast(&jmr.changed);
  }
  proc_t *pr = proc_of(p);
  if (pr && !pr->done) {
    char msg[600];
    snprintf(msg, sizeof msg, "lost the connection to task manager %s (%s): %s", pr->tm, pr->data, why);
    pr->done = 1;
    pr->peer = NULL;
    fail_locked(msg);
  } else if (pr) {
    pr->peer = NULL;
  }
  pthread_mutex_unlock(&jmr.mu);
}

/* ---- the coordinator's hooks (its lock held: only queue messages) --------- */

/* Tell every task manager of barrier r (mu held): those running sources
 * inject it, and every one takes part in it (a task manager whose sources
 * finished still snapshots the subtasks the barrier reaches). */
static void send_trigger(const request_t *r) {
  for (int i = 0; i < jmr.n_procs; i++) {
    proc_t *pr = &jmr.procs[i];
    if (!pr->peer || pr->done || pr->last_trigger >= r->id) continue;
    pr->last_trigger = r->id;
    json_t *m = json_pack("{s:s,s:I,s:i,s:i}", "type", "trigger", "id", (json_int_t)r->id, "kind",
                          r->kind, "stop", r->stop);
    if (r->path[0]) json_object_set_new(m, "path", json_string(r->path));
    td_cluster_send(pr->peer, m);
  }
}

static void on_request(void *ud, int subtask, int64_t id, int kind, int stop, const char *path) {
  (void)ud;
  pthread_mutex_lock(&jmr.mu);
  request_t *r = &jmr.requests[subtask];
  r->id = id;
  r->kind = kind;
  r->stop = stop;
  snprintf(r->path, sizeof r->path, "%s", path ? path : "");
  if (jmr.started) send_trigger(r);
  pthread_mutex_unlock(&jmr.mu);
}

static void on_complete(void *ud, int64_t id, int kind, int stop, int final) {
  (void)ud;
  pthread_mutex_lock(&jmr.mu);
  send_all(json_pack("{s:s,s:I,s:i,s:i,s:b}", "type", "complete", "id", (json_int_t)id, "kind",
                     kind, "stop", stop, "final", final));
  pthread_mutex_unlock(&jmr.mu);
}

static void on_abort(void *ud, int64_t id) {
  (void)ud;
  pthread_mutex_lock(&jmr.mu);
  send_all(json_pack("{s:s,s:I}", "type", "abort", "id", (json_int_t)id));
  pthread_mutex_unlock(&jmr.mu);
}

static void on_cancel(void *ud, const char *why) {
  (void)ud;
  pthread_mutex_lock(&jmr.mu);
  send_all(json_pack("{s:s,s:s}", "type", "cancel", "message", why));
  fail_locked(why);
  pthread_mutex_unlock(&jmr.mu);
}

/* Wait (mu held) until pred() or a failure, up to ms (< 0: no limit). */
static int wait_until(int (*pred)(void), int ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  while (!pred()) {
    if (ms < 0) pthread_cond_wait(&jmr.changed, &jmr.mu);
    else if (pthread_cond_timedwait(&jmr.changed, &jmr.mu, &until) == ETIMEDOUT) return pred();
  }
  return 1;
}

static int all_deployed(void) {
  if (jmr.failure[0]) return 1;
  for (int i = 0; i < jmr.n_procs; i++)
    if (!jmr.procs[i].deployed) return 0;
  return 1;
}

static int all_done(void) {
  for (int i = 0; i < jmr.n_procs; i++)
    if (!jmr.procs[i].done) return 0;
  return 1;
}

/* td_job_wait of the job master's td_job_t: deploy, start, wait. */
static int await_job(void *ud, td_job_t *job, char *err, size_t errlen) {
  (void)ud;
  const td_job_spec_t *spec = td_job_spec_of(job);
  json_t *enc = td_cluster_spec_encode(spec);
  /* the files the script named, by content: a task manager fetches those
   * it does not have */
  json_t *files = json_array(), *shipped = json_object();
  char ship_err[600] = "";
  for (int i = 0; i < spec->n_files; i++) {
    const td_job_file_t *f = &spec->files[i];
    char hex[TD_CLUSTER_HASH_HEX];
    uint64_t size;
    int hr = td_cluster_hash_file(f->path, hex, &size);
    if (hr) {
      snprintf(ship_err, sizeof ship_err, "cannot ship %s to the task managers: %s", f->path,
               td_strerror(hr));
      break;
    }
    json_array_append_new(files, json_pack("{s:s,s:s,s:s,s:I,s:s}", "kind", f->kind, "name",
                                           f->name, "hash", hex, "size", (json_int_t)size,
                                           "origin", f->origin ? f->origin : f->path));
    json_object_set_new(shipped, hex, json_string(f->path));
  }
  json_t *placement = json_array(), *peers = json_array();
  for (int g = 0; g < jmr.n_subtasks; g++) json_array_append_new(placement, json_integer(jmr.placement[g]));
  /* relative paths of the job (its arguments, the checkpoint directory)
   * mean the same in every process */
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, "/");
  pthread_mutex_lock(&jmr.mu);
  jmr.job = job;
  json_decref(jmr.shipped);
  jmr.shipped = shipped;
  if (ship_err[0]) fail_locked(ship_err);
  for (int i = 0; i < jmr.n_procs; i++) json_array_append_new(peers, json_string(jmr.procs[i].data));
  char dep[96];
  snprintf(dep, sizeof dep, "%s-%d", spec->job_id ? spec->job_id : "job", jmr.attempt);
  for (int i = 0; i < jmr.n_procs; i++) {
    int n_local = 0;
    for (int g = 0; g < jmr.n_subtasks; g++) n_local += jmr.placement[g] == i;
    json_t *m = json_pack("{s:s,s:s,s:O,s:O,s:O,s:i,s:i,s:s,s:O}", "type", "deploy", "deployment",
                          dep, "spec", enc, "placement", placement, "peers", peers, "self", i,
                          "n_local", n_local, "cwd", cwd, "files", files);
    if (ship_err[0]) { /* nothing deployed: nothing to wait for */
      json_decref(m);
      jmr.procs[i].done = 1;
    } else if (!jmr.procs[i].peer || td_cluster_send(jmr.procs[i].peer, m) != 0)
      fail_locked("cannot send the job to a task manager");
  }
  json_decref(enc);
  json_decref(files);
  json_decref(placement);
  json_decref(peers);
  if (!wait_until(all_deployed, 60000)) fail_locked("the task managers did not deploy the job within 60 s");
  if (!jmr.failure[0]) {
    jmr.started = 1;
    send_all(json_pack("{s:s}", "type", "start"));
    /* barriers the coordinator asked for before the start */
    for (int s = 0; s < jmr.n_subtasks; s++)
      if (jmr.requests[s].id) send_trigger(&jmr.requests[s]);
  }
  /* until every task manager ended its part; after a failure, the others
   * are cancelled and given 30 s */
  while (!all_done()) {
    if (jmr.failure[0]) {
      send_all(json_pack("{s:s,s:s}", "type", "cancel", "message", jmr.failure));
      if (!wait_until(all_done, 30000)) break;
    } else {
      pthread_cond_wait(&jmr.changed, &jmr.mu);
    }
  }
  int rc = jmr.failure[0] ? TD_ESCRIPT : 0;
  if (rc) snprintf(err, errlen, "%s", jmr.failure);
  jmr.job = NULL;
  while (jmr.busy) pthread_cond_wait(&jmr.changed, &jmr.mu);
  jmr.started = 0;
  pthread_mutex_unlock(&jmr.mu);
  return rc;
}

/* ---- the API ------------------------------------------------------------------ */

int td_cluster_master_configure(const char *jobmanager, const char *secret_file, const char *rest,
                                char *err, size_t errlen) {
  char host[64];
  int port;
  if (td_cluster_parse_address(jobmanager, TD_CLUSTER_PORT, host, sizeof host, &port) != 0) {
    snprintf(err, errlen, "--jobmanager needs ADDR or ADDR:PORT, not '%s'", jobmanager);
    return TD_EINVAL;
  }
  int rc = td_cluster_read_secret(secret_file, &jmr.secret, &jmr.secret_len, err, errlen);
  if (rc) return rc;
  td_net_config_t cfg = {.on_frame = on_frame, .on_closed = on_closed};
  td_cluster_net_config(&cfg, jmr.secret, jmr.secret_len);
  if ((rc = td_netx_new(&jmr.netx, &cfg, err, errlen)) != 0) return rc;
  snprintf(jmr.jm_addr, sizeof jmr.jm_addr, "%s:%d", host, port);
  snprintf(jmr.jm_host, sizeof jmr.jm_host, "%s", host);
  jmr.jm_port = port;
  snprintf(jmr.rest, sizeof jmr.rest, "%s", rest ? rest : "");
  td_net_peer_t *p;
  if ((rc = td_net_connect(td_netx_net(jmr.netx), host, port, &p, err, errlen)) != 0) return rc;
  jmr.jm = p;
  jmr.enabled = 1;
  return 0;
}

int td_cluster_master_enabled(void) { return jmr.enabled; }

int td_cluster_master_begin(td_job_spec_t *spec, char *err, size_t errlen) {
  /* slot sharing, as Flink's default group: slot k runs subtask k of
   * every task, so the job needs as many slots as its highest parallelism */
  int total = 0, n_slots = 0;
  for (int t = 0; t < spec->n_tasks; t++) {
    total += spec->parallelism[t];
    if (spec->parallelism[t] > n_slots) n_slots = spec->parallelism[t];
  }
  pthread_mutex_lock(&jmr.mu);
  jmr.attempt++;
  jmr.failure[0] = 0;
  jmr.failure_lost_peer = 0;
  /* slots: asked again every second until the job manager has enough
   * (task managers may still be registering), for up to 30 s */
  json_t *slots = NULL;
  char why[600] = "the job manager did not answer";
  for (int tries = 0; tries < 30 && !slots; tries++) {
    if (!jmr.jm) {
      /* the job manager restarted (or will): connect again */
      td_net_peer_t *p = NULL;
      pthread_mutex_unlock(&jmr.mu);
      int rc = td_net_connect(td_netx_net(jmr.netx), jmr.jm_host, jmr.jm_port, &p, why, sizeof why);
      pthread_mutex_lock(&jmr.mu);
      if (rc == 0) jmr.jm = p;
    }
    if (!jmr.jm) {
      pthread_mutex_unlock(&jmr.mu);
      sleep(1);
      pthread_mutex_lock(&jmr.mu);
      continue;
    }
    json_decref(jmr.reply);
    jmr.reply = NULL;
    td_cluster_send(jmr.jm, json_pack("{s:s,s:s,s:s,s:s,s:s,s:i}", "type", "allocate", "job",
                                      spec->run_id ? spec->run_id : spec->job_id, "name",
                                      spec->name ? spec->name : "", "script",
                                      spec->script ? spec->script : "", "rest", jmr.rest,
                                      "slots", n_slots));
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    while (!jmr.reply && jmr.jm)
      if (pthread_cond_timedwait(&jmr.changed, &jmr.mu, &until) == ETIMEDOUT) break;
    const char *e = jmr.reply ? json_string_value(json_object_get(jmr.reply, "error")) : NULL;
    if (jmr.reply && !e) slots = json_incref(json_object_get(jmr.reply, "slots"));
    if (e) snprintf(why, sizeof why, "%s", e);
    if (!slots) {
      pthread_mutex_unlock(&jmr.mu);
      sleep(1);
      pthread_mutex_lock(&jmr.mu);
    }
  }
  if (!slots || (int)json_array_size(slots) != n_slots) {
    pthread_mutex_unlock(&jmr.mu);
    json_decref(slots);
    snprintf(err, errlen, "cannot get %d slot%s for job '%s': %s", n_slots, n_slots == 1 ? "" : "s",
             spec->name ? spec->name : "", why);
    return TD_EINVAL;
  }
  /* one process index per task manager, in the order of the slots */
  free(jmr.procs);
  free(jmr.placement);
  free(jmr.requests);
  jmr.procs = calloc((size_t)total, sizeof *jmr.procs);
  jmr.placement = calloc((size_t)total, sizeof *jmr.placement);
  jmr.requests = calloc((size_t)total, sizeof *jmr.requests);
  jmr.n_procs = 0;
  jmr.n_subtasks = total;
  int rc = jmr.procs && jmr.placement && jmr.requests ? 0 : TD_ENOMEM;
  int *slot_proc = calloc((size_t)n_slots, sizeof *slot_proc);
  if (!slot_proc) rc = TD_ENOMEM;
  for (int g = 0; rc == 0 && g < n_slots; g++) {
    json_t *s = json_array_get(slots, (size_t)g);
    const char *tm = json_string_value(json_object_get(s, "tm"));
    const char *data = json_string_value(json_object_get(s, "data"));
    int k = 0;
    while (k < jmr.n_procs && strcmp(jmr.procs[k].tm, tm ? tm : "") != 0) k++;
    if (k == jmr.n_procs) {
      snprintf(jmr.procs[k].tm, sizeof jmr.procs[k].tm, "%s", tm ? tm : "?");
      snprintf(jmr.procs[k].data, sizeof jmr.procs[k].data, "%s", data ? data : "");
      jmr.n_procs++;
    }
    slot_proc[g] = k;
  }
  for (int t = 0, g = 0; rc == 0 && t < spec->n_tasks; t++)
    for (int i = 0; i < spec->parallelism[t]; i++) jmr.placement[g++] = slot_proc[i];
  free(slot_proc);
  json_decref(slots);
  pthread_mutex_unlock(&jmr.mu);
  for (int i = 0; rc == 0 && i < jmr.n_procs; i++) {
    char host[64];
    int port;
    td_net_peer_t *p = NULL;
    rc = td_cluster_parse_address(jmr.procs[i].data, 0, host, sizeof host, &port);
    if (rc == 0) rc = td_net_connect(td_netx_net(jmr.netx), host, port, &p, err, errlen);
    else snprintf(err, errlen, "task manager %s has a bad address '%s'", jmr.procs[i].tm, jmr.procs[i].data);
    pthread_mutex_lock(&jmr.mu);
    jmr.procs[i].peer = p;
    pthread_mutex_unlock(&jmr.mu);
  }
  if (rc) {
    td_cluster_master_end();
    return rc;
  }
  char line[300];
  snprintf(line, sizeof line, "job '%s' attempt %d: %d subtask%s on %d task manager%s",
           spec->name ? spec->name : "", jmr.attempt, total, total == 1 ? "" : "s", jmr.n_procs,
           jmr.n_procs == 1 ? "" : "s");
  td_log(TD_LOG_INFO, "jobmaster", NULL, line);
  td_job_cluster_t *cl = &jmr.cluster;
  memset(cl, 0, sizeof *cl);
  cl->placement = jmr.placement;
  cl->self = -1;
  cl->hooks.on_request = on_request;
  cl->hooks.on_complete = on_complete;
  cl->hooks.on_abort = on_abort;
  cl->await = await_job;
  cl->cancel = on_cancel;
  spec->cluster = cl;
  return 0;
}

void td_cluster_master_end(void) {
  pthread_mutex_lock(&jmr.mu);
  for (int i = 0; i < jmr.n_procs; i++)
    if (jmr.procs[i].peer) {
      td_net_shutdown(jmr.procs[i].peer, "the job attempt ended");
      jmr.procs[i].peer = NULL;
    }
  if (jmr.jm) td_cluster_send(jmr.jm, json_pack("{s:s}", "type", "release"));
  jmr.n_procs = 0;
  pthread_mutex_unlock(&jmr.mu);
}

/* ---- tide list --jobmanager ------------------------------------------------------ */

static json_t *list_reply;
static const char *list_expect = "list"; /* the reply's type */
static void list_frame(void *ud, td_net_peer_t *p, uint8_t type, uint8_t flags, uint32_t channel,
                       const unsigned char *payload, uint32_t len) {
  (void)ud;
  (void)p;
  (void)flags;
  const char *t;
  json_t *msg = td_cluster_parse(type, channel, payload, len, &t);
  pthread_mutex_lock(&jmr.mu);
  if (msg && strcmp(t, list_expect) == 0 && !list_reply) list_reply = json_incref(msg);
  pthread_cond_broadcast(&jmr.changed);
  pthread_mutex_unlock(&jmr.mu);
  json_decref(msg);
}

static void list_closed(void *ud, td_net_peer_t *p, const char *why) {
  (void)ud;
  (void)p;
  pthread_mutex_lock(&jmr.mu);
  snprintf(jmr.failure, sizeof jmr.failure, "%s", why);
  pthread_cond_broadcast(&jmr.changed);
  pthread_mutex_unlock(&jmr.mu);
}

/* The job manager's answer (of type expect) to request (taken), waiting
 * up to timeout_s; NULL with err (*status: the exit status, < 0 when the
 * message is printed already). */
static json_t *query(const char *cmd, const char *jobmanager, const char *secret_file,
                     json_t *uploads, json_t *request, const char *expect, int timeout_s,
                     int *status, char *err, size_t errlen) {
  char host[64];
  int port;
  *status = 2;
  list_expect = expect;
  if (td_cluster_parse_address(jobmanager, TD_CLUSTER_PORT, host, sizeof host, &port) != 0) {
    snprintf(err, errlen, "--jobmanager needs ADDR or ADDR:PORT, not '%s'", jobmanager);
    json_decref(request);
    return NULL;
  }
  unsigned char *secret;
  size_t len;
  td_net_config_t cfg = {.on_frame = list_frame, .on_closed = list_closed};
  if (td_cluster_open(cmd, secret_file, &cfg, &secret, &len) != 0) {
    snprintf(err, errlen, "cannot read the secret");
    *status = -2; /* printed */
    json_decref(request);
    return NULL;
  }
  *status = 1;
  td_net_t *net = NULL;
  td_net_peer_t *p;
  int rc = td_net_new(&net, &cfg, err, errlen);
  if (rc == 0) rc = td_net_connect(net, host, port, &p, err, errlen);
  /* files the request names (hash -> path), before it on the connection */
  const char *hash;
  json_t *path;
  char tag[64]; /* this upload's own part files, beside any other's */
  snprintf(tag, sizeof tag, "upload-%ld-%08x", (long)getpid(), (unsigned)randombytes_random());
  json_object_foreach(uploads, hash, path) {
    if (rc == 0) rc = td_cluster_send_file(p, tag, hash, json_string_value(path));
  }
  if (rc == 0) rc = td_cluster_send(p, request);
  else json_decref(request);
  json_t *reply = NULL;
  if (rc == 0) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_s;
    pthread_mutex_lock(&jmr.mu);
    while (!list_reply && !jmr.failure[0])
      if (pthread_cond_timedwait(&jmr.changed, &jmr.mu, &until) == ETIMEDOUT) break;
    reply = list_reply;
    list_reply = NULL;
    if (!reply) snprintf(err, errlen, "no answer from the job manager at %s:%d%s%.300s", host, port,
                         jmr.failure[0] ? ": " : "", jmr.failure);
    pthread_mutex_unlock(&jmr.mu);
  }
  td_net_free(net);
  td_cluster_free_secret(secret, len);
  return reply;
}

int td_cluster_find_job(const char *jobmanager, const char *secret_file, const char *id,
                        char *rest, size_t restlen) {
  char err[1024];
  int status;
  json_t *reply = query("job control", jobmanager, secret_file, NULL, json_pack("{s:s}", "type", "list"),
                         "list", 10, &status, err, sizeof err);
  if (!reply) {
    if (status > 0) fprintf(stderr, "tide: %s\n", err);
    return status > 0 ? status : 2;
  }
  json_t *jobs = json_object_get(reply, "jobs");
  int found = 0;
  for (size_t i = 0; i < json_array_size(jobs) && !found; i++) {
    json_t *j = json_array_get(jobs, i);
    const char *jid = json_string_value(json_object_get(j, "id"));
    const char *r = json_string_value(json_object_get(j, "rest"));
    if (jid && r && strcmp(jid, id) == 0) {
      snprintf(rest, restlen, "%s", r);
      found = 1;
    }
  }
  json_decref(reply);
  if (!found) fprintf(stderr, "tide: the job manager at %s runs no job %s (tide list --jobmanager "
                      "shows its jobs)\n", jobmanager, id);
  return found ? 0 : 1;
}

int td_cluster_list(const char *jobmanager, const char *secret_file) {
  char err[1600];
  int status;
  json_t *reply = query("list", jobmanager, secret_file, NULL, json_pack("{s:s}", "type", "list"), "list",
                         10, &status, err, sizeof err);
  if (!reply) {
    if (status > 0) fprintf(stderr, "tide list: %s\n", err);
    return status > 0 ? status : 2;
  }
  json_t *tms = json_object_get(reply, "taskmanagers"), *jobs = json_object_get(reply, "jobs");
  printf("TASK MANAGER                     DATA                  SLOTS  FREE  HEARTBEAT\n");
  for (size_t i = 0; i < json_array_size(tms); i++) {
    json_t *t = json_array_get(tms, i);
    printf("%-32s %-21s %5d %5d  %lld ms ago\n", json_string_value(json_object_get(t, "id")),
           json_string_value(json_object_get(t, "data")),
           (int)json_integer_value(json_object_get(t, "slots")),
           (int)json_integer_value(json_object_get(t, "free")),
           (long long)json_integer_value(json_object_get(t, "heartbeat_age_ms")));
  }
  printf("\nJOB               SLOTS  CONTROL                NAME\n");
  for (size_t i = 0; i < json_array_size(jobs); i++) {
    json_t *j = json_array_get(jobs, i);
    printf("%-17s %5d  %-22s %s (%s)\n", json_string_value(json_object_get(j, "id")),
           (int)json_integer_value(json_object_get(j, "slots")),
           json_string_value(json_object_get(j, "rest")),
           json_string_value(json_object_get(j, "name")),
           json_string_value(json_object_get(j, "script")));
  }
  json_decref(reply);
  return 0;
}

/* ---- tide run --detached ---------------------------------------------------------- */

int td_cluster_submit(const char *jobmanager, const char *secret_file, const char *script,
                      const char *const *args, int n_args, json_t *files) {
  FILE *f = fopen(script, "rb");
  if (!f) {
    fprintf(stderr, "tide: cannot read %s: %s\n", script, strerror(errno));
    return 2;
  }
  char *text = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      char *t = realloc(text, cap = cap ? 2 * cap : 65536);
      if (!t) break;
      text = t;
    }
    size_t got = fread(text + len, 1, cap - len, f);
    if (!got) break;
    len += got;
  }
  fclose(f);
  char cwd[4096], abs[8200];
  if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
  if (script[0] == '/') snprintf(abs, sizeof abs, "%s", script);
  else snprintf(abs, sizeof abs, "%s/%s", cwd, script);
  json_t *a = json_array();
  for (int i = 0; i < n_args; i++) json_array_append_new(a, json_string(args[i]));
  /* the code it loads, by content */
  json_t *list = json_array(), *uploads = json_object();
  size_t i;
  json_t *fe;
  json_array_foreach(files, i, fe) {
    const char *path = json_string_value(json_object_get(fe, "path"));
    char hex[TD_CLUSTER_HASH_HEX], origin[8200];
    uint64_t size;
    int hr = path ? td_cluster_hash_file(path, hex, &size) : -ENOENT;
    if (hr) {
      fprintf(stderr, "tide: cannot ship %s: %s\n", path ? path : "?", td_strerror(hr));
      json_decref(list);
      json_decref(uploads);
      free(text);
      return 1;
    }
    const char *rel = path;
    while (rel[0] == '.' && rel[1] == '/') rel += 2;
    if (path[0] == '/') snprintf(origin, sizeof origin, "%s", path);
    else snprintf(origin, sizeof origin, "%s/%s", cwd, rel);
    json_array_append_new(list, json_pack("{s:O,s:O,s:s,s:s}", "kind", json_object_get(fe, "kind"),
                                          "name", json_object_get(fe, "name"), "hash", hex,
                                          "origin", origin));
    json_object_set_new(uploads, hex, json_string(path));
  }
  json_t *req = json_pack("{s:s,s:s,s:s%,s:s,s:o,s:o}", "type", "submit", "script", abs,
                          "script_text", text ? text : "", len, "cwd", cwd, "args", a, "files",
                          list);
  free(text);
  char err[6000];
  int status;
  json_t *reply = req ? query("run", jobmanager, secret_file, uploads, req, "submitted", 30,
                              &status, err, sizeof err)
                      : NULL;
  json_decref(uploads);
  if (!reply) {
    if (status > 0) fprintf(stderr, "tide: %s\n", err);
    return status > 0 ? status : 2;
  }
  const char *e = json_string_value(json_object_get(reply, "error"));
  if (e) {
    fprintf(stderr, "tide: the job manager at %s could not start the job:\n%s%s", jobmanager, e,
            e[0] && e[strlen(e) - 1] == '\n' ? "" : "\n");
  } else {
    printf("%s\n", json_string_value(json_object_get(reply, "job")));
    fprintf(stderr, "tide: job %s submitted to the job manager at %s (its master's log there: %s)\n",
            json_string_value(json_object_get(reply, "job")), jobmanager,
            json_string_value(json_object_get(reply, "log")));
  }
  json_decref(reply);
  return e ? 1 : 0;
}
