"""q16: per (channel, UTC day), q15's counts plus minute, the largest
HH:mm (UTC) of the group's bids. An updating aggregate: the last row of
each (channel, day)."""
from datetime import datetime, timezone

MODE = "last"
KEY = ("channel", "day")


def utc(ms):
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc)


def rank(price):
    if price < 10000:
        return 1
    if price < 1000000:
        return 2
    return 3


def expected(ev):
    groups = {}
    for b in ev.bids:
        key = (b["channel"], utc(b["date_time"]).strftime("%Y-%m-%d"))
        groups.setdefault(key, []).append(b)
    rows = []
    for (channel, d), bids in groups.items():
        row = {"channel": channel, "day": d,
               "minute": max(utc(b["date_time"]).strftime("%H:%M") for b in bids),
               "total_bids": len(bids),
               "total_bidders": len({b["bidder"] for b in bids}),
               "total_auctions": len({b["auction"] for b in bids})}
        for r in (1, 2, 3):
            sel = [b for b in bids if rank(b["price"]) == r]
            row["rank%d_bids" % r] = len(sel)
            row["rank%d_bidders" % r] = len({b["bidder"] for b in sel})
            row["rank%d_auctions" % r] = len({b["auction"] for b in sel})
        rows.append(row)
    return rows
