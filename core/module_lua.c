/*
 * module_lua.c - the Lua binding of C modules (see module_lua.h).
 *
 *   core.module_load(path) -> {name =, version =, path =, abi =, ops =
 *     {{name =, kind =, max_fanout =, snapshot =}, ...}} | nil, message
 *     (snapshot: the operator has a snapshot callback, state of its own)
 *   core.module_chain([task]) -> chain: the module operators of this
 *     subtask's task (task: core.task_handle(), nil in a test harness)
 *
 * chain methods (node and boundary indexes 0-based, edges 1-based):
 *   add(path, op, spec) -> node        spec {uid, name, job, subtask,
 *                                      parallelism, max_parallelism, key}
 *   to_node(from, to), to_edge(from, edge [, key]), to_discard(from),
 *   to_boundary(from) -> b             wiring (raise on bad arguments)
 *   open(node, config), restore(node, bytes), rescale(node, bytes) (an
 *   old subtask's snapshot at another parallelism), push(node, buf, n [, ts
 *   [, keys]]), poll(node, timeout), read(node, max), watermark(node, wm),
 *   finish(node), pre_commit(node, id), commit(node, id), snapshot(node)
 *     -> their results, or nil, message, failed node (-1: none),
 *        cancelled (the job failed under this subtask: no message)
 *   take(b, buf, ts) -> n, has_ts      boundary b's records decoded into
 *                                      buf[1..n] (timestamps into ts) and
 *                                      removed
 *   close()                            (also __gc)
 * push, poll, read, watermark and finish return first how many boundaries
 * hold records (the caller takes them); poll returns that, then the
 * poll's result (0 end, 1 batch, 2 timeout), edge, event, value.
 */
#include "module_lua.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "error.h"
#include "modchain.h"
#include "module.h"

#define CHAIN_MT "tide.modchain"

typedef struct lchain {
  td_modchain_t *c;
  td_wbuf_t data, keys; /* push: encoded records and keys */
  uint32_t *ends, *kends, *off;
  int64_t *ts;
  int cap;
} lchain_t;

static lchain_t *check_chain(lua_State *L) {
  lchain_t *lc = luaL_checkudata(L, 1, CHAIN_MT);
  if (!lc->c) luaL_error(L, "module chain is closed");
  return lc;
}

static int chain_gc(lua_State *L) {
  lchain_t *lc = luaL_checkudata(L, 1, CHAIN_MT);
  td_modchain_free(lc->c);
  lc->c = NULL;
  td_wbuf_destroy(&lc->data);
  td_wbuf_destroy(&lc->keys);
  free(lc->ends);
  free(lc->kends);
  free(lc->off);
  free(lc->ts);
  lc->ends = lc->kends = lc->off = NULL;
  lc->ts = NULL;
  return 0;
}

/* nil, message, failed node, cancelled */
static int failure(lua_State *L, lchain_t *lc, int rc) {
  lua_pushnil(L);
  if (rc == TD_ECANCELED) {
    lua_pushliteral(L, "cancelled");
    lua_pushinteger(L, -1);
    lua_pushboolean(L, 1);
  } else {
    lua_pushstring(L, td_modchain_error(lc->c));
    lua_pushinteger(L, td_modchain_failed(lc->c));
    lua_pushboolean(L, 0);
  }
  return 4;
}

static int node_arg(lua_State *L, int i) { return (int)luaL_checkinteger(L, i); }

/* ---- loading ---- */

static int l_module_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  td_module_t *m;
  char err[1024];
  int rc = td_module_load(&m, path, err, sizeof err);
  if (rc) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_createtable(L, 0, 5);
  lua_pushstring(L, td_module_name(m));
  lua_setfield(L, -2, "name");
  lua_pushstring(L, td_module_version(m));
  lua_setfield(L, -2, "version");
  lua_pushstring(L, td_module_path(m));
  lua_setfield(L, -2, "path");
  char abi[32];
  snprintf(abi, sizeof abi, "%u.%u", td_module_abi(m) >> 16, td_module_abi(m) & 0xffff);
  lua_pushstring(L, abi);
  lua_setfield(L, -2, "abi");
  int n = td_module_op_count(m);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    const td_op_t *op = td_module_op(m, i);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, op->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, td_module_kind_name(op->kind));
    lua_setfield(L, -2, "kind");
    lua_pushinteger(L, op->max_fanout);
    lua_setfield(L, -2, "max_fanout");
    lua_pushboolean(L, op->snapshot != NULL);
    lua_setfield(L, -2, "snapshot");
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "ops");
  return 1;
}

/* ---- building ---- */

static int field_int(lua_State *L, int t, const char *k, int def) {
  lua_getfield(L, t, k);
  int v = lua_isnil(L, -1) ? def : (int)luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  return v;
}

static const char *field_str(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  const char *s = lua_tostring(L, -1); /* referenced by the spec table */
  lua_pop(L, 1);
  return s;
}

/* A key spec from the Lua value at idx: a field name, an index or nil. */
static void keyspec(lua_State *L, int idx, td_keyspec_t *k) {
  memset(k, 0, sizeof *k);
  if (lua_type(L, idx) == LUA_TSTRING) {
    k->kind = TD_KEY_FIELD;
    k->field = lua_tolstring(L, idx, &k->flen);
  } else if (lua_isinteger(L, idx)) {
    k->kind = TD_KEY_INDEX;
    k->index = lua_tointeger(L, idx);
  } else if (!lua_isnoneornil(L, idx)) {
    luaL_argerror(L, idx, "key field name or index expected");
  }
}

static void warn_stderr(void *ud, const char *line) {
  (void)ud;
  flockfile(stderr);
  fprintf(stderr, "tide: warning: %s\n", line);
  funlockfile(stderr);
}

static int chain_add(lua_State *L) {
  lchain_t *lc = check_chain(L);
  const char *path = luaL_checkstring(L, 2);
  const char *op = luaL_checkstring(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  td_module_t *m;
  char err[1024];
  if (td_module_load(&m, path, err, sizeof err) != 0) return luaL_error(L, "%s", err);
  td_module_spec_t spec = {
      .uid = field_str(L, 4, "uid"),
      .name = field_str(L, 4, "name"),
      .job = field_str(L, 4, "job"),
      .subtask = field_int(L, 4, "subtask", 0),
      .parallelism = field_int(L, 4, "parallelism", 1),
      .max_parallelism = field_int(L, 4, "max_parallelism", 128),
      .warn = warn_stderr,
  };
  lua_getfield(L, 4, "key");
  td_keyspec_t k;
  keyspec(L, lua_gettop(L), &k);
  int node;
  if (td_modchain_add(lc->c, m, op, &spec, &k, &node) != 0)
    return luaL_error(L, "%s", td_modchain_error(lc->c));
  lua_pushinteger(L, node);
  return 1;
}

static int wired(lua_State *L, int rc, const char *what) {
  if (rc == TD_ENOMEM) return luaL_error(L, "out of memory");
  if (rc) return luaL_error(L, "module chain: bad %s", what);
  return 0;
}

static int chain_to_node(lua_State *L) {
  lchain_t *lc = check_chain(L);
  return wired(L, td_modchain_to_node(lc->c, node_arg(L, 2), node_arg(L, 3)), "node target");
}

static int chain_to_edge(lua_State *L) {
  lchain_t *lc = check_chain(L);
  td_keyspec_t k;
  keyspec(L, 4, &k);
  return wired(L, td_modchain_to_edge(lc->c, node_arg(L, 2), (int)luaL_checkinteger(L, 3) - 1, &k),
               "edge target");
}

static int chain_to_discard(lua_State *L) {
  lchain_t *lc = check_chain(L);
  return wired(L, td_modchain_to_discard(lc->c, node_arg(L, 2)), "discard target");
}

static int chain_to_boundary(lua_State *L) {
  lchain_t *lc = check_chain(L);
  int b;
  wired(L, td_modchain_to_boundary(lc->c, node_arg(L, 2), &b), "boundary");
  lua_pushinteger(L, b);
  return 1;
}

/* ---- running ---- */

static int done(lua_State *L, lchain_t *lc, int rc) {
  if (rc < 0) return failure(L, lc, rc);
  lua_pushinteger(L, td_modchain_pending(lc->c));
  return 1;
}

static int chain_open(lua_State *L) {
  lchain_t *lc = check_chain(L);
  size_t len = 0;
  const char *cfg = luaL_optlstring(L, 3, NULL, &len);
  return done(L, lc, td_modchain_open(lc->c, node_arg(L, 2), cfg, len));
}

static int chain_restore(lua_State *L) {
  lchain_t *lc = check_chain(L);
  size_t len;
  const char *s = luaL_checklstring(L, 3, &len);
  return done(L, lc, td_modchain_restore(lc->c, node_arg(L, 2), s, len));
}

static int chain_rescale(lua_State *L) {
  lchain_t *lc = check_chain(L);
  size_t len;
  const char *s = luaL_checklstring(L, 3, &len);
  return done(L, lc, td_modchain_rescale(lc->c, node_arg(L, 2), s, len));
}

static int grow(lchain_t *lc, int n) {
  if (n <= lc->cap) return 0;
  int cap = lc->cap ? lc->cap : 1024;
  while (cap < n) cap *= 2;
  uint32_t *e = realloc(lc->ends, sizeof *e * (size_t)cap);
  if (e) lc->ends = e;
  uint32_t *k = e ? realloc(lc->kends, sizeof *k * (size_t)cap) : NULL;
  if (k) lc->kends = k;
  uint32_t *o = k ? realloc(lc->off, sizeof *o * (size_t)cap) : NULL;
  if (o) lc->off = o;
  int64_t *t = o ? realloc(lc->ts, sizeof *t * (size_t)cap) : NULL;
  if (!t) return TD_ENOMEM;
  lc->ts = t;
  lc->cap = cap;
  return 0;
}

/* push(node, buf, n [, ts [, keys]]): Lua values -> MessagePack -> node. */
static int chain_push(lua_State *L) {
  lchain_t *lc = check_chain(L);
  int node = node_arg(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  int n = (int)luaL_checkinteger(L, 4);
  int with_ts = lua_istable(L, 5), with_keys = lua_istable(L, 6);
  if (n <= 0) return done(L, lc, 0);
  if (grow(lc, n)) return luaL_error(L, "out of memory");
  lc->data.len = lc->keys.len = 0;
  char err[256];
  int any_ts = 0;
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 3, i + 1);
    int rc = td_codec_encode(L, -1, &lc->data, 0, err, sizeof err);
    lua_pop(L, 1);
    if (rc) return luaL_error(L, "cannot hand a record to a module operator: %s",
                              rc == TD_ECODEC ? err : td_strerror(rc));
    lc->off[i] = i ? lc->ends[i - 1] : 0;
    lc->ends[i] = (uint32_t)lc->data.len;
    lc->ts[i] = TD_NO_TIMESTAMP;
    if (with_ts) {
      lua_rawgeti(L, 5, i + 1);
      int isint;
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      if (isint) {
        lc->ts[i] = v;
        any_ts = 1;
      } else if (!lua_isnil(L, -1)) {
        return luaL_error(L, "a record's timestamp is not an integer (ms)");
      }
      lua_pop(L, 1);
    }
    if (with_keys) {
      lua_rawgeti(L, 6, i + 1);
      if (lua_isnil(L, -1)) return luaL_error(L, "key_by: the key of a record is nil");
      rc = td_codec_encode(L, -1, &lc->keys, 1, err, sizeof err);
      lua_pop(L, 1);
      if (rc) return luaL_error(L, "cannot hash a key: %s", rc == TD_ECODEC ? err : td_strerror(rc));
      lc->kends[i] = (uint32_t)lc->keys.len;
    }
  }
  td_batch_t b;
  memset(&b, 0, sizeof b);
  b.n = n;
  b.edge = -1;
  b.has_ts = any_ts;
  b.data = lc->data.data;
  b.off = lc->off;
  b.stop = lc->ends;
  b.ts = any_ts ? lc->ts : NULL;
  return done(L, lc, td_modchain_push(lc->c, node, &b, with_keys ? lc->keys.data : NULL,
                                      with_keys ? lc->kends : NULL));
}

static const char *const EVENTS[] = {NULL, "watermark", "idle", "active", "barrier"};

/* poll(node, timeout) -> pending, result, edge, event, value */
static int chain_poll(lua_State *L) {
  lchain_t *lc = check_chain(L);
  int node = node_arg(L, 2);
  int timeout = (int)luaL_optinteger(L, 3, -1);
  td_batch_t b;
  int rc = td_modchain_poll(lc->c, node, timeout, &b);
  if (rc < 0) return failure(L, lc, rc);
  lua_pushinteger(L, td_modchain_pending(lc->c));
  lua_pushinteger(L, rc);
  if (rc != TD_TASK_BATCH) return 2;
  if (b.edge >= 0) lua_pushinteger(L, b.edge + 1);
  else lua_pushnil(L);
  if (b.event > 0 && b.event < 5) {
    lua_pushstring(L, EVENTS[b.event]);
    if (b.event == TD_TASK_EV_WATERMARK || b.event == TD_TASK_EV_BARRIER) lua_pushinteger(L, b.value);
    else lua_pushnil(L);
  } else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  return 5;
}

/* read(node, max) -> pending, n, ended */
static int chain_read(lua_State *L) {
  lchain_t *lc = check_chain(L);
  int node = node_arg(L, 2);
  lua_Integer max = luaL_optinteger(L, 3, 1024);
  uint32_t n;
  int ended;
  int rc = td_modchain_read(lc->c, node, max > 0 && max < (1 << 20) ? (uint32_t)max : 1024, &n,
                            &ended);
  if (rc < 0) return failure(L, lc, rc);
  lua_pushinteger(L, td_modchain_pending(lc->c));
  lua_pushinteger(L, n);
  lua_pushboolean(L, ended);
  return 3;
}

static int chain_watermark(lua_State *L) {
  lchain_t *lc = check_chain(L);
  return done(L, lc, td_modchain_watermark(lc->c, node_arg(L, 2), luaL_checkinteger(L, 3)));
}

static int chain_finish(lua_State *L) {
  lchain_t *lc = check_chain(L);
  return done(L, lc, td_modchain_finish(lc->c, node_arg(L, 2)));
}

static int chain_pre_commit(lua_State *L) {
  lchain_t *lc = check_chain(L);
  return done(L, lc, td_modchain_pre_commit(lc->c, node_arg(L, 2), luaL_checkinteger(L, 3)));
}

static int chain_commit(lua_State *L) {
  lchain_t *lc = check_chain(L);
  return done(L, lc, td_modchain_commit(lc->c, node_arg(L, 2), luaL_checkinteger(L, 3)));
}

/* snapshot(node) -> bytes (in a snapshot child: the buffer is the arena's) */
static int chain_snapshot(lua_State *L) {
  lchain_t *lc = check_chain(L);
  td_wbuf_t out = {0};
  int rc = td_modchain_snapshot(lc->c, node_arg(L, 2), &out);
  if (rc) {
    td_wbuf_destroy(&out);
    return failure(L, lc, rc);
  }
  lua_pushlstring(L, out.data ? out.data : "", out.len);
  td_wbuf_destroy(&out);
  return 1;
}

/* take(b, buf, ts) -> n, has_ts */
static int chain_take(lua_State *L) {
  lchain_t *lc = check_chain(L);
  int b = (int)luaL_checkinteger(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  td_batch_t v;
  int n = td_modchain_boundary(lc->c, b, &v);
  for (int i = 0; i < n; i++) {
    size_t off = v.off[i];
    if (td_codec_decode(L, v.data, v.stop[i], &off) != 0) {
      td_modchain_clear(lc->c, b);
      return luaL_error(L, "a module operator emitted a record that is not one MessagePack value");
    }
    lua_rawseti(L, 3, i + 1);
    if (v.has_ts) {
      if (v.ts[i] != TD_NO_TIMESTAMP) lua_pushinteger(L, v.ts[i]);
      else lua_pushnil(L);
      lua_rawseti(L, 4, i + 1);
    }
  }
  int has_ts = v.has_ts;
  td_modchain_clear(lc->c, b);
  lua_pushinteger(L, n);
  lua_pushboolean(L, has_ts);
  return 2;
}

static int l_module_chain(lua_State *L) {
  td_task_t *task = lua_touserdata(L, 1);
  lchain_t *lc = lua_newuserdatauv(L, sizeof *lc, 0);
  memset(lc, 0, sizeof *lc);
  if (luaL_newmetatable(L, CHAIN_MT)) {
    static const luaL_Reg methods[] = {
        {"add", chain_add},           {"to_node", chain_to_node},
        {"to_edge", chain_to_edge},   {"to_discard", chain_to_discard},
        {"to_boundary", chain_to_boundary}, {"open", chain_open},
        {"restore", chain_restore},   {"rescale", chain_rescale},
        {"push", chain_push},
        {"poll", chain_poll},         {"read", chain_read},
        {"watermark", chain_watermark}, {"finish", chain_finish},
        {"pre_commit", chain_pre_commit}, {"commit", chain_commit},
        {"snapshot", chain_snapshot}, {"take", chain_take},
        {"close", chain_gc},          {NULL, NULL}};
    lua_pushcfunction(L, chain_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, chain_gc);
    lua_setfield(L, -2, "__close");
    lua_createtable(L, 0, sizeof methods / sizeof methods[0]);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_setmetatable(L, -2);
  if (td_modchain_new(&lc->c, task) != 0) return luaL_error(L, "out of memory");
  return 1;
}

void td_module_lua_open(lua_State *L) {
  lua_pushcfunction(L, l_module_load);
  lua_setfield(L, -2, "module_load");
  lua_pushcfunction(L, l_module_chain);
  lua_setfield(L, -2, "module_chain");
}
