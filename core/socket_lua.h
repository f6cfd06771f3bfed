/*
 * socket_lua.h - TCP client sockets for the socket connectors
 * (env:socket_text_stream, stream:write_socket; Flink's
 * SocketTextStreamFunction and SocketClientSink). Compiles for Lua 5.4 and
 * LuaJIT (luacompat.h).
 *
 *   core.socket_connect(host, port) -> sock | nil, message
 *       a connected TCP socket (getaddrinfo: names, IPv4, IPv6)
 *   sock:read(timeout_ms) -> data | "" (nothing within timeout_ms) | nil
 *       (the peer closed) | nil, message (an error)
 *   sock:write(data) -> true | nil, message   all of data, blocking
 *   sock:close()                              (also __gc)
 */
#ifndef TD_SOCKET_LUA_H
#define TD_SOCKET_LUA_H

#include "luacompat.h"

/* td_socket_lua_open - add core.socket_connect to the table on top of the
 * stack. */
void td_socket_lua_open(lua_State *L);

#endif
