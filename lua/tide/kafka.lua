--- tide.kafka: the Kafka source (Flink's KafkaSource) and sink (Flink's
-- KafkaSink) over the client in core/kafka.c (core.kafka_new). The user
-- API (env:read_kafka, stream:write_kafka) is in lua/tide.lua; the
-- guarantees are in docs/CONNECTORS.md.
local core = require "tide.core"
local compat = require "tide.compat"
local util = require "tide.util"

local MIN_INT = compat.MIN_INT
local M = {}

local POLL_MS = 100 -- how long an unbounded source waits for a record
local BATCH = 1024 -- records per batch read (tide.operators.BATCH)

-- librdkafka properties: the user's, then the ones the options set
local function conf(cfg, extra)
  local c = {}
  for k, v in pairs(cfg.properties or {}) do c[k] = v end
  c["bootstrap.servers"] = cfg.bootstrap_servers
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

local function tp_of(topic, partition) return topic .. "/" .. partition end

-- ---- source -------------------------------------------------------------

-- The partitions the source reads, sorted by topic and partition.
local function all_partitions(c, cfg, fail)
  local topics = cfg.topics
  if not topics then
    local names, err = c:topics(cfg.timeout)
    if not names then fail(err) end
    topics = {}
    for _, t in ipairs(names) do
      if t:find("^" .. cfg.topic_pattern .. "$") then topics[#topics + 1] = t end
    end
    table.sort(topics)
  end
  local list = {}
  for _, t in ipairs(topics) do
    local ids, err = c:partitions(t, cfg.timeout)
    if not ids then fail(err) end
    for _, p in ipairs(ids) do list[#list + 1] = { topic = t, partition = p } end
  end
  table.sort(list, function(a, b)
    if a.topic ~= b.topic then return a.topic < b.topic end
    return a.partition < b.partition
  end)
  return list
end

-- The first offset to read of a partition (Flink's OffsetsInitializer).
local function start_offset(c, cfg, s, fail)
  local so, t, p = cfg.starting_offsets, s.topic, s.partition
  local lo, hi = c:watermarks(t, p, cfg.timeout)
  if not lo then fail(hi) end
  if so == "earliest" then return lo end
  if so == "latest" then return hi end
  local off, err
  if so == "committed" then
    off, err = c:committed(t, p, cfg.timeout)
    if not off then fail(err) end
    -- none committed: from the earliest, as Flink's
    -- committedOffsets(OffsetResetStrategy.EARLIEST)
    if off < 0 then return lo end
    return off
  end
  off, err = c:offset_for_time(t, p, so.timestamp, cfg.timeout)
  if not off then fail(err) end
  return off < 0 and hi or off
end

--- The source subtask's reader and position (tide.operators.open_source's
-- contract): topic partitions are the splits; partition j of the sorted
-- list of every partition of the source's topics goes to subtask j mod
-- parallelism at the first start (as Flink's KafkaSourceEnumerator, which
-- assigns each split to one reader deterministically). A partition's
-- state is {topic, partition, offset = the next offset to read, stop =
-- the offset it ends at (bounded) or nil}; restored, a subtask reads the
-- partitions of its restored state from their offsets (at another
-- parallelism, those of the old subtasks it is given). Partitions added
-- to a topic after the first start are not read (Flink's KafkaSource
-- without partition discovery).
--
-- position.emit(head) sends the watermark (records carry the Kafka
-- timestamp as event time when node.source.watermarks is a strategy):
-- one generator per partition (max timestamp - bound - 1), the min over
-- the partitions neither idle (no record for the strategy's idleness)
-- nor ended; all of them idle: the status "idle" (Flink's per-split
-- watermarks and idleness). position.prepare_snapshot(id) remembers the
-- offsets of checkpoint id, and notify_checkpoint_complete(id) commits
-- them to the consumer group (monitoring only; at the end of a bounded
-- job, the end offsets).
-- @param fail function(message): raises the operator's failure
function M.open_source(node, rt, fail)
  local cfg = node.source
  local extra = { ["client.id"] = string.format("tide-%s-%d", node.uid, rt.subtask) }
  -- librdkafka's consumer needs a group even for assigned partitions;
  -- without group_id a private one, never committed to
  extra["group.id"] = cfg.group_id or string.format("tide-%s-%s", rt.job_id, node.uid)
  local c, err = core.kafka_new("consumer", conf(cfg, extra))
  if not c then fail(err) end
  local parts -- the partitions of this subtask, nil until started
  local by_tp, active = {}, 0
  local raw, strategy = cfg.format == "raw", cfg.watermarks
  local bound, idleness = strategy and strategy.bound, strategy and strategy.idleness
  local ts = strategy and {} or nil
  local tps, offs, tps_ts = {}, {}, {}
  local last_wm, idle, head_wm = MIN_INT, false, nil
  local pending = {} -- checkpoint id -> offsets to commit

  local function set_parts(list)
    parts, by_tp, active = list, {}, 0
    local topics, ids, starts = {}, {}, {}
    local now = rt.now()
    for _, s in ipairs(list) do
      by_tp[tp_of(s.topic, s.partition)] = s
      s.done = s.stop ~= nil and s.offset >= s.stop
      s.max_ts, s.seen = MIN_INT, now
      if not s.done then
        active = active + 1
        topics[#topics + 1], ids[#ids + 1], starts[#starts + 1] = s.topic, s.partition, s.offset
      end
    end
    local ok, aerr = c:assign(topics, ids, starts)
    if not ok then fail(aerr) end
  end

  local function start()
    local list = {}
    for j, s in ipairs(all_partitions(c, cfg, fail)) do
      if (j - 1) % rt.parallelism == rt.subtask then
        s.offset = start_offset(c, cfg, s, fail)
        if cfg.stopping_offsets == "latest" then
          local _, hi = c:watermarks(s.topic, s.partition, cfg.timeout)
          s.stop = hi
        end
        list[#list + 1] = s
      end
    end
    set_parts(list)
  end

  local function finish_part(s)
    if not s.done then
      s.done = true
      active = active - 1
    end
  end

  local function read(buf, max)
    if not parts then start() end
    if active == 0 and cfg.stopping_offsets then return 0 end
    local n, eofs = c:read(buf, ts or tps_ts, tps, offs, max or BATCH, POLL_MS, raw)
    if not n then fail(eofs) end
    local fatal = c:fatal()
    if fatal then fail(fatal) end
    local j, now = 0, rt.now()
    for i = 1, n do
      local s, off = by_tp[tps[i]], offs[i]
      if s and not s.done then
        j = j + 1
        buf[j] = buf[i]
        s.offset = off + 1
        s.seen = now
        if ts then
          local t = ts[i]
          ts[j] = t
          if t > s.max_ts then s.max_ts = t end
        end
        if s.stop and s.offset >= s.stop then finish_part(s) end
      end
    end
    for i = j + 1, n do buf[i] = nil end
    if eofs then
      for i = 1, #eofs, 2 do
        local s = by_tp[eofs[i]]
        if s and s.stop and eofs[i + 1] >= s.stop then
          s.offset = math.max(s.offset, s.stop)
          finish_part(s)
        end
      end
    end
    if j == 0 then return 0, active > 0 or not cfg.stopping_offsets end
    return j, false, ts
  end

  local position = { readers = rt.parallelism }

  if strategy then
    -- the min of the partitions' watermarks over those not ended and
    -- seen at or after `since` (nil: none)
    local function min_wm(since)
      local wm
      for _, s in ipairs(parts or {}) do
        if not s.done and s.seen >= since then
          local w = s.max_ts == MIN_INT and MIN_INT or s.max_ts - bound - 1
          if not wm or w < wm then wm = w end
        end
      end
      return wm
    end
    local function advance(wm)
      if wm and wm > last_wm and wm ~= MIN_INT then
        last_wm = wm
        head_wm(wm)
      end
    end
    function position.emit(head)
      head_wm = head.watermark
      local now = rt.now()
      local wm = min_wm(idleness and now - idleness + 1 or MIN_INT)
      if wm then
        if idle then
          idle = false
          head.status("active")
        end
        return advance(wm)
      end
      if idle or (active == 0 and (#(parts or {}) > 0 or cfg.stopping_offsets)) then return end
      -- every partition idle (or none assigned, unbounded): downstream
      -- watermarks do not wait for this subtask. Idleness is checked
      -- between batches, as if continuously: the partitions that went idle
      -- last were the only active ones just before, so their watermark is
      -- sent first (several going idle between two checks do not skip it)
      local latest = MIN_INT
      for _, s in ipairs(parts or {}) do
        if not s.done and s.seen > latest then latest = s.seen end
      end
      advance(min_wm(latest))
      idle = true
      head.status("idle")
    end
  end

  local function offsets()
    local list = {}
    for i, s in ipairs(parts or {}) do
      list[i] = { topic = s.topic, partition = s.partition, offset = s.offset, stop = s.stop }
    end
    return list
  end

  -- (snapshot may run in the checkpoint's child process, where librdkafka
  -- cannot be called: prepare_snapshot, on the task thread, starts first)
  function position.snapshot()
    assert(parts, "kafka source: snapshot before prepare_snapshot")
    return { kafka = offsets(), last_wm = last_wm }
  end
  function position.restore_splits(olds)
    local list = {}
    for _, o in ipairs(olds) do
      for _, s in ipairs(o.kafka or {}) do list[#list + 1] = s end
      -- the watermark already sent downstream is not sent again
      if o.last_wm and (#list > 0) and o.last_wm > last_wm then last_wm = o.last_wm end
    end
    table.sort(list, function(a, b)
      if a.topic ~= b.topic then return a.topic < b.topic end
      return a.partition < b.partition
    end)
    set_parts(list)
  end
  function position.restore(s) position.restore_splits({ s }) end
  function position.close() c:close() end

  function position.prepare_snapshot(id)
    if not parts then start() end
    if cfg.group_id then pending[id] = offsets() end
  end
  if cfg.group_id then
    -- final: the job's end (the source read all it will): its offsets,
    -- committed synchronously (the process may end right after)
    function position.notify_checkpoint_complete(id, final)
      local list = final and offsets() or pending[id]
      for k in pairs(pending) do
        if k <= id then pending[k] = nil end
      end
      if not list or #list == 0 then return end
      local topics, ids, o = {}, {}, {}
      for i, s in ipairs(list) do topics[i], ids[i], o[i] = s.topic, s.partition, s.offset end
      -- a failed commit is not the job's failure: the offsets are only for
      -- monitoring (Flink logs it and goes on)
      local ok, cerr = c:commit(topics, ids, o, final)
      if not ok then rt.warn(string.format("%s: cannot commit offsets to group '%s': %s", node.name, cfg.group_id,
        cerr)) end
    end
  end
  return read, position
end

-- ---- sink ---------------------------------------------------------------

-- the final pre-commit's id: above every checkpoint id, exact on both VMs
local FINAL = 4503599627370496

-- the group whose committed offset marks, inside each transaction, the
-- last pre-commit id it carried (see M.sink)
local function marker_group(cfg, job_id, subtask)
  return string.format("%s-%s-%d", cfg.transactional_id_prefix, job_id, subtask)
end

--- The sink's push function and its committer (tide.operators' sink
-- contract: finish, prepare_snapshot, snapshot, restore,
-- notify_checkpoint_complete), as Flink's KafkaSink:
--   "none": records go out as they come (acks per the properties);
--   "at_least_once": the idempotent producer, flushed at every barrier
--     (the checkpoint completes only once every record before it was
--     acknowledged) and at the end;
--   "exactly_once": two-phase commit with a write-ahead log (librdkafka
--     cannot resume another process's transaction, which Flink's
--     KafkaSink does to commit after a crash): the records of a
--     checkpoint interval are pre-committed at the barrier into the
--     subtask's snapshot; when the checkpoint completes they are written
--     in one Kafka transaction (transactional.id = <prefix>-<subtask>),
--     which also commits, for the group <prefix>-<job id>-<subtask>, the
--     pre-commit's checkpoint id as an offset (the marker), atomically
--     with the records. Recovery fences the transactional id (init
--     aborts what a dead producer left open), reads the marker and writes
--     the restored checkpoint's pre-committed records the marker does not
--     cover, so each is committed once.
function M.sink(node, rt, fail)
  local cfg = node.sink
  local guarantee = cfg.delivery_guarantee
  local eos = guarantee == "exactly_once"
  local function producer(subtask)
    local extra = { ["client.id"] = string.format("tide-%s-%d", node.uid, subtask) }
    if guarantee == "at_least_once" then extra["enable.idempotence"] = "true" end
    if eos then extra["transactional.id"] = cfg.transactional_id_prefix .. "-" .. subtask end
    local p, err = core.kafka_new("producer", conf(cfg, extra))
    if not p then fail(err) end
    if eos then
      local ok, ierr = p:txn_init(cfg.timeout)
      if not ok then fail(ierr) end
    end
    return p
  end
  local function check(ok, err) if not ok then fail(err) end end

  local p -- the producer, created on first use or by restore
  local function prod()
    if not p then p = producer(rt.subtask) end
    return p
  end
  local key, fmt = cfg.key, util.format
  local keys = key and {} or nil
  local values = {}
  local buffered = { keys = key and {} or nil, values = {}, n = 0 } -- exactly_once: this interval's
  local pending = {} -- exactly_once: pre-committed {id, keys, values, n}, by id order

  local function kv(b, n)
    for i = 1, n do
      local v = b[i]
      values[i] = type(v) == "string" and v or fmt(v)
      if keys then
        local k
        if type(key) == "function" then
          k = key(v)
        elseif type(v) == "table" then
          k = v[key]
        else
          fail(string.format("key = '%s' names a field, but a record is a %s, not a table: %s", tostring(key),
            type(v), fmt(v)))
        end
        keys[i] = k ~= nil and tostring(k) or false
      end
    end
  end

  local push
  if eos then
    push = function(b, _, n)
      kv(b, n)
      local bk, bv, m = buffered.keys, buffered.values, buffered.n
      for i = 1, n do
        bv[m + i] = values[i]
        if bk then bk[m + i] = keys[i] end
      end
      buffered.n = m + n
    end
  else
    push = function(b, _, n)
      kv(b, n)
      check(prod():produce(cfg.topic, keys, values, n))
    end
  end

  -- one transaction: the pending batches up to id (in order) and the
  -- marker; group: the marker's group (another subtask's when recovering
  -- its state after rescaling)
  local function commit_through(pr, list, id, group)
    local upto, any = nil, false
    for _, b in ipairs(list) do
      if b.id <= id then any, upto = true, b.id end
    end
    if not any then return list end
    check(pr:txn_begin())
    local rest = {}
    for _, b in ipairs(list) do
      if b.id <= id then
        if b.n > 0 then check(pr:produce(cfg.topic, b.keys, b.values, b.n)) end
      else
        rest[#rest + 1] = b
      end
    end
    check(pr:txn_send_offset(group, cfg.topic, 0, upto, cfg.timeout))
    check(pr:txn_commit(cfg.timeout))
    return rest
  end

  -- the marker of group: the last pre-commit id committed (-1: none)
  local function marker(group)
    local c, err = core.kafka_new("consumer", conf(cfg, { ["group.id"] = group }))
    if not c then fail(err) end
    local off, merr = c:committed(cfg.topic, 0, cfg.timeout)
    c:close()
    if not off then fail(merr) end
    return off
  end

  -- recover old subtask i's pre-committed batches
  local function recover(i, list)
    local group = marker_group(cfg, rt.job_id, i)
    local pr = i == rt.subtask and prod() or producer(i)
    local done = marker(group)
    local todo = {}
    for _, b in ipairs(list or {}) do
      if b.id > done then todo[#todo + 1] = b end
    end
    if #todo > 0 then commit_through(pr, todo, FINAL, group) end
    if pr ~= p then pr:close() end
  end

  local function precommit(id)
    if eos then
      buffered.id = id
      pending[#pending + 1] = buffered
      buffered = { keys = key and {} or nil, values = {}, n = 0 }
    elseif p then
      check(p:flush(cfg.timeout))
    end
  end

  return push, {
    finish = function() precommit(FINAL) end,
    prepare_snapshot = function(id)
      if guarantee ~= "none" then precommit(id) end
    end,
    snapshot = function() return eos and { pending = pending } or nil end,
    restore = function(s, all)
      if not eos then return end
      if s then recover(rt.subtask, s.pending) else prod() end
      local n = all and (all.n or #all) or 0
      for i = rt.parallelism + rt.subtask, n - 1, rt.parallelism do
        local o = all[i + 1]
        recover(i, o and o.pending)
      end
    end,
    notify_checkpoint_complete = function(id, final)
      if eos then
        pending = commit_through(prod(), pending, final and FINAL or id, marker_group(cfg, rt.job_id, rt.subtask))
      elseif final and p then
        check(p:flush(cfg.timeout))
      end
    end,
  }
end

return M
