-- Baseline of wordcount_stream.lua: the same split, table building and
-- counting in a bare Lua loop (runs on Lua 5.4 and on LuaJIT).
--   lua5.4|luajit scripts/bench/wordcount_stream_bare.lua FILE   prints "DISTINCT TOTAL"
local counts = {}
for line in io.lines(arg[1]) do
  for w in line:lower():gmatch("%a+") do
    local r = { word = w, n = 1 }
    counts[r.word] = (counts[r.word] or 0) + r.n
  end
end
local distinct, total = 0, 0
for _, n in pairs(counts) do
  distinct = distinct + 1
  total = total + n
end
print(distinct, total)
