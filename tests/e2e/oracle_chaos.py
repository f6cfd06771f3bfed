"""The oracle of chaos_job.lua: commits per author per UTC day of
commit_time_ms, as sorted "author,day_start_ms,commits" rows.

    python3 tests/e2e/oracle_chaos.py COMMITS_CSV
"""
import csv
import sys

DAY = 86400000
counts = {}
with open(sys.argv[1], newline="") as f:
    for row in csv.DictReader(f):
        ts = int(row["commit_time_ms"])
        key = (row["author"], ts - ts % DAY)
        counts[key] = counts.get(key, 0) + 1
sys.stdout.write("".join(sorted("%s,%d,%d\n" % (a, d, n) for (a, d), n in counts.items())))
