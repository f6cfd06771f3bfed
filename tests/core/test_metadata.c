/*
 * test_metadata.c - _metadata, state file identities and td_meta_verify,
 * the one check `tide verify` and recovery apply (state/metadata.h).
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "metadata.h"
#include "testlib.h"
#include "tmpdir.h"

typedef struct fx {
  char root[512];
  char chk[600]; /* root/chk-7 */
  char old[600]; /* root/chk-6 */
} fx_t;

/* A state file DIR/NAME for checkpoint id of job, holding text. */
static int write_state(const char *dir, const char *name, int64_t id, uint32_t flags,
                       const char *job, const char *text) {
  td_snapshot_writer_t *w;
  char err[256];
  int rc = td_snapshot_writer_open(&w, NULL, dir, name, TD_SNAPSHOT_KIND_STATE, err, sizeof err);
  if (rc) return 0;
  rc = td_meta_identity_write(w, id, flags, job, err, sizeof err);
  if (rc == 0) rc = td_snapshot_write_section(w, 1, text, strlen(text), err, sizeof err);
  if (rc == 0) rc = td_snapshot_writer_commit(w, err, sizeof err);
  if (rc) td_snapshot_writer_abort(w);
  return rc == 0;
}

/* Checkpoint id of job "wc" in dir: a.state (subtask 0), b.state (subtask
 * 1, a final state) and their _metadata. */
static int make_checkpoint(const char *dir, int64_t id, const char *text) {
  if (mkdir(dir, 0777) != 0) return 0;
  if (!write_state(dir, "a.state", id, 0, "wc", text)) return 0;
  if (!write_state(dir, "b.state", 0, TD_STATE_FINAL, "wc", "final")) return 0;
  td_meta_file_t files[2] = {{"a.state", 0, 0, 0}, {"b.state", 1, 0, 0}};
  for (int i = 0; i < 2; i++)
    if (td_meta_stat_file(dir, files[i].name, &files[i].size, &files[i].crc) != 0) return 0;
  unsigned char subs[2] = {0, TD_META_SUB_FINISHED};
  unsigned char job[3] = {0x81, 0xa1, 'x'};
  td_meta_t m = {.id = id, .time_ms = 1700000000000, .flags = 0, .n_subtasks = 2,
                 .subtasks = subs, .job_name = "wc", .job_info = job, .job_info_len = 3,
                 .files = files, .n_files = 2};
  char err[512];
  return td_meta_write(dir, &m, err, sizeof err) == 0;
}

static int fx_init(fx_t *f) {
  memset(f, 0, sizeof *f);
  const char *t = getenv("TMPDIR");
  snprintf(f->root, sizeof f->root, "%s/tide-meta-XXXXXX", t && *t ? t : "/tmp");
  if (!mkdtemp(f->root)) {
    TD_CHECK(!"mkdtemp failed");
    return 0;
  }
  snprintf(f->chk, sizeof f->chk, "%s/chk-7", f->root);
  snprintf(f->old, sizeof f->old, "%s/chk-6", f->root);
  int ok = make_checkpoint(f->old, 6, "older") && make_checkpoint(f->chk, 7, "newer");
  TD_CHECK(ok);
  return ok;
}

static void fx_free(fx_t *f) { td_tmpdir_remove(f->root); }

typedef struct seen {
  int ok, bad, skipped;
  char bad_msgs[2048];
} seen_t;

static void count(const td_snapshot_check_t *c, void *ud) {
  seen_t *s = ud;
  if (c->status == TD_SNAPSHOT_CHECK_OK) s->ok++;
  if (c->status == TD_SNAPSHOT_CHECK_SKIPPED) s->skipped++;
  if (c->status == TD_SNAPSHOT_CHECK_BAD) {
    s->bad++;
    size_t n = strlen(s->bad_msgs);
    snprintf(s->bad_msgs + n, sizeof s->bad_msgs - n, "%s|", c->msg);
  }
}

static int verify(const char *dir, const char *job, seen_t *s, char *err, size_t len) {
  memset(s, 0, sizeof *s);
  return td_meta_verify(dir, job, count, s, NULL, err, len);
}

static void copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
  char buf[4096];
  size_t n;
  while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
  if (a) fclose(a);
  if (b) fclose(b);
}

/* Rewrite DIR/_metadata of checkpoint 7 of "wc" to record a.state and
 * b.state as they are now (sizes and CRCs match whatever they hold). */
static int rerecord(const char *dir) {
  td_meta_file_t files[2] = {{"a.state", 0, 0, 0}, {"b.state", 1, 0, 0}};
  for (int i = 0; i < 2; i++) td_meta_stat_file(dir, files[i].name, &files[i].size, &files[i].crc);
  unsigned char subs[2] = {0, 0}, job[1] = {0x80};
  td_meta_t m = {.id = 7, .n_subtasks = 2, .subtasks = subs, .job_name = "wc", .job_info = job,
                 .job_info_len = 1, .files = files, .n_files = 2};
  char err[512];
  return td_meta_write(dir, &m, err, sizeof err) == 0;
}

TD_TEST(test_metadata_roundtrip) {
  fx_t f;
  if (!fx_init(&f)) return;
  td_meta_t *m = NULL;
  char err[512];
  TD_CHECK_INT(td_meta_read(f.chk, &m, err, sizeof err), 0);
  if (m) {
    TD_CHECK_INT(m->id, 7);
    TD_CHECK_INT(m->time_ms, 1700000000000);
    TD_CHECK_INT(m->n_subtasks, 2);
    TD_CHECK_INT(m->subtasks[1], TD_META_SUB_FINISHED);
    TD_CHECK_STR(m->job_name, "wc");
    TD_CHECK_INT(m->job_info_len, 3);
    TD_CHECK_INT(m->n_files, 2);
    TD_CHECK_STR(m->files[1].name, "b.state");
    TD_CHECK_INT(m->files[1].subtask, 1);
    td_meta_free(m);
  }
  fx_free(&f);
}

TD_TEST(test_metadata_verify_sound) {
  fx_t f;
  if (!fx_init(&f)) return;
  char err[1024];
  seen_t s;
  FILE *fp = fopen(strcat(strcpy(err, f.chk), "/notes.txt"), "w");
  if (fp) fclose(fp);
  td_meta_t *m = NULL;
  TD_CHECK_INT(td_meta_verify(f.chk, "wc", NULL, NULL, &m, err, sizeof err), 0);
  TD_CHECK(m != NULL && m->id == 7);
  td_meta_free(m);
  TD_CHECK_INT(verify(f.chk, NULL, &s, err, sizeof err), 0);
  TD_CHECK_INT(s.ok, 3); /* _metadata, a.state, b.state */
  TD_CHECK_INT(s.skipped, 1); /* notes.txt is not part of it */
  TD_CHECK_INT(s.bad, 0);
  fx_free(&f);
}

TD_TEST(test_metadata_verify_empty_or_no_metadata) {
  fx_t f;
  if (!fx_init(&f)) return;
  char err[1024], empty[700];
  seen_t s;
  snprintf(empty, sizeof empty, "%s/chk-9", f.root);
  mkdir(empty, 0777);
  TD_CHECK_INT(verify(empty, NULL, &s, err, sizeof err), -ENOENT);
  TD_CHECK_INT(s.bad, 1);
  TD_CHECK(strstr(err, "_metadata: missing: not a completed checkpoint") != NULL);
  /* state files without _metadata: still not a checkpoint */
  char meta[800];
  snprintf(meta, sizeof meta, "%s/_metadata", f.chk);
  unlink(meta);
  TD_CHECK_INT(verify(f.chk, NULL, &s, err, sizeof err), -ENOENT);
  fx_free(&f);
}

TD_TEST(test_metadata_verify_missing_file) {
  fx_t f;
  if (!fx_init(&f)) return;
  char err[1024], p[800];
  seen_t s;
  snprintf(p, sizeof p, "%s/b.state", f.chk);
  unlink(p);
  TD_CHECK_INT(verify(f.chk, NULL, &s, err, sizeof err), -ENOENT);
  TD_CHECK_INT(s.bad, 1);
  TD_CHECK(strstr(s.bad_msgs, "b.state: missing (listed in _metadata)") != NULL);
  TD_CHECK(strstr(err, "1 of 2 files bad") != NULL);
  fx_free(&f);
}

/* chk-6/a.state copied over chk-7/a.state: another checkpoint's file. */
TD_TEST(test_metadata_verify_file_from_other_checkpoint) {
  fx_t f;
  if (!fx_init(&f)) return;
  char err[1024], from[800], to[800];
  seen_t s;
  snprintf(from, sizeof from, "%s/a.state", f.old);
  snprintf(to, sizeof to, "%s/a.state", f.chk);
  copy_file(from, to);
  TD_CHECK_INT(verify(f.chk, NULL, &s, err, sizeof err), TD_ECORRUPT);
  TD_CHECK_INT(s.bad, 1);
  TD_CHECK(strstr(s.bad_msgs, "a.state: not the file checkpoint 7 wrote") != NULL);
  /* even with a _metadata that matches its size and CRC, the identity
   * names checkpoint 6 */
  TD_CHECK(rerecord(f.chk));
  TD_CHECK_INT(verify(f.chk, NULL, &s, err, sizeof err), TD_ECORRUPT);
  TD_CHECK(strstr(s.bad_msgs, "a.state: written for checkpoint 6, not 7") != NULL);
  fx_free(&f);
}

TD_TEST(test_metadata_verify_other_job) {
  fx_t f;
  if (!fx_init(&f)) return;
  char err[1024];
  seen_t s;
  TD_CHECK_INT(verify(f.chk, "other", &s, err, sizeof err), TD_ECORRUPT);
  TD_CHECK(strstr(err, "checkpoint of job 'wc', not 'other'") != NULL);
  /* a state file of another job, with a _metadata that records it */
  TD_CHECK(write_state(f.chk, "a.state", 7, 0, "wc2", "newer"));
  TD_CHECK(rerecord(f.chk));
  TD_CHECK_INT(verify(f.chk, NULL, &s, err, sizeof err), TD_ECORRUPT);
  TD_CHECK(strstr(s.bad_msgs, "a.state: written for job 'wc2', not 'wc'") != NULL);
  fx_free(&f);
}

TD_TEST(test_metadata_verify_flipped_byte) {
  fx_t f;
  if (!fx_init(&f)) return;
  char err[1024], p[800];
  seen_t s;
  snprintf(p, sizeof p, "%s/a.state", f.chk);
  FILE *fp = fopen(p, "r+b");
  if (fp) {
    fseek(fp, 40, SEEK_SET);
    int ch = fgetc(fp);
    fseek(fp, 40, SEEK_SET);
    fputc(ch ^ 1, fp);
    fclose(fp);
  }
  TD_CHECK_INT(verify(f.chk, NULL, &s, err, sizeof err), TD_ECORRUPT);
  TD_CHECK(strstr(s.bad_msgs, "CRC mismatch") != NULL);
  /* and a corrupt _metadata */
  snprintf(p, sizeof p, "%s/_metadata", f.chk);
  truncate(p, 20);
  TD_CHECK_INT(verify(f.chk, NULL, &s, err, sizeof err), TD_ECORRUPT);
  TD_CHECK_INT(s.bad, 1);
  fx_free(&f);
}

TD_TEST_MAIN(test_metadata_roundtrip, test_metadata_verify_sound,
             test_metadata_verify_empty_or_no_metadata, test_metadata_verify_missing_file,
             test_metadata_verify_file_from_other_checkpoint, test_metadata_verify_other_job,
             test_metadata_verify_flipped_byte)
