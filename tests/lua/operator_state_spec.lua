-- tide.operator_state: operator state of process functions (Flink's
-- OperatorStateStore with a CheckpointedFunction), driven through the test
-- harness with several old and new subtasks. Expected slices are computed
-- by hand from Flink's RoundRobinOperatorStateRepartitioner: at a new
-- parallelism, list state is concatenated in old subtask order and cut
-- into contiguous slices, the first n % p subtasks visited taking one extra
-- element, the visit starting, for the next state name (in sorted order),
-- at the first subtask that took no extra; union state goes whole to every
-- subtask; new subtask i gets old subtask (i % old parallelism)'s broadcast
-- state. At an unchanged parallelism, list and broadcast state stay where
-- they were.
local testing = require "tide.testing"
local operator_state = require "tide.operator_state"

local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

local function contains(s, sub)
  assert.is_truthy(s:find(sub, 1, true), "'" .. s .. "' does not contain '" .. sub .. "'")
end

-- A process function driven by command records:
--   {add = name, v = x}             list state name: add x
--   {union = name, v = x}           union list state name: add x
--   {put = name, k = k, v = x}      broadcast state name: put k, x
--   {get = name, kind = "list"|"union"|"broadcast"}  emits the list, or
--                                   the broadcast entries as {k, v} pairs
local GETTERS = { list = "get_list_state", union = "get_union_list_state", broadcast = "get_broadcast_state" }

local function commands(s)
  return s:process{
    on_record = function(r, ctx, out)
      local os = ctx.operator_state
      if r.add then
        os:get_list_state(r.add):add(r.v)
      elseif r.union then
        os:get_union_list_state(r.union):add(r.v)
      elseif r.put then
        os:get_broadcast_state(r.put):put(r.k, r.v)
      elseif r.get then
        local st = os[GETTERS[r.kind]](os, r.get)
        if r.kind == "broadcast" then
          local pairs_ = {}
          for k, v in st:entries() do pairs_[#pairs_ + 1] = { k, v } end
          out:collect(pairs_)
        else
          out:collect(st:get())
        end
      end
    end,
  }
end

-- Run one harness per old subtask, feeding records[i] to subtask i-1, and
-- return their snapshots in subtask order.
local function old_subtasks(build, records)
  local snaps = {}
  for i, list in ipairs(records) do
    local h = testing.harness(build, { subtask = i - 1, parallelism = #records })
    for _, r in ipairs(list) do h:process(r) end
    snaps[i] = h:snapshot()
  end
  return snaps
end

-- What new subtask i of p restored from snaps has in state `name`.
local function restored(build, snaps, i, p, name, kind)
  local h = testing.harness(build, { restore = snaps, subtask = i, parallelism = p })
  h:process({ get = name, kind = kind })
  return h:output()[1].value
end

local function adds(name, ...)
  local l = {}
  for i, v in ipairs { ... } do l[i] = { [name] = name, v = v } end
  return l
end

describe("operator list state #unit", function()
  it("add, get (a copy, in order), update (a copy), clear", function()
    local got
    local h = testing.harness(function(s)
      return s:process(function(v, ctx)
        local l = ctx.operator_state:get_list_state("l")
        assert.are.equal(l, ctx.operator_state:get_list_state("l")) -- one handle per name
        if v == "run" then
          l:add("a")
          l:add({ n = 1 })
          local first = l:get()
          first[1] = "changed"            -- the copy, not the state
          first[3] = "extra"
          got = { first = l:get() }
          local arr = { "x", "y" }
          l:update(arr)
          arr[1] = "z"                    -- update copied arr
          got.updated = l:get()
          l:clear()
          got.cleared = l:get()
          l:add(true)
          got.last = l:get()
        end
      end)
    end)
    h:process("run")
    assert.are.same({
      first = { "a", { n = 1 } },
      updated = { "x", "y" },
      cleared = {},
      last = { true },
    }, got)
  end)

  it("round-trips through snapshot and restore at parallelism 1", function()
    local snaps = old_subtasks(commands, { adds("add", "a", "b", 3, { x = 1 }) })
    assert.are.same({ "a", "b", 3, { x = 1 } }, restored(commands, snaps[1], 0, 1, "add", "list"))
    -- the same through the one-element array form
    assert.are.same({ "a", "b", 3, { x = 1 } }, restored(commands, snaps, 0, 1, "add", "list"))
  end)

  it("stays on its subtask when the parallelism does not change (2 -> 2)", function()
    local snaps = old_subtasks(commands, { adds("add", 1, 2, 3, 4, 5), adds("add", 6) })
    assert.are.same({ 1, 2, 3, 4, 5 }, restored(commands, snaps, 0, 2, "add", "list"))
    assert.are.same({ 6 }, restored(commands, snaps, 1, 2, "add", "list"))
  end)

  it("splits evenly from 2 to 3 subtasks, extras rotating between state names", function()
    -- "add": {a b c} + {d e} = a b c d e, 5 over 3: base 1, 2 extras, visit
    -- from subtask 0: 0 gets a b, 1 gets c d, 2 gets e; the next name's
    -- visit starts at subtask 2 (the first with no extra).
    -- "z": {1} + {2 3 4 5} = 1 2 3 4 5, visit 2, 0, 1:
    -- 2 gets 1 2, 0 gets 3 4, 1 gets 5.
    local old0, old1 = adds("add", "a", "b", "c"), adds("add", "d", "e")
    old0[#old0 + 1] = { add = "z", v = 1 }
    for _, v in ipairs { 2, 3, 4, 5 } do old1[#old1 + 1] = { add = "z", v = v } end
    local snaps = old_subtasks(commands, { old0, old1 })
    local want = {
      add = { { "a", "b" }, { "c", "d" }, { "e" } },
      z = { { 3, 4 }, { 5 }, { 1, 2 } },
    }
    for _, name in ipairs { "add", "z" } do
      for i = 0, 2 do
        assert.are.same(want[name][i + 1], restored(commands, snaps, i, 3, name, "list"), name .. " subtask " .. i)
      end
    end
  end)

  it("splits evenly from 3 to 2 subtasks", function()
    -- {a} + {b c} + {d e f g} = a..g, 7 over 2: base 3, one extra to subtask 0
    local snaps = old_subtasks(commands, { adds("add", "a"), adds("add", "b", "c"), adds("add", "d", "e", "f", "g") })
    assert.are.same({ "a", "b", "c", "d" }, restored(commands, snaps, 0, 2, "add", "list"))
    assert.are.same({ "e", "f", "g" }, restored(commands, snaps, 1, 2, "add", "list"))
  end)

  it("gives empty lists when there are fewer elements than subtasks (2 -> 3)", function()
    -- {x} + {} = x: 1 over 3: subtask 0 gets it, 1 and 2 get nothing
    local snaps = old_subtasks(commands, { adds("add", "x"), {} })
    assert.are.same({ "x" }, restored(commands, snaps, 0, 3, "add", "list"))
    assert.are.same({}, restored(commands, snaps, 1, 3, "add", "list"))
    assert.are.same({}, restored(commands, snaps, 2, 3, "add", "list"))
  end)
end)

describe("operator union list state #unit", function()
  it("gives every new subtask every old subtask's elements, in subtask order (2 -> 3, 2 -> 2, 3 -> 1)", function()
    local snaps = old_subtasks(commands, { adds("union", "a", "b"), adds("union", "c") })
    for i = 0, 2 do
      assert.are.same({ "a", "b", "c" }, restored(commands, snaps, i, 3, "union", "union"))
    end
    for i = 0, 1 do
      assert.are.same({ "a", "b", "c" }, restored(commands, snaps, i, 2, "union", "union"))
    end
    snaps = old_subtasks(commands, { adds("union", 1), {}, adds("union", 2, 3) })
    assert.are.same({ 1, 2, 3 }, restored(commands, snaps, 0, 1, "union", "union"))
  end)
end)

describe("operator broadcast state #unit", function()
  it("get, put, remove, contains, entries in key order, clear", function()
    local got = {}
    local h = testing.harness(function(s)
      return s:process(function(_, ctx)
        local b = ctx.operator_state:get_broadcast_state("rules")
        b:put("b", 2)
        b:put("a", { limit = 1 })
        b:put(10, "ten")
        b:put(2, "two")
        b:put(true, "yes")
        got.a = b:get("a")
        got.missing = b:get("nope")
        got.has_b, got.has_c = b:contains("b"), b:contains("c")
        b:remove("b")
        got.has_b_after = b:contains("b")
        b:put(2, nil) -- put nil removes
        got.entries = {}
        for k, v in b:entries() do got.entries[#got.entries + 1] = { k, v } end
        b:clear()
        got.after_clear = b:contains("a")
      end)
    end)
    h:process(1)
    assert.are.same({
      a = { limit = 1 },
      has_b = true, has_c = false, has_b_after = false,
      -- booleans, then numbers, then strings
      entries = { { true, "yes" }, { 10, "ten" }, { "a", { limit = 1 } } },
      after_clear = false,
    }, got)
  end)

  it("new subtask i gets old subtask (i % old parallelism)'s copy (3 -> 2, 2 -> 3, 2 -> 2)", function()
    local function puts(v) return { { put = "b", k = "who", v = v }, { put = "b", k = "same", v = 1 } } end
    local who = function(snaps, i, p)
      local e = restored(commands, snaps, i, p, "b", "broadcast")
      return { e[1][2], e[2][2] } -- "same", then "who"
    end
    local snaps3 = old_subtasks(commands, { puts("old0"), puts("old1"), puts("old2") })
    assert.are.same({ 1, "old0" }, who(snaps3, 0, 2))
    assert.are.same({ 1, "old1" }, who(snaps3, 1, 2))
    local snaps2 = old_subtasks(commands, { puts("old0"), puts("old1") })
    assert.are.same({ 1, "old0" }, who(snaps2, 0, 3))
    assert.are.same({ 1, "old1" }, who(snaps2, 1, 3))
    assert.are.same({ 1, "old0" }, who(snaps2, 2, 3))
    assert.are.same({ 1, "old1" }, who(snaps2, 1, 2))
  end)
end)

describe("process open hook and is_restored #unit", function()
  local function build(calls)
    return function(s)
      return s:process{
        open = function(ctx)
          local l = ctx.operator_state:get_list_state("seen")
          calls[#calls + 1] = string.format("open %d/%d restored=%s seen=%s", ctx.subtask, ctx.parallelism,
            tostring(ctx.is_restored), table.concat(l:get(), ","))
        end,
        on_record = function(v, ctx)
          calls[#calls + 1] = "rec " .. v
          ctx.operator_state:get_list_state("seen"):add(v)
        end,
      }
    end
  end

  it("runs once per subtask, before the first record, after restore", function()
    local calls = {}
    local h = testing.harness(build(calls))
    h:process("a")
    h:process("b")
    h:finish()
    local snap = h:snapshot()
    local h2 = testing.harness(build(calls), { restore = { snap, snap }, subtask = 1, parallelism = 3 })
    h2:process("c")
    -- restored: {a b} + {a b} = a b a b, 4 over 3: 0 gets a b, 1 gets a, 2 gets b
    assert.are.same({ "open 0/1 restored=false seen=", "rec a", "rec b",
      "open 1/3 restored=true seen=a", "rec c" }, calls)
  end)

  it("runs before the first record of an operator built without the harness's open call", function()
    -- op.open is also called lazily (a runtime that does not call it)
    local operators = require "tide.operators"
    local calls = {}
    local env = require("tide").env { parallelism = 1 }
    build(calls)(env:from_list { 1 })
    local node = env.nodes[#env.nodes]
    node.uid = "p"
    local op = operators.ops.process(node, { push = function() end, watermark = function() end,
      side = function() return function() end end }, { subtask = 0, parallelism = 1, now = function() return 0 end })
    op.restore(nil, { { operator_state = { seen = { kind = "list", list = { "r" } } } } })
    assert.are.same({}, calls)
    op.push({ "x" }, nil, 1)
    op.push({ "y" }, nil, 1)
    assert.are.same({ "open 0/1 restored=true seen=r", "rec x", "rec y" }, calls)
  end)

  it("keyed process functions have operator state too, restored with their keyed state", function()
    local function keyed(s)
      return s:key_by("k"):process(function(v, ctx, out)
        local n = ctx.state:value("n")
        n:update((n:value() or 0) + 1)
        local l = ctx.operator_state:get_list_state("all")
        if v.x then l:add(v.x) end
        out:collect(v.k .. n:value() .. ":" .. table.concat(l:get(), ","))
      end)
    end
    local h = testing.harness(keyed)
    h:process({ k = "a", x = 1 })
    h:process({ k = "b", x = 2 })
    local h2 = testing.harness(keyed, { restore = h:snapshot() })
    h2:process({ k = "a" })
    assert.are.same("a2:1,2", h2:output()[1].value)
  end)
end)

describe("operator state errors #unit", function()
  local function run(fn)
    local h = testing.harness(function(s) return s:process(fn) end)
    return error_of(function() h:process(1) end)
  end

  it("a state name that is not a string names the operator", function()
    local err = run(function(_, ctx) ctx.operator_state:get_list_state(42) end)
    contains(err, "bad argument #1 to 'get_list_state' (state name expected, got number)")
    contains(err, "operator 'process-2' (process, defined at ")
    -- the position is the caller's line in this file
    assert.is_truthy(err:find("operator_state_spec%.lua:%d+: bad argument #1 to 'get_list_state'"), err)
    err = run(function(_, ctx) ctx.operator_state:get_broadcast_state(nil) end)
    contains(err, "bad argument #1 to 'get_broadcast_state' (state name expected, got nil)")
  end)

  it("a name reused with another kind", function()
    local err = run(function(_, ctx)
      ctx.operator_state:get_list_state("x")
      ctx.operator_state:get_broadcast_state("x")
    end)
    contains(err, "operator state 'x' is already registered as list state, not broadcast state (operator 'process-2'")
    err = run(function(_, ctx)
      ctx.operator_state:get_union_list_state("x")
      ctx.operator_state:get_list_state("x")
    end)
    contains(err, "operator state 'x' is already registered as union list state, not list state")
  end)

  it("a name restored as another kind", function()
    local snaps = old_subtasks(commands, { adds("union", "a") })
    local h = testing.harness(commands, { restore = snaps })
    local err = error_of(function() h:process({ get = "union", kind = "list" }) end)
    contains(err, "operator state 'union' is restored as union list state, not list state (operator 'process-2'")
  end)

  it("nil and functions cannot be kept; broadcast keys are strings, numbers or booleans", function()
    contains(run(function(_, ctx) ctx.operator_state:get_list_state("l"):add(nil) end),
      "add: nil cannot be added to operator state")
    contains(run(function(_, ctx) ctx.operator_state:get_list_state("l"):add(print) end),
      "add: a function cannot be kept in operator state (plain data expected)")
    contains(run(function(_, ctx) ctx.operator_state:get_list_state("l"):update("x") end),
      "bad argument #1 to 'update' (array expected, got string)")
    contains(run(function(_, ctx) ctx.operator_state:get_broadcast_state("b"):put({}, 1) end),
      "bad argument #1 to 'put' (broadcast state key must be a string, number or boolean, got table)")
  end)

  it("harness options are checked", function()
    contains(error_of(testing.harness, commands, { subtask = 2, parallelism = 2 }),
      "(subtask: integer in [0, parallelism) expected)")
    contains(error_of(testing.harness, commands, { parallelism = 0 }),
      "(parallelism: positive integer expected)")
    contains(error_of(testing.harness, commands, { restore = {} }),
      "(restore: a snapshot or a non-empty array of snapshots expected)")
  end)
end)

describe("operator_state.redistribute and split_slice #unit", function()
  it("split_slice follows Flink's round robin: slices, and where the next name starts", function()
    -- 5 over 3 from 0: {1,2} {3,4} {5}, next start 2
    assert.are.same({ 1, 2, 2 }, { operator_state.split_slice(5, 3, 0, 0) })
    assert.are.same({ 3, 4, 2 }, { operator_state.split_slice(5, 3, 0, 1) })
    assert.are.same({ 5, 5, 2 }, { operator_state.split_slice(5, 3, 0, 2) })
    -- 6 over 3 from 1: no extras, start stays 1; subtask 1 first
    assert.are.same({ 1, 2, 1 }, { operator_state.split_slice(6, 3, 1, 1) })
    assert.are.same({ 5, 6, 1 }, { operator_state.split_slice(6, 3, 1, 0) })
    -- 4 over 3 from 2: 2 takes 2 elements, 0 and 1 one each; next start 0
    assert.are.same({ 1, 2, 0 }, { operator_state.split_slice(4, 3, 2, 2) })
    assert.are.same({ 3, 3, 0 }, { operator_state.split_slice(4, 3, 2, 0) })
    assert.are.same({ 4, 4, 0 }, { operator_state.split_slice(4, 3, 2, 1) })
  end)

  it("copies what it takes: restored state shares no table with the snapshots", function()
    local v = { n = 1 }
    local all = {
      { u = { kind = "union_list", list = { v } }, b = { kind = "broadcast", map = { k = v } } },
      false,
    }
    local got = operator_state.redistribute(all, 0, 3, "test")
    assert.are.same({ n = 1 }, got.u.list[1])
    assert.is_false(rawequal(v, got.u.list[1]))
    assert.are.same({ k = { n = 1 } }, got.b.map)
    assert.is_false(rawequal(v, got.b.map.k))
    -- new subtask 1 takes old subtask 1's broadcast state (1 % 2): it had none
    assert.are.same({}, operator_state.redistribute(all, 1, 3, "test").b.map)
  end)

  it("restores its own snapshot as is when all is nil", function()
    local s = operator_state.new("test")
    s:restore({ l = { kind = "list", list = { 1, 2 } } }, nil, 2, 3)
    assert.are.same({ 1, 2 }, s:get_list_state("l"):get())
    assert.are.same({ l = { kind = "list", list = { 1, 2 } } }, s:snapshot())
  end)

  it("refuses snapshots that disagree on a state's kind", function()
    local err = error_of(operator_state.redistribute, {
      { x = { kind = "list", list = {} } }, { x = { kind = "broadcast", map = {} } },
    }, 0, 1, "operator 'p'")
    contains(err, "operator state 'x' is list state in one snapshot and broadcast state in another (operator 'p')")
  end)
end)
