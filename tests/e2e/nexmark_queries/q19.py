"""q19: per auction the 10 bids of highest price (ROW_NUMBER() OVER
(PARTITION BY auction ORDER BY price DESC) <= 10), with their rank_number.
Ties of price are made deterministic: earlier date_time first, then lower
bidder, then lower extra, channel, url. An updating query keyed by
(auction, rank_number): the last row of each; an auction of n < 10 bids
has ranks 1..n only."""
MODE = "last"
KEY = ("auction", "rank_number")

FIELDS = ("auction", "bidder", "price", "channel", "url", "date_time", "extra")


def order(b):
    return (-b["price"], b["date_time"], b["bidder"], b["extra"], b["channel"], b["url"])


def expected(ev):
    per_auction = {}
    for b in ev.bids:
        per_auction.setdefault(b["auction"], []).append(b)
    rows = []
    for bids in per_auction.values():
        for i, b in enumerate(sorted(bids, key=order)[:10]):
            row = {f: b[f] for f in FIELDS}
            row["rank_number"] = i + 1
            rows.append(row)
    return rows
