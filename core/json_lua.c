/*
 * json_lua.c - Lua values to and from JSON through jansson (json_lua.h).
 */
#include "json_lua.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luacompat.h"

#define MAX_DEPTH 64
/* 2^53: on LuaJIT, integers at or beyond it are not exact doubles */
#define EXACT_LIMIT 9007199254740992.0

static void push_value(lua_State *L, json_t *v);

/* the (nil, message) failure return */
static int fail(lua_State *L, const char *message) {
  lua_pushnil(L);
  lua_pushstring(L, message);
  return 2;
}

static void push_integer(lua_State *L, json_int_t n) {
#ifdef TD_LUAJIT
  if ((double)n >= EXACT_LIMIT || (double)n <= -EXACT_LIMIT) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, n);
    lua_pushstring(L, buf);
    return;
  }
  lua_pushnumber(L, (lua_Number)n);
#else
  lua_pushinteger(L, (lua_Integer)n);
#endif
}

static void push_value(lua_State *L, json_t *v) {
  luaL_checkstack(L, 4, "json_decode: nested too deeply");
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    lua_createtable(L, 0, (int)json_object_size(v));
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e) {
      if (json_is_null(e)) continue;
      push_value(L, e);
      lua_setfield(L, -2, k);
    }
    break;
  }
  case JSON_ARRAY: {
    size_t n = json_array_size(v);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
      json_t *e = json_array_get(v, i);
      if (json_is_null(e)) continue;
      push_value(L, e);
      lua_rawseti(L, -2, (int)(i + 1));
    }
    break;
  }
  case JSON_STRING:
    lua_pushlstring(L, json_string_value(v), json_string_length(v));
    break;
  case JSON_INTEGER: push_integer(L, json_integer_value(v)); break;
  case JSON_REAL: lua_pushnumber(L, json_real_value(v)); break;
  case JSON_TRUE: lua_pushboolean(L, 1); break;
  case JSON_FALSE: lua_pushboolean(L, 0); break;
  default: lua_pushnil(L); break;
  }
}

static int l_json_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  json_error_t e;
  json_t *v = json_loadb(s, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
  if (!v) {
    char msg[256];
    snprintf(msg, sizeof msg, "bad JSON at column %d: %s", e.column, e.text);
    return fail(L, msg);
  }
  if (json_is_null(v)) {
    json_decref(v);
    return fail(L, "null is not a record");
  }
  push_value(L, v);
  json_decref(v);
  return 1;
}

/* the value at index i as a new jansson value, or NULL with err set */
static json_t *to_json(lua_State *L, int i, int depth, char *err, size_t errlen);

static json_t *number_to_json(lua_State *L, int i, char *err, size_t errlen) {
#ifndef TD_LUAJIT
  if (lua_isinteger(L, i)) return json_integer((json_int_t)lua_tointeger(L, i));
#endif
  double d = (double)lua_tonumber(L, i);
  if (isnan(d) || isinf(d)) {
    snprintf(err, errlen, "cannot write %s in JSON", isnan(d) ? "NaN" : "an infinity");
    return NULL;
  }
#ifdef TD_LUAJIT
  if (d == floor(d) && fabs(d) < EXACT_LIMIT) return json_integer((json_int_t)d);
#endif
  return json_real(d);
}

/* whether the table at index i has exactly the keys 1..n, n >= 1 */
static int is_array(lua_State *L, int i, size_t *n_out) {
  size_t n = (size_t)lua_rawlen(L, i), count = 0;
  if (n == 0) return 0;
  lua_pushnil(L);
  while (lua_next(L, i)) {
    lua_pop(L, 1);
    count++;
  }
  *n_out = n;
  return count == n;
}

static json_t *table_to_json(lua_State *L, int i, int depth, char *err, size_t errlen) {
  size_t n;
  if (is_array(L, i, &n)) {
    json_t *a = json_array();
    for (size_t k = 1; k <= n; k++) {
      lua_rawgeti(L, i, (int)k);
      json_t *e = to_json(L, lua_gettop(L), depth + 1, err, errlen);
      lua_pop(L, 1);
      if (!e) {
        json_decref(a);
        return NULL;
      }
      json_array_append_new(a, e);
    }
    return a;
  }
  json_t *o = json_object();
  lua_pushnil(L);
  while (lua_next(L, i)) {
    char kbuf[64];
    const char *k;
    size_t klen;
    if (lua_type(L, -2) == LUA_TSTRING) {
      k = lua_tolstring(L, -2, &klen);
    } else if (lua_type(L, -2) == LUA_TNUMBER) {
      lua_pushvalue(L, -2);
      json_t *kn = number_to_json(L, lua_gettop(L), err, errlen);
      lua_pop(L, 1);
      if (!kn) goto fail;
      if (json_is_integer(kn))
        snprintf(kbuf, sizeof kbuf, "%" JSON_INTEGER_FORMAT, json_integer_value(kn));
      else
        snprintf(kbuf, sizeof kbuf, "%.17g", json_real_value(kn));
      json_decref(kn);
      k = kbuf;
      klen = strlen(kbuf);
    } else {
      snprintf(err, errlen, "cannot write a %s key in JSON", luaL_typename(L, -2));
      goto fail;
    }
    json_t *e = to_json(L, lua_gettop(L), depth + 1, err, errlen);
    if (!e) goto fail;
    if (json_object_setn_new(o, k, klen, e)) {
      snprintf(err, errlen, "key '%s' is not UTF-8", k);
      goto fail;
    }
    lua_pop(L, 1);
  }
  return o;
fail:
  lua_pop(L, 2);
  json_decref(o);
  return NULL;
}

static json_t *to_json(lua_State *L, int i, int depth, char *err, size_t errlen) {
  switch (lua_type(L, i)) {
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, i, &len);
    json_t *v = json_stringn(s, len);
    if (!v) snprintf(err, errlen, "a string is not UTF-8");
    return v;
  }
  case LUA_TNUMBER: return number_to_json(L, i, err, errlen);
  case LUA_TBOOLEAN: return json_boolean(lua_toboolean(L, i));
  case LUA_TTABLE:
    if (depth >= MAX_DEPTH) {
      snprintf(err, errlen, "tables nested deeper than %d (a cycle?)", MAX_DEPTH);
      return NULL;
    }
    luaL_checkstack(L, 6, "json_encode");
    return table_to_json(L, i, depth, err, errlen);
  default:
    snprintf(err, errlen, "cannot write a %s value in JSON", luaL_typename(L, i));
    return NULL;
  }
}

static int l_json_encode(lua_State *L) {
  char err[256];
  luaL_checkany(L, 1);
  json_t *v = to_json(L, 1, 0, err, sizeof err);
  if (!v) return fail(L, err);
  char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  json_decref(v);
  if (!s) return fail(L, "out of memory encoding JSON");
  lua_pushstring(L, s);
  free(s);
  return 1;
}

static const luaL_Reg json_funcs[] = {
    {"json_decode", l_json_decode},
    {"json_encode", l_json_encode},
    {NULL, NULL}};

void td_json_lua_open(lua_State *L) { td_lua_setfuncs(L, json_funcs); }
