/*
 * luacompat.h - the Lua C API the host, the codec and the file readers
 * use, on Lua 5.4 and on LuaJIT 2.1 (its Lua 5.1 API with the 5.2 parts
 * LuaJIT adds). Built with -DTD_LUAJIT against LuaJIT's headers, the same
 * sources give the LuaJIT host's C side (its record path goes through FFI
 * instead: lua/tide/ffi.lua); without it, this header only includes Lua
 * 5.4's.
 *
 * Numbers on LuaJIT are doubles (docs/LUAJIT.md): a number is an integer
 * when it is integral and below 2^53 in magnitude, as tide.compat says;
 * the sentinels +-2^63 (tide.compat's MAX_INT / MIN_INT, and what
 * INT64_MAX and INT64_MIN become when pushed) convert to INT64_MAX and
 * INT64_MIN when they cross into C as integers.
 */
#ifndef TD_LUACOMPAT_H
#define TD_LUACOMPAT_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#ifdef TD_LUAJIT
#include <luajit.h>
#include <math.h>
#include <stdint.h>

#define TD_LUA_RELEASE LUAJIT_VERSION
/* after a job script's syntax error: most likely Lua 5.4 syntax */
#define TD_LUA_SYNTAX_HINT \
  " (LuaJIT reads Lua 5.1 syntax with LuaJIT's extensions, not Lua 5.4's: " \
  "no //, bit operators or <const>/<close>; see docs/LUAJIT.md)"

typedef uint64_t lua_Unsigned;
#define LUA_MININTEGER INT64_MIN
#define LUA_MAXINTEGER INT64_MAX
#ifndef LUAMOD_API
#define LUAMOD_API LUALIB_API
#endif

/* Whether n is an integer as Tide counts them on LuaJIT (see above); *out
 * receives it, the sentinels clamped. */
static inline int td_num_int(lua_Number n, lua_Integer *out) {
  /* exactly the sentinels: 1e300 and inf stay floats */
  if (n == 9223372036854775808.0) {
    *out = INT64_MAX;
    return 1;
  }
  if (n == -9223372036854775808.0) {
    *out = INT64_MIN;
    return 1;
  }
  if (n != floor(n) || fabs(n) >= 9007199254740992.0) return 0;
  *out = (lua_Integer)n;
  return 1;
}

static inline int td_lua_isinteger(lua_State *L, int i) {
  lua_Integer v = 0;
  return lua_type(L, i) == LUA_TNUMBER && td_num_int(lua_tonumber(L, i), &v);
}

static inline lua_Integer td_lua_tointegerx(lua_State *L, int i, int *isnum) {
  lua_Integer v = 0;
  int ok = lua_type(L, i) == LUA_TNUMBER && td_num_int(lua_tonumber(L, i), &v);
  if (isnum) *isnum = ok;
  return ok ? v : 0;
}

static inline lua_Integer td_lual_checkinteger(lua_State *L, int arg) {
  lua_Number n = luaL_checknumber(L, arg);
  lua_Integer v = 0;
  if (!td_num_int(n, &v)) luaL_argerror(L, arg, "number has no integer representation");
  return v;
}

static inline lua_Integer td_lual_optinteger(lua_State *L, int arg, lua_Integer def) {
  return lua_isnoneornil(L, arg) ? def : td_lual_checkinteger(L, arg);
}

static inline int td_lua_absindex(lua_State *L, int i) {
  return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
}

#define lua_isinteger(L, i) td_lua_isinteger(L, i)
#define lua_tointegerx(L, i, p) td_lua_tointegerx(L, i, p)
#define lua_tointeger(L, i) td_lua_tointegerx(L, i, NULL)
#define luaL_checkinteger(L, a) td_lual_checkinteger(L, a)
#define luaL_optinteger(L, a, d) td_lual_optinteger(L, a, d)
#define lua_absindex(L, i) td_lua_absindex(L, i)
#define lua_newuserdatauv(L, size, nuv) lua_newuserdata(L, size)
#define lua_rawlen(L, i) lua_objlen(L, i)
#define luaL_len(L, i) ((lua_Integer)lua_objlen(L, i))
/* the 5.4 getters return the type of what they pushed */
#define lua_rawgeti(L, i, n) (lua_rawgeti(L, i, n), lua_type(L, -1))
#define lua_getfield(L, i, k) (lua_getfield(L, i, k), lua_type(L, -1))
#define lua_gettable(L, i) (lua_gettable(L, i), lua_type(L, -1))
#define lua_gc(L, what) lua_gc(L, what, 0)

/* td_lua_preload - package.preload[name] = fn. */
static inline void td_lua_preload(lua_State *L, const char *name, lua_CFunction fn) {
  lua_getfield(L, LUA_GLOBALSINDEX, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, fn);
  lua_setfield(L, -2, name);
  lua_pop(L, 2);
}

#else /* Lua 5.4 */

#define TD_LUA_RELEASE LUA_RELEASE
#define TD_LUA_SYNTAX_HINT ""

static inline void td_lua_preload(lua_State *L, const char *name, lua_CFunction fn) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, fn);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

#endif
/* td_lua_setfuncs - set the functions of fns (a NULL-terminated luaL_Reg
 * array) as fields of the table on top of the stack, without upvalues. */
static inline void td_lua_setfuncs(lua_State *L, const luaL_Reg *fns) {
  for (const luaL_Reg *r = fns; r->name; r++) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, -2, r->name);
  }
}

/* td_lua_class - create the metatable tname (once per VM) of a userdata
 * type: __index the table of methods, __gc the function gc. The stack is
 * left as it was. */
static inline void td_lua_class(lua_State *L, const char *tname, const luaL_Reg *methods,
                                lua_CFunction gc) {
  if (luaL_newmetatable(L, tname)) {
    lua_newtable(L);
    td_lua_setfuncs(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}

#endif
