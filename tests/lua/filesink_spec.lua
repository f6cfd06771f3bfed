-- tide.filesink: part files with two-phase commit. Expected outputs come
-- from the rules, not from the code under test: committed files are the
-- ones whose names do not start with "." or "_" (DESIGN.md); a checkpoint's
-- files become visible when it completes; Flink's DefaultRollingPolicy
-- (size, rollover, inactivity) decides where files roll; recovery commits
-- what the restored checkpoint had pending and drops everything after it.
local filesink = require "tide.filesink"
local compat = require "tide.compat"

local PREFIX = "part-job-0-"

local dirs = {}
local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p " .. sh_quote(p)))
  dirs[#dirs + 1] = p
  return p
end

after_each(function()
  for _, d in ipairs(dirs) do os.execute("rm -rf " .. sh_quote(d)) end
  dirs = {}
end)

local function ls(dir)
  local p = assert(io.popen("ls -1a " .. sh_quote(dir)))
  local names = {}
  for n in p:lines() do
    if n ~= "." and n ~= ".." then names[#names + 1] = n end
  end
  p:close()
  table.sort(names)
  return names
end

local function part_number(name) return tonumber(name:match("(%d+)$")) end

-- Committed files (names not starting with "." or "_"), in part order.
local function visible(dir)
  local out = {}
  for _, n in ipairs(ls(dir)) do
    local c = n:sub(1, 1)
    if c ~= "." and c ~= "_" then out[#out + 1] = n end
  end
  table.sort(out, function(a, b) return part_number(a) < part_number(b) end)
  return out
end

local function hidden(dir)
  local out = {}
  for _, n in ipairs(ls(dir)) do
    if n:sub(1, 1) == "." then out[#out + 1] = n end
  end
  return out
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function spit(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- The text of lines: each followed by "\n".
local function text(lines, from, to)
  local parts = {}
  for i = from or 1, to or #lines do parts[#parts + 1] = lines[i] .. "\n" end
  return table.concat(parts)
end

-- The concatenation of the committed files, in part order, each one's
-- header checked and stripped.
local function committed_text(dir, header)
  local parts = {}
  for _, n in ipairs(visible(dir)) do
    local s = read(dir .. "/" .. n)
    if header then
      assert.are.equal(header, s:sub(1, #header), "header of " .. n)
      s = s:sub(#header + 1)
    end
    parts[#parts + 1] = s
  end
  return table.concat(parts)
end

-- {name = content} of the committed files.
local function contents(dir)
  local out = {}
  for _, n in ipairs(visible(dir)) do out[n] = read(dir .. "/" .. n) end
  return out
end

local function clock(t0)
  local c = { t = t0 or 0 }
  c.now = function() return c.t end
  return c
end

local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

-- True if v holds only tables (no metatables), strings, integers, booleans.
local function plain(v, seen)
  seen = seen or {}
  local t = type(v)
  if t == "string" or t == "boolean" or compat.math_type(v) == "integer" then return true end
  if t ~= "table" or getmetatable(v) or seen[v] then return false end
  seen[v] = true
  for k, x in pairs(v) do
    if not plain(k, seen) or not plain(x, seen) then return false end
  end
  return true
end

local function write(w, ...)
  local lines = { ... }
  w:write_lines(lines, #lines)
end

describe("tide.filesink #unit", function()
  it("makes a checkpoint's files visible only when that checkpoint completes", function()
    local dir = tmpdir()
    local w = filesink.new { dir = dir, prefix = PREFIX }
    write(w, "a", "b")
    assert.are.same({ "." .. PREFIX .. "0.inprogress" }, ls(dir))
    local st1 = w:pre_commit(1)
    assert.are.same({ "." .. PREFIX .. "0.pending" }, ls(dir))
    assert.are.same({}, visible(dir))
    write(w, "c")
    write(w, "d", "e")
    local st2 = w:pre_commit(2)
    assert.are.same({}, visible(dir))
    assert.are.same({ { checkpoint = 1, files = { PREFIX .. "0" } } }, st1.pending)
    assert.are.same({ { checkpoint = 1, files = { PREFIX .. "0" } },
      { checkpoint = 2, files = { PREFIX .. "1" } } }, st2.pending)

    w:commit(1)
    assert.are.same({ PREFIX .. "0" }, visible(dir))
    assert.are.equal("a\nb\n", read(dir .. "/" .. PREFIX .. "0"))
    assert.are.same({ "." .. PREFIX .. "1.pending" }, hidden(dir))

    w:commit(2)
    assert.are.same({ PREFIX .. "0", PREFIX .. "1" }, visible(dir))
    assert.are.equal("c\nd\ne\n", read(dir .. "/" .. PREFIX .. "1"))
    assert.are.same({}, hidden(dir))
    -- the returned states are snapshots: committing does not change them
    assert.are.equal(2, #st2.pending)
  end)

  it("returns plain data from pre_commit, with the part counter", function()
    local dir = tmpdir()
    local w = filesink.new { dir = dir, prefix = PREFIX }
    local st0 = w:pre_commit(1)
    assert.is_true(plain(st0))
    assert.are.same({ version = 1, checkpoint = 1, prefix = PREFIX, counter = 0, pending = {} }, st0)
    write(w, "x")
    w:commit(1)
    write(w, "y")
    local st = w:pre_commit(2)
    assert.is_true(plain(st))
    assert.are.same({ version = 1, checkpoint = 2, prefix = PREFIX, counter = 1,
      pending = { { checkpoint = 2, files = { PREFIX .. "0" } } } }, st)
    -- a checkpoint without new data adds nothing and keeps what is pending
    local st3 = w:pre_commit(3)
    assert.are.same(st.pending, st3.pending)
    w:commit(3)
    assert.are.same({}, w:pre_commit(4).pending)
    assert.matches("checkpoint ids must increase", error_of(w.pre_commit, w, 4))
  end)

  it("rolls by size before a record once the file holds rolling_size bytes", function()
    local dir = tmpdir()
    -- every line is 4 bytes with its "\n": a file takes 3 (12 >= 10)
    local w = filesink.new { dir = dir, prefix = PREFIX, rolling_size = 10 }
    write(w, "a01", "a02", "a03", "a04", "a05", "a06", "a07")
    assert.are.equal(2, #hidden(dir) - 1) -- two rolled (pending), one in progress
    assert.are.same({}, visible(dir))
    write(w, "a08", "a09") -- fills the third file (12 bytes)
    write(w, "a10")        -- rolls
    w:pre_commit(1)
    w:commit(1)
    assert.are.same({ PREFIX .. "0", PREFIX .. "1", PREFIX .. "2", PREFIX .. "3" }, visible(dir))
    assert.are.equal("a01\na02\na03\n", read(dir .. "/" .. PREFIX .. "0"))
    assert.are.equal("a04\na05\na06\n", read(dir .. "/" .. PREFIX .. "1"))
    assert.are.equal("a07\na08\na09\n", read(dir .. "/" .. PREFIX .. "2"))
    assert.are.equal("a10\n", read(dir .. "/" .. PREFIX .. "3"))
  end)

  it("rolls at exactly rolling_size, not one record early", function()
    local dir = tmpdir()
    local w = filesink.new { dir = dir, prefix = PREFIX, rolling_size = 10 }
    write(w, "12345")  -- 6 bytes
    write(w, "123")    -- 10 bytes: written (the file held 6 < 10 before it)
    write(w, "z")      -- the file holds 10: roll first
    w:finish()
    assert.are.same({ PREFIX .. "0", PREFIX .. "1" }, visible(dir))
    assert.are.equal("12345\n123\n", read(dir .. "/" .. PREFIX .. "0"))
    assert.are.equal("z\n", read(dir .. "/" .. PREFIX .. "1"))
  end)

  it("gives a line longer than rolling_size a file of its own, never an empty file", function()
    local dir = tmpdir()
    local w = filesink.new { dir = dir, prefix = PREFIX, rolling_size = 4 }
    local long = string.rep("x", 20)
    write(w, long, "b", "cc", long) -- "cc" starts at 2 < 4: same file as "b"
    w:finish()
    assert.are.same({ long .. "\n", "b\ncc\n", long .. "\n" }, {
      read(dir .. "/" .. PREFIX .. "0"), read(dir .. "/" .. PREFIX .. "1"), read(dir .. "/" .. PREFIX .. "2") })
    assert.are.equal(3, #visible(dir))
  end)

  it("rolls by size across checkpoints: pre_commit closes the file, the next write opens one", function()
    local dir = tmpdir()
    local w = filesink.new { dir = dir, prefix = PREFIX, rolling_size = 10 }
    write(w, "a01", "a02", "a03", "a04") -- file 0 full, file 1 has a04
    w:pre_commit(1)
    write(w, "b01", "b02", "b03", "b04") -- file 2 full, file 3 has b04
    w:pre_commit(2)
    w:commit(1)
    assert.are.same({ PREFIX .. "0", PREFIX .. "1" }, visible(dir))
    assert.are.equal("a01\na02\na03\na04\n", committed_text(dir))
    w:commit(2)
    assert.are.equal("a04\n", read(dir .. "/" .. PREFIX .. "1"))
    assert.are.equal("b01\nb02\nb03\n", read(dir .. "/" .. PREFIX .. "2"))
    assert.are.equal("b04\n", read(dir .. "/" .. PREFIX .. "3"))
  end)

  it("rolls on the rollover interval, at writes and on processing time", function()
    local dir = tmpdir()
    local c = clock(1000)
    local w = filesink.new { dir = dir, prefix = PREFIX, rollover_interval = 100, now = c.now }
    write(w, "t0")            -- file 0 created at 1000
    c.t = 1099; write(w, "t99")
    c.t = 1100; write(w, "t100") -- 1100 - 1000 >= 100: file 1, created at 1100
    assert.is_false(w:on_processing_time(1199))
    assert.is_true(w:on_processing_time(1200)) -- file 1 rolls
    assert.is_false(w:on_processing_time(5000)) -- no open file
    c.t = 1300; write(w, "t300") -- file 2
    w:pre_commit(1)
    w:commit(1)
    assert.are.same({ "t0\nt99\n", "t100\n", "t300\n" }, {
      read(dir .. "/" .. PREFIX .. "0"), read(dir .. "/" .. PREFIX .. "1"), read(dir .. "/" .. PREFIX .. "2") })
  end)

  it("rolls on the inactivity interval, counted from the last write", function()
    local dir = tmpdir()
    local c = clock(0)
    local w = filesink.new { dir = dir, prefix = PREFIX, inactivity_interval = 30, now = c.now }
    write(w, "a")
    c.t = 29; write(w, "b")
    c.t = 58; write(w, "c")     -- 29 ms after b: same file
    c.t = 88; write(w, "d")     -- 30 ms after c: rolls
    assert.is_false(w:on_processing_time(117))
    assert.is_true(w:on_processing_time(118))
    c.t = 200; write(w, "e")
    -- a checkpoint closes the file; the next one is created at its first write
    w:pre_commit(1)
    c.t = 210; write(w, "f")
    c.t = 239; write(w, "g")
    w:finish()
    assert.are.same({ "a\nb\nc\n", "d\n", "e\n", "f\ng\n" }, {
      read(dir .. "/" .. PREFIX .. "0"), read(dir .. "/" .. PREFIX .. "1"),
      read(dir .. "/" .. PREFIX .. "2"), read(dir .. "/" .. PREFIX .. "3") })
  end)

  it("keeps a file rolled between checkpoints pending until a later checkpoint completes", function()
    local dir = tmpdir()
    local c = clock(0)
    local w = filesink.new { dir = dir, prefix = PREFIX, rollover_interval = 50, rolling_size = 8, now = c.now }
    write(w, "p1")
    w:pre_commit(1)
    -- q1 q2 q3 take 9 bytes (q3 starts at 6 < 8); q4 starts at 9 >= 8: size roll
    write(w, "q1", "q2", "q3", "q4")
    c.t = 60; assert.is_true(w:on_processing_time()) -- time roll of q4's file
    write(w, "q5")
    w:commit(1) -- only checkpoint 1's file, although two more are closed
    assert.are.same({ PREFIX .. "0" }, visible(dir))
    assert.are.same({ "." .. PREFIX .. "1.pending", "." .. PREFIX .. "2.pending",
      "." .. PREFIX .. "3.inprogress" }, hidden(dir))
    w:pre_commit(2)
    assert.are.same({ PREFIX .. "0" }, visible(dir))
    w:commit(2)
    assert.are.same({ PREFIX .. "0", PREFIX .. "1", PREFIX .. "2", PREFIX .. "3" }, visible(dir))
    assert.are.same({ "p1\n", "q1\nq2\nq3\n", "q4\n", "q5\n" }, {
      read(dir .. "/" .. PREFIX .. "0"), read(dir .. "/" .. PREFIX .. "1"),
      read(dir .. "/" .. PREFIX .. "2"), read(dir .. "/" .. PREFIX .. "3") })
  end)

  it("commits every pre-committed checkpoint <= id, and commit is idempotent", function()
    local dir = tmpdir()
    local w = filesink.new { dir = dir, prefix = PREFIX }
    write(w, "1"); w:pre_commit(1)
    write(w, "2"); w:pre_commit(2)
    write(w, "3"); w:pre_commit(3)
    w:commit(2) -- the notification of 1 was lost: 2 covers it
    assert.are.same({ PREFIX .. "0", PREFIX .. "1" }, visible(dir))
    w:commit(2)
    w:commit(1)
    assert.are.equal("1\n2\n", committed_text(dir))
    w:commit(3)
    assert.are.equal("1\n2\n3\n", committed_text(dir))
    assert.are.same({}, hidden(dir))
  end)

  it("accepts a pending file committed before, rejects one lost with a clear message", function()
    local dir = tmpdir()
    local w = filesink.new { dir = dir, prefix = PREFIX }
    write(w, "a"); w:pre_commit(1)
    write(w, "b"); w:pre_commit(2)
    -- file 0 committed by someone (e.g. a previous attempt's commit)
    assert(os.rename(dir .. "/." .. PREFIX .. "0.pending", dir .. "/" .. PREFIX .. "0"))
    w:commit(1)
    assert.are.equal("a\n", committed_text(dir))
    -- file 1 vanished: neither pending nor committed
    os.remove(dir .. "/." .. PREFIX .. "1.pending")
    local err = error_of(w.commit, w, 2)
    assert.matches("cannot commit part file '" .. dir .. "/" .. PREFIX .. "1' of checkpoint 2", err, 1, true)
    assert.matches("is missing and it was never committed", err, 1, true)
  end)

  it("starts every part file with the header, which counts toward the size", function()
    local dir = tmpdir()
    local header = "k,v\n" -- 4 bytes
    local w = filesink.new { dir = dir, prefix = PREFIX, rolling_size = 10, header = header }
    w:pre_commit(1) -- nothing written: no file, not even a header-only one
    assert.are.same({}, ls(dir))
    write(w, "a,1", "b,2", "c,3", "d,4", "e,5")
    w:finish()
    assert.are.same({ "k,v\na,1\nb,2\n", "k,v\nc,3\nd,4\n", "k,v\ne,5\n" }, {
      read(dir .. "/" .. PREFIX .. "0"), read(dir .. "/" .. PREFIX .. "1"), read(dir .. "/" .. PREFIX .. "2") })
    assert.are.equal("a,1\nb,2\nc,3\nd,4\ne,5\n", committed_text(dir, header))
  end)

  it("finish commits everything written, then refuses more work", function()
    local dir = tmpdir()
    local w = filesink.new { dir = dir, prefix = PREFIX, rolling_size = 8 }
    write(w, "a1", "a2", "a3"); w:pre_commit(1)
    write(w, "b1", "b2", "b3", "b4"); w:pre_commit(2)
    write(w, "c1", "c2", "c3")
    w:commit(1)
    w:finish()
    assert.are.same({}, hidden(dir))
    assert.are.equal("a1\na2\na3\nb1\nb2\nb3\nb4\nc1\nc2\nc3\n", committed_text(dir))
    assert.matches("write_lines on a finished writer", error_of(write, w, "x"), 1, true)
    assert.matches("pre_commit on a finished writer", error_of(w.pre_commit, w, 3), 1, true)
  end)

  describe("recovery", function()
    -- Before the crash: L1 committed at checkpoint 1, L2 pre-committed at
    -- checkpoint 2 (not committed), L3 written after it; a stray in-progress
    -- file holds more uncommitted lines.
    local L1 = { "l1-a", "l1-b", "l1-c" }
    local L2 = { "l2-a", "l2-b", "l2-c", "l2-d", "l2-e" }
    local L3 = { "l3-a", "l3-b", "l3-c", "l3-d" }
    local function crash_after_pre_commit_2(dir, commit_1, how)
      local w = filesink.new { dir = dir, prefix = PREFIX, rolling_size = 12 }
      w:write_lines(L1, #L1)
      w:pre_commit(1)
      if commit_1 then w:commit(1) end
      w:write_lines(L2, #L2)
      local st2 = w:pre_commit(2)
      w:write_lines(L3, #L3) -- rolls: pending files of no checkpoint + in-progress
      if how == "dispose" then
        w:dispose()
      else
        w.cur.fh:flush() -- the data reached the file; the process dies
      end
      spit(dir .. "/." .. PREFIX .. "99.inprogress", "uncommitted-1\nuncommitted-2\n")
      return st2
    end

    it("commits exactly the lines up to pre_commit(2): nothing after it, nothing twice", function()
      local dir = tmpdir()
      local st2 = crash_after_pre_commit_2(dir, true, "dispose")
      assert.are.equal(text(L1), committed_text(dir))
      assert.is_true(#hidden(dir) >= 3)
      local w = filesink.recover { dir = dir, prefix = PREFIX, rolling_size = 12, state = st2 }
      assert.are.equal(text(L1) .. text(L2), committed_text(dir))
      assert.are.same({}, hidden(dir))
      -- numbering continues after the restored counter: no name is reused
      assert.are.equal(st2.counter, w:next_part())
      local before = contents(dir)
      write(w, "after-1", "after-2")
      w:finish()
      for n, s in pairs(before) do assert.are.equal(s, read(dir .. "/" .. n), n) end
      assert.are.equal(text(L1) .. text(L2) .. "after-1\nafter-2\n", committed_text(dir))
    end)

    it("commits what the restored state had pending when no commit happened at all", function()
      local dir = tmpdir()
      local st2 = crash_after_pre_commit_2(dir, false, "flush")
      assert.are.same({}, visible(dir))
      assert.are.equal(2, #st2.pending)
      filesink.recover { dir = dir, prefix = PREFIX, state = st2 }
      assert.are.equal(text(L1) .. text(L2), committed_text(dir))
      assert.are.same({}, hidden(dir))
    end)

    it("restored from checkpoint 1 drops checkpoint 2's pending files (their records are replayed)", function()
      local dir = tmpdir()
      local w = filesink.new { dir = dir, prefix = PREFIX }
      w:write_lines(L1, #L1)
      local st1 = w:pre_commit(1)
      w:write_lines(L2, #L2)
      w:pre_commit(2) -- checkpoint 2 never completes
      w:dispose()
      local r = filesink.recover { dir = dir, prefix = PREFIX, state = st1 }
      assert.are.equal(text(L1), committed_text(dir))
      assert.are.same({}, hidden(dir))
      -- ids continue after the restored checkpoint
      r:write_lines(L2, #L2)
      r:pre_commit(3)
      r:commit(3)
      assert.are.equal(text(L1) .. text(L2), committed_text(dir))
    end)

    it("restored from checkpoint 1 after checkpoint 2 committed removes checkpoint 2's files (replayed)", function()
      local dir = tmpdir()
      local w = filesink.new { dir = dir, prefix = PREFIX }
      w:write_lines(L1, #L1)
      local st1 = w:pre_commit(1)
      w:commit(1)
      w:write_lines(L2, #L2)
      w:pre_commit(2)
      w:commit(2) -- checkpoint 2 completed, then its files were found corrupt
      write(w, "in-progress")
      w:dispose()
      assert.are.equal(text(L1) .. text(L2), committed_text(dir))
      -- a later run (another prefix) falls back to checkpoint 1
      local r = filesink.recover { dir = dir, prefix = "part-later-0-", state = st1 }
      assert.are.equal(text(L1), committed_text(dir))
      assert.are.same({}, hidden(dir))
      assert.are.equal(st1.counter, r:next_part())
      r:write_lines(L2, #L2) -- the replay
      r:pre_commit(3)
      r:commit(3)
      assert.are.equal(text(L1) .. text(L2), committed_text(dir))
      assert.are.same({ PREFIX .. "0", PREFIX .. "1" }, visible(dir)) -- one series
    end)

    it("is idempotent: recovering twice from the same state gives the same directory", function()
      local dir = tmpdir()
      local st2 = crash_after_pre_commit_2(dir, false, "dispose")
      local w1 = filesink.recover { dir = dir, prefix = PREFIX, rolling_size = 12, state = st2 }
      local after_first = ls(dir)
      local text_first = committed_text(dir)
      -- the recovered attempt writes and pre-commits, then fails again
      write(w1, "r1-a", "r1-b", "r1-c", "r1-d")
      w1:pre_commit(3)
      write(w1, "r1-e")
      w1:dispose()
      local w2 = filesink.recover { dir = dir, prefix = PREFIX, rolling_size = 12, state = st2 }
      assert.are.same(after_first, ls(dir))
      assert.are.equal(text_first, committed_text(dir))
      assert.are.equal(text(L1) .. text(L2), text_first)
      assert.are.equal(st2.counter, w2:next_part())
      -- and a third time, straight away
      filesink.recover { dir = dir, prefix = PREFIX, state = st2 }
      assert.are.same(after_first, ls(dir))
    end)

    it("without a state removes the failed attempt's files and keeps committed ones", function()
      local dir = tmpdir()
      spit(dir .. "/" .. PREFIX .. "4", "old\n")          -- committed by an earlier run
      spit(dir .. "/." .. PREFIX .. "5.inprogress", "x\n")
      spit(dir .. "/." .. PREFIX .. "6.pending", "y\n")
      spit(dir .. "/.part-job-1-0.pending", "other subtask\n") -- not ours
      spit(dir .. "/_SUCCESS", "")
      local w = filesink.recover { dir = dir, prefix = PREFIX }
      assert.are.same({ ".part-job-1-0.pending", "_SUCCESS", PREFIX .. "4" }, ls(dir))
      assert.are.equal(5, w:next_part()) -- never overwrites a committed file
      write(w, "new")
      w:finish()
      assert.are.equal("old\nnew\n", committed_text(dir))
    end)

    it("numbers after the restored counter even when committed files were consumed", function()
      local dir = tmpdir()
      local w = filesink.new { dir = dir, prefix = PREFIX }
      write(w, "a"); w:pre_commit(1)
      write(w, "b"); w:pre_commit(2)
      w:commit(2)
      local st3 = w:pre_commit(3) -- nothing pending: a reader may take the files
      w:dispose()
      os.remove(dir .. "/" .. PREFIX .. "0")
      os.remove(dir .. "/" .. PREFIX .. "1")
      local r = filesink.recover { dir = dir, prefix = PREFIX, state = st3 }
      assert.are.same({}, st3.pending)
      assert.are.equal(2, st3.counter)
      assert.are.equal(2, r:next_part())
      write(r, "c")
      r:finish()
      assert.are.same({ PREFIX .. "2" }, visible(dir))
    end)

    it("fails with a clear message when a pending file of the state is lost", function()
      local dir = tmpdir()
      local st2 = crash_after_pre_commit_2(dir, false, "dispose")
      local lost = st2.pending[2].files[1]
      os.remove(dir .. "/." .. lost .. ".pending")
      local err = error_of(filesink.recover, { dir = dir, prefix = PREFIX, state = st2 })
      assert.matches("cannot commit part file '" .. dir .. "/" .. lost .. "' of checkpoint 2: its pending file", err, 1, true)
    end)

    it("rejects a malformed state", function()
      local dir = tmpdir()
      assert.matches("bad restored state: unknown version",
        error_of(filesink.recover, { dir = dir, prefix = PREFIX, state = { version = 9 } }), 1, true)
      assert.matches("bad file name",
        error_of(filesink.recover, { dir = dir, prefix = PREFIX, state = {
          version = 1, checkpoint = 1, prefix = PREFIX, counter = 1,
          pending = { { checkpoint = 1, files = { "../etc/passwd" } } } } }), 1, true)
    end)
  end)

  it("rejects bad configurations", function()
    local dir = tmpdir()
    assert.matches("dir must be", error_of(filesink.new, { prefix = PREFIX }), 1, true)
    assert.matches("prefix must be", error_of(filesink.new, { dir = dir, prefix = ".hidden-" }), 1, true)
    assert.matches("prefix must be", error_of(filesink.new, { dir = dir, prefix = "a/b-" }), 1, true)
    assert.matches("rolling_size must be", error_of(filesink.new, { dir = dir, prefix = PREFIX, rolling_size = 0 }), 1, true)
    assert.matches("rollover_interval must be",
      error_of(filesink.new, { dir = dir, prefix = PREFIX, rollover_interval = -1 }), 1, true)
  end)

  it("matches a reference model over random writes, rolls, checkpoints, commits and crashes", function()
    for seed = 1, 25 do
      local dir = tmpdir()
      local rng_state = seed
      local function rand(n) -- deterministic LCG, 1..n
        rng_state = (rng_state * 1103515245 + 12345) % 2147483648
        return rng_state % n + 1
      end
      local c = clock(0)
      local header = (seed % 3 == 0) and "h1,h2\n" or nil
      local cfg = { dir = dir, prefix = PREFIX, rolling_size = 8 + rand(40), header = header,
        rollover_interval = (seed % 2 == 0) and 50 + rand(100) or nil,
        inactivity_interval = (seed % 4 == 1) and 20 + rand(50) or nil, now = c.now }
      local w = filesink.new(cfg)
      local written = {}       -- lines accepted, in order (truncated by recovery)
      local pos, states = {}, {} -- per pre-committed id: #written then, state
      local next_id, committed_id, committed_upto = 1, 0, 0
      local seen = {}          -- committed file -> content: never changes
      local seq = 0
      -- Committed text == the model's; full = re-read every committed file
      -- (else only new ones) and check none changed.
      local function check(full)
        local parts = {}
        -- full: list the directory; else probe the part names in use (no fork)
        local names = full and visible(dir) or {}
        if not full then
          for k = 0, w:next_part() + 1 do
            local f = io.open(dir .. "/" .. PREFIX .. k, "rb")
            if f then f:close() names[#names + 1] = PREFIX .. k end
          end
        end
        for _, n in ipairs(names) do
          if full or not seen[n] then
            local s = read(dir .. "/" .. n)
            if seen[n] then assert.are.equal(seen[n], s, "seed " .. seed .. " rewrote " .. n) end
            seen[n] = s
          end
          parts[#parts + 1] = header and seen[n]:sub(#header + 1) or seen[n]
          if header then assert.are.equal(header, seen[n]:sub(1, #header)) end
        end
        assert.are.equal(text(written, 1, committed_upto), table.concat(parts), "seed " .. seed)
      end
      for _ = 1, 120 do
        local op = rand(20)
        if op <= 10 then
          local n = rand(5)
          local lines = {}
          for i = 1, n do
            seq = seq + 1
            lines[i] = string.format("r%d-%s", seq, string.rep("x", rand(12) - 1))
            written[#written + 1] = lines[i]
          end
          c.t = c.t + rand(30) - 1
          w:write_lines(lines, n)
        elseif op <= 12 then
          c.t = c.t + rand(60)
          w:on_processing_time()
        elseif op <= 15 then
          local id = next_id
          next_id = next_id + 1
          states[id] = w:pre_commit(id)
          pos[id] = #written
        elseif op <= 18 then
          -- the latest pre-committed checkpoint completes
          local id = next_id - 1
          if pos[id] and id > committed_id then
            w:commit(id)
            committed_id, committed_upto = id, pos[id]
          end
        else
          -- crash; restore from a pre-committed checkpoint not older than
          -- the last completed one (or from nothing, if none exists)
          if rand(2) == 1 then w:dispose() end
          if rand(2) == 1 then spit(dir .. "/." .. PREFIX .. (1000 + rand(5)) .. ".inprogress", "zzz\n") end
          local ids = {}
          for id in pairs(pos) do if id >= committed_id then ids[#ids + 1] = id end end
          table.sort(ids)
          local restore = #ids > 0 and ids[rand(#ids)] or nil
          if restore then
            cfg.state = states[restore]
            w = filesink.recover(cfg)
            committed_id, committed_upto = restore, pos[restore]
            for i = #written, pos[restore] + 1, -1 do written[i] = nil end
            for id in pairs(pos) do
              if id > restore then pos[id], states[id] = nil, nil end
            end
          else
            assert.are.equal(0, committed_upto)
            cfg.state = nil
            w = filesink.recover(cfg)
            written = {}
          end
          for _, n in ipairs(hidden(dir)) do
            assert.is_nil(n:match("^%." .. PREFIX:gsub("%p", "%%%0")), "seed " .. seed .. " left " .. n)
          end
          check(true)
        end
        check()
      end
      w:finish()
      committed_upto = #written
      check(true)
      assert.are.same({}, hidden(dir))
    end
  end)

  describe("defer_sync", function()
    local core = require "tide.core"
    local real = core.fsync
    local calls
    before_each(function()
      calls = {}
      core.fsync = function(path)
        calls[#calls + 1] = path
        return real(path)
      end
    end)
    after_each(function() core.fsync = real end)

    it("pre_commit syncs nothing; sync() fsyncs the pending files, then the directory", function()
      local dir = tmpdir()
      local w = filesink.new { dir = dir, prefix = PREFIX, defer_sync = true }
      w:write_lines({ "a", "b" }, 2)
      w:pre_commit(1)
      assert.are.same({}, calls)
      w:sync()
      assert.are.same({ dir .. "/." .. PREFIX .. "0.pending", dir }, calls)
      calls = {}
      w:sync() -- nothing new
      assert.are.same({}, calls)
    end)

    it("commit syncs before it renames, and the output is the same", function()
      local dir = tmpdir()
      local w = filesink.new { dir = dir, prefix = PREFIX, defer_sync = true }
      w:write_lines({ "a", "b" }, 2)
      w:pre_commit(1)
      w:commit(1)
      assert.are.equal(dir .. "/." .. PREFIX .. "0.pending", calls[1])
      assert.are.equal("a\nb\n", committed_text(dir))
      w:write_lines({ "c" }, 1)
      w:finish()
      assert.are.equal("a\nb\nc\n", committed_text(dir))
      assert.are.same({}, hidden(dir))
    end)

    it("sync_paths lists what sync() would fsync and leaves it unsynced: commit still syncs", function()
      local dir = tmpdir()
      local w = filesink.new { dir = dir, prefix = PREFIX, defer_sync = true }
      w:write_lines({ "a", "b" }, 2)
      w:pre_commit(1)
      local out = {}
      w:sync_paths(out)
      local pending = dir .. "/." .. PREFIX .. "0.pending"
      assert.are.same({ { pending, dir .. "/" .. PREFIX .. "0" }, { dir } }, out)
      assert.are.same({}, calls) -- a snapshot thread fsyncs them, not this
      -- that thread's work may never run (its checkpoint aborted): commit
      -- syncs before it renames, as without sync_paths
      w:commit(1)
      assert.are.same({ pending, dir }, { calls[1], calls[2] }) -- then the rename's directory fsync
      assert.are.equal("a\nb\n", committed_text(dir))
    end)

    it("a forked writer's sync finds a file its parent committed meanwhile", function()
      local dir = tmpdir()
      local w = filesink.new { dir = dir, prefix = PREFIX, defer_sync = true }
      w:write_lines({ "a" }, 1)
      w:pre_commit(1)
      local at_fork = { compat.unpack(w.unsynced) } -- what the child sees
      w:commit(1)                                  -- the parent goes on
      calls = {}
      w.unsynced = at_fork
      w:sync()                                     -- as the child would
      assert.are.same({ dir .. "/." .. PREFIX .. "0.pending", dir .. "/" .. PREFIX .. "0" }, calls)
    end)
  end)
end)
