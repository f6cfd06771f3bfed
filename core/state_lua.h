/*
 * state_lua.h - the Lua binding of the RocksDB state backend (rocksdb.h)
 * and of the shared checkpoint files (shared.h), which lua/tide/state.lua
 * drives. The same source compiles for Lua 5.4 and LuaJIT (luacompat.h):
 * the state layer calls it once per key touched in a batch (a read when
 * the key is first seen, a write when the batch ends), never per record.
 *
 *   core.rocksdb_open{dir =, max_parallelism =, kg_first =, kg_last =,
 *     block_cache =, write_buffer =, max_write_buffers =, restore =
 *     {checkpoint dirs}} -> db | nil, message
 *       opens (restore absent) or restores (rocksdb.h) the subtask's
 *       instance; sizes in bytes (0 or absent: rocksdb.h's defaults); the
 *       working directory is removed when the db is closed.
 *   db:get(state, key) -> value | nil            (entry without namespace)
 *   db:get_ns(state, key) -> {ns = value} | nil  (every namespace of key)
 *   db:read_bytes([reset]) -> bytes    the encoded bytes get and get_ns
 *       returned since open or the last reset (reset true: zeroed after)
 *   db:put(state, key, value), db:remove(state, key),
 *   db:put_ns(state, key, ns, value), db:remove_ns(state, key, ns),
 *   db:add(state, key, delta)                    (int64 merge: no read)
 *       writes collected in the db's batch until db:commit()
 *   db:commit(), db:abort()                  (abort: the batch dropped)
 *   db:scan(state, fn [, kg_from, kg_to])  fn(key_group, key, ns | nil,
 *       value) per entry of the state in those key groups (default: all
 *       of the db's), in key-group order; fn must not write to the db
 *   db:checkpoint(dir) -> {file names}   flush + RocksDB checkpoint
 *   db:set_ttl(state, ms, is_list), db:set_time(now_ms), db:compact()
 *       the TTL compaction filter's configuration (rocksdb.h)
 *   Timers (lua/tide/timers_rocksdb.lua; the layout is in state_lua.c):
 *   db:timer_put(state, dom, kg, ts, seq, key, ns, noraw),
 *   db:timer_remove(state, dom, kg, ts, seq, key, ns)
 *       a timer's two entries (queue and index), in the batch
 *   db:timer_lookup(state, dom, {kg, key, ns, ts, ...}) -> {seq | false,
 *       ...}   whether those timers exist (one multi-get of the index)
 *   db:timer_range(state, dom, kg [, ts, seq], n) -> {ts, seq, key, ns,
 *       noraw, ...}, more   the first n timers of a key group from (ts,
 *       seq) on, in firing order
 *   db:timer_rewrite(state, dom, kg [, offset]) -> count   every timer of
 *       a key group moved by offset sequence numbers, or removed
 *   db:close()                           (also __gc)
 *   core.shared_upload(path, shared_dir [, journal]) -> name, size, crc |
 *       nil, message; journal: a file the line "<file name> <name> <size>
 *       <crc>" is appended to (how a snapshot child tells the task thread
 *       what it uploaded)
 *   core.shared_exists(shared_dir, name, size) -> whether the file is there
 *       with that size
 *   core.shared_check(shared_dir, name, size, crc) -> true | nil, message
 *   core.shared_link(shared_dir, dir, {local1, shared1, ...}) -> true |
 *       nil, message: dir/local_i made a hard link to (or else a copy of)
 *       shared_dir/shared_i, dir created if missing (restore)
 *   core.state_id(name) -> the id (column family) of state `name`: 31
 *       bits of XXH64(name), the same in every subtask and run
 *   core.remove_files(dir, names)   unlink dir/name for each, then rmdir
 *       dir; no allocation (usable in a snapshot child)
 *
 * state is the state's id (its column family), key any Lua value that can
 * be a key (encoded canonically, which also gives its key group), ns a
 * namespace value (encoded canonically), value any encodable value.
 * Errors of RocksDB raise "rocksdb: <message naming the path>".
 */
#ifndef TD_STATE_LUA_H
#define TD_STATE_LUA_H

#include "luacompat.h"

/* td_state_lua_open - add rocksdb_open, shared_upload, shared_check and
 * remove_files to the table at the top of the stack (tide.core). */
void td_state_lua_open(lua_State *L);

#endif
