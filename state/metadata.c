/* metadata.c - _metadata, state file identities, checkpoint verification
 * (see metadata.h). */
#include "metadata.h"
#include "shared.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "error.h"

#define INFO_SIZE 32u
#define FILE_ENTRY_FIXED 18u /* u32 subtask, u64 size, u32 crc, u16 name length */

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t errlen,
                                                         const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

int td_meta_stat_file(const char *dir, const char *name, uint64_t *size,
                      uint32_t *crc) {
  char path[4400];
  if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
    return -ENAMETOOLONG;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  int rc = 0;
  unsigned char c[4];
  if (fstat(fd, &st) != 0) rc = -errno;
  else if ((uint64_t)st.st_size < TD_SNAPSHOT_HEADER_SIZE + TD_SNAPSHOT_TRAILER_SIZE)
    rc = TD_ECORRUPT;
  else if (pread(fd, c, 4, st.st_size - 4) != 4)
    rc = TD_EIO;
  close(fd);
  if (rc) return rc;
  *size = (uint64_t)st.st_size;
  *crc = td_le_get32(c);
  return 0;
}

int td_meta_write(const char *dir, const td_meta_t *m, char *err, size_t errlen) {
  unsigned char info[INFO_SIZE];
  td_le_put64(info, (uint64_t)m->id);
  td_le_put64(info + 8, (uint64_t)m->time_ms);
  td_le_put32(info + 16, m->flags);
  td_le_put32(info + 20, (uint32_t)m->n_subtasks);
  memset(info + 24, 0, 8);
  size_t flen = 0;
  for (size_t i = 0; i < m->n_files; i++) flen += FILE_ENTRY_FIXED + strlen(m->files[i].name);
  unsigned char *files = malloc(flen ? flen : 1);
  if (!files) return TD_ENOMEM;
  unsigned char *p = files;
  for (size_t i = 0; i < m->n_files; i++) {
    const td_meta_file_t *f = &m->files[i];
    size_t nl = strlen(f->name);
    if (nl > 0xffff) {
      free(files);
      seterr(err, errlen, "%s/_metadata: file name too long", dir);
      return TD_EINVAL;
    }
    td_le_put32(p, (uint32_t)f->subtask);
    td_le_put64(p + 4, f->size);
    td_le_put32(p + 12, f->crc);
    td_le_put16(p + 16, (uint32_t)nl);
    memcpy(p + FILE_ENTRY_FIXED, f->name, nl);
    p += FILE_ENTRY_FIXED + nl;
  }
  td_snapshot_writer_t *w;
  int rc = td_snapshot_writer_open(&w, NULL, dir, "_metadata", TD_SNAPSHOT_KIND_METADATA,
                                   err, errlen);
  if (rc == 0) rc = td_snapshot_write_section(w, TD_META_INFO, info, sizeof info, err, errlen);
  if (rc == 0)
    rc = td_snapshot_write_section(w, TD_META_JOB, m->job_info, m->job_info_len, err, errlen);
  if (rc == 0)
    rc = td_snapshot_write_section(w, TD_META_SUBTASKS, m->subtasks, (size_t)m->n_subtasks,
                                   err, errlen);
  if (rc == 0)
    rc = td_snapshot_write_section(w, TD_META_NAME, m->job_name,
                                   m->job_name ? strlen(m->job_name) : 0, err, errlen);
  if (rc == 0) rc = td_snapshot_write_section(w, TD_META_FILES, files, flen, err, errlen);
  if (rc == 0) rc = td_snapshot_writer_commit(w, err, errlen);
  if (rc && w) td_snapshot_writer_abort(w);
  free(files);
  return rc;
}

void td_meta_free(td_meta_t *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n_files; i++) free(m->files[i].name);
  free(m->files);
  free(m->subtasks);
  free(m->job_name);
  free(m->job_info);
  free(m);
}

static unsigned char *dup_bytes(const td_bytes_t *b, int terminate) {
  unsigned char *p = malloc(b->len + 1);
  if (!p) return NULL;
  if (b->len) memcpy(p, b->data, b->len);
  if (terminate) p[b->len] = 0;
  return p;
}

/* Decode the sections of a sound _metadata snapshot into m. */
static int parse(const td_snapshot_t *s, const char *path, td_meta_t *m, char *err,
                 size_t errlen) {
  td_bytes_t info, job, subs, name, files;
  size_t pos;
#define NEED(tag, out)                                                           \
  do {                                                                           \
    pos = 0;                                                                     \
    if (td_snapshot_find(s, tag, &pos, &out) != 1) {                             \
      seterr(err, errlen, "%s: section %u missing (written by another version?)", \
             path, (unsigned)tag);                                               \
      return TD_ECORRUPT;                                                        \
    }                                                                            \
  } while (0)
  NEED(TD_META_INFO, info);
  NEED(TD_META_JOB, job);
  NEED(TD_META_SUBTASKS, subs);
  NEED(TD_META_NAME, name);
  NEED(TD_META_FILES, files);
#undef NEED
  if (info.len < 24) {
    seterr(err, errlen, "%s: info section too short", path);
    return TD_ECORRUPT;
  }
  m->id = (int64_t)td_le_get64(info.data);
  m->time_ms = (int64_t)td_le_get64(info.data + 8);
  m->flags = td_le_get32(info.data + 16);
  m->n_subtasks = (int)td_le_get32(info.data + 20);
  if (m->n_subtasks < 0 || (size_t)m->n_subtasks != subs.len || m->id < 1) {
    seterr(err, errlen, "%s: bad checkpoint id or subtask table", path);
    return TD_ECORRUPT;
  }
  m->subtasks = dup_bytes(&subs, 0);
  m->job_info = dup_bytes(&job, 0);
  m->job_info_len = job.len;
  m->job_name = (char *)dup_bytes(&name, 1);
  if (!m->subtasks || !m->job_info || !m->job_name) return TD_ENOMEM;
  if (memchr(m->job_name, 0, name.len)) {
    seterr(err, errlen, "%s: bad job name", path);
    return TD_ECORRUPT;
  }
  /* count, then copy the file entries */
  size_t n = 0;
  for (size_t off = 0; off < files.len; n++) {
    if (files.len - off < FILE_ENTRY_FIXED ||
        files.len - off - FILE_ENTRY_FIXED < td_le_get16(files.data + off + 16)) {
      seterr(err, errlen, "%s: bad file list", path);
      return TD_ECORRUPT;
    }
    off += FILE_ENTRY_FIXED + td_le_get16(files.data + off + 16);
  }
  m->files = calloc(n ? n : 1, sizeof *m->files);
  if (!m->files) return TD_ENOMEM;
  const unsigned char *p = files.data;
  for (size_t i = 0; i < n; i++) {
    td_meta_file_t *f = &m->files[i];
    size_t nl = td_le_get16(p + 16);
    f->subtask = (int)td_le_get32(p);
    f->size = td_le_get64(p + 4);
    f->crc = td_le_get32(p + 12);
    f->name = malloc(nl + 1);
    if (!f->name) return TD_ENOMEM;
    m->n_files = i + 1;
    memcpy(f->name, p + FILE_ENTRY_FIXED, nl);
    f->name[nl] = 0;
    /* a name within the directory, or a shared file (shared.h) */
    const char *base = f->name;
    if (nl > strlen(TD_SHARED_PREFIX) && !strncmp(base, TD_SHARED_PREFIX, strlen(TD_SHARED_PREFIX)))
      base += strlen(TD_SHARED_PREFIX);
    if (nl == 0 || memchr(base, '/', nl - (size_t)(base - f->name)) || base[0] == '.' ||
        memchr(f->name, 0, nl) || f->subtask < 0 || f->subtask >= m->n_subtasks) {
      seterr(err, errlen, "%s: bad file list entry %zu", path, i + 1);
      return TD_ECORRUPT;
    }
    p += FILE_ENTRY_FIXED + nl;
  }
  return 0;
}

int td_meta_read(const char *dir, td_meta_t **out, char *err, size_t errlen) {
  *out = NULL;
  char path[4400];
  if (snprintf(path, sizeof path, "%s/_metadata", dir) >= (int)sizeof path)
    return -ENAMETOOLONG;
  if (access(path, F_OK) != 0) {
    int rc = -errno;
    seterr(err, errlen, "%s: %s", path,
           rc == -ENOENT ? "missing: not a completed checkpoint" : td_strerror(rc));
    return rc;
  }
  td_snapshot_t *s;
  int rc = td_snapshot_read(&s, NULL, path, err, errlen);
  if (rc) return rc;
  if (td_snapshot_kind(s) != TD_SNAPSHOT_KIND_METADATA) {
    seterr(err, errlen, "%s: not a metadata file (kind %u)", path, td_snapshot_kind(s));
    td_snapshot_free(s);
    return TD_ECORRUPT;
  }
  td_meta_t *m = calloc(1, sizeof *m);
  rc = m ? parse(s, path, m, err, errlen) : TD_ENOMEM;
  td_snapshot_free(s);
  if (rc) {
    if (rc == TD_ENOMEM) seterr(err, errlen, "%s: out of memory", path);
    td_meta_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

int td_meta_identity_write(td_snapshot_writer_t *w, int64_t id, uint32_t flags,
                           const char *job, char *err, size_t errlen) {
  unsigned char sec[12 + TD_META_NAME_MAX];
  size_t nl = job ? strlen(job) : 0;
  if (nl > TD_META_NAME_MAX) nl = TD_META_NAME_MAX;
  td_le_put64(sec, (uint64_t)id);
  td_le_put32(sec + 8, flags);
  if (nl) memcpy(sec + 12, job, nl);
  return td_snapshot_write_section(w, TD_STATE_IDENTITY, sec, 12 + nl, err, errlen);
}

/* ---- verify ---- */

static int is_shared(const char *name) {
  return !strncmp(name, TD_SHARED_PREFIX, strlen(TD_SHARED_PREFIX));
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Check one file _metadata lists; returns 0 or a code with msg set. */
static int check_listed(const char *dir, const td_meta_t *m, const char *job,
                        const td_meta_file_t *f, td_snapshot_check_t *c, char *msg,
                        size_t msglen) {
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", dir, f->name);
  uint64_t size;
  uint32_t crc;
  int rc = td_meta_stat_file(dir, f->name, &size, &crc);
  if (rc == -ENOENT) {
    seterr(msg, msglen, "%s: missing (listed in _metadata)", path);
    return rc;
  }
  td_snapshot_t *s = NULL;
  if (rc == 0) rc = td_snapshot_read(&s, NULL, path, msg, msglen);
  else seterr(msg, msglen, "%s: %s", path, td_strerror(rc));
  if (rc) return rc;
  rc = TD_ECORRUPT;
  td_bytes_t id;
  size_t pos = 0;
  if (size != f->size || crc != f->crc) {
    seterr(msg, msglen,
           "%s: not the file checkpoint %lld wrote (size %llu, CRC %08x; _metadata "
           "records size %llu, CRC %08x)",
           path, (long long)m->id, (unsigned long long)size, (unsigned)crc,
           (unsigned long long)f->size, (unsigned)f->crc);
  } else if (td_snapshot_find(s, TD_STATE_IDENTITY, &pos, &id) != 1 || id.len < 12) {
    seterr(msg, msglen, "%s: no identity section (written by another version?)", path);
  } else {
    int64_t fid = (int64_t)td_le_get64(id.data);
    uint32_t flags = td_le_get32(id.data + 8);
    size_t nl = id.len - 12;
    size_t want = strlen(job) < TD_META_NAME_MAX ? strlen(job) : TD_META_NAME_MAX;
    if (!(flags & TD_STATE_FINAL) && fid != m->id)
      seterr(msg, msglen, "%s: written for checkpoint %lld, not %lld", path, (long long)fid,
             (long long)m->id);
    else if (nl != want || memcmp(id.data + 12, job, nl) != 0)
      seterr(msg, msglen, "%s: written for job '%.*s', not '%s'", path, (int)(nl > 200 ? 200 : nl),
             (const char *)id.data + 12, job);
    else {
      rc = 0;
      c->kind = td_snapshot_kind(s);
      c->version = td_snapshot_version(s);
      c->sections = (uint32_t)td_snapshot_count(s);
      c->size = td_snapshot_size(s);
      seterr(msg, msglen, "kind %u, version %u, %u sections, %llu bytes%s", c->kind,
             c->version, c->sections, (unsigned long long)c->size,
             flags & TD_STATE_FINAL ? ", final state" : "");
    }
  }
  td_snapshot_free(s);
  return rc;
}

int td_meta_verify(const char *dir, const char *job, td_snapshot_check_fn fn, void *ud,
                   td_meta_t **meta_out, char *err, size_t errlen) {
  if (meta_out) *meta_out = NULL;
  char msg[1024], first[1024] = "";
  td_snapshot_check_t c;
  td_meta_t *m = NULL;
  int rc = td_meta_read(dir, &m, msg, sizeof msg);
  memset(&c, 0, sizeof c);
  c.name = "_metadata";
  c.msg = msg;
  if (rc) {
    c.status = TD_SNAPSHOT_CHECK_BAD;
    c.rc = rc;
    if (fn) fn(&c, ud);
    seterr(err, errlen, "%s", msg);
    return rc;
  }
  if (!job) job = m->job_name;
  if (strcmp(job, m->job_name) != 0) {
    c.status = TD_SNAPSHOT_CHECK_BAD;
    c.rc = TD_ECORRUPT;
    seterr(msg, sizeof msg, "%s/_metadata: checkpoint of job '%s', not '%s'", dir,
           m->job_name, job);
    if (fn) fn(&c, ud);
    seterr(err, errlen, "%s", msg);
    td_meta_free(m);
    return TD_ECORRUPT;
  }
  c.status = TD_SNAPSHOT_CHECK_OK;
  seterr(msg, sizeof msg, "checkpoint %lld of job '%s', %zu files%s", (long long)m->id,
         m->job_name, m->n_files, m->flags & TD_META_FINAL ? ", final" : "");
  if (fn) fn(&c, ud);

  DIR *d = opendir(dir);
  if (!d) {
    rc = -errno;
    seterr(err, errlen, "%s: cannot list: %s", dir, td_strerror(rc));
    td_meta_free(m);
    return rc;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
        !strcmp(de->d_name, "_metadata"))
      continue;
    if (n == cap) {
      size_t ncap = cap ? 2 * cap : 16;
      char **nn = realloc(names, ncap * sizeof *nn);
      if (!nn) break;
      names = nn;
      cap = ncap;
    }
    if (!(names[n] = strdup(de->d_name))) break;
    n++;
  }
  closedir(d);
  if (de) rc = TD_ENOMEM;
  if (n > 1) qsort(names, n, sizeof *names, cmp_names);
  unsigned char *seen = calloc(m->n_files + 1, 1);
  if (!seen) rc = TD_ENOMEM;
  size_t bad = 0;
  int first_rc = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    memset(&c, 0, sizeof c);
    c.name = names[i];
    c.msg = msg;
    size_t k = 0;
    while (k < m->n_files && strcmp(m->files[k].name, names[i]) != 0) k++;
    if (k == m->n_files) {
      c.status = TD_SNAPSHOT_CHECK_SKIPPED;
      seterr(msg, sizeof msg, "%s/%s: %s", dir, names[i],
             ends_with(names[i], ".tmp") ? "unfinished write (a leftover .tmp file)"
                                         : "not part of the checkpoint (not in _metadata)");
    } else {
      seen[k] = 1;
      c.rc = check_listed(dir, m, job, &m->files[k], &c, msg, sizeof msg);
      c.status = c.rc ? TD_SNAPSHOT_CHECK_BAD : TD_SNAPSHOT_CHECK_OK;
    }
    if (c.status == TD_SNAPSHOT_CHECK_BAD && bad++ == 0) {
      first_rc = c.rc;
      snprintf(first, sizeof first, "%s", msg);
    }
    if (fn) fn(&c, ud);
  }
  for (size_t k = 0; rc == 0 && k < m->n_files; k++) {
    if (seen[k]) continue;
    memset(&c, 0, sizeof c);
    c.name = m->files[k].name;
    c.msg = msg;
    if (is_shared(m->files[k].name)) {
      /* a shared file: its size and whole-file CRC32C */
      char shared[4400];
      td_shared_ref_t ref = {.size = m->files[k].size, .crc = m->files[k].crc};
      snprintf(ref.name, sizeof ref.name, "%s", m->files[k].name + strlen(TD_SHARED_PREFIX));
      snprintf(shared, sizeof shared, "%s/../shared", dir);
      c.rc = td_shared_check(shared, &ref, msg, sizeof msg);
      if (c.rc == 0) {
        c.status = TD_SNAPSHOT_CHECK_OK;
        c.size = ref.size;
        seterr(msg, sizeof msg, "shared file, %llu bytes", (unsigned long long)ref.size);
        if (fn) fn(&c, ud);
        continue;
      }
    } else {
      c.rc = -ENOENT;
      seterr(msg, sizeof msg, "%s/%s: missing (listed in _metadata)", dir, m->files[k].name);
    }
    c.status = TD_SNAPSHOT_CHECK_BAD;
    if (bad++ == 0) {
      first_rc = c.rc;
      snprintf(first, sizeof first, "%s", msg);
    }
    if (fn) fn(&c, ud);
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  free(seen);
  if (rc == 0 && bad) {
    rc = first_rc;
    seterr(err, errlen, "%s: %zu of %zu files bad, first: %s", dir, bad, m->n_files, first);
  } else if (rc) {
    seterr(err, errlen, "%s: out of memory", dir);
  }
  if (rc == 0 && meta_out) *meta_out = m;
  else td_meta_free(m);
  return rc;
}

static int cmp_id_desc(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* The ids n of dir's chk-<n> entries, newest first, in *out (malloc'd);
 * their number, or -errno. */
static int list_checkpoints(const char *dir, int64_t **out) {
  *out = NULL;
  DIR *d = opendir(dir);
  if (!d) return -errno;
  size_t n = 0, cap = 0;
  int64_t *ids = NULL;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    char *end;
    if (strncmp(de->d_name, "chk-", 4) != 0) continue;
    long long id = strtoll(de->d_name + 4, &end, 10);
    if (*end || end == de->d_name + 4 || id <= 0) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      int64_t *grown = realloc(ids, cap * sizeof *ids);
      if (!grown) {
        free(ids);
        closedir(d);
        return TD_ENOMEM;
      }
      ids = grown;
    }
    ids[n++] = id;
  }
  closedir(d);
  if (n) qsort(ids, n, sizeof *ids, cmp_id_desc);
  *out = ids;
  return (int)n;
}

int64_t td_meta_latest(const char *job_dir, const char *job, int all,
                       void (*visit)(void *ud, int64_t id, td_meta_found_t found,
                                     const char *err),
                       void *ud, td_snapshot_check_fn fn, void *fn_ud, char *path,
                       size_t pathlen, int *n_complete) {
  if (n_complete) *n_complete = 0;
  if (path && pathlen) path[0] = 0;
  int64_t *ids;
  int n = list_checkpoints(job_dir, &ids);
  if (n < 0) return n;
  int64_t found = 0;
  for (int i = 0; i < n && (all || !found); i++) {
    char dir[4200], meta[4300], err[2048] = "";
    snprintf(dir, sizeof dir, "%s/chk-%lld", job_dir, (long long)ids[i]);
    snprintf(meta, sizeof meta, "%s/_metadata", dir);
    if (access(meta, F_OK) != 0) {
      if (visit) visit(ud, ids[i], TD_META_INCOMPLETE, NULL);
      continue;
    }
    if (n_complete) (*n_complete)++;
    if (visit) visit(ud, ids[i], TD_META_CHECKING, NULL);
    int rc = td_meta_verify(dir, job, fn, fn_ud, NULL, err, sizeof err);
    if (visit) visit(ud, ids[i], rc ? TD_META_CORRUPT : TD_META_SOUND, rc ? err : NULL);
    if (rc == 0 && !found) {
      found = ids[i];
      if (path) snprintf(path, pathlen, "%s", dir);
    }
  }
  free(ids);
  return found;
}
