/* reload.c - live reload of a running job's logic (see reload.h). */
#include "reload.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "error.h"
#include "job.h"

/* How often the request thread looks at the candidate, ms. */
#define POLL_MS 10

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int (*check_fn)(const char *, const char *, size_t, char *, size_t);

/* The reload in progress (mu). */
static struct {
  td_reload_phase_t phase;
  td_reload_request_t req;   /* owned copy */
  char cut[4200];
  td_job_t *candidate;       /* the new logic's job while CANDIDATE */
  int ok;                    /* the outcome, once DONE */
  char message[2048];
  td_reload_times_t t;
} g;

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void td_reload_set_check(int (*check)(const char *, const char *, size_t, char *, size_t)) {
  pthread_mutex_lock(&mu);
  check_fn = check;
  pthread_mutex_unlock(&mu);
}

const char *td_reload_phase_name(td_reload_phase_t p) {
  static const char *const names[] = {"IDLE", "CUTTING", "SWAPPING", "CANDIDATE", "ROLLING_BACK",
                                      "DONE"};
  return (unsigned)p < sizeof names / sizeof names[0] ? names[p] : "UNKNOWN";
}

td_reload_phase_t td_reload_phase(void) {
  pthread_mutex_lock(&mu);
  td_reload_phase_t p = g.phase;
  pthread_mutex_unlock(&mu);
  return p;
}

void td_reload_request_free(td_reload_request_t *req) {
  if (!req) return;
  free((char *)req->path);
  free((char *)req->text);
  if (req->args)
    for (int i = 0; i < req->n_args; i++) free((char *)req->args[i]);
  free((void *)req->args);
  memset(req, 0, sizeof *req);
}

/* A deep copy of src into dst; 0 or TD_ENOMEM (dst then freed). */
static int request_copy(td_reload_request_t *dst, const td_reload_request_t *src) {
  memset(dst, 0, sizeof *dst);
  dst->allow_non_restored = src->allow_non_restored;
  dst->len = src->len;
  dst->path = strdup(src->path ? src->path : "");
  char *text = malloc(src->len + 1);
  if (text) {
    if (src->len) memcpy(text, src->text, src->len);
    text[src->len] = 0;
  }
  dst->text = text;
  int bad = !dst->path || !text;
  if (src->args && src->n_args > 0) {
    const char **a = calloc((size_t)src->n_args, sizeof *a);
    dst->args = a;
    dst->n_args = a ? src->n_args : 0;
    for (int i = 0; a && i < src->n_args; i++)
      if (!(a[i] = strdup(src->args[i] ? src->args[i] : ""))) bad = 1;
    if (!a) bad = 1;
  }
  if (bad) {
    td_reload_request_free(dst);
    return TD_ENOMEM;
  }
  return 0;
}

/* Settle the reload (mu held): phase DONE with the outcome. */
static void settle_locked(int ok, const char *message) {
  g.phase = TD_RELOAD_DONE;
  g.ok = ok;
  if (message) snprintf(g.message, sizeof g.message, "%s", message);
  g.candidate = NULL;
  g.t.settled = wall_ms();
  pthread_cond_broadcast(&changed);
}

int td_reload_set_cut(const char *path) {
  pthread_mutex_lock(&mu);
  int rc = TD_EINVAL;
  if (g.phase == TD_RELOAD_CUTTING) {
    snprintf(g.cut, sizeof g.cut, "%s", path);
    g.phase = TD_RELOAD_SWAPPING;
    g.t.cut = wall_ms();
    pthread_cond_broadcast(&changed);
    rc = 0;
  } else if (g.phase == TD_RELOAD_SWAPPING && strcmp(g.cut, path) == 0) {
    rc = 0; /* both threads record the same cut */
  }
  pthread_mutex_unlock(&mu);
  return rc;
}

int td_reload_take(td_reload_request_t *req, char *cut, size_t cutlen) {
  pthread_mutex_lock(&mu);
  int rc = TD_EINVAL;
  if (g.phase == TD_RELOAD_SWAPPING) {
    rc = request_copy(req, &g.req);
    snprintf(cut, cutlen, "%s", g.cut);
  }
  pthread_mutex_unlock(&mu);
  return rc;
}

void td_reload_on_start(td_job_t *job) {
  pthread_mutex_lock(&mu);
  if (g.phase == TD_RELOAD_SWAPPING) {
    g.phase = TD_RELOAD_CANDIDATE;
    g.candidate = job;
    g.t.started = wall_ms();
    pthread_cond_broadcast(&changed);
  } else if (g.phase == TD_RELOAD_ROLLING_BACK) {
    settle_locked(0, NULL); /* the message was set by the claim */
  }
  pthread_mutex_unlock(&mu);
}

int td_reload_claim_failure(const char *message) {
  pthread_mutex_lock(&mu);
  int claimed = 0;
  if (g.phase == TD_RELOAD_SWAPPING || g.phase == TD_RELOAD_CANDIDATE) {
    g.phase = TD_RELOAD_ROLLING_BACK;
    g.candidate = NULL;
    snprintf(g.message, sizeof g.message, "%s", message ? message : "the new logic failed");
    pthread_cond_broadcast(&changed);
    claimed = 1;
  } else if (g.phase == TD_RELOAD_ROLLING_BACK) {
    claimed = 1;
  }
  pthread_mutex_unlock(&mu);
  return claimed;
}

void td_reload_settle(int ok, const char *message) {
  pthread_mutex_lock(&mu);
  if (g.phase == TD_RELOAD_CANDIDATE || g.phase == TD_RELOAD_SWAPPING)
    settle_locked(ok, ok ? "" : message);
  pthread_mutex_unlock(&mu);
}

void td_reload_rolled_back(void) {
  pthread_mutex_lock(&mu);
  if (g.phase == TD_RELOAD_ROLLING_BACK) settle_locked(0, NULL);
  pthread_mutex_unlock(&mu);
}

/* Whether the candidate job has completed a periodic checkpoint. */
static int checkpointed(td_job_t *job) {
  td_coord_record_t *rec = malloc(sizeof *rec * TD_COORD_HISTORY);
  if (!rec) return 0;
  size_t n = td_coord_history(td_job_coordinator(job), rec, TD_COORD_HISTORY);
  int done = 0;
  for (size_t i = 0; i < n && i < TD_COORD_HISTORY; i++)
    if (rec[i].kind == TD_CKPT_CHECKPOINT && rec[i].status == TD_CKPT_COMPLETED && !rec[i].final)
      done = 1;
  free(rec);
  return done;
}

/* Look at the candidate (mu not held): note when records flow, and
 * settle with success once it is healthy. */
static void watch_candidate(void) {
  td_job_t *job = td_job_current();
  if (!job) return;
  pthread_mutex_lock(&mu);
  int ours = g.phase == TD_RELOAD_CANDIDATE && g.candidate == job;
  int64_t started = g.t.started;
  pthread_mutex_unlock(&mu);
  if (!ours) {
    td_job_release(job);
    return;
  }
  int n;
  td_subtask_t *st = td_job_subtasks(job, &n);
  int64_t moved = 0;
  for (int i = 0; i < n; i++) moved += atomic_load(&st[i].records_read) + atomic_load(&st[i].records_in);
  const td_job_spec_t *spec = td_job_spec_of(job);
  int periodic = spec->checkpoint && spec->checkpoint->interval_ms > 0;
  int healthy = periodic ? checkpointed(job) : wall_ms() - started >= TD_RELOAD_GRACE_MS;
  int64_t now = wall_ms();
  pthread_mutex_lock(&mu);
  if (g.phase == TD_RELOAD_CANDIDATE && g.candidate == job) {
    if (moved > 0 && !g.t.flowing) g.t.flowing = now;
    if (healthy) settle_locked(1, "");
  }
  pthread_mutex_unlock(&mu);
  td_job_release(job);
}

/* Back to IDLE after a request (mu held), freeing its copy. */
static void finish_locked(void) {
  td_reload_request_free(&g.req);
  g.phase = TD_RELOAD_IDLE;
  g.candidate = NULL;
  pthread_cond_broadcast(&changed);
}

int td_job_reload(td_job_t *job, const td_reload_request_t *req, char *cut, size_t cutlen,
                  td_reload_times_t *times, char *msg, size_t msglen) {
  cut[0] = 0;
  msg[0] = 0;
  if (times) memset(times, 0, sizeof *times);
  pthread_mutex_lock(&mu);
  if (g.phase != TD_RELOAD_IDLE) {
    snprintf(msg, msglen, "a reload of this job is in progress (%s %s): one at a time",
             td_reload_phase_name(g.phase), g.req.path ? g.req.path : "");
    pthread_mutex_unlock(&mu);
    td_job_release(job);
    return -EBUSY;
  }
  memset(&g.t, 0, sizeof g.t);
  g.t.requested = wall_ms();
  g.cut[0] = g.message[0] = 0;
  g.ok = 0;
  /* no arguments given: the running job's */
  td_reload_request_t with_args = *req;
  const td_job_spec_t *spec = td_job_spec_of(job);
  if (!with_args.args) {
    with_args.args = spec->args;
    with_args.n_args = spec->n_args;
  }
  if (request_copy(&g.req, &with_args) != 0) {
    pthread_mutex_unlock(&mu);
    td_job_release(job);
    snprintf(msg, msglen, "out of memory");
    return TD_ENOMEM;
  }
  g.phase = TD_RELOAD_CUTTING;
  int (*check)(const char *, const char *, size_t, char *, size_t) = check_fn;
  pthread_mutex_unlock(&mu);

  char why[2048] = "";
  int rc = 0;
  if (!spec->savepoint_dir) {
    snprintf(why, sizeof why, "a reload needs the job to have a checkpoint directory "
             "(tide run --checkpoint-dir D): its cut is a savepoint written there");
    rc = TD_EINVAL;
  } else if (spec->job_index != 1) {
    snprintf(why, sizeof why, "the running job is job %d of its script; only a script's first "
             "job can be reloaded", spec->job_index);
    rc = TD_EINVAL;
  } else if (check && check(req->path, req->text, req->len, why, sizeof why) != 0) {
    char tmp[2048];
    snprintf(tmp, sizeof tmp, "the new script does not load: %s", why);
    snprintf(why, sizeof why, "%s", tmp);
    rc = TD_EINVAL;
  }
  if (rc == 0) {
    char err[1024] = "";
    rc = td_job_savepoint(job, spec->savepoint_dir, TD_STOP_SUSPEND | TD_STOP_FOR_RELOAD, -1, cut, cutlen, err,
                          sizeof err);
    if (rc == 0) td_reload_set_cut(cut);
    else snprintf(why, sizeof why, "the cut (a stop with savepoint) failed: %s", err);
    if (rc && rc != TD_EINVAL && rc != TD_ECANCELED) rc = TD_EIO;
  }
  td_job_release(job);
  if (rc) {
    pthread_mutex_lock(&mu);
    finish_locked();
    pthread_mutex_unlock(&mu);
    snprintf(msg, msglen, "%s; the old logic %s", why,
             rc == TD_ECANCELED ? "is not running" : "keeps running");
    if (times) times->requested = g.t.requested;
    return rc;
  }
  /* the planning thread swaps the logic; watch the candidate until the
   * reload settles */
  pthread_mutex_lock(&mu);
  while (g.phase != TD_RELOAD_DONE) {
    int watch = g.phase == TD_RELOAD_CANDIDATE;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += POLL_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&changed, &mu, &ts);
    if (watch && g.phase == TD_RELOAD_CANDIDATE) {
      pthread_mutex_unlock(&mu);
      watch_candidate();
      pthread_mutex_lock(&mu);
    }
  }
  int ok = g.ok;
  if (times) *times = g.t;
  snprintf(msg, msglen, "%s", g.message);
  finish_locked();
  pthread_mutex_unlock(&mu);
  return ok ? 0 : TD_EIO;
}
