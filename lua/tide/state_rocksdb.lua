--- tide.state_rocksdb: the keyed-state layer's RocksDB backend
-- (docs/STATE.md), over core.rocksdb_open (core/state_lua.h, state/rocksdb.h).
--
-- It is a tide.state backend like the heap one: operators index s.t by
-- layer key and read and write live Lua values. Here s.t is a cache over
-- one RocksDB instance per operator and subtask (a column family per
-- state, keys laid out by key group): a key's entry is read from RocksDB
-- the first time a batch touches it (one call per distinct key, not per
-- record), changes are made to the live value, and flush() writes back
-- every key touched since the last one in one RocksDB write batch and
-- empties the cache. The runtime calls flush(true) at the end of every
-- batch, watermark and timer round: it writes back once FLUSH_KEYS keys
-- (or FLUSH_BYTES bytes of entries read) are cached or the timer service
-- has changes for the write batch; snapshots, scans and the end of input
-- flush at once. So memory holds a few batches' keys, and state can be
-- far larger than RAM (Flink's
-- EmbeddedRocksDBStateBackend; values serialized on every access, as
-- there). Larger write batches, applied in key order, insert into the
-- memtable's skip list nearer to one another (RocksDB reuses the last
-- insert's position).
--
-- Value, list, reducing and aggregating state keep one entry per key (no
-- namespace); map state one entry per map key and namespaced state (window
-- contents, trigger state) one entry per namespace, the map key or
-- namespace being the entry's namespace bytes.
--
-- Snapshots: prepare_snapshot (the task thread, at the barrier) switches
-- the memtables, and a thread of the instance makes a RocksDB checkpoint
-- (hard links) once they are flushed; snapshot (the forked child) waits
-- for it and uploads its files to the job's shared directory under content
-- names, skipping those already there (incremental checkpoints), and
-- returns {backend = "rocksdb", states =, files =, kg_first =, kg_last =}.
-- The files it references are listed for the coordinator (tide.runtime
-- writes them in a companion file; shared.h). restore opens the old
-- instances overlapping this subtask's key groups and clips them to its
-- range (rescaling); a heap snapshot is restored by writing its entries.
local state = require "tide.state"
local core = require "tide.core"
local tointeger = require("tide.compat").tointeger

local M = {}

local R = setmetatable({}, { __index = state.Backend })
R.__index = R

-- what flush(true) lets the cache hold before it writes back: keys (16
-- batches of 1024), and bytes of the entries read (a few large values,
-- or keys with many namespaces, write back sooner)
local FLUSH_KEYS = 16384
M.FLUSH_KEYS = FLUSH_KEYS
M.FLUSH_BYTES = 32 * 1024 * 1024 -- (read at each flush: a spec lowers it)

local NONE = {}  -- a key read and found absent
local BLIND = {} -- a key written without a read: it may have an entry

local seq = 0 -- instances opened by this VM (working directory names)

-- Make dir the checkpoint directory of snapshot snap again: its files,
-- linked from the shared directory of the checkpoint restored from.
-- Returns their names (to remove dir with core.remove_files).
local function link_snapshot(cfg, snap, dir)
  if not cfg.restore_shared then error("cannot restore keyed state: no shared directory", 0) end
  local list, names = {}, {}
  for _, f in ipairs(snap.files) do
    list[#list + 1] = f[1]
    list[#list + 1] = f[2]
    names[#names + 1] = f[1]
  end
  local ok, err = core.shared_link(cfg.restore_shared, dir, list)
  if not ok then error("cannot restore keyed state: " .. err, 0) end
  return names
end

--- A RocksDB backend for one keyed operator of a subtask (tide.state's
-- M.backend calls it when configured so).
-- @param cfg tide.state's configuration: dir (prefix of the working
--   directories' paths),
--   rocksdb (sizes), shared_dir, restore_shared
-- Other arguments as tide.state.backend.
function M.new(cfg, max_parallelism, parallelism, subtask, clock)
  local self = setmetatable(state.heap_backend(max_parallelism, parallelism, subtask, clock), R)
  seq = seq + 1
  self.cfg = cfg
  -- <prefix>-op<n>/db the instance, <prefix>-op<n>/chk-<id> its checkpoints
  -- on their way to the shared directory
  self.home = string.format("%s-op%d", cfg.dir, seq)
  self.dir = self.home .. "/db"
  self.ids = {}       -- state id -> name (collisions)
  self.dirty = {}     -- states touched since the last flush
  self.cached = 0     -- keys read or written since then (counted once each)
  self.pending = {}   -- old instances to restore from (snapshots)
  self.heap_snaps = {} -- heap snapshots to write in at open
  self.uploaded = {}  -- SST file name -> {shared name, size, crc}
  return self
end

-- The instance, opened (with what restore() collected) on first use.
function R:db()
  local db = self.handle
  if db then return db end
  local dirs, links = {}, {}
  if #self.pending > 0 then
    local ok, err = core.mkdir_p(self.home)
    if not ok then error("cannot open the RocksDB state backend: " .. err, 0) end
  end
  for i, snap in ipairs(self.pending) do
    local d = string.format("%s/restore-%d", self.home, i)
    dirs[i], links[i] = d, link_snapshot(self.cfg, snap, d)
  end
  local r = self.cfg.rocksdb or {}
  local err
  db, err = core.rocksdb_open { dir = self.dir, max_parallelism = self.max_parallelism,
    kg_first = self.kg_first, kg_last = self.kg_last, block_cache = r.block_cache,
    write_buffer = r.write_buffer, max_write_buffers = r.max_write_buffers,
    restore = #dirs > 0 and dirs or nil }
  for i, d in ipairs(dirs) do core.remove_files(d, links[i]) end
  if not db then error("cannot open the RocksDB state backend: " .. err, 0) end
  self.handle = db
  for _, s in pairs(self.states) do self:configure_ttl(s) end
  if #dirs == 1 then
    -- restored from one instance: its SST files keep their names and are
    -- in the shared directory already
    for _, f in ipairs(self.pending[1].files) do
      if f[1]:match("%.sst$") then self.uploaded[f[1]] = { f[2], f[3], f[4] } end
    end
  end
  self.pending = {}
  -- heap snapshots (a job that changed backend): their entries, written
  for _, snap in ipairs(self.heap_snaps) do
    self:each_snapshot_entry(snap, function(st, k, v)
      if st.multi then
        for ns, x in pairs(v) do db:put_ns(st.id, k, ns, x) end
      else
        db:put(st.id, k, v)
      end
    end)
  end
  if #self.heap_snaps > 0 then db:commit() end
  self.heap_snaps = {}
  return db
end

-- Give state s's column family its TTL (the compaction filter drops
-- what expired), once the instance is open and the TTL known.
function R:configure_ttl(s)
  local db = self.handle
  if db and type(s.ttl) == "table" and s.ttl_set ~= s.ttl then
    db:set_ttl(s.id, s.ttl.ms, s.kind == "list")
    s.ttl_set = s.ttl
  end
end

--- The state `name` (tide.state's Backend:state), its TTL passed on to
-- RocksDB's compaction filter.
function R:state(name, kind, opts)
  local s = state.Backend.state(self, name, kind, opts)
  self:configure_ttl(s)
  return s
end

-- The cache table of state s (see the file comment).
function R:new_table(s)
  local id = core.state_id(s.name)
  local other = self.ids[id]
  if other and other ~= s.name then
    error(string.format("state names '%s' and '%s' have the same RocksDB column family id; rename one",
      other, s.name), 0)
  end
  self.ids[id] = s.name
  s.id = id
  s.multi = s.namespaced or s.kind == "map" or nil
  local touched = {} -- key -> the value read (NONE: absent); multi: the set of namespaces read
  s.touched = touched
  local dirty = self.dirty
  local t = {}
  local mt = {}
  if not s.multi then
    function mt.__index(_, k)
      if touched[k] ~= nil then return nil end
      dirty[s] = true
      self.cached = self.cached + 1
      local v = self:db():get(id, k)
      if v == nil then
        touched[k] = NONE
      else
        touched[k] = v
        rawset(t, k, v)
      end
      return v
    end
    function mt.__newindex(_, k, v)
      if touched[k] == nil then
        dirty[s] = true
        self.cached = self.cached + 1
        touched[k] = BLIND
      end
      rawset(t, k, v)
    end
  else
    local function load(k)
      dirty[s] = true
      self.cached = self.cached + 1
      local m = self:db():get_ns(id, k)
      local seen = {}
      if m then
        for ns in pairs(m) do seen[ns] = true end
      end
      touched[k] = seen
      return m
    end
    function mt.__index(_, k)
      if touched[k] ~= nil then return nil end
      local m = load(k)
      if m ~= nil then rawset(t, k, m) end
      return m
    end
    function mt.__newindex(_, k, v)
      if touched[k] == nil then load(k) end
      rawset(t, k, v)
    end
  end
  return setmetatable(t, mt)
end

--- Write back what was touched since the last flush (one write batch) and
-- empty the caches.
-- @param soft boolean: only once FLUSH_KEYS keys or M.FLUSH_BYTES bytes of
--   entries read are cached, or the timer service has changes to write
--   (the end of a batch: tide.state.flush(true))
function R:flush(soft)
  -- the timer service stored here (tide.timers_rocksdb) writes into the
  -- same write batch
  local timers = self.attached
  if soft and self.cached < FLUSH_KEYS and (not timers or timers:idle())
    and (self.handle == nil or self.handle:read_bytes() < M.FLUSH_BYTES) then
    return
  end
  self.cached = 0
  if self.handle then self.handle:read_bytes(true) end
  if timers then timers:write() end
  local dirty = self.dirty
  if next(dirty) == nil then
    if self.handle then self.handle:commit() end
    return
  end
  local db = self:db()
  db:set_time(self.clock()) -- the compaction filter's "now"
  for s in pairs(dirty) do
    local t, touched, id = s.t, s.touched, s.id
    if s.multi then
      for k, seen in pairs(touched) do
        local m = rawget(t, k)
        for ns in pairs(seen) do
          if m == nil or m[ns] == nil then db:remove_ns(id, k, ns) end
        end
        if m then
          for ns, v in pairs(m) do db:put_ns(id, k, ns, v) end
        end
        rawset(t, k, nil)
        touched[k] = nil
      end
    else
      for k, old in pairs(touched) do
        local v = rawget(t, k)
        if v == nil then
          if old ~= NONE then db:remove(id, k) end
        elseif v ~= old or type(v) == "table" then
          db:put(id, k, v)
        end
        rawset(t, k, nil)
        touched[k] = nil
      end
    end
    dirty[s] = nil
  end
  db:commit()
end

--- Call fn(k) for every key of state `name` that has an entry, key group
-- by key group (the keys of one in memory at a time), writing back what
-- fn changed after each.
function R:each_key(name, fn)
  local s = self.states[name]
  if not s then return end
  self:flush()
  local db = self:db()
  for kg = self.kg_first, self.kg_last do
    local keys, n, last = {}, 0, nil
    db:scan(s.id, function(_, k)
      -- a map or namespaced state has an entry per namespace
      if not (s.multi and n > 0 and core.encode(k, true) == last) then
        n = n + 1
        keys[n] = k
        if s.multi then last = core.encode(k, true) end
      end
    end, kg, kg)
    for i = 1, n do fn(self:key(keys[i])) end
    self:flush()
  end
end

--- Replace the entries of state s in key groups kg with old_of(kg) ~=
-- nil by fn(key, stored value, old_of(kg), part) (tide.state's
-- Backend:evolve migrating restored values): key group by key group (one
-- in memory at a time), every entry of a map or namespaced state on its
-- own (part true: fn gets one map value or one namespace's value), all
-- in one write batch, committed at the end; what fn raises drops the
-- batch and is raised, nothing changed.
function R:rewrite(s, old_of, fn)
  self:flush()
  local db, id = self:db(), s.id
  local ok, err = pcall(function()
    for kg = self.kg_first, self.kg_last do
      local old = old_of(kg)
      if old then
        local ks, nss, vs, n = {}, {}, {}, 0
        db:scan(id, function(_, k, ns, v)
          n = n + 1
          ks[n], nss[n], vs[n] = k, ns, v
        end, kg, kg)
        for i = 1, n do
          local k, ns = ks[i], nss[i]
          local v = fn(self:key(k), vs[i], old, ns ~= nil)
          if ns == nil then db:put(id, k, v) else db:put_ns(id, k, ns, v) end
        end
      end
    end
  end)
  if not ok then
    db:abort()
    error(err, 0)
  end
  db:commit()
end

--- The synchronous part of checkpoint id's snapshot (the task thread, at
-- the barrier): flush, then a RocksDB checkpoint of the instance for
-- snapshot() to upload. A checkpoint (id > 0) only switches the memtables
-- here; a thread of the instance waits for their flush and makes the
-- RocksDB checkpoint (hard links to its files), and the snapshot child
-- waits for it (db:checkpoint_begin, state/rocksdb.h): the flush is not
-- part of the task's pause. The final snapshot (id 0, in the task thread)
-- flushes and links at once.
function R:prepare_snapshot(id, savepoint)
  self:flush()
  if savepoint or not self:incremental() then
    -- a savepoint is canonical (the heap format), read here: RocksDB is
    -- not to be used in the snapshot child
    self.prepared = { id = id, canonical = self:canonical_snapshot() }
    if self.attached then self.attached:prepare_savepoint() end
    return
  end
  self:read_journals(id)
  local dir = string.format("%s/chk-%d", self.home, id)
  if id > 0 then
    self:db():checkpoint_begin(dir)
    self.prepared = { id = id, dir = dir }
  else
    self.prepared = { id = id, dir = dir, files = self:db():checkpoint(dir) }
  end
end

--- Whether checkpoints are incremental (env{rocksdb = {incremental =
-- false}} makes every one full: the canonical snapshot, as savepoints).
function R:incremental()
  local r = self.cfg.rocksdb
  return not (r and r.incremental == false)
end

-- What earlier snapshot children uploaded (their journals in the home
-- directory): SST file name -> {shared name, size, crc}. SST files never
-- change, so a later checkpoint that still holds one references the same
-- shared file without reading it again (incremental checkpoints). Journals
-- older than the previous checkpoint's are removed once read.
function R:read_journals(id)
  local names = core.list_dir(self.home) or {}
  local old = {}
  for _, f in ipairs(names) do
    local jid = tonumber(f:match("^uploads%-(%d+)$"))
    local fh = jid and io.open(self.home .. "/" .. f, "rb")
    if fh then
      local text = fh:read("a") or ""
      fh:close()
      -- whole lines only: a snapshot thread may be appending the last one
      for line in text:gmatch("([^\n]*)\n") do
        local file, name, size, crc = line:match("^(%S+) (%S+) (%d+) (%d+)$")
        if file and file:match("%.sst$") then
          self.uploaded[file] = { name, tointeger(tonumber(size)), tointeger(tonumber(crc)) }
        end
      end
      if jid < id - 1 then old[#old + 1] = f end
    end
  end
  for _, f in ipairs(old) do os.remove(self.home .. "/" .. f) end
end

-- The uploaded SST files (self.uploaded) that the instance still has:
-- only those can be in a checkpoint made from now on (a file compaction
-- deleted never comes back), so the others are forgotten, and what a
-- snapshot hands its thread stays the size of the instance.
function R:live_uploaded()
  local live = {}
  for _, f in ipairs(core.list_dir(self.dir) or {}) do live[f] = true end
  for f in pairs(self.uploaded) do
    if not live[f] then self.uploaded[f] = nil end
  end
  return self.uploaded
end

-- The states' descriptions in a snapshot.
function R:described()
  local states = {}
  for name, s in pairs(self.states) do
    states[name] = state.describe(s)
    states[name].id = s.id
  end
  return states
end

--- The snapshot: {version = 1, backend = "rocksdb", max_parallelism =,
-- kg_first =, kg_last =, states = {[name] = {kind =, namespaced =, ttl =,
-- version =, group_versions =, id =}}, files = {{local name, shared
-- name, size, crc}...}} (a state's schema version as tide.state's
-- describe writes it). Uploads the checkpoint prepare_snapshot made (in
-- the snapshot child: no RocksDB call here), or makes one first (a final
-- snapshot, in the task thread).
-- opts.savepoint, or checkpoints configured full (incremental = false):
-- the canonical snapshot (canonical_snapshot) instead, made by
-- prepare_snapshot.
-- The shared files referenced are appended to cfg.refs when the runtime
-- set it, as {name, size, crc}. When the runtime snapshots without fork
-- (cfg.uploads set: in the task thread), nothing is uploaded here: files
-- is a hole (core.snapshot_hole) and the upload is appended to
-- cfg.uploads, for the snapshot's thread. Without a shared directory (no checkpoints) nothing
-- is uploaded and the snapshot lists no files: nothing will restore it.
function R:snapshot(opts)
  if (opts and opts.savepoint) or not self:incremental() then
    local p = self.prepared
    self.prepared = nil
    if p and p.canonical then return p.canonical end
    return self:canonical_snapshot() -- a final state, in the task thread
  end
  local shared, refs = self.cfg.shared_dir, self.cfg.refs
  local snap = { version = 1, backend = "rocksdb", max_parallelism = self.max_parallelism,
    kg_first = self.kg_first, kg_last = self.kg_last, states = self:described(), files = {} }
  if not shared then return snap end
  if not self.prepared then self:prepare_snapshot(0) end
  local p = self.prepared
  self.prepared = nil
  local journal = string.format("%s/uploads-%d", self.home, p.id)
  local uploads = self.cfg.uploads
  if uploads and not p.files then
    -- a snapshot without fork (in the task thread): the snapshot's thread
    -- uploads and fills the hole with the list of files (core/asyncsnap.h)
    local hole = #uploads
    uploads[hole + 1] = { hole = hole, dir = p.dir, shared = shared, journal = journal, known = self:live_uploaded() }
    snap.files = core.snapshot_hole(hole)
    return snap
  end
  if not p.files then
    local files, err = core.await_rocksdb_checkpoint(p.dir)
    if not files then error(err, 0) end
    table.sort(files)
    p.files = files
  end
  for i, f in ipairs(p.files) do
    local known = self.uploaded[f]
    local name, size, crc
    if known and core.shared_exists(shared, known[1], known[2]) then
      name, size, crc = known[1], known[2], known[3]
    else
      name, size, crc = core.shared_upload(p.dir .. "/" .. f, shared, journal)
      if not name then error(size, 0) end
    end
    snap.files[i] = { f, name, size, crc }
    if refs then refs[#refs + 1] = { name, size, crc } end
  end
  core.remove_files(p.dir, p.files)
  return snap
end

--- The snapshot in the heap backend's format (tide.state's
-- Backend:snapshot: values grouped by key group), whatever the backend:
-- what savepoints write (canonical, backend-independent, self-contained).
-- In the task thread (it reads RocksDB).
function R:canonical_snapshot()
  self:flush()
  local db = self:db()
  local states = {}
  for name, s in pairs(self.states) do
    local groups = {}
    local last_kg, last_key, last_enc, last_map
    db:scan(s.id, function(kg, k, ns, v)
      local g = groups[kg]
      if not g then
        g = {}
        groups[kg] = g
      end
      if ns == nil then
        g[#g + 1] = k
        g[#g + 1] = v
        return
      end
      -- entries of one key are contiguous: one {ns = value} map per key
      local enc = core.encode(k, true)
      if kg ~= last_kg or enc ~= last_enc then
        last_kg, last_key, last_enc, last_map = kg, k, enc, {}
        g[#g + 1] = last_key
        g[#g + 1] = last_map
      end
      last_map[ns] = v
    end)
    states[name] = state.describe(s, groups)
  end
  return { version = 1, max_parallelism = self.max_parallelism, states = states }
end

--- Restore from old subtasks' snapshots of either backend (nil and false
-- entries skipped): rocksdb ones whose key groups overlap this backend's
-- are opened together at first use and clipped to its range; heap ones
-- have their entries of its key groups written.
function R:restore(snaps)
  for i = 1, #snaps do
    local snap = snaps[i]
    if snap then
      self:check_snapshot(snap)
      if self.handle then error("rocksdb backend: restore after the instance was opened", 0) end
      local native = snap.backend == "rocksdb"
      for name, st in pairs(snap.states) do
        self:register_restored(name, st, native and snap.kg_first or nil, native and snap.kg_last or nil)
      end
      if native then
        if snap.kg_last >= self.kg_first and snap.kg_first <= self.kg_last and #snap.files > 0 then
          self.pending[#self.pending + 1] = snap
        end
      else
        self.heap_snaps[#self.heap_snaps + 1] = snap
      end
    end
  end
end

--- The snapshot child took over checkpoint id's files (the task thread
-- goes on; the child removes them once uploaded).
function R:snapshot_started()
  self.prepared = nil
  if self.attached then self.attached:snapshot_started() end
end

--- Close the instance; its working directory is removed, with what a
-- killed snapshot child left.
function R:close()
  if self.handle then
    self.handle:close()
    self.handle = nil
  end
  local left = core.list_dir(self.home) or {}
  for _, d in ipairs(left) do
    core.remove_files(self.home .. "/" .. d, core.list_dir(self.home .. "/" .. d) or {})
  end
  -- then its files (the snapshot children's upload journals) and itself
  core.remove_files(self.home, left)
end

--- Open the instance of rocksdb snapshot snap clipped to backend b's key
-- groups, in a working directory of its own (removed when the db is
-- closed), or nil when it has none of them.
function M.open_snapshot(cfg, snap, b)
  if not (snap.kg_last >= b.kg_first and snap.kg_first <= b.kg_last and #snap.files > 0) then return nil end
  seq = seq + 1
  local base = string.format("%s-scan%d", cfg.dir or ((os.getenv("TMPDIR") or "/tmp") .. "/tide"), seq)
  local names = link_snapshot(cfg, snap, base .. ".restore")
  local db, err = core.rocksdb_open { dir = base, max_parallelism = b.max_parallelism, kg_first = b.kg_first,
    kg_last = b.kg_last, restore = { base .. ".restore" } }
  core.remove_files(base .. ".restore", names)
  if not db then error("cannot restore keyed state: " .. err, 0) end
  return db
end

--- Visit every entry of a rocksdb snapshot within backend b's key groups
-- (a heap backend restoring it): fn(s, key, ns | nil, value) with s the
-- state of b it belongs to (registered as tide.state's restore does).
function M.scan_snapshot(cfg, snap, b, fn)
  local db = M.open_snapshot(cfg, snap, b)
  if not db then return end
  for name, st in pairs(snap.states) do
    local s = b:register_restored(name, st, snap.kg_first, snap.kg_last)
    db:scan(st.id, function(_, k, ns, v) fn(s, k, ns, v) end)
  end
  db:close()
end

return M
