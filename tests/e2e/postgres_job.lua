-- Jobs for tests/e2e/test_postgres.sh: write_postgres (lua/tide/postgres.lua).
--   tide run tests/e2e/postgres_job.lua -- CONNINFO MODE ARG... [OPT=V...]
-- MODE append CSV TABLE: every commit of CSV as a row (commit, repo,
--   author) of TABLE (append)
-- MODE sum CSV TABLE: commits per author, a running sum upserted into TABLE
--   (author, n) by author
-- MODE kafka BOOT TABLE: read_kafka of topic "in" (values "commit,author",
--   Kafka timestamps as event time, per-partition monotonous watermarks,
--   bounded at the latest offsets); commits per author per UTC day
--   (tumbling 1 d windows) as rows (author, day_ms, n) of TABLE (append)
-- OPT: guarantee=exactly_once|at_least_once (default exactly_once),
--   rate=N (records/s of the source), batch=N (batch_size)
local tide = require "tide"

local conninfo, mode = arg[1], arg[2]
local opt = {}
for i = 3, #arg do
  local k, v = arg[i]:match("^(%w+)=(.*)$")
  if k then opt[k] = v end
end
local guarantee = opt.guarantee or "exactly_once"
local rate = opt.rate and tonumber(opt.rate)
local batch = opt.batch and math.floor(tonumber(opt.batch))

local env = tide.env{}
if mode == "append" then
  env:read_csv(arg[3], { header = true, rate_limit = rate }):uid("csv")
    :map(function(r) return { commit = r.commit, repo = r.repo, author = r.author } end)
    :write_postgres{ conninfo = conninfo, table = arg[4], columns = { "commit", "repo", "author" },
      delivery_guarantee = guarantee, batch_size = batch }:uid("pg")
elseif mode == "sum" then
  env:read_csv(arg[3], { header = true, rate_limit = rate }):uid("csv")
    :map(function(r) return { author = r.author, n = 1 } end)
    :key_by("author"):sum("n"):uid("sum")
    :write_postgres{ conninfo = conninfo, table = arg[4], columns = { "author", "n" }, mode = "upsert",
      key = { "author" }, delivery_guarantee = guarantee, batch_size = batch }:uid("pg")
elseif mode == "kafka" then
  env:read_kafka{ bootstrap_servers = arg[3], topics = { "in" }, stopping_offsets = "latest",
      watermarks = tide.watermarks.monotonous(), rate_limit = rate }:uid("kafka-in")
    :map(function(v) return v:match(",(.*)$") end)
    :key_by(function(author) return author end)
    :window(tide.windows.tumbling("1d"))
    :process(function(author, window, elements, o)
      o:collect({ author = author, day_ms = window.start, n = #elements })
    end):uid("days")
    :write_postgres{ conninfo = conninfo, table = arg[4], columns = { "author", "day_ms", "n" },
      delivery_guarantee = guarantee, batch_size = batch }:uid("pg")
else
  error("mode must be append, sum or kafka")
end
env:execute("pg-" .. mode)
