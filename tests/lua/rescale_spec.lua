-- Keyed state restored at another parallelism (issue 10, rescaling on the
-- heap backend): old subtasks' snapshots (tide.testing harnesses, one per
-- old subtask, fed the keys routing gives them), restored into harnesses
-- of a new parallelism: each new subtask holds exactly the state and the
-- timers of the keys whose key groups are in its range, as Flink restores
-- keyed state by key-group range. Expected values are counted here, from
-- what each key was fed.
local testing = require "tide.testing"
local core = require "tide.core"

local MAXP = 128
local function owner(k, p) return math.floor(core.key_group(k, MAXP) * p / MAXP) end
local function id(k) return type(k) == "table" and table.concat(k, ":") or tostring(k) end

local KEYS = {}
for i = 1, 60 do KEYS[#KEYS + 1] = i end
for i = 1, 10 do KEYS[#KEYS + 1] = "s" .. i end
for i = 1, 10 do KEYS[#KEYS + 1] = { "t", i } end
local function times(i) return i % 3 + 1 end -- records per key before the snapshot

-- old harnesses at parallelism 2, each fed its keys; their snapshots
local function old_snapshots(build, record)
  local snaps = {}
  for sub = 0, 1 do
    local h = testing.harness(build, { subtask = sub, parallelism = 2, max_parallelism = MAXP })
    for i, k in ipairs(KEYS) do
      if owner(k, 2) == sub then
        for _ = 1, times(i) do h:process(record(k), 10) end
      end
    end
    snaps[#snaps + 1] = h:snapshot()
  end
  return snaps
end

describe("keyed state at another parallelism #unit", function()
  it("restores a process function's value state and timers by key-group range (2 -> 1, 3, 4)", function()
    local function build(s)
      return s:key_by(function(r) return r.k end):process {
        on_record = function(r, ctx, out)
          local c = ctx.state:value("count")
          local n = (c:value() or 0) + 1
          c:update(n)
          if n == 1 then ctx.timers:register_event_time(1000) end
          out:collect { k = r.k, n = n }
        end,
        on_timer = function(_, ctx, out)
          out:collect { k = ctx.key, fired = ctx.state:value("count"):value() }
        end,
      }
    end
    local snaps = old_snapshots(build, function(k) return { k = k } end)
    for _, p in ipairs { 1, 3, 4 } do
      local counted, fired = {}, {}
      for sub = 0, p - 1 do
        local h = testing.harness(build, { subtask = sub, parallelism = p, max_parallelism = MAXP, restore = snaps })
        for _, k in ipairs(KEYS) do
          if owner(k, p) == sub then h:process({ k = k }, 20) end
        end
        h:watermark(2000)
        for _, e in ipairs(h:output()) do
          local v = e.value
          if v and v.n then
            assert.is_nil(counted[id(v.k)], "a key counted in two subtasks")
            counted[id(v.k)] = v.n
          elseif v and v.fired then
            assert.are.equal(sub, owner(v.k, p), "a timer fired in a subtask that does not own its key")
            assert.is_nil(fired[id(v.k)], "a timer fired twice")
            fired[id(v.k)] = v.fired
          end
        end
      end
      for i, k in ipairs(KEYS) do
        assert.are.equal(times(i) + 1, counted[id(k)], "count of " .. id(k) .. " at p=" .. p)
        assert.are.equal(times(i) + 1, fired[id(k)], "timer of " .. id(k) .. " at p=" .. p)
      end
    end
  end)

  it("restores a keyed running sum by key-group range (2 -> 1, 3)", function()
    local function build(s) return s:key_by("k"):sum("v") end
    local snaps = old_snapshots(build, function(k) return { k = k, v = 10 } end)
    for _, p in ipairs { 1, 3 } do
      local sums = {}
      for sub = 0, p - 1 do
        local h = testing.harness(build, { subtask = sub, parallelism = p, max_parallelism = MAXP, restore = snaps })
        for _, k in ipairs(KEYS) do
          if owner(k, p) == sub then h:process({ k = k, v = 1 }) end
        end
        for _, e in ipairs(h:output()) do
          assert.is_nil(sums[id(e.value.k)], "a key summed in two subtasks")
          sums[id(e.value.k)] = e.value.v
        end
      end
      for i, k in ipairs(KEYS) do
        assert.are.equal(10 * times(i) + 1, sums[id(k)], "sum of " .. id(k) .. " at p=" .. p)
      end
    end
  end)
end)

describe("state TTL in a job #unit", function()
  it("expires a process function's state with the harness's processing-time clock", function()
    local h = testing.harness(function(s)
      return s:key_by("k"):process {
        on_record = function(r, ctx, out)
          local v = ctx.state:value("last", { ttl = { time = "1s" } })
          out:collect { k = r.k, prev = v:value() or "none" }
          v:update(r.x)
        end,
      }
    end)
    h:process { k = "a", x = 1 }
    h:processing_time(500)
    h:process { k = "a", x = 2 } -- written at 500
    h:processing_time(1499)
    h:process { k = "a", x = 3 } -- written at 1499
    h:processing_time(2499)      -- 1499 + 1000 <= 2499: expired
    h:process { k = "a", x = 4 }
    local prev = {}
    for _, e in ipairs(h:output()) do prev[#prev + 1] = e.value.prev end
    assert.are.same({ "none", 1, 2, "none" }, prev)
  end)
end)
