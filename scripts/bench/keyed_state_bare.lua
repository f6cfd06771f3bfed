-- Baseline of keyed_state.lua: the same records built by the same
-- function and counted per key in a table, in a bare loop (Lua 5.4 or
-- LuaJIT); prints "KEYS RECORDS".
--   lua5.4 scripts/bench/keyed_state_bare.lua N KEYS
local n = math.floor(tonumber(arg[1] or "3000000"))
local keys = math.floor(tonumber(arg[2] or "10000"))
local gen = function(i) return { key = i % keys, i = i } end
local counts, seen = {}, 0
for i = 1, n do
  local r = gen(i)
  local k = r.key
  local c = counts[k]
  if c == nil then
    c = 0
    seen = seen + 1
  end
  counts[k] = c + 1
end
print(seen .. " " .. n)
