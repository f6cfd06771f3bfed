-- Window benchmarks: event-time windows on generated events, on one core
-- (everything chained into one task at parallelism 1).
--   tide run scripts/bench/windows.lua --parallelism 1 -- CASE [N [WATERMARKS [TIMERS]]]
-- CASE:
--   tumbling_sum   (a) tumbling 1 s windows, built-in sum("v")
--   sliding_count  (b) sliding 10 s windows every 1 s, built-in count()
--   tumbling_agg   (c) tumbling 1 s windows, a Lua aggregate
--                      {create, add, result, merge} summing v
--   session_count  (d) session windows with a 1 s gap, built-in count()
-- N: events (default 10,000,000).
-- WATERMARKS: "periodic" (default: every auto_watermark_interval, 200 ms
--   of processing time), "per_record", or a duration such as "50ms" (the
--   periodic interval).
-- TIMERS: with --state-backend rocksdb, where the window operator's
--   timers live: "rocksdb" (default, in the instance) or "heap"
--   (env{rocksdb = {timer_service =}}).
--
-- Events i = 1..N: {key = i % 10000, v = 1, ts = ts_of(i)}. Timestamps
-- come in bursts of 10 s of event time at 100 events/ms (1,000,000 events,
-- each key 100 times, 10 times per 1 s window), separated by 6 s pauses,
-- plus a pseudo-random jitter of 0..299 ms, so the records are out of order
-- by less than 300 ms and the bounded watermark (300 ms) never makes one
-- late. In a burst a key recurs every 100 ms (+- jitter), well within the
-- 1 s session gap, and the 6 s pause closes every session: each key has one
-- session per burst.
--
-- The window results go to a process function that adds them up (results
-- and the sum of the counts or sums) and prints "RESULTS TOTAL" in close(),
-- then to discard(). run.sh checks TOTAL against N (10 N for the sliding
-- windows, where every event is in 10 windows), and RESULTS against the C
-- baseline (tumbling) or 10,000 sessions per burst.
local tide = require "tide"
local tointeger = require("tide.compat").tointeger

local case = arg[1] or "tumbling_sum"
local n = tointeger(tonumber(arg[2] or "10000000"))
local wmode = arg[3] or "periodic"

-- keep in sync with windows_bare.lua and windows_tumbling.c
-- (i * 2654435761) >> 16 computed as i * 40503 + floor(i * 31153 / 65536)
-- (2654435761 = 40503 * 65536 + 31153): every product stays below 2^53, so
-- it is exact on Lua 5.4 and LuaJIT alike (for i < 2^32)
local floor = math.floor
local function ts_of(i)
  local j = i - 1
  return floor(j / 100) + 6000 * floor(j / 1000000) + (i * 40503 + floor(i * 31153 / 65536)) % 300
end

local cfg = {}
if arg[4] then cfg.rocksdb = { timer_service = arg[4] } end
local strategy
if wmode == "per_record" then
  strategy = tide.watermarks.bounded(300, { per_record = true })
else
  if wmode ~= "periodic" then cfg.auto_watermark_interval = wmode end
  strategy = tide.watermarks.bounded(300)
end
local env = tide.env(cfg)

local keyed = env:generate(function(i) return { key = i % 10000, v = 1, ts = ts_of(i) } end, n)
  :assign_timestamps(function(r) return r.ts end, strategy)
  :key_by("key")

local windowed, field
if case == "tumbling_sum" then
  windowed, field = keyed:window(tide.windows.tumbling("1s")):sum("v"), "v"
elseif case == "sliding_count" then
  windowed, field = keyed:window(tide.windows.sliding("10s", "1s")):count(), "count"
elseif case == "tumbling_agg" then
  windowed = keyed:window(tide.windows.tumbling("1s")):aggregate {
    create = function() return 0 end,
    add = function(acc, r) return acc + r.v end,
    result = function(acc) return acc end,
    merge = function(a, b) return a + b end,
  }
elseif case == "session_count" then
  windowed, field = keyed:window(tide.windows.session("1s")):count(), "count"
else
  error("unknown case '" .. case .. "' (tumbling_sum, sliding_count, tumbling_agg, session_count)")
end

local results, total = 0, 0
windowed
  :process {
    on_record = function(r)
      results = results + 1
      total = total + (field and r[field] or r)
    end,
    close = function()
      io.write(string.format("%d %d\n", results, total))
      io.flush()
    end,
  }
  :discard()
env:execute("bench-windows-" .. case)
