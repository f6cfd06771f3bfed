-- A job for the web dashboard test (tests/e2e/test_dashboard.sh): a slow
-- sink behind a fast source, a lagging watermark and one failure. It runs
-- until cancelled.
--
--   tide run tests/e2e/dashboard_job.lua [-p P] [--checkpoint-dir D ...] -- DIR MS
--
-- task 0: generate records of 1000 bytes as fast as credit allows
--   ("numbers") -> a map that raises once, at record 2000, unless
--   DIR/failed exists (it creates it first) ("flaky");
-- task 1: generate ticks 200 times a second ("ticks") stamped now - 5 s
--   with per-record watermarks ("lagged") -> all dropped ("drop");
-- task 2: rebalanced -> a sink ("ticks-sink") that takes their watermarks
--   at once (joined to the slow path, they would wait behind its backlog);
-- task 3: task 0's records, rebalanced -> a sink that sleeps MS
--   milliseconds per record ("slow-sink", chained to "sink"): busy (the
--   time is the operator's), yet leaving the cores to the source.
-- The records are large so that the backlog before the slow sink is short
-- in records: aligned checkpoints complete in well under a second.
-- Under a fixed-delay restart strategy (3 attempts, 100 ms).
local tide = require "tide"
local core = require "tide.core"
local tointeger = require("tide.compat").tointeger

local dir, ms = arg[1], tointeger(tonumber(arg[2] or ""))
if not (dir and ms) then
  io.stderr:write("usage: tide run tests/e2e/dashboard_job.lua -- DIR MS\n")
  os.exit(2)
end
local marker = dir .. "/failed"

local env = tide.env{ restart = { strategy = "fixed_delay", attempts = 3, delay = "100ms" } }
local pad = string.rep("x", 1000 - 8)
local numbers = env:generate(function(i) return string.format("%08d", i) .. pad end):uid("numbers")
  :map(function(s)
    local i = tonumber(s:sub(1, 8))
    if i == 2000 then
      local f = io.open(marker)
      if f then
        f:close()
      else
        assert(io.open(marker, "w")):close()
        error("dashboard: failing once at " .. i)
      end
    end
    return s
  end):uid("flaky")
local ticks = env:generate(function(i) return i end, nil, { rate_limit = 200 }):uid("ticks")
  :assign_timestamps(function() return core.now_ms() - 5000 end,
                     tide.watermarks.monotonous({ per_record = true })):uid("lagged")
  :filter(function() return false end):uid("drop")
ticks:rebalance():discard():uid("ticks-sink")
local sleep = core.sleep_ms
numbers:rebalance()
  :map(function(s)
    sleep(ms)
    return s
  end):uid("slow-sink")
  :discard():uid("sink")

env:execute("dashboard")
