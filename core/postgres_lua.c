/*
 * postgres_lua.c - the PostgreSQL client for Lua (postgres_lua.h).
 */
#include "postgres_lua.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#define PG_MT "tide.pg"

typedef struct {
  PGconn *conn;
} lpg_t;

/* The last line-free form of libpq's message (it ends with a newline). */
static void push_message(lua_State *L, const char *m) {
  size_t n = m ? strlen(m) : 0;
  while (n && (m[n - 1] == '\n' || m[n - 1] == ' ')) n--;
  lua_pushlstring(L, m ? m : "", n);
}

static int l_pg_connect(lua_State *L) {
  const char *info = luaL_checkstring(L, 1);
  PGconn *c = PQconnectdb(info);
  if (!c) {
    lua_pushnil(L);
    lua_pushliteral(L, "out of memory");
    return 2;
  }
  if (PQstatus(c) != CONNECTION_OK) {
    lua_pushnil(L);
    push_message(L, PQerrorMessage(c));
    PQfinish(c);
    return 2;
  }
  lpg_t *p = lua_newuserdatauv(L, sizeof *p, 0);
  p->conn = c;
  luaL_setmetatable(L, PG_MT);
  return 1;
}

static lpg_t *check_pg(lua_State *L) {
  lpg_t *p = luaL_checkudata(L, 1, PG_MT);
  if (!p->conn) luaL_error(L, "the PostgreSQL connection is closed");
  return p;
}

static int l_exec(lua_State *L) {
  lpg_t *p = check_pg(L);
  const char *sql = luaL_checkstring(L, 2);
  int n = 0;
  const char **vals = NULL;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "n");
    n = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : (int)lua_rawlen(L, 3);
    lua_pop(L, 1);
    luaL_argcheck(L, n >= 0 && n <= 65535, 3, "at most 65535 parameters");
    vals = n ? malloc((size_t)n * sizeof *vals) : NULL;
    if (n && !vals) return luaL_error(L, "out of memory");
    for (int i = 0; i < n; i++) {
      lua_rawgeti(L, 3, i + 1); /* held by the table while PQexecParams runs */
      int t = lua_type(L, -1);
      if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        vals[i] = lua_tostring(L, -1);
      } else if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
        vals[i] = NULL;
      } else {
        free(vals);
        return luaL_error(L, "parameter %d: a string, a number or false (NULL) expected, got %s", i + 1,
                          lua_typename(L, t));
      }
      lua_pop(L, 1);
    }
  }
  PGresult *r = PQexecParams(p->conn, sql, n, NULL, vals, NULL, NULL, 0);
  free(vals);
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    lua_pushnil(L);
    push_message(L, r ? PQresultErrorMessage(r) : PQerrorMessage(p->conn));
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state) lua_pushstring(L, state);
    else lua_pushliteral(L, "");
    if (r) PQclear(r);
    return 3;
  }
  int rows = PQntuples(r), cols = PQnfields(r);
  lua_createtable(L, rows, 0);
  for (int i = 0; i < rows; i++) {
    lua_createtable(L, cols, 0);
    for (int j = 0; j < cols; j++) {
      if (PQgetisnull(r, i, j)) lua_pushboolean(L, 0);
      else lua_pushlstring(L, PQgetvalue(r, i, j), (size_t)PQgetlength(r, i, j));
      lua_rawseti(L, -2, j + 1);
    }
    lua_rawseti(L, -2, i + 1);
  }
  PQclear(r);
  return 1;
}

static int l_close(lua_State *L) {
  lpg_t *p = luaL_checkudata(L, 1, PG_MT);
  if (p->conn) PQfinish(p->conn);
  p->conn = NULL;
  return 0;
}

static const luaL_Reg pg_methods[] = {{"exec", l_exec}, {"close", l_close}, {NULL, NULL}};

void td_postgres_lua_open(lua_State *L) {
  td_lua_class(L, PG_MT, pg_methods, l_close);
  lua_pushcfunction(L, l_pg_connect);
  lua_setfield(L, -2, "pg_connect");
}
