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
local idiv = nexmark.idiv

local q = nexmark.query("q4")

local auctions = q:auctions{ "id", "expires", "category" }:map(function(a)
  return { id = a.id, date_time = a.date_time, expires = a.expires, category = a.category }
end):uid("project-auctions")
local bids = q:bids{ "auction", "price" }:map(function(b)
  return { auction = b.auction, price = b.price, date_time = b.date_time }
end):uid("project-bids")

local maxima = auctions:connect(bids):key_by("id", "auction"):process(nexmark.auction_winner{
  better = function(b, c) return b.price > c.price end,
  on_change = function(a, old, new, out)
    out:collect({ category = a.category, old = old and old.price, new = new.price })
  end,
}):uid("auction-max")

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
