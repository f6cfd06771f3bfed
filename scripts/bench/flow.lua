-- Goal 3: flow control. A fast source of ~100-byte strings feeds, through a
-- real exchange (chaining disabled, so generate, process and discard are
-- three tasks with two network edges), a deliberately slow process
-- function. With credit-based flow control the source blocks once the
-- exchange's buffers are full, so peak memory stays flat however many
-- records the source could produce.
--   tide run scripts/bench/flow.lua --parallelism 1 -- N SPIN
-- N records; SPIN iterations of an empty-ish Lua loop per record in the
-- slow operator (0: the same job without the slow part).
local tide = require "tide"
local compat = require "tide.compat"

local n = compat.tointeger(tonumber(arg[1] or "3000000"))
local spin = compat.tointeger(tonumber(arg[2] or "0"))
local pad = string.rep("x", 90)

local env = tide.env{ chaining = false }
env:generate(function(i) return string.format("%010d", i) .. pad end, n) -- 100 bytes
   :rebalance()
   :process(function(v, ctx, out)
     local s = 0
     for j = 1, spin do s = s + j end -- deterministic busy work
     out:collect(v)
   end)
   :discard()
env:execute("bench-flow")
