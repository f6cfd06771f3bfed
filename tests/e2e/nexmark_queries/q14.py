"""q14: bids with 1000000 < 0.908 * price < 50000000, the price converted
(DECIMAL(23, 3)), the kind of hour of their date_time (UTC) and the number
of 'c' in extra."""
from datetime import datetime, timezone
from decimal import Decimal

MODE = "all"


def hour(ms):
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).hour


def time_type(ms):
    h = hour(ms)
    if 8 <= h <= 18:
        return "dayTime"
    if h <= 6 or h >= 20:
        return "nightTime"
    return "otherTime"


def expected(ev):
    rows = []
    for b in ev.bids:
        price = Decimal("0.908") * b["price"]
        if not (price > 1000000 and price < 50000000):
            continue
        rows.append({"auction": b["auction"], "bidder": b["bidder"],
                     "price": str(price.quantize(Decimal("0.001"))),
                     "bid_time_type": time_type(b["date_time"]),
                     "date_time": b["date_time"], "extra": b["extra"],
                     "c_counts": b["extra"].count("c")})
    return rows
