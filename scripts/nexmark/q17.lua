-- Nexmark q17, auction statistics report: per auction and day, how many
-- bids and their prices, as the suite's q17.sql.
--   INSERT INTO nexmark_q17
--   SELECT
--        auction,
--        DATE_FORMAT(`dateTime`, 'yyyy-MM-dd') as `day`,
--        count(*) AS total_bids,
--        count(*) filter (where price < 10000) AS rank1_bids,
--        count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
--        count(*) filter (where price >= 1000000) AS rank3_bids,
--        min(price) AS min_price,
--        max(price) AS max_price,
--        avg(price) AS avg_price,
--        sum(price) AS sum_price
--   FROM bid
--   GROUP BY auction, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd');
-- In Tide: a map (uid "day") keeps what the aggregate needs of a bid and
-- its UTC day (yyyy-MM-dd of date_time), key_by auction and day (one
-- string), and a keyed process function (uid "stats") keeps per key a
-- value state {bids, rank1..3 bids, min, max, sum}. avg_price is AVG of a
-- BIGINT, a BIGINT in Flink (the quotient truncated): floor(sum / bids),
-- prices being non-negative. Each bid emits its key's new row (an
-- updating aggregate; the sink follows on a forward edge).
--   tide run scripts/nexmark/q17.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"
local utc_day = nexmark.utc_day

local q = nexmark.query("q17")
q:sink(q:bids{ "auction", "price" }
  :map(function(b)
    return { auction = b.auction, day = utc_day(b.date_time), price = b.price }
  end):uid("day")
  :key_by(function(b) return string.format("%d\t%s", b.auction, b.day) end)
  :process{
    on_record = function(b, ctx, out)
      local stats = ctx.state:value("stats")
      local price = b.price
      -- bids (total, rank 1..3), min, max, sum
      local s = stats:value()
      if s == nil then
        s = { 0, 0, 0, 0, price, price, 0 }
      end
      s[1] = s[1] + 1
      if price < 10000 then s[2] = s[2] + 1
      elseif price < 1000000 then s[3] = s[3] + 1
      else s[4] = s[4] + 1 end
      if price < s[5] then s[5] = price end
      if price > s[6] then s[6] = price end
      s[7] = s[7] + price
      stats:update(s)
      out:collect({ auction = b.auction, day = b.day, total_bids = s[1],
                    rank1_bids = s[2], rank2_bids = s[3], rank3_bids = s[4],
                    min_price = s[5], max_price = s[6],
                    avg_price = math.floor(s[7] / s[1]), sum_price = s[7] })
    end,
  }:uid("stats"))
q:execute()
