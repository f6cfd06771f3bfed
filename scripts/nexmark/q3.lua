-- Nexmark q3, local item suggestion: who sells in category 10 from OR, ID
-- or CA, and which auctions, as the suite's q3.sql.
--   INSERT INTO nexmark_q3
--   SELECT
--       P.name, P.city, P.state, A.id
--   FROM
--       auction AS A INNER JOIN person AS P on A.seller = P.id
--   WHERE
--       A.category = 10 and (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
--
-- A regular (unbounded) inner join, as Flink's streaming join: the filters
-- go first, each side keeps only what the output needs (the auction's id;
-- the person's name, city and state), then a keyed co-process function on
-- seller = person id keeps both sides in keyed state (lists, for ever: the
-- join has no time bound) and emits a row for each matching pair when its
-- second side arrives, whichever that is. So the rows are the same
-- multiset at any parallelism and in any arrival order. Nothing relies on
-- person ids being unique (they are): every pair is joined.
--   tide run scripts/nexmark/q3.lua -- EVENTS [OUT_DIR] [name=value ...]
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local nexmark = require "nexmark"

local STATES = { OR = true, ID = true, CA = true }

local q = nexmark.query("q3")

local auctions = q:auctions{ "id", "seller", "category" }
  :filter(function(a) return a.category == 10 end):uid("category-10")
  :map(function(a) return { id = a.id, seller = a.seller } end):uid("project-auctions")
local persons = q:persons{ "id", "name", "city", "state" }
  :filter(function(p) return STATES[p.state] == true end):uid("or-id-ca")
  :map(function(p) return { id = p.id, name = p.name, city = p.city, state = p.state } end)
  :uid("project-persons")

local function row(p, id)
  return { name = p.name, city = p.city, state = p.state, id = id }
end

q:sink(auctions:connect(persons):key_by("seller", "id"):process{
  -- an auction: kept (its id), joined with the seller's persons seen so far
  on_record1 = function(a, ctx, out)
    ctx.state:list("auctions"):add(a.id)
    local ps = ctx.state:list("persons"):get()
    for i = 1, #ps do out:collect(row(ps[i], a.id)) end
  end,
  -- a person: kept, joined with the auctions it sold seen so far
  on_record2 = function(p, ctx, out)
    local kept = { name = p.name, city = p.city, state = p.state }
    ctx.state:list("persons"):add(kept)
    local ids = ctx.state:list("auctions"):get()
    for i = 1, #ids do out:collect(row(kept, ids[i])) end
  end,
}:uid("join"))
q:execute()
