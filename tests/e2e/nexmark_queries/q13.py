"""q13: each bid joined by lookup with the bounded side input on
MOD(auction, 10000) = key. The side input is the suite's SideInputGenerator
file, `i,i` for i in 0..9999 (the test writes it): key i, value the text
of i. An inner join: a bid whose key is not in the file has no row."""
MODE = "all"

SIDE = {i: str(i) for i in range(10000)}


def expected(ev):
    rows = []
    for b in ev.bids:
        value = SIDE.get(b["auction"] % 10000)
        if value is None:
            continue
        rows.append({"auction": b["auction"], "bidder": b["bidder"], "price": b["price"],
                     "date_time": b["date_time"], "value": value})
    return rows
