-- Nexmark q12, processing-time windows: the number of bids per bidder in
-- tumbling windows of 10 s of processing time, as the suite's q12.sql.
--   CREATE VIEW B AS SELECT *, PROCTIME() as p_time FROM bid;
--
--   INSERT INTO discard_sink
--   SELECT
--       bidder,
--       count(*) as bid_count,
--       window_start AS starttime,
--       window_end AS endtime
--   FROM TABLE(
--           TUMBLE(TABLE B, DESCRIPTOR(p_time), INTERVAL '10' SECOND))
--   GROUP BY bidder, window_start, window_end;
--
-- In Tide: the bids' bidder ids (the generator emits only {bidder,
-- date_time}; mapped to plain numbers, the smallest record for the
-- key_by's exchange) keyed by bidder into tumbling 10 s processing-time
-- windows (the wall clock of the window operator's subtask when the bid
-- reaches it, epoch-aligned), counted by an incremental aggregate. Rows
-- {bidder, bid_count, starttime, endtime} (ms of wall-clock time).
-- One difference: a processing-time window still open when the input
-- ends fires then too (the trigger below: Flink's processing-time trigger
-- plus a firing at the final watermark), where Flink's processing-time
-- trigger drops it; otherwise a bounded run shorter than 10 s would write
-- nothing, and a longer one would leave its last bids uncounted.
--   tide run scripts/nexmark/q12.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local tide = require "tide"
local compat = require "tide.compat"
local nexmark = require "nexmark"

local END_OF_INPUT = compat.MAX_INT -- the final watermark

-- fire at the window's end in processing time, or at the end of the input
-- (the timers set once per window: trigger state "armed")
local trigger = {
  on_element = function(_, _, w, ctx)
    local armed = ctx.state:value("armed")
    if not armed:value() then
      armed:update(true)
      ctx:register_processing_time_timer(w.max_timestamp)
      ctx:register_event_time_timer(END_OF_INPUT)
    end
    return "continue"
  end,
  on_processing_time = function(time, w)
    if time == w.max_timestamp then return "fire" end
    return "continue"
  end,
  on_event_time = function(time)
    if time == END_OF_INPUT then return "fire" end
    return "continue"
  end,
  clear = function(w, ctx)
    ctx:delete_processing_time_timer(w.max_timestamp)
    ctx:delete_event_time_timer(END_OF_INPUT)
    ctx.state:value("armed"):clear()
  end,
}

local count = {
  create = function() return 0 end,
  add = function(n) return n + 1 end,
  result = function(n) return n end,
}

local function row(bidder, w, results, out)
  out:collect({ bidder = bidder, bid_count = results[1], starttime = w.start, endtime = w.stop })
end

local function identity(x) return x end

local q = nexmark.query("q12")
q:sink(q:bids{ "bidder" }
  :map(function(b) return b.bidder end):uid("bidder")
  :key_by(identity)
  :window(tide.windows.tumbling("10s", { time = "processing" })):trigger(trigger)
  :aggregate(count, row):uid("counts"))
q:execute()
