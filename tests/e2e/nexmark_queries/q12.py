"""q12: processing-time windows. TUMBLE windows of 10 s of processing time
(epoch-aligned wall clock), the number of bids per bidder and window. The
rows depend on when the job ran, so the check is what holds at any speed:
every window is 10 s long and aligned, a bidder has at most one row per
window, and a bidder's counts add up to its number of bids (every bid is
counted once: the job fires the windows still open when its input ends)."""

SIZE = 10000


def check(rows, ev):
    problems = []
    want = {}
    for b in ev.bids:
        want[b["bidder"]] = want.get(b["bidder"], 0) + 1
    got, seen = {}, set()
    for r in rows:
        if set(r) != {"bidder", "bid_count", "starttime", "endtime"}:
            problems.append("fields: %r" % r)
            continue
        if r["endtime"] - r["starttime"] != SIZE or r["starttime"] % SIZE != 0:
            problems.append("not a 10 s aligned window: %r" % r)
        if not (isinstance(r["bid_count"], int) and r["bid_count"] > 0):
            problems.append("bad count: %r" % r)
        if (r["bidder"], r["starttime"]) in seen:
            problems.append("two rows for one bidder and window: %r" % r)
        seen.add((r["bidder"], r["starttime"]))
        got[r["bidder"]] = got.get(r["bidder"], 0) + r["bid_count"]
    for bidder in sorted(set(want) | set(got)):
        if want.get(bidder, 0) != got.get(bidder, 0):
            problems.append("bidder %s: %d bids counted, %d expected" % (bidder, got.get(bidder, 0),
                                                                       want.get(bidder, 0)))
    return problems[:20]
