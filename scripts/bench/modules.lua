-- The C module benchmarks (scripts/bench/modules.sh), with the example
-- module (STREAMKIT, default build/modules/streamkit.so):
--   chain N   seq (C source) -> affine x * 3 (C map) -> modulo, even
--             (C filter) -> discard; run at --parallelism 1: one task, one
--             core, no Lua per record
--   keyed N   seq of [i % 1000, i] -> key_by(1) (hash exchange) ->
--             window_count (C keyed process, value state and a timer per
--             key) -> discard; run at --parallelism 2. The 1000 per-key
--             counts go to a Lua map that prints their total at the end.
local tide = require "tide"

local kit = tide.load_module(os.getenv("STREAMKIT") or "build/modules/streamkit.so")
local what, n = arg[1], math.floor(tonumber(arg[2] or "10000000"))
local env = tide.env()
if what == "chain" then
  env:add_source(kit.seq, { count = n }):uid("seq")
    :transform(kit.affine, { mul = 3 }):uid("map")
    :transform(kit.modulo, { divisor = 2 }):uid("filter")
    :discard()
elseif what == "keyed" then
  local total = 0
  env:add_source(kit.seq, { count = n, shape = "pair", keys = 1000 }):uid("seq")
    :key_by(1)
    :transform(kit.window_count, {}):uid("count")
    :process({
      on_record = function(r) total = total + r.count end,
      close = function(ctx) io.stdout:write(string.format("%d %d\n", ctx.subtask, total)) end,
    }):uid("total")
    :discard()
else
  error("usage: modules.lua chain|keyed N")
end
env:execute("bench-modules")
