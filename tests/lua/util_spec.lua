-- tide.util: durations, value formatting and CSV fields.
-- Expected values come from the units' definitions, the shortest
-- round-trip decimal form of IEEE doubles (as Python's repr gives them)
-- and RFC 4180, not from the code under test. Where Lua 5.4 and LuaJIT
-- differ by design (integral floats, 64-bit integers), each VM's answer
-- from docs/LUAJIT.md is asserted.
local util = require "tide.util"
local compat = require "tide.compat"
local JIT, math_type = compat.luajit, compat.math_type

-- The message of the error fn(...) raises (fails the spec if none).
local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

describe("tide.util.duration #unit", function()
  local duration = util.duration

  it("parses every unit into integer milliseconds", function()
    local cases = {
      { "500ms", 500 },
      { "10s", 10 * 1000 },
      { "5m", 5 * 60 * 1000 },
      { "1h", 60 * 60 * 1000 },
      { "1d", 24 * 60 * 60 * 1000 },
      { "0s", 0 },
      { "1.5s", 1500 },
      { " 2 m ", 120000 },
    }
    for _, c in ipairs(cases) do
      local ms = duration(c[1], "timeout")
      assert.are.equal(c[2], ms, "duration('" .. c[1] .. "')")
      assert.are.equal("integer", math_type(ms), "duration('" .. c[1] .. "') type")
    end
  end)

  it("takes numbers as milliseconds", function()
    assert.are.equal(250, duration(250, "timeout"))
    assert.are.equal(0, duration(0, "timeout"))
    local one = duration(1.0, "timeout")
    assert.are.equal(1, one)
    assert.are.equal("integer", math_type(one))
  end)

  it("rejects a negative number, naming the argument", function()
    local err = error_of(duration, -1, "window size")
    assert.truthy(err:find("bad window size", 1, true), err)
    assert.truthy(err:find("got -1", 1, true), err)
  end)

  it("rejects an unknown unit, naming the argument and the value", function()
    local err = error_of(duration, "10x", "slide")
    assert.truthy(err:find("bad slide", 1, true), err)
    assert.truthy(err:find("'10x'", 1, true), err)
  end)

  it("rejects a table and a fractional number of milliseconds", function()
    local err = error_of(duration, {}, "timeout")
    assert.truthy(err:find("bad timeout", 1, true), err)
    assert.truthy(err:find("table", 1, true), err)
    err = error_of(duration, 1.5, "timeout")
    assert.truthy(err:find("bad timeout", 1, true), err)
  end)

  it("rejects strings without a unit or without a number", function()
    for _, s in ipairs { "10", "ms", "", "-5s", "5 s s" } do
      local err = error_of(duration, s, "gap")
      assert.truthy(err:find("bad gap", 1, true), s .. ": " .. err)
    end
  end)
end)

describe("tide.util.format #unit", function()
  local format = util.format

  it("writes integers without a decimal point", function()
    assert.are.equal("42", format(42))
    assert.are.equal("-7", format(-7))
    assert.are.equal("0", format(0))
    assert.are.equal("9007199254740991", format(9007199254740991))
    assert.are.equal("-1700000000123", format(-1700000000123))
    -- the +-inf sentinels: 64-bit integers on Lua 5.4, +-2^63 on LuaJIT
    assert.are.equal(JIT and "9.223372036854776e+18" or "9223372036854775807", format(compat.MAX_INT))
    assert.are.equal(JIT and "-9.223372036854776e+18" or "-9223372036854775808", format(compat.MIN_INT))
  end)

  it("writes floats in their shortest round-trip form", function()
    -- Python: repr(0.1), repr(1/3), repr(0.1 + 0.2), repr(-2.5), repr(1e300)
    assert.are.equal("0.1", format(0.1))
    assert.are.equal("0.3333333333333333", format(1 / 3))
    assert.are.equal("0.30000000000000004", format(0.1 + 0.2))
    assert.are.equal("-2.5", format(-2.5))
    assert.are.equal("1e+300", format(1e300))
  end)

  it("reads back as the same number with no shorter form possible (random doubles)", function()
    local rng = 12345
    local function next_u31() -- a fixed generator (MINSTD), so runs are repeatable
      rng = rng * 48271 % 2147483647
      return rng
    end
    for _ = 1, 2000 do
      -- a random normal double, exactly: sign, 52 random mantissa bits,
      -- exponent in [-1022, 1023] (each step is exact in binary64)
      local mant = (next_u31() % 1048576) * 4294967296 + next_u31() * 2 + next_u31() % 2
      local x = (1 + mant / 2 ^ 52) * 2 ^ (next_u31() % 2046 - 1022)
      if next_u31() % 2 == 0 then x = -x end
      do
        local s = format(x)
        assert.are.equal(x, tonumber(s), s)
        local digits = #(s:match("^-?([%d.]+)"):gsub("%.", ""):gsub("^0+", ""):gsub("0+$", ""))
        if digits > 1 then
          local shorter = string.format("%." .. (digits - 1) .. "g", x)
          assert.are_not.equal(x, tonumber(shorter), s .. " has a shorter form " .. shorter)
        end
      end
    end
  end)

  it("keeps a float with an integral value recognisable as a float", function()
    -- on LuaJIT 2.0 is the integer 2 (docs/LUAJIT.md): only integral
    -- values at or beyond 2^53 are floats there
    assert.are.equal(JIT and "2" or "2.0", format(2.0))
    assert.are.equal(JIT and "-3" or "-3.0", format(-3.0))
    assert.are.equal(JIT and "100" or "100.0", format(100.0))
    assert.are.equal("9007199254740992.0", format(2 ^ 53))
    assert.are.equal("-18014398509481984.0", format(-2 ^ 54)) -- %.17g, and ".0"
  end)

  it("writes inf and nan", function()
    assert.are.equal("inf", format(math.huge))
    assert.are.equal("-inf", format(-math.huge))
    assert.are.equal("nan", format(0 / 0))
  end)

  it("writes strings as they are at the top level and quoted inside tables", function()
    assert.are.equal("hello world", format("hello world"))
    assert.are.equal('{"a", "b c"}', format { "a", "b c" })
  end)

  it("writes booleans and nil", function()
    assert.are.equal("true", format(true))
    assert.are.equal("false", format(false))
    assert.are.equal("nil", format(nil))
  end)

  it("writes arrays in order", function()
    assert.are.equal("{}", format {})
    assert.are.equal(JIT and '{1, 2.5, "x", true, 2}' or '{1, 2.5, "x", true, 2.0}', format { 1, 2.5, "x", true, 2.0 })
  end)

  it("writes maps with sorted keys, nested", function()
    local v = { c = { z = 1, y = 2.0 }, b = 1, a = { 2, 3 } }
    assert.are.equal(JIT and "{a={2, 3}, b=1, c={y=2, z=1}}" or "{a={2, 3}, b=1, c={y=2.0, z=1}}", format(v))
  end)

  it("brackets keys that are not identifiers and sorts numbers before strings", function()
    assert.are.equal('{["a b"]=1}', format { ["a b"] = 1 })
    assert.are.equal('{[1]="a", x=1}', format { [1] = "a", x = 1 })
    assert.are.equal('{[1]=1, [3]=3}', format { [1] = 1, [3] = 3 })
    assert.are.equal('{[true]=1}', format { [true] = 1 })
  end)

  it("gives the same text whatever order a map was built in", function()
    local up, down = {}, {}
    for i = 1, 50 do up["k" .. i] = i end
    for i = 50, 1, -1 do down["k" .. i] = i end
    local s = format(up)
    assert.are.equal(s, format(down))
    -- sorted as strings: k1, k10, k11, ..., k19, k2, k20, ...
    assert.are.equal("{k1=1, k10=10, k11=11, ", s:sub(1, #"{k1=1, k10=10, k11=11, "))
  end)
end)

describe("tide.util.csv_field #unit", function()
  local field = util.csv_field

  it("leaves plain fields alone", function()
    assert.are.equal("abc", field("abc", ","))
    assert.are.equal("a b", field("a b", ","))
    assert.are.equal("", field("", ","))
  end)

  it("quotes fields holding the delimiter, a quote, CR or LF (RFC 4180)", function()
    assert.are.equal('"a,b"', field("a,b", ","))
    assert.are.equal('"say ""hi"""', field('say "hi"', ","))
    assert.are.equal('""""', field('"', ","))
    assert.are.equal('"line1\nline2"', field("line1\nline2", ","))
    assert.are.equal('"a\rb"', field("a\rb", ","))
  end)

  it("quotes for the delimiter in use only", function()
    assert.are.equal("a,b", field("a,b", ";"))
    assert.are.equal('"a;b"', field("a;b", ";"))
    assert.are.equal('"a\tb"', field("a\tb", "\t"))
    -- a delimiter that is a Lua pattern character is matched literally
    assert.are.equal("a.b", field("a.b", "|"))
    assert.are.equal('"a|b"', field("a|b", "|"))
  end)

  it("writes numbers, booleans and nil", function()
    assert.are.equal("42", field(42, ","))
    assert.are.equal("-1", field(-1, ","))
    assert.are.equal(JIT and "2" or "2.0", field(2.0, ","))
    assert.are.equal("1700000000123", field(1700000000123, ","))
    assert.are.equal("0.1", field(0.1, ","))
    assert.are.equal("true", field(true, ","))
    assert.are.equal("", field(nil, ","))
  end)

  it("refuses tables", function()
    local err = error_of(field, { 1 }, ",")
    assert.truthy(err:find("cannot write a table value", 1, true), err)
  end)
end)
