-- The job of tests/e2e/test_rescale.sh: a streaming word count with a
-- running sum into exactly-once part files, checkpointed, so that it can
-- be killed and resumed at another parallelism.
--   tide run tests/e2e/rescale_job.lua -p P [--resume] -- INPUT OUT CKDIR RATE [window|timers]
-- (window: counts per word in count windows of 3 instead of a running sum;
-- timers: per word an event-time timer for every third occurrence, 1, 2
-- ..., registered on each of the three (the first registration counts),
-- all firing at the end of input (the final watermark: the records have
-- no timestamps, so no other watermark comes) with "word,timer,count")
local tide = require "tide"
local compat = require "tide.compat"

local env = tide.env{ checkpoint = { dir = arg[3], interval = "100ms" },
  restart = { strategy = "none" } }
local words = env:read_text(arg[1], { rate_limit = compat.tointeger(tonumber(arg[4])) })
   :flat_map(function(line, out)
     for w in line:lower():gmatch("%a+") do out:collect(w) end
   end)
   :map(function(w) return { word = w, n = 1 } end)
   :key_by("word")
local counted
if arg[5] == "timers" then
  -- the timers outlive every kill and rescale (on RocksDB: stored there)
  counted = words:process {
    on_record = function(r, ctx)
      local c = ctx.state:value("count")
      local n = (c:value() or 0) + 1
      c:update(n)
      ctx.timers:register_event_time(math.floor((n + 2) / 3))
    end,
    on_timer = function(t, ctx, out)
      out:collect { word = ctx.key, n = t .. "," .. ctx.state:value("count"):value() }
    end,
  }
elseif arg[5] == "window" then
  -- the general window operator: a count window of 3 per word (Flink's
  -- countWindow: a global window, a count trigger, purged on firing)
  counted = words:count_window(3):sum("n")
else
  counted = words:sum("n")
end
counted:map(function(r) return r.word .. "," .. r.n end)
   :write_text(arg[2])
env:execute("rescale")
