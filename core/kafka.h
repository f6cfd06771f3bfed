/*
 * kafka.h - Tide's Kafka client: the one place that talks to librdkafka
 * (Lua-free; core/kafka_lua.c binds it for both VMs, lua/tide/kafka.lua
 * builds Flink's KafkaSource and KafkaSink on it).
 *
 * A td_kafka_t is a consumer or a producer. The consumer is assigned
 * explicit topic partitions at explicit offsets (no group rebalancing, as
 * Flink's KafkaSource assigns splits itself); its group, when it has one,
 * only receives committed offsets. The producer is idempotent
 * (enable.idempotence) or transactional (transactional.id).
 *
 * Every function that can fail returns 0 (or a count) on success and -1 on
 * failure with a message in err (errlen bytes, NUL-terminated). Timeouts
 * are in milliseconds. librdkafka's background threads do not survive
 * fork(): a snapshot child must not call these functions.
 */
#ifndef TD_KAFKA_H
#define TD_KAFKA_H

#include <stddef.h>
#include <stdint.h>

typedef struct td_kafka td_kafka_t;

/* One consumed record, valid until the next td_kafka_poll or close. */
typedef struct td_kafka_msg {
  const char *topic;
  int32_t partition;
  int64_t offset;
  int64_t timestamp; /* ms since the epoch; -1 when the record has none */
  const char *key;   /* NULL: no key */
  size_t key_len;
  const char *value; /* NULL: a tombstone (no value) */
  size_t value_len;
  int eof; /* 1: not a record but the end of the partition at offset */
} td_kafka_msg_t;

/*
 * td_kafka_new - a consumer (producer = 0) or a producer (1) configured by
 * conf: n pairs of librdkafka property names and values (conf[2i],
 * conf[2i+1]). Consumers get enable.auto.commit=false and
 * enable.partition.eof=true unless conf says otherwise. Returns NULL with
 * err on a bad property or value.
 */
td_kafka_t *td_kafka_new(int producer, const char *const *conf, int n, char *err, size_t errlen);

/* td_kafka_close - flush nothing, destroy the client (NULL: no-op). */
void td_kafka_close(td_kafka_t *k);

/*
 * td_kafka_fatal - the error that makes the client unusable, or NULL: a
 * fatal librdkafka error, or every broker down (error_cb's
 * __ALL_BROKERS_DOWN) since the last successful poll of a consumer.
 */
const char *td_kafka_fatal(td_kafka_t *k);

/*
 * td_kafka_partitions - the partition ids of topic (ascending) into
 * out[0..max-1]. Returns how many the topic has (may exceed max), or -1:
 * err says why (no metadata within timeout: brokers unreachable; unknown
 * topic).
 */
int td_kafka_partitions(td_kafka_t *k, const char *topic, int timeout_ms, int32_t *out, int max, char *err,
                        size_t errlen);

/*
 * td_kafka_topics - calls fn(name, arg) for every topic of the cluster
 * (internal topics starting with "__" excluded). Returns 0 or -1.
 */
int td_kafka_topics(td_kafka_t *k, int timeout_ms, void (*fn)(const char *name, void *arg), void *arg, char *err,
                    size_t errlen);

/* td_kafka_watermarks - a partition's low and high offsets (the next
 * offset to be written). Returns 0 or -1. */
int td_kafka_watermarks(td_kafka_t *k, const char *topic, int32_t partition, int timeout_ms, int64_t *low,
                        int64_t *high, char *err, size_t errlen);

/* td_kafka_offset_for_time - the first offset whose timestamp is >= ts
 * (ms), or -1 in *offset when there is none (Kafka's ListOffsets). */
int td_kafka_offset_for_time(td_kafka_t *k, const char *topic, int32_t partition, int64_t ts, int timeout_ms,
                             int64_t *offset, char *err, size_t errlen);

/* td_kafka_committed - the consumer group's committed offset of a
 * partition, or -1 in *offset when the group committed none. */
int td_kafka_committed(td_kafka_t *k, const char *topic, int32_t partition, int timeout_ms, int64_t *offset,
                       char *err, size_t errlen);

/* td_kafka_assign - the consumer reads exactly these n partitions from
 * these offsets (n = 0: none). */
int td_kafka_assign(td_kafka_t *k, int n, const char *const *topics, const int32_t *partitions,
                    const int64_t *offsets, char *err, size_t errlen);

/*
 * td_kafka_poll - the next record or partition end within timeout_ms.
 * Returns 1 (m filled), 0 (nothing yet), or -1 with err (a consumer
 * error: unknown topic or partition, offset out of range, broker failure).
 */
int td_kafka_poll(td_kafka_t *k, int timeout_ms, td_kafka_msg_t *m, char *err, size_t errlen);

/* td_kafka_commit - commit these offsets (the next offset to read) for the
 * consumer's group (monitoring: Flink's commit on checkpoint completion),
 * asynchronously (a failure shows in librdkafka's log only); and
 * td_kafka_commit_sync, which waits for the broker's answer (the last
 * commit before the client is closed). */
int td_kafka_commit(td_kafka_t *k, int n, const char *const *topics, const int32_t *partitions,
                    const int64_t *offsets, char *err, size_t errlen);
int td_kafka_commit_sync(td_kafka_t *k, int n, const char *const *topics, const int32_t *partitions,
                         const int64_t *offsets, char *err, size_t errlen);

/*
 * td_kafka_produce - queue a record for topic (partition chosen by
 * librdkafka's partitioner from the key; no key: sticky random). Waits
 * (serving delivery reports) while the local queue is full. Returns 0 or
 * -1 (unknown topic, a fatal producer error, or an earlier delivery
 * failure that td_kafka_flush has not reported yet).
 */
int td_kafka_produce(td_kafka_t *k, const char *topic, const char *key, size_t key_len, const char *value,
                     size_t value_len, char *err, size_t errlen);

/*
 * td_kafka_flush - wait until every queued record was acknowledged (acks
 * per the producer's conf). Returns 0, or -1 if it timed out or any record
 * since the last flush failed to be delivered (err names the first).
 */
int td_kafka_flush(td_kafka_t *k, int timeout_ms, char *err, size_t errlen);

/*
 * Transactions of a producer with transactional.id (librdkafka's
 * rd_kafka_*_transaction(s)): init fences earlier producers with the same
 * id and aborts what they left open; begin, commit (flushes first) and
 * abort one transaction; send_offsets adds, inside the open transaction,
 * an offset commit for consumer group `group` (how a sink records, in the
 * same atomic commit as its records, which checkpoint the transaction
 * belongs to). Each returns 0 or -1.
 */
int td_kafka_txn_init(td_kafka_t *k, int timeout_ms, char *err, size_t errlen);
int td_kafka_txn_begin(td_kafka_t *k, char *err, size_t errlen);
int td_kafka_txn_commit(td_kafka_t *k, int timeout_ms, char *err, size_t errlen);
int td_kafka_txn_abort(td_kafka_t *k, int timeout_ms, char *err, size_t errlen);
int td_kafka_txn_send_offset(td_kafka_t *k, const char *group, const char *topic, int32_t partition,
                             int64_t offset, int timeout_ms, char *err, size_t errlen);

#endif
