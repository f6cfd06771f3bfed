-- Nexmark q21, add channel id: each bid's channel id, from its channel or
-- its url, as the suite's q21.sql.
--   INSERT INTO nexmark_q21
--   SELECT
--       auction, bidder, price, channel,
--       CASE
--           WHEN lower(channel) = 'apple' THEN '0'
--           WHEN lower(channel) = 'google' THEN '1'
--           WHEN lower(channel) = 'facebook' THEN '2'
--           WHEN lower(channel) = 'baidu' THEN '3'
--           ELSE REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)
--           END
--       AS channel_id FROM bid
--       where REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) is not null or
--             lower(channel) in ('apple', 'google', 'facebook', 'baidu');
-- In Tide one flat_map (uid "channel_id"). The regular expression is
-- followed literally with Lua patterns: its first match (Java's find)
-- is at the url's start when the url starts with "channel_id=", else at
-- its first "&channel_id="; group 2 is what follows, up to the next '&'
-- (possibly empty: "" is not null). The generator's urls are
-- "https://www.nexmark.com/a/b/c/item.htm?query=1", with
-- "&channel_id=N" appended for most of the non-hot channels. The WHERE
-- keeps exactly the bids whose CASE is not null, so a bid is dropped when
-- its channel is none of the four and its url has no match. lower() is
-- ASCII's (the channels are ASCII).
--   tide run scripts/nexmark/q21.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"

local IDS = { apple = "0", google = "1", facebook = "2", baidu = "3" }
-- The generator's spelling of those channels, looked up before lowering.
local HOT = { Apple = "0", Google = "1", Facebook = "2", Baidu = "3" }
for k, v in pairs(IDS) do HOT[k] = v end

-- REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2), or nil.
local function extract(url)
  return string.match(url, "^channel_id=([^&]*)") or string.match(url, "&channel_id=([^&]*)")
end

local q = nexmark.query("q21")
q:sink(q:bids{ "auction", "bidder", "price", "channel", "url" }:flat_map(function(b, out)
  local channel = b.channel
  local id = HOT[channel]
  if id == nil then id = IDS[string.lower(channel)] or extract(b.url) end
  if id ~= nil then
    out:collect({ auction = b.auction, bidder = b.bidder, price = b.price, channel = channel,
                  channel_id = id })
  end
end):uid("channel_id"))
q:execute()
