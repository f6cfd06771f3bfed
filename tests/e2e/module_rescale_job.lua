-- The job of tests/e2e/test_module_rescale.sh: a C module keyed process
-- (streamkit's window_count: value state and event-time timers per author
-- and 30-day window of commit time) between Lua operators, checkpointed,
-- so that it can be killed and resumed at another parallelism.
--   tide run tests/e2e/module_rescale_job.lua -p P [--resume] -- INPUT OUT CKDIR RATE [own]
-- INPUT is ../shared/data/git-commits.csv or its first lines (the test
-- takes the first 30000 commits). OUT/windows gets one line per author
-- and window, "author,window_start,count,insertions,deletions";
-- OUT/tallies the running number of windows per author, "author,i" (a Lua
-- keyed sum: RocksDB state with --state-backend rocksdb). own: the
-- records come from streamkit's lines source and csv map instead of
-- read_csv (the source's byte offset is state of the module's own, which
-- cannot be rescaled). The module is STREAMKIT if set, else
-- build/modules/streamkit.so.
local tide = require "tide"
local compat = require "tide.compat"

local kit = tide.load_module(os.getenv("STREAMKIT") or "build/modules/streamkit.so")
local DAY = 86400000
local rate = compat.tointeger(tonumber(arg[4]))
local types = { author_time_ms = "int", commit_time_ms = "int", files_changed = "int", insertions = "int",
  deletions = "int" }

local env = tide.env{ checkpoint = { dir = arg[3], interval = "100ms" }, restart = { strategy = "none" } }
local commits
if arg[5] == "own" then
  commits = env:add_source(kit.lines, { path = arg[1], skip_header = true, rate_limit = rate }):uid("lines")
    :transform(kit.csv, { columns = { "repo", "commit", "author_time_ms", "commit_time_ms", "author",
      "files_changed", "insertions", "deletions" }, types = types }):uid("parse")
else
  commits = env:read_csv(arg[1], { types = types, rate_limit = rate }):uid("read")
end
-- a C filter (no state), then event time: commit time is non-decreasing
-- in the file, so no record is late, whatever the parallelism
local windows = commits:transform(kit.where, { field = "files_changed", op = ">", value = 0 }):uid("non-merges")
  :assign_timestamps(function(c) return c.commit_time_ms end, tide.watermarks.monotonous({ per_record = true }))
  :uid("watermarks")
  :key_by("author")
  :transform(kit.window_count, { size = 30 * DAY, sum = { "insertions", "deletions" } }):uid("count")
windows:map(function(w)
  return string.format("%s,%d,%d,%d,%d", w.key, w.window_start, w.count, w.insertions, w.deletions)
end):uid("format")
  :write_text(arg[2] .. "/windows"):uid("windows-sink")
windows:map(function(w) return { author = w.key, n = 1 } end):uid("one")
  :key_by("author"):sum("n"):uid("tally")
  :map(function(r) return r.author .. "," .. r.n end):uid("tally-format")
  :write_text(arg[2] .. "/tallies"):uid("tallies-sink")
env:execute("module-rescale")
