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
local rank_of = nexmark.rank_of
local count_distinct = nexmark.count_distinct

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
      local r = rank_of(b.price)
      c[1] = c[1] + 1
      c[1 + r] = c[1 + r] + 1
      count_distinct(ctx.state:map("bidders"), b.bidder, r, c, 5)
      count_distinct(ctx.state:map("auctions"), b.auction, r, c, 9)
      counts:update(c)
      out:collect({ day = b.day,
                    total_bids = c[1], rank1_bids = c[2], rank2_bids = c[3], rank3_bids = c[4],
                    total_bidders = c[5], rank1_bidders = c[6], rank2_bidders = c[7],
                    rank3_bidders = c[8],
                    total_auctions = c[9], rank1_auctions = c[10], rank2_auctions = c[11],
                    rank3_auctions = c[12] })
    end,
  }:uid("stats"))
q:execute()
