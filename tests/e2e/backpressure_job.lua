-- A job under backpressure for the unaligned checkpoint tests
-- (tests/e2e/test_unaligned.sh).
--
--   tide run tests/e2e/backpressure_job.lua [-p P] --checkpoint-dir D \
--       --checkpoint-interval T [--resume] -- N US OUT_DIR [unaligned] [sleep]
--
-- generate N records "%08d" .. 92 x "x" (100 bytes; numbers 1..N, split
-- among P source subtasks; task 1) -> event time = the number (ms), with
-- per-record watermarks (task 2) -> rebalance -> a map that busy-waits US
-- microseconds per record and parses the number (task 3) -> key_by(n % 3)
-- -> tumbling 100 ms windows: sum and count of the numbers (task 4) ->
-- write_csv "key,window_start,sum,count" (task 5). No record is ever late:
-- each source subtask's numbers rise, and every channel keeps their order.
-- Chaining is off, so every operator is a task of its own with a real
-- exchange before it: the slow map keeps its input channels full (credits
-- + overdraft of 32 KiB buffers), and so does the task before it; an
-- unaligned barrier overtakes that backlog.
-- Checkpoints keep 100 completed ones, so that a test can inspect them.
-- "sleep": the slow map sleeps the time it owes, whole milliseconds at a
-- time, instead of busy-waiting (it still counts as busy in the metrics;
-- the core stays free for the rest of the machine).
local tide = require "tide"
local tointeger = require("tide.compat").tointeger
local core = require "tide.core"

local n = tointeger(tonumber(arg[1]))
local us = tointeger(tonumber(arg[2]))
local out_dir = arg[3]
if not (n and us and out_dir) then
  io.stderr:write("usage: tide run tests/e2e/backpressure_job.lua -- N US OUT_DIR [unaligned] [sleep]\n")
  os.exit(2)
end
local flags = {}
for i = 4, #arg do flags[arg[i]] = true end
local pad = string.rep("x", 92)
local clock = core.monotonic_us
local owed = 0

local env = tide.env{ chaining = false,
                      checkpoint = { unaligned = flags.unaligned == true, retained = 100 } }
env:generate(function(i) return string.format("%08d", i) .. pad end, n):uid("numbers")
   :assign_timestamps(function(s) return tointeger(tonumber(s:sub(1, 8))) end,
                      tide.watermarks.bounded(0, { per_record = true }))
   :uid("event-time")
   :rebalance()
   :map(flags.sleep and function(s)
     owed = owed + us
     if owed >= 1000 then
       local ms = tointeger(math.floor(owed / 1000))
       core.sleep_ms(ms)
       owed = owed - ms * 1000
     end
     return tointeger(tonumber(s:sub(1, 8)))
   end or function(s)
     local due = clock() + us
     while clock() < due do end
     return tointeger(tonumber(s:sub(1, 8)))
   end):uid("slow")
   :key_by(function(v) return v % 3 end)
   :window(tide.windows.tumbling(100))
   :aggregate({
     create = function() return { 0, 0 } end,
     add = function(a, v) a[1] = a[1] + v; a[2] = a[2] + 1; return a end,
     result = function(a) return a end,
   }, function(key, window, results, out)
     local a = results[1]
     out:collect({ key = key, start = window.start, sum = a[1], count = a[2] })
   end):uid("windows")
   :write_csv(out_dir, { columns = { "key", "start", "sum", "count" } }):uid("out")
env:execute("backpressure")
