-- Per-author totals over the git commit history CSV: commits, files
-- changed, insertions and deletions, written as CSV rows
-- "author,commits,files_changed,insertions,deletions" into OUT_DIR.
--
--   tide run scripts/author_totals.lua [--parallelism N] -- COMMITS_CSV OUT_DIR
local tide = require "tide"

local input, out_dir = arg[1], arg[2]
if not input or not out_dir then
  io.stderr:write("usage: tide run scripts/author_totals.lua -- COMMITS_CSV OUT_DIR\n")
  os.exit(2)
end

local env = tide.env{ runtime_mode = "batch" }

env:read_csv(input, {
     types = { author_time_ms = "int", commit_time_ms = "int", files_changed = "int",
               insertions = "int", deletions = "int" },
   }):uid("commits")
   :map(function(c)
     return { author = c.author, commits = 1, files_changed = c.files_changed,
              insertions = c.insertions, deletions = c.deletions }
   end):uid("project")
   :key_by("author")
   :reduce(function(a, b)
     return { author = a.author, commits = a.commits + b.commits,
              files_changed = a.files_changed + b.files_changed,
              insertions = a.insertions + b.insertions,
              deletions = a.deletions + b.deletions }
   end):uid("totals")
   :write_csv(out_dir, { columns = { "author", "commits", "files_changed", "insertions", "deletions" } })

env:execute("author_totals")
