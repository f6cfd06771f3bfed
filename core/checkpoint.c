/* checkpoint.c - the checkpoint coordinator (see checkpoint.h). */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "notify.h"
#include "shared.h"
#include "snapshot.h"

#define TICK_MS 5 /* the thread's poll period for children and timers */

typedef struct part {
  pid_t pid;               /* the snapshot child, 0 when none */
  int err_fd;              /* the child's message pipe, -1 when none */
  unsigned char started;   /* td_coord_snapshot_started came */
  unsigned char child_done;
  unsigned char expect_inflight, inflight_done;
  unsigned char acked, finished; /* finished: acked by final-state links */
  td_meta_file_t *files;   /* a remote subtask's acknowledged file list */
  size_t n_files;
} part_t;

typedef struct pending {
  int64_t id;
  int kind;                /* TD_CKPT_CHECKPOINT or TD_CKPT_SAVEPOINT */
  int stop;                /* TD_STOP_* (savepoints) */
  char *path;              /* a savepoint's directory */
  int64_t start_ms;
  int after_finish;        /* a subtask had finished at the trigger */
  int acked;               /* parts acked */
  int failed;              /* abort at the next tick */
  int counted;             /* a failure (I/O, timeout), not a decline */
  int fail_subtask;        /* the subtask whose part failed (participants) */
  char reason[256];
  part_t *parts;
  struct pending *next;    /* ascending ids */
} pending_t;

typedef struct inflight {
  int64_t id;
  int subtask, n;
  char *name;
  uint32_t *tags;
  td_wbuf_t *bufs;
  struct inflight *next;
} inflight_t;

struct td_coord {
  char *dir;
  td_ckpt_config_t cfg;
  void *job_info;
  int n;
  unsigned char *is_source;
  _Atomic int64_t *requested;
  pthread_mutex_t mu;
  pthread_cond_t waiters, wake;
  pthread_t thread;
  int running, stop, stopped;
  pending_t *pending;
  inflight_t *inflight;
  int64_t next_id, completed, last_trigger_ms, last_complete_ms;
  int final_done, final_failed, n_finished;
  char error[512];            /* why the final checkpoint failed */
  char *job_name;
  char **expected;            /* per subtask: '\n'-separated state files */
  int consecutive_failures;   /* checkpoint failures since the last completion */
  int job_failed;             /* cfg.fail was called */
  unsigned char *finished;
  /* finishing: taking its final state (td_coord_finishing), which may
   * upload shared files no _metadata or finished/ companion lists yet */
  unsigned char *finishing;
  int n_finishing;
  char (*inflight_names)[64];   /* per subtask, from td_coord_inflight */
  char ***finished_names;
  int *finished_n;
  td_coord_stats_t stats;
  td_coord_duration_t *durations; /* periodic checkpoints */
  size_t n_durations, cap_durations;
  char *job_id;                /* in savepoint directory names */
  int stopping;                /* a stop savepoint completed */
  int64_t stop_pending;        /* a stop savepoint is pending: its id */
  td_coord_record_t *history;  /* ring of TD_COORD_HISTORY entries */
  int64_t n_history;           /* entries ever added */
  /* per history entry: its subtasks' figures (n each) and the trigger's
   * monotonic time, us */
  td_coord_subtask_stats_t *hist_sub;
  int64_t *hist_trigger_us;
  unsigned char *local;        /* a participant's local subtasks, or NULL */
};

/* A participant of a job whose coordinator runs elsewhere (cluster mode). */
static int participant(const td_coord_t *c) { return c->local != NULL; }

/* Subtask s runs in this process. */
static int is_local(const td_coord_t *c, int s) { return !c->local || c->local[s]; }

static void logf_(td_coord_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void logf_(td_coord_t *c, const char *fmt, ...) {
  if (!c->cfg.log) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  c->cfg.log(c->cfg.log_ud, line);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pending_t *find(td_coord_t *c, int64_t id);

/* The directory of checkpoint or savepoint id (lock held). */
static char *dir_of(const td_coord_t *c, int64_t id, char *buf, size_t len) {
  for (pending_t *p = c->pending; p; p = p->next)
    if (p->id == id && p->path) {
      snprintf(buf, len, "%s", p->path);
      return buf;
    }
  if (!c->dir) snprintf(buf, len, "%s", "");
  else snprintf(buf, len, "%s/chk-%" PRId64, c->dir, id);
  return buf;
}

char *td_coord_chk_dir(const td_coord_t *c, int64_t id, char *buf, size_t len) {
  td_coord_t *m = (td_coord_t *)c;
  pthread_mutex_lock(&m->mu);
  dir_of(c, id, buf, len);
  pthread_mutex_unlock(&m->mu);
  return buf;
}

/* ---- history ---------------------------------------------------------------- */

static td_coord_record_t *hist_find(td_coord_t *c, int64_t id) {
  int64_t n = c->n_history < TD_COORD_HISTORY ? c->n_history : TD_COORD_HISTORY;
  for (int64_t i = 0; i < n; i++) {
    td_coord_record_t *r = &c->history[(c->n_history - 1 - i) % TD_COORD_HISTORY];
    if (r->id == id) return r;
  }
  return NULL;
}

/* The subtask figures of history entry r (n of them). */
static td_coord_subtask_stats_t *hist_subs(td_coord_t *c, const td_coord_record_t *r) {
  return c->hist_sub + (r - c->history) * c->n;
}

static void hist_add(td_coord_t *c, const pending_t *p, const char *path, int final) {
  td_coord_record_t *r = &c->history[c->n_history++ % TD_COORD_HISTORY];
  memset(r, 0, sizeof *r);
  memset(hist_subs(c, r), 0, (size_t)c->n * sizeof *c->hist_sub);
  c->hist_trigger_us[r - c->history] = mono_us();
  r->id = p->id;
  r->kind = p->kind;
  r->stop = p->stop;
  r->final = final;
  r->status = TD_CKPT_IN_PROGRESS;
  r->trigger_ms = wall_ms();
  snprintf(r->path, sizeof r->path, "%s", path);
}

/* sub_size (n entries, or NULL): the bytes of each subtask's files */
static void hist_done(td_coord_t *c, int64_t id, int status, uint64_t size,
                      const uint64_t *sub_size, const char *why) {
  td_coord_record_t *r = hist_find(c, id);
  if (!r || r->status != TD_CKPT_IN_PROGRESS) return;
  r->status = status;
  r->size = size;
  for (int s = 0; sub_size && s < c->n; s++) hist_subs(c, r)[s].size = sub_size[s];
  r->duration_ms = wall_ms() - r->trigger_ms;
  if (why) snprintf(r->reason, sizeof r->reason, "%s", why);
  pthread_cond_broadcast(&c->waiters);
}

char *td_coord_finished_dir(const td_coord_t *c, char *buf, size_t len) {
  if (!c->dir) snprintf(buf, len, "%s", "");
  else snprintf(buf, len, "%s/finished", c->dir);
  return buf;
}

/* ---- file system ---------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  if (flag == FTW_DP) rmdir(path);
  else unlink(path);
  return 0;
}

/* rm -rf path (errors ignored: a leftover is removed by a later sweep). */
/* Remove a directory tree. A checkpoint's _metadata goes first: a removal
 * cut short (the process killed) leaves a checkpoint that does not exist,
 * never a completed one with files missing. */
static void remove_tree(const char *path) {
  char meta[4400];
  snprintf(meta, sizeof meta, "%s/_metadata", path);
  if (unlink(meta) == 0) {
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)fsync(dfd);
      close(dfd);
    }
  }
  nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int mkdir_p(const char *path) {
  char buf[4096];
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof buf) return -ENAMETOOLONG;
  memcpy(buf, path, len + 1);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == 0) {
      char ch = *p;
      *p = 0;
      if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -errno;
      *p = ch;
      if (ch == 0) break;
    }
  }
  return 0;
}

/* ---- lifecycle -------------------------------------------------------------- */

int td_coord_new(td_coord_t **out, const td_ckpt_config_t *cfg, int n_subtasks,
                 const unsigned char *is_source, char *err, size_t errlen) {
  *out = NULL;
  if (!cfg || n_subtasks < 1 || cfg->max_concurrent < 1 || cfg->retained < 1 ||
      cfg->first_id < 1 || cfg->timeout_ms <= 0 || cfg->min_pause_ms < 0) {
    snprintf(err, errlen, "checkpoint: bad configuration");
    return TD_EINVAL;
  }
  td_coord_t *c = calloc(1, sizeof *c);
  if (!c) return TD_ENOMEM;
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->waiters, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->wake, &ca);
  pthread_condattr_destroy(&ca);
  c->cfg = *cfg;
  c->n = n_subtasks;
  c->is_source = malloc((size_t)n_subtasks);
  c->finished = calloc((size_t)n_subtasks, 1);
  c->finishing = calloc((size_t)n_subtasks, 1);
  c->finished_names = calloc((size_t)n_subtasks, sizeof(char **));
  c->finished_n = calloc((size_t)n_subtasks, sizeof(int));
  c->inflight_names = calloc((size_t)n_subtasks, sizeof *c->inflight_names);
  c->requested = calloc((size_t)n_subtasks, sizeof *c->requested);
  c->job_info = malloc(cfg->job_info_len ? cfg->job_info_len : 1);
  c->dir = cfg->dir ? strdup(cfg->dir) : NULL;
  c->job_name = strdup(cfg->job_name ? cfg->job_name : "");
  c->job_id = strdup(cfg->job_id ? cfg->job_id : "job");
  c->history = calloc(TD_COORD_HISTORY, sizeof *c->history);
  c->hist_sub = calloc((size_t)TD_COORD_HISTORY * (size_t)(n_subtasks ? n_subtasks : 1),
                       sizeof *c->hist_sub);
  c->hist_trigger_us = calloc(TD_COORD_HISTORY, sizeof *c->hist_trigger_us);
  if (cfg->local && (c->local = malloc((size_t)n_subtasks)))
    memcpy(c->local, cfg->local, (size_t)n_subtasks);
  int expected_ok = !cfg->local || c->local;
  if (cfg->expected) {
    c->expected = calloc((size_t)n_subtasks, sizeof *c->expected);
    for (int i = 0; c->expected && i < n_subtasks; i++)
      if (!(c->expected[i] = strdup(cfg->expected[i] ? cfg->expected[i] : ""))) expected_ok = 0;
    if (!c->expected) expected_ok = 0;
  }
  if (!c->is_source || !c->finished || !c->finishing || !c->finished_names || !c->finished_n ||
      !c->inflight_names ||
      !c->requested || !c->job_info || (cfg->dir && !c->dir) || !c->job_name || !expected_ok ||
      !c->job_id || !c->history || !c->hist_sub || !c->hist_trigger_us) {
    td_coord_free(c);
    return TD_ENOMEM;
  }
  memcpy(c->is_source, is_source, (size_t)n_subtasks);
  if (cfg->job_info_len) memcpy(c->job_info, cfg->job_info, cfg->job_info_len);
  c->cfg.dir = c->dir;
  c->cfg.job_info = c->job_info;
  c->cfg.job_name = c->job_name;
  c->cfg.job_id = c->job_id;
  c->cfg.expected = NULL; /* c->expected is the copy */
  c->cfg.local = c->local;
  for (int i = 0; i < n_subtasks; i++) atomic_init(&c->requested[i], 0);
  c->next_id = cfg->first_id;
  c->last_trigger_ms = c->last_complete_ms = mono_ms();
  if (c->dir) {
    char fin[4200];
    int rc = mkdir_p(c->dir);
    if (rc == 0 && !participant(c)) { /* the job's coordinator clears it */
      /* final states of an earlier run are stale */
      td_coord_finished_dir(c, fin, sizeof fin);
      remove_tree(fin);
      rc = mkdir(fin, 0777) == 0 ? 0 : -errno;
    }
    if (rc) {
      snprintf(err, errlen, "cannot create checkpoint directory '%s': %s", c->dir,
               strerror(-rc));
      td_coord_free(c);
      return rc;
    }
  }
  *out = c;
  return 0;
}

static void *coord_main(void *arg);

int td_coord_start(td_coord_t *c) {
  if (pthread_create(&c->thread, NULL, coord_main, c) != 0) return TD_ENOMEM;
  c->running = 1;
  return 0;
}

static void close_err_fd(part_t *pt) {
  if (pt->err_fd >= 0) close(pt->err_fd);
  pt->err_fd = -1;
}

static void free_files(td_meta_file_t *files, size_t n) {
  for (size_t i = 0; i < n; i++) free(files[i].name);
  free(files);
}

static void free_pending(pending_t *p, int n) {
  for (int s = 0; p->parts && s < n; s++) {
    close_err_fd(&p->parts[s]);
    free_files(p->parts[s].files, p->parts[s].n_files);
  }
  free(p->parts);
  free(p->path);
  free(p);
}

static void free_inflight(inflight_t *f) {
  for (int i = 0; i < f->n; i++) td_wbuf_destroy(&f->bufs[i]);
  free(f->bufs);
  free(f->tags);
  free(f->name);
  free(f);
}

/* Take p out of the pending list and free it. */
static void unlink_pending(td_coord_t *c, pending_t *p) {
  pending_t **pp = &c->pending;
  while (*pp && *pp != p) pp = &(*pp)->next;
  if (*pp) *pp = p->next;
  free_pending(p, c->n);
}

/* SIGKILL snapshot process pid and reap it. */
static void kill_child(pid_t pid) {
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
}

/* Kill and reap the children of p, remove its directory, unlink it. */
static void abort_locked(td_coord_t *c, pending_t *p, const char *why) {
  for (int s = 0; s < c->n; s++) {
    part_t *pt = &p->parts[s];
    if (pt->pid > 0 && !pt->child_done) {
      kill_child(pt->pid);
      pt->child_done = 1;
    }
  }
  if (c->dir && !participant(c)) {
    char d[4200];
    remove_tree(dir_of(c, p->id, d, sizeof d));
  }
  if (c->cfg.on_abort && !participant(c)) c->cfg.on_abort(c->cfg.remote_ud, p->id);
  hist_done(c, p->id, TD_CKPT_FAILED, 0, NULL, why);
  if (c->stop_pending == p->id) c->stop_pending = 0;
  unlink_pending(c, p);
  c->stats.aborted++;
}

/* A checkpoint failed for a reason that counts (Flink's
 * CheckpointFailureManager: I/O errors, failures of the asynchronous part,
 * timeouts): past tolerable_failed consecutive failures the job fails. */
static void count_failure(td_coord_t *c, int64_t id, const char *why) {
  c->consecutive_failures++;
  if (c->cfg.tolerable_failed < 0 || c->consecutive_failures <= c->cfg.tolerable_failed ||
      c->job_failed || !c->cfg.fail)
    return;
  c->job_failed = 1;
  char msg[1200];
  snprintf(msg, sizeof msg,
           "checkpoint %" PRId64 " failed: %s (%d consecutive checkpoint failure%s, "
           "tolerable_failed_checkpoints is %d)",
           id, why, c->consecutive_failures, c->consecutive_failures == 1 ? "" : "s",
           c->cfg.tolerable_failed);
  c->cfg.fail(c->cfg.fail_ud, msg);
}

void td_coord_stop(td_coord_t *c) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  c->stop = 1;
  pthread_cond_broadcast(&c->wake);
  pthread_mutex_unlock(&c->mu);
  if (c->running) {
    pthread_join(c->thread, NULL);
    c->running = 0;
  }
  pthread_mutex_lock(&c->mu);
  while (c->pending) abort_locked(c, c->pending, "job stopped");
  while (c->inflight) {
    inflight_t *f = c->inflight;
    c->inflight = f->next;
    free_inflight(f);
  }
  c->stopped = 1;
  pthread_cond_broadcast(&c->waiters);
  pthread_mutex_unlock(&c->mu);
}

void td_coord_free(td_coord_t *c) {
  if (!c) return;
  td_coord_stop(c);
  for (int s = 0; c->finished_names && s < c->n; s++) {
    for (int i = 0; i < c->finished_n[s]; i++) free(c->finished_names[s][i]);
    free(c->finished_names[s]);
  }
  free(c->finished_names);
  free(c->finished_n);
  free(c->inflight_names);
  free(c->finished);
  free(c->finishing);
  free(c->is_source);
  free((void *)c->requested);
  free(c->job_info);
  free(c->dir);
  free(c->job_name);
  for (int s = 0; c->expected && s < c->n; s++) free(c->expected[s]);
  free(c->expected);
  free(c->durations);
  free(c->job_id);
  free(c->history);
  free(c->hist_sub);
  free(c->hist_trigger_us);
  free(c->local);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->waiters);
  pthread_cond_destroy(&c->wake);
  free(c);
}

/* ---- calls from subtasks ------------------------------------------------------ */

int64_t td_coord_requested(td_coord_t *c, int subtask) {
  return atomic_load_explicit(&c->requested[subtask], memory_order_acquire);
}

static pending_t *find(td_coord_t *c, int64_t id) {
  for (pending_t *p = c->pending; p; p = p->next)
    if (p->id == id) return p;
  return NULL;
}

void td_coord_snapshot_started(td_coord_t *c, int64_t id, int subtask,
                               pid_t pid, int err_fd, int expect_inflight) {
  pthread_mutex_lock(&c->mu);
  pending_t *p = find(c, id);
  if (!p || p->parts[subtask].started || p->parts[subtask].acked) {
    pthread_mutex_unlock(&c->mu);
    if (pid > 0) kill_child(pid); /* nobody waits for this one */
    if (err_fd >= 0) close(err_fd);
    return;
  }
  part_t *pt = &p->parts[subtask];
  pt->started = 1;
  if (pid > 0) c->stats.forked++;
  pt->pid = pid;
  pt->err_fd = err_fd;
  pt->child_done = pid == 0;
  pt->expect_inflight = (unsigned char)expect_inflight;
  pthread_cond_signal(&c->wake);
  pthread_mutex_unlock(&c->mu);
}

/* Copy files[0 .. n) into part pt of subtask s (its acknowledged list).
 * 0, or TD_ENOMEM with nothing taken. */
static int take_files(part_t *pt, int s, const td_meta_file_t *files, size_t n) {
  if (!n) return 0;
  if (!(pt->files = calloc(n, sizeof *pt->files))) return TD_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    pt->files[i] = files[i];
    pt->files[i].subtask = s;
    if (!(pt->files[i].name = strdup(files[i].name))) {
      free_files(pt->files, i);
      pt->files = NULL;
      return TD_ENOMEM;
    }
  }
  pt->n_files = n;
  return 0;
}

void td_coord_snapshot_written(td_coord_t *c, int64_t id, int subtask,
                               const td_meta_file_t *files, size_t n, const char *error) {
  pthread_mutex_lock(&c->mu);
  pending_t *p = subtask >= 0 && subtask < c->n ? find(c, id) : NULL;
  part_t *pt = p ? &p->parts[subtask] : NULL;
  if (pt && pt->started && pt->pid == TD_COORD_ASYNC && !pt->child_done) {
    pt->child_done = 1;
    if (!error && take_files(pt, subtask, files, n) != 0) error = "out of memory";
    if (error && !p->failed) {
      p->failed = p->counted = 1;
      p->fail_subtask = subtask;
      snprintf(p->reason, sizeof p->reason, "the snapshot of subtask %d failed: %.200s", subtask,
               error);
    }
    pthread_cond_signal(&c->wake);
  }
  pthread_mutex_unlock(&c->mu);
}

void td_coord_snapshot_times(td_coord_t *c, int64_t id, int subtask, int64_t first_barrier_us,
                             int64_t start_us, int64_t end_us) {
  pthread_mutex_lock(&c->mu);
  td_coord_record_t *r = subtask >= 0 && subtask < c->n ? hist_find(c, id) : NULL;
  if (r) {
    td_coord_subtask_stats_t *ss = &hist_subs(c, r)[subtask];
    int64_t trigger = c->hist_trigger_us[r - c->history];
    ss->reported = 1;
    ss->start_delay_us = first_barrier_us > trigger ? first_barrier_us - trigger : 0;
    ss->alignment_us = start_us > first_barrier_us ? start_us - first_barrier_us : 0;
    ss->sync_us = end_us > start_us ? end_us - start_us : 0;
    ss->sync_end_us = end_us;
  }
  pthread_mutex_unlock(&c->mu);
}

size_t td_coord_subtask_history(td_coord_t *c, int64_t id, td_coord_subtask_stats_t *out,
                                size_t max) {
  pthread_mutex_lock(&c->mu);
  td_coord_record_t *r = hist_find(c, id);
  size_t n = r ? (size_t)c->n : 0;
  if (n > max) n = max;
  if (n) memcpy(out, hist_subs(c, r), n * sizeof *out);
  pthread_mutex_unlock(&c->mu);
  return n;
}

void td_coord_inflight(td_coord_t *c, int64_t id, int subtask, const char *name,
                       int n, const uint32_t *tags, td_wbuf_t *bufs) {
  inflight_t *f = calloc(1, sizeof *f);
  if (f) {
    f->name = strdup(name);
    f->tags = malloc(sizeof *tags * (size_t)(n ? n : 1));
    f->bufs = malloc(sizeof *bufs * (size_t)(n ? n : 1));
  }
  if (!f || !f->name || !f->tags || !f->bufs) {
    if (f) {
      free(f->name);
      free(f->tags);
      free(f->bufs);
      free(f);
    }
    for (int i = 0; i < n; i++) td_wbuf_destroy(&bufs[i]);
    td_coord_decline(c, id, subtask, "out of memory keeping in-flight data");
    return;
  }
  f->id = id;
  f->subtask = subtask;
  f->n = n;
  if (n) {
    memcpy(f->tags, tags, sizeof *tags * (size_t)n);
    memcpy(f->bufs, bufs, sizeof *bufs * (size_t)n);
  }
  pthread_mutex_lock(&c->mu);
  snprintf(c->inflight_names[subtask], sizeof c->inflight_names[subtask], "%s", name);
  inflight_t **pp = &c->inflight;
  while (*pp) pp = &(*pp)->next;
  *pp = f;
  pthread_cond_signal(&c->wake);
  pthread_mutex_unlock(&c->mu);
}

void td_coord_decline(td_coord_t *c, int64_t id, int subtask, const char *reason) {
  pthread_mutex_lock(&c->mu);
  pending_t *p = find(c, id);
  if (p && !p->failed) {
    p->failed = 1;
    p->fail_subtask = subtask;
    snprintf(p->reason, sizeof p->reason, "subtask %d declined: %s", subtask,
             reason ? reason : "");
    pthread_cond_signal(&c->wake);
  }
  pthread_mutex_unlock(&c->mu);
}

void td_coord_finished(td_coord_t *c, int subtask, int n,
                       const char *const *names, int ok) {
  char **copy = calloc((size_t)(n ? n : 1), sizeof *copy);
  for (int i = 0; copy && i < n; i++) copy[i] = strdup(names[i]);
  int complete = copy != NULL;
  for (int i = 0; copy && i < n; i++)
    if (!copy[i]) complete = 0;
  pthread_mutex_lock(&c->mu);
  if (!ok || !complete) {
    /* without its final state the final checkpoint cannot be written */
    snprintf(c->error, sizeof c->error, "subtask %d could not report its final state", subtask);
    c->final_failed = 1;
    pthread_cond_broadcast(&c->waiters);
  }
  if (c->finishing[subtask]) {
    c->finishing[subtask] = 0;
    c->n_finishing--;
  }
  if (participant(c) && c->cfg.on_finished)
    c->cfg.on_finished(c->cfg.remote_ud, subtask, n, names, ok && complete);
  if (!c->finished[subtask]) {
    c->finished[subtask] = 1;
    c->finished_names[subtask] = copy;
    c->finished_n[subtask] = copy ? n : 0;
    c->n_finished++;
    copy = NULL;
  }
  pthread_cond_signal(&c->wake);
  pthread_mutex_unlock(&c->mu);
  if (copy) {
    for (int i = 0; i < n; i++) free(copy[i]);
    free(copy);
  }
}

void td_coord_finishing(td_coord_t *c, int subtask) {
  pthread_mutex_lock(&c->mu);
  if (!c->finishing[subtask] && !c->finished[subtask]) {
    c->finishing[subtask] = 1;
    c->n_finishing++;
    if (participant(c) && c->cfg.on_finishing) c->cfg.on_finishing(c->cfg.remote_ud, subtask);
  }
  pthread_mutex_unlock(&c->mu);
}

int td_coord_is_pending(td_coord_t *c, int64_t id) {
  pthread_mutex_lock(&c->mu);
  if (participant(c)) {
    /* a barrier may come over the network shuffle before the job
     * master's trigger message: wait for the one or the other outcome */
    struct timespec until;
    td_deadline(&until, CLOCK_REALTIME, 10000);
    while (!find(c, id) && !hist_find(c, id) && id > c->completed && !c->stopped)
      if (pthread_cond_timedwait(&c->waiters, &c->mu, &until) == ETIMEDOUT) break;
  }
  int r = find(c, id) != NULL;
  pthread_mutex_unlock(&c->mu);
  return r;
}

const char *td_coord_error(td_coord_t *c) {
  pthread_mutex_lock(&c->mu);
  const char *e = c->final_failed ? c->error : NULL;
  pthread_mutex_unlock(&c->mu);
  return e;
}

int64_t td_coord_completed(td_coord_t *c) {
  pthread_mutex_lock(&c->mu);
  int64_t id = c->completed;
  pthread_mutex_unlock(&c->mu);
  return id;
}

int td_coord_wait(td_coord_t *c, int64_t after, int timeout_ms,
                  int64_t *completed, int *final) {
  pthread_mutex_lock(&c->mu);
  struct timespec until;
  td_deadline(&until, CLOCK_REALTIME, timeout_ms >= 0 ? timeout_ms : 0);
  int rc = 0;
  for (;;) {
    if (c->completed > after || c->final_done) {
      *completed = c->completed;
      *final = c->final_done;
      rc = 1;
      break;
    }
    if (c->stopped || c->final_failed) {
      rc = -1;
      break;
    }
    if (timeout_ms < 0) pthread_cond_wait(&c->waiters, &c->mu);
    else if (pthread_cond_timedwait(&c->waiters, &c->mu, &until) == ETIMEDOUT)
      break;
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

void td_coord_record_pause(td_coord_t *c, int64_t us) {
  pthread_mutex_lock(&c->mu);
  c->stats.pauses++;
  c->stats.sum_pause_us += us;
  if (us > c->stats.max_pause_us) c->stats.max_pause_us = us;
  pthread_mutex_unlock(&c->mu);
}

void td_coord_stats(td_coord_t *c, td_coord_stats_t *out) {
  pthread_mutex_lock(&c->mu);
  *out = c->stats;
  pthread_mutex_unlock(&c->mu);
}

size_t td_coord_durations(td_coord_t *c, td_coord_duration_t *out, size_t max) {
  pthread_mutex_lock(&c->mu);
  size_t n = c->n_durations;
  if (n && max) memcpy(out, c->durations, (n < max ? n : max) * sizeof *out);
  pthread_mutex_unlock(&c->mu);
  return n;
}

/* ---- the thread ---------------------------------------------------------------- */

/* Copy the file from to the new file to, durably (a savepoint on another
 * file system than the checkpoints). 0 or -errno. */
static int copy_file(const char *from, const char *to) {
  int in = open(from, O_RDONLY | O_CLOEXEC);
  if (in < 0) return -errno;
  int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (out < 0) {
    int e = errno;
    close(in);
    return -e;
  }
  char buf[65536];
  ssize_t n;
  int rc = 0;
  while (rc == 0 && (n = read(in, buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno != EINTR) rc = -errno;
      continue;
    }
    for (ssize_t off = 0; rc == 0 && off < n;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0 && errno != EINTR) rc = -errno;
      if (w > 0) off += w;
    }
  }
  if (rc == 0 && fsync(out) != 0) rc = -errno;
  close(in);
  if (close(out) != 0 && rc == 0) rc = -errno;
  if (rc) unlink(to);
  return rc;
}

/* Link subtask s's final state files into checkpoint p's directory (a
 * savepoint's may be on another file system: copied there). */
static int link_finished(td_coord_t *c, int s, int64_t id) {
  if (!c->dir) return 0;
  char from[4400], to[4400], fin[4200], chk[4200];
  td_coord_finished_dir(c, fin, sizeof fin);
  dir_of(c, id, chk, sizeof chk);
  for (int i = 0; i < c->finished_n[s]; i++) {
    snprintf(from, sizeof from, "%s/%s", fin, c->finished_names[s][i]);
    snprintf(to, sizeof to, "%s/%s", chk, c->finished_names[s][i]);
    if (link(from, to) == 0 || errno == EEXIST) continue;
    if (errno != EXDEV) return -errno;
    int rc = copy_file(from, to);
    if (rc) return rc;
  }
  return 0;
}

static void ack_remote(td_coord_t *c, pending_t *p, int s);

void td_coord_abort_snapshots(td_coord_t *c, int subtask) {
  if (!c || subtask < 0 || subtask >= c->n) return;
  pthread_mutex_lock(&c->mu);
  for (pending_t *p = c->pending; p; p = p->next) {
    part_t *pt = &p->parts[subtask];
    if (pt->pid == 0 || pt->child_done) continue;
    if (pt->pid > 0) kill_child(pt->pid);
    pt->child_done = 1;
    close_err_fd(pt);
    if (!p->failed) {
      p->failed = 1;
      p->fail_subtask = subtask;
      snprintf(p->reason, sizeof p->reason,
               "subtask %d ended before its snapshot was written", subtask);
    }
  }
  pthread_cond_signal(&c->wake);
  pthread_mutex_unlock(&c->mu);
}

static void update_acks(td_coord_t *c, pending_t *p) {
  for (int s = 0; s < c->n; s++) {
    part_t *pt = &p->parts[s];
    if (pt->acked || !is_local(c, s)) continue;
    if (pt->pid > 0 && !pt->child_done) {
      int st;
      pid_t r = waitpid(pt->pid, &st, WNOHANG);
      if (r == pt->pid) {
        pt->child_done = 1;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
          char msg[300] = "";
          if (pt->err_fd >= 0) {
            ssize_t n = read(pt->err_fd, msg, sizeof msg - 1);
            msg[n > 0 ? n : 0] = 0;
            msg[strcspn(msg, "\n")] = 0;
          }
          p->failed = p->counted = 1;
          p->fail_subtask = s;
          if (msg[0])
            snprintf(p->reason, sizeof p->reason, "the snapshot of subtask %d failed: %s", s,
                     msg);
          else if (WIFSIGNALED(st))
            snprintf(p->reason, sizeof p->reason,
                     "the snapshot process of subtask %d was killed by signal %d", s,
                     WTERMSIG(st));
          else
            snprintf(p->reason, sizeof p->reason,
                     "the snapshot process of subtask %d exited with status %d", s,
                     WEXITSTATUS(st));
        }
        close_err_fd(pt);
      }
    }
    if (pt->started) {
      if (pt->child_done && (!pt->expect_inflight || pt->inflight_done)) {
        pt->acked = 1;
        p->acked++;
        if (participant(c) && c->cfg.on_ack && !p->failed) ack_remote(c, p, s);
        /* the asynchronous part: from the end of the synchronous one to
         * this acknowledgement (the files written, to the tick) */
        td_coord_record_t *r = hist_find(c, p->id);
        td_coord_subtask_stats_t *ss = r ? &hist_subs(c, r)[s] : NULL;
        if (ss && ss->reported) {
          int64_t a = mono_us() - ss->sync_end_us;
          ss->async_us = a > 0 ? a : 0;
        }
      }
    } else if (c->finished[s] && !participant(c)) {
      if (link_finished(c, s, p->id) != 0) {
        p->failed = p->counted = 1;
        snprintf(p->reason, sizeof p->reason,
                 "cannot link the final state of subtask %d", s);
        continue;
      }
      pt->acked = pt->finished = 1;
      p->acked++;
    }
  }
}

/* The next entry of the file list *files (*n used, *cap allocated), grown
 * as needed; the caller fills it and counts it. NULL: out of memory. */
static td_meta_file_t *next_file(td_meta_file_t **files, size_t *n, size_t *cap) {
  if (*n == *cap) {
    size_t ncap = *cap ? 2 * *cap : 16;
    td_meta_file_t *f = realloc(*files, ncap * sizeof *f);
    if (!f) return NULL;
    *files = f;
    *cap = ncap;
  }
  return &(*files)[*n];
}

/* Add name (of subtask s) to the file list if it is in the directory:
 * 0, or -ENOENT / another code when it cannot be read. */
static int add_file(const char *chk, td_meta_file_t **files, size_t *n, size_t *cap,
                    const char *name, int s) {
  td_meta_file_t *f = next_file(files, n, cap);
  if (!f) return TD_ENOMEM;
  int rc = td_meta_stat_file(chk, name, &f->size, &f->crc);
  if (rc) return rc;
  if (!(f->name = strdup(name))) return TD_ENOMEM;
  f->subtask = s;
  (*n)++;
  return 0;
}

/* Add a shared file reference of subtask s to the file list. */
static int add_shared(td_meta_file_t **files, size_t *n, size_t *cap, const td_shared_ref_t *r,
                      int s) {
  td_meta_file_t *f = next_file(files, n, cap);
  if (!f) return TD_ENOMEM;
  size_t len = strlen(TD_SHARED_PREFIX) + strlen(r->name) + 1;
  if (!(f->name = malloc(len))) return TD_ENOMEM;
  snprintf(f->name, len, "%s%s", TD_SHARED_PREFIX, r->name);
  f->size = r->size;
  f->crc = r->crc;
  f->subtask = s;
  (*n)++;
  return 0;
}

/* Append the files of subtask s in checkpoint directory chk to *files
 * (*n, *cap): its expected state files (or, flags TD_META_SUB_FINISHED,
 * its final-state files), the companions listing their shared files and
 * those shared files as "../shared/<name>", and (TD_META_SUB_INFLIGHT) its
 * in-flight data. 0, or a code with *failed naming the file. */
static int subtask_files(td_coord_t *c, const char *chk, int s, unsigned char flags,
                         td_meta_file_t **files, size_t *n, size_t *cap, char *failed,
                         size_t failedlen) {
  char name[512] = "";
  size_t first = *n;
  int rc = 0;
  if (flags & TD_META_SUB_FINISHED) {
    for (int i = 0; rc == 0 && i < c->finished_n[s]; i++) {
      snprintf(name, sizeof name, "%s", c->finished_names[s][i]);
      rc = add_file(chk, files, n, cap, name, s);
    }
  } else if (c->expected) {
    for (const char *p = c->expected[s]; rc == 0 && *p;) {
      size_t len = strcspn(p, "\n");
      snprintf(name, sizeof name, "%.*s", (int)len, p);
      if (len) rc = add_file(chk, files, n, cap, name, s);
      /* the list of the shared files it references, if it has any */
      if (rc == 0 && len) {
        snprintf(name, sizeof name, "%.*s%s", (int)len, p, TD_SHARED_SUFFIX);
        rc = add_file(chk, files, n, cap, name, s);
        if (rc == -ENOENT) rc = 0;
      }
      p += len + (p[len] == '\n');
    }
  }
  if (rc == 0 && (flags & TD_META_SUB_INFLIGHT)) {
    snprintf(name, sizeof name, "%s", c->inflight_names[s]);
    rc = add_file(chk, files, n, cap, name, s);
  }
  /* the shared files its companions list */
  size_t own = *n;
  for (size_t i = first; rc == 0 && i < own; i++) {
    const char *fn = (*files)[i].name;
    size_t fl = strlen(fn), sl = strlen(TD_SHARED_SUFFIX);
    if (fl <= sl || strcmp(fn + fl - sl, TD_SHARED_SUFFIX) != 0) continue;
    char path[4800], msg[600];
    td_shared_ref_t *refs;
    size_t nr;
    snprintf(path, sizeof path, "%s/%s", chk, fn);
    snprintf(name, sizeof name, "%s", fn);
    rc = td_shared_read(path, &refs, &nr, msg, sizeof msg);
    for (size_t j = 0; rc == 0 && j < nr; j++) rc = add_shared(files, n, cap, &refs[j], s);
    free(refs);
  }
  if (rc) snprintf(failed, failedlen, "%s", name[0] ? name : "?");
  return rc;
}

/* A participant's acknowledgement of subtask s's part of p, with the list
 * of the files its snapshot wrote (Flink's acknowledgement carries the
 * state handles); a file that cannot be listed fails p instead. */
static void ack_remote(td_coord_t *c, pending_t *p, int s) {
  char chk[4200], name[512];
  td_meta_file_t *files = NULL;
  size_t n = 0, cap = 0;
  dir_of(c, p->id, chk, sizeof chk);
  part_t *pt = &p->parts[s];
  int rc = subtask_files(c, chk, s, pt->expect_inflight ? TD_META_SUB_INFLIGHT : 0, &files, &n,
                         &cap, name, sizeof name);
  if (rc) {
    p->failed = p->counted = 1;
    p->fail_subtask = s;
    snprintf(p->reason, sizeof p->reason, "subtask %d: %.200s: %s", s, name,
             rc == -ENOENT ? "the snapshot did not write it" : td_strerror(rc));
  } else {
    c->cfg.on_ack(c->cfg.remote_ud, p->id, s, pt->expect_inflight ? c->inflight_names[s] : NULL,
                  files, n);
  }
  free_files(files, n);
}

/* Check that the files a remote subtask s acknowledged, list[0..nl), are
 * in the checkpoint directory chk as it described them (the job master's
 * view of the shared checkpoint storage), and that they include its
 * expected state files; append them to *files. 0, or a code with *failed
 * naming the file and why in *why. */
static int remote_files(td_coord_t *c, const char *chk, int s, const td_meta_file_t *list,
                        size_t nl, td_meta_file_t **files, size_t *n, size_t *cap, char *failed,
                        size_t failedlen, const char **why) {
  for (const char *p = c->expected ? c->expected[s] : ""; *p;) {
    size_t len = strcspn(p, "\n");
    size_t i = 0;
    while (i < nl && !(strlen(list[i].name) == len && memcmp(list[i].name, p, len) == 0)) i++;
    if (len && i == nl) {
      snprintf(failed, failedlen, "%.*s", (int)len, p);
      *why = "subtask's acknowledgement does not list it";
      return TD_EINVAL;
    }
    p += len + (p[len] == '\n');
  }
  for (size_t i = 0; i < nl; i++) {
    char path[4800];
    struct stat st;
    snprintf(failed, failedlen, "%s", list[i].name);
    snprintf(path, sizeof path, "%s/%s", chk, list[i].name);
    if (strchr(list[i].name, '/') && strncmp(list[i].name, TD_SHARED_PREFIX, strlen(TD_SHARED_PREFIX)) != 0) {
      *why = "not a file of the checkpoint";
      return TD_EINVAL;
    }
    if (stat(path, &st) != 0) {
      *why = "the subtask acknowledged it, but it is not in the checkpoint directory here "
             "(is the checkpoint storage shared by every host?)";
      return -errno;
    }
    if ((uint64_t)st.st_size != list[i].size) {
      *why = "its size differs from the one the subtask acknowledged";
      return TD_ECORRUPT;
    }
    td_meta_file_t *f = next_file(files, n, cap);
    if (!f) return TD_ENOMEM;
    *f = list[i];
    f->subtask = s;
    if (!(f->name = strdup(list[i].name))) return TD_ENOMEM;
    (*n)++;
  }
  return 0;
}

/* Every file of checkpoint id, per subtask (subtask_files), or for a remote
 * subtask (remote[s] != NULL) the files it acknowledged. 0, or a code with
 * err naming the missing file. */
static int list_files(td_coord_t *c, int64_t id, const unsigned char *subs,
                      td_meta_file_t *const *remote, const size_t *n_remote,
                      td_meta_file_t **files, size_t *n, char *err, size_t errlen) {
  char chk[4200], name[512] = "";
  td_coord_chk_dir(c, id, chk, sizeof chk);
  size_t cap = 0;
  int rc = 0;
  const char *why = NULL;
  *files = NULL;
  *n = 0;
  for (int s = 0; rc == 0 && s < c->n; s++) {
    if (remote && remote[s])
      rc = remote_files(c, chk, s, remote[s], n_remote[s], files, n, &cap, name, sizeof name, &why);
    else
      rc = subtask_files(c, chk, s, subs[s], files, n, &cap, name, sizeof name);
  }
  if (rc) {
    snprintf(err, errlen, "%.300s/%.200s: %s", chk, name[0] ? name : "?",
             why ? why : rc == -ENOENT ? "the snapshot did not write it" : td_strerror(rc));
    free_files(*files, *n);
    *files = NULL;
    *n = 0;
  }
  return rc;
}

/* Write checkpoint id's _metadata (lock released meanwhile); *size: the
 * bytes of the files it lists, sub_size[s] (n entries) those of subtask s.
 * 0, or a negative code with the message in why. */
static int write_metadata(td_coord_t *c, int64_t id, unsigned char *subs,
                          td_meta_file_t *const *remote, const size_t *n_remote, uint32_t flags,
                          uint64_t *size, uint64_t *sub_size, char *why, size_t whylen) {
  char chk[4200];
  td_coord_chk_dir(c, id, chk, sizeof chk);
  td_meta_t m = {.id = id,
                 .time_ms = wall_ms(),
                 .flags = flags,
                 .n_subtasks = c->n,
                 .subtasks = subs,
                 .job_name = c->job_name,
                 .job_info = c->job_info,
                 .job_info_len = c->cfg.job_info_len};
  int rc = list_files(c, id, subs, remote, n_remote, &m.files, &m.n_files, why, whylen);
  if (rc == 0) rc = td_meta_write(chk, &m, why, whylen);
  *size = 0;
  memset(sub_size, 0, (size_t)c->n * sizeof *sub_size);
  for (size_t i = 0; i < m.n_files; i++) {
    *size += m.files[i].size;
    if (m.files[i].subtask >= 0 && m.files[i].subtask < c->n)
      sub_size[m.files[i].subtask] += m.files[i].size;
    free(m.files[i].name);
  }
  free(m.files);
  if (rc) return rc;
  /* chk-<n>'s own entry (or the savepoint's): durable before anything
   * acts on the completion */
  char *slash = strrchr(chk, '/');
  if (slash && slash != chk) *slash = 0;
  int dfd = open(slash ? chk : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  return 0;
}

static int chk_id_of(const char *name, int64_t *id) {
  if (strncmp(name, "chk-", 4) != 0) return 0;
  char *end;
  long long v = strtoll(name + 4, &end, 10);
  if (*end || v < 1 || end == name + 4) return 0;
  *id = v;
  return 1;
}

static int cmp_desc(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Append name to the list *keep (n, cap); 0 or TD_ENOMEM. */
static int keep_name(char ***keep, size_t *n, size_t *cap, const char *name) {
  if (*n == *cap) {
    size_t ncap = *cap ? 2 * *cap : 64;
    char **k = realloc(*keep, ncap * sizeof *k);
    if (!k) return TD_ENOMEM;
    *keep = k;
    *cap = ncap;
  }
  if (!((*keep)[*n] = strdup(name))) return TD_ENOMEM;
  (*n)++;
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Remove the shared files (shared.h) that neither the kept completed
 * checkpoints done[0 .. nd) nor a finished subtask's final state
 * references. Called with no checkpoint pending and no subtask finishing,
 * so no upload is under way (a pending one's files are referenced by no
 * _metadata yet, a finishing subtask's by no finished/ companion yet). Any
 * failure to read a reference list keeps every file. */
static void sweep_shared(td_coord_t *c, const int64_t *done, size_t nd) {
  char path[4400], msg[600];
  snprintf(path, sizeof path, "%s/shared", c->dir);
  if (access(path, F_OK) != 0) return;
  char **keep = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < nd; i++) {
    td_meta_t *m = NULL;
    char chk[4200];
    rc = td_meta_read(dir_of(c, done[i], chk, sizeof chk), &m, msg, sizeof msg);
    for (size_t k = 0; rc == 0 && k < m->n_files; k++) {
      const char *f = m->files[k].name;
      if (!strncmp(f, TD_SHARED_PREFIX, strlen(TD_SHARED_PREFIX)))
        rc = keep_name(&keep, &n, &cap, f + strlen(TD_SHARED_PREFIX));
    }
    td_meta_free(m);
  }
  char fin[4200];
  td_coord_finished_dir(c, fin, sizeof fin);
  DIR *d = rc == 0 ? opendir(fin) : NULL;
  if (!d && rc == 0 && errno != ENOENT) rc = -errno;
  struct dirent *de;
  while (d && rc == 0 && (de = readdir(d)) != NULL) {
    size_t fl = strlen(de->d_name), sl = strlen(TD_SHARED_SUFFIX);
    if (fl <= sl || strcmp(de->d_name + fl - sl, TD_SHARED_SUFFIX) != 0) continue;
    char file[4500];
    td_shared_ref_t *refs;
    size_t nr;
    snprintf(file, sizeof file, "%s/%s", fin, de->d_name);
    rc = td_shared_read(file, &refs, &nr, msg, sizeof msg);
    for (size_t j = 0; rc == 0 && j < nr; j++) rc = keep_name(&keep, &n, &cap, refs[j].name);
    if (rc == 0) free(refs);
  }
  if (d) closedir(d);
  if (rc == 0) {
    if (n > 1) qsort(keep, n, sizeof *keep, cmp_str);
    (void)td_shared_sweep(path, keep, n, 600);
  } else {
    logf_(c, "shared files kept: %s", rc == TD_ENOMEM ? "out of memory" : msg);
  }
  for (size_t i = 0; i < n; i++) free(keep[i]);
  free(keep);
}

/* Keep the `retained` newest completed checkpoints; remove older completed
 * ones and incomplete ones older than the newest completed that are not
 * pending. */
static void sweep(td_coord_t *c) {
  if (!c->dir) return;
  DIR *d = opendir(c->dir);
  if (!d) return;
  int64_t *done = NULL, *other = NULL;
  size_t nd = 0, no = 0, cap = 0;
  struct dirent *de;
  char path[4400];
  while ((de = readdir(d)) != NULL) {
    int64_t id;
    if (!chk_id_of(de->d_name, &id)) continue;
    if (nd + no + 1 > cap) {
      cap = cap ? 2 * cap : 16;
      int64_t *a = realloc(done, cap * sizeof *a), *b2 = NULL;
      if (a) done = a;
      if (a) b2 = realloc(other, cap * sizeof *b2);
      if (!a || !b2) break;
      other = b2;
    }
    snprintf(path, sizeof path, "%s/%s/_metadata", c->dir, de->d_name);
    if (access(path, F_OK) == 0) done[nd++] = id;
    else other[no++] = id;
  }
  closedir(d);
  if (done) qsort(done, nd, sizeof *done, cmp_desc);
  for (size_t i = (size_t)c->cfg.retained; i < nd; i++) {
    remove_tree(dir_of(c, done[i], path, sizeof path));
  }
  for (size_t i = 0; nd > 0 && i < no; i++) {
    if (other[i] < done[0] && !find(c, other[i]))
      remove_tree(dir_of(c, other[i], path, sizeof path));
  }
  size_t kept = nd < (size_t)c->cfg.retained ? nd : (size_t)c->cfg.retained;
  /* not while an upload may be under way: a pending checkpoint's, or a
   * finishing subtask's final state (taken in its task thread, outside
   * any checkpoint: what it uploads is listed only once td_coord_finished
   * is called, after its companion is written to finished/) */
  if (!c->pending && c->n_finishing == 0) sweep_shared(c, done, kept);
  free(done);
  free(other);
}

/* Append subtask s's in-flight data file of checkpoint id to pt's list. */
static int add_inflight(td_coord_t *c, int64_t id, part_t *pt, int s) {
  char chk[4200];
  size_t n = pt->n_files, cap = n;
  int rc = add_file(dir_of(c, id, chk, sizeof chk), &pt->files, &n, &cap, c->inflight_names[s], s);
  pt->n_files = n;
  return rc;
}

static void complete_locked(td_coord_t *c, pending_t *p) {
  /* a snapshot thread's list lacks the in-flight data this thread wrote */
  for (int s = 0; s < c->n; s++) {
    part_t *pt = &p->parts[s];
    int rc = pt->pid == TD_COORD_ASYNC && pt->expect_inflight && pt->files && !pt->finished
                 ? add_inflight(c, p->id, pt, s)
                 : 0;
    if (rc) {
      p->failed = p->counted = 1;
      snprintf(p->reason, sizeof p->reason, "subtask %d: %.200s: %s", s, c->inflight_names[s],
               td_strerror(rc));
      return;
    }
  }
  unsigned char *subs = calloc((size_t)c->n, 1);
  uint64_t *sub_size = calloc((size_t)c->n, sizeof *sub_size);
  if (!subs || !sub_size) {
    free(subs);
    free(sub_size);
    p->failed = 1;
    return;
  }
  /* the remote subtasks' acknowledged lists, taken out of p: it may be
   * aborted while the lock is released */
  td_meta_file_t **remote = calloc((size_t)c->n, sizeof *remote);
  size_t *n_remote = calloc((size_t)c->n, sizeof *n_remote);
  if (!remote || !n_remote) {
    free(subs);
    free(sub_size);
    free(remote);
    free(n_remote);
    p->failed = 1;
    return;
  }
  for (int s = 0; s < c->n; s++) {
    part_t *pt = &p->parts[s];
    subs[s] = (unsigned char)((pt->finished ? TD_META_SUB_FINISHED : 0) |
                              (pt->expect_inflight ? TD_META_SUB_INFLIGHT : 0));
    if (!pt->finished) {
      remote[s] = pt->files;
      n_remote[s] = pt->n_files;
      pt->files = NULL;
      pt->n_files = 0;
    }
  }
  int64_t id = p->id, start = p->start_ms;
  int savepoint = p->kind == TD_CKPT_SAVEPOINT;
  char why[600];
  uint64_t size = 0;
  pthread_mutex_unlock(&c->mu);
  int rc = write_metadata(c, id, subs, remote, n_remote, savepoint ? TD_META_SAVEPOINT : 0, &size,
                          sub_size, why, sizeof why);
  for (int s = 0; s < c->n; s++) free_files(remote[s], n_remote[s]);
  free(remote);
  free(n_remote);
  free(subs);
  pthread_mutex_lock(&c->mu);
  p = find(c, id);
  if (!p || rc) free(sub_size);
  if (!p) return; /* aborted meanwhile (stop) */
  if (rc) {
    logf_(c, "%s %" PRId64 " aborted: %s", savepoint ? "savepoint" : "checkpoint", id, why);
    abort_locked(c, p, why);
    if (!savepoint) count_failure(c, id, why);
    return;
  }
  if (savepoint) {
    /* a savepoint subsumes nothing and is not subsumed; a stop
     * savepoint is the job's last completed checkpoint */
    int stop = p->stop;
    unlink_pending(c, p);
    hist_done(c, id, TD_CKPT_COMPLETED, size, sub_size, NULL);
    free(sub_size);
    if (stop) {
      c->stopping = 1;
      c->stop_pending = 0;
      if (id > c->completed) c->completed = id;
    }
    if (c->cfg.on_complete) c->cfg.on_complete(c->cfg.remote_ud, id, TD_CKPT_SAVEPOINT, stop, 0);
    pthread_cond_broadcast(&c->waiters);
    return;
  }
  /* older pending checkpoints are subsumed (savepoints are not) */
  for (pending_t *q = c->pending, *next; q && q->id < id; q = next) {
    next = q->next;
    if (q->kind != TD_CKPT_SAVEPOINT) abort_locked(c, q, "subsumed");
  }
  int p_after_finish = p->after_finish;
  unlink_pending(c, p);
  hist_done(c, id, TD_CKPT_COMPLETED, size, sub_size, NULL);
  free(sub_size);
  c->completed = id;
  c->consecutive_failures = 0;
  c->last_complete_ms = mono_ms();
  c->stats.completed++;
  c->stats.last_duration_ms = c->last_complete_ms - start;
  c->stats.sum_duration_ms += c->stats.last_duration_ms;
  if (c->stats.last_duration_ms > c->stats.max_duration_ms)
    c->stats.max_duration_ms = c->stats.last_duration_ms;
  if (c->n_durations == c->cap_durations) {
    size_t cap = c->cap_durations ? 2 * c->cap_durations : 64;
    td_coord_duration_t *d = realloc(c->durations, cap * sizeof *d);
    if (d) {
      c->durations = d;
      c->cap_durations = cap;
    }
  }
  if (c->n_durations < c->cap_durations)
    c->durations[c->n_durations++] =
        (td_coord_duration_t){c->stats.last_duration_ms, p_after_finish};
  if (c->cfg.on_complete) c->cfg.on_complete(c->cfg.remote_ud, id, TD_CKPT_CHECKPOINT, 0, 0);
  sweep(c);
  pthread_cond_broadcast(&c->waiters);
}

/* A new pending checkpoint (not yet linked), or NULL. */
static pending_t *new_pending(td_coord_t *c, int64_t now) {
  pending_t *p = calloc(1, sizeof *p);
  if (p) p->parts = calloc((size_t)c->n, sizeof *p->parts);
  if (!p || !p->parts) {
    free(p);
    return NULL;
  }
  for (int s = 0; s < c->n; s++) p->parts[s].err_fd = -1;
  p->kind = TD_CKPT_CHECKPOINT;
  p->id = c->next_id++;
  p->start_ms = now;
  p->after_finish = c->n_finished > 0;
  return p;
}

/* Link p as pending and ask the running sources for its barrier. */
static void request_locked(td_coord_t *c, pending_t *p) {
  pending_t **pp = &c->pending;
  while (*pp) pp = &(*pp)->next;
  *pp = p;
  for (int s = 0; s < c->n; s++)
    if (c->is_source[s] && !c->finished[s] && is_local(c, s)) {
      atomic_store_explicit(&c->requested[s], p->id, memory_order_release);
      if (c->cfg.on_trigger) c->cfg.on_trigger(c->cfg.trigger_ud, s);
      if (c->cfg.on_request && !participant(c))
        c->cfg.on_request(c->cfg.remote_ud, s, p->id, p->kind, p->stop, p->path);
    }
}

static void trigger_locked(td_coord_t *c, int64_t now) {
  pending_t *p = new_pending(c, now);
  if (!p) return;
  c->last_trigger_ms = now;
  char chk[4200] = "";
  if (c->dir) {
    dir_of(c, p->id, chk, sizeof chk);
    remove_tree(chk); /* a leftover of a dead run with the same id */
    if (mkdir(chk, 0777) != 0) {
      char why[4400];
      snprintf(why, sizeof why, "cannot create checkpoint directory '%s': %s", chk,
               strerror(errno));
      logf_(c, "checkpoint %" PRId64 " aborted: %s", p->id, why);
      free_pending(p, c->n);
      count_failure(c, p->id, why);
      return;
    }
  }
  hist_add(c, p, chk, 0);
  request_locked(c, p);
}

int td_coord_trigger_savepoint(td_coord_t *c, const char *dir, int stop, int64_t *id,
                               char *path, size_t pathlen, char *err, size_t errlen) {
  *id = 0;
  if (!dir || !*dir) {
    snprintf(err, errlen, "a savepoint needs a target directory");
    return TD_EINVAL;
  }
  pthread_mutex_lock(&c->mu);
  int rc = 0;
  pending_t *p = NULL;
  if (!c->dir) {
    snprintf(err, errlen, "savepoints need a checkpoint directory (tide run --checkpoint-dir D): the "
             "job's snapshots are written through it");
    rc = TD_EINVAL;
  } else if (c->stopping || c->stop_pending) {
    snprintf(err, errlen, "the job is stopping with a savepoint already");
    rc = TD_EINVAL;
  } else if (c->n_finished == c->n || c->stop) {
    snprintf(err, errlen, "the job has finished: there is nothing left to take a savepoint of");
    rc = TD_EINVAL;
  } else if (!(p = new_pending(c, mono_ms()))) {
    snprintf(err, errlen, "out of memory");
    rc = TD_ENOMEM;
  }
  if (rc == 0) {
    char sp[4200];
    snprintf(sp, sizeof sp, "%s/savepoint-%s-%" PRId64, dir, c->job_id, p->id);
    p->kind = TD_CKPT_SAVEPOINT;
    p->stop = stop;
    p->path = strdup(sp);
    if (!p->path) {
      snprintf(err, errlen, "out of memory");
      rc = TD_ENOMEM;
    } else if ((rc = mkdir_p(dir)) != 0) {
      snprintf(err, errlen, "cannot create the savepoint directory '%s': %s", dir, strerror(-rc));
    } else if (mkdir(sp, 0777) != 0) {
      rc = -errno;
      if (rc == -EEXIST)
        snprintf(err, errlen, "the savepoint directory '%s' exists already: a savepoint is never "
                 "written over another directory", sp);
      else
        snprintf(err, errlen, "cannot create the savepoint directory '%s': %s", sp, strerror(-rc));
    }
    if (rc) {
      free_pending(p, c->n);
    } else {
      snprintf(path, pathlen, "%s", sp);
      *id = p->id;
      if (stop) c->stop_pending = p->id;
      hist_add(c, p, sp, 0);
      request_locked(c, p);
      pthread_cond_signal(&c->wake);
    }
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

/* ---- cluster mode ------------------------------------------------------------ */

void td_coord_remote_ack(td_coord_t *c, int64_t id, int subtask, const char *inflight,
                         const td_meta_file_t *files, size_t n) {
  if (subtask < 0 || subtask >= c->n) return;
  pthread_mutex_lock(&c->mu);
  pending_t *p = find(c, id);
  if (p && !p->parts[subtask].started && !p->parts[subtask].acked) {
    part_t *pt = &p->parts[subtask];
    if (take_files(pt, subtask, files, n) != 0) { /* out of memory: not acknowledged */
      p->failed = 1;
      snprintf(p->reason, sizeof p->reason, "out of memory");
      pthread_cond_signal(&c->wake);
      pthread_mutex_unlock(&c->mu);
      return;
    }
    pt->started = pt->child_done = 1;
    pt->expect_inflight = pt->inflight_done = inflight != NULL;
    if (inflight)
      snprintf(c->inflight_names[subtask], sizeof c->inflight_names[subtask], "%s", inflight);
    pthread_cond_signal(&c->wake);
  }
  pthread_mutex_unlock(&c->mu);
}

void td_coord_remote_decline(td_coord_t *c, int64_t id, int subtask, const char *reason,
                             int counted) {
  pthread_mutex_lock(&c->mu);
  pending_t *p = find(c, id);
  if (p && !p->failed) {
    p->failed = 1;
    p->counted = counted;
    snprintf(p->reason, sizeof p->reason, "%s", reason ? reason : "declined");
    pthread_cond_signal(&c->wake);
  }
  pthread_mutex_unlock(&c->mu);
}

int td_coord_remote_trigger(td_coord_t *c, int64_t id, int kind, int stop, const char *path) {
  pthread_mutex_lock(&c->mu);
  int rc = 0;
  if (!find(c, id) && !hist_find(c, id) && id > c->completed) {
    pending_t *p = new_pending(c, mono_ms());
    if (p && path && !(p->path = strdup(path))) {
      free_pending(p, c->n);
      p = NULL;
    }
    if (!p) {
      rc = TD_ENOMEM;
    } else {
      p->id = id;
      p->kind = kind;
      p->stop = stop;
      if (stop) c->stop_pending = id;
      if (id >= c->next_id) c->next_id = id + 1;
      char chk[4200];
      hist_add(c, p, path ? path : dir_of(c, id, chk, sizeof chk), 0);
      request_locked(c, p);
      pthread_cond_broadcast(&c->waiters);
    }
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

void td_coord_remote_complete(td_coord_t *c, int64_t id, int kind, int stop, int final) {
  pthread_mutex_lock(&c->mu);
  for (pending_t *p = c->pending, *next; p; p = next) {
    next = p->next;
    if (p->id == id) {
      hist_done(c, id, TD_CKPT_COMPLETED, 0, NULL, NULL);
      unlink_pending(c, p); /* every local part acknowledged: no child left */
    } else if (p->id < id && p->kind != TD_CKPT_SAVEPOINT && kind == TD_CKPT_CHECKPOINT) {
      abort_locked(c, p, "subsumed");
    }
  }
  if (kind == TD_CKPT_CHECKPOINT || stop) {
    if (id > c->completed) c->completed = id;
    if (!final) c->stats.completed++;
  }
  if (stop) {
    c->stopping = 1;
    c->stop_pending = 0;
  }
  if (final) {
    if (id) c->stats.completed++;
    c->final_done = 1;
  }
  pthread_cond_broadcast(&c->waiters);
  pthread_mutex_unlock(&c->mu);
}

void td_coord_remote_abort(td_coord_t *c, int64_t id, const char *why) {
  pthread_mutex_lock(&c->mu);
  pending_t *p = find(c, id);
  if (p) {
    abort_locked(c, p, why ? why : "aborted");
  } else if (!hist_find(c, id)) {
    /* aborted before its trigger came: barriers of it are not pending */
    pending_t gone = {.id = id, .kind = TD_CKPT_CHECKPOINT};
    hist_add(c, &gone, "", 0);
    hist_done(c, id, TD_CKPT_FAILED, 0, NULL, why ? why : "aborted");
  }
  pthread_cond_broadcast(&c->waiters);
  pthread_mutex_unlock(&c->mu);
}

int td_coord_kind(td_coord_t *c, int64_t id, int *stop) {
  pthread_mutex_lock(&c->mu);
  pending_t *p = find(c, id);
  int kind = p ? p->kind : 0;
  if (stop) *stop = p ? p->stop : 0;
  pthread_mutex_unlock(&c->mu);
  return kind;
}

int td_coord_await(td_coord_t *c, int64_t id, int timeout_ms, char *reason, size_t len) {
  struct timespec until;
  td_deadline(&until, CLOCK_REALTIME, timeout_ms >= 0 ? timeout_ms : 0);
  pthread_mutex_lock(&c->mu);
  int status;
  for (;;) {
    td_coord_record_t *r = hist_find(c, id);
    status = r ? r->status : TD_CKPT_FAILED;
    if (status == TD_CKPT_FAILED && reason)
      snprintf(reason, len, "%s", r ? r->reason : "no such checkpoint or savepoint");
    if (status != TD_CKPT_IN_PROGRESS) break;
    if (timeout_ms < 0) pthread_cond_wait(&c->waiters, &c->mu);
    else if (pthread_cond_timedwait(&c->waiters, &c->mu, &until) == ETIMEDOUT)
      break;
  }
  pthread_mutex_unlock(&c->mu);
  return status;
}

size_t td_coord_history(td_coord_t *c, td_coord_record_t *out, size_t max) {
  pthread_mutex_lock(&c->mu);
  int64_t n = c->n_history < TD_COORD_HISTORY ? c->n_history : TD_COORD_HISTORY;
  size_t k = 0;
  for (int64_t i = c->n_history - n; i < c->n_history && k < max; i++)
    out[k++] = c->history[i % TD_COORD_HISTORY];
  pthread_mutex_unlock(&c->mu);
  return k;
}

/* The final checkpoint could not be written: the job cannot commit. */
static void final_failed(td_coord_t *c, int64_t id, const char *why) {
  char chk[4200];
  remove_tree(dir_of(c, id, chk, sizeof chk));
  hist_done(c, id, TD_CKPT_FAILED, 0, NULL, why);
  snprintf(c->error, sizeof c->error, "cannot write the final checkpoint %" PRId64 ": %s", id,
           why);
  logf_(c, "%s", c->error);
  c->final_failed = 1;
  c->stats.aborted++;
  pthread_cond_broadcast(&c->waiters);
}

static void final_locked(td_coord_t *c) {
  /* stopped with a savepoint: the job did not finish, the savepoint is
   * its last completed checkpoint and no final one is written */
  if (c->dir && !c->stopping) {
    int64_t id = c->next_id++;
    char chk[4200];
    dir_of(c, id, chk, sizeof chk);
    remove_tree(chk);
    pending_t fin = {.id = id, .kind = TD_CKPT_CHECKPOINT};
    hist_add(c, &fin, chk, 1);
    if (mkdir(chk, 0777) != 0) {
      final_failed(c, id, strerror(errno));
      return;
    }
    unsigned char *subs = calloc((size_t)c->n, 1);
    if (!subs) {
      final_failed(c, id, "out of memory");
      return;
    }
    for (int s = 0; s < c->n; s++) {
      subs[s] = TD_META_SUB_FINISHED;
      int rc = link_finished(c, s, id);
      if (rc) {
        free(subs);
        final_failed(c, id, strerror(-rc));
        return;
      }
    }
    char why[600];
    uint64_t size = 0;
    uint64_t *sub_size = calloc((size_t)c->n, sizeof *sub_size);
    if (!sub_size) {
      free(subs);
      final_failed(c, id, "out of memory");
      return;
    }
    pthread_mutex_unlock(&c->mu);
    int rc = write_metadata(c, id, subs, NULL, NULL, TD_META_FINAL, &size, sub_size, why,
                            sizeof why);
    free(subs);
    pthread_mutex_lock(&c->mu);
    if (rc) {
      free(sub_size);
      final_failed(c, id, why);
      return;
    }
    hist_done(c, id, TD_CKPT_COMPLETED, size, sub_size, NULL);
    free(sub_size);
    c->completed = id;
    c->stats.completed++;
    sweep(c);
  }
  c->final_done = 1;
  if (c->cfg.on_complete)
    c->cfg.on_complete(c->cfg.remote_ud, c->completed, TD_CKPT_CHECKPOINT, 0, 1);
  pthread_cond_broadcast(&c->waiters);
}

static void write_inflight(td_coord_t *c, inflight_t *f) {
  char chk[4200], err[512];
  pthread_mutex_lock(&c->mu);
  int pending = find(c, f->id) != NULL;
  pthread_mutex_unlock(&c->mu);
  if (!pending) return; /* aborted meanwhile: nothing to write */
  td_coord_chk_dir(c, f->id, chk, sizeof chk);
  td_snapshot_writer_t *w;
  int rc = td_snapshot_writer_open(&w, NULL, chk, f->name, TD_SNAPSHOT_KIND_STATE,
                                   err, sizeof err);
  if (rc == 0) rc = td_meta_identity_write(w, f->id, 0, c->job_name, err, sizeof err);
  for (int i = 0; rc == 0 && i < f->n; i++)
    rc = td_snapshot_write_section(w, f->tags[i], f->bufs[i].data, f->bufs[i].len,
                                   err, sizeof err);
  if (rc == 0) rc = td_snapshot_writer_commit(w, err, sizeof err);
  if (rc && w) td_snapshot_writer_abort(w);
  pthread_mutex_lock(&c->mu);
  pending_t *p = find(c, f->id);
  if (p) {
    if (rc) {
      p->failed = p->counted = 1;
      snprintf(p->reason, sizeof p->reason, "%.200s", err);
    } else {
      p->parts[f->subtask].inflight_done = 1;
    }
  }
  pthread_mutex_unlock(&c->mu);
}

static void *coord_main(void *arg) {
  td_coord_t *c = arg;
  pthread_mutex_lock(&c->mu);
  while (!c->stop) {
    while (c->inflight) {
      inflight_t *f = c->inflight;
      c->inflight = f->next;
      pthread_mutex_unlock(&c->mu);
      if (c->dir) write_inflight(c, f);
      free_inflight(f);
      pthread_mutex_lock(&c->mu);
    }
    int64_t now = mono_ms();
    for (pending_t *p = c->pending, *next; p; p = next) {
      next = p->next;
      update_acks(c, p);
      if (!p->failed && !participant(c) && now - p->start_ms >= c->cfg.timeout_ms) {
        p->failed = p->counted = 1;
        snprintf(p->reason, sizeof p->reason, "timed out after %" PRId64 " ms",
                 c->cfg.timeout_ms);
      }
      if (p->failed) {
        char why[sizeof p->reason];
        int64_t id = p->id, counted = p->counted;
        memcpy(why, p->reason, sizeof why);
        int savepoint = p->kind == TD_CKPT_SAVEPOINT;
        if (participant(c)) {
          /* the job's coordinator aborts it everywhere */
          if (c->cfg.on_decline)
            c->cfg.on_decline(c->cfg.remote_ud, id, p->fail_subtask, why, (int)counted);
          abort_locked(c, p, why);
          continue;
        }
        logf_(c, "%s %" PRId64 " aborted: %s", savepoint ? "savepoint" : "checkpoint", id, why);
        abort_locked(c, p, why);
        if (counted && !savepoint) count_failure(c, id, why);
      }
    }
    if (participant(c)) goto wait;
    /* complete every fully acknowledged savepoint, and the newest fully
     * acknowledged checkpoint; older pending checkpoints are subsumed by
     * it (Flink's CheckpointCoordinator) */
    for (int again = 1; again && !c->stop;) {
      again = 0;
      for (pending_t *p = c->pending; p; p = p->next)
        if (p->kind == TD_CKPT_SAVEPOINT && p->acked == c->n) {
          complete_locked(c, p);
          again = 1;
          break;
        }
    }
    pending_t *newest = NULL;
    for (pending_t *p = c->pending; p; p = p->next)
      if (p->kind == TD_CKPT_CHECKPOINT && p->acked == c->n) newest = p;
    if (newest && !c->stop) complete_locked(c, newest);
    int pending = 0, savepoints = 0;
    for (pending_t *p = c->pending; p; p = p->next) {
      pending++;
      if (p->kind == TD_CKPT_SAVEPOINT) savepoints++;
    }
    int sources_running = 0;
    for (int s = 0; s < c->n; s++)
      if (c->is_source[s] && !c->finished[s]) sources_running = 1;
    now = mono_ms();
    if (c->dir && c->cfg.interval_ms > 0 && sources_running && !savepoints && !c->stopping &&
        pending < c->cfg.max_concurrent &&
        now - c->last_trigger_ms >= c->cfg.interval_ms &&
        now - c->last_complete_ms >= c->cfg.min_pause_ms)
      trigger_locked(c, now);
    if (c->n_finished == c->n && !c->pending && !c->final_done && !c->final_failed)
      final_locked(c);
  wait:;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += TICK_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&c->wake, &c->mu, &ts);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}
