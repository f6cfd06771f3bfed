-- Window benchmark baseline: case (a), tumbling 1 s event-time windows
-- summing v per key, as a bare Lua loop in one VM (Lua 5.4 or LuaJIT)
-- over the same events as windows.lua and windows_tumbling.c.
--   lua5.4 scripts/bench/windows_bare.lua [N]    prints "RESULTS TOTAL"
-- Per event: the generator builds the record table (as the Tide job's
-- generate function does), the timestamp is read from it, the event is
-- added to a table per window start (key -> sum), and the watermark (max ts
-- - 300 - 1, per record) flushes every window whose last ms it reached:
-- each (key, sum) becomes a result table {key =, v =} handed to a sink
-- function that adds it up. The end of input flushes the rest.
local n = tonumber(arg[1] or "10000000")
local SIZE, BOUND = 1000, 300

-- keep in sync with windows.lua and windows_tumbling.c
-- (i * 2654435761) >> 16 computed as i * 40503 + floor(i * 31153 / 65536)
-- (2654435761 = 40503 * 65536 + 31153): every product stays below 2^53, so
-- it is exact on Lua 5.4 and LuaJIT alike (for i < 2^32)
local floor = math.floor
local function ts_of(i)
  local j = i - 1
  return floor(j / 100) + 6000 * floor(j / 1000000) + (i * 40503 + floor(i * 31153 / 65536)) % 300
end

local gen = function(i) return { key = i % 10000, v = 1, ts = ts_of(i) } end

local results, total = 0, 0
local sink = function(r)
  results = results + 1
  total = total + r.v
end

local windows = {} -- window start -> {key -> sum}
local first -- the smallest window start that may still be open
local last = -math.huge -- the largest window start opened
local max_ts, wm = -math.huge, -math.huge

local function flush(upto)
  while first and first <= last and first + SIZE - 1 <= upto do
    local w = windows[first]
    if w then
      for k, s in pairs(w) do sink({ key = k, v = s }) end
      windows[first] = nil
    end
    first = first + SIZE
  end
end

for i = 1, n do
  local r = gen(i)
  local t = r.ts
  local start = t - t % SIZE
  local w = windows[start]
  if not w then
    w = {}
    windows[start] = w
    if not first or start < first then first = start end
    if start > last then last = start end
  end
  local k = r.key
  w[k] = (w[k] or 0) + r.v
  if t > max_ts then
    max_ts = t
    if t - BOUND - 1 > wm then
      wm = t - BOUND - 1
      if first + SIZE - 1 <= wm then flush(wm) end
    end
  end
end
flush(math.huge)
print(results, total)
