-- scripts/nexmark/nexmark.lua - what every Nexmark query job shares: its
-- command line, the event sources (the generator of nexmark.so, a C module
-- source, or a file of JSON lines it dumped) with Nexmark's watermark
-- (date_time - 4 s, as the suite's DDL), and the sink.
--
--   tide run scripts/nexmark/qN.lua [tide options] -- EVENTS [OUT_DIR] [name=value ...]
--
-- EVENTS is how many events the generator makes in all (person, auction
-- and bid interleaved 1:3:46, as the reference generator); OUT_DIR is a
-- directory for the results as JSON lines (write_json), "-" or nothing
-- sends them to discard(). name=value pairs are generator options
-- (docs/NEXMARK.md: rate=, seed=, base_time=, ...), except
--   from=FILE   read the events from FILE (JSON lines, as dump.lua writes
--               them) instead of generating them
--   module=PATH the generator module (default: $NEXMARK,
--               scripts/nexmark/nexmark.so, build/modules/nexmark.so)
-- A query script:
--   local nexmark = require "nexmark"   -- after adding its directory to package.path
--   local q = nexmark.query("q2")
--   q:sink(q:bids():filter(function(b) return b.auction % 123 == 0 end)
--                  :map(function(b) return { auction = b.auction, price = b.price } end))
--   q:execute()
local tide = require "tide"

local M = {}

-- Nexmark's watermark: the largest date_time seen minus 4 s.
M.OUT_OF_ORDERNESS = "4s"

local KIND = { person = 0, auction = 1, bid = 2 }

local USAGE = "usage: tide run QUERY.lua [options] -- EVENTS [OUT_DIR|-] [name=value ...]"

-- Wrong arguments: the reason and the usage on stderr, exit status 2.
local function usage_error(msg)
  io.stderr:write("tide: ", msg, "\n", USAGE, "\n")
  os.exit(2)
end

local function readable(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function script_dir()
  local s = arg and arg[0] or ""
  return s:match("^(.*)/[^/]*$") or "."
end

--- nexmark.module_path(given) - the generator module's path: given (a
-- string, e.g. from module=PATH), else $NEXMARK, else nexmark.so beside
-- the script (make -C scripts/nexmark), else build/modules/nexmark.so
-- (make modules). Raises an error saying how to build it when none exists.
function M.module_path(given)
  if given then return given end
  local env = os.getenv("NEXMARK")
  if env and env ~= "" then return env end
  local here = script_dir()
  for _, p in ipairs { here .. "/nexmark.so", here .. "/../../build/modules/nexmark.so",
                       "build/modules/nexmark.so" } do
    if readable(p) then return p end
  end
  error("the Nexmark generator module is not built: run `make modules` (it builds "
        .. "build/modules/nexmark.so) or give module=PATH", 0)
end

-- Parse the script's arguments: EVENTS [OUT_DIR|-] [name=value ...].
function M.parse_args(args)
  local events = tonumber(args[1])
  if not events or events < 0 or events % 1 ~= 0 then
    usage_error("EVENTS must be a whole number of events, not " .. tostring(args[1]))
  end
  local out, opts, from, mod = nil, {}, nil, nil
  local i = 2
  if args[2] and not args[2]:find("=", 1, true) then
    if args[2] ~= "-" then out = args[2] end
    i = 3
  end
  while args[i] do
    local name, value = args[i]:match("^([%w_]+)=(.*)$")
    if not name then usage_error("not name=value: " .. args[i]) end
    if name == "from" then from = value
    elseif name == "module" then mod = value
    else opts[name] = tonumber(value) or value end
    i = i + 1
  end
  return { events = events, out = out, options = opts, from = from, module = mod }
end

local Query = {}
Query.__index = Query

--- nexmark.query(name, env_options) - a query job: parses the script's
-- arguments (above) and makes its environment (tide.env(env_options)).
-- name (string) names the job ("nexmark-" .. name). Returns a query whose
-- persons(), auctions() and bids() give the event streams and whose
-- sink(stream) and execute() end the job. Bad arguments print the reason
-- and the usage and exit with status 2.
function M.query(name, env_options)
  local q = setmetatable(M.parse_args(arg or {}), Query)
  q.name = name
  q.env = tide.env(env_options or {})
  return q
end

-- The events of one kind as a stream with timestamps (date_time) and
-- Nexmark's watermark; uid "<kind>s".
function Query:source(kind)
  local s
  if self.from then
    local want = KIND[kind]
    s = self.env:read_json(self.from):uid("read-" .. kind .. "s")
      :filter(function(e) return e.event_type == want end):uid(kind .. "s")
  else
    self.mod = self.mod or tide.load_module(M.module_path(self.module))
    local config = { events = self.events, kinds = { kind } }
    for k, v in pairs(self.options) do config[k] = v end
    s = self.env:add_source(self.mod.events, config):uid(kind .. "s")
  end
  return s:assign_timestamps(function(e) return e.date_time end,
                             tide.watermarks.bounded(M.OUT_OF_ORDERNESS))
end

--- q:persons(), q:auctions(), q:bids() - the generated events of that kind
-- (flat tables, fields as docs/NEXMARK.md lists them), timestamped by
-- date_time, watermark date_time - 4 s.
function Query:persons() return self:source("person") end
function Query:auctions() return self:source("auction") end
function Query:bids() return self:source("bid") end

--- q:sink(stream) - the query's results: write_json(OUT_DIR) (uid "sink"),
-- or discard() without an OUT_DIR.
function Query:sink(stream)
  if self.out then return stream:write_json(self.out):uid("sink") end
  return stream:discard()
end

--- q:execute() - run the job, named "nexmark-<name>".
function Query:execute()
  return self.env:execute("nexmark-" .. self.name)
end

-- Helpers the queries share.

--- nexmark.decimal3(thousandths) - a DECIMAL(23, 3) as its exact text,
-- from an integer count of thousandths: 908 * price -> "1234.567".
function M.decimal3(t)
  local sign = ""
  if t < 0 then sign, t = "-", -t end
  return string.format("%s%d.%03d", sign, math.floor(t / 1000), t % 1000)
end

return M
