"""q6 (as Beam's Nexmark q6; Flink cannot run the suite's SQL): an
auction's winning bid is its highest-price bid with date_time in
[auction date_time, expires] (ties: earliest date_time, then lowest
bidder); auctions without one have no sale. Every auction closes by the
end of the input. Per seller, the average (truncated) of the winning
prices of its last 11 closed auctions, ordered by (winning bid date_time,
auction id). Rows {seller, avg_price}."""
MODE = "last"
KEY = ("seller",)


def expected(ev):
    bids = {}
    for b in ev.bids:
        bids.setdefault(b["auction"], []).append(b)
    sales = {}  # seller -> [(win date_time, auction id, price)]
    for a in ev.auctions:
        ok = [b for b in bids.get(a["id"], []) if a["date_time"] <= b["date_time"] <= a["expires"]]
        if not ok:
            continue
        w = min(ok, key=lambda b: (-b["price"], b["date_time"], b["bidder"]))
        sales.setdefault(a["seller"], []).append((w["date_time"], a["id"], w["price"]))
    rows = []
    for seller, s in sales.items():
        last = sorted(s)[-11:]
        rows.append({"seller": seller, "avg_price": sum(p for _, _, p in last) // len(last)})
    return rows
