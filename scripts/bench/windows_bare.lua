-- Window benchmark baseline: case (a), tumbling 1 s event-time windows
-- summing v per key, as a bare Lua 5.4 loop in one VM over the same events
-- as windows.lua and windows_tumbling.c.
--   lua5.4 scripts/bench/windows_bare.lua [N]    prints "RESULTS TOTAL"
-- Per event: the generator builds the record table (as the Tide job's
-- generate function does), the timestamp is read from it, the event is
-- added to a table per window start (key -> sum), and the watermark (max ts
-- - 300 - 1, per record) flushes every window whose last ms it reached:
-- each (key, sum) becomes a result table {key =, v =} handed to a sink
-- function that adds it up. The end of input flushes the rest.
local n = math.tointeger(tonumber(arg[1] or "10000000"))
local SIZE, BOUND = 1000, 300

-- keep in sync with windows.lua and windows_tumbling.c
local function ts_of(i)
  local j = i - 1
  return j // 100 + 6000 * (j // 1000000) + ((i * 2654435761) >> 16) % 300
end

local gen = function(i) return { key = i % 10000, v = 1, ts = ts_of(i) } end

local results, total = 0, 0
local sink = function(r)
  results = results + 1
  total = total + r.v
end

local windows = {} -- window start -> {key -> sum}
local first -- the smallest window start that may still be open
local last = math.mininteger -- the largest window start opened
local max_ts, wm = math.mininteger + BOUND + 1, math.mininteger

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
flush(math.maxinteger - SIZE)
print(results, total)
