-- Nexmark q22, get URL directories: the directories of each bid's url, as
-- the suite's q22.sql.
--   INSERT INTO nexmark_q22
--   SELECT
--       auction, bidder, price, channel,
--       SPLIT_INDEX(url, '/', 3) as dir1,
--       SPLIT_INDEX(url, '/', 4) as dir2,
--       SPLIT_INDEX(url, '/', 5) as dir3 FROM bid;
-- In Tide one map (uid "split"). SPLIT_INDEX(s, sep, i) is Flink's: s
-- split at every sep, empty pieces kept, piece i (0-based), null past the
-- last piece (here: the field is left out of the row). The generator's
-- "https://www.nexmark.com/a/b/c/item.htm?query=1" gives dir1 a, dir2 b,
-- dir3 c.
--   tide run scripts/nexmark/q22.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"

local find, sub = string.find, string.sub

-- Pieces 3, 4 and 5 of url split at '/' (nil past the last piece).
local function dirs(url)
  local d3, d4, d5
  local from, i = 1, 0
  while i <= 5 do
    local slash = find(url, "/", from, true)
    if i >= 3 then
      local piece = sub(url, from, slash and slash - 1 or -1)
      if i == 3 then d3 = piece elseif i == 4 then d4 = piece else d5 = piece end
    end
    if not slash then break end
    from, i = slash + 1, i + 1
  end
  return d3, d4, d5
end

local q = nexmark.query("q22")
q:sink(q:bids{ "auction", "bidder", "price", "channel", "url" }:map(function(b)
  local dir1, dir2, dir3 = dirs(b.url)
  return { auction = b.auction, bidder = b.bidder, price = b.price, channel = b.channel,
           dir1 = dir1, dir2 = dir2, dir3 = dir3 }
end):uid("split"))
q:execute()
