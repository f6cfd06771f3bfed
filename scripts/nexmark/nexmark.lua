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
-- Nexmark's watermark; uid "<kind>s". fields: nil (every field) or the
-- names of the fields the query reads (date_time is added): the generator
-- emits only those (a projection pushed into the source, as Flink's
-- planner pushes one into a table source); events read from a file keep
-- all theirs.
function Query:source(kind, fields)
  local s
  if self.from then
    local want = KIND[kind]
    s = self.env:read_json(self.from):uid("read-" .. kind .. "s")
      :filter(function(e) return e.event_type == want end):uid(kind .. "s")
  else
    self.mod = self.mod or tide.load_module(M.module_path(self.module))
    local config = { events = self.events, kinds = { kind } }
    if fields then
      config.fields = { "date_time" }
      for _, f in ipairs(fields) do
        if f ~= "date_time" then config.fields[#config.fields + 1] = f end
      end
    end
    for k, v in pairs(self.options) do config[k] = v end
    s = self.env:add_source(self.mod.events, config):uid(kind .. "s")
  end
  return s:assign_timestamps(function(e) return e.date_time end,
                             tide.watermarks.bounded(M.OUT_OF_ORDERNESS))
end

--- q:persons(fields), q:auctions(fields), q:bids(fields) - the generated
-- events of that kind (flat tables, fields as docs/NEXMARK.md lists them),
-- timestamped by date_time, watermark date_time - 4 s. fields (optional,
-- an array of names): the fields the query reads; the generator emits only
-- those and date_time.
function Query:persons(fields) return self:source("person", fields) end
function Query:auctions(fields) return self:source("auction", fields) end
function Query:bids(fields) return self:source("bid", fields) end

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

--- nexmark.idiv(a, b) - floor(a / b) for integers a >= 0, b > 0, exact
-- below 2^53 (the float quotient can round up across an integer): Flink's
-- AVG over BIGINT (a BIGINT, the quotient truncated) of prices.
function M.idiv(a, b)
  local d = math.floor(a / b)
  if d * b > a then d = d - 1 elseif (d + 1) * b <= a then d = d + 1 end
  return d
end

local DAY_MS = 86400 * 1000
local day_names = {}

--- nexmark.utc_day(ms) - DATE_FORMAT(t, 'yyyy-MM-dd') of a time in ms
-- since the epoch, in UTC (one os.date per day seen).
function M.utc_day(ms)
  local d = math.floor(ms / DAY_MS)
  local s = day_names[d]
  if not s then
    s = os.date("!%Y-%m-%d", d * 86400)
    day_names[d] = s
  end
  return s
end

--- nexmark.rank_of(price) - the price rank of q15-q17's filters: 1 below
-- 10000, 2 below 1000000, else 3.
function M.rank_of(price)
  if price < 10000 then return 1 elseif price < 1000000 then return 2 end
  return 3
end

local FLAG = { 1, 2, 4 }

-- A COUNT(DISTINCT key) in all and FILTERed by rank r: m is a map state of
-- the keys seen, each with the set of ranks it was seen in (flags 1, 2,
-- 4); c[all] grows by one when key is first seen, c[all + r] when it is
-- first seen in rank r.
local function count_distinct(m, key, r, c, all)
  local ranks = m:get(key)
  if ranks == nil then
    c[all] = c[all] + 1
    c[all + r] = c[all + r] + 1
    m:put(key, FLAG[r])
  elseif math.floor(ranks / FLAG[r]) % 2 == 0 then
    c[all + r] = c[all + r] + 1
    m:put(key, ranks + FLAG[r])
  end
end

--- nexmark.count_bid(ctx, b, c) - count bid b into q15's and q16's
-- counters c (an array): bids (c[1] in all, c[2..4] by price rank),
-- distinct bidders (c[5], c[6..8]) and distinct auctions (c[9],
-- c[10..12]), the keys seen kept in the key's map states "bidders" and
-- "auctions" of ctx.state.
function M.count_bid(ctx, b, c)
  local r = M.rank_of(b.price)
  c[1] = c[1] + 1
  c[1 + r] = c[1 + r] + 1
  count_distinct(ctx.state:map("bidders"), b.bidder, r, c, 5)
  count_distinct(ctx.state:map("auctions"), b.auction, r, c, 9)
end

--- nexmark.bid_stats(row, c) - row with q15's and q16's twelve count
-- columns set from counters c (nexmark.count_bid); returns row.
function M.bid_stats(row, c)
  row.total_bids, row.rank1_bids, row.rank2_bids, row.rank3_bids = c[1], c[2], c[3], c[4]
  row.total_bidders, row.rank1_bidders, row.rank2_bidders, row.rank3_bidders = c[5], c[6], c[7], c[8]
  row.total_auctions, row.rank1_auctions, row.rank2_auctions, row.rank3_auctions = c[9], c[10], c[11], c[12]
  return row
end

--- nexmark.auction_winner(spec) - the functions of a keyed co-process over
-- auctions (input 1) and bids (input 2) keyed by auction id, which keeps
-- each auction's best bid among its bids with date_time in
-- [auction.date_time, auction.expires] (q4, q6, q9):
--   spec.better(b, c)            whether bid b beats bid c
--   spec.on_change(a, old, new, out)  (optional) the best bid changed
--                                (old: nil for the first)
--   spec.on_close(a, best, out)  (optional) the watermark passed expires:
--                                best (nil: no qualifying bid) is final
-- Bids that come before their auction (another stream, at p2 another
-- subtask) wait in keyed list state while it can still come: until the
-- watermark passes their date_time (an auction that comes later has a later
-- date_time, so they cannot qualify). At expires the auction's state goes:
-- every later bid has date_time > expires, nothing being late (a source
-- subtask's events are at most 4 s out of order, the watermark's bound).
-- Auction ids are unique (the generator numbers them). Pass the result to
-- `connect(...):key_by("id", "auction"):process`.
function M.auction_winner(spec)
  local better, on_change, on_close = spec.better, spec.on_change, spec.on_close
  local function qualifies(a, b) return b.date_time >= a.date_time and b.date_time <= a.expires end
  return {
    on_record1 = function(a, ctx, out)
      ctx.state:value("auction"):update(a)
      ctx.timers:register_event_time(a.expires)
      local waiting = ctx.state:list("waiting")
      local ws = waiting:get()
      if #ws == 0 then return end
      local best
      for i = 1, #ws do
        local b = ws[i]
        if qualifies(a, b) and (best == nil or better(b, best)) then best = b end
      end
      waiting:clear()
      if best then
        ctx.state:value("best"):update(best)
        if on_change then on_change(a, nil, best, out) end
      end
    end,
    on_record2 = function(b, ctx, out)
      local a = ctx.state:value("auction"):value()
      if a == nil then
        if b.date_time > ctx.timers:current_watermark() then
          ctx.state:list("waiting"):add(b)
          ctx.timers:register_event_time(b.date_time)
        end
      elseif qualifies(a, b) then
        local bv = ctx.state:value("best")
        local best = bv:value()
        if best == nil or better(b, best) then
          bv:update(b)
          if on_change then on_change(a, best, b, out) end
        end
      end
    end,
    on_timer = function(ts, ctx, out)
      local av = ctx.state:value("auction")
      local a = av:value()
      if a then
        if ts >= a.expires then -- closed: the best bid is final
          local bv = ctx.state:value("best")
          if on_close then on_close(a, bv:value(), out) end
          av:clear()
          bv:clear()
        end
        return
      end
      -- no auction: the waiting bids up to ts can no longer qualify
      local waiting = ctx.state:list("waiting")
      local ws = waiting:get()
      local keep = {}
      for i = 1, #ws do
        if ws[i].date_time > ts then keep[#keep + 1] = ws[i] end
      end
      if #keep < #ws then waiting:update(keep) end
    end,
  }
end

return M
