-- tide.state: keyed state on the heap backend, driven directly the way the
-- runtime drives it (set cur.key before each record). Expected behaviour is
-- Flink's ValueState, ListState, MapState, ReducingState and
-- AggregatingState.
local state = require "tide.state"

local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function sorted(t)
  table.sort(t, function(a, b) return tostring(a) < tostring(b) end)
  return t
end

local function collect(iter, s, c)
  local out = {}
  for v in iter, s, c do out[#out + 1] = v end
  return out
end

describe("tide.state ValueState #unit", function()
  local cur, st, v
  before_each(function()
    cur = {}
    st = state.new(cur)
    v = st:value("count")
    cur.key = "a"
  end)

  it("is nil when unset", function()
    assert.is_nil(v:value())
  end)

  it("returns what was last stored", function()
    v:update(1)
    assert.are.equal(1, v:value())
    v:update("two")
    assert.are.equal("two", v:value())
    local t = { x = 1 }
    v:update(t)
    assert.are.equal(t, v:value())
  end)

  it("keeps false (a value, not an absence)", function()
    v:update(false)
    assert.are.equal(false, v:value())
  end)

  it("is cleared by update(nil) and by clear()", function()
    v:update(5)
    v:update(nil)
    assert.is_nil(v:value())
    v:update(6)
    v:clear()
    assert.is_nil(v:value())
  end)

  it("keeps one value per key", function()
    v:update(10)
    cur.key = "b"
    assert.is_nil(v:value())
    v:update(20)
    cur.key = "a"
    assert.are.equal(10, v:value())
    v:clear()
    cur.key = "b"
    assert.are.equal(20, v:value())
  end)

  it("keeps states of different names apart", function()
    local other = st:value("sum")
    v:update(1)
    other:update(2)
    assert.are.equal(1, v:value())
    assert.are.equal(2, other:value())
  end)
end)

describe("tide.state ListState #unit", function()
  local cur, st, l
  before_each(function()
    cur = {}
    st = state.new(cur)
    l = st:list("seen")
    cur.key = "a"
  end)

  it("is an empty array when unset", function()
    local got = l:get()
    assert.are.same({}, got)
    assert.are.equal(0, #got)
  end)

  it("appends with add and add_all, in order", function()
    l:add(1)
    l:add("x")
    l:add_all { 2, 3 }
    l:add_all {}
    l:add(4)
    assert.are.same({ 1, "x", 2, 3, 4 }, l:get())
  end)

  it("is replaced by update and emptied by update{} and clear", function()
    l:add_all { 1, 2, 3 }
    l:update { 9, 8 }
    assert.are.same({ 9, 8 }, l:get())
    l:update {}
    assert.are.same({}, l:get())
    l:add(1)
    l:clear()
    assert.are.same({}, l:get())
  end)

  it("does not keep the array passed to update", function()
    local src = { 1, 2 }
    l:update(src)
    src[3] = 3
    assert.are.same({ 1, 2 }, l:get())
  end)

  it("refuses nil", function()
    local err = error_of(l.add, l, nil)
    assert.truthy(err:find("nil cannot be added", 1, true), err)
    assert.are.same({}, l:get())
  end)

  it("refuses a hole (nil element) in add_all and update, as Flink's ListState refuses null elements", function()
    l:add_all { 1, 2 }
    for _, f in ipairs { "add_all", "update" } do
      for _, bad in ipairs { { 3, nil, 5 }, { nil, 4 }, { [2] = 7 }, { 1, [3] = 3 } } do
        local err = error_of(l[f], l, bad)
        assert.truthy(err:find(f .. ": element ", 1, true), err)
        assert.truthy(err:find("is nil: nil cannot be added to list state", 1, true), err)
      end
      -- keys that are not array indices at all
      for _, bad in ipairs { { 1, x = 2 }, { [0] = 1 }, { [1.5] = 1 } } do
        local err = error_of(l[f], l, bad)
        assert.truthy(err:find(f .. ": array expected", 1, true), err)
      end
    end
    -- the state is unchanged by every refused call
    assert.are.same({ 1, 2 }, l:get())
  end)

  it("refuses non-tables in add_all and update", function()
    assert.truthy(error_of(l.add_all, l, 5):find("array expected", 1, true))
    assert.truthy(error_of(l.update, l, "x"):find("array expected", 1, true))
  end)

  it("keeps one list per key", function()
    l:add(1)
    cur.key = "b"
    assert.are.same({}, l:get())
    l:add(2)
    l:add(3)
    cur.key = "a"
    assert.are.same({ 1 }, l:get())
    cur.key = "b"
    assert.are.same({ 2, 3 }, l:get())
  end)
end)

describe("tide.state MapState #unit", function()
  local cur, st, m
  before_each(function()
    cur = {}
    st = state.new(cur)
    m = st:map("m")
    cur.key = "a"
  end)

  it("is empty when unset", function()
    assert.is_true(m:is_empty())
    assert.is_nil(m:get("x"))
    assert.is_false(m:contains("x"))
    assert.are.same({}, collect(m:keys()))
    assert.are.same({}, collect(m:values()))
    local n = 0
    for _ in m:entries() do n = n + 1 end
    assert.are.equal(0, n)
  end)

  it("stores with put and put_all and reads with get and contains", function()
    m:put("x", 1)
    m:put_all { y = 2, z = 3 }
    m:put(7, "seven")
    assert.are.equal(1, m:get("x"))
    assert.are.equal(2, m:get("y"))
    assert.are.equal("seven", m:get(7))
    assert.is_true(m:contains("z"))
    assert.is_false(m:contains("w"))
    assert.is_false(m:is_empty())
    m:put("x", 10)
    assert.are.equal(10, m:get("x"))
  end)

  it("lists keys, values and entries", function()
    m:put_all { x = 1, y = 2, z = 3 }
    assert.are.same({ "x", "y", "z" }, sorted(collect(m:keys())))
    assert.are.same({ 1, 2, 3 }, sorted(collect(m:values())))
    local seen = {}
    for k, v in m:entries() do seen[k] = v end
    assert.are.same({ x = 1, y = 2, z = 3 }, seen)
  end)

  it("removes entries, and is empty again once the last one is gone", function()
    m:put("x", 1)
    m:put("y", 2)
    m:remove("x")
    assert.is_nil(m:get("x"))
    assert.is_false(m:contains("x"))
    assert.is_false(m:is_empty())
    m:remove("y")
    assert.is_true(m:is_empty())
    m:remove("never there")
    assert.is_true(m:is_empty())
  end)

  it("is emptied by clear", function()
    m:put_all { x = 1, y = 2 }
    m:clear()
    assert.is_true(m:is_empty())
    assert.are.same({}, collect(m:keys()))
  end)

  it("refuses a nil map key", function()
    local err = error_of(m.put, m, nil, 1)
    assert.truthy(err:find("cannot be nil", 1, true), err)
    assert.is_true(m:is_empty())
  end)

  it("keeps one map per key", function()
    m:put("x", 1)
    cur.key = "b"
    assert.is_true(m:is_empty())
    assert.is_nil(m:get("x"))
    m:put("x", 2)
    cur.key = "a"
    assert.are.equal(1, m:get("x"))
    m:clear()
    cur.key = "b"
    assert.are.equal(2, m:get("x"))
  end)
end)

describe("tide.state ReducingState #unit", function()
  local cur, st
  before_each(function()
    cur = { key = "a" }
    st = state.new(cur)
  end)

  it("keeps the first value as it is and folds later ones with fn", function()
    local calls = 0
    local r = st:reducing("sum", function(acc, v)
      calls = calls + 1
      return acc + v
    end)
    assert.is_nil(r:get())
    r:add(5)
    assert.are.equal(5, r:get())
    assert.are.equal(0, calls)
    r:add(3)
    r:add(10)
    assert.are.equal(18, r:get())
    assert.are.equal(2, calls)
  end)

  it("passes the accumulator first", function()
    local r = st:reducing("concat", function(acc, v) return acc .. v end)
    r:add("a")
    r:add("b")
    r:add("c")
    assert.are.equal("abc", r:get())
  end)

  it("keeps one accumulator per key, and clear empties it", function()
    local r = st:reducing("max", math.max)
    r:add(3)
    r:add(1)
    cur.key = "b"
    assert.is_nil(r:get())
    r:add(7)
    cur.key = "a"
    assert.are.equal(3, r:get())
    r:clear()
    assert.is_nil(r:get())
    cur.key = "b"
    assert.are.equal(7, r:get())
  end)

  it("refuses nil values, a nil result and a missing function", function()
    local r = st:reducing("bad", function() return nil end)
    assert.truthy(error_of(r.add, r, nil):find("nil cannot be added", 1, true))
    r:add(1)
    assert.truthy(error_of(r.add, r, 2):find("returned nil", 1, true))
    assert.truthy(error_of(st.reducing, st, "nofn", 42):find("bad argument #2 to 'reducing'", 1, true))
  end)
end)

describe("tide.state AggregatingState #unit", function()
  local cur, st, creates
  local avg
  before_each(function()
    cur = { key = "a" }
    st = state.new(cur)
    creates = 0
    avg = {
      create = function()
        creates = creates + 1
        return { sum = 0, n = 0 }
      end,
      add = function(acc, v)
        acc.sum = acc.sum + v
        acc.n = acc.n + 1
        return acc
      end,
      result = function(acc) return acc.sum / acc.n end,
    }
  end)

  it("creates an accumulator on the first add and gives result() of it", function()
    local a = st:aggregating("avg", avg)
    assert.is_nil(a:get())
    a:add(2)
    a:add(4)
    a:add(9)
    assert.are.equal(5.0, a:get())
    assert.are.equal(1, creates)
  end)

  it("keeps one accumulator per key, and clear empties it", function()
    local a = st:aggregating("avg", avg)
    a:add(1)
    cur.key = "b"
    assert.is_nil(a:get())
    a:add(10)
    a:add(20)
    assert.are.equal(15.0, a:get())
    cur.key = "a"
    assert.are.equal(1.0, a:get())
    assert.are.equal(2, creates)
    a:clear()
    assert.is_nil(a:get())
    a:add(4)
    assert.are.equal(4.0, a:get())
    assert.are.equal(3, creates)
  end)

  it("refuses an incomplete aggregate function table and nil values", function()
    local err = error_of(st.aggregating, st, "x", { create = avg.create, add = avg.add })
    assert.truthy(err:find("bad argument #2 to 'aggregating'", 1, true), err)
    local a = st:aggregating("avg", avg)
    assert.truthy(error_of(a.add, a, nil):find("nil cannot be added", 1, true))
  end)
end)

describe("tide.state registration #unit", function()
  local cur, st
  before_each(function()
    cur = { key = "a" }
    st = state.new(cur)
  end)

  it("returns the same handle for the same name", function()
    assert.are.equal(st:value("v"), st:value("v"))
    assert.are.equal(st:list("l"), st:list("l"))
    assert.are.equal(st:map("m"), st:map("m"))
    local f = function(a, b) return a + b end
    assert.are.equal(st:reducing("r", f), st:reducing("r", f))
    assert.are_not.equal(st:value("v"), st:value("w"))
  end)

  it("refuses one name registered as two kinds", function()
    st:value("n")
    local err = error_of(st.list, st, "n")
    assert.truthy(err:find("state 'n' is already registered as value state, not list state", 1, true), err)
    assert.truthy(error_of(st.map, st, "n"):find("already registered", 1, true))
    st:map("mm")
    assert.truthy(error_of(st.value, st, "mm"):find("as map state, not value state", 1, true))
  end)

  it("refuses a name that is not a string", function()
    local err = error_of(st.value, st, 42)
    assert.truthy(err:find("bad argument #1 to 'value' (state name expected, got number)", 1, true), err)
  end)

  it("names the declaring line in its errors, for every kind", function()
    st:value("n")
    local f = function(a) return a end
    local SUM = { create = function() return 0 end, add = f, result = f }
    for _, c in ipairs {
      { "list", { "n" }, "state 'n' is already registered as value state, not list state" },
      { "value", { "x", { ttl = 5 } }, "bad argument to 'value' (ttl:" },
      { "map", { 42 }, "bad argument #1 to 'map'" },
      { "reducing", { "x", 1 }, "bad argument #2 to 'reducing'" },
      { "aggregating", { "n", SUM }, "already registered as value state, not aggregating state" },
    } do
      local line
      local err = error_of(function()
        line = debug.getinfo(1, "l").currentline + 1
        local h = st[c[1]](st, (table.unpack or unpack)(c[2]))
        return h
      end)
      assert.truthy(err:find(c[3], 1, true), err)
      assert.truthy(err:find("state_spec.lua:" .. line .. ": ", 1, true), err)
    end
  end)

  it("is unavailable on a non-keyed stream", function()
    for _, kind in ipairs { "value", "list", "map", "reducing", "aggregating" } do
      local err = error_of(function() return state.unkeyed[kind](state.unkeyed, "n") end)
      assert.truthy(err:find("only available on a keyed stream", 1, true), kind .. ": " .. err)
      assert.truthy(err:find("'" .. kind .. "'", 1, true), kind .. ": " .. err)
    end
  end)
end)

describe("tide.state backend: key groups, snapshots, rescaling #unit", function()
  local core = require "tide.core"

  it("gives each subtask Flink's key-group range", function()
    -- hand-computed from Flink's KeyGroupRangeAssignment:
    -- start = ceil(i * maxp / p), end = floor(((i + 1) * maxp - 1) / p)
    local want = {
      [128] = { [3] = { { 0, 42 }, { 43, 85 }, { 86, 127 } } },
      [10] = { [4] = { { 0, 2 }, { 3, 4 }, { 5, 7 }, { 8, 9 } } },
    }
    for maxp, by_p in pairs(want) do
      for p, ranges in pairs(by_p) do
        for i, r in ipairs(ranges) do
          assert.are.same(r, { state.key_group_range(maxp, p, i - 1) })
        end
      end
    end
    -- and every key group of subtask i's range is routed to subtask i
    -- (DESIGN.md: subtask = kg * parallelism / max_parallelism)
    for _, maxp in ipairs { 1, 7, 128, 1000 } do
      for p = 1, math.min(maxp, 9) do
        local seen = 0
        for i = 0, p - 1 do
          local first, last = state.key_group_range(maxp, p, i)
          for kg = first, last do
            assert.are.equal(i, math.floor(kg * p / maxp))
            seen = seen + 1
          end
        end
        assert.are.equal(maxp, seen)
      end
    end
  end)

  local function fill(b)
    local s = b:state("n", "value")
    local keys = {}
    for i = 1, 300 do keys[#keys + 1] = i end
    for i = 1, 300 do keys[#keys + 1] = "k" .. i end
    for i = 1, 50 do keys[#keys + 1] = { "t", i } end
    for i, k in ipairs(keys) do s.t[b:key(k)] = i end
    return keys
  end

  it("writes every entry under the key group routing gives its key", function()
    local b = state.backend(128)
    local keys = fill(b)
    local snap = core.decode(core.encode(b:snapshot()))
    assert.are.equal(128, snap.max_parallelism)
    local n = 0
    for kg, g in pairs(snap.states.n.groups) do
      assert.are.equal(0, #g % 2)
      for j = 1, #g, 2 do
        assert.are.equal(kg, core.key_group(g[j], 128))
        n = n + 1
      end
    end
    assert.are.equal(#keys, n)
  end)

  it("restores at another parallelism: each subtask exactly the keys of its key groups", function()
    local old = { state.backend(128, 2, 0), state.backend(128, 2, 1) }
    -- the keys split over two old subtasks as routing would split them
    local keys = fill(state.backend(128))
    for i, k in ipairs(keys) do
      local sub = math.floor(core.key_group(k, 128) * 2 / 128)
      local b = old[sub + 1]
      b:state("n", "value").t[b:key(k)] = i
    end
    local snaps = {}
    for i, b in ipairs(old) do snaps[i] = core.decode(core.encode(b:snapshot())) end
    for _, p in ipairs { 1, 3, 4 } do
      local got = {}
      for i = 0, p - 1 do
        local b = state.backend(128, p, i)
        b:restore(snaps)
        for k, v in pairs(b:state("n", "value").t) do
          local want = math.floor(core.key_group(k, 128) * p / 128)
          assert.are.equal(want, i, "key " .. tostring(k) .. " restored at subtask " .. i .. " of " .. p)
          local id = type(k) == "table" and core.encode(k, true) or k
          assert.is_nil(got[id], "key restored twice")
          got[id] = v
        end
      end
      for i, k in ipairs(keys) do
        local id = type(k) == "table" and core.encode(k, true) or k
        assert.are.equal(i, got[id], "key " .. tostring(k) .. " at p=" .. p)
      end
    end
  end)

  it("keeps a table key apart from a string equal to its encoding", function()
    local b = state.backend()
    local t = b:state("n", "value").t
    t[b:key({ 1, 2 })] = "table"
    t[b:key(core.encode({ 1, 2 }, true))] = "string"
    assert.are.equal("table", t[b:key({ 1, 2 })])
    assert.are.equal("string", t[b:key(core.encode({ 1, 2 }, true))])
    -- one interned copy per value, not the caller's table
    local k = { 1, 2 }
    assert.are.equal(b:key({ 1, 2 }), b:key(k))
    assert.are_not.equal(k, b:key(k))
  end)

  it("fills a table sized for restored key groups with every pair, table keys left to the caller", function()
    -- dense integers (array part), 0, negatives, sparse large ones, floats,
    -- strings, booleans and table keys, spread over three "key groups"
    local groups, want = { {}, {}, {} }, {}
    local n = 0
    local function add(k, v)
      n = n + 1
      local g = groups[n % 3 + 1]
      g[#g + 1], g[#g + 2] = k, v
      if type(k) ~= "table" then want[k] = v end
    end
    for i = 1, 5000 do add(i, i * 2) end
    for _, k in ipairs { 0, -1, -7, 2 ^ 40, 123456789, 1.5, "a", "b", true, false } do add(k, tostring(k)) end
    add({ "t", 1 }, "table 1")
    add({ "t", 2 }, { nested = true })
    local t = core.table_for_pairs(groups)
    assert.is_nil(next(t))
    local left = {}
    for gi, g in ipairs(groups) do
      local tables = core.fill_pairs(t, g)
      for _, j in ipairs(tables or {}) do left[#left + 1] = { g[j], g[j + 1], gi } end
    end
    local got = 0
    for k, v in pairs(t) do
      assert.are.same(want[k], v, "key " .. tostring(k))
      got = got + 1
    end
    assert.are.equal(5010, got)
    -- the two table-keyed pairs, as the caller must handle them
    table.sort(left, function(a, b) return a[1][2] < b[1][2] end)
    assert.are.same({ { { "t", 1 }, "table 1", 2 }, { { "t", 2 }, { nested = true }, 3 } }, left)
    -- the table grows on as any table does
    for i = 5001, 20000 do t[i] = i end
    for i = 1, 20000 do assert.are.equal(i <= 5000 and i * 2 or i, t[i]) end
    -- no pairs: an empty table; a bad argument is an error
    assert.is_nil(next(core.table_for_pairs({})))
    assert.is_false(pcall(core.table_for_pairs, { 1 }))
  end)

  it("restores into state tables made for the restored key groups (as the runtime does)", function()
    local old = state.backend(128)
    local keys = fill(old)
    local snap = core.decode(core.encode(old:snapshot()))
    for _, p in ipairs { 1, 3 } do
      local got = {}
      for i = 0, p - 1 do
        local rt = { max_parallelism = 128, parallelism = p, subtask = i,
          restored_groups = function(uid, first, last)
            assert.are.equal("op", uid)
            return state.restored_groups({ { op = { keyed = snap } } }, first, last)
          end }
        local b = state.operator_backend(rt, "op")
        b:restore({ snap })
        local t = b:state("n", "value").t
        for k, v in pairs(t) do
          local id = type(k) == "table" and core.encode(k, true) or k
          assert.is_nil(got[id], "key restored twice")
          got[id] = v
        end
        -- a table key is the interned copy: an equal table finds it
        for j, k in ipairs(keys) do
          if type(k) == "table" and math.floor(core.key_group(k, 128) * p / 128) == i then
            assert.are.equal(j, t[b:key({ k[1], k[2] })])
          end
        end
      end
      for j, k in ipairs(keys) do
        local id = type(k) == "table" and core.encode(k, true) or k
        assert.are.equal(j, got[id], "key " .. tostring(k) .. " at p=" .. p)
      end
    end
  end)

  it("refuses a snapshot of another max parallelism", function()
    local b = state.backend(64)
    fill(b)
    local snap = core.decode(core.encode(b:snapshot()))
    local err = error_of(state.backend(128).restore, state.backend(128), { snap })
    assert.truthy(err:find("max parallelism 64 at max parallelism 128", 1, true), err)
  end)
end)

describe("tide.state TTL (Flink's StateTtlConfig) #unit", function()
  local core = require "tide.core"
  local cur, now, st
  local function clock() return now end
  before_each(function()
    cur, now = { key = "a" }, 0
    st = state.new(cur, state.backend(128, 1, 0, clock))
  end)
  local function ttl(update, visibility) return { ttl = { time = 100, update = update, visibility = visibility } } end

  it("value: written values expire ttl ms after the write (on_create_and_write)", function()
    local v = st:value("v", ttl())
    v:update("x")
    now = 60
    assert.are.equal("x", v:value()) -- a read does not refresh
    now = 99
    assert.are.equal("x", v:value())
    now = 100
    assert.is_nil(v:value())
    v:update("y")
    now = 199
    assert.are.equal("y", v:value())
  end)

  it("value: on_read_and_write refreshes on every read", function()
    local v = st:value("v", ttl("on_read_and_write"))
    v:update("x")
    now = 60
    assert.are.equal("x", v:value())
    now = 159
    assert.are.equal("x", v:value())
    now = 259
    assert.is_nil(v:value())
  end)

  it("value: return_expired_if_not_cleaned returns an expired value once, then it is gone", function()
    local v = st:value("v", ttl(nil, "return_expired_if_not_cleaned"))
    v:update("x")
    now = 150
    assert.are.equal("x", v:value())
    assert.is_nil(v:value())
  end)

  it("list: each element expires on its own", function()
    local l = st:list("l", ttl())
    l:add("a")
    now = 50
    l:add_all { "b", "c" }
    assert.are.same({ "a", "b", "c" }, l:get())
    now = 100
    assert.are.same({ "b", "c" }, l:get())
    now = 150
    assert.are.same({}, l:get())
    l:update { "d" }
    assert.are.same({ "d" }, l:get())
  end)

  it("map: each entry expires on its own; iteration and contains skip expired entries", function()
    local m = st:map("m", ttl())
    m:put("x", 1)
    now = 50
    m:put("y", 2)
    now = 120
    assert.is_nil(m:get("x"))
    assert.is_false(m:contains("x"))
    assert.is_true(m:contains("y"))
    local keys = {}
    for k in m:keys() do keys[#keys + 1] = k end
    assert.are.same({ "y" }, keys)
    now = 150
    assert.is_true(m:is_empty())
  end)

  it("reducing and aggregating: the accumulator expires ttl after its last add; then a new one starts", function()
    local r = st:reducing("r", function(a, b) return a + b end, ttl())
    local a = st:aggregating("g", { create = function() return { n = 0 } end,
      add = function(acc, v) acc.n = acc.n + v return acc end, result = function(acc) return acc.n end }, ttl())
    r:add(1)
    a:add(1)
    now = 50
    r:add(2)
    a:add(2)
    now = 149
    assert.are.equal(3, r:get())
    assert.are.equal(3, a:get())
    now = 150
    assert.is_nil(r:get())
    assert.is_nil(a:get())
    r:add(5)
    a:add(5)
    assert.are.equal(5, r:get())
    assert.are.equal(5, a:get())
  end)

  it("leaves expired values out of full snapshots, and restores the rest with their times", function()
    local b = state.backend(128, 1, 0, clock)
    local s2 = state.new(cur, b)
    local v = s2:value("v", ttl())
    for i, k in ipairs { "a", "b", "c" } do
      cur.key = k
      now = i * 40 -- written at 40, 80, 120
      v:update(k)
    end
    now = 170 -- "a" (40) expired, "b" (80) and "c" (120) live
    local snap = core.decode(core.encode(b:snapshot()))
    local keys = {}
    for _, g in pairs(snap.states.v.groups) do
      for j = 1, #g, 2 do keys[#keys + 1] = g[j] end
    end
    table.sort(keys)
    assert.are.same({ "b", "c" }, keys)
    local b2 = state.backend(128, 1, 0, clock)
    b2:restore({ snap })
    local s3 = state.new(cur, b2)
    local v3 = s3:value("v", ttl())
    cur.key = "b"
    now = 179
    assert.are.equal("b", v3:value())
    now = 180
    assert.is_nil(v3:value())
    cur.key = "c"
    assert.are.equal("c", v3:value())
  end)

  it("refuses to enable or disable a TTL on existing state, and bad TTL options", function()
    local b = state.backend(128, 1, 0, clock)
    state.new(cur, b):value("v", ttl()):update(1)
    local snap = core.decode(core.encode(b:snapshot()))
    local b2 = state.backend(128, 1, 0, clock)
    b2:restore({ snap })
    local err = error_of(state.new(cur, b2).value, state.new(cur, b2), "v")
    assert.truthy(err:find("state 'v' has a TTL and is registered without one", 1, true), err)
    local plain = st:value("p")
    assert.truthy(plain)
    err = error_of(st.value, st, "p", ttl())
    assert.truthy(err:find("state 'p' has no TTL and is registered with one", 1, true), err)
    for _, bad in ipairs {
      { { ttl = { time = 0 } }, "ttl.time: a positive duration expected" },
      { { ttl = { time = "1x" } }, "ttl.time: a positive duration expected" },
      { { ttl = { time = 10, update = "never" } }, "ttl.update: 'on_create_and_write' or 'on_read_and_write' expected" },
      { { ttl = { time = 10, visibility = "x" } }, "ttl.visibility:" },
      { { ttl = { time = 10, cleanup = 1 } }, "unknown ttl option 'cleanup'" },
      { { ttl = 5 }, "ttl: table {time =, update =, visibility =} expected" },
      { { tll = {} }, "unknown option 'tll'" },
    } do
      err = error_of(st.value, st, "x", bad[1])
      assert.truthy(err:find(bad[2], 1, true), err)
    end
  end)
end)
