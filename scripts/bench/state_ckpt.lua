-- Tide job for the keyed-state checkpoint benchmark (scripts/bench/state_ckpt.sh):
-- value state over KEYS keys, then HOT records that touch only the first
-- KEYS/100 keys (1% of the state), while checkpoints run.
--
--   tide run scripts/bench/state_ckpt.lua -p 1 [--state-backend B]
--     [--checkpoint-dir D --checkpoint-interval T] -- KEYS HOT
--
-- Records 1..KEYS give every key its state (key i - 1); records after
-- that cycle over keys 0 .. KEYS/100 - 1. On stderr: "FILLED <ms>" when
-- record KEYS is counted, and at the end "DONE <ms> <records>" (ms since
-- the epoch): the hot phase's throughput is HOT / (DONE - FILLED).
local tide = require "tide"
local compat = require "tide.compat"

local keys = compat.tointeger(tonumber(arg[1]))
local hot = compat.tointeger(tonumber(arg[2]))
if not keys or keys < 100 or not hot or hot < 1 then
  io.stderr:write("usage: tide run scripts/bench/state_ckpt.lua -- KEYS HOT\n")
  os.exit(2)
end
local hot_keys = compat.idiv(keys, 100)

local env = tide.env{}
local records = 0
env:generate(function(i)
  if i <= keys then return i - 1 end
  return (i - keys - 1) % hot_keys
end, keys + hot):uid("gen"):set_parallelism(1)
   :key_by(function(k) return k end)
   :process{
     on_record = function(_, ctx)
       local count = ctx.state:value("count")
       count:update((count:value() or 0) + 1)
       records = records + 1
       if records == keys then
         io.stderr:write(string.format("FILLED %d\n", ctx.timers:current_processing_time()))
       end
     end,
     close = function(ctx)
       io.stderr:write(string.format("DONE %d %d\n", ctx.timers:current_processing_time(), records))
     end,
   }:uid("count")
   :discard()

env:execute("state_ckpt")
