"""q18: per (bidder, auction) the last bid: ROW_NUMBER() ordered by
date_time DESC, rank 1. Ties of date_time are made deterministic: the
largest (date_time, price, extra, channel, url). An updating query: the
last row of each (bidder, auction)."""
MODE = "last"
KEY = ("bidder", "auction")

FIELDS = ("auction", "bidder", "price", "channel", "url", "date_time", "extra")


def order(b):
    return (b["date_time"], b["price"], b["extra"], b["channel"], b["url"])


def expected(ev):
    last = {}
    for b in ev.bids:
        key = (b["bidder"], b["auction"])
        if key not in last or order(b) > order(last[key]):
            last[key] = b
    return [{f: b[f] for f in FIELDS} for b in last.values()]
