/* kafka_lua.c - the Lua binding of Tide's Kafka client (kafka_lua.h). */
#include "kafka_lua.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"

#define KAFKA_MT "tide.kafka"
#define MAX_PARTS 65536

typedef struct lk {
  td_kafka_t *k;
} lk_t;

static td_kafka_t *check(lua_State *L) {
  lk_t *c = luaL_checkudata(L, 1, KAFKA_MT);
  if (!c->k) luaL_error(L, "kafka: the client is closed");
  return c->k;
}

/* nil, err: the failure convention of the binding */
static int failed(lua_State *L, const char *err) {
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}

static int ok_or(lua_State *L, int rc, const char *err) {
  if (rc < 0) return failed(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_new(lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  int producer = strcmp(kind, "producer") == 0;
  luaL_argcheck(L, producer || strcmp(kind, "consumer") == 0, 1, "'consumer' or 'producer' expected");
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_newtable(L); /* 3: the names and values as strings, alive until the end */
  int n = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "kafka: property names must be strings");
    lua_getglobal(L, "tostring");
    lua_insert(L, -2);
    lua_call(L, 1, 1);
    lua_rawseti(L, 3, 2 * n + 2);
    lua_pushvalue(L, -1);
    lua_rawseti(L, 3, 2 * n + 1);
    n++;
  }
  const char **conf = lua_newuserdatauv(L, sizeof(char *) * (size_t)(2 * n + 1), 0);
  for (int i = 0; i < 2 * n; i++) {
    lua_rawgeti(L, 3, i + 1);
    conf[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  char err[512];
  lk_t *c = lua_newuserdatauv(L, sizeof *c, 0);
  c->k = td_kafka_new(producer, conf, n, err, sizeof err);
  if (!c->k) return failed(L, err);
  luaL_setmetatable(L, KAFKA_MT);
  return 1;
}

static int l_close(lua_State *L) {
  lk_t *c = luaL_checkudata(L, 1, KAFKA_MT);
  td_kafka_close(c->k);
  c->k = NULL;
  return 0;
}

static int l_fatal(lua_State *L) {
  const char *m = td_kafka_fatal(check(L));
  if (!m) return 0;
  lua_pushstring(L, m);
  return 1;
}

static int timeout_arg(lua_State *L, int i) {
  lua_Integer t = luaL_checkinteger(L, i);
  luaL_argcheck(L, t >= 0 && t <= 3600000, i, "timeout in ms expected");
  return (int)t;
}

static int32_t partition_arg(lua_State *L, int i) {
  lua_Integer p = luaL_checkinteger(L, i);
  luaL_argcheck(L, p >= 0 && p < MAX_PARTS, i, "partition expected");
  return (int32_t)p;
}

static int l_partitions(lua_State *L) {
  td_kafka_t *k = check(L);
  const char *topic = luaL_checkstring(L, 2);
  char err[512];
  int32_t *ids = malloc(sizeof *ids * MAX_PARTS);
  if (!ids) return luaL_error(L, "kafka: out of memory");
  int n = td_kafka_partitions(k, topic, timeout_arg(L, 3), ids, MAX_PARTS, err, sizeof err);
  if (n < 0) {
    free(ids);
    return failed(L, err);
  }
  lua_createtable(L, n, 0);
  for (int i = 0; i < n && i < MAX_PARTS; i++) {
    lua_pushinteger(L, ids[i]);
    lua_rawseti(L, -2, i + 1);
  }
  free(ids);
  return 1;
}

static void add_name(const char *name, void *arg) {
  lua_State *L = arg;
  lua_pushstring(L, name);
  lua_rawseti(L, -2, (int)lua_rawlen(L, -2) + 1);
}

static int l_topics(lua_State *L) {
  td_kafka_t *k = check(L);
  int t = timeout_arg(L, 2);
  char err[512];
  lua_newtable(L);
  if (td_kafka_topics(k, t, add_name, L, err, sizeof err) < 0) return failed(L, err);
  return 1;
}

static int l_watermarks(lua_State *L) {
  td_kafka_t *k = check(L);
  int64_t lo, hi;
  char err[512];
  if (td_kafka_watermarks(k, luaL_checkstring(L, 2), partition_arg(L, 3), timeout_arg(L, 4), &lo, &hi, err,
                          sizeof err) < 0)
    return failed(L, err);
  lua_pushinteger(L, (lua_Integer)lo);
  lua_pushinteger(L, (lua_Integer)hi);
  return 2;
}

static int offset_result(lua_State *L, int rc, int64_t off, const char *err) {
  if (rc < 0) return failed(L, err);
  lua_pushinteger(L, (lua_Integer)off);
  return 1;
}

static int l_offset_for_time(lua_State *L) {
  td_kafka_t *k = check(L);
  int64_t off = -1;
  char err[512];
  int rc = td_kafka_offset_for_time(k, luaL_checkstring(L, 2), partition_arg(L, 3),
                                    (int64_t)luaL_checkinteger(L, 4), timeout_arg(L, 5), &off, err, sizeof err);
  return offset_result(L, rc, off, err);
}

static int l_committed(lua_State *L) {
  td_kafka_t *k = check(L);
  int64_t off = -1;
  char err[512];
  int rc = td_kafka_committed(k, luaL_checkstring(L, 2), partition_arg(L, 3), timeout_arg(L, 4), &off, err,
                              sizeof err);
  return offset_result(L, rc, off, err);
}

/* the lists at 2, 3, 4 (topics, partitions, offsets) as C arrays in one
 * userdata left on the stack; returns their length */
static int lists(lua_State *L, const char ***topics, int32_t **parts, int64_t **offs) {
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  int n = (int)lua_rawlen(L, 2);
  size_t size = (sizeof(char *) + sizeof(int32_t) + sizeof(int64_t)) * (size_t)(n + 1);
  char *mem = lua_newuserdatauv(L, size, 0);
  *offs = (int64_t *)mem;
  *topics = (const char **)(mem + sizeof(int64_t) * (size_t)(n + 1));
  *parts = (int32_t *)(mem + (sizeof(int64_t) + sizeof(char *)) * (size_t)(n + 1));
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 2, i + 1);
    (*topics)[i] = lua_tostring(L, -1); /* kept alive by the table at 2 */
    lua_pop(L, 1);
    if (!(*topics)[i]) luaL_error(L, "kafka: topic %d is not a string", i + 1);
    lua_rawgeti(L, 3, i + 1);
    (*parts)[i] = (int32_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_rawgeti(L, 4, i + 1);
    (*offs)[i] = (int64_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  return n;
}

typedef int (*list_fn)(td_kafka_t *, int, const char *const *, const int32_t *, const int64_t *, char *, size_t);

/* a client call taking the lists at 2, 3, 4 */
static int with_lists(lua_State *L, list_fn fn) {
  td_kafka_t *k = check(L);
  const char **topics;
  int32_t *parts;
  int64_t *offs;
  int n = lists(L, &topics, &parts, &offs);
  char err[512];
  return ok_or(L, fn(k, n, topics, parts, offs, err, sizeof err), err);
}

static int l_assign(lua_State *L) { return with_lists(L, td_kafka_assign); }
static int l_commit(lua_State *L) {
  return with_lists(L, lua_toboolean(L, 5) ? td_kafka_commit_sync : td_kafka_commit);
}

static void push_tp(lua_State *L, const td_kafka_msg_t *m) {
  lua_pushfstring(L, "%s/%d", m->topic, (int)m->partition);
}

static void push_opt(lua_State *L, const char *s, size_t len) {
  if (s)
    lua_pushlstring(L, s, len);
  else
    lua_pushnil(L);
}

static int l_read(lua_State *L) {
  td_kafka_t *k = check(L);
  for (int i = 2; i <= 5; i++) luaL_checktype(L, i, LUA_TTABLE);
  lua_Integer max = luaL_checkinteger(L, 6);
  int timeout = timeout_arg(L, 7);
  int raw = lua_toboolean(L, 8);
  int n = 0, eofs = 0;
  char err[512];
  td_kafka_msg_t m;
  while (n < max) {
    int rc = td_kafka_poll(k, n == 0 && eofs == 0 ? timeout : 0, &m, err, sizeof err);
    if (rc < 0) return failed(L, err);
    if (rc == 0) break;
    if (m.eof) {
      if (eofs == 0) {
        lua_settop(L, 8);
        lua_newtable(L); /* 9: eofs */
      }
      push_tp(L, &m);
      lua_rawseti(L, 9, ++eofs);
      lua_pushinteger(L, (lua_Integer)m.offset);
      lua_rawseti(L, 9, ++eofs);
      continue;
    }
    n++;
    if (raw) {
      lua_createtable(L, 0, 6);
      lua_pushstring(L, m.topic);
      lua_setfield(L, -2, "topic");
      lua_pushinteger(L, m.partition);
      lua_setfield(L, -2, "partition");
      lua_pushinteger(L, (lua_Integer)m.offset);
      lua_setfield(L, -2, "offset");
      lua_pushinteger(L, (lua_Integer)m.timestamp);
      lua_setfield(L, -2, "timestamp");
      push_opt(L, m.key, m.key_len);
      lua_setfield(L, -2, "key");
      push_opt(L, m.value, m.value_len);
      lua_setfield(L, -2, "value");
    } else if (m.value) {
      lua_pushlstring(L, m.value, m.value_len);
    } else {
      lua_pushfstring(L, "the record at offset %d of %s/%d has no value (a tombstone): format 'text' needs one, "
                      "format 'raw' gives value = nil", (int)m.offset, m.topic, (int)m.partition);
      lua_pushnil(L);
      lua_insert(L, -2);
      return 2;
    }
    lua_rawseti(L, 2, n);
    lua_pushinteger(L, (lua_Integer)m.timestamp);
    lua_rawseti(L, 3, n);
    push_tp(L, &m);
    lua_rawseti(L, 4, n);
    lua_pushinteger(L, (lua_Integer)m.offset);
    lua_rawseti(L, 5, n);
  }
  lua_pushinteger(L, n);
  if (eofs)
    lua_pushvalue(L, 9);
  else
    lua_pushnil(L);
  return 2;
}

static int l_produce(lua_State *L) {
  td_kafka_t *k = check(L);
  const char *topic = luaL_checkstring(L, 2);
  int keyed = !lua_isnil(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_Integer n = luaL_checkinteger(L, 5);
  char err[512];
  for (lua_Integer i = 1; i <= n; i++) {
    size_t vlen, klen = 0;
    lua_rawgeti(L, 4, (int)i);
    const char *v = lua_tolstring(L, -1, &vlen);
    const char *key = NULL;
    if (keyed) {
      lua_rawgeti(L, 3, (int)i);
      key = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &klen) : NULL;
    }
    if (!v) return luaL_error(L, "kafka: value %d is not a string", (int)i);
    if (td_kafka_produce(k, topic, key, klen, v, vlen, err, sizeof err) < 0) return failed(L, err);
    lua_settop(L, 5);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* a client call of the form fn(k, timeout_ms, err, errlen) */
static int timed(lua_State *L, int (*fn)(td_kafka_t *, int, char *, size_t)) {
  td_kafka_t *k = check(L);
  char err[512];
  return ok_or(L, fn(k, timeout_arg(L, 2), err, sizeof err), err);
}

static int l_flush(lua_State *L) { return timed(L, td_kafka_flush); }
static int l_txn_init(lua_State *L) { return timed(L, td_kafka_txn_init); }
static int l_txn_commit(lua_State *L) { return timed(L, td_kafka_txn_commit); }
static int l_txn_abort(lua_State *L) { return timed(L, td_kafka_txn_abort); }

static int l_txn_begin(lua_State *L) {
  td_kafka_t *k = check(L);
  char err[512];
  return ok_or(L, td_kafka_txn_begin(k, err, sizeof err), err);
}

static int l_txn_send_offset(lua_State *L) {
  td_kafka_t *k = check(L);
  char err[512];
  return ok_or(L, td_kafka_txn_send_offset(k, luaL_checkstring(L, 2), luaL_checkstring(L, 3), partition_arg(L, 4),
                                           (int64_t)luaL_checkinteger(L, 5), timeout_arg(L, 6), err, sizeof err),
               err);
}

static const luaL_Reg methods[] = {
    {"partitions", l_partitions}, {"topics", l_topics},       {"watermarks", l_watermarks},
    {"offset_for_time", l_offset_for_time}, {"committed", l_committed}, {"assign", l_assign},
    {"commit", l_commit},         {"read", l_read},           {"produce", l_produce},
    {"flush", l_flush},           {"txn_init", l_txn_init},   {"txn_begin", l_txn_begin},
    {"txn_commit", l_txn_commit}, {"txn_abort", l_txn_abort}, {"txn_send_offset", l_txn_send_offset},
    {"fatal", l_fatal},           {"close", l_close},         {NULL, NULL}};

void td_kafka_lua_open(lua_State *L) {
  td_lua_class(L, KAFKA_MT, methods, l_close);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "kafka_new");
}
