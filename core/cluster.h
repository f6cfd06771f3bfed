/*
 * cluster.h - cluster mode (docs/CLUSTER.md): a job manager, task managers
 * on several hosts, and job masters, talking over the wire protocol
 * (wire.h, net.h) with control messages on wire channel 1.
 *
 *   job manager    (tide jobmanager) the cluster's registry: task managers
 *                  register their slots and send heartbeats; a task
 *                  manager whose heartbeats stop (or whose connection
 *                  closes) is lost, and the jobs holding its slots are told.
 *                  Job masters ask it for slots; tide list asks it what
 *                  runs.
 *   task manager   (tide taskmanager) runs the subtasks a job master
 *                  deploys to its slots, exchanging records with the other
 *                  task managers over the network shuffle (netexchange.h)
 *                  and taking part in checkpoints (a participant
 *                  coordinator, checkpoint.h).
 *   job master     (tide run --jobmanager) plans the job as in local mode
 *                  (the same restart strategy, checkpoint directory and
 *                  recovery), takes slots from the job manager, deploys
 *                  the subtasks, and coordinates the checkpoints of the
 *                  whole job. A failed subtask or a lost task manager
 *                  fails the attempt: the job restarts from its latest
 *                  completed checkpoint on the slots that remain.
 *
 * Every connection authenticates with the cluster secret, read from a
 * file that only its owner may read (td_cluster_read_secret); the cluster
 * id is derived from the secret, so that clusters with different secrets
 * refuse each other at the hello.
 *
 * Control messages are JSON objects with a "type", one per DATA frame of
 * channel 1, sent without credit (docs/PROTOCOL.md lists them).
 */
#ifndef TD_CLUSTER_H
#define TD_CLUSTER_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>

#include "host.h"
#include "job.h"
#include "net.h"

#define TD_CLUSTER_CONTROL 1u      /* the control channel */
#define TD_CLUSTER_PORT 6123       /* the job manager's default port (Flink's) */

/*
 * td_cluster_read_secret - the cluster secret from path: the file's bytes
 * without a trailing newline, 16 to 4096 of them. The file must be a
 * regular file that neither group nor others may read (as ssh keys).
 * Returns 0 with *secret (malloc'd; wipe and free with
 * td_cluster_free_secret) and *len, or TD_EINVAL / -errno with a message
 * in err that never contains the secret.
 */
int td_cluster_read_secret(const char *path, unsigned char **secret, size_t *len, char *err,
                           size_t errlen);

/*
 * td_cluster_open - what every cluster command does first: read the secret
 * (td_cluster_read_secret; on failure "tide CMD: message" goes to stderr)
 * and fill cfg's cluster id and secret (td_cluster_net_config). Returns 0
 * with *secret and *len (td_cluster_free_secret them), or 2, the usage
 * exit status.
 */
int td_cluster_open(const char *cmd, const char *secret_file, td_net_config_t *cfg,
                    unsigned char **secret, size_t *len);

/* td_cluster_block_signals - block SIGINT and SIGTERM in the calling
 * thread and the threads it starts from now on, into *set, for a main
 * loop that takes them with sigtimedwait. */
void td_cluster_block_signals(sigset_t *set);

/* td_cluster_free_secret - wipe and free a secret (NULL: no-op). */
void td_cluster_free_secret(unsigned char *secret, size_t len);

/*
 * td_cluster_net_config - fill cfg's cluster id (a BLAKE2b hash of the
 * secret) and secret; the callbacks are the caller's.
 */
void td_cluster_net_config(td_net_config_t *cfg, const unsigned char *secret, size_t len);

/*
 * td_cluster_parse_address - "host:port" or "host" (port dflt) into host
 * (an IPv4 address) and *port. Returns 0, or TD_EINVAL.
 */
int td_cluster_parse_address(const char *s, int dflt, char *host, size_t hostlen, int *port);

/* td_cluster_parse_duration - "500ms", "10s", "2m", "1h" (or a bare
 * number of ms) into *ms. Returns 0, or TD_EINVAL. */
int td_cluster_parse_duration(const char *s, int64_t *ms);

/*
 * td_cluster_send - send msg (a JSON object; its reference is taken) on
 * p's control channel. Returns 0, TD_ENOMEM, TD_EINVAL (larger than a
 * frame) or TD_ECANCELED (p closed).
 */
int td_cluster_send(td_net_peer_t *p, json_t *msg);

/* Length of a shipped file's content name: hex BLAKE2b-256, with its NUL. */
#define TD_CLUSTER_HASH_HEX 65

/* td_cluster_is_hash - whether s is a content name (64 lowercase hex). */
int td_cluster_is_hash(const char *s);

/*
 * td_cluster_hash_file - the content name of the file at path (the hex
 * BLAKE2b-256 of its bytes, into hex) and its size in bytes. Returns 0 or
 * -errno.
 */
int td_cluster_hash_file(const char *path, char hex[TD_CLUSTER_HASH_HEX], uint64_t *size);

/*
 * td_cluster_send_file - send the file at path to p as "file" messages
 * (docs/PROTOCOL.md) of at most 512 KiB of content each, base64, tagged
 * with tag (the asking deployment) and hash (its content name); a file
 * that cannot be read (path NULL: unknown) is answered by one message
 * with an "error". Returns 0, or a code when p is closed.
 */
int td_cluster_send_file(td_net_peer_t *p, const char *tag, const char *hash, const char *path);

/*
 * td_cluster_store_chunk - store a "file" message's bytes into
 * dir/<hash>.<tag>.part at its offset; with the last one, check the whole
 * file's content against hash and rename it to dir/<hash>. Returns 1 when
 * the file is complete, 0 when more is to come, or a negative code with a
 * message in err (an "error" message, a malformed one, a write failure,
 * content that does not match its name: the part file is removed).
 */
int td_cluster_store_chunk(const char *dir, json_t *msg, char *err, size_t errlen);

/* td_cluster_parse - the message of a frame (its wire type, channel and
 * payload): NULL unless it is a DATA frame of the control channel holding
 * a JSON object with a string "type", which *type receives. */
json_t *td_cluster_parse(uint8_t frame_type, uint32_t channel, const unsigned char *payload,
                         size_t len, const char **type);

/*
 * td_cluster_spec_encode - the job spec as JSON, with the command line's
 * defaults (host.h) the subtask VMs must see. NULL: out of memory.
 */
json_t *td_cluster_spec_encode(const td_job_spec_t *spec);

/* A spec decoded from JSON: spec points into root (kept referenced). */
typedef struct td_cluster_spec {
  td_job_spec_t spec;
  td_ckpt_config_t checkpoint;
  json_t *root;
  const char **args;
  td_job_operator_t *operators;
  int *parallelism;
  td_job_edge_t *edges;
  const char **expected;
  unsigned char *job_info;
  td_host_defaults_t defaults;
} td_cluster_spec_t;

/*
 * td_cluster_spec_decode - decode td_cluster_spec_encode's JSON into out
 * (the defaults become the spec's host_defaults). Returns 0, or
 * TD_EINVAL with a message in err.
 */
int td_cluster_spec_decode(json_t *j, td_cluster_spec_t *out, char *err, size_t errlen);

/* td_cluster_spec_free - free what decode made (not out itself). */
void td_cluster_spec_free(td_cluster_spec_t *s);

/*
 * td_jobmanager_main / td_taskmanager_main - `tide jobmanager` and `tide
 * taskmanager` (argv[0] is the subcommand). Return the exit status: 0 on
 * SIGINT/SIGTERM, 2 on usage errors (usage printed), 1 otherwise.
 */
int td_jobmanager_main(int argc, char **argv);
int td_taskmanager_main(int argc, char **argv);

/*
 * td_cluster_list - `tide list --jobmanager ADDR --secret-file F`: print
 * the task managers and jobs the job manager knows. Returns 0, or 1 with
 * a message on stderr.
 */
int td_cluster_list(const char *jobmanager, const char *secret_file);

/*
 * td_cluster_find_job - the control endpoint (host:port) of job id, which
 * the job manager at `jobmanager` runs, into rest: `tide savepoint/stop/
 * cancel --jobmanager`. Returns 0, or the exit status with a message on
 * stderr (1: no such job or no answer, 2: a bad address or secret).
 */
int td_cluster_find_job(const char *jobmanager, const char *secret_file, const char *id,
                        char *rest, size_t restlen);

/*
 * td_cluster_submit - `tide run --detached --jobmanager`: ship the script
 * (its text; stored content-addressed by the job manager) with args (the
 * run options and "--" job arguments, n_args of them), the code it loads
 * (files: [{kind, name, path}, ...] as lua/tide/ship.lua records them;
 * their contents go too, stored by content) and this directory to the
 * job manager, which starts the job's master process there (tide run
 * --jobmanager itself, its log in the job manager's work directory; its
 * require and load_module resolve to the shipped copies).
 * Prints the job id on stdout. Returns 0, or the exit status (1: the job
 * manager could not start it, with the master's first lines; 2: usage).
 */
int td_cluster_submit(const char *jobmanager, const char *secret_file, const char *script,
                      const char *const *args, int n_args, json_t *files);

/*
 * td_cluster_master_configure - make this process a job master: core.execute
 * runs jobs on the cluster of the job manager at `jobmanager` (host:port),
 * authenticating with the secret in secret_file; rest: this process's
 * control endpoint (shown by tide list). Returns 0, or a code with err.
 */
int td_cluster_master_configure(const char *jobmanager, const char *secret_file,
                                const char *rest, char *err, size_t errlen);

/* td_cluster_master_enabled - td_cluster_master_configure succeeded. */
int td_cluster_master_enabled(void);

/*
 * td_cluster_master_begin - before td_job_start of spec: take slots for
 * its subtasks from the job manager (waiting up to 30 s for enough free
 * ones), connect to their task managers and set spec->cluster. Returns 0,
 * or a code with err (not enough slots, a task manager unreachable).
 */
int td_cluster_master_begin(td_job_spec_t *spec, char *err, size_t errlen);

/* td_cluster_master_end - after td_job_free: release the slots and the
 * connections of the attempt. */
void td_cluster_master_end(void);

#endif
