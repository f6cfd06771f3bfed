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
-- the epoch): the hot phase's throughput is HOT / (DONE - FILLED). Both
-- lines end with this process's CPU time (ms, user + system, without the
-- snapshot children) and minor page faults so far (/proc/self/stat), so
-- that the hot phase's CPU cost per record can be had on a busy machine.
local tide = require "tide"
local compat = require "tide.compat"

local keys = compat.tointeger(tonumber(arg[1]))
local hot = compat.tointeger(tonumber(arg[2]))
if not keys or keys < 100 or not hot or hot < 1 then
  io.stderr:write("usage: tide run scripts/bench/state_ckpt.lua -- KEYS HOT\n")
  os.exit(2)
end
local hot_keys = compat.idiv(keys, 100)

-- "<cpu ms> <minor faults>" of this process (Linux /proc/self/stat)
local function usage()
  local f = io.open("/proc/self/stat")
  if not f then return "0 0" end
  local line = f:read("*l")
  f:close()
  local fields = {}
  for x in line:gsub("^.*%) ", ""):gmatch("%S+") do fields[#fields + 1] = x end
  -- after the command: state is field 3, minflt 10, utime 14, stime 15
  local hz = 100
  local cpu = (tonumber(fields[12]) + tonumber(fields[13])) * 1000 / hz
  return string.format("%d %s", cpu, fields[8])
end

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
         io.stderr:write(string.format("FILLED %d %s\n", ctx.timers:current_processing_time(), usage()))
       end
     end,
     close = function(ctx)
       io.stderr:write(string.format("DONE %d %d %s\n", ctx.timers:current_processing_time(), records, usage()))
     end,
   }:uid("count")
   :discard()

env:execute("state_ckpt")
