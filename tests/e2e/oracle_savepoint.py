#!/usr/bin/env python3
"""The oracle of tests/e2e/test_savepoint.sh: what savepoint_job.lua writes
when version OLD processed 1..CUT and version NEW (restored from the
savepoint taken at CUT) processed CUT+1..N. Lines sorted.

  oracle_savepoint.py OLD CUT NEW N
"""
import sys

old, cut, new, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
total, seen, out = {}, {}, []
for x in range(1, n + 1):
    v = old if x <= cut else new
    k = x % 7
    if v == "v3":
        out.append("%d,%d,v3" % (k, x))
        continue
    total[k] = total.get(k, 0) + (2 if v == "v2" else 1) * x
    if v == "v2":
        seen[k] = seen.get(k, 0) + 1
        out.append("%d,%d,%d,%d,v2" % (k, x, total[k], seen[k]))
    else:
        out.append("%d,%d,%d" % (k, x, total[k]))
sys.stdout.write("".join(sorted(l + "\n" for l in out)))
