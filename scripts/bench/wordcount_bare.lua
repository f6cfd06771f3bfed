-- Bare Lua 5.4 word count in one VM, the baseline for Tide's word count:
--   lua5.4 scripts/bench/wordcount_bare.lua FILE    prints "DISTINCT TOTAL"
local counts = {}
for line in io.lines(arg[1]) do
  for w in line:lower():gmatch("%w+") do counts[w] = (counts[w] or 0) + 1 end
end
-- Totals for verification, outside the timed loop's shape (one pass over
-- the distinct words).
local distinct, total = 0, 0
for _, n in pairs(counts) do
  distinct = distinct + 1
  total = total + n
end
print(distinct, total)
