/* state_lua.c - the Lua binding of the RocksDB state backend and of the
 * shared checkpoint files (state_lua.h). */
#include "state_lua.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <xxhash.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "error.h"
#include "keygroup.h"
#include "rocksdb.h"
#include "shared.h"
#include "wbuf.h"

#define DB_MT "tide.rocksdb"

typedef struct ldb {
  td_backend_t *b;
  int max_parallelism;
  td_wbuf_t kb, nb, vb; /* encoded key, namespace, value */
} ldb_t;

static ldb_t *check_db(lua_State *L) {
  ldb_t *d = luaL_checkudata(L, 1, DB_MT);
  if (!d->b) luaL_error(L, "rocksdb: the state backend is closed");
  return d;
}

/* Raise the backend's last error for code rc of operation what. */
static int raise_db(lua_State *L, ldb_t *d, int rc, const char *what) {
  const char *m = td_rocksdb_last_error(d->b);
  return luaL_error(L, "rocksdb: %s: %s", what, m && *m ? m : td_strerror(rc));
}

/* Encode the value at idx into b (canonical for keys and namespaces). */
static void encode(lua_State *L, int idx, td_wbuf_t *b, int canonical) {
  char err[256];
  b->len = 0;
  int rc = td_codec_encode(L, idx, b, canonical, err, sizeof err);
  if (rc) luaL_error(L, "%s", rc == TD_ECODEC ? err : td_strerror(rc));
}

static td_bytes_t bytes_of(const td_wbuf_t *b) {
  return (td_bytes_t){b->data, b->len};
}

/* The state id at index 2 and the key at 3, encoded: its key group. */
static uint32_t key_arg(lua_State *L, ldb_t *d, uint32_t *sid) {
  lua_Integer s = luaL_checkinteger(L, 2);
  luaL_argcheck(L, s >= 0 && s < UINT32_MAX, 2, "bad state id");
  *sid = (uint32_t)s;
  luaL_checkany(L, 3);
  encode(L, 3, &d->kb, 1);
  return (uint32_t)td_keygroup_of(td_keygroup_hash(d->kb.data, d->kb.len), d->max_parallelism);
}

static void push_decoded(lua_State *L, td_bytes_t v) {
  size_t off = 0;
  if (td_codec_decode(L, v.data, v.len, &off) != 0 || off != v.len)
    luaL_error(L, "rocksdb: a stored value is not a valid encoding");
}

static lua_Integer opt_int(lua_State *L, int t, const char *field) {
  lua_getfield(L, t, field);
  lua_Integer v = lua_isnil(L, -1) ? 0 : luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  if (v < 0) luaL_error(L, "rocksdb_open: %s must not be negative", field);
  return v;
}

static int l_open(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "dir");
  const char *dir = luaL_checkstring(L, -1);
  lua_Integer maxp = opt_int(L, 1, "max_parallelism");
  lua_Integer first = opt_int(L, 1, "kg_first"), last = opt_int(L, 1, "kg_last");
  if (maxp < 1 || maxp > TD_MAX_PARALLELISM_LIMIT || first > last || last >= maxp)
    return luaL_error(L, "rocksdb_open: bad key-group range [%d, %d] of %d", (int)first, (int)last,
                      (int)maxp);
  td_rocksdb_options_t opt = {.dir = dir,
                              .block_cache = (size_t)opt_int(L, 1, "block_cache"),
                              .write_buffer = (size_t)opt_int(L, 1, "write_buffer"),
                              .max_write_buffers = (int)opt_int(L, 1, "max_write_buffers"),
                              .remove_on_free = 1};
  const char *dirs[1024];
  size_t n = 0;
  lua_getfield(L, 1, "restore");
  int restore = lua_istable(L, -1);
  if (restore) {
    n = (size_t)lua_rawlen(L, -1);
    if (n > sizeof dirs / sizeof dirs[0]) return luaL_error(L, "rocksdb_open: too many instances");
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, -1, (int)i + 1);
      dirs[i] = luaL_checkstring(L, -1);
      lua_pop(L, 1); /* the string stays referenced by the table */
    }
  }
  ldb_t *d = lua_newuserdata(L, sizeof *d);
  memset(d, 0, sizeof *d);
  luaL_getmetatable(L, DB_MT);
  lua_setmetatable(L, -2);
  d->max_parallelism = (int)maxp;
  char err[1024] = "";
  int rc = restore ? td_backend_restore_rocksdb(&d->b, &opt, (uint32_t)first, (uint32_t)last, dirs,
                                                n, err, sizeof err)
                   : td_backend_new_rocksdb(&d->b, &opt, (uint32_t)first, (uint32_t)last, err,
                                            sizeof err);
  if (rc) {
    d->b = NULL;
    lua_pushnil(L);
    lua_pushfstring(L, "%s", *err ? err : td_strerror(rc));
    return 2;
  }
  return 1;
}

static int l_get(lua_State *L) {
  ldb_t *d = check_db(L);
  uint32_t sid, kg = key_arg(L, d, &sid);
  td_bytes_t v;
  int rc = td_backend_get(d->b, sid, kg, bytes_of(&d->kb), (td_bytes_t){NULL, 0}, &v);
  if (rc < 0) return raise_db(L, d, rc, "get");
  if (rc == 0) return 0;
  push_decoded(L, v);
  return 1;
}

static int l_get_ns(lua_State *L) {
  ldb_t *d = check_db(L);
  uint32_t sid, kg = key_arg(L, d, &sid);
  td_rocksdb_iter_t *it = NULL;
  int rc = td_rocksdb_iter_new(&it, d->b, sid, kg, bytes_of(&d->kb), NULL, NULL);
  if (rc) return raise_db(L, d, rc, "get");
  td_bytes_t ns, v;
  int found = 0;
  while ((rc = td_rocksdb_iter_next(it, &ns, &v)) == 1) {
    if (ns.len == 0) continue; /* an entry without namespace */
    if (!found) lua_newtable(L);
    found = 1;
    size_t off = 0;
    if (td_codec_decode(L, ns.data, ns.len, &off) != 0 || off != ns.len) {
      td_rocksdb_iter_free(it);
      return luaL_error(L, "rocksdb: a stored namespace is not a valid encoding");
    }
    off = 0;
    if (td_codec_decode(L, v.data, v.len, &off) != 0 || off != v.len) {
      td_rocksdb_iter_free(it);
      return luaL_error(L, "rocksdb: a stored value is not a valid encoding");
    }
    lua_rawset(L, -3);
  }
  td_rocksdb_iter_free(it);
  if (rc < 0) return raise_db(L, d, rc, "get");
  return found;
}

static int l_put(lua_State *L) {
  ldb_t *d = check_db(L);
  uint32_t sid, kg = key_arg(L, d, &sid);
  luaL_checkany(L, 4);
  encode(L, 4, &d->vb, 0);
  int rc = td_rocksdb_batch_put(d->b, sid, kg, bytes_of(&d->kb), (td_bytes_t){NULL, 0},
                                bytes_of(&d->vb));
  return rc ? raise_db(L, d, rc, "put") : 0;
}

static int l_remove(lua_State *L) {
  ldb_t *d = check_db(L);
  uint32_t sid, kg = key_arg(L, d, &sid);
  int rc = td_rocksdb_batch_remove(d->b, sid, kg, bytes_of(&d->kb), (td_bytes_t){NULL, 0});
  return rc ? raise_db(L, d, rc, "remove") : 0;
}

static int l_put_ns(lua_State *L) {
  ldb_t *d = check_db(L);
  uint32_t sid, kg = key_arg(L, d, &sid);
  luaL_checkany(L, 4);
  luaL_checkany(L, 5);
  encode(L, 4, &d->nb, 1);
  encode(L, 5, &d->vb, 0);
  int rc = td_rocksdb_batch_put(d->b, sid, kg, bytes_of(&d->kb), bytes_of(&d->nb),
                                bytes_of(&d->vb));
  return rc ? raise_db(L, d, rc, "put") : 0;
}

static int l_remove_ns(lua_State *L) {
  ldb_t *d = check_db(L);
  uint32_t sid, kg = key_arg(L, d, &sid);
  luaL_checkany(L, 4);
  encode(L, 4, &d->nb, 1);
  int rc = td_rocksdb_batch_remove(d->b, sid, kg, bytes_of(&d->kb), bytes_of(&d->nb));
  return rc ? raise_db(L, d, rc, "remove") : 0;
}

static int l_add(lua_State *L) {
  ldb_t *d = check_db(L);
  uint32_t sid, kg = key_arg(L, d, &sid);
  lua_Integer delta = luaL_checkinteger(L, 4);
  int rc = td_rocksdb_batch_add(d->b, sid, kg, bytes_of(&d->kb), (td_bytes_t){NULL, 0},
                                (int64_t)delta);
  return rc ? raise_db(L, d, rc, "add") : 0;
}

static int l_commit(lua_State *L) {
  ldb_t *d = check_db(L);
  int rc = td_rocksdb_batch_commit(d->b);
  return rc ? raise_db(L, d, rc, "write") : 0;
}

/* db:abort() - drop the writes collected since the last commit. */
static int l_abort(lua_State *L) {
  ldb_t *d = check_db(L);
  td_rocksdb_batch_abort(d->b);
  return 0;
}

typedef struct scan_ctx {
  lua_State *L;
  int fn;
} scan_ctx_t;

static int scan_visit(const td_state_entry_t *e, void *ud) {
  scan_ctx_t *s = ud;
  lua_State *L = s->L;
  lua_pushvalue(L, s->fn);
  lua_pushinteger(L, e->key_group);
  push_decoded(L, e->key);
  if (e->ns.len) push_decoded(L, e->ns);
  else lua_pushnil(L);
  push_decoded(L, e->value);
  lua_call(L, 4, 0);
  return 0;
}

static int l_scan(lua_State *L) {
  ldb_t *d = check_db(L);
  lua_Integer s = luaL_checkinteger(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_Integer from = luaL_optinteger(L, 4, d->b->kg_first), to = luaL_optinteger(L, 5, d->b->kg_last);
  if (from < d->b->kg_first) from = d->b->kg_first;
  if (to > d->b->kg_last) to = d->b->kg_last;
  if (from > to) return 0;
  scan_ctx_t ctx = {L, 3};
  int rc = td_backend_scan(d->b, (uint32_t)s, (uint32_t)from, (uint32_t)to, scan_visit, &ctx);
  return rc < 0 ? raise_db(L, d, rc, "scan") : 0;
}

static int l_checkpoint(lua_State *L) {
  ldb_t *d = check_db(L);
  const char *dir = luaL_checkstring(L, 2);
  char **files = NULL;
  size_t n = 0;
  int rc = td_rocksdb_checkpoint(d->b, dir, &files, &n);
  if (rc) return raise_db(L, d, rc, "checkpoint");
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, files[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  td_rocksdb_files_free(files, n);
  return 1;
}

static int l_set_ttl(lua_State *L) {
  ldb_t *d = check_db(L);
  lua_Integer sid = luaL_checkinteger(L, 2), ms = luaL_checkinteger(L, 3);
  luaL_argcheck(L, sid >= 0 && sid < UINT32_MAX, 2, "bad state id");
  luaL_argcheck(L, ms >= 0, 3, "non-negative ms expected");
  int rc = td_rocksdb_set_ttl(d->b, (uint32_t)sid, (int64_t)ms, lua_toboolean(L, 4));
  return rc ? raise_db(L, d, rc, "ttl") : 0;
}

static int l_set_time(lua_State *L) {
  ldb_t *d = check_db(L);
  td_rocksdb_set_time(d->b, (int64_t)luaL_checkinteger(L, 2));
  return 0;
}

static int l_compact(lua_State *L) {
  ldb_t *d = check_db(L);
  td_rocksdb_compact(d->b);
  return 0;
}

static int l_close(lua_State *L) {
  ldb_t *d = luaL_checkudata(L, 1, DB_MT);
  td_backend_free(d->b);
  d->b = NULL;
  td_wbuf_destroy(&d->kb);
  td_wbuf_destroy(&d->nb);
  td_wbuf_destroy(&d->vb);
  return 0;
}

static int l_shared_upload(lua_State *L) {
  const char *path = luaL_checkstring(L, 1), *dir = luaL_checkstring(L, 2);
  const char *journal = luaL_optstring(L, 3, NULL);
  td_shared_ref_t ref;
  char err[1024];
  if (td_shared_upload(path, dir, &ref, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  if (journal) {
    /* "<file name> <shared name> <size> <crc>\n", appended with one write
     * (no stdio: this runs in snapshot children) */
    char line[4600];
    const char *base = strrchr(path, '/');
    int n = snprintf(line, sizeof line, "%s %s %llu %u\n", base ? base + 1 : path, ref.name,
                     (unsigned long long)ref.size, (unsigned)ref.crc);
    int fd = open(journal, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd >= 0) {
      if (n > 0 && n < (int)sizeof line) (void)!write(fd, line, (size_t)n);
      close(fd);
    }
  }
  lua_pushstring(L, ref.name);
  lua_pushinteger(L, (lua_Integer)ref.size);
  lua_pushinteger(L, (lua_Integer)ref.crc);
  return 3;
}

static int l_shared_check(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  size_t len;
  const char *name = luaL_checklstring(L, 2, &len);
  td_shared_ref_t ref = {.size = (uint64_t)luaL_checkinteger(L, 3),
                         .crc = (uint32_t)luaL_checkinteger(L, 4)};
  luaL_argcheck(L, len > 0 && len < sizeof ref.name && !strchr(name, '/'), 2, "bad shared file name");
  memcpy(ref.name, name, len + 1);
  char err[1024];
  if (td_shared_check(dir, &ref, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_shared_exists(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1), *name = luaL_checkstring(L, 2);
  lua_Integer size = luaL_checkinteger(L, 3);
  char path[4400];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  lua_pushboolean(L, !strchr(name, '/') && stat(path, &st) == 0 && (lua_Integer)st.st_size == size);
  return 1;
}

static int l_remove_files(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  char path[4400];
  int n = (int)lua_rawlen(L, 2);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    const char *name = lua_tostring(L, -1);
    if (name && !strchr(name, '/')) {
      snprintf(path, sizeof path, "%s/%s", dir, name);
      (void)unlink(path);
    }
    lua_pop(L, 1);
  }
  (void)rmdir(dir);
  return 0;
}

static int l_state_id(lua_State *L) {
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  lua_pushinteger(L, (lua_Integer)(XXH64(name, len, 0) & 0x7fffffff));
  return 1;
}

/* Copy from to to (a hard link could not be made). 0 or -errno. */
static int copy_file(const char *from, const char *to) {
  int in = open(from, O_RDONLY | O_CLOEXEC);
  if (in < 0) return -errno;
  int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  int rc = out < 0 ? -errno : 0;
  char buf[1 << 16];
  while (rc == 0) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) rc = -errno;
    if (n <= 0) break;
    for (ssize_t off = 0; rc == 0 && off < n;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0 && errno != EINTR) rc = -errno;
      if (w > 0) off += w;
    }
  }
  close(in);
  if (out >= 0) close(out);
  return rc;
}

static int l_shared_link(lua_State *L) {
  const char *shared = luaL_checkstring(L, 1), *dir = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  char from[4400], to[4400];
  if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot create directory '%s': %s", dir, strerror(errno));
    return 2;
  }
  int n = (int)lua_rawlen(L, 3);
  for (int i = 1; i <= n; i += 2) {
    lua_rawgeti(L, 3, i);
    lua_rawgeti(L, 3, i + 1);
    const char *local = luaL_checkstring(L, -2), *name = luaL_checkstring(L, -1);
    if (strchr(local, '/') || strchr(name, '/')) return luaL_error(L, "shared_link: bad file name");
    snprintf(from, sizeof from, "%s/%s", shared, name);
    snprintf(to, sizeof to, "%s/%s", dir, local);
    int rc = link(from, to) == 0 ? 0 : copy_file(from, to);
    if (rc) {
      lua_pushnil(L);
      lua_pushfstring(L, "cannot restore %s as %s: %s", from, to, td_strerror(rc));
      return 2;
    }
    lua_pop(L, 2);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg db_methods[] = {
    {"get", l_get},       {"get_ns", l_get_ns},       {"put", l_put},
    {"remove", l_remove}, {"put_ns", l_put_ns},       {"remove_ns", l_remove_ns},
    {"add", l_add},       {"commit", l_commit},       {"abort", l_abort},
    {"scan", l_scan},     {"checkpoint", l_checkpoint}, {"close", l_close},
    {"set_ttl", l_set_ttl}, {"set_time", l_set_time}, {"compact", l_compact},
    {NULL, NULL}};

static const luaL_Reg core_funcs[] = {
    {"rocksdb_open", l_open},       {"shared_upload", l_shared_upload},
    {"shared_check", l_shared_check}, {"remove_files", l_remove_files},
    {"shared_link", l_shared_link}, {"state_id", l_state_id},
    {"shared_exists", l_shared_exists},
    {NULL, NULL}};

void td_state_lua_open(lua_State *L) {
  if (luaL_newmetatable(L, DB_MT)) {
    lua_newtable(L);
    for (const luaL_Reg *r = db_methods; r->name; r++) {
      lua_pushcfunction(L, r->func);
      lua_setfield(L, -2, r->name);
    }
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  for (const luaL_Reg *r = core_funcs; r->name; r++) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, -2, r->name);
  }
}
