/*
 * chunkcache.h - compiled Lua modules shared by the VMs of a process.
 *
 * Every subtask runs its own VM, and each VM requires the tide library
 * (about 14,000 lines of Lua) and the job's own modules: parsed once per
 * VM, that was 51% of a p1 job's start-up instructions and 73% of a p2
 * one's. With the cache, the first VM to require a module compiles it from
 * its file and keeps its bytecode (lua_dump, debug information kept: error
 * messages and tracebacks name file:line as before); the others load that
 * bytecode. Entries are keyed by path and the file's identity (device,
 * inode, size, modification time in ns), so an edited file compiles again.
 */
#ifndef TD_CHUNKCACHE_H
#define TD_CHUNKCACHE_H

#include "luacompat.h"

/*
 * td_chunkcache_install - put the cache's searcher into L's package
 * searchers (package.loaders on LuaJIT), right after the preload searcher,
 * before the standard Lua file searcher. It finds a module on package.path
 * as that searcher does (package.searchpath) and returns the same loader
 * arguments (the chunk, the file's path); a module it does not find is
 * left to the standard searchers and their "module not found" message. A
 * file that does not compile raises the standard searcher's message
 * ("error loading module 'M' from file 'F': ..."). Call after
 * luaL_openlibs. Thread-safe: VMs on any thread share the cache.
 */
void td_chunkcache_install(lua_State *L);

#endif
