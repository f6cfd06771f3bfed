-- The timer specs' oracle (eventtime_spec, timers_rocksdb_spec), loaded
-- with dofile: a plain model of a timer service's live timers, one per
-- (domain, key, namespace, timestamp), each with the order of its latest
-- registration, fired by sorting; and a deterministic generator.
local M = {}

-- "domain:ts:key:ns", a table key written as its elements joined by "/"
function M.line(domain, ts, key, ns)
  return string.format("%s:%d:%s:%s", domain, ts, type(key) == "table" and table.concat(key, "/") or tostring(key),
    tostring(ns))
end

-- Park and Miller's minimal standard generator (x * 48271 mod 2^31 - 1),
-- whose products stay below 2^53: exact and the same on Lua 5.4 and
-- LuaJIT, so failures reproduce. lcg(seed)(n) draws from [0, n).
function M.lcg(seed)
  local x = seed
  return function(n)
    x = x * 48271 % 2147483647
    return x % n
  end
end

-- Assert that lists a and b are equal, naming the first difference (a
-- failing assert.are.same on lists of 10^5 lines takes long to print).
function M.same_list(a, b, msg)
  for i = 1, math.max(#a, #b) do
    if a[i] ~= b[i] then
      assert.are.equal(tostring(a[i]), tostring(b[i]), string.format("%s: first difference at %d of %d/%d",
        msg or "", i, #a, #b))
    end
  end
end

function M.model()
  local m = { live = {}, seq = 0 }
  local line = M.line
  function m.register(domain, ts, key, ns)
    local k = line(domain, ts, key, ns)
    if m.live[k] then return end
    m.seq = m.seq + 1
    m.live[k] = { domain = domain, ts = ts, key = key, ns = ns, seq = m.seq }
  end
  function m.delete(domain, ts, key, ns) m.live[line(domain, ts, key, ns)] = nil end
  -- fire everything of domain <= limit: the lines in (ts, registration) order
  function m.fire(domain, limit)
    local due = {}
    for k, t in pairs(m.live) do
      if t.domain == domain and t.ts <= limit then
        due[#due + 1] = t
        m.live[k] = nil
      end
    end
    table.sort(due, function(a, b)
      if a.ts ~= b.ts then return a.ts < b.ts end
      return a.seq < b.seq
    end)
    local out = {}
    for i, t in ipairs(due) do out[i] = line(domain, t.ts, t.key, t.ns) end
    return out
  end
  function m.count(domain)
    local n = 0
    for _, t in pairs(m.live) do
      if t.domain == domain then n = n + 1 end
    end
    return n
  end
  return m
end

return M
