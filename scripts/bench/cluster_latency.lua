-- The cluster issue's latency goal: records stamped with their creation
-- time by a rate-limited generate (RATE records/s for the whole source, 0:
-- as fast as it goes) through one keyed exchange (key_by -> process) at
-- the job's parallelism; the process function measures creation-to-arrival
-- per record. Run at -p 2 on two task managers of one slot each, half of
-- the records cross processes; in one process (no --jobmanager) none do.
-- The clock is CLOCK_MONOTONIC (core.monotonic_us), one clock for every
-- process of a machine, so the processes must share a machine.
--
-- Each record carries the process id of its source subtask; the sink sorts
-- the latencies of records from its own process ("local") and from
-- another ("remote") into histograms of whole microseconds (one table
-- increment per record) and at the end writes them to OUT.<subtask>:
--   span FIRST_CREATED_US LAST_ARRIVAL_US COUNT
--   local|remote LATENCY_US COUNT   (one line per distinct latency)
-- scripts/bench/cluster.sh merges the files of all subtasks. (A file, not
-- stdout: on a cluster the records a job prints go to the task managers'
-- standard output.)
--   tide run scripts/bench/cluster_latency.lua -p 2 [--buffer-timeout T]
--     [--jobmanager J --secret-file F] -- RATE N OUT
local tide = require "tide"
local clock = require("tide.core").monotonic_us

local rate, n, out = tonumber(arg[1]), tonumber(arg[2]), arg[3]
if not rate or not n or not out then
  io.stderr:write("usage: tide run scripts/bench/cluster_latency.lua -- RATE N OUT\n")
  os.exit(2)
end

-- this VM's process (the script runs in every subtask's VM)
local f = assert(io.open("/proc/self/stat"))
local PID = f:read("n")
f:close()

local env = tide.env{}
env:generate(function(i)
     -- keys spread over both subtasks' sequences (generate interleaves them)
     return { k = i * 7919 % 1021, pid = PID, created = clock() }
   end, n, { rate_limit = rate > 0 and rate or nil })
   :key_by("k")
   :process{
     open = function(ctx)
       ctx.hist = { [true] = {}, [false] = {} }
       ctx.first, ctx.last, ctx.n = math.huge, 0, 0
     end,
     on_record = function(r, ctx)
       local now = clock()
       local h = ctx.hist[r.pid == PID]
       local d = now - r.created
       h[d] = (h[d] or 0) + 1
       if r.created < ctx.first then ctx.first = r.created end
       ctx.last = now
       ctx.n = ctx.n + 1
     end,
     close = function(ctx)
       local o = assert(io.open(out .. "." .. ctx.subtask, "w"))
       o:write(string.format("span %d %d %d\n", ctx.first == math.huge and 0 or ctx.first, ctx.last, ctx.n))
       for is_local, h in pairs(ctx.hist) do
         local label = is_local and "local" or "remote"
         for d, c in pairs(h) do o:write(label, " ", d, " ", c, "\n") end
       end
       o:close()
     end,
   }
   :discard()
env:execute("bench-cluster-latency")
