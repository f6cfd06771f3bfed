-- A few small jobs run through the tide binary ($TIDE, default build/tide):
-- exact outputs, keyed routing, keyed state, integers across an exchange
-- and a UDF failure. The large end-to-end suite is tests/e2e. Under
-- LuaJIT, $TIDE is the LuaJIT host (build/tide-luajit) and the jobs run
-- there.
local core = require "tide.core"
local compat = require "tide.compat"
local JIT = compat.luajit

local TIDE = os.getenv("TIDE") or "build/tide"

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local scripts = {}

-- Write a job script to a temporary file and return its path.
local function job_file(src)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write('local tide = require "tide"\n', src)
  f:close()
  scripts[#scripts + 1] = path
  return path
end

-- Run a job script; returns its stdout (and stderr when merged), the exit
-- code and the script's path.
local function run(src, opts)
  opts = opts or {}
  local path = job_file(src)
  local cmd = shell_quote(TIDE) .. " run " .. shell_quote(path) .. " " .. (opts.flags or "")
  cmd = cmd .. (opts.stderr and " 2>&1" or " 2>/dev/null")
  -- the exit status comes as a last line: the close of io.popen tells it
  -- on Lua 5.4 only
  local p = assert(io.popen(cmd .. '; echo "exit $?"', "r"))
  local all = p:read("a")
  p:close()
  local out, code = all:match("^(.*)exit (%d+)\n$")
  code = tonumber(code)
  assert.is_true(code ~= nil and code < 128, "the tide process was killed by a signal")
  return out, code, path
end

local function lines(s)
  local t = {}
  for l in s:gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
end

-- "3> x" -> 3, "x"
local function split_prefix(l)
  local n, rest = l:match("^(%d+)> (.*)$")
  assert.truthy(n, "no subtask prefix in '" .. l .. "'")
  return tonumber(n), rest
end

describe("tide jobs #e2e", function()
  teardown(function()
    for _, p in ipairs(scripts) do os.remove(p) end
  end)

  it("runs map, filter and flat_map in order", function()
    local out, code = run [[
      local env = tide.env{}
      env:from_list{ "a b", "c", "", "d e f" }
        :flat_map(function(line, out) for w in line:gmatch("%S+") do out:collect(w) end end)
        :map(function(w) return w:upper() .. #w end)
        :filter(function(w) return w ~= "C1" end)
        :print()
      env:execute()
    ]]
    assert.are.equal(0, code, out)
    assert.are.equal("A1\nB1\nD1\nE1\nF1\n", out)
  end)

  it("reduces per key at parallelism 2, each key on its key group's subtask", function()
    local out, code = run [[
      local env = tide.env{ parallelism = 2 }
      local input = {}
      for i = 1, 20 do input[i] = { k = ({ "a", "b", "c", "d" })[i % 4 + 1], n = i } end
      env:from_list(input)
        :key_by("k")
        :reduce(function(acc, r) return { k = acc.k, n = acc.n + r.n } end)
        :map(function(r) return r.k .. "=" .. r.n end)
        :print()
      env:execute()
    ]]
    assert.are.equal(0, code, out)
    -- running sums per key, computed here from the same input
    local want, sums = {}, {}
    for i = 1, 20 do
      local k = ({ "a", "b", "c", "d" })[i % 4 + 1]
      sums[k] = (sums[k] or 0) + i
      want[#want + 1] = k .. "=" .. sums[k]
    end
    local got, per_key, subtask_of = {}, {}, {}
    local maxp = core.default_max_parallelism(2)
    for _, l in ipairs(lines(out)) do
      local sub, rec = split_prefix(l)
      got[#got + 1] = rec
      local k, n = rec:match("^(%a)=(%d+)$")
      per_key[k] = per_key[k] or {}
      table.insert(per_key[k], tonumber(n))
      subtask_of[k] = subtask_of[k] or sub
      assert.are.equal(subtask_of[k], sub, "key " .. k .. " printed by two subtasks")
    end
    table.sort(want)
    table.sort(got)
    assert.are.same(want, got)
    for k, ns in pairs(per_key) do -- a key's running sums arrive in order
      for i = 2, #ns do assert.is_true(ns[i] > ns[i - 1], k) end
      local kg = core.key_group(k, maxp)
      assert.are.equal(core.subtask_of_key_group(kg, 2, maxp) + 1, subtask_of[k], "subtask of key " .. k)
    end
  end)

  it("keeps a running count per key in ValueState", function()
    local out, code = run([[
      local env = tide.env{}
      env:from_list{ "x", "y", "x", "z", "x", "y" }
        :key_by(function(w) return w end)
        :process{ on_record = function(w, ctx, out)
          local count = ctx.state:value("count")
          local n = (count:value() or 0) + 1
          count:update(n)
          out:collect(ctx.key .. ":" .. n)
        end }
        :print()
      env:execute()
    ]], { flags = "--parallelism 2" })
    assert.are.equal(0, code, out)
    local by_key = {}
    for _, l in ipairs(lines(out)) do
      local _, rec = split_prefix(l)
      local k = rec:match("^(%a):")
      by_key[k] = (by_key[k] and by_key[k] .. " " or "") .. rec
    end
    assert.are.same({ x = "x:1 x:2 x:3", y = "y:1 y:2", z = "z:1" }, by_key)
  end)

  it("keeps integers integers and floats floats across an exchange", function()
    local out, code = run [[
      local compat = require "tide.compat"
      local math_type = compat.math_type
      local env = tide.env{ parallelism = 2 }
      env:from_list{ 1, 2.0, -7, compat.tointeger(2 ^ 53 - 1), compat.MAX_INT, 0.5, { n = 3, f = 3.0 } }
        :rebalance()
        :map(function(v)
          if type(v) == "table" then return "t " .. math_type(v.n) .. " " .. math_type(v.f) end
          return tostring(math_type(v)) .. " " .. tide.format(v)
        end)
        :print()
      env:execute()
    ]]
    assert.are.equal(0, code, out)
    local got, subtasks = {}, {}
    for _, l in ipairs(lines(out)) do
      local sub, rec = split_prefix(l)
      subtasks[sub] = true
      got[#got + 1] = rec
    end
    table.sort(got)
    local want = {
      "float 0.5", "integer -7", "integer 1", "integer 9007199254740991",
      -- docs/LUAJIT.md: LuaJIT has no float 2.0 apart from the integer 2,
      -- and its +inf timestamp is the double 2^63
      JIT and "integer 2" or "float 2.0",
      JIT and "float 9.223372036854776e+18" or "integer 9223372036854775807",
      JIT and "t integer integer" or "t integer float",
    }
    table.sort(want)
    assert.are.same(want, got)
    assert.are.same({ true, true }, subtasks) -- rebalance used both subtasks
  end)

  it("decodes batches of records that change shape as they were sent", function()
    -- the decoder's string cache (core/codec.c): keys and short strings
    -- shared by the records of a batch, in other places, nested, longer
    -- than the cache takes, alike but for one byte
    local out, code = run [[
      local function rec(i)
        local l31 = ("k"):rep(10) .. string.char(65 + i % 3) .. ("k"):rep(20)
        local shapes = {
          { id = i, name = "rec" },
          { name = i, id = "rec" },
          { id = { id = "id", name = { name = "id" } }, rec = "name" },
          { "id", "name", i },
          { [l31] = l31 .. "x", [l31 .. "y"] = l31, x = ("a\0b"):rep(i % 2 + 1) },
          { ["k" .. i % 97] = "v" .. i % 89, id = i, ["aXm" .. i % 2 .. "z"] = "" },
          -- alike but for the first, middle or last byte (of 250 or so
          -- values each: some fall in one cache slot)
          { v = string.char(i % 251) .. "bcd", w = "bc" .. string.char(i % 241) .. "de",
            u = "abcd" .. string.char(i % 239) },
        }
        return { i = i, r = shapes[i % #shapes + 1] }
      end
      local function deq(a, b)
        if type(a) ~= "table" or type(b) ~= "table" then return a == b end
        for k, v in pairs(a) do if not deq(v, b[k]) then return false end end
        for k in pairs(b) do if a[k] == nil then return false end end
        return true
      end
      local env = tide.env{ chaining = false, parallelism = 1 }
      env:generate(rec, 3000)
        :rebalance()
        :map(function(v) return { ok = deq(v, rec(v.i)), i = v.i } end)
        :rebalance()
        :filter(function(v) return not v.ok or v.i % 1000 == 0 end)
        :map(function(v) return (v.ok and "ok " or "bad ") .. v.i end)
        :print()
      env:execute()
    ]]
    assert.are.equal(0, code, out)
    assert.are.equal("ok 1000\nok 2000\nok 3000\n", out)
  end)

  -- A job whose map (uid "exploder") raises on its second record; the map
  -- is chained right after the source, or after a filter when `filter`.
  local function failing_job(filter)
    return run([[
      local env = tide.env{}
      local s = env:from_list{ 1, 2, 3 }
      ]] .. (filter and 's = s:filter(function() return true end):uid("pass")' or "") .. [[

      s:map(function(x)
          if x == 2 then error("boom on " .. x) end
          return x
        end):uid("exploder")
        :print()
      env:execute("failing")
    ]], { stderr = true })
  end

  it("fails with exit status 1 and the function's error when a function raises", function()
    local out, code, path = failing_job(false)
    assert.are.equal(1, code, out)
    -- after the line with the job id and control address
    assert.truthy(out:find("^tide: job %x+, control at [^\n]*\ntide: job 'failing' failed: "), out)
    assert.truthy(out:find(path .. ":6: boom on 2", 1, true), out)
  end)

  it("names the failing operator's uid and line (operator further down a chain)", function()
    local out, code, path = failing_job(true)
    assert.are.equal(1, code, out)
    assert.truthy(out:find("operator 'exploder' (map, defined at " .. path .. ":5)", 1, true), out)
  end)

  it("names the failing operator's uid and line (operator chained right after the source)", function()
    local out, code, path = failing_job(false)
    assert.are.equal(1, code, out)
    assert.truthy(out:find("operator 'exploder' (map, defined at " .. path .. ":5)", 1, true), out)
  end)

  -- map -> key_by -> sum in one chain: on LuaJIT the map is fused into the
  -- sum's loop (operators.lua, fuse_map); an error must still name the
  -- operator whose code raised, and the outputs stay the map's and sum's
  describe("a map chained into a keyed sum", function()
    local function job(bad)
      return run(string.format([[
        local env = tide.env{}
        env:generate(function(i) return i end, 30000)
          :map(function(i)
            if i == %d then error("boom on " .. i) end
            return { k = "k" .. (i %% 3), n = i == %d and "x" or 1 }
          end):uid("shaper")
          :key_by("k"):sum("n"):uid("total")
          :filter(function(r) return r.n %% 10000 == 0 end)
          :map(function(r) return r.k .. "=" .. r.n end):print()
        env:execute()
      ]], bad == "map" and 20000 or -1, bad == "sum" and 20001 or -1), { stderr = true })
    end
    it("gives the running sums", function()
      local out, code = job(nil)
      assert.are.equal(0, code, out)
      -- each key counts 10,000 records: its sum is 10000 once
      local got = {}
      for _, l in ipairs(lines(out)) do if l:match("^k%d=") then got[#got + 1] = l end end
      table.sort(got)
      assert.are.same({ "k0=10000", "k1=10000", "k2=10000" }, got)
    end)
    it("names the map when its function raises", function()
      local out, code, path = job("map")
      assert.are.equal(1, code, out)
      -- (the line of a call in a chain split over lines: Lua 5.4 gives
      -- the chain's first, LuaJIT the call's own)
      assert.truthy(out:find("operator 'shaper' (map, defined at " .. path .. ":", 1, true), out)
      assert.truthy(out:find("boom on 20000", 1, true), out)
    end)
    it("names the sum when a value is not a number", function()
      local out, code = job("sum")
      assert.are.equal(1, code, out)
      assert.truthy(out:find("operator 'total'", 1, true), out)
      assert.truthy(out:find("field 'n' is not a number (got string)", 1, true), out)
    end)
    it("names the sum when a value is not a number, before a sink (outputs reused)", function()
      local out, code = run([[
        local env = tide.env{}
        env:generate(function(i) return { k = "k" .. (i % 3), n = i == 20001 and "x" or 1 } end, 30000)
          :key_by("k"):sum("n"):uid("total"):discard()
        env:execute()
      ]], { stderr = true })
      assert.are.equal(1, code, out)
      assert.truthy(out:find("operator 'total'", 1, true), out)
      assert.truthy(out:find("field 'n' is not a number (got string)", 1, true), out)
    end)
  end)

  it("exits 2 for a script that does not load", function()
    local out, code = run("this is not lua", { stderr = true })
    assert.are.equal(2, code, out)
    assert.truthy(out:find("tide: ", 1, true), out)
  end)

  it("rolls part files on time (rollover_interval) and commits every record once", function()
    local dir = os.tmpname()
    os.remove(dir)
    -- 2000 records at 2000/s: about one second, so a 300 ms rollover
    -- interval closes at least one file before the end
    local out, code = run(string.format([[
      local env = tide.env{}
      env:generate(function(i) return i end, 2000, { rate_limit = 2000 })
        :write_text(%q, { rollover_interval = "300ms" })
      env:execute()
    ]], dir))
    assert.are.equal(0, code, out)
    local names = assert(core.list_dir(dir))
    local seen, files = {}, 0
    for _, name in ipairs(names) do
      assert.is_nil(name:match("^%."), "uncommitted file " .. name)
      files = files + 1
      for l in io.lines(dir .. "/" .. name) do
        local v = compat.tointeger(l)
        assert.is_nil(seen[v], "duplicate " .. l)
        seen[v] = true
      end
      os.remove(dir .. "/" .. name)
    end
    os.remove(dir)
    for i = 1, 2000 do assert.is_true(seen[i], "missing " .. i) end
    assert.is_true(files >= 2, "expected time-rolled files, got " .. files)
  end)

  describe("only the key crosses to a count (projection)", function()
    -- Records carry a field no exchange can encode (a function): a job
    -- whose records cross whole fails with "cannot send a record"; a count
    -- behind key_by(field) reads the key alone, so only {k = key} crosses
    -- and the job runs. The counts are checked against values computed here.
    -- the printed records (without the subtask prefix) are want's, in any order
    local function assert_records(want, out)
      local got = {}
      for _, l in ipairs(lines(out)) do
        if not l:find("^tide: ") then
          local _, rec = split_prefix(l)
          got[#got + 1] = rec
        end
      end
      table.sort(want)
      table.sort(got)
      assert.are.same(want, got)
    end
    local GEN = [[
      local env = tide.env{ parallelism = 2 }
      local s = env:generate(function(i)
          return { k = i % 3, t = i, v = i, pad = ("x"):rep(i), f = function() end }
        end, 30)
        :assign_timestamps(function(r) return r.t end, tide.watermarks.monotonous())
        :key_by("k")
    ]]

    it("sends {k = key} to a keyed count()", function()
      local out, code = run(GEN .. [[
      s:count():map(function(r) return r.key .. "=" .. r.count end):print()
      env:execute()
      ]], { stderr = true })
      assert.are.equal(0, code, out)
      local want, n = {}, {}
      for i = 1, 30 do
        local k = i % 3
        n[k] = (n[k] or 0) + 1
        want[#want + 1] = k .. "=" .. n[k]
      end
      assert_records(want, out)
    end)

    it("sends {k = key} to a window's count()", function()
      local out, code = run(GEN .. [[
      s:window(tide.windows.tumbling(10)):count()
        :map(function(r) return r.key .. "=" .. r.count end):print()
      env:execute()
      ]], { stderr = true })
      assert.are.equal(0, code, out)
      -- windows [0, 10), [10, 20), [20, 30), [30, 40) over t = 1..30
      local want, n = {}, {}
      for i = 1, 30 do
        local id = (i - i % 10) .. "/" .. (i % 3)
        n[id] = (n[id] or 0) + 1
      end
      for id, c in pairs(n) do want[#want + 1] = id:match("/(%d+)$") .. "=" .. c end
      assert_records(want, out)
    end)

    it("sends whole records to a sum() and to a count with a late side output", function()
      for _, tail in ipairs {
        's:sum("v"):print()',
        's:window(tide.windows.tumbling(10)):side_output_late("late"):count():print()',
      } do
        local out, code = run(GEN .. tail .. "\nenv:execute()\n", { stderr = true })
        assert.are.equal(1, code, out)
        assert.truthy(out:find("cannot send a record", 1, true), out)
      end
    end)
  end)

  describe("a window_all's sum, min and max across an exchange (local pre-aggregation)", function()
    -- generate at p2 -> window_all(tumbling 100 ms): each source subtask
    -- sends one partial per window and batch; the results are those of
    -- the records themselves (computed here), and --summary shows the
    -- window_all taking far fewer records than the 2,000 generated (the
    -- printed results come from two subtasks: compared as sorted lists)
    for _, agg in ipairs { "max", "min", "sum" } do
      it(agg, function()
        local out, code = run([[
          local env = tide.env{ parallelism = 2 }
          env:generate(function(i) return { id = i, v = (i * 37) % 101, t = i } end, 2000)
            :assign_timestamps(function(r) return r.t end, tide.watermarks.monotonous())
            :window_all(tide.windows.tumbling(100)):]] .. agg .. [[("v")
            :map(function(r) return r.v end):set_parallelism(1)
            :print()
          env:execute()
        ]], { stderr = true, flags = "--summary" })
        assert.are.equal(0, code, out)
        local want = {}
        for i = 1, 2000 do
          local w, v = i - i % 100, (i * 37) % 101
          local a = want[w]
          if a == nil then a = v
          elseif agg == "max" then a = math.max(a, v)
          elseif agg == "min" then a = math.min(a, v)
          else a = a + v end
          want[w] = a
        end
        local starts = {}
        for w in pairs(want) do starts[#starts + 1] = w end
        table.sort(starts)
        local expect = {}
        for j, w in ipairs(starts) do expect[j] = tostring(want[w]) end
        local got, taken = {}, nil
        for _, l in ipairs(lines(out)) do
          if not l:find("^tide: ") then
            local _, rec = split_prefix(l)
            got[#got + 1] = rec
          elseif l:find("(window", 1, true) then
            taken = tonumber(l:match("(%d+) in,"))
          end
        end
        table.sort(expect)
        table.sort(got)
        assert.are.same(expect, got)
        assert.truthy(taken, out)
        assert.is_true(taken >= #starts and taken < 200, "the window_all took " .. tostring(taken) .. " records")
      end)
    end
  end)

  describe("batch mode, two-phase aggregation across an exchange", function()
    -- generate(i) for i = 1..1000 at parallelism 2 (two splits), keyed by
    -- i % 3 into an aggregate at parallelism 3: the senders pre-aggregate,
    -- the aggregate merges. Expected values computed by hand:
    --   key 0: i = 3, 6, ..., 999  (333 values, sum 3 * 333 * 334 / 2 = 166833)
    --   key 1: i = 1, 4, ..., 1000 (334 values, sum 167167)
    --   key 2: i = 2, 5, ..., 998  (333 values, sum 166500)
    local function job(agg)
      return string.format([[
        local env = tide.env{ runtime_mode = "batch" }
        env:generate(function(i) return { k = i %% 3, v = i, tag = "t" .. i } end, 1000):set_parallelism(2)
          :key_by("k"):%s:set_parallelism(3)
          :map(function(r) return r.key ~= nil and (r.key .. "=" .. r.count) or (r.k .. "=" .. r.v .. "/" .. r.tag) end)
          :set_parallelism(1):print()
        env:execute()
      ]], agg)
    end
    local function sorted(out)
      local t = lines(out)
      table.sort(t)
      return t
    end

    it("counts", function()
      local out, code = run(job("count()"))
      assert.are.equal(0, code, out)
      assert.are.same({ "0=333", "1=334", "2=333" }, sorted(out))
    end)

    it("sums a field, keeping one of the key's records for the other fields", function()
      local out, code = run(job('sum("v")'))
      assert.are.equal(0, code, out)
      local t = sorted(out)
      assert.are.equal(3, #t)
      for i, want in ipairs({ "0=166833", "1=167167", "2=166500" }) do
        local k, v, tag = t[i]:match("^(%d)=(%d+)/t(%d+)$")
        assert.are.equal(want, k .. "=" .. v)
        -- the other fields come from a record of that key
        assert.are.equal(tonumber(k), tonumber(tag) % 3)
      end
    end)

    it("takes min and max", function()
      local out, code = run(job('min("v")'))
      assert.are.equal(0, code, out)
      local mins = {}
      for _, l in ipairs(sorted(out)) do mins[#mins + 1] = l:match("^(%d=%d+)/") end
      assert.are.same({ "0=3", "1=1", "2=2" }, mins)
      out, code = run(job('max("v")'))
      assert.are.equal(0, code, out)
      local maxs = {}
      for _, l in ipairs(sorted(out)) do maxs[#maxs + 1] = l:match("^(%d=%d+)/") end
      assert.are.same({ "0=999", "1=1000", "2=998" }, maxs)
    end)

    it("keeps table keys apart by value", function()
      local out, code = run [[
        local env = tide.env{ runtime_mode = "batch" }
        env:generate(function(i) return { g = { i % 2, "x" }, v = 1 } end, 100):set_parallelism(2)
          :key_by("g"):count():set_parallelism(2)
          :map(function(r) return r.key[1] .. r.key[2] .. "=" .. r.count end):set_parallelism(1):print()
        env:execute()
      ]]
      assert.are.equal(0, code, out)
      assert.are.same({ "0x=50", "1x=50" }, sorted(out))
    end)

    it("names the aggregate when a sender finds a value it cannot sum", function()
      local out, code = run([[
        local env = tide.env{ runtime_mode = "batch" }
        env:generate(function(i) return { k = i % 2, v = i == 7 and "seven" or i } end, 10):set_parallelism(2)
          :key_by("k"):sum("v"):uid("total"):set_parallelism(3):print()
        env:execute()
      ]], { stderr = true })
      assert.are.equal(1, code, out)
      assert.matches("operator 'total'", out, 1, true)
      assert.matches("field 'v' is not a number (got string)", out, 1, true)
    end)
  end)

  describe("checkpoints", function()
    local function tmp()
      local d = os.tmpname()
      os.remove(d)
      return d
    end
    local function read_dir(dir)
      local t = {}
      for _, name in ipairs(core.list_dir(dir) or {}) do
        assert.is_nil(name:match("^[%._]"), "uncommitted file " .. name)
        for l in io.lines(dir .. "/" .. name) do t[#t + 1] = l end
      end
      table.sort(t)
      return t
    end

    -- 2000 records at 4000/s with a checkpoint every 100 ms; a map fails
    -- once, at the first record from 1000 on that comes after a checkpoint
    -- completed (a marker file remembers it across the restart).
    -- A non-keyed process keeps its count and sum in operator list state
    -- and emits them at the end: restored from the checkpoint, then the
    -- records after it replayed, they must be exactly 2000 and
    -- 1 + ... + 2000 = 2001000.
    local function job(mode, marker, out, ck)
      return string.format([[
        local env = tide.env{ name = "opstate",
          checkpoint = { dir = %q, interval = "100ms", mode = %q },
          restart = { strategy = "fixed_delay", attempts = 1, delay = 10 } }
        local out_ref
        env:generate(function(i) return i end, 2000, { rate_limit = 4000 }):uid("gen")
          :map(function(i)
            if i >= 1000 and not io.open(%q) then
              local ls = io.popen("ls %s/opstate/*/_metadata 2>/dev/null")
              local done = ls:read("l")
              ls:close()
              if done then
                io.open(%q, "w"):close()
                error("fails once")
              end
            end
            return i
          end):uid("flaky")
          :process{
            on_record = function(v, ctx, out)
              out_ref = out
              local st = ctx.operator_state:get_list_state("acc")
              local a = st:get()
              st:update({ (a[1] or 0) + 1, (a[2] or 0) + v })
            end,
            close = function(ctx)
              local a = ctx.operator_state:get_list_state("acc"):get()
              out_ref:collect(a[1] .. " " .. a[2])
            end,
          }:uid("acc")
          :write_text(%q)
        env:execute()
      ]], ck, mode, marker, ck, marker, out)
    end

    for _, mode in ipairs({ "exactly_once", "at_least_once" }) do
      it("restores operator state after a failure (" .. mode .. ", one task)", function()
        local marker, out, ck = tmp(), tmp(), tmp()
        local res, code = run(job(mode, marker, out, ck), { stderr = true })
        assert.are.equal(0, code, res)
        assert.matches("restarting", res, 1, true)
        assert.matches("restoring checkpoint", res, 1, true)
        assert.are.same({ "2000 2001000" }, read_dir(out))
        os.execute("rm -rf '" .. out .. "' '" .. ck .. "' '" .. marker .. "'")
      end)
    end
  end)

  -- Flink's CoGroupJoinITCase (testCoGroup, testJoin, testSelfJoin):
  -- tumbling event-time windows of 3 ms, a watermark of ts - 1 after each
  -- record; the expected lines are Flink's, compared sorted
  describe("window joins and co-groups (Flink's CoGroupJoinITCase)", function()
    local SOURCES = [[
      local env = tide.env{ parallelism = %d }
      local function src(list)
        -- at parallelism 1 as the list, so each input keeps its order
        return env:from_list(list):assign_timestamps(function(t) return t[#t] end,
          tide.watermarks.monotonous{ per_record = true }):set_parallelism(1)
      end
      local function tuple(t) return "(" .. table.concat(t, ",") .. ")" end
    ]]
    local function sorted_lines(out)
      local t = {}
      for l in out:gmatch("([^\n]*)\n") do t[#t + 1] = l:gsub("^%d+> ", "") end
      table.sort(t)
      return t
    end
    for _, p in ipairs { 1, 2 } do
      it("co-groups (parallelism " .. p .. ")", function()
        local out, code = run(SOURCES:format(p) .. [[
          local s1 = src{ { "a", 0 }, { "a", 1 }, { "a", 2 }, { "b", 3 }, { "b", 4 }, { "b", 5 }, { "a", 6 },
            { "a", 7 }, { "a", 8 } }
          local s2 = src{ { "a", 0 }, { "a", 1 }, { "b", 3 }, { "c", 6 }, { "c", 7 }, { "c", 8 } }
          s1:co_group(s2):where(1):equal_to(1):window(tide.windows.tumbling(3)):apply(function(f, s, out)
            local r = { "F:" }
            for _, t in ipairs(f) do r[#r + 1] = tuple(t) end
            r[#r + 1] = " S:"
            for _, t in ipairs(s) do r[#r + 1] = tuple(t) end
            out:collect(table.concat(r))
          end):print()
          env:execute("cogroup")
        ]])
        assert.are.equal(0, code)
        assert.are.same({ "F: S:(c,6)(c,7)(c,8)", "F:(a,0)(a,1)(a,2) S:(a,0)(a,1)", "F:(a,6)(a,7)(a,8) S:",
          "F:(b,3)(b,4)(b,5) S:(b,3)" }, sorted_lines(out))
      end)

      -- s1 joined with `right` (the Lua source of the second input)
      local S1 = [[
        local s1 = src{ { "a", "x", 0 }, { "a", "y", 1 }, { "a", "z", 2 }, { "b", "u", 3 }, { "b", "w", 5 },
          { "a", "i", 6 }, { "a", "j", 7 }, { "a", "k", 8 } }
      ]]
      local function join_lines(right)
        local out, code = run(SOURCES:format(p) .. S1 .. "local s2 = " .. right .. [[
          s1:join(s2):where(1):equal_to(1):window(tide.windows.tumbling(3))
            :apply(function(a, b) return tuple(a) .. ":" .. tuple(b) end):print()
          env:execute("join")
        ]])
        assert.are.equal(0, code)
        return sorted_lines(out)
      end

      it("joins (parallelism " .. p .. ")", function()
        assert.are.same({ "(a,i,6):(a,x,6)", "(a,i,6):(a,z,8)", "(a,j,7):(a,x,6)", "(a,j,7):(a,z,8)",
          "(a,k,8):(a,x,6)", "(a,k,8):(a,z,8)", "(a,x,0):(a,u,0)", "(a,x,0):(a,w,1)", "(a,y,1):(a,u,0)",
          "(a,y,1):(a,w,1)", "(a,z,2):(a,u,0)", "(a,z,2):(a,w,1)", "(b,u,3):(b,i,3)", "(b,u,3):(b,k,5)",
          "(b,w,5):(b,i,3)", "(b,w,5):(b,k,5)" },
          join_lines([[src{ { "a", "u", 0 }, { "a", "w", 1 }, { "b", "i", 3 }, { "b", "k", 5 }, { "a", "x", 6 },
            { "a", "z", 8 } }
          ]]))
      end)

      it("self-joins (parallelism " .. p .. ")", function()
        assert.are.same({ "(a,i,6):(a,i,6)", "(a,i,6):(a,j,7)", "(a,i,6):(a,k,8)", "(a,j,7):(a,i,6)",
          "(a,j,7):(a,j,7)", "(a,j,7):(a,k,8)", "(a,k,8):(a,i,6)", "(a,k,8):(a,j,7)", "(a,k,8):(a,k,8)",
          "(a,x,0):(a,x,0)", "(a,x,0):(a,y,1)", "(a,x,0):(a,z,2)", "(a,y,1):(a,x,0)", "(a,y,1):(a,y,1)",
          "(a,y,1):(a,z,2)", "(a,z,2):(a,x,0)", "(a,z,2):(a,y,1)", "(a,z,2):(a,z,2)", "(b,u,3):(b,u,3)",
          "(b,u,3):(b,w,5)", "(b,w,5):(b,u,3)", "(b,w,5):(b,w,5)" }, join_lines("s1\n"))
      end)
    end

    it("meets equal keys of both inputs in one subtask (keyed connect at parallelism 3)", function()
      local out, code = run([[
        local env = tide.env{ parallelism = 3 }
        local names = env:from_list{ { id = 1, name = "ann" }, { id = 2, name = "bob" }, { id = 3, name = "cy" },
          { id = 4, name = "dee" } }
        local orders = env:generate(function(i) return { user = i % 4 + 1, n = i } end, 400)
        names:connect(orders):key_by("id", "user"):process{
          on_record1 = function(v, ctx) ctx.state:value("name"):update(v.name) end,
          on_record2 = function(v, ctx)
            local s = ctx.state:value("sum")
            s:update((s:value() or 0) + v.n)
          end,
          close = function() end,
          on_timer = function() end,
        }:uid("co")
        -- every key's total, once both inputs ended: a timer at the end of input
        names:connect(orders):key_by("id", "user"):process{
          on_record1 = function(v, ctx)
            ctx.state:value("name"):update(v.name)
            ctx.timers:register_event_time(1)
          end,
          on_record2 = function(v, ctx)
            local s = ctx.state:value("sum")
            s:update((s:value() or 0) + v.n)
            ctx.timers:register_event_time(1)
          end,
          on_timer = function(_, ctx, out)
            out:collect(ctx.key .. "," .. tostring(ctx.state:value("name"):value()) .. "," ..
              ctx.state:value("sum"):value())
          end,
        }:uid("totals"):print()
        env:execute("co")
      ]])
      assert.are.equal(0, code)
      -- oracle: sum of i in 1..400 with i % 4 + 1 == id
      local want = {}
      for id, name in ipairs { "ann", "bob", "cy", "dee" } do
        local sum = 0
        for i = 1, 400 do if i % 4 + 1 == id then sum = sum + i end end
        want[#want + 1] = id .. "," .. name .. "," .. sum
      end
      assert.are.same(want, sorted_lines(out))
    end)

    it("fails naming the operator and the connect when a mixed connect uses keyed state", function()
      local out, code, path = run([[
        local env = tide.env{ parallelism = 2 }
        local a, b = env:from_list{ 1, 2 }, env:from_list{ 3 }
        a:key_by(tostring):connect(b):process{
          on_record1 = function(v, ctx) ctx.state:value("x"):update(v) end,
          on_record2 = function() end,
        }:uid("mixed"):print()
        env:execute("mixed")
      ]], { stderr = true })
      assert.are.equal(1, code)
      assert.matches("operator 'mixed'", out, 1, true)
      assert.matches("keyed state needs both inputs keyed: connect at " .. path .. ":4 joins a keyed and a " ..
        "non-keyed stream", out, 1, true)
    end)
  end)
end)
