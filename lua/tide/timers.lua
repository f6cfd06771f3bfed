--- tide.timers: the timer service of a keyed operator (Flink's
-- InternalTimerService): event-time and processing-time timers, at most one
-- per (key, namespace, timestamp), fired in timestamp order (ties in
-- registration order) when the watermark or the processing-time clock
-- reaches them. Timers are keyed state: snapshot() and restore() carry them.
--
--   local t = timers.new(function(domain, ts, key, ns, raw_key) ... end)
--   t:register("event", ts, key, ns, raw_key)
--   t:advance_watermark(wm)          -- fires event-time timers with ts <= wm
--   t:advance_processing_time(now)   -- fires processing-time timers <= now
--
-- key is the layer's key (tide.state's backend:key: a scalar, or an
-- interned table), ns a namespace (false when unused; windows use their
-- own), raw_key the key as the user sees it: a value equal to key (a copy
-- of a table key), or nil (a window without key_by).
--
-- This module is the heap service (Flink's HEAP timer service). With a
-- RocksDB state backend timers.new returns tide.timers_rocksdb's service
-- instead, with the same interface and firing order, its timers stored
-- in the backend's instance.
local compat = require "tide.compat"

local M = {}

local idiv = compat.idiv

local Heap = {}
Heap.__index = Heap

-- A binary min-heap of entries {ts, seq, key, ns, raw}, ordered by (ts,
-- seq); the set maps key -> ns -> ts -> seq of the live entry.
local function new_heap()
  return setmetatable({ n = 0, set = {}, next_seq = 0 }, Heap)
end

local function set_get(h, key, ns, create)
  local by_key = h.set[key]
  if not by_key then
    if not create then return nil end
    by_key = {}
    h.set[key] = by_key
  end
  local by_ns = by_key[ns]
  if not by_ns and create then
    by_ns = {}
    by_key[ns] = by_ns
  end
  return by_ns
end

local function set_remove(h, key, ns, ts)
  local by_key = h.set[key]
  local by_ns = by_key and by_key[ns]
  if not by_ns or not by_ns[ts] then return false end
  by_ns[ts] = nil
  if next(by_ns) == nil then
    by_key[ns] = nil
    if next(by_key) == nil then h.set[key] = nil end
  end
  return true
end

function Heap:push(ts, key, ns, raw)
  local s = set_get(self, key, ns, true)
  if s[ts] then return false end
  local seq = self.next_seq + 1
  self.next_seq = seq
  -- the set holds the live entry's sequence number: an entry left in the
  -- heap by a delete never matches a later registration of the same timer
  s[ts] = seq
  local e = { ts, seq, key, ns, raw }
  local i = self.n + 1
  self.n = i
  while i > 1 do
    local p = idiv(i, 2)
    local pe = self[p]
    if pe[1] < ts or (pe[1] == ts and pe[2] < seq) then break end
    self[i] = pe
    i = p
  end
  self[i] = e
  return true
end

local function pop_top(h)
  local n = h.n
  local top, last = h[1], h[n]
  h[n] = nil
  n = n - 1
  h.n = n
  if n > 0 then
    local lts, lseq = last[1], last[2]
    local i = 1
    while true do
      local c = 2 * i
      if c > n then break end
      local ce = h[c]
      if c < n then
        local re = h[c + 1]
        if re[1] < ce[1] or (re[1] == ce[1] and re[2] < ce[2]) then
          c = c + 1
          ce = re
        end
      end
      if lts < ce[1] or (lts == ce[1] and lseq < ce[2]) then break end
      h[i] = ce
      i = c
    end
    h[i] = last
  end
  return top
end

-- Whether entry e is a live timer (not deleted, not re-registered).
local function live(h, e)
  local s = set_get(h, e[3], e[4], false)
  return s ~= nil and s[e[1]] == e[2]
end

-- Drop heap tops whose timer was deleted (lazy deletion).
local function clean_top(h)
  while h.n > 0 do
    if live(h, h[1]) then return end
    pop_top(h)
  end
end

function Heap:peek()
  clean_top(self)
  if self.n == 0 then return nil end
  return self[1][1]
end

local Timers = {}
Timers.__index = Timers
M.Timers = Timers -- (advance_* shared with tide.timers_rocksdb's service)

--- A timer service. on_fire(domain, ts, key, ns, raw_key) is called for
-- each due timer ("event" or "processing"), with the timer already removed,
-- so it may register new timers (also due ones: they fire in the same
-- advance, as Flink's do).
-- backend (optional): the operator's tide.state backend. On a RocksDB
-- backend the timers are stored in its instance (tide.timers_rocksdb,
-- Flink's default there) unless its configuration says rocksdb =
-- {timer_service = "heap"} (Flink's state.backend.rocksdb.timer-service.factory:
-- HEAP); otherwise they live in memory, in this module's heaps.
function M.new(on_fire, backend)
  if backend ~= nil and type(backend.db) == "function" then
    local r = backend.cfg and backend.cfg.rocksdb or {}
    if r.timer_service ~= "heap" then
      return require("tide.timers_rocksdb").new(on_fire, backend, r.timer_cache)
    end
  end
  return setmetatable({ event = new_heap(), processing = new_heap(), on_fire = on_fire,
    watermark = compat.MIN_INT }, Timers)
end

--- Register a timer; a second one for the same (key, ns, ts) is a no-op.
function Timers:register(domain, ts, key, ns, raw)
  if ns == nil then ns = false end
  self[domain]:push(ts, key, ns, raw)
end

--- Delete a timer (no-op if there is none).
function Timers:delete(domain, ts, key, ns)
  if ns == nil then ns = false end
  set_remove(self[domain], key, ns, ts)
end

-- Fire every timer of domain with timestamp <= limit, in order.
function Timers:fire_until(domain, limit)
  local h = self[domain]
  while true do
    local top = h:peek()
    if top == nil or top > limit then return end
    local e = pop_top(h)
    set_remove(h, e[3], e[4], e[1])
    self.on_fire(domain, e[1], e[3], e[4], e[5])
  end
end

--- Fire every event-time timer with timestamp <= wm, in order.
function Timers:advance_watermark(wm)
  self.watermark = wm
  self:fire_until("event", wm)
end

--- Fire every processing-time timer with timestamp <= now, in order.
function Timers:advance_processing_time(now)
  self:fire_until("processing", now)
end

--- The earliest pending processing-time timer, or nil.
function Timers:next_processing_time()
  return self.processing:peek()
end

--- Number of pending timers of a domain.
function Timers:count(domain)
  local n = 0
  for _, by_ns in pairs(self[domain].set) do
    for _, by_ts in pairs(by_ns) do
      for _ in pairs(by_ts) do n = n + 1 end
    end
  end
  return n
end

--- Plain data for a snapshot: {event = {{ts, key, ns, raw}...}, processing = ...}
-- in firing order.
function Timers:snapshot()
  local out = {}
  for _, domain in ipairs { "event", "processing" } do
    local h, list = self[domain], {}
    for i = 1, h.n do
      local e = h[i]
      if live(h, e) then list[#list + 1] = { e[1], e[3], e[4], e[5], e[2] } end
    end
    table.sort(list, function(a, b)
      if a[1] ~= b[1] then return a[1] < b[1] end
      return a[5] < b[5]
    end)
    for _, t in ipairs(list) do t[5] = nil end
    out[domain] = list
  end
  return out
end

--- Restore timers from snapshot() data (added to those already here).
-- backend (optional, a tide.state backend): keys become its layer keys
-- (table keys interned, as the restored state's) and timers of keys
-- outside its key groups are left out.
-- keyed (optional): the keyed-state snapshot taken with data; needed when
-- data is a RocksDB timer service's ({store = "rocksdb"}: the timers are
-- in that snapshot's instance, read here).
function Timers:restore(data, backend, keyed)
  if data.store == "rocksdb" then
    if not (backend and keyed) then error("timers: cannot restore timers stored in RocksDB without their state", 0) end
    data = require("tide.timers_rocksdb").read_snapshot(backend, keyed)
  end
  for _, domain in ipairs { "event", "processing" } do
    for _, t in ipairs(data[domain] or {}) do
      local key = t[2]
      if backend then key = backend:key(key) end
      if not backend or backend:owns(key) then self[domain]:push(t[1], key, t[3], t[4]) end
    end
  end
end

return M
