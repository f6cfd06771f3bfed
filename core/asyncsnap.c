/* asyncsnap.c - the asynchronous part of a fork-free snapshot (asyncsnap.h). */
#include "asyncsnap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "metadata.h"
#include "msgpack.h"
#include "rocksdb.h"
#include "shared.h"
#include "snapshot.h"

typedef struct known {
  char *file;
  td_shared_ref_t ref;
} known_t;

typedef struct upload {
  int used;
  char *dir, *shared, *journal;
  known_t *known;
  size_t n_known, cap_known;
  td_wbuf_t filled;      /* the hole's value, once uploaded */
  td_shared_ref_t *refs; /* the shared files it references */
  size_t n_refs;
} upload_t;

typedef struct file {
  char *name;
  td_wbuf_t data;
} file_t;

typedef struct sync {
  char *path, *alt;
} sync_t;

struct td_asnap {
  int64_t id;
  sync_t *syncs;
  size_t n_syncs, cap_syncs;
  upload_t ups[TD_ASNAP_MAX_HOLES];
  file_t *files;
  size_t n_files, cap_files;
  td_meta_file_t *written; /* td_asnap_written */
  size_t n_written, cap_written;
};

__attribute__((format(printf, 3, 4))) static int seterr(char *err, size_t errlen, const char *fmt,
                                                        ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return 0;
}

/* Room for element n of array v (*cap elements of size bytes): v, or v
 * reallocated at twice the capacity; NULL when out of memory (v is left
 * as it was). */
static void *grow(void *v, size_t *cap, size_t n, size_t size) {
  if (n < *cap) return v;
  size_t c = *cap ? 2 * *cap : 16;
  void *x = realloc(v, c * size);
  if (x) *cap = c;
  return x;
}

td_asnap_t *td_asnap_new(int64_t id) {
  td_asnap_t *a = calloc(1, sizeof *a);
  if (a) a->id = id;
  return a;
}

void td_asnap_free(td_asnap_t *a) {
  if (!a) return;
  for (int i = 0; i < TD_ASNAP_MAX_HOLES; i++) {
    upload_t *u = &a->ups[i];
    free(u->dir);
    free(u->shared);
    free(u->journal);
    for (size_t k = 0; k < u->n_known; k++) free(u->known[k].file);
    free(u->known);
    td_wbuf_destroy(&u->filled);
    free(u->refs);
  }
  for (size_t i = 0; i < a->n_syncs; i++) {
    free(a->syncs[i].path);
    free(a->syncs[i].alt);
  }
  free(a->syncs);
  for (size_t i = 0; i < a->n_files; i++) {
    free(a->files[i].name);
    td_wbuf_destroy(&a->files[i].data);
  }
  free(a->files);
  for (size_t i = 0; i < a->n_written; i++) free(a->written[i].name);
  free(a->written);
  free(a);
}

const td_meta_file_t *td_asnap_written(const td_asnap_t *a, size_t *n) {
  *n = a->n_written;
  return a->written;
}

/* Append name (with prefix) of size bytes and CRC crc to the written list. */
static int add_written(td_asnap_t *a, const char *prefix, const char *name, uint64_t size,
                       uint32_t crc) {
  td_meta_file_t *w = grow(a->written, &a->cap_written, a->n_written, sizeof *w);
  if (!w) return TD_ENOMEM;
  a->written = w;
  td_meta_file_t *f = &a->written[a->n_written];
  size_t len = strlen(prefix) + strlen(name) + 1;
  if (!(f->name = malloc(len))) return TD_ENOMEM;
  snprintf(f->name, len, "%s%s", prefix, name);
  f->subtask = 0;
  f->size = size;
  f->crc = crc;
  a->n_written++;
  return 0;
}

/* Write a state file, and list it as written. */
static int write_listed(td_asnap_t *a, const char *chk_dir, const char *name,
                        const char *job_name, const void *data, size_t len, char *err,
                        size_t errlen) {
  int rc = td_asnap_write_state(chk_dir, name, a->id, 0, job_name, data, len, err, errlen);
  uint64_t size;
  uint32_t crc;
  if (rc == 0 && (rc = td_meta_stat_file(chk_dir, name, &size, &crc)) != 0)
    seterr(err, errlen, "%s/%s: %s", chk_dir, name, td_strerror(rc));
  if (rc == 0 && (rc = add_written(a, "", name, size, crc)) != 0) seterr(err, errlen, "out of memory");
  return rc;
}

int64_t td_asnap_id(const td_asnap_t *a) { return a->id; }

int td_asnap_upload(td_asnap_t *a, int hole, const char *dir, const char *shared_dir,
                    const char *journal) {
  if (hole < 0 || hole >= TD_ASNAP_MAX_HOLES || a->ups[hole].used) return TD_EINVAL;
  upload_t *u = &a->ups[hole];
  u->dir = strdup(dir);
  u->shared = strdup(shared_dir);
  u->journal = strdup(journal);
  u->used = 1; /* freed with a even when a copy failed */
  return u->dir && u->shared && u->journal ? 0 : TD_ENOMEM;
}

int td_asnap_known(td_asnap_t *a, int hole, const char *file, const char *name, uint64_t size,
                   uint32_t crc) {
  if (hole < 0 || hole >= TD_ASNAP_MAX_HOLES || !a->ups[hole].used) return TD_EINVAL;
  if (strlen(name) >= TD_SHARED_NAME_MAX || strchr(name, '/')) return TD_EINVAL;
  upload_t *u = &a->ups[hole];
  known_t *kv = grow(u->known, &u->cap_known, u->n_known, sizeof *kv);
  if (!kv) return TD_ENOMEM;
  u->known = kv;
  known_t *k = &u->known[u->n_known];
  if (!(k->file = strdup(file))) return TD_ENOMEM;
  snprintf(k->ref.name, sizeof k->ref.name, "%s", name);
  k->ref.size = size;
  k->ref.crc = crc;
  u->n_known++;
  return 0;
}

int td_asnap_sync(td_asnap_t *a, const char *path, const char *alt) {
  sync_t *sv = grow(a->syncs, &a->cap_syncs, a->n_syncs, sizeof *sv);
  if (!sv) return TD_ENOMEM;
  a->syncs = sv;
  sync_t *y = &a->syncs[a->n_syncs];
  y->path = strdup(path);
  y->alt = alt ? strdup(alt) : NULL;
  a->n_syncs++; /* freed with a even when a copy failed */
  return y->path && (!alt || y->alt) ? 0 : TD_ENOMEM;
}

/* fsync path; 0 or -errno. */
static int fsync_path(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) == 0 ? 0 : -errno;
  close(fd);
  return rc;
}

static int run_sync(const sync_t *y, char *err, size_t errlen) {
  const char *path = y->path;
  int rc = fsync_path(path);
  if (rc == -ENOENT && y->alt) rc = fsync_path(path = y->alt);
  if (rc) seterr(err, errlen, "cannot fsync '%s': %s", path, td_strerror(rc));
  return rc;
}

int td_asnap_file(td_asnap_t *a, const char *name, td_wbuf_t *data) {
  file_t *fv = grow(a->files, &a->cap_files, a->n_files, sizeof *fv);
  if (!fv) return TD_ENOMEM;
  a->files = fv;
  file_t *f = &a->files[a->n_files];
  if (!(f->name = strdup(name))) return TD_ENOMEM;
  f->data = *data;
  memset(data, 0, sizeof *data);
  a->n_files++;
  return 0;
}

int td_asnap_write_state(const char *dir, const char *name, int64_t id, uint32_t flags,
                         const char *job_name, const void *data, size_t len, char *err,
                         size_t errlen) {
  td_snapshot_writer_t *w;
  int rc = td_snapshot_writer_open(&w, NULL, dir, name, TD_SNAPSHOT_KIND_STATE, err, errlen);
  if (rc == 0) rc = td_meta_identity_write(w, id, flags, job_name, err, errlen);
  if (rc == 0) rc = td_snapshot_write_section(w, TD_STATE_DATA, data, len, err, errlen);
  if (rc == 0) rc = td_snapshot_writer_commit(w, err, errlen);
  if (rc && w) td_snapshot_writer_abort(w);
  return rc;
}

/* When a run stops: its cancel flag, or its checkpoint no longer wanted. */
typedef struct stop {
  atomic_int *cancel;
  int (*wanted)(void *ud, int64_t id);
  void *ud;
  int64_t id;
} stop_t;

static int cancelled(const stop_t *st) {
  return (st->cancel && atomic_load_explicit(st->cancel, memory_order_acquire)) ||
         (st->wanted && !st->wanted(st->ud, st->id));
}

/* td_rocksdb_checkpoint_await's stop: the run's cancelled(). */
static int stopped(void *st) { return cancelled(st); }

static int cmp_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_known(const void *a, const void *b) {
  return strcmp(((const known_t *)a)->file, ((const known_t *)b)->file);
}

/* The names of dir's files, sorted (*names malloc'd, each name too). */
static int list_files(const char *dir, char ***names, size_t *n, char *err, size_t errlen) {
  *names = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) {
    int e = -errno;
    seterr(err, errlen, "cannot list %s: %s", dir, td_strerror(e));
    return e;
  }
  size_t cap = 0;
  int rc = 0;
  struct dirent *de;
  while (rc == 0 && (de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char **v = grow(*names, &cap, *n, sizeof *v);
    if (!v) {
      rc = TD_ENOMEM;
      break;
    }
    *names = v;
    if (!((*names)[*n] = strdup(de->d_name))) rc = TD_ENOMEM;
    else (*n)++;
  }
  closedir(d);
  if (rc == 0) qsort(*names, *n, sizeof **names, cmp_name);
  return rc;
}

static void free_names(char **names, size_t n) {
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
}

/* Upload u's checkpoint: fill u->filled and u->refs; then remove the
 * checkpoint's directory. */
static int run_upload(upload_t *u, const stop_t *cancel, char *err, size_t errlen) {
  int rc = td_rocksdb_checkpoint_await(u->dir, stopped, (void *)cancel, err, errlen);
  if (rc) return rc;
  char **names;
  size_t n;
  rc = list_files(u->dir, &names, &n, err, errlen);
  if (rc == 0 && n > 0 && !(u->refs = calloc(n, sizeof *u->refs))) rc = TD_ENOMEM;
  if (u->n_known) qsort(u->known, u->n_known, sizeof *u->known, cmp_known);
  if (rc == 0) rc = td_mp_write_array(&u->filled, (uint32_t)n);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if (cancelled(cancel)) {
      rc = TD_ECANCELED;
      break;
    }
    char path[4400], shared[4400];
    td_shared_ref_t *ref = &u->refs[i];
    known_t key = {.file = names[i]};
    const known_t *k = u->n_known ? bsearch(&key, u->known, u->n_known, sizeof key, cmp_known) : NULL;
    struct stat st;
    if (k) snprintf(shared, sizeof shared, "%s/%s", u->shared, k->ref.name);
    if (k && stat(shared, &st) == 0 && (uint64_t)st.st_size == k->ref.size) {
      *ref = k->ref;
    } else {
      snprintf(path, sizeof path, "%s/%s", u->dir, names[i]);
      rc = td_shared_upload(path, u->shared, ref, err, errlen);
      if (rc) break;
      td_shared_journal_append(u->journal, path, ref);
    }
    u->n_refs++;
    rc = td_mp_write_array(&u->filled, 4);
    if (rc == 0) rc = td_mp_write_str(&u->filled, names[i], strlen(names[i]));
    if (rc == 0) rc = td_mp_write_str(&u->filled, ref->name, strlen(ref->name));
    if (rc == 0) rc = td_mp_write_int(&u->filled, (int64_t)ref->size);
    if (rc == 0) rc = td_mp_write_int(&u->filled, (int64_t)ref->crc);
  }
  if (rc == TD_ENOMEM) seterr(err, errlen, "out of memory");
  if (rc == TD_ECANCELED) seterr(err, errlen, "cancelled");
  for (size_t i = 0; i < n; i++) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", u->dir, names[i]);
    (void)unlink(path);
  }
  (void)rmdir(u->dir);
  free_names(names, n);
  return rc;
}

/* The holes of the value at *p (advanced past it): their offsets and
 * numbers appended to off[]/num[] (*n of at most TD_ASNAP_MAX_HOLES). */
static int find_holes(const char **p, const char *start, const char *end, size_t *off, int *num,
                      int *n, int depth) {
  const unsigned char *b = (const unsigned char *)*p;
  if (*p >= end || depth > 64) return TD_ECORRUPT;
  uint64_t count = 0;
  size_t head = 0;
  if (b[0] == 0xd4) {
    if (end - *p < 3) return TD_ECORRUPT;
    if (b[1] == TD_ASNAP_HOLE_EXT) {
      if (*n == TD_ASNAP_MAX_HOLES || b[2] >= TD_ASNAP_MAX_HOLES) return TD_ECORRUPT;
      off[*n] = (size_t)(*p - start);
      num[(*n)++] = b[2];
      *p += 3;
      return 0;
    }
  }
  if (b[0] >= 0x80 && b[0] <= 0x8f) count = 2u * (b[0] & 0x0f), head = 1;
  else if (b[0] >= 0x90 && b[0] <= 0x9f) count = b[0] & 0x0f, head = 1;
  else if ((b[0] == 0xdc || b[0] == 0xde) && end - *p >= 3)
    count = ((uint64_t)b[1] << 8 | b[2]) * (b[0] == 0xde ? 2 : 1), head = 3;
  else if ((b[0] == 0xdd || b[0] == 0xdf) && end - *p >= 5)
    count = ((uint64_t)b[1] << 24 | (uint64_t)b[2] << 16 | (uint64_t)b[3] << 8 | b[4]) *
            (b[0] == 0xdf ? 2 : 1),
    head = 5;
  if (!head) return td_mp_skip_value(p, end) ? TD_ECORRUPT : 0;
  *p += head;
  for (uint64_t i = 0; i < count; i++) {
    int rc = find_holes(p, start, end, off, num, n, depth + 1);
    if (rc) return rc;
  }
  return 0;
}

/* Write file f into chk_dir with its holes filled from a's uploads, and
 * its companion when it had holes. */
static int write_file(td_asnap_t *a, file_t *f, const char *chk_dir, const char *job_name,
                      char *err, size_t errlen) {
  size_t off[TD_ASNAP_MAX_HOLES];
  int num[TD_ASNAP_MAX_HOLES], n = 0;
  const char *p = f->data.data, *end = p + f->data.len;
  int rc = f->data.len ? find_holes(&p, f->data.data, end, off, num, &n, 0) : TD_ECORRUPT;
  if (rc || p != end) {
    seterr(err, errlen, "%s: the snapshot's bytes are not one MessagePack value", f->name);
    return TD_ECORRUPT;
  }
  if (n == 0)
    return write_listed(a, chk_dir, f->name, job_name, f->data.data, f->data.len, err, errlen);
  td_wbuf_t out = {0}, refs = {0};
  size_t at = 0, total = 0;
  for (int i = 0; i < n; i++) total += a->ups[num[i]].n_refs;
  rc = td_mp_write_array(&refs, (uint32_t)total);
  for (int i = 0; rc == 0 && i < n; i++) {
    upload_t *u = &a->ups[num[i]];
    if (!u->used || u->filled.len == 0) {
      seterr(err, errlen, "%s: hole %d of the snapshot was not filled", f->name, num[i]);
      rc = TD_EINVAL;
      break;
    }
    rc = td_mp_write_raw(&out, f->data.data + at, off[i] - at);
    if (rc == 0) rc = td_mp_write_raw(&out, u->filled.data, u->filled.len);
    at = off[i] + 3;
    for (size_t r = 0; rc == 0 && r < u->n_refs; r++) {
      rc = td_mp_write_array(&refs, 3);
      if (rc == 0) rc = td_mp_write_str(&refs, u->refs[r].name, strlen(u->refs[r].name));
      if (rc == 0) rc = td_mp_write_int(&refs, (int64_t)u->refs[r].size);
      if (rc == 0) rc = td_mp_write_int(&refs, (int64_t)u->refs[r].crc);
    }
  }
  if (rc == 0) rc = td_mp_write_raw(&out, f->data.data + at, f->data.len - at);
  if (rc == TD_ENOMEM) seterr(err, errlen, "out of memory");
  char companion[600];
  snprintf(companion, sizeof companion, "%s%s", f->name, TD_SHARED_SUFFIX);
  if (rc == 0) rc = write_listed(a, chk_dir, companion, job_name, refs.data, refs.len, err, errlen);
  if (rc == 0) rc = write_listed(a, chk_dir, f->name, job_name, out.data, out.len, err, errlen);
  for (int i = 0; rc == 0 && i < n; i++) {
    upload_t *u = &a->ups[num[i]];
    for (size_t r = 0; rc == 0 && r < u->n_refs; r++)
      rc = add_written(a, TD_SHARED_PREFIX, u->refs[r].name, u->refs[r].size, u->refs[r].crc);
    if (rc) seterr(err, errlen, "out of memory");
  }
  td_wbuf_destroy(&out);
  td_wbuf_destroy(&refs);
  return rc;
}

int td_asnap_run(td_asnap_t *a, const char *chk_dir, const char *job_name, atomic_int *flag,
                 int (*wanted)(void *ud, int64_t id), void *ud, char *err, size_t errlen) {
  stop_t st = {flag, wanted, ud, a->id}, *cancel = &st;
  int rc = cancelled(cancel) ? TD_ECANCELED : 0;
  if (rc) seterr(err, errlen, "cancelled");
  for (int i = 0; rc == 0 && i < TD_ASNAP_MAX_HOLES; i++)
    if (a->ups[i].used) rc = run_upload(&a->ups[i], cancel, err, errlen);
  for (size_t i = 0; rc == 0 && i < a->n_syncs; i++) rc = run_sync(&a->syncs[i], err, errlen);
  for (size_t i = 0; rc == 0 && i < a->n_files; i++) {
    if (cancelled(cancel)) {
      seterr(err, errlen, "cancelled");
      return TD_ECANCELED;
    }
    rc = write_file(a, &a->files[i], chk_dir, job_name, err, errlen);
  }
  return rc;
}

/* ---- the worker ---- */

typedef struct job {
  td_asnap_t *a;
  char *chk_dir;
  struct job *next;
} job_t;

struct td_asnap_worker {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  int started, stopping, stopped;
  atomic_int cancel;
  job_t *head, *tail;
  char *job_name;
  void (*done)(void *ud, int64_t id, const td_meta_file_t *files, size_t n, const char *error);
  int (*wanted)(void *ud, int64_t id);
  void *ud;
};

td_asnap_worker_t *td_asnap_worker_new(const char *job_name,
                                       void (*done)(void *ud, int64_t id,
                                                    const td_meta_file_t *files, size_t n,
                                                    const char *error),
                                       int (*wanted)(void *ud, int64_t id), void *ud) {
  td_asnap_worker_t *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  if (!(w->job_name = strdup(job_name ? job_name : ""))) {
    free(w);
    return NULL;
  }
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  w->done = done;
  w->wanted = wanted;
  w->ud = ud;
  return w;
}

static void free_job(job_t *j) {
  td_asnap_free(j->a);
  free(j->chk_dir);
  free(j);
}

static void *worker_main(void *arg) {
  td_asnap_worker_t *w = arg;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->head && !w->stopping) pthread_cond_wait(&w->cv, &w->mu);
    job_t *j = w->head;
    if (!j) break;
    w->head = j->next;
    if (!w->head) w->tail = NULL;
    pthread_mutex_unlock(&w->mu);
    char err[1024] = "";
    int rc = td_asnap_run(j->a, j->chk_dir, w->job_name, &w->cancel, w->wanted, w->ud, err,
                          sizeof err);
    if (rc && !err[0]) snprintf(err, sizeof err, "%s", td_strerror(rc));
    /* a cancelled one is not reported: its owner gives it up itself */
    size_t n = 0;
    const td_meta_file_t *files = td_asnap_written(j->a, &n);
    if (rc != TD_ECANCELED) w->done(w->ud, td_asnap_id(j->a), files, rc ? 0 : n, rc ? err : NULL);
    free_job(j);
    pthread_mutex_lock(&w->mu);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

int td_asnap_worker_push(td_asnap_worker_t *w, td_asnap_t *a, const char *chk_dir) {
  job_t *j = calloc(1, sizeof *j);
  if (!j || !(j->chk_dir = strdup(chk_dir))) {
    free(j);
    td_asnap_free(a);
    return TD_ENOMEM;
  }
  j->a = a;
  pthread_mutex_lock(&w->mu);
  int rc = 0;
  if (w->stopping) rc = TD_ECANCELED;
  else if (!w->started) {
    rc = -pthread_create(&w->thread, NULL, worker_main, w);
    if (rc == 0) w->started = 1;
  }
  if (rc == 0) {
    if (w->tail) w->tail->next = j;
    else w->head = j;
    w->tail = j;
    pthread_cond_signal(&w->cv);
  }
  pthread_mutex_unlock(&w->mu);
  if (rc) free_job(j);
  return rc;
}

void td_asnap_worker_stop(td_asnap_worker_t *w, int cancel) {
  pthread_mutex_lock(&w->mu);
  if (w->stopped) {
    pthread_mutex_unlock(&w->mu);
    return;
  }
  w->stopping = w->stopped = 1;
  if (cancel) atomic_store_explicit(&w->cancel, 1, memory_order_release);
  pthread_cond_signal(&w->cv);
  int started = w->started;
  pthread_mutex_unlock(&w->mu);
  if (started) pthread_join(w->thread, NULL);
}

void td_asnap_worker_free(td_asnap_worker_t *w) {
  if (!w) return;
  td_asnap_worker_stop(w, 1);
  while (w->head) {
    job_t *j = w->head;
    w->head = j->next;
    free_job(j);
  }
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w->job_name);
  free(w);
}
