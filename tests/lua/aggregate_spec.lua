-- Keyed rolling aggregations (sum/min/max/count) whose consumer keeps no
-- record (a sink, a network output: runtime.build's out.reusable): their
-- output tables are reused from batch to batch, and the copy of a key's
-- first record is generated for its shape. What each push hands on must
-- still be exactly Flink's rolling aggregate: the key's first record with
-- the field replaced by the running value, one distinct record per input
-- record, also when a key repeats within a batch and when records of
-- several shapes (and field names that are not identifiers) mix. The
-- expected values are computed here by a plain loop.
local operators = require "tide.operators"
local util = require "tide.util"

-- an aggregate operator over field `field` keyed by `kfield`, whose
-- consumer renders every record it gets at once (as a sink does)
local function aggregate(agg, field, reusable)
  local seen = {}
  local node = { inputs = { { key_field = "k", key = function(v) return v.k end } }, agg = agg,
    field = field, kind = "aggregate", uid = "agg", name = agg, site = "spec" }
  local out = { reusable = reusable, watermark = function() end,
    push = function(b, _, n) for i = 1, n do seen[#seen + 1] = util.format(b[i]) end end }
  local op = operators.ops.aggregate(node, out, { batch = false, subtask = 0, parallelism = 1 })
  return op, seen
end

-- records: 3 keys, two shapes, a field named "odd key"; keys repeat
-- within each batch
local function records(nbatches, size)
  local batches, i = {}, 0
  for b = 1, nbatches do
    local batch = {}
    for j = 1, size do
      i = i + 1
      local key = ({ "a", "b", "c" })[i % 3 + 1]
      local r = { k = key, n = i % 7, tag = "t" .. i }
      if key == "c" then r["odd key"] = i end
      batch[j] = r
    end
    batches[b] = batch
  end
  return batches
end

local function expected(batches, agg, field)
  local firsts, vals, out = {}, {}, {}
  for _, batch in ipairs(batches) do
    for _, r in ipairs(batch) do
      local k, x = r.k, r[field]
      if agg == "count" then x = 1 end
      if vals[k] == nil then
        firsts[k], vals[k] = r, x
      elseif agg == "sum" or agg == "count" then
        vals[k] = vals[k] + x
      elseif agg == "min" then
        vals[k] = math.min(vals[k], x)
      else
        vals[k] = math.max(vals[k], x)
      end
      if agg == "count" then
        out[#out + 1] = util.format({ key = k, count = vals[k] })
      else
        local c = {}
        for f, v in pairs(firsts[k]) do c[f] = v end
        c[field] = vals[k]
        out[#out + 1] = util.format(c)
      end
    end
  end
  return out
end

describe("tide keyed aggregations #unit", function()
  for _, agg in ipairs { "sum", "min", "max", "count" } do
    for _, reusable in ipairs { true, false } do
      it(string.format("%s emits Flink's rolling result per record (consumer keeps records: %s)", agg,
        tostring(not reusable)), function()
        local field = agg ~= "count" and "n" or nil
        local batches = records(6, 40)
        local op, seen = aggregate(agg, field, reusable)
        for _, b in ipairs(batches) do op.push(b, nil, #b) end
        assert.are.same(expected(batches, agg, field), seen)
      end)
    end
  end

  it("gives a consumer that keeps records distinct records within a batch", function()
    local node = { inputs = { { key_field = "k", key = function(v) return v.k end } }, agg = "sum", field = "n",
      kind = "aggregate", uid = "agg", name = "sum", site = "spec" }
    local kept = {}
    local out = { reusable = false, watermark = function() end,
      push = function(b, _, n) for i = 1, n do kept[#kept + 1] = b[i] end end }
    local op = operators.ops.aggregate(node, out, { batch = false })
    op.push({ { k = "x", n = 1 }, { k = "x", n = 2 }, { k = "x", n = 3 } }, nil, 3)
    op.push({ { k = "x", n = 4 } }, nil, 1)
    local sums = {}
    for i, r in ipairs(kept) do sums[i] = r.n end
    assert.are.same({ 1, 3, 6, 10 }, sums)
  end)
end)

-- core.check_numbers, the built-in sum's check of a batch: C on Lua 5.4,
-- Lua on LuaJIT (tide.ffi); both must answer alike.
describe("core.check_numbers #unit", function()
  local core = require "tide.core"
  it("returns nothing when every value is a number", function()
    assert.are.same({}, { core.check_numbers({ 1, 2.5, -3 }, 3) })
    assert.are.same({}, { core.check_numbers({ { n = 1 }, { n = 2.5 } }, 2, "n") })
    -- only the first n entries count
    assert.are.same({}, { core.check_numbers({ 1, 2, "x" }, 2) })
  end)
  it("returns the first index that is not a number, and its value", function()
    assert.are.same({ 2, "x" }, { core.check_numbers({ 1, "x", "y" }, 3) })
    assert.are.same({ 3, true }, { core.check_numbers({ { n = 1 }, { n = 2 }, { n = true } }, 3, "n") })
    assert.are.same(2, (core.check_numbers({ { n = 1 }, { m = 2 } }, 2, "n")))
    -- a record that is not a table has no field: index, nil
    local i, v = core.check_numbers({ { n = 1 }, 5 }, 2, "n")
    assert.are.same({ 2, true }, { i, v == nil })
    -- a field through __index counts, as v[field] does
    assert.are.same({}, { core.check_numbers({ setmetatable({}, { __index = { n = 3 } }) }, 1, "n") })
  end)
end)

-- A key's first record that holds only the key and the field ({k =, n =})
-- is not kept (operators.lua, "compact": the key has no first-record
-- entry); the output
-- must still be that record with the running value, whatever later
-- records of the key hold, and a first record with more fields, a number
-- key or a key read through a metatable keeps its copy.
describe("keyed aggregations' compact first records #unit", function()
  local function batches()
    local via_meta = setmetatable({ n = 5, tag = "m" }, { __index = { k = "m" } })
    return {
      { { k = "a", n = 1 }, { k = "b", n = 2, tag = "b1" }, { k = "a", n = 3, extra = "x" }, { k = 7, n = 1 } },
      { { k = "b", n = 4 }, { k = "a", n = 5 }, { k = 7.0, n = 2 }, via_meta, { k = "m", n = 1 } },
    }
  end
  -- the expected outputs, by hand: a's first record is {k = "a", n = 1},
  -- b's {k = "b", n = 2, tag = "b1"}, 7's {k = 7, n = 1} (its later 7.0
  -- is the same key), m's has no raw k (util.format names its fields)
  local want = {
    sum = { '{k="a", n=1}', '{k="b", n=2, tag="b1"}', '{k="a", n=4}', '{k=7, n=1}',
      '{k="b", n=6, tag="b1"}', '{k="a", n=9}', '{k=7, n=3}', '{n=5, tag="m"}', '{n=6, tag="m"}' },
    max = { '{k="a", n=1}', '{k="b", n=2, tag="b1"}', '{k="a", n=3}', '{k=7, n=1}',
      '{k="b", n=4, tag="b1"}', '{k="a", n=5}', '{k=7, n=2}', '{n=5, tag="m"}', '{n=5, tag="m"}' },
  }
  for _, agg in ipairs { "sum", "max" } do
    for _, reusable in ipairs { true, false } do
      it(string.format("%s: the outputs are the first records with the aggregate (consumer keeps records: %s)",
        agg, tostring(not reusable)), function()
        local op, seen = aggregate(agg, "n", reusable)
        for _, b in ipairs(batches()) do op.push(b, nil, #b) end
        assert.are.same(want[agg], seen)
        -- a's first record alone is not kept
        local firsts = {}
        for kg, g in pairs(op.snapshot().keyed.states[agg .. ".first"].groups) do
          assert.is_number(kg)
          for i = 1, #g, 2 do firsts[g[i]] = type(g[i + 1]) end
        end
        assert.are.same({ b = "table", [7] = "table", m = "table" }, firsts)
        -- and a restored operator goes on from there
        local op2, seen2 = aggregate(agg, "n", reusable)
        op2.restore(op.snapshot(), { op.snapshot() })
        op2.push({ { k = "a", n = 10 }, { k = "b", n = 10 } }, nil, 2)
        local a, b = agg == "sum" and 19 or 10, agg == "sum" and 16 or 10
        assert.are.same({ '{k="a", n=' .. a .. '}', '{k="b", n=' .. b .. ', tag="b1"}' }, seen2)
      end)
    end
  end
end)

-- operators.window_all_combiner: the local half of a window_all's
-- aggregation across an exchange (tide.lua's local_window_aggregation).
-- The partials are computed here by hand.
describe("window_all pre-aggregation #unit", function()
  local function run(spec, b, ts)
    local sent = {}
    local push = operators.window_all_combiner(spec, function(o, t, n)
      local batch = { n = n }
      for i = 1, n do batch[i] = { util.format(o[i]), t and t[i] } end
      sent[#sent + 1] = batch
    end)
    push(b, ts, #b)
    return sent
  end

  it("sends one partial per tumbling window: its first record with the batch's aggregate", function()
    local b = { { id = "a", v = 3 }, { id = "b", v = 9 }, { id = "c", v = 1 }, { id = "d", v = 4 }, { id = "e", v = 7 } }
    local ts = { 1, 12, 5, 10, 19 } -- windows of 10 from 0: [0, 10) holds a, c; [10, 20) holds b, d, e
    for agg, want in pairs {
      max = { { '{id="a", v=3}', 1 }, { '{id="b", v=9}', 12 } },
      min = { { '{id="a", v=1}', 1 }, { '{id="b", v=4}', 12 } },
      sum = { { '{id="a", v=4}', 1 }, { '{id="b", v=20}', 12 } },
    } do
      local sent = run({ size = 10, offset = 0, agg = agg, field = "v" }, b, ts)
      want.n = 2
      assert.are.same({ want }, sent, agg)
    end
  end)

  it("aggregates numbers themselves without a field, and honours the offset", function()
    -- offset 5: windows [-5, 5), [5, 15), [15, 25)
    local sent = run({ size = 10, offset = 5, agg = "sum" }, { 1, 2, 4, 8, 16 }, { 4, 5, 14, 15, -3 })
    assert.are.same({ { n = 3, { "17", 4 }, { "6", 5 }, { "8", 15 } } }, sent)
    assert.are.same({ { n = 1, { "24", 15 } } }, run({ size = 10, offset = 5, agg = "sum" }, { 8, 16 }, { 15, 24 }))
  end)

  it("sends a batch as it is when a record has no timestamp or no number", function()
    local b = { { v = 1 }, { v = "x" } }
    local sent = run({ size = 10, offset = 0, agg = "sum", field = "v" }, b, { 1, 2 })
    assert.are.same({ { n = 2, { "{v=1}", 1 }, { '{v="x"}', 2 } } }, sent)
    sent = run({ size = 10, offset = 0, agg = "max", field = "v" }, { { v = 1 }, { v = 2 } }, { 1, nil })
    assert.are.same({ { n = 2, { "{v=1}", 1 }, { "{v=2}" } } }, sent)
    sent = run({ size = 10, offset = 0, agg = "max", field = "v" }, { { v = 1 } }, nil)
    assert.are.same({ { n = 1, { "{v=1}" } } }, sent)
  end)
end)

-- A map chained into a keyed aggregate as its only consumer is fused into
-- the aggregate's loop on LuaJIT (operators.lua, fuse_map; on Lua 5.4
-- both pipelines below are the unfused one). Fused or not, the outputs
-- must be the same, computed here by a plain loop, and so must every
-- error, also when a batch holds several bad records: the map's errors
-- come first, then sum's check of the whole batch, then a nil key.
describe("a map fused into a keyed aggregate #unit", function()
  local compat = require "tide.compat"
  local function pipeline(agg, fusable)
    local seen = {}
    local anode = { inputs = { { key_field = "k", key = function(v) return v.k end } }, agg = agg,
      field = agg ~= "count" and "n" or nil, kind = "aggregate", uid = "agg", name = agg, site = "spec" }
    local aout = { reusable = true, watermark = function() end,
      push = function(b, _, n) for i = 1, n do seen[#seen + 1] = util.format(b[i]) end end }
    local aop = operators.ops.aggregate(anode, aout, { batch = false, subtask = 0, parallelism = 1 })
    -- the map: a word -> {k = word, n = #word}; "nil" -> nil; "nokey" ->
    -- a record without k; "text" -> n is a string; "num" -> a number;
    -- "boom" raises
    local function f(w)
      if w == "nil" then return nil end
      if w == "boom" then error("boom", 0) end
      if w == "nokey" then return { n = 1 } end
      if w == "text" then return { k = "t", n = "x" } end
      if w == "num" then return 7 end
      if w == "wide" then return { k = "wide", n = 2, extra = true } end
      return { k = w, n = #w }
    end
    local mnode = { fn = f, kind = "map", uid = "m", name = "map", site = "spec" }
    local mop = operators.ops.map(mnode, { push = aop.push, watermark = function() end, fusable = fusable,
      targets = { { push = aop.push, op = aop, node = anode } } })
    return mop, seen
  end
  local words = { "a", "bb", "a", "ccc", "wide", "bb", "dddd", "a", "wide", "e" }
  -- what the map gives, batch by batch, aggregated by the plain loop above
  local function oracle(agg)
    local batches = {}
    for b = 1, 8 do
      batches[b] = {}
      for i, w in ipairs(words) do
        batches[b][i] = w == "wide" and { k = "wide", n = 2, extra = true } or { k = w, n = #w }
      end
    end
    return expected(batches, agg, agg ~= "count" and "n" or nil)
  end

  it("is fused on LuaJIT only", function()
    local mop = pipeline("sum", true)
    assert.are.equal(compat.luajit, mop.owners ~= nil)
    assert.is_nil(pipeline("sum", false).owners)
  end)

  for _, agg in ipairs { "sum", "min", "max", "count" } do
    it(agg .. " gives the records the map and the aggregate apart give", function()
      local mop, seen = pipeline(agg, true)
      -- 8 batches: the first ones go through unfused, the rest fused
      for _ = 1, 8 do mop.push(words, nil, #words) end
      assert.are.same(oracle(agg), seen)
    end)
  end

  local function error_of(agg, fusable, batch)
    local mop = pipeline(agg, fusable)
    for _ = 1, 6 do mop.push(words, nil, #words) end -- past the unfused batches
    local ok, err = pcall(mop.push, batch, nil, #batch)
    assert.is_false(ok)
    return err
  end
  local bad = {
    { "sum", { "a", "nil", "b" }, "map: the function returned nil" },
    { "sum", { "a", "boom" }, "boom" },
    { "sum", { "a", "text", "b" }, "field 'n' is not a number (got string)" },
    { "sum", { "num" }, "field 'n' is not a number (got nil)" },
    { "sum", { "a", "nokey" }, "key of a record is nil" },
    -- several bad records: as the map and the aggregate apart
    { "sum", { "nokey", "text" }, "field 'n' is not a number (got string)" },
    { "sum", { "nokey", "a", "nil" }, "map: the function returned nil" },
    { "sum", { "text", "boom" }, "boom" },
    { "max", { "nokey", "text" }, "key of a record is nil" },
    { "count", { "a", "nokey", "nil" }, "map: the function returned nil" },
  }
  for _, case in ipairs(bad) do
    local agg, batch, want = case[1], case[2], case[3]
    it(string.format("%s over {%s} fails with '%s', fused or not", agg, table.concat(batch, ", "), want), function()
      local fused, apart = error_of(agg, true, batch), error_of(agg, false, batch)
      assert.are.equal(apart, fused)
      assert.matches(want, fused, 1, true)
    end)
  end
end)
