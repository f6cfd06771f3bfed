-- Nexmark q18, find the last bid: per bidder and auction, its latest bid
-- (a deduplication), as the suite's q18.sql.
--   INSERT INTO nexmark_q18
--   SELECT auction, bidder, price, channel, url, `dateTime`, extra
--    FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY `dateTime` DESC) AS rank_number
--          FROM bid)
--    WHERE rank_number <= 1;
-- In Tide: a map (uid "project") keeps the bid's output fields, key_by
-- bidder and auction (one string), and a keyed process function (uid
-- "last") keeps the key's last bid in a value state; a bid that comes
-- after it in the order below replaces it and is emitted (an updating
-- query: the last row of a key is its result; the sink follows on a
-- forward edge). The SQL leaves ties of dateTime to the order the bids
-- arrive in, which differs between runs at parallelism > 1: here the
-- last bid is the one with the largest (date_time, price, extra,
-- channel, url), compared in that order, so the result does not depend
-- on the arrival order.
--   tide run scripts/nexmark/q18.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"

-- Whether bid a comes after bid b: a larger (date_time, price, extra,
-- channel, url).
local function after(a, b)
  if a.date_time ~= b.date_time then return a.date_time > b.date_time end
  if a.price ~= b.price then return a.price > b.price end
  if a.extra ~= b.extra then return a.extra > b.extra end
  if a.channel ~= b.channel then return a.channel > b.channel end
  return a.url > b.url
end

local q = nexmark.query("q18")
q:sink(q:bids()
  :map(function(b)
    return { auction = b.auction, bidder = b.bidder, price = b.price, channel = b.channel,
             url = b.url, date_time = b.date_time, extra = b.extra }
  end):uid("project")
  :key_by(function(b) return string.format("%d\t%d", b.bidder, b.auction) end)
  :process{
    on_record = function(b, ctx, out)
      local last = ctx.state:value("last")
      local l = last:value()
      if l == nil or after(b, l) then
        last:update(b)
        out:collect(b)
      end
    end,
  }:uid("last"))
q:execute()
