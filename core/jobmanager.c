/* jobmanager.c - `tide jobmanager`: the cluster's registry of task
 * managers and their slots, and of the jobs running on them (cluster.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "error.h"
#include "log.h"

#define MAX_TMS 256

typedef struct tm_entry {
  td_net_peer_t *peer;
  char id[64], data[80];
  int slots, used;
  int64_t last_heartbeat_ms;
} tm_t;

typedef struct master {
  td_net_peer_t *peer;
  char job[40], name[200], script[400], rest[80];
  int64_t started_ms;
  int n_slots;
  char (*slot_tm)[64]; /* the task manager of each slot it holds */
} master_t;

static struct {
  pthread_mutex_t mu;
  tm_t tms[MAX_TMS];
  int n_tms;
  master_t *masters;
  int n_masters, cap_masters;
  int64_t heartbeat_interval_ms, heartbeat_timeout_ms;
  char self[80];          /* host:port, for the job masters it starts */
  char secret_file[4096]; /* absolute, for them too */
  char work_dir[4096];    /* scripts/ and logs/ of submitted jobs */
  int n_submitted;
} jm = {.mu = PTHREAD_MUTEX_INITIALIZER};

extern char **environ;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static tm_t *tm_of(td_net_peer_t *p) {
  for (int i = 0; i < jm.n_tms; i++)
    if (jm.tms[i].peer == p) return &jm.tms[i];
  return NULL;
}

static master_t *master_of(td_net_peer_t *p) {
  for (int i = 0; i < jm.n_masters; i++)
    if (jm.masters[i].peer == p) return &jm.masters[i];
  return NULL;
}

static tm_t *tm_by_id(const char *id) {
  for (int i = 0; i < jm.n_tms; i++)
    if (strcmp(jm.tms[i].id, id) == 0) return &jm.tms[i];
  return NULL;
}

/* Give back the slots master m holds (mu held). */
static void release(master_t *m) {
  for (int i = 0; i < m->n_slots; i++) {
    tm_t *t = tm_by_id(m->slot_tm[i]);
    if (t && t->used > 0) t->used--;
  }
  free(m->slot_tm);
  m->slot_tm = NULL;
  m->n_slots = 0;
}

static void on_register(td_net_peer_t *p, json_t *msg) {
  const char *id = json_string_value(json_object_get(msg, "id"));
  const char *data = json_string_value(json_object_get(msg, "data"));
  int slots = (int)json_integer_value(json_object_get(msg, "slots"));
  char line[400];
  pthread_mutex_lock(&jm.mu);
  const char *why = !id || !data || slots < 1 ? "a malformed registration"
                    : jm.n_tms == MAX_TMS     ? "too many task managers"
                    : tm_by_id(id)            ? "a task manager with this id is registered"
                                              : NULL;
  if (!why) {
    tm_t *t = &jm.tms[jm.n_tms++];
    memset(t, 0, sizeof *t);
    t->peer = p;
    snprintf(t->id, sizeof t->id, "%s", id);
    snprintf(t->data, sizeof t->data, "%s", data);
    t->slots = slots;
    t->last_heartbeat_ms = mono_ms();
  }
  int64_t interval = jm.heartbeat_interval_ms;
  pthread_mutex_unlock(&jm.mu);
  if (why) {
    snprintf(line, sizeof line, "refused a task manager from %s: %s", td_net_peer_addr(p), why);
    td_log(TD_LOG_WARN, "jobmanager", NULL, line);
    td_cluster_send(p, json_pack("{s:s,s:s}", "type", "refused", "message", why));
    return;
  }
  snprintf(line, sizeof line, "task manager %s registered: %d slot%s, data at %s", id, slots,
           slots == 1 ? "" : "s", data);
  td_log(TD_LOG_INFO, "jobmanager", NULL, line);
  td_cluster_send(p, json_pack("{s:s,s:I}", "type", "registered", "heartbeat_interval_ms",
                               (json_int_t)interval));
}

/* Pick n slots, spread evenly over the task managers (Flink's
 * cluster.evenly-spread-out-slots): each goes to the task manager with
 * the most free slots. */
static void on_allocate(td_net_peer_t *p, json_t *msg) {
  int n = (int)json_integer_value(json_object_get(msg, "slots"));
  pthread_mutex_lock(&jm.mu);
  master_t *m = master_of(p);
  if (!m) {
    if (jm.n_masters == jm.cap_masters) {
      int cap = jm.cap_masters ? 2 * jm.cap_masters : 8;
      master_t *ms = realloc(jm.masters, (size_t)cap * sizeof *ms);
      if (!ms) {
        pthread_mutex_unlock(&jm.mu);
        return;
      }
      jm.masters = ms;
      jm.cap_masters = cap;
    }
    m = &jm.masters[jm.n_masters++];
    memset(m, 0, sizeof *m);
    m->peer = p;
    m->started_ms = wall_ms();
  }
  const char *s;
  if ((s = json_string_value(json_object_get(msg, "job")))) snprintf(m->job, sizeof m->job, "%s", s);
  if ((s = json_string_value(json_object_get(msg, "name")))) snprintf(m->name, sizeof m->name, "%s", s);
  if ((s = json_string_value(json_object_get(msg, "script"))))
    snprintf(m->script, sizeof m->script, "%s", s);
  if ((s = json_string_value(json_object_get(msg, "rest")))) snprintf(m->rest, sizeof m->rest, "%s", s);
  release(m);
  int free_slots = 0;
  for (int i = 0; i < jm.n_tms; i++) free_slots += jm.tms[i].slots - jm.tms[i].used;
  json_t *reply;
  if (n < 1 || n > free_slots || !(m->slot_tm = calloc((size_t)n, sizeof *m->slot_tm))) {
    char why[300];
    snprintf(why, sizeof why, "the job needs %d slot%s and the cluster has %d free (%d task "
             "manager%s)", n, n == 1 ? "" : "s", free_slots, jm.n_tms, jm.n_tms == 1 ? "" : "s");
    reply = json_pack("{s:s,s:s}", "type", "allocation", "error", why);
  } else {
    json_t *list = json_array();
    for (int k = 0; k < n; k++) {
      tm_t *best = NULL;
      for (int i = 0; i < jm.n_tms; i++)
        if (!best || jm.tms[i].slots - jm.tms[i].used > best->slots - best->used) best = &jm.tms[i];
      if (!best) break; /* n <= free_slots: not reached */
      best->used++;
      snprintf(m->slot_tm[k], sizeof m->slot_tm[k], "%s", best->id);
      json_array_append_new(list, json_pack("{s:s,s:s}", "tm", best->id, "data", best->data));
    }
    m->n_slots = n;
    reply = json_pack("{s:s,s:o}", "type", "allocation", "slots", list);
  }
  pthread_mutex_unlock(&jm.mu);
  td_cluster_send(p, reply);
}

static void on_list(td_net_peer_t *p) {
  json_t *tms = json_array(), *jobs = json_array();
  pthread_mutex_lock(&jm.mu);
  int64_t now = mono_ms();
  for (int i = 0; i < jm.n_tms; i++)
    json_array_append_new(tms, json_pack("{s:s,s:s,s:i,s:i,s:I}", "id", jm.tms[i].id, "data",
                                         jm.tms[i].data, "slots", jm.tms[i].slots, "free",
                                         jm.tms[i].slots - jm.tms[i].used, "heartbeat_age_ms",
                                         (json_int_t)(now - jm.tms[i].last_heartbeat_ms)));
  for (int i = 0; i < jm.n_masters; i++) {
    master_t *m = &jm.masters[i];
    json_array_append_new(jobs, json_pack("{s:s,s:s,s:s,s:s,s:i,s:I}", "id", m->job, "name",
                                          m->name, "script", m->script, "rest", m->rest,
                                          "slots", m->n_slots, "started_ms",
                                          (json_int_t)m->started_ms));
  }
  pthread_mutex_unlock(&jm.mu);
  td_cluster_send(p, json_pack("{s:s,s:o,s:o}", "type", "list", "taskmanagers", tms, "jobs", jobs));
}

/* ---- submitted jobs: a job master process per job --------------------------- */

typedef struct submission {
  td_net_peer_t *client;
  json_t *msg;
  int n;
} submission_t;

static int mkdirs(const char *path) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -errno;
    *p = '/';
  }
  return mkdir(buf, 0700) != 0 && errno != EEXIST ? -errno : 0;
}

/* Write the script's text to work_dir/scripts/<content hash>/<its name>
 * (content addressed: the same text is stored once) into path. */
static int store_script(const char *name, const char *text, size_t len, char *path, size_t plen) {
  unsigned char h[16];
  char hex[33];
  crypto_generichash(h, sizeof h, (const unsigned char *)text, len, NULL, 0);
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  const char *base = strrchr(name, '/');
  base = base ? base + 1 : name;
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/scripts/%s", jm.work_dir, hex);
  int rc = mkdirs(dir);
  if (rc) return rc;
  snprintf(path, plen, "%s/%s", dir, *base ? base : "job.lua");
  char tmp[4500];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) return -errno;
  int ok = fwrite(text, 1, len, f) == len;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return -EIO;
  }
  return 0;
}

/* The manifest of a submission's shipped files (files: [{kind, name,
 * hash, origin}, ...], each stored in work_dir/files/<hash> by its "file"
 * messages) at path, as the job's master reads it (TIDE_SHIPPED: [{kind,
 * name, file, origin}, ...]). 0, or -1 with err. */
static int write_manifest(json_t *files, const char *path, char *err, size_t errlen) {
  json_t *out = json_array();
  size_t i;
  json_t *f;
  json_array_foreach(files, i, f) {
    const char *kind = json_string_value(json_object_get(f, "kind"));
    const char *name = json_string_value(json_object_get(f, "name"));
    const char *hash = json_string_value(json_object_get(f, "hash"));
    const char *origin = json_string_value(json_object_get(f, "origin"));
    char file[4400];
    if (!kind || !name || !origin || !td_cluster_is_hash(hash)) {
      snprintf(err, errlen, "a submission with a malformed file list");
      json_decref(out);
      return -1;
    }
    snprintf(file, sizeof file, "%s/files/%s", jm.work_dir, hash);
    if (access(file, R_OK) != 0) {
      snprintf(err, errlen, "%.1000s did not arrive (the job manager's log says why)", origin);
      json_decref(out);
      return -1;
    }
    json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:s}", "kind", kind, "name", name, "file",
                                         file, "origin", origin));
  }
  int rc = json_dump_file(out, path, JSON_COMPACT);
  json_decref(out);
  if (rc) snprintf(err, errlen, "cannot write %.1000s", path);
  return rc ? -1 : 0;
}

/* The job id the master's log names ("tide: job ID, control at ..."),
 * waiting up to 20 s while pid runs. 1 when found. */
static int await_job_id(const char *log, pid_t pid, char *id, size_t idlen) {
  for (int waited = 0; waited < 20000; waited += 50) {
    FILE *f = fopen(log, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
      char got[64];
      if (sscanf(line, "tide: job %63[0-9a-f], control at", got) == 1) {
        snprintf(id, idlen, "%s", got);
        fclose(f);
        return 1;
      }
    }
    if (f) fclose(f);
    if (kill(pid, 0) != 0) return 0;
    usleep(50000);
  }
  return 0;
}

/* Start the job master of a submission (its own thread: it waits for the
 * job's id) and answer the client. */
static void *submit_main(void *arg) {
  submission_t *sub = arg;
  json_t *msg = sub->msg;
  const char *script = json_string_value(json_object_get(msg, "script"));
  json_t *text = json_object_get(msg, "script_text");
  const char *cwd = json_string_value(json_object_get(msg, "cwd"));
  json_t *args = json_object_get(msg, "args");
  char path[4400], log[4400], err[4800] = "", id[64] = "";
  int rc = script && json_is_string(text) && json_is_array(args) ? 0 : TD_EINVAL;
  if (rc) snprintf(err, sizeof err, "a malformed submission");
  if (rc == 0 && (rc = store_script(script, json_string_value(text), json_string_length(text),
                                    path, sizeof path)) != 0)
    snprintf(err, sizeof err, "cannot store the script in %s: %s", jm.work_dir, strerror(-rc));
  snprintf(log, sizeof log, "%s/logs/job-%d.log", jm.work_dir, sub->n);
  char logs[4200], manifest[4400], env_shipped[4500];
  snprintf(logs, sizeof logs, "%s/logs", jm.work_dir);
  snprintf(manifest, sizeof manifest, "%s/logs/job-%d.files.json", jm.work_dir, sub->n);
  snprintf(env_shipped, sizeof env_shipped, "TIDE_SHIPPED=%s", manifest);
  if (rc == 0 && (rc = mkdirs(logs)) != 0)
    snprintf(err, sizeof err, "cannot create %s: %s", logs, strerror(-rc));
  if (rc == 0) rc = write_manifest(json_object_get(msg, "files"), manifest, err, sizeof err);
  pid_t pid = 0;
  if (rc == 0) {
    /* tide run SCRIPT <the client's options> --jobmanager SELF
     * --secret-file F -- <the job's arguments> */
    size_t n = json_array_size(args);
    char **argv = calloc(n + 8, sizeof *argv);
    char exe[4096];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (el > 0) exe[el] = 0;
    int k = 0;
    argv[k++] = el > 0 ? exe : "tide";
    argv[k++] = "run";
    argv[k++] = path;
    argv[k++] = "--jobmanager";
    argv[k++] = jm.self;
    argv[k++] = "--secret-file";
    argv[k++] = jm.secret_file;
    for (size_t i = 0; i < n; i++) argv[k++] = (char *)json_string_value(json_array_get(args, i));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (cwd) posix_spawn_file_actions_addchdir_np(&fa, cwd);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none); /* not the job manager's blocked set */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
    /* the environment, and where the shipped files' manifest is */
    size_t ne = 0;
    while (environ[ne]) ne++;
    char **envp = calloc(ne + 2, sizeof *envp);
    size_t k2 = 0;
    for (size_t i = 0; envp && i < ne; i++)
      if (strncmp(environ[i], "TIDE_SHIPPED=", 13) != 0) envp[k2++] = environ[i];
    if (envp) envp[k2] = env_shipped;
    rc = !envp ? ENOMEM
         : argv[0] == exe || el > 0 ? posix_spawn(&pid, argv[0], &fa, &at, argv, envp)
                                    : ENOENT;
    free(envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(argv);
    if (rc) snprintf(err, sizeof err, "cannot start the job's master: %s", strerror(rc));
  }
  if (rc == 0 && !await_job_id(log, pid, id, sizeof id)) {
    rc = TD_EINVAL;
    /* its first lines say why (a usage error, a script that does not load) */
    FILE *f = fopen(log, "r");
    size_t got = f ? fread(err, 1, sizeof err - 1, f) : 0;
    if (f) fclose(f);
    err[got] = 0;
    if (!got) snprintf(err, sizeof err, "the job's master ended before it started the job");
  }
  char line[5000];
  if (rc == 0) {
    snprintf(line, sizeof line, "job %s submitted from %s: master pid %ld, log %s", id,
             td_net_peer_addr(sub->client), (long)pid, log);
    td_log(TD_LOG_INFO, "jobmanager", NULL, line);
    td_cluster_send(sub->client, json_pack("{s:s,s:s,s:s}", "type", "submitted", "job", id,
                                           "log", log));
  } else {
    td_cluster_send(sub->client, json_pack("{s:s,s:s}", "type", "submitted", "error", err));
  }
  json_decref(msg);
  free(sub);
  return NULL;
}

static void on_submit(td_net_peer_t *p, json_t *msg) {
  submission_t *sub = calloc(1, sizeof *sub);
  pthread_t th;
  if (!sub) return;
  sub->client = p;
  sub->msg = json_incref(msg);
  pthread_mutex_lock(&jm.mu);
  sub->n = ++jm.n_submitted;
  pthread_mutex_unlock(&jm.mu);
  if (pthread_create(&th, NULL, submit_main, sub) != 0) {
    json_decref(sub->msg);
    free(sub);
    return;
  }
  pthread_detach(th);
}

static void on_frame(void *ud, td_net_peer_t *p, uint8_t type, uint8_t flags, uint32_t channel,
                     const unsigned char *payload, uint32_t len) {
  (void)ud;
  (void)flags;
  const char *t;
  json_t *msg = td_cluster_parse(type, channel, payload, len, &t);
  if (!msg) {
    td_net_close(p, "not a control message of the job manager's protocol");
    return;
  }
  if (strcmp(t, "register") == 0) {
    on_register(p, msg);
  } else if (strcmp(t, "heartbeat") == 0) {
    pthread_mutex_lock(&jm.mu);
    tm_t *tm = tm_of(p);
    if (tm) tm->last_heartbeat_ms = mono_ms();
    pthread_mutex_unlock(&jm.mu);
  } else if (strcmp(t, "allocate") == 0) {
    on_allocate(p, msg);
  } else if (strcmp(t, "release") == 0) {
    pthread_mutex_lock(&jm.mu);
    master_t *m = master_of(p);
    if (m) release(m);
    pthread_mutex_unlock(&jm.mu);
  } else if (strcmp(t, "list") == 0) {
    on_list(p);
  } else if (strcmp(t, "submit") == 0) {
    on_submit(p, msg);
  } else if (strcmp(t, "file") == 0) { /* a chunk of a file a submission ships */
    char dir[4200], err[700];
    snprintf(dir, sizeof dir, "%s/files", jm.work_dir);
    int rc = mkdirs(dir);
    if (rc == 0) rc = td_cluster_store_chunk(dir, msg, err, sizeof err);
    else snprintf(err, sizeof err, "cannot create %.600s: %s", dir, strerror(-rc));
    if (rc < 0) {
      char line[900];
      snprintf(line, sizeof line, "a file shipped from %s: %s", td_net_peer_addr(p), err);
      td_log(TD_LOG_WARN, "jobmanager", NULL, line);
    }
  } else {
    char line[200];
    snprintf(line, sizeof line, "an unknown message '%.60s' from %s: ignored", t, td_net_peer_addr(p));
    td_log(TD_LOG_WARN, "jobmanager", NULL, line);
  }
  json_decref(msg);
}

static void on_closed(void *ud, td_net_peer_t *p, const char *why) {
  (void)ud;
  char line[600], lost[64] = "";
  td_net_peer_t *tell[64];
  int n_tell = 0;
  pthread_mutex_lock(&jm.mu);
  tm_t *t = tm_of(p);
  if (t) {
    snprintf(lost, sizeof lost, "%s", t->id);
    /* the jobs holding its slots lose them */
    for (int i = 0; i < jm.n_masters; i++) {
      master_t *m = &jm.masters[i];
      int holds = 0;
      for (int k = 0; k < m->n_slots; k++) holds |= strcmp(m->slot_tm[k], lost) == 0;
      if (holds && n_tell < 64) tell[n_tell++] = m->peer;
    }
    *t = jm.tms[--jm.n_tms];
  }
  master_t *m = master_of(p);
  if (m) {
    release(m);
    *m = jm.masters[--jm.n_masters];
  }
  pthread_mutex_unlock(&jm.mu);
  if (lost[0]) {
    snprintf(line, sizeof line, "task manager %s lost: %s", lost, why);
    td_log(TD_LOG_WARN, "jobmanager", NULL, line);
    for (int i = 0; i < n_tell; i++)
      td_cluster_send(tell[i], json_pack("{s:s,s:s,s:s}", "type", "tm_lost", "tm", lost,
                                         "message", why));
  }
}

static const char JM_USAGE[] =
    "usage: tide jobmanager --secret-file FILE [--bind ADDR[:PORT]]\n"
    "                       [--heartbeat-interval T] [--heartbeat-timeout T]\n"
    "                       [--work-dir D]\n"
    "  --bind               address to listen on (default 127.0.0.1:6123)\n"
    "  --secret-file        the cluster secret (16+ bytes, mode 600)\n"
    "  --heartbeat-interval how often task managers report (default 1s)\n"
    "  --heartbeat-timeout  a task manager silent this long is lost (default 10s)\n"
    "  --work-dir           scripts and logs of submitted jobs (tide run --detached;\n"
    "                       default $TMPDIR/tide-jobmanager-PORT)\n";

int td_jobmanager_main(int argc, char **argv) {
  static const struct option opts[] = {{"bind", required_argument, NULL, 'b'},
                                       {"secret-file", required_argument, NULL, 's'},
                                       {"heartbeat-interval", required_argument, NULL, 'i'},
                                       {"heartbeat-timeout", required_argument, NULL, 't'},
                                       {"work-dir", required_argument, NULL, 'w'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *bind = "127.0.0.1", *secret_file = NULL, *work_dir = NULL;
  jm.heartbeat_interval_ms = 1000;
  jm.heartbeat_timeout_ms = 10000;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
    switch (c) {
    case 'b': bind = optarg; break;
    case 's': secret_file = optarg; break;
    case 'w': work_dir = optarg; break;
    case 'i':
    case 't': {
      int64_t ms;
      if (td_cluster_parse_duration(optarg, &ms) || ms <= 0) {
        fprintf(stderr, "tide jobmanager: --heartbeat-%s needs a duration such as 500ms or 10s, "
                "not '%s'\n%s", c == 'i' ? "interval" : "timeout", optarg, JM_USAGE);
        return 2;
      }
      *(c == 'i' ? &jm.heartbeat_interval_ms : &jm.heartbeat_timeout_ms) = ms;
      break;
    }
    case 'h': fputs(JM_USAGE, stdout); return 0;
    default:
      fprintf(stderr, "tide jobmanager: unknown or incomplete option '%s'\n%s", argv[optind - 1],
              JM_USAGE);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "tide jobmanager: unexpected argument '%s'\n%s", argv[optind], JM_USAGE);
    return 2;
  }
  if (!secret_file) {
    fprintf(stderr, "tide jobmanager: --secret-file is required\n%s", JM_USAGE);
    return 2;
  }
  char host[64], err[512];
  int port;
  if (td_cluster_parse_address(bind, TD_CLUSTER_PORT, host, sizeof host, &port) != 0) {
    fprintf(stderr, "tide jobmanager: --bind needs ADDR or ADDR:PORT, not '%s'\n%s", bind, JM_USAGE);
    return 2;
  }
  unsigned char *secret;
  size_t secret_len;
  td_net_config_t cfg = {.on_frame = on_frame, .on_closed = on_closed};
  if (td_cluster_open("jobmanager", secret_file, &cfg, &secret, &secret_len) != 0) return 2;
  td_net_t *net;
  int bound = 0;
  sigset_t set;
  td_cluster_block_signals(&set); /* the loop thread inherits it */
  if (td_net_new(&net, &cfg, err, sizeof err) != 0 ||
      td_net_listen(net, host, port, &bound, err, sizeof err) != 0) {
    fprintf(stderr, "tide jobmanager: %s\n", err);
    td_cluster_free_secret(secret, secret_len);
    return 1;
  }
  snprintf(jm.self, sizeof jm.self, "%s:%d", host, bound);
  if (!realpath(secret_file, jm.secret_file)) snprintf(jm.secret_file, sizeof jm.secret_file, "%s", secret_file);
  const char *tmp = getenv("TMPDIR");
  if (work_dir && work_dir[0] == '/') {
    snprintf(jm.work_dir, sizeof jm.work_dir, "%s", work_dir);
  } else if (work_dir) {
    char cwd[2048];
    snprintf(jm.work_dir, sizeof jm.work_dir, "%s/%s", getcwd(cwd, sizeof cwd) ? cwd : ".", work_dir);
  } else {
    snprintf(jm.work_dir, sizeof jm.work_dir, "%s/tide-jobmanager-%d", tmp && *tmp ? tmp : "/tmp",
             bound);
  }
  char line[200];
  snprintf(line, sizeof line, "job manager listening on %s:%d", host, bound);
  td_log(TD_LOG_INFO, "jobmanager", NULL, line);
  printf("jobmanager %s:%d\n", host, bound);
  fflush(stdout);
  struct timespec tick = {0, 200 * 1000000L};
  for (;;) {
    int sig = sigtimedwait(&set, NULL, &tick);
    if (sig == SIGINT || sig == SIGTERM) break;
    /* the job masters it started that ended */
    int st;
    for (pid_t pid; (pid = waitpid(-1, &st, WNOHANG)) > 0;) {
      char msg[160];
      snprintf(msg, sizeof msg, "the job master process %ld ended: %s %d", (long)pid,
               WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
      td_log(TD_LOG_INFO, "jobmanager", NULL, msg);
    }
    /* task managers whose heartbeats stopped are lost */
    td_net_peer_t *silent[MAX_TMS];
    int n = 0;
    pthread_mutex_lock(&jm.mu);
    int64_t now = mono_ms();
    for (int i = 0; i < jm.n_tms; i++)
      if (now - jm.tms[i].last_heartbeat_ms > jm.heartbeat_timeout_ms) silent[n++] = jm.tms[i].peer;
    pthread_mutex_unlock(&jm.mu);
    for (int i = 0; i < n; i++) td_net_shutdown(silent[i], "no heartbeat within the heartbeat timeout");
  }
  td_log(TD_LOG_INFO, "jobmanager", NULL, "job manager stopping");
  td_net_free(net);
  td_cluster_free_secret(secret, secret_len);
  for (int i = 0; i < jm.n_masters; i++) free(jm.masters[i].slot_tm);
  free(jm.masters);
  return 0;
}
