-- Sources (tide.operators.open_source): what a CSV source under
-- on_error = "skip" reports, and that its count and first message survive
-- a snapshot and restore (expected messages are written out by hand from
-- the input files); which numbers each split of generate reads.
local core = require "tide.core"
local operators = require "tide.operators"

local function write_tmp(content)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
  return path
end

local function csv_node(path)
  return { uid = "src", name = "read_csv", site = "job.lua:3",
    source = { type = "csv", path = path, opts = { header = true, skip_errors = true } } }
end

local RT = { subtask = 0, parallelism = 1 }

-- reads batches of one record until the end (or `limit` records); returns
-- the rows' k fields
local function read_keys(read, limit)
  local keys, buf = {}, {}
  while not limit or #keys < limit do
    local n = read(buf, 1)
    if n == 0 then break end
    keys[#keys + 1] = buf[1].k
  end
  return keys
end

describe("read_csv with on_error = 'skip' #unit", function()
  local saved_warn, warnings, path
  -- line 1 header, 3 has one field, 5 opens a quote that never closes
  local content = "k,v\na,1\nb\nc,3\nd,\"open\ne,5\n"

  before_each(function()
    saved_warn, warnings = operators.warn, {}
    operators.warn = function(m) warnings[#warnings + 1] = m end
    path = write_tmp(content)
  end)
  after_each(function()
    operators.warn = saved_warn
    os.remove(path)
  end)

  it("keeps the rows after an unterminated quote and warns once at the end", function()
    local read = operators.open_source(csv_node(path), RT)
    assert.are.same({ "a", "c", "e" }, read_keys(read))
    assert.are.equal(0, read({}, 1)) -- read again after the end: no second warning
    assert.are.same({
      "read_csv (uid 'src', subtask 1/1): skipped 2 bad rows of " .. path .. ", first at " .. path ..
        ":3: expected 2 fields, got 1",
    }, warnings)
  end)

  -- reads a file holding `text` to its end: its path and the rows' keys
  local function read_text(text)
    local p = write_tmp(text)
    local keys = read_keys((operators.open_source(csv_node(p), RT)))
    os.remove(p)
    return p, keys
  end

  it("names the line an unterminated quote starts on", function()
    local p, keys = read_text("k,v\na,1\nb,\"x\nc,3\n")
    assert.are.same({ "a", "c" }, keys)
    assert.are.same({
      "read_csv (uid 'src', subtask 1/1): skipped 1 bad row of " .. p .. ", first at " .. p ..
        ":3: unterminated quoted field (opened at line 3, runs to the end of the file)",
    }, warnings)
  end)

  it("counts every bad row once across a restore, with the first one's message", function()
    local read, pos = operators.open_source(csv_node(path), RT)
    assert.are.same({ "a", "c" }, read_keys(read, 2)) -- skips line 3
    -- a checkpoint: the snapshot goes through the record codec
    local snap = core.decode(core.encode(pos.snapshot()))
    assert.are.same({ "e" }, read_keys(read, 1)) -- skips line 5, then "fails"
    assert.are.same({}, warnings)

    local read2, pos2 = operators.open_source(csv_node(path), RT)
    pos2.restore(snap)
    assert.are.same({ "e" }, read_keys(read2))
    assert.are.same({
      "read_csv (uid 'src', subtask 1/1): skipped 2 bad rows of " .. path ..
        " (1 before the restored checkpoint), first at " .. path .. ":3: expected 2 fields, got 1",
    }, warnings)
  end)

  it("says nothing when no row was bad", function()
    local _, keys = read_text("k,v\na,1\n")
    assert.are.same({ "a" }, keys)
    assert.are.same({}, warnings)
  end)
end)

describe("generate's splits #unit", function()
  local function gen_node(count)
    return { uid = "gen", name = "generate", site = "job.lua:3",
      source = { type = "generate", fn = function(i) return i end, count = count } }
  end
  local function read_all(read)
    local all, buf = {}, {}
    while true do
      local n = read(buf, 4)
      if n == 0 then return all end
      for i = 1, n do all[#all + 1] = buf[i] end
    end
  end

  it("gives split k of n every n-th number from k + 1, bounded or not", function()
    local rt = { subtask = 1, parallelism = 3 }
    assert.are.same({ 2, 5, 8, 11 }, read_all((operators.open_source(gen_node(11), rt))))
    rt.subtask = 2
    assert.are.same({ 3, 6, 9 }, read_all((operators.open_source(gen_node(11), rt))))
    local read = operators.open_source(gen_node(nil), { subtask = 0, parallelism = 2 })
    local buf = {}
    assert.are.equal(3, read(buf, 3))
    assert.are.same({ 1, 3, 5 }, buf)
  end)

  it("restores its position, and a position of the old contiguous splits as such", function()
    local rt = { subtask = 1, parallelism = 2 }
    local read, pos = operators.open_source(gen_node(10), rt)
    local buf = {}
    assert.are.equal(2, read(buf, 2)) -- 2, 4
    local snap = core.decode(core.encode(pos.snapshot()))
    local read2, pos2 = operators.open_source(gen_node(10), rt)
    pos2.restore(snap)
    assert.are.same({ 6, 8, 10 }, read_all(read2))
    -- written when split 1 of 2 was 6..10, after reading 6 and 7
    local read3, pos3 = operators.open_source(gen_node(10), rt)
    pos3.restore({ splits = { { index = 1, count = 2, state = { seq = 8 } } } })
    assert.are.same({ 8, 9, 10 }, read_all(read3))
  end)
end)
