/*
 * socket_lua.c - TCP client sockets for Lua (socket_lua.h).
 */
#include "socket_lua.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define SOCK_MT "tide.socket"

typedef struct {
  int fd;
} lsock_t;

static int fail_errno(lua_State *L, const char *what) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", what, strerror(errno));
  return 2;
}

static int l_socket_connect(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  luaL_argcheck(L, port > 0 && port < 65536, 2, "port must be 1..65535");
  char ports[16];
  snprintf(ports, sizeof ports, "%d", (int)port);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(host, ports, &hints, &res);
  if (rc) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot resolve '%s': %s", host, gai_strerror(rc));
    return 2;
  }
  int fd = -1, err = 0;
  for (struct addrinfo *a = res; a; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    err = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot connect to %s:%d: %s", host, (int)port, strerror(err));
    return 2;
  }
  lsock_t *s = lua_newuserdatauv(L, sizeof *s, 0);
  s->fd = fd;
  luaL_setmetatable(L, SOCK_MT);
  return 1;
}

static lsock_t *check_sock(lua_State *L) {
  lsock_t *s = luaL_checkudata(L, 1, SOCK_MT);
  if (s->fd < 0) luaL_error(L, "socket is closed");
  return s;
}

static int l_read(lua_State *L) {
  lsock_t *s = check_sock(L);
  int timeout = (int)luaL_optinteger(L, 2, 100);
  struct pollfd p = {s->fd, POLLIN, 0};
  int rc = poll(&p, 1, timeout);
  if (rc < 0 && errno != EINTR) return fail_errno(L, "socket poll");
  if (rc <= 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  char buf[65536];
  ssize_t n = recv(s->fd, buf, sizeof buf, 0);
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) {
      lua_pushliteral(L, "");
      return 1;
    }
    return fail_errno(L, "socket read");
  }
  if (n == 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}

static int l_write(lua_State *L) {
  lsock_t *s = check_sock(L);
  size_t len;
  const char *d = luaL_checklstring(L, 2, &len);
  while (len > 0) {
    ssize_t n = send(s->fd, d, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno(L, "socket write");
    }
    d += n;
    len -= (size_t)n;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_close(lua_State *L) {
  lsock_t *s = luaL_checkudata(L, 1, SOCK_MT);
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  return 0;
}

static const luaL_Reg sock_methods[] = {
    {"read", l_read}, {"write", l_write}, {"close", l_close}, {NULL, NULL}};

void td_socket_lua_open(lua_State *L) {
  td_lua_class(L, SOCK_MT, sock_methods, l_close);
  lua_pushcfunction(L, l_socket_connect);
  lua_setfield(L, -2, "socket_connect");
}
