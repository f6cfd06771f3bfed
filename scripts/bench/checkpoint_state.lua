-- Tide job for the checkpoint benchmark (scripts/bench/checkpoint.sh):
-- keyed value state over KEYS distinct keys.
--
--   tide run scripts/bench/checkpoint_state.lua -p 1 [--checkpoint-dir D
--     --checkpoint-interval 1s [--resume]] -- N [KEYS]
--
-- generate(i -> {key = i % KEYS, i = i}, N) -> key_by("key") -> process
-- (a value state per key counts the key's records) -> discard. N = 0 runs
-- without end (the recovery benchmark kills it). On stderr:
--   ALLKEYS <ms>      when record KEYS arrives: every key has state now
--   RESUMED <ms> <i> <key> <count> <expected>
--                     at the first record after a restore: the restored
--                     count of its key and the count the restored source
--                     position implies (equal when the state and the
--                     source position come from the same checkpoint)
-- <ms> is wall-clock time (ms since the epoch). At the end, on stdout:
-- "KEYS RECORDS" (keys seen, records counted) of this run.
local tide = require "tide"
local compat = require "tide.compat"

local n = compat.tointeger(tonumber(arg[1]))
local keys = compat.tointeger(tonumber(arg[2] or 1000000))
if not n or n < 0 or not keys or keys < 1 then
  io.stderr:write("usage: tide run scripts/bench/checkpoint_state.lua -- N [KEYS]\n")
  os.exit(2)
end

local env = tide.env{}

local restored, first, seen, records = false, true, 0, 0
-- one generator whatever the parallelism: the RESUMED check counts on
-- every record before i having been processed
env:generate(function(i) return { key = i % keys, i = i } end, n > 0 and n or nil):uid("gen")
   :set_parallelism(1)
   :key_by("key")
   :process{
     open = function(ctx) restored = ctx.is_restored end,
     on_record = function(r, ctx)
       local count = ctx.state:value("count")
       local c = count:value()
       if first then
         first = false
         if restored then
           -- records before r with r's key: i = k, k + KEYS, ... (k = KEYS for key 0)
           local k = r.key == 0 and keys or r.key
           io.stderr:write(string.format("RESUMED %d %d %d %d %d\n", ctx.timers:current_processing_time(),
             r.i, r.key, c or 0, compat.idiv(r.i - 1 - k, keys) + 1))
         end
       end
       if c == nil then seen = seen + 1 end
       count:update((c or 0) + 1)
       records = records + 1
       if r.i == keys then
         io.stderr:write(string.format("ALLKEYS %d\n", ctx.timers:current_processing_time()))
       end
     end,
     close = function() print(seen .. " " .. records) end,
   }:uid("count")
   :discard()

env:execute("checkpoint_state")
