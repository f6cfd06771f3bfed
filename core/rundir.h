/*
 * rundir.h - the per-user run directory: one entry per running job, so
 * that `tide list`, `tide savepoint`, `tide stop` and `tide cancel` find a
 * job's control endpoint by its id.
 *
 * The directory is $XDG_RUNTIME_DIR/tide when XDG_RUNTIME_DIR is set, else
 * /tmp/tide-<uid>; it is created with mode 0700 and refused when another
 * user owns it or others may write to it (a run file names the address
 * the CLI sends commands to). An entry is <dir>/<job id>.json (written
 * atomically: tmp, rename) holding
 *
 *   {"id": "...", "pid": 1234, "pid_start": <start time of the process in
 *    clock ticks since boot, /proc/<pid>/stat field 22>, "address":
 *    "127.0.0.1:8081", "script": "job.lua", "started": <ms since the
 *    epoch>}
 *
 * An entry whose process is gone (no such pid, or a pid reused by a
 * process that started at another time) is stale: lookups ignore it and
 * remove it.
 *
 * Thread safety: no shared state.
 */
#ifndef TD_RUNDIR_H
#define TD_RUNDIR_H

#include <stddef.h>
#include <stdint.h>

typedef struct td_rundir_entry {
  char id[64];
  long pid;
  long long pid_start;
  char address[128];    /* host:port of the control endpoint */
  char script[1024];
  int64_t started_ms;
} td_rundir_entry_t;

/*
 * td_rundir_path - the run directory into buf, created (mode 0700) if
 * missing. Returns 0; -errno or TD_EINVAL (not ours, or writable by
 * others) with a message in err.
 */
int td_rundir_path(char *buf, size_t len, char *err, size_t errlen);

/* td_rundir_pid_start - the start time of process pid (clock ticks since
 * boot, /proc/<pid>/stat field 22), or -1 when there is none. */
long long td_rundir_pid_start(long pid);

/*
 * td_rundir_add - write e as the entry of job e->id. Returns 0, or a
 * negative code with a message in err.
 */
int td_rundir_add(const td_rundir_entry_t *e, char *err, size_t errlen);

/* td_rundir_remove - remove the entry of job id (missing: no-op). */
void td_rundir_remove(const char *id);

/*
 * td_rundir_list - the entries of running jobs, oldest first, into a
 * malloc'ed array (*out, *n; free it); stale entries are removed and
 * counted in *stale (may be NULL). Returns 0, or a negative code with a
 * message in err.
 */
int td_rundir_list(td_rundir_entry_t **out, size_t *n, int *stale, char *err, size_t errlen);

/*
 * td_rundir_find - the entry of running job id into *out. Returns 0;
 * -ENOENT when there is none (*stale: 1 when there was a stale one, now
 * removed); another negative code with a message in err.
 */
int td_rundir_find(const char *id, td_rundir_entry_t *out, int *stale, char *err, size_t errlen);

#endif
