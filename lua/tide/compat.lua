--- tide.compat: what Lua 5.4 and LuaJIT 2.1 (Lua 5.1) do differently,
-- behind one interface, so that the Tide library and job scripts run
-- unchanged on both (docs/LUAJIT.md). This file itself parses under both:
-- the Lua 5.4 operators are compiled from a string.
--
-- Numbers. Lua 5.4 has 64-bit integers and double floats; LuaJIT has only
-- doubles. Under LuaJIT a number counts as an "integer" when it is
-- integral and |v| < 2^53: such values are exact, and so are +, -, *, %
-- and idiv on them while every result stays below 2^53. An integral
-- double at or beyond 2^53 is a "float" (it may be a rounded result).
--
--   compat.luajit            true under LuaJIT
--   compat.idiv(a, b)        floor division (a // b on 5.4)
--   compat.band(a, b), bor(a, b), bxor(a, b), bnot(a), lshift(a, n),
--   rshift(a, n)             bit operations on 32 bits: integer arguments
--                            taken modulo 2^32, shift counts modulo 32,
--                            results in [0, 2^32) on both VMs
--   compat.math_type(v)      "integer", "float" or nil (math.type on 5.4)
--   compat.tointeger(v)      v as an integer, or nil (math.tointeger on 5.4)
--   compat.is_integer(v)     math_type(v) == "integer", or v is MIN_INT or
--                            MAX_INT (not integers by math_type on LuaJIT)
--   compat.MAX_INT, MIN_INT  +inf / -inf timestamps: math.maxinteger and
--                            math.mininteger on 5.4; 2^63 and -2^63 on
--                            LuaJIT, above / below every real timestamp
--                            (the LuaJIT host clamps them to int64)
--   compat.unpack, compat.pack   table.unpack / table.pack

-- luacheck: std max (the one file of the library using what only Lua 5.4 or only LuaJIT has)
local M = {}

M.luajit = type(rawget(_G, "jit")) == "table"

local math_type, tointeger

if math.type then
  -- Lua 5.3 and later: the operators themselves
  M.idiv, M.band, M.bor, M.bxor, M.bnot, M.lshift, M.rshift = assert(load([[
    local MASK = 0xFFFFFFFF
    return function(a, b) return a // b end,
      function(a, b) return a & b & MASK end,
      function(a, b) return (a | b) & MASK end,
      function(a, b) return (a ~ b) & MASK end,
      function(a) return ~a & MASK end,
      function(a, n) return (a << (n & 31)) & MASK end,
      function(a, n) return (a & MASK) >> (n & 31) end
  ]], "=[tide.compat]", "t"))()
  math_type, tointeger = math.type, math.tointeger
  M.MAX_INT, M.MIN_INT = math.maxinteger, math.mininteger
else
  -- LuaJIT (or Lua 5.1 with LuaBitOp): doubles, and the bit library,
  -- whose results are signed 32-bit numbers
  local bit = require "bit"
  local floor = math.floor
  local band, bor, bxor, bnot, lshift, rshift = bit.band, bit.bor, bit.bxor, bit.bnot, bit.lshift, bit.rshift
  local function u32(x)
    if x < 0 then return x + 4294967296 end
    return x
  end
  function M.idiv(a, b) return floor(a / b) end
  function M.band(a, b) return u32(band(a, b)) end
  function M.bor(a, b) return u32(bor(a, b)) end
  function M.bxor(a, b) return u32(bxor(a, b)) end
  function M.bnot(a) return u32(bnot(a)) end
  function M.lshift(a, n) return u32(lshift(a, n)) end
  function M.rshift(a, n) return u32(rshift(a, n)) end
  local LIMIT = 2 ^ 53
  function math_type(v)
    if type(v) ~= "number" then return nil end
    if v == floor(v) and v > -LIMIT and v < LIMIT then return "integer" end
    return "float" -- also nan, inf and integral values beyond 2^53
  end
  function tointeger(v)
    -- as Lua 5.4.4's math.tointeger, a numeric string converts
    local n = tonumber(v)
    if n ~= nil and math_type(n) == "integer" then return n end
    return nil
  end
  M.MAX_INT, M.MIN_INT = 2 ^ 63, -2 ^ 63
end
M.math_type, M.tointeger = math_type, tointeger

local MAX_INT, MIN_INT = M.MAX_INT, M.MIN_INT
function M.is_integer(v)
  return math_type(v) == "integer" or v == MAX_INT or v == MIN_INT
end

M.unpack = table.unpack or rawget(_G, "unpack")
M.pack = table.pack or function(...) return { n = select("#", ...), ... } end

return M
