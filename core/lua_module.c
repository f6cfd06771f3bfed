/* lua_module.c - `tide.core` as a Lua C module, so that a plain lua5.4
 * script with Tide's paths can require "tide" (see host.h). */
#include "luacompat.h"

#include "host.h"

LUAMOD_API int luaopen_tide_core(lua_State *L) { return td_host_openlib(L); }
