/*
 * postgres_lua.h - the PostgreSQL client of the PostgreSQL sink
 * (lua/tide/postgres.lua), over libpq: the only file that includes
 * <libpq-fe.h>. Both Lua hosts (5.4 and LuaJIT) open it.
 *
 *   core.pg_connect(conninfo) -> conn | nil, message
 *     a blocking connection (libpq's PQconnectdb: "host=... dbname=..." or
 *     a postgresql:// URI); the message is the server's or libpq's.
 *   conn:exec(sql [, params]) -> rows | nil, message, sqlstate
 *     one statement (PQexecParams; params an array of text values, a false
 *     element being SQL NULL, its length params.n when it has holes);
 *     rows is an array of rows, each an array of the columns' text values
 *     (false for NULL); {} for a statement that returns none. On an error
 *     the server's message and its SQLSTATE (e.g. "42P01": no such table).
 *   conn:close() (also on collection).
 */
#ifndef TD_POSTGRES_LUA_H
#define TD_POSTGRES_LUA_H

#include "luacompat.h"

/* td_postgres_lua_open - add core.pg_connect to the table on top of the
 * stack (the core module). */
void td_postgres_lua_open(lua_State *L);

#endif
