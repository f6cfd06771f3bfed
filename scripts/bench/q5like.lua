-- Issue 9's Nexmark q5-like job ("hot items"): bids {auction, bidder,
-- price, date_time} from generate, in event time (date_time: 1 ms apart,
-- ascending); a sliding 10 s / 2 s count per auction behind a key_by; then
-- per window the largest count over all auctions (window_all, parallelism
-- 1). At parallelism P the source, the key_by and the sliding count run P
-- subtasks. Prints each window's largest count (the same at any
-- parallelism: the check that the runs agree).
--   tide run scripts/bench/q5like.lua [--vm V] -p P -- N [AUCTIONS]
local tide = require "tide"

local n = tonumber(arg[1] or "2000000")
local auctions = tonumber(arg[2] or "1000")
local env = tide.env{}
env:generate(function(i)
      -- a skewed auction (a few hot ones), as Nexmark's hot items
      local a = (i * 7919) % auctions
      if i % 4 == 0 then a = i % 10 end
      return { auction = a, bidder = i % 9973, price = 100 + i % 1000, date_time = i }
    end, n)
   :assign_timestamps(function(b) return b.date_time end, tide.watermarks.monotonous())
   :key_by("auction")
   :window(tide.windows.sliding(10000, 2000))
   :count()
   :window_all(tide.windows.tumbling(2000))
   :max("count")
   :map(function(r) return r.count end)
   :print()
env:execute("bench-q5like")
