-- Goal 2: a stateless generate -> map -> filter -> discard chain on one
-- core (all operators chained into one task at parallelism 1).
--   tide run scripts/bench/mapfilter.lua --parallelism 1 [-- N]
local tide = require "tide"
local compat = require "tide.compat"

local n = compat.tointeger(tonumber(arg[1] or "10000000"))
local env = tide.env()
env:generate(function(i) return i end, n)
   :map(function(x) return x * 3 end)
   :filter(function(x) return x % 2 == 0 end)
   :discard()
env:execute("bench-mapfilter")
