"""q7: highest bid. Per TUMBLE window of 10 s (epoch-aligned) of bids'
date_time, the largest price; the rows are the bids with that price whose
date_time is BETWEEN window_end - 10 s AND window_end, both ends included
as SQL's BETWEEN: the window's own bids and those at exactly window_end
(the next window's first millisecond). A bid can thus match two windows
and appear twice."""
MODE = "all"

SIZE = 10000


def expected(ev):
    top = {}  # window end -> max price
    for b in ev.bids:
        t = b["date_time"]
        end = t - t % SIZE + SIZE
        if b["price"] > top.get(end, float("-inf")):
            top[end] = b["price"]
    rows = []
    for b in ev.bids:
        t = b["date_time"]
        # the windows whose [end - SIZE, end] holds t: its own, and the one
        # ending at t when t is on a boundary
        ends = {t - t % SIZE + SIZE}
        if t % SIZE == 0:
            ends.add(t)
        for end in ends:
            if end in top and b["price"] == top[end]:
                rows.append({k: b[k] for k in ("auction", "bidder", "price", "date_time", "extra")})
    return rows
