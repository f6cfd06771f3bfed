"""q9: per auction, the winning bid among its bids with date_time in
[auction date_time, expires]: highest price, then earliest date_time (the
SQL's ROW_NUMBER order), then lowest bidder, then smallest extra (the
SQL leaves those ties open). Rows: the auction's fields and the bid's
auction, bidder, price, bid_date_time, bid_extra."""
MODE = "last"
KEY = ("id",)

AUCTION = ("id", "item_name", "description", "initial_bid", "reserve", "date_time", "expires",
           "seller", "category", "extra")


def expected(ev):
    bids = {}
    for b in ev.bids:
        bids.setdefault(b["auction"], []).append(b)
    rows = []
    for a in ev.auctions:
        ok = [b for b in bids.get(a["id"], []) if a["date_time"] <= b["date_time"] <= a["expires"]]
        if not ok:
            continue
        w = min(ok, key=lambda b: (-b["price"], b["date_time"], b["bidder"], b["extra"]))
        row = {k: a[k] for k in AUCTION}
        row.update({"auction": w["auction"], "bidder": w["bidder"], "price": w["price"],
                    "bid_date_time": w["date_time"], "bid_extra": w["extra"]})
        rows.append(row)
    return rows
