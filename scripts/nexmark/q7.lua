-- Nexmark q7, highest bid: the bids at the highest price of each tumbling
-- 10 s window, as the suite's q7.sql.
--   INSERT INTO nexmark_q7
--   SELECT B.auction, B.bidder, B.price, B.dateTime, B.extra
--   from bid B
--   JOIN (
--     SELECT MAX(price) AS maxprice, window_end as dateTime
--     FROM TABLE(
--             TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
--     GROUP BY window_start, window_end
--   ) B1
--   ON B.price = B1.maxprice
--   WHERE B.dateTime BETWEEN B1.dateTime  - INTERVAL '10' SECOND AND B1.dateTime;
--
-- Exactly as the SQL, BETWEEN included at both ends: a window [s, s + 10 s)
-- matches its own bids at its max price and also the bids at exactly
-- s + 10 s (the next window's first ms) at that price; such a bid can
-- thus come out twice, once per window.
--
-- In Tide, no bid is buffered for its window (the SQL's join would keep
-- them all):
-- 1. in each source subtask, only the bids that may be at their window's
--    max go on: those at or above the highest price seen here in the bid's
--    window. A bid at a window's first ms may also be at the previous
--    window's max: unless it is below that window's highest price seen
--    here, it also goes to the side output "edge" as an edge bid of the
--    previous window. (A filter drops the others, then a process function
--    sorts the few left.) The running maxima are a cache of the subtask
--    (not state: after a restore, more bids pass, with the same result),
--    so the stage is exact: a window's max is always set by a bid that
--    passed, and every bid at the final max passes. About log(n) of a
--    window's n bids pass per subtask when prices vary;
-- 2. window_all over tumbling 10 s windows: an incremental aggregate keeps
--    the highest price and the bids at it, and the window emits them
--    (rows) and {w = start, max = the price} for the edge bids;
-- 3. the edge bids, keyed by (window start, price), connected with those
--    maxima keyed alike: a keyed co-process keeps a key's edge bids and
--    whether its price is the window's max, and when the watermark
--    reaches the window's end + 1 ms (every bid of that ms is in, and the
--    max) emits them if it is, then drops the key's state. Edge bids that
--    come after that are late and dropped, as a window drops them.
-- Edge bids are spread over keys by price: all the bids of a window's
-- first ms can be edge bids (the first ms of a run, whose previous window
-- no subtask has seen: 9,200 bids at the benchmark's 10M events/s), and
-- with the RocksDB backend a key's window accumulator, list or map is read
-- and written whole at every batch that touches it, with batches of a
-- record or two behind an exchange: kept under one key they made that
-- stage quadratic (150 CPU s for 20,000 events at p2).
-- Rows {auction, bidder, price, date_time, extra}.
-- Measured on 10M generated events (Lua 5.4, heap): without the filter of
-- step 1 (every bid to the window stage) the job takes 9.5 CPU s at p1
-- and 17.6 at p2, with it 5.4 and 6.1 (of which making the events: 4.3).
--   tide run scripts/nexmark/q7.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local tide = require "tide"
local nexmark = require "nexmark"

local SIZE = 10000

local function row(b)
  return { auction = b.auction, bidder = b.bidder, price = b.price, date_time = b.date_time, extra = b.extra }
end

-- stage 1: a screen judges a bid by the bids it judged before: own (at or
-- above the highest price seen in its window) and edge (at a window's
-- first ms, not below the previous window's highest price seen). It keeps
-- window start -> the highest price seen there, and the window of the
-- last bid, [lo, lo + SIZE), with its highest price top (nil: none yet)
-- aside, most bids falling in the same window.
local function screen()
  local seen, newest = {}, nil
  local lo, hi, top = 0, 0, nil
  return function(b)
    local t, p = b.date_time, b.price
    if t < lo or t >= hi then -- another window than the last bid's
      lo = t - t % SIZE
      hi = lo + SIZE
      top = seen[lo]
      if top == nil and (newest == nil or lo > newest) then
        newest = lo
        for old in pairs(seen) do
          if old < lo - 2 * SIZE then seen[old] = nil end
        end
      end
    end
    local own = top == nil or p >= top
    if own then
      top = p
      seen[lo] = p
    end
    local edge = false
    if t == lo then
      local pm = seen[lo - SIZE]
      edge = pm == nil or p >= pm
    end
    return own, edge
  end
end

-- a filter drops most bids (one boolean each); a process function judges
-- the few left again (the same judgement: the dropped bids never raised a
-- max) to send them on as own bids or edge bids (side output "edge")
local first = screen()
local function may_matter(b)
  local own, edge = first(b)
  return own or edge
end

local second = screen()
local candidates = {
  on_record = function(b, ctx, out)
    local own, edge = second(b)
    if own then out:collect(row(b)) end
    if edge then ctx:output("edge", row(b)) end
  end,
}

-- stage 2: the highest price of a window and its bids: {m =, b1, b2, ...}
local highest = {
  create = function() return { m = nil } end,
  add = function(acc, b)
    local p = b.price
    if acc.m == nil or p > acc.m then return { m = p, b } end
    if p == acc.m then acc[#acc + 1] = b end
    return acc
  end,
  result = function(acc) return acc end,
}

local function emit_top(_, w, results, out)
  local acc = results[1]
  for i = 1, #acc do out:collect(acc[i]) end
  out:collect({ w = w.start, max = acc.m })
end

-- stage 3, keyed "window start:price": the edge bids (value "bids") and
-- whether the price is the window's max (value "max"), at w + SIZE
local function edge_key(b)
  local t = b.date_time
  return string.format("%d:%d", t - SIZE, b.price)
end
local function max_key(m) return string.format("%d:%d", m.w, m.max) end

local edges = {
  on_record1 = function(b, ctx, out)
    local fire = b.date_time
    if fire <= ctx.timers:current_watermark() then return end -- late: its window has fired
    local st = ctx.state:value("bids")
    local l = st:value()
    if l == nil then
      l = {}
      ctx.timers:register_event_time(fire)
    end
    l[#l + 1] = b
    st:update(l)
  end,
  on_record2 = function(m, ctx, out)
    ctx.state:value("max"):update(true)
    ctx.timers:register_event_time(m.w + SIZE)
  end,
  on_timer = function(_, ctx, out)
    local st, mx = ctx.state:value("bids"), ctx.state:value("max")
    local l = st:value()
    if l ~= nil and mx:value() then
      for i = 1, #l do out:collect(l[i]) end
    end
    st:clear()
    mx:clear()
  end,
}

local q = nexmark.query("q7")
local cands = q:bids{ "auction", "bidder", "price", "extra" }
  :filter(may_matter):uid("may-matter")
  :process(candidates):uid("candidates")
local tops = cands:window_all(tide.windows.tumbling(SIZE)):aggregate(highest, emit_top):uid("highest")
local rows = tops:filter(function(r) return r.max == nil end):uid("rows")
local maxima = tops:filter(function(r) return r.max ~= nil end):uid("maxima")
local edge_rows = cands:side_output("edge"):connect(maxima):key_by(edge_key, max_key)
  :process(edges):uid("edges")
q:sink(rows:union(edge_rows))
q:execute()
