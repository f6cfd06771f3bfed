-- tide.kafka without a cluster: read_kafka's and write_kafka's option
-- errors (message and the user's line), and the source's logic over a
-- fake client standing in for core.kafka_new (split assignment, stopping
-- offsets, per-partition watermarks and idleness, positions, offsets
-- committed on checkpoint completion). The real client is exercised by
-- tests/e2e/test_kafka.sh against librdkafka's mock cluster.
local tide = require "tide"
local core = require "tide.core"
local kafka = require "tide.kafka"
local MIN_INT = require("tide.compat").MIN_INT

local SPEC = debug.getinfo(1, "S").short_src
local function line() return debug.getinfo(2, "l").currentline end

-- fn() raises an error whose message starts with "<this spec>:<at>: msg"
-- (at nil: msg alone)
local function check_error(at, msg, fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  err = tostring(err)
  local want = (at and SPEC .. ":" .. at .. ": " or "") .. msg
  assert.are.equal(want, err:sub(1, #want), err)
end

describe("read_kafka and write_kafka options #unit", function()
  local B = "127.0.0.1:9092"
  it("names the user's line for bad source options", function()
    local env = tide.env()
    local cases = {
      { { topics = { "a" } }, "read_kafka: bootstrap_servers must be a string" },
      { { bootstrap_servers = B }, "read_kafka: give either topics = {...} or topic_pattern = '...'" },
      { { bootstrap_servers = B, topics = { "a" }, topic_pattern = "a.*" }, "read_kafka: give either" },
      { { bootstrap_servers = B, topics = {} }, "read_kafka: topics must be a non-empty array" },
      { { bootstrap_servers = B, topics = { "a b" } }, "read_kafka: topics[1] must be a topic name" },
      { { bootstrap_servers = B, topics = { "a" }, starting_offsets = "committed" },
        "read_kafka: starting_offsets = 'committed' needs group_id" },
      { { bootstrap_servers = B, topics = { "a" }, starting_offsets = { timestamp = -1 } },
        "read_kafka: starting_offsets = {timestamp = ms} needs an integer timestamp >= 0" },
      { { bootstrap_servers = B, topics = { "a" }, stopping_offsets = "earliest" },
        "read_kafka: stopping_offsets must be 'latest' or nil" },
      { { bootstrap_servers = B, topics = { "a" }, format = "json5" }, "read_kafka: format must be 'text' or 'raw'" },
      { { bootstrap_servers = B, topics = { "a" }, watermarks = {} },
        "read_kafka: watermarks must be a strategy from tide.watermarks" },
      { { bootstrap_servers = B, topics = { "a" }, properties = { [1] = "x" } }, "read_kafka: properties: '1'" },
      { { bootstrap_servers = B, topics = { "a" }, timeout = "soon" }, "bad read_kafka timeout" },
    }
    for _, c in ipairs(cases) do
      check_error(line(), c[2], function() env:read_kafka(c[1]) end)
    end
  end)

  it("names the user's line for bad sink options", function()
    local s = tide.env():from_list({ "x" })
    local cases = {
      { { bootstrap_servers = B }, "write_kafka: topic must be a topic name" },
      { { bootstrap_servers = B, topic = "t", key = true }, "write_kafka: key must be a function(record) or a field name" },
      { { bootstrap_servers = B, topic = "t", delivery_guarantee = "twice" },
        "write_kafka: delivery_guarantee must be 'at_least_once', 'exactly_once' or 'none'" },
      { { bootstrap_servers = B, topic = "t", delivery_guarantee = "exactly_once" },
        "write_kafka: delivery_guarantee = 'exactly_once' needs transactional_id_prefix" },
    }
    for _, c in ipairs(cases) do
      check_error(line(), c[2], function() s:write_kafka(c[1]) end)
    end
  end)

  it("records the source's and the sink's configuration", function()
    local env = tide.env()
    local s = env:read_kafka{ bootstrap_servers = B, topics = { "b", "a" }, group_id = "g",
      starting_offsets = { timestamp = 5 }, watermarks = tide.watermarks.bounded("2s"):with_idleness("1s") }
    local src = env.nodes[s.id].source
    assert.are.same({ "a", "b" }, src.topics)
    assert.are.same({ timestamp = 5 }, src.starting_offsets)
    assert.are.same({ bound = 2000, idleness = 1000 }, src.watermarks)
    assert.are.equal(10000, src.timeout)
    local k = s:write_kafka{ bootstrap_servers = B, topic = "out" }
    assert.are.equal("at_least_once", env.nodes[k.id].sink.delivery_guarantee)
  end)
end)

-- A fake client: topics a and b of 3 partitions with offsets 0..hi, the
-- batches `read` hands out in order, what was assigned and committed.
local function fake(batches, hi)
  local f = { assigned = nil, commits = {} }
  local client = {}
  function client.topics() return { "a", "b", "__consumer_offsets" } end
  function client.partitions(_, t)
    if t == "a" or t == "b" then return { 0, 1, 2 } end
    return nil, "unknown topic '" .. t .. "'"
  end
  function client.watermarks() return 0, hi or 100 end
  function client.assign(_, topics, parts, offs)
    f.assigned = {}
    for i = 1, #topics do f.assigned[i] = topics[i] .. "/" .. parts[i] .. "@" .. offs[i] end
    return true
  end
  function client.commit(_, topics, parts, offs)
    local c = {}
    for i = 1, #topics do c[i] = topics[i] .. "/" .. parts[i] .. "@" .. offs[i] end
    f.commits[#f.commits + 1] = c
    return true
  end
  -- batch: {{"a/0", offset, ts, value}, ...}
  function client.read(_, buf, ts, tps, offs)
    local b = table.remove(batches, 1) or {}
    for i, r in ipairs(b) do buf[i], tps[i], offs[i], ts[i] = r[4] or "v", r[1], r[2], r[3] or -1 end
    return #b, nil
  end
  function client.fatal() return nil end
  function client.close() end
  f.client = client
  return f
end

describe("the Kafka source over a fake client #unit", function()
  local real = core.kafka_new
  local clock
  local function rt(subtask, p)
    return { subtask = subtask, parallelism = p, job_id = "j", now = function() return clock end,
      warn = function(m) error("warning: " .. m) end }
  end
  local function node(extra)
    local src = { type = "kafka", bootstrap_servers = "x", topics = { "a" }, starting_offsets = "earliest",
      format = "text", timeout = 1000 }
    for k, v in pairs(extra or {}) do src[k] = v end
    return { uid = "k", name = "read_kafka", source = src }
  end
  local function open(f, n, r)
    core.kafka_new = function() return f.client end
    local read, pos = kafka.open_source(n, r, function(m) error(m, 0) end)
    core.kafka_new = real
    return read, pos
  end
  -- a head that records what the source emits
  local function head()
    local h = { events = {} }
    function h.watermark(w) h.events[#h.events + 1] = w end
    function h.status(s) h.events[#h.events + 1] = s end
    return h
  end
  before_each(function() clock = 1000 end)
  after_each(function() core.kafka_new = real end)

  it("gives partition j of the sorted list to subtask j mod p", function()
    local f = fake({})
    local read = open(f, node({ topics = { "b", "a" } }), rt(1, 2))
    read({})
    assert.are.same({ "a/1@0", "b/0@0", "b/2@0" }, f.assigned)
    f = fake({})
    read = open(f, node({ topics = nil, topic_pattern = "a" }), rt(0, 2))
    read({})
    assert.are.same({ "a/0@0", "a/2@0" }, f.assigned)
  end)

  it("fails naming an unknown topic", function()
    local read = open(fake({}), node({ topics = { "nosuch" } }), rt(0, 1))
    check_error(nil, "unknown topic 'nosuch'", function() read({}) end)
  end)

  it("stops each partition at its stopping offset and then ends", function()
    local f = fake({ { { "a/0", 0 }, { "a/1", 0 }, { "a/0", 1 } }, { { "a/0", 2 }, { "a/1", 1 }, { "a/2", 0 }, { "a/2", 1 } } }, 2)
    local read = open(f, node({ stopping_offsets = "latest" }), rt(0, 1))
    local buf = {}
    assert.are.equal(3, read(buf))
    -- a/0 offset 2 is past its end (2): dropped, and the source ends
    assert.are.equal(3, read(buf))
    assert.are.equal(0, read(buf))
  end)

  it("emits the min of the partitions' watermarks, then idleness", function()
    local f = fake({
      { { "a/0", 0, 100 }, { "a/1", 0, 50 }, { "a/2", 0, 70 } },
      { { "a/1", 1, 200 } },
      { { "a/1", 2, 300 } },
      {},
      {},
      { { "a/2", 1, 400 } },
    })
    local n = node({ watermarks = { bound = 0, idleness = 500 } })
    local read, pos = open(f, n, rt(0, 1))
    local h, buf = head(), {}
    local _, _, ts = read(buf)
    assert.are.same({ 100, 50, 70 }, { ts[1], ts[2], ts[3] })
    pos.emit(h)
    assert.are.same({ 49 }, h.events)
    read(buf)
    pos.emit(h)
    assert.are.same({ 49, 69 }, h.events) -- min(100, 200, 70) - 1
    -- a/0 and a/2 idle (no record for 500 ms): a/1 alone
    clock = 1500
    read(buf)
    pos.emit(h)
    assert.are.same({ 49, 69, 299 }, h.events)
    -- nothing for another 500 ms: a/1 idle too, the subtask idle
    clock = 2000
    read(buf)
    pos.emit(h)
    assert.are.same({ 49, 69, 299, "idle" }, h.events)
    read(buf)
    pos.emit(h)
    assert.are.same({ 49, 69, 299, "idle" }, h.events)
    -- a record: active again, the watermark from a/2 alone
    read(buf)
    pos.emit(h)
    assert.are.same({ 49, 69, 299, "idle", "active", 399 }, h.events)
  end)

  it("sends the last active partitions' watermark when all go idle between checks", function()
    local f = fake({ {}, { { "a/0", 0, 100 }, { "a/1", 0, 300 } }, {} })
    local read, pos = open(f, node({ watermarks = { bound = 0, idleness = 500 } }), rt(0, 1))
    local h, buf = head(), {}
    read(buf) -- started at 1000: every partition seen then
    clock = 1200
    read(buf) -- a/2 seen last at 1000, a/0 and a/1 at 1200
    pos.emit(h)
    assert.are.same({}, h.events) -- a/2 has no record and is not idle yet
    clock = 5000
    read(buf)
    pos.emit(h)
    assert.are.same({ 99, "idle" }, h.events)
  end)

  it("snapshots offsets, restores them, commits a completed checkpoint's", function()
    local f = fake({ { { "a/0", 0 }, { "a/1", 0 }, { "a/1", 1 } }, { { "a/0", 1 } } })
    local read, pos = open(f, node({ group_id = "g" }), rt(0, 1))
    local buf = {}
    read(buf)
    pos.prepare_snapshot(7)
    local snap = pos.snapshot()
    assert.are.same({ { topic = "a", partition = 0, offset = 1 }, { topic = "a", partition = 1, offset = 2 },
      { topic = "a", partition = 2, offset = 0 } }, snap.kafka)
    assert.are.equal(MIN_INT, snap.last_wm)
    read(buf)
    pos.notify_checkpoint_complete(7)
    assert.are.same({ { "a/0@1", "a/1@2", "a/2@0" } }, f.commits)
    pos.notify_checkpoint_complete(8, true) -- the end: the current offsets
    assert.are.same({ "a/0@2", "a/1@2", "a/2@0" }, f.commits[2])
    -- restored (another subtask at parallelism 2 had a/1 and a/2... here
    -- all three): assigned from the snapshot's offsets
    local g = fake({})
    local _, pos2 = open(g, node(), rt(0, 1))
    pos2.restore(snap)
    assert.are.same({ "a/0@1", "a/1@2", "a/2@0" }, g.assigned)
  end)
end)
