-- Nexmark q9, winning bids: each auction with its winning bid, as the
-- suite's q9.sql.
--   INSERT INTO nexmark_q9
--   SELECT
--       id, itemName, description, initialBid, reserve, `dateTime`, expires, seller, category, extra,
--       auction, bidder, price, bid_dateTime, bid_extra
--   FROM (
--      SELECT A.*, B.auction, B.bidder, B.price, B.`dateTime` AS bid_dateTime, B.extra AS bid_extra,
--        ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.`dateTime` ASC) AS rownum
--      FROM auction A, bid B
--      WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
--   )
--   WHERE rownum <= 1;
--
-- Rows: the auction's fields and the winning bid's (columns in snake_case:
-- item_name, initial_bid, date_time, bid_date_time, bid_extra, ...), a new
-- row for the auction each time its winner changes: an updating result
-- (Flink's top-1 emits retractions and updates), whose last row per
-- auction id is the SQL's. The winner is the highest price, then the
-- earliest date_time (the SQL's order), then the lowest bidder, then the
-- smallest extra (ties the SQL leaves open, closed so that the result is
-- the same at any parallelism and arrival order). An auction without a
-- bid in [date_time, expires] has no row (an inner join).
--
-- One keyed stage: auctions connected with bids, keyed by auction id; the
-- auction and its best bid so far in keyed state. Bids that come before
-- their auction (the auctions are another stream, and another subtask at
-- p2) wait for it in keyed list state. State is dropped once the
-- watermark passes what can still matter, with event-time timers:
-- - at the auction's expires: every later bid has date_time > expires
--   (nothing is late: a source subtask's events are at most 4 s out of
--   date_time order, the watermark's bound), so the winner is final; the
--   auction's state goes. (A bid later than the watermark would be lost
--   here, where the SQL would rank it; the generator makes none.)
-- - at a waiting bid's date_time: an auction that comes after the
--   watermark has passed it has a later date_time, so the bid cannot
--   qualify (this drops the bids for auctions already closed, and for
--   auctions that never come).
-- Auction ids are unique (the generator numbers them). The sink follows
-- the keyed operator with a forward edge: an auction's rows are one
-- subtask's, in order.
--   tide run scripts/nexmark/q9.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"

-- Whether bid b wins over bid c.
local function better(b, c)
  if b.price ~= c.price then return b.price > c.price end
  if b.date_time ~= c.date_time then return b.date_time < c.date_time end
  if b.bidder ~= c.bidder then return b.bidder < c.bidder end
  return b.extra < c.extra
end

local function row(a, b)
  return { id = a.id, item_name = a.item_name, description = a.description,
           initial_bid = a.initial_bid, reserve = a.reserve, date_time = a.date_time,
           expires = a.expires, seller = a.seller, category = a.category, extra = a.extra,
           auction = b.auction, bidder = b.bidder, price = b.price,
           bid_date_time = b.date_time, bid_extra = b.extra }
end

local q = nexmark.query("q9")

local bids = q:bids{ "auction", "bidder", "price", "extra" }:map(function(b)
  return { auction = b.auction, bidder = b.bidder, price = b.price, date_time = b.date_time,
           extra = b.extra }
end):uid("project-bids")

q:sink(q:auctions():connect(bids):key_by("id", "auction"):process(nexmark.auction_winner{
  better = better,
  on_change = function(a, old, new, out) out:collect(row(a, new)) end,
}):uid("auction-winner"))
q:execute()
