/*
 * log.h - the process's log: one line per event on stderr, with a level
 * (error, warn, info, debug: log4j's / Flink's levels) and a component,
 * naming the job and, for a subtask's event, the subtask.
 *
 * Text (the default) writes "tide: MESSAGE" exactly as Tide always wrote
 * its stderr lines (warnings keep their "warning: " prefix), so scripts
 * and tests that read them are unaffected. JSON (`--log-format json`)
 * writes one object a line through jansson:
 *   {"ts": ms since the epoch, "level": "warn", "component": "runtime",
 *    "job": "<job id>", "subtask": "2/4 of task 3", "message": "..."}
 * ("job" and "subtask" only when known). Events above the level set by
 * `--log-level` (default info) are dropped. Thread-safe: each line is
 * written with one call.
 */
#ifndef TD_LOG_H
#define TD_LOG_H

typedef enum td_log_level {
  TD_LOG_ERROR = 0,
  TD_LOG_WARN = 1,
  TD_LOG_INFO = 2,
  TD_LOG_DEBUG = 3
} td_log_level_t;

/* td_log_level_parse - "error", "warn", "info" or "debug" into *out.
 * Returns 0, or -1 for another name. */
int td_log_level_parse(const char *name, td_log_level_t *out);

/* td_log_configure - the highest level written and the format (json:
 * nonzero for JSON lines). Call before the job's threads start. */
void td_log_configure(td_log_level_t level, int json);

/* td_log_set_job - the job id events name from now on (copied; NULL:
 * none). */
void td_log_set_job(const char *job_id);

/* td_log_enabled - whether events of `level` are written. */
int td_log_enabled(td_log_level_t level);

/*
 * td_log - write one event: level, component (a short word: "run",
 * "runtime", "checkpoint", "restore", "source", ...), subtask (e.g. "1/2
 * of task 3", NULL for job-wide events) and the message (one line,
 * without "tide: "). Text: "tide: " + message, with "warning: " before a
 * warn-level message that does not start with it already.
 */
void td_log(td_log_level_t level, const char *component, const char *subtask,
            const char *message);

/*
 * td_log_status - show text (one line, no newline) as the terminal's
 * status line, replacing the last one; NULL or "": remove it. Text log
 * lines are written above it and it is drawn again below them. Only for a
 * terminal on stderr (the caller checks isatty).
 */
void td_log_status(const char *text);

#endif
