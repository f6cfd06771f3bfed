/* state_lua.c - the Lua binding of the RocksDB state backend and of the
 * shared checkpoint files (state_lua.h). */
#include "state_lua.h"

#include <dirent.h>
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
  uint64_t read_bytes;  /* bytes get and get_ns returned (db:read_bytes) */
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
  d->read_bytes += v.len;
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
    d->read_bytes += ns.len + v.len;
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

/* db:read_bytes([reset]) -> the bytes of the entries get and get_ns
 * returned since the db was opened or last reset (reset true: zeroed
 * after it is read). The state layer's cache bound (state_rocksdb.lua). */
static int l_read_bytes(lua_State *L) {
  ldb_t *d = check_db(L);
  int reset = lua_toboolean(L, 2);
  lua_pushinteger(L, (lua_Integer)d->read_bytes);
  if (reset) d->read_bytes = 0;
  return 1;
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

/* db:checkpoint_begin(dir) - td_rocksdb_checkpoint_begin: the memtables
 * switched now, the RocksDB checkpoint made in dir by a thread once they
 * are flushed (core.await_rocksdb_checkpoint waits for it). */
static int l_checkpoint_begin(lua_State *L) {
  ldb_t *d = check_db(L);
  int rc = td_rocksdb_checkpoint_begin(d->b, luaL_checkstring(L, 2));
  return rc ? raise_db(L, d, rc, "checkpoint") : 0;
}

/* core.await_rocksdb_checkpoint(dir) -> {file name, ...} | nil, message
 * In a snapshot child: wait until the checkpoint db:checkpoint_begin's
 * thread makes in the parent is in place (RocksDB renames dir into place
 * once complete) or has failed (dir.failed holds why); the names of dir's
 * files, in no particular order. Only stat, nanosleep, open, read and
 * getdents64 (no malloc: alloc.h); the child dies with its parent. */
static int l_await_rocksdb_checkpoint(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  char msg[600];
  if (td_rocksdb_checkpoint_await(dir, NULL, NULL, msg, sizeof msg) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
  }
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return luaL_error(L, "cannot list '%s': %s", dir, strerror(errno));
  lua_newtable(L);
  int n = 0;
  char buf[8192];
  for (;;) {
    ssize_t got = getdents64(fd, buf, sizeof buf);
    if (got < 0) {
      int e = errno;
      close(fd);
      return luaL_error(L, "cannot list '%s': %s", dir, strerror(e));
    }
    if (got == 0) break;
    for (ssize_t off = 0; off < got;) {
      struct dirent64 *de = (struct dirent64 *)(buf + off);
      off += de->d_reclen;
      if (de->d_type != DT_REG) continue;
      lua_pushstring(L, de->d_name);
      lua_rawseti(L, -2, ++n);
    }
  }
  close(fd);
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

/* ---- timers (lua/tide/timers_rocksdb.lua) ----
 *
 * The timers of a keyed operator are entries of one column family (state
 * id), each timer two entries, d being its time domain's byte:
 *   queue  key empty, namespace d ts8 seq8 (big-endian with the sign bit
 *          flipped: byte order is (timestamp, sequence) order within a key
 *          group and domain); value a flag byte (1: the timer has no raw
 *          key) then the canonical encodings of its key and namespace;
 *   index  key the key's canonical encoding, namespace d, the namespace's
 *          encoding, ts8; value seq8: whether (key, namespace, timestamp)
 *          has a timer, and its sequence number (its queue address).
 * A key group's queue entries come first (empty key: length byte 0). */

#define TIMER_POS 17 /* d ts8 seq8 */

static void put_be64(unsigned char *p, int64_t v) {
  uint64_t u = (uint64_t)v ^ 0x8000000000000000ull;
  for (int i = 7; i >= 0; i--) {
    p[i] = (unsigned char)u;
    u >>= 8;
  }
}

static int64_t get_be64(const unsigned char *p) {
  uint64_t u = 0;
  for (int i = 0; i < 8; i++) u = (u << 8) | p[i];
  return (int64_t)(u ^ 0x8000000000000000ull);
}

static void timer_pos(unsigned char *pos, int dom, int64_t ts, int64_t seq) {
  pos[0] = (unsigned char)dom;
  put_be64(pos + 1, ts);
  put_be64(pos + 9, seq);
}

static uint32_t sid_arg(lua_State *L, int idx) {
  lua_Integer s = luaL_checkinteger(L, idx);
  luaL_argcheck(L, s >= 0 && s < UINT32_MAX, idx, "bad state id");
  return (uint32_t)s;
}

static int dom_arg(lua_State *L, int idx) {
  lua_Integer v = luaL_checkinteger(L, idx);
  luaL_argcheck(L, v >= 0 && v < 255, idx, "bad time domain");
  return (int)v;
}

static uint32_t kg_arg(lua_State *L, ldb_t *d, int idx) {
  lua_Integer kg = luaL_checkinteger(L, idx);
  luaL_argcheck(L, kg >= d->b->kg_first && kg <= d->b->kg_last, idx,
                "key group outside the backend's range");
  return (uint32_t)kg;
}

/* Append the canonical encoding of the value at idx to b. */
static void encode_more(lua_State *L, int idx, td_wbuf_t *b) {
  char err[256];
  int rc = td_codec_encode(L, idx, b, 1, err, sizeof err);
  if (rc) luaL_error(L, "%s", rc == TD_ECODEC ? err : td_strerror(rc));
}

static void reserve_or_raise(lua_State *L, td_wbuf_t *b, size_t n) {
  if (td_wbuf_reserve(b, n)) luaL_error(L, "%s", td_strerror(TD_ENOMEM));
}

/* Append the index entry's namespace of (dom, ns at index nsi, ts) to b. */
static void index_ns(lua_State *L, td_wbuf_t *b, int dom, int nsi, int64_t ts) {
  reserve_or_raise(L, b, 1);
  b->data[b->len++] = (char)dom;
  encode_more(L, nsi, b);
  reserve_or_raise(L, b, 8);
  put_be64((unsigned char *)b->data + b->len, ts);
  b->len += 8;
}

/* The arguments (db, state, dom, kg, ts, seq, key, ns) of timer_put and
 * timer_remove: the queue entry's namespace in pos, the key's encoding in
 * d->kb and the index entry's namespace in d->nb. */
typedef struct timer_args {
  uint32_t sid, kg;
  int dom;
  int64_t seq;
  unsigned char pos[TIMER_POS];
} timer_args_t;

static ldb_t *check_timer(lua_State *L, timer_args_t *a) {
  ldb_t *d = check_db(L);
  a->sid = sid_arg(L, 2);
  a->dom = dom_arg(L, 3);
  a->kg = kg_arg(L, d, 4);
  int64_t ts = (int64_t)luaL_checkinteger(L, 5);
  a->seq = (int64_t)luaL_checkinteger(L, 6);
  luaL_checkany(L, 7);
  luaL_checkany(L, 8);
  timer_pos(a->pos, a->dom, ts, a->seq);
  encode(L, 7, &d->kb, 1);
  d->nb.len = 0;
  index_ns(L, &d->nb, a->dom, 8, ts);
  return d;
}

/* db:timer_put(state, dom, kg, ts, seq, key, ns, noraw): both entries of a
 * timer, in the batch. */
static int l_timer_put(lua_State *L) {
  timer_args_t a;
  ldb_t *d = check_timer(L, &a);
  unsigned char sq[8];
  put_be64(sq, a.seq);
  d->vb.len = 0;
  reserve_or_raise(L, &d->vb, 1);
  d->vb.data[d->vb.len++] = (char)(lua_toboolean(L, 9) ? 1 : 0);
  encode_more(L, 7, &d->vb);
  encode_more(L, 8, &d->vb);
  td_bytes_t none = {NULL, 0};
  int rc = td_rocksdb_batch_put(d->b, a.sid, a.kg, none,
                                (td_bytes_t){(const char *)a.pos, TIMER_POS}, bytes_of(&d->vb));
  if (rc == 0)
    rc = td_rocksdb_batch_put(d->b, a.sid, a.kg, bytes_of(&d->kb), bytes_of(&d->nb),
                              (td_bytes_t){(const char *)sq, 8});
  return rc ? raise_db(L, d, rc, "timer put") : 0;
}

/* db:timer_remove(state, dom, kg, ts, seq, key, ns): both entries, in the
 * batch. */
static int l_timer_remove(lua_State *L) {
  timer_args_t a;
  ldb_t *d = check_timer(L, &a);
  td_bytes_t none = {NULL, 0};
  int rc = td_rocksdb_batch_remove(d->b, a.sid, a.kg, none,
                                   (td_bytes_t){(const char *)a.pos, TIMER_POS});
  if (rc == 0) rc = td_rocksdb_batch_remove(d->b, a.sid, a.kg, bytes_of(&d->kb), bytes_of(&d->nb));
  return rc ? raise_db(L, d, rc, "timer remove") : 0;
}

/* db:timer_lookup(state, dom, {kg1, key1, ns1, ts1, kg2, ...}) -> {seq1 |
 * false, ...}: the sequence numbers of those timers (one multi-get). */
static int l_timer_lookup(lua_State *L) {
  ldb_t *d = check_db(L);
  uint32_t sid = sid_arg(L, 2);
  int dom = dom_arg(L, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  size_t n = (size_t)lua_rawlen(L, 4) / 4;
  if (n == 0) {
    lua_newtable(L);
    return 1;
  }
  /* scratch memory owned by the Lua stack: nothing leaks when an argument
   * check raises */
  size_t each = sizeof(td_rocksdb_key_t) + sizeof(td_bytes_t) + 3 * sizeof(size_t) + sizeof(int);
  if (n > SIZE_MAX / each) return luaL_error(L, "%s", td_strerror(TD_ENOMEM));
  char *mem = lua_newuserdata(L, n * each);
  td_rocksdb_key_t *keys = (td_rocksdb_key_t *)mem;
  td_bytes_t *vals = (td_bytes_t *)(keys + n);
  size_t *offs = (size_t *)(vals + n);
  int *found = (int *)(offs + 3 * n);
  /* every key and namespace encoded one after the other in vb; the
   * addresses point into it once it stops growing */
  td_wbuf_t *b = &d->vb;
  b->len = 0;
  for (size_t i = 0; i < n; i++) {
    int base = (int)(4 * i);
    lua_rawgeti(L, 4, base + 1);
    lua_Integer kg = lua_tointeger(L, -1);
    if (kg < d->b->kg_first || kg > d->b->kg_last)
      return luaL_error(L, "timer_lookup: key group outside the backend's range");
    keys[i].state_id = sid;
    keys[i].key_group = (uint32_t)kg;
    lua_rawgeti(L, 4, base + 2);
    lua_rawgeti(L, 4, base + 3);
    lua_rawgeti(L, 4, base + 4);
    int64_t ts = (int64_t)luaL_checkinteger(L, -1);
    offs[3 * i] = b->len;
    encode_more(L, -3, b);
    offs[3 * i + 1] = b->len;
    index_ns(L, b, dom, -2, ts);
    offs[3 * i + 2] = b->len;
    lua_pop(L, 4);
  }
  for (size_t i = 0; i < n; i++) {
    keys[i].key = (td_bytes_t){b->data + offs[3 * i], offs[3 * i + 1] - offs[3 * i]};
    keys[i].ns = (td_bytes_t){b->data + offs[3 * i + 1], offs[3 * i + 2] - offs[3 * i + 1]};
  }
  int rc = td_rocksdb_multi_get(d->b, keys, n, vals, found);
  if (rc) return raise_db(L, d, rc, "timer lookup");
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    if (found[i] && vals[i].len == 8)
      lua_pushinteger(L, (lua_Integer)get_be64((const unsigned char *)vals[i].data));
    else
      lua_pushboolean(L, 0);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

/* Push the key and namespace of a queue entry's value v (flag, key, ns);
 * *noraw receives the flag; *split the offset of the namespace's
 * encoding. Returns 0, or -1 when v is malformed (nothing pushed then). */
static int push_timer_value(lua_State *L, td_bytes_t v, int *noraw, size_t *split) {
  size_t off = 1;
  int top = lua_gettop(L);
  if (v.len < 3 || td_codec_decode(L, v.data, v.len, &off) != 0) goto bad;
  *split = off;
  if (td_codec_decode(L, v.data, v.len, &off) != 0 || off != v.len) goto bad;
  *noraw = ((const unsigned char *)v.data)[0] == 1;
  return 0;
bad:
  lua_settop(L, top);
  return -1;
}

#define BAD_TIMER "rocksdb: a stored timer is not a valid encoding"

/* An iterator over the queue entries of (state, dom, kg) from from (NULL:
 * the first). */
static int queue_iter(ldb_t *d, td_rocksdb_iter_t **it, uint32_t sid, int dom, uint32_t kg,
                      const unsigned char *from) {
  unsigned char lo[TIMER_POS], hi[1];
  memset(lo, 0, sizeof lo);
  lo[0] = (unsigned char)dom;
  hi[0] = (unsigned char)(dom + 1);
  td_bytes_t f = {from ? (const char *)from : (const char *)lo, from ? TIMER_POS : 1},
             t = {(const char *)hi, 1};
  return td_rocksdb_iter_new(it, d->b, sid, kg, (td_bytes_t){NULL, 0}, &f, &t);
}

/* db:timer_range(state, dom, kg [, ts, seq], n) -> {ts1, seq1, key1, ns1,
 * noraw1, ts2, ...}, more: the first n timers of key group kg from (ts,
 * seq) on (inclusive; absent: from the first), in (timestamp, sequence)
 * order; more tells whether there are others after them. */
static int l_timer_range(lua_State *L) {
  ldb_t *d = check_db(L);
  uint32_t sid = sid_arg(L, 2), kg = kg_arg(L, d, 4);
  int dom = dom_arg(L, 3);
  unsigned char pos[TIMER_POS];
  int bounded = !lua_isnoneornil(L, 5);
  if (bounded)
    timer_pos(pos, dom, (int64_t)luaL_checkinteger(L, 5), (int64_t)luaL_checkinteger(L, 6));
  lua_Integer n = luaL_checkinteger(L, 7);
  luaL_argcheck(L, n >= 0, 7, "non-negative count expected");
  td_rocksdb_iter_t *it = NULL;
  int rc = queue_iter(d, &it, sid, dom, kg, bounded ? pos : NULL);
  if (rc) return raise_db(L, d, rc, "timer range");
  lua_createtable(L, (int)(n < 1024 ? n : 1024) * 5, 0);
  int t = lua_gettop(L), more = 0;
  lua_Integer got = 0;
  td_bytes_t ns, v;
  while ((rc = td_rocksdb_iter_next(it, &ns, &v)) == 1) {
    if (got == n) {
      more = 1;
      break;
    }
    int noraw;
    size_t split;
    if (ns.len != TIMER_POS || push_timer_value(L, v, &noraw, &split) != 0) {
      td_rocksdb_iter_free(it);
      return luaL_error(L, BAD_TIMER);
    }
    lua_Integer base = 5 * got;
    lua_rawseti(L, t, (int)base + 4);
    lua_rawseti(L, t, (int)base + 3);
    lua_pushinteger(L, (lua_Integer)get_be64((const unsigned char *)ns.data + 1));
    lua_rawseti(L, t, (int)base + 1);
    lua_pushinteger(L, (lua_Integer)get_be64((const unsigned char *)ns.data + 9));
    lua_rawseti(L, t, (int)base + 2);
    lua_pushboolean(L, noraw);
    lua_rawseti(L, t, (int)base + 5);
    got++;
  }
  td_rocksdb_iter_free(it);
  if (rc < 0) return raise_db(L, d, rc, "timer range");
  lua_pushboolean(L, more);
  return 2;
}

/* One pass of timer_rewrite over it: pass 0 removes every timer's queue
 * entry (and with clear its index entry), pass 1 writes the queue entry
 * at seq + offset and the index entry's new sequence number. Batches are
 * committed every 4096 writes. Returns 0, -1 for a malformed entry, or a
 * negative TD_E* code. */
static int rewrite_pass(lua_State *L, ldb_t *d, td_rocksdb_iter_t *it, uint32_t sid, int dom,
                        uint32_t kg, int pass, int clear, int64_t offset, lua_Integer *count) {
  td_bytes_t none = {NULL, 0}, ns, v;
  int rc;
  while ((rc = td_rocksdb_iter_next(it, &ns, &v)) == 1) {
    int noraw;
    size_t split;
    if (ns.len != TIMER_POS || push_timer_value(L, v, &noraw, &split) != 0) return -1;
    lua_pop(L, 2);
    int64_t ts = get_be64((const unsigned char *)ns.data + 1);
    int64_t seq = get_be64((const unsigned char *)ns.data + 9) + offset;
    /* the index entry: key bytes v[1, split), namespace d v[split, len) ts8 */
    td_bytes_t key = {(const char *)v.data + 1, split - 1};
    size_t nlen = 1 + (v.len - split) + 8;
    d->nb.len = 0;
    if (td_wbuf_reserve(&d->nb, nlen)) return TD_ENOMEM;
    d->nb.data[0] = (char)dom;
    memcpy(d->nb.data + 1, (const char *)v.data + split, v.len - split);
    put_be64((unsigned char *)d->nb.data + 1 + (v.len - split), ts);
    d->nb.len = nlen;
    if (pass == 0) {
      rc = td_rocksdb_batch_remove(d->b, sid, kg, none, ns);
      if (rc == 0 && clear) rc = td_rocksdb_batch_remove(d->b, sid, kg, key, bytes_of(&d->nb));
    } else {
      unsigned char pos[TIMER_POS], sq[8];
      timer_pos(pos, dom, ts, seq);
      put_be64(sq, seq);
      rc = td_rocksdb_batch_put(d->b, sid, kg, none, (td_bytes_t){(const char *)pos, TIMER_POS}, v);
      if (rc == 0)
        rc = td_rocksdb_batch_put(d->b, sid, kg, key, bytes_of(&d->nb),
                                  (td_bytes_t){(const char *)sq, 8});
    }
    if (rc == 0 && td_rocksdb_batch_size(d->b) >= 4096) rc = td_rocksdb_batch_commit(d->b);
    if (rc) return rc;
    if (pass == 0) (*count)++;
  }
  if (rc == 0) rc = td_rocksdb_batch_commit(d->b);
  return rc;
}

/* db:timer_rewrite(state, dom, kg [, offset]) -> count: every timer of
 * domain dom in key group kg gets offset added to its sequence number, or
 * with no offset is removed. Two iterators read the key group as it was
 * before (their snapshots): the first pass removes every old queue entry,
 * the second writes the new ones, so that a new address never meets an
 * old one in the batches; memory does not grow with the number of
 * timers. */
static int l_timer_rewrite(lua_State *L) {
  ldb_t *d = check_db(L);
  uint32_t sid = sid_arg(L, 2), kg = kg_arg(L, d, 4);
  int dom = dom_arg(L, 3);
  int clear = lua_isnoneornil(L, 5);
  int64_t offset = clear ? 0 : (int64_t)luaL_checkinteger(L, 5);
  td_rocksdb_iter_t *its[2] = {NULL, NULL};
  int rc = queue_iter(d, &its[0], sid, dom, kg, NULL);
  if (rc == 0 && !clear) rc = queue_iter(d, &its[1], sid, dom, kg, NULL);
  lua_Integer count = 0;
  for (int pass = 0; rc == 0 && pass < (clear ? 1 : 2); pass++)
    rc = rewrite_pass(L, d, its[pass], sid, dom, kg, pass, clear, offset, &count);
  td_rocksdb_iter_free(its[0]);
  td_rocksdb_iter_free(its[1]);
  if (rc == -1) return luaL_error(L, BAD_TIMER);
  if (rc == TD_ENOMEM) return luaL_error(L, "%s", td_strerror(rc));
  if (rc < 0) return raise_db(L, d, rc, "timer rewrite");
  lua_pushinteger(L, count);
  return 1;
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
  if (journal) td_shared_journal_append(journal, path, &ref);
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
    {"checkpoint_begin", l_checkpoint_begin},
    {"set_ttl", l_set_ttl}, {"set_time", l_set_time}, {"compact", l_compact},
    {"timer_put", l_timer_put},   {"timer_remove", l_timer_remove},
    {"timer_lookup", l_timer_lookup}, {"timer_range", l_timer_range},
    {"timer_rewrite", l_timer_rewrite}, {"read_bytes", l_read_bytes},
    {NULL, NULL}};

static const luaL_Reg core_funcs[] = {
    {"rocksdb_open", l_open},       {"shared_upload", l_shared_upload},
    {"shared_check", l_shared_check}, {"remove_files", l_remove_files},
    {"shared_link", l_shared_link}, {"state_id", l_state_id},
    {"shared_exists", l_shared_exists},
    {"await_rocksdb_checkpoint", l_await_rocksdb_checkpoint},
    {NULL, NULL}};

void td_state_lua_open(lua_State *L) {
  td_lua_class(L, DB_MT, db_methods, l_close);
  td_lua_setfuncs(L, core_funcs);
}
