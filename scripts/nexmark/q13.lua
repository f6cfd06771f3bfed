-- Nexmark q13, bounded side input join: each bid enriched with the value
-- of its auction (mod 10000) in a side input, as the suite's q13.sql.
--   INSERT INTO nexmark_q13
--   SELECT
--       B.auction,
--       B.bidder,
--       B.price,
--       B.`dateTime`,
--       S.`value`
--   FROM (SELECT *, PROCTIME() as p_time FROM bid) B
--   JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S
--   ON mod(B.auction, 10000) = S.key;
-- The side input is a file of `key,value` lines, given by the option
-- side_input=PATH (required): the suite's SideInputGenerator writes `i,i`
-- for i in 0..9999, and tests/e2e/test_nexmark.sh writes the same file.
-- The option is the job's, not the generator's: it is taken out of the
-- options before the sources are made.
--   tide run scripts/nexmark/q13.lua -- EVENTS [OUT_DIR] side_input=PATH [name=value ...]
-- In Tide: a process function (uid "lookup") reads the whole file into a
-- table in `open` (every subtask its own copy: the file is small and
-- bounded, as the lookup table of the SQL is) and looks each bid up by
-- auction % 10000; a bid whose key is not in the file has no row (an
-- inner join). The file is read once, when the job starts: the SQL's
-- FOR SYSTEM_TIME AS OF PROCTIME() would see changes made to the file
-- while the job runs; this query's file never changes. Lines are split
-- at their first comma (the value is the rest of the line, no CSV
-- quoting: the file has none); lines whose key is not a number are
-- skipped. Rows {auction, bidder, price, date_time, value} (value: text).
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"

local q = nexmark.query("q13")
local side_path = q.options.side_input
q.options.side_input = nil
if type(side_path) ~= "string" or side_path == "" then
  io.stderr:write("tide: q13 needs its side input file: side_input=PATH (`key,value` lines)\n")
  os.exit(2)
end

-- The side input: key (a number) -> value (its text).
local function read_side(path)
  local f, err = io.open(path, "r")
  if not f then error("q13: cannot read the side input: " .. tostring(err), 0) end
  local side = {}
  for line in f:lines() do
    local k, v = line:match("^([^,]*),([^\r]*)")
    local key = tonumber(k)
    if key then side[key] = v end
  end
  f:close()
  return side
end

local side
q:sink(q:bids{ "auction", "bidder", "price" }:process{
  open = function() side = read_side(side_path) end,
  on_record = function(b, ctx, out)
    local value = side[b.auction % 10000]
    if value ~= nil then
      out:collect({ auction = b.auction, bidder = b.bidder, price = b.price,
                    date_time = b.date_time, value = value })
    end
  end,
}:uid("lookup"))
q:execute()
