/*
 * module_lua.h - the Lua binding of C modules (module.h, modchain.h):
 * core.module_load and core.module_chain, which lua/tide/modules.lua
 * drives. The same source compiles for Lua 5.4 and LuaJIT (luacompat.h):
 * it is called once per batch, never per record, so the classic C API
 * serves both VMs.
 */
#ifndef TD_MODULE_LUA_H
#define TD_MODULE_LUA_H

#include "luacompat.h"

/* td_module_lua_open - add module_load and module_chain to the table at
 * the top of the stack (tide.core). */
void td_module_lua_open(lua_State *L);

#endif
