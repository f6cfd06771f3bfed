-- Nexmark q19, auction top-10 price: per auction, its 10 bids of highest
-- price with their rank, as the suite's q19.sql.
--   INSERT INTO nexmark_q19
--   SELECT * FROM
--   (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number FROM bid)
--   WHERE rank_number <= 10;
-- In Tide: a map (uid "project") keeps the bid's output fields, key_by
-- auction, and a keyed process function (uid "top10") keeps the auction's
-- top 10 in a value state (an array in rank order). A bid that ranks
-- among them is inserted (the 11th falls out), and the rows of the ranks
-- that changed, from its rank to the last, are emitted: an updating query
-- whose key is (auction, rank_number), as Flink's rank operator updates
-- rank by rank; the last row of a key is its result (the sink follows on
-- a forward edge). An auction with n < 10 bids has ranks 1..n only. The
-- SQL leaves ties of price to the order the bids arrive in, which differs
-- between runs at parallelism > 1: here ties go to the earlier date_time,
-- then the lower bidder, then the lower extra, channel and url, so the
-- result does not depend on the arrival order. Rows: the bid's fields
-- (auction, bidder, price, channel, url, date_time, extra) and
-- rank_number.
--   tide run scripts/nexmark/q19.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"

local N = 10

-- Whether bid a ranks before bid b.
local function before(a, b)
  if a.price ~= b.price then return a.price > b.price end
  if a.date_time ~= b.date_time then return a.date_time < b.date_time end
  if a.bidder ~= b.bidder then return a.bidder < b.bidder end
  if a.extra ~= b.extra then return a.extra < b.extra end
  if a.channel ~= b.channel then return a.channel < b.channel end
  return a.url < b.url
end

local q = nexmark.query("q19")
q:sink(q:bids()
  :map(function(b)
    return { auction = b.auction, bidder = b.bidder, price = b.price, channel = b.channel,
             url = b.url, date_time = b.date_time, extra = b.extra }
  end):uid("project")
  :key_by("auction")
  :process{
    on_record = function(b, ctx, out)
      local state = ctx.state:value("top")
      local top = state:value() or {}
      local n = #top
      local pos = n + 1
      for i = 1, n do
        if before(b, top[i]) then
          pos = i
          break
        end
      end
      if pos > N then return end
      table.insert(top, pos, b)
      if n + 1 > N then top[N + 1] = nil end
      state:update(top)
      for i = pos, #top do
        local t = top[i]
        out:collect({ auction = t.auction, bidder = t.bidder, price = t.price,
                      channel = t.channel, url = t.url, date_time = t.date_time,
                      extra = t.extra, rank_number = i })
      end
    end,
  }:uid("top10"))
q:execute()
