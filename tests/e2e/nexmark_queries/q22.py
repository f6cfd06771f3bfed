"""q22: SPLIT_INDEX(url, '/', 3), 4 and 5: the url's pieces between '/'
(empty pieces kept), 0-based; a piece past the last is null (the field is
left out of the row)."""
MODE = "all"


def expected(ev):
    rows = []
    for b in ev.bids:
        pieces = b["url"].split("/") if b["url"] != "" else []
        row = {"auction": b["auction"], "bidder": b["bidder"], "price": b["price"],
               "channel": b["channel"]}
        for name, i in (("dir1", 3), ("dir2", 4), ("dir3", 5)):
            if i < len(pieces):
                row[name] = pieces[i]
        rows.append(row)
    return rows
