-- Nexmark q0, pass through: every bid, projected, as the suite's q0.sql.
--   INSERT INTO nexmark_q0
--   SELECT auction, bidder, price, `dateTime`, extra FROM bid;
-- Measures the cost of reading the events and of the job's structure.
--   tide run scripts/nexmark/q0.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"

local q = nexmark.query("q0")
q:sink(q:bids{ "auction", "bidder", "price", "extra" }:map(function(b)
  return { auction = b.auction, bidder = b.bidder, price = b.price, date_time = b.date_time,
           extra = b.extra }
end):uid("project"))
q:execute()
