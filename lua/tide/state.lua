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
local M = {}

local core_mod
local function core()
  core_mod = core_mod or require "tide.core"
  return core_mod
end

-- ---- the backend -------------------------------------------------------------

local Backend = {}
Backend.__index = Backend

--- The key-group range of subtask `subtask` (0-based) of `parallelism`
-- with max_parallelism key groups, as Flink's KeyGroupRangeAssignment
-- (computeKeyGroupRangeForOperatorIndex): first, last (inclusive).
function M.key_group_range(max_parallelism, parallelism, subtask)
  local first = math.floor((subtask * max_parallelism + parallelism - 1) / parallelism)
  local last = math.floor(((subtask + 1) * max_parallelism - 1) / parallelism)
  return first, last
end

--- A heap backend for one keyed operator of a subtask.
-- @param max_parallelism number of key groups (default 128)
-- @param parallelism, subtask the operator's; they give the key-group range
--   this backend restores (default 1, 0: all of them)
function M.backend(max_parallelism, parallelism, subtask)
  local maxp = max_parallelism or 128
  local first, last = M.key_group_range(maxp, parallelism or 1, subtask or 0)
  return setmetatable({ max_parallelism = maxp, kg_first = first, kg_last = last, states = {},
    interned = setmetatable({}, { __mode = "v" }) }, Backend)
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
-- @param opts optional: namespaced = true for state per (key, namespace)
--   (window contents and trigger state: the namespace is a window id
--   "start:stop"): t maps key -> {namespace -> value}, and snapshots say so.
function Backend:state(name, kind, opts)
  local s = self.states[name]
  if s then
    if s.kind ~= kind then
      error(string.format("state '%s' is already registered as %s state, not %s state", name, s.kind, kind), 3)
    end
    return s
  end
  s = { name = name, kind = kind, t = {}, namespaced = opts and opts.namespaced or nil }
  self.states[name] = s
  return s
end

--- Plain data for a snapshot, grouped by key group: {version = 1,
-- max_parallelism =, states = {[name] = {kind =, namespaced =, groups =
-- {[kg] = {key1, value1, key2, value2, ...}}}}} (a namespaced state's
-- values are {namespace -> value} tables). Encoded at once (by the
-- checkpoint's child): the values are the live ones.
function Backend:snapshot()
  local maxp, key_group = self.max_parallelism, core().key_group
  local states = {}
  for name, s in pairs(self.states) do
    local groups = {}
    for k, v in pairs(s.t) do
      local kg = key_group(k, maxp)
      local g = groups[kg]
      if not g then
        g = {}
        groups[kg] = g
      end
      g[#g + 1] = k
      g[#g + 1] = v
    end
    states[name] = { kind = s.kind, namespaced = s.namespaced, groups = groups }
  end
  return { version = 1, max_parallelism = maxp, states = states }
end

--- Restore from snapshots (each a snapshot() of an old subtask, decoded;
-- false or nil entries are skipped): every entry of a key group in this
-- backend's range, added to what is here. Raises when a snapshot was
-- taken with another max parallelism.
function Backend:restore(snaps)
  for i = 1, #snaps do
    local snap = snaps[i]
    if snap then
      if snap.max_parallelism ~= self.max_parallelism then
        error(string.format("cannot restore keyed state taken with max parallelism %s at max parallelism %d",
          tostring(snap.max_parallelism), self.max_parallelism), 0)
      end
      for name, st in pairs(snap.states) do
        local t = self:state(name, st.kind, st).t
        for kg, g in pairs(st.groups) do
          if kg >= self.kg_first and kg <= self.kg_last then
            for j = 1, #g, 2 do t[self:key(g[j])] = g[j + 1] end
          end
        end
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
function M.new(current, backend)
  return setmetatable({ current = current, backend = backend or M.backend(), handles = {} }, KeyedState)
end

local function register(self, name, kind, level)
  if type(name) ~= "string" then
    error("bad argument #1 to '" .. kind .. "' (state name expected, got " .. type(name) .. ")", level + 1)
  end
  local s = self.backend.states[name]
  if s and s.kind ~= kind then
    error(string.format("state '%s' is already registered as %s state, not %s state", name, s.kind, kind), level + 1)
  end
  return self.handles[name], self.backend:state(name, kind).t
end

--- ValueState: value() -> v or nil; update(v) (nil clears); clear().
function KeyedState:value(name)
  local h, t = register(self, name, "value", 2)
  if h then return h end
  local cur = self.current
  h = {
    value = function() return t[cur.key] end,
    update = function(_, v) t[cur.key] = v end,
    clear = function() t[cur.key] = nil end,
  }
  self.handles[name] = h
  return h
end

local function check_not_nil(v, what)
  if v == nil then error(what .. ": nil cannot be added to state", 3) end
end

-- The length of vs, an array with no holes: Flink's ListState refuses a
-- null element in addAll/update (a hole here, e.g. {3, nil, 5}), and keys
-- that are not 1..n are not a list. Raises at the caller's caller.
local function array_length(vs, what)
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
function KeyedState:list(name)
  local h, t = register(self, name, "list", 2)
  if h then return h end
  local cur = self.current
  h = {
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
  self.handles[name] = h
  return h
end

--- MapState: get(k), put(k, v), put_all(t), remove(k), contains(k),
-- entries() (iterator of k, v), keys(), values(), is_empty(), clear().
function KeyedState:map(name)
  local h, t = register(self, name, "map", 2)
  if h then return h end
  local cur = self.current
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
  h = {
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
  self.handles[name] = h
  return h
end

--- ReducingState: add(v) folds v into the value with fn(acc, v) (the first
-- value is kept as is), get() -> acc or nil, clear().
function KeyedState:reducing(name, fn)
  if type(fn) ~= "function" then error("bad argument #2 to 'reducing' (function expected)", 2) end
  local h, t = register(self, name, "reducing", 2)
  if h then return h end
  local cur = self.current
  h = {
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
  self.handles[name] = h
  return h
end

--- AggregatingState (Flink's AggregateFunction): agg = {create = fn() ->
-- acc, add = fn(acc, v) -> acc, result = fn(acc) -> out}; add(v), get() ->
-- result or nil when empty, clear().
function KeyedState:aggregating(name, agg)
  if type(agg) ~= "table" or type(agg.create) ~= "function" or type(agg.add) ~= "function"
    or type(agg.result) ~= "function" then
    error("bad argument #2 to 'aggregating' (table with create, add and result functions expected)", 2)
  end
  local h, t = register(self, name, "aggregating", 2)
  if h then return h end
  local cur = self.current
  h = {
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
  self.handles[name] = h
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
