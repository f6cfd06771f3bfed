/* taskmanager.c - `tide taskmanager`: registers its slots with the job
 * manager and runs the subtasks job masters deploy to it (cluster.h). */
#include <errno.h>
#include <ftw.h>
#include <sched.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "error.h"
#include "host.h"
#include "log.h"
#include "netexchange.h"

#define MAX_INTROS 256

/* One job attempt's subtasks on this task manager. */
typedef struct deployment {
  struct deployment *next;
  char id[96];
  td_net_peer_t *master;       /* the job master's connection */
  json_t *msg;                 /* the deploy message */
  td_cluster_spec_t spec;
  int self, n_procs;
  int *placement;
  td_net_peer_t **peers;       /* per process index */
  td_job_cluster_t cluster;
  td_job_t *job;               /* while it runs (tm.mu) */
  int go, cancelled;           /* the master's start / cancel (tm.mu) */
  char cancel_reason[512];
  td_job_file_t *files;        /* the files the job ships (spec.files) */
  char **paths;                /* their copies in tm.cache */
  int n_files;
  char fetch_err[600];         /* a file that could not be fetched (tm.mu) */
  pthread_t thread;
} deployment_t;

/* A connection from another task manager, introduced for a deployment. */
typedef struct intro {
  char deployment[96];
  int index;
  td_net_peer_t *peer;
} intro_t;

static struct {
  pthread_mutex_t mu;
  pthread_cond_t changed;
  td_netx_t *netx;
  td_net_peer_t *jm;
  int jm_closed, registered, refused;
  int64_t heartbeat_interval_ms;
  deployment_t *deployments;
  intro_t intros[MAX_INTROS];
  int n_intros;
  char cache[4096];            /* shipped files, by content name */
} tm = {.mu = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};

static void logf_(td_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(td_log_level_t level, const char *fmt, ...) {
  char line[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  td_log(level, "taskmanager", NULL, line);
}

static deployment_t *by_master(td_net_peer_t *p) {
  for (deployment_t *d = tm.deployments; d; d = d->next)
    if (d->master == p) return d;
  return NULL;
}

/* ---- the participant coordinator's messages to the job master ------------- */

static void send_master(deployment_t *d, json_t *msg) { td_cluster_send(d->master, msg); }

static void on_ack(void *ud, int64_t id, int subtask, const char *inflight,
                   const td_meta_file_t *files, size_t n) {
  json_t *list = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(list, json_pack("[s,I,I]", files[i].name, (json_int_t)files[i].size,
                                          (json_int_t)files[i].crc));
  json_t *m = json_pack("{s:s,s:I,s:i,s:o}", "type", "ack", "id", (json_int_t)id, "subtask",
                        subtask, "files", list);
  if (inflight) json_object_set_new(m, "inflight", json_string(inflight));
  send_master(ud, m);
}

static void on_decline(void *ud, int64_t id, int subtask, const char *reason, int counted) {
  send_master(ud, json_pack("{s:s,s:I,s:i,s:s,s:b}", "type", "decline", "id", (json_int_t)id,
                            "subtask", subtask, "reason", reason, "counted", counted));
}

static void on_finishing(void *ud, int subtask) {
  send_master(ud, json_pack("{s:s,s:i}", "type", "finishing", "subtask", subtask));
}

static void on_finished(void *ud, int subtask, int n, const char *const *names, int ok) {
  json_t *list = json_array();
  for (int i = 0; i < n; i++) json_array_append_new(list, json_string(names[i]));
  send_master(ud, json_pack("{s:s,s:i,s:o,s:b}", "type", "finished", "subtask", subtask, "names",
                            list, "ok", ok));
}

static void on_cancel(void *ud, const char *why) {
  send_master(ud, json_pack("{s:s,s:s}", "type", "failing", "message", why));
}

/* Routes ready: tell the master, wait for its start (or a cancel). */
static int on_started(void *ud, td_job_t *job, char *err, size_t errlen) {
  deployment_t *d = ud;
  pthread_mutex_lock(&tm.mu);
  d->job = job;
  pthread_mutex_unlock(&tm.mu);
  send_master(d, json_pack("{s:s}", "type", "deployed"));
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 60;
  pthread_mutex_lock(&tm.mu);
  while (!d->go && !d->cancelled)
    if (pthread_cond_timedwait(&tm.changed, &tm.mu, &until) == ETIMEDOUT) break;
  int rc = d->go && !d->cancelled ? 0 : TD_ECANCELED;
  if (rc) {
    d->job = NULL;
    snprintf(err, errlen, "%s", d->cancelled ? d->cancel_reason : "the job master did not start the job within 60 s");
  }
  pthread_mutex_unlock(&tm.mu);
  return rc;
}

/* Connect to process j of d (its data address). */
static int connect_peer(deployment_t *d, int j, char *err, size_t errlen) {
  json_t *peers = json_object_get(d->msg, "peers");
  const char *addr = json_string_value(json_array_get(peers, (size_t)j));
  char host[64];
  int port;
  if (!addr || td_cluster_parse_address(addr, 0, host, sizeof host, &port) != 0) {
    snprintf(err, errlen, "a deploy message with a bad peer address");
    return TD_EINVAL;
  }
  int rc = td_net_connect(td_netx_net(tm.netx), host, port, &d->peers[j], err, errlen);
  if (rc == 0)
    td_cluster_send(d->peers[j], json_pack("{s:s,s:s,s:i}", "type", "peer", "deployment", d->id,
                                           "index", d->self));
  return rc;
}

/* Wait for the processes before self to introduce themselves. */
static int await_peers(deployment_t *d, char *err, size_t errlen) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 20;
  pthread_mutex_lock(&tm.mu);
  int missing;
  for (;;) {
    missing = 0;
    for (int j = 0; j < d->self; j++) {
      for (int i = 0; !d->peers[j] && i < tm.n_intros; i++)
        if (tm.intros[i].index == j && strcmp(tm.intros[i].deployment, d->id) == 0) {
          d->peers[j] = tm.intros[i].peer;
          tm.intros[i] = tm.intros[--tm.n_intros];
        }
      if (!d->peers[j]) missing++;
    }
    if (!missing || d->cancelled) break;
    if (pthread_cond_timedwait(&tm.changed, &tm.mu, &until) == ETIMEDOUT) break;
  }
  pthread_mutex_unlock(&tm.mu);
  if (missing) snprintf(err, errlen, "%d task manager%s of the job did not connect within 20 s",
                        missing, missing == 1 ? "" : "s");
  return missing ? TD_ECANCELED : 0;
}

/* The files the deploy message lists, as d->files with paths in the cache:
 * those the cache lacks are fetched from the job master (Flink's blob
 * server does this for a job's jars). 0, or a code with err. */
static int fetch_files(deployment_t *d, char *err, size_t errlen) {
  json_t *list = json_object_get(d->msg, "files");
  int n = (int)json_array_size(list);
  if (n == 0) return 0;
  d->files = calloc((size_t)n, sizeof *d->files);
  d->paths = calloc((size_t)n, sizeof *d->paths);
  if (!d->files || !d->paths) return TD_ENOMEM;
  d->n_files = n;
  for (int i = 0; i < n; i++) {
    json_t *f = json_array_get(list, (size_t)i);
    const char *kind = json_string_value(json_object_get(f, "kind"));
    const char *hash = json_string_value(json_object_get(f, "hash"));
    td_job_file_t *jf = &d->files[i];
    jf->kind = kind;
    jf->name = json_string_value(json_object_get(f, "name"));
    jf->origin = json_string_value(json_object_get(f, "origin"));
    if (!kind || (strcmp(kind, "lua") != 0 && strcmp(kind, "module") != 0) || !jf->name ||
        !td_cluster_is_hash(hash)) {
      snprintf(err, errlen, "a deploy message with a malformed file list");
      return TD_EINVAL;
    }
    size_t len = strlen(tm.cache) + TD_CLUSTER_HASH_HEX + 2;
    if (!(d->paths[i] = malloc(len))) return TD_ENOMEM;
    snprintf(d->paths[i], len, "%s/%s", tm.cache, hash);
    jf->path = d->paths[i];
    int asked = 0;
    for (int j = 0; j < i; j++) asked |= strcmp(d->paths[j], d->paths[i]) == 0;
    if (!asked && access(d->paths[i], F_OK) != 0)
      send_master(d, json_pack("{s:s,s:s,s:s}", "type", "fetch", "tag", d->id, "hash", hash));
  }
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 120;
  int rc = 0;
  pthread_mutex_lock(&tm.mu);
  for (;;) {
    int missing = 0;
    for (int i = 0; i < n; i++) missing += access(d->paths[i], F_OK) != 0;
    if (!missing) break;
    if (d->fetch_err[0] || d->cancelled) {
      snprintf(err, errlen, "%s", d->fetch_err[0] ? d->fetch_err : d->cancel_reason);
      rc = TD_ECANCELED;
      break;
    }
    if (pthread_cond_timedwait(&tm.changed, &tm.mu, &until) == ETIMEDOUT) {
      snprintf(err, errlen, "%d file%s of the job did not arrive from the job master within 120 s",
               missing, missing == 1 ? "" : "s");
      rc = TD_ECANCELED;
      break;
    }
  }
  pthread_mutex_unlock(&tm.mu);
  if (rc == 0) {
    d->spec.spec.files = d->files;
    d->spec.spec.n_files = n;
  }
  return rc;
}

static void *deployment_main(void *arg) {
  deployment_t *d = arg;
  char err[4096] = "";
  /* the job master's working directory, for this thread and the subtask
   * threads it starts (they share its file system context; the process's
   * other threads keep theirs): the job's relative paths mean the same
   * here as there, on a shared file system */
  const char *cwd = json_string_value(json_object_get(d->msg, "cwd"));
  if (cwd && (unshare(CLONE_FS) != 0 || chdir(cwd) != 0))
    logf_(TD_LOG_WARN, "deployment %s: cannot work in the job master's directory %s (%s): relative "
          "paths of the job resolve against this task manager's", d->id, cwd, strerror(errno));
  int rc = td_cluster_spec_decode(json_object_get(d->msg, "spec"), &d->spec, err, sizeof err);
  json_t *pl = json_object_get(d->msg, "placement");
  int total = 0;
  for (int t = 0; rc == 0 && t < d->spec.spec.n_tasks; t++) total += d->spec.spec.parallelism[t];
  if (rc == 0 && (int)json_array_size(pl) != total) {
    snprintf(err, sizeof err, "a deploy message whose placement does not match its job");
    rc = TD_EINVAL;
  }
  if (rc == 0) {
    d->placement = calloc((size_t)total, sizeof *d->placement);
    d->peers = calloc((size_t)d->n_procs, sizeof *d->peers);
    if (!d->placement || !d->peers) rc = TD_ENOMEM;
    for (int g = 0; rc == 0 && g < total; g++) {
      d->placement[g] = (int)json_integer_value(json_array_get(pl, (size_t)g));
      if (d->placement[g] < 0 || d->placement[g] >= d->n_procs) rc = TD_EINVAL;
    }
    if (rc) snprintf(err, sizeof err, "a deploy message with a bad placement");
  }
  if (rc == 0) rc = fetch_files(d, err, sizeof err);
  for (int j = d->self + 1; rc == 0 && j < d->n_procs; j++) rc = connect_peer(d, j, err, sizeof err);
  if (rc == 0) rc = await_peers(d, err, sizeof err);
  td_job_t *job = NULL;
  if (rc == 0) {
    td_job_cluster_t *cl = &d->cluster;
    cl->placement = d->placement;
    cl->self = d->self;
    cl->netx = tm.netx;
    cl->peers = d->peers;
    cl->hooks.on_ack = on_ack;
    cl->hooks.on_decline = on_decline;
    cl->hooks.on_finishing = on_finishing;
    cl->hooks.on_finished = on_finished;
    cl->hooks.remote_ud = d;
    cl->started = on_started;
    cl->cancel = on_cancel;
    cl->ud = d;
    d->spec.spec.cluster = cl;
    logf_(TD_LOG_INFO, "deployment %s: running %d subtask%s of job '%s'", d->id,
          (int)json_integer_value(json_object_get(d->msg, "n_local")),
          json_integer_value(json_object_get(d->msg, "n_local")) == 1 ? "" : "s",
          d->spec.spec.name ? d->spec.spec.name : "?");
    rc = td_job_start(&job, &d->spec.spec, td_host_subtask_body, err, sizeof err);
  }
  if (rc == 0) {
    rc = td_job_wait(job, err, sizeof err);
    pthread_mutex_lock(&tm.mu);
    d->job = NULL;
    pthread_mutex_unlock(&tm.mu);
    td_job_free(job);
  }
  fflush(stdout);
  logf_(rc ? TD_LOG_WARN : TD_LOG_INFO, "deployment %s %s%s%s", d->id, rc ? "failed" : "finished",
        rc ? ": " : "", rc ? err : "");
  send_master(d, json_pack("{s:s,s:b,s:s}", "type", "done", "ok", rc == 0, "message", err));
  /* the routes go with the job's gates; the connections with the attempt */
  for (int j = 0; d->peers && j < d->n_procs; j++)
    if (d->peers[j]) {
      td_netx_forget(tm.netx, d->peers[j]);
      td_net_shutdown(d->peers[j], "the deployment ended");
    }
  pthread_mutex_lock(&tm.mu);
  for (deployment_t **pp = &tm.deployments; *pp; pp = &(*pp)->next)
    if (*pp == d) {
      *pp = d->next;
      break;
    }
  pthread_mutex_unlock(&tm.mu);
  td_cluster_spec_free(&d->spec);
  json_decref(d->msg);
  for (int i = 0; d->paths && i < d->n_files; i++) free(d->paths[i]);
  free(d->paths);
  free(d->files);
  free(d->placement);
  free(d->peers);
  free(d);
  return NULL;
}

static void on_deploy(td_net_peer_t *p, json_t *msg) {
  deployment_t *d = calloc(1, sizeof *d);
  const char *id = json_string_value(json_object_get(msg, "deployment"));
  if (!d || !id) {
    free(d);
    td_cluster_send(p, json_pack("{s:s,s:b,s:s}", "type", "done", "ok", 0, "message",
                                 "a malformed deploy message"));
    return;
  }
  snprintf(d->id, sizeof d->id, "%s", id);
  d->master = p;
  d->msg = json_incref(msg);
  d->self = (int)json_integer_value(json_object_get(msg, "self"));
  d->n_procs = (int)json_array_size(json_object_get(msg, "peers"));
  if (d->self < 0 || d->self >= d->n_procs) d->n_procs = 0;
  pthread_mutex_lock(&tm.mu);
  d->next = tm.deployments;
  tm.deployments = d;
  pthread_mutex_unlock(&tm.mu);
  if (pthread_create(&d->thread, NULL, deployment_main, d) != 0) {
    td_cluster_send(p, json_pack("{s:s,s:b,s:s}", "type", "done", "ok", 0, "message",
                                 "cannot start a thread"));
    return;
  }
  pthread_detach(d->thread);
}

/* A message of the job master for deployment d (tm.mu held). */
static void on_master_message(deployment_t *d, const char *t, json_t *msg) {
  td_coord_t *c = d->job ? td_job_coordinator(d->job) : NULL;
  int64_t id = (int64_t)json_integer_value(json_object_get(msg, "id"));
  int kind = (int)json_integer_value(json_object_get(msg, "kind"));
  int stop = (int)json_integer_value(json_object_get(msg, "stop"));
  if (strcmp(t, "start") == 0) {
    d->go = 1;
    pthread_cond_broadcast(&tm.changed);
  } else if (strcmp(t, "file") == 0) {
    char why[600];
    int rc = td_cluster_store_chunk(tm.cache, msg, why, sizeof why);
    if (rc < 0 && !d->fetch_err[0]) snprintf(d->fetch_err, sizeof d->fetch_err, "%s", why);
    if (rc != 0) pthread_cond_broadcast(&tm.changed);
  } else if (strcmp(t, "cancel") == 0) {
    const char *why = json_string_value(json_object_get(msg, "message"));
    d->cancelled = 1;
    snprintf(d->cancel_reason, sizeof d->cancel_reason, "%s", why ? why : "cancelled by the job master");
    pthread_cond_broadcast(&tm.changed);
    if (d->job) td_job_fail(d->job, d->cancel_reason);
  } else if (c && strcmp(t, "trigger") == 0) {
    td_coord_remote_trigger(c, id, kind, stop, json_string_value(json_object_get(msg, "path")));
  } else if (c && strcmp(t, "complete") == 0) {
    td_coord_remote_complete(c, id, kind, stop, json_is_true(json_object_get(msg, "final")));
  } else if (c && strcmp(t, "abort") == 0) {
    td_coord_remote_abort(c, id, "aborted by the job master");
  }
}

static void on_frame(void *ud, td_net_peer_t *p, uint8_t type, uint8_t flags, uint32_t channel,
                     const unsigned char *payload, uint32_t len) {
  (void)ud;
  (void)flags;
  const char *t;
  json_t *msg = td_cluster_parse(type, channel, payload, len, &t);
  if (!msg) {
    td_net_close(p, "not a control message");
    return;
  }
  if (strcmp(t, "registered") == 0) {
    pthread_mutex_lock(&tm.mu);
    tm.registered = 1;
    int64_t iv = (int64_t)json_integer_value(json_object_get(msg, "heartbeat_interval_ms"));
    if (iv > 0) tm.heartbeat_interval_ms = iv;
    pthread_cond_broadcast(&tm.changed);
    pthread_mutex_unlock(&tm.mu);
  } else if (strcmp(t, "refused") == 0) {
    logf_(TD_LOG_ERROR, "the job manager refused this task manager: %s",
          json_string_value(json_object_get(msg, "message")));
    pthread_mutex_lock(&tm.mu);
    tm.refused = 1;
    pthread_cond_broadcast(&tm.changed);
    pthread_mutex_unlock(&tm.mu);
  } else if (strcmp(t, "deploy") == 0) {
    on_deploy(p, msg);
  } else if (strcmp(t, "peer") == 0) {
    const char *dep = json_string_value(json_object_get(msg, "deployment"));
    pthread_mutex_lock(&tm.mu);
    if (dep && tm.n_intros < MAX_INTROS) {
      intro_t *in = &tm.intros[tm.n_intros++];
      snprintf(in->deployment, sizeof in->deployment, "%s", dep);
      in->index = (int)json_integer_value(json_object_get(msg, "index"));
      in->peer = p;
    }
    pthread_cond_broadcast(&tm.changed);
    pthread_mutex_unlock(&tm.mu);
  } else {
    pthread_mutex_lock(&tm.mu);
    deployment_t *d = by_master(p);
    if (d) on_master_message(d, t, msg);
    pthread_mutex_unlock(&tm.mu);
    if (!d) logf_(TD_LOG_WARN, "a '%.60s' message from %s, which runs no job here: ignored", t,
                  td_net_peer_addr(p));
  }
  json_decref(msg);
}

static void on_closed(void *ud, td_net_peer_t *p, const char *why) {
  (void)ud;
  pthread_mutex_lock(&tm.mu);
  if (p == tm.jm) {
    tm.jm_closed = 1;
    tm.registered = 0;
    pthread_cond_broadcast(&tm.changed);
  }
  for (int i = 0; i < tm.n_intros; i++)
    if (tm.intros[i].peer == p) tm.intros[i--] = tm.intros[--tm.n_intros];
  for (deployment_t *d = tm.deployments; d; d = d->next) {
    /* the job master gone, or another task manager before every channel
     * between them ended (a task manager that finished its part closes
     * its connections) */
    int ours = d->master == p;
    for (int j = 0; !ours && d->peers && j < d->n_procs; j++)
      ours = d->peers[j] == p && td_netx_open_routes(tm.netx, p) > 0;
    if (!ours || d->cancelled) continue;
    char reason[400];
    /* (the job master tells "the task manager at" apart: jobmaster.c,
     * fail_locked) */
    snprintf(reason, sizeof reason, "lost the connection to %s %s: %s",
             d->master == p ? "the job master at" : "the task manager at", td_net_peer_addr(p), why);
    if (d->job) td_job_fail(d->job, reason);
    if (d->master == p) {
      d->cancelled = 1;
      snprintf(d->cancel_reason, sizeof d->cancel_reason, "%s", reason);
    }
    pthread_cond_broadcast(&tm.changed);
  }
  pthread_mutex_unlock(&tm.mu);
}

static const char TM_USAGE[] =
    "usage: tide taskmanager --jobmanager ADDR[:PORT] --secret-file FILE\n"
    "                        [--slots N] [--bind ADDR[:PORT]] [--work-dir DIR]\n"
    "  --jobmanager   the job manager to register with\n"
    "  --secret-file  the cluster secret (16+ bytes, mode 600)\n"
    "  --slots        subtasks of a job this task manager runs at most (default 1)\n"
    "  --bind         address for the network shuffle (default 127.0.0.1, any port)\n"
    "  --work-dir     where the files jobs ship are kept, by content (default: a new\n"
    "                 directory under $TMPDIR or /tmp, removed when it stops)\n";

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  (void)(flag == FTW_DP ? rmdir(path) : unlink(path));
  return 0;
}

/* tm.cache: work_dir/files (created), or a new temporary directory. */
static int open_cache(const char *work_dir, char *err, size_t errlen) {
  if (work_dir) {
    snprintf(tm.cache, sizeof tm.cache, "%s/files", work_dir);
    if ((mkdir(work_dir, 0700) != 0 && errno != EEXIST) ||
        (mkdir(tm.cache, 0700) != 0 && errno != EEXIST)) {
      snprintf(err, errlen, "cannot create %.400s: %s", tm.cache, strerror(errno));
      return -1;
    }
    return 0;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(tm.cache, sizeof tm.cache, "%s/tide-taskmanager-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(tm.cache)) {
    snprintf(err, errlen, "cannot create a directory in %.400s: %s", tmp && *tmp ? tmp : "/tmp",
             strerror(errno));
    return -1;
  }
  return 0;
}

/* Connect to the job manager and register (tm.jm); 0 or a code. */
static int register_with(const char *host, int port, int slots, const char *id, const char *data,
                         char *err, size_t errlen) {
  td_net_peer_t *p;
  int rc = td_net_connect(td_netx_net(tm.netx), host, port, &p, err, errlen);
  if (rc) return rc;
  pthread_mutex_lock(&tm.mu);
  tm.jm = p;
  tm.jm_closed = 0;
  pthread_mutex_unlock(&tm.mu);
  return td_cluster_send(p, json_pack("{s:s,s:s,s:i,s:s}", "type", "register", "id", id, "slots",
                                      slots, "data", data));
}

int td_taskmanager_main(int argc, char **argv) {
  static const struct option opts[] = {{"jobmanager", required_argument, NULL, 'j'},
                                       {"secret-file", required_argument, NULL, 's'},
                                       {"slots", required_argument, NULL, 'n'},
                                       {"bind", required_argument, NULL, 'b'},
                                       {"work-dir", required_argument, NULL, 'w'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *jobmanager = NULL, *secret_file = NULL, *bind = "127.0.0.1", *work_dir = NULL;
  int slots = 1, c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
    switch (c) {
    case 'j': jobmanager = optarg; break;
    case 's': secret_file = optarg; break;
    case 'b': bind = optarg; break;
    case 'w': work_dir = optarg; break;
    case 'n': {
      char *end;
      long v = strtol(optarg, &end, 10);
      if (*end || end == optarg || v < 1 || v > 1024) {
        fprintf(stderr, "tide taskmanager: --slots needs a whole number from 1 to 1024, not '%s'\n%s",
                optarg, TM_USAGE);
        return 2;
      }
      slots = (int)v;
      break;
    }
    case 'h': fputs(TM_USAGE, stdout); return 0;
    default:
      fprintf(stderr, "tide taskmanager: unknown or incomplete option '%s'\n%s", argv[optind - 1],
              TM_USAGE);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "tide taskmanager: unexpected argument '%s'\n%s", argv[optind], TM_USAGE);
    return 2;
  }
  if (!jobmanager || !secret_file) {
    fprintf(stderr, "tide taskmanager: --jobmanager and --secret-file are required\n%s", TM_USAGE);
    return 2;
  }
  char jhost[64], bhost[64], err[512];
  int jport, bport;
  if (td_cluster_parse_address(jobmanager, TD_CLUSTER_PORT, jhost, sizeof jhost, &jport) != 0 ||
      td_cluster_parse_address(bind, 0, bhost, sizeof bhost, &bport) != 0) {
    fprintf(stderr, "tide taskmanager: addresses are ADDR or ADDR:PORT\n%s", TM_USAGE);
    return 2;
  }
  unsigned char *secret;
  size_t secret_len;
  td_net_config_t cfg = {.on_frame = on_frame, .on_closed = on_closed};
  if (td_cluster_open("taskmanager", secret_file, &cfg, &secret, &secret_len) != 0) return 2;
  if (open_cache(work_dir, err, sizeof err) != 0) {
    fprintf(stderr, "tide taskmanager: %s\n", err);
    td_cluster_free_secret(secret, secret_len);
    return 1;
  }
  sigset_t set;
  td_cluster_block_signals(&set); /* every thread inherits it */
  tm.heartbeat_interval_ms = 1000;
  int bound = 0;
  if (td_netx_new(&tm.netx, &cfg, err, sizeof err) != 0 ||
      td_net_listen(td_netx_net(tm.netx), bhost, bport, &bound, err, sizeof err) != 0) {
    fprintf(stderr, "tide taskmanager: %s\n", err);
    td_netx_free(tm.netx);
    td_cluster_free_secret(secret, secret_len);
    return 1;
  }
  char data[80], id[64], host[32] = "host";
  snprintf(data, sizeof data, "%s:%d", bhost, bound);
  gethostname(host, sizeof host - 1);
  snprintf(id, sizeof id, "%s-%ld-%d", host, (long)getpid(), bound);
  logf_(TD_LOG_INFO, "task manager %s: %d slot%s, network shuffle at %s, job manager %s:%d", id,
        slots, slots == 1 ? "" : "s", data, jhost, jport);
  int status = 0;
  int64_t since_beat = 0, retry_ms = 0;
  int warned = 0;
  struct timespec tick = {0, 100 * 1000000L};
  for (;;) {
    int sig = sigtimedwait(&set, NULL, &tick);
    if (sig == SIGINT || sig == SIGTERM) break;
    pthread_mutex_lock(&tm.mu);
    int refused = tm.refused, connected = tm.jm && !tm.jm_closed, registered = tm.registered;
    int64_t interval = tm.heartbeat_interval_ms;
    pthread_mutex_unlock(&tm.mu);
    if (refused) {
      status = 1;
      break;
    }
    if (!connected) {
      /* (re)connect: the job manager may start later or restart */
      retry_ms -= 100;
      if (retry_ms > 0) continue;
      retry_ms = 1000;
      if (register_with(jhost, jport, slots, id, data, err, sizeof err) != 0) {
        if (!warned) logf_(TD_LOG_WARN, "%s (retrying every second)", err);
        warned = 1;
      } else {
        warned = 0;
      }
      continue;
    }
    since_beat += 100;
    if (registered && since_beat >= interval) {
      since_beat = 0;
      td_cluster_send(tm.jm, json_pack("{s:s}", "type", "heartbeat"));
    }
  }
  logf_(TD_LOG_INFO, "task manager %s stopping", id);
  pthread_mutex_lock(&tm.mu);
  for (deployment_t *d = tm.deployments; d; d = d->next)
    if (d->job) td_job_fail(d->job, "the task manager is stopping");
  int left = 0;
  for (int waited = 0; waited < 100; waited++) {
    left = tm.deployments != NULL;
    if (!left) break;
    pthread_mutex_unlock(&tm.mu);
    usleep(50000);
    pthread_mutex_lock(&tm.mu);
  }
  pthread_mutex_unlock(&tm.mu);
  if (!left) td_netx_free(tm.netx);
  if (!work_dir) nftw(tm.cache, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  td_cluster_free_secret(secret, secret_len);
  return status;
}
