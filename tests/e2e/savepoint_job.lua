-- The job of tests/e2e/test_savepoint.sh, in versions that a savepoint of
-- v1 is restored into (Flink's rules: state maps to operators by uid):
--   tide run tests/e2e/savepoint_job.lua [-p P] -- VERSION OUT CKDIR N RATE
-- The numbers 1..N (at RATE records/s), keyed by x % 7:
--   v1      "totals" (value state "total", a running sum): "k,x,total"
--   v2      "totals" changed (adds 2x) and a new field; a new operator
--           "seen" (its own count per key, which starts empty):
--           "k,x,total,seen,v2"
--   v3      "totals" removed: "k,x,v3"
--   v4      "totals" declares "total" as map state: refused at restore
--   v5      as v2, but "totals" fails on its first record (a new logic
--           that fails before it is healthy: tests/e2e/test_reload.sh)
--   v6      "totals" declares "total" version 2, {sum =, n =, from =}
--           (state schema evolution): migrate makes a restored version 1
--           total t {sum = t, n = 0, from = 1}; each record adds 3x to
--           sum and 1 to n: "k,x,sum,n,from,v6" (from 0 for a key that
--           had no state)
-- An optional sixth argument sets the job's parallelism, a seventh the
-- checkpointing mode: "unaligned" or "at_least_once" (default aligned
-- exactly once); its savepoints are aligned whatever the mode.
local tide = require "tide"
local compat = require "tide.compat"

local version, out, ckdir = arg[1], arg[2], arg[3]
local n, rate = compat.tointeger(tonumber(arg[4])), compat.tointeger(tonumber(arg[5]))
local env = tide.env{ checkpoint = { dir = ckdir, unaligned = arg[7] == "unaligned" or nil,
    mode = arg[7] == "at_least_once" and "at_least_once" or nil },
  restart = { strategy = "none" },
  parallelism = arg[6] and compat.tointeger(tonumber(arg[6])) or nil }
local list = {}
for i = 1, n do list[i] = i end
local src = env:from_list(list, { rate_limit = rate }):uid("source")

local lines
if version == "v1" or version == "v2" or version == "v4" or version == "v5" then
  local step = (version == "v2" or version == "v5") and 2 or 1
  local totals = src:key_by(function(x) return x % 7 end):process(function(x, ctx, o)
    local total
    if version == "v5" then error("v5 fails on purpose") end
    if version == "v4" then
      total = ctx.state:map("total")
    else
      total = ctx.state:value("total")
    end
    total:update((total:value() or 0) + step * x)
    o:collect({ k = ctx.key, x = x, total = total:value() })
  end):uid("totals")
  if version == "v2" or version == "v5" then
    lines = totals:key_by("k"):process(function(r, ctx, o)
      local seen = ctx.state:value("seen")
      seen:update((seen:value() or 0) + 1)
      o:collect(string.format("%d,%d,%d,%d,v2", r.k, r.x, r.total, seen:value()))
    end):uid("seen")
  else
    lines = totals:map(function(r) return string.format("%d,%d,%d", r.k, r.x, r.total) end):uid("format")
  end
elseif version == "v6" then
  local schema = { version = 2, migrate = function(t, old) return { sum = t, n = 0, from = old } end }
  lines = src:key_by(function(x) return x % 7 end):process(function(x, ctx, o)
    local total = ctx.state:value("total", schema)
    local t = total:value() or { sum = 0, n = 0, from = 0 }
    t.sum, t.n = t.sum + 3 * x, t.n + 1
    total:update(t)
    o:collect(string.format("%d,%d,%d,%d,%d,v6", ctx.key, x, t.sum, t.n, t.from))
  end):uid("totals")
else
  lines = src:map(function(x) return string.format("%d,%d,v3", x % 7, x) end):uid("format")
end
-- v3 writes through a new sink: the old one's state is not restored
lines:write_text(out):uid(version == "v3" and "out3" or "out")
env:execute("sp")
