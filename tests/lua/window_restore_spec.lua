-- Window state in the keyed-state layer (issue 10, docs/STATE.md "Window
-- operators"): every window implementation (the general operator, the
-- sliced fast path, the session fast path) writes one snapshot format, so
-- (1) a job that changes implementation (gains allowed lateness or a custom
-- trigger, or loses it) restores from the other one's snapshot, and (2)
-- window state restores at another parallelism by key-group range.
-- Expected results are computed here from the records fed (window
-- assignment and session merging written out directly), not by the window
-- code; the rescaled runs are also compared with an uninterrupted p=1 run.
--
-- Records {k =, v =}; phase 1 has timestamps in [0, 1000) and ends with a
-- watermark at 600 (550 in the second old subtask when rescaling), phase 2
-- has timestamps in [701, 1600): no record is late, windows and sessions
-- straddle the snapshot, and a session fired in phase 1 (stop <= 601)
-- cannot touch a phase 2 record (a 100 ms gap).
local tide = require "tide"
local testing = require "tide.testing"
local core = require "tide.core"

local W = tide.windows
local MAXP = 128
local GAP = 100

local function owner(k, p) return math.floor(core.key_group(k, MAXP) * p / MAXP) end
local function id(k) return type(k) == "table" and table.concat(k, ":") or tostring(k) end

local KEYS = {}
for i = 1, 12 do KEYS[#KEYS + 1] = i end
for i = 1, 4 do KEYS[#KEYS + 1] = "s" .. i end
for i = 1, 4 do KEYS[#KEYS + 1] = { "t", i } end

-- a deterministic generator (no math.random: the same on both VMs)
local function rng(seed)
  local x = seed
  return function(n)
    x = (x * 1103515245 + 12345) % 2147483648
    return x % n
  end
end

-- {k, v, ts} records of phase 1 and phase 2, in arrival order
local function records(seed)
  local rand = rng(seed)
  local p1, p2 = {}, {}
  for i = 1, 300 do
    p1[i] = { k = KEYS[rand(#KEYS) + 1], v = rand(9) + 1, ts = rand(1000) }
  end
  for i = 1, 300 do
    p2[i] = { k = KEYS[rand(#KEYS) + 1], v = rand(9) + 1, ts = 701 + rand(899) }
  end
  return p1, p2
end

-- EventTimeTrigger written as a user trigger: the same firings, but not
-- the default trigger, so the job runs on the general operator
local function custom_event_time()
  return {
    on_element = function(_, _, w, ctx)
      if w.max_timestamp <= ctx:current_watermark() then return "fire" end
      ctx:register_event_time_timer(w.max_timestamp)
      return "continue"
    end,
    on_event_time = function(time, w) return time == w.max_timestamp and "fire" or "continue" end,
    on_merge = function(w, ctx)
      if w.max_timestamp > ctx:current_watermark() then ctx:register_event_time_timer(w.max_timestamp) end
    end,
    clear = function(w, ctx) ctx:delete_event_time_timer(w.max_timestamp) end,
  }
end

-- the jobs: per window kind, a fast path build and a general one giving the
-- same results on records that are never late
local KEYF = function(r) return r.k end
local JOBS = {
  tumbling = {
    fast = function(s) return s:key_by(KEYF):window(W.tumbling(100)):sum("v") end,
    general = function(s)
      return s:key_by(KEYF):window(W.tumbling(100)):trigger(custom_event_time()):allowed_lateness(50):sum("v")
    end,
    fast_path = "aligned",
  },
  sliding = {
    fast = function(s) return s:key_by(KEYF):window(W.sliding(300, 100)):sum("v") end,
    general = function(s)
      return s:key_by(KEYF):window(W.sliding(300, 100)):trigger(custom_event_time()):allowed_lateness(50):sum("v")
    end,
    fast_path = "aligned",
  },
  session = {
    fast = function(s) return s:key_by(KEYF):window(W.session(GAP)):sum("v") end,
    general = function(s) return s:key_by(KEYF):window(W.session(GAP)):allowed_lateness(50):sum("v") end,
    fast_path = "session",
  },
}

-- The expected results of every record of recs: "key/max_timestamp/sum"
-- -> true (sums of v per key and window; a window's result timestamp is
-- its max_timestamp).
local function expected(kind, recs)
  local sums = {}
  local function add(k, stop, v)
    local e = id(k) .. "/" .. (stop - 1)
    sums[e] = (sums[e] or 0) + v
  end
  if kind == "tumbling" then
    for _, r in ipairs(recs) do
      local s = r.ts - r.ts % 100
      add(r.k, s + 100, r.v)
    end
  elseif kind == "sliding" then
    for _, r in ipairs(recs) do
      local s = r.ts - r.ts % 100
      while s > r.ts - 300 do
        add(r.k, s + 300, r.v)
        s = s - 100
      end
    end
  else
    -- sessions: per key, by timestamp, [ts, ts + GAP) windows that overlap
    -- or touch merge
    local by = {}
    for _, r in ipairs(recs) do
      local l = by[id(r.k)] or {}
      by[id(r.k)] = l
      l[#l + 1] = r
    end
    for _, l in pairs(by) do
      table.sort(l, function(a, b) return a.ts < b.ts end)
      local stop, sum, k
      for _, r in ipairs(l) do
        if stop ~= nil and r.ts <= stop then
          if r.ts + GAP > stop then stop = r.ts + GAP end
          sum = sum + r.v
        else
          if stop ~= nil then add(k, stop, sum) end
          stop, sum, k = r.ts + GAP, r.v, r.k
        end
      end
      add(k, stop, sum)
    end
  end
  local set = {}
  for e, s in pairs(sums) do set[e .. "/" .. s] = true end
  return set
end

-- results of a harness as a set (each at most once), checking the
-- emitting subtask owns the key when p is given
local function collect(into, h, sub, p)
  for _, e in ipairs(h:output()) do
    if e.value then
      local r = e.value
      local s = id(r.k) .. "/" .. e.ts .. "/" .. r.v
      assert.is_nil(into[s], "a window result emitted twice: " .. s)
      if p then assert.are.equal(sub, owner(r.k, p), "a result emitted by a subtask that does not own its key") end
      into[s] = true
    end
  end
  h:clear_output()
end

local function path_of(h)
  for _, op in ipairs(h.ops) do
    if op.path then return op.path end
  end
end

local function feed(h, recs, filter)
  for _, r in ipairs(recs) do
    if not filter or filter(r.k) then h:process({ k = r.k, v = r.v }, r.ts) end
  end
end

local function all_of(p1, p2)
  local all = {}
  for _, r in ipairs(p1) do all[#all + 1] = r end
  for _, r in ipairs(p2) do all[#all + 1] = r end
  return all
end

describe("window state across implementations #unit", function()
  for _, kind in ipairs { "tumbling", "sliding", "session" } do
    local job = JOBS[kind]
    for _, dir in ipairs { { "fast", "general" }, { "general", "fast" } } do
      it(string.format("restores a %s window's %s snapshot on the %s operator", kind, dir[1], dir[2]), function()
        for seed = 1, 3 do
          local p1, p2 = records(seed)
          local got = {}
          -- the fast paths run on the heap backend; the general operator on
          -- the suite's (TIDE_TEST_STATE_BACKEND): with rocksdb, the
          -- snapshot crosses backends too
          local old = testing.harness(job[dir[1]], dir[1] == "fast" and { state_backend = "heap" } or nil)
          assert.are.equal(dir[1] == "fast" and job.fast_path or "general", path_of(old))
          feed(old, p1)
          old:watermark(600)
          collect(got, old)
          local snap = old:snapshot()
          local new = testing.harness(job[dir[2]],
            { restore = snap, state_backend = dir[2] == "fast" and "heap" or nil })
          assert.are.equal(dir[2] == "fast" and job.fast_path or "general", path_of(new))
          feed(new, p2)
          new:finish()
          collect(got, new)
          assert.are.same(expected(kind, all_of(p1, p2)), got, kind .. " seed " .. seed)
        end
      end)
    end
  end
end)

describe("window state at another parallelism #unit", function()
  for _, kind in ipairs { "tumbling", "sliding", "session" } do
    for _, impl in ipairs { "fast", "general" } do
      it(string.format("restores %s windows (%s) from 2 subtasks into 1 and 3 by key-group range", kind, impl),
        function()
          local build = JOBS[kind][impl]
          local p1, p2 = records(7)
          local want = expected(kind, all_of(p1, p2))
          -- an uninterrupted run at parallelism 1
          local one, solo = testing.harness(build), {}
          feed(one, p1)
          one:watermark(600)
          feed(one, p2)
          one:finish()
          collect(solo, one)
          assert.are.same(want, solo)
          -- two old subtasks, each fed the keys routing gives it; their
          -- watermarks differ (the restored one is their minimum)
          local before, snaps = {}, {}
          for sub = 0, 1 do
            local h = testing.harness(build, { subtask = sub, parallelism = 2, max_parallelism = MAXP })
            feed(h, p1, function(k) return owner(k, 2) == sub end)
            h:watermark(sub == 0 and 600 or 550)
            collect(before, h, sub, 2)
            snaps[#snaps + 1] = h:snapshot()
          end
          for _, p in ipairs { 1, 3 } do
            local got = {}
            for e in pairs(before) do got[e] = true end
            for sub = 0, p - 1 do
              local h = testing.harness(build, { subtask = sub, parallelism = p, max_parallelism = MAXP,
                restore = snaps })
              feed(h, p2, function(k) return owner(k, p) == sub end)
              h:finish()
              collect(got, h, sub, p)
            end
            assert.are.same(want, got, kind .. " " .. impl .. " at p=" .. p)
          end
        end)
    end
  end

  it("refuses a snapshot that is not a window operator's", function()
    local build = JOBS.tumbling.fast
    local other = testing.harness(function(s) return s:key_by(KEYF):sum("v") end)
    other:process({ k = 1, v = 1 }, 10)
    local keyed
    for _, s in pairs(core.decode(other:snapshot())) do
      if type(s) == "table" and s.keyed then keyed = s end
    end
    -- the aggregation's snapshot under the window operator's uid
    local h = testing.harness(build)
    local wuid
    for _, node in ipairs(h.env.nodes) do
      if node.kind == "window" then wuid = node.uid end
    end
    local ok, err = pcall(testing.harness, build, { restore = core.encode { [wuid] = keyed } })
    assert.is_false(ok)
    assert.matches("cannot restore this operator from a snapshot that is not a window operator's", tostring(err))
  end)
end)
