-- Issue 15's floors for the Nexmark queries: the generator's events (all
-- kinds) into discard(), either straight from its C source ("c": no Lua
-- per event) or through a Lua identity map ("lua": each event decoded
-- into a Lua table and encoded nowhere).
--   tide run scripts/bench/nexmark_floor.lua -- EVENTS c|lua [RATE]
local tide = require "tide"

local events = tonumber(arg[1] or "10000000")
local mode = arg[2] or "c"
local rate = tonumber(arg[3] or "10000000")
local path = os.getenv("NEXMARK") or "build/modules/nexmark.so"
local nx = tide.load_module(path)
local env = tide.env{}
local s = env:add_source(nx.events, { events = events, rate = rate }):uid("events")
if mode == "lua" then s = s:map(function(e) return e end) end
s:discard()
env:execute("bench-nexmark-floor")
