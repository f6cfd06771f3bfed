/*
 * test_checkpoint.c - unit tests for the checkpoint coordinator
 * (core/checkpoint.h): periodic triggers for source subtasks only,
 * completion and the _metadata file (read back with state/snapshot.h),
 * snapshots taken by fork()ed children (exit 0 completes, exit 1 aborts),
 * aborts by timeout, decline and td_coord_stop, the max_concurrent limit,
 * finished subtasks whose final state is hard-linked into later checkpoints
 * and the final checkpoint (FLIP-147), retention and the sweep of
 * incomplete directories, and in-flight data of unaligned checkpoints.
 *
 * Each case runs a real coordinator thread in its own mkdtemp directory
 * under $TMPDIR (or /tmp) and removes it. The coordinator works on its own
 * clock, so the cases poll with a deadline (DEADLINE_MS) and only ever
 * check that something happens eventually, or that it has not happened
 * before what it waits for: never how long it took.
 *
 * Forked children only call close, read, nanosleep and _exit: the parent has
 * threads, and under AddressSanitizer the child must not allocate.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "error.h"
#include "metadata.h"
#include "snapshot.h"
#include "testlib.h"
#include "tmpdir.h"

#define DEADLINE_MS 5000 /* how long "eventually" may take */
/* most cases: subtask 0 a source, subtask 1 downstream of it */
static const unsigned char src_op[2] = {1, 0};

#define JOB_INFO "\x93\xa3job\x01\x00 fingerprint" /* opaque, with a NUL */

/* ---- time and polling ---- */

static int64_t now_ms(void) { /* the coordinator's clock, same rounding */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* wait_requested - the id subtask s is asked to inject once it is newer
 * than `after`, or 0 when that does not happen by the deadline. */
static int64_t wait_requested(td_coord_t *c, int s, int64_t after) {
  int64_t end = now_ms() + DEADLINE_MS;
  for (;;) {
    int64_t id = td_coord_requested(c, s);
    if (id > after) return id;
    if (now_ms() > end) return 0;
    nap_ms(1);
  }
}

/* wait_completed - whether checkpoint id (or a newer one) completes by the
 * deadline. */
static int wait_completed(td_coord_t *c, int64_t id) {
  int64_t end = now_ms() + DEADLINE_MS, done = 0;
  int final = 0;
  for (int64_t left; (left = end - now_ms()) > 0;) {
    if (td_coord_wait(c, id - 1, (int)left, &done, &final) != 1) return 0;
    if (done >= id) return 1;
    if (final) return 0; /* the last one came, and it was not id */
  }
  return 0;
}

/* wait_final - the final checkpoint's id (0 without a directory) once
 * td_coord_wait reports it, or -1 when it does not come by the deadline. */
static int64_t wait_final(td_coord_t *c) {
  int64_t end = now_ms() + DEADLINE_MS, done = 0;
  int final = 0;
  for (int64_t left; (left = end - now_ms()) > 0;) {
    if (td_coord_wait(c, done, (int)left, &done, &final) != 1) return -1;
    if (final) return done;
  }
  return -1;
}

static td_coord_stats_t stats_of(td_coord_t *c) {
  td_coord_stats_t st;
  td_coord_stats(c, &st);
  return st;
}

/* wait_aborted - whether stats.aborted reaches n by the deadline. */
static int wait_aborted(td_coord_t *c, int64_t n) {
  int64_t end = now_ms() + DEADLINE_MS;
  while (stats_of(c).aborted < n) {
    if (now_ms() > end) return 0;
    nap_ms(1);
  }
  return 1;
}

/* quiet_for - no checkpoint newer than the newest completed one completes
 * (and no final one) within ms: what must wait for something else does. */
static int quiet_for(td_coord_t *c, int ms) {
  int64_t done;
  int final;
  return td_coord_wait(c, td_coord_completed(c), ms, &done, &final) == 0;
}

/* ack_all - subtasks 0..n-1 report checkpoint id written (no child). */
static void ack_all(td_coord_t *c, int64_t id, int n) {
  for (int s = 0; s < n; s++) td_coord_snapshot_started(c, id, s, 0, -1, 0);
}

/* ---- a coordinator in a temporary directory ---- */

typedef struct fx {
  char root[512];  /* the mkdtemp directory */
  char dir[600];   /* root/ckpt: the checkpoint directory (made by new) */
  td_ckpt_config_t cfg;
  td_coord_t *c;
  int64_t t0;      /* before td_coord_new */
  pthread_mutex_t mu;
  int fails;       /* cfg.fail calls */
  char failed[1200], logged[4096]; /* the fail message; every log line */
} fx_t;

static void fx_on_fail(void *ud, const char *msg) {
  fx_t *f = ud;
  pthread_mutex_lock(&f->mu);
  f->fails++;
  snprintf(f->failed, sizeof f->failed, "%s", msg);
  pthread_mutex_unlock(&f->mu);
}

static void fx_on_log(void *ud, const char *line) {
  fx_t *f = ud;
  pthread_mutex_lock(&f->mu);
  size_t n = strlen(f->logged);
  snprintf(f->logged + n, sizeof f->logged - n, "%s\n", line);
  pthread_mutex_unlock(&f->mu);
}

/* fx_fails - cfg.fail calls so far, and the last message into buf. */
static int fx_fails(fx_t *f, char *buf, size_t len) {
  pthread_mutex_lock(&f->mu);
  int n = f->fails;
  snprintf(buf, len, "%s", f->failed);
  pthread_mutex_unlock(&f->mu);
  return n;
}

static int fx_init(fx_t *f) {
  memset(f, 0, sizeof *f);
  const char *t = getenv("TMPDIR");
  snprintf(f->root, sizeof f->root, "%s/tide-ckpt-XXXXXX", t && *t ? t : "/tmp");
  if (!mkdtemp(f->root)) {
    perror("mkdtemp");
    TD_CHECK(!"mkdtemp failed");
    return 0;
  }
  snprintf(f->dir, sizeof f->dir, "%s/ckpt", f->root);
  f->cfg.dir = f->dir;
  f->cfg.interval_ms = 20;
  f->cfg.timeout_ms = 60000; /* never, unless a case wants it */
  f->cfg.min_pause_ms = 0;
  f->cfg.max_concurrent = 1;
  f->cfg.retained = 5;
  f->cfg.first_id = 1;
  f->cfg.job_info = JOB_INFO;
  f->cfg.job_info_len = sizeof JOB_INFO - 1;
  f->cfg.tolerable_failed = -1;
  f->cfg.fail = fx_on_fail;
  f->cfg.fail_ud = f;
  f->cfg.log = fx_on_log;
  f->cfg.log_ud = f;
  pthread_mutex_init(&f->mu, NULL);
  return 1;
}

/* fx_start - td_coord_new and td_coord_start with f->cfg. */
static int fx_start(fx_t *f, int n, const unsigned char *is_source) {
  char err[256] = "";
  f->t0 = now_ms();
  int rc = td_coord_new(&f->c, &f->cfg, n, is_source, err, sizeof err);
  if (rc != 0) fprintf(stderr, "  td_coord_new: %s (%s)\n", td_strerror(rc), err);
  TD_CHECK_INT(rc, 0);
  if (rc != 0) return 0;
  TD_CHECK_INT(td_coord_start(f->c), 0);
  return 1;
}

/* first_request - the first checkpoint, as subtask 0 (a source) is asked
 * to inject it: the config's first_id. */
static int64_t first_request(fx_t *f) {
  int64_t id = wait_requested(f->c, 0, 0);
  TD_CHECK_INT(id, f->cfg.first_id);
  return id;
}

static void fx_free(fx_t *f) {
  td_coord_free(f->c);
  f->c = NULL;
  if (f->root[0]) td_tmpdir_remove(f->root);
}

/* chk_path - DIR/chk-<id>/<name> (name "" for the directory itself). */
static const char *chk_path(const fx_t *f, int64_t id, const char *name,
                            char *buf, size_t len) {
  snprintf(buf, len, "%s/chk-%lld%s%s", f->dir, (long long)id, *name ? "/" : "",
           name);
  return buf;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static int chk_exists(const fx_t *f, int64_t id, const char *name) {
  char p[1024];
  return exists(chk_path(f, id, name, p, sizeof p));
}

/* write_snap - DIR/NAME as a snapshot file with one section holding text. */
static int write_snap(const char *dir, const char *name, const char *text) {
  td_snapshot_writer_t *w;
  char err[256];
  int rc = td_snapshot_writer_open(&w, NULL, dir, name, TD_SNAPSHOT_KIND_STATE, err, sizeof err);
  if (rc == 0) rc = td_snapshot_write_section(w, 1, text, strlen(text), err, sizeof err);
  if (rc == 0) rc = td_snapshot_writer_commit(w, err, sizeof err);
  else td_snapshot_writer_abort(w);
  return rc == 0;
}

static int write_file(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  if (!fp) return 0;
  int ok = fputs(text, fp) >= 0;
  return fclose(fp) == 0 && ok;
}

/* same_file - a and b are one inode (a hard link of the other). */
static int same_file(const char *a, const char *b) {
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

/* ---- _metadata, decoded as checkpoint.h documents it ---- */

typedef struct meta {
  uint32_t kind;
  size_t sections;
  uint32_t tags[5];
  size_t info_len;
  uint64_t id, wall;
  uint32_t flags, n;
  unsigned char job[64];
  size_t job_len;
  unsigned char subs[16];
  size_t n_subs;
} meta_t;

static uint64_t get_le(const unsigned char *p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* read_meta - DIR/chk-<id>/_metadata into *m: 0, or the reader's code. */
static int read_meta(const fx_t *f, int64_t id, meta_t *m) {
  char path[1024], err[512];
  memset(m, 0, sizeof *m);
  td_snapshot_t *s;
  int rc = td_snapshot_read(&s, NULL, chk_path(f, id, "_metadata", path, sizeof path),
                            err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "  %s\n", err);
    return rc;
  }
  m->kind = td_snapshot_kind(s);
  m->sections = td_snapshot_count(s);
  for (size_t i = 0; i < m->sections && i < 5; i++) {
    td_bytes_t b;
    td_snapshot_section(s, i, &m->tags[i], &b);
    const unsigned char *p = b.data;
    if (i == 0) {
      m->info_len = b.len;
      if (b.len >= 24) {
        m->id = get_le(p, 8);
        m->wall = get_le(p + 8, 8);
        m->flags = (uint32_t)get_le(p + 16, 4);
        m->n = (uint32_t)get_le(p + 20, 4);
      }
    } else if (i == 1) {
      m->job_len = b.len;
      if (b.len <= sizeof m->job) memcpy(m->job, p, b.len);
    } else if (i == 2) {
      m->n_subs = b.len;
      if (b.len <= sizeof m->subs) memcpy(m->subs, p, b.len);
    }
  }
  td_snapshot_free(s);
  return 0;
}

/* check_meta(f, id, flags, n, sub0, sub1, ...) - DIR/chk-<id>/_metadata
 * is a valid snapshot file saying checkpoint id, flags, n subtasks, the
 * config's job_info, and sub<i> for subtask i's flags. */
#define check_meta(f_, id_, flags_, n_, ...)                                \
  do {                                                                      \
    static const unsigned char want_[] = {__VA_ARGS__};                     \
    meta_t m_;                                                              \
    TD_CHECK_INT(read_meta((f_), (id_), &m_), 0);                           \
    TD_CHECK_INT(m_.kind, TD_SNAPSHOT_KIND_METADATA);                       \
    TD_CHECK_INT(m_.sections, 5);                                           \
    TD_CHECK_INT(m_.tags[0], TD_META_INFO);                                 \
    TD_CHECK_INT(m_.tags[1], TD_META_JOB);                                  \
    TD_CHECK_INT(m_.tags[2], TD_META_SUBTASKS);                             \
    TD_CHECK_INT(m_.tags[3], TD_META_NAME);                                 \
    TD_CHECK_INT(m_.tags[4], TD_META_FILES);                                \
    TD_CHECK_INT(m_.info_len, 32);                                          \
    TD_CHECK_INT(m_.id, (id_));                                             \
    TD_CHECK(m_.wall > 0);                                                  \
    TD_CHECK_INT(m_.flags, (flags_));                                       \
    TD_CHECK_INT(m_.n, (n_));                                               \
    TD_CHECK_INT(m_.job_len, sizeof JOB_INFO - 1);                          \
    TD_CHECK(memcmp(m_.job, JOB_INFO, sizeof JOB_INFO - 1) == 0);           \
    TD_CHECK_INT(m_.n_subs, (n_));                                          \
    TD_CHECK_INT(sizeof want_, (n_));                                       \
    for (size_t i_ = 0; i_ < sizeof want_ && i_ < m_.n_subs; i_++)          \
      TD_CHECK_INT(m_.subs[i_], want_[i_]);                                 \
  } while (0)

/* ---- snapshot children ---- */

typedef struct child {
  pid_t pid;
  int wfd;   /* closing it lets the child go on */
  int errfd; /* child_spawn_msg: the read end of its message pipe */
} child_t;

/* child_spawn_msg - fork a child that waits until child_release, sleeps
 * briefly, writes msg (if any) to a pipe whose read end is ch->errfd (as
 * the runtime's snapshot children report failures) and exits with
 * `code`. */
static int child_spawn_msg(child_t *ch, int code, const char *msg) {
  int fds[2], efd[2] = {-1, -1};
  ch->pid = -1;
  ch->wfd = -1;
  ch->errfd = -1;
  if (pipe(fds) != 0 || (msg && pipe(efd) != 0)) {
    TD_CHECK(!"pipe failed");
    return 0;
  }
  pid_t pid = fork();
  if (pid == 0) { /* async-signal-safe calls only */
    close(fds[1]);
    char b;
    for (;;) {
      ssize_t r = read(fds[0], &b, 1);
      if (r == 0 || (r < 0 && errno != EINTR)) break;
    }
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    if (msg) {
      ssize_t w = write(efd[1], msg, strlen(msg));
      (void)w;
    }
    _exit(code);
  }
  close(fds[0]);
  if (msg) close(efd[1]);
  if (pid < 0) {
    close(fds[1]);
    TD_CHECK(!"fork failed");
    return 0;
  }
  ch->pid = pid;
  ch->wfd = fds[1];
  ch->errfd = efd[0];
  return 1;
}

/* child_spawn - a child without a message pipe (see child_spawn_msg). */
static int child_spawn(child_t *ch, int code) { return child_spawn_msg(ch, code, NULL); }

static void child_release(child_t *ch) {
  if (ch->wfd >= 0) close(ch->wfd);
  ch->wfd = -1;
}

/* child_reaped - pid is no child of ours any more: somebody reaped it. */
static int child_reaped(pid_t pid) {
  return waitpid(pid, NULL, WNOHANG) == -1 && errno == ECHILD;
}

/* child_done - release and, if the coordinator did not, reap the child. */
static void child_done(child_t *ch) {
  child_release(ch);
  if (ch->pid > 0) waitpid(ch->pid, NULL, 0);
  ch->pid = -1;
}

/* ---- a thread blocked in td_coord_wait ---- */

typedef struct waiter {
  td_coord_t *c;
  int64_t after;
  int timeout_ms;
  int rc, final;
  int64_t completed;
  pthread_t th;
} waiter_t;

static void *waiter_main(void *arg) {
  waiter_t *w = arg;
  w->rc = td_coord_wait(w->c, w->after, w->timeout_ms, &w->completed, &w->final);
  return NULL;
}

static void waiter_start(waiter_t *w, td_coord_t *c, int64_t after) {
  memset(w, 0, sizeof *w);
  w->c = c;
  w->after = after;
  w->timeout_ms = 2 * DEADLINE_MS; /* a bound, so a failure cannot hang */
  w->rc = -99;
  if (pthread_create(&w->th, NULL, waiter_main, w) != 0) abort();
}

static void wbuf_set(td_wbuf_t *b, const char *s, size_t n) {
  memset(b, 0, sizeof *b);
  if (n == 0) return; /* an empty, never allocated buffer */
  if (td_wbuf_reserve(b, n) != 0) abort();
  memcpy(b->data, s, n);
  b->len = n;
}

/* ---- cases ---- */

TD_TEST(test_checkpoint_new_rejects_bad_config) {
  fx_t f;
  if (!fx_init(&f)) return;
  char err[256];
  td_coord_t *c = (td_coord_t *)&c;
  td_ckpt_config_t good = f.cfg, bad;
  TD_CHECK_INT(td_coord_new(&c, NULL, 2, src_op, err, sizeof err), TD_EINVAL);
  TD_CHECK(c == NULL);
  TD_CHECK_INT(td_coord_new(&c, &good, 0, src_op, err, sizeof err), TD_EINVAL);
  bad = good, bad.max_concurrent = 0;
  TD_CHECK_INT(td_coord_new(&c, &bad, 2, src_op, err, sizeof err), TD_EINVAL);
  bad = good, bad.retained = 0;
  TD_CHECK_INT(td_coord_new(&c, &bad, 2, src_op, err, sizeof err), TD_EINVAL);
  bad = good, bad.first_id = 0;
  TD_CHECK_INT(td_coord_new(&c, &bad, 2, src_op, err, sizeof err), TD_EINVAL);
  bad = good, bad.timeout_ms = 0;
  TD_CHECK_INT(td_coord_new(&c, &bad, 2, src_op, err, sizeof err), TD_EINVAL);
  bad = good, bad.min_pause_ms = -1;
  err[0] = 0;
  TD_CHECK_INT(td_coord_new(&c, &bad, 2, src_op, err, sizeof err), TD_EINVAL);
  TD_CHECK(c == NULL);
  TD_CHECK(err[0] != 0);
  TD_CHECK(!exists(f.dir)); /* nothing created for a bad config */

  /* a directory that cannot be created: -errno, with a message */
  char file[700];
  snprintf(file, sizeof file, "%s/plain", f.root);
  TD_CHECK(write_file(file, "x"));
  bad = good;
  snprintf(file, sizeof file, "%s/plain/ckpt", f.root);
  bad.dir = file;
  err[0] = 0;
  TD_CHECK_INT(td_coord_new(&c, &bad, 2, src_op, err, sizeof err), -ENOTDIR);
  TD_CHECK(c == NULL);
  TD_CHECK(strstr(err, file) != NULL);

  /* a good one creates DIR (parents included) and DIR/finished, and
   * copies what the config points to */
  char dir[700], buf[800];
  char job[] = "job";
  snprintf(dir, sizeof dir, "%s/a/b/ckpt", f.root);
  good.dir = dir;
  good.job_info = job;
  good.job_info_len = 3;
  TD_CHECK_INT(td_coord_new(&c, &good, 2, src_op, err, sizeof err), 0);
  memset(dir + strlen(f.root), 'x', 4); /* the caller's copy changes */
  snprintf(buf, sizeof buf, "%s/a/b/ckpt/finished", f.root);
  TD_CHECK(exists(buf));
  snprintf(dir, sizeof dir, "%s/a/b/ckpt", f.root);
  snprintf(buf, sizeof buf, "%s/chk-12", dir);
  char got[900];
  TD_CHECK_STR(td_coord_chk_dir(c, 12, got, sizeof got), buf);
  snprintf(buf, sizeof buf, "%s/finished", dir);
  TD_CHECK_STR(td_coord_finished_dir(c, got, sizeof got), buf);
  TD_CHECK_INT(td_coord_requested(c, 0), 0);
  TD_CHECK_INT(td_coord_completed(c), 0);
  td_coord_free(c); /* never started */
  td_coord_free(NULL);
  fx_free(&f);
}

TD_TEST(test_checkpoint_trigger_asks_sources_only) {
  static const unsigned char src[3] = {1, 0, 1};
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.first_id = 7;
  if (fx_start(&f, 3, src)) {
    int64_t id = wait_requested(f.c, 0, 0);
    int64_t seen = now_ms();
    TD_CHECK_INT(id, 7);
    TD_CHECK(seen - f.t0 >= f.cfg.interval_ms); /* not before the interval */
    TD_CHECK_INT(wait_requested(f.c, 2, 0), 7);
    TD_CHECK(chk_exists(&f, 7, ""));
    TD_CHECK(!chk_exists(&f, 7, "_metadata"));
    /* max_concurrent 1 and nothing acknowledged: no second trigger */
    TD_CHECK(quiet_for(f.c, 100));
    TD_CHECK_INT(td_coord_requested(f.c, 0), 7);
    TD_CHECK_INT(td_coord_requested(f.c, 1), 0); /* never a non-source */
    TD_CHECK_INT(td_coord_requested(f.c, 2), 7);
    TD_CHECK(!chk_exists(&f, 8, ""));
    TD_CHECK_INT(td_coord_completed(f.c), 0);
  }
  fx_free(&f);
}

TD_TEST(test_checkpoint_no_trigger_without_dir) {
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.dir = NULL;
  if (fx_start(&f, 2, src_op)) {
    char buf[64] = "junk";
    TD_CHECK_STR(td_coord_chk_dir(f.c, 1, buf, sizeof buf), "");
    strcpy(buf, "junk");
    TD_CHECK_STR(td_coord_finished_dir(f.c, buf, sizeof buf), "");
    TD_CHECK(quiet_for(f.c, 150));
    TD_CHECK_INT(td_coord_requested(f.c, 0), 0);
    TD_CHECK_INT(td_coord_requested(f.c, 1), 0);
    TD_CHECK_INT(stats_of(f.c).completed, 0);
    TD_CHECK(!exists(f.dir));
  }
  fx_free(&f);
}

TD_TEST(test_checkpoint_completes_when_every_subtask_acked) {
  static const unsigned char src[3] = {1, 0, 0};
  fx_t f;
  if (!fx_init(&f)) return;
  if (fx_start(&f, 3, src)) {
    waiter_t w;
    waiter_start(&w, f.c, 0);
    int64_t id = first_request(&f);
    td_coord_snapshot_started(f.c, id, 0, 0, -1, 0);
    td_coord_snapshot_started(f.c, id, 2, 0, -1, 0);
    td_coord_snapshot_started(f.c, id, 2, 0, -1, 0); /* twice: counted once */
    TD_CHECK(quiet_for(f.c, 100));
    TD_CHECK(!chk_exists(&f, id, "_metadata")); /* subtask 1 is missing */
    td_coord_snapshot_started(f.c, id, 1, 0, -1, 0);
    pthread_join(w.th, NULL);
    TD_CHECK_INT(w.rc, 1);
    TD_CHECK_INT(w.completed, id);
    TD_CHECK_INT(w.final, 0);
    TD_CHECK_INT(td_coord_completed(f.c), id);
    check_meta(&f, id, 0, 3, 0, 0, 0);
    TD_CHECK(!chk_exists(&f, id, "_metadata.tmp"));
    char path[1024], err[512];
    TD_CHECK_INT(td_meta_verify(chk_path(&f, id, "", path, sizeof path), NULL, NULL, NULL,
                                NULL, err, sizeof err),
                 0);
    td_coord_stats_t st = stats_of(f.c);
    TD_CHECK_INT(st.completed, 1);
    TD_CHECK_INT(st.aborted, 0);
    TD_CHECK(st.last_duration_ms >= 0);
    /* td_coord_wait returns at once for what completed already */
    int64_t done = 0;
    int final = -1;
    TD_CHECK_INT(td_coord_wait(f.c, id - 1, 0, &done, &final), 1);
    TD_CHECK_INT(done, id);
    td_coord_record_pause(f.c, 5);
    td_coord_record_pause(f.c, 7);
    st = stats_of(f.c);
    TD_CHECK_INT(st.pauses, 2);
    TD_CHECK_INT(st.sum_pause_us, 12);
    TD_CHECK_INT(st.max_pause_us, 7);
  }
  fx_free(&f);
}

TD_TEST(test_checkpoint_child_exit_0_completes_after_exit) {
  static const unsigned char src[1] = {1};
  fx_t f;
  if (!fx_init(&f)) return;
  child_t ch = {-1, -1, -1};
  if (fx_start(&f, 1, src) && child_spawn(&ch, 0)) {
    int64_t id = first_request(&f);
    td_coord_snapshot_started(f.c, id, 0, ch.pid, -1, 0);
    TD_CHECK(quiet_for(f.c, 100));
    TD_CHECK_INT(td_coord_completed(f.c), 0); /* the child still runs */
    TD_CHECK(!chk_exists(&f, id, "_metadata"));
    TD_CHECK(!child_reaped(ch.pid));
    child_release(&ch);
    TD_CHECK(wait_completed(f.c, id));
    TD_CHECK_INT(td_coord_completed(f.c), id);
    TD_CHECK(chk_exists(&f, id, "_metadata"));
    TD_CHECK(child_reaped(ch.pid)); /* the coordinator waited for it */
    TD_CHECK_INT(stats_of(f.c).aborted, 0);
  }
  child_done(&ch);
  fx_free(&f);
}

TD_TEST(test_checkpoint_child_exit_1_aborts) {
  fx_t f;
  if (!fx_init(&f)) return;
  child_t ch = {-1, -1, -1};
  if (fx_start(&f, 2, src_op) && child_spawn(&ch, 1)) {
    int64_t id = first_request(&f);
    td_coord_snapshot_started(f.c, id, 0, 0, -1, 0);
    td_coord_snapshot_started(f.c, id, 1, ch.pid, -1, 0);
    TD_CHECK(chk_exists(&f, id, ""));
    child_release(&ch);
    TD_CHECK(wait_aborted(f.c, 1));
    TD_CHECK(!chk_exists(&f, id, "")); /* directory removed */
    TD_CHECK_INT(td_coord_completed(f.c), 0);
    TD_CHECK_INT(stats_of(f.c).completed, 0);
    TD_CHECK(child_reaped(ch.pid));
    /* the next checkpoint goes on as usual */
    int64_t next = wait_requested(f.c, 0, id);
    TD_CHECK_INT(next, id + 1);
    ack_all(f.c, next, 2);
    TD_CHECK(wait_completed(f.c, next));
    check_meta(&f, next, 0, 2, 0, 0);
    TD_CHECK(!chk_exists(&f, id, ""));
  }
  child_done(&ch);
  fx_free(&f);
}

TD_TEST(test_checkpoint_timeout_aborts) {
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.timeout_ms = 50;
  if (fx_start(&f, 2, src_op)) {
    int64_t id = first_request(&f);
    td_coord_snapshot_started(f.c, id, 0, 0, -1, 0); /* subtask 1 never acks */
    TD_CHECK(wait_aborted(f.c, 1));
    /* triggered after the interval, aborted after the timeout */
    TD_CHECK(now_ms() - f.t0 >= f.cfg.interval_ms + f.cfg.timeout_ms);
    TD_CHECK(!chk_exists(&f, id, ""));
    TD_CHECK_INT(td_coord_completed(f.c), 0);
    TD_CHECK_INT(stats_of(f.c).completed, 0);
    /* later checkpoints can still complete: acknowledge each new one at
     * once (one may time out too when this process is slow) */
    int64_t last = id, end = now_ms() + DEADLINE_MS;
    while (td_coord_completed(f.c) == 0 && now_ms() < end) {
      int64_t next = td_coord_requested(f.c, 0);
      if (next > last) {
        ack_all(f.c, next, 2);
        last = next;
      }
      nap_ms(1);
    }
    int64_t done = td_coord_completed(f.c);
    TD_CHECK(done > id);
    TD_CHECK(chk_exists(&f, done, "_metadata"));
    TD_CHECK(!chk_exists(&f, id, ""));
    TD_CHECK(stats_of(f.c).completed >= 1);
  }
  fx_free(&f);
}

TD_TEST(test_checkpoint_decline_aborts) {
  fx_t f;
  if (!fx_init(&f)) return;
  child_t ch = {-1, -1, -1};
  if (fx_start(&f, 2, src_op)) {
    int64_t id = first_request(&f);
    td_coord_decline(f.c, 999, 1, "not pending: ignored");
    td_coord_snapshot_started(f.c, id, 0, 0, -1, 0);
    td_coord_decline(f.c, id, 1, "alignment timed out");
    td_coord_decline(f.c, id, 0, NULL); /* a second decline: one abort */
    TD_CHECK(wait_aborted(f.c, 1));
    TD_CHECK(!chk_exists(&f, id, ""));
    TD_CHECK_INT(td_coord_completed(f.c), 0);
    /* a late acknowledgement changes nothing; a late child is killed and
     * reaped at once */
    td_coord_snapshot_started(f.c, id, 1, 0, -1, 0);
    if (child_spawn(&ch, 0)) {
      td_coord_snapshot_started(f.c, id, 1, ch.pid, -1, 0);
      TD_CHECK(child_reaped(ch.pid));
      ch.pid = -1;
    }
    /* late in-flight data is dropped (freed), not written */
    static const uint32_t tag = 0;
    td_wbuf_t late;
    wbuf_set(&late, "late", 4);
    td_coord_inflight(f.c, id, 1, "op-1.inflight", 1, &tag, &late);
    TD_CHECK(quiet_for(f.c, 100));
    TD_CHECK_INT(td_coord_completed(f.c), 0);
    TD_CHECK(!chk_exists(&f, id, ""));
    TD_CHECK_INT(stats_of(f.c).aborted, 1);
  }
  child_done(&ch);
  fx_free(&f);
}

TD_TEST(test_checkpoint_max_concurrent_pending) {
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.max_concurrent = 2;
  if (fx_start(&f, 2, src_op)) {
    int64_t a = first_request(&f);
    int64_t b = wait_requested(f.c, 0, a); /* while a is pending */
    TD_CHECK_INT(b, 2);
    TD_CHECK(quiet_for(f.c, 100));
    TD_CHECK_INT(td_coord_requested(f.c, 0), b); /* no third one */
    TD_CHECK(!chk_exists(&f, 3, ""));
    /* in order: a, then b */
    ack_all(f.c, a, 2);
    TD_CHECK(wait_completed(f.c, a));
    TD_CHECK(chk_exists(&f, b, "")); /* pending, newer: not swept */
    ack_all(f.c, b, 2);
    TD_CHECK(wait_completed(f.c, b));
    TD_CHECK_INT(td_coord_completed(f.c), b);
    check_meta(&f, a, 0, 2, 0, 0);
    check_meta(&f, b, 0, 2, 0, 0);
    TD_CHECK_INT(stats_of(f.c).aborted, 0);
  }
  fx_free(&f);
}

TD_TEST(test_checkpoint_finished_subtasks_linked_then_final) {
  fx_t f;
  if (!fx_init(&f)) return;
  if (fx_start(&f, 2, src_op)) {
    char fin[800], f1[900], f0[900], p[1024];
    td_coord_finished_dir(f.c, fin, sizeof fin);
    snprintf(f1, sizeof f1, "%s/op-1.state", fin);
    snprintf(f0, sizeof f0, "%s/src-0.state", fin);
    /* subtask 1 (not a source) finishes */
    TD_CHECK(write_snap(fin, "op-1.state", "final state of subtask 1"));
    const char *names1[] = {"op-1.state"};
    td_coord_finished(f.c, 1, 1, names1, 1);
    int64_t id = first_request(&f);
    td_coord_snapshot_started(f.c, id, 0, 0, -1, 0); /* enough now */
    TD_CHECK(wait_completed(f.c, id));
    TD_CHECK(same_file(chk_path(&f, id, "op-1.state", p, sizeof p), f1));
    check_meta(&f, id, 0, 2, 0, TD_META_SUB_FINISHED);

    /* then the source: the final checkpoint links both */
    TD_CHECK(write_snap(fin, "src-0.state", "final state of subtask 0"));
    const char *names0[] = {"src-0.state"};
    td_coord_finished(f.c, 0, 1, names0, 1);
    int64_t last = wait_final(f.c);
    TD_CHECK(last > id);
    if (last > id) {
      check_meta(&f, last, TD_META_FINAL, 2, TD_META_SUB_FINISHED,
                 TD_META_SUB_FINISHED);
      TD_CHECK(same_file(chk_path(&f, last, "op-1.state", p, sizeof p), f1));
      TD_CHECK(same_file(chk_path(&f, last, "src-0.state", p, sizeof p), f0));
    }
    int64_t done = 0;
    int final = 0;
    TD_CHECK_INT(td_coord_wait(f.c, last, 0, &done, &final), 1);
    TD_CHECK_INT(final, 1);
    TD_CHECK_INT(done, last);
    TD_CHECK_INT(td_coord_completed(f.c), last);
    TD_CHECK(stats_of(f.c).completed >= 2);
    /* a finished source is asked for nothing more */
    int64_t req = td_coord_requested(f.c, 0);
    TD_CHECK(req < last);
    TD_CHECK_INT(td_coord_wait(f.c, last, 100, &done, &final), 1);
    TD_CHECK_INT(td_coord_requested(f.c, 0), req);
    TD_CHECK(!chk_exists(&f, last + 1, ""));
  }
  fx_free(&f);
}

TD_TEST(test_checkpoint_final_without_dir) {
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.dir = NULL;
  char cwd[4096];
  TD_CHECK(getcwd(cwd, sizeof cwd) != NULL);
  TD_CHECK_INT(chdir(f.root), 0); /* where a relative path would land */
  if (fx_start(&f, 2, src_op)) {
    waiter_t w;
    waiter_start(&w, f.c, 0);
    td_coord_finished(f.c, 1, 0, NULL, 1);
    td_coord_finished(f.c, 1, 0, NULL, 1); /* twice: counted once */
    TD_CHECK(quiet_for(f.c, 100));
    td_coord_finished(f.c, 0, 0, NULL, 1);
    pthread_join(w.th, NULL);
    TD_CHECK_INT(w.rc, 1);
    TD_CHECK_INT(w.final, 1);
    TD_CHECK_INT(w.completed, 0); /* no checkpoint was written */
    TD_CHECK_INT(td_coord_completed(f.c), 0);
    td_coord_stop(f.c);
    /* still final after the stop: 1, not -1 */
    int64_t done = -1;
    int final = 0;
    TD_CHECK_INT(td_coord_wait(f.c, 0, 0, &done, &final), 1);
    TD_CHECK_INT(final, 1);
  }
  TD_CHECK_INT(chdir(cwd), 0);
  /* nothing written anywhere under the case's directory */
  TD_CHECK_INT(rmdir(f.root), 0);
  fx_free(&f);
}

TD_TEST(test_checkpoint_retains_newest_and_sweeps) {
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.retained = 2;
  f.cfg.first_id = 10;
  char p[1024];
  /* leftovers of an earlier run: an incomplete older checkpoint, one with
   * the first id (replaced when it is triggered), and a newer incomplete
   * one (not older than any completed: kept) */
  TD_CHECK_INT(mkdir(f.dir, 0777), 0);
  TD_CHECK_INT(mkdir(chk_path(&f, 3, "", p, sizeof p), 0777), 0);
  TD_CHECK(write_file(chk_path(&f, 3, "op-0.state", p, sizeof p), "old"));
  TD_CHECK_INT(mkdir(chk_path(&f, 10, "", p, sizeof p), 0777), 0);
  TD_CHECK(write_file(chk_path(&f, 10, "stale.state", p, sizeof p), "old"));
  TD_CHECK_INT(mkdir(chk_path(&f, 99, "", p, sizeof p), 0777), 0);
  if (fx_start(&f, 2, src_op)) {
    int64_t last = 0;
    for (int i = 0; i < 4; i++) {
      int64_t id = wait_requested(f.c, 0, last);
      TD_CHECK_INT(id, 10 + i);
      if (id == 0) break;
      ack_all(f.c, id, 2);
      TD_CHECK(wait_completed(f.c, id));
      if (i == 0) {
        TD_CHECK(!chk_exists(&f, 10, "stale.state"));
        TD_CHECK(!chk_exists(&f, 3, "")); /* incomplete, older: swept */
      }
      last = id;
    }
    TD_CHECK_INT(td_coord_completed(f.c), 13);
    TD_CHECK(!chk_exists(&f, 10, ""));
    TD_CHECK(!chk_exists(&f, 11, ""));
    TD_CHECK(chk_exists(&f, 12, "_metadata"));
    TD_CHECK(chk_exists(&f, 13, "_metadata"));
    TD_CHECK(!chk_exists(&f, 3, ""));
    TD_CHECK(chk_exists(&f, 99, ""));
    TD_CHECK_INT(stats_of(f.c).completed, 4);
    TD_CHECK_INT(stats_of(f.c).aborted, 0);
  }
  fx_free(&f);
}

TD_TEST(test_checkpoint_inflight_written_then_complete) {
  fx_t f;
  if (!fx_init(&f)) return;
  if (fx_start(&f, 2, src_op)) {
    int64_t id = first_request(&f);
    td_coord_snapshot_started(f.c, id, 0, 0, -1, 0);
    td_coord_snapshot_started(f.c, id, 1, 0, -1, 1); /* unaligned */
    TD_CHECK(quiet_for(f.c, 100));
    TD_CHECK_INT(td_coord_completed(f.c), 0); /* in-flight data missing */
    static const char *data[3] = {"abc", "", "xyz\0" "12"};
    static const uint32_t tags[3] = {0, 1, 2};
    td_wbuf_t bufs[3];
    static const size_t lens[3] = {3, 0, 6}; /* the last one with a NUL */
    for (int i = 0; i < 3; i++) wbuf_set(&bufs[i], data[i], lens[i]);
    td_coord_inflight(f.c, id, 1, "op-1.inflight", 3, tags, bufs);
    TD_CHECK(wait_completed(f.c, id));
    check_meta(&f, id, 0, 2, 0, TD_META_SUB_INFLIGHT);
    char p[1024], err[512];
    td_snapshot_t *s = NULL;
    TD_CHECK_INT(td_snapshot_read(&s, NULL, chk_path(&f, id, "op-1.inflight", p,
                                                     sizeof p),
                                  err, sizeof err),
                 0);
    if (s) {
      TD_CHECK_INT(td_snapshot_kind(s), TD_SNAPSHOT_KIND_STATE);
      TD_CHECK_INT(td_snapshot_count(s), 4); /* the identity, then the channels */
      uint32_t tag0 = 0;
      td_snapshot_section(s, 0, &tag0, NULL);
      TD_CHECK_INT(tag0, TD_STATE_IDENTITY);
      for (size_t i = 0; i < 3 && i + 1 < td_snapshot_count(s); i++) {
        uint32_t tag = 99;
        td_bytes_t b = {NULL, 0};
        TD_CHECK_INT(td_snapshot_section(s, i + 1, &tag, &b), 0);
        TD_CHECK_INT(tag, tags[i]);
        TD_CHECK_INT(b.len, lens[i]);
        TD_CHECK(b.len == lens[i] && memcmp(b.data, data[i], lens[i]) == 0);
      }
      td_snapshot_free(s);
    }
  }
  fx_free(&f);
}

TD_TEST(test_checkpoint_stop_aborts_and_wakes) {
  fx_t f;
  if (!fx_init(&f)) return;
  child_t ch = {-1, -1, -1};
  if (fx_start(&f, 2, src_op) && child_spawn(&ch, 0)) {
    waiter_t w;
    waiter_start(&w, f.c, 0);
    int64_t id = first_request(&f);
    td_coord_snapshot_started(f.c, id, 0, ch.pid, -1, 0); /* still running */
    td_coord_snapshot_started(f.c, id, 1, 0, -1, 0);
    /* a few ticks, so the waiter most likely blocks before the stop (if it
     * does not, it must still see the stop) */
    nap_ms(30);
    td_coord_stop(f.c);
    pthread_join(w.th, NULL);
    TD_CHECK_INT(w.rc, -1);
    TD_CHECK(!chk_exists(&f, id, ""));
    TD_CHECK_INT(stats_of(f.c).aborted, 1);
    TD_CHECK_INT(td_coord_completed(f.c), 0);
    TD_CHECK(child_reaped(ch.pid)); /* killed and reaped */
    ch.pid = -1;
    int64_t done;
    int final;
    TD_CHECK_INT(td_coord_wait(f.c, 0, 1000, &done, &final), -1);
    td_coord_stop(f.c); /* idempotent */
    TD_CHECK_INT(stats_of(f.c).aborted, 1);
  }
  child_done(&ch);
  fx_free(&f);
}

/* A newer checkpoint fully acknowledged first subsumes the older pending
 * one (Flink's CheckpointCoordinator): it completes, the older is
 * aborted and its directory removed. */
TD_TEST(test_checkpoint_newer_subsumes_older) {
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.max_concurrent = 2;
  if (fx_start(&f, 2, src_op)) {
    int64_t a = first_request(&f);
    int64_t b = wait_requested(f.c, 0, a);
    TD_CHECK_INT(b, a + 1);
    td_coord_snapshot_started(f.c, a, 0, 0, -1, 0); /* a: only subtask 0 */
    ack_all(f.c, b, 2);                          /* b: everyone */
    TD_CHECK(wait_completed(f.c, b));
    TD_CHECK(wait_aborted(f.c, 1));
    TD_CHECK(!chk_exists(&f, a, ""));
    TD_CHECK(chk_exists(&f, b, "_metadata"));
    /* a late acknowledgement of a changes nothing */
    td_coord_snapshot_started(f.c, a, 1, 0, -1, 0);
    TD_CHECK(quiet_for(f.c, 50));
    TD_CHECK_INT(td_coord_completed(f.c), b);
    TD_CHECK(!chk_exists(&f, a, ""));
  }
  fx_free(&f);
}

/* A final checkpoint that cannot be written fails once: its directory is
 * removed, waiters get -1 and td_coord_error says why; it is not retried. */
TD_TEST(test_checkpoint_final_failure_is_reported_once) {
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.interval_ms = 0;
  if (fx_start(&f, 2, src_op)) {
    const char *missing[] = {"missing.state"}; /* not in finished/ */
    td_coord_finished(f.c, 1, 0, NULL, 1);
    td_coord_finished(f.c, 0, 1, missing, 1);
    int64_t done = 0;
    int final = 0;
    int r = 0;
    for (int i = 0; i < 500 && r == 0; i++) r = td_coord_wait(f.c, 0, 10, &done, &final);
    TD_CHECK_INT(r, -1);
    TD_CHECK(td_coord_error(f.c) != NULL);
    nap_ms(100); /* ticks that could retry it */
    TD_CHECK_INT(stats_of(f.c).aborted, 1);
    TD_CHECK(!chk_exists(&f, 1, ""));
    TD_CHECK(!chk_exists(&f, 2, ""));
  }
  fx_free(&f);
}

/* _metadata lists every expected file with its subtask, size and the CRC
 * in its trailer; a file the snapshot did not write aborts the checkpoint. */
TD_TEST(test_checkpoint_metadata_lists_expected_files) {
  fx_t f;
  if (!fx_init(&f)) return;
  static const char *const expected[2] = {"src-0.state", "op-1.state\nside-1.state"};
  f.cfg.expected = expected;
  f.cfg.job_name = "my job";
  if (fx_start(&f, 2, src_op)) {
    int64_t id = first_request(&f);
    char dir[1024], err[512];
    chk_path(&f, id, "", dir, sizeof dir);
    TD_CHECK(write_snap(dir, "src-0.state", "a"));
    TD_CHECK(write_snap(dir, "op-1.state", "bb"));
    TD_CHECK(write_snap(dir, "side-1.state", "ccc"));
    TD_CHECK(write_file(chk_path(&f, id, "stray.txt", dir, sizeof dir), "not listed"));
    ack_all(f.c, id, 2);
    TD_CHECK(wait_completed(f.c, id));
    td_meta_t *m = NULL;
    chk_path(&f, id, "", dir, sizeof dir);
    TD_CHECK_INT(td_meta_read(dir, &m, err, sizeof err), 0);
    if (m) {
      TD_CHECK_STR(m->job_name, "my job");
      TD_CHECK_INT(m->id, id);
      TD_CHECK_INT(m->n_files, 3);
      static const char *const names[3] = {"src-0.state", "op-1.state", "side-1.state"};
      static const int subs[3] = {0, 1, 1};
      for (size_t i = 0; i < 3 && i < m->n_files; i++) {
        uint64_t size;
        uint32_t crc;
        TD_CHECK_STR(m->files[i].name, names[i]);
        TD_CHECK_INT(m->files[i].subtask, subs[i]);
        TD_CHECK_INT(td_meta_stat_file(dir, names[i], &size, &crc), 0);
        TD_CHECK_INT(m->files[i].size, size);
        TD_CHECK_INT(m->files[i].crc, crc);
        TD_CHECK_INT(size, 16 + 12 + (i + 1) + 16); /* header, section, trailer */
      }
      td_meta_free(m);
    }
    /* the next checkpoint: subtask 1 forgets side-1.state */
    int64_t next = wait_requested(f.c, 0, id);
    chk_path(&f, next, "", dir, sizeof dir);
    TD_CHECK(write_snap(dir, "src-0.state", "a"));
    TD_CHECK(write_snap(dir, "op-1.state", "bb"));
    ack_all(f.c, next, 2);
    TD_CHECK(wait_aborted(f.c, 1));
    TD_CHECK(!chk_exists(&f, next, ""));
    TD_CHECK_INT(td_coord_completed(f.c), id);
    pthread_mutex_lock(&f.mu);
    TD_CHECK(strstr(f.logged, "side-1.state: the snapshot did not write it") != NULL);
    pthread_mutex_unlock(&f.mu);
  }
  fx_free(&f);
}

/* A failed snapshot's message reaches the abort reason through the
 * child's pipe; a killed child is named with its signal. */
TD_TEST(test_checkpoint_child_message_in_abort_reason) {
  static const unsigned char src[1] = {1};
  fx_t f;
  if (!fx_init(&f)) return;
  child_t ch = {-1, -1, -1}, ch2 = {-1, -1, -1};
  if (fx_start(&f, 1, src) && child_spawn_msg(&ch, 1, "cannot write x.state: No space left")) {
    int64_t id = first_request(&f);
    td_coord_snapshot_started(f.c, id, 0, ch.pid, ch.errfd, 0);
    child_release(&ch);
    TD_CHECK(wait_aborted(f.c, 1));
    pthread_mutex_lock(&f.mu);
    TD_CHECK(strstr(f.logged, "aborted: the snapshot of subtask 0 failed: cannot write x.state: "
                              "No space left") != NULL);
    TD_CHECK(strstr(f.logged, "see its message above") == NULL);
    pthread_mutex_unlock(&f.mu);
    int64_t next = wait_requested(f.c, 0, id);
    if (child_spawn(&ch2, 0)) {
      td_coord_snapshot_started(f.c, next, 0, ch2.pid, -1, 0);
      kill(ch2.pid, SIGKILL);
      TD_CHECK(wait_aborted(f.c, 2));
      pthread_mutex_lock(&f.mu);
      TD_CHECK(strstr(f.logged, "the snapshot process of subtask 0 was killed by signal 9") != NULL);
      pthread_mutex_unlock(&f.mu);
    }
    char msg[1200];
    TD_CHECK_INT(fx_fails(&f, msg, sizeof msg), 0); /* tolerable_failed < 0: any number */
  }
  child_done(&ch);
  child_done(&ch2);
  fx_free(&f);
}

/* A subtask that fails or is cancelled kills its snapshot processes before
 * it closes its state (which removes what they read and write): the
 * children are killed and reaped at once, the checkpoint fails with the
 * reason, and it is not counted as a checkpoint failure. */
TD_TEST(test_checkpoint_abort_snapshots_kills_the_subtasks_children) {
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.tolerable_failed = 0; /* a counted failure would fail the job */
  child_t ch = {-1, -1, -1}, other = {-1, -1, -1};
  if (fx_start(&f, 2, src_op) && child_spawn(&ch, 0) && child_spawn(&other, 0)) {
    int64_t id = first_request(&f);
    td_coord_snapshot_started(f.c, id, 0, other.pid, -1, 0);
    td_coord_snapshot_started(f.c, id, 1, ch.pid, -1, 0);
    TD_CHECK(quiet_for(f.c, 50));
    TD_CHECK(!child_reaped(ch.pid)); /* never released: it would run on */
    td_coord_abort_snapshots(f.c, 1);
    TD_CHECK(child_reaped(ch.pid)); /* killed and reaped before the return */
    TD_CHECK(!child_reaped(other.pid)); /* subtask 0's is not touched */
    child_release(&other);
    TD_CHECK(wait_aborted(f.c, 1));
    TD_CHECK_INT(td_coord_completed(f.c), 0);
    pthread_mutex_lock(&f.mu);
    TD_CHECK(strstr(f.logged, "subtask 1 ended before its snapshot was written") != NULL);
    pthread_mutex_unlock(&f.mu);
    char msg[1200];
    TD_CHECK_INT(fx_fails(&f, msg, sizeof msg), 0);
    /* nothing left to kill: a no-op, and the next checkpoint completes */
    td_coord_abort_snapshots(f.c, 1);
    int64_t next = wait_requested(f.c, 0, id);
    ack_all(f.c, next, 2);
    TD_CHECK(wait_completed(f.c, next));
  }
  ch.pid = -1; /* reaped by the coordinator */
  child_done(&ch);
  child_done(&other);
  fx_free(&f);
}

/* A snapshot written by a thread of the process (TD_COORD_ASYNC): the
 * checkpoint completes only once td_coord_snapshot_written reports it,
 * and _metadata lists the files that report carries (a state file, a
 * shared one) with their sizes and CRCs; a reported error aborts it with
 * the message, counted as a failure; a subtask ending with its snapshot
 * unwritten (td_coord_abort_snapshots) fails it without counting; a report
 * for an id no longer pending is ignored. */
TD_TEST(test_checkpoint_async_snapshot_written_by_a_thread) {
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.tolerable_failed = 1;
  char msg[1200];
  if (fx_start(&f, 2, src_op)) {
    int64_t id = first_request(&f);
    td_coord_snapshot_started(f.c, id, 0, 0, -1, 0);
    td_coord_snapshot_started(f.c, id, 1, TD_COORD_ASYNC, -1, 0);
    TD_CHECK(quiet_for(f.c, 50)); /* not before the thread reports */
    TD_CHECK_INT(td_coord_completed(f.c), 0);
    char chk[1024], shared[1200], err[512];
    chk_path(&f, id, "", chk, sizeof chk);
    snprintf(shared, sizeof shared, "%s/shared", f.dir);
    TD_CHECK_INT(mkdir(shared, 0777), 0);
    snprintf(shared, sizeof shared, "%s/shared/00000000000000ab-5", f.dir);
    TD_CHECK(write_file(shared, "12345"));
    TD_CHECK(write_snap(chk, "op-1.state", "state"));
    td_meta_file_t list[2] = {{.name = "op-1.state"}, {.name = "../shared/00000000000000ab-5",
                                                        .size = 5, .crc = 77}};
    TD_CHECK_INT(td_meta_stat_file(chk, "op-1.state", &list[0].size, &list[0].crc), 0);
    td_coord_snapshot_written(f.c, id, 1, list, 2, NULL);
    TD_CHECK(wait_completed(f.c, id));
    td_coord_snapshot_written(f.c, id, 1, NULL, 0, "late"); /* no longer pending */
    td_meta_t *m = NULL;
    TD_CHECK_INT(td_meta_read(chk, &m, err, sizeof err), 0);
    int seen = 0;
    for (size_t i = 0; m && i < m->n_files; i++) {
      if (strcmp(m->files[i].name, "op-1.state") == 0 && m->files[i].size == list[0].size &&
          m->files[i].crc == list[0].crc && m->files[i].subtask == 1)
        seen |= 1;
      if (strcmp(m->files[i].name, list[1].name) == 0 && m->files[i].size == 5 &&
          m->files[i].crc == 77 && m->files[i].subtask == 1)
        seen |= 2;
    }
    TD_CHECK_INT(seen, 3);
    td_meta_free(m);
    /* an error: aborted with its message, counted (one is tolerated) */
    id = wait_requested(f.c, 0, id);
    td_coord_snapshot_started(f.c, id, 0, 0, -1, 0);
    td_coord_snapshot_started(f.c, id, 1, TD_COORD_ASYNC, -1, 0);
    td_coord_snapshot_written(f.c, id, 1, NULL, 0, "cannot write x.state: disk full");
    TD_CHECK(wait_aborted(f.c, 1));
    pthread_mutex_lock(&f.mu);
    TD_CHECK(strstr(f.logged, "the snapshot of subtask 1 failed: cannot write x.state: disk full") !=
             NULL);
    pthread_mutex_unlock(&f.mu);
    TD_CHECK_INT(fx_fails(&f, msg, sizeof msg), 0);
    /* the subtask ends before its thread wrote it: not counted (a second
     * counted failure would fail the job) */
    id = wait_requested(f.c, 0, id);
    td_coord_snapshot_started(f.c, id, 0, 0, -1, 0);
    td_coord_snapshot_started(f.c, id, 1, TD_COORD_ASYNC, -1, 0);
    td_coord_abort_snapshots(f.c, 1);
    TD_CHECK(wait_aborted(f.c, 2));
    pthread_mutex_lock(&f.mu);
    TD_CHECK(strstr(f.logged, "subtask 1 ended before its snapshot was written") != NULL);
    pthread_mutex_unlock(&f.mu);
    TD_CHECK_INT(fx_fails(&f, msg, sizeof msg), 0);
  }
  fx_free(&f);
}

/* Flink's tolerable-failed-checkpoints: consecutive failures that count
 * (the asynchronous part failed, a timeout) fail the job past the limit;
 * declines do not count; a completion resets the count. */
TD_TEST(test_checkpoint_tolerable_failed_checkpoints) {
  static const unsigned char src[1] = {1};
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.tolerable_failed = 1;
  child_t a = {-1, -1, -1}, b = {-1, -1, -1}, c = {-1, -1, -1};
  char msg[1200];
  if (fx_start(&f, 1, src)) {
    int64_t id = first_request(&f);
    /* a decline does not count */
    td_coord_decline(f.c, id, 0, "alignment cancelled");
    TD_CHECK(wait_aborted(f.c, 1));
    /* one failure is tolerated */
    id = wait_requested(f.c, 0, id);
    if (child_spawn_msg(&a, 1, "disk full")) {
      td_coord_snapshot_started(f.c, id, 0, a.pid, a.errfd, 0);
      child_release(&a);
    }
    TD_CHECK(wait_aborted(f.c, 2));
    TD_CHECK_INT(fx_fails(&f, msg, sizeof msg), 0);
    /* a completion resets the count */
    id = wait_requested(f.c, 0, id);
    ack_all(f.c, id, 1);
    TD_CHECK(wait_completed(f.c, id));
    id = wait_requested(f.c, 0, id);
    if (child_spawn_msg(&b, 1, "disk full")) {
      td_coord_snapshot_started(f.c, id, 0, b.pid, b.errfd, 0);
      child_release(&b);
    }
    TD_CHECK(wait_aborted(f.c, 3));
    TD_CHECK_INT(fx_fails(&f, msg, sizeof msg), 0);
    /* the second consecutive failure fails the job, with its message */
    int64_t last = wait_requested(f.c, 0, id);
    if (child_spawn_msg(&c, 1, "disk still full")) {
      td_coord_snapshot_started(f.c, last, 0, c.pid, c.errfd, 0);
      child_release(&c);
    }
    TD_CHECK(wait_aborted(f.c, 4));
    TD_CHECK_INT(fx_fails(&f, msg, sizeof msg), 1);
    char want[256];
    snprintf(want, sizeof want,
             "checkpoint %lld failed: the snapshot of subtask 0 failed: disk still full "
             "(2 consecutive checkpoint failures, tolerable_failed_checkpoints is 1)",
             (long long)last);
    TD_CHECK_STR(msg, want);
  }
  child_done(&a);
  child_done(&b);
  child_done(&c);
  fx_free(&f);
}

/* A timeout counts; with tolerable 0 the first one fails the job. */
TD_TEST(test_checkpoint_timeout_counts_as_failure) {
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.tolerable_failed = 0;
  f.cfg.timeout_ms = 50;
  if (fx_start(&f, 2, src_op)) {
    int64_t id = first_request(&f);
    td_coord_snapshot_started(f.c, id, 0, 0, -1, 0); /* subtask 1 never acks */
    TD_CHECK(wait_aborted(f.c, 1));
    char msg[1200];
    int64_t end = now_ms() + DEADLINE_MS;
    while (fx_fails(&f, msg, sizeof msg) == 0 && now_ms() < end) nap_ms(1);
    TD_CHECK_INT(fx_fails(&f, msg, sizeof msg), 1);
    TD_CHECK(strstr(msg, "timed out after 50 ms") != NULL);
  }
  fx_free(&f);
}

static atomic_int triggered_of[3];

static void count_trigger(void *ud, int s) {
  TD_CHECK(ud == (void *)triggered_of);
  if (s >= 0 && s < 3) atomic_fetch_add(&triggered_of[s], 1);
}

/* The trigger callback wakes each source asked for a barrier (never a
 * non-source), after its requested id is visible; every periodic
 * checkpoint's trigger-to-complete time is kept, in completion order. */
TD_TEST(test_checkpoint_on_trigger_and_durations) {
  static const unsigned char src[3] = {1, 0, 1};
  for (int i = 0; i < 3; i++) atomic_store(&triggered_of[i], 0);
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.on_trigger = count_trigger;
  f.cfg.trigger_ud = triggered_of;
  /* room after each completion: subtask 2's finish below is registered
   * before the next trigger even on a loaded machine (without it, an ack
   * slower than the interval lets the trigger come first) */
  f.cfg.min_pause_ms = 200;
  if (fx_start(&f, 3, src)) {
    td_coord_duration_t d[4];
    TD_CHECK_INT(td_coord_durations(f.c, d, 4), 0);
    int64_t id = first_request(&f);
    TD_CHECK(wait_requested(f.c, 2, 0) == id);
    for (int i = 0; i < 200 && atomic_load(&triggered_of[2]) == 0; i++) nap_ms(5);
    TD_CHECK_INT(atomic_load(&triggered_of[0]), 1);
    TD_CHECK_INT(atomic_load(&triggered_of[1]), 0);
    TD_CHECK_INT(atomic_load(&triggered_of[2]), 1);
    ack_all(f.c, id, 3);
    TD_CHECK(wait_completed(f.c, id));
    int64_t id2 = wait_requested(f.c, 0, id);
    TD_CHECK_INT(id2, id + 1);
    ack_all(f.c, id2, 3);
    TD_CHECK(wait_completed(f.c, id2));
    TD_CHECK(atomic_load(&triggered_of[0]) >= 2);
    TD_CHECK_INT(atomic_load(&triggered_of[1]), 0);
    /* subtask 2 finishes: later checkpoints are marked, and it is asked no
     * more */
    td_coord_finished(f.c, 2, 0, NULL, 1);
    int64_t id3 = wait_requested(f.c, 0, id2);
    TD_CHECK_INT(id3, id2 + 1);
    td_coord_snapshot_started(f.c, id3, 0, 0, -1, 0);
    td_coord_snapshot_started(f.c, id3, 1, 0, -1, 0);
    TD_CHECK(wait_completed(f.c, id3));
    TD_CHECK_INT(td_coord_requested(f.c, 2), id2);
    TD_CHECK_INT(td_coord_durations(f.c, d, 4), 3);
    TD_CHECK(d[0].ms >= 0 && d[1].ms >= 0 && d[2].ms >= 0);
    TD_CHECK_INT(d[0].after_finish, 0);
    TD_CHECK_INT(d[1].after_finish, 0);
    TD_CHECK_INT(d[2].after_finish, 1);
    TD_CHECK_INT(d[2].ms, stats_of(f.c).last_duration_ms);
    TD_CHECK(stats_of(f.c).max_duration_ms >= d[0].ms && stats_of(f.c).max_duration_ms >= d[1].ms);
    d[1].ms = -1;
    TD_CHECK_INT(td_coord_durations(f.c, d, 1), 3); /* how many, one written */
    TD_CHECK_INT(d[1].ms, -1);
  }
  fx_free(&f);
}


/* ---- savepoints ---- */

/* sp_path - root/sp/savepoint-<job id>-<id>. */
static const char *sp_path(const fx_t *f, int64_t id, char *buf, size_t len) {
  snprintf(buf, len, "%s/sp/savepoint-j1-%lld", f->root, (long long)id);
  return buf;
}

TD_TEST(test_checkpoint_savepoint_written_apart) {
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.interval_ms = 0; /* savepoints only */
  f.cfg.job_id = "j1";
  if (fx_start(&f, 2, src_op)) {
    char dir[700], path[900], want[900], err[512] = "";
    int64_t id;
    snprintf(dir, sizeof dir, "%s/sp", f.root);
    TD_CHECK_INT(td_coord_trigger_savepoint(f.c, dir, TD_STOP_NONE, &id, path, sizeof path, err,
                                            sizeof err), 0);
    TD_CHECK_INT(id, 1);
    TD_CHECK_STR(path, sp_path(&f, 1, want, sizeof want));
    TD_CHECK(exists(path));
    TD_CHECK(!chk_exists(&f, 1, "")); /* not in the checkpoint directory */
    TD_CHECK_INT(td_coord_requested(f.c, 0), 1);
    int stop = -1;
    TD_CHECK_INT(td_coord_kind(f.c, 1, &stop), TD_CKPT_SAVEPOINT);
    TD_CHECK_INT(stop, TD_STOP_NONE);
    char got[900];
    TD_CHECK_STR(td_coord_chk_dir(f.c, 1, got, sizeof got), path); /* where subtasks write */
    TD_CHECK_INT(td_coord_await(f.c, 1, 50, NULL, 0), TD_CKPT_IN_PROGRESS);
    ack_all(f.c, 1, 2);
    TD_CHECK_INT(td_coord_await(f.c, 1, DEADLINE_MS, NULL, 0), TD_CKPT_COMPLETED);
    TD_CHECK_INT(td_coord_kind(f.c, 1, NULL), 0); /* no longer pending */
    td_meta_t *m;
    TD_CHECK_INT(td_meta_read(path, &m, err, sizeof err), 0);
    if (m) {
      TD_CHECK_INT(m->id, 1);
      TD_CHECK_INT(m->flags & TD_META_SAVEPOINT, TD_META_SAVEPOINT);
      td_meta_free(m);
    }
    /* a savepoint is not the job's completed checkpoint */
    TD_CHECK_INT(td_coord_completed(f.c), 0);
    td_coord_record_t h[4];
    TD_CHECK_INT(td_coord_history(f.c, h, 4), 1);
    TD_CHECK_INT(h[0].id, 1);
    TD_CHECK_INT(h[0].kind, TD_CKPT_SAVEPOINT);
    TD_CHECK_INT(h[0].status, TD_CKPT_COMPLETED);
    TD_CHECK_STR(h[0].path, path);
  }
  fx_free(&f);
}

TD_TEST(test_checkpoint_savepoint_refusals) {
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.interval_ms = 0;
  f.cfg.job_id = "j1";
  if (fx_start(&f, 2, src_op)) {
    char dir[700], path[900], want[900], err[1200] = "";
    int64_t id = -1;
    /* the savepoint directory exists: refused, named, left as it was */
    snprintf(dir, sizeof dir, "%s/sp", f.root);
    TD_CHECK(mkdir(dir, 0777) == 0);
    sp_path(&f, 1, want, sizeof want);
    TD_CHECK(mkdir(want, 0777) == 0);
    TD_CHECK_INT(td_coord_trigger_savepoint(f.c, dir, TD_STOP_NONE, &id, path, sizeof path, err,
                                            sizeof err), -EEXIST);
    TD_CHECK(strstr(err, want) != NULL && strstr(err, "exists") != NULL);
    TD_CHECK_INT(id, 0);
    TD_CHECK(exists(want));
    TD_CHECK_INT(td_coord_requested(f.c, 0), 0); /* nothing asked */
    /* a directory that cannot be created */
    char file[700];
    snprintf(file, sizeof file, "%s/plain", f.root);
    TD_CHECK(write_file(file, "x"));
    snprintf(dir, sizeof dir, "%s/plain/sp", f.root);
    TD_CHECK_INT(td_coord_trigger_savepoint(f.c, dir, TD_STOP_NONE, &id, path, sizeof path, err,
                                            sizeof err), -ENOTDIR);
    TD_CHECK(strstr(err, dir) != NULL);
    /* the next one takes the next id: a fresh directory */
    snprintf(dir, sizeof dir, "%s/sp", f.root);
    TD_CHECK_INT(td_coord_trigger_savepoint(f.c, dir, TD_STOP_NONE, &id, path, sizeof path, err,
                                            sizeof err), 0);
    TD_CHECK(id > 1);
  }
  fx_free(&f);
  /* no checkpoint directory: no savepoints */
  if (!fx_init(&f)) return;
  f.cfg.dir = NULL;
  if (fx_start(&f, 2, src_op)) {
    char dir[700], path[900], err[512] = "";
    int64_t id;
    snprintf(dir, sizeof dir, "%s/sp", f.root);
    TD_CHECK_INT(td_coord_trigger_savepoint(f.c, dir, TD_STOP_NONE, &id, path, sizeof path, err,
                                            sizeof err), TD_EINVAL);
    TD_CHECK(strstr(err, "checkpoint directory") != NULL);
  }
  fx_free(&f);
}

TD_TEST(test_checkpoint_savepoint_not_subsumed) {
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.job_id = "j1";
  f.cfg.max_concurrent = 2;
  if (fx_start(&f, 2, src_op)) {
    int64_t chk = first_request(&f), sp;
    char dir[700], path[900], err[512];
    snprintf(dir, sizeof dir, "%s/sp", f.root);
    TD_CHECK_INT(td_coord_trigger_savepoint(f.c, dir, TD_STOP_NONE, &sp, path, sizeof path, err,
                                            sizeof err), 0);
    TD_CHECK_INT(sp, chk + 1);
    /* no periodic trigger while a savepoint is pending */
    TD_CHECK(quiet_for(f.c, 100));
    TD_CHECK_INT(td_coord_requested(f.c, 0), sp);
    ack_all(f.c, sp, 2);
    TD_CHECK_INT(td_coord_await(f.c, sp, DEADLINE_MS, NULL, 0), TD_CKPT_COMPLETED);
    /* the older checkpoint is still pending, then completes */
    TD_CHECK(td_coord_is_pending(f.c, chk));
    ack_all(f.c, chk, 2);
    TD_CHECK(wait_completed(f.c, chk));
    TD_CHECK(exists(path)); /* never swept */
  }
  fx_free(&f);
}

TD_TEST(test_checkpoint_stop_savepoint_is_last) {
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.job_id = "j1";
  f.cfg.interval_ms = 0;
  if (fx_start(&f, 2, src_op)) {
    int64_t sp;
    char dir[700], path[900], err[512];
    snprintf(dir, sizeof dir, "%s/sp", f.root);
    TD_CHECK_INT(td_coord_trigger_savepoint(f.c, dir, TD_STOP_SUSPEND, &sp, path, sizeof path,
                                            err, sizeof err), 0);
    int stop = 0;
    TD_CHECK_INT(td_coord_kind(f.c, sp, &stop), TD_CKPT_SAVEPOINT);
    TD_CHECK_INT(stop, TD_STOP_SUSPEND);
    /* one stop at a time */
    int64_t id2;
    TD_CHECK_INT(td_coord_trigger_savepoint(f.c, dir, TD_STOP_SUSPEND, &id2, path, sizeof path,
                                            err, sizeof err), TD_EINVAL);
    ack_all(f.c, sp, 2);
    TD_CHECK(wait_completed(f.c, sp)); /* sinks commit what they pre-committed */
    /* the subtasks end; no final checkpoint is written */
    td_coord_finished(f.c, 0, 0, NULL, 1);
    td_coord_finished(f.c, 1, 0, NULL, 1);
    TD_CHECK_INT(wait_final(f.c), sp);
    TD_CHECK(!chk_exists(&f, sp + 1, ""));
  }
  fx_free(&f);
}

/* ---- cluster mode: the job's coordinator and two participants ---- */

/* The messages between the job master's coordinator and the task
 * managers' participants, queued by their hooks (under their locks) and
 * delivered by the test's thread, as the control connections would. */
typedef struct msg {
  char type[12];
  int64_t id;
  int subtask, kind, stop, final;
  int n_files; /* an ack's file list */
  char names[4][64];
  uint64_t sizes[4];
  uint32_t crcs[4];
  char path[600]; /* a trigger's savepoint directory */
} msg_t;

typedef struct wire {
  pthread_mutex_t mu;
  msg_t q[256];
  int n;
} wire_t;

static wire_t g_wire = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void post(const char *type, int64_t id, int subtask, int kind, int stop, int final) {
  pthread_mutex_lock(&g_wire.mu);
  if (g_wire.n < 256) {
    msg_t *m = &g_wire.q[g_wire.n++];
    snprintf(m->type, sizeof m->type, "%s", type);
    m->id = id;
    m->subtask = subtask;
    m->kind = kind;
    m->stop = stop;
    m->final = final;
  }
  pthread_mutex_unlock(&g_wire.mu);
}

static void m_request(void *ud, int s, int64_t id, int kind, int stop, const char *path) {
  (void)ud;
  post("trigger", id, s, kind, stop, 0);
  pthread_mutex_lock(&g_wire.mu);
  snprintf(g_wire.q[g_wire.n - 1].path, sizeof g_wire.q[0].path, "%s", path ? path : "");
  pthread_mutex_unlock(&g_wire.mu);
}
static void m_complete(void *ud, int64_t id, int kind, int stop, int final) {
  (void)ud;
  post("complete", id, -1, kind, stop, final);
}
static void m_abort(void *ud, int64_t id) {
  (void)ud;
  post("abort", id, -1, 0, 0, 0);
}
static void p_ack(void *ud, int64_t id, int s, const char *inflight, const td_meta_file_t *files,
                  size_t n) {
  (void)ud;
  (void)inflight;
  post("ack", id, s, 0, 0, 0);
  pthread_mutex_lock(&g_wire.mu);
  msg_t *m = &g_wire.q[g_wire.n - 1];
  for (size_t i = 0; i < n && i < 4; i++) {
    snprintf(m->names[i], sizeof m->names[i], "%s", files[i].name);
    m->sizes[i] = files[i].size;
    m->crcs[i] = files[i].crc;
  }
  m->n_files = (int)n;
  pthread_mutex_unlock(&g_wire.mu);
}
static void p_decline(void *ud, int64_t id, int s, const char *reason, int counted) {
  (void)ud;
  (void)reason;
  post("decline", id, s, 0, 0, counted);
}
static void p_finished(void *ud, int s, int n, const char *const *names, int ok) {
  (void)ud;
  (void)n;
  (void)names;
  post("finished", 0, s, 0, 0, ok);
}

/* Messages delivered so far, by type. */
static int g_triggers, g_acks, g_completes, g_aborts, g_declines, g_finished;

/* Deliver what is queued (master: the job's coordinator; parts: the two
 * participants), for a while: what the deliveries cause goes too. */
static void pump(td_coord_t *master, td_coord_t *const parts[2]) {
  for (int round = 0; round < 50; round++) {
    pthread_mutex_lock(&g_wire.mu);
    int n = g_wire.n;
    msg_t q[256];
    memcpy(q, g_wire.q, sizeof q[0] * (size_t)n);
    g_wire.n = 0;
    pthread_mutex_unlock(&g_wire.mu);
    for (int i = 0; i < n; i++) {
      msg_t *m = &q[i];
      g_triggers += strcmp(m->type, "trigger") == 0;
      g_acks += strcmp(m->type, "ack") == 0;
      g_completes += strcmp(m->type, "complete") == 0;
      g_aborts += strcmp(m->type, "abort") == 0;
      g_declines += strcmp(m->type, "decline") == 0;
      g_finished += strcmp(m->type, "finished") == 0;
      if (strcmp(m->type, "trigger") == 0) /* to every task manager */
        for (int k = 0; k < 2; k++) td_coord_remote_trigger(parts[k], m->id, m->kind, m->stop,
                                                       m->path[0] ? m->path : NULL);
      else if (strcmp(m->type, "complete") == 0)
        for (int k = 0; k < 2; k++) td_coord_remote_complete(parts[k], m->id, m->kind, m->stop, m->final);
      else if (strcmp(m->type, "abort") == 0)
        for (int k = 0; k < 2; k++) td_coord_remote_abort(parts[k], m->id, "aborted");
      else if (strcmp(m->type, "ack") == 0) {
        td_meta_file_t files[4];
        for (int j = 0; j < m->n_files && j < 4; j++)
          files[j] = (td_meta_file_t){m->names[j], m->subtask, m->sizes[j], m->crcs[j]};
        td_coord_remote_ack(master, m->id, m->subtask, NULL, files, (size_t)m->n_files);
      }
      else if (strcmp(m->type, "decline") == 0)
        td_coord_remote_decline(master, m->id, m->subtask, "declined", m->final);
      else if (strcmp(m->type, "finished") == 0)
        td_coord_finished(master, m->subtask, 0, NULL, m->final);
    }
    nap_ms(5);
  }
}

/* A checkpoint of a job whose subtask 0 (the source) runs in one task
 * manager and subtask 1 in another: triggered by the job's coordinator on
 * both participants, acknowledged per subtask, completed (_metadata only
 * in the master's) and committed in both; then a declined one aborted
 * everywhere, and the final checkpoint once both subtasks finished. */
TD_TEST(test_checkpoint_cluster_master_and_participants) {
  fx_t f;
  if (!fx_init(&f)) return;
  f.cfg.interval_ms = 100000; /* triggered by hand: a savepoint-free first id */
  static const char *const expected[2] = {"src-0.state", "op-1.state"};
  f.cfg.expected = expected;
  f.cfg.on_request = m_request;
  f.cfg.on_complete = m_complete;
  f.cfg.on_abort = m_abort;
  td_coord_t *parts[2] = {NULL, NULL};
  if (fx_start(&f, 2, src_op)) {
    static const unsigned char local0[2] = {1, 0}, local1[2] = {0, 1};
    td_ckpt_config_t pc = f.cfg;
    pc.on_request = NULL;
    pc.on_complete = NULL;
    pc.on_abort = NULL;
    pc.on_ack = p_ack;
    pc.on_decline = p_decline;
    pc.on_finished = p_finished;
    pc.fail = NULL;
    char err[256];
    for (int k = 0; k < 2; k++) {
      pc.local = k == 0 ? local0 : local1;
      TD_CHECK_INT(td_coord_new(&parts[k], &pc, 2, src_op, err, sizeof err), 0);
      TD_CHECK_INT(td_coord_start(parts[k]), 0);
    }
    /* a savepoint is the trigger the test can time: it goes to both */
    char sp[700], path[1024];
    snprintf(sp, sizeof sp, "%s/sp", f.root);
    int64_t id = 0;
    TD_CHECK_INT(td_coord_trigger_savepoint(f.c, sp, 0, &id, path, sizeof path, err, sizeof err), 0);
    pump(f.c, parts);
    TD_CHECK_INT(g_triggers, 1);
    TD_CHECK_INT(td_coord_requested(parts[0], 0), id); /* its source injects */
    TD_CHECK_INT(td_coord_requested(parts[1], 0), 0);  /* not its subtask */
    TD_CHECK(td_coord_is_pending(parts[1], id));       /* but it takes part */
    TD_CHECK_INT(td_coord_kind(parts[1], id, NULL), TD_CKPT_SAVEPOINT);
    TD_CHECK(write_snap(path, "src-0.state", "a"));
    td_coord_snapshot_started(parts[0], id, 0, 0, -1, 0);
    pump(f.c, parts);
    TD_CHECK_INT(g_acks, 1);
    TD_CHECK_INT(td_coord_await(f.c, id, 0, NULL, 0), TD_CKPT_IN_PROGRESS); /* 1 missing */
    TD_CHECK(write_snap(path, "op-1.state", "bb"));
    td_coord_snapshot_started(parts[1], id, 1, 0, -1, 0);
    pump(f.c, parts);
    TD_CHECK_INT(g_acks, 2);
    TD_CHECK_INT(td_coord_await(f.c, id, DEADLINE_MS, NULL, 0), TD_CKPT_COMPLETED);
    char meta[1200];
    snprintf(meta, sizeof meta, "%s/_metadata", path);
    TD_CHECK(access(meta, F_OK) == 0); /* written by the job's coordinator */
    /* it lists the files the acknowledgements named, with their sizes */
    td_meta_t *md = NULL;
    TD_CHECK_INT(td_meta_read(path, &md, err, sizeof err), 0);
    if (md) {
      TD_CHECK_INT(md->n_files, 2);
      for (size_t i = 0; i < 2 && i < md->n_files; i++) {
        TD_CHECK_STR(md->files[i].name, expected[i]);
        TD_CHECK_INT(md->files[i].subtask, (int)i);
        TD_CHECK_INT(md->files[i].size, 16 + 12 + (i + 1) + 16); /* header, section, trailer */
      }
      td_meta_free(md);
    }
    pump(f.c, parts);
    TD_CHECK_INT(g_completes, 1);
    TD_CHECK_INT(td_coord_await(parts[1], id, DEADLINE_MS, NULL, 0), TD_CKPT_COMPLETED);
    TD_CHECK(!td_coord_is_pending(parts[0], id));

    /* a decline in one task manager aborts the checkpoint everywhere */
    int64_t id2 = 0;
    TD_CHECK_INT(td_coord_trigger_savepoint(f.c, sp, 0, &id2, path, sizeof path, err, sizeof err), 0);
    pump(f.c, parts);
    TD_CHECK_INT(g_triggers, 2);
    TD_CHECK(td_coord_is_pending(parts[0], id2));
    td_coord_decline(parts[1], id2, 1, "alignment cancelled");
    pump(f.c, parts);
    TD_CHECK_INT(g_declines, 1);
    TD_CHECK_INT(td_coord_await(f.c, id2, DEADLINE_MS, NULL, 0), TD_CKPT_FAILED);
    pump(f.c, parts);
    TD_CHECK_INT(g_aborts, 1);
    TD_CHECK(!td_coord_is_pending(parts[0], id2));
    /* a barrier of an id aborted before its trigger came is not pending,
     * and the participant does not wait for it */
    td_coord_remote_abort(parts[1], id2 + 7, "aborted");
    TD_CHECK(!td_coord_is_pending(parts[1], id2 + 7));

    /* a file a task manager acknowledged that the job master does not
     * find (checkpoint storage not shared) aborts the checkpoint */
    int64_t id3 = 0;
    TD_CHECK_INT(td_coord_trigger_savepoint(f.c, sp, 0, &id3, path, sizeof path, err, sizeof err), 0);
    pump(f.c, parts);
    TD_CHECK(write_snap(path, "src-0.state", "a"));
    TD_CHECK(write_snap(path, "op-1.state", "bb"));
    td_coord_snapshot_started(parts[0], id3, 0, 0, -1, 0);
    td_coord_snapshot_started(parts[1], id3, 1, 0, -1, 0);
    for (int i = 0; i < 100; i++) { /* both acks queued */
      pthread_mutex_lock(&g_wire.mu);
      int queued = g_wire.n;
      pthread_mutex_unlock(&g_wire.mu);
      if (queued >= 2) break;
      nap_ms(5);
    }
    char gone[1200], why[512] = "";
    snprintf(gone, sizeof gone, "%s/op-1.state", path);
    TD_CHECK_INT(unlink(gone), 0);
    pump(f.c, parts);
    TD_CHECK_INT(g_acks, 4);
    TD_CHECK_INT(td_coord_await(f.c, id3, DEADLINE_MS, why, sizeof why), TD_CKPT_FAILED);
    TD_CHECK(strstr(why, "op-1.state: the subtask acknowledged it, but it is not in the "
                         "checkpoint directory here") != NULL);
    pump(f.c, parts);
    TD_CHECK_INT(g_aborts, 2);

    /* both subtasks finish: the job's coordinator writes the final
     * checkpoint and the participants' sinks see it */
    td_coord_finished(parts[0], 0, 0, NULL, 1);
    td_coord_finished(parts[1], 1, 0, NULL, 1);
    pump(f.c, parts);
    TD_CHECK_INT(g_finished, 2);
    int64_t fin = wait_final(f.c);
    TD_CHECK(fin > id2);
    pump(f.c, parts);
    TD_CHECK_INT(g_completes, 2);
    TD_CHECK_INT(wait_final(parts[0]), fin);
    TD_CHECK_INT(wait_final(parts[1]), fin);
    TD_CHECK(chk_exists(&f, fin, "_metadata"));
  }
  for (int k = 0; k < 2; k++) td_coord_free(parts[k]);
  fx_free(&f);
}

TD_TEST_MAIN(test_checkpoint_new_rejects_bad_config,
             test_checkpoint_metadata_lists_expected_files,
             test_checkpoint_child_message_in_abort_reason,
             test_checkpoint_abort_snapshots_kills_the_subtasks_children,
             test_checkpoint_async_snapshot_written_by_a_thread,
             test_checkpoint_tolerable_failed_checkpoints,
             test_checkpoint_timeout_counts_as_failure,
             test_checkpoint_trigger_asks_sources_only,
             test_checkpoint_no_trigger_without_dir,
             test_checkpoint_completes_when_every_subtask_acked,
             test_checkpoint_child_exit_0_completes_after_exit,
             test_checkpoint_child_exit_1_aborts,
             test_checkpoint_timeout_aborts,
             test_checkpoint_decline_aborts,
             test_checkpoint_max_concurrent_pending,
             test_checkpoint_finished_subtasks_linked_then_final,
             test_checkpoint_final_without_dir,
             test_checkpoint_retains_newest_and_sweeps,
             test_checkpoint_inflight_written_then_complete,
             test_checkpoint_stop_aborts_and_wakes,
             test_checkpoint_newer_subsumes_older,
             test_checkpoint_final_failure_is_reported_once,
             test_checkpoint_on_trigger_and_durations,
             test_checkpoint_savepoint_written_apart,
             test_checkpoint_savepoint_refusals,
             test_checkpoint_savepoint_not_subsumed,
             test_checkpoint_stop_savepoint_is_last,
             test_checkpoint_cluster_master_and_participants)
