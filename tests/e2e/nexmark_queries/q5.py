"""q5: hot items. HOP windows of 10 s every 2 s (epoch-aligned) over
bids' date_time; per window the number of bids per auction; the rows are
the auctions whose count equals the window's largest (all of them on a
tie), with the window's bounds (starttime, endtime: ms) added to the SQL's
auction, num."""
MODE = "all"

SIZE, SLIDE = 10000, 2000


def expected(ev):
    counts = {}  # (start, auction) -> count
    for b in ev.bids:
        t = b["date_time"]
        last = t - t % SLIDE  # the latest window start at or before t
        for start in range(last, t - SIZE, -SLIDE):
            key = (start, b["auction"])
            counts[key] = counts.get(key, 0) + 1
    top = {}  # start -> the largest count
    for (start, _), n in counts.items():
        if n > top.get(start, 0):
            top[start] = n
    return [{"auction": a, "num": n, "starttime": start, "endtime": start + SIZE}
            for (start, a), n in counts.items() if n >= top[start]]
