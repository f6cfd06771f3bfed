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
-- key is the normalized key (string, number or boolean; tables are replaced
-- by their canonical encoding by the caller), ns a namespace (false when
-- unused; windows use their own), raw_key the key as the user sees it.
local M = {}

local Heap = {}
Heap.__index = Heap

local function new_heap()
  -- parallel arrays: ts, seq, key, ns, raw; the set answers "registered?"
  return setmetatable({ n = 0, ts = {}, seq = {}, key = {}, ns = {}, raw = {}, set = {}, next_seq = 0 }, Heap)
end

local function less(h, i, j)
  local a, b = h.ts[i], h.ts[j]
  if a ~= b then return a < b end
  return h.seq[i] < h.seq[j]
end

local function swap(h, i, j)
  local ts, seq, key, ns, raw = h.ts, h.seq, h.key, h.ns, h.raw
  ts[i], ts[j] = ts[j], ts[i]
  seq[i], seq[j] = seq[j], seq[i]
  key[i], key[j] = key[j], key[i]
  ns[i], ns[j] = ns[j], ns[i]
  raw[i], raw[j] = raw[j], raw[i]
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
  self.next_seq = self.next_seq + 1
  -- the set holds the live entry's sequence number: an entry left in the
  -- heap by a delete never matches a later registration of the same timer
  s[ts] = self.next_seq
  local n = self.n + 1
  self.n = n
  self.ts[n], self.seq[n], self.key[n], self.ns[n], self.raw[n] = ts, self.next_seq, key, ns, raw
  local i = n
  while i > 1 do
    local p = i // 2
    if not less(self, i, p) then break end
    swap(self, i, p)
    i = p
  end
  return true
end

local function pop_top(h)
  local n = h.n
  local ts, key, ns, raw = h.ts[1], h.key[1], h.ns[1], h.raw[1]
  swap(h, 1, n)
  h.ts[n], h.seq[n], h.key[n], h.ns[n], h.raw[n] = nil, nil, nil, nil, nil
  n = n - 1
  h.n = n
  local i = 1
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= n and less(h, l, m) then m = l end
    if r <= n and less(h, r, m) then m = r end
    if m == i then break end
    swap(h, i, m)
    i = m
  end
  return ts, key, ns, raw
end

-- Whether heap entry i is a live timer (not deleted, not re-registered).
local function live(h, i)
  local s = set_get(h, h.key[i], h.ns[i], false)
  return s ~= nil and s[h.ts[i]] == h.seq[i]
end

-- Drop heap tops whose timer was deleted (lazy deletion).
local function clean_top(h)
  while h.n > 0 do
    if live(h, 1) then return end
    pop_top(h)
  end
end

function Heap:peek()
  clean_top(self)
  if self.n == 0 then return nil end
  return self.ts[1]
end

local Timers = {}
Timers.__index = Timers

--- A timer service. on_fire(domain, ts, key, ns, raw_key) is called for
-- each due timer ("event" or "processing"), with the timer already removed,
-- so it may register new timers (also due ones: they fire in the same
-- advance, as Flink's do).
function M.new(on_fire)
  return setmetatable({ event = new_heap(), processing = new_heap(), on_fire = on_fire,
    watermark = math.mininteger }, Timers)
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

local function fire_until(self, domain, limit)
  local h = self[domain]
  while true do
    local top = h:peek()
    if top == nil or top > limit then return end
    local ts, key, ns, raw = pop_top(h)
    set_remove(h, key, ns, ts)
    self.on_fire(domain, ts, key, ns, raw)
  end
end

--- Fire every event-time timer with timestamp <= wm, in order.
function Timers:advance_watermark(wm)
  self.watermark = wm
  fire_until(self, "event", wm)
end

--- Fire every processing-time timer with timestamp <= now, in order.
function Timers:advance_processing_time(now)
  fire_until(self, "processing", now)
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
      if live(h, i) then
        list[#list + 1] = { h.ts[i], h.key[i], h.ns[i], h.raw[i], h.seq[i] }
      end
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
function Timers:restore(data)
  for _, domain in ipairs { "event", "processing" } do
    for _, t in ipairs(data[domain] or {}) do self[domain]:push(t[1], t[2], t[3], t[4]) end
  end
end

return M
