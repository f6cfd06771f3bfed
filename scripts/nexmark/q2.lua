-- Nexmark q2, selection: the bids on every 123rd auction, as the suite's
-- q2.sql.
--   INSERT INTO nexmark_q2
--   SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
--   tide run scripts/nexmark/q2.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"

local q = nexmark.query("q2")
q:sink(q:bids{ "auction", "price" }
  :filter(function(b) return b.auction % 123 == 0 end):uid("select")
  :map(function(b) return { auction = b.auction, price = b.price } end):uid("project"))
q:execute()
