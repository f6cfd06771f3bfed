-- Unaligned checkpoints under backpressure (issue 8): a fast generator of
-- ~100-byte strings feeds, through a rebalance exchange, a map that
-- busy-waits 1 ms per record, then discards. The map is the bottleneck, so
-- every exchange channel is full and an aligned barrier queues behind
-- credits x 32 KiB of records per channel; an unaligned one overtakes them.
--   tide run scripts/bench/backpressure.lua -p P --checkpoint-dir D \
--       --checkpoint-interval 1s -- N [aligned|unaligned]
-- N records in all (the job lasts about N / P ms).
local tide = require "tide"
local compat = require "tide.compat"
local core = require "tide.core"

local n = compat.tointeger(tonumber(arg[1] or "10000"))
local mode = arg[2] or "aligned"
assert(mode == "aligned" or mode == "unaligned", "mode: aligned or unaligned")
local pad = string.rep("x", 90)
local clock = core.monotonic_us

local env = tide.env{ checkpoint = { unaligned = mode == "unaligned" } }
env:generate(function(i) return string.format("%010d", i) .. pad end, n) -- 100 bytes
   :rebalance()
   :map(function(v)
     local due = clock() + 1000
     while clock() < due do end -- 1 ms of busy work
     return v
   end)
   :discard()
env:execute("bench-backpressure")
