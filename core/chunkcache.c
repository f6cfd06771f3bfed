/*
 * chunkcache.c - compiled Lua modules shared by the VMs of a process (see
 * chunkcache.h).
 *
 * The cache is a list, newest first, of immutable entries that are never
 * freed: a process holds the library's modules and the job's, and a file
 * edited while the process runs (a live reload of a job module) adds one
 * entry per version. A VM that misses compiles the file holding the lock,
 * so that the VMs of a job, which start together, wait for the first one's
 * bytecode instead of each parsing the file; the bytecode of an entry is
 * read without the lock. The lock is recursive: a finalizer run by the
 * collector while a file compiles may require a module. A fork (a
 * snapshot's child) waits for a compile in progress (pthread_atfork): a
 * child that inherited the lock held by a thread it does not have would
 * hang at its first require.
 */
#include "chunkcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct chunk {
  struct chunk *next;
  char *path;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  char *code; /* lua_dump's output */
  size_t len;
} chunk_t;

static pthread_mutex_t cache_mu = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static chunk_t *cache;

/* The entry of the file at path with status st, or NULL (cache_mu held). */
static const chunk_t *find(const char *path, const struct stat *st) {
  const chunk_t *c = cache;
  while (c && !(c->dev == st->st_dev && c->ino == st->st_ino && c->size == st->st_size &&
                c->mtime.tv_sec == st->st_mtim.tv_sec && c->mtime.tv_nsec == st->st_mtim.tv_nsec &&
                strcmp(c->path, path) == 0))
    c = c->next;
  return c;
}

typedef struct dump {
  char *p;
  size_t len, cap;
} dump_t;

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  dump_t *d = ud;
  if (d->len + n > d->cap) {
    size_t cap = d->cap ? d->cap : 16384;
    while (cap < d->len + n) cap *= 2;
    char *q = realloc(d->p, cap);
    if (!q) return 1; /* lua_dump stops; the entry is not kept */
    d->p = q;
    d->cap = cap;
  }
  memcpy(d->p + d->len, p, n);
  d->len += n;
  return 0;
}

/* Keep the bytecode of the function on top of L as the entry of path (a
 * failure to allocate keeps nothing: the next VM compiles the file again);
 * cache_mu held. */
static void keep(lua_State *L, const char *path, const struct stat *st) {
  dump_t d = {0};
#ifdef TD_LUAJIT
  int rc = lua_dump(L, dump_writer, &d);
#else
  int rc = lua_dump(L, dump_writer, &d, 0); /* debug information kept */
#endif
  chunk_t *c = rc == 0 && d.len ? calloc(1, sizeof *c) : NULL;
  char *p = c ? strdup(path) : NULL;
  if (!p) {
    free(c);
    free(d.p);
    return;
  }
  *c = (chunk_t){NULL, p, st->st_dev, st->st_ino, st->st_size, st->st_mtim, d.p, d.len};
  c->next = cache;
  cache = c;
}

/* searcher(name) -> loader, path; or nothing (the package table is the
 * closure's upvalue, as the standard searchers hold it) */
static int searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_getfield(L, lua_upvalueindex(1), "searchpath");
  lua_getfield(L, lua_upvalueindex(1), "path");
  if (!lua_isfunction(L, -2) || !lua_isstring(L, -1)) return 0;
  lua_pushvalue(L, 1);
  lua_insert(L, -2);
  lua_call(L, 2, 1);
  const char *path = lua_tostring(L, -1);
  struct stat st;
  if (!path || stat(path, &st) != 0) return 0; /* the standard searchers look */
  pthread_mutex_lock(&cache_mu);
  const chunk_t *c = find(path, &st);
  int rc = LUA_OK;
  if (!c) {
    rc = luaL_loadfilex(L, path, NULL); /* protected: returns, never raises */
    if (rc == LUA_OK) keep(L, path, &st);
  }
  pthread_mutex_unlock(&cache_mu);
  if (c) rc = luaL_loadbufferx(L, c->code, c->len, path, "b");
  if (rc != LUA_OK)
    return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, path,
                      lua_tostring(L, -1));
  lua_pushstring(L, path);
  return 2;
}

static void before_fork(void) { pthread_mutex_lock(&cache_mu); }
static void after_fork(void) { pthread_mutex_unlock(&cache_mu); }
static void at_fork(void) { pthread_atfork(before_fork, after_fork, after_fork); }

void td_chunkcache_install(lua_State *L) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, at_fork);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_getfield(L, -1, "loaders"); /* Lua 5.1, LuaJIT */
  }
  if (!lua_istable(L, -1)) {
    lua_pop(L, 2);
    return;
  }
  /* searchers[n + 1 .. 3] = searchers[n .. 2]; searchers[2] = ours */
  int n = (int)lua_rawlen(L, -1);
  for (int i = n; i >= 2; i--) {
    lua_rawgeti(L, -1, i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, searcher, 1);
  lua_rawseti(L, -2, 2);
  lua_pop(L, 2);
}
