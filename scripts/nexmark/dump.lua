-- The first EVENTS events of the Nexmark generator (scripts/nexmark/
-- nexmark.c, docs/NEXMARK.md) as JSON lines in OUT_FILE, one event a line
-- in event order (object names sorted), for tests and oracles to read:
--
--   tide run scripts/nexmark/dump.lua [-p N] [--checkpoint-dir D ...] \
--     -- EVENTS OUT_FILE [KINDS] [NAME=VALUE...]
--
-- KINDS: "all" (default) or a comma-separated subset of person, auction,
-- bid. NAME=VALUE: any integer field of the source's config (seed=7,
-- rate=1000, out_of_order_group_size=10, ...) and rate_limit (events/s of
-- wall-clock time, Tide's). The source runs at the job's parallelism and
-- writes JSON part files (write_json, exactly once) into OUT_FILE.parts;
-- once the job ended, this script merges them into OUT_FILE in event
-- order (subtask k of p emits the events k, k + p, ...) and removes them,
-- so the file is the same at any parallelism and across kills and
-- --resume. The module is found as the queries find it
-- (nexmark.module_path: $NEXMARK, beside this script, build/modules).
local tide = require "tide"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local nx = tide.load_module(require("nexmark").module_path())

local function usage(msg)
  io.stderr:write("dump.lua: " .. msg .. "\nusage: tide run scripts/nexmark/dump.lua -- EVENTS OUT_FILE " ..
    "[all|person,auction,bid] [NAME=VALUE...]\n")
  os.exit(2)
end

local events, out_file = tonumber(arg[1]), arg[2]
if not events or events < 1 or events % 1 ~= 0 or not out_file then usage("EVENTS (>= 1) and OUT_FILE expected") end
local config = { events = events }
local first = 3
if arg[3] and not arg[3]:find("=", 1, true) then
  if arg[3] ~= "all" then
    config.kinds = {}
    for k in arg[3]:gmatch("[^,]+") do config.kinds[#config.kinds + 1] = k end
  end
  first = 4
end
for i = first, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  if not k or not tonumber(v) then usage("bad option '" .. arg[i] .. "' (expected NAME=NUMBER)") end
  config[k] = tonumber(v)
end

local parts = out_file .. ".parts"
local env = tide.env()
env:add_source(nx.events, config):uid("events")
   :write_json(parts):uid("json")
env:execute("nexmark-dump")

-- Only the planning VM gets here, once the job ended: merge.

-- the kind of event n, as the source computes it (GeneratorConfig)
local function knob(name, default) return config[name] or default end
local fid, fnum = knob("first_event_id", 1), knob("first_event_number", 1)
local group = knob("out_of_order_group_size", 1)
local pp, ap = knob("person_proportion", 1), knob("auction_proportion", 3)
local total = pp + ap + knob("bid_proportion", 46)
local wanted = { person = not config.kinds, auction = not config.kinds, bid = not config.kinds }
for _, k in ipairs(config.kinds or {}) do wanted[k] = true end
local function kind_of(n)
  local e = fnum + n
  if group > 1 then e = math.floor(e / group) * group + (e * 953) % group end
  local rem = (fid + e) % total
  if rem < pp then return "person" elseif rem < pp + ap then return "auction" end
  return "bid"
end

-- each subtask's committed part files, in the order it wrote them
local names = assert(tide.list_dir(parts))
local streams = {}
for _, name in ipairs(names) do
  local subtask, counter = name:match("^part%-.*%-(%d+)%-(%d+)$")
  if subtask then
    local list = streams[tonumber(subtask)] or {}
    streams[tonumber(subtask)] = list
    list[#list + 1] = { counter = tonumber(counter), path = parts .. "/" .. name }
  end
end
local function reader(list)
  table.sort(list, function(a, b) return a.counter < b.counter end)
  local i, f = 0, nil
  return function()
    while true do
      local line = f and f:read("*l")
      if line then return line end
      if f then f:close() end
      i = i + 1
      if not list[i] then return nil end
      f = assert(io.open(list[i].path, "rb"))
    end
  end
end
local p = env.parallelism
local next_line = {}
for k = 0, p - 1 do next_line[k] = reader(streams[k] or {}) end
for k in pairs(streams) do
  if k >= p then error(string.format("dump: %s holds part files of subtask %d at parallelism %d", parts, k, p)) end
end

local out = assert(io.open(out_file, "wb"))
local n_out = 0
for n = 0, events - 1 do
  if wanted[kind_of(n)] then
    local k = n % p
    local line = next_line[k]()
    if not line then
      error(string.format("dump: subtask %d of %d wrote fewer events than event %d needs", k, p, n))
    end
    out:write(line, "\n")
    n_out = n_out + 1
  end
end
out:close()
for k = 0, p - 1 do
  if next_line[k]() then error(string.format("dump: subtask %d of %d wrote more events than expected", k, p)) end
end
for _, name in ipairs(names) do os.remove(parts .. "/" .. name) end
os.remove(parts)
io.stderr:write(string.format("dump: %d events into %s\n", n_out, out_file))
