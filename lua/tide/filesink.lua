--- tide.filesink: part files with two-phase commit, for exactly-once file
-- sinks (Flink's FileSink / StreamingFileSink with a row format).
--
-- A part file goes through three states (DESIGN.md: committed files are the
-- ones whose names do not start with "." or "_"):
--
--   in-progress  <dir>/.<prefix><n>.inprogress  being written
--   pending      <dir>/.<prefix><n>.pending     closed, flushed, fsynced
--   committed    <dir>/<prefix><n>              visible output
--
--   local w = filesink.new { dir = d, prefix = "part-<job>-<subtask>-",
--                            rolling_size = bytes, rollover_interval = ms,
--                            inactivity_interval = ms, header = s, now = f }
--   w:write_lines(lines, n)         -- lines[1..n], each followed by "\n"
--   w:on_processing_time(now)       -- time-based rolling between writes
--   local st = w:pre_commit(id)     -- on barrier id: st goes into the snapshot
--   w:commit(id)                    -- on checkpoint id complete
--   w:finish()                      -- end of a bounded job: commit everything
--   w:dispose()                     -- failure/cancel: close, commit nothing
--   local w = filesink.recover { dir = d, prefix = p, state = st, ... }
--
-- Rolling (Flink's DefaultRollingPolicy), all checked before a record:
--  * size: a file is rolled once it holds rolling_size bytes (header
--    included; as operators.lua's part_writer). A file is never rolled before
--    its first record, so no part file holds only a header.
--  * time: a file is rolled when now - created >= rollover_interval or
--    now - last write >= inactivity_interval (shouldRollOnProcessingTime),
--    checked at write_lines (once per call) and at on_processing_time(now).
--    nil disables either interval.
--  * checkpoint: pre_commit always closes the in-progress file (Flink's
--    OnCheckpointRollingPolicy): Tide has no resumable writer, so an
--    in-progress file could not be resumed at its checkpointed offset.
-- A rolled file becomes pending at once; it is committed by the first
-- completed checkpoint whose pre_commit came after the roll.
--
-- Commit (Flink's Bucket.onSuccessfulCompletionOfCheckpoint): commit(id)
-- renames the pending files of every pre-committed checkpoint <= id. It is
-- idempotent: a pending file that is gone while its committed file exists
-- was committed before; one that is gone with no committed file is an error.
--
-- Recovery (Flink's Bucket restore): recover{state = st} continues the
-- restored writer's prefix (st.prefix: the files of one job stay one series
-- across restarts and resumes), commits what st had pending, then removes
-- every in-progress and pending file of the prefix, and every committed one
-- numbered st.counter or higher: all of them were written after the
-- restored checkpoint's barrier (committed ones by a later checkpoint, when
-- recovery falls back past a corrupt newest checkpoint), and the sources
-- replay their records. New files are numbered from st.counter. Recovering
-- twice from the same state gives the same directory. Without a state,
-- recover removes the in-progress and pending files of cfg.prefix (a
-- failed attempt's) and numbers after its highest committed file, so no
-- committed file is overwritten. The writer's `taken_back` lists the
-- committed files recovery removed (to be rewritten under the same names
-- from the replayed records: the runtime warns about them).
--
-- Orphans: with cfg.job (a job name) and cfg.keep (a set of ids), recover
-- also removes the in-progress and pending files of other runs of that job
-- ("part-<job>-<id>-<subtask>-<n>") whose id is not in keep nor its own:
-- attempts killed before any checkpoint referenced their files. The
-- writer's `orphans` lists them.
--
-- Part file names (M.part_prefix): "part-<job>-<id>-<subtask>-<n>", where
-- <job> is the job name with characters other than letters, digits, '.',
-- '_' and '-' replaced by '_', and <id> the hexadecimal id of the run that
-- started the job's lineage of checkpoints (a resumed run keeps it).
--
-- Durability: a file is flushed and fsynced before it is renamed to pending;
-- the directory is fsynced after renames and removals, before pre_commit,
-- commit, finish and recover return. With defer_sync = true (the runtime's
-- sinks) a closed file is renamed to pending at once and pre_commit syncs
-- nothing: w:sync() fsyncs the pending files and the directory later, and
-- commit calls it before renaming. The runtime calls sync() from the
-- checkpoint's snapshot (the forked child, off the task thread), so the
-- fsyncs are not part of the task's pause and a checkpoint completes only
-- once its files are durable (Flink's FileSink makes its in-progress file
-- durable in the checkpoint's synchronous part instead).
--
-- The state pre_commit returns is plain Lua data (tables, strings,
-- integers):
--   { version = 1, checkpoint = id, prefix = prefix, counter = n,
--     pending = { { checkpoint = c, files = { "<prefix><k>", ... } }, ... } }
-- files are the committed basenames (the pending file of "x" is ".x.pending"),
-- pending is ordered by checkpoint and lists every checkpoint <= id that was
-- pre-committed and not yet committed.
local M = {}

local Writer = {}
Writer.__index = Writer

local STATE_VERSION = 1
local DEFAULT_ROLLING_SIZE = 128 * 1024 * 1024 -- Flink's DefaultRollingPolicy
local BUFFER = 1024 * 1024

-- ---- file system primitives ----------------------------------------------

-- Lua has no fsync and no directory listing: tide.core provides them as
--   core.fsync(path) -> true | nil, message   (a file or a directory)
--   core.list_dir(path) -> { name, ... } | nil, message   (without . and ..)
local core = require "tide.core"
local compat = require "tide.compat"
local math_type, is_integer = compat.math_type, compat.is_integer

local function fsync(path)
  local ok, err = core.fsync(path)
  if not ok then error("cannot fsync '" .. path .. "': " .. tostring(err), 0) end
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- A Lua pattern matching s literally.
local function literal(s) return (s:gsub("%p", "%%%0")) end

local safe_name = require("tide.util").safe_name

--- The prefix of the part files of subtask `subtask` of job `job` in the
-- run lineage `id`: "part-<job>-<id>-<subtask>-".
function M.part_prefix(job, id, subtask)
  return string.format("part-%s-%s-%d-", safe_name(job), id, subtask)
end

-- The pattern of job's part file names, committed or (hidden = true) not;
-- captures the run id.
local function job_pattern(job, hidden)
  local p = "part%-" .. literal(safe_name(job)) .. "%-(%x+)%-%d+%-%d+"
  if hidden then return "^%." .. p .. "%.(%a+)$" end
  return "^" .. p .. "$"
end

--- The committed part files of job `job` in dir (any run), sorted.
-- @return array of file names (empty when dir does not exist)
function M.committed_of_job(dir, job)
  local names = core.list_dir(dir) or {}
  local pat, out = job_pattern(job), {}
  for _, name in ipairs(names) do
    if name:match(pat) then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

--- Remove the in-progress part files of run `id` of job `job` in dir (a
-- cancelled run's: never pre-committed, so no checkpoint refers to them;
-- pending files stay for --resume). Returns the names removed.
function M.remove_in_progress(dir, job, id)
  local pat, out = job_pattern(job, true), {}
  for _, name in ipairs(core.list_dir(dir) or {}) do
    local run, kind = name:match(pat)
    if run == id and kind == "inprogress" and os.remove(dir .. "/" .. name) then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

-- ---- naming ----------------------------------------------------------------

local function final_path(self, name) return self.dir .. "/" .. name end
local function pending_path(self, name) return self.dir .. "/." .. name .. ".pending" end
local function inprogress_path(self, name) return self.dir .. "/." .. name .. ".inprogress" end

-- ---- configuration ---------------------------------------------------------

local function check_interval(v, what)
  if v == nil then return math.huge end
  if math_type(v) ~= "integer" or v <= 0 then
    error(string.format("tide.filesink: %s must be a positive integer (ms), got %s", what, tostring(v)), 0)
  end
  return v
end

local function configure(cfg)
  if type(cfg) ~= "table" then error("tide.filesink: expected a configuration table", 0) end
  local dir, prefix = cfg.dir, cfg.prefix
  if type(dir) ~= "string" or dir == "" then error("tide.filesink: dir must be a non-empty string", 0) end
  if type(prefix) ~= "string" or prefix == "" or prefix:find("/", 1, true)
      or prefix:sub(1, 1) == "." or prefix:sub(1, 1) == "_" then
    error("tide.filesink: prefix must be a file name not starting with '.' or '_', got "
      .. (type(prefix) == "string" and ("'" .. prefix .. "'") or tostring(prefix)), 0)
  end
  local rolling_size = cfg.rolling_size or DEFAULT_ROLLING_SIZE
  if math_type(rolling_size) ~= "integer" or rolling_size <= 0 then
    error("tide.filesink: rolling_size must be a positive integer (bytes), got " .. tostring(rolling_size), 0)
  end
  if cfg.header ~= nil and type(cfg.header) ~= "string" then
    error("tide.filesink: header must be a string or nil", 0)
  end
  if cfg.now ~= nil and type(cfg.now) ~= "function" then
    error("tide.filesink: now must be a function returning milliseconds", 0)
  end
  local now = cfg.now or core.now_ms
  local w = setmetatable({
    dir = dir:gsub("(.)/+$", "%1"),
    prefix = prefix,
    rolling_size = rolling_size,
    rollover_interval = check_interval(cfg.rollover_interval, "rollover_interval"),
    inactivity_interval = check_interval(cfg.inactivity_interval, "inactivity_interval"),
    header = cfg.header ~= "" and cfg.header or nil,
    now = now,
    counter = 0,          -- number of the next part file
    cur = nil,            -- the in-progress file: {name, path, fh, size, records, created, updated}
    since_last = {},      -- files rolled since the last pre_commit (already pending)
    per_checkpoint = {},  -- { {checkpoint = id, files = {...}}, ... } ordered by id
    last_checkpoint = nil,
    dirty = false,        -- renames/removals not yet covered by a directory fsync
    closed = nil,         -- "finished" or "disposed"
    defer_sync = cfg.defer_sync and true or false,
    unsynced = {},        -- defer_sync: names of pending files not yet fsynced
  }, Writer)
  w.timed = w.rollover_interval ~= math.huge or w.inactivity_interval ~= math.huge
  return w
end

local function sync_dir(self)
  if self.dirty then
    fsync(self.dir)
    self.dirty = false
  end
end

local function check_open(self, what)
  if self.closed then error("tide.filesink: " .. what .. " on a " .. self.closed .. " writer", 0) end
end

-- ---- part files ------------------------------------------------------------

local function open_part(self, t)
  local name = self.prefix .. self.counter
  local path = inprogress_path(self, name)
  local fh, err = io.open(path, "wb")
  if not fh then error("cannot open part file: " .. tostring(err), 0) end
  fh:setvbuf("full", BUFFER)
  self.counter = self.counter + 1
  local cur = { name = name, path = path, fh = fh, size = 0, records = 0, created = t, updated = t }
  self.cur = cur
  if self.header then
    local ok, werr = fh:write(self.header)
    if not ok then error("cannot write part file '" .. path .. "': " .. tostring(werr), 0) end
    cur.size = #self.header
  end
  return cur
end

-- Close the in-progress file: flush, fsync, rename to pending.
local function close_part(self)
  local cur = self.cur
  self.cur = nil
  local ok, err = cur.fh:close()
  if not ok then error("cannot write part file '" .. cur.path .. "': " .. tostring(err), 0) end
  if self.defer_sync then
    self.unsynced[#self.unsynced + 1] = cur.name
  else
    fsync(cur.path)
  end
  local to = pending_path(self, cur.name)
  ok, err = os.rename(cur.path, to)
  if not ok then error("cannot move part file to pending: " .. tostring(err), 0) end
  self.dirty = true
  self.since_last[#self.since_last + 1] = cur.name
end

local function should_roll_on_time(self, cur, t)
  return t - cur.created >= self.rollover_interval or t - cur.updated >= self.inactivity_interval
end

local function write(cur, s)
  local ok, err = cur.fh:write(s)
  if not ok then error("cannot write part file '" .. cur.path .. "': " .. tostring(err), 0) end
  cur.size = cur.size + #s
end

--- Write lines[1..n] (n defaults to #lines), each followed by "\n".
function Writer:write_lines(lines, n)
  check_open(self, "write_lines")
  n = n or #lines
  if n <= 0 then return end
  local t = 0
  local cur = self.cur
  if self.timed then
    t = self.now()
    if cur and should_roll_on_time(self, cur, t) then
      close_part(self)
      cur = nil
    end
  end
  if not cur then cur = open_part(self, t) end
  cur.updated = t
  local limit = self.rolling_size
  local saved = lines[n + 1]
  lines[n + 1] = ""
  local s = table.concat(lines, "\n", 1, n + 1)
  lines[n + 1] = saved
  if cur.size + #s < limit then
    -- no record of the batch starts at or past the limit
    write(cur, s)
    cur.records = cur.records + n
    return
  end
  for i = 1, n do
    if cur.size >= limit and cur.records > 0 then
      close_part(self)
      cur = open_part(self, t)
    end
    write(cur, lines[i] .. "\n")
    cur.records = cur.records + 1
  end
end

--- Roll the in-progress file if a time limit is reached at now (default:
-- the writer's clock). Returns true if it rolled.
function Writer:on_processing_time(now)
  check_open(self, "on_processing_time")
  local cur = self.cur
  if not cur then return false end
  if should_roll_on_time(self, cur, now or self.now()) then
    close_part(self)
    return true
  end
  return false
end

local function copy_pending(list)
  local out = {}
  for i, e in ipairs(list) do
    local files = {}
    for j, f in ipairs(e.files) do files[j] = f end
    out[i] = { checkpoint = e.checkpoint, files = files }
  end
  return out
end

local function check_id(id, what)
  if not is_integer(id) or id < 0 then
    error(string.format("tide.filesink: %s: checkpoint id must be a non-negative integer, got %s", what, tostring(id)), 0)
  end
end

--- On the barrier of checkpoint id: close the in-progress file (it becomes
-- pending), assign every file that became pending since the last pre_commit
-- to id, make it durable, and return the state for the snapshot.
function Writer:pre_commit(id)
  check_open(self, "pre_commit")
  check_id(id, "pre_commit")
  if self.last_checkpoint and id <= self.last_checkpoint then
    error(string.format("tide.filesink: pre_commit(%d) after pre_commit(%d): checkpoint ids must increase",
      id, self.last_checkpoint), 0)
  end
  if self.cur then close_part(self) end
  if #self.since_last > 0 then
    self.per_checkpoint[#self.per_checkpoint + 1] = { checkpoint = id, files = self.since_last }
    self.since_last = {}
  end
  self.last_checkpoint = id
  if not self.defer_sync then sync_dir(self) end
  return {
    version = STATE_VERSION,
    checkpoint = id,
    prefix = self.prefix,
    counter = self.counter,
    pending = copy_pending(self.per_checkpoint),
  }
end

-- Rename the pending file of name to its committed name (idempotent).
local function commit_file(self, name, checkpoint)
  local from, to = pending_path(self, name), final_path(self, name)
  local ok, err = os.rename(from, to)
  if ok then
    self.dirty = true
    return
  end
  if exists(from) then
    error(string.format("cannot commit part file '%s' of checkpoint %s: %s", from, tostring(checkpoint), tostring(err)), 0)
  end
  if exists(to) then return end -- committed before
  error(string.format("cannot commit part file '%s' of checkpoint %s: its pending file '%s' is missing "
    .. "and it was never committed", to, tostring(checkpoint), from), 0)
end

--- Make the pending files closed so far and the directory durable
-- (defer_sync). A file committed meanwhile (by the writer this one was
-- forked from) is synced under its committed name.
function Writer:sync()
  for _, name in ipairs(self.unsynced) do
    local ok = core.fsync(pending_path(self, name))
    if not ok then fsync(final_path(self, name)) end
  end
  self.unsynced = {}
  sync_dir(self)
end

--- What sync() makes durable, for a snapshot's thread to fsync instead
-- (a snapshot without fork, core/asyncsnap.h): appended to out as {pending
-- path, final path} per file (the final one if the file was committed
-- meanwhile) and {directory}. The writer still counts them as unsynced,
-- as it did when a forked child synced them: that thread's work may never
-- run (its checkpoint aborted), and commit syncs again (defer_sync).
function Writer:sync_paths(out)
  for _, name in ipairs(self.unsynced) do out[#out + 1] = { pending_path(self, name), final_path(self, name) } end
  if self.dirty then out[#out + 1] = { self.dir } end
end

--- On completion of checkpoint id: commit the pending files of every
-- pre-committed checkpoint <= id.
function Writer:commit(id)
  check_open(self, "commit")
  check_id(id, "commit")
  if self.defer_sync then self:sync() end
  local list = self.per_checkpoint
  local k = 0
  while k < #list and list[k + 1].checkpoint <= id do
    k = k + 1
    for _, name in ipairs(list[k].files) do commit_file(self, name, list[k].checkpoint) end
  end
  if k > 0 then
    local n = #list
    table.move(list, k + 1, n, 1)
    for i = n - k + 1, n do list[i] = nil end
  end
  sync_dir(self)
end

--- End of a bounded job: everything written is committed.
function Writer:finish()
  check_open(self, "finish")
  if self.cur then close_part(self) end
  if self.defer_sync then self:sync() end
  for _, e in ipairs(self.per_checkpoint) do
    for _, name in ipairs(e.files) do commit_file(self, name, e.checkpoint) end
  end
  for _, name in ipairs(self.since_last) do commit_file(self, name, "end of input") end
  self.per_checkpoint, self.since_last = {}, {}
  sync_dir(self)
  self.closed = "finished"
end

--- Failure or cancellation: close the in-progress file and commit nothing.
-- The files stay; recover() commits or removes them.
function Writer:dispose()
  if self.closed then return end
  if self.cur then
    pcall(self.cur.fh.close, self.cur.fh)
    self.cur = nil
  end
  self.closed = "disposed"
end

--- The number of the next part file.
function Writer:next_part() return self.counter end

-- ---- construction and recovery -----------------------------------------------

--- A writer starting afresh (no restored state). Files already in dir are
-- left alone: use recover{state = nil} to clean up after a failed attempt.
function M.new(cfg)
  return configure(cfg)
end

local function check_state(st)
  local function bad(why) error("tide.filesink: bad restored state: " .. why, 0) end
  if type(st) ~= "table" then bad("expected a table, got " .. type(st)) end
  if st.version ~= STATE_VERSION then bad("unknown version " .. tostring(st.version)) end
  if math_type(st.counter) ~= "integer" or st.counter < 0 then bad("counter is not a non-negative integer") end
  if type(st.prefix) ~= "string" or st.prefix == "" or st.prefix:find("/", 1, true) then bad("prefix is not a file name") end
  if not is_integer(st.checkpoint) then bad("checkpoint is not an integer") end
  if type(st.pending) ~= "table" then bad("pending is not a list") end
  for i, e in ipairs(st.pending) do
    if type(e) ~= "table" or not is_integer(e.checkpoint) or type(e.files) ~= "table" then
      bad("pending[" .. i .. "] is not {checkpoint = id, files = {...}}")
    end
    for _, f in ipairs(e.files) do
      if type(f) ~= "string" or f == "" or f:find("/", 1, true) or f:sub(1, 1) == "." or f:sub(1, 1) == "_" then
        bad("pending[" .. i .. "] holds a bad file name " .. tostring(f))
      end
    end
  end
end

--- A writer restored from the state pre_commit returned in the restored
-- checkpoint (nil: no checkpoint; only the cleanup is done). cfg is as for
-- new, plus state.
function M.recover(cfg)
  local st = cfg.state
  if st ~= nil then check_state(st) end
  local prefix = cfg.prefix
  if st then
    local c = {}
    for k, v in pairs(cfg) do c[k] = v end
    c.prefix = st.prefix
    cfg = c
  end
  local w = configure(cfg)
  if st ~= nil then
    for _, e in ipairs(st.pending) do
      for _, name in ipairs(e.files) do commit_file(w, name, e.checkpoint) end
    end
    w.last_checkpoint = st.checkpoint
  end
  -- Remove the in-progress and pending files of the failed attempt; find
  -- the highest committed number, so that no committed file is overwritten.
  local names, err = core.list_dir(w.dir)
  if not names then error("tide.filesink: recover: " .. tostring(err), 0) end
  local prefixes = { w.prefix }
  if prefix and prefix ~= w.prefix then prefixes[2] = prefix end
  local hidden = {}
  for i, p in ipairs(prefixes) do hidden[i] = "^%." .. literal(p) .. "%d+%.(%a+)$" end
  local committed = "^" .. literal(w.prefix) .. "(%d+)$"
  local orphan = cfg.job and job_pattern(cfg.job, true)
  local keep = {}
  for id in pairs(cfg.keep or {}) do keep[id] = true end
  for _, p in ipairs(prefixes) do
    local id = cfg.job and p:match("^part%-" .. literal(safe_name(cfg.job)) .. "%-(%x+)%-")
    if id then keep[id] = true end
  end
  local next_free = 0
  w.taken_back, w.orphans = {}, {}
  local function remove(name, list)
    local ok, rerr = os.remove(w.dir .. "/" .. name)
    if not ok and exists(w.dir .. "/" .. name) then
      error("tide.filesink: recover: cannot remove '" .. name .. "': " .. tostring(rerr), 0)
    end
    w.dirty = true
    if list then list[#list + 1] = name end
  end
  for _, name in ipairs(names) do
    local run, state = nil, nil
    if orphan then run, state = name:match(orphan) end
    if run and not keep[run] and (state == "inprogress" or state == "pending") then
      remove(name, w.orphans)
    end
    for _, pat in ipairs(hidden) do
      local kind = name:match(pat)
      if kind == "inprogress" or kind == "pending" then
        remove(name)
        break
      end
    end
    local num = name:match(committed)
    if num then
      local k = compat.tointeger(tonumber(num))
      if st and k and k >= st.counter then
        -- committed after the restored checkpoint: its records are replayed
        remove(name, w.taken_back)
      elseif k and k + 1 > next_free then
        next_free = k + 1
      end
    end
  end
  w.counter = st and st.counter or next_free
  table.sort(w.taken_back)
  table.sort(w.orphans)
  sync_dir(w)
  return w
end

M.STATE_VERSION = STATE_VERSION
return M
