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
