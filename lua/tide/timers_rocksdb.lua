--- tide.timers_rocksdb: the timer service of a keyed operator whose keyed
-- state is in RocksDB (docs/STATE.md, "Timers"), as Flink's default for
-- its RocksDB backend (state.backend.rocksdb.timer-service.factory:
-- ROCKSDB; RocksDBPriorityQueueSetFactory): the same interface and the
-- same firing order as tide.timers' heap service, with the timers in the
-- operator's RocksDB instance, so that their number is not bounded by
-- memory.
--
-- Layout (core/state_lua.c, "timers"). One column family of the instance
-- ("_timer_state"), two entries per timer: the queue entry, addressed by
-- key group + time domain + timestamp + sequence number (big-endian: byte
-- order is firing order within a key group), holds the timer's key and
-- namespace; the index entry, addressed by key group + key + domain +
-- namespace + timestamp, holds the sequence number: it answers "is there
-- such a timer" (one per (key, namespace, timestamp)) and gives a timer's
-- queue address for a delete. Flink's queue key is key group + timestamp + key + namespace and
-- orders timers of one timestamp by their serialized key (its heap service
-- by heap position: neither keeps an order for ties); the sequence number
-- (the registration order, as the heap service's) keeps Tide's order, the
-- same with either service.
--
-- In memory, as Flink's RocksDBCachingPriorityQueueSet and
-- KeyGroupPartitionedPriorityQueue: per key group an ordered cache of its
-- first `cache` timers (128 by default, Flink's
-- state.backend.rocksdb.timer-service.cache-size), refilled by one seek
-- when it runs empty (from just after the last timer it gave out, as
-- Flink's seek hint, past the tombstones); a binary heap of the key
-- groups by their head timer. A key group's cache holds all of its timers
-- until one is pushed out (all = true): then what is not in the cache is
-- known to be after its last element. As many timers stored and not
-- cached are remembered (their sequence numbers), the oldest forgotten
-- first: registering one again (a window does it for every element) or
-- deleting it needs no read.
--
-- Batches. Registrations and deletes are collected in memory and written
-- into the instance's write batch when the backend writes back (at the end
-- of every batch, watermark and timer round: tide.state_rocksdb calls
-- write() from its flush), never one RocksDB call per record. Whether a
-- registered timer exists already is decided in memory when the cache says
-- (a timer before the cache's last element is in the cache if it exists;
-- a key group whose timers are all cached); otherwise the question waits,
-- and all waiting questions are answered by one multi-get of the index at
-- the write-back, or before the key group's cache is read again (a
-- question is about a timer after every cached one of its key group: it
-- cannot be the first before that). The timers a round fires are removed
-- in the same write batch; rounds that fire more than a few thousand write
-- as they go, so memory stays bounded.
--
-- Snapshots. A checkpoint's timers are in the instance's RocksDB
-- checkpoint: the operator snapshot's `timers` is only {store =
-- "rocksdb", event = {seq =}, processing = {seq =}} (the last sequence
-- numbers given). A savepoint's are the heap service's canonical lists. Restore
-- takes either: the heap service's lists (a job that changed backend or
-- timer service, or a savepoint) are written into the instance; stored
-- timers come with the instance (clipped to the key groups, rescaling);
-- when several old instances are merged, each one's sequence numbers are
-- moved past the previous ones', so that ties fire as the heap service
-- restoring the same snapshots in subtask order fires them.
local core = require "tide.core"
local compat = require "tide.compat"
local timers = require "tide.timers"

local M = {}

local key_group = core.key_group

--- Default number of timers cached per key group and time domain.
M.CACHE = 128
-- past this many collected writes (or waiting questions) a round writes
-- them out at once: memory stays bounded in long timer rounds
local WRITE_EVERY = 4096
local DOMAINS = { "event", "processing" }
-- the column family of the timers, and each domain's byte in it
local STATE = "_timer_state"
local DOMAIN_BYTE = { event = 1, processing = 2 }

-- (ts, seq, kg) order of timers
local function less(a, b)
  if a.ts ~= b.ts then return a.ts < b.ts end
  if a.seq ~= b.seq then return a.seq < b.seq end
  return a.kg < b.kg
end

-- ---- known timers: known[key][ns][ts] -> entry -------------------------------
-- An entry is a cached timer; a timer stored (or to be stored) in RocksDB
-- and not cached, remembered up to a budget (the same number as the
-- caches hold: the oldest is forgotten first), so that registering it
-- again or deleting it asks nothing; a mark {absent = true} for a timer
-- fired or deleted this round (transient); or an open question {ask =
-- "reg" | "del"} waiting for the index.

local function kget(q, key, ns, ts)
  local a = q.known[key]
  if a == nil then return nil end
  local b = a[ns]
  return b and b[ts]
end

local function kset(q, x)
  local key, ns = x.key, x.ns
  local a = q.known[key]
  if a == nil then
    a = {}
    q.known[key] = a
  end
  local b = a[ns]
  if b == nil then
    b = {}
    a[ns] = b
  end
  b[x.ts] = x
end

-- forget x (only if it is what known holds for its timer)
local function kdel(q, x)
  local key, ns = x.key, x.ns
  local a = q.known[key]
  local b = a and a[ns]
  if b == nil or b[x.ts] ~= x then return end
  b[x.ts] = nil
  if next(b) == nil then
    a[ns] = nil
    if next(a) == nil then q.known[key] = nil end
  end
end

local function transient(q, x)
  kset(q, x)
  local t = q.transient
  t[#t + 1] = x
end

-- Remember stored timer x (not cached), forgetting the oldest one
-- remembered when the ring is full.
local function remember(q, x)
  kset(q, x)
  local ring, i = q.ring, q.ring_i
  local old = ring[i]
  if old then kdel(q, old) end
  ring[i] = x
  q.ring_i = i % q.svc.remembered + 1
end

-- ---- the heap of key groups by head timer ------------------------------------
-- A key group K: {kg =, cache = timers in descending order (the head last),
-- all = whether every timer of K is cached, loaded = whether the cache is
-- valid (else K is to be read), hint_ts, hint_seq = where to read it
-- from: each of K's timers is after it, pos = its index in the heap, ts, seq = its head
-- timer's while in the heap}.

local function head(K)
  local c = K.cache
  return c[#c]
end

-- by head timer: K.ts, K.seq are its head's (set by heap_fix)
local function hless(a, b)
  local x, y = a.ts, b.ts
  if x ~= y then return x < y end
  x, y = a.seq, b.seq
  if x ~= y then return x < y end
  return a.kg < b.kg
end

local function sift_up(h, i)
  local K = h[i]
  while i > 1 do
    local p = compat.idiv(i, 2)
    local P = h[p]
    if not hless(K, P) then break end
    h[i], P.pos = P, i
    i = p
  end
  h[i], K.pos = K, i
end

local function sift_down(h, i)
  local n, K = h.n, h[i]
  while true do
    local c = 2 * i
    if c > n then break end
    local C = h[c]
    if c < n and hless(h[c + 1], C) then
      c = c + 1
      C = h[c]
    end
    if not hless(C, K) then break end
    h[i], C.pos = C, i
    i = c
  end
  h[i], K.pos = K, i
end

-- K's head changed (K not empty): put it in place, in the heap or into it
local function heap_fix(q, K)
  local e = head(K)
  K.ts, K.seq = e.ts, e.seq
  local h = q.heap
  local i = K.pos
  if i == nil then
    i = h.n + 1
    h.n = i
    h[i], K.pos = K, i
    sift_up(h, i)
    return
  end
  sift_up(h, i)
  sift_down(h, K.pos)
end

local function heap_remove(q, K)
  local h, i = q.heap, K.pos
  if i == nil then return end
  K.pos = nil
  local n = h.n
  local last = h[n]
  h[n] = nil
  h.n = n - 1
  if i < n then
    h[i], last.pos = last, i
    sift_up(h, i)
    sift_down(h, last.pos)
  end
end

-- ---- key groups' caches --------------------------------------------------------

-- the position at which timer e goes into descending cache c
local function cache_pos(c, e)
  local lo, hi = 1, #c + 1
  while lo < hi do
    local mid = compat.idiv(lo + hi, 2)
    if less(e, c[mid]) then lo = mid + 1 else hi = mid end
  end
  return lo
end

local function cache_insert(q, K, e)
  table.insert(K.cache, cache_pos(K.cache, e), e)
  e.cached = true
  kset(q, e)
end

local function cache_remove(K, e)
  local c = K.cache
  local i = cache_pos(c, e)
  -- e is at i, or just before it when equal (less is strict)
  if c[i] ~= e then i = i - 1 end
  assert(c[i] == e, "timers_rocksdb: a cached timer is not in its key group's cache")
  table.remove(c, i)
  e.cached = nil
end

local function kg_of(q, kg)
  local K = q.kgs[kg]
  if K == nil then
    K = { kg = kg, cache = {}, loaded = q.fresh, all = q.fresh }
    q.kgs[kg] = K
    if not q.fresh then q.to_load[#q.to_load + 1] = K end
  end
  return K
end

-- Whether key group K surely holds no timer at ts other than those known
-- (its cached ones).
local function surely_absent(K, ts)
  if not K.loaded then return false end
  if K.all then return true end
  return ts < K.cache[1].ts
end

-- K lost timer e from its cache
local function after_remove(q, K, e)
  if #K.cache > 0 then
    heap_fix(q, K)
    return
  end
  heap_remove(q, K)
  if not K.all then
    -- the rest is in RocksDB, all after e: read it when needed
    K.loaded, K.hint_ts, K.hint_seq = false, e.ts, e.seq
    q.to_load[#q.to_load + 1] = K
  end
end

-- ---- writes ----------------------------------------------------------------------

local Service = {}
Service.__index = Service

local function write_out(q, db)
  local p = q.pending
  local sid, dom = q.sid, q.dom
  for i = 1, #p, 2 do
    local e = p[i + 1]
    if p[i] then
      db:timer_put(sid, dom, e.kg, e.ts, e.seq, e.key, e.ns, e.raw == nil)
    else
      db:timer_remove(sid, dom, e.kg, e.ts, e.seq, e.key, e.ns)
    end
  end
  q.pending = {}
  for _, K in ipairs(q.dirty) do K.dirty = nil end
  q.dirty = {}
  -- what was known only for the round: RocksDB knows it now
  local t = q.transient
  for i = 1, #t do kdel(q, t[i]) end
  q.transient = {}
end

-- Collect a write: put (true) or remove timer e. Only a timer fired (pop)
-- leaves its key group clean: it is at or before the point the group's
-- cache is read again from, which needs no write-out first; anything else
-- may be in what that read finds.
local function pend(q, put, e, pop)
  local p = q.pending
  local n = #p
  p[n + 1], p[n + 2] = put, e
  if not pop then
    local K = q.kgs[e.kg]
    if K and not K.dirty then
      K.dirty = true
      q.dirty[#q.dirty + 1] = K
    end
  end
  if n + 2 >= 2 * WRITE_EVERY then
    local db = q.svc:db()
    write_out(q, db)
    db:commit()
  end
end

-- A timer new to RocksDB (none was there for its key, namespace and
-- timestamp): written at the next write-out, cached when it belongs to
-- its key group's cache (Flink's RocksDBCachingPriorityQueueSet.add).
local function add_timer(q, e)
  local K = kg_of(q, e.kg)
  pend(q, true, e)
  if not K.loaded then
    -- the read starts after the hint: it must now start before e
    if K.hint_ts ~= nil and (e.ts < K.hint_ts or (e.ts == K.hint_ts and e.seq <= K.hint_seq)) then
      K.hint_ts, K.hint_seq = e.ts, e.seq - 1
    end
    remember(q, e)
    return
  end
  local c = K.cache
  local n = #c
  if K.all and n < q.svc.cache then
    cache_insert(q, K, e)
  elseif n > 0 and less(e, c[1]) then
    if n >= q.svc.cache then
      -- the last one is now only in RocksDB
      local x = table.remove(c, 1)
      x.cached = nil
      remember(q, x)
      K.all = false
    end
    cache_insert(q, K, e)
  else
    K.all = false
    remember(q, e)
    return
  end
  if c[#c] == e then heap_fix(q, K) end
end

-- Remove timer e (known: cached or remembered) for good.
local function remove_timer(q, e)
  if e.cached then
    local K = q.kgs[e.kg]
    cache_remove(K, e)
    after_remove(q, K, e)
  end
  pend(q, false, e)
  transient(q, { absent = true, key = e.key, ns = e.ns, ts = e.ts })
end

-- Answer every open question of q with one multi-get of the index.
local function resolve(q)
  local asks = q.asks
  local n = #asks
  if n == 0 then return end
  local db = q.svc:db()
  write_out(q, db)
  db:commit()
  local list = {}
  for i = 1, n do
    local u = asks[i]
    local j = 4 * i
    list[j - 3], list[j - 2], list[j - 1], list[j] = u.kg, u.key, u.ns, u.ts
  end
  local seqs = db:timer_lookup(q.sid, q.dom, list)
  q.asks = {}
  for i = 1, n do
    local u = asks[i]
    local old = seqs[i]
    kdel(q, u)
    if u.ask == "reg" then
      if old then
        -- a duplicate: the stored timer keeps its place
        remember(q, { ts = u.ts, seq = old, key = u.key, ns = u.ns, kg = u.kg })
      else
        add_timer(q, { ts = u.ts, seq = u.seq, key = u.key, ns = u.ns, raw = u.raw, kg = u.kg })
      end
    else
      if old then pend(q, false, { ts = u.ts, seq = old, key = u.key, ns = u.ns, kg = u.kg }) end
      if u.reseq then
        add_timer(q, { ts = u.ts, seq = u.reseq, key = u.key, ns = u.ns, raw = u.raw, kg = u.kg })
      else
        transient(q, { absent = true, key = u.key, ns = u.ns, ts = u.ts })
      end
    end
  end
end

local function ask(q, u)
  kset(q, u)
  local asks = q.asks
  asks[#asks + 1] = u
  if #asks >= WRITE_EVERY then resolve(q) end
end

-- Read the key groups whose caches are not valid (one seek each).
local function load(q)
  local tl = q.to_load
  if #tl == 0 then return end
  resolve(q) -- what a read brings into the cache must not be asked about
  local svc = q.svc
  local db, b, size = svc:db(), svc.backend, svc.cache
  for _, K in ipairs(tl) do
    if K.dirty then
      -- writes the read must see (not only the removal of fired timers)
      write_out(q, db)
      db:commit()
      break
    end
  end
  q.to_load = {}
  for _, K in ipairs(tl) do
    if not K.loaded then
      -- from just after the last timer the cache gave out (fired ones
      -- before it may not be written out yet)
      local seq = K.hint_seq and K.hint_seq + 1
      local list, more = db:timer_range(q.sid, q.dom, K.kg, K.hint_ts, seq, size)
      local m = #list / 5
      local c = {}
      for j = 1, m do
        local o = 5 * (m - j) -- descending
        local key = list[o + 3]
        local e = { ts = list[o + 1], seq = list[o + 2], key = b:key(key), ns = list[o + 4], kg = K.kg,
          cached = true }
        if not list[o + 5] then e.raw = key end
        c[j] = e
        kset(q, e)
      end
      K.cache, K.all, K.loaded, K.hint_ts, K.hint_seq = c, not more, true, nil, nil
      if m > 0 then heap_fix(q, K) end
    end
  end
end

-- Make the heap's head q's first timer. Open questions need no answer
-- for that: a question is about a timer after every cached one of its key
-- group (else the cache would have answered it), so that the group's
-- cache runs empty, and is read again (load answers every question
-- first), before that timer could be the first.
local function ready(q)
  local svc = q.svc
  if svc.plan then svc:open() end
  if not q.seen_all then
    q.seen_all = true
    for kg = svc.kg_first, svc.kg_last do kg_of(q, kg) end
  end
  if #q.to_load > 0 then load(q) end
end

-- ---- the service -------------------------------------------------------------------

--- A timer service over RocksDB backend b (a tide.state_rocksdb backend),
-- attached to it: b's flush writes the timers' changes back. on_fire as
-- tide.timers.new's; cache: timers cached per key group (default M.CACHE).
function M.new(on_fire, b, cache)
  local self = setmetatable({ on_fire = on_fire, backend = b, watermark = compat.MIN_INT, cache = cache or M.CACHE,
    max_parallelism = b.max_parallelism, kg_first = b.kg_first, kg_last = b.kg_last }, Service)
  self.remembered = self.cache * (b.kg_last - b.kg_first + 1)
  local sid = M.state_id(b)
  for _, domain in ipairs(DOMAINS) do
    self[domain] = { svc = self, domain = domain, sid = sid, dom = DOMAIN_BYTE[domain], seq = 0, kgs = {},
      fresh = true, heap = { n = 0 }, known = {}, pending = {}, transient = {}, asks = {}, to_load = {},
      ring = {}, ring_i = 1, dirty = {} }
  end
  b.attached = self -- one service per backend: the last one made
  return self
end

--- The column family id of the timers in backend b, registered there
-- under a name no state can have: a state whose id is the same (a state
-- named "_timer_state" too) is refused as any two states of one id are.
function M.state_id(b)
  local id = core.state_id(STATE)
  local mine = "(the timers' " .. STATE .. ")"
  local other = b.ids and b.ids[id]
  if other and other ~= mine then
    error(string.format("state names '%s' and '%s' have the same RocksDB column family id; rename one",
      other, mine), 0)
  end
  if b.ids then b.ids[id] = mine end
  return id
end

function Service:db()
  if self.plan then self:open() end
  return self.backend:db()
end

--- Register a timer; a second one for the same (key, ns, ts) is a no-op.
function Service:register(domain, ts, key, ns, raw)
  if ns == nil then ns = false end
  self.used = true
  local q = self[domain]
  local x = kget(q, key, ns, ts)
  if x ~= nil and not x.absent then
    if x.ask == "del" and x.reseq == nil then
      local s = q.seq + 1
      q.seq = s
      x.reseq, x.raw = s, raw
    end
    return
  end
  local s = q.seq + 1
  q.seq = s
  local kg = key_group(key, self.max_parallelism)
  if x ~= nil or surely_absent(kg_of(q, kg), ts) then
    add_timer(q, { ts = ts, seq = s, key = key, ns = ns, raw = raw, kg = kg })
  else
    ask(q, { ask = "reg", ts = ts, seq = s, key = key, ns = ns, raw = raw, kg = kg })
  end
end

--- Delete a timer (no-op if there is none).
function Service:delete(domain, ts, key, ns)
  if ns == nil then ns = false end
  self.used = true
  local q = self[domain]
  local x = kget(q, key, ns, ts)
  if x ~= nil then
    if x.absent then return end
    if x.ask then
      x.ask, x.reseq = "del", nil
      return
    end
    remove_timer(q, x)
    return
  end
  local kg = key_group(key, self.max_parallelism)
  if surely_absent(kg_of(q, kg), ts) then return end
  ask(q, { ask = "del", ts = ts, key = key, ns = ns, kg = kg })
end

-- Fire every timer of domain with timestamp <= limit, in order.
function Service:fire_until(domain, limit)
  local q = self[domain]
  local on_fire = self.on_fire
  while true do
    ready(q)
    local K = q.heap[1]
    if K == nil then return end
    local c = K.cache
    local n = #c
    local e = c[n]
    if e.ts > limit then return end
    c[n] = nil
    e.cached = nil
    transient(q, { absent = true, key = e.key, ns = e.ns, ts = e.ts })
    pend(q, false, e, true)
    after_remove(q, K, e)
    on_fire(domain, e.ts, e.key, e.ns, e.raw)
  end
end

--- Fire every event-time timer with timestamp <= wm (advance_watermark),
-- every processing-time timer with timestamp <= now
-- (advance_processing_time), in order: as the heap service's.
Service.advance_watermark = timers.Timers.advance_watermark
Service.advance_processing_time = timers.Timers.advance_processing_time

--- The earliest pending processing-time timer, or nil.
function Service:next_processing_time()
  local q = self.processing
  ready(q)
  local K = q.heap[1]
  return K and head(K).ts
end

--- Whether write() has nothing to write back (no timer registered,
-- deleted or fired since the last one): tide.state_rocksdb's flush(true)
-- may then keep the state cache for a later write batch.
function Service:idle()
  if self.plan then return false end
  for _, domain in ipairs(DOMAINS) do
    local q = self[domain]
    if #q.asks > 0 or #q.pending > 0 or #q.transient > 0 then return false end
  end
  return true
end

--- Write back what changed (tide.state_rocksdb's flush calls it before
-- it commits the write batch).
function Service:write()
  if self.plan then self:open() end
  for _, domain in ipairs(DOMAINS) do
    local q = self[domain]
    if #q.asks > 0 or #q.pending > 0 or #q.transient > 0 then
      resolve(q)
      write_out(q, self.backend:db())
    end
  end
end

-- Call fn(ts, seq, key, ns, raw, kg) for every stored timer of q in key
-- group order (after a write-back).
local function each_stored(self, q, fn)
  local db = self:db()
  for kg = self.kg_first, self.kg_last do
    local ts, seq
    while true do
      local list, more = db:timer_range(q.sid, q.dom, kg, ts, seq, 1024)
      for o = 0, #list - 5, 5 do
        local key = list[o + 3]
        fn(list[o + 1], list[o + 2], key, list[o + 4], (not list[o + 5]) and key or nil, kg)
      end
      if not more then break end
      ts, seq = list[#list - 4], list[#list - 3] + 1
    end
  end
end

-- Write back everything and commit (before reading RocksDB directly).
local function sync(self)
  self:write()
  self:db():commit()
end

--- Number of pending timers of a domain (reads every stored one: tests).
function Service:count(domain)
  sync(self)
  local n = 0
  each_stored(self, self[domain], function() n = n + 1 end)
  return n
end

--- The timers as the heap service's snapshot has them: {event = {{ts,
-- key, ns, raw}...}, processing = ...} in firing order (savepoints:
-- canonical; read in the task thread).
function Service:canonical()
  sync(self)
  local out = {}
  for _, domain in ipairs(DOMAINS) do
    local all = {}
    each_stored(self, self[domain], function(ts, seq, key, ns, raw, kg)
      all[#all + 1] = { ts = ts, seq = seq, kg = kg, key = key, ns = ns, raw = raw }
    end)
    table.sort(all, less)
    local list = {}
    for i, t in ipairs(all) do list[i] = { t.ts, t.key, t.ns, t.raw } end
    out[domain] = list
  end
  return out
end

--- The synchronous part of a savepoint (after the backend's write-back):
-- the canonical timers, read now.
function Service:prepare_savepoint()
  self.prepared = self:canonical()
end

--- The snapshot child was forked: drop what it took.
function Service:snapshot_started()
  self.prepared = nil
end

--- The timers' part of the operator's snapshot: for a checkpoint,
-- {store = "rocksdb", event = {seq =}, processing = {seq =}} (the timers
-- are in the backend's RocksDB checkpoint); for a savepoint (opts.savepoint)
-- the canonical lists (prepared at the barrier, or read now in the task
-- thread for a final state).
function Service:snapshot(opts)
  if opts and opts.savepoint then
    local p = self.prepared
    self.prepared = nil
    return p or self:canonical()
  end
  return { store = "rocksdb", event = { seq = self.event.seq }, processing = { seq = self.processing.seq } }
end

-- the key groups both of [a, b] and of this service
local function overlap(self, a, b)
  if a == nil then return self.kg_first, self.kg_last end
  return math.max(a, self.kg_first), math.min(b, self.kg_last)
end

--- Restore from an old subtask's timers (data: a snapshot()'s timers, or
-- the heap service's lists), keyed its keyed-state snapshot. Called for
-- each old subtask in subtask order, before the instance is used; the
-- timers are put in place when it is first used (open). Timers of key
-- groups outside this backend's range are left out.
function Service:restore(data, _, keyed)
  if self.opened or self.used then
    -- a service in use: its timers stay first, as the heap service's
    if data.store == "rocksdb" then error("timers: stored timers restore only into a new service", 0) end
    for _, domain in ipairs(DOMAINS) do
      for _, t in ipairs(data[domain] or {}) do
        local key = self.backend:key(t[2])
        if self.backend:owns(key) then self:register(domain, t[1], key, t[3], t[4]) end
      end
    end
    return
  end
  local plan = self.plan or {}
  self.plan = plan
  local from, to
  if keyed and keyed.backend == "rocksdb" then from, to = overlap(self, keyed.kg_first, keyed.kg_last) end
  local step = { data = data, from = from, to = to, offset = {} }
  for _, domain in ipairs(DOMAINS) do
    local q = self[domain]
    q.fresh = false
    step.offset[domain] = q.seq
    -- the sequence numbers this source takes: its stored ones moved by
    -- offset, or one per listed timer
    if data.store == "rocksdb" then
      q.seq = q.seq + (data[domain] and data[domain].seq or 0)
    else
      q.seq = q.seq + #(data[domain] or {})
    end
  end
  plan[#plan + 1] = step
end

--- Put the restored timers in place (at first use).
function Service:open()
  local plan = self.plan
  self.plan, self.opened = nil, true
  if not plan then return end
  local b = self.backend
  local db = b:db()
  for _, step in ipairs(plan) do
    local data = step.data
    for _, domain in ipairs(DOMAINS) do
      local q = self[domain]
      local off = step.offset[domain]
      if data.store == "rocksdb" then
        -- the timers came with the instance: after the previous sources'
        if off ~= 0 and step.from then
          for kg = step.from, step.to do db:timer_rewrite(q.sid, q.dom, kg, off) end
        end
      else
        -- a list of the heap service: stored timers of an earlier run
        -- with RocksDB timers in the same instance are stale
        if step.from then
          for kg = step.from, step.to do db:timer_rewrite(q.sid, q.dom, kg) end
        end
        local n = 0
        for i, t in ipairs(data[domain] or {}) do
          local key = b:key(t[2])
          if b:owns(key) then
            local ns = t[3]
            if ns == nil then ns = false end
            db:timer_put(q.sid, q.dom, key_group(key, self.max_parallelism), t[1], off + i, key, ns, t[4] == nil)
            n = n + 1
            if n % WRITE_EVERY == 0 then db:commit() end
          end
        end
        db:commit()
      end
    end
  end
end

--- The stored timers of old instance snapshot `keyed` (a tide.state_rocksdb
-- snapshot) in heap backend b's key groups, as the heap service's lists
-- in firing order: how a heap service restores timers stored in RocksDB.
function M.read_snapshot(b, keyed)
  local out = { event = {}, processing = {} }
  local db = require("tide.state_rocksdb").open_snapshot(b.cfg, keyed, b)
  if not db then return out end
  local from, to = math.max(keyed.kg_first, b.kg_first), math.min(keyed.kg_last, b.kg_last)
  local sid = core.state_id(STATE)
  local ok, err = pcall(function()
    for _, domain in ipairs(DOMAINS) do
      local all = {}
      for kg = from, to do
        local ts, seq
        while true do
          local list, more = db:timer_range(sid, DOMAIN_BYTE[domain], kg, ts, seq, 1024)
          for o = 0, #list - 5, 5 do
            local key = list[o + 3]
            all[#all + 1] = { ts = list[o + 1], seq = list[o + 2], kg = kg, key = key, ns = list[o + 4],
              raw = (not list[o + 5]) and key or nil }
          end
          if not more then break end
          ts, seq = list[#list - 4], list[#list - 3] + 1
        end
      end
      table.sort(all, less)
      local l = out[domain]
      for i, t in ipairs(all) do l[i] = { t.ts, t.key, t.ns, t.raw } end
    end
  end)
  db:close()
  if not ok then error(err, 0) end
  return out
end

return M
