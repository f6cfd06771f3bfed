/*
 * kafka_lua.h - the Lua binding of Tide's Kafka client (kafka.h), which
 * lua/tide/kafka.lua drives. The same source compiles for Lua 5.4 and
 * LuaJIT (luacompat.h).
 *
 *   core.kafka_new(kind, conf) -> client | nil, message
 *       kind "consumer" or "producer"; conf {name = value} librdkafka
 *       properties (values converted with tostring)
 *   c:partitions(topic, timeout_ms) -> {ids ascending} | nil, message
 *   c:topics(timeout_ms) -> {names} | nil, message
 *   c:watermarks(topic, partition, timeout_ms) -> low, high | nil, message
 *   c:offset_for_time(topic, partition, ts_ms, timeout_ms) -> offset (-1:
 *       none) | nil, message
 *   c:committed(topic, partition, timeout_ms) -> offset (-1: none) | nil,
 *       message
 *   c:assign(topics, partitions, offsets) -> true | nil, message
 *   c:commit(topics, partitions, offsets [, sync]) -> true | nil, message
 *       (asynchronous unless sync)
 *   c:read(buf, ts, tps, offs, max, timeout_ms, raw) -> n, eofs | nil,
 *       message: up to max records into buf[1..n] (raw false: the value
 *       as a string, a record without value is an error; raw true: a
 *       table {topic, partition, offset, timestamp, key, value}), their
 *       timestamps into ts (ms, -1: none), their "topic/partition" into
 *       tps and offsets into offs; eofs: {"topic/partition", offset, ...}
 *       of partitions found at their end (or nil). Waits up to timeout_ms
 *       for the first record only.
 *   c:produce(topic, keys | nil, values, n) -> true | nil, message
 *       values[i] strings; keys[i] string or false (no key)
 *   c:flush(timeout_ms), c:txn_init(timeout_ms), c:txn_begin(),
 *   c:txn_commit(timeout_ms), c:txn_abort(timeout_ms),
 *   c:txn_send_offset(group, topic, partition, offset, timeout_ms)
 *       -> true | nil, message
 *   c:fatal() -> message | nil     (kafka.h's td_kafka_fatal)
 *   c:close()                      (also __gc)
 */
#ifndef TD_KAFKA_LUA_H
#define TD_KAFKA_LUA_H

#include "luacompat.h"

/* td_kafka_lua_open - add kafka_new to the table at the top of the stack
 * (tide.core). */
void td_kafka_lua_open(lua_State *L);

#endif
