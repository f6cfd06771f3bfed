-- Nexmark q6, average selling price by seller: per seller, the average
-- price of the winning bids of its last 10 (here 11, as the SQL's frame)
-- closed auctions. The suite's q6.sql:
--   INSERT INTO nexmark_q6
--   SELECT
--       Q.seller,
--       AVG(Q.price) OVER
--           (PARTITION BY Q.seller ORDER BY Q.`dateTime` ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)
--   FROM (
--       SELECT *, ROW_NUMBER() OVER (PARTITION BY A.id, A.seller ORDER BY B.price DESC) AS rownum
--       FROM (SELECT A.id, A.seller, B.price, B.`dateTime`
--           FROM auction AS A,
--               bid AS B
--           WHERE A.id = B.auction
--               and B.`dateTime` between A.`dateTime` and A.expires)
--       WHERE rownum <= 1
--   ) AS Q;
--
-- Flink cannot run it (its OVER window does not take the updating input
-- of the ROW_NUMBER), so this follows its intent as Beam's Nexmark q6
-- does: an auction closes when the watermark passes its expires; its
-- winning bid is then its highest-price bid with date_time in
-- [date_time, expires] (ties: the earliest date_time, then the lowest
-- bidder: the SQL leaves them open); an auction without such a bid does
-- not close with a sale (Beam's q6 also wants price >= reserve; the SQL
-- does not, nor does this). Per seller, the average of the winning prices
-- of its last 11 closed auctions, ordered by (winning bid date_time,
-- auction id): the SQL's ROWS BETWEEN 10 PRECEDING AND CURRENT ROW, with
-- the auction id breaking ties of dateTime. Rows {seller, avg_price}
-- (AVG over BIGINT: floor, exact), a new row for the seller each time its
-- average changes: an updating result whose last row per seller is the
-- average over its last 11 sales. The SQL's sink types seller as VARCHAR;
-- it is the auction's BIGINT seller here, an integer.
--
-- Two keyed stages:
-- 1. per auction (auctions connected with bids, keyed by auction id): the
--    auction's date_time, expires and seller, and its best bid so far
--    (price, date_time, bidder). Bids that come before their auction wait
--    for it in keyed list state. An event-time timer at expires closes the
--    auction: its sale {seller, id, price, date_time} goes to stage 2 and
--    its state goes (every later bid has date_time > expires: nothing is
--    late, a source subtask's events being at most 4 s out of date_time
--    order, the watermark's bound).
--    A timer at a waiting bid's date_time drops it when its auction has
--    not come by then: an auction that comes later has a later date_time
--    (this drops the bids for auctions already closed, and for auctions
--    that never come). Auction ids are unique (the generator numbers them).
-- 2. per seller: the 11 latest sales by (date_time, auction id), whatever
--    order they arrive in (at p2 two auctions' closes race through the
--    exchange), so the seller's last row is the same at any parallelism.
--    The sink follows it with a forward edge: a seller's rows are one
--    subtask's, in order.
--   tide run scripts/nexmark/q6.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"
local idiv = nexmark.idiv

local LAST = 11 -- ROWS BETWEEN 10 PRECEDING AND CURRENT ROW

-- Whether bid b wins over bid c: higher price, then earlier, then the
-- lower bidder.
local function better(b, c)
  if b.price ~= c.price then return b.price > c.price end
  if b.date_time ~= c.date_time then return b.date_time < c.date_time end
  return b.bidder < c.bidder
end

local q = nexmark.query("q6")

local auctions = q:auctions{ "id", "expires", "seller" }:map(function(a)
  return { id = a.id, date_time = a.date_time, expires = a.expires, seller = a.seller }
end):uid("project-auctions")
local bids = q:bids{ "auction", "bidder", "price" }:map(function(b)
  return { auction = b.auction, bidder = b.bidder, price = b.price, date_time = b.date_time }
end):uid("project-bids")

local sales = auctions:connect(bids):key_by("id", "auction"):process(nexmark.auction_winner{
  better = better,
  on_close = function(a, best, out) -- a sale if it has a winning bid
    if best then
      out:collect({ seller = a.seller, id = a.id, price = best.price, date_time = best.date_time })
    end
  end,
}):uid("auction-winner")

-- Whether sale s comes after sale t: (date_time, id) order.
local function later(s, t)
  if s.date_time ~= t.date_time then return s.date_time > t.date_time end
  return s.id > t.id
end

q:sink(sales:key_by("seller"):process{
  on_record = function(s, ctx, out)
    -- the seller's latest sales, oldest first, at most LAST of them
    local lv = ctx.state:value("last")
    local l = lv:value() or { sales = {} }
    local ss = l.sales
    if #ss == LAST and not later(s, ss[1]) then return end -- older than every kept one
    local sale = { date_time = s.date_time, id = s.id, price = s.price }
    local i = #ss + 1
    while i > 1 and later(ss[i - 1], sale) do
      ss[i] = ss[i - 1]
      i = i - 1
    end
    ss[i] = sale
    if #ss > LAST then table.remove(ss, 1) end
    local sum = 0
    for j = 1, #ss do sum = sum + ss[j].price end
    local avg = idiv(sum, #ss)
    if avg ~= l.avg then
      l.avg = avg
      out:collect({ seller = s.seller, avg_price = avg })
    end
    lv:update(l)
  end,
}:uid("seller-avg"))
q:execute()
