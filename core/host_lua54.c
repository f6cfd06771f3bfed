/*
 * host.c - the Lua 5.4 host and the `tide.core` module (see host.h).
 *
 * The planning VM calls core.execute(plan); td_job_run starts one thread per
 * subtask, and each thread runs subtask_body: a fresh VM that loads the same
 * script in task mode. There lua/tide/runtime.lua drives the task loop and
 * calls back here for whole batches: core.poll decodes one exchange buffer
 * into a Lua array, core.emit encodes an array of records into the output
 * buffers of one edge. No call crosses the boundary per record.
 */
#include "cluster.h"
#include "host.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "luacompat.h"

#include "alloc.h"
#include "barrier.h"
#include "checkpoint.h"
#include "chunkcache.h"
#include "codec.h"
#include "error.h"
#include "exchange.h"
#include "inband.h"
#include "input.h"
#include "job.h"
#include "keygroup.h"
#include "log.h"
#include "luaalloc.h"
#include "metadata.h"
#include "module_lua.h"
#include "reload.h"
#include "restart.h"
#include "state_lua.h"
#include "kafka_lua.h"
#include "json_lua.h"
#include "socket_lua.h"
#include "postgres_lua.h"
#include "snapshot.h"
#include "source_file.h"
#include "task.h"

#include <xxhash.h>

/* Buffer timeout: partially filled output buffers are sent at least this
 * often (Flink's execution.buffer-timeout, 100 ms by default). */
#define FLUSH_INTERVAL_MS 100

static int g_default_parallelism = 1;
static int g_default_max_parallelism = 0;
static pthread_mutex_t g_stdout_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *g_checkpoint_dir, *g_checkpoint_interval;
static int g_resume, g_allow_existing_output, g_summary;
static const char *g_buffer_timeout;
static const char *g_state_backend, *g_state_dir;
static const char *g_run_id, *g_from_savepoint;
static int g_allow_non_restored;

/* Sentinels raised as light userdata: the task loop ended normally, or the
 * job was cancelled under this subtask (not a failure of its own). */
static char TASK_DONE;
static char CANCELLED;
/* ...or the planning VM hands the process over to a live reload's new
 * logic (core.reload_swap). */
static char RELOAD;

/* What the host keeps per subtask: the task engine, and what core.poll
 * and core.emit reuse between calls. */
typedef struct host_data {
  td_task_t *task;
  td_wbuf_t scratch;       /* canonical key bytes, broadcast records */
  int ts_hi;               /* poll's ts table may hold timestamps up to here */
  unsigned char *shapes;   /* poll with reuse: the keys of the table at each
                              place of buf (td_codec_reuse_t.shape) */
  int n_shapes;
} host_data_t;

void td_host_set_defaults(int parallelism, int max_parallelism) {
  g_default_parallelism = parallelism > 0 ? parallelism : 1;
  g_default_max_parallelism = max_parallelism;
}

void td_host_set_checkpoint_defaults(const char *dir, const char *interval, int resume) {
  g_checkpoint_dir = dir;
  g_checkpoint_interval = interval;
  g_resume = resume;
}

void td_host_set_summary(int on) { g_summary = on; }

void td_host_set_output_defaults(int allow_existing_output, const char *buffer_timeout) {
  g_allow_existing_output = allow_existing_output;
  g_buffer_timeout = buffer_timeout;
}

void td_host_set_state_defaults(const char *backend, const char *dir) {
  g_state_backend = backend;
  g_state_dir = dir;
}

void td_host_set_run_id(const char *id) { g_run_id = id; }

void td_host_set_restore_defaults(const char *savepoint, int allow_non_restored) {
  g_from_savepoint = savepoint;
  g_allow_non_restored = allow_non_restored;
}

void td_host_get_defaults(td_host_defaults_t *d) {
  *d = (td_host_defaults_t){g_default_parallelism, g_default_max_parallelism, g_resume,
                            g_allow_existing_output, g_allow_non_restored, g_checkpoint_dir,
                            g_checkpoint_interval, g_buffer_timeout, g_state_backend,
                            g_state_dir, g_run_id, g_from_savepoint};
}

static td_subtask_t *subtask_of(lua_State *L) {
  td_subtask_t *st = lua_touserdata(L, lua_upvalueindex(1));
  if (!st) luaL_error(L, "tide.core: only available inside a running task");
  return st;
}

static void raise_cancelled(lua_State *L) {
  lua_pushlightuserdata(L, &CANCELLED);
  lua_error(L);
}

/* ---- script running ---------------------------------------------------- */

static int msghandler(lua_State *L) {
  if (lua_type(L, 1) == LUA_TLIGHTUSERDATA) return 1;
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL && lua_type(L, 1) == LUA_TTABLE) {
    /* an error carrying the exit status the command line should use */
    lua_getfield(L, 1, "exit_code");
    if (lua_isinteger(L, -1)) lua_setfield(L, LUA_REGISTRYINDEX, "tide.exit_code");
    else lua_pop(L, 1);
  }
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1; /* a job failure object: its message is complete */
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Push the text of the script at path (read whole, once), or return
 * non-zero with luaL_loadfile's message pushed ("cannot open PATH: ..."). */
static int read_script(lua_State *L, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    lua_pushfstring(L, "cannot open %s: %s", path, strerror(errno));
    return 1;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) luaL_addlstring(&b, chunk, n);
  int bad = ferror(f);
  int e = errno;
  fclose(f);
  luaL_pushresult(&b);
  if (bad) {
    lua_pop(L, 1);
    lua_pushfstring(L, "cannot read %s: %s", path, strerror(e));
    return 1;
  }
  return 0;
}

/* The pinned script text of this VM (pushed), read from path and kept in
 * the registry the first time; 0, or non-zero with the message pushed. */
static int pinned_script(lua_State *L, const char *path) {
  lua_getfield(L, LUA_REGISTRYINDEX, "tide.script_text");
  if (lua_type(L, -1) == LUA_TSTRING) return 0;
  lua_pop(L, 1);
  if (read_script(L, path)) return 1;
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "tide.script_text");
  return 0;
}

/* Load script text as luaL_loadfile loads a file: a UTF-8 BOM skipped, a
 * first line starting with '#' read as an empty line (line numbers kept),
 * the chunk named "@path" so messages say path:line. */
static int load_script_text(lua_State *L, const char *path, const char *text, size_t len) {
  if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
    text += 3;
    len -= 3;
  }
  if (len > 0 && text[0] == '#') {
    const char *nl = memchr(text, '\n', len);
    size_t skip = nl ? (size_t)(nl - text) : len;
    text += skip;
    len -= skip;
  }
  lua_pushfstring(L, "@%s", path);
  const char *name = lua_tostring(L, -1);
  int rc = luaL_loadbuffer(L, text, len, name);
  lua_remove(L, -2);
  return rc;
}

int td_host_ship_files(lua_State *L, const td_job_file_t *files, int n, int record) {
  lua_getglobal(L, "require");
  lua_pushstring(L, "tide.ship");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) return -1;
  lua_getfield(L, -1, "install");
  lua_remove(L, -2);
  if (files) {
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
      lua_createtable(L, 0, 4);
      lua_pushstring(L, files[i].kind);
      lua_setfield(L, -2, "kind");
      lua_pushstring(L, files[i].name);
      lua_setfield(L, -2, "name");
      lua_pushstring(L, files[i].path);
      lua_setfield(L, -2, "file");
      lua_pushstring(L, files[i].origin ? files[i].origin : files[i].path);
      lua_setfield(L, -2, "origin");
      lua_rawseti(L, -2, i + 1);
    }
  } else {
    lua_pushnil(L);
  }
  lua_pushboolean(L, record);
  return lua_pcall(L, 2, 0, 0) == LUA_OK ? 0 : -1;
}

int td_host_run_script(lua_State *L, const char *path, const char *text, size_t text_len,
                       const char *const *args, int n_args, char *errbuf,
                       size_t errlen) {
  int base = lua_gettop(L);
  lua_pushcfunction(L, msghandler);
  int rc;
  if (!text) {
    /* the planning VM: the script is read here, once, and every subtask
     * VM (and every restart) runs this text, never the file again */
    if (pinned_script(L, path)) {
      snprintf(errbuf, errlen, "%s", lua_tostring(L, -1));
      lua_settop(L, base);
      return TD_RUN_SYNTAX;
    }
    size_t n;
    const char *t = lua_tolstring(L, -1, &n);
    rc = load_script_text(L, path, t, n);
    lua_remove(L, -2);
  } else {
    rc = load_script_text(L, path, text, text_len);
  }
  if (rc != LUA_OK) {
    snprintf(errbuf, errlen, "%s%s", lua_tostring(L, -1),
             rc == LUA_ERRSYNTAX ? TD_LUA_SYNTAX_HINT : "");
    lua_settop(L, base);
    return TD_RUN_SYNTAX;
  }
  lua_createtable(L, n_args, 1);
  for (int i = 0; i < n_args; i++) {
    lua_pushstring(L, args[i]);
    lua_rawseti(L, -2, i);
  }
  lua_setglobal(L, "arg");
  for (int i = 1; i < n_args; i++) lua_pushstring(L, args[i]);
  rc = lua_pcall(L, n_args > 0 ? n_args - 1 : 0, 0, base + 1);
  int out = TD_RUN_OK;
  if (rc != LUA_OK) {
    if (lua_type(L, -1) == LUA_TLIGHTUSERDATA) {
      if (lua_touserdata(L, -1) == &CANCELLED) {
        snprintf(errbuf, errlen, "cancelled");
        out = TD_RUN_ERROR;
      } else if (lua_touserdata(L, -1) == &RELOAD) {
        errbuf[0] = 0;
        out = TD_RUN_RELOAD;
      } else {
        errbuf[0] = 0; /* TASK_DONE */
      }
    } else {
      const char *m = lua_tostring(L, -1);
      snprintf(errbuf, errlen, "%s", m ? m : "unknown error");
      out = TD_RUN_ERROR;
      lua_getfield(L, LUA_REGISTRYINDEX, "tide.exit_code");
      lua_Integer code = lua_tointeger(L, -1);
      if (code == TD_RUN_SYNTAX || code == TD_RUN_CORRUPT || code == TD_RUN_SIGINT ||
          code == TD_RUN_SIGTERM)
        out = (int)code;
      lua_pop(L, 1);
    }
  }
  lua_settop(L, base);
  return out;
}

/* The standard libraries, and tide.core preloaded. */
static lua_State *open_state(lua_State *L) {
  if (!L) return NULL;
  luaL_openlibs(L);
  td_chunkcache_install(L);
  td_lua_preload(L, "tide.core", td_host_openlib);
  return L;
}

lua_State *td_host_new_state(void) { return open_state(luaL_newstate()); }

void td_host_set_resume(int resume) { g_resume = resume; }

const char *td_host_pinned(lua_State *L, size_t *len) {
  lua_getfield(L, LUA_REGISTRYINDEX, "tide.script_text");
  const char *t = lua_tolstring(L, -1, len);
  lua_pop(L, 1); /* the registry keeps it */
  return t;
}

void td_host_pin_script(lua_State *L, const char *text, size_t len) {
  lua_pushlstring(L, text, len);
  lua_setfield(L, LUA_REGISTRYINDEX, "tide.script_text");
}

int td_host_check_script(const char *path, const char *text, size_t len, char *err,
                         size_t errlen) {
  lua_State *L = luaL_newstate();
  if (!L) {
    snprintf(err, errlen, "out of memory");
    return TD_RUN_ERROR;
  }
  int rc = load_script_text(L, path, text, len);
  if (rc != LUA_OK)
    snprintf(err, errlen, "%s%s", lua_tostring(L, -1),
             rc == LUA_ERRSYNTAX ? TD_LUA_SYNTAX_HINT : "");
  lua_close(L);
  return rc == LUA_OK ? TD_RUN_OK : TD_RUN_SYNTAX;
}

static void set_package_field(lua_State *L, const char *field, const char *v) {
  if (!v) return;
  lua_getglobal(L, "package");
  lua_pushstring(L, v);
  lua_setfield(L, -2, field);
  lua_pop(L, 1);
}

/* The pool allocator serves Lua 5.4 VMs built without AddressSanitizer;
 * LuaJIT (GC64) allocates with its own allocator. */
#if !defined(__SANITIZE_ADDRESS__) && !defined(TD_LUAJIT)
#define TD_LUA_POOL 1
#endif

#ifdef TD_LUA_POOL
static int vm_panic(lua_State *L) {
  const char *m = lua_tostring(L, -1);
  fprintf(stderr, "tide: unprotected error in a subtask's Lua VM: %s\n",
          m ? m : "(error object is not a string)");
  return 0; /* Lua aborts */
}
#endif

/* A subtask's VM: on the pool allocator (luaalloc.h), except under
 * AddressSanitizer, which must see every block, and on LuaJIT. */
static lua_State *new_subtask_state(td_lua_pool_t **pool) {
  *pool = NULL;
#ifndef TD_LUA_POOL
  return td_host_new_state();
#else
  *pool = td_lua_pool_new();
  if (!*pool) return NULL;
  lua_State *L = lua_newstate(td_lua_pool_alloc, *pool);
  if (!L) {
    td_lua_pool_free(*pool);
    *pool = NULL;
    return NULL;
  }
  lua_atpanic(L, vm_panic);
  return open_state(L);
#endif
}

/* The body of a subtask's thread: a VM that runs the script in task mode. */
static void subtask_body(td_subtask_t *st) {
  td_job_t *job = st->job;
  const td_job_spec_t *spec = td_job_spec_of(job);
  host_data_t *hd = calloc(1, sizeof *hd);
  char err[4096];
  td_lua_pool_t *pool = NULL;
  lua_State *L = hd ? new_subtask_state(&pool) : NULL;
  if (!L || td_task_new(&hd->task, st) != 0) {
    if (L) lua_close(L);
#ifdef TD_LUA_POOL
    td_lua_pool_free(pool);
#endif
    free(hd);
    td_job_fail(job, "out of memory creating a subtask");
    return;
  }
  st->host = hd;
#ifndef TD_LUAJIT
  /* Lua 5.4's generational collector: minor collections touch only young
   * objects, so the state of millions of keys is not rewritten (marked)
   * every cycle. Measured (scripts/bench/state_ckpt.lua, 1M keys, hot
   * phase, CPU): 27% less CPU without checkpoints, and with checkpoints
   * every 1 s a fifth of the copy-on-write page faults after each
   * snapshot's fork (the incremental collector's marking writes every
   * page); word count 15% less CPU. */
  lua_gc(L, LUA_GCGEN, 0, 0);
#endif
  lua_pushlightuserdata(L, st);
  lua_setfield(L, LUA_REGISTRYINDEX, "tide.subtask");
  set_package_field(L, "path", spec->lua_path);
  set_package_field(L, "cpath", spec->lua_cpath);
  int rc;
  if (spec->n_files && td_host_ship_files(L, spec->files, spec->n_files, 0) != 0) {
    snprintf(err, sizeof err, "cannot install the job's shipped files: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    rc = TD_RUN_ERROR;
  } else {
    rc = td_host_run_script(L, spec->script, spec->script_text, spec->script_len, spec->args,
                            spec->n_args, err, sizeof err);
  }
  if (rc == TD_RUN_OK && !st->ran) {
    snprintf(err, sizeof err,
             "%s: the script ended without running task %d in a task VM "
             "(graph construction must be deterministic: every VM must "
             "reach the same env:execute() call)",
             spec->script, st->task + 1);
    rc = TD_RUN_ERROR;
  }
  if (rc != TD_RUN_OK && strcmp(err, "cancelled") != 0) td_subtask_fail(st, err);
  lua_close(L);
#ifdef TD_LUA_POOL
  td_lua_pool_free(pool);
#endif
  td_task_free(hd->task);
  td_wbuf_destroy(&hd->scratch);
  free(hd->shapes);
  free(hd);
  st->host = NULL;
}

void td_host_subtask_body(td_subtask_t *st) { subtask_body(st); }

/* ---- planning: core.execute(plan) ------------------------------------- */

static const char *field_str(lua_State *L, int t, const char *k, int opt) {
  lua_getfield(L, t, k);
  const char *s = lua_tostring(L, -1);
  lua_pop(L, 1); /* the string stays alive: it is referenced by the plan */
  if (!s && !opt) luaL_error(L, "plan: missing field '%s'", k);
  return s;
}

static int field_int(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  int isnum;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);
  lua_pop(L, 1);
  if (!isnum) luaL_error(L, "plan: missing integer field '%s'", k);
  return (int)v;
}

static td_partition_t partition_of(lua_State *L, const char *s) {
  if (strcmp(s, "forward") == 0) return TD_PART_FORWARD;
  if (strcmp(s, "hash") == 0) return TD_PART_HASH;
  if (strcmp(s, "rebalance") == 0) return TD_PART_REBALANCE;
  if (strcmp(s, "broadcast") == 0) return TD_PART_BROADCAST;
  return (td_partition_t)luaL_error(L, "plan: unknown partitioner '%s'", s);
}

/* Warnings of the job's library parts go to stderr, one whole line. */
static void log_stderr(void *ud, const char *line) {
  (void)ud;
  pthread_mutex_lock(&g_stdout_mu);
  td_log(strncmp(line, "warning: ", 9) == 0 ? TD_LOG_WARN : TD_LOG_INFO, "runtime", NULL, line);
  pthread_mutex_unlock(&g_stdout_mu);
}

/* Notes for the exit summary, NUL-terminated one after the other (the job
 * serializes the calls). */
static void collect_note(void *ud, const char *line) {
  td_wbuf_t *b = ud;
  size_t len = strlen(line) + 1;
  if (td_wbuf_reserve(b, len) == 0) {
    memcpy(b->data + b->len, line, len);
    b->len += len;
  }
}

/* core.note(line): add a line to the job's exit summary (the planning
 * VM's core.execute returns them). */
static int l_note(lua_State *L) {
  td_job_note(subtask_of(L)->job, luaL_checkstring(L, 1));
  return 0;
}

static atomic_int cancel_signal;

void td_host_set_cancel_signal(int sig) { atomic_store(&cancel_signal, sig); }

/* core.cancel_signal() -> the signal number (SIGINT 2, SIGTERM 15) that
 * cancelled this run, or nil. */
static int l_cancel_signal(lua_State *L) {
  int sig = atomic_load(&cancel_signal);
  if (sig) lua_pushinteger(L, sig);
  else lua_pushnil(L);
  return 1;
}

/* core.script_hash(path) -> the XXH64 of the job script's pinned text as
 * 16 hex digits (the text core.execute gives the subtasks; read and pinned
 * now if this VM has not read it yet). Recorded in every checkpoint. */
static int l_script_hash(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (pinned_script(L, path)) return luaL_error(L, "%s", lua_tostring(L, -1));
  size_t n;
  const char *t = lua_tolstring(L, -1, &n);
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)XXH64(t, n, 0));
  lua_pushstring(L, hex);
  return 1;
}

/* core.execute(plan) -> true, nil, notes, stopped_at, for_reload, counts |
 * nil, message, notes, ...: notes are the lines subtasks added with
 * core.note (for the exit summary); counts[t] = {read =, records_in =,
 * records_out =} sums task t's subtask counters at the end, and
 * counts.checkpoints the checkpoints completed (the exit summary). */
static int l_execute(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  td_job_spec_t spec;
  memset(&spec, 0, sizeof spec);
  spec.name = field_str(L, 1, "name", 0);
  spec.script = field_str(L, 1, "script", 0);
  /* the pinned text: read by the planning VM's run (or now, when the
   * script was started by a plain Lua interpreter); kept in the registry */
  if (pinned_script(L, spec.script)) return luaL_error(L, "%s", lua_tostring(L, -1));
  spec.script_text = lua_tolstring(L, -1, &spec.script_len);
  lua_pop(L, 1);
  spec.lua_path = field_str(L, 1, "path", 1);
  spec.lua_cpath = field_str(L, 1, "cpath", 1);
  spec.fingerprint = field_str(L, 1, "fingerprint", 0);
  spec.job_id = field_str(L, 1, "job_id", 0);
  spec.run_id = field_str(L, 1, "run_id", 1);
  spec.savepoint_dir = field_str(L, 1, "savepoint_dir", 1);
  spec.job_index = field_int(L, 1, "job_index");
  spec.default_parallelism = field_int(L, 1, "default_parallelism");
  spec.max_parallelism = field_int(L, 1, "max_parallelism");

  lua_getfield(L, 1, "args");
  luaL_checktype(L, -1, LUA_TTABLE);
  int n_args = (int)luaL_len(L, -1) + 1;
  const char **args = lua_newuserdatauv(L, sizeof(char *) * (size_t)n_args, 0);
  for (int i = 0; i < n_args; i++) {
    lua_rawgeti(L, -2, i);
    args[i] = lua_tostring(L, -1);
    if (!args[i]) luaL_error(L, "plan: argument %d is not a string", i);
    lua_pop(L, 1);
  }
  spec.args = args;
  spec.n_args = n_args;

  /* files = {{kind =, name =, path =}, ...}: what the script named */
  lua_getfield(L, 1, "files");
  int n_files = lua_istable(L, -1) ? (int)luaL_len(L, -1) : 0;
  td_job_file_t *files = lua_newuserdatauv(L, sizeof *files * (size_t)(n_files + 1), 0);
  for (int i = 0; i < n_files; i++) {
    lua_rawgeti(L, -2, i + 1);
    files[i].kind = field_str(L, -1, "kind", 0);
    files[i].name = field_str(L, -1, "name", 0);
    files[i].path = field_str(L, -1, "path", 0);
    files[i].origin = field_str(L, -1, "origin", 1);
    lua_pop(L, 1);
  }
  spec.files = files;
  spec.n_files = n_files;

  lua_getfield(L, 1, "tasks");
  luaL_checktype(L, -1, LUA_TTABLE);
  int tasks = lua_gettop(L);
  spec.n_tasks = (int)luaL_len(L, tasks);
  int *par = lua_newuserdatauv(L, sizeof(int) * (size_t)(spec.n_tasks + 1), 0);
  for (int t = 0; t < spec.n_tasks; t++) {
    lua_rawgeti(L, tasks, t + 1);
    par[t] = field_int(L, -1, "parallelism");
    if (par[t] < 1) luaL_error(L, "plan: task %d has parallelism %d", t + 1, par[t]);
    lua_getfield(L, -1, "ops");
    if (lua_istable(L, -1)) spec.n_operators += (int)luaL_len(L, -1);
    lua_pop(L, 2);
  }
  spec.parallelism = par;
  /* tasks[t].ops = {{uid =, name =, kind =}, ...}: the graph the control
   * endpoint shows (strings stay referenced by the plan) */
  td_job_operator_t *ops =
      lua_newuserdatauv(L, sizeof(td_job_operator_t) * (size_t)(spec.n_operators + 1), 0);
  int n_ops = 0;
  for (int t = 0; t < spec.n_tasks; t++) {
    lua_rawgeti(L, tasks, t + 1);
    lua_getfield(L, -1, "ops");
    for (int k = 1; lua_istable(L, -1) && k <= (int)luaL_len(L, -1) && n_ops < spec.n_operators; k++) {
      lua_rawgeti(L, -1, k);
      ops[n_ops].task = t;
      ops[n_ops].uid = field_str(L, -1, "uid", 0);
      ops[n_ops].name = field_str(L, -1, "name", 0);
      ops[n_ops].kind = field_str(L, -1, "kind", 0);
      n_ops++;
      lua_pop(L, 1);
    }
    lua_pop(L, 2);
  }
  spec.n_operators = n_ops;
  spec.operators = ops;

  lua_getfield(L, 1, "edges");
  luaL_checktype(L, -1, LUA_TTABLE);
  int edges = lua_gettop(L);
  spec.n_edges = (int)luaL_len(L, edges);
  td_job_edge_t *ed =
      lua_newuserdatauv(L, sizeof(td_job_edge_t) * (size_t)(spec.n_edges + 1), 0);
  for (int e = 0; e < spec.n_edges; e++) {
    lua_rawgeti(L, edges, e + 1);
    ed[e].from = field_int(L, -1, "from") - 1;
    ed[e].to = field_int(L, -1, "to") - 1;
    ed[e].partition = partition_of(L, field_str(L, -1, "partition", 0));
    if (ed[e].from < 0 || ed[e].from >= spec.n_tasks || ed[e].to < 0 ||
        ed[e].to >= spec.n_tasks)
      luaL_error(L, "plan: edge %d names a task that does not exist", e + 1);
    lua_pop(L, 1);
  }
  spec.edges = ed;

  /* checkpoint = {dir=, interval=, timeout=, min_pause=, max_concurrent=,
   * retained=, first_id=, mode = "exactly_once"|"at_least_once",
   * unaligned=, job_info=} (all ms), restore_dir = chk directory */
  td_ckpt_config_t ck;
  memset(&ck, 0, sizeof ck);
  spec.align_mode = TD_ALIGN_EXACTLY_ONCE;
  lua_getfield(L, 1, "checkpoint");
  if (lua_istable(L, -1)) {
    int t = lua_gettop(L);
    ck.dir = field_str(L, t, "dir", 1);
    lua_getfield(L, t, "interval");
    ck.interval_ms = lua_tointeger(L, -1);
    lua_getfield(L, t, "timeout");
    ck.timeout_ms = lua_tointeger(L, -1);
    lua_getfield(L, t, "min_pause");
    ck.min_pause_ms = lua_tointeger(L, -1);
    lua_getfield(L, t, "max_concurrent");
    ck.max_concurrent = (int)lua_tointeger(L, -1);
    lua_getfield(L, t, "retained");
    ck.retained = (int)lua_tointeger(L, -1);
    lua_getfield(L, t, "first_id");
    ck.first_id = lua_tointeger(L, -1);
    lua_getfield(L, t, "job_info");
    ck.job_info = lua_tolstring(L, -1, &ck.job_info_len);
    lua_getfield(L, t, "unaligned");
    int unaligned = lua_toboolean(L, -1);
    lua_pop(L, 8);
    lua_getfield(L, t, "tolerable_failed");
    ck.tolerable_failed = (int)luaL_optinteger(L, -1, -1);
    lua_pop(L, 1);
    /* expected = {"file\nfile", ...}: per subtask (job order), the state
     * files its snapshots write (strings stay referenced by the plan) */
    lua_getfield(L, t, "expected");
    if (lua_istable(L, -1)) {
      int n = (int)luaL_len(L, -1);
      const char **ex = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
      for (int i = 0; i < n; i++) {
        lua_rawgeti(L, -2, i + 1);
        ex[i] = lua_tostring(L, -1);
        if (!ex[i]) luaL_error(L, "plan: checkpoint.expected[%d] is not a string", i + 1);
        lua_pop(L, 1);
      }
      lua_setfield(L, t, "expected_c"); /* keeps the array alive */
      ck.expected = ex;
    }
    lua_pop(L, 1);
    const char *mode = field_str(L, t, "mode", 1);
    if (unaligned) spec.align_mode = TD_ALIGN_UNALIGNED;
    else if (mode && strcmp(mode, "at_least_once") == 0) spec.align_mode = TD_ALIGN_AT_LEAST_ONCE;
    spec.align_timeout_ms = ck.timeout_ms;
    spec.checkpoint = &ck;
  }
  lua_getfield(L, 1, "buffer_timeout");
  spec.buffer_timeout_ms = luaL_optinteger(L, -1, TD_BUFFER_TIMEOUT_DEFAULT_MS);
  lua_pop(L, 1);
  spec.restore_dir = field_str(L, 1, "restore_dir", 1);
  spec.log = log_stderr;
  td_wbuf_t notes = {0};
  spec.note = collect_note;
  spec.note_ud = &notes;

  char err[8192], stopped[4200];
  const char *stopped_at = NULL;
  int for_reload = 0;
  td_job_t *job;
  /* per task: records read by its sources, records in, records out (the
   * exit summary); then the checkpoints completed */
  int64_t *counts = calloc((size_t)spec.n_tasks * 3 + 1, sizeof *counts);
  if (!counts) return luaL_error(L, "out of memory");
  int rc = td_cluster_master_enabled() ? td_cluster_master_begin(&spec, err, sizeof err) : 0;
  if (rc == 0) rc = td_job_start(&job, &spec, subtask_body, err, sizeof err);
  if (rc == 0) {
    rc = td_job_wait(job, err, sizeof err);
    stopped_at = td_job_stopped_at(job, stopped, sizeof stopped);
    for_reload = td_job_stopped_for_reload(job);
    int n;
    td_subtask_t *sts = td_job_subtasks(job, &n);
    for (int i = 0; i < n; i++) {
      counts[3 * sts[i].task] += atomic_load(&sts[i].records_read);
      counts[3 * sts[i].task + 1] += atomic_load(&sts[i].records_in);
      counts[3 * sts[i].task + 2] += atomic_load(&sts[i].records_out);
    }
    td_coord_stats_t cs;
    td_coord_stats(td_job_coordinator(job), &cs);
    counts[3 * spec.n_tasks] = cs.completed;
    td_job_free(job);
  }
  if (spec.cluster) td_cluster_master_end();
  pthread_mutex_lock(&g_stdout_mu);
  fflush(stdout);
  pthread_mutex_unlock(&g_stdout_mu);
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, err);
  } else {
    lua_pushboolean(L, 1);
    lua_pushnil(L);
  }
  lua_createtable(L, 0, 0);
  for (size_t off = 0, k = 1; off < notes.len; k++) {
    size_t len = strlen(notes.data + off);
    lua_pushlstring(L, notes.data + off, len);
    lua_rawseti(L, -2, (lua_Integer)k);
    off += len + 1;
  }
  td_wbuf_destroy(&notes);
  if (stopped_at) lua_pushstring(L, stopped_at);
  else lua_pushnil(L);
  lua_pushboolean(L, for_reload);
  lua_createtable(L, spec.n_tasks, 1);
  static const char *const fields[] = {"read", "records_in", "records_out"};
  for (int t = 0; t < spec.n_tasks; t++) {
    lua_createtable(L, 0, 3);
    for (int f = 0; f < 3; f++) {
      lua_pushinteger(L, (lua_Integer)counts[3 * t + f]);
      lua_setfield(L, -2, fields[f]);
    }
    lua_rawseti(L, -2, t + 1);
  }
  lua_pushinteger(L, (lua_Integer)counts[3 * spec.n_tasks]);
  lua_setfield(L, -2, "checkpoints");
  free(counts);
  return 6;
}

/* core.reload_swap(cut): the job stopped at cut for a live reload
 * (core.execute's fifth result): the planning VM ends here and the
 * process runs the new logic from the cut (reload.h). Does not return. */
static int l_reload_swap(lua_State *L) {
  const char *cut = luaL_checkstring(L, 1);
  if (td_reload_set_cut(cut) != 0) return luaL_error(L, "no live reload is taking a cut");
  lua_pushlightuserdata(L, &RELOAD);
  return lua_error(L);
}

/* core.reload_claim_failure(message) -> true when a live reload's new
 * logic failed before it was healthy: the reload rolls back (the caller
 * ends its VM without restarting); false: restart as usual. */
static int l_reload_claim_failure(lua_State *L) {
  lua_pushboolean(L, td_reload_claim_failure(luaL_optstring(L, 1, NULL)));
  return 1;
}

/* A restart strategy as a Lua value (core.restart_strategy). */
#define RESTART_MT "tide.restart"

static int restart_gc(lua_State *L) {
  td_restart_destroy(luaL_checkudata(L, 1, RESTART_MT));
  return 0;
}

/* strategy:on_failure(now_ms) -> the delay in ms before the restart, or
 * nil when the strategy gives up (td_restart_on_failure). */
static int restart_on_failure(lua_State *L) {
  td_restart_t *r = luaL_checkudata(L, 1, RESTART_MT);
  int64_t d = td_restart_on_failure(r, (int64_t)luaL_checkinteger(L, 2));
  if (d < 0) lua_pushnil(L);
  else lua_pushinteger(L, d);
  return 1;
}

/* core.restart_strategy{kind = "none"|"fixed_delay"|"failure_rate",
 * attempts =, max_failures =, interval = ms, delay = ms} -> a strategy
 * object (core/restart.h) with :on_failure(now_ms); raises on parameters
 * out of range (lua/tide/checkpoint.lua checks them first, with the
 * user's words). */
static int l_restart_strategy(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  static const char *const kinds[] = {"none", "fixed_delay", "failure_rate", NULL};
  lua_getfield(L, 1, "kind");
  int kind = luaL_checkoption(L, -1, NULL, kinds);
  lua_getfield(L, 1, "attempts");
  lua_getfield(L, 1, "max_failures");
  lua_getfield(L, 1, "interval");
  lua_getfield(L, 1, "delay");
  td_restart_t *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  int rc = td_restart_init(r, (td_restart_kind_t)kind, (int)luaL_optinteger(L, -5, 0),
                           (int)luaL_optinteger(L, -4, 1), luaL_optinteger(L, -3, 60000),
                           luaL_optinteger(L, -2, 0));
  if (rc) return luaL_error(L, "bad restart strategy: %s", td_strerror(rc));
  if (luaL_newmetatable(L, RESTART_MT)) {
    lua_pushcfunction(L, restart_gc);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L);
    lua_pushcfunction(L, restart_on_failure);
    lua_setfield(L, -2, "on_failure");
    lua_setfield(L, -2, "__index");
  }
  lua_setmetatable(L, -2);
  return 1;
}

/* core.cancel_reason() -> why the process's jobs were cancelled (a
 * signal, tide cancel), or nil. */
static int l_cancel_reason(lua_State *L) {
  char buf[512];
  const char *r = td_job_cancel_reason(buf, sizeof buf);
  if (r) lua_pushstring(L, r);
  else lua_pushnil(L);
  return 1;
}

/* core.set_restarting(): the planning VM restarts a failed job (the
 * control endpoint says RESTARTING until it runs again). */
static int l_set_restarting(lua_State *L) {
  (void)L;
  td_job_set_restarting();
  return 0;
}

/* core.disable_metrics(): the planning VM switches the time and byte
 * accounting off before the job starts (env{metrics = false}, as
 * `tide run --no-metrics`; td_metrics_set_enabled). */
static int l_disable_metrics(lua_State *L) {
  (void)L;
  td_metrics_set_enabled(0);
  return 0;
}

/* core.lock_dir(dir) -> true | nil, message: take the lock of a job's
 * checkpoint directory for the rest of the process (an exclusive flock on
 * dir/.lock, which records the holder's pid), so that one job at a time
 * writes checkpoints there. Refused with the
 * holder's pid when another process holds it. Taking it again in the
 * same process succeeds. dir must exist (core.mkdir_p). */
/* The checkpoint directories this process holds the lock of: kept for the
 * process, whichever planning VM took them (a live reload's new VM takes
 * the same lock again). */
static pthread_mutex_t g_locks_mu = PTHREAD_MUTEX_INITIALIZER;
static char **g_locks;
static size_t g_n_locks;

static int locked_here(const char *dir) {
  int found = 0;
  pthread_mutex_lock(&g_locks_mu);
  for (size_t i = 0; i < g_n_locks && !found; i++) found = strcmp(g_locks[i], dir) == 0;
  pthread_mutex_unlock(&g_locks_mu);
  return found;
}

static void remember_lock(const char *dir) {
  pthread_mutex_lock(&g_locks_mu);
  char **l = realloc(g_locks, (g_n_locks + 1) * sizeof *l);
  if (l) {
    g_locks = l;
    if ((g_locks[g_n_locks] = strdup(dir))) g_n_locks++;
  }
  pthread_mutex_unlock(&g_locks_mu);
}

static int l_lock_dir(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  if (locked_here(dir)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  char path[4400];
  snprintf(path, sizeof path, "%s/.lock", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot open the lock file %s: %s", path, strerror(errno));
    return 2;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char holder[32] = "";
    ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
    holder[n > 0 ? n : 0] = 0;
    holder[strcspn(holder, "\n")] = 0;
    close(fd);
    lua_pushnil(L);
    if (e == EWOULDBLOCK)
      lua_pushfstring(L, "checkpoint directory '%s' is in use by another job (process %s holds %s); "
                      "one job at a time writes checkpoints into a directory",
                      dir, holder[0] ? holder : "?", path);
    else
      lua_pushfstring(L, "cannot lock %s: %s", path, strerror(e));
    return 2;
  }
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
    /* the lock holds without the pid: the refusal then names no holder */
  }
  remember_lock(dir); /* fd stays open (and locked) until the process ends */
  lua_pushboolean(L, 1);
  return 1;
}

/* core.defaults() -> {parallelism=, max_parallelism=} for graph building */
static void set_str(lua_State *L, const char *k, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

static int l_defaults(lua_State *L) {
  td_subtask_t *st = lua_touserdata(L, lua_upvalueindex(1));
  const td_job_spec_t *spec = st ? td_job_spec_of(st->job) : NULL;
  /* a job deployed to a task manager carries its master's defaults */
  td_host_defaults_t d;
  if (spec && spec->host_defaults) d = *(const td_host_defaults_t *)spec->host_defaults;
  else td_host_get_defaults(&d);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, spec ? spec->default_parallelism : d.parallelism);
  lua_setfield(L, -2, "parallelism");
  lua_pushinteger(L, spec ? spec->max_parallelism : d.max_parallelism);
  lua_setfield(L, -2, "max_parallelism");
  set_str(L, "checkpoint_dir", d.checkpoint_dir);
  set_str(L, "checkpoint_interval", d.checkpoint_interval);
  lua_pushboolean(L, d.resume);
  lua_setfield(L, -2, "resume");
  lua_pushboolean(L, g_summary);
  lua_setfield(L, -2, "summary");
  lua_pushboolean(L, d.allow_existing_output);
  lua_setfield(L, -2, "allow_existing_output");
  set_str(L, "run_id", d.run_id);
  set_str(L, "from_savepoint", d.from_savepoint);
  lua_pushboolean(L, d.allow_non_restored);
  lua_setfield(L, -2, "allow_non_restored_state");
  set_str(L, "buffer_timeout", d.buffer_timeout);
  set_str(L, "state_backend", d.state_backend);
  set_str(L, "state_dir", d.state_dir);
  return 1;
}

/* core.context() -> nil in a planning VM; in a task VM {task=, subtask=,
 * parallelism=, max_parallelism=, fingerprint=, job_index=, name=} */
static int l_context(lua_State *L) {
  td_subtask_t *st = lua_touserdata(L, lua_upvalueindex(1));
  if (!st) {
    lua_pushnil(L);
    return 1;
  }
  const td_job_spec_t *spec = td_job_spec_of(st->job);
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, st->task + 1);
  lua_setfield(L, -2, "task");
  lua_pushinteger(L, st->index);
  lua_setfield(L, -2, "subtask");
  lua_pushinteger(L, st->parallelism);
  lua_setfield(L, -2, "parallelism");
  lua_pushinteger(L, spec->max_parallelism);
  lua_setfield(L, -2, "max_parallelism");
  lua_pushstring(L, spec->fingerprint);
  lua_setfield(L, -2, "fingerprint");
  lua_pushinteger(L, spec->job_index);
  lua_setfield(L, -2, "job_index");
  lua_pushstring(L, spec->name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, spec->job_id);
  lua_setfield(L, -2, "job_id");
  lua_pushinteger(L, st->global);
  lua_setfield(L, -2, "global_subtask");
  if (spec->restore_dir) {
    lua_pushstring(L, spec->restore_dir);
    lua_setfield(L, -2, "restore_dir");
  }
  lua_pushboolean(L, spec->checkpoint && spec->checkpoint->dir);
  lua_setfield(L, -2, "checkpointing");
  return 1;
}

/* ---- the task side: batches in and out (core/task.h) ------------------- */

static td_task_t *task_of(lua_State *L) {
  return ((host_data_t *)subtask_of(L)->host)->task;
}

/* Raise for an engine error: the cancel sentinel for TD_ECANCELED, else
 * the engine's message. Returns rc when it is not an error. */
static int check(lua_State *L, td_task_t *t, int rc) {
  if (rc == TD_ECANCELED) raise_cancelled(L);
  if (rc < 0) luaL_error(L, "%s", td_task_error(t));
  return rc;
}

/* core.begin() marks that this subtask's VM runs its task loop. */
static int l_begin(lua_State *L) {
  subtask_of(L)->ran = 1;
  return 0;
}

static const char *const EVENT_NAMES[] = {NULL, "watermark", "idle", "active", "barrier"};

/* The shape records of buf[1..n], grown as batches grow; NULL when out of
 * memory (poll then creates every table). */
static unsigned char *shapes_for(host_data_t *hd, int n) {
  if (n > hd->n_shapes) {
    int cap = hd->n_shapes ? hd->n_shapes : 256;
    while (cap < n) cap *= 2;
    unsigned char *s = realloc(hd->shapes, (size_t)cap * (TD_CODEC_SHAPE_MAX + 1));
    if (!s) return NULL;
    for (int i = hd->n_shapes; i < cap; i++) s[(size_t)i * (TD_CODEC_SHAPE_MAX + 1)] = TD_CODEC_SHAPE_NONE;
    hd->shapes = s;
    hd->n_shapes = cap;
  }
  return hd->shapes;
}

/* core.poll(buf, ts [, timeout_ms [, reuse]]) -> n, edge, event, value, has_ts
 * Decodes the next batch of the input (td_task_poll: records up to the
 * first in-band event for the task and at most the input's budget) into
 * buf[1..n], and their timestamps into ts[1..n] (nil where a record has
 * none): edge is the 1-based edge the records came over; event is nil,
 * "watermark" (value: the new input watermark), "idle", "active", or
 * "barrier" (value: the checkpoint id, aligned per the job's mode:
 * snapshot now with core.snapshot, which forwards the barrier); has_ts
 * tells whether any record had a timestamp. Returns nil at the end of
 * every input, and 0 when timeout_ms passed with nothing to deliver. Pass
 * the same ts table on every call: slots are cleared only where an earlier
 * call filled them. reuse (the consumer borrows the records: it keeps no
 * reference to a record table and changes none): a map record may be
 * decoded into the table buf[i] holds from the previous batch
 * (td_codec_decode_reuse), instead of a new one. Pass the same buf on every
 * call. */
static int l_poll(lua_State *L) {
  host_data_t *hd = subtask_of(L)->host;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  int timeout = (int)luaL_optinteger(L, 3, -1);
  int reuse = lua_toboolean(L, 4);
  td_batch_t b;
  int r = check(L, hd->task, td_task_poll(hd->task, timeout, &b));
  if (r == TD_TASK_END) {
    lua_pushnil(L);
    return 1;
  }
  if (r == TD_TASK_TIMEOUT) {
    lua_pushinteger(L, 0);
    return 1;
  }
  unsigned char *shapes = b.n ? shapes_for(hd, b.n) : NULL;
  td_codec_reuse_t ru = {NULL, 1, 0, 0};
  td_codec_cache_t cache;
  td_codec_cache_init(L, &cache);
  for (int i = 0; i < b.n; i++) {
    size_t off = b.off[i];
    int rc;
    if (shapes) {
      ru.shape = shapes + (size_t)i * (TD_CODEC_SHAPE_MAX + 1);
      if (reuse) {
        ru.i = i + 1;
        rc = td_codec_decode_reuse(L, &cache, &ru, b.data, b.stop[i], &off);
      } else {
        /* a new table: what the place held before is forgotten */
        ru.shape[0] = TD_CODEC_SHAPE_NONE;
        rc = td_codec_decode_cached(L, &cache, b.data, b.stop[i], &off);
      }
    } else {
      rc = td_codec_decode_cached(L, &cache, b.data, b.stop[i], &off);
    }
    if (rc != 0)
      return luaL_error(L, "corrupt exchange buffer");
    if (ru.reused) {
      ru.reused = 0;
      lua_pop(L, 1); /* buf[i + 1] holds it already */
    } else {
      lua_rawseti(L, 1, i + 1);
    }
    if (b.has_ts && b.ts[i] != TD_NO_TIMESTAMP) {
      lua_pushinteger(L, b.ts[i]);
      lua_rawseti(L, 2, i + 1);
      if (i + 1 > hd->ts_hi) hd->ts_hi = i + 1;
    } else if (i + 1 <= hd->ts_hi) {
      /* only slots an earlier batch filled can hold a stale timestamp */
      lua_pushnil(L);
      lua_rawseti(L, 2, i + 1);
    }
  }
  td_codec_cache_destroy(L, &cache);
  lua_pushinteger(L, b.n);
  if (b.edge >= 0) lua_pushinteger(L, b.edge + 1);
  else lua_pushnil(L);
  if (b.event == TD_TASK_EV_NONE) {
    lua_pushnil(L);
    lua_pushnil(L);
  } else {
    lua_pushstring(L, EVENT_NAMES[b.event]);
    if (b.event == TD_TASK_EV_WATERMARK || b.event == TD_TASK_EV_BARRIER)
      lua_pushinteger(L, b.value);
    else
      lua_pushnil(L);
  }
  lua_pushboolean(L, b.has_ts);
  return 5;
}

static int encode_error(lua_State *L, const char *err) {
  return luaL_error(L, "cannot send a record: %s", err);
}

/* core.emit(edge, buf, n [, keys [, ts [, project]]]) sends buf[1..n] over
 * edge (1-based); ts[1..n] are their timestamps (integer ms or nil), if
 * any. For a hash edge, keys is either the records' keys, keys[1..n], or
 * the field (a string or an integer) of every record that is its key: the
 * key is then read here, record[field] (metamethods included, as in Lua),
 * with no key array built by a Lua loop; with project true, what is sent
 * for a record is {[field] = key} (its receiver reads the key alone, see
 * reads_key_only in lua/tide.lua). Returns nothing when all n records
 * were sent; with a field, the index of the first record that is not a
 * table or has a nil key: it and those after it were not sent (the caller
 * takes them through its general path, which raises the error). */
static int l_emit(lua_State *L) {
  td_subtask_t *st = subtask_of(L);
  host_data_t *hd = st->host;
  td_task_t *t = hd->task;
  const td_job_spec_t *spec = td_job_spec_of(st->job);
  int e = (int)luaL_checkinteger(L, 1) - 1;
  luaL_argcheck(L, e >= 0 && e < spec->n_edges && st->outputs[e].n, 1,
                "not an output edge of this task");
  luaL_checktype(L, 2, LUA_TTABLE);
  int n = (int)luaL_checkinteger(L, 3);
  td_partition_t part = st->outputs[e].partition;
  char err[256];
  int rc, stop = 0;
  int by_field = 0; /* hash edge keyed by a field (a string or integer) */
  if (part == TD_PART_HASH) {
    if (lua_type(L, 4) == LUA_TSTRING || lua_isinteger(L, 4))
      by_field = 1;
    else
      luaL_checktype(L, 4, LUA_TTABLE);
  }
  int with_ts = lua_istable(L, 5);
  int project = by_field && lua_toboolean(L, 6);
  for (int i = 1; i <= n; i++) {
    int64_t ts = TD_NO_TIMESTAMP;
    if (with_ts) {
      lua_rawgeti(L, 5, i);
      int isint;
      lua_Integer tv = lua_tointegerx(L, -1, &isint);
      if (isint) ts = tv;
      else if (!lua_isnil(L, -1)) return luaL_error(L, "a record's timestamp is not an integer (ms)");
      lua_pop(L, 1);
    }
    int key_is_record = 0;
    hd->scratch.len = 0;
    if (by_field) {
      /* the record stays on the stack for its encoding below */
      /* the field from argument 4, not lua_getfield: that interns the C
       * string again (a strcmp against Lua's string cache per record) */
      if (lua_rawgeti(L, 2, i) != LUA_TTABLE ||
          (lua_pushvalue(L, 4), lua_gettable(L, -2)) == LUA_TNIL) {
        stop = i;
        break;
      }
      rc = td_codec_encode(L, -1, &hd->scratch, 1, err, sizeof err);
      if (rc) return luaL_error(L, "cannot hash a key: %s", err);
      if (!project) lua_pop(L, 1); /* projected, the key is sent too */
    } else if (part == TD_PART_HASH) {
      lua_rawgeti(L, 4, i);
      rc = td_codec_encode(L, -1, &hd->scratch, 1, err, sizeof err);
      if (rc) return luaL_error(L, "cannot hash a key: %s", err);
      /* a string record that is its own key (word count's key_by of the
       * word) is already encoded: the canonical and the record encoding of
       * a string are the same bytes */
      if (lua_type(L, -1) == LUA_TSTRING) {
        lua_rawgeti(L, 2, i);
        key_is_record = lua_rawequal(L, -1, -2);
        lua_pop(L, 1);
      }
      lua_pop(L, 1);
    } else if (part == TD_PART_BROADCAST) {
      lua_rawgeti(L, 2, i);
      rc = td_codec_encode(L, -1, &hd->scratch, 0, err, sizeof err);
      lua_pop(L, 1);
      if (rc) return encode_error(L, err);
      check(L, t, td_task_emit(t, e, hd->scratch.data, hd->scratch.len, ts, NULL, 0));
      continue;
    }
    td_wbuf_t *buf;
    check(L, t, td_task_record_begin(t, e, hd->scratch.data, hd->scratch.len, ts, &buf));
    if (key_is_record) {
      if (td_wbuf_reserve(buf, hd->scratch.len)) {
        td_task_record_end(t, 0);
        return luaL_error(L, "out of memory");
      }
      memcpy(buf->data + buf->len, hd->scratch.data, hd->scratch.len);
      buf->len += hd->scratch.len;
    } else if (project) {
      /* {[field] = key}: a map of one entry, then the field, then the key
       * (still on the stack above the record) */
      lua_pushvalue(L, 4);
      rc = td_wbuf_reserve(buf, 1) ? TD_ENOMEM : 0;
      if (!rc) buf->data[buf->len++] = 0x81;
      if (!rc) rc = td_codec_encode(L, -1, buf, 0, err, sizeof err);
      if (!rc) rc = td_codec_encode(L, -2, buf, 0, err, sizeof err);
      lua_pop(L, 3);
      if (rc) {
        td_task_record_end(t, 0);
        if (rc == TD_ENOMEM) return luaL_error(L, "out of memory");
        return encode_error(L, err);
      }
    } else {
      if (!by_field) lua_rawgeti(L, 2, i);
      rc = td_codec_encode(L, -1, buf, 0, err, sizeof err);
      lua_pop(L, 1);
      if (rc) {
        td_task_record_end(t, 0);
        return encode_error(L, err);
      }
    }
    td_task_record_end(t, 1);
  }
  int sent = stop ? stop - 1 : n;
  if (sent > 0) atomic_fetch_add_explicit(&st->records_out, sent, memory_order_relaxed);
  td_task_flush_due(t);
  if (!stop) return 0;
  lua_pushinteger(L, stop);
  return 1;
}

/* core.tick([n]) - a source between two batches (n: the records its last
 * batch read, counted in the subtask's records_read): sends partially
 * filled buffers once the buffer timeout passed, and raises if the job was
 * cancelled. Returns the id of a checkpoint the coordinator asks this
 * source to inject (snapshot and forward it with core.snapshot, then call
 * tick again), or nothing once every output can take the next batch: it
 * waits for that (output credit), as a source must not start a batch that
 * would stop half-way and keep it from seeing the next checkpoint. */
/* core.set_late_dropped(n) - the late records the subtask's window
 * operators dropped so far (n >= 0; Flink's numLateRecordsDropped), read
 * by the control endpoint; the runtime calls it at most once per batch. */
static int l_set_late_dropped(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  atomic_store_explicit(&subtask_of(L)->late_dropped, n, memory_order_relaxed);
  return 0;
}

static int l_tick(lua_State *L) {
  td_task_t *t = task_of(L);
  lua_Integer n = luaL_optinteger(L, 1, 0);
  if (n > 0) atomic_fetch_add_explicit(&subtask_of(L)->records_read, n, memory_order_relaxed);
  int64_t id;
  check(L, t, td_task_tick(t, &id));
  if (!id) return 0;
  lua_pushinteger(L, id);
  return 1;
}

/* core.flush() sends every partly filled output buffer now (a source
 * about to sleep: its records must not wait for the buffer timeout). */
static int l_flush(lua_State *L) {
  td_task_flush(task_of(L));
  return 0;
}

/* Encode every name -> value of the table at index tab; for each, call
 * put(t, name, b, ud) with the bytes in b, which put may take (leaving b
 * empty). 0, or -1 with err. */
static int encode_files(lua_State *L, int tab, td_task_t *t,
                        int (*put)(td_task_t *, const char *, td_wbuf_t *, void *), void *ud,
                        char *err, size_t errlen) {
  lua_pushnil(L);
  while (lua_next(L, tab)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      snprintf(err, errlen, "snapshot: a state file name is not a string");
      return -1;
    }
    const char *name = lua_tostring(L, -2);
    td_wbuf_t b = {0};
    int rc = td_codec_encode(L, lua_gettop(L), &b, 0, err, errlen);
    if (rc) {
      char m[512];
      snprintf(m, sizeof m, "%s", err);
      snprintf(err, errlen, "snapshot of %s: %s", name, rc == TD_ECODEC ? m : td_strerror(rc));
      td_wbuf_destroy(&b);
      return -1;
    }
    rc = put(t, name, &b, ud);
    td_wbuf_destroy(&b);
    if (rc) {
      snprintf(err, errlen, "%s", rc == TD_ENOMEM ? "out of memory" : td_task_error(t));
      return -1;
    }
    lua_pop(L, 1);
  }
  return 0;
}

static int child_put(td_task_t *t, const char *name, td_wbuf_t *b, void *ud) {
  (void)ud;
  return td_task_child_write(t, name, b->data, b->len);
}

/* The forked child of core.snapshot: a copy-on-write image of this VM at
 * the barrier. It must not call malloc (see alloc.h): the VM switches to
 * the arena too; the collector stays stopped, so no finalizer (file
 * handles!) runs here. */
static _Noreturn void child_snapshot(lua_State *L, int fn, td_task_t *t) {
#ifndef TD_LUAJIT /* LuaJIT's own allocator takes no lock: safe after fork */
  lua_setallocf(L, td_arena_lua_alloc, NULL);
#endif
  lua_gc(L, LUA_GCSTOP);
  lua_pushvalue(L, fn);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) td_task_child_exit(t, lua_tostring(L, -1));
  if (!lua_istable(L, -1)) td_task_child_exit(t, "the snapshot function returned no table");
  char err[1024];
  if (encode_files(L, lua_gettop(L), t, child_put, NULL, err, sizeof err) != 0)
    td_task_child_exit(t, err);
  td_task_child_exit(t, NULL);
}

/* core.monotonic_us() -> a monotonic clock in microseconds */
static int l_monotonic_us(lua_State *L) {
  lua_pushinteger(L, td_task_now_us());
  return 1;
}

/* What core.snapshot and core.snapshot_async return for the engine's rc:
 * true, or false and the task's message; raises when cancelled. */
static int snapshot_result(lua_State *L, td_task_t *t, int rc) {
  if (rc == TD_ECANCELED) raise_cancelled(L);
  if (rc) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, td_task_error(t));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* Fail this subtask's snapshot of checkpoint id with msg
 * (td_task_snapshot_failed): false, msg; raises when cancelled. */
static int snapshot_failed(lua_State *L, td_task_t *t, int64_t id, int64_t t0, const char *msg) {
  if (td_task_snapshot_failed(t, id, t0, msg) == TD_ECANCELED) raise_cancelled(L);
  lua_pushboolean(L, 0);
  lua_pushstring(L, msg);
  return 2;
}

/* core.snapshot(id, collect [, start_us]) -> true | false, message
 * Take this subtask's snapshot of checkpoint id at this point of its input
 * (a source between batches, a task at its aligned barrier): fork; the
 * child calls collect() -> {file name = value} and writes each value as a
 * state file of the checkpoint's directory, while this thread goes on at
 * once (the pause is the fork). Then the barrier is forwarded on every
 * output. start_us (core.monotonic_us) is when the synchronous part
 * began, for the pause statistics. */
static int l_snapshot(lua_State *L) {
  td_task_t *t = task_of(L);
  int64_t id = luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  /* the pause began at the caller's start (before its sinks pre-committed) */
  int64_t t0 = luaL_optinteger(L, 3, td_task_now_us());
  int child;
  int rc = td_task_snapshot(t, id, t0, &child);
  if (child) child_snapshot(L, 2, t);
  return snapshot_result(L, t, rc);
}

static int asnap_put(td_task_t *t, const char *name, td_wbuf_t *b, void *ud) {
  (void)t;
  return td_asnap_file(ud, name, b);
}

/* Add the uploads (the array at index idx: {hole =, dir =, shared =,
 * journal =, known = {[file] = {name, size, crc}}}) to a. 0 or a code. */
static int asnap_uploads(lua_State *L, int idx, td_asnap_t *a) {
  int n = (int)lua_rawlen(L, idx), rc = 0;
  for (int i = 1; rc == 0 && i <= n; i++) {
    lua_rawgeti(L, idx, i);
    int u = lua_gettop(L);
    luaL_checktype(L, u, LUA_TTABLE);
    lua_getfield(L, u, "hole");
    lua_getfield(L, u, "dir");
    lua_getfield(L, u, "shared");
    lua_getfield(L, u, "journal");
    int hole = (int)luaL_checkinteger(L, u + 1);
    rc = td_asnap_upload(a, hole, luaL_checkstring(L, u + 2), luaL_checkstring(L, u + 3),
                         luaL_checkstring(L, u + 4));
    lua_getfield(L, u, "known");
    if (rc == 0 && lua_istable(L, -1)) {
      lua_pushnil(L);
      while (rc == 0 && lua_next(L, u + 5)) {
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        lua_rawgeti(L, -3, 3);
        const char *file = lua_tostring(L, -5), *name = lua_tostring(L, -3);
        if (!file || !name) rc = TD_EINVAL;
        else
          rc = td_asnap_known(a, hole, file, name, (uint64_t)lua_tointeger(L, -2),
                              (uint32_t)lua_tointeger(L, -1));
        lua_pop(L, 4);
      }
    }
    lua_settop(L, u - 1);
  }
  return rc;
}

/* Add the syncs (the array at index idx: {path [, alt]}) to a. */
static int asnap_syncs(lua_State *L, int idx, td_asnap_t *a) {
  int n = (int)lua_rawlen(L, idx), rc = 0;
  for (int i = 1; rc == 0 && i <= n; i++) {
    lua_rawgeti(L, idx, i);
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    const char *path = lua_tostring(L, -2);
    rc = path ? td_asnap_sync(a, path, lua_tostring(L, -1)) : TD_EINVAL;
    lua_pop(L, 3);
  }
  return rc;
}

/* core.snapshot_hole(n) -> the value a fork-free snapshot's state file
 * holds where hole n's upload list goes (asyncsnap.h). */
static int l_snapshot_hole(lua_State *L) {
  void *h = td_codec_hole((int)luaL_checkinteger(L, 1));
  luaL_argcheck(L, h != NULL, 1, "no such hole");
  lua_pushlightuserdata(L, h);
  return 1;
}

/* core.snapshot_async(id, files, uploads, syncs [, start_us]) -> true |
 * false, message
 * Take this subtask's snapshot of checkpoint id at this point of its input
 * without fork (td_task_snapshot_async): files {file name = value} are
 * encoded now, holes (core.snapshot_hole) included; uploads (as
 * asnap_uploads reads them) name the RocksDB checkpoints that fill the
 * holes; syncs {{path [, alt]}, ...} what to fsync first (td_asnap_sync).
 * A thread writes the files and acknowledges; the barrier is forwarded at
 * once. start_us as core.snapshot's. */
static int l_snapshot_async(lua_State *L) {
  td_task_t *t = task_of(L);
  int64_t id = luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  int64_t t0 = luaL_optinteger(L, 5, td_task_now_us());
  td_asnap_t *a = td_asnap_new(id);
  char err[1024] = "out of memory";
  int rc = a ? asnap_uploads(L, 3, a) : TD_ENOMEM;
  if (rc == 0) rc = asnap_syncs(L, 4, a);
  if (rc == TD_EINVAL) snprintf(err, sizeof err, "snapshot: a bad upload or sync");
  if (rc == 0 && encode_files(L, 2, t, asnap_put, a, err, sizeof err) != 0) rc = TD_EIO;
  if (rc) {
    td_asnap_free(a);
    return snapshot_failed(L, t, id, t0, err);
  }
  return snapshot_result(L, t, td_task_snapshot_async(t, id, t0, a));
}

/* core.snapshot_failed(id, message [, start_us]) -> false, message
 * This subtask could not take its snapshot of checkpoint id (its
 * operators' snapshot raised message): the checkpoint fails, the barrier
 * is forwarded (td_task_snapshot_failed). */
static int l_snapshot_failed(lua_State *L) {
  int64_t id = luaL_checkinteger(L, 1);
  const char *msg = luaL_checkstring(L, 2);
  return snapshot_failed(L, task_of(L), id, luaL_optinteger(L, 3, td_task_now_us()), msg);
}

/* Final state files, gathered for td_task_finished. */
typedef struct finals {
  int n, cap;
  char **names;
  td_wbuf_t *data;
} finals_t;

static int final_put(td_task_t *t, const char *name, td_wbuf_t *b, void *ud) {
  finals_t *f = ud;
  if (f->n == f->cap) {
    int cap = f->cap ? 2 * f->cap : 8;
    char **names = realloc(f->names, sizeof *names * (size_t)cap);
    if (names) f->names = names;
    td_wbuf_t *d = names ? realloc(f->data, sizeof *d * (size_t)cap) : NULL;
    if (!d) return TD_ENOMEM;
    f->data = d;
    f->cap = cap;
  }
  if (!(f->names[f->n] = strdup(name))) return TD_ENOMEM;
  f->data[f->n] = *b;
  memset(b, 0, sizeof *b);
  f->n++;
  (void)t;
  return 0;
}

/* core.finished([collect]) - this subtask's input ended and its end was
 * sent (core.finish): write its final state (collect() -> {file name =
 * value}) when the job checkpoints, and report it to the coordinator.
 * Without checkpoints collect is not called: nothing would read what it
 * returns (a snapshot of every key's state, costly for large state). */
static int l_finished(lua_State *L) {
  td_task_t *t = task_of(L);
  finals_t f = {0};
  char err[1024];
  int rc = 0;
  int collect = !lua_isnoneornil(L, 1);
  if (collect) luaL_checktype(L, 1, LUA_TFUNCTION);
  if (collect && td_task_keeps_final_state(t)) {
    /* collect() may upload shared files (RocksDB final states): the
     * coordinator must not sweep them before td_task_finished lists them */
    td_task_finishing(t);
    lua_pushvalue(L, 1);
    lua_call(L, 0, 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    rc = encode_files(L, lua_gettop(L), t, final_put, &f, err, sizeof err);
  }
  const void **data = calloc((size_t)f.n + 1, sizeof *data);
  size_t *lens = calloc((size_t)f.n + 1, sizeof *lens);
  if (rc == 0 && data && lens) {
    for (int i = 0; i < f.n; i++) {
      data[i] = f.data[i].data;
      lens[i] = f.data[i].len;
    }
    rc = td_task_finished(t, f.n, (const char *const *)f.names, data, lens);
    if (rc) snprintf(err, sizeof err, "%s", td_task_error(t));
  } else if (rc == 0) {
    rc = TD_ENOMEM;
    snprintf(err, sizeof err, "out of memory");
  }
  free(data);
  free(lens);
  for (int i = 0; i < f.n; i++) {
    free(f.names[i]);
    td_wbuf_destroy(&f.data[i]);
  }
  free(f.names);
  free(f.data);
  if (rc) return luaL_error(L, "cannot write the final state: %s", err);
  return 0;
}

/* core.wait_checkpoint(after) -> completed, final
 * Block until a checkpoint newer than `after` completed or the final one
 * did (every subtask finished); raises the cancel sentinel if the job
 * fails meanwhile. */
static int l_wait_checkpoint(lua_State *L) {
  td_task_t *t = task_of(L);
  int64_t id;
  int final;
  check(L, t, td_task_wait_checkpoint(t, luaL_checkinteger(L, 1), &id, &final));
  lua_pushinteger(L, id);
  lua_pushboolean(L, final);
  return 2;
}

/* core.abort_snapshots(): this subtask failed or was cancelled; its
 * snapshot processes still running are killed before its state is closed
 * (td_task_abort_snapshots). */
static int l_abort_snapshots(lua_State *L) {
  td_task_abort_snapshots(task_of(L));
  return 0;
}

/* core.checkpoint_pending(id) -> whether checkpoint id is pending (a
 * barrier of an aborted or unknown checkpoint is forwarded, not snapshot). */
static int l_checkpoint_pending(lua_State *L) {
  lua_pushboolean(L, td_task_checkpoint_pending(task_of(L), luaL_checkinteger(L, 1)));
  return 1;
}

/* core.forward_barrier(id): send barrier id on every output without a
 * snapshot (its checkpoint is no longer pending). */
static int l_forward_barrier(lua_State *L) {
  td_task_t *t = task_of(L);
  check(L, t, td_task_forward_barrier(t, luaL_checkinteger(L, 1)));
  return 0;
}

/* core.checkpoint_kind(id) -> "checkpoint" | "savepoint" | nil (not
 * pending), and for a stop with a savepoint "stop" or "drain"
 * (td_coord_kind): a source asked for barrier id learns whether to stop
 * after it, and every task whether its snapshot is a savepoint. */
static int l_checkpoint_kind(lua_State *L) {
  td_coord_t *c = td_job_coordinator(subtask_of(L)->job);
  int stop;
  int kind = td_coord_kind(c, luaL_checkinteger(L, 1), &stop);
  if (!kind) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushstring(L, kind == TD_CKPT_SAVEPOINT ? "savepoint" : "checkpoint");
  if (stop == TD_STOP_SUSPEND) lua_pushstring(L, "stop");
  else if (stop == TD_STOP_DRAIN) lua_pushstring(L, "drain");
  else lua_pushnil(L);
  return 2;
}

/* core.await_checkpoint(id) -> true | false, reason: wait until
 * checkpoint or savepoint id completed or failed (a source that injected
 * a stop savepoint's barrier waits for it before it ends); raises the
 * cancel sentinel when the job is cancelled meanwhile. */
static int l_await_checkpoint(lua_State *L) {
  td_subtask_t *st = subtask_of(L);
  int64_t id = luaL_checkinteger(L, 1);
  char why[256];
  for (;;) {
    int r = td_coord_await(td_job_coordinator(st->job), id, 100, why, sizeof why);
    if (r == TD_CKPT_COMPLETED) {
      lua_pushboolean(L, 1);
      return 1;
    }
    if (r == TD_CKPT_FAILED) {
      lua_pushboolean(L, 0);
      lua_pushstring(L, why);
      return 2;
    }
    if (td_job_cancelled(st->job)) raise_cancelled(L);
  }
}

/* core.stopping() -> "stop" | "drain" | nil: whether the job is being
 * stopped with a savepoint (td_job_stop_mode). */
static int l_stopping(lua_State *L) {
  int m = td_job_stop_mode(subtask_of(L)->job);
  if (m == TD_STOP_SUSPEND) lua_pushstring(L, "stop");
  else if (m == TD_STOP_DRAIN) lua_pushstring(L, "drain");
  else lua_pushnil(L);
  return 1;
}

/* core.checkpoint_completed() -> the newest completed checkpoint id (0). */
static int l_checkpoint_completed(lua_State *L) {
  lua_pushinteger(L, td_task_completed(task_of(L)));
  return 1;
}

/* Read and check the snapshot file at path; NULL with nil and the message
 * pushed when it cannot be read or is not valid. */
static td_snapshot_t *read_snapshot(lua_State *L, const char *path) {
  td_snapshot_t *s;
  char err[1024];
  if (td_snapshot_read(&s, NULL, path, err, sizeof err) == 0) return s;
  lua_pushnil(L);
  lua_pushstring(L, err);
  return NULL;
}

/* core.read_snapshot(path) -> {kind =, sections = {{tag =, data =}, ...}}
 * | nil, message: a snapshot file, checked (magic, CRC, structure). */
static int l_read_snapshot(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  td_snapshot_t *s = read_snapshot(L, path);
  if (!s) return 2;
  size_t n = td_snapshot_count(s);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, td_snapshot_kind(s));
  lua_setfield(L, -2, "kind");
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    uint32_t tag;
    td_bytes_t b;
    td_snapshot_section(s, i, &tag, &b);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, tag);
    lua_setfield(L, -2, "tag");
    lua_pushlstring(L, b.len ? (const char *)b.data : "", b.len);
    lua_setfield(L, -2, "data");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "sections");
  td_snapshot_free(s);
  return 1;
}

/* Push a checkpoint's metadata as {id =, time =, final =, subtasks =
 * {flags, ...}, job = job description (decoded), job_name =, dir =,
 * files = {{name =, subtask =, size =, crc =}, ...}}; a job description
 * that does not decode gives nil, message. */
static int push_meta(lua_State *L, const td_meta_t *m, const char *dir) {
  size_t off = 0;
  if (td_codec_decode(L, (const char *)m->job_info, m->job_info_len, &off) != 0 ||
      off != m->job_info_len || !lua_istable(L, -1)) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s/_metadata: bad job description", dir);
    return 2;
  }
  int job = lua_gettop(L);
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, m->id);
  lua_setfield(L, -2, "id");
  lua_pushinteger(L, m->time_ms);
  lua_setfield(L, -2, "time");
  lua_pushboolean(L, (m->flags & TD_META_FINAL) != 0);
  lua_setfield(L, -2, "final");
  lua_pushboolean(L, (m->flags & TD_META_SAVEPOINT) != 0);
  lua_setfield(L, -2, "savepoint");
  lua_createtable(L, m->n_subtasks, 0);
  for (int i = 0; i < m->n_subtasks; i++) {
    lua_pushinteger(L, m->subtasks[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "subtasks");
  lua_pushvalue(L, job);
  lua_setfield(L, -2, "job");
  lua_pushstring(L, m->job_name);
  lua_setfield(L, -2, "job_name");
  lua_pushstring(L, dir);
  lua_setfield(L, -2, "dir");
  lua_createtable(L, (int)m->n_files, 0);
  for (size_t i = 0; i < m->n_files; i++) {
    lua_createtable(L, 0, 4);
    lua_pushstring(L, m->files[i].name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, m->files[i].subtask);
    lua_setfield(L, -2, "subtask");
    lua_pushinteger(L, (lua_Integer)m->files[i].size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, m->files[i].crc);
    lua_setfield(L, -2, "crc");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "files");
  return 1;
}

/* core.read_metadata(dir) -> metadata (see push_meta) | nil, message,
 * code: dir/_metadata, checked as a snapshot file and parsed; the files it
 * lists are not checked (core.verify_checkpoint does). code is "ENOENT"
 * when there is no _metadata. */
static int l_read_metadata(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  td_meta_t *m;
  char err[1024];
  int rc = td_meta_read(dir, &m, err, sizeof err);
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_pushstring(L, td_err_name(rc));
    return 3;
  }
  int r = push_meta(L, m, dir);
  td_meta_free(m);
  return r;
}

/* core.verify_checkpoint(dir [, job]) -> metadata | nil, message, code:
 * the checks recovery applies (state/metadata.h td_meta_verify): a sound
 * _metadata of job `job` (if given), every file it lists present, sound,
 * of the recorded size and CRC, and written for this checkpoint and job.
 * code: "ENOENT" when there is no _metadata, else the first fault's
 * ("ECORRUPT" for a file _metadata lists that is missing). */
static int l_verify_checkpoint(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  const char *job = luaL_optstring(L, 2, NULL);
  td_meta_t *m;
  char err[1400];
  int rc = td_meta_verify(dir, job, NULL, NULL, &m, err, sizeof err);
  if (rc) {
    char path[4200];
    snprintf(path, sizeof path, "%s/_metadata", dir);
    lua_pushnil(L);
    lua_pushstring(L, err);
    /* a completed checkpoint (it has a _metadata) missing a file it lists
     * is corrupt, not incomplete: td_meta_verify says -ENOENT for both */
    lua_pushstring(L, rc != -ENOENT ? td_err_name(rc)
                      : access(path, F_OK) != 0 ? "ENOENT" : td_err_name(TD_ECORRUPT));
    return 3;
  }
  int r = push_meta(L, m, dir);
  td_meta_free(m);
  return r;
}

/* Collects the corrupt checkpoints td_meta_latest visits into the table
 * on top of the stack ("checkpoint <n>: <why>"). */
static void collect_corrupt(void *ud, int64_t id, td_meta_found_t found, const char *err) {
  lua_State *L = ud;
  if (found != TD_META_CORRUPT) return;
  /* not lua_pushfstring's %I: LuaJIT's lacks it */
  char line[2200];
  snprintf(line, sizeof line, "checkpoint %lld: %s", (long long)id, err ? err : "corrupt");
  lua_pushstring(L, line);
  lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
}

/* core.find_latest(job_dir [, job]) -> metadata (see push_meta) | nil,
 * corrupt: the checkpoint recovery restores (td_meta_latest): the newest
 * sound one of job (nil: any). corrupt lists the completed checkpoints
 * found corrupt on the way, newest first ("checkpoint <n>: <why>"; {}
 * when none was ever completed: "none yet" and "all corrupt" differ). */
static int l_find_latest(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  const char *job = luaL_optstring(L, 2, NULL);
  lua_newtable(L);
  int corrupt = lua_gettop(L);
  char path[4400];
  int64_t id = td_meta_latest(dir, job, 0, collect_corrupt, L, NULL, NULL, path, sizeof path, NULL);
  if (id < 0 && id != -ENOENT) return luaL_error(L, "cannot list %s: %s", dir, td_strerror((int)id));
  if (id > 0) {
    td_meta_t *m;
    char err[1400];
    int rc = td_meta_read(path, &m, err, sizeof err);
    int r = rc == 0 ? push_meta(L, m, path) : 0;
    if (rc == 0) td_meta_free(m);
    if (r == 1) {
      lua_pushvalue(L, corrupt);
      return 2;
    }
    lua_settop(L, corrupt);
    char line[1600];
    snprintf(line, sizeof line, "checkpoint %lld: %s", (long long)id, rc ? err : "bad job description");
    lua_pushstring(L, line);
    lua_rawseti(L, corrupt, (lua_Integer)luaL_len(L, corrupt) + 1);
  }
  lua_pushnil(L);
  lua_pushvalue(L, corrupt);
  return 2;
}

/* core.read_state(path) -> value | nil, message: the value a state file
 * holds (checked, then decoded in place). */
static int l_read_state(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  td_snapshot_t *s = read_snapshot(L, path);
  if (!s) return 2;
  size_t pos = 0, off = 0;
  td_bytes_t b;
  if (td_snapshot_find(s, TD_STATE_DATA, &pos, &b) != 1 ||
      td_codec_decode(L, (const char *)b.data, b.len, &off) != 0 || off != b.len) {
    td_snapshot_free(s);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: not a state file (no decodable state section)", path);
    return 2;
  }
  td_snapshot_free(s);
  return 1;
}

/* core.replay_inflight(path) -> true: queue the in-flight data of an
 * unaligned checkpoint (one section per input channel) to be delivered by
 * core.poll before anything from the gate; raises when it cannot. */
static int l_replay_inflight(lua_State *L) {
  td_task_t *t = task_of(L);
  const char *path = luaL_checkstring(L, 1);
  if (td_task_replay_inflight(t, path) != 0) return luaL_error(L, "%s", td_task_error(t));
  lua_pushboolean(L, 1);
  return 1;
}

/* core.emit_event(edge, "watermark", ms | "idle" | "active") sends an
 * in-band event on every channel of the edge, ordered with its records. */
static int l_emit_event(lua_State *L) {
  td_subtask_t *st = subtask_of(L);
  td_task_t *t = ((host_data_t *)st->host)->task;
  const td_job_spec_t *spec = td_job_spec_of(st->job);
  int e = (int)luaL_checkinteger(L, 1) - 1;
  luaL_argcheck(L, e >= 0 && e < spec->n_edges && st->outputs[e].n, 1,
                "not an output edge of this task");
  const char *kind = luaL_checkstring(L, 2);
  if (strcmp(kind, "watermark") == 0)
    check(L, t, td_task_emit_watermark(t, e, luaL_checkinteger(L, 3)));
  else if (strcmp(kind, "idle") == 0 || strcmp(kind, "active") == 0)
    check(L, t, td_task_emit_status(t, e, kind[0] == 'i'));
  else
    return luaL_argerror(L, 2, "'watermark', 'idle' or 'active' expected");
  return 0;
}

/* core.finish() flushes every output and sends end-of-partition. */
static int l_finish(lua_State *L) {
  td_task_t *t = task_of(L);
  int rc = td_task_finish(t);
  if (rc == TD_ECANCELED) raise_cancelled(L);
  if (rc) return luaL_error(L, "cannot finish: %s", td_task_error(t));
  return 0;
}

/* core.fail(message) fails the job with this message (the first failure
 * wins) and cancels every subtask; then raises the cancel sentinel. */
static int l_fail(lua_State *L) {
  td_subtask_t *st = subtask_of(L);
  td_subtask_fail(st, luaL_checkstring(L, 1));
  raise_cancelled(L);
  return 0;
}

/* core.done() ends the script in a task VM once its task loop finished. */
/* core.discovering() -> boolean: the script runs only to learn the files
 * it loads (tide run --detached's client, td_host_discover_files): it
 * stops at its first env:execute() */
static int l_discovering(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "tide.discover");
  lua_pushboolean(L, lua_toboolean(L, -1));
  return 1;
}

static int l_done(lua_State *L) {
  lua_pushlightuserdata(L, &TASK_DONE);
  return lua_error(L);
}

/* core.cancelled() -> boolean */
static int l_cancelled(lua_State *L) {
  td_subtask_t *st = lua_touserdata(L, lua_upvalueindex(1));
  lua_pushboolean(L, st && td_job_cancelled(st->job));
  return 1;
}

/* core.write_stdout(s): writes s whole, never interleaved with another
 * subtask's write. */
static int l_write_stdout(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  pthread_mutex_lock(&g_stdout_mu);
  size_t w = fwrite(s, 1, len, stdout);
  /* a batch at a time reaches a pipe or file (stdout is fully buffered
   * there), so a running job's output is seen as it goes */
  if (w == len && fflush(stdout) != 0) w = 0;
  pthread_mutex_unlock(&g_stdout_mu);
  if (w != len) return luaL_error(L, "cannot write to stdout: %s", strerror(errno));
  return 0;
}

/* ---- values: encoding, keys ------------------------------------------- */

/* core.encode(v [, canonical]) -> string */
static int l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  td_wbuf_t b = {0};
  char err[256];
  int rc = td_codec_encode(L, 1, &b, lua_toboolean(L, 2), err, sizeof err);
  if (rc) {
    td_wbuf_destroy(&b);
    return luaL_error(L, "%s", rc == TD_ECODEC ? err : td_strerror(rc));
  }
  lua_pushlstring(L, b.data ? b.data : "", b.len);
  td_wbuf_destroy(&b);
  return 1;
}

/* core.decode(s) -> v (exactly one value) */
static int l_decode(lua_State *L) {
  size_t len, off = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  int rc = td_codec_decode(L, s, len, &off);
  if (rc || off != len) return luaL_error(L, "malformed encoded value");
  return 1;
}

/* core.table_new(narray, nhash) -> a new empty table with room for narray
 * array elements and nhash hash entries (lua_createtable: a table filled
 * with a known number of entries, e.g. a restored state's, is not rehashed
 * as it grows). Counts beyond INT_MAX or below 0 are clamped. */
static int l_table_new(lua_State *L) {
  lua_Integer na = luaL_checkinteger(L, 1), nh = luaL_checkinteger(L, 2);
  lua_createtable(L, na < 0 ? 0 : na > INT_MAX ? INT_MAX : (int)na, nh < 0 ? 0 : nh > INT_MAX ? INT_MAX : (int)nh);
  return 1;
}

/* core.table_for_pairs(lists) -> a new empty table sized for the keys of
 * lists, an array of flat pair arrays {k1, v1, k2, v2, ...} (a heap
 * snapshot's key groups): the integer keys 1..n go to the array part when
 * Lua's own rehash would put them there (more than half of the slots up to
 * a power of two used, as ltable.c's computesizes), the array trimmed to
 * the largest such key; every other key has a slot in the hash part. A
 * restored state's table so holds the layout an uninterrupted run would
 * have grown, without a rehash while it is filled. */
static int l_table_for_pairs(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Unsigned nums[65] = {0}; /* integer keys in (2^(i-1), 2^i] */
  lua_Integer maxk[65] = {0};  /* the largest of them */
  lua_Unsigned total = 0, nint = 0;
  lua_Integer nl = (lua_Integer)lua_rawlen(L, 1);
  for (lua_Integer l = 1; l <= nl; l++) {
    if (lua_rawgeti(L, 1, l) != LUA_TTABLE) return luaL_argerror(L, 1, "arrays of pairs expected");
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer j = 1; j <= n; j += 2) {
      lua_rawgeti(L, -1, j);
      int isnum;
      lua_Integer k = lua_tointegerx(L, -1, &isnum);
      lua_pop(L, 1);
      total++;
      if (!isnum || k < 1) continue;
      int b = k == 1 ? 0 : 64 - __builtin_clzll((unsigned long long)(k - 1));
      nums[b]++;
      if (k > maxk[b]) maxk[b] = k;
      nint++;
    }
    lua_pop(L, 1);
  }
  /* computesizes: the largest power of two 2^i with more than 2^(i-1) of
   * the integer keys in 1..2^i */
  lua_Unsigned a = 0, na = 0;
  lua_Integer narr = 0, top = 0;
  int i = 0;
  for (lua_Unsigned twotoi = 1; i < 64 && nint > twotoi / 2; i++, twotoi *= 2) {
    a += nums[i];
    if (maxk[i] > top) top = maxk[i];
    if (a > twotoi / 2) {
      narr = top;
      na = a;
    }
  }
  lua_Unsigned nh = total - na;
  lua_createtable(L, narr > INT_MAX ? INT_MAX : (int)narr, nh > INT_MAX ? INT_MAX : (int)nh);
  return 1;
}

/* core.fill_pairs(t, pairs) -> nil | positions: t[k] = v for every pair
 * of the flat array pairs {k1, v1, k2, v2, ...} whose key is not a table
 * (raw sets, no call per pair into Lua); positions lists the index j of
 * each pair pairs[j], pairs[j + 1] with a table key, left to the caller
 * (the keyed-state layer interns table keys). */
static int l_fill_pairs(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 2), nt = 0;
  for (lua_Integer j = 1; j < n; j += 2) {
    if (lua_rawgeti(L, 2, j) == LUA_TTABLE) {
      lua_pop(L, 1);
      if (!nt) lua_newtable(L); /* index 3 */
      lua_pushinteger(L, j);
      lua_rawseti(L, 3, ++nt);
      continue;
    }
    lua_rawgeti(L, 2, j + 1);
    lua_rawset(L, 1);
  }
  return nt ? 1 : 0;
}

/* core.key_group(key, max_parallelism) -> key group (0-based) */
static int l_key_group(lua_State *L) {
  luaL_checkany(L, 1);
  lua_Integer maxp = luaL_checkinteger(L, 2);
  luaL_argcheck(L, maxp >= 1 && maxp <= TD_MAX_PARALLELISM_LIMIT, 2,
                "max parallelism out of range");
  td_wbuf_t b = {0};
  char err[256];
  int rc = td_codec_encode(L, 1, &b, 1, err, sizeof err);
  if (rc) {
    td_wbuf_destroy(&b);
    return luaL_error(L, "%s", err);
  }
  int kg = td_keygroup_of(td_keygroup_hash(b.data, b.len), (int)maxp);
  td_wbuf_destroy(&b);
  lua_pushinteger(L, kg);
  return 1;
}

/* core.subtask_of_key_group(kg, parallelism, max_parallelism) -> index */
static int l_subtask_of_kg(lua_State *L) {
  lua_pushinteger(L, td_keygroup_subtask((int)luaL_checkinteger(L, 1),
                                         (int)luaL_checkinteger(L, 2),
                                         (int)luaL_checkinteger(L, 3)));
  return 1;
}

/* core.default_max_parallelism(parallelism) -> Flink's default */
static int l_default_maxp(lua_State *L) {
  lua_pushinteger(L, td_keygroup_default_max_parallelism(
                         (int)luaL_checkinteger(L, 1)));
  return 1;
}

/* core.check_timestamps(t, n) -> max | nil, index
 * Checks that t[1..n] are integer ms (a float with an integral value is
 * replaced by the integer) and returns the largest; nil and the first bad
 * index otherwise. One call per batch instead of a type check per record. */
static int l_check_timestamps(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = luaL_checkinteger(L, 2);
  lua_Integer max = LUA_MININTEGER;
  for (lua_Integer i = 1; i <= n; i++) {
    int t = lua_rawgeti(L, 1, i);
    int isint = 0;
    lua_Integer v = 0;
    if (t == LUA_TNUMBER) v = lua_tointegerx(L, -1, &isint);
    if (isint && !lua_isinteger(L, -1)) {
      lua_pushinteger(L, v);
      lua_rawseti(L, 1, i);
    }
    lua_pop(L, 1);
    if (!isint) {
      lua_pushnil(L);
      lua_pushinteger(L, i);
      return 2;
    }
    if (v > max) max = v;
  }
  lua_pushinteger(L, max);
  return 1;
}

/* core.check_numbers(b, n [, field]) -> nothing | index, value
 * Checks that b[i][field] (b[i] itself when field is nil) is a number for
 * i = 1..n; returns the first index where it is not, and the value found
 * there. One call per batch instead of a type() per record (the built-in
 * sum's check). Records that are not tables count as not numbers when a
 * field is given. */
static int l_check_numbers(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = luaL_checkinteger(L, 2);
  int has_field = !lua_isnoneornil(L, 3);
  lua_settop(L, 3);
  for (lua_Integer i = 1; i <= n; i++) {
    int t = lua_rawgeti(L, 1, i);
    if (has_field) {
      if (t != LUA_TTABLE) {
        lua_pushinteger(L, i);
        lua_pushnil(L);
        return 2;
      }
      lua_pushvalue(L, 3);
      t = lua_gettable(L, -2); /* honours __index, as v[field] does */
    }
    if (t != LUA_TNUMBER) {
      lua_pushinteger(L, i);
      lua_insert(L, -2);
      return 2;
    }
    lua_settop(L, 3);
  }
  return 0;
}

/* core.sleep_ms(ms[, idle]): sleep this thread for ms milliseconds (>= 0);
 * idle true: in a task, the sleep counts as idle time (metrics.h). */
static int l_sleep_ms(lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  /* idle: a source waiting until its rate limit allows the next batch
   * (metrics.h: idle time, as a Flink source waiting for data) */
  td_subtask_t *st = lua_toboolean(L, 2) ? lua_touserdata(L, lua_upvalueindex(1)) : NULL;
  if (st && td_metrics_enabled()) td_time_wait_begin(&st->time, TD_WAIT_IDLE, td_metrics_now_ns());
  if (ms > 0) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  if (st && td_metrics_enabled()) td_time_wait_end(&st->time, td_metrics_now_ns());
  return 0;
}

/* core.log(level, component, subtask, message): one log line (log.h):
 * level "error" | "warn" | "info" | "debug", component a word, subtask a
 * string such as "1/2 of task 3" or nil, message one line. Raises on an
 * unknown level. */
static int l_log(lua_State *L) {
  td_log_level_t level;
  const char *name = luaL_checkstring(L, 1);
  if (td_log_level_parse(name, &level)) return luaL_error(L, "core.log: unknown level '%s'", name);
  const char *component = luaL_checkstring(L, 2);
  const char *subtask = luaL_optstring(L, 3, NULL);
  const char *message = luaL_checkstring(L, 4);
  pthread_mutex_lock(&g_stdout_mu);
  td_log(level, component, subtask, message);
  pthread_mutex_unlock(&g_stdout_mu);
  return 0;
}

/* core.now_ms() -> wall-clock time, int64 ms since the epoch */
static int l_now_ms(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
  return 1;
}

/* core.mkdir_p(path) -> true | nil, message: create a directory and its
 * parents (mode 0777 before umask); an existing directory is fine. */
static int l_mkdir_p(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char buf[4096];
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof buf) return luaL_argerror(L, 1, "bad path");
  memcpy(buf, path, len + 1);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == 0) {
      char c = *p;
      *p = 0;
      if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot create directory '%s': %s", buf, strerror(errno));
        return 2;
      }
      *p = c;
      if (c == 0) break;
    }
  }
  struct stat sb;
  if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    lua_pushnil(L);
    lua_pushfstring(L, "'%s' is not a directory", path);
    return 2;
  }
  if (access(path, W_OK | X_OK) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot write to directory '%s': %s", path, strerror(errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.fsync(path) -> true | nil, message: flush a file or a directory
 * to stable storage (open read-only, fsync, close). */
static int l_fsync(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    lua_pushnil(L);
    /* a snapshot child calls this too: strerror may take locale locks */
    if (td_alloc_in_arena()) lua_pushfstring(L, "cannot fsync '%s': errno %d", path, e);
    else lua_pushfstring(L, "cannot fsync '%s': %s", path, strerror(e));
    return 2;
  }
  close(fd);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.list_dir(path) -> {name, ...} | nil, message: the names in a
 * directory, without "." and "..", in no particular order. */
static int l_list_dir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (!d) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot list '%s': %s", path, strerror(errno));
    return 2;
  }
  lua_newtable(L);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    lua_pushstring(L, de->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  return 1;
}

/* ---- file readers ------------------------------------------------------ */

#define READER_MT "tide.reader"

typedef struct lreader {
  td_reader_t *r;
  char path[1024];
  td_subtask_t *st;       /* the subtask reading (NULL: the planning VM) */
  uint64_t counted;       /* bytes added to st's source_bytes_read */
  int total_counted;      /* its share added to st's source_bytes_total */
} lreader_t;

/* Count the reader's progress into its subtask's source bytes (per batch;
 * the progress line of tide run). */
static void reader_count(lreader_t *lr) {
  if (!lr->st || !lr->r) return;
  uint64_t done, total;
  td_reader_progress(lr->r, &done, &total);
  if (!lr->total_counted) {
    lr->total_counted = 1;
    atomic_fetch_add_explicit(&lr->st->source_bytes_total, (int64_t)total, memory_order_relaxed);
  }
  if (done > lr->counted) {
    atomic_fetch_add_explicit(&lr->st->source_bytes_read, (int64_t)(done - lr->counted),
                              memory_order_relaxed);
    lr->counted = done;
  }
}

static lreader_t *check_reader(lua_State *L) {
  lreader_t *lr = luaL_checkudata(L, 1, READER_MT);
  if (!lr->r) luaL_error(L, "reader is closed");
  return lr;
}

static int reader_gc(lua_State *L) {
  lreader_t *lr = luaL_checkudata(L, 1, READER_MT);
  td_reader_free(lr->r);
  lr->r = NULL;
  return 0;
}

/* reader:read(buf, max) -> n (0 at the end), or nil, message ("path:line:
 * ...", a bad row or a read error), code */
static int reader_read(lua_State *L) {
  lreader_t *lr = check_reader(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  int max = (int)luaL_checkinteger(L, 3);
  int n = td_reader_read(lr->r, L, 2, max);
  reader_count(lr);
  if (n < 0) {
    lua_pushnil(L);
    lua_pushstring(L, td_reader_error(lr->r));
    lua_pushinteger(L, n);
    return 3;
  }
  lua_pushinteger(L, n);
  return 1;
}

/* reader:whole() -> true when split 0 reads the whole input (CSV, gzip)
 * and the other splits nothing */
static int reader_whole(lua_State *L) {
  lua_pushboolean(L, td_reader_whole(check_reader(L)->r));
  return 1;
}

/* reader:skipped() -> rows skipped under on_error = "skip" */
static int reader_skipped(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)td_reader_skipped(check_reader(L)->r));
  return 1;
}

/* reader:first_skipped() -> "path:line: reason" of the first row this
 * reader skipped, or nil (td_reader_first_skipped) */
static int reader_first_skipped(lua_State *L) {
  const char *m = td_reader_first_skipped(check_reader(L)->r);
  if (*m) lua_pushstring(L, m);
  else lua_pushnil(L);
  return 1;
}

/* reader:position() -> {offset=, line=, skipped=, ncols=, split=,
 * n_splits=, kind=}: where the records not yet read begin (see
 * td_reader_pos_t); plain integers, for a checkpoint. */
static int reader_position(lua_State *L) {
  td_reader_pos_t p;
  int rc = td_reader_position(check_reader(L)->r, &p);
  if (rc) return luaL_error(L, "reader has no position: %s", td_strerror(rc));
  lua_createtable(L, 0, 7);
#define POSF(f)                          \
  lua_pushinteger(L, (lua_Integer)p.f); \
  lua_setfield(L, -2, #f)
  POSF(offset);
  POSF(line);
  POSF(skipped);
  POSF(ncols);
  POSF(split);
  POSF(n_splits);
  POSF(kind);
#undef POSF
  return 1;
}

/* reader:seek(pos) continues a freshly opened reader at a position from
 * reader:position(); raises with a message naming the file otherwise. */
static int reader_seek(lua_State *L) {
  lreader_t *lr = check_reader(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  td_reader_pos_t p;
  memset(&p, 0, sizeof p);
#define GETF(f, T)                                                   \
  do {                                                               \
    lua_getfield(L, 2, #f);                                          \
    int ok_;                                                         \
    lua_Integer v_ = lua_tointegerx(L, -1, &ok_);                    \
    if (!ok_) return luaL_error(L, "reader:seek: bad position field '" #f "'"); \
    p.f = (T)v_;                                                     \
    lua_pop(L, 1);                                                   \
  } while (0)
  GETF(offset, uint64_t);
  GETF(line, uint64_t);
  GETF(skipped, uint64_t);
  GETF(ncols, uint64_t);
  GETF(split, int32_t);
  GETF(n_splits, int32_t);
  GETF(kind, int32_t);
#undef GETF
  int rc = td_reader_seek(lr->r, &p);
  if (rc) return luaL_error(L, "%s", td_reader_error(lr->r));
  return 0;
}

static lreader_t *new_reader(lua_State *L) {
  lreader_t *lr = lua_newuserdatauv(L, sizeof *lr, 0);
  lr->r = NULL;
  lr->st = lua_touserdata(L, lua_upvalueindex(1)); /* the calling core function's */
  lr->counted = 0;
  lr->total_counted = 0;
  if (luaL_newmetatable(L, READER_MT)) {
    lua_pushcfunction(L, reader_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, reader_gc);
    lua_setfield(L, -2, "__close");
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, reader_read);
    lua_setfield(L, -2, "read");
    lua_pushcfunction(L, reader_skipped);
    lua_setfield(L, -2, "skipped");
    lua_pushcfunction(L, reader_first_skipped);
    lua_setfield(L, -2, "first_skipped");
    lua_pushcfunction(L, reader_position);
    lua_setfield(L, -2, "position");
    lua_pushcfunction(L, reader_whole);
    lua_setfield(L, -2, "whole");
    lua_pushcfunction(L, reader_seek);
    lua_setfield(L, -2, "seek");
    lua_pushcfunction(L, reader_gc);
    lua_setfield(L, -2, "close");
    lua_setfield(L, -2, "__index");
  }
  lua_setmetatable(L, -2);
  return lr;
}

/* core.open_text(path, split, n_splits) -> reader | nil, message */
static int l_open_text(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int split = (int)luaL_checkinteger(L, 2);
  int n = (int)luaL_checkinteger(L, 3);
  luaL_argcheck(L, n >= 1 && split >= 0 && split < n, 2, "bad split");
  lreader_t *lr = new_reader(L);
  char err[1024];
  int rc = td_reader_open_text(&lr->r, path, split, n, err, sizeof err);
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  return 1;
}

static td_col_type_t col_type(lua_State *L, const char *s, const char *col) {
  if (strcmp(s, "string") == 0) return TD_COL_STRING;
  if (strcmp(s, "int") == 0 || strcmp(s, "integer") == 0) return TD_COL_INT;
  if (strcmp(s, "float") == 0) return TD_COL_FLOAT;
  if (strcmp(s, "number") == 0) return TD_COL_NUMBER;
  if (strcmp(s, "bool") == 0 || strcmp(s, "boolean") == 0) return TD_COL_BOOL;
  return (td_col_type_t)luaL_error(
      L, "read_csv: column '%s' has unknown type '%s' (expected string, int, "
         "float, number or bool)", col, s);
}

/* core.open_csv(path, opts, split, n_splits) -> reader | nil, message
 * opts: delimiter (1 char), header (bool), columns (array of names),
 * types ({name = "int"|...}), skip_errors (bool) */
static int l_open_csv(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int split = (int)luaL_checkinteger(L, 3);
  int n = (int)luaL_checkinteger(L, 4);
  td_csv_opts_t o;
  memset(&o, 0, sizeof o);
  lua_getfield(L, 2, "delimiter");
  const char *d = luaL_optstring(L, -1, ",");
  if (strlen(d) != 1) return luaL_error(L, "read_csv: delimiter must be one character");
  o.delimiter = d[0];
  lua_pop(L, 1);
  lua_getfield(L, 2, "header");
  o.header = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 2, "skip_errors");
  o.skip_errors = lua_toboolean(L, -1);
  lua_pop(L, 1);
  /* name and type arrays live in userdata kept on the stack for the call */
  lua_getfield(L, 2, "columns");
  if (lua_istable(L, -1)) {
    int t = lua_gettop(L);
    o.n_names = (size_t)luaL_len(L, t);
    const char **names = lua_newuserdatauv(L, sizeof(char *) * (o.n_names + 1), 0);
    for (size_t i = 0; i < o.n_names; i++) {
      lua_rawgeti(L, t, (lua_Integer)i + 1);
      names[i] = lua_tostring(L, -1);
      if (!names[i]) return luaL_error(L, "read_csv: column names must be strings");
      lua_pop(L, 1);
    }
    o.names = names;
  }
  lua_getfield(L, 2, "types");
  if (lua_istable(L, -1)) {
    int t = lua_gettop(L);
    size_t cnt = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
      cnt++;
      lua_pop(L, 1);
    }
    const char **tn = lua_newuserdatauv(L, sizeof(char *) * (cnt + 1), 0);
    td_col_type_t *ty = lua_newuserdatauv(L, sizeof(td_col_type_t) * (cnt + 1), 0);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "read_csv: types must map column names to type names");
      tn[i] = lua_tostring(L, -2);
      ty[i] = col_type(L, lua_tostring(L, -1), tn[i]);
      i++;
      lua_pop(L, 1);
    }
    o.type_names = tn;
    o.types = ty;
    o.n_types = cnt;
  }
  lreader_t *lr = new_reader(L);
  char err[1024];
  int rc = td_reader_open_csv(&lr->r, path, &o, split, n, err, sizeof err);
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  return 1;
}

/* core.task_handle() -> this subtask's engine (td_task_t *) as a light
 * userdata, for the LuaJIT host's FFI bindings (lua/tide/ffi.lua). */
static int l_task_handle(lua_State *L) {
  lua_pushlightuserdata(L, task_of(L));
  return 1;
}

/* ---- the module -------------------------------------------------------- */

static const luaL_Reg core_funcs[] = {
    {"execute", l_execute},
    {"script_hash", l_script_hash},
    {"cancel_signal", l_cancel_signal},
    {"cancel_reason", l_cancel_reason},
    {"set_restarting", l_set_restarting},
    {"set_late_dropped", l_set_late_dropped},
    {"disable_metrics", l_disable_metrics},
    {"lock_dir", l_lock_dir},
    {"reload_swap", l_reload_swap},
    {"reload_claim_failure", l_reload_claim_failure},
    {"defaults", l_defaults},
    {"context", l_context},
    {"begin", l_begin},
    {"poll", l_poll},
    {"emit", l_emit},
    {"emit_event", l_emit_event},
    {"tick", l_tick},
    {"flush", l_flush},
    {"finish", l_finish},
    {"fail", l_fail},
    {"note", l_note},
    {"done", l_done},
    {"discovering", l_discovering},
    {"cancelled", l_cancelled},
    {"write_stdout", l_write_stdout},
    {"encode", l_encode},
    {"decode", l_decode},
    {"key_group", l_key_group},
    {"table_new", l_table_new},
    {"table_for_pairs", l_table_for_pairs},
    {"fill_pairs", l_fill_pairs},
    {"subtask_of_key_group", l_subtask_of_kg},
    {"default_max_parallelism", l_default_maxp},
    {"now_ms", l_now_ms},
    {"log", l_log},
    {"sleep_ms", l_sleep_ms},
    {"check_timestamps", l_check_timestamps},
    {"check_numbers", l_check_numbers},
    {"mkdir_p", l_mkdir_p},
    {"fsync", l_fsync},
    {"list_dir", l_list_dir},
    {"open_text", l_open_text},
    {"open_csv", l_open_csv},
    {"snapshot", l_snapshot},
    {"snapshot_async", l_snapshot_async},
    {"snapshot_failed", l_snapshot_failed},
    {"snapshot_hole", l_snapshot_hole},
    {"monotonic_us", l_monotonic_us},
    {"finished", l_finished},
    {"wait_checkpoint", l_wait_checkpoint},
    {"abort_snapshots", l_abort_snapshots},
    {"checkpoint_completed", l_checkpoint_completed},
    {"checkpoint_pending", l_checkpoint_pending},
    {"checkpoint_kind", l_checkpoint_kind},
    {"await_checkpoint", l_await_checkpoint},
    {"stopping", l_stopping},
    {"forward_barrier", l_forward_barrier},
    {"read_snapshot", l_read_snapshot},
    {"read_metadata", l_read_metadata},
    {"find_latest", l_find_latest},
    {"restart_strategy", l_restart_strategy},
    {"verify_checkpoint", l_verify_checkpoint},
    {"read_state", l_read_state},
    {"replay_inflight", l_replay_inflight},
    {"task_handle", l_task_handle},
    {NULL, NULL}};

int td_host_openlib(lua_State *L) {
  lua_createtable(L, 0, sizeof core_funcs / sizeof core_funcs[0] + 4);
  lua_getfield(L, LUA_REGISTRYINDEX, "tide.subtask");
  if (lua_type(L, -1) != LUA_TLIGHTUSERDATA) {
    lua_pop(L, 1);
    lua_pushlightuserdata(L, NULL);
  }
  luaL_setfuncs(L, core_funcs, 1);
  td_module_lua_open(L); /* core.module_load, core.module_chain */
  td_state_lua_open(L);  /* core.rocksdb_open, core.shared_upload, ... */
  td_kafka_lua_open(L);  /* core.kafka_new */
  td_json_lua_open(L);   /* core.json_decode, core.json_encode */
  td_socket_lua_open(L); /* core.socket_connect */
  td_postgres_lua_open(L); /* core.pg_connect */
  lua_pushliteral(L, TD_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushlightuserdata(L, &CANCELLED);
  lua_setfield(L, -2, "CANCELLED");
  lua_pushlightuserdata(L, &TASK_DONE);
  lua_setfield(L, -2, "TASK_DONE");
  /* core.errors: the error codes by name (error.h) */
  lua_newtable(L);
#define TD_ERR_FIELD(name, code, msg) \
  lua_pushinteger(L, code);           \
  lua_setfield(L, -2, #name);
  TD_ERRNO_MAP(TD_ERR_FIELD)
#undef TD_ERR_FIELD
  lua_setfield(L, -2, "errors");
#ifdef TD_LUAJIT
  /* the record path over FFI: require("tide.ffi").install(core) */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "tide.ffi");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "install");
  lua_pushvalue(L, -3);
  lua_call(L, 1, 0);
  lua_pop(L, 1);
#endif
  return 1;
}
