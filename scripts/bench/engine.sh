#!/bin/sh
# scripts/bench/engine.sh - issue 9's goals: the task engine, both VMs,
# exchanges, latency (make bench runs it from run.sh; alone:
#   BUILD=build DATA=../shared/data sh scripts/bench/engine.sh
# ). Every contender runs ENGINE_RUNS times (default 3), rounds
# interleaved; the report prints the best wall time, the CPU time of that
# run, and PASS/MISS for each goal, with the baselines measured in the same
# run:
#   E1a Lua 5.4 streaming word count p1 >= 60% of a bare Lua 5.4 loop
#   E1b Lua 5.4 streaming word count p2 >= 1.6x p1
#   E2a LuaJIT streaming word count >= 2x Lua 5.4's (p1)
#   E2b LuaJIT map+filter over generated records >= 25M records/s, one core
#   E3  an exchange hop of a 2-field table record <= 150 ns (CPU per record
#       per hop, from K = 0 and K = 4 hops; both VMs)
#   E4  Nexmark q5-like job p2 >= 1.5x p1 (Lua 5.4)
#   E5  latency through one keyed exchange at 1K and 100K records/s: p99
#       < 10 ms with buffer_timeout 1ms, < timeout + 10 ms with the
#       default (100 ms)
# The streaming word count is issue 9's workload: read_text, flat_map over
# lower-cased %a+, map to {word =, n = 1}, key_by("word"), sum("n"),
# discard(), streaming mode; its baseline does the same split, table
# building and counting in a bare loop (wordcount_stream_bare.lua).
set -u

BUILD=${BUILD:-build}
DATA=${DATA:-../shared/data}
RUNS=${ENGINE_RUNS:-3}
LUA=${LUA:-lua5.4}
LUAJIT=${LUAJIT:-luajit}
MF_N=${ENGINE_MF_N:-20000000}
HOP_N=${ENGINE_HOP_N:-2000000}
Q5_N=${ENGINE_Q5_N:-5000000}
HERE=$(dirname "$0")
BENCH_DIR=$(cd "$HERE" && pwd)
export BENCH_DIR
TIDE=$BUILD/tide
TIDEJ=$BUILD/tide-luajit

. "$HERE/lib.sh"
[ -x "$TIDE" ] && [ -x "$TIDEJ" ] || die "$TIDE or $TIDEJ not found (make all)"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tide-bench-engine.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT
TXT=$TMP/git-messages.txt
gzip -dc "$DATA/git-messages.txt.gz" >"$TXT" || die "cannot decompress the messages"

: >"$TMP/times"
head -n 1 /proc/stat >"$TMP/stat0" 2>/dev/null || : >"$TMP/stat0"
T0=$(date +%s)
r=1
while [ "$r" -le "$RUNS" ]; do
  echo "bench: engine round $r of $RUNS" >&2
  timed wc_bare54 "$LUA" "$HERE/wordcount_stream_bare.lua" "$TXT"
  timed wc_barejit "$LUAJIT" "$HERE/wordcount_stream_bare.lua" "$TXT"
  for vm in 54 jit; do
    bin=$TIDE
    [ "$vm" = jit ] && bin=$TIDEJ
    timed "wc${vm}_p1" "$bin" run "$HERE/wordcount_stream.lua" -p 1 -- "$TXT"
    timed "wc${vm}_p2" "$bin" run "$HERE/wordcount_stream.lua" -p 2 -- "$TXT"
    timed "hop${vm}_0" "$bin" run "$HERE/hops.lua" -- "$HOP_N" 0
    timed "hop${vm}_4" "$bin" run "$HERE/hops.lua" -- "$HOP_N" 4
  done
  timed mf_barejit "$LUAJIT" "$HERE/mapfilter_bare.lua" "$MF_N"
  timed mf_jit "$TIDEJ" run "$HERE/mapfilter.lua" -p 1 -- "$MF_N"
  timed q5_p1 "$TIDE" run "$HERE/q5like.lua" -p 1 -- "$Q5_N"
  timed q5_p2 "$TIDE" run "$HERE/q5like.lua" -p 2 -- "$Q5_N"
  sed 's/^[0-9]*> //' "$TMP/q5_p1.out" | sort -n >"$TMP/q5_1"
  sed 's/^[0-9]*> //' "$TMP/q5_p2.out" | sort -n >"$TMP/q5_2"
  cmp -s "$TMP/q5_1" "$TMP/q5_2" || fail q5_p2 "its window maxima differ from p1's"
  [ "$(cut -f2 "$TMP/wc_bare54.out")" = "$(cut -f2 "$TMP/wc_barejit.out")" ] ||
    fail wc_barejit "its word total differs from Lua 5.4's"
  r=$((r + 1))
done
# latency: once each (the percentiles come from the job itself)
for rate in 1000 100000; do
  n=$((rate * 5))
  [ "$n" -gt 200000 ] && n=200000
  timed "lat_${rate}_1ms" "$TIDE" run "$HERE/latency.lua" --buffer-timeout 1ms -- "$rate" "$n"
  timed "lat_${rate}_def" "$TIDE" run "$HERE/latency.lua" -- "$rate" "$n"
done
T1=$(date +%s)
head -n 1 /proc/stat >"$TMP/stat1" 2>/dev/null || : >"$TMP/stat1"

python3 - "$TMP" "$RUNS" "$MF_N" "$HOP_N" "$Q5_N" "$((T1 - T0))" "$(getconf CLK_TCK 2>/dev/null || echo 100)" <<'EOF'
import os
import sys

tmp, runs, mf_n, hop_n, q5_n, elapsed, hz = sys.argv[1:]
runs, mf_n, hop_n, q5_n, elapsed = int(runs), int(mf_n), int(hop_n), int(q5_n), int(elapsed)
sys.path.insert(0, os.environ["BENCH_DIR"])
from load import print_verdicts, read_times

walls, rss = read_times(os.path.join(tmp, "times"))
best = {k: min(v)[0] for k, v in walls.items()}
cpu = {k: min(v)[1] for k, v in walls.items()}
words = int(open(os.path.join(tmp, "wc_bare54.out")).read().split()[1])

def lat(name):
    p50, p99, mx, n = open(os.path.join(tmp, name + ".out")).read().split()
    return float(p50), float(p99), float(mx), int(n)

print()
print("Issue 9 (engine, LuaJIT, exchanges, latency): best of %d runs per row (wall clock of the whole "
      "process, startup included), the CPU time (user+sys) of that run. Word count: %d words." % (runs, words))
print()
print("| goal | contender | best wall s | CPU s | throughput | relative |")
print("|---|---|---:|---:|---:|---|")
wps = lambda k: words / best[k]
rows = [
    ("E1 word count, streaming", "bare Lua 5.4 loop", "wc_bare54", "%.2f M words/s" % (wps("wc_bare54") / 1e6), "100% (reference)"),
    ("E1 word count, streaming", "Tide Lua 5.4 p1", "wc54_p1", "%.2f M words/s" % (wps("wc54_p1") / 1e6),
     "%.0f%% of bare Lua 5.4" % (100 * wps("wc54_p1") / wps("wc_bare54"))),
    ("E1 word count, streaming", "Tide Lua 5.4 p2", "wc54_p2", "%.2f M words/s" % (wps("wc54_p2") / 1e6),
     "%.2fx Tide p1" % (best["wc54_p1"] / best["wc54_p2"])),
    ("E2 word count, streaming", "bare LuaJIT loop", "wc_barejit", "%.2f M words/s" % (wps("wc_barejit") / 1e6),
     "%.1fx bare Lua 5.4" % (wps("wc_barejit") / wps("wc_bare54"))),
    ("E2 word count, streaming", "Tide LuaJIT p1", "wcjit_p1", "%.2f M words/s" % (wps("wcjit_p1") / 1e6),
     "%.2fx Tide Lua 5.4 p1; %.0f%% of bare LuaJIT" % (best["wc54_p1"] / best["wcjit_p1"],
                                                   100 * wps("wcjit_p1") / wps("wc_barejit"))),
    ("E2 word count, streaming", "Tide LuaJIT p2", "wcjit_p2", "%.2f M words/s" % (wps("wcjit_p2") / 1e6),
     "%.2fx Tide LuaJIT p1" % (best["wcjit_p1"] / best["wcjit_p2"])),
    ("E2 map+filter", "bare LuaJIT loop", "mf_barejit", "%.1f M records/s" % (mf_n / best["mf_barejit"] / 1e6), "reference"),
    ("E2 map+filter", "Tide LuaJIT p1", "mf_jit", "%.1f M records/s" % (mf_n / best["mf_jit"] / 1e6),
     "%.0f%% of bare LuaJIT" % (100 * best["mf_barejit"] / best["mf_jit"])),
]
hop = {}
for vm, label in (("54", "Lua 5.4"), ("jit", "LuaJIT")):
    hop[vm] = (cpu["hop%s_4" % vm] - cpu["hop%s_0" % vm]) / (4 * hop_n) * 1e9
    hop_wall = (best["hop%s_4" % vm] - best["hop%s_0" % vm]) / (4 * hop_n) * 1e9
    for k in (0, 4):
        name = "hop%s_%d" % (vm, k)
        rows.append(("E3 exchange hops", "%s, %d hops" % (label, k), name,
                     "%.2f M records/s" % (hop_n / best[name] / 1e6),
                     "%.0f ns CPU, %.0f ns wall per record per hop" % (hop[vm], hop_wall) if k == 4 else ""))
for p in (1, 2):
    name = "q5_p%d" % p
    rows.append(("E4 q5-like", "Tide Lua 5.4 p%d" % p, name, "%.2f M events/s" % (q5_n / best[name] / 1e6),
                 "%.2fx p1" % (best["q5_p1"] / best[name]) if p == 2 else "reference"))
for row in rows:
    print("| %s | %s | %.2f | %.2f | %s | %s |" % (row[0], row[1], best[row[2]], cpu[row[2]], row[3], row[4]))
print()
print("| E5 latency | rate records/s | buffer timeout | p50 ms | p99 ms | max ms | records |")
print("|---|---:|---|---:|---:|---:|---:|")
for rate in (1000, 100000):
    for t, label in (("1ms", "1 ms"), ("def", "default (100 ms)")):
        p50, p99, mx, n = lat("lat_%d_%s" % (rate, t))
        print("| one keyed exchange | %d | %s | %.2f | %.2f | %.2f | %d |" % (rate, label, p50, p99, mx, n))

v = lambda ok: "PASS" if ok else "MISS"
e1a = 100 * wps("wc54_p1") / wps("wc_bare54")
e1b = best["wc54_p1"] / best["wc54_p2"]
e2a = best["wc54_p1"] / best["wcjit_p1"]
e2b = mf_n / best["mf_jit"]
e4 = best["q5_p1"] / best["q5_p2"]
verdicts = [
    "- E1a, Lua 5.4 streaming word count p1 >= 60%% of bare Lua: %.0f%% -> %s" % (e1a, v(e1a >= 60)),
    "- E1b, Lua 5.4 p2 >= 1.6x p1: %.2fx -> %s (CPU s p1 %.2f, p2 %.2f)" % (e1b, v(e1b >= 1.6), cpu["wc54_p1"], cpu["wc54_p2"]),
    "- E2a, LuaJIT word count >= 2x Lua 5.4's (p1): %.2fx -> %s" % (e2a, v(e2a >= 2)),
    "- E2b, LuaJIT map+filter >= 25M records/s: %.1f M/s -> %s" % (e2b / 1e6, v(e2b >= 25e6)),
    "- E3, exchange hop <= 150 ns: Lua 5.4 %.0f ns -> %s; LuaJIT %.0f ns -> %s" % (
        hop["54"], v(hop["54"] <= 150), hop["jit"], v(hop["jit"] <= 150)),
    "- E4, q5-like p2 >= 1.5x p1: %.2fx -> %s" % (e4, v(e4 >= 1.5)),
]
for rate in (1000, 100000):
    _, p99a, _, _ = lat("lat_%d_1ms" % rate)
    _, p99b, _, _ = lat("lat_%d_def" % rate)
    verdicts.append("- E5, %d records/s: p99 %.1f ms with 1 ms (< 10) -> %s; %.1f ms by default (< 110) -> %s" % (
        rate, p99a, v(p99a < 10), p99b, v(p99b < 110)))
print_verdicts("Engine verdicts", verdicts, "Engine benchmark wall time: %d s." % elapsed,
               os.path.join(tmp, "stat0"), os.path.join(tmp, "stat1"), hz, walls, "the engine runs")
EOF
