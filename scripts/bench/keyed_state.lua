-- Issue 10's heap keyed-state goal: a process function counting per key
-- with value state, over generated records {key = i % KEYS, i = i}, at
-- parallelism 1 (one chained task: no exchange), into discard; prints
-- "KEYS RECORDS" (keys seen and records counted) from the close hook.
--   tide run scripts/bench/keyed_state.lua -p 1 -- N KEYS
local tide = require "tide"
local compat = require "tide.compat"

local n = compat.tointeger(tonumber(arg[1] or "3000000"))
local keys = compat.tointeger(tonumber(arg[2] or "10000"))
local env = tide.env{}
local seen, records = 0, 0
env:generate(function(i) return { key = i % keys, i = i } end, n)
   :key_by("key")
   :process {
     on_record = function(_, ctx)
       local count = ctx.state:value("count")
       local c = count:value()
       if c == nil then
         c = 0
         seen = seen + 1
       end
       count:update(c + 1)
       records = records + 1
     end,
     close = function() print(seen .. " " .. records) end,
   }
   :discard()
env:execute("bench-keyed-state")
