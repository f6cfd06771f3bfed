/*
 * host.h - the Lua host: how the core runs Lua.
 *
 * One small interface between the runtime and a Lua implementation: create
 * a VM for a subtask, load and run the job script in it (planning mode in
 * the CLI's VM, task mode in each subtask's VM), and the `tide.core` module
 * through which lua/tide.lua builds jobs and lua/tide/runtime.lua moves
 * batches of records in and out of the exchanges.
 */
#ifndef TD_HOST_H
#define TD_HOST_H

#include <stddef.h>

#include "job.h"
#include "luacompat.h"

/* Version of the core; lua/tide.lua refuses to run on another one. */
#define TD_VERSION "0.1.0"

/*
 * td_host_openlib - the `tide.core` module's opener (lua_CFunction): pushes
 * the module table. In a subtask's VM it is bound to that subtask.
 */
int td_host_openlib(lua_State *L);

/* td_host_set_defaults - job defaults the CLI passes to the planning VM:
 * default parallelism (>= 1) and max parallelism (0: Flink's default). */
void td_host_set_defaults(int parallelism, int max_parallelism);

/*
 * td_host_set_checkpoint_defaults - the command line's checkpoint options,
 * seen by scripts through core.defaults(): dir (--checkpoint-dir, or NULL),
 * interval (--checkpoint-interval as given, e.g. "1s", or NULL) and resume
 * (--resume: restore the latest completed checkpoint). The strings must
 * outlive the script.
 */
void td_host_set_checkpoint_defaults(const char *dir, const char *interval, int resume);

/* td_host_set_output_defaults - the command line's --allow-existing-output
 * (seen by scripts as core.defaults().allow_existing_output: a fresh start
 * may write into sink directories holding committed output of the job)
 * and --buffer-timeout as given (core.defaults().buffer_timeout, or NULL;
 * the string must outlive the script). */
void td_host_set_output_defaults(int allow_existing_output, const char *buffer_timeout);

/* td_host_set_summary - whether the planning VM prints the exit summary
 * (records per task, checkpoints, restarts, runtime) also when nothing
 * else calls for it: tide run --summary, or stderr a terminal without
 * --quiet (core.defaults().summary). */
void td_host_set_summary(int on);

/* td_host_set_state_defaults - the command line's --state-backend
 * ("heap" | "rocksdb") and --state-dir (the base directory of RocksDB
 * working directories); NULL: the script's env{} or the defaults (heap,
 * the system temp directory). They win over env{state_backend =,
 * state_dir =}. The strings must outlive the job. */
void td_host_set_state_defaults(const char *backend, const char *dir);

/* td_host_set_run_id - the job id users see (tide list, the control
 * endpoint, savepoint names): core.defaults().run_id. The string must
 * outlive the script. */
void td_host_set_run_id(const char *id);

/* td_host_set_restore_defaults - --from-savepoint PATH (or NULL) and
 * --allow-non-restored-state: core.defaults().from_savepoint and
 * .allow_non_restored_state. The string must outlive the script. */
void td_host_set_restore_defaults(const char *savepoint, int allow_non_restored);

/* The command line's job defaults, as the td_host_set_* calls above set
 * them (strings: NULL when not given). Cluster mode ships the job
 * master's to the task managers, whose subtask VMs must see the same. */
typedef struct td_host_defaults {
  int parallelism, max_parallelism, resume, allow_existing_output, allow_non_restored;
  const char *checkpoint_dir, *checkpoint_interval, *buffer_timeout, *state_backend,
      *state_dir, *run_id, *from_savepoint;
} td_host_defaults_t;

/* td_host_get_defaults - the defaults set now. */
void td_host_get_defaults(td_host_defaults_t *d);

struct td_subtask;
/* td_host_subtask_body - the body of a subtask's thread (td_job_start's
 * body): a fresh VM that runs the job script in task mode. */
void td_host_subtask_body(struct td_subtask *st);

/* td_host_set_cancel_signal - record that signal sig (SIGINT, SIGTERM)
 * cancelled the run: scripts see it as core.cancel_signal(). */
void td_host_set_cancel_signal(int sig);

/*
 * td_host_ship_files - install lua/tide/ship.lua's searcher in VM L, before
 * td_host_run_script: require and tide.load_module resolve to files[0..n)
 * (shipped copies; files NULL: none); record (a planning VM): the Lua
 * modules the script requires and the C modules it loads, shipped or
 * found, become the plan's `files`. Returns 0, or -1 with the message on
 * L's stack.
 */
int td_host_ship_files(lua_State *L, const td_job_file_t *files, int n, int record);

/* Outcome of td_host_run_script. */
enum {
  TD_RUN_OK = 0,
  TD_RUN_SYNTAX = 2,  /* the script does not load: syntax error, missing */
  TD_RUN_ERROR = 1,   /* the script raised, or a job it ran failed */
  TD_RUN_CORRUPT = 3, /* nothing to resume: every completed checkpoint is corrupt */
  TD_RUN_SIGINT = 130, /* cancelled by SIGINT (128 + 2) */
  TD_RUN_SIGTERM = 143, /* cancelled by SIGTERM (128 + 15) */
  TD_RUN_RELOAD = 4    /* never an exit status: the planning VM handed the
                          process to a live reload's new logic (reload.h);
                          the caller runs it (td_reload_take) */
};

/*
 * td_host_run_script - run the job script `path` with arg = {[0] = path,
 * args...} and `...` = args, through lua_pcall with a traceback handler.
 * text NULL (the planning VM): the file is read once and its text pinned
 * in the VM's registry, where core.execute takes it for the subtasks;
 * text given (text_len bytes, a subtask VM): that text is run and the file
 * is not read, so an edited script never slips into a running job or its
 * restarts. Messages name path:line either way. Returns TD_RUN_OK,
 * TD_RUN_SYNTAX (does not load, or cannot be read) or TD_RUN_ERROR, with
 * the message (file:line, and a traceback for runtime errors) in errbuf.
 */
int td_host_run_script(lua_State *L, const char *path, const char *text, size_t text_len,
                       const char *const *args, int n_args, char *errbuf,
                       size_t errlen);

/* td_host_set_resume - core.defaults().resume from now on (a live
 * reload's new planning VM restores the cut, never resumes). */
void td_host_set_resume(int resume);

/* td_host_pinned - the script text planning VM L pinned (len bytes; owned
 * by L), or NULL when it read none. */
const char *td_host_pinned(lua_State *L, size_t *len);

/* td_host_pin_script - pin text (len bytes) as the job script of planning
 * VM L before td_host_run_script(L, path, NULL, ...): the VM runs this
 * text and gives it to its subtasks; the file is not read. */
void td_host_pin_script(lua_State *L, const char *text, size_t len);

/*
 * td_host_check_script - whether script text (len bytes, named path in
 * messages) loads: compiled in a throwaway VM, not run. Returns TD_RUN_OK,
 * or TD_RUN_SYNTAX with the message (path:line) in err. Thread-safe: the
 * live reload's check (td_reload_set_check).
 */
int td_host_check_script(const char *path, const char *text, size_t len, char *err,
                         size_t errlen);

/* td_host_new_state - a fresh Lua VM with the standard libraries and
 * tide.core preloaded. Returns NULL when out of memory. */
lua_State *td_host_new_state(void);

#endif
