-- A job for the exception-history test (tests/e2e/test_metrics.sh): reads
-- the lines of FILE (numbers); its map raises "boom at 100" in the first
-- attempt and "boom at 200" in the second (marker files DIR/1 and DIR/2 tell
-- the attempts apart), under a fixed-delay restart strategy; the third
-- attempt runs through and then waits until DIR/done exists, so that the
-- control endpoint can be read.
--
--   tide run tests/e2e/exceptions_job.lua -- FILE DIR
local tide = require "tide"
local core = require "tide.core"

local file, dir = arg[1], arg[2]
if not (file and dir) then
  io.stderr:write("usage: tide run tests/e2e/exceptions_job.lua -- FILE DIR\n")
  os.exit(2)
end
local function exists(p)
  local f = io.open(p)
  if f then f:close() end
  return f ~= nil
end
local function touch(p) assert(io.open(p, "w")):close() end

local env = tide.env{ parallelism = 1, restart = { strategy = "fixed_delay", attempts = 2, delay = "50ms" } }
env:read_text(file):uid("numbers")
  :map(function(line)
    if line == "100" and not exists(dir .. "/1") then
      touch(dir .. "/1")
      error("boom at 100")
    elseif line == "200" and not exists(dir .. "/2") then
      touch(dir .. "/2")
      error("boom at 200")
    end
    return line
  end):uid("boom")
  :process{ on_record = function() end,
            close = function()
              while not exists(dir .. "/done") do core.sleep_ms(50) end
            end }:uid("wait")
  :discard():uid("sink")
env:execute("exceptions")
