/* rundir.c - the per-user run directory of running jobs (see rundir.h). */
#include "rundir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "error.h"

int td_rundir_path(char *buf, size_t len, char *err, size_t errlen) {
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  if (xdg && *xdg) snprintf(buf, len, "%s/tide", xdg);
  else snprintf(buf, len, "/tmp/tide-%ld", (long)getuid());
  if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
    int e = errno;
    snprintf(err, errlen, "cannot create the run directory %s: %s", buf, strerror(e));
    return -e;
  }
  struct stat sb;
  if (lstat(buf, &sb) != 0) {
    int e = errno;
    snprintf(err, errlen, "cannot use the run directory %s: %s", buf, strerror(e));
    return -e;
  }
  if (!S_ISDIR(sb.st_mode) || sb.st_uid != getuid() || (sb.st_mode & 022)) {
    snprintf(err, errlen,
             "the run directory %s is not a directory of this user closed to others "
             "(mode 0700): not used",
             buf);
    return TD_EINVAL;
  }
  return 0;
}

long long td_rundir_pid_start(long pid) {
  char path[64], line[2048];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = 0;
  /* field 2 is "(comm)" and may hold spaces: count from its ')' */
  char *p = strrchr(line, ')');
  if (!p) return -1;
  p++;
  for (int field = 3; field < 22 && p; field++) { /* p: the space before field 3 */
    p = strchr(p + 1, ' ');
  }
  return p ? strtoll(p + 1, NULL, 10) : -1;
}

static int entry_path(const char *id, char *buf, size_t len, char *err, size_t errlen) {
  char dir[4096];
  int rc = td_rundir_path(dir, sizeof dir, err, errlen);
  if (rc) return rc;
  /* ids are ours (hex); never a path */
  if (!*id || strchr(id, '/') || id[0] == '.') {
    snprintf(err, errlen, "'%s' is not a job id", id);
    return TD_EINVAL;
  }
  snprintf(buf, len, "%s/%s.json", dir, id);
  return 0;
}

int td_rundir_add(const td_rundir_entry_t *e, char *err, size_t errlen) {
  char path[4200], tmp[4300];
  int rc = entry_path(e->id, path, sizeof path, err, errlen);
  if (rc) return rc;
  json_t *o = json_pack("{s:s, s:I, s:I, s:s, s:s, s:I}", "id", e->id, "pid", (json_int_t)e->pid,
                        "pid_start", (json_int_t)e->pid_start, "address", e->address, "script",
                        e->script, "started", (json_int_t)e->started_ms);
  if (!o) {
    snprintf(err, errlen, "out of memory");
    return TD_ENOMEM;
  }
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  rc = json_dump_file(o, tmp, JSON_COMPACT) == 0 ? 0 : -EIO;
  json_decref(o);
  if (rc == 0 && rename(tmp, path) != 0) rc = -errno;
  if (rc) {
    unlink(tmp);
    snprintf(err, errlen, "cannot write the run file %s: %s", path, strerror(-rc));
  }
  return rc;
}

void td_rundir_remove(const char *id) {
  char path[4200], err[256];
  if (entry_path(id, path, sizeof path, err, sizeof err) == 0) unlink(path);
}

/* Read the entry file at path; 0 or -1 (not an entry). */
static int read_entry(const char *path, td_rundir_entry_t *e) {
  json_error_t je;
  json_t *o = json_load_file(path, 0, &je);
  if (!o) return -1;
  const char *id = NULL, *addr = NULL, *script = "";
  json_int_t pid = 0, start = -1, started = 0;
  int rc = json_unpack(o, "{s:s, s:I, s?I, s:s, s?s, s?I}", "id", &id, "pid", &pid, "pid_start",
                       &start, "address", &addr, "script", &script, "started", &started);
  if (rc == 0) {
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", id);
    snprintf(e->address, sizeof e->address, "%s", addr);
    snprintf(e->script, sizeof e->script, "%s", script);
    e->pid = (long)pid;
    e->pid_start = start;
    e->started_ms = started;
  }
  json_decref(o);
  return rc == 0 ? 0 : -1;
}

/* Whether the process of e still runs (the same process: its start time
 * matches, so a reused pid is not taken for it). */
static int alive(const td_rundir_entry_t *e) {
  if (e->pid <= 0) return 0;
  if (kill((pid_t)e->pid, 0) != 0 && errno != EPERM) return 0;
  long long start = td_rundir_pid_start(e->pid);
  return e->pid_start < 0 || start < 0 || start == e->pid_start;
}

static int cmp_started(const void *a, const void *b) {
  const td_rundir_entry_t *x = a, *y = b;
  return x->started_ms < y->started_ms ? -1 : x->started_ms > y->started_ms;
}

int td_rundir_list(td_rundir_entry_t **out, size_t *n, int *stale, char *err, size_t errlen) {
  char dir[4096], path[4400];
  *out = NULL;
  *n = 0;
  if (stale) *stale = 0;
  int rc = td_rundir_path(dir, sizeof dir, err, errlen);
  if (rc) return rc;
  DIR *d = opendir(dir);
  if (!d) {
    int e = errno;
    snprintf(err, errlen, "cannot list the run directory %s: %s", dir, strerror(e));
    return -e;
  }
  size_t cap = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    size_t len = strlen(de->d_name);
    if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0 || de->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    td_rundir_entry_t e;
    if (read_entry(path, &e) != 0) continue;
    if (!alive(&e)) {
      unlink(path);
      if (stale) (*stale)++;
      continue;
    }
    if (*n == cap) {
      cap = cap ? 2 * cap : 8;
      td_rundir_entry_t *a = realloc(*out, cap * sizeof *a);
      if (!a) {
        closedir(d);
        free(*out);
        *out = NULL;
        *n = 0;
        snprintf(err, errlen, "out of memory");
        return TD_ENOMEM;
      }
      *out = a;
    }
    (*out)[(*n)++] = e;
  }
  closedir(d);
  if (*n) qsort(*out, *n, sizeof **out, cmp_started);
  return 0;
}

int td_rundir_find(const char *id, td_rundir_entry_t *out, int *stale, char *err, size_t errlen) {
  char path[4200];
  *stale = 0;
  int rc = entry_path(id, path, sizeof path, err, errlen);
  if (rc) return rc;
  if (read_entry(path, out) != 0) return -ENOENT;
  if (!alive(out)) {
    unlink(path);
    *stale = 1;
    return -ENOENT;
  }
  return 0;
}
