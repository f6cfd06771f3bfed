#!/bin/sh
# End-to-end: scripts/author_totals.lua on the git commits CSV at
# parallelism 1, 2 and 4, against an independent python3 (csv module)
# oracle: per author, commits and the sums of files_changed, insertions
# and deletions, as rows "author,commits,files_changed,insertions,deletions".
. tests/e2e/lib.sh

INPUT=$DATA/git-commits.csv

"$PYTHON" - "$INPUT" >"$TMP/oracle" <<'EOF'
import csv, sys
totals = {}
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    for row in csv.DictReader(f):
        t = totals.setdefault(row["author"], [0, 0, 0, 0])
        t[0] += 1
        t[1] += int(row["files_changed"])
        t[2] += int(row["insertions"])
        t[3] += int(row["deletions"])
rows = [",".join([a] + [str(x) for x in t]) for a, t in totals.items()]
sys.stdout.buffer.write(("\n".join(sorted(rows, key=lambda s: s.encode())) + "\n").encode())
EOF
check "python3 oracle ran" test -s "$TMP/oracle"
check_str "oracle: 2669 distinct authors (as data/README.md says)" 2669 "$(wc -l <"$TMP/oracle" | tr -d ' ')"
check_str "oracle: commits add up to the 81966 rows" 81966 "$(awk -F, '{s += $2} END {print s}' "$TMP/oracle")"

for p in 1 2 4; do
  out=$TMP/out$p
  run_tide "$TMP/at$p" run scripts/author_totals.lua --parallelism "$p" -- "$INPUT" "$out"
  check_rc "p=$p: author_totals exits 0" 0
  check_str "p=$p: no hidden in-progress files remain" "" "$(hidden_files "$out")"
  cat_parts "$out" | sort >"$TMP/actual$p"
  check_eq "p=$p: per-author totals equal the oracle" "$TMP/oracle" "$TMP/actual$p"
  check_str "p=$p: one row per author (no duplicates across part files)" \
    "$(wc -l <"$TMP/actual$p" | tr -d ' ')" "$(cut -d, -f1 "$TMP/actual$p" | sort -u | wc -l | tr -d ' ')"
done

finish
