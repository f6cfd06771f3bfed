-- File sources (tide.operators.open_source): what a CSV source under
-- on_error = "skip" reports, and that its count and first message survive
-- a snapshot and restore. Expected messages are written out by hand from
-- the input files.
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
