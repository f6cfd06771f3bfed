-- The job of tests/e2e/test_rescale.sh: a streaming word count with a
-- running sum into exactly-once part files, checkpointed, so that it can
-- be killed and resumed at another parallelism.
--   tide run tests/e2e/rescale_job.lua -p P [--resume] -- INPUT OUT CKDIR RATE
local tide = require "tide"
local compat = require "tide.compat"

local env = tide.env{ checkpoint = { dir = arg[3], interval = "100ms" },
  restart = { strategy = "none" } }
env:read_text(arg[1], { rate_limit = compat.tointeger(tonumber(arg[4])) })
   :flat_map(function(line, out)
     for w in line:lower():gmatch("%a+") do out:collect(w) end
   end)
   :map(function(w) return { word = w, n = 1 } end)
   :key_by("word")
   :sum("n")
   :map(function(r) return r.word .. "," .. r.n end)
   :write_text(arg[2])
env:execute("rescale")
