"""q17: per (auction, UTC day): the number of bids, in all and per price
rank (rank1: price < 10000, rank2: 10000 <= price < 1000000, rank3: price
>= 1000000), and min, max, avg (AVG of a BIGINT: a BIGINT, the quotient
truncated) and sum of the prices. An updating aggregate: the last row of
each (auction, day)."""
from datetime import datetime, timezone

MODE = "last"
KEY = ("auction", "day")


def day(ms):
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def expected(ev):
    groups = {}
    for b in ev.bids:
        groups.setdefault((b["auction"], day(b["date_time"])), []).append(b["price"])
    rows = []
    for (auction, d), prices in groups.items():
        total = sum(prices)
        rows.append({"auction": auction, "day": d, "total_bids": len(prices),
                     "rank1_bids": len([p for p in prices if p < 10000]),
                     "rank2_bids": len([p for p in prices if 10000 <= p < 1000000]),
                     "rank3_bids": len([p for p in prices if p >= 1000000]),
                     "min_price": min(prices), "max_price": max(prices),
                     "avg_price": total // len(prices), "sum_price": total})
    return rows
