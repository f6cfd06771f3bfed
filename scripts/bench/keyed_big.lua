-- Issue 10's large-state goal: value state of 100-byte values over N
-- distinct keys (key = i), at parallelism 1, into discard; prints the
-- number of keys stored. Run on rocksdb: state far larger than the heap
-- would hold in the same memory.
--   tide run scripts/bench/keyed_big.lua -p 1 --state-backend rocksdb -- N
local tide = require "tide"
local compat = require "tide.compat"

local n = compat.tointeger(tonumber(arg[1] or "1000000"))
local pad = string.rep("x", 100)
local env = tide.env{}
local stored = 0
env:generate(function(i) return { key = i, v = pad } end, n)
   :key_by("key")
   :process {
     on_record = function(r, ctx)
       local s = ctx.state:value("v")
       if s:value() == nil then stored = stored + 1 end
       s:update(r.v)
     end,
     close = function() print(stored) end,
   }
   :discard()
env:execute("bench-keyed-big")
