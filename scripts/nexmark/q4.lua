-- Nexmark q4, average price for a category: the average of the winning
-- (highest) bid prices of the auctions of each category, as the suite's
-- q4.sql.
--   INSERT INTO nexmark_q4
--   SELECT
--       Q.category,
--       AVG(Q.final)
--   FROM (
--       SELECT MAX(B.price) AS final, A.category
--       FROM auction A, bid B
--       WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
--       GROUP BY A.id, A.category
--   ) Q
--   GROUP BY Q.category;
--
-- Rows {category, final}, updated (a new row for the category) each time
-- its average changes: an updating result, whose last row per category is
-- the SQL's answer. The SQL's sink names the columns id, final; the first
-- is the category, so it is named so here. AVG over BIGINT is a BIGINT in
-- Flink: floor(sum / count) (prices are not negative), computed exactly.
--
-- Two keyed stages:
-- 1. per auction (auctions connected with bids, keyed by auction id): the
--    auction's date_time, expires and category, and the max price of its
--    bids with date_time in [date_time, expires]. Each time that max
--    changes, the change {category, old, new} goes to stage 2 (old nil:
--    the auction's first qualifying bid). Bids that come before their
--    auction (the auctions are another stream, and another subtask at p2)
--    wait in keyed list state until it comes. State is dropped once the
--    watermark passes what can still matter, with event-time timers:
--    - at the auction's expires: every later bid has date_time > expires
--      (nothing is late: a source subtask's events are at most 4 s out of
--      date_time order, the watermark's bound), so the auction can gain
--      nothing more; its state goes. The SQL's groups are kept for ever,
--      but nothing changes them again. (A bid later than the watermark
--      would be lost here, where the SQL would count it; the generator
--      makes none.)
--    - at a waiting bid's date_time: an auction that comes after the
--      watermark has passed it has a later date_time, so the bid cannot
--      qualify (this drops the bids for auctions already closed, and for
--      auctions that never come).
--    Auction ids are unique (the generator numbers them), so the state of
--    an auction is one auction.
-- 2. per category: the sum and the count of the auctions' maxima, kept
--    exact by the changes (count + 1 on an auction's first max, sum + new -
--    old on every change): both are sums, so the result does not depend on
--    the order the changes arrive in, at any parallelism. The sink follows
--    it with a forward edge, so a category's rows are one subtask's, in
--    order.
--   tide run scripts/nexmark/q4.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"

-- floor(a / b) for integers a >= 0, b > 0, exact for any size below 2^53
-- (the float quotient can round up across an integer).
local function idiv(a, b)
  local d = math.floor(a / b)
  if d * b > a then d = d - 1 elseif (d + 1) * b <= a then d = d + 1 end
  return d
end

local q = nexmark.query("q4")

local auctions = q:auctions():map(function(a)
  return { id = a.id, date_time = a.date_time, expires = a.expires, category = a.category }
end):uid("project-auctions")
local bids = q:bids():map(function(b)
  return { auction = b.auction, price = b.price, date_time = b.date_time }
end):uid("project-bids")

local maxima = auctions:connect(bids):key_by("id", "auction"):process{
  on_record1 = function(a, ctx, out)
    ctx.state:value("auction"):update(a)
    ctx.timers:register_event_time(a.expires)
    local waiting = ctx.state:list("waiting")
    local ws = waiting:get()
    if #ws == 0 then return end
    local max
    for i = 1, #ws do
      local b = ws[i]
      if b.date_time >= a.date_time and b.date_time <= a.expires and (max == nil or b.price > max) then
        max = b.price
      end
    end
    waiting:clear()
    if max then
      ctx.state:value("max"):update(max)
      out:collect({ category = a.category, new = max })
    end
  end,
  on_record2 = function(b, ctx, out)
    local a = ctx.state:value("auction"):value()
    if a == nil then
      -- the auction is not here (yet, or any more): wait for it while it
      -- can still come with date_time <= the bid's
      if b.date_time > ctx.timers:current_watermark() then
        ctx.state:list("waiting"):add({ price = b.price, date_time = b.date_time })
        ctx.timers:register_event_time(b.date_time)
      end
    elseif b.date_time >= a.date_time and b.date_time <= a.expires then
      local mv = ctx.state:value("max")
      local old = mv:value()
      if old == nil or b.price > old then
        mv:update(b.price)
        out:collect({ category = a.category, old = old, new = b.price })
      end
    end
  end,
  on_timer = function(ts, ctx, out)
    local av = ctx.state:value("auction")
    local a = av:value()
    if a then
      if ts >= a.expires then -- closed
        av:clear()
        ctx.state:value("max"):clear()
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
}:uid("auction-max")

q:sink(maxima:key_by("category"):process{
  on_record = function(c, ctx, out)
    local sv = ctx.state:value("sum-count")
    local s = sv:value()
    if s == nil then s = { sum = 0, count = 0 } end
    if c.old == nil then
      s.count = s.count + 1
      s.sum = s.sum + c.new
    else
      s.sum = s.sum + (c.new - c.old)
    end
    local final = idiv(s.sum, s.count)
    if final ~= s.final then
      s.final = final
      out:collect({ category = c.category, final = final })
    end
    sv:update(s)
  end,
}:uid("category-avg"))
q:execute()
