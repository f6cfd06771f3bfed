/*
 * main.c - the `tide` command line.
 *
 *   tide run JOB.lua [--parallelism N] [--max-parallelism M]
 *                    [--checkpoint-dir D] [--checkpoint-interval T] [--resume]
 *                    [--from-savepoint P [--allow-non-restored-state]]
 *                    [--allow-existing-output] [--buffer-timeout T]
 *                    [--state-backend heap|rocksdb] [--state-dir D]
 *                    [--rest-port N] [--rest-bind ADDR] [-- ARGS...]
 *   tide list
 *   tide savepoint JOB [DIR]
 *   tide stop JOB --savepoint [DIR] [--drain]
 *   tide cancel JOB
 *   tide reload JOB NEW.lua [--allow-non-restored-state] [-- ARGS...]
 *   tide verify DIR
 *   tide version
 *   tide help
 *
 * Exit status: 0 success; 1 the job or the script failed at run time (or
 * was cancelled by tide cancel), or a job control command failed (unknown
 * job, failed savepoint); 2 wrong usage, a job script that does not load
 * (syntax error), nothing to resume, a savepoint that cannot be restored,
 * or output a fresh start would duplicate; 3 every completed checkpoint is
 * corrupt (the job can neither resume nor start afresh); 130/143 SIGINT /
 * SIGTERM.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "luacompat.h"

#include <jansson.h>

#include "client.h"
#include "error.h"
#include "control.h"
#include "cluster.h"
#include "host.h"
#include "job.h"
#include "keygroup.h"
#include "metadata.h"
#include "log.h"
#include "metrics.h"
#include "reload.h"
#include "rundir.h"

static const char USAGE[] =
    "usage: tide run JOB.lua [--vm lua5.4|luajit] [--parallelism N] [--max-parallelism M]\n"
    "                        [--checkpoint-dir D] [--checkpoint-interval T]\n"
    "                        [--resume] [--allow-existing-output]\n"
    "                        [--from-savepoint P [--allow-non-restored-state]]\n"
    "                        [--buffer-timeout T] [--state-backend heap|rocksdb]\n"
    "                        [--state-dir D] [--rest-port N] [--rest-bind ADDR]\n"
    "                        [--no-metrics] [--log-level L] [--log-format F]\n"
    "                        [--summary] [--quiet]\n"
    "                        [--jobmanager ADDR[:PORT] --secret-file F [--detached]]\n"
    "                        [-- ARGS...]\n"
    "       tide list [--jobmanager ADDR[:PORT] --secret-file F]\n"
    "       tide savepoint JOB [DIR] [--jobmanager ADDR --secret-file F]\n"
    "       tide stop JOB --savepoint [DIR] [--drain] [--jobmanager ADDR --secret-file F]\n"
    "       tide cancel JOB [--jobmanager ADDR --secret-file F]\n"
    "       tide jobmanager --secret-file F [--bind ADDR[:PORT]] [--heartbeat-interval T]\n"
    "                       [--heartbeat-timeout T] [--work-dir D]\n"
    "       tide taskmanager --jobmanager ADDR[:PORT] --secret-file F [--slots N]\n"
    "                        [--bind ADDR[:PORT]] [--work-dir D]\n"
    "       tide reload JOB NEW.lua [--allow-non-restored-state] [-- ARGS...]\n"
    "       tide verify DIR\n"
    "       tide version\n"
    "       tide help\n"
    "\n"
    "  run                    run the job script JOB.lua until its sources end\n"
    "      --vm V             the Lua VM of the job: lua5.4 (default) or luajit\n"
    "  -p, --parallelism N    default parallelism of the job's operators (1)\n"
    "      --max-parallelism M  number of key groups (default: Flink's rule,\n"
    "                         1.5 x parallelism rounded up to a power of two,\n"
    "                         128 .. 32768)\n"
    "      --checkpoint-dir D   take checkpoints into D/<job name>/chk-<n>\n"
    "      --checkpoint-interval T  every T (e.g. 500ms, 1s, 5m)\n"
    "      --resume           restart from the latest completed checkpoint\n"
    "                         in the checkpoint directory (exit 2 if none was\n"
    "                         completed, 3 if every completed one is corrupt)\n"
    "      --buffer-timeout T   send partly filled exchange buffers at least\n"
    "                         every T (default 100ms; 0: after every batch)\n"
    "      --state-backend B  where keyed state lives: heap (Lua values in\n"
    "                         memory, the default) or rocksdb (an embedded\n"
    "                         RocksDB per operator and subtask, on local disk)\n"
    "      --state-dir D      base directory of the RocksDB working directories\n"
    "                         (default: $TMPDIR or /tmp; removed at exit)\n"
    "      --allow-existing-output  start afresh even when a file sink's\n"
    "                         directory holds committed output of this job\n"
    "                         (a second set of part files is added)\n"
    "      --from-savepoint P   restore the savepoint (or checkpoint) directory P:\n"
    "                         state goes to operators by uid; new operators\n"
    "                         start empty; another parallelism rescales\n"
    "      --allow-non-restored-state  drop the state of operators (uids) the\n"
    "                         job no longer has, instead of refusing\n"
    "      --rest-port N      the control endpoint's port (default: a free one)\n"
    "      --rest-bind ADDR   its address (default 127.0.0.1)\n"
    "      --no-metrics       no busy/idle/backpressured time and no byte counts\n"
    "                         (docs/METRICS.md); record counts stay\n"
    "      --log-level L      error, warn, info (default) or debug: the\n"
    "                         highest level of the lines written on stderr\n"
    "      --log-format F     text (default: tide: MESSAGE) or json (one\n"
    "                         object a line: ts, level, component, job,\n"
    "                         subtask, message)\n"
    "      --summary          at the end, records per task, checkpoints,\n"
    "                         restarts and runtime (default when stderr is a\n"
    "                         terminal)\n"
    "      --quiet            no progress line on a terminal, no summary\n"
    "                         unless an event calls for one\n"
    "      --jobmanager ADDR  run the job on the cluster of the job manager at\n"
    "                         ADDR, as its master (docs/CLUSTER.md)\n"
    "      --secret-file F    the cluster's secret (a file of mode 600)\n"
    "      --detached         the job manager runs the job's master; print the\n"
    "                         job's id and return\n"
    "  -- ARGS...             passed to the script as arg[1..] and ...\n"
    "  list                   the running jobs of this user on this machine;\n"
    "                         with --jobmanager, the cluster's task managers\n"
    "                         and jobs\n"
    "  savepoint JOB [DIR]    take a savepoint of job JOB into\n"
    "                         DIR/savepoint-<JOB>-<n> (default DIR: the job's\n"
    "                         --checkpoint-dir) and print its path\n"
    "  stop JOB --savepoint [DIR] [--drain]  take a savepoint, then stop the job\n"
    "                         with its output committed; --drain first emits\n"
    "                         the MAX watermark (every window fires, timers run)\n"
    "  cancel JOB             cancel the job (no savepoint); savepoint, stop\n"
    "                         and cancel find a cluster's job through\n"
    "                         --jobmanager ADDR --secret-file F\n"
    "  jobmanager             run a cluster's job manager: the registry of task\n"
    "                         managers and their slots (--bind: default\n"
    "                         127.0.0.1:6123; heartbeats every 1s, lost after 10s)\n"
    "  taskmanager            run a task manager: registers --slots N (default\n"
    "                         1) with --jobmanager and runs the subtasks\n"
    "                         deployed to it; --bind: its network shuffle's\n"
    "                         address\n"
    "  reload JOB NEW.lua     swap the job's logic for NEW.lua in the running\n"
    "                         process: an aligned cut (a stop with savepoint),\n"
    "                         then NEW.lua restored from it by the restore rules\n"
    "                         of --from-savepoint; if NEW.lua does not load, does\n"
    "                         not match the cut, or fails before its first\n"
    "                         checkpoint, the old logic runs on from the cut and\n"
    "                         reload exits 1 with the reason. -- ARGS... gives\n"
    "                         NEW.lua other arguments (default: the job's)\n"
    "  verify DIR             check a checkpoint directory (chk-<n>), or every\n"
    "                         checkpoint of a job's directory, as --resume does:\n"
    "                         _metadata and every file it lists (magic, version,\n"
    "                         CRC32C, size, the checkpoint and job it was written\n"
    "                         for); exit 0 if sound, 1 if not; a savepoint\n"
    "                         directory is checked the same way\n";

static int usage_error(const char *fmt, const char *what) {
  fprintf(stderr, "tide: ");
  fprintf(stderr, fmt, what);
  fprintf(stderr, "\n%s", USAGE);
  return 2;
}

/* A fresh job id: 16 hex digits from /dev/urandom (the clock and pid
 * when it cannot be read). */
static void new_run_id(char out[17]) {
  unsigned char b[8];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, b, sizeof b) : -1;
  if (fd >= 0) close(fd);
  if (n != (ssize_t)sizeof b) {
    unsigned long long v = (unsigned long long)time(NULL) * 1000003ULL ^ (unsigned long long)getpid();
    memcpy(b, &v, sizeof b);
  }
  for (int i = 0; i < 8; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* A duration as the Lua API takes it: a whole or decimal number and a
 * unit, ms, s, m, h or d ("500ms", "1.5s"). 0 and *ms, or -1. */
static int parse_duration(const char *s, long long *ms) {
  static const struct { const char *unit; double ms; } units[] = {
      {"ms", 1}, {"s", 1e3}, {"m", 6e4}, {"h", 3.6e6}, {"d", 8.64e7}};
  char *end;
  while (*s == ' ') s++;
  if (*s < '0' || *s > '9') return -1;
  double v = strtod(s, &end);
  while (*end == ' ') end++;
  size_t n = strcspn(end, " ");
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strlen(units[i].unit) == n && strncmp(end, units[i].unit, n) == 0) {
      const char *rest = end + n;
      while (*rest == ' ') rest++;
      if (*rest || v * units[i].ms > 9.2e18) return -1;
      *ms = (long long)(v * units[i].ms + 0.5);
      return 0;
    }
  }
  return -1;
}

static int parse_positive(const char *s, long max, int *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == 0 || *end != 0 || v < 1 || v > max) return -1;
  *out = (int)v;
  return 0;
}

/* Let the job find the `tide` Lua modules: next to the binary in a build
 * tree (build/../lua) or in an installed tree (bin/../share/lua/5.4), ahead
 * of LUA_PATH and the default path. */
static void add_lua_path(lua_State *L) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return;
  exe[n] = 0;
  char *slash = strrchr(exe, '/');
  if (!slash) return;
  *slash = 0;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/../lua/?.lua;%s/../share/lua/5.4/?.lua;%s", exe, exe,
                  lua_tostring(L, -1));
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}

/* ---- SIGINT / SIGTERM: cancel the job, a second one exits at once ------
 * The handler only writes the signal number to a pipe (async-signal-safe)
 * or, on a second signal, _exits; a thread reads the pipe, says what it
 * does and cancels the running job (td_job_cancel_all). The job's failure
 * then reaches tide.lua, which sees core.cancel_signal(), removes the
 * in-progress part files, keeps the checkpoints and exits 128 + signal. */
static int signal_pipe[2] = {-1, -1};
static atomic_int signals_seen;

static void on_signal(int sig) {
  if (atomic_fetch_add(&signals_seen, 1) > 0) _exit(128 + sig);
  unsigned char b = (unsigned char)sig;
  ssize_t w = write(signal_pipe[1], &b, 1);
  (void)w;
}

static void *signal_thread(void *arg) {
  (void)arg;
  unsigned char b;
  while (read(signal_pipe[0], &b, 1) != 1) {
    if (errno != EINTR) return NULL;
  }
  const char *name = b == SIGINT ? "SIGINT" : "SIGTERM";
  char line[128];
  snprintf(line, sizeof line, "%s: cancelling the job (again to exit at once)", name);
  td_log(TD_LOG_INFO, "run", NULL, line);
  td_host_set_cancel_signal(b);
  char reason[64];
  snprintf(reason, sizeof reason, "cancelled by %s", name);
  td_job_cancel_all(reason);
  return NULL;
}

static void install_signal_handlers(void) {
  if (pipe(signal_pipe) != 0) return;
  pthread_t th;
  if (pthread_create(&th, NULL, signal_thread, NULL) != 0) return;
  pthread_detach(th);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

/* The logic the process runs: a job script, its pinned text (NULL until
 * the planning VM read it) and its arguments; req owns the strings of a
 * reloaded one (NULL: the command line's). */
typedef struct logic {
  const char *path;
  char *text;
  size_t len;
  const char **args;
  int n_args;
  td_reload_request_t *req;
} logic_t;

static void logic_free(logic_t *l) {
  free(l->text);
  free((void *)l->args);
  if (l->req) td_reload_request_free(l->req);
  free(l->req);
  memset(l, 0, sizeof *l);
}

/* The code script loads (require, tide.load_module) up to its first
 * env:execute(), as [{kind, name, path}, ...]; NULL with the script's
 * error in err. */
static json_t *discover_files(const char *script, const char **args, int n_args, char *err,
                              size_t errlen) {
  lua_State *L = td_host_new_state();
  if (!L) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  add_lua_path(L);
  lua_pushboolean(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, "tide.discover");
  json_t *out = NULL;
  if (td_host_ship_files(L, NULL, 0, 1) != 0) {
    snprintf(err, errlen, "%s", lua_tostring(L, -1));
  } else if (td_host_run_script(L, script, NULL, 0, args, n_args, err, errlen) == TD_RUN_OK) {
    out = json_array();
    lua_getglobal(L, "require");
    lua_pushstring(L, "tide.ship");
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
      lua_getfield(L, -1, "files");
      if (lua_pcall(L, 0, 1, 0) == LUA_OK && lua_istable(L, -1)) {
        for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TTABLE; i++) {
          lua_getfield(L, -1, "kind");
          lua_getfield(L, -2, "name");
          lua_getfield(L, -3, "path");
          if (lua_isstring(L, -3) && lua_isstring(L, -2) && lua_isstring(L, -1))
            json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "kind", lua_tostring(L, -3),
                                                 "name", lua_tostring(L, -2), "path",
                                                 lua_tostring(L, -1)));
          lua_pop(L, 4);
        }
      }
    }
  }
  fflush(stdout);
  lua_close(L);
  return out;
}

/* The files a detached job's client shipped (the job manager names its
 * manifest in TIDE_SHIPPED: [{kind, name, file, origin}, ...]), which the
 * planning VM's require and load_module resolve to; read once. */
static td_job_file_t *shipped;
static int n_shipped;
static json_t *shipped_root;

static int load_shipped(char *err, size_t errlen) {
  const char *path = getenv("TIDE_SHIPPED");
  if (!path || shipped_root) return 0;
  json_error_t je;
  shipped_root = json_load_file(path, 0, &je);
  size_t n = json_array_size(shipped_root);
  shipped = calloc(n + 1, sizeof *shipped);
  if (!shipped_root || !json_is_array(shipped_root) || !shipped) {
    snprintf(err, errlen, "cannot read the shipped files' manifest %s: %s", path, je.text);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *f = json_array_get(shipped_root, i);
    td_job_file_t *jf = &shipped[n_shipped];
    jf->kind = json_string_value(json_object_get(f, "kind"));
    jf->name = json_string_value(json_object_get(f, "name"));
    jf->path = json_string_value(json_object_get(f, "file"));
    jf->origin = json_string_value(json_object_get(f, "origin"));
    if (!jf->kind || !jf->name || !jf->path) {
      snprintf(err, errlen, "%s: entry %zu is malformed", path, i + 1);
      return -1;
    }
    n_shipped++;
  }
  return 0;
}

/* Run logic l in a fresh planning VM (its pinned text when known; the
 * text the VM read is kept in l). Returns TD_RUN_*, the message in err. */
static int run_planning(logic_t *l, char *err, size_t errlen) {
  lua_State *L = td_host_new_state();
  if (!L) {
    snprintf(err, errlen, "out of memory");
    return TD_RUN_ERROR;
  }
  add_lua_path(L);
  if (l->text) td_host_pin_script(L, l->text, l->len);
  int rc;
  if (load_shipped(err, errlen) != 0) {
    rc = TD_RUN_ERROR;
  } else if (td_host_ship_files(L, n_shipped ? shipped : NULL, n_shipped, 1) != 0) {
    snprintf(err, errlen, "%s", lua_tostring(L, -1));
    rc = TD_RUN_ERROR;
  } else {
    rc = td_host_run_script(L, l->path, NULL, 0, l->args, l->n_args, err, errlen);
  }
  fflush(stdout);
  size_t len;
  const char *text = l->text ? NULL : td_host_pinned(L, &len);
  if (text && (l->text = malloc(len + 1))) {
    memcpy(l->text, text, len);
    l->len = len;
  }
  lua_close(L);
  return rc;
}

/* The first line of a failure message (no traceback), into buf. */
static const char *first_line(const char *msg, char *buf, size_t len) {
  snprintf(buf, len, "%.*s", (int)strcspn(msg, "\n"), msg);
  return buf;
}

/* The planning VM of logic cur handed the process over to a live reload
 * (TD_RUN_RELOAD): run the new logic from the cut; if it fails to load,
 * to match the cut, or before it is healthy, run cur again from the cut
 * (reload.h). cur becomes the logic that runs on. Returns what the last
 * planning VM returned. */
static int run_reload(logic_t *cur, td_rundir_entry_t *entry, int registered, char *err,
                      size_t errlen) {
  static char cut[4200];
  logic_t next = {0};
  next.req = calloc(1, sizeof *next.req);
  if (!next.req || td_reload_take(next.req, cut, sizeof cut) != 0) {
    free(next.req);
    snprintf(err, errlen, "internal error: a reload without a request");
    return TD_RUN_ERROR;
  }
  next.path = next.req->path;
  next.text = malloc(next.req->len + 1);
  next.len = next.req->len;
  next.n_args = next.req->n_args;
  next.args = malloc(sizeof(char *) * (size_t)(next.n_args > 0 ? next.n_args : 1));
  if (!next.text || !next.args) {
    logic_free(&next);
    snprintf(err, errlen, "out of memory");
    return TD_RUN_ERROR;
  }
  memcpy(next.text, next.req->text, next.len);
  for (int i = 0; i < next.n_args; i++) next.args[i] = next.req->args[i];
  if (next.n_args > 0) next.args[0] = next.path;
  fprintf(stderr, "tide: job %s: reloading with %s from the cut %s\n", entry->id, next.path, cut);
  char cerr[512];
  if (registered) {
    snprintf(entry->script, sizeof entry->script, "%s", next.path);
    td_rundir_add(entry, cerr, sizeof cerr);
  }
  td_host_set_restore_defaults(cut, next.req->allow_non_restored);
  td_host_set_resume(0);
  int rc = run_planning(&next, err, errlen);
  if (rc != TD_RUN_OK && rc != TD_RUN_RELOAD && rc != TD_RUN_SIGINT && rc != TD_RUN_SIGTERM) {
    char why[2048];
    if (td_reload_claim_failure(first_line(err, why, sizeof why))) {
      fprintf(stderr, "tide: job %s: the reload failed, so the old logic (%s) runs again from "
              "the cut %s: %s\n", entry->id, cur->path, cut, err);
      logic_free(&next);
      if (registered) {
        snprintf(entry->script, sizeof entry->script, "%s", cur->path);
        td_rundir_add(entry, cerr, sizeof cerr);
      }
      td_host_set_restore_defaults(cut, 0);
      rc = run_planning(cur, err, errlen);
      td_reload_rolled_back();
      return rc;
    }
  }
  if (rc != TD_RUN_RELOAD) {
    char why[2048];
    td_reload_settle(rc == TD_RUN_OK, rc == TD_RUN_SIGINT || rc == TD_RUN_SIGTERM
                                          ? "the job was cancelled"
                                          : first_line(err, why, sizeof why));
  }
  logic_free(cur);
  *cur = next;
  return rc;
}

/* ---- the progress line of tide run on a terminal ---- */

static atomic_int progress_stop;

/* Every 500 ms: the records the job's sources read, their rate over the
 * last interval and the time since the job started, and for file sources
 * the share of their bytes read and the time left at the bytes/s since
 * the job started (ETA), as the terminal's status line (td_log_status),
 * until progress_stop. */
static void *progress_main(void *arg) {
  (void)arg;
  int64_t last_n = -1, last_ms = 0;
  double rate = 0;
  while (!atomic_load(&progress_stop)) {
    struct timespec ts = {0, 500000000L};
    nanosleep(&ts, NULL);
    td_job_t *job = td_job_current();
    if (!job) {
      last_n = -1;
      continue;
    }
    int n;
    td_subtask_t *st = td_job_subtasks(job, &n);
    int64_t read = 0, bytes = 0, total = 0;
    for (int i = 0; i < n; i++) {
      read += atomic_load(&st[i].records_read);
      bytes += atomic_load(&st[i].source_bytes_read);
      total += atomic_load(&st[i].source_bytes_total);
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    int64_t started = td_job_start_time(job);
    td_job_release(job);
    if (last_n >= 0 && now_ms > last_ms) rate = 1000.0 * (double)(read - last_n) / (double)(now_ms - last_ms);
    last_n = read;
    last_ms = now_ms;
    char line[256];
    int len = snprintf(line, sizeof line, "tide: %" PRId64 " records read, %.0f records/s, %" PRId64 " s",
                       read, rate, (now_ms - started) / 1000);
    if (total > 0 && len > 0 && (size_t)len < sizeof line) {
      if (bytes > total) bytes = total;
      int elapsed = (int)(now_ms - started);
      int mb = total >= 1000000;
      len += snprintf(line + len, sizeof line - (size_t)len, ", %d%% of %.1f %s",
                      (int)(100 * bytes / total), (double)total / (mb ? 1e6 : 1e3), mb ? "MB" : "kB");
      if (bytes > 0 && bytes < total && elapsed > 0 && (size_t)len < sizeof line)
        snprintf(line + len, sizeof line - (size_t)len, ", ETA %.0f s",
                 (double)(total - bytes) * elapsed / (double)bytes / 1000.0);
    }
    if (!atomic_load(&progress_stop)) td_log_status(line);
  }
  td_log_status(NULL);
  return NULL;
}

static int cmd_run(int argc, char **argv) {
  static const struct option opts[] = {
      {"parallelism", required_argument, NULL, 'p'},
      {"max-parallelism", required_argument, NULL, 'm'},
      {"checkpoint-dir", required_argument, NULL, 'c'},
      {"checkpoint-interval", required_argument, NULL, 'i'},
      {"resume", no_argument, NULL, 'r'},
      {"allow-existing-output", no_argument, NULL, 'a'},
      {"buffer-timeout", required_argument, NULL, 'b'},
      {"state-backend", required_argument, NULL, 'S'},
      {"state-dir", required_argument, NULL, 'D'},
      {"rest-port", required_argument, NULL, 'P'},
      {"rest-bind", required_argument, NULL, 'B'},
      {"from-savepoint", required_argument, NULL, 's'},
      {"allow-non-restored-state", no_argument, NULL, 'n'},
      {"no-metrics", no_argument, NULL, 'M'},
      {"log-level", required_argument, NULL, 'L'},
      {"log-format", required_argument, NULL, 'F'},
      {"summary", no_argument, NULL, 'U'},
      {"jobmanager", required_argument, NULL, 'J'},
      {"detached", no_argument, NULL, 'X'},
      {"secret-file", required_argument, NULL, 'K'},
      {"quiet", no_argument, NULL, 'Q'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int parallelism = 1, max_parallelism = 0, c, resume = 0, allow_existing = 0;
  const char *ckpt_dir = NULL, *ckpt_interval = NULL, *buffer_timeout = NULL;
  const char *state_backend = NULL, *state_dir = NULL;
  const char *script = NULL, *rest_bind = NULL, *from_savepoint = NULL;
  const char *jobmanager = NULL, *secret_file = NULL;
  int detached = 0;
  int rest_port = 0, allow_non_restored = 0, log_json = 0, summary = 0, quiet = 0;
  td_log_level_t log_level = TD_LOG_INFO;
  optind = 1;
  opterr = 0;
  /* options may come before or after JOB.lua; "--" ends them */
  while (optind < argc) {
    if (strcmp(argv[optind], "--") == 0) {
      optind++;
      break;
    }
    if (argv[optind][0] != '-') {
      if (script) return usage_error("unexpected argument '%s' (job arguments go after --)", argv[optind]);
      script = argv[optind++];
      continue;
    }
    int prev = optind;
    c = getopt_long(argc, argv, "+p:h", opts, NULL);
    if (c == -1) break;
    switch (c) {
    case 'p':
      if (parse_positive(optarg, 32768, &parallelism))
        return usage_error("--parallelism needs a whole number from 1 to 32768, not '%s'", optarg);
      break;
    case 'm':
      if (parse_positive(optarg, TD_MAX_PARALLELISM_LIMIT, &max_parallelism))
        return usage_error("--max-parallelism needs a whole number from 1 to 32768, not '%s'", optarg);
      break;
    case 'c':
      if (!optarg[0]) return usage_error("%s", "--checkpoint-dir needs a directory");
      ckpt_dir = optarg;
      break;
    case 'i': {
      long long ms;
      if (parse_duration(optarg, &ms))
        return usage_error("--checkpoint-interval needs a duration such as 500ms, 1s or 5m, not '%s'",
                           optarg);
      ckpt_interval = optarg;
      break;
    }
    case 'a':
      allow_existing = 1;
      break;
    case 'b': {
      long long ms;
      if (parse_duration(optarg, &ms) && strcmp(optarg, "0") != 0)
        return usage_error("--buffer-timeout needs a duration such as 0, 5ms or 100ms, not '%s'",
                           optarg);
      buffer_timeout = strcmp(optarg, "0") == 0 ? "0ms" : optarg;
      break;
    }
    case 'S':
      if (strcmp(optarg, "heap") != 0 && strcmp(optarg, "rocksdb") != 0)
        return usage_error("--state-backend needs 'heap' or 'rocksdb', not '%s'", optarg);
      state_backend = optarg;
      break;
    case 'D':
      if (!optarg[0]) return usage_error("%s", "--state-dir needs a directory");
      state_dir = optarg;
      break;
    case 'r':
      resume = 1;
      break;
    case 'P':
      if (strcmp(optarg, "0") != 0 && parse_positive(optarg, 65535, &rest_port))
        return usage_error("--rest-port needs a port from 0 to 65535, not '%s'", optarg);
      break;
    case 'B':
      rest_bind = optarg;
      break;
    case 's':
      if (!optarg[0]) return usage_error("%s", "--from-savepoint needs a savepoint directory");
      from_savepoint = optarg;
      break;
    case 'n':
      allow_non_restored = 1;
      break;
    case 'M':
      td_metrics_set_enabled(0);
      break;
    case 'U':
      summary = 1;
      break;
    case 'J':
      jobmanager = optarg;
      break;
    case 'K':
      secret_file = optarg;
      break;
    case 'X':
      detached = 1;
      break;
    case 'Q':
      quiet = 1;
      break;
    case 'L':
      if (td_log_level_parse(optarg, &log_level))
        return usage_error("--log-level needs error, warn, info or debug, not '%s'", optarg);
      break;
    case 'F':
      if (strcmp(optarg, "text") != 0 && strcmp(optarg, "json") != 0)
        return usage_error("--log-format needs text or json, not '%s'", optarg);
      log_json = strcmp(optarg, "json") == 0;
      break;
    case 'h':
      fputs(USAGE, stdout);
      return 0;
    default:
      return usage_error("unknown or incomplete option '%s'", argv[prev]);
    }
  }
  if (!script) return usage_error("%s", "run needs a job script");
  if (ckpt_interval && !ckpt_dir)
    return usage_error("%s", "--checkpoint-interval needs --checkpoint-dir");
  if (max_parallelism && max_parallelism < parallelism)
    return usage_error("%s", "--max-parallelism must be at least --parallelism");
  if (allow_non_restored && !from_savepoint)
    return usage_error("%s", "--allow-non-restored-state goes with --from-savepoint");
  if (from_savepoint && resume)
    return usage_error("%s", "--resume and --from-savepoint exclude each other");
  if (!jobmanager != !secret_file)
    return usage_error("%s", "--jobmanager and --secret-file go together");
  if (detached && !jobmanager)
    return usage_error("%s", "--detached needs --jobmanager (the job manager runs the job's master)");
  if (detached) {
    /* everything but the script and the cluster options, for the master */
    const char **rest = malloc(sizeof *rest * (size_t)(argc + 1));
    int n = 0, after = 0;
    for (int i = 1; rest && i < argc; i++) {
      const char *a = argv[i];
      if (!after && strcmp(a, "--") == 0) after = 1;
      if (!after && (strcmp(a, "--detached") == 0 || strncmp(a, "--jobmanager=", 13) == 0 ||
                     strncmp(a, "--secret-file=", 14) == 0))
        continue;
      if (!after && (strcmp(a, "--jobmanager") == 0 || strcmp(a, "--secret-file") == 0)) {
        i++;
        continue;
      }
      if (!after && a == script) continue;
      rest[n++] = a;
    }
    /* the code the script loads, shipped with it: the script runs here up
     * to its first env:execute() (Flink's client runs main() to build the
     * job graph likewise) */
    int n_args = 1 + (argc - optind);
    const char **args = malloc(sizeof(char *) * (size_t)n_args);
    json_t *files = NULL;
    int rc = rest && args ? 0 : 1;
    if (rc == 0) {
      args[0] = script;
      for (int i = optind; i < argc; i++) args[1 + i - optind] = argv[i];
      char err[4096];
      if (!(files = discover_files(script, args, n_args, err, sizeof err))) {
        fprintf(stderr, "tide: %s\n", err);
        rc = 1;
      }
    }
    if (rc == 0) rc = td_cluster_submit(jobmanager, secret_file, script, rest, n, files);
    json_decref(files);
    free(args);
    free(rest);
    return rc;
  }

  int n_args = 1 + (argc - optind);
  const char **args = malloc(sizeof(char *) * (size_t)n_args);
  if (!args) return 1;
  args[0] = script;
  for (int i = optind; i < argc; i++) args[1 + i - optind] = argv[i];

  /* the control endpoint and the run file that lets tide list find it */
  static char run_id[17];
  new_run_id(run_id);
  td_log_configure(log_level, log_json);
  td_log_set_job(run_id);
  td_control_t *control = NULL;
  char cerr[512];
  if (td_control_new(&control, rest_bind, rest_port, run_id, cerr, sizeof cerr) != 0) {
    fprintf(stderr, "tide: %s\n", cerr);
    free(args);
    return rest_port || rest_bind ? 2 : 1;
  }
  td_rundir_entry_t entry;
  memset(&entry, 0, sizeof entry);
  snprintf(entry.id, sizeof entry.id, "%s", run_id);
  entry.pid = (long)getpid();
  entry.pid_start = td_rundir_pid_start(entry.pid);
  snprintf(entry.address, sizeof entry.address, "%s", td_control_address(control));
  snprintf(entry.script, sizeof entry.script, "%s", script);
  entry.started_ms = (int64_t)time(NULL) * 1000;
  int registered = td_rundir_add(&entry, cerr, sizeof cerr) == 0;
  char line[1024];
  if (!registered) {
    snprintf(line, sizeof line, "%s (tide list will not show the job)", cerr);
    td_log(TD_LOG_WARN, "run", NULL, line);
  }
  snprintf(line, sizeof line, "job %s, control at http://%s", run_id, td_control_address(control));
  td_log(TD_LOG_INFO, "run", NULL, line);

  if (jobmanager && td_cluster_master_configure(jobmanager, secret_file,
                                                td_control_address(control), cerr,
                                                sizeof cerr) != 0) {
    fprintf(stderr, "tide: %s\n", cerr);
    if (registered) td_rundir_remove(run_id);
    td_control_free(control);
    free(args);
    return 2;
  }
  install_signal_handlers();
  pthread_t progress;
  int progress_on = !quiet && !log_json && isatty(2) &&
                    pthread_create(&progress, NULL, progress_main, NULL) == 0;
  td_host_set_run_id(run_id);
  td_host_set_restore_defaults(from_savepoint, allow_non_restored);
  td_host_set_defaults(parallelism, max_parallelism);
  td_host_set_checkpoint_defaults(ckpt_dir, ckpt_interval, resume);
  td_host_set_output_defaults(allow_existing, buffer_timeout);
  td_host_set_summary(summary || (!quiet && isatty(2)));
  td_host_set_state_defaults(state_backend, state_dir);
  td_reload_set_check(td_host_check_script);
  static char err[16384];
  logic_t cur = {script, NULL, 0, args, n_args, NULL};
  int rc = run_planning(&cur, err, sizeof err);
  while (rc == TD_RUN_RELOAD) {
    rc = run_reload(&cur, &entry, registered, err, sizeof err);
  }
  if (progress_on) {
    atomic_store(&progress_stop, 1);
    pthread_join(progress, NULL);
  }
  if (rc != TD_RUN_OK) td_log(TD_LOG_ERROR, "run", NULL, err);
  logic_free(&cur);
  if (registered) td_rundir_remove(run_id);
  td_control_free(control);
  return rc;
}

static void print_check(const td_snapshot_check_t *c, void *ud) {
  static const char *const status[] = {"ok", "BAD", "skipped"};
  printf("%s%-8s %s: %s\n", (const char *)ud, status[c->status], c->name, c->msg);
}

/* tide verify DIR: check a checkpoint directory (chk-<n>) the way recovery
 * does, or every checkpoint of a job's checkpoint directory (one holding
 * chk-<n> directories), like redis-check-rdb; one line per file; exit 1
 * if a completed checkpoint is corrupt, or if there is none. */
/* One line per checkpoint td_meta_latest visits (tide verify). */
static void print_visit(void *ud, int64_t id, td_meta_found_t found, const char *err) {
  int *seen_bad = ud; /* [0] checkpoint directories seen, [1] corrupt ones */
  if (found != TD_META_SOUND && found != TD_META_CORRUPT) seen_bad[0]++;
  if (found == TD_META_INCOMPLETE)
    printf("chk-%lld: incomplete (no _metadata): not a checkpoint, never restored\n", (long long)id);
  else if (found == TD_META_CHECKING)
    printf("chk-%lld:\n", (long long)id);
  else if (found == TD_META_CORRUPT) {
    seen_bad[1]++;
    fprintf(stderr, "tide: %s\n", err);
  }
}

static int cmd_verify(int argc, char **argv) {
  if (argc != 2) return usage_error("%s", "verify needs exactly one directory");
  const char *dir = argv[1];
  char err[2048], path[4400];
  snprintf(path, sizeof path, "%s/_metadata", dir);
  if (access(path, F_OK) != 0) {
    /* a job's checkpoint directory: newest first, as --resume looks */
    int complete = 0, seen_bad[2] = {0, 0};
    int64_t restorable = td_meta_latest(dir, NULL, 1, print_visit, seen_bad, print_check, "  ",
                                        path, sizeof path, &complete);
    if (restorable < 0 && restorable != -ENOENT) {
      fprintf(stderr, "tide: %s: cannot list: %s\n", dir, td_strerror((int)restorable));
      return 1;
    }
    if (seen_bad[0] > 0) {
      if (restorable > 0) printf("--resume restores chk-%lld\n", (long long)restorable);
      else printf("no sound checkpoint: --resume has nothing to restore\n");
      if (complete == 0) fprintf(stderr, "tide: %s: no completed checkpoint\n", dir);
      return seen_bad[1] || complete == 0 ? 1 : 0;
    }
  }
  /* one checkpoint (or a directory that should be one) */
  if (access(dir, F_OK) != 0) {
    fprintf(stderr, "tide: %s: cannot list: %s\n", dir, strerror(errno));
    return 1;
  }
  int rc = td_meta_verify(dir, NULL, print_check, "", NULL, err, sizeof err);
  if (rc) {
    fprintf(stderr, "tide: %s\n", err);
    return 1;
  }
  return 0;
}

/* ---- job control: tide list | savepoint | stop | cancel ----------------------
 * The commands find a job's control endpoint in the run directory
 * (core/rundir.h) and talk to it (core/control.h, docs/REST.md). */

/* --jobmanager ADDR --secret-file F of savepoint / stop / cancel: the job
 * is found through the job manager (cluster mode) instead of this host's
 * run directory. */
static const char *g_jobmanager, *g_secret_file;

/* Take --jobmanager and --secret-file (each "--opt V" or "--opt=V") out of
 * argv; 0, or 2 after a usage message. */
static int cluster_options(int *argc, char **argv) {
  int k = 0;
  for (int i = 0; i < *argc; i++) {
    const char **slot = strncmp(argv[i], "--jobmanager", 12) == 0    ? &g_jobmanager
                        : strncmp(argv[i], "--secret-file", 13) == 0 ? &g_secret_file
                                                                     : NULL;
    const char *eq = slot ? strchr(argv[i], '=') : NULL;
    size_t name = slot == &g_jobmanager ? 12 : 13;
    if (slot && (argv[i][name] == 0 || argv[i][name] == '=')) {
      if (eq) *slot = eq + 1;
      else if (i + 1 < *argc) *slot = argv[++i];
      else return usage_error("%s needs a value", argv[i]);
      continue;
    }
    argv[k++] = argv[i];
  }
  *argc = k;
  if (!g_jobmanager != !g_secret_file)
    return usage_error("%s", "--jobmanager and --secret-file go together");
  return 0;
}

/* The run entry of job id, or an error message and exit status 1 (2: bad
 * cluster options). */
static int find_job(const char *id, td_rundir_entry_t *e) {
  char err[512];
  int stale;
  if (g_jobmanager) {
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", id);
    e->pid = -1; /* on another host: ended once its endpoint is gone */
    return td_cluster_find_job(g_jobmanager, g_secret_file, id, e->address, sizeof e->address);
  }
  int rc = td_rundir_find(id, e, &stale, err, sizeof err);
  if (rc == 0) return 0;
  if (rc != -ENOENT) fprintf(stderr, "tide: %s\n", err);
  else if (stale)
    fprintf(stderr, "tide: job %s is not running: its process is gone (its stale run file was "
            "removed)\n", id);
  else
    fprintf(stderr, "tide: no running job %s (tide list shows the running jobs)\n", id);
  return 1;
}

/* One request to job e's endpoint: the parsed JSON answer (NULL with a
 * message printed when it cannot be had or is an error). */
static json_t *ask(const td_rundir_entry_t *e, const char *method, const char *path,
                   const char *body, int timeout_ms) {
  char err[1024], url[600];
  int status;
  char *resp;
  snprintf(url, sizeof url, "/jobs/%s%s", e->id, path);
  if (td_client_request(e->address, method, url, body, timeout_ms, &status, &resp, err,
                        sizeof err) != 0) {
    fprintf(stderr, "tide: job %s: %s\n", e->id, err);
    return NULL;
  }
  json_error_t je;
  json_t *o = json_loads(resp, 0, &je);
  free(resp);
  if (!o) {
    fprintf(stderr, "tide: job %s: the control endpoint's answer is not JSON\n", e->id);
    return NULL;
  }
  if (status >= 300) {
    json_t *msg = json_array_get(json_object_get(o, "errors"), 0);
    fprintf(stderr, "tide: job %s: %s\n", e->id,
            json_is_string(msg) ? json_string_value(msg) : "the request failed");
    json_decref(o);
    return NULL;
  }
  return o;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Wait up to ms for the process of e to end. 1 when it did. */
static int await_exit(const td_rundir_entry_t *e, int ms) {
  for (int waited = 0; e->pid < 0 && waited < ms; waited += 50) {
    int code;
    char *resp, err[256], url[128];
    snprintf(url, sizeof url, "/jobs/%s", e->id);
    if (td_client_request(e->address, "GET", url, NULL, 2000, &code, &resp, err, sizeof err) != 0)
      return 1;
    free(resp);
    sleep_ms(50);
  }
  if (e->pid < 0) return 0;
  for (int waited = 0; waited < ms; waited += 50) {
    long long start = td_rundir_pid_start(e->pid);
    if (start < 0 || (e->pid_start >= 0 && start != e->pid_start)) return 1;
    sleep_ms(50);
  }
  return 0;
}

/* An absolute path for dir (relative to this command's directory, which
 * need not be the job's), into buf. */
static const char *absolute(const char *dir, char *buf, size_t len) {
  if (dir[0] == '/') {
    snprintf(buf, len, "%s", dir);
    return buf;
  }
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) return dir;
  snprintf(buf, len, "%s/%s", cwd, dir);
  return buf;
}

/* Poll request `path` of job e every 50 ms until it is COMPLETED: the
 * answer (the caller frees it) with its operation's location and failure
 * message (NULL when absent) in *loc and *why; NULL when the endpoint
 * does not answer (printed). */
static json_t *await_completed(const td_rundir_entry_t *e, const char *path, const char **loc,
                               const char **why) {
  for (;;) {
    json_t *st = ask(e, "GET", path, NULL, 10000);
    if (!st) return NULL;
    const char *status = json_string_value(json_object_get(json_object_get(st, "status"), "id"));
    if (status && strcmp(status, "COMPLETED") == 0) {
      json_t *op = json_object_get(st, "operation");
      *loc = json_string_value(json_object_get(op, "location"));
      *why = json_string_value(json_object_get(json_object_get(op, "failure-cause"), "message"));
      return st;
    }
    json_decref(st);
    sleep_ms(50);
  }
}

/* POST a savepoint or stop request and poll it: the savepoint path
 * printed on stdout, exit 0; or the reason on stderr, exit 1. */
static int savepoint_request(const td_rundir_entry_t *e, const char *dir, int stop, int drain) {
  char abs[4200];
  json_t *body = json_object();
  if (dir) json_object_set_new(body, stop ? "targetDirectory" : "target-directory",
                               json_string(absolute(dir, abs, sizeof abs)));
  if (stop) json_object_set_new(body, "drain", json_boolean(drain));
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  json_t *r = text ? ask(e, "POST", stop ? "/stop" : "/savepoints", text, 10000) : NULL;
  free(text);
  if (!r) return 1;
  char rid[64];
  snprintf(rid, sizeof rid, "%s", json_string_value(json_object_get(r, "request-id")) ?
           json_string_value(json_object_get(r, "request-id")) : "");
  json_decref(r);
  char path[128];
  snprintf(path, sizeof path, "/savepoints/%s", rid);
  const char *loc, *why;
  json_t *st = await_completed(e, path, &loc, &why);
  if (!st) return 1;
  int rc = 0;
  if (loc) {
    printf("%s\n", loc);
    fflush(stdout);
  } else {
    fprintf(stderr, "tide: job %s: %s\n", e->id, why ? why : "the savepoint failed");
    rc = 1;
  }
  json_decref(st);
  if (rc == 0 && stop && !await_exit(e, 120000)) {
    fprintf(stderr, "tide: job %s took its savepoint but has not ended after 120 s\n", e->id);
    rc = 1;
  }
  return rc;
}

static int cmd_list(int argc, char **argv) {
  if (argc > 1) {
    static const struct option opts[] = {{"jobmanager", required_argument, NULL, 'j'},
                                         {"secret-file", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    const char *jobmanager = NULL, *secret_file = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
      if (c == 'j') jobmanager = optarg;
      else if (c == 's') secret_file = optarg;
      else return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
    }
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
    if (!jobmanager || !secret_file)
      return usage_error("%s", "list --jobmanager ADDR needs --secret-file FILE");
    return td_cluster_list(jobmanager, secret_file);
  }
  td_rundir_entry_t *es;
  size_t n;
  int stale;
  char err[512];
  if (td_rundir_list(&es, &n, &stale, err, sizeof err) != 0) {
    fprintf(stderr, "tide: %s\n", err);
    return 1;
  }
  if (stale)
    fprintf(stderr, "tide: removed %d stale run file%s of jobs whose process is gone\n", stale,
            stale == 1 ? "" : "s");
  if (n)
    printf("%-16s  %-16s  %-10s  %-8s  %-21s  %s\n", "JOB", "NAME", "STATUS", "PID", "CONTROL",
           "SCRIPT");
  for (size_t i = 0; i < n; i++) {
    char status[32] = "UNREACHABLE", name[128] = "-", err2[512], url[128];
    int code;
    char *resp;
    snprintf(url, sizeof url, "/jobs/%s", es[i].id);
    if (td_client_request(es[i].address, "GET", url, NULL, 2000, &code, &resp, err2,
                          sizeof err2) == 0) {
      json_error_t je;
      json_t *o = json_loads(resp, 0, &je);
      const char *st = json_string_value(json_object_get(o, "state"));
      const char *nm = json_string_value(json_object_get(o, "name"));
      if (code == 200 && st) snprintf(status, sizeof status, "%s", st);
      if (code == 200 && nm) snprintf(name, sizeof name, "%s", nm);
      json_decref(o);
      free(resp);
    }
    printf("%-16s  %-16s  %-10s  %-8ld  %-21s  %s\n", es[i].id, name, status, es[i].pid,
           es[i].address, es[i].script);
  }
  free(es);
  return 0;
}

static int cmd_savepoint(int argc, char **argv) {
  if (cluster_options(&argc, argv)) return 2;
  if (argc < 2 || argc > 3 || argv[1][0] == '-' || (argc == 3 && argv[2][0] == '-'))
    return usage_error("%s", "savepoint needs a job id and at most a directory");
  td_rundir_entry_t e;
  int found = find_job(argv[1], &e);
  if (found) return found;
  return savepoint_request(&e, argc == 3 ? argv[2] : NULL, 0, 0);
}

static int cmd_stop(int argc, char **argv) {
  const char *job = NULL, *dir = NULL;
  int savepoint = 0, drain = 0;
  if (cluster_options(&argc, argv)) return 2;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--savepoint") == 0) {
      savepoint = 1;
      if (i + 1 < argc && argv[i + 1][0] != '-') dir = argv[++i];
    } else if (strncmp(argv[i], "--savepoint=", 12) == 0) {
      savepoint = 1;
      dir = argv[i] + 12;
    } else if (strcmp(argv[i], "--drain") == 0 || strcmp(argv[i], "-d") == 0) {
      drain = 1;
    } else if (argv[i][0] == '-' || job) {
      return usage_error("stop: unexpected argument '%s'", argv[i]);
    } else {
      job = argv[i];
    }
  }
  if (!job) return usage_error("%s", "stop needs a job id");
  if (!savepoint)
    return usage_error("%s", "stop needs --savepoint [DIR] (tide cancel ends a job without one)");
  td_rundir_entry_t e;
  int found = find_job(job, &e);
  if (found) return found;
  return savepoint_request(&e, dir, 1, drain);
}

static int cmd_cancel(int argc, char **argv) {
  if (cluster_options(&argc, argv)) return 2;
  if (argc != 2 || argv[1][0] == '-') return usage_error("%s", "cancel needs a job id");
  td_rundir_entry_t e;
  int found = find_job(argv[1], &e);
  if (found) return found;
  json_t *r = ask(&e, "PATCH", "?mode=cancel", NULL, 10000);
  if (!r) return 1;
  json_decref(r);
  if (!await_exit(&e, 120000)) {
    fprintf(stderr, "tide: job %s was asked to cancel but has not ended after 120 s\n", e.id);
    return 1;
  }
  fprintf(stderr, "tide: job %s cancelled\n", e.id);
  return 0;
}

/* Read the whole file at path (NUL-terminated, *len bytes), or NULL
 * with errno set. */
static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  while (buf) {
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n < cap) break;
    char *b = realloc(buf, cap * 2 + 1);
    if (!b) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = b;
    cap *= 2;
  }
  int bad = ferror(f);
  int e = errno;
  fclose(f);
  if (buf && bad) {
    free(buf);
    buf = NULL;
    errno = e;
  }
  if (buf) {
    buf[n] = 0;
    *len = n;
  }
  return buf;
}

/* tide reload JOB SCRIPT [--allow-non-restored-state] [-- ARGS...]: POST
 * the new script to the job's endpoint and poll until the reload settles:
 * the cut printed on stdout and exit 0 when the new logic runs; the
 * reason on stderr and exit 1 when it does not (the old logic runs). */
static int cmd_reload(int argc, char **argv) {
  const char *job = NULL, *script = NULL;
  int allow = 0, i = 1, with_args = 0;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      with_args = 1;
      i++;
      break;
    }
    if (strcmp(argv[i], "--allow-non-restored-state") == 0) allow = 1;
    else if (argv[i][0] == '-' || (job && script))
      return usage_error("reload: unexpected argument '%s'", argv[i]);
    else if (!job) job = argv[i];
    else script = argv[i];
  }
  if (!job || !script) return usage_error("%s", "reload needs a job id and a job script");
  size_t len;
  char *text = slurp(script, &len);
  if (!text) {
    fprintf(stderr, "tide: cannot read %s: %s\n", script, strerror(errno));
    return 2;
  }
  td_rundir_entry_t e;
  if (find_job(job, &e)) {
    free(text);
    return 1;
  }
  char abs[4200];
  json_t *body = json_pack("{s:s, s:s%, s:b}", "script", absolute(script, abs, sizeof abs), "text",
                           text, len, "allow-non-restored-state", allow);
  free(text);
  if (body && with_args) {
    json_t *a = json_array();
    for (int k = i; k < argc; k++) json_array_append_new(a, json_string(argv[k]));
    json_object_set_new(body, "args", a);
  }
  char *req = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  json_t *r = req ? ask(&e, "POST", "/reload", req, 10000) : NULL;
  free(req);
  if (!r) return 1;
  char path[128];
  snprintf(path, sizeof path, "/reloads/%s",
           json_string_value(json_object_get(r, "request-id")) ?
           json_string_value(json_object_get(r, "request-id")) : "");
  json_decref(r);
  const char *loc, *why;
  json_t *st = await_completed(&e, path, &loc, &why);
  if (!st) {
    fprintf(stderr, "tide: job %s: the reload's outcome is unknown (the job's endpoint stopped "
            "answering)\n", e.id);
    return 1;
  }
  int rc = 0;
  if (why) {
    fprintf(stderr, "tide: job %s: reload refused: %s\n", e.id, why);
    rc = 1;
  } else {
    json_t *t = json_object_get(json_object_get(st, "operation"), "timings");
    fprintf(stderr, "tide: job %s runs %s: cut after %lld ms, records flowing after %lld ms, "
            "healthy after %lld ms\n", e.id, script,
            (long long)json_integer_value(json_object_get(t, "cut")),
            (long long)json_integer_value(json_object_get(t, "flowing")),
            (long long)json_integer_value(json_object_get(t, "settled")));
    if (loc) printf("%s\n", loc);
  }
  json_decref(st);
  return rc;
}

#ifdef TD_LUAJIT
#define THIS_VM "luajit"
#define OTHER_VM "lua5.4"
#define OTHER_BINARY "tide"
#else
#define THIS_VM "lua5.4"
#define OTHER_VM "luajit"
#define OTHER_BINARY "tide-luajit"
#endif

/* --vm lua5.4|luajit (anywhere before "--"): the other VM's binary, beside
 * this one, runs the command (Lua 5.4 and LuaJIT cannot share a binary).
 * Removes the option from argv; returns 0 to go on here, or the exit
 * status (2: wrong usage; 1: the other binary cannot be run). */
static int pick_vm(int *argc, char **argv) {
  const char *vm = NULL;
  int i = 1;
  for (; i < *argc && strcmp(argv[i], "--") != 0; i++) {
    int n = 0;
    if (strcmp(argv[i], "--vm") == 0 && i + 1 < *argc) {
      vm = argv[i + 1];
      n = 2;
    } else if (strncmp(argv[i], "--vm=", 5) == 0) {
      vm = argv[i] + 5;
      n = 1;
    } else if (strcmp(argv[i], "--vm") == 0) {
      return usage_error("%s", "--vm needs lua5.4 or luajit");
    }
    if (n) {
      memmove(argv + i, argv + i + n, sizeof *argv * (size_t)(*argc - i - n + 1));
      *argc -= n;
      break;
    }
  }
  if (!vm || strcmp(vm, THIS_VM) == 0) return 0;
  if (strcmp(vm, OTHER_VM) != 0) return usage_error("--vm needs lua5.4 or luajit, not '%s'", vm);
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 64);
  if (n <= 0) return 1;
  exe[n] = 0;
  char *slash = strrchr(exe, '/');
  snprintf(slash + 1, sizeof exe - (size_t)(slash + 1 - exe), "%s", OTHER_BINARY);
  argv[0] = exe;
  execv(exe, argv);
  fprintf(stderr, "tide: cannot run %s for --vm %s: %s\n", exe, vm, strerror(errno));
  return 1;
}

int main(int argc, char **argv) {
  int rc = pick_vm(&argc, argv);
  if (rc) return rc;
  if (argc < 2) {
    fputs(USAGE, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "run") == 0) return cmd_run(argc - 1, argv + 1);
  if (strcmp(cmd, "verify") == 0) return cmd_verify(argc - 1, argv + 1);
  if (strcmp(cmd, "list") == 0) return cmd_list(argc - 1, argv + 1);
  if (strcmp(cmd, "jobmanager") == 0) return td_jobmanager_main(argc - 1, argv + 1);
  if (strcmp(cmd, "taskmanager") == 0) return td_taskmanager_main(argc - 1, argv + 1);
  if (strcmp(cmd, "savepoint") == 0) return cmd_savepoint(argc - 1, argv + 1);
  if (strcmp(cmd, "stop") == 0) return cmd_stop(argc - 1, argv + 1);
  if (strcmp(cmd, "cancel") == 0) return cmd_cancel(argc - 1, argv + 1);
  if (strcmp(cmd, "reload") == 0) return cmd_reload(argc - 1, argv + 1);
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("tide %s (%s)\n", TD_VERSION, TD_LUA_RELEASE);
    return 0;
  }
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
      strcmp(cmd, "-h") == 0) {
    fputs(USAGE, stdout);
    return 0;
  }
  return usage_error("unknown command '%s'", cmd);
}
