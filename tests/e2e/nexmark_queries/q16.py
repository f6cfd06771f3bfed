"""q16: per (channel, UTC day), q15's counts plus minute, the largest
HH:mm (UTC) of the group's bids. An updating aggregate: the last row of
each (channel, day)."""
from datetime import datetime, timezone

from nexmark_oracle import load_query

MODE = "last"
KEY = ("channel", "day")
counts = load_query("q15").counts


def utc(ms):
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc)


def expected(ev):
    groups = {}
    for b in ev.bids:
        key = (b["channel"], utc(b["date_time"]).strftime("%Y-%m-%d"))
        groups.setdefault(key, []).append(b)
    return [counts({"channel": channel, "day": d,
                    "minute": max(utc(b["date_time"]).strftime("%H:%M") for b in bids)}, bids)
            for (channel, d), bids in groups.items()]
