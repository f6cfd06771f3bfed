"""q15: per UTC day (yyyy-MM-dd of date_time), the number of bids and the
distinct bidders and auctions, in all and per price rank (rank1: price <
10000, rank2: 10000 <= price < 1000000, rank3: price >= 1000000). An
updating aggregate: the last row of each day."""
from datetime import datetime, timezone

MODE = "last"
KEY = ("day",)


def day(ms):
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def rank(price):
    if price < 10000:
        return 1
    if price < 1000000:
        return 2
    return 3


def counts(row, bids):
    """row with the bids' counts (q15's columns, q16's too) added."""
    row.update({"total_bids": len(bids),
                "total_bidders": len({b["bidder"] for b in bids}),
                "total_auctions": len({b["auction"] for b in bids})})
    for r in (1, 2, 3):
        sel = [b for b in bids if rank(b["price"]) == r]
        row["rank%d_bids" % r] = len(sel)
        row["rank%d_bidders" % r] = len({b["bidder"] for b in sel})
        row["rank%d_auctions" % r] = len({b["auction"] for b in sel})
    return row


def expected(ev):
    groups = {}
    for b in ev.bids:
        groups.setdefault(day(b["date_time"]), []).append(b)
    return [counts({"day": d}, bids) for d, bids in groups.items()]
