/* shared.c - content-named files shared by checkpoints (shared.h). */
#include "shared.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH64_state_t on the stack: no malloc */
#include <xxhash.h>

#include "error.h"
#include "metadata.h"
#include "snapshot.h"

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t errlen,
                                                         const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (w == 0) return TD_EIO;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int td_shared_upload(const char *path, const char *shared_dir, td_shared_ref_t *ref,
                     char *err, size_t errlen) {
  char tmp[4400], dst[4400];
  /* the copy buffer on the stack: uploads run in snapshot children, which
   * must not call malloc, and in task threads at once (final states): a
   * static one was shared by those threads, so one thread's read could
   * land between another's hashing and writing (a file not named by its
   * content) */
  unsigned char copy_buf[128 << 10];
  if (mkdir(shared_dir, 0777) != 0 && errno != EEXIST) {
    int e = -errno;
    seterr(err, errlen, "%s: %s", shared_dir, td_strerror(e));
    return e;
  }
  int in = open(path, O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    int e = -errno;
    seterr(err, errlen, "%s: %s", path, td_strerror(e));
    return e;
  }
  /* unique among the process's threads and forked children */
  static atomic_ulong uploads;
  snprintf(tmp, sizeof tmp, "%s/.tmp-%ld-%lu", shared_dir, (long)getpid(),
           (unsigned long)atomic_fetch_add(&uploads, 1));
  int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  int rc = out < 0 ? -errno : 0;
  const char *bad = tmp;
  XXH64_state_t h;
  XXH64_reset(&h, 0);
  uint32_t crc = 0;
  uint64_t size = 0;
  while (rc == 0) {
    ssize_t n = read(in, copy_buf, sizeof copy_buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      rc = -errno;
      bad = path;
    }
    if (n <= 0) break;
    XXH64_update(&h, copy_buf, (size_t)n);
    crc = td_snapshot_crc32c(crc, copy_buf, (size_t)n);
    size += (uint64_t)n;
    rc = write_all(out, copy_buf, (size_t)n);
  }
  close(in);
  if (rc == 0 && fsync(out) != 0) rc = -errno;
  if (out >= 0 && close(out) != 0 && rc == 0) rc = -errno;
  if (rc == 0) {
    snprintf(ref->name, sizeof ref->name, "%016llx-%llu", (unsigned long long)XXH64_digest(&h),
             (unsigned long long)size);
    ref->size = size;
    ref->crc = crc;
    snprintf(dst, sizeof dst, "%s/%s", shared_dir, ref->name);
    struct stat st;
    if (stat(dst, &st) == 0 && (uint64_t)st.st_size == size) {
      unlink(tmp); /* there already: a checkpoint before uploaded it */
      return 0;
    }
    if (rename(tmp, dst) != 0) rc = -errno;
    else {
      int dfd = open(shared_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        if (fsync(dfd) != 0) rc = -errno;
        close(dfd);
      }
      if (rc == 0) return 0;
      bad = dst;
    }
  }
  if (out >= 0) unlink(tmp);
  seterr(err, errlen, "cannot upload %s to %s: %s: %s", path, shared_dir, bad, td_strerror(rc));
  return rc;
}

void td_shared_journal_append(const char *journal, const char *path, const td_shared_ref_t *ref) {
  char line[4600];
  const char *base = strrchr(path, '/');
  int n = snprintf(line, sizeof line, "%s %s %llu %u\n", base ? base + 1 : path, ref->name,
                   (unsigned long long)ref->size, (unsigned)ref->crc);
  int fd = open(journal, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (fd < 0) return;
  if (n > 0 && n < (int)sizeof line) (void)!write(fd, line, (size_t)n);
  close(fd);
}

int td_shared_check(const char *shared_dir, const td_shared_ref_t *ref, char *err,
                    size_t errlen) {
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", shared_dir, ref->name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = -errno;
    seterr(err, errlen, "%s: %s", path, e == -ENOENT ? "missing" : td_strerror(e));
    return e;
  }
  uint32_t crc = 0;
  uint64_t size = 0;
  int rc = 0;
  unsigned char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) rc = -errno;
    if (n <= 0) break;
    crc = td_snapshot_crc32c(crc, buf, (size_t)n);
    size += (uint64_t)n;
  }
  close(fd);
  if (rc) {
    seterr(err, errlen, "%s: %s", path, td_strerror(rc));
    return rc;
  }
  if (size != ref->size || crc != ref->crc) {
    seterr(err, errlen,
           "%s: not the file the checkpoint uploaded (size %llu, CRC %08x; expected size "
           "%llu, CRC %08x)",
           path, (unsigned long long)size, (unsigned)crc, (unsigned long long)ref->size,
           (unsigned)ref->crc);
    return TD_ECORRUPT;
  }
  return 0;
}

/* One [name, size, crc] entry at *p; 0 or TD_ECORRUPT. */
static int read_ref(const char **p, const char *end, td_shared_ref_t *r) {
  td_mp_item_t it;
  if (td_mp_read(p, end, &it) || it.type != TD_MP_ARRAY || it.v.n != 3) return TD_ECORRUPT;
  if (td_mp_read(p, end, &it) || it.type != TD_MP_STR || it.v.s.len == 0 ||
      it.v.s.len >= TD_SHARED_NAME_MAX || memchr(it.v.s.p, '/', it.v.s.len) ||
      it.v.s.p[0] == '.')
    return TD_ECORRUPT;
  memcpy(r->name, it.v.s.p, it.v.s.len);
  r->name[it.v.s.len] = 0;
  if (td_mp_read(p, end, &it) || it.type != TD_MP_INT || it.v.i < 0) return TD_ECORRUPT;
  r->size = (uint64_t)it.v.i;
  if (td_mp_read(p, end, &it) || it.type != TD_MP_INT || it.v.i < 0 || it.v.i > UINT32_MAX)
    return TD_ECORRUPT;
  r->crc = (uint32_t)it.v.i;
  return 0;
}

int td_shared_read(const char *path, td_shared_ref_t **refs, size_t *n, char *err,
                   size_t errlen) {
  *refs = NULL;
  *n = 0;
  td_snapshot_t *s = NULL;
  int rc = td_snapshot_read(&s, NULL, path, err, errlen);
  if (rc) return rc;
  size_t pos = 0;
  td_bytes_t data;
  td_mp_item_t it;
  const char *p = NULL, *end = NULL;
  rc = TD_ECORRUPT;
  if (td_snapshot_find(s, TD_STATE_DATA, &pos, &data) == 1) {
    p = data.data;
    end = p + data.len;
    if (data.len > 0 && td_mp_read(&p, end, &it) == 0 && it.type == TD_MP_ARRAY) rc = 0;
  }
  if (rc == 0 && it.v.n > 0) {
    *refs = calloc(it.v.n, sizeof **refs);
    if (!*refs) rc = TD_ENOMEM;
    for (uint32_t i = 0; rc == 0 && i < it.v.n; i++) rc = read_ref(&p, end, &(*refs)[i]);
    if (rc == 0) *n = it.v.n;
  }
  td_snapshot_free(s);
  if (rc) {
    free(*refs);
    *refs = NULL;
    if (rc == TD_ECORRUPT) seterr(err, errlen, "%s: not a list of shared files", path);
  }
  return rc;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int td_shared_sweep(const char *shared_dir, char **keep, size_t n, int min_age_s) {
  DIR *d = opendir(shared_dir);
  if (!d) return errno == ENOENT ? 0 : -errno;
  int removed = 0;
  time_t now = time(NULL);
  char path[4400];
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    const char *name = de->d_name;
    if (!strcmp(name, ".") || !strcmp(name, "..")) continue;
    if (n && bsearch(&name, keep, n, sizeof *keep, cmp_str)) continue;
    snprintf(path, sizeof path, "%s/%s", shared_dir, name);
    if (name[0] == '.') {
      struct stat st;
      if (stat(path, &st) != 0 || now - st.st_mtime < min_age_s) continue;
    }
    if (unlink(path) == 0) removed++;
  }
  closedir(d);
  return removed;
}
