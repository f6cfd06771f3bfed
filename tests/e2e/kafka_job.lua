-- Kafka jobs for tests/e2e/test_kafka.sh.
--
--   tide run tests/e2e/kafka_job.lua [-p N ...] -- BOOTSTRAP MODE OUT [OPTION=VALUE...]
--
-- MODE read: read_kafka (format "raw") of topic=T (default "in"), bounded
--   unless unbounded=1, each record written to OUT (write_text) as
--   "partition offset value"; options starting=earliest|latest|committed|
--   ts:MS, group=G, rate=N (records/s).
-- MODE windows: read_kafka of T with the Kafka timestamps as event time
--   and per-partition monotonous watermarks; values "commit,author"; key
--   by author, tumbling 1-day windows counting commits: OUT gets
--   "author,day_start_ms,count", late records go to LATE=dir; options
--   idle=MS (the partitions' idleness), unbounded=1, rate=N.
-- MODE sink: the lines of the file in=F written to topic T with
--   delivery=at_least_once|exactly_once|none, keyed by the author field.
local tide = require "tide"

local boot, mode, out = arg[1], arg[2], arg[3]
local opt = {}
for i = 4, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  opt[k] = v
end
local env = tide.env()
local topic = opt.topic or "in"

if mode == "read" then
  local starting = opt.starting or "earliest"
  if starting:match("^ts:") then starting = { timestamp = math.floor(tonumber(starting:sub(4))) } end
  env:read_kafka{ bootstrap_servers = boot, topics = { topic }, group_id = opt.group, format = "raw",
      starting_offsets = starting, stopping_offsets = opt.unbounded ~= "1" and "latest" or nil,
      rate_limit = opt.rate and tonumber(opt.rate) }:uid("kafka-in")
    :map(function(r) return r.partition .. " " .. r.offset .. " " .. r.value end)
    :write_text(out)
elseif mode == "windows" then
  local wm = tide.watermarks.monotonous()
  if opt.idle then wm = wm:with_idleness(tonumber(opt.idle)) end
  local counts = env:read_kafka{ bootstrap_servers = boot, topics = { topic },
      stopping_offsets = opt.unbounded ~= "1" and "latest" or nil, watermarks = wm,
      rate_limit = opt.rate and tonumber(opt.rate) }:uid("kafka-in")
    :map(function(v) return v:match(",(.*)$") end)
    :key_by(function(author) return author end)
    :window(tide.windows.tumbling("1d"))
    :side_output_late("late")
    :process(function(author, window, elements, o)
      o:collect(author .. "," .. window.start .. "," .. #elements)
    end)
  counts:write_text(out)
  counts:side_output("late"):write_text(opt.late)
elseif mode == "sink" then
  env:read_text(opt["in"], { rate_limit = opt.rate and tonumber(opt.rate) })
    :write_kafka{ bootstrap_servers = boot, topic = topic, delivery_guarantee = opt.delivery,
      transactional_id_prefix = "tide-test-" .. topic,
      key = function(line) return line:match(",(.*)$") end }
end
env:execute("kafka-" .. mode)
