--- tide.state: the keyed-state layer (docs/STATE.md), heap backend.
--
-- Every keyed operator of a subtask holds one backend (M.backend) and asks
-- it for its states by name; a state is addressed by (state, key group,
-- key, namespace). The heap backend keeps state as live Lua values in the
-- subtask's VM, one table per state mapping the key to its value (as
-- Flink's heap backend keeps Java objects): hot loops index s.t directly,
-- and values are serialized only for snapshots, grouped by key group (the
-- unit of rescaling), the same for every operator.
--
-- Keys. A scalar key is its own table key; a table key (compared by value,
-- through its canonical MessagePack encoding) is interned: the layer keeps
-- one immutable copy per encoding (weakly: it goes when no state holds it)
-- and uses it as the table key, so a string key and a table key never
-- collide, and every key held gives its key group as routing computed it
-- (core.key_group of the key itself).
--
-- The process functions' handles (M.new) are bound to the operator's
-- current key: ctx.state:value("n") returns the same handle for every
-- record; its value() reads the entry of whatever key the record being
-- processed has. Semantics follow Flink's ValueState, ListState, MapState,
-- ReducingState and AggregatingState.
--
-- Schema evolution. Every state has a schema version (1 unless declared
-- with {version = n}), which snapshots record; a restored state declared
-- with a higher version and a migrate function has its restored values
-- migrated at that declaration, once (Backend:evolve), as Flink migrates
-- state when a new serializer is registered for it.
local M = {}

local core_mod, util_mod
local function core()
  core_mod = core_mod or require "tide.core"
  return core_mod
end
local function util()
  util_mod = util_mod or require "tide.util"
  return util_mod
end

-- ---- the backend -------------------------------------------------------------

local Backend = {}
Backend.__index = Backend
M.Backend = Backend

--- The key-group range of subtask `subtask` (0-based) of `parallelism`
-- with max_parallelism key groups, as Flink's KeyGroupRangeAssignment
-- (computeKeyGroupRangeForOperatorIndex): first, last (inclusive).
function M.key_group_range(max_parallelism, parallelism, subtask)
  local first = math.floor((subtask * max_parallelism + parallelism - 1) / parallelism)
  local last = math.floor(((subtask + 1) * max_parallelism - 1) / parallelism)
  return first, last
end

-- The subtask's state backend configuration (M.configure).
local config = { backend = "heap" }

--- Configure the keyed state of this subtask's operators (one VM per
-- subtask: the runtime calls it before building the operators).
-- @param cfg {backend = "heap" | "rocksdb", dir = working directory base
--   of the RocksDB instances (rocksdb), rocksdb = {block_cache =,
--   write_buffer =, max_write_buffers =} (bytes), shared_dir = where
--   snapshots upload RocksDB files (nil: no checkpoints), restore_shared =
--   the shared directory of the checkpoint restored from}
function M.configure(cfg)
  config = cfg or { backend = "heap" }
end

--- The configured backend kind: "heap" or "rocksdb".
function M.kind() return config.backend end

--- The backend of one keyed operator of a subtask, of the configured kind
-- (M.configure; heap by default).
-- @param max_parallelism number of key groups (default 128)
-- @param parallelism, subtask the operator's; they give the key-group range
--   this backend restores (default 1, 0: all of them)
-- @param clock f() -> processing time in ms (default core.now_ms): the
--   time of state TTL
function M.backend(max_parallelism, parallelism, subtask, clock)
  config.keyed = true
  if config.backend == "rocksdb" then
    local b = require("tide.state_rocksdb").new(config, max_parallelism, parallelism, subtask, clock)
    config.backends = config.backends or {}
    config.backends[#config.backends + 1] = b
    return b
  end
  return M.heap_backend(max_parallelism, parallelism, subtask, clock)
end

--- The key groups of each state in an operator's old snapshots, for
-- M.operator_backend: {[state name] = {pairs, ...}} (each a key group's
-- flat array {k1, v1, ...}) of the key groups first..last, or nil when no
-- snapshot has heap-format keyed state.
-- @param snaps array of the runtime's snapshots of one operator (old
--   subtasks'; false entries are skipped): the operator's ({keyed =
--   Backend:snapshot(), ...}) or one wrapped with the source position or
--   combiner partials ({op = that})
-- @param first, last the key groups the new backend holds
function M.restored_groups(snaps, first, last)
  local out
  for i = 1, #snaps do
    local snap = snaps[i]
    local keyed = type(snap) == "table" and snap.keyed
    if keyed == nil and type(snap) == "table" and type(snap.op) == "table" then keyed = snap.op.keyed end
    if type(keyed) == "table" and keyed.backend ~= "rocksdb" and type(keyed.states) == "table" then
      out = out or {}
      for name, st in pairs(keyed.states) do
        local gs = out[name] or {}
        out[name] = gs
        for kg, g in pairs(st.groups or {}) do
          if kg >= first and kg <= last then gs[#gs + 1] = g end
        end
      end
    end
  end
  return out
end

--- The backend of keyed operator `uid` in a subtask (M.backend): when the
-- runtime restores (rt.restored_groups(uid, first, last) -> the value of
-- M.restored_groups for the backend's key groups),
-- the heap backend makes each state's table with room for its restored
-- entries, laid out as Lua would have grown it (core.table_for_pairs), so
-- that filling it does not rehash it.
-- @param rt the runtime's {max_parallelism, parallelism, subtask,
--   restored_groups = nil | f(uid, first, last)}
-- @param uid the operator's uid
-- @param clock as M.backend's
function M.operator_backend(rt, uid, clock)
  local b = M.backend(rt.max_parallelism, rt.parallelism, rt.subtask, clock)
  b.restored_groups = rt.restored_groups and rt.restored_groups(uid, b.kg_first, b.kg_last) or nil
  return b
end

-- Call method `name` of every backend M.backend made that needs the
-- runtime's calls (RocksDB ones; heap backends need none).
local function each(name, ...)
  local bs = config.backends
  if bs then
    for i = 1, #bs do bs[i][name](bs[i], ...) end
  end
end

--- Every backend writes back what it changed (the runtime calls it at the
-- end of a batch, a watermark or a timer round; cheap when all are heap).
-- @param soft boolean: a RocksDB backend may keep its cache until it holds
--   enough keys or bytes (tide.state_rocksdb's FLUSH_KEYS, FLUSH_BYTES);
--   reads go through it
function M.flush(soft) each("flush", soft) end

--- The synchronous part of checkpoint id's snapshot, in the task thread
-- before the fork (RocksDB: flush and a RocksDB checkpoint; for a
-- savepoint, savepoint true: the canonical snapshot, read whole).
function M.prepare_snapshot(id, savepoint) each("prepare_snapshot", id, savepoint) end

--- Whether this subtask's checkpoints may be taken without fork
-- (core.snapshot_async, core/asyncsnap.h), as far as keyed state goes:
-- it has none (on the heap backend: its operators' state is positions,
-- pending lists, operator state, encoded at the barrier as Flink copies
-- operator state synchronously), or its keyed state and timers live in
-- RocksDB instances (at most 64) whose checkpoints are incremental, so
-- what the task thread encodes at the barrier is small (the states'
-- descriptions; the files come from RocksDB checkpoints, uploaded by a
-- thread). Heap keyed state, full RocksDB checkpoints and heap timers need
-- the fork's copy-on-write image instead.
function M.snapshots_in_thread()
  if config.backend ~= "rocksdb" then return not config.keyed end
  local r = config.rocksdb or {}
  return r.incremental ~= false and r.timer_service ~= "heap" and #(config.backends or {}) <= 64
end

--- After the snapshot child of a checkpoint was forked: the task thread
-- leaves the prepared files to it.
function M.snapshot_started() each("snapshot_started") end

--- After restore: open every backend's storage now, so that a RocksDB
-- open failure (a state dir that is not writable) fails the subtask at
-- once, naming the path.
function M.open() each("db") end

--- Release every backend's storage (RocksDB: its working directory is
-- removed).
function M.close() each("close") end

--- A heap backend (live Lua values), whatever is configured (combiners'
-- partials, which live for one batch). Arguments as M.backend.
function M.heap_backend(max_parallelism, parallelism, subtask, clock)
  local maxp = max_parallelism or 128
  local first, last = M.key_group_range(maxp, parallelism or 1, subtask or 0)
  return setmetatable({ max_parallelism = maxp, kg_first = first, kg_last = last, states = {}, cfg = config,
    interned = setmetatable({}, { __mode = "v" }), clock = clock or function() return core().now_ms() end },
    Backend)
end

--- The layer's key for a record's key k (not nil): k itself, or for a
-- table the interned copy of its value.
function Backend:key(k)
  if type(k) ~= "table" then return k end
  local e = core().encode(k, true)
  local ik = self.interned[e]
  if ik == nil then
    ik = core().decode(e)
    self.interned[e] = ik
  end
  return ik
end

--- The state `name` of kind `kind` ("value", "list", "map", "reducing",
-- "aggregating"), created empty on first use: {name =, kind =, t =} where
-- t maps key -> value (the live table). Raises if name has another kind.
--
-- opts (optional): ttl = the state's time-to-live ({ms =, on_read =,
-- return_expired =}, see KeyedState): its values are then stored with the
-- time of their last write (or read) as {value, ms}, lists and maps per
-- element; registering a state with a TTL that was restored without one
-- (or the reverse) raises, as Flink refuses to enable or disable TTL on
-- existing state. namespaced = true for state per (key, namespace) (window
-- contents and trigger state: the namespace is a window id "start:stop"):
-- t maps key -> {namespace -> value}, and snapshots say so. version = the
-- schema version of a state made here (default 1; a restored state keeps
-- the version it was restored with until Backend:evolve).
function Backend:state(name, kind, opts)
  local ttl = opts and opts.ttl or nil
  local s = self.states[name]
  if s then
    if s.kind ~= kind then
      error(string.format("state '%s' is already registered as %s state, not %s state", name, s.kind, kind), 3)
    end
    if (s.ttl ~= nil) ~= (ttl ~= nil) then
      error(string.format("state '%s' %s and is registered %s one (as in Flink, a TTL cannot be enabled " ..
        "or disabled on existing state)", name, s.ttl and "has a TTL" or "has no TTL", ttl and "with" or "without"), 3)
    end
    if ttl then s.ttl = ttl end
    return s
  end
  s = { name = name, kind = kind, ttl = ttl, namespaced = opts and opts.namespaced or nil,
    version = opts and opts.version or 1 }
  s.t = self:new_table(s)
  self.states[name] = s
  return s
end

--- Call fn(k) for every key of state `name` that has an entry (fn may
-- read and write state; heap: keys of the live table, RocksDB: key group
-- by key group, writing back after each).
function Backend:each_key(name, fn)
  local s = self.states[name]
  if not s then return end
  local keys, n = {}, 0
  for k in pairs(s.t) do
    n = n + 1
    keys[n] = k
  end
  for i = 1, n do fn(keys[i]) end
end

--- The live table of a new state s (heap: a plain table).
function Backend:new_table(s)
  local gs = self.restored_groups and self.restored_groups[s.name]
  if gs then return core().table_for_pairs(gs) end
  return {}
end

--- End of a batch: write what the batch changed (heap: nothing to do).
function Backend:flush() end

--- The synchronous part of checkpoint id's snapshot, before the fork
-- (heap: nothing; the child serializes the live values).
function Backend:prepare_snapshot() end

--- The snapshot child was forked (heap: nothing to hand over).
function Backend:snapshot_started() end

--- Release what the backend holds (heap: nothing).
function Backend:close() end

-- A TTL state's entry v with its expired parts left out (nil: nothing
-- left): a {value, ms} pair, a list of them, or a map of them.
local function unexpired(kind, v, ms, now)
  if kind == "list" then
    local out = {}
    for i = 1, #v do
      local e = v[i]
      if e[2] + ms > now then out[#out + 1] = e end
    end
    return #out > 0 and out or nil
  elseif kind == "map" then
    local out
    for mk, e in pairs(v) do
      if e[2] + ms > now then
        out = out or {}
        out[mk] = e
      end
    end
    return out
  end
  return v[2] + ms > now and v or nil
end

--- Plain data for a snapshot, grouped by key group: {version = 1,
-- max_parallelism =, states = {[name] = {kind =, namespaced =, ttl =,
-- version =, group_versions =, groups = {[kg] = {key1, value1, key2,
-- value2, ...}}}}} (a namespaced state's values are {namespace -> value}
-- tables; version is the state's schema version, absent when 1;
-- group_versions = {[kg] = version} for key groups whose values are in
-- another one, see register_restored). Encoded at once (by the checkpoint's
-- child): the values are the live ones.
function Backend:snapshot()
  local maxp, key_group = self.max_parallelism, core().key_group
  local states = {}
  local now = self.clock()
  for name, s in pairs(self.states) do
    local groups = {}
    local kind, ttl = s.kind, s.ttl
    -- expired TTL state is not written (Flink's cleanupFullSnapshot); a
    -- restored TTL state not registered again (ttl = true) is kept whole
    local ms = type(ttl) == "table" and ttl.ms
    for k, v in pairs(s.t) do
      if ms then v = unexpired(kind, v, ms, now) end
      if v ~= nil then
        local kg = key_group(k, maxp)
        local g = groups[kg]
        if not g then
          g = {}
          groups[kg] = g
        end
        g[#g + 1] = k
        g[#g + 1] = v
      end
    end
    states[name] = M.describe(s, groups)
  end
  return { version = 1, max_parallelism = maxp, states = states }
end

--- A snapshot's description of state s (both backends' snapshots): {kind
-- =, namespaced =, ttl = true | nil, version = (nil when 1),
-- group_versions =, groups = groups}.
function M.describe(s, groups)
  return { kind = s.kind, namespaced = s.namespaced, ttl = s.ttl and true or nil, groups = groups,
    version = s.version ~= 1 and s.version or nil, group_versions = s.group_versions }
end

--- Raise unless snapshot snap (of either backend) can be restored here:
-- it was taken with this backend's max parallelism.
function Backend:check_snapshot(snap)
  if snap.max_parallelism ~= self.max_parallelism then
    error(string.format("cannot restore keyed state taken with max parallelism %s at max parallelism %d",
      tostring(snap.max_parallelism), self.max_parallelism), 0)
  end
end

--- The snapshot in the canonical, backend-independent format that
-- savepoints write: for the heap backend, snapshot() itself.
function Backend:canonical_snapshot() return self:snapshot() end

--- Restore from snapshots (each a snapshot() of an old subtask, decoded;
-- false or nil entries are skipped): every entry of a key group in this
-- backend's range, added to what is here. Raises when a snapshot was
-- taken with another max parallelism.
function Backend:restore(snaps)
  for i = 1, #snaps do
    local snap = snaps[i]
    if snap then
      self:check_snapshot(snap)
      if snap.backend == "rocksdb" then
        -- another backend's snapshot: read its instance (clipped to this
        -- backend's key groups) into live values
        require("tide.state_rocksdb").scan_snapshot(self.cfg, snap, self, function(s, k, ns, v)
          local t = s.t
          k = self:key(k)
          if ns == nil then
            t[k] = v
          else
            local m = t[k]
            if not m then
              m = {}
              t[k] = m
            end
            m[ns] = v
          end
        end)
      end
      if snap.backend ~= "rocksdb" then
        -- (each_snapshot_entry's loop, in C: no call per entry)
        local fill = core().fill_pairs
        for name, st in pairs(snap.states) do
          local t = self:register_restored(name, st).t
          for kg, g in pairs(st.groups) do
            if kg >= self.kg_first and kg <= self.kg_last then
              local tables = fill(t, g)
              if tables then
                for x = 1, #tables do
                  local j = tables[x]
                  t[self:key(g[j])] = g[j + 1]
                end
              end
            end
          end
        end
      end
    end
  end
end

--- Register state `name` as a snapshot describes it (st: {kind =,
-- namespaced =, ttl =, version =, group_versions =, groups =}) and return
-- it. A TTL state's config comes with its registration by the operator:
-- until then its ttl is true. The schema versions of the values restored
-- are noted for Backend:evolve: the state's version is the first
-- snapshot's, and key groups restored in another one (old subtasks may
-- differ after a rescaling: one that never declared the state again kept
-- its old version) go in s.group_versions.
-- @param first, last the key groups the snapshot holds (a RocksDB
--   snapshot's range); nil: those of st.groups (heap format)
function Backend:register_restored(name, st, first, last)
  local have = self.states[name]
  local s = self:state(name, st.kind, { namespaced = st.namespaced,
    ttl = st.ttl and (have and have.ttl or true) or nil })
  local v, gv = st.version or 1, st.group_versions
  if not have then s.version = v end
  if v == s.version and gv == nil then return s end
  local function note(kg)
    if kg < self.kg_first or kg > self.kg_last then return end
    local o = gv and gv[kg] or v
    local sgv = s.group_versions
    if o ~= s.version then
      sgv = sgv or {}
      s.group_versions = sgv
      sgv[kg] = o
    elseif sgv then
      sgv[kg] = nil
      if next(sgv) == nil then s.group_versions = nil end
    end
  end
  if first then
    for kg = math.max(first, self.kg_first), math.min(last, self.kg_last) do note(kg) end
  else
    for kg in pairs(st.groups) do note(kg) end
  end
  return s
end

-- ---- state schema evolution ------------------------------------------------------
--
-- A state declared with {version = n, migrate = f} (KeyedState) whose
-- restored values are of an older version has them migrated when it is
-- declared, once, all of them (as Flink migrates state when a new
-- serializer is registered for restored state: RocksDB's
-- migrateStateValues): f(old_value, old_version) -> new_value, per value
-- of value, reducing (the reduced value) and aggregating state (the
-- accumulator), per element of list state and per value of map state (map
-- keys stay), per namespace of namespaced state; TTL values keep their
-- timestamps. A restored version newer than the declared one, or an older
-- one without f, is refused.

-- The stored value x of one key of state s (or one entry of it: part,
-- RocksDB's map value or namespace) with every user value in it passed
-- through f.
local function convert(s, x, part, f)
  local kind, ttl = s.kind, s.ttl
  local function one(v)
    if ttl then return { f(v[1]), v[2] } end
    return f(v)
  end
  local function plain(v) -- the value of one key (and namespace)
    local out = {}
    if kind == "list" then
      for i = 1, #v do out[i] = one(v[i]) end
    elseif kind == "map" then
      for mk, e in pairs(v) do out[mk] = one(e) end
    else
      return one(v)
    end
    return out
  end
  if s.namespaced then
    if part then return plain(x) end
    local out = {}
    for ns, v in pairs(x) do out[ns] = plain(v) end
    return out
  end
  if part then return one(x) end -- a map value
  return plain(x)
end

--- Bring state s to schema version `version`: every restored value of an
-- older version is passed through migrate(old_value, old_version) ->
-- new_value (see above), once; later calls with the version s has are
-- free. Flink's state schema evolution, at registration.
-- @param s a state of this backend (Backend:state, register_restored)
-- @param version integer >= 1, the declared version
-- @param migrate function or nil
-- @param owner string naming the operator in messages, or nil
-- @return true, or nil and a message naming the state, the operator and
--   both versions (a version going down, no migrate), or the key whose
--   migration raised (or returned nil); nothing is changed then
function Backend:evolve(s, version, migrate, owner)
  local gv = s.group_versions
  if s.version == version and gv == nil then return true end
  local olds = { s.version }
  for _, o in pairs(gv or {}) do olds[#olds + 1] = o end
  table.sort(olds)
  local who = string.format("state '%s'%s", s.name, owner and " of " .. owner or "")
  if olds[#olds] > version then
    return nil, string.format("%s was restored with version %d, newer than version %d it is declared " ..
      "with: a state's version cannot go down", who, olds[#olds], version)
  end
  if olds[1] < version and not migrate then
    return nil, string.format("%s was restored with version %d and is declared with version %d without " ..
      "a migrate function (migrate = function(old_value, old_version) return new_value end)",
      who, olds[1], version)
  end
  local base = s.version
  local function old_of(kg)
    local o = gv and gv[kg] or base
    if o ~= version then return o end
  end
  local failed = {} -- what fn raises: the key, its version and the error
  local function fn(k, v, old, part)
    local ok, r = pcall(convert, s, v, part, function(x)
      local y = migrate(x, old)
      if y == nil then error("migrate returned nil", 0) end
      return y
    end)
    if ok then return r end
    failed.key, failed.old, failed.err = k, old, r
    error(failed, 0)
  end
  local ok, err = pcall(self.rewrite, self, s, old_of, fn)
  if not ok then
    if err ~= failed then return nil, string.format("migrating %s to version %d: %s", who, version, tostring(err)) end
    return nil, string.format("migrating %s from version %d to %d failed at key %s: %s", who, failed.old, version,
      util().format(failed.key, true), tostring(failed.err))
  end
  s.version, s.group_versions = version, nil
  return true
end

--- Replace the values of state s whose key group kg has old_of(kg) ~= nil
-- by fn(key, stored value, old_of(kg), part) (heap: the live table's
-- values, part false), all or none: what fn raises is raised with
-- nothing changed.
function Backend:rewrite(s, old_of, fn)
  local t, maxp, key_group = s.t, self.max_parallelism, core().key_group
  local keys, vals, n = {}, {}, 0
  for k, v in pairs(t) do
    local old = old_of(key_group(k, maxp))
    if old then
      n = n + 1
      keys[n], vals[n] = k, fn(k, v, old, false)
    end
  end
  for i = 1, n do t[keys[i]] = vals[i] end
end

--- Call fn(s, key, value) for every entry of heap-format snapshot snap
-- (snapshot() or canonical_snapshot()) in this backend's key groups, s
-- the state it belongs to (registered as the snapshot describes it).
function Backend:each_snapshot_entry(snap, fn)
  for name, st in pairs(snap.states) do
    local s = self:register_restored(name, st)
    for kg, g in pairs(st.groups) do
      if kg >= self.kg_first and kg <= self.kg_last then
        for j = 1, #g, 2 do fn(s, g[j], g[j + 1]) end
      end
    end
  end
end

--- The old snapshots a keyed operator restores its keyed state from: its
-- own (s) when the parallelism is unchanged, else every old subtask's
-- (all, up to the old parallelism; the backend keeps the key groups of
-- this subtask), as Flink restores keyed state by key-group range.
-- @param s this subtask's old snapshot (nil: none)
-- @param all every old subtask's snapshot in subtask order: a plain list,
--   or the runtime's lazy list with its length in all.n (nil: none)
-- @param parallelism the operator's parallelism now
function M.keyed_sources(s, all, parallelism)
  local n = all and (all.n or #all) or 0
  if n == 0 or n == parallelism then return s and { s } or {} end
  local olds = {}
  for i = 1, n do
    if all[i] then olds[#olds + 1] = all[i] end
  end
  return olds
end

--- Whether key k (a layer key) belongs to this backend's key groups.
function Backend:owns(k)
  local kg = core().key_group(k, self.max_parallelism)
  return kg >= self.kg_first and kg <= self.kg_last
end

-- ---- process functions' handles ------------------------------------------------

local KeyedState = {}
KeyedState.__index = KeyedState

--- The state handles of a process function (ctx.state).
-- @param current table whose field `key` the runtime sets to the current
--   layer key (backend:key) before each record
-- @param backend the operator's backend (default: a new one)
-- @param owner string naming the operator in errors of schema evolution
--   (operators.lua's describe(node)), or nil
function M.new(current, backend, owner)
  -- handles by name, with the kind and options table they were made with
  -- (a later call with the same ones returns the handle at once)
  return setmetatable({ current = current, backend = backend or M.backend(), owner = owner, handles = {},
    kinds = {}, opts = {} }, KeyedState)
end

local TTL_UPDATE = { on_create_and_write = false, on_read_and_write = true }
local TTL_VISIBILITY = { never_return_expired = false, return_expired_if_not_cleaned = true }

local OPTIONS = { ttl = true, version = true, migrate = true }

-- The schema version and migrate function of opts ({version =, migrate
-- =}): an integer >= 1 (default 1) and a function or nil. Raises at the
-- declaration's caller with bad(message, 1) (one level deeper).
local function parse_schema(opts, bad)
  local v, migrate = opts.version, opts.migrate
  if v == nil then
    v = 1
  elseif type(v) ~= "number" or v < 1 or v ~= math.floor(v) or v >= 2 ^ 31 then
    bad("version: a positive integer expected, got " .. (type(v) == "number" and tostring(v) or type(v)), 1)
  end
  if migrate ~= nil and type(migrate) ~= "function" then
    bad("migrate: a function(old_value, old_version) expected, got " .. type(migrate), 1)
  end
  if migrate and v == 1 then
    bad("migrate: needs a version above 1 (version = n: the version migrate brings values to)", 1)
  end
  return math.floor(v), migrate
end

-- The options of a state declaration: the TTL of opts ({ttl = {time =,
-- update =, visibility =}}, as Flink's StateTtlConfig), parsed: {ms =,
-- on_read =, return_expired =} or nil; then the schema version and
-- migrate function (parse_schema).
local function parse_opts(opts, kind, level)
  if opts == nil then return nil, 1, nil end
  local function bad(msg, deeper) error("bad argument to '" .. kind .. "' (" .. msg .. ")", level + 2 + (deeper or 0)) end
  if type(opts) ~= "table" then bad("options table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not OPTIONS[k] then bad("unknown option '" .. tostring(k) .. "'") end
  end
  local version, migrate = parse_schema(opts, bad)
  local t = opts.ttl
  if t == nil then return nil, version, migrate end
  if type(t) ~= "table" then bad("ttl: table {time =, update =, visibility =} expected, got " .. type(t)) end
  for k in pairs(t) do
    if k ~= "time" and k ~= "update" and k ~= "visibility" then bad("unknown ttl option '" .. tostring(k) .. "'") end
  end
  local ok, ms = pcall(util().duration, t.time, "ttl.time")
  if not ok or ms <= 0 then bad("ttl.time: a positive duration expected, got " .. tostring(t.time)) end
  local upd, vis = t.update or "on_create_and_write", t.visibility or "never_return_expired"
  if TTL_UPDATE[upd] == nil then
    bad("ttl.update: 'on_create_and_write' or 'on_read_and_write' expected, got " .. tostring(upd))
  end
  if TTL_VISIBILITY[vis] == nil then
    bad("ttl.visibility: 'never_return_expired' or 'return_expired_if_not_cleaned' expected, got " .. tostring(vis))
  end
  return { ms = ms, on_read = TTL_UPDATE[upd], return_expired = TTL_VISIBILITY[vis] }, version, migrate
end

-- The handle of state `name` of `kind` for the process function: the one
-- made before for the same name, kind and options table (returned at once:
-- ctx.state:value(name) runs per record), else check() (argument checks,
-- may be nil), the options parsed and a restored state brought to the
-- declared schema version (Backend:evolve: once, the first time it is
-- declared), then a new one: make(cur, t), or make_ttl(cur, t, ttl,
-- clock) when opts has a TTL. Errors name the caller of the
-- KeyedState method (level 3: the methods must not tail-call handle, or
-- the caller's frame is gone and errors name its caller).
local function handle(self, name, kind, opts, check, make, make_ttl)
  local h = self.handles[name]
  if h and self.kinds[name] == kind and self.opts[name] == opts then return h end
  if check then check() end
  local ttl, version, migrate = parse_opts(opts, kind, 3)
  if type(name) ~= "string" then
    error("bad argument #1 to '" .. kind .. "' (state name expected, got " .. type(name) .. ")", 3)
  end
  local s = self.backend.states[name]
  if s and s.kind ~= kind then
    error(string.format("state '%s' is already registered as %s state, not %s state", name, s.kind, kind), 3)
  end
  if s and (s.ttl ~= nil) ~= (ttl ~= nil) then
    error(string.format("state '%s' %s and is registered %s one (as in Flink, a TTL cannot be enabled " ..
      "or disabled on existing state)", name, s.ttl and "has a TTL" or "has no TTL", ttl and "with" or "without"), 3)
  end
  if s then
    local ok, err = self.backend:evolve(s, version, migrate, self.owner)
    if not ok then error(err, 3) end
  end
  local t = self.backend:state(name, kind, { ttl = ttl, version = version }).t
  if h then return h end
  self.kinds[name], self.opts[name] = kind, opts
  if ttl then h = make_ttl(self.current, t, ttl, self.backend.clock) else h = make(self.current, t) end
  self.handles[name] = h
  return h
end

-- ---- state with a time-to-live (Flink's StateTtlConfig) ------------------------
--
-- Values are stored as {value, ms}: ms is the processing time of the last
-- write (on_create_and_write) or of the last read or write
-- (on_read_and_write); lists and maps keep one per element. A value whose
-- ms + ttl <= now is expired: an access finds it absent and removes it
-- (never_return_expired) or returns it once and removes it
-- (return_expired_if_not_cleaned); full snapshots leave expired values out.
local TTL = {}

-- The value of key k's entry {v, ms} in t, or nil: an expired entry is
-- removed (and returned once when the TTL says so); a read refreshes a
-- live one (on_read_and_write).
local function ttl_read(t, k, ttl, now)
  local e = t[k]
  if e == nil then return nil end
  local n = now()
  if e[2] + ttl.ms <= n then
    t[k] = nil
    if ttl.return_expired then return e[1] end
    return nil
  end
  if ttl.on_read then e[2] = n end
  return e[1]
end

function TTL.value(cur, t, ttl, now)
  return {
    value = function() return ttl_read(t, cur.key, ttl, now) end,
    update = function(_, v)
      if v == nil then t[cur.key] = nil else t[cur.key] = { v, now() } end
    end,
    clear = function() t[cur.key] = nil end,
  }
end

local check_not_nil, array_length -- defined below

function TTL.list(cur, t, ttl, now)
  local ms, on_read, ret = ttl.ms, ttl.on_read, ttl.return_expired
  return {
    get = function()
      local k = cur.key
      local l = t[k]
      if not l then return {} end
      local n, out, keep = now(), {}, {}
      for i = 1, #l do
        local e = l[i]
        if e[2] + ms > n then
          if on_read then e[2] = n end
          out[#out + 1] = e[1]
          keep[#keep + 1] = e
        elseif ret then
          out[#out + 1] = e[1]
        end
      end
      t[k] = #keep > 0 and keep or nil
      return out
    end,
    add = function(_, v)
      check_not_nil(v, "add")
      local k = cur.key
      local l, e = t[k], { v, now() }
      if l then l[#l + 1] = e else t[k] = { e } end
    end,
    add_all = function(_, vs)
      local n = array_length(vs, "add_all")
      if n == 0 then return end
      local k, ts = cur.key, now()
      local l = t[k] or {}
      t[k] = l
      for i = 1, n do l[#l + 1] = { vs[i], ts } end
    end,
    update = function(_, vs)
      local n = array_length(vs, "update")
      local ts, l = now(), {}
      for i = 1, n do l[i] = { vs[i], ts } end
      t[cur.key] = n > 0 and l or nil
    end,
    clear = function() t[cur.key] = nil end,
  }
end

function TTL.map(cur, t, ttl, now)
  local ms, on_read = ttl.ms, ttl.on_read
  -- the user map of the current key with its expired entries removed (nil
  -- when none is left); a read refreshes what it returns (on_read)
  local function live(touch)
    local k = cur.key
    local m = t[k]
    if not m then return nil end
    local n = now()
    for mk, e in pairs(m) do
      if e[2] + ms <= n then m[mk] = nil elseif touch and on_read then e[2] = n end
    end
    if next(m) == nil then
      t[k] = nil
      return nil
    end
    return m
  end
  local function snapshot_of(m, what)
    local out, i = {}, 0
    for mk, e in pairs(m or {}) do
      i = i + 1
      out[i] = what == "k" and mk or what == "v" and e[1] or { mk, e[1] }
    end
    return out
  end
  local function remove(mk)
    local k = cur.key
    local m = t[k]
    if m then
      m[mk] = nil
      if next(m) == nil then t[k] = nil end
    end
  end
  return {
    get = function(_, mk)
      local k = cur.key
      local m = t[k]
      if not m then return nil end
      local v = ttl_read(m, mk, ttl, now)
      if next(m) == nil then t[k] = nil end
      return v
    end,
    put = function(_, mk, v)
      if mk == nil then error("put: map state keys cannot be nil", 2) end
      if v == nil then return remove(mk) end
      local k = cur.key
      local m = t[k]
      if not m then
        m = {}
        t[k] = m
      end
      m[mk] = { v, now() }
    end,
    put_all = function(_, kv)
      if type(kv) ~= "table" then error("put_all: table expected", 2) end
      if next(kv) == nil then return end
      local k, ts = cur.key, now()
      local m = t[k]
      if not m then
        m = {}
        t[k] = m
      end
      for mk, v in pairs(kv) do m[mk] = { v, ts } end
    end,
    remove = function(_, mk) remove(mk) end,
    contains = function(_, mk)
      local m = live(false)
      return m ~= nil and m[mk] ~= nil
    end,
    -- iterators run over a copy of the unexpired entries
    entries = function()
      local list, i = snapshot_of(live(true), "kv"), 0
      return function()
        i = i + 1
        local e = list[i]
        if e then return e[1], e[2] end
      end
    end,
    keys = function()
      local list, i = snapshot_of(live(true), "k"), 0
      return function()
        i = i + 1
        return list[i]
      end
    end,
    values = function()
      local list, i = snapshot_of(live(true), "v"), 0
      return function()
        i = i + 1
        return list[i]
      end
    end,
    is_empty = function() return live(false) == nil end,
    clear = function() t[cur.key] = nil end,
  }
end

-- reducing and aggregating state: one accumulator per key, {acc, ms};
-- first(v) starts one, fold(acc, v) adds to it, result(acc) reads it
function TTL.folding(cur, t, ttl, now, first, fold, result)
  local ms = ttl.ms
  return {
    get = function()
      local acc = ttl_read(t, cur.key, ttl, now)
      if acc == nil then return nil end
      return result(acc)
    end,
    add = function(_, v)
      check_not_nil(v, "add")
      local k, n = cur.key, now()
      local e = t[k]
      -- an expired accumulator is gone: the value starts a new one
      local acc = (e and e[2] + ms > n) and fold(e[1], v) or first(v)
      t[k] = { acc, n }
    end,
    clear = function() t[cur.key] = nil end,
  }
end

--- The options of every KeyedState declaration (opts, a table or nil):
-- ttl = {time =, update =, visibility =} (Flink's StateTtlConfig, see
-- parse_opts); version = integer >= 1, the schema version of the state's
-- values (default 1), and migrate = function(old_value, old_version) ->
-- new_value, called once per restored value of an older version when the
-- state is declared (Flink's state schema evolution; see "state schema
-- evolution" above for what a value is per kind: the value, each list
-- element, each map value, the reduced value, the accumulator). Errors
-- (raised at the declaring line): a bad option; a restored version newer
-- than the declared one, or older without migrate (naming the state, the
-- operator and both versions); migrate raising or returning nil (naming
-- the key).

--- ValueState: value() -> v or nil; update(v) (nil clears); clear().
-- @param name string, the state's name in the operator
-- @param opts table or nil: ttl, version, migrate (above)
-- @return the handle, bound to the current key
function KeyedState:value(name, opts)
  -- (the handle made before, with no closure made for handle(): this
  -- runs per record)
  local h = self.handles[name]
  if h and self.kinds[name] == "value" and self.opts[name] == opts then return h end
  h = handle(self, name, "value", opts, nil, function(cur, t)
    return {
      value = function() return t[cur.key] end,
      update = function(_, v) t[cur.key] = v end,
      clear = function() t[cur.key] = nil end,
    }
  end, TTL.value)
  return h
end

function check_not_nil(v, what)
  if v == nil then error(what .. ": nil cannot be added to state", 3) end
end

-- The length of vs, an array with no holes: Flink's ListState refuses a
-- null element in addAll/update (a hole here, e.g. {3, nil, 5}), and keys
-- that are not 1..n are not a list. Raises at the caller's caller.
function array_length(vs, what)
  if type(vs) ~= "table" then error(what .. ": array expected", 3) end
  local count, max = 0, 0
  for k in pairs(vs) do
    if type(k) ~= "number" or k < 1 or k ~= math.floor(k) then
      error(what .. ": array expected (a key " .. tostring(k) .. " is not an index 1..n)", 3)
    end
    count = count + 1
    if k > max then max = k end
  end
  if count ~= max then
    for i = 1, max do
      if vs[i] == nil then
        error(string.format("%s: element %d is nil: nil cannot be added to list state", what, i), 3)
      end
    end
  end
  return max
end

--- ListState: get() -> array (empty when unset; the live list: copy it
-- before keeping it), add(v), add_all(array), update(array), clear(). As
-- Flink's ListState, nil cannot be added: add(nil) and an array with a
-- hole ({3, nil, 5}) are errors that leave the state unchanged.
-- opts: ttl, version, migrate (per element); returns the handle.
function KeyedState:list(name, opts)
  local h = self.handles[name] -- (as in KeyedState:value)
  if h and self.kinds[name] == "list" and self.opts[name] == opts then return h end
  h = handle(self, name, "list", opts, nil, function(cur, t)
    return {
      get = function()
        return t[cur.key] or {}
      end,
      add = function(_, v)
        check_not_nil(v, "add")
        local k = cur.key
        local l = t[k]
        if not l then
          t[k] = { v }
        else
          l[#l + 1] = v
        end
      end,
      add_all = function(_, vs)
        local n = array_length(vs, "add_all")
        if n == 0 then return end
        local k = cur.key
        local l = t[k]
        if not l then
          l = {}
          t[k] = l
        end
        local m = #l
        for i = 1, n do l[m + i] = vs[i] end
      end,
      update = function(_, vs)
        local n = array_length(vs, "update")
        local l = {}
        for i = 1, n do l[i] = vs[i] end
        t[cur.key] = n > 0 and l or nil
      end,
      clear = function() t[cur.key] = nil end,
    }
  end, TTL.list)
  return h
end

--- MapState: get(k), put(k, v), put_all(t), remove(k), contains(k),
-- entries() (iterator of k, v), keys(), values(), is_empty(), clear().
-- opts: ttl, version, migrate (per map value; map keys stay); returns the
-- handle.
function KeyedState:map(name, opts)
  local h = self.handles[name] -- (as in KeyedState:value)
  if h and self.kinds[name] == "map" and self.opts[name] == opts then return h end
  h = handle(self, name, "map", opts, nil, function(cur, t)
    local function user_map(create)
      local k = cur.key
      local m = t[k]
      if not m and create then
        m = {}
        t[k] = m
      end
      return m
    end
    local EMPTY = {}
    return {
      get = function(_, mk)
        local m = t[cur.key]
        return m and m[mk]
      end,
      put = function(_, mk, v)
        if mk == nil then error("put: map state keys cannot be nil", 2) end
        if v == nil then
          local m = t[cur.key]
          if m then
            m[mk] = nil
            if next(m) == nil then t[cur.key] = nil end
          end
          return
        end
        user_map(true)[mk] = v
      end,
      put_all = function(_, kv)
        if type(kv) ~= "table" then error("put_all: table expected", 2) end
        if next(kv) == nil then return end
        local m = user_map(true)
        for mk, v in pairs(kv) do m[mk] = v end
      end,
      remove = function(_, mk)
        local m = t[cur.key]
        if m then
          m[mk] = nil
          if next(m) == nil then t[cur.key] = nil end
        end
      end,
      contains = function(_, mk)
        local m = t[cur.key]
        return m ~= nil and m[mk] ~= nil
      end,
      entries = function() return next, t[cur.key] or EMPTY, nil end,
      keys = function()
        local m = t[cur.key] or EMPTY
        local k
        return function()
          k = next(m, k)
          return k
        end
      end,
      values = function()
        local m = t[cur.key] or EMPTY
        local k, v
        return function()
          k, v = next(m, k)
          return v
        end
      end,
      is_empty = function() return t[cur.key] == nil end,
      clear = function() t[cur.key] = nil end,
    }
  end, TTL.map)
  return h
end

--- ReducingState: add(v) folds v into the value with fn(acc, v) (the first
-- value is kept as is), get() -> acc or nil, clear(). opts (third):
-- ttl, version, migrate (of the reduced value); returns the handle.
function KeyedState:reducing(name, fn, opts)
  local h = self.handles[name] -- (as in KeyedState:value)
  if h and self.kinds[name] == "reducing" and self.opts[name] == opts then return h end
  h = handle(self, name, "reducing", opts, function()
    if type(fn) ~= "function" then error("bad argument #2 to 'reducing' (function expected)", 4) end
  end, function(cur, t)
    return {
      get = function() return t[cur.key] end,
      add = function(_, v)
        check_not_nil(v, "add")
        local k = cur.key
        local acc = t[k]
        if acc == nil then
          t[k] = v
        else
          acc = fn(acc, v)
          if acc == nil then error("reducing state '" .. name .. "': the reduce function returned nil", 2) end
          t[k] = acc
        end
      end,
      clear = function() t[cur.key] = nil end,
    }
  end, function(cur, t, ttl, clock)
    return TTL.folding(cur, t, ttl, clock, function(v) return v end, function(acc, v)
      acc = fn(acc, v)
      if acc == nil then error("reducing state '" .. name .. "': the reduce function returned nil", 3) end
      return acc
    end, function(acc) return acc end)
  end)
  return h
end

--- AggregatingState (Flink's AggregateFunction): agg = {create = fn() ->
-- acc, add = fn(acc, v) -> acc, result = fn(acc) -> out}; add(v), get() ->
-- result or nil when empty, clear(). opts (third): ttl, version,
-- migrate (of the accumulator, not the result); returns the handle.
function KeyedState:aggregating(name, agg, opts)
  local h = self.handles[name] -- (as in KeyedState:value)
  if h and self.kinds[name] == "aggregating" and self.opts[name] == opts then return h end
  h = handle(self, name, "aggregating", opts, function()
    if type(agg) ~= "table" or type(agg.create) ~= "function" or type(agg.add) ~= "function"
      or type(agg.result) ~= "function" then
      error("bad argument #2 to 'aggregating' (table with create, add and result functions expected)", 4)
    end
  end, function(cur, t)
    return {
      get = function()
        local acc = t[cur.key]
        if acc == nil then return nil end
        return agg.result(acc)
      end,
      add = function(_, v)
        check_not_nil(v, "add")
        local k = cur.key
        local acc = t[k]
        if acc == nil then acc = agg.create() end
        acc = agg.add(acc, v)
        if acc == nil then error("aggregating state '" .. name .. "': add returned nil", 2) end
        t[k] = acc
      end,
      clear = function() t[cur.key] = nil end,
    }
  end, function(cur, t, ttl, clock)
    local function add(acc, v)
      acc = agg.add(acc, v)
      if acc == nil then error("aggregating state '" .. name .. "': add returned nil", 3) end
      return acc
    end
    return TTL.folding(cur, t, ttl, clock, function(v) return add(agg.create(), v) end, add, agg.result)
  end)
  return h
end

--- Stand-in for ctx.state on a non-keyed stream: every use is an error.
M.unkeyed = setmetatable({}, {
  __index = function(_, k)
    return function()
      error("keyed state ('" .. tostring(k) .. "') is only available on a keyed stream (use key_by)", 2)
    end
  end,
})

return M
