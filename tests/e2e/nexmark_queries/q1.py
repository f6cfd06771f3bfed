"""q1: 0.908 * price as a DECIMAL(23, 3), exact (Python's Decimal)."""
from decimal import Decimal

MODE = "all"


def expected(ev):
    return [{"auction": b["auction"], "bidder": b["bidder"],
             "price": str((Decimal("0.908") * b["price"]).quantize(Decimal("0.001"))),
             "date_time": b["date_time"], "extra": b["extra"]}
            for b in ev.bids]
