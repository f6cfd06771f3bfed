"""q2: the bids of auctions whose id is a multiple of 123."""
MODE = "all"


def expected(ev):
    return [{"auction": b["auction"], "price": b["price"]}
            for b in ev.bids if b["auction"] % 123 == 0]
