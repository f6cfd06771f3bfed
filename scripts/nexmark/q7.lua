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
-- 1. a filter in each source subtask drops the bids that cannot be at
--    their window's max: those below the highest price it has seen in
--    the bid's window (a bid at a window's first ms must also be below the
--    previous window's highest, as it may match that one). The running
--    maxima are a cache of the subtask (not state: without it, after a
--    restore, more bids pass, with the same result), so the stage is
--    exact: a window's max is always set by a bid that passed, and every
--    bid at the final max passes. About log(n) of a window's n bids pass
--    per subtask when prices vary;
-- 2. the survivors, projected to the output's fields, go to window_all
--    over sliding windows of 10 s + 1 ms every 10 s: [s, s + 10 s]
--    is exactly the BETWEEN range of the window [s, s + 10 s), and it
--    fires when the watermark passes s + 10 s, once every bid at that ms
--    is in. An incremental aggregate keeps, per 10 s window start of
--    the bids it gets (at most two: s, and s + 10 s for the last ms), the
--    highest price with the bids at it, and the bids at the window's
--    first ms; the window's rows are its own start's bids at the max and
--    those at its last ms (start s + 10 s) with that price.
-- Rows {auction, bidder, price, date_time, extra}.
--   tide run scripts/nexmark/q7.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local tide = require "tide"
local nexmark = require "nexmark"

local SIZE = 10000

-- stage 1: window start -> the highest price this subtask has seen there;
-- the window of the last bid, [lo, lo + SIZE), and its highest price top
-- (nil: none yet) are kept aside, most bids falling in the same window
local seen, newest = {}, nil
local lo, hi, top = 0, 0, nil

-- a bid at the window's first ms may also be at the previous window's max
local function first_ms(p)
  local pm = seen[lo - SIZE]
  return pm == nil or p >= pm
end

local function may_top(b)
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
  if top == nil or p >= top then
    top = p
    seen[lo] = p
    return true
  end
  return t == lo and first_ms(p)
end

-- stage 2: per 10 s start g of the bids: {m = highest price, top = {bids
-- at m}, first = {bids at g's first ms}}
local function group(b)
  local t = b.date_time
  return { m = b.price, top = { b }, first = t % SIZE == 0 and { b } or {} }
end

local function add_to(g, b)
  local p = b.price
  if p > g.m then
    g.m, g.top = p, { b }
  elseif p == g.m then
    g.top[#g.top + 1] = b
  end
  if b.date_time % SIZE == 0 then g.first[#g.first + 1] = b end
end

local highest = {
  create = function() return {} end,
  add = function(acc, b)
    local t = b.date_time
    local s = t - t % SIZE
    local g = acc[s]
    if g == nil then acc[s] = group(b) else add_to(g, b) end
    return acc
  end,
  merge = function(a, b)
    for s, h in pairs(b) do
      local g = a[s]
      if g == nil then
        a[s] = h
      else
        if h.m > g.m then
          g.m, g.top = h.m, h.top
        elseif h.m == g.m then
          for _, x in ipairs(h.top) do g.top[#g.top + 1] = x end
        end
        for _, x in ipairs(h.first) do g.first[#g.first + 1] = x end
      end
    end
    return a
  end,
  result = function(acc) return acc end,
}

local function row(b)
  return { auction = b.auction, bidder = b.bidder, price = b.price, date_time = b.date_time, extra = b.extra }
end

local function rows(_, w, results, out)
  local acc = results[1]
  local own = acc[w.start]
  if own == nil then return end -- only bids at the last ms: no window of its own
  for _, b in ipairs(own.top) do out:collect(row(b)) end
  local after = acc[w.start + SIZE]
  if after ~= nil then
    for _, b in ipairs(after.first) do
      if b.price == own.m then out:collect(row(b)) end
    end
  end
end

local q = nexmark.query("q7")
q:sink(q:bids()
  :filter(may_top):uid("may-top")
  :map(row):uid("project")
  :window_all(tide.windows.sliding(SIZE + 1, SIZE)):aggregate(highest, rows):uid("highest"))
q:execute()
