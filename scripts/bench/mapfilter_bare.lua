-- Goal 2 baseline: the same generate/map/filter calls as mapfilter.lua in
-- a bare Lua loop (three Lua function calls per record; Lua 5.4 or LuaJIT).
--   lua5.4 scripts/bench/mapfilter_bare.lua [N]    prints the kept count
local n = math.floor(tonumber(arg[1] or "10000000"))
local gen = function(i) return i end
local map = function(x) return x * 3 end
local filter = function(x) return x % 2 == 0 end
local kept = 0
for i = 1, n do
  local x = map(gen(i))
  if filter(x) then kept = kept + 1 end
end
print(kept)
