-- Nexmark q1, currency conversion: each bid's price from dollars to euros,
-- as the suite's q1.sql.
--   INSERT INTO nexmark_q1
--   SELECT auction, bidder, 0.908 * price as price, `dateTime`, extra FROM bid;
-- The price is a DECIMAL(23, 3) there; here its exact text ("1234.567").
--   tide run scripts/nexmark/q1.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"
local decimal3 = nexmark.decimal3

local q = nexmark.query("q1")
q:sink(q:bids{ "auction", "bidder", "price", "extra" }:map(function(b)
  return { auction = b.auction, bidder = b.bidder, price = decimal3(908 * b.price),
           date_time = b.date_time, extra = b.extra }
end):uid("convert"))
q:execute()
