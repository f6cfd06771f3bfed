/*
 * test_task.c - the task engine (core/task.h) without a Lua VM: real jobs
 * (td_job_run) whose subtask bodies are C functions writing and reading
 * MessagePack with core/msgpack.h. A source emits numbered records with
 * timestamps, keys and watermarks over a hash edge; the receivers check
 * every record arrives exactly once at the subtask of its key group, the
 * timestamps, the watermarks (monotonic, ending with +inf); checkpoints
 * snapshot every subtask through the engine's fork, and _metadata then
 * verifies; broadcast, rebalance, td_task_emit_batch, rollback of a
 * record and errors are checked on the side.
 */
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "barrier.h"
#include "checkpoint.h"
#include "error.h"
#include "keygroup.h"
#include "metadata.h"
#include "msgpack.h"
#include "task.h"
#include "testlib.h"
#include "tmpdir.h"

#define N_RECORDS 20000
#define MAXP 128

typedef struct results {
  pthread_mutex_t mu;
  int seen[N_RECORDS];        /* how often record i arrived */
  int wrong_subtask, wrong_ts, bad_wm, bad_record;
  int64_t last_wm[4];         /* per receiving subtask */
  int final_wm[4];
  int barriers[4];            /* snapshots taken by receivers */
  int source_snapshots;
  int finals;                 /* the final checkpoint seen */
  char errors[1024];
} results_t;

static results_t R;
static int g_partition = TD_PART_HASH;
static int g_use_batch;       /* the source sends with td_task_emit_batch */
static int g_slow_us;         /* the source sleeps per batch */

static void err_note(const char *what, td_task_t *t) {
  pthread_mutex_lock(&R.mu);
  size_t n = strlen(R.errors);
  snprintf(R.errors + n, sizeof R.errors - n, "%s: %s; ", what, t ? td_task_error(t) : "");
  pthread_mutex_unlock(&R.mu);
}

/* Key of record i: the canonical MessagePack of i % 7 (an integer's
 * encoding is canonical). */
static size_t key_of(int i, char *buf) {
  td_wbuf_t k = {0};
  td_mp_write_int(&k, i % 7);
  size_t n = k.len;
  memcpy(buf, k.data, n);
  td_wbuf_destroy(&k);
  return n;
}

static void snapshot(td_task_t *t, int64_t id, const char *name) {
  int child = 0;
  int rc = td_task_snapshot(t, id, td_task_now_us(), &child);
  if (child) {
    char data[64];
    int n = snprintf(data, sizeof data, "state of %s at %lld", name, (long long)id);
    if (td_task_child_write(t, name, data, (size_t)n) != 0) td_task_child_exit(t, td_task_error(t));
    td_task_child_exit(t, NULL);
  }
  if (rc && rc != TD_ECANCELED) err_note("snapshot", t);
}

static void finish_and_wait(td_task_t *t, const char *name) {
  const char *names[1] = {name};
  const void *data[1] = {"final"};
  size_t lens[1] = {5};
  if (td_task_finished(t, 1, names, data, lens) != 0) err_note("finished", t);
  int64_t seen = 0, id;
  int final = 0;
  while (!final) {
    if (td_task_wait_checkpoint(t, seen, &id, &final) != 0) return;
    seen = id;
  }
  pthread_mutex_lock(&R.mu);
  R.finals++;
  pthread_mutex_unlock(&R.mu);
}

static void source(td_task_t *t) {
  char key[16];
  td_wbuf_t rec = {0}, all = {0};
  uint32_t ends[64], kends[64];
  int64_t ts[64];
  td_wbuf_t keys = {0};
  for (int i = 0; i < N_RECORDS;) {
    int64_t id;
    if (td_task_tick(t, &id) != 0) goto out;
    while (id) {
      pthread_mutex_lock(&R.mu);
      R.source_snapshots++;
      pthread_mutex_unlock(&R.mu);
      snapshot(t, id, "src-0.state");
      if (td_task_tick(t, &id) != 0) goto out;
    }
    int n = 0;
    all.len = keys.len = 0;
    for (; n < 64 && i < N_RECORDS; n++, i++) {
      size_t klen = key_of(i, key);
      if (g_use_batch) {
        td_mp_write_int(&all, i);
        ends[n] = (uint32_t)all.len;
        td_mp_write_raw(&keys, key, klen);
        kends[n] = (uint32_t)keys.len;
        ts[n] = 10 * (int64_t)i;
        continue;
      }
      rec.len = 0;
      td_mp_write_int(&rec, i);
      if (td_task_emit(t, 0, rec.data, rec.len, 10 * (int64_t)i, key, klen) != 0) goto out;
    }
    if (g_use_batch &&
        td_task_emit_batch(t, 0, all.data, ends, n, ts, g_partition == TD_PART_HASH ? keys.data : NULL,
                           g_partition == TD_PART_HASH ? kends : NULL) != 0)
      goto out;
    if (td_task_emit_watermark(t, 0, 10 * (int64_t)i - 1) != 0) goto out;
    if (g_slow_us) usleep((useconds_t)g_slow_us);
  }
  if (td_task_emit_watermark(t, 0, INT64_MAX) != 0 || td_task_finish(t) != 0) goto out;
  finish_and_wait(t, "src-0.state");
out:
  td_wbuf_destroy(&rec);
  td_wbuf_destroy(&all);
  td_wbuf_destroy(&keys);
}

static void receiver(td_task_t *t, int index, int parallelism) {
  char name[32];
  snprintf(name, sizeof name, "sink-%d.state", index);
  td_batch_t b;
  int r;
  while ((r = td_task_poll(t, -1, &b)) == TD_TASK_BATCH) {
    pthread_mutex_lock(&R.mu);
    for (int k = 0; k < b.n; k++) {
      const char *p = b.data + b.off[k];
      td_mp_item_t it;
      if (td_mp_read(&p, b.data + b.stop[k], &it) != 0 || it.type != TD_MP_INT || it.v.i < 0 ||
          it.v.i >= N_RECORDS || p != b.data + b.stop[k]) {
        R.bad_record++;
        continue;
      }
      int i = (int)it.v.i;
      R.seen[i]++;
      if (!b.has_ts || b.ts[k] != 10 * (int64_t)i) R.wrong_ts++;
      if (g_partition == TD_PART_HASH) {
        char key[16];
        size_t klen = key_of(i, key);
        int kg = td_keygroup_of(td_keygroup_hash(key, klen), MAXP);
        if (td_keygroup_subtask(kg, parallelism, MAXP) != index) R.wrong_subtask++;
      }
    }
    if (b.event == TD_TASK_EV_WATERMARK) {
      if (b.value <= R.last_wm[index]) R.bad_wm++;
      R.last_wm[index] = b.value;
      if (b.value == INT64_MAX) R.final_wm[index] = 1;
    }
    pthread_mutex_unlock(&R.mu);
    if (b.event == TD_TASK_EV_BARRIER) {
      pthread_mutex_lock(&R.mu);
      R.barriers[index]++;
      pthread_mutex_unlock(&R.mu);
      snapshot(t, b.value, name);
    }
  }
  if (r == TD_TASK_END) finish_and_wait(t, name);
  else if (r != TD_ECANCELED) err_note("poll", t);
}

static void body(td_subtask_t *st) {
  td_task_t *t;
  if (td_task_new(&t, st) != 0) {
    td_job_fail(st->job, "td_task_new failed");
    return;
  }
  if (st->task == 0) source(t);
  else receiver(t, st->index, st->parallelism);
  td_task_free(t);
}

static int run_job(int partition, int receivers, const td_ckpt_config_t *ck, int align_mode) {
  memset(&R, 0, sizeof R);
  pthread_mutex_init(&R.mu, NULL);
  for (int i = 0; i < 4; i++) R.last_wm[i] = INT64_MIN;
  g_partition = partition;
  static const char *args[1] = {"test"};
  int par[2] = {1, receivers};
  td_job_edge_t edge = {0, 1, (td_partition_t)partition};
  td_job_spec_t spec;
  memset(&spec, 0, sizeof spec);
  spec.name = "task test";
  spec.script = "test";
  spec.args = args;
  spec.n_args = 1;
  spec.fingerprint = "";
  spec.job_id = "0";
  spec.default_parallelism = 1;
  spec.max_parallelism = MAXP;
  spec.n_tasks = 2;
  spec.parallelism = par;
  spec.n_edges = 1;
  spec.edges = &edge;
  spec.checkpoint = ck;
  spec.align_mode = align_mode;
  spec.align_timeout_ms = 60000;
  spec.buffer_timeout_ms = 5;
  char err[1024] = "";
  int rc = td_job_run(&spec, body, err, sizeof err);
  if (rc) fprintf(stderr, "  job failed: %s\n", err);
  if (R.errors[0]) fprintf(stderr, "  errors: %s\n", R.errors);
  return rc;
}

static void check_delivery(int receivers, int copies) {
  int missing = 0, dup = 0;
  for (int i = 0; i < N_RECORDS; i++) {
    if (R.seen[i] < copies) missing++;
    if (R.seen[i] > copies) dup++;
  }
  TD_CHECK_INT(missing, 0);
  TD_CHECK_INT(dup, 0);
  TD_CHECK_INT(R.bad_record, 0);
  TD_CHECK_INT(R.wrong_ts, 0);
  TD_CHECK_INT(R.wrong_subtask, 0);
  TD_CHECK_INT(R.bad_wm, 0);
  for (int s = 0; s < receivers; s++) TD_CHECK_INT(R.final_wm[s], 1);
  TD_CHECK_STR(R.errors, "");
}

TD_TEST(test_task_hash_edge_delivers_every_record_once) {
  g_use_batch = 0;
  g_slow_us = 0;
  TD_CHECK_INT(run_job(TD_PART_HASH, 3, NULL, TD_ALIGN_EXACTLY_ONCE), 0);
  check_delivery(3, 1);
  TD_CHECK_INT(R.finals, 4); /* the final (file-less) checkpoint reached all */
}

TD_TEST(test_task_emit_batch_and_partitioners) {
  g_use_batch = 1;
  g_slow_us = 0;
  TD_CHECK_INT(run_job(TD_PART_HASH, 2, NULL, TD_ALIGN_EXACTLY_ONCE), 0);
  check_delivery(2, 1);
  TD_CHECK_INT(run_job(TD_PART_REBALANCE, 3, NULL, TD_ALIGN_EXACTLY_ONCE), 0);
  check_delivery(3, 1);
  TD_CHECK_INT(run_job(TD_PART_BROADCAST, 3, NULL, TD_ALIGN_EXACTLY_ONCE), 0);
  check_delivery(3, 3);
  g_use_batch = 0;
  TD_CHECK_INT(run_job(TD_PART_BROADCAST, 2, NULL, TD_ALIGN_EXACTLY_ONCE), 0);
  check_delivery(2, 2);
}

/* Checkpoints through the engine: sources inject, receivers snapshot at
 * their barriers (aligned and unaligned), forked children write the
 * files, and every completed checkpoint verifies with its expected files. */
static void checkpointed_run(int align_mode) {
  char root[256];
  const char *tmp = getenv("TMPDIR");
  snprintf(root, sizeof root, "%s/tide-task-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(root)) {
    TD_CHECK(!"mkdtemp");
    return;
  }
  char dir[300];
  snprintf(dir, sizeof dir, "%s/ck", root);
  static const char *const expected[3] = {"src-0.state", "sink-0.state", "sink-1.state"};
  td_ckpt_config_t ck = {.dir = dir, .interval_ms = 20, .timeout_ms = 60000, .max_concurrent = 1,
                         .retained = 100, .first_id = 1, .job_info = "x", .job_info_len = 1,
                         .expected = expected, .tolerable_failed = 0};
  g_use_batch = 0;
  g_slow_us = 1000; /* about a second in all: several checkpoints */
  TD_CHECK_INT(run_job(TD_PART_HASH, 2, &ck, align_mode), 0);
  check_delivery(2, 1);
  TD_CHECK(R.source_snapshots >= 3);
  TD_CHECK(R.barriers[0] >= 3 && R.barriers[1] >= 3);
  /* every completed checkpoint passes the check recovery applies */
  int verified = 0, final = 0;
  for (int id = 1; id < 1000; id++) {
    char chk[400], meta[450];
    snprintf(chk, sizeof chk, "%s/chk-%d", dir, id);
    snprintf(meta, sizeof meta, "%s/_metadata", chk);
    if (access(meta, F_OK) != 0) continue;
    char err[1024];
    td_meta_t *m = NULL;
    int rc = td_meta_verify(chk, "task test", NULL, NULL, &m, err, sizeof err);
    if (rc) fprintf(stderr, "  %s\n", err);
    TD_CHECK_INT(rc, 0);
    if (m) {
      verified++;
      TD_CHECK(m->n_files >= 3);
      if (m->flags & TD_META_FINAL) final = 1;
      td_meta_free(m);
    }
  }
  TD_CHECK(verified >= 3);
  TD_CHECK_INT(final, 1);
  td_tmpdir_remove(root);
}

TD_TEST(test_task_checkpoints_aligned) { checkpointed_run(TD_ALIGN_EXACTLY_ONCE); }

TD_TEST(test_task_checkpoints_unaligned) { checkpointed_run(TD_ALIGN_UNALIGNED); }

/* Errors: an edge that is not an output, a record undone. */
static void errors_body(td_subtask_t *st) {
  td_task_t *t;
  if (td_task_new(&t, st) != 0) return;
  if (st->task == 0) {
    td_wbuf_t *buf;
    TD_CHECK_INT(td_task_emit(t, 5, "\x01", 1, TD_NO_TIMESTAMP, NULL, 0), TD_EINVAL);
    TD_CHECK_STR(td_task_error(t), "edge 6 is not an output of this task");
    /* begun, half written, undone: nothing of it is sent */
    TD_CHECK_INT(td_task_record_begin(t, 0, NULL, 0, 42, &buf), 0);
    td_mp_write_str(buf, "half", 4);
    td_task_record_end(t, 0);
    TD_CHECK_INT(td_task_emit(t, 0, "\x07", 1, TD_NO_TIMESTAMP, NULL, 0), 0);
    TD_CHECK_INT(td_task_finish(t), 0);
  } else {
    td_batch_t b;
    int total = 0, r;
    while ((r = td_task_poll(t, -1, &b)) == TD_TASK_BATCH) {
      for (int k = 0; k < b.n; k++) {
        TD_CHECK_INT(b.stop[k] - b.off[k], 1);
        TD_CHECK_INT(b.data[b.off[k]], 7);
        TD_CHECK(!b.has_ts);
        total++;
      }
    }
    TD_CHECK_INT(r, TD_TASK_END);
    TD_CHECK_INT(total, 1);
  }
  td_task_free(t);
}

TD_TEST(test_task_errors_and_undone_record) {
  static const char *args[1] = {"test"};
  int par[2] = {1, 1};
  td_job_edge_t edge = {0, 1, TD_PART_FORWARD};
  td_job_spec_t spec;
  memset(&spec, 0, sizeof spec);
  spec.name = "errors";
  spec.script = "test";
  spec.args = args;
  spec.n_args = 1;
  spec.fingerprint = "";
  spec.job_id = "0";
  spec.max_parallelism = MAXP;
  spec.n_tasks = 2;
  spec.parallelism = par;
  spec.n_edges = 1;
  spec.edges = &edge;
  char err[512];
  TD_CHECK_INT(td_job_run(&spec, errors_body, err, sizeof err), 0);
}

TD_TEST_MAIN(test_task_hash_edge_delivers_every_record_once, test_task_emit_batch_and_partitioners,
             test_task_checkpoints_aligned, test_task_checkpoints_unaligned,
             test_task_errors_and_undone_record)
