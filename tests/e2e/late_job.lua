-- A job for the late-records test (tests/e2e/test_metrics.sh): CSV rows
-- k,t (t: event time, ms) with per-record bounded watermarks (1 h), counted
-- per k in 1-hour event-time windows with 1 h allowed lateness and no late
-- side output, so late rows are dropped (Flink's numLateRecordsDropped). Once
-- its input ended it stays running, until the file FLAG exists, so that
-- the control endpoint can be read.
--
--   tide run tests/e2e/late_job.lua -- CSV FLAG [MODE]
--
-- MODE "off": with env{metrics = false}; "side": the late rows go to a late
-- side output (so none is dropped).
local tide = require "tide"
local core = require "tide.core"

local file, flag = arg[1], arg[2]
if not (file and flag) then
  io.stderr:write("usage: tide run tests/e2e/late_job.lua -- CSV FLAG [off|side]\n")
  os.exit(2)
end
local env = tide.env{ parallelism = 1, metrics = arg[3] ~= "off" }
local windowed = env:read_csv(file, { types = { t = "int" } }):uid("rows")
  :assign_timestamps(function(c) return c.t end,
                     tide.watermarks.bounded("1h", { per_record = true })):uid("stamped")
  :key_by("k")
  :window(tide.windows.tumbling("1h")):allowed_lateness("1h")
if arg[3] == "side" then windowed = windowed:side_output_late("late") end
local counts = windowed:count():uid("hourly"):set_parallelism(2)
if arg[3] == "side" then counts:side_output("late"):discard():uid("late"):set_parallelism(2) end
counts:process{ on_record = function() end,
                close = function()
                  while not io.open(flag) do core.sleep_ms(50) end
                end }:uid("wait"):set_parallelism(2)
  :discard():uid("sink"):set_parallelism(2)
env:execute("late")
