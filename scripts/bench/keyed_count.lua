-- Issue 10's built-in aggregation goal: count() per key over generated
-- records {key = i % KEYS, i = i} at parallelism 1, into discard; prints
-- "KEYS RECORDS" (keys with a count, records counted) from a sink.
--   tide run scripts/bench/keyed_count.lua -p 1 [--state-backend rocksdb] -- N KEYS
local tide = require "tide"
local compat = require "tide.compat"

local n = compat.tointeger(tonumber(arg[1] or "3000000"))
local keys = compat.tointeger(tonumber(arg[2] or "10000"))
local env = tide.env{}
local last = {}
env:generate(function(i) return { key = i % keys, i = i } end, n)
   :key_by("key")
   :count()
   :process {
     on_record = function(r) last[r.key] = r.count end,
     close = function()
       local seen, total = 0, 0
       for _, c in pairs(last) do
         seen = seen + 1
         total = total + c
       end
       print(seen .. " " .. total)
     end,
   }
   :discard()
env:execute("bench-keyed-count")
