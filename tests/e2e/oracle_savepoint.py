#!/usr/bin/env python3
"""The oracle of tests/e2e/test_savepoint.sh and test_reload.sh: what
savepoint_job.lua writes when version OLD processed 1..CUT and version NEW
(restored from the savepoint taken at CUT) processed CUT+1..N; with more
pairs, each version takes over from the one before at its cut. Lines
sorted.

  oracle_savepoint.py OLD CUT NEW N
  oracle_savepoint.py V1 CUT1 V2 CUT2 V3 N
"""
import sys

args = sys.argv[1:]
n = int(args[-1])
versions, cuts = args[0:-1:2], [int(c) for c in args[1:-1:2]]
total, seen, out = {}, {}, []
for x in range(1, n + 1):
    v = versions[sum(1 for c in cuts if x > c)]
    k = x % 7
    if v == "v3":
        out.append("%d,%d,v3" % (k, x))
        continue
    if v == "v6":
        # "total" version 2: a version 1 total t becomes [t, 0, 1] (sum, n,
        # the version migrated from), once; a new key starts at [0, 0, 0]
        t = total.get(k, [0, 0, 0])
        if not isinstance(t, list):
            t = [t, 0, 1]
        t = [t[0] + 3 * x, t[1] + 1, t[2]]
        total[k] = t
        out.append("%d,%d,%d,%d,%d,v6" % (k, x, t[0], t[1], t[2]))
        continue
    total[k] = total.get(k, 0) + (2 if v == "v2" else 1) * x
    if v == "v2":
        seen[k] = seen.get(k, 0) + 1
        out.append("%d,%d,%d,%d,v2" % (k, x, total[k], seen[k]))
    else:
        out.append("%d,%d,%d" % (k, x, total[k]))
sys.stdout.write("".join(sorted(l + "\n" for l in out)))
