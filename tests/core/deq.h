/*
 * deq.h - DEQ_LUA, a Lua chunk that returns deq(a, b): deep equality of
 * Lua values that tells integers from floats, takes NaN as equal to NaN,
 * and matches tables used as keys by their contents (greedily: deq is an
 * equivalence, so greedy matching finds a pairing whenever one exists).
 * Independent of the codec, for the codec's tests and fuzz target.
 */
#ifndef TD_TEST_DEQ_H
#define TD_TEST_DEQ_H

static const char DEQ_LUA[] =
    "local deq\n"
    "local function count(t) local n = 0 for _ in pairs(t) do n = n + 1 end "
    "return n end\n"
    "function deq(a, b)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) == 'number' then\n"
    "    if math.type(a) ~= math.type(b) then return false end\n"
    "    if a ~= a then return b ~= b end\n"
    "    return a == b\n"
    "  end\n"
    "  if type(a) ~= 'table' then return a == b end\n"
    "  if count(a) ~= count(b) then return false end\n"
    "  local used = {}\n"
    "  for k, v in pairs(a) do\n"
    "    if type(k) ~= 'table' then\n"
    "      local w = rawget(b, k)\n"
    "      if w == nil or not deq(v, w) then return false end\n"
    "    else\n"
    "      local found = false\n"
    "      for k2, w in pairs(b) do\n"
    "        if type(k2) == 'table' and not used[k2] and deq(k, k2) and\n"
    "           deq(v, w) then used[k2] = true found = true break end\n"
    "      end\n"
    "      if not found then return false end\n"
    "    end\n"
    "  end\n"
    "  return true\n"
    "end\n"
    "return deq\n";

#endif
