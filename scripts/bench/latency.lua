-- Issue 9's latency: records created at RATE per second (generate with a
-- rate limit; each record holds its creation time) through one keyed
-- exchange (key_by -> process) to a sink; the process function measures
-- creation-to-arrival with the monotonic clock (the same process) and at
-- the end prints "p50_ms p99_ms max_ms count" of its subtask. Run with
-- --buffer-timeout T, or without for the default (100 ms).
--   tide run scripts/bench/latency.lua [--buffer-timeout T] -- RATE N
local tide = require "tide"
local clock = require("tide.core").monotonic_us

local rate, n = tonumber(arg[1] or "1000"), tonumber(arg[2] or "5000")
local env = tide.env{ parallelism = 1 }
env:generate(function(i) return { id = i, k = i % 64, created = clock() } end, n, { rate_limit = rate })
   :key_by("k")
   :process{
     open = function(ctx) ctx.lat = {} end,
     on_record = function(r, ctx)
       local lat = ctx.lat
       lat[#lat + 1] = (clock() - r.created) / 1000
     end,
     close = function(ctx)
       local lat = ctx.lat
       table.sort(lat)
       local function q(p) return lat[math.max(1, math.ceil(p * #lat))] end
       io.write(string.format("%.3f %.3f %.3f %d\n", q(0.5), q(0.99), lat[#lat], #lat))
     end,
   }
   :discard()
env:execute("bench-latency")
