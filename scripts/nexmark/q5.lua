-- Nexmark q5, hot items: per sliding window of 10 s every 2 s, the
-- auctions with the most bids, as the suite's q5.sql.
--   INSERT INTO nexmark_q5
--   SELECT AuctionBids.auction, AuctionBids.num
--    FROM (
--      SELECT
--        auction,
--        count(*) AS num,
--        window_start AS starttime,
--        window_end AS endtime
--        FROM TABLE(
--                HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
--        GROUP BY auction, window_start, window_end
--    ) AS AuctionBids
--    JOIN (
--      SELECT
--        max(CountBids.num) AS maxn,
--        CountBids.starttime,
--        CountBids.endtime
--      FROM (
--        SELECT
--          count(*) AS num,
--          window_start AS starttime,
--          window_end AS endtime
--        FROM TABLE(
--                   HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
--        GROUP BY auction, window_start, window_end
--        ) AS CountBids
--      GROUP BY CountBids.starttime, CountBids.endtime
--    ) AS MaxBids
--    ON AuctionBids.starttime = MaxBids.starttime AND
--       AuctionBids.endtime = MaxBids.endtime AND
--       AuctionBids.num >= MaxBids.maxn;
--
-- In Tide:
-- 1. the bids' auction ids (the generator emits only {auction,
--    date_time}; mapped to plain numbers, the smallest record for the
--    key_by's exchange) keyed by auction into
--    sliding windows of 10 s every 2 s counting them (count(): the window
--    operator's fast path, one counter per auction and 2 s slice, a
--    window's count the sum of its five slices). The counts come out as
--    {key = auction, count = n} with the timestamp of their window's last
--    ms, a window's all at once when the watermark passes it;
-- 2. in each count subtask, a filter drops the counts below the highest
--    one it has passed for the same window (the window of the last count
--    and its highest count are kept aside: not state, a cache whose loss
--    only lets more through), so only the counts that raise or equal the
--    running max go on (about log(n) of a subtask's n counts per window,
--    plus ties), and still every count at the window's max: that count is
--    never below a passed one;
-- 3. window_all over tumbling 2 s windows, where the window [end - 2 s,
--    end) holds exactly the counts of the sliding window [end - 10 s,
--    end): an incremental aggregate keeps the largest count and the
--    auctions at it (ties: all of them) and emits one row per such
--    auction when the watermark passes the window (every count subtask
--    has fired that window by then).
-- The SQL's join is thus a max and a filter in one pass. Rows {auction,
-- num, starttime, endtime}: the window's bounds (ms) are added to the
-- SQL's columns, without which the rows of different windows cannot be
-- told apart.
-- Measured on 10M generated events at 10M events/s with a checkpoint
-- every 10 s (Lua 5.4, heap, best of 3): 3.3 CPU s at p1, 4.8 at p2.
-- Keying the {auction, date_time} records by field instead of mapping
-- them to numbers saves 1.5% of the CPU at p1 and costs 22% at p2; the
-- filter of step 2 costs nothing at p1 and saves 10% of the instructions
-- at p2.
--   tide run scripts/nexmark/q5.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local tide = require "tide"
local nexmark = require "nexmark"

local SIZE, SLIDE = 10000, 2000

-- the largest count of a window and the auctions at it: {n =, m =, a1, ..., am}
local top = {
  create = function() return { n = 0, m = 0 } end,
  add = function(acc, r)
    local c = r.count
    if c > acc.n then
      return { n = c, m = 1, r.key }
    elseif c == acc.n then
      local m = acc.m + 1
      acc.m, acc[m] = m, r.key
    end
    return acc
  end,
  result = function(acc) return acc end,
}

local function rows(_, w, results, out)
  local acc = results[1]
  local stop = w.stop
  for i = 1, acc.m do
    out:collect({ auction = acc[i], num = acc.n, starttime = stop - SIZE, endtime = stop })
  end
end

local function identity(x) return x end

-- stage 2: the timestamp of the last count's window and the highest count
-- passed for it
local last_t, last_n = nil, 0
local may_top = {
  on_record = function(r, ctx, out)
    local t, n = ctx.timestamp, r.count
    if t ~= last_t then
      last_t, last_n = t, n
      out:collect(r)
    elseif n >= last_n then
      last_n = n
      out:collect(r)
    end
  end,
}

local q = nexmark.query("q5")
q:sink(q:bids{ "auction" }
  :map(function(b) return b.auction end):uid("auction")
  :key_by(identity)
  :window(tide.windows.sliding(SIZE, SLIDE)):count():uid("count")
  :process(may_top):uid("may-top")
  :window_all(tide.windows.tumbling(SLIDE)):aggregate(top, rows):uid("hot"))
q:execute()
