--- tide.testing: a test harness for operators, like Flink's
-- OneInputStreamOperatorTestHarness / KeyedOneInputStreamOperatorTestHarness.
--
--   local testing = require "tide.testing"
--   local h = testing.harness(function(s)
--     return s:key_by("key"):window(tide.windows.tumbling(10)):reduce(add)
--   end)
--   h:process({ key = "a", n = 1 }, 3)   -- a record with timestamp 3 ms
--   h:watermark(9)                        -- fires the window [0, 10)
--   h:output()  --> { {value = {...}, ts = 9}, {watermark = 9} }
--
-- The harness runs the real operator code of the pipeline that build()
-- makes from its input stream, in this VM, with no threads and no clock of
-- its own: processing time only moves with h:processing_time(t). Every
-- operator of the pipeline runs chained, as subtask 0 of parallelism 1
-- unless opts.subtask and opts.parallelism say otherwise (to test how
-- operator state is redistributed when a job is restored with a new
-- parallelism: one harness per old subtask, h:snapshot() of each, then one
-- harness per new subtask restored from the list of those snapshots).
local tide = require "tide"
local core = require "tide.core"
local runtime = require "tide.runtime"
local operators = require "tide.operators"
local compat = require "tide.compat"
local state = require "tide.state"

local math_type, is_integer = compat.math_type, compat.is_integer

local M = {}

local TMP = os.getenv("TMPDIR") or "/tmp"
local harnesses, snapshots = 0, 0
local function harness_seq()
  harnesses = harnesses + 1
  return harnesses
end
-- the shared directory of harness snapshots (RocksDB files): one for
-- every process of the user, safe to share since files are named by
-- content and written by rename
local shared
local function shared_dir()
  if not shared then
    shared = TMP .. "/tide-harness-shared"
    assert(core.mkdir_p(shared))
  end
  return shared
end

-- The harness's capture operator: records what reaches the end of the
-- pipeline, in order, with the watermarks between the records.
operators.ops.harness_capture = function(node)
  local list = node.capture
  return {
    push = function(b, ts, n)
      for i = 1, n do list[#list + 1] = { value = b[i], ts = ts and ts[i] } end
    end,
    watermark = function(wm) list[#list + 1] = { watermark = wm } end,
    status = function() end,
  }
end

local Harness = {}
Harness.__index = Harness

local function check_opts(opts)
  local p, i = opts.parallelism or 1, opts.subtask or 0
  if math_type(p) ~= "integer" or p < 1 then
    error("bad argument #2 to 'harness' (parallelism: positive integer expected)", 3)
  end
  if math_type(i) ~= "integer" or i < 0 or i >= p then
    error("bad argument #2 to 'harness' (subtask: integer in [0, parallelism) expected)", 3)
  end
  local rk = opts.rocksdb
  if rk ~= nil and (type(rk) ~= "table" or (rk.timer_service ~= nil and rk.timer_service ~= "heap"
    and rk.timer_service ~= "rocksdb") or (rk.timer_cache ~= nil and (math_type(rk.timer_cache) ~= "integer"
    or rk.timer_cache < 1))) then
    error("bad argument #2 to 'harness' (rocksdb: {timer_service = 'rocksdb' | 'heap', timer_cache = n} expected)", 3)
  end
  local r = opts.restore
  if r ~= nil and type(r) ~= "string" then
    local ok = type(r) == "table" and #r > 0
    for j = 1, ok and #r or 0 do ok = ok and type(r[j]) == "string" end
    if not ok then
      error("bad argument #2 to 'harness' (restore: a snapshot or a non-empty array of snapshots expected)", 3)
    end
  end
  return i, p
end

--- Create a harness.
-- @param build function(stream) -> stream: the pipeline under test, built
--   on the harness's input stream (key_by, window, process ...)
-- @param opts table, optional:
--   subtask, parallelism: integers (default 0 and 1), the subtask this
--     harness runs (ctx.subtask, ctx.parallelism);
--   restore: a snapshot from h:snapshot(), to start from that state, or an
--     array of snapshots {snap_0, snap_1, ...}, one per old subtask in
--     subtask order (a single snapshot is the array {snap}). Operators are
--     matched by uid. Operator state is redistributed from all of them to
--     this subtask (lua/tide/operator_state.lua); keyed state and timers
--     come from the old subtask with this harness's index (none when there
--     is no such one): keyed state is not redistributed here.
--   runtime_mode: "streaming" (default) or "batch".
--   state_backend: "heap" or "rocksdb", where keyed state lives (default
--     "heap", or the environment variable TIDE_TEST_STATE_BACKEND: the
--     suite runs every spec on both); rocksdb instances live under
--     $TMPDIR, snapshots upload their files to a shared directory of this
--     process's harnesses.
--   rocksdb: the RocksDB options of tide.env's rocksdb table that apply
--     here: timer_service ("rocksdb" | "heap") and timer_cache.
-- Process functions' open hooks run once the state is restored.
-- @return Harness
-- Raises on bad arguments, and on state an operator cannot restore.
local function new_harness(build, opts, n_inputs)
  opts = opts or {}
  if type(build) ~= "function" then error("bad argument #1 to 'harness' (function expected)", 3) end
  local subtask, parallelism = check_opts(opts)
  local backend = opts.state_backend or os.getenv("TIDE_TEST_STATE_BACKEND") or "heap"
  if backend ~= "heap" and backend ~= "rocksdb" then
    error("bad argument #2 to 'harness' (state_backend: 'heap' or 'rocksdb' expected)", 3)
  end
  local env = tide.env{ parallelism = 1, runtime_mode = opts.runtime_mode }
  local inputs = {}
  for i = 1, n_inputs do
    inputs[i] = env:_add_node("source", {}, { name = "harness_input", source = { type = "harness" } })
  end
  local result = build(compat.unpack(inputs))
  if type(result) ~= "table" or result.env ~= env then
    error("harness: the build function must return the stream to test", 3)
  end
  local h = setmetatable({ out = {}, sides = {}, warnings = {}, clock = 0, env = env }, Harness)
  env:_add_node("harness_capture", { result }, { name = "harness_output", capture = h.out })
  local ids, consumers = {}, {}
  for id, node in ipairs(env.nodes) do
    ids[id] = id
    node.uid = node.uid or (node.kind .. "-" .. node.id)
    consumers[id] = {}
  end
  for id, node in ipairs(env.nodes) do
    local seen = {}
    for _, inp in ipairs(node.inputs) do
      if not seen[inp.node] then
        table.insert(consumers[inp.node], id)
        seen[inp.node] = true
      end
    end
  end
  local rt = {
    subtask = subtask, parallelism = parallelism, job_id = "0", job_name = "harness",
    max_parallelism = opts.max_parallelism or 128,
    batch = env.runtime_mode == "batch", now = function() return h.clock end,
    warn = function(line) h.warnings[#h.warnings + 1] = line end,
  }
  local sides = h.sides
  -- the operators' keyed state: of the backend asked for, made while they
  -- are built (the configuration is this VM's: put back afterwards)
  h.state_cfg = { backend = backend, dir = string.format("%s/tide-harness-%d-%d", TMP, harness_seq(), core.monotonic_us()),
    shared_dir = shared_dir(), restore_shared = shared_dir(), rocksdb = opts.rocksdb }
  state.configure(h.state_cfg)
  h.ops, h.op_of_fn = runtime.build(env, ids, rt,
    function(node) return consumers[node.id] end,
    function() return {} end,
    function(_, tag)
      return function(b, ts, n)
        local list = sides[tag] or {}
        sides[tag] = list
        for i = 1, n do list[#list + 1] = { value = b[i], ts = ts and ts[i] } end
      end
    end)
  h.head = h.ops[1]
  h.heads = {}
  for i = 1, n_inputs do h.heads[i] = h.ops[i] end
  h.handler = runtime.handler(h.op_of_fn)
  h.subtask = subtask
  if opts.restore then h:_restore(opts.restore) end
  h:_state("db")
  state.configure(nil)
  -- open, as Flink's OperatorChain does: after restore, from the tail
  for id = #env.nodes, 1, -1 do
    local f = h.ops[id].open
    if f then h:_call(f) end
  end
  return h
end

function M.harness(build, opts) return new_harness(build, opts, 1) end

--- Create a two-input harness (Flink's TwoInputStreamOperatorTestHarness
-- / KeyedTwoInputStreamOperatorTestHarness): build(s1, s2) -> stream, the
-- pipeline under test on two input streams (s1:connect(s2):process{...},
-- s1:key_by(f):interval_join(s2:key_by(g))..., s1:join(s2)...). Feed with
-- h:process1(v, ts) / h:process2(v, ts) and h:watermark1(ms) /
-- h:watermark2(ms): a two-input operator's watermark is the minimum of
-- both inputs', as in a job. Everything else (output, side_output,
-- processing_time, snapshot, restore, finish) is the one-input harness's.
-- @param build function(stream1, stream2) -> stream
-- @param opts table, optional: as harness's
-- @return Harness
function M.two_input_harness(build, opts) return new_harness(build, opts, 2) end

-- Call method `name` of every keyed-state backend that needs the
-- runtime's calls (RocksDB ones).
function Harness:_state(name, ...)
  for _, b in ipairs(self.state_cfg.backends or {}) do b[name](b, ...) end
end

-- Run an operator entry point, then end the "batch" as the runtime does
-- (keyed state written back).
function Harness:_call(f, ...)
  state.configure(self.state_cfg) -- backends made now are this harness's
  local ok, err = xpcall(f, self.handler, ...)
  if ok then ok, err = pcall(self._state, self, "flush") end
  state.configure(nil)
  if not ok then error(err, 0) end
end

--- Feed one record, with an event timestamp (integer ms) or none.
function Harness:process(value, ts)
  if value == nil then error("bad argument #1 to 'process' (record expected)", 2) end
  if ts ~= nil and not is_integer(ts) then
    error("bad argument #2 to 'process' (integer timestamp in ms expected)", 2)
  end
  self:_call(self.head.push, { value }, ts ~= nil and { ts } or nil, 1)
end

--- Feed a watermark (integer ms).
function Harness:watermark(ts)
  if not is_integer(ts) then error("bad argument #1 to 'watermark' (integer ms expected)", 2) end
  self:_call(self.head.watermark, ts)
end

local function feed(self, i, fname, value, ts)
  local head = self.heads[i]
  if not head then error("'" .. fname .. "': this harness has one input (use testing.two_input_harness)", 3) end
  if value == nil then error("bad argument #1 to '" .. fname .. "' (record expected)", 3) end
  if ts ~= nil and not is_integer(ts) then
    error("bad argument #2 to '" .. fname .. "' (integer timestamp in ms expected)", 3)
  end
  self:_call(head.push, { value }, ts ~= nil and { ts } or nil, 1)
end

local function feed_watermark(self, i, fname, ts)
  local head = self.heads[i]
  if not head then error("'" .. fname .. "': this harness has one input (use testing.two_input_harness)", 3) end
  if not is_integer(ts) then error("bad argument #1 to '" .. fname .. "' (integer ms expected)", 3) end
  self:_call(head.watermark, ts)
end

--- Two-input harness: feed one record to input 1 / 2, with an event
-- timestamp (integer ms) or none.
function Harness:process1(value, ts) feed(self, 1, "process1", value, ts) end
function Harness:process2(value, ts) feed(self, 2, "process2", value, ts) end

--- Two-input harness: input 1's / 2's watermark (integer ms).
function Harness:watermark1(ts) feed_watermark(self, 1, "watermark1", ts) end
function Harness:watermark2(ts) feed_watermark(self, 2, "watermark2", ts) end

--- Advance processing time to t (ms) and fire what is due.
function Harness:processing_time(t)
  if not is_integer(t) then error("bad argument #1 to 'processing_time' (integer ms expected)", 2) end
  self.clock = t
  for id = 1, #self.env.nodes do
    local op = self.ops[id]
    if op.next_timer then
      local d = op.next_timer()
      if d and d <= t then self:_call(op.processing_time, t) end
    end
  end
end

--- End of input: the final watermark, then every operator's finish.
function Harness:finish()
  for _, head in ipairs(self.heads) do self:_call(head.watermark, compat.MAX_INT) end
  for id = 1, #self.env.nodes do
    local f = self.ops[id].finish
    if f then self:_call(f) end
  end
end
Harness.close = Harness.finish

--- What the pipeline emitted so far, in order: {value = v, ts = t} for
-- records (ts nil when the record has no timestamp) and {watermark = t}.
function Harness:output()
  local copy = {}
  for i, e in ipairs(self.out) do copy[i] = e end
  return copy
end

--- The records sent to side output `tag` (e.g. late records), in order,
-- as {value = v, ts = t}.
function Harness:side_output(tag)
  local copy = {}
  for i, e in ipairs(self.sides[tag] or {}) do copy[i] = e end
  return copy
end

--- Forget the output and side outputs collected so far.
function Harness:clear_output()
  for i = #self.out, 1, -1 do self.out[i] = nil end
  for tag in pairs(self.sides) do self.sides[tag] = nil end
end

--- An opaque snapshot of every operator's state (keyed state, timers,
-- window contents), for testing.harness(build, {restore = snap}).
function Harness:snapshot()
  snapshots = snapshots + 1
  self:_state("prepare_snapshot", snapshots)
  state.configure(self.state_cfg)
  local data = {}
  local ok, err = pcall(function()
    for id, node in ipairs(self.env.nodes) do
      local op = self.ops[id]
      if op.snapshot then data[node.uid] = op.snapshot() end
    end
  end)
  state.configure(nil)
  if not ok then error(err, 0) end
  return core.encode(data)
end

--- Release the harness's state storage (RocksDB: its working directories
-- are removed; garbage collection does it too).
function Harness:dispose()
  self:_state("close")
end

-- Restore from one snapshot or from an array of old subtasks' snapshots:
-- op.restore(s, all) with s = the old subtask of the same index's state and
-- all = every old subtask's (false where one has none). An operator with no
-- old state of its own is restored only when the old snapshots carry
-- operator state or keyed state for it (the `operator_state` and `keyed`
-- fields, or a C module operator's snapshot), which it takes from all:
-- keyed state by key-group range.
function Harness:_restore(snaps)
  if type(snaps) == "string" then snaps = { snaps } end
  local datas = {}
  for i, snap in ipairs(snaps) do datas[i] = core.decode(snap) end
  for id, node in ipairs(self.env.nodes) do
    local all, any, redistributed = {}, false, false
    for i, data in ipairs(datas) do
      local s = data[node.uid]
      all[i] = s ~= nil and s or false
      if s ~= nil then
        any = true
        if type(s) == "table" and (s.operator_state ~= nil or s.keyed ~= nil) then redistributed = true end
        -- a C module operator's (bytes): its keyed state by key-group range
        if node.kind == "module" then redistributed = true end
      end
    end
    local s = all[self.subtask + 1] or nil
    if any and (s ~= nil or redistributed) then
      local op = self.ops[id]
      if not op.restore then error("harness: operator '" .. node.uid .. "' cannot restore state", 3) end
      self:_call(op.restore, s, all)
    end
  end
end

return M
