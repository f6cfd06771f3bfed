-- Coding sessions per author: commits less than two hours apart (in author
-- time) belong to one session, as event-time session windows with a gap of
-- two hours.
--
--   tide run scripts/coding_sessions.lua [--parallelism N] -- COMMITS_CSV OUT_DIR
--
-- Rows: "author,start,stop,commits,insertions,deletions" with start and
-- stop in UTC ("YYYY-MM-DDTHH:MM:SSZ"; stop is the last commit plus the
-- gap). Watermarks allow one hour of disorder, emitted per record; commits
-- later than that are dropped.
local tide = require "tide"

local input, out_dir = arg[1], arg[2]
if not (input and out_dir) then
  io.stderr:write("usage: tide run scripts/coding_sessions.lua -- COMMITS_CSV OUT_DIR\n")
  os.exit(2)
end

local env = tide.env{}

local function iso(ms) return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(ms / 1000)) end

env:read_csv(input, { types = { author_time_ms = "int", insertions = "int", deletions = "int" } })
   :set_parallelism(1):uid("commits")
   :map(function(c) return { author = c.author, time = c.author_time_ms, commits = 1,
                             insertions = c.insertions or 0, deletions = c.deletions or 0 } end)
   :set_parallelism(1):uid("project")
   -- everything up to the watermarks runs in one subtask, so which commits
   -- are late does not depend on timing
   :assign_timestamps(function(c) return c.time end,
                      tide.watermarks.bounded("1h", { per_record = true }))
   :set_parallelism(1):uid("event-time")
   :key_by("author")
   :window(tide.windows.session("2h"))
   :reduce(function(a, b)
     return { author = a.author, commits = a.commits + b.commits,
              insertions = a.insertions + b.insertions, deletions = a.deletions + b.deletions }
   end, function(author, window, sums, out)
     local s = sums[1]
     out:collect({ author = author, start = iso(window.start), stop = iso(window.stop),
                   commits = s.commits, insertions = s.insertions, deletions = s.deletions })
   end):uid("sessions")
   :write_csv(out_dir, { columns = { "author", "start", "stop", "commits", "insertions", "deletions" } })

env:execute("coding_sessions")
