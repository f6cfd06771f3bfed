-- Word count over a text file (plain or .gz): lower-cased runs of ASCII
-- letters and digits, counted per word; the final counts are written as
-- CSV rows "word,count" into OUT_DIR and the top words are printed.
--
--   tide run scripts/wordcount.lua [--parallelism N] -- INPUT OUT_DIR [TOP]
--
-- Runs in batch mode (Flink's RuntimeExecutionMode.BATCH): the keyed count
-- emits one final count per word instead of an update per record.
local tide = require "tide"

local input, out_dir, top = arg[1], arg[2], tonumber(arg[3] or 10)
if not input or not out_dir then
  io.stderr:write("usage: tide run scripts/wordcount.lua -- INPUT OUT_DIR [TOP]\n")
  os.exit(2)
end

local env = tide.env{ runtime_mode = "batch" }

local lines = env:read_text(input):uid("lines")
-- A plain file is split over the source's subtasks; a .gz file is read by
-- one of them, so spread its lines over the subtasks that split them.
if input:match("%.gz$") then lines = lines:rebalance() end

lines:flat_map(function(line, out)
     for word in line:lower():gmatch("%w+") do out:collect(word) end
   end):uid("split")
   :key_by(function(word) return word end)
   :count():uid("count")
   :write_csv(out_dir, { columns = { "key", "count" } })

local result = env:execute("wordcount")

-- Read back the part files this run committed and print the top words.
local counts = {}
local names = assert(tide.list_dir(out_dir))
for _, name in ipairs(names) do
  if name:sub(1, #result.part_prefix) == result.part_prefix then
    for line in io.lines(out_dir .. "/" .. name) do
      local word, n = line:match("^(.*),(%d+)$")
      counts[#counts + 1] = { word, tonumber(n) }
    end
  end
end
table.sort(counts, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)
print(string.format("%d distinct words in %d ms; top %d:", #counts, result.runtime_ms, top))
for i = 1, math.min(top, #counts) do
  print(string.format("%9d  %s", counts[i][2], counts[i][1]))
end
