#!/usr/bin/env python3
"""Independent oracle for scripts/coding_sessions.lua.

Replays the CSV in arrival order with Flink's rules for event-time session
windows written out by hand: each commit opens the window [t, t + 2 h);
windows of one author that overlap (start <= other end and end >= other
start) merge into their union; a commit whose own window does not merge
with a live session and is already late (end - 1 <= watermark) is dropped;
watermark = max timestamp - 1 h - 1 ms after each record; a session fires
(and is purged, allowed lateness 0) once the watermark reaches its end - 1;
the end of input fires the rest.

usage: oracle_sessions.py COMMITS_CSV OUT
Writes sorted rows "author,start,stop,commits,insertions,deletions".
"""
import csv
import datetime
import sys

HOUR = 3600 * 1000
GAP = 2 * HOUR
MIN = -(2 ** 63)


def iso(ms):
    return datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    src, out = sys.argv[1:3]
    max_ts = MIN + HOUR + 1
    watermark = MIN
    live = {}  # author -> list of [start, end, commits, ins, dels]
    rows = []

    def fire(author, s):
        rows.append("%s,%s,%s,%d,%d,%d" % (author, iso(s[0]), iso(s[1]), s[2], s[3], s[4]))

    with open(src, newline="") as f:
        for row in csv.DictReader(f):
            a = row["author"]
            ts = int(row["author_time_ms"])
            new = [ts, ts + GAP, 1, int(row["insertions"] or 0), int(row["deletions"] or 0)]
            sessions = live.setdefault(a, [])
            keep, merged = [], new
            touched = False
            for s in sessions:
                if s[0] <= merged[1] and s[1] >= merged[0]:
                    merged = [min(s[0], merged[0]), max(s[1], merged[1]),
                              s[2] + merged[2], s[3] + merged[3], s[4] + merged[4]]
                    touched = True
                else:
                    keep.append(s)
            # merging may chain: repeat until no live session overlaps
            changed = touched
            while changed:
                changed = False
                rest = []
                for s in keep:
                    if s[0] <= merged[1] and s[1] >= merged[0]:
                        merged = [min(s[0], merged[0]), max(s[1], merged[1]),
                                  s[2] + merged[2], s[3] + merged[3], s[4] + merged[4]]
                        changed = True
                    else:
                        rest.append(s)
                keep = rest
            if touched or merged[1] - 1 > watermark:
                keep.append(merged)  # else a late commit on its own: dropped
            live[a] = keep
            if not keep:
                del live[a]
            # the watermark generator sees every record, late ones too
            max_ts = max(max_ts, ts)
            new_wm = max_ts - HOUR - 1
            if new_wm > watermark:
                watermark = new_wm
                for author in list(live):
                    remaining = []
                    for s in live[author]:
                        if s[1] - 1 <= watermark:
                            fire(author, s)
                        else:
                            remaining.append(s)
                    if remaining:
                        live[author] = remaining
                    else:
                        del live[author]
    for author, sessions in live.items():
        for s in sessions:
            fire(author, s)
    with open(out, "w") as f:
        f.write("".join(r + "\n" for r in sorted(rows)))


if __name__ == "__main__":
    main()
