-- Issue 9's exchange hop: generate -> K x (rebalance -> map) -> discard
-- with chaining = false, 2-field table records ({id =, name =}), at
-- parallelism 1: every hop is an exchange between two tasks (encode,
-- channel, decode) plus a map that passes the record on. The cost of a
-- hop is (time at K - time at 0) / (K * N).
--   tide run scripts/bench/hops.lua [--vm V] -- N K
local tide = require "tide"

local n = tonumber(arg[1] or "2000000")
local k = tonumber(arg[2] or "1")
local env = tide.env{ chaining = false, parallelism = 1 }
local s = env:generate(function(i) return { id = i, name = "rec" } end, n)
for _ = 1, k do
  s = s:rebalance():map(function(r) return r end)
end
s:discard()
env:execute("bench-hops")
