-- Nexmark q20, expand bid with auction: every bid with the fields of its
-- auction, for the auctions of category 10, as the suite's q20.sql.
--   INSERT INTO nexmark_q20
--   SELECT
--       auction, bidder, price, channel, url, B.`dateTime`, B.extra,
--       itemName, description, initialBid, reserve, A.`dateTime`, expires, seller, category, A.extra
--   FROM
--       bid AS B INNER JOIN auction AS A on B.auction = A.id
--   WHERE A.category = 10;
--
-- Rows with the sink's columns in snake_case: auction, bidder, price,
-- channel, url, bid_date_time, bid_extra, item_name, description,
-- initial_bid, reserve, auction_date_time, expires, seller, category,
-- auction_extra.
--
-- A regular (unbounded) inner join: a keyed co-process function on
-- bid.auction = auction.id. The join has no time bound (a bid after the
-- auction's expires joins too), so nothing is dropped with time. What it
-- keeps is what the SQL needs, knowing that auction ids are unique (the
-- generator numbers the auctions; Flink, not knowing it, would keep every
-- bid for ever):
-- - per auction id, the auction's fields when its category is 10, or a
--   mark (false) when it is not, for ever: the bids that come after it
--   join it at once, or are dropped at once, and are not kept;
-- - the bids that come before their auction (the auctions are another
--   stream, and another subtask at p2; the generator also makes bids for
--   auctions a few ids ahead), in keyed list state until it comes: then
--   they are joined (category 10) or dropped, and the list goes. Bids
--   whose auction never comes stay: the SQL would join them if it came.
-- Auctions of other categories go to the join as their id only.
--   tide run scripts/nexmark/q20.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"

local function row(b, a)
  return { auction = b.auction, bidder = b.bidder, price = b.price, channel = b.channel,
           url = b.url, bid_date_time = b.date_time, bid_extra = b.extra,
           item_name = a.item_name, description = a.description, initial_bid = a.initial_bid,
           reserve = a.reserve, auction_date_time = a.date_time, expires = a.expires,
           seller = a.seller, category = a.category, auction_extra = a.extra }
end

local q = nexmark.query("q20")

local auctions = q:auctions():map(function(a)
  if a.category ~= 10 then return { id = a.id } end -- to be marked: its bids are dropped
  return { id = a.id, item_name = a.item_name, description = a.description,
           initial_bid = a.initial_bid, reserve = a.reserve, date_time = a.date_time,
           expires = a.expires, seller = a.seller, category = a.category, extra = a.extra }
end):uid("project-auctions")

q:sink(q:bids():connect(auctions):key_by("auction", "id"):process{
  on_record1 = function(b, ctx, out)
    local a = ctx.state:value("auction"):value()
    if a == nil then
      ctx.state:list("waiting"):add(b)
    elseif a then
      out:collect(row(b, a))
    end
  end,
  on_record2 = function(a, ctx, out)
    if a.category == nil then a = false end
    ctx.state:value("auction"):update(a)
    local waiting = ctx.state:list("waiting")
    local ws = waiting:get()
    if #ws == 0 then return end
    if a then
      for i = 1, #ws do out:collect(row(ws[i], a)) end
    end
    waiting:clear()
  end,
}:uid("join"))
q:execute()
