#!/bin/sh
# End-to-end: the Nexmark event generator (scripts/nexmark/nexmark.c, a C
# module source built into $BUILD/modules by make modules; docs/NEXMARK.md)
# and its dump job (scripts/nexmark/dump.lua).
#  1. the module builds with -Wall -Wextra -Werror against core/tide.h.
#  2. an independent oracle (tests/e2e/nexmark_ref.py, a Python port of the
#     reference generator with java.util.Random): the first 2000 events at
#     the default config equal it field by field; so do 1500 events of
#     other configs (seed, rate, out-of-order groups, proportions, hot
#     ratios, sizes, kinds), at parallelism 2.
#  3. the model over 50K events: exactly 1 person, 3 auctions and 46 bids
#     in every block of 50 event ids, the kind of each event as its id
#     says, person and auction ids consecutive from 1000, date_time from
#     the rate; records carry date_time as their timestamp (event-time
#     windows of 1 s count the rate).
#  4. parallelism: the dump at p2 and p3 equals p1's byte for byte; the
#     part files of a plain p2 job hold the same multiset of lines.
#  5. kinds: a source of some kinds emits exactly those events of the
#     sequence (ids and times as if all were emitted); two sources of
#     different kinds in one job make up their union.
#  6. checkpoints: killed with SIGKILL at random moments at p2 and resumed
#     (--resume), every event exactly once, in order; a checkpoint refused
#     at another parallelism (the source's position is its own state;
#     docs/MODULES.md), and resumed at its own.
#  7. bad config: an unknown field, a bad kind, a wrong type, a value out
#     of range: exit 1 with a clear message naming the operator.
# TIDE=build/tide-luajit runs it on the LuaJIT host (tests/run.sh).
#   SEED=1234 sh tests/e2e/test_nexmark_gen.sh   replays the kill moments
. tests/e2e/lib.sh

BUILD=${BUILD:-$(dirname "$TIDE")}
NEXMARK=$BUILD/modules/nexmark.so
DUMP=scripts/nexmark/dump.lua
REF=tests/e2e/nexmark_ref.py
SEED=${SEED:-$$}
export NEXMARK
echo "# SEED=$SEED (replay: SEED=$SEED sh tests/e2e/test_nexmark_gen.sh)"

if [ ! -f "$NEXMARK" ]; then
  not_ok "the module is built ($NEXMARK: make modules)"
  finish
  exit 1
fi

# dump NAME ARG...: run the dump job (tide run ARGS before "--" come from
# P, default -p 1) into $TMP/NAME.jsonl; checks that it exits 0
dump() {
  _n=$1
  shift
  run_tide "$TMP/$_n" run "$DUMP" ${P:--p 1} -- "$@"
  check_rc "dump $_n (${P:--p 1}: $*) exits 0" 0
}

# ---- 1. the module builds without warnings ----------------------------------

${CC:-cc} -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -shared -O2 -Icore \
  -o "$TMP/nexmark.so" scripts/nexmark/nexmark.c -lm >"$TMP/cc.log" 2>&1
check_empty "cc -Wall -Wextra -Werror builds scripts/nexmark/nexmark.c without a warning" "$TMP/cc.log"

# ---- 2. the independent oracle --------------------------------------------------

dump ref 2000 "$TMP/ref.jsonl"
check "2000 events at the default config equal the Python port of the reference, field by field" \
  "$PYTHON" "$REF" check "$TMP/ref.jsonl" 2000

P="-p 2" dump refcfg 1500 "$TMP/refcfg.jsonl" all seed=7 rate=1000 out_of_order_group_size=7 \
  hot_auction_ratio=5 hot_bidders_ratio=1 num_active_people=50 num_in_flight_auctions=20 \
  avg_bid_byte_size=250 avg_person_byte_size=30
check "other rates, seeds, out-of-order groups, ratios and sizes, p2: equal the oracle" \
  "$PYTHON" "$REF" check "$TMP/refcfg.jsonl" 1500 all seed=7 rate=1000 out_of_order_group_size=7 \
  hot_auction_ratio=5 hot_bidders_ratio=1 num_active_people=50 num_in_flight_auctions=20 \
  avg_bid_byte_size=250 avg_person_byte_size=30
P="-p 2" dump refprop 1500 "$TMP/refprop.jsonl" person,auction person_proportion=2 auction_proportion=5 \
  bid_proportion=10 first_event_id=0 first_event_number=0 base_time=0 rate=3 seed=-1
check "other proportions, first ids, base time and kinds: equal the oracle" \
  "$PYTHON" "$REF" check "$TMP/refprop.jsonl" 1500 person,auction person_proportion=2 auction_proportion=5 \
  bid_proportion=10 first_event_id=0 first_event_number=0 base_time=0 rate=3 seed=-1
# the auctions' horizon past 2^31 ms (LongGenerator's nextLong path), and
# extras of half a MiB and more (drawn afresh, not sliced from the pool)
dump reflong 1000 "$TMP/reflong.jsonl" auction rate=1 num_in_flight_auctions=2000000
check "auctions longer than 2^31 ms: equal the oracle" \
  "$PYTHON" "$REF" check "$TMP/reflong.jsonl" 1000 auction rate=1 num_in_flight_auctions=2000000
dump refbig 100 "$TMP/refbig.jsonl" person avg_person_byte_size=600000
check "extras longer than half the pool: equal the oracle" \
  "$PYTHON" "$REF" check "$TMP/refbig.jsonl" 100 person avg_person_byte_size=600000
seed_differs() { ! cmp -s "$TMP/ref.jsonl" "$1"; }
dump seed 2000 "$TMP/seed.jsonl" seed=1
check "another seed gives other events" seed_differs "$TMP/seed.jsonl"

# ---- 3. the model over 50K events ---------------------------------------------

N=50000
dump all $N "$TMP/all.jsonl"
cat >"$TMP/model.py" <<'EOF'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[2])
assert len(ev) == n, "%d events, expected %d" % (len(ev), n)
# event n has id n + 2 (first_event_id 1, first_event_number 1): its kind
# is (n + 2) % 50: 0 a person, 1-3 an auction, 4-49 a bid; ids 0 and 1
# (person 1000, auction 1000) are never generated
for i, e in enumerate(ev):
    r = (i + 2) % 50
    want = 0 if r == 0 else 1 if r <= 3 else 2
    assert e["event_type"] == want, "event %d: type %d, expected %d" % (i, e["event_type"], want)
    assert e["date_time"] == 1436918400000 + (i + 1) * 100 // 1000, "event %d: date_time %d" % (i, e["date_time"])
for b in range(0, n - 49, 50):
    kinds = [e["event_type"] for e in ev[b:b + 50]]
    assert (kinds.count(0), kinds.count(1), kinds.count(2)) == (1, 3, 46), "block at %d: %r" % (b, kinds)
persons = [e["id"] for e in ev if e["event_type"] == 0]
auctions = [e["id"] for e in ev if e["event_type"] == 1]
assert persons == list(range(1001, 1001 + len(persons))), "person ids"
assert auctions == list(range(1001, 1001 + len(auctions))), "auction ids"
assert len(persons) == n // 50 and len(auctions) == 3 * n // 50, (len(persons), len(auctions))
bids = [e for e in ev if e["event_type"] == 2]
assert all(1000 <= b["auction"] <= auctions[-1] + 10 for b in bids), "bid auctions"
print("ok")
EOF
check "$N events: 1:3:46 in every 50-event block, kinds, ids and times as the reference's model" \
  "$PYTHON" "$TMP/model.py" "$TMP/all.jsonl" $N

cat >"$TMP/windows.lua" <<'EOF'
local tide = require "tide"
local nx = tide.load_module(os.getenv("NEXMARK"))
local env = tide.env()
env:add_source(nx.events, { events = 100000 }):uid("events")
   :window_all(tide.windows.tumbling(1000))
   :process(function(_, w, elements, out) out:collect(string.format("%d %d", w.start, #elements)) end)
   :print()
env:execute("nexmark-windows")
EOF
run_tide "$TMP/win" run "$TMP/windows.lua" -p 2
check_rc "event-time windows over the source's timestamps: exit 0" 0
awk 'BEGIN { b = 1436918400000; printf "%.0f 9999\n", b
  for (i = 1; i < 10; i++) printf "%.0f 10000\n", b + 1000 * i; printf "%.0f 1\n", b + 10000 }' \
  >"$TMP/win.expected"
strip_prefix <"$TMP/win.out" | sort -n >"$TMP/win.sorted"
check_eq "records carry date_time as their timestamp: 1 s windows hold 10000 events (rate 10000)" \
  "$TMP/win.expected" "$TMP/win.sorted"

# ---- 4. parallelism ------------------------------------------------------------------

for p in 2 3; do
  P="-p $p" dump p$p $N "$TMP/p$p.jsonl"
  check_eq "the dump at p$p equals p1's (subtask k emits events k, k+$p, ...)" "$TMP/all.jsonl" "$TMP/p$p.jsonl"
done
cat >"$TMP/plain.lua" <<'EOF'
local tide = require "tide"
local nx = tide.load_module(os.getenv("NEXMARK"))
local env = tide.env()
env:add_source(nx.events, { events = tonumber(arg[1]) }):uid("events"):write_json(arg[2]):uid("json")
env:execute("nexmark-plain")
EOF
run_tide "$TMP/plain" run "$TMP/plain.lua" -p 2 -- $N "$TMP/plain"
check_rc "a p2 job writing the events with write_json exits 0" 0
cat_parts "$TMP/plain" | sort >"$TMP/plain.sorted"
sort "$TMP/all.jsonl" >"$TMP/all.sorted"
check_eq "p2's part files hold the multiset of p1's events" "$TMP/all.sorted" "$TMP/plain.sorted"

# ---- 5. kinds --------------------------------------------------------------------------

P="-p 2" dump auctions $N "$TMP/auctions.jsonl" auction
grep '"event_type":1,' "$TMP/all.jsonl" >"$TMP/auctions.expected"
check_eq "kinds = auction: exactly the sequence's auctions" "$TMP/auctions.expected" "$TMP/auctions.jsonl"
dump personbid $N "$TMP/personbid.jsonl" bid,person
grep -v '"event_type":1,' "$TMP/all.jsonl" >"$TMP/personbid.expected"
check_eq "kinds = bid,person: exactly the sequence's persons and bids" "$TMP/personbid.expected" \
  "$TMP/personbid.jsonl"
cat >"$TMP/two.lua" <<'EOF'
local tide = require "tide"
local nx = tide.load_module(os.getenv("NEXMARK"))
local env = tide.env()
local persons = env:add_source(nx.events, { events = 20000, kinds = "person" }):uid("persons")
local auctions = env:add_source(nx.events, { events = 20000, kinds = { "auction" } }):uid("auctions")
persons:union(auctions):write_json(arg[1]):uid("json")
env:execute("nexmark-two")
EOF
run_tide "$TMP/two" run "$TMP/two.lua" -p 2 -- "$TMP/two"
check_rc "two sources (persons, auctions) in one job exit 0" 0
cat_parts "$TMP/two" | sort >"$TMP/two.sorted"
head -n 20000 "$TMP/all.jsonl" | grep -v '"event_type":2,' | sort >"$TMP/two.expected"
check_eq "two sources of different kinds: the union of their kinds' events" "$TMP/two.expected" "$TMP/two.sorted"

# fields: a projection of each kind's records, the same events otherwise
cat >"$TMP/fields.lua" <<'EOF'
local tide = require "tide"
local nx = tide.load_module(os.getenv("NEXMARK"))
local env = tide.env()
env:add_source(nx.events, { events = 20000, kinds = "auction,bid", fields = "id,price,date_time,seller" })
  :uid("events"):write_json(arg[1]):uid("json")
env:execute("nexmark-fields")
EOF
run_tide "$TMP/fields" run "$TMP/fields.lua" -p 2 -- "$TMP/fields"
check_rc "fields = id,price,date_time,seller over auctions and bids exits 0" 0
cat_parts "$TMP/fields" | sort >"$TMP/fields.sorted"
head -n 20000 "$TMP/all.jsonl" | "$PYTHON" -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    if e["event_type"] != 0:
        print(json.dumps({k: v for k, v in e.items() if k in ("id", "price", "date_time", "seller")},
                         sort_keys=True, separators=(",", ":")))
' | sort >"$TMP/fields.expected"
check_eq "fields: each auction and bid with just the listed fields it has" "$TMP/fields.expected" "$TMP/fields.sorted"

# ---- 6. checkpoints: SIGKILL and --resume ----------------------------------------------

# the N events of section 3 (all.jsonl, the p1 dump: the reference), at
# 6250 events/s: about 8 s, so that three kills 1-2 s after each start
# land mid-run, as before with 200000 at 25000/s (a quarter of the events)
K=$N
JOB=$DUMP
kill_resume "SIGKILL and --resume at p2" "$TMP/kr" 3 1 $K "$TMP/kr/out.jsonl" rate_limit=6250
check_match "the last run resumed from a checkpoint" "$TMP/kr/final.err" "resuming job 'nexmark-dump' from checkpoint [0-9]+"
check_eq "killed and resumed: every event exactly once, in order" "$TMP/all.jsonl" "$TMP/kr/out.jsonl"

# a checkpoint of a p2 run, refused at p1 and resumed at p2
d=$TMP/rs
mkdir -p "$d"
"$TIDE" run "$DUMP" -p 2 --checkpoint-dir "$d/ck" --checkpoint-interval 200ms \
  -- $K "$d/out.jsonl" rate_limit=5000 >"$d/a.out" 2>"$d/a.err" &
pid=$!
wait_completed "$d/ck/nexmark-dump" 1
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
check "a p2 run has completed checkpoints when killed" test -n "$(completed "$d/ck/nexmark-dump")"
run_tide "$d/p1" run "$DUMP" -p 1 --checkpoint-dir "$d/ck" --resume -- $K "$d/out.jsonl"
check_rc "--resume at p1 from p2's checkpoint: refused, exit 2" 2
check_contains "the refusal names the source and its own state" "$d/p1.err" \
  "nexmark.events (uid 'events') is a C module operator whose subtask"
run_tide "$d/p2" run "$DUMP" -p 2 --checkpoint-dir "$d/ck" --resume -- $K "$d/out.jsonl"
check_rc "--resume at p2 (no rate limit now): exit 0" 0
check_eq "resumed at its own parallelism: every event exactly once, in order" "$TMP/all.jsonl" "$d/out.jsonl"

# ---- 7. bad config ------------------------------------------------------------------------

# bad NAME CONFIG STRING: a source with config CONFIG fails as it should
bad() {
  printf 'local tide = require "tide"\nlocal nx = tide.load_module(os.getenv("NEXMARK"))\nlocal env = tide.env()\nenv:add_source(nx.events, %s):uid("src"):discard()\nenv:execute("bad")\n' \
    "$2" >"$TMP/bad.lua"
  run_tide "$TMP/bad" run "$TMP/bad.lua"
  check_rc "$1: exits 1" 1
  check_contains "$1: says why" "$TMP/bad.err" "module 'nexmark' operator 'events' (uid 'src'): $3"
  check_not_contains "$1: no crash" "$TMP/bad.err" "Segmentation"
}
bad "an unknown field" '{ events = 10, colour = 3 }' "unknown config field 'colour' (known: events, rate,"
bad "an unknown kind" '{ kinds = { "bid", "bids" } }' \
  "config field 'kinds': unknown kind 'bids' (person, auction, bid)"
bad "kinds naming none" '{ kinds = "" }' "config field 'kinds': unknown kind ''"
bad "an unknown field in fields" '{ fields = "auction,prize" }' \
  "config field 'fields': unknown field 'prize' (event_type, id, name,"
bad "fields without a field of an emitted kind" '{ kinds = "bid,auction", fields = { "price" } }' \
  "config field 'fields' lists no field of the auction events it emits"
bad "a rate that is not an integer" '{ rate = "fast" }' \
  "config field 'rate' must be an integer in [1, 2147483647]"
bad "negative events" '{ events = -1 }' "config field 'events' must be an integer in [0, "
bad "a zero ratio" '{ hot_bidders_ratio = 0 }' "config field 'hot_bidders_ratio' must be an integer in [1, "

finish
