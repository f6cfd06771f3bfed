"""q4: per auction (id, category), the max price of its bids with date_time
in [auction date_time, expires]; per category, the average (BIGINT AVG:
truncated) of those maxima. Rows {category, final}: the SQL's output
columns are named id, final; the job names the first one category."""
MODE = "last"
KEY = ("category",)


def expected(ev):
    bids = {}
    for b in ev.bids:
        bids.setdefault(b["auction"], []).append(b)
    final = {}  # (auction id, category) -> max price
    for a in ev.auctions:
        for b in bids.get(a["id"], []):
            if a["date_time"] <= b["date_time"] <= a["expires"]:
                k = (a["id"], a["category"])
                final[k] = max(final.get(k, b["price"]), b["price"])
    per = {}
    for (_, cat), p in final.items():
        per.setdefault(cat, []).append(p)
    return [{"category": c, "final": sum(ps) // len(ps)} for c, ps in per.items()]
