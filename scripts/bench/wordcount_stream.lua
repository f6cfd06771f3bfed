-- Issue 9's streaming word count: read_text -> flat_map over lower-cased
-- runs of letters -> map to {word =, n = 1} -> key_by("word") -> sum("n")
-- (a running sum: an updated record per word) -> discard, in streaming
-- mode (not batch).
--   tide run scripts/bench/wordcount_stream.lua [--vm V] -p P -- FILE
local tide = require "tide"

local env = tide.env{}
env:read_text(arg[1])
   :flat_map(function(line, out)
     for w in line:lower():gmatch("%a+") do out:collect(w) end
   end)
   :map(function(w) return { word = w, n = 1 } end)
   :key_by("word")
   :sum("n")
   :discard()
env:execute("bench-wordcount-stream")
