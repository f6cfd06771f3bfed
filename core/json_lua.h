/*
 * json_lua.h - JSON values to and from Lua values through jansson: the
 * codec of the JSON lines formats (env:read_json, stream:write_json). The
 * same source compiles for Lua 5.4 and LuaJIT (luacompat.h).
 *
 *   core.json_decode(text) -> value | nil, message
 *       one JSON value (an object, array, string, number, true or false)
 *       as a Lua value: objects are tables keyed by their names, arrays
 *       tables 1..n, null inside them nil (a hole), integers Lua integers
 *       on Lua 5.4; on LuaJIT an integer with |v| >= 2^53 becomes its
 *       digits as a string (docs/LUAJIT.md: never a rounded double, never
 *       int64 cdata). A top-level null, malformed text and an integer
 *       outside int64 are errors: message says why and at which column.
 *   core.json_encode(value) -> text | nil, message
 *       one line of compact JSON, object names sorted: a table whose keys
 *       are exactly 1..n (n >= 1) is an array, any other table an object
 *       (number keys written as their digits), the empty table {}; Lua
 *       integers (LuaJIT: integral doubles below 2^53) are JSON integers,
 *       other numbers reals. NaN, infinities, strings that are not UTF-8,
 *       other value types and tables nested deeper than 64 (cycles) are
 *       errors.
 */
#ifndef TD_JSON_LUA_H
#define TD_JSON_LUA_H

#include "luacompat.h"

/* td_json_lua_open - add core.json_decode and core.json_encode to the
 * table on top of the stack. */
void td_json_lua_open(lua_State *L);

#endif
