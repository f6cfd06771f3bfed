/*
 * reload.h - live reload of a running job's logic (tide reload): new Lua
 * logic swapped into the same process without losing state or output.
 *
 * The steps, and which thread takes each:
 *
 *   1. td_job_reload (the control endpoint's request thread): the new
 *      script must load (the host's check, td_reload_set_check); then an
 *      aligned stop-with-savepoint of the running job (TD_STOP_SUSPEND:
 *      sources end right after the barrier, sinks commit what they
 *      pre-committed) is the cut. Phase CUTTING.
 *   2. The planning thread sees its job end stopped for a reload
 *      (td_job_stopped_for_reload), records the cut (td_reload_set_cut:
 *      phase SWAPPING), closes the old logic's VM and runs the new script
 *      in a fresh planning VM restored from the cut with the restore rules
 *      of --from-savepoint (uids, kinds, --allow-non-restored-state).
 *   3. The new job starts (td_reload_on_start: phase CANDIDATE). It is
 *      healthy when its first checkpoint completes (no periodic
 *      checkpoints: after TD_RELOAD_GRACE_MS running), or when it finishes:
 *      the request completes with success (td_reload_poll).
 *   4. If the new script fails to load, to match the cut, or its job fails
 *      before it is healthy, the planning thread claims the failure
 *      (td_reload_claim_failure: phase ROLLING_BACK) and runs the old logic
 *      again from the cut; when that job starts, the request completes
 *      with the failure's message. The old version stays until the new one
 *      is healthy (as Erlang/OTP's code_change).
 *
 * One reload at a time per process; a second request is refused while one
 * is in progress. All functions are thread-safe.
 */
#ifndef TD_RELOAD_H
#define TD_RELOAD_H

#include <stddef.h>
#include <stdint.h>

typedef struct td_job td_job_t;

/* How long a new logic without periodic checkpoints must run before it
 * counts as healthy, ms. */
#define TD_RELOAD_GRACE_MS 1000

typedef enum td_reload_phase {
  TD_RELOAD_IDLE = 0,
  TD_RELOAD_CUTTING,      /* taking the stop-with-savepoint cut */
  TD_RELOAD_SWAPPING,     /* the planning thread loads the new logic */
  TD_RELOAD_CANDIDATE,    /* the new logic's job runs, not yet healthy */
  TD_RELOAD_ROLLING_BACK, /* the new logic failed; the old one restarts */
  TD_RELOAD_DONE          /* settled (the requester reads the outcome) */
} td_reload_phase_t;

/* A reload request: the new script (its text is what runs: the file is
 * not read again), its arguments (NULL: the running job's), and whether
 * state of removed operators may be dropped. */
typedef struct td_reload_request {
  const char *path;
  const char *text;
  size_t len;
  const char *const *args;   /* args[0] = path, args[1..n_args-1]; NULL:
                                the running job's (td_reload_take always
                                gives them) */
  int n_args;
  int allow_non_restored;
} td_reload_request_t;

/* Milestones of a reload, ms since the epoch (0: not reached). */
typedef struct td_reload_times {
  int64_t requested, cut, started, flowing, settled;
} td_reload_times_t;

/*
 * td_reload_set_check - the host's load check for a new script: returns
 * 0, or non-zero with the message (path:line) in err. Called on the
 * request thread before anything stops; may be NULL (no check).
 */
void td_reload_set_check(int (*check)(const char *path, const char *text, size_t len,
                                      char *err, size_t errlen));

/*
 * td_job_reload - reload the running job with req (copied). Consumes the
 * caller's reference to job (released once the cut is taken). Blocks
 * until the reload settles: the new logic healthy, or the old logic
 * running again. The cut is a savepoint in the job's savepoint directory
 * (--checkpoint-dir: a job without one is refused); its path goes to cut
 * (empty when no cut was taken). Returns 0 (the new logic runs); -EBUSY
 * (another reload in progress); TD_EINVAL (refused before the cut: no
 * checkpoint directory, the script does not load, the job cannot take an
 * aligned savepoint, ...: the old logic kept running); TD_EIO (the cut failed, or the new logic was refused or
 * failed: the old logic runs from the cut); TD_ECANCELED (the job ended
 * or was cancelled meanwhile). The reason is in msg.
 */
int td_job_reload(td_job_t *job, const td_reload_request_t *req, char *cut, size_t cutlen,
                  td_reload_times_t *times, char *msg, size_t msglen);

/* td_reload_phase - the current phase (for status answers). */
td_reload_phase_t td_reload_phase(void);

/* td_reload_phase_name - "IDLE", "CUTTING", "SWAPPING", "CANDIDATE",
 * "ROLLING_BACK" or "DONE". */
const char *td_reload_phase_name(td_reload_phase_t p);

/*
 * td_reload_set_cut - the planning thread: its job ended stopped for the
 * reload at savepoint `path`. Phase CUTTING -> SWAPPING. Returns 0, or
 * TD_EINVAL when no reload is cutting.
 */
int td_reload_set_cut(const char *path);

/*
 * td_reload_take - the request of the reload that is SWAPPING, copied
 * into fresh memory: *req (free with td_reload_request_free) and the cut
 * (into cut). Returns 0, or TD_EINVAL when none is.
 */
int td_reload_take(td_reload_request_t *req, char *cut, size_t cutlen);

/* td_reload_request_free - free what td_reload_take allocated. */
void td_reload_request_free(td_reload_request_t *req);

/* td_reload_on_start - a job started (job.c calls it): during SWAPPING it
 * is the candidate (phase CANDIDATE); during ROLLING_BACK the old logic
 * runs again and the request settles with its failure. */
void td_reload_on_start(td_job_t *job);

/*
 * td_reload_claim_failure - the planning thread: the new logic failed
 * (message: why). Before it is healthy (SWAPPING or CANDIDATE) the reload
 * rolls back: phase ROLLING_BACK, returns 1 (also when already rolling
 * back). Otherwise returns 0: the failure is the job's own (restart by its
 * strategy).
 */
int td_reload_claim_failure(const char *message);

/* td_reload_settle - the planning thread: the new logic's VM returned
 * without a rollback: ok (its job finished: healthy, if not yet), or not
 * (cancelled: message says so). No effect once settled. */
void td_reload_settle(int ok, const char *message);

/* td_reload_rolled_back - the planning thread: the old logic's VM it ran
 * after a rollback returned; if its job never started, the request
 * settles now with the failure's message. */
void td_reload_rolled_back(void);

#endif
