-- A stateful event-time job for the checkpoint tests (tests/e2e/checkpoint_cases.sh).
--
--   tide run tests/e2e/chaos_job.lua [-p N] [--checkpoint-dir D ...] -- \
--       COMMITS_CSV OUT_DIR LATE_DIR [OPTION=VALUE...]
--
-- Commits per author per UTC day of commit_time_ms: read_csv at the job
-- parallelism, rebalance, per-record bounded watermarks (1 h), key_by
-- author, tumbling 1-day event-time windows counting commits, write_csv.
-- The CSV arrives in commit_time_ms order and every channel keeps that
-- order, so no record is ever late and the output does not depend on
-- timing. Rows of OUT_DIR: "author,day_start_ms,commits"; late records
-- (there should be none) go to LATE_DIR as "commit,author".
--
-- Options:
--   rate=N              source rate limit, records/s for the whole source
--   interval=T          checkpoint interval in the env (e.g. 200ms)
--   dir=D               checkpoint directory in the env
--   unaligned=1         unaligned checkpoints
--   retained=N          completed checkpoints to keep
--   fail_once=C:MARKER  the map "flaky" raises on commit C unless MARKER
--                       exists (it creates MARKER first), so it fails once
--   fail_always=C       the map "flaky" raises on commit C every time
--   restart=none | fixed:ATTEMPTS:DELAY
--   max_concurrent=N    checkpoints pending at a time
--   slow=US             a map before the windows takes US microseconds
--                       per record (sleeping, a millisecond at a time,
--                       once it owes one): its input backs up, so
--                       unaligned barriers overtake queued data and the
--                       checkpoints carry in-flight data
--   slow_first=N        with slow: only the first N records each subtask
--                       of that map takes in a run are slowed down (the
--                       backlog builds up from the start of every run,
--                       when the kills come; the rest of the input then
--                       goes at the source's rate)
--   pace=N:FILE         with rate, one source: at most N records/s
--                       (below rate) while FILE does not exist, then at
--                       rate (a map chained to the source sleeps, and
--                       looks for FILE every 100 records): a run that is
--                       slow as long as a test needs it, then goes fast.
--                       rate sets the source's batches (rate/20 records):
--                       a barrier waits at most rate/20/N s for a batch.
--                       With slow, the slow map too is slow only while
--                       FILE does not exist
--   sources=2           two sources instead of one, each reading the CSV
--                       and keeping half of the commits (by the parity of
--                       the first byte of the commit id), with their own
--                       watermarks, the first at twice the rate of the
--                       second, unioned: barriers reach the task at very
--                       different moments, and a source can skip a
--                       checkpoint id while another delivers it
local tide = require "tide"
local tointeger = require("tide.compat").tointeger

local input, out_dir, late_dir = arg[1], arg[2], arg[3]
if not (input and out_dir and late_dir) then
  io.stderr:write("usage: tide run tests/e2e/chaos_job.lua -- COMMITS_CSV OUT_DIR LATE_DIR [OPTION=VALUE...]\n")
  os.exit(2)
end
local opt = {}
for i = 4, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  if not k then
    io.stderr:write("chaos_job.lua: bad option '", arg[i], "' (OPTION=VALUE expected)\n")
    os.exit(2)
  end
  opt[k] = v
end

local checkpoint
if opt.dir or opt.interval or opt.unaligned or opt.retained or opt.max_concurrent then
  checkpoint = {
    dir = opt.dir,
    interval = opt.interval,
    unaligned = opt.unaligned == "1",
    retained = opt.retained and tointeger(tonumber(opt.retained)) or nil,
    max_concurrent = opt.max_concurrent and tointeger(tonumber(opt.max_concurrent)) or nil,
  }
end
local restart
if opt.restart == "none" then
  restart = { strategy = "none" }
elseif opt.restart then
  local attempts, delay = opt.restart:match("^fixed:(%d+):(.+)$")
  assert(attempts, "restart=none or restart=fixed:ATTEMPTS:DELAY")
  restart = { strategy = "fixed_delay", attempts = tointeger(tonumber(attempts)), delay = delay }
end

local env = tide.env{ checkpoint = checkpoint, restart = restart }

local timed
if opt.sources == "2" then
  local rate = opt.rate and tonumber(opt.rate) or nil
  local function half(parity, r)
    return env:read_csv(input, { types = { commit_time_ms = "int" }, rate_limit = r })
       :uid("commits-" .. parity)
       :filter(function(c) return c.commit:byte(1) % 2 == parity end):uid("half-" .. parity)
       :assign_timestamps(function(c) return c.commit_time_ms end,
                          tide.watermarks.bounded("1h", { per_record = true }))
       :uid("event-time-" .. parity)
  end
  timed = half(0, rate and 2 * rate):union(half(1, rate))
end

local commits = timed or env:read_csv(input, { types = { commit_time_ms = "int" },
                                      rate_limit = opt.rate and tonumber(opt.rate) or nil })
   :uid("commits")
if opt.pace and not timed then
  local n, file = opt.pace:match("^(%d+):(.+)$")
  assert(n, "pace=N:FILE")
  n = tonumber(n)
  local core = require "tide.core"
  local clock, sleep = core.monotonic_us, core.sleep_ms
  local start, count, gated = nil, 0, true
  commits = commits:map(function(c)
    if not gated then return c end
    count = count + 1
    if count % 100 == 0 then
      local f = io.open(file, "r")
      if f then
        f:close()
        gated = false
        return c
      end
    end
    local t = clock()
    start = start or t
    local ms = (start + count * 1e6 / n - t) / 1000
    if ms >= 1 then sleep(tointeger(math.floor(ms))) end
    return c
  end):uid("pace")
end
commits = timed or commits
   -- read_csv reads the whole file in subtask 0 (a CSV is not split), so
   -- spread the records: at p > 1 the window task then has several live
   -- input channels, whose barriers arrive at different moments (alignment,
   -- in-flight data in unaligned checkpoints). Each channel still carries
   -- its records in arrival order, so none is ever late.
   :rebalance()

if opt.fail_once or opt.fail_always then
  local bad, marker = opt.fail_always, nil
  if opt.fail_once then bad, marker = opt.fail_once:match("^([^:]+):(.+)$") end
  commits = commits:map(function(c)
    if c.commit == bad then
      if not marker then error("chaos: commit " .. bad .. " is poison") end
      local f = io.open(marker, "r")
      if f then
        f:close()
      else
        assert(io.open(marker, "w")):close()
        error("chaos: failing once on commit " .. bad)
      end
    end
    return c
  end):uid("flaky")
end

if opt.slow then
  -- it sleeps rather than spins: the time owed is slept whole
  -- milliseconds at a time, leaving the cores to the other subtasks (and
  -- to the other tests running beside this one)
  local sleep, us, owed = require("tide.core").sleep_ms, tointeger(tonumber(opt.slow)), 0
  local left = opt.slow_first and tointeger(tonumber(opt.slow_first)) or math.huge
  -- with pace=N:FILE, it is slow only while FILE does not exist either
  local fast_file, seen = opt.pace and opt.pace:match("^%d+:(.+)$"), 0
  commits = (timed or commits):map(function(c)
    if left <= 0 then return c end
    left = left - 1
    seen = seen + 1
    if fast_file and seen % 100 == 0 then
      local f = io.open(fast_file, "r")
      if f then
        f:close()
        left = 0
        return c
      end
    end
    owed = owed + us
    if owed >= 1000 then
      local ms = tointeger(math.floor(owed / 1000))
      sleep(ms)
      owed = owed - ms * 1000
    end
    return c
  end):uid("slow")
  if timed then timed = commits end
end

timed = timed or commits
   :assign_timestamps(function(c) return c.commit_time_ms end,
                      tide.watermarks.bounded("1h", { per_record = true }))
   :uid("event-time")
local daily = timed
   :key_by("author")
   :window(tide.windows.tumbling("1d"))
   :side_output_late("late")
   -- a process window function: the window state holds the commits
   -- themselves (not a running count), so snapshots carry real records
   :process(function(author, window, elements, out)
     out:collect({ author = author, day = window.start, commits = #elements })
   end):uid("daily")

daily:write_csv(out_dir, { columns = { "author", "day", "commits" } }):uid("out")
daily:side_output("late")
   :write_csv(late_dir, { columns = { "commit", "author" } }):uid("late-out")

env:execute("chaos")
