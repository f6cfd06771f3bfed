"""q20: every bid joined with its auction (bid.auction = auction.id) when
the auction's category is 10: a regular inner join, no time bound."""
MODE = "all"


def expected(ev):
    auctions = {}
    for a in ev.auctions:
        if a["category"] == 10:
            auctions.setdefault(a["id"], []).append(a)
    return [{"auction": b["auction"], "bidder": b["bidder"], "price": b["price"],
             "channel": b["channel"], "url": b["url"], "bid_date_time": b["date_time"],
             "bid_extra": b["extra"], "item_name": a["item_name"],
             "description": a["description"], "initial_bid": a["initial_bid"],
             "reserve": a["reserve"], "auction_date_time": a["date_time"],
             "expires": a["expires"], "seller": a["seller"], "category": a["category"],
             "auction_extra": a["extra"]}
            for b in ev.bids for a in auctions.get(b["auction"], [])]
