#!/usr/bin/env python3
"""Oracle of tests/e2e/test_two_input.sh (the job tests/e2e/two_input_job.lua).

  oracle_two_input.py sort IN_CSV ROWS OUT_CSV   the first ROWS commits, sorted by
                                                 (author time, commit)
  oracle_two_input.py MODE SORTED_CSV            the job's output lines, sorted

Computed from the rows directly (no Tide code), as the job's comment defines
each mode."""
import collections
import csv
import sys

HOUR, DAY = 3600000, 86400000


def rows_of(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main():
    mode = sys.argv[1]
    if mode == "sort":
        rows = rows_of(sys.argv[2])[: int(sys.argv[3])]
        rows.sort(key=lambda r: (int(r["author_time_ms"]), r["commit"]))
        with open(sys.argv[4], "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        return
    rows = rows_of(sys.argv[2])
    for r in rows:
        r["t"], r["files"] = int(r["author_time_ms"]), int(r["files_changed"])
    by_author = collections.defaultdict(list)
    for r in rows:
        by_author[r["author"]].append(r)
    out = []
    if mode == "broadcast":
        label = {d: "L%d" % (i * 7 % 16) for i, d in enumerate("0123456789abcdef", 1)}
        for a, lst in by_author.items():
            for n, r in enumerate(lst, 1):
                out.append("%s,%s,%d,%s" % (r["commit"], a, n, label[a[0]]))
    elif mode == "interval":
        for lst in by_author.values():
            big = [r for r in lst if r["files"] >= 5]
            for l in lst:
                for b in big:
                    if -HOUR <= b["t"] - l["t"] <= HOUR:
                        out.append("%s,%s" % (l["commit"], b["commit"]))
    elif mode == "window":
        for a, lst in by_author.items():
            days = collections.defaultdict(lambda: ([], []))
            for r in lst:
                if r["files"] == 0:
                    days[r["t"] // DAY][0].append(r)
                if r["files"] >= 20:
                    days[r["t"] // DAY][1].append(r)
            for d, (ms, bs) in days.items():
                for m in ms:
                    for b in bs:
                        out.append("J,%d,%s,%s" % (d, m["commit"], b["commit"]))
                out.append("G,%d,%s,%d,%d" % (d, a, len(ms), len(bs)))
    else:
        sys.exit("unknown mode " + mode)
    out.sort()
    sys.stdout.write("".join(line + "\n" for line in out))


main()
