#!/bin/sh
# End-to-end: JSON lines (read_json, write_json through jansson) on the git
# commits of ../shared/data, turned into JSON lines by Python.
#  a. copy: every record comes out as it went in (compared as parsed JSON
#     by Python, members that were null left out);
#  b. a keyed aggregation against a Python oracle;
#  c. bad lines: on_error = "fail" names FILE:LINE; "skip" counts them and
#     warns once, naming the first; the good records all come out;
#  d. a streaming keyed job with checkpoints killed twice and resumed:
#     exactly the records of an uninterrupted run (Python oracle), the
#     skipped count carried across the restores;
#  e. what cannot be JSON fails the job naming the sink.
. tests/e2e/lib.sh

# commits.json: the first 20000 commits as objects (numbers as JSON
# integers, null deletions on every 97th), with a unicode string field
python3 - "$DATA/git-commits.csv" "$TMP/commits.json" <<'PY'
import csv, json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as out:
    for i, row in enumerate(csv.DictReader(f)):
        if i == 20000:
            break
        rec = {"repo": row["repo"], "commit": row["commit"], "author": row["author"],
               "time": int(row["author_time_ms"]), "insertions": int(row["insertions"]),
               "deletions": None if i % 97 == 0 else int(row["deletions"]),
               "files": [int(row["files_changed"]), row["repo"]], "note": "é ✓ \"q\" \\ %d" % i,
               "ok": i % 2 == 0, "ratio": int(row["insertions"]) / 7}
        out.write(json.dumps(rec, ensure_ascii=i % 3 == 0) + "\n")
PY

# a. copy
run_tide "$TMP/copy" run tests/e2e/json_job.lua -- copy "$TMP/commits.json" "$TMP/out-copy"
check_rc "copy: exit 0" 0
cat_parts "$TMP/out-copy" >"$TMP/copy.got"
python3 - "$TMP/commits.json" "$TMP/copy.got" >"$TMP/copy.diff" <<'PY'
import json, sys
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if x is not None}
    return v
# compared as values: on LuaJIT a real such as 1.0 comes back as 1
# (docs/LUAJIT.md), and 1 == 1.0 here
want = sorted((strip(json.loads(l)) for l in open(sys.argv[1])), key=lambda v: v["commit"])
got = sorted((json.loads(l) for l in open(sys.argv[2])), key=lambda v: v["commit"])
print("records: want %d, got %d" % (len(want), len(got)))
if want != got:
    for w, g in zip(want, got):
        if w != g:
            print("first difference:\n want %s\n got  %s" % (w, g))
            break
PY
check_str "copy: every record as it went in (null members left out)" "records: want 20000, got 20000" "$(cat "$TMP/copy.diff")"
check_str "copy: every output line is compact JSON with its keys sorted" 0 \
  "$(python3 -c "
import json, sys
bad = 0
def pairs(ps):
    global bad
    if [k for k, _ in ps] != sorted(k for k, _ in ps): bad += 1
    return dict(ps)
for l in open(sys.argv[1]):
    json.loads(l, object_pairs_hook=pairs)
    if '\\n' in l.rstrip('\\n') or l.startswith(' ') or '\", \"' in l or '\": ' in l: bad += 1
print(bad)" "$TMP/copy.got")"

# b. per author: commits and insertions
run_tide "$TMP/agg" run tests/e2e/json_job.lua -- authors "$TMP/commits.json" "$TMP/out-agg"
check_rc "authors: exit 0" 0
cat_parts "$TMP/out-agg" | python3 -c "
import json, sys
for v in sorted((json.loads(l) for l in sys.stdin), key=lambda v: v['author']):
    print(v['author'], v['commits'], v['insertions'])" >"$TMP/agg.got"
python3 -c "
import json, sys
acc = {}
for l in open(sys.argv[1]):
    v = json.loads(l)
    c = acc.setdefault(v['author'], [0, 0])
    c[0] += 1
    c[1] += v['insertions']
for a in sorted(acc):
    print(a, acc[a][0], acc[a][1])" "$TMP/commits.json" >"$TMP/agg.want"
check "authors: the commits and insertions of every author (Python oracle)" cmp -s "$TMP/agg.want" "$TMP/agg.got"

# c. bad lines: line 3 is not JSON, line 6 is null, line 9 is cut short;
# line 7 is blank (skipped, not bad)
head -n 12 "$TMP/commits.json" | awk 'NR == 3 { print "{\"author\": oops}"; next }
  NR == 6 { print "null"; next } NR == 7 { print "   "; next }
  NR == 9 { print substr($0, 1, 20); next } { print }' >"$TMP/bad.json"
run_tide "$TMP/fail" run tests/e2e/json_job.lua -- copy "$TMP/bad.json" "$TMP/out-fail" fail
check_rc "bad lines, on_error fail: exit 1" 1
check_contains "bad lines, on_error fail: the error names file and line 3" "$TMP/fail.err" "$TMP/bad.json:3: bad JSON:"
check_str "bad lines, on_error fail: nothing committed" 0 "$(cat_parts "$TMP/out-fail" | wc -l)"
run_tide "$TMP/skip" run tests/e2e/json_job.lua -- copy "$TMP/bad.json" "$TMP/out-skip" skip
check_rc "bad lines, on_error skip: exit 0" 0
check_contains "bad lines, on_error skip: one warning with the count and the first bad line" "$TMP/skip.err" \
  "skipped 3 bad lines of $TMP/bad.json, first at $TMP/bad.json:3: bad JSON:"
check_str "bad lines, on_error skip: the 8 good records" 8 "$(cat_parts "$TMP/out-skip" | wc -l)"

# d. streaming with checkpoints, killed twice, resumed; the input has four
# bad lines (skipped) spread over it
awk 'NR % 5000 == 17 { print "{bad"; next } { print }' "$TMP/commits.json" >"$TMP/chaos.json"
python3 -c "
import json, sys
n = {}
for l in open(sys.argv[1]):
    try:
        v = json.loads(l)
    except ValueError:
        continue
    n[v['author']] = n.get(v['author'], 0) + 1
    print(v['author'], n[v['author']], v['commit'])" "$TMP/chaos.json" | sort >"$TMP/chaos.want"
CK=$TMP/ck
for attempt in 1 2; do
  if [ "$attempt" = 1 ]; then resume=""; else resume="--resume"; fi
  "$TIDE" run tests/e2e/json_job.lua --checkpoint-dir "$CK" --checkpoint-interval 200ms \
    $resume -- stream "$TMP/chaos.json" "$TMP/out-chaos" skip 4000 >"$TMP/chaos$attempt.out" 2>"$TMP/chaos$attempt.err" &
  kill_at_checkpoint $! "$CK/json-stream" $((attempt * 2 + 1))
  check_str "chaos: run $attempt killed by SIGKILL after checkpoint $((attempt * 2 + 1))" 137 "$KILLED"
done
run_tide "$TMP/chaos3" run tests/e2e/json_job.lua --checkpoint-dir "$CK" --checkpoint-interval 200ms --resume \
  -- stream "$TMP/chaos.json" "$TMP/out-chaos" skip
check_rc "chaos: the resumed run ends: exit 0" 0
cat_parts "$TMP/out-chaos" | python3 -c "
import json, sys
for l in sys.stdin:
    v = json.loads(l)
    print(v['author'], v['commits'], v['commit'])" | sort >"$TMP/chaos.got"
check_str "chaos: as many records as an uninterrupted run" "$(wc -l <"$TMP/chaos.want")" "$(wc -l <"$TMP/chaos.got")"
check "chaos: exactly the records of an uninterrupted run (Python oracle)" cmp -s "$TMP/chaos.want" "$TMP/chaos.got"
check_contains "chaos: the last run's warning counts every bad line once" "$TMP/chaos3.err" "skipped 4 bad lines of $TMP/chaos.json"

# e. a record that cannot be JSON
cat >"$TMP/nan.lua" <<'LUA'
local tide = require "tide"
local env = tide.env{}
env:from_list({ { x = 1 }, { x = 0 / 0 } }):write_json(arg[1])
env:execute("nan")
LUA
run_tide "$TMP/nan" run "$TMP/nan.lua" -- "$TMP/out-nan"
check_rc "NaN: exit 1" 1
check_contains "NaN: the error names the sink and the reason" "$TMP/nan.err" "write_json"
check_contains "NaN: ... and says why" "$TMP/nan.err" "cannot encode as JSON: the number"
finish
