#!/usr/bin/env python3
"""tests/e2e/nexmark_oracle.py - the independent oracle of the Nexmark
queries (scripts/nexmark/qN.lua): Python over the events the generator
dumped (scripts/nexmark/dump.lua, one JSON object a line).

  nexmark_oracle.py expect QUERY EVENTS        the expected rows, one JSON
                                               object a line (sorted)
  nexmark_oracle.py check QUERY EVENTS OUTDIR  compare a run's committed
                                               part files with them; exit 0
                                               when equal, 1 with a diff

Each query's oracle is tests/e2e/nexmark_queries/<query>.py, defining
  expected(ev) -> list of dicts   the result rows (ev: Events, below)
  MODE                            "all": the run's rows, as a multiset, are
                                  exactly these; "last": an updating query
                                  (a changelog of rows): the last row the
                                  run wrote for each KEY equals the one
                                  expected row of that key
  KEY                             (MODE "last") the tuple of key fields
  check(rows, ev) -> list of str  (optional, instead of expected) the
                                  problems of a run whose rows cannot be
                                  predicted exactly (processing time)
"""
import importlib.util
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


class Events:
    """The dumped events, in sequence order, split by kind (dicts with the
    fields of docs/NEXMARK.md; event_type 0 person, 1 auction, 2 bid)."""

    def __init__(self, path):
        self.all = []
        with open(path) as f:
            for line in f:
                if line.strip():
                    self.all.append(json.loads(line))
        self.persons = [e for e in self.all if e["event_type"] == 0]
        self.auctions = [e for e in self.all if e["event_type"] == 1]
        self.bids = [e for e in self.all if e["event_type"] == 2]


def load_query(name):
    if not re.fullmatch(r"q\d+", name):
        sys.exit("not a query name: %s" % name)
    path = os.path.join(HERE, "nexmark_queries", name + ".py")
    spec = importlib.util.spec_from_file_location("nexmark_" + name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def canon(row):
    return json.dumps(row, sort_keys=True, separators=(",", ":"))


PART = re.compile(r"^part-.*-(\d+)-(\d+)$")


def read_parts(outdir):
    """The committed part files' rows, each subtask's in the order it wrote
    them (part files by their counter)."""
    files = []
    for name in os.listdir(outdir) if os.path.isdir(outdir) else []:
        m = PART.match(name)
        if m:
            files.append((int(m.group(1)), int(m.group(2)), name))
    rows = []
    for _, _, name in sorted(files):
        with open(os.path.join(outdir, name)) as f:
            for line in f:
                if line.strip():
                    rows.append(json.loads(line))
    return rows


def key_of(row, key):
    return tuple(row.get(k) for k in key)


def compare(mod, ev, rows):
    """The problems of a run's rows against the oracle (empty: equal)."""
    if hasattr(mod, "check"):
        return mod.check(rows, ev)
    want = mod.expected(ev)
    if mod.MODE == "last":
        last = {}
        for r in rows:
            last[key_of(r, mod.KEY)] = r
        rows = list(last.values())
    elif mod.MODE != "all":
        return ["unknown MODE %r" % mod.MODE]
    got = sorted(canon(r) for r in rows)
    exp = sorted(canon(r) for r in want)
    if got == exp:
        return []
    problems = ["%d rows, %d expected" % (len(got), len(exp))]
    gs, es = set(got), set(exp)
    for r in sorted(es - gs)[:5]:
        problems.append("missing: " + r)
    for r in sorted(gs - es)[:5]:
        problems.append("unexpected: " + r)
    if gs == es:
        problems.append("the same rows, other multiplicities")
    return problems


def main(argv):
    if len(argv) == 4 and argv[1] == "expect":
        mod = load_query(argv[2])
        for line in sorted(canon(r) for r in mod.expected(Events(argv[3]))):
            print(line)
        return 0
    if len(argv) == 5 and argv[1] == "check":
        mod = load_query(argv[2])
        ev = Events(argv[3])
        problems = compare(mod, ev, read_parts(argv[4]))
        for p in problems:
            print(p)
        return 1 if problems else 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
