-- Nexmark q15, bidding statistics report: per day, how many bids, bidders
-- and auctions, in all and per price rank, as the suite's q15.sql.
--   INSERT INTO nexmark_q15
--   SELECT
--        DATE_FORMAT(`dateTime`, 'yyyy-MM-dd') as `day`,
--        count(*) AS total_bids,
--        count(*) filter (where price < 10000) AS rank1_bids,
--        count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
--        count(*) filter (where price >= 1000000) AS rank3_bids,
--        count(distinct bidder) AS total_bidders,
--        count(distinct bidder) filter (where price < 10000) AS rank1_bidders,
--        count(distinct bidder) filter (where price >= 10000 and price < 1000000) AS rank2_bidders,
--        count(distinct bidder) filter (where price >= 1000000) AS rank3_bidders,
--        count(distinct auction) AS total_auctions,
--        count(distinct auction) filter (where price < 10000) AS rank1_auctions,
--        count(distinct auction) filter (where price >= 10000 and price < 1000000) AS rank2_auctions,
--        count(distinct auction) filter (where price >= 1000000) AS rank3_auctions
--   FROM bid
--   GROUP BY DATE_FORMAT(`dateTime`, 'yyyy-MM-dd');
-- In Tide: a map (uid "day") keeps what the aggregate needs of a bid and
-- its UTC day (yyyy-MM-dd of date_time, ms since the epoch), key_by day,
-- and a keyed process function (uid "stats") keeps per day a value state
-- of the 12 counts and two map states, "bidders" and "auctions": the
-- bidders (auctions) of the day, each with the set of ranks it was seen
-- in (a sum of flags 1, 2, 4). A distinct count grows when its key is
-- first seen (in all, or in a rank). An unbounded updating aggregate, as
-- Flink's: every bid changes total_bids, so each bid emits its day's new
-- row (the sink follows on a forward edge: a day's rows are in order in
-- one part file series, the last one is the result).
--   tide run scripts/nexmark/q15.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"
local utc_day = nexmark.utc_day
local count_bid, bid_stats = nexmark.count_bid, nexmark.bid_stats

local q = nexmark.query("q15")
q:sink(q:bids{ "bidder", "auction", "price" }
  :map(function(b)
    return { day = utc_day(b.date_time), bidder = b.bidder, auction = b.auction, price = b.price }
  end):uid("day")
  :key_by("day")
  :process{
    on_record = function(b, ctx, out)
      local counts = ctx.state:value("counts")
      -- bids (total, rank 1..3), bidders (5..8), auctions (9..12)
      local c = counts:value() or { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }
      count_bid(ctx, b, c)
      counts:update(c)
      out:collect(bid_stats({ day = b.day }, c))
    end,
  }:uid("stats"))
q:execute()
