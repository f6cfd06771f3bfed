/* kafka.c - Tide's Kafka client over librdkafka (kafka.h). */
#include "kafka.h"

#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct td_kafka {
  rd_kafka_t *rk;
  int producer;
  int all_down;          /* error_cb saw every broker down */
  char fatal[512];       /* a fatal error, or "" */
  char delivery[512];    /* the first failed delivery since the last flush */
  rd_kafka_message_t *m; /* the record td_kafka_poll handed out */
};

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -1;
}

static void error_cb(rd_kafka_t *rk, int code, const char *reason, void *opaque) {
  td_kafka_t *k = opaque;
  if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
    k->all_down = 1;
  } else if (code == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[256];
    rd_kafka_fatal_error(rk, buf, sizeof buf);
    snprintf(k->fatal, sizeof k->fatal, "fatal Kafka error: %s", buf);
  }
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  td_kafka_t *k = opaque;
  if (m->err && !k->delivery[0])
    snprintf(k->delivery, sizeof k->delivery, "a record to topic '%s' was not delivered: %s",
             rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
}

static int set(rd_kafka_conf_t *c, const char *name, const char *value, char *err, size_t errlen) {
  char buf[256];
  if (rd_kafka_conf_set(c, name, value, buf, sizeof buf) != RD_KAFKA_CONF_OK)
    return fail(err, errlen, "property '%s' = '%s': %s", name, value, buf);
  return 0;
}

td_kafka_t *td_kafka_new(int producer, const char *const *conf, int n, char *err, size_t errlen) {
  td_kafka_t *k = calloc(1, sizeof *k);
  rd_kafka_conf_t *c = rd_kafka_conf_new();
  if (!k || !c) {
    fail(err, errlen, "out of memory");
    goto bad;
  }
  k->producer = producer;
  if (!producer && (set(c, "enable.auto.commit", "false", err, errlen) ||
                    set(c, "enable.partition.eof", "true", err, errlen) ||
                    set(c, "enable.auto.offset.store", "false", err, errlen)))
    goto bad;
  for (int i = 0; i < n; i++)
    if (set(c, conf[2 * i], conf[2 * i + 1], err, errlen)) goto bad;
  rd_kafka_conf_set_opaque(c, k);
  rd_kafka_conf_set_error_cb(c, error_cb);
  if (producer) rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
  char buf[512];
  k->rk = rd_kafka_new(producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER, c, buf, sizeof buf);
  if (!k->rk) {
    fail(err, errlen, "%s", buf);
    goto bad;
  }
  if (!producer) rd_kafka_poll_set_consumer(k->rk);
  return k;
bad:
  if (c) rd_kafka_conf_destroy(c);
  free(k);
  return NULL;
}

void td_kafka_close(td_kafka_t *k) {
  if (!k) return;
  if (k->m) rd_kafka_message_destroy(k->m);
  if (!k->producer) rd_kafka_consumer_close(k->rk);
  rd_kafka_destroy(k->rk);
  free(k);
}

const char *td_kafka_fatal(td_kafka_t *k) {
  if (k->fatal[0]) return k->fatal;
  return k->all_down ? "every Kafka broker is down or unreachable" : NULL;
}

static const rd_kafka_metadata_topic_t *find_topic(const struct rd_kafka_metadata *md, const char *topic) {
  for (int i = 0; i < md->topic_cnt; i++)
    if (strcmp(md->topics[i].topic, topic) == 0) return &md->topics[i];
  return NULL;
}

/* every topic's metadata (asking for one topic would auto-create it on
 * brokers that allow it) */
static int metadata(td_kafka_t *k, int timeout_ms, const struct rd_kafka_metadata **md, char *err, size_t errlen) {
  rd_kafka_resp_err_t e = rd_kafka_metadata(k->rk, 1, NULL, md, timeout_ms);
  if (e)
    return fail(err, errlen, "cannot read the cluster's metadata within %d ms (brokers unreachable?): %s",
                timeout_ms, rd_kafka_err2str(e));
  return 0;
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

int td_kafka_partitions(td_kafka_t *k, const char *topic, int timeout_ms, int32_t *out, int max, char *err,
                        size_t errlen) {
  const struct rd_kafka_metadata *md;
  if (metadata(k, timeout_ms, &md, err, errlen)) return -1;
  const rd_kafka_metadata_topic_t *t = find_topic(md, topic);
  int n = -1;
  if (!t || t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
    fail(err, errlen, "unknown topic '%s'", topic);
  else if (t->err)
    fail(err, errlen, "topic '%s': %s", topic, rd_kafka_err2str(t->err));
  else {
    n = t->partition_cnt;
    for (int i = 0; i < n && i < max; i++) out[i] = t->partitions[i].id;
    qsort(out, (size_t)(n < max ? n : max), sizeof *out, cmp_i32);
  }
  rd_kafka_metadata_destroy(md);
  return n;
}

int td_kafka_topics(td_kafka_t *k, int timeout_ms, void (*fn)(const char *, void *), void *arg, char *err,
                    size_t errlen) {
  const struct rd_kafka_metadata *md;
  if (metadata(k, timeout_ms, &md, err, errlen)) return -1;
  for (int i = 0; i < md->topic_cnt; i++)
    if (!md->topics[i].err && strncmp(md->topics[i].topic, "__", 2) != 0) fn(md->topics[i].topic, arg);
  rd_kafka_metadata_destroy(md);
  return 0;
}

int td_kafka_watermarks(td_kafka_t *k, const char *topic, int32_t partition, int timeout_ms, int64_t *low,
                        int64_t *high, char *err, size_t errlen) {
  rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(k->rk, topic, partition, low, high, timeout_ms);
  if (e) return fail(err, errlen, "offsets of %s/%d: %s", topic, (int)partition, rd_kafka_err2str(e));
  return 0;
}

/* a list of one partition; its offset set */
static rd_kafka_topic_partition_list_t *one(const char *topic, int32_t partition, int64_t offset) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
  return l;
}

/* the error of the list's only partition, after the call's own */
static int one_result(rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t *l, int64_t *offset, const char *what,
                      char *err, size_t errlen) {
  rd_kafka_topic_partition_t *p = &l->elems[0];
  if (!e) e = p->err;
  int rc = 0;
  if (e)
    rc = fail(err, errlen, "%s of %s/%d: %s", what, p->topic, (int)p->partition, rd_kafka_err2str(e));
  else
    *offset = p->offset < 0 ? -1 : p->offset;
  rd_kafka_topic_partition_list_destroy(l);
  return rc;
}

int td_kafka_offset_for_time(td_kafka_t *k, const char *topic, int32_t partition, int64_t ts, int timeout_ms,
                             int64_t *offset, char *err, size_t errlen) {
  rd_kafka_topic_partition_list_t *l = one(topic, partition, ts);
  return one_result(rd_kafka_offsets_for_times(k->rk, l, timeout_ms), l, offset, "the offset for a timestamp", err,
                    errlen);
}

int td_kafka_committed(td_kafka_t *k, const char *topic, int32_t partition, int timeout_ms, int64_t *offset,
                       char *err, size_t errlen) {
  rd_kafka_topic_partition_list_t *l = one(topic, partition, RD_KAFKA_OFFSET_INVALID);
  return one_result(rd_kafka_committed(k->rk, l, timeout_ms), l, offset, "the committed offset", err, errlen);
}

static rd_kafka_topic_partition_list_t *list_of(int n, const char *const *topics, const int32_t *partitions,
                                                const int64_t *offsets) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
  for (int i = 0; i < n; i++) rd_kafka_topic_partition_list_add(l, topics[i], partitions[i])->offset = offsets[i];
  return l;
}

int td_kafka_assign(td_kafka_t *k, int n, const char *const *topics, const int32_t *partitions,
                    const int64_t *offsets, char *err, size_t errlen) {
  rd_kafka_topic_partition_list_t *l = list_of(n, topics, partitions, offsets);
  rd_kafka_resp_err_t e = rd_kafka_assign(k->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (e) return fail(err, errlen, "cannot assign partitions: %s", rd_kafka_err2str(e));
  return 0;
}

int td_kafka_poll(td_kafka_t *k, int timeout_ms, td_kafka_msg_t *m, char *err, size_t errlen) {
  if (k->m) {
    rd_kafka_message_destroy(k->m);
    k->m = NULL;
  }
  if (k->fatal[0]) return fail(err, errlen, "%s", k->fatal);
  rd_kafka_message_t *r = rd_kafka_consumer_poll(k->rk, timeout_ms);
  if (!r) return 0;
  memset(m, 0, sizeof *m);
  if (r->err && r->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    if (r->rkt)
      fail(err, errlen, "%s/%d: %s", rd_kafka_topic_name(r->rkt), (int)r->partition, rd_kafka_message_errstr(r));
    else
      fail(err, errlen, "%s", rd_kafka_message_errstr(r));
    rd_kafka_message_destroy(r);
    return -1;
  }
  k->all_down = 0;
  k->m = r;
  m->topic = rd_kafka_topic_name(r->rkt);
  m->partition = r->partition;
  m->offset = r->offset;
  m->eof = r->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
  if (!m->eof) {
    rd_kafka_timestamp_type_t tt;
    m->timestamp = rd_kafka_message_timestamp(r, &tt);
    m->key = r->key;
    m->key_len = r->key_len;
    m->value = r->payload;
    m->value_len = r->len;
  }
  return 1;
}

static int commit(td_kafka_t *k, int n, const char *const *topics, const int32_t *partitions,
                  const int64_t *offsets, int async, char *err, size_t errlen) {
  if (n == 0) return 0;
  rd_kafka_topic_partition_list_t *l = list_of(n, topics, partitions, offsets);
  rd_kafka_resp_err_t e = rd_kafka_commit(k->rk, l, async);
  rd_kafka_topic_partition_list_destroy(l);
  if (e) return fail(err, errlen, "cannot commit offsets: %s", rd_kafka_err2str(e));
  return 0;
}

int td_kafka_commit(td_kafka_t *k, int n, const char *const *topics, const int32_t *partitions,
                    const int64_t *offsets, char *err, size_t errlen) {
  return commit(k, n, topics, partitions, offsets, 1, err, errlen);
}

int td_kafka_commit_sync(td_kafka_t *k, int n, const char *const *topics, const int32_t *partitions,
                         const int64_t *offsets, char *err, size_t errlen) {
  return commit(k, n, topics, partitions, offsets, 0, err, errlen);
}

static int pending_failure(td_kafka_t *k, char *err, size_t errlen) {
  if (k->fatal[0]) return fail(err, errlen, "%s", k->fatal);
  if (k->delivery[0]) {
    fail(err, errlen, "%s", k->delivery);
    k->delivery[0] = '\0';
    return -1;
  }
  return 0;
}

int td_kafka_produce(td_kafka_t *k, const char *topic, const char *key, size_t key_len, const char *value,
                     size_t value_len, char *err, size_t errlen) {
  if (pending_failure(k, err, errlen)) return -1;
  for (;;) {
    rd_kafka_resp_err_t e =
        rd_kafka_producev(k->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                          RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_END);
    if (!e) break;
    if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
      return fail(err, errlen, "cannot produce to topic '%s': %s", topic, rd_kafka_err2str(e));
    rd_kafka_poll(k->rk, 100);
    if (pending_failure(k, err, errlen)) return -1;
  }
  rd_kafka_poll(k->rk, 0);
  return 0;
}

int td_kafka_flush(td_kafka_t *k, int timeout_ms, char *err, size_t errlen) {
  rd_kafka_resp_err_t e = rd_kafka_flush(k->rk, timeout_ms);
  if (pending_failure(k, err, errlen)) return -1;
  if (e) return fail(err, errlen, "records not acknowledged within %d ms: %s", timeout_ms, rd_kafka_err2str(e));
  return 0;
}

static int txn_result(rd_kafka_error_t *e, const char *what, char *err, size_t errlen) {
  if (!e) return 0;
  fail(err, errlen, "%s: %s", what, rd_kafka_error_string(e));
  rd_kafka_error_destroy(e);
  return -1;
}

int td_kafka_txn_init(td_kafka_t *k, int timeout_ms, char *err, size_t errlen) {
  return txn_result(rd_kafka_init_transactions(k->rk, timeout_ms), "cannot initialize transactions", err, errlen);
}

int td_kafka_txn_begin(td_kafka_t *k, char *err, size_t errlen) {
  return txn_result(rd_kafka_begin_transaction(k->rk), "cannot begin a transaction", err, errlen);
}

int td_kafka_txn_commit(td_kafka_t *k, int timeout_ms, char *err, size_t errlen) {
  if (pending_failure(k, err, errlen)) return -1;
  return txn_result(rd_kafka_commit_transaction(k->rk, timeout_ms), "cannot commit the transaction", err, errlen);
}

int td_kafka_txn_abort(td_kafka_t *k, int timeout_ms, char *err, size_t errlen) {
  k->delivery[0] = '\0';
  return txn_result(rd_kafka_abort_transaction(k->rk, timeout_ms), "cannot abort the transaction", err, errlen);
}

int td_kafka_txn_send_offset(td_kafka_t *k, const char *group, const char *topic, int32_t partition,
                             int64_t offset, int timeout_ms, char *err, size_t errlen) {
  rd_kafka_consumer_group_metadata_t *g = rd_kafka_consumer_group_metadata_new(group);
  rd_kafka_topic_partition_list_t *l = one(topic, partition, offset);
  rd_kafka_error_t *e = rd_kafka_send_offsets_to_transaction(k->rk, l, g, timeout_ms);
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_consumer_group_metadata_destroy(g);
  return txn_result(e, "cannot add the checkpoint marker to the transaction", err, errlen);
}
