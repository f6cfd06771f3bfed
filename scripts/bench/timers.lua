-- The timer services alone, as a keyed operator holds them (tide.timers:
-- the heap service; tide.timers_rocksdb: timers stored in the operator's
-- RocksDB instance): TIMERS event-time timers over 100K keys, registered
-- at pseudo-random times in batches of 1024 (the backend writing back
-- after each, as the runtime does; every fourth registration repeats the
-- one before it), then fired by 100 watermarks over their range.
--   lua5.4 scripts/bench/timers.lua heap|rocksdb TIMERS   (LUA_CPATH: build/lua/?.so)
-- Prints "FIRED CHECKSUM REGISTER_S FIRE_S": the timers fired, a checksum
-- of the firing order (the same for both services) and the CPU seconds of
-- the two phases.
local core = require "tide.core"
local state = require "tide.state"
local timers = require "tide.timers"

local kind = arg[1] or "rocksdb"
local n = math.floor(tonumber(arg[2] or "1000000"))
local tmp = os.getenv("TMPDIR") or "/tmp"
state.configure { backend = kind, dir = string.format("%s/tide-bench-timers-%d", tmp, core.monotonic_us()) }
local b = state.backend(128, 1, 0)
state.configure(nil)
local fired, sum = 0, 0
local svc = timers.new(function(_, ts, key)
  fired = fired + 1
  sum = (sum * 31 + ts + key) % 1000000007
end, b)
local span = 10 * n -- timestamps in [0, span)
local x, ts, key = 1, 0, 0
local t0 = os.clock()
for i = 1, n do
  -- every fourth registration repeats the one before it
  if i % 4 ~= 0 then
    x = x * 48271 % 2147483647
    ts, key = x % span, x % 100000
  end
  svc:register("event", ts, key, false, key)
  if i % 1024 == 0 then b:flush() end
end
b:flush()
local t1 = os.clock()
for w = 1, 100 do
  svc:advance_watermark(math.floor(span * w / 100))
  b:flush()
end
local t2 = os.clock()
io.write(string.format("%d %d %.3f %.3f\n", fired, sum, t1 - t0, t2 - t1))
b:close()
