#!/usr/bin/env python3
"""Independent oracle for the commits-per-author jobs of C modules
(scripts/modules/commits_by_author.lua, tests/e2e/module_rescale_job.lua).

Per author and 30-day tumbling window of TIME_COLUMN (author_time_ms or
commit_time_ms), over the non-merge commits (files_changed > 0): the number
of commits and the sums of insertions and deletions.

usage: oracle_author_windows.py COMMITS_CSV TIME_COLUMN JSONL_OUT CSV_OUT [TALLIES_OUT]
Writes, sorted, the JSON lines streamkit's jsonl sink writes
({"key":..,"window_start":..,"count":..,"insertions":..,"deletions":..}),
the CSV rows "author,window_start,count,insertions,deletions", and with
TALLIES_OUT the running number of windows per author, "author,i" for i in
1..N.
"""
import csv
import json
import sys

WINDOW = 30 * 86400000


def main():
    path, column, jsonl_out, csv_out = sys.argv[1:5]
    acc = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if int(row["files_changed"]) <= 0:
                continue
            ts = int(row[column])
            a = acc.setdefault((row["author"], ts - ts % WINDOW), [0, 0, 0])
            a[0] += 1
            a[1] += int(row["insertions"])
            a[2] += int(row["deletions"])
    with open(jsonl_out, "w") as j, open(csv_out, "w") as c:
        for (author, start), (n, ins, dels) in sorted(acc.items()):
            j.write(json.dumps({"key": author, "window_start": start, "count": n, "insertions": ins,
                                "deletions": dels}, separators=(",", ":")) + "\n")
            c.write("%s,%d,%d,%d,%d\n" % (author, start, n, ins, dels))
    if len(sys.argv) > 5:
        windows = {}
        for author, _ in acc:
            windows[author] = windows.get(author, 0) + 1
        with open(sys.argv[5], "w") as t:
            for line in sorted("%s,%d" % (a, i) for a, n in windows.items() for i in range(1, n + 1)):
                t.write(line + "\n")


if __name__ == "__main__":
    main()
