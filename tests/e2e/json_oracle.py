#!/usr/bin/env python3
"""Oracle of tests/e2e/test_json.sh, independent of Tide.

gen PATH N BADLIST_FILE [L1,L2,...]: write N lines of JSON lines to PATH
  (objects with strings needing escapes, non-ASCII, floats, nested arrays
  and objects, booleans, nulls, blank lines), lines L1, L2, ... malformed.
compare INPUT OUTPUT VM: OUTPUT holds, as a multiset, the records the job
  of test_json.sh makes of INPUT's good lines: nulls dropped (they are Lua
  nil), "twice" = 2 * id added; exit 1 with a diff summary otherwise.
canonical OUTPUT: every line is compact JSON with sorted object names.
"""
import json
import random
import re
import sys
from collections import Counter


def gen(path, n, bad):
    rnd = random.Random(7)
    with open(path, "w", encoding="utf-8") as f:
        for line in range(1, n + 1):
            if line in bad:
                f.write('{"id": %d, "broken": [1, 2\n' % line)
                continue
            if line % 97 == 0:
                f.write("   \n")
                continue
            rec = {
                "id": line,
                "name": "n\u00e9\u4e2d \"%d\"\\\t\n" % line,
                "x": rnd.uniform(-1e6, 1e6),
                "small": rnd.random(),
                "tags": ["t%d" % (line % 5), line % 3 == 0, [line, -line]],
                "ok": line % 2 == 0,
                "none": None,
                "nested": {"k": -line, "e": {}, "z": 0.5},
            }
            f.write(json.dumps(rec, ensure_ascii=line % 2 == 0) + "\n")


def drop_nulls(v):
    if isinstance(v, dict):
        return {k: drop_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [drop_nulls(x) for x in v]
    return v


def key(v):
    return json.dumps(v, sort_keys=True)


def compare(inp, out, vm):
    want = Counter()
    with open(inp, encoding="utf-8") as f:
        for text in f:
            if not text.strip():
                continue
            try:
                v = json.loads(text)
            except ValueError:
                continue
            v = drop_nulls(v)
            if isinstance(v, dict) and "id" in v:
                v["twice"] = v["id"] * 2
            want[key(v)] += 1
    got = Counter()
    with open(out, encoding="utf-8") as f:
        for text in f:
            got[key(json.loads(text))] += 1
    if want == got:
        return 0
    missing = want - got
    extra = got - want
    print("%d records expected, %d written; %d missing, %d unexpected or duplicated"
          % (sum(want.values()), sum(got.values()), sum(missing.values()), sum(extra.values())))
    for k in list(missing)[:3]:
        print("missing:", k)
    for k in list(extra)[:3]:
        print("unexpected:", k)
    return 1


STRING = re.compile(r'"(?:\\.|[^"\\])*"')


def names_sorted(v):
    if isinstance(v, dict):
        return list(v) == sorted(v) and all(names_sorted(x) for x in v.values())
    if isinstance(v, list):
        return all(names_sorted(x) for x in v)
    return True


def canonical(out):
    # object_pairs_hook keeps the names in the order written
    with open(out, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            text = text.rstrip("\n")
            v = json.loads(text, object_pairs_hook=dict)
            if not names_sorted(v):
                print("line %d: object names not sorted: %s" % (n, text[:200]))
                return 1
            if re.search(r"\s", STRING.sub("", text)):
                print("line %d: whitespace outside strings: %s" % (n, text[:200]))
                return 1
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == "gen":
        bad = set(int(x) for x in sys.argv[5].split(",")) if len(sys.argv) > 5 else set()
        gen(sys.argv[2], int(sys.argv[3]), bad)
        return 0
    if cmd == "compare":
        return compare(sys.argv[2], sys.argv[3], sys.argv[4])
    if cmd == "canonical":
        return canonical(sys.argv[2])
    print("unknown command", cmd)
    return 2


if __name__ == "__main__":
    sys.exit(main())
