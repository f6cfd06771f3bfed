-- Issue 10's incremental-checkpoint goal, on the keyed-state layer itself
-- (tide.state with the RocksDB backend, as a keyed operator holds it):
-- KEYS keys of value state are written and checkpoint 1 is uploaded to a
-- shared directory; then 1% of the keys are updated and checkpoint 2 is
-- taken. Prints "FULL_BYTES NEW_BYTES SYNC_MS UPLOAD_MS": the bytes
-- checkpoint 2 references (a full checkpoint's size), the bytes it added
-- to the shared directory (what an incremental checkpoint uploads), the
-- time of its synchronous part (the task's pause: a memtable flush and a
-- RocksDB checkpoint) and of its upload (the snapshot child's part) in ms.
--   lua5.4 scripts/bench/incremental.lua KEYS   (LUA_CPATH: build/lua/?.so)
local core = require "tide.core"
local state = require "tide.state"

local keys = math.floor(tonumber(arg[1] or "1000000"))
local tmp = os.getenv("TMPDIR") or "/tmp"
local base = string.format("%s/tide-bench-incremental-%d", tmp, core.monotonic_us())
local shared = base .. "-shared"
assert(core.mkdir_p(shared))
state.configure { backend = "rocksdb", dir = base, shared_dir = shared, restore_shared = shared }
local b = state.backend(128, 1, 0)
local cur = {}
local v = state.new(cur, b):value("v")
local pad = string.rep("x", 20)
for i = 1, keys do
  cur.key = i
  v:update(pad .. i)
  if i % 1024 == 0 then b:flush() end
end
b:prepare_snapshot(1)
b:snapshot()
local function dir_bytes()
  local total = 0
  for _, f in ipairs(core.list_dir(shared)) do
    local h = io.open(shared .. "/" .. f, "rb")
    total = total + h:seek("end")
    h:close()
  end
  return total
end
local before = dir_bytes()
local step = 100 -- 1% of the keys
for i = 1, keys, step do
  cur.key = i
  v:update("touched" .. i)
  if i % (1024 * step) == 1 then b:flush() end
end
local t0 = core.monotonic_us()
b:prepare_snapshot(2)
local t1 = core.monotonic_us()
local snap = b:snapshot()
local t2 = core.monotonic_us()
local full = 0
for _, f in ipairs(snap.files) do full = full + f[3] end
print(string.format("%d %d %.1f %.1f", full, dir_bytes() - before, (t1 - t0) / 1000, (t2 - t1) / 1000))
b:close()
core.remove_files(shared, core.list_dir(shared))
