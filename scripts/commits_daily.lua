-- Commits per author per day, in event time.
--
--   tide run scripts/commits_daily.lua [--parallelism N] -- COMMITS_CSV OUT_DIR LATE_DIR
--
-- The author time of a commit is its event time; the CSV arrives in
-- committer-time order, so author times are out of order. Watermarks allow
-- one hour of disorder and are emitted after every record (so the result
-- does not depend on timing); each author's commits are counted in
-- tumbling one-day event-time windows (UTC days). Commits that arrive after
-- their day's window has fired are late: they go to a side output, written
-- to LATE_DIR. Rows: OUT_DIR "author,day,commits"; LATE_DIR
-- "commit,author,author_time_ms".
local tide = require "tide"

local input, out_dir, late_dir = arg[1], arg[2], arg[3]
if not (input and out_dir and late_dir) then
  io.stderr:write("usage: tide run scripts/commits_daily.lua -- COMMITS_CSV OUT_DIR LATE_DIR\n")
  os.exit(2)
end

local env = tide.env{}

local commits = env:read_csv(input, { types = { author_time_ms = "int", commit_time_ms = "int" } })
   :set_parallelism(1):uid("commits")
   :assign_timestamps(function(c) return c.author_time_ms end,
                      tide.watermarks.bounded("1h", { per_record = true }))
   :set_parallelism(1):uid("event-time")

local counter = {
  create = function() return 0 end,
  add = function(n) return n + 1 end,
  result = function(n) return n end,
  merge = function(a, b) return a + b end,
}

local daily = commits
   :key_by("author")
   :window(tide.windows.tumbling("1d"))
   :side_output_late("late")
   :aggregate(counter, function(author, window, counts, out)
     out:collect({ author = author, day = os.date("!%Y-%m-%d", math.floor(window.start / 1000)), commits = counts[1] })
   end):uid("daily")

daily:write_csv(out_dir, { columns = { "author", "day", "commits" } })
daily:side_output("late")
   :write_csv(late_dir, { columns = { "commit", "author", "author_time_ms" } })

env:execute("commits_daily")
