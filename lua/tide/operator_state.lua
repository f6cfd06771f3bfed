--- tide.operator_state: operator (non-keyed) state of a process function,
-- as Flink's OperatorStateStore with a CheckpointedFunction.
--
-- Operator state belongs to a subtask, not to a key. Each named state has
-- a redistribution mode that says how a restore with a new parallelism
-- hands the old subtasks' state to the new ones:
--
--   list        (getListState, Flink's SPLIT_DISTRIBUTE): the old lists are
--               concatenated in subtask order and cut into contiguous
--               slices, one per new subtask;
--   union_list  (getUnionListState, UNION): every new subtask gets the
--               whole concatenation;
--   broadcast   (getBroadcastState, BROADCAST): a map, the same on every
--               subtask; new subtask i gets old subtask (i % old
--               parallelism)'s copy.
--
-- At an unchanged parallelism, list and broadcast state come back exactly
-- as each subtask had them; union state is still unioned (as Flink's
-- RoundRobinOperatorStateRepartitioner does).
--
--   local store = operator_state.new(describe(node))
--   local seen = store:get_list_state("seen")
--   seen:add(v)
--   local data = store:snapshot()            -- plain Lua data
--   store2:restore(own, all, subtask, parallelism)
--
-- The snapshot is {[name] = {kind = "list"|"union_list", list = array} or
-- {kind = "broadcast", map = table}}. It shares tables with the live state:
-- encode it before processing goes on. restore() copies what it takes, so
-- state never aliases the restored data.
local util = require "tide.util"
local idiv = require("tide.compat").idiv

local M = {}

local KIND_TEXT = { list = "list", union_list = "union list", broadcast = "broadcast" }

-- A deep copy of plain data (tables, strings, numbers, booleans).
local function copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[copy(k)] = copy(x) end
  return c
end

local function check_value(v, what, level)
  local t = type(v)
  if v == nil then
    error(what .. ": nil cannot be added to operator state", level + 1)
  elseif t == "function" or t == "userdata" or t == "thread" then
    error(what .. ": a " .. t .. " cannot be kept in operator state (plain data expected)", level + 1)
  end
end

-- ---- list and union list state ------------------------------------------

local ListState = {}
ListState.__index = ListState

--- Append v to the list (Flink's ListState.add).
-- @param v any plain value but nil
-- Raises on nil, functions, userdata and threads.
function ListState:add(v)
  check_value(v, "add", 2)
  local l = self.entry.list
  l[#l + 1] = v
end

--- The list's elements, in order, as a new array (changing it does not
-- change the state; Flink's ListState.get).
-- @return array (empty when there are none)
function ListState:get()
  local l, c = self.entry.list, {}
  for i = 1, #l do c[i] = l[i] end
  return c
end

--- Replace the list by a copy of array vs (Flink's ListState.update).
-- @param vs array of plain values
-- Raises when vs is not a table or holds a function, userdata or thread.
function ListState:update(vs)
  if type(vs) ~= "table" then error("bad argument #1 to 'update' (array expected, got " .. type(vs) .. ")", 2) end
  local l = {}
  for i = 1, #vs do
    check_value(vs[i], "update", 2)
    l[i] = vs[i]
  end
  self.entry.list = l
end

--- Empty the list (Flink's ListState.clear).
function ListState:clear()
  self.entry.list = {}
end

-- ---- broadcast state ----------------------------------------------------

local BroadcastState = {}
BroadcastState.__index = BroadcastState

local KEY_TYPES = { string = true, number = true, boolean = true }

local function check_key(k, fname)
  if not KEY_TYPES[type(k)] or k ~= k then
    error(string.format("bad argument #1 to '%s' (broadcast state key must be a string, number or boolean, got %s)",
      fname, k ~= k and "nan" or type(k)), 3)
  end
end

--- The value of key k, or nil (Flink's BroadcastState.get).
-- @param k string, number or boolean
function BroadcastState:get(k)
  check_key(k, "get")
  return self.entry.map[k]
end

--- Set key k to v; v == nil removes k (Flink's BroadcastState.put).
-- @param k string, number or boolean
-- @param v plain value
function BroadcastState:put(k, v)
  check_key(k, "put")
  if v ~= nil then check_value(v, "put", 2) end
  self.entry.map[k] = v
end

--- Remove key k (Flink's BroadcastState.remove).
-- @param k string, number or boolean
function BroadcastState:remove(k)
  check_key(k, "remove")
  self.entry.map[k] = nil
end

--- Whether key k has a value (Flink's BroadcastState.contains).
-- @param k string, number or boolean
-- @return boolean
function BroadcastState:contains(k)
  check_key(k, "contains")
  return self.entry.map[k] ~= nil
end

--- Iterate over the entries in key order (booleans, then numbers, then
-- strings; as Flink's BroadcastState.entries, but deterministic):
-- `for k, v in bs:entries() do ... end`. Entries put or removed while
-- iterating do not change what the iteration visits.
-- @return iterator of k, v
function BroadcastState:entries()
  local m = self.entry.map
  local keys = util.sorted_keys(m)
  local vals = {}
  for i, k in ipairs(keys) do vals[i] = m[k] end
  local i = 0
  return function()
    i = i + 1
    return keys[i], vals[i]
  end
end

--- Remove every entry (Flink's BroadcastState.clear).
function BroadcastState:clear()
  self.entry.map = {}
end

-- ---- the store ----------------------------------------------------------

local Store = {}
Store.__index = Store

--- A store for one subtask of one operator.
-- @param owner string naming the operator in error messages (operators.lua's
--   describe(node))
-- @return Store: ctx.operator_state of a process function
function M.new(owner)
  return setmetatable({ owner = owner, entries = {}, handles = {} }, Store)
end

local function register(self, name, kind, fname)
  if type(name) ~= "string" then
    error(string.format("bad argument #1 to '%s' (state name expected, got %s) in %s",
      fname, type(name), self.owner), 3)
  end
  local e = self.entries[name]
  if e and e.kind ~= kind then
    error(string.format("operator state '%s' is %s %s state, not %s state (%s)", name,
      e.restored and "restored as" or "already registered as", KIND_TEXT[e.kind], KIND_TEXT[kind], self.owner), 3)
  end
  local h = self.handles[name]
  if h then return h end
  if not e then
    e = { kind = kind }
    if kind == "broadcast" then e.map = {} else e.list = {} end
    self.entries[name] = e
  end
  h = setmetatable({ entry = e }, kind == "broadcast" and BroadcastState or ListState)
  self.handles[name] = h
  return h
end

--- Operator list state, redistributed on rescaling by an even split
-- (Flink's OperatorStateStore.getListState, mode SPLIT_DISTRIBUTE).
-- @param name string
-- @return handle with add(v), get() -> array copy, update(array), clear();
--   the same handle for every call with this name
-- Raises when name is not a string or names state of another kind.
function Store:get_list_state(name)
  local h = register(self, name, "list", "get_list_state") -- not a tail call: errors name the caller's line
  return h
end

--- Operator list state that every subtask gets whole on restore (Flink's
-- OperatorStateStore.getUnionListState, mode UNION).
-- @param name string
-- @return handle with add(v), get(), update(array), clear()
-- Raises when name is not a string or names state of another kind.
function Store:get_union_list_state(name)
  local h = register(self, name, "union_list", "get_union_list_state") -- not a tail call: errors name the caller's line
  return h
end

--- Broadcast state: a map meant to hold the same entries on every subtask
-- (Flink's OperatorStateStore.getBroadcastState, mode BROADCAST). Keys are
-- strings, numbers or booleans.
-- @param name string
-- @return handle with get(k), put(k, v), remove(k), contains(k), entries()
--   (sorted by key), clear()
-- Raises when name is not a string or names state of another kind.
function Store:get_broadcast_state(name)
  local h = register(self, name, "broadcast", "get_broadcast_state") -- not a tail call: errors name the caller's line
  return h
end

--- Plain data for a snapshot (see the module comment); shares tables with
-- the live state.
-- @return table name -> {kind =, list = } or {kind =, map = }
function Store:snapshot()
  local out = {}
  for name, e in pairs(self.entries) do
    out[name] = { kind = e.kind, list = e.list, map = e.map }
  end
  return out
end

-- Flink's split of SPLIT_DISTRIBUTE state (RoundRobinOperatorStateRepartitioner):
-- n elements over p subtasks, visited from subtask `start` round the ring;
-- each takes the next idiv(n, p) elements, and the first n % p visited take one
-- more. Returns this subtask's [first, last] (1-based, inclusive) and where
-- the next state name's round starts (the first subtask that took no extra
-- element), so extras rotate between names.
local function split_slice(n, p, start, subtask)
  local base, rem = idiv(n, p), n % p
  local next_start, pos = start, 1
  local first, last
  for i = 0, p - 1 do
    local idx = (i + start) % p
    local count = base
    if rem > 0 then
      count = count + 1
      rem = rem - 1
    elseif rem == 0 then
      next_start = idx
      rem = -1
    end
    if idx == subtask then first, last = pos, pos + count - 1 end
    pos = pos + count
  end
  return first, last, next_start
end
M.split_slice = split_slice

--- The operator state one subtask gets on restore, from every old subtask's
-- store snapshot (Flink's RoundRobinOperatorStateRepartitioner).
-- @param all array of Store:snapshot() data (or false: none) of every old
--   subtask, in subtask order
-- @param subtask integer, this new subtask (0-based)
-- @param parallelism integer, the new parallelism
-- @param owner string naming the operator in errors
-- @return Store:snapshot()-shaped data, sharing no table with `all`
-- Raises when the old subtasks disagree on a state's kind.
function M.redistribute(all, subtask, parallelism, owner)
  local old_p = #all
  local kinds = {}
  for _, snap in ipairs(all) do
    for name, e in pairs(snap or {}) do
      local k = kinds[name]
      if k and k ~= e.kind then
        error(string.format("operator state '%s' is %s state in one snapshot and %s state in another (%s)",
          name, KIND_TEXT[k] or tostring(k), KIND_TEXT[e.kind] or tostring(e.kind), owner), 0)
      end
      if not KIND_TEXT[e.kind] then
        error(string.format("operator state '%s' has an unknown kind '%s' in the snapshot (%s)",
          name, tostring(e.kind), owner), 0)
      end
      kinds[name] = e.kind
    end
  end
  local names = {}
  for name in pairs(kinds) do names[#names + 1] = name end
  table.sort(names) -- Flink visits names in hash order; sorted is deterministic

  -- name's elements of every old subtask, concatenated in subtask order
  local function concat(name)
    local c = {}
    for i = 1, old_p do
      local e = all[i] and all[i][name]
      if e then
        for _, v in ipairs(e.list) do c[#c + 1] = copy(v) end
      end
    end
    return c
  end
  local mine = all[subtask + 1]
  local out, start = {}, 0
  for _, name in ipairs(names) do
    local kind, result = kinds[name], { kind = kinds[name] }
    if kind == "union_list" then
      result.list = concat(name)
    elseif kind == "broadcast" then
      local e = all[subtask % old_p + 1]
      e = e and e[name]
      result.map = e and copy(e.map) or {}
    elseif old_p == parallelism then
      local e = mine and mine[name]
      result.list = e and copy(e.list) or {}
    else
      local c = concat(name)
      local first, last
      first, last, start = split_slice(#c, parallelism, start, subtask)
      result.list = table.move(c, first, last, 1, {})
    end
    out[name] = result
  end
  return out
end

--- Restore this subtask's operator state, replacing what the store holds.
-- @param own Store:snapshot() data of this subtask (same parallelism), or nil
-- @param all array of every old subtask's Store:snapshot() data in subtask
--   order, or nil: then `own` is restored as it is (the parallelism did not
--   change)
-- @param subtask integer (0-based)
-- @param parallelism integer, the new parallelism
-- Raises on snapshots that disagree on a state's kind.
function Store:restore(own, all, subtask, parallelism)
  if all == nil then all, subtask, parallelism = { own or false }, 0, 1 end
  local data = M.redistribute(all, subtask, parallelism, self.owner)
  self.entries, self.handles = {}, {}
  for name, e in pairs(data) do
    e.restored = true
    self.entries[name] = e
  end
end

return M
