"""q11: user sessions. Per bidder, SESSION windows with a 10 s gap over
date_time: a bid at t opens [t, t + 10 s), and windows that overlap or
touch merge (Flink's TimeWindow.intersects: a bid exactly 10 s after the
session's last one continues it). Rows {bidder, bid_count, starttime =
the first bid's date_time, endtime = the last bid's + 10 s (SESSION_END)}."""
MODE = "all"

GAP = 10000


def expected(ev):
    times = {}
    for b in ev.bids:
        times.setdefault(b["bidder"], []).append(b["date_time"])
    rows = []
    for bidder, ts in times.items():
        ts.sort()
        start, last, n = ts[0], ts[0], 0
        for t in ts:
            if t > last + GAP:
                rows.append({"bidder": bidder, "bid_count": n, "starttime": start, "endtime": last + GAP})
                start, n = t, 0
            last, n = t, n + 1
        rows.append({"bidder": bidder, "bid_count": n, "starttime": start, "endtime": last + GAP})
    return rows
