-- Word count over a TCP text stream (Flink's SocketWindowWordCount without
-- the window): reads lines from host:port, counts words, and sends
-- "word,count" updates to a second server as lines.
--   tide run scripts/socket_wordcount.lua -- IN_HOST IN_PORT OUT_HOST OUT_PORT
-- The input is not replayable: across a restore the count is at most once
-- (docs/CONNECTORS.md).
local tide = require "tide"
local env = tide.env()
env:socket_text_stream(arg[1], tonumber(arg[2])):uid("lines")
   :flat_map(function(line, out)
     for w in line:lower():gmatch("%a+") do out:collect({ w, 1 }) end
   end):uid("words")
   :key_by(function(p) return p[1] end)
   :sum(2):uid("counts")
   :map(function(p) return p[1] .. "," .. string.format("%d", p[2]) end):uid("fmt")
   :write_socket(arg[3], tonumber(arg[4])):uid("out")
env:execute("socket-wordcount")
