/* test_kafka.c - core/kafka.c against an in-process librdkafka mock
 * cluster: metadata, offsets, produce and consume of known records with
 * their partitions, offsets, timestamps and keys, partition ends, group
 * commits, the errors (unknown topic, bad property, unreachable brokers),
 * and the transaction calls (which the 2.0 mock only pretends to honour:
 * docs/CONNECTORS.md). */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <string.h>

#include "kafka.h"
#include "testlib.h"

static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mock;
static char boot[256];

/* a mock cluster of 1 broker with topic t of 2 partitions */
static void start(void) {
  char err[256];
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  rd_kafka_conf_set(c, "log_level", "0", err, sizeof err);
  mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
  mock = rd_kafka_mock_cluster_new(mock_rk, 1);
  rd_kafka_mock_topic_create(mock, "t", 2, 1);
  snprintf(boot, sizeof boot, "%s", rd_kafka_mock_cluster_bootstraps(mock));
}

static void stop(void) {
  rd_kafka_mock_cluster_destroy(mock);
  rd_kafka_destroy(mock_rk);
}

static td_kafka_t *client(int producer, const char *k2, const char *v2) {
  const char *conf[] = {"bootstrap.servers", boot, "log_level", "0", k2, v2};
  char err[512];
  td_kafka_t *k = td_kafka_new(producer, conf, k2 ? 3 : 2, err, sizeof err);
  if (!k) fprintf(stderr, "  %s\n", err);
  return k;
}

TD_TEST(test_produce_consume) {
  start();
  char err[512];
  td_kafka_t *p = client(1, "enable.idempotence", "true");
  TD_CHECK(p != NULL);
  /* keyed records: one key, one partition */
  for (int i = 0; i < 10; i++) {
    char v[16];
    snprintf(v, sizeof v, "v%d", i);
    TD_CHECK_INT(td_kafka_produce(p, "t", i % 2 ? "odd" : "even", i % 2 ? 3 : 4, v, strlen(v), err, sizeof err), 0);
  }
  TD_CHECK_INT(td_kafka_flush(p, 10000, err, sizeof err), 0);
  td_kafka_close(p);

  td_kafka_t *c = client(0, "group.id", "g");
  int32_t ids[8];
  TD_CHECK_INT(td_kafka_partitions(c, "t", 5000, ids, 8, err, sizeof err), 2);
  TD_CHECK_INT(ids[0], 0);
  TD_CHECK_INT(ids[1], 1);
  int64_t lo = -2, hi = -2, hi0 = 0;
  TD_CHECK_INT(td_kafka_watermarks(c, "t", 0, 5000, &lo, &hi0, err, sizeof err), 0);
  TD_CHECK_INT(td_kafka_watermarks(c, "t", 1, 5000, &lo, &hi, err, sizeof err), 0);
  TD_CHECK_INT(lo, 0);
  TD_CHECK_INT(hi0 + hi, 10);
  const char *topics[] = {"t", "t"};
  int32_t parts[] = {0, 1};
  int64_t offs[] = {0, 0};
  TD_CHECK_INT(td_kafka_assign(c, 2, topics, parts, offs, err, sizeof err), 0);
  int got = 0, eofs = 0, next[2] = {0, 0};
  const char *key_of[2] = {NULL, NULL};
  for (int tries = 0; tries < 200 && eofs < 2; tries++) {
    td_kafka_msg_t m;
    int rc = td_kafka_poll(c, 100, &m, err, sizeof err);
    TD_CHECK(rc >= 0);
    if (rc <= 0) continue;
    if (m.eof) {
      eofs++;
      continue;
    }
    TD_CHECK_STR(m.topic, "t");
    TD_CHECK_INT(m.offset, next[m.partition]++); /* in order, none skipped */
    TD_CHECK(m.timestamp > 0);
    char key[8] = {0};
    memcpy(key, m.key, m.key_len < 7 ? m.key_len : 7);
    if (!key_of[m.partition]) key_of[m.partition] = strcmp(key, "odd") == 0 ? "odd" : "even";
    TD_CHECK_STR(key, key_of[m.partition]);
    got++;
  }
  TD_CHECK_INT(got, 10);
  TD_CHECK_INT(eofs, 2);
  /* committed offsets: none, then what was committed */
  int64_t off = 0;
  TD_CHECK_INT(td_kafka_committed(c, "t", 0, 5000, &off, err, sizeof err), 0);
  TD_CHECK_INT(off, -1);
  int64_t done[] = {next[0], next[1]};
  TD_CHECK_INT(td_kafka_commit(c, 2, topics, parts, done, err, sizeof err), 0);
  for (int tries = 0; tries < 50 && off != next[1]; tries++) {
    td_kafka_msg_t m;
    td_kafka_poll(c, 20, &m, err, sizeof err); /* serves the async commit */
    TD_CHECK_INT(td_kafka_committed(c, "t", 1, 5000, &off, err, sizeof err), 0);
  }
  TD_CHECK_INT(off, next[1]);
  TD_CHECK(td_kafka_fatal(c) == NULL);
  td_kafka_close(c);
  stop();
}

TD_TEST(test_errors) {
  start();
  char err[512];
  int32_t ids[4];
  td_kafka_t *c = client(0, "group.id", "g");
  TD_CHECK_INT(td_kafka_partitions(c, "nosuch", 5000, ids, 4, err, sizeof err), -1);
  TD_CHECK_STR(err, "unknown topic 'nosuch'");
  td_kafka_close(c);
  const char *bad[] = {"no.such.property", "1"};
  TD_CHECK(td_kafka_new(0, bad, 1, err, sizeof err) == NULL);
  TD_CHECK(strstr(err, "property 'no.such.property' = '1'") != NULL);
  const char *down[] = {"bootstrap.servers", "127.0.0.1:1", "log_level", "0"};
  c = td_kafka_new(0, down, 2, err, sizeof err);
  TD_CHECK(c != NULL);
  TD_CHECK_INT(td_kafka_partitions(c, "t", 300, ids, 4, err, sizeof err), -1);
  TD_CHECK(strstr(err, "cannot read the cluster's metadata within 300 ms") != NULL);
  td_kafka_close(c);
  stop();
}

TD_TEST(test_transactions) {
  start();
  char err[512];
  td_kafka_t *p = client(1, "transactional.id", "tx");
  TD_CHECK_INT(td_kafka_txn_init(p, 10000, err, sizeof err), 0);
  TD_CHECK_INT(td_kafka_txn_begin(p, err, sizeof err), 0);
  TD_CHECK_INT(td_kafka_produce(p, "t", NULL, 0, "a", 1, err, sizeof err), 0);
  TD_CHECK_INT(td_kafka_txn_send_offset(p, "marker", "t", 0, 5, 10000, err, sizeof err), 0);
  TD_CHECK_INT(td_kafka_txn_commit(p, 10000, err, sizeof err), 0);
  TD_CHECK_INT(td_kafka_txn_begin(p, err, sizeof err), 0);
  TD_CHECK_INT(td_kafka_produce(p, "t", NULL, 0, "b", 1, err, sizeof err), 0);
  TD_CHECK_INT(td_kafka_txn_abort(p, 10000, err, sizeof err), 0);
  /* a second producer with the same id fences the first */
  td_kafka_t *q = client(1, "transactional.id", "tx");
  TD_CHECK_INT(td_kafka_txn_init(q, 10000, err, sizeof err), 0);
  td_kafka_close(q);
  td_kafka_close(p);
  stop();
}

TD_TEST_MAIN(test_produce_consume, test_errors, test_transactions)
