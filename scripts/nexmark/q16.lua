-- Nexmark q16, channel statistics report: q15's report per channel and
-- day, with the day's last minute, as the suite's q16.sql.
--   INSERT INTO nexmark_q16
--   SELECT
--       channel,
--       DATE_FORMAT(`dateTime`, 'yyyy-MM-dd') as `day`,
--       max(DATE_FORMAT(`dateTime`, 'HH:mm')) as `minute`,
--       count(*) AS total_bids,
--       count(*) filter (where price < 10000) AS rank1_bids,
--       count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
--       count(*) filter (where price >= 1000000) AS rank3_bids,
--       count(distinct bidder) AS total_bidders,
--       count(distinct bidder) filter (where price < 10000) AS rank1_bidders,
--       count(distinct bidder) filter (where price >= 10000 and price < 1000000) AS rank2_bidders,
--       count(distinct bidder) filter (where price >= 1000000) AS rank3_bidders,
--       count(distinct auction) AS total_auctions,
--       count(distinct auction) filter (where price < 10000) AS rank1_auctions,
--       count(distinct auction) filter (where price >= 10000 and price < 1000000) AS rank2_auctions,
--       count(distinct auction) filter (where price >= 1000000) AS rank3_auctions
--   FROM bid
--   GROUP BY channel, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd');
-- In Tide as q15 (helpers shared in nexmark.lua): a map (uid "day")
-- keeps what the aggregate needs of a bid, its UTC day (yyyy-MM-dd) and
-- its UTC minute of the day, key_by channel and day (one string, the two
-- joined by a tab), and a keyed process function (uid "stats") keeps per
-- key a value state of the 12 counts and the largest minute of the day,
-- and the map states "bidders" and "auctions" (each key with the set of
-- ranks it was seen in). The max of the 'HH:mm' texts is the text of the
-- largest minute of the day (they sort as the minutes). Each bid emits
-- its key's new row (an updating aggregate; the sink follows on a forward
-- edge).
--   tide run scripts/nexmark/q16.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"
local utc_day = nexmark.utc_day
local count_bid, bid_stats = nexmark.count_bid, nexmark.bid_stats

local MINUTE_MS = 60 * 1000

-- HH:mm of each minute of the day 0..1439.
local MINUTE_NAMES = {}
for m = 0, 1439 do
  MINUTE_NAMES[m] = string.format("%02d:%02d", math.floor(m / 60), m % 60)
end

local q = nexmark.query("q16")
q:sink(q:bids{ "channel", "bidder", "auction", "price" }
  :map(function(b)
    local t = b.date_time
    return { channel = b.channel, day = utc_day(t), minute = math.floor(t / MINUTE_MS) % 1440,
             bidder = b.bidder, auction = b.auction, price = b.price }
  end):uid("day")
  :key_by(function(b) return b.channel .. "\t" .. b.day end)
  :process{
    on_record = function(b, ctx, out)
      local counts = ctx.state:value("counts")
      -- bids (total, rank 1..3), bidders (5..8), auctions (9..12), the
      -- largest minute (13)
      local c = counts:value() or { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1 }
      count_bid(ctx, b, c)
      if b.minute > c[13] then c[13] = b.minute end
      counts:update(c)
      out:collect(bid_stats({ channel = b.channel, day = b.day, minute = MINUTE_NAMES[c[13]] }, c))
    end,
  }:uid("stats"))
q:execute()
