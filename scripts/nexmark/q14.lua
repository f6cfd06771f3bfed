-- Nexmark q14, calculation: the bids of a price range, converted, with the
-- kind of hour they were made in and the number of 'c' in their extra, as
-- the suite's q14.sql.
--   INSERT INTO nexmark_q14
--   SELECT
--       auction,
--       bidder,
--       0.908 * price as price,
--       CASE
--           WHEN HOUR(`dateTime`) >= 8 AND HOUR(`dateTime`) <= 18 THEN 'dayTime'
--           WHEN HOUR(`dateTime`) <= 6 OR HOUR(`dateTime`) >= 20 THEN 'nightTime'
--           ELSE 'otherTime'
--       END AS bidTimeType,
--       `dateTime`,
--       extra,
--       count_char(extra, 'c') AS c_counts
--   FROM bid
--   WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000;
-- In Tide one flat_map (uid "calc"). The price is exact: 908 * price
-- thousandths, compared with the bounds in thousandths and written as the
-- DECIMAL(23, 3)'s text (nexmark.decimal3). HOUR is the UTC hour of
-- date_time (ms since the epoch). Rows {auction, bidder, price,
-- bid_time_type, date_time, extra, c_counts}.
--   tide run scripts/nexmark/q14.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"
local decimal3 = nexmark.decimal3

local LOW, HIGH = 1000000 * 1000, 50000000 * 1000   -- the bounds, in thousandths
local HOUR_MS = 3600 * 1000

-- The kind of each UTC hour 0..23.
local TIME_TYPE = {}
for h = 0, 23 do
  if h >= 8 and h <= 18 then TIME_TYPE[h] = "dayTime"
  elseif h <= 6 or h >= 20 then TIME_TYPE[h] = "nightTime"
  else TIME_TYPE[h] = "otherTime" end
end

local q = nexmark.query("q14")
q:sink(q:bids{ "auction", "bidder", "price", "extra" }:flat_map(function(b, out)
  local t = 908 * b.price
  if t > LOW and t < HIGH then
    local extra = b.extra
    local _, c_counts = string.gsub(extra, "c", "")
    out:collect({ auction = b.auction, bidder = b.bidder, price = decimal3(t),
                  bid_time_type = TIME_TYPE[math.floor(b.date_time / HOUR_MS) % 24],
                  date_time = b.date_time, extra = extra, c_counts = c_counts })
  end
end):uid("calc"))
q:execute()
