-- End-to-end job of test_json.sh: JSON lines in, JSON lines out.
--   tide run tests/e2e/json_job.lua [--checkpoint-dir D ...] -- MODE IN OUT [ON_ERROR [RATE]]
-- MODE "copy": every record of IN written to OUT as it is;
-- MODE "authors": per author the number of commits and the sum of
--   insertions, {author =, commits =, insertions =}, in batch mode;
-- MODE "stream": per record the author's running commit count so far,
--   {author =, commits =} (streaming, keyed state: restored exactly after a
--   kill).
local tide = require "tide"
local mode, input, output, on_error, rate = arg[1], arg[2], arg[3], arg[4], tonumber(arg[5])
local env = tide.env{ runtime_mode = mode == "authors" and "batch" or nil }
local s = env:read_json(input, { on_error = on_error ~= "" and on_error or nil, rate_limit = rate })
if mode == "authors" then
  s = s:map(function(r) return { author = r.author, commits = 1, insertions = r.insertions } end)
       :key_by("author")
       :reduce(function(a, b)
         return { author = a.author, commits = a.commits + b.commits, insertions = a.insertions + b.insertions }
       end)
elseif mode == "stream" then
  s = s:key_by("author"):process{
    on_record = function(r, ctx, out)
      local c = ctx.state:value("commits")
      local n = (c:value() or 0) + 1
      c:update(n)
      out:collect({ author = r.author, commits = n, commit = r.commit })
    end,
  }
end
s:write_json(output)
env:execute("json-" .. mode)
