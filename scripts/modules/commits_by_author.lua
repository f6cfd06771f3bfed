-- Commits, lines inserted and lines deleted per author and per window of
-- author time (30 days by default), for the git history of
-- ../shared/data/git-commits.csv, with the streamkit C module
-- (scripts/modules/streamkit.c; make -C scripts/modules builds it):
--
--   lines (C source, split over the subtasks) -> csv (C map: columns, and
--   the author time as the event timestamp) -> where (C filter: merges out)
--   -> key_by author -> window_count (C keyed process: value state and
--   event-time timers per window) -> jsonl (C exactly-once sink)
--
-- Every operator runs in C: no record becomes a Lua value. Each output
-- line is {"key":AUTHOR,"window_start":MS,"count":N,"insertions":N,
-- "deletions":N}.
--
--   tide run scripts/modules/commits_by_author.lua [-p N] [--checkpoint-dir D
--     --checkpoint-interval T [--resume]] -- INPUT OUT_DIR [OPTION=VALUE...]
--
-- Options: days=N (window size, default 30); time=commit (windows of
-- commit time, non-decreasing in the file, instead of author time); rate=N
-- (records/s, to watch it run); watermarks=1 (per-record watermarks from a
-- Lua assign_timestamps, so that windows fire while the job runs: bounded
-- by 5000 days of author time, more than the data's lateness, or
-- monotonous commit time, so no record is late either way);
-- sink=csv (the counts through Lua into write_csv instead); key=lua (key_by
-- a Lua function: the keyed process gets its keys through Lua). The module
-- is STREAMKIT if set, else streamkit.so beside this script.
local tide = require "tide"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local kit = tide.load_module(os.getenv("STREAMKIT") or (here .. "streamkit.so"))

local input, out = arg[1], arg[2]
if not input or not out then
  io.stderr:write("usage: tide run scripts/modules/commits_by_author.lua -- INPUT OUT_DIR [OPTION=VALUE...]\n")
  os.exit(2)
end
local opts = {}
for i = 3, #arg do
  local k, v = arg[i]:match("^(%w+)=(.*)$")
  if not k then error("bad option '" .. arg[i] .. "' (expected NAME=VALUE)") end
  opts[k] = v
end
local DAY = 86400000

local env = tide.env()
local commits = env:add_source(kit.lines, { path = input, skip_header = true, rate_limit = tonumber(opts.rate) })
  :uid("lines")
  :transform(kit.csv, {
    columns = { "repo", "commit", "author_time_ms", "commit_time_ms", "author", "files_changed", "insertions",
      "deletions" },
    types = { author_time_ms = "int", commit_time_ms = "int", files_changed = "int", insertions = "int",
      deletions = "int" },
    timestamp = opts.time == "commit" and "commit_time_ms" or "author_time_ms",
  }):uid("parse")
  :transform(kit.where, { field = "files_changed", op = ">", value = 0 }):uid("non-merges")
if opts.watermarks then
  if opts.time == "commit" then
    commits = commits:assign_timestamps(function(c) return c.commit_time_ms end,
      tide.watermarks.monotonous({ per_record = true })):uid("watermarks")
  else
    commits = commits:assign_timestamps(function(c) return c.author_time_ms end,
      tide.watermarks.bounded("5000d", { per_record = true })):uid("watermarks")
  end
end
local keyed = opts.key == "lua" and commits:key_by(function(c) return c.author end) or commits:key_by("author")
local counts = keyed:transform(kit.window_count, { size = tonumber(opts.days or 30) * DAY,
  sum = { "insertions", "deletions" } }):uid("count")
if opts.sink == "csv" then
  counts:write_csv(out, { columns = { "key", "window_start", "count", "insertions", "deletions" } }):uid("sink")
else
  counts:add_sink(kit.jsonl, { dir = out }):uid("sink")
end
env:execute("commits-by-author")
