#!/usr/bin/env python3
"""Independent oracle for scripts/commits_daily.lua.

Replays the CSV in arrival order with Flink's rules written out by hand:
bounded out-of-orderness watermarks (max timestamp - 1 h - 1 ms) emitted
after each record, tumbling 1-day event-time windows, allowed lateness 0:
a record is late when its window's max timestamp (start + 1 d - 1) is at
or below the watermark in force when it arrives.

usage: oracle_commits_daily.py COMMITS_CSV DAILY_OUT LATE_OUT
Writes sorted CSV rows "author,day,commits" and "commit,author,author_time_ms".
"""
import csv
import datetime
import sys

HOUR = 3600 * 1000
DAY = 24 * HOUR
MIN = -(2 ** 63)


def main():
    src, daily_out, late_out = sys.argv[1:4]
    max_ts = MIN + HOUR + 1
    watermark = MIN
    counts = {}
    late = []
    with open(src, newline="") as f:
        for row in csv.DictReader(f):
            ts = int(row["author_time_ms"])
            start = ts - (ts % DAY)
            if start + DAY - 1 <= watermark:
                late.append("%s,%s,%d" % (row["commit"], row["author"], ts))
            else:
                key = (row["author"], start)
                counts[key] = counts.get(key, 0) + 1
            max_ts = max(max_ts, ts)
            watermark = max(watermark, max_ts - HOUR - 1)
    rows = []
    for (author, start), n in counts.items():
        day = datetime.datetime.fromtimestamp(start // 1000, datetime.timezone.utc).strftime("%Y-%m-%d")
        rows.append("%s,%s,%d" % (author, day, n))
    with open(daily_out, "w") as f:
        f.write("".join(r + "\n" for r in sorted(rows)))
    with open(late_out, "w") as f:
        f.write("".join(r + "\n" for r in sorted(late)))


if __name__ == "__main__":
    main()
