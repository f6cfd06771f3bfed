-- tide: building job graphs in-process, without env:execute(). Checks the
-- environment's defaults, the errors bad arguments raise (message and the
-- user's line they blame), and what each builder call records in env.nodes.
local tide = require "tide"

local SPEC = debug.getinfo(1, "S").short_src

-- The current line of the caller.
local function line() return debug.getinfo(2, "l").currentline end

-- The message of the error fn() raises (fails the spec if none).
local function error_of(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

-- Asserts that err is "<this spec>:<at>: <msg>...": the message, and the
-- user's line as its position.
local function assert_error_at(err, at, msg)
  local prefix = SPEC .. ":" .. at .. ": "
  assert.are.equal(prefix, err:sub(1, #prefix), err)
  assert.are.equal(msg, err:sub(#prefix + 1, #prefix + #msg), err)
end

local tmpfiles = {}
local function tmpfile(content)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
  tmpfiles[#tmpfiles + 1] = path
  return path
end
local function tmpdir()
  local path = os.tmpname()
  os.remove(path)
  tmpfiles[#tmpfiles + 1] = path
  return path
end

local function id(x) return x end

teardown(function()
  for _, p in ipairs(tmpfiles) do os.remove(p) end
end)

describe("tide.env #unit", function()
  it("has Flink's defaults", function()
    local env = tide.env {}
    assert.are.equal(1, env.parallelism)
    assert.are.equal(0, env.max_parallelism) -- 0: chosen at planning (Flink's rule)
    assert.are.equal("streaming", env.runtime_mode)
    assert.is_true(env.chaining)
    assert.are.equal("job", env.name)
    assert.are.same({}, env.nodes)
    assert.are.same(tide.env().nodes, {})
  end)

  it("takes its settings", function()
    local env = tide.env { parallelism = 4, max_parallelism = 256, runtime_mode = "batch",
      chaining = false, name = "wc" }
    assert.are.equal(4, env.parallelism)
    assert.are.equal(256, env.max_parallelism)
    assert.are.equal("batch", env.runtime_mode)
    assert.is_false(env.chaining)
    assert.are.equal("wc", env.name)
  end)

  it("refuses a parallelism below 1", function()
    local at, err = line(), error_of(function() tide.env { parallelism = 0 } end)
    assert_error_at(err, at, "bad argument #1 to 'env' (positive integer expected, got 0)")
    err = error_of(function() tide.env { max_parallelism = -1 } end)
    assert.truthy(err:find("bad argument #1 to 'env' (positive integer expected, got -1)", 1, true), err)
  end)

  it("refuses an unknown runtime mode", function()
    local at, err = line(), error_of(function() tide.env { runtime_mode = "x" } end)
    assert_error_at(err, at, "bad runtime_mode 'x' (expected 'streaming' or 'batch')")
  end)

  it("takes and checks the rocksdb options", function()
    local env = tide.env{ rocksdb = { block_cache = "1MB", max_write_buffers = 3, incremental = false } }
    assert.are.same({ block_cache = 1048576, max_write_buffers = 3, incremental = false }, env.rocksdb)
    assert.matches("bad rocksdb.incremental: true or false expected",
      error_of(function() tide.env{ rocksdb = { incremental = "no" } } end))
    assert.matches("unknown rocksdb option 'incremental_checkpoints'",
      error_of(function() tide.env{ rocksdb = { incremental_checkpoints = false } } end))
  end)

  it("refuses a configuration that is not a table", function()
    local err = error_of(function() tide.env(4) end)
    assert.truthy(err:find("bad argument #1 to 'env' (table expected, got number)", 1, true), err)
  end)
end)

describe("tide graph building errors #unit", function()
  local env, s
  before_each(function()
    env = tide.env {}
    s = env:from_list { 1, 2, 3 }
  end)

  it("map refuses a non-function", function()
    local at, err = line(), error_of(function() s:map(42) end)
    assert_error_at(err, at, "bad argument #1 to 'map' (function expected, got number)")
  end)

  it("filter, flat_map, reduce and generate refuse a non-function", function()
    assert.truthy(error_of(function() s:filter("x") end)
      :find("bad argument #1 to 'filter' (function expected, got string)", 1, true))
    assert.truthy(error_of(function() s:flat_map(nil) end)
      :find("bad argument #1 to 'flat_map' (function expected, got nil)", 1, true))
    assert.truthy(error_of(function() s:key_by(1):reduce({}) end)
      :find("bad argument #1 to 'reduce' (function expected, got table)", 1, true))
    assert.truthy(error_of(function() env:generate(5) end)
      :find("bad argument #1 to 'generate' (function expected, got number)", 1, true))
    assert.truthy(error_of(function() env:generate(id, -1) end)
      :find("bad argument #2 to 'generate'", 1, true))
  end)

  it("key_by refuses what is neither a field, an index nor a function", function()
    local at, err = line(), error_of(function() s:key_by({}) end)
    assert_error_at(err, at, "bad argument #1 to 'key_by' (field name, index or function expected, got table)")
    assert.truthy(error_of(function() s:key_by(1.5) end):find("bad argument #1 to 'key_by'", 1, true))
  end)

  it("process needs an on_record function", function()
    local err = error_of(function() s:process {} end)
    assert.truthy(err:find("bad argument #1 to 'process' (on_record function expected, got nil)", 1, true), err)
    err = error_of(function() s:process { on_record = id, open = 1 } end)
    assert.truthy(err:find("(open function expected, got number)", 1, true), err)
  end)

  it("set_parallelism refuses 0", function()
    local at, err = line(), error_of(function() s:map(id):set_parallelism(0) end)
    assert_error_at(err, at, "bad argument #1 to 'set_parallelism' (positive integer expected, got 0)")
  end)

  it("from_list is not a parallel source", function()
    local at, err = line(), error_of(function() env:from_list { 1 }:set_parallelism(2) end)
    assert_error_at(err, at, "from_list is not a parallel operator: its parallelism must be 1")
    env:from_list { 1 }:set_parallelism(1) -- allowed
  end)

  it("uid refuses an empty string", function()
    local at, err = line(), error_of(function() s:map(id):uid("") end)
    assert_error_at(err, at, "bad argument #1 to 'uid' (non-empty string expected)")
    assert.truthy(error_of(function() s:uid(7) end):find("non-empty string expected", 1, true))
  end)

  it("uid refuses a uid already used by another operator", function()
    s:map(id):uid("m")
    local at, err = line(), error_of(function() s:filter(id):uid("m") end)
    assert_error_at(err, at, "uid 'm' is used twice")
  end)

  it("uid accepts setting the same uid on the same operator again", function()
    local m = s:map(id):uid("m")
    m:uid("m")
    assert.are.equal("m", env.nodes[m.id].uid)
  end)

  it("read_text refuses a file it cannot open", function()
    local missing = os.tmpname()
    os.remove(missing)
    local at, err = line(), error_of(function() env:read_text(missing) end)
    assert_error_at(err, at, "read_text: cannot open '" .. missing .. "'")
    assert.truthy(err:find("No such file or directory", 1, true), err)
    assert.truthy(error_of(function() env:read_text(42) end)
      :find("bad argument #1 to 'read_text' (path expected, got number)", 1, true))
  end)

  it("read_csv refuses an unknown on_error", function()
    local path = tmpfile("a,b\n1,2\n")
    local at, err = line(), error_of(function() env:read_csv(path, { on_error = "bogus" }) end)
    assert_error_at(err, at, "read_csv: on_error must be 'fail' or 'skip', not 'bogus'")
  end)

  it("read_csv refuses an unknown column type, naming the first by name", function()
    local path = tmpfile("a,b\n1,2\n")
    local types = { a = "int", z = "money", b = "decimal", c = "bigint", y = "x" }
    local at, err = line(), error_of(function() env:read_csv(path, { types = types }) end)
    assert_error_at(err, at, "read_csv: column 'b' has unknown type 'decimal'")
  end)

  it("read_csv records its options", function()
    local path = tmpfile("a;b\n1;2\n")
    local r = env:read_csv(path, { delimiter = ";", types = { a = "int" }, on_error = "skip" })
    local node = env.nodes[r.id]
    assert.are.equal("source", node.kind)
    assert.are.same({ type = "csv", path = path, opts = { header = true, delimiter = ";",
      types = { a = "int" }, skip_errors = true } }, node.source)
  end)

  it("write_csv refuses header = true without columns", function()
    local dir = tmpdir()
    local at, err = line(), error_of(function() s:write_csv(dir, { header = true }) end)
    assert_error_at(err, at, "write_csv: header = true needs columns")
    os.remove(dir)
  end)

  it("refuses combining streams of two environments", function()
    local other = tide.env {}:from_list { 1 }
    local err = error_of(function() s:union(other) end)
    assert.truthy(err:find("cannot combine streams of different environments", 1, true), err)
  end)

  it("execute refuses a job without a sink before running anything", function()
    s:map(id)
    local err = error_of(function() env:execute() end)
    assert.truthy(err:find("the job has no sink", 1, true), err)
  end)
end)

describe("tide graph building records nodes #unit", function()
  it("records kind, uid, name and the defining line", function()
    local env = tide.env {}
    local f = function(x) return x + 1 end
    local at = line(); env:from_list { 1 }:map(f):uid("m"):name("M")
    assert.are.equal(2, #env.nodes)
    local src, m = env.nodes[1], env.nodes[2]
    assert.are.equal("source", src.kind)
    assert.are.equal("from_list", src.name)
    assert.are.same({ type = "list", list = { 1 } }, src.source)
    assert.are.equal(SPEC .. ":" .. at, src.site)
    assert.are.equal("map", m.kind)
    assert.are.equal("m", m.uid)
    assert.are.equal("M", m.name)
    assert.are.equal(f, m.fn)
    assert.are.equal(SPEC .. ":" .. at, m.site)
    assert.truthy(m.site:match("api_spec%.lua:%d+$"), m.site)
    assert.are.equal(1, #m.inputs)
    assert.are.equal(1, m.inputs[1].node)
    assert.is_nil(src.uid) -- no uid given: chosen at planning
  end)

  it("records each operator's own line, keyed streams and sinks", function()
    local env = tide.env { parallelism = 2 }
    local at1 = line(); local words = env:from_list { "a", "b" }
    local at2 = line(); local keyed = words:key_by(function(w) return w end)
    local at3 = line(); local counts = keyed:count()
    local at4 = line(); counts:print()
    local at5 = line(); keyed:sum():discard()
    local nodes = env.nodes
    assert.are.equal(5, #nodes)
    assert.are.same({ "source", "aggregate", "sink", "aggregate", "sink" },
      { nodes[1].kind, nodes[2].kind, nodes[3].kind, nodes[4].kind, nodes[5].kind })
    assert.are.same({ SPEC .. ":" .. at1, SPEC .. ":" .. at3, SPEC .. ":" .. at4, SPEC .. ":" .. at5,
      SPEC .. ":" .. at5 }, { nodes[1].site, nodes[2].site, nodes[3].site, nodes[4].site, nodes[5].site })
    assert.are.equal("count", nodes[2].agg)
    assert.are.equal("sum", nodes[4].agg)
    assert.is_true(nodes[2].keyed)
    local inp = nodes[2].inputs[1]
    assert.are.equal(1, inp.node)
    assert.are.equal("hash", inp.partition)
    assert.are.equal(SPEC .. ":" .. at2, inp.key_site)
    assert.are.equal("b", inp.key("b"))
    assert.are.same({ type = "print" }, nodes[3].sink)
    assert.are.equal(2, nodes[3].inputs[1].node)
    assert.is_nil(nodes[3].inputs[1].partition) -- forward or rebalance: decided at planning
  end)

  it("records a field key, parallelism and repartitioning", function()
    local env = tide.env {}
    local s = env:generate(function(i) return { k = i % 2, v = i } end, 10, { parallelism = 3 })
    s:rebalance():map(id):set_parallelism(2):key_by("k"):reduce(function(a) return a end):print()
    local g, m, r = env.nodes[1], env.nodes[2], env.nodes[3]
    assert.are.equal(3, g.parallelism)
    assert.are.equal(10, g.source.count)
    assert.are.equal("rebalance", m.inputs[1].partition)
    assert.are.equal(2, m.parallelism)
    assert.are.equal("k", r.inputs[1].key_field)
    assert.are.equal(1, r.inputs[1].key { k = 1 })
  end)
end)
