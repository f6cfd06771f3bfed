--- tide.modules: C modules in jobs (core/tide.h's module API; docs/MODULES.md).
--
-- The builder side: tide.load_module(path) gives a table of the module's
-- operators; env:add_source(m.op, config), stream:transform(m.op, config)
-- and stream:add_sink(m.op, config) add them to the graph, with config
-- (plain Lua data) encoded as MessagePack for the module's open.
--
-- The runtime side: the module operators of a task are nodes of one C
-- chain (core.module_chain, core/modchain.h), built with the other
-- operators by runtime.build. Each node's output is wired in C where it
-- can be: to the next module operator (record views, no conversion), to an
-- exchange (bytes straight into td_task_emit; a hash edge keyed by a field
-- name or index), or dropped (a discard sink); only a Lua consumer gets a
-- boundary, whose records are decoded into Lua values after the C call
-- that filled it. A module operator right after an exchange polls it in C
-- (op.poll), and a module source reads into the chain in C, so a chain of
-- module operators runs with one call into C per batch and no Lua per
-- record.
local core = require "tide.core"
local operators = require "tide.operators"
local compat = require "tide.compat"
local state = require "tide.state"

local M = {}
local FINAL = compat.MAX_INT
local BATCH = operators.BATCH
local describe = operators.describe

-- ---- loading ----------------------------------------------------------------

local ModuleOp = {}
ModuleOp.__index = ModuleOp
ModuleOp.__tostring = function(op) return string.format("%s.%s (%s)", op.module.name, op.name, op.kind) end

local Module = {}
Module.__index = Module
Module.__tostring = function(m) return string.format("module '%s' (%s)", m.name, m.path) end

local loaded = {} -- path -> module table, per VM

--- tide.load_module(path): the module's table: name, version, path, abi,
-- and one field per operator (m.<name>), to pass to add_source, transform
-- or add_sink. Raises, naming the path, when the file does not exist, is
-- not a Tide module, was built for another ABI major, or its init fails.
function M.load(path, level)
  if type(path) ~= "string" then
    error("bad argument #1 to 'load_module' (path expected, got " .. type(path) .. ")", level + 1)
  end
  if loaded[path] then return loaded[path] end
  -- a task manager's VM opens the copy the job master shipped (tide.ship)
  local info, err = core.module_load(require("tide.ship").module_file(path))
  if not info then error("load_module: " .. err, level + 1) end
  local m = setmetatable({ name = info.name, version = info.version, path = info.path, abi = info.abi }, Module)
  for _, o in ipairs(info.ops) do
    m[o.name] = setmetatable({ module = m, name = o.name, kind = o.kind, max_fanout = o.max_fanout }, ModuleOp)
  end
  loaded[path] = m
  return m
end

local function check_op(op, fname, kinds, level)
  if getmetatable(op) ~= ModuleOp then
    error(string.format("bad argument #1 to '%s' (module operator expected, got %s)", fname,
      op == nil and "nil" or type(op)), level + 1)
  end
  if not kinds[op.kind] then
    local want = {}
    for k in pairs(kinds) do want[#want + 1] = k end
    table.sort(want)
    error(string.format("bad argument #1 to '%s' (%s is a %s operator; %s takes %s)", fname, tostring(op),
      op.kind, fname, table.concat(want, ", ")), level + 1)
  end
end

local function encode_config(config, fname, level)
  if config ~= nil and type(config) ~= "table" then
    error(string.format("bad argument #2 to '%s' (config table expected, got %s)", fname, type(config)), level + 1)
  end
  local ok, bytes = pcall(core.encode, config)
  if not ok then
    error(string.format("bad argument #2 to '%s' (config must be plain data: %s)", fname,
      tostring(bytes):gsub("^.-: ", "")), level + 1)
  end
  return bytes
end

local function props(op, config, fname, level)
  return { module = op.module.path, op = op.name, op_kind = op.kind, config = encode_config(config, fname, level + 1),
    name = op.module.name .. "." .. op.name }
end

--- env:add_source(m.source, config): a module source. config.rate_limit
-- (records/s for the whole source, shared by its subtasks) is honoured by
-- the host as the other sources' rate_limit.
function M.add_source(env, op, config, level)
  check_op(op, "add_source", { source = true }, level + 1)
  local p = props(op, config, "add_source", level + 1)
  local rate = config and config.rate_limit
  if rate ~= nil and (type(rate) ~= "number" or rate <= 0 or rate ~= rate) then
    error("add_source: rate_limit must be a positive number of records per second, not " .. tostring(rate), level + 1)
  end
  local node = { source = { type = "module", module = p.module, op = p.op, config = p.config, rate_limit = rate },
    name = p.name, op_kind = "source" }
  return env:_add_node("source", {}, node)
end

--- stream:transform(m.op, config): a module map, flat_map or filter; a
-- keyed process on a KeyedStream only.
function M.transform(stream, op, config, level)
  check_op(op, "transform", { map = true, flat_map = true, filter = true, process = true }, level + 1)
  local keyed = stream.key ~= nil
  if op.kind == "process" and not keyed then
    error(string.format("bad argument #1 to 'transform' (%s is a keyed process: it needs a keyed stream, use key_by)",
      tostring(op)), level + 1)
  end
  local p = props(op, config, "transform", level + 1)
  p.keyed = op.kind == "process" or nil
  return stream.env:_add_node("module", { stream }, p)
end

--- stream:add_sink(m.sink, config): a module sink.
function M.add_sink(stream, op, config, level)
  check_op(op, "add_sink", { sink = true }, level + 1)
  local p = props(op, config, "add_sink", level + 1)
  return stream.env:_add_node("sink", { stream }, { sink = { type = "module", module = p.module, op = p.op,
    config = p.config }, name = p.name, op_kind = "sink" })
end

-- ---- the runtime ----------------------------------------------------------

local chain_of_vm -- this VM's chain (one subtask per VM; a harness VM shares it)
local boundaries = {} -- {b =, push =, buf =, ts =}
local failed_nodes = {} -- chain node index -> graph node

local function chain()
  if not chain_of_vm then
    local ctx = core.context()
    chain_of_vm = core.module_chain(ctx and core.task_handle() or nil)
  end
  return chain_of_vm
end

-- hand every boundary's records to its Lua consumer
local function drain()
  local c = chain_of_vm
  for i = 1, #boundaries do
    local bd = boundaries[i]
    local n, has_ts = c:take(bd.b, bd.buf, bd.ts)
    if n > 0 then bd.push(bd.buf, has_ts and bd.ts or nil, n) end
  end
end

-- raise a module failure (or the cancel sentinel) from a chain call
local function raise(node, msg, failed, cancelled)
  if cancelled then error(core.CANCELLED, 0) end
  error(setmetatable({ node = failed_nodes[failed] or node, message = msg }, operators.Failure), 0)
end

-- after a chain call returning pending boundaries (or nil, failure...)
local function check(node, pending, msg, failed, cancelled)
  if pending == nil then raise(node, msg, failed, cancelled) end
  if pending > 0 then drain() end
end

local function key_of(node)
  local inp = node.inputs[1]
  return node.keyed and inp and inp.key_field or nil
end

-- the job's max parallelism (key groups): the runtime's (rt), else the
-- subtask's context's
local function max_parallelism(rt)
  local ctx = core.context()
  return rt.max_parallelism or (ctx and ctx.max_parallelism) or 128
end

-- Create node's C node and wire its output (out.targets, runtime.build).
local function add_node(node, out, rt)
  local c = chain()
  local idx = c:add(node.module or node.source and node.source.module or node.sink.module,
    node.op or (node.source and node.source.op) or node.sink.op,
    { uid = node.uid, name = node.name, job = rt.job_name or "job", subtask = rt.subtask,
      parallelism = rt.parallelism, max_parallelism = max_parallelism(rt),
      key = key_of(node) })
  failed_nodes[idx] = node
  for _, t in ipairs(out and out.targets or {}) do
    local cop, tnode, r = t.op, t.node, t.remote
    if cop and cop.module_node and not (tnode.keyed and key_of(tnode) == nil) then
      c:to_node(idx, cop.module_node)
    elseif tnode and tnode.kind == "sink" and tnode.sink.type == "discard" then
      c:to_discard(idx)
    elseif r and r.edge and not r.edge.combine and (r.edge.partition ~= "hash" or r.edge.key_field ~= nil) then
      c:to_edge(idx, r.edge.id, r.edge.key_field)
    else
      boundaries[#boundaries + 1] = { b = c:to_boundary(idx), push = t.push, buf = {}, ts = {} }
    end
  end
  return c, idx
end

-- The operator of a module node (runtime.build's contract, operators.lua).
function M.op(node, out, rt)
  local c, idx = add_node(node, out, rt)
  local config = node.config or (node.sink and node.sink.config)
  local op = { module_node = idx }
  local keyf = node.keyed and key_of(node) == nil and node.inputs[1].key or nil
  local keys = keyf and {} or nil
  function op.push(b, ts, n)
    if keys then
      for i = 1, n do
        local k = keyf(b[i])
        if k == nil then error("key_by: the key of a record is nil (" .. describe(node) .. ")", 0) end
        keys[i] = k
      end
    end
    check(node, c:push(idx, b, n, ts, keys))
  end
  function op.open() check(node, c:open(idx, config)) end
  function op.watermark(wm)
    check(node, c:watermark(idx, wm))
    if out then out.watermark(wm) end
  end
  function op.finish() check(node, c:finish(idx)) end
  -- a module's state is its own (C memory, any size): the subtask
  -- snapshots by fork
  op.snapshot_forks = true
  function op.snapshot()
    local s, msg = c:snapshot(idx)
    if not s then error(msg, 0) end
    return s
  end
  -- all: every old subtask's snapshot (its n the old parallelism); at
  -- another parallelism the keyed state and timers of this subtask's key
  -- groups come from each old snapshot that has some (M.rescale_sources)
  function op.restore(s, all)
    local olds = M.rescale_sources(all, rt, node.keyed)
    if not olds then
      if s then check(node, c:restore(idx, s)) end
      return
    end
    for _, o in ipairs(olds) do check(node, c:rescale(idx, o)) end
  end
  if node.kind == "sink" then
    function op.prepare_snapshot(id) check(node, c:pre_commit(idx, id)) end
    function op.notify_checkpoint_complete(id, final) check(node, c:commit(idx, final and FINAL or id)) end
  end
  -- the head of a task behind an exchange: records straight from the
  -- exchange into C (a keyed process needs a key it can take in C)
  if not keyf then
    function op.poll(_, _, timeout)
      local pending, r, edge, event, value = c:poll(idx, timeout)
      if pending == nil then raise(node, r, edge, event) end
      if pending > 0 then drain() end
      if r == 0 then return nil end
      if r == 2 then return 0 end
      return 0, edge, event, value, false
    end
  end
  return op
end

--- The operator of a module source node (ops.source).
function M.source_op(node, out, rt)
  local c, idx = add_node(node, out, rt)
  return { module_node = idx, push = function() end, finish = function() check(node, c:finish(idx)) end }
end

--- The source's reader and position (operators.open_source's contract):
-- read() runs a batch through the chain in C and returns its record count
-- and true (the records are pushed already); 0 and false at the end.
function M.open_source(node, rt)
  local c = chain()
  local idx
  for i, n in pairs(failed_nodes) do
    if n == node then idx = i end
  end
  assert(idx, "module source not built")
  check(node, c:open(idx, node.source.config))
  local ended, sleep = false, core.sleep_ms
  local function read(_, max)
    if ended then return 0 end
    local pending, n, e, cancelled = c:read(idx, max or BATCH)
    if pending == nil then raise(node, n, e, cancelled) end
    if pending > 0 then drain() end
    if e then ended = true end
    if n == 0 then
      if ended then return 0 end
      sleep(1) -- nothing right now: do not spin
    end
    return n, true
  end
  return read, {
    readers = rt.parallelism,
    snapshot_forks = true,
    snapshot = function()
      local s, msg = c:snapshot(idx)
      if not s then error(msg, 0) end
      return s
    end,
    restore = function(s) check(node, c:restore(idx, s)) end,
    -- at another parallelism (runtime.lua: old subtask i's position to new
    -- subtask i mod p): a source's own state cannot be split, so only
    -- empty ones restore (M.rescale_refusal refused the others)
    restore_splits = function(list)
      for _, s in ipairs(list) do check(node, c:rescale(idx, s)) end
    end,
  }
end

--- The old snapshots a module operator restores from at another
-- parallelism, or nil at the same one (restore its own snapshot). all:
-- every old subtask's snapshot (the runtime's lazy list, all.n the old
-- parallelism). A keyed process reads the old subtasks whose key-group
-- range overlaps its own (Flink's restore of keyed state by key-group
-- range); other operators every old subtask's (their own state must be
-- empty, which td_modchain_rescale checks).
function M.rescale_sources(all, rt, keyed)
  local n = all and (all.n or #all) or 0
  if n == 0 or n == rt.parallelism then return nil end
  local maxp = max_parallelism(rt)
  local first, last = state.key_group_range(maxp, rt.parallelism, rt.subtask)
  local olds = {}
  for i = 1, n do
    local f, l = state.key_group_range(maxp, n, i - 1)
    if not keyed or (f <= last and l >= first) then
      local o = all[i]
      if o then olds[#olds + 1] = o end
    end
  end
  return olds
end

-- the module snapshots in a state file's value v (a module operator's
-- bytes, or wrapped with a source position and combiner partials)
local function module_snapshots(v)
  if type(v) == "string" then return { v } end
  local out = {}
  if type(v) == "table" then
    if type(v.op) == "string" then out[#out + 1] = v.op end
    if type(v.source) == "string" then out[#out + 1] = v.source end
  end
  return out
end

--- Why module operator node n (a graph node) cannot be restored from the
-- snapshots of its old_p old subtasks at another parallelism, or nil.
-- Keyed state and timers are redistributed by key group; the state of the
-- module's own (what its snapshot callback wrote: a source's position, a
-- sink's pending transaction) cannot be split, so an operator whose old
-- subtasks wrote any is refused, as Flink refuses to rescale state it
-- cannot redistribute. An operator without a snapshot callback has none,
-- and its files are not read. read(s) gives old subtask s's state file
-- value (checkpoint.lua).
function M.rescale_refusal(n, old_p, read)
  local path = n.module or (n.source and n.source.module) or (n.sink and n.sink.module)
  local opname = n.op or (n.source and n.source.op) or (n.sink and n.sink.op)
  local info = core.module_load(path)
  local has_snapshot = true
  for _, o in ipairs(info and info.ops or {}) do
    if o.name == opname then has_snapshot = o.snapshot end
  end
  if not has_snapshot then return nil end
  for s = 0, old_p - 1 do
    for _, bytes in ipairs(module_snapshots(read(s))) do
      local ok, t = pcall(core.decode, bytes)
      local own = ok and type(t) == "table" and t[4]
      if type(own) == "string" and #own > 0 then
        return string.format("%s (uid '%s') is a C module operator whose subtask %d of %d wrote state of its " ..
          "own (%d bytes from its snapshot callback: e.g. a source's position or a sink's pending transaction), " ..
          "which cannot be split by key group (only keyed state and timers are redistributed)", n.name, n.uid,
          s + 1, old_p, #own)
      end
    end
  end
  return nil
end

operators.ops.module = M.op
return M
