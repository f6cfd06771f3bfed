/*
 * control.h - a running job's control endpoint: HTTP/JSON (libmicrohttpd,
 * jansson) on 127.0.0.1 unless told otherwise, with the names of Flink's
 * REST API where they fit (docs/REST.md lists every endpoint):
 *
 *   GET   /                                the web dashboard (web.h), with
 *                                          /dashboard.js and /dashboard.css
 *   GET   /jobs                            the process's job and its status
 *   GET   /jobs/:id                        status, times, vertices (tasks)
 *   GET   /jobs/:id/plan                   the graph: tasks, operators, edges
 *   GET   /jobs/:id/vertices/:v            per subtask records in/out and
 *                                          current input watermark
 *   GET   /jobs/:id/vertices/:v/watermarks as Flink's
 *   GET   /jobs/:id/checkpoints            checkpoint and savepoint history
 *   POST  /jobs/:id/savepoints             trigger a savepoint (async)
 *   POST  /jobs/:id/stop                   stop with a savepoint (async)
 *   GET   /jobs/:id/savepoints/:request    the outcome of a trigger or stop
 *   PATCH /jobs/:id, POST /jobs/:id/cancel cancel
 *
 * One endpoint per process, serving whichever job the process runs now
 * (td_job_current; between a failure and its restart, or before the first
 * start, the status alone). Savepoints and stops run on threads of their
 * own (td_job_savepoint) and are polled, as in Flink.
 *
 * Thread safety: the server has a thread of its own; td_control_new and
 * td_control_free are called by one thread.
 */
#ifndef TD_CONTROL_H
#define TD_CONTROL_H

#include <stddef.h>

typedef struct td_control td_control_t;

/*
 * td_control_new - serve the control endpoint of job `job_id` (copied) on
 * bind:port (bind: an IPv4 address, NULL for 127.0.0.1; port 0: a free
 * port). Returns 0 and *out; TD_EINVAL (a bad address), -errno or
 * TD_EIO (cannot listen) with a message in err.
 */
int td_control_new(td_control_t **out, const char *bind, int port, const char *job_id, char *err,
                   size_t errlen);

/* td_control_address - "host:port" the endpoint listens on. */
const char *td_control_address(const td_control_t *c);

/* td_control_free - stop serving and free (NULL: no-op). Waits up to 5 s
 * for clients to read the outcome of stop requests (the job ends when a
 * stop's savepoint completes), and for running savepoint requests (which
 * end with their job). */
void td_control_free(td_control_t *c);

#endif
