-- A job for the metrics tests (tests/e2e/test_metrics.sh): it reads a file
-- once and then stays running, idle, until cancelled.
--
--   tide run tests/e2e/metrics_job.lua -- FILE K OUT_DIR
--
-- read_text(FILE) -> map: {k = line number % K, v = 1} (task 0)
-- union generate: an unbounded tick 200 times a second, stamped now - 5 s
-- with per-record watermarks, all dropped by a filter (task 1) ->
-- key_by(k) -> reduce: count per key -> "k,count" -> write_text (task 2).
local tide = require "tide"
local core = require "tide.core"
local tointeger = require("tide.compat").tointeger

local file, k, out = arg[1], tointeger(tonumber(arg[2])), arg[3]
if not (file and k and out) then
  io.stderr:write("usage: tide run tests/e2e/metrics_job.lua -- FILE K OUT_DIR\n")
  os.exit(2)
end
local env = tide.env{}
local n = 0
local lines = env:read_text(file):uid("lines")
  :map(function() n = n + 1; return { k = n % k, v = 1 } end):uid("keyed")
local ticks = env:generate(function(i) return i end, nil, { rate_limit = 200 }):uid("ticks")
  :assign_timestamps(function() return core.now_ms() - 5000 end,
                     tide.watermarks.monotonous({ per_record = true })):uid("lagged")
  :filter(function() return false end):uid("drop")
lines:union(ticks)
  :key_by("k")
  :reduce(function(a, b) return { k = a.k, v = a.v + b.v } end):uid("counts")
  :map(function(r) return r.k .. "," .. r.v end):uid("fmt")
  :write_text(out):uid("out")
env:execute("metrics")
