-- tide.core.json_decode / json_encode (core/json_lua.c, jansson): the
-- values of RFC 8259 texts written by hand here, and what each VM does
-- with integers beyond 2^53 (docs/LUAJIT.md: digits as a string on LuaJIT).
local core = require "tide.core"
local compat = require "tide.compat"
local JIT = compat.luajit
local decode, encode = core.json_decode, core.json_encode

describe("tide.core.json_decode #unit", function()
  it("maps objects, arrays, strings, numbers and booleans to Lua values", function()
    local v = decode('{"a":1,"b":[true,false,"x\\u00e9\\n"],"c":{"d":-2.5},"e":null}')
    assert.are.same({ a = 1, b = { true, false, "x\195\169\n" }, c = { d = -2.5 } }, v)
    assert.equals("integer", compat.math_type(v.a))
    assert.equals(3, decode("3"))
    assert.equals("s", decode('"s"'))
  end)

  it("keeps integers beyond 2^53 exact: integers on Lua 5.4, digits on LuaJIT", function()
    local v = decode('{"big":1152921504606846977}').big
    if JIT then assert.equals("1152921504606846977", v) else assert.equals(1152921504606846977, v) end
    assert.equals(9007199254740991, decode("9007199254740991"))
  end)

  it("names the column of malformed text; a top-level null is no record", function()
    local v, err = decode('{"a": [1, 2}')
    assert.is_nil(v)
    assert.matches("bad JSON at column 12", err)
    v, err = decode("null")
    assert.is_nil(v)
    assert.equals("null is not a record", err)
    assert.is_nil((decode("99999999999999999999999")))
  end)
end)

describe("tide.core.json_encode #unit", function()
  it("writes compact JSON with sorted names; arrays are keys 1..n", function()
    assert.equals('{"a":[1,2,"x"],"b":{"c":true},"z":2.5}', encode({ z = 2.5, b = { c = true }, a = { 1, 2, "x" } }))
    assert.equals("{}", encode({}))
    assert.equals('{"1":"a","3":"c"}', encode({ [1] = "a", [3] = "c" }))
    assert.equals('"q\\"\\n"', encode('q"\n'))
    assert.equals("10", encode(10))
  end)

  it("refuses what JSON cannot hold", function()
    local t = {}
    t.self = t
    local cases = {
      { print, "cannot write a function value in JSON" },
      { 0 / 0, "cannot write NaN in JSON" },
      { 1 / 0, "cannot write an infinity in JSON" },
      { "\255", "a string is not UTF-8" },
      { t, "nested deeper than 64" },
    }
    for _, c in ipairs(cases) do
      local s, err = encode(c[1])
      assert.is_nil(s)
      assert.matches(c[2], err, 1, true)
    end
  end)
end)
