"""q8: monitor new users. Persons grouped by (id, name, 10 s TUMBLE window)
joined with auctions grouped by (seller, window) on id = seller and the
same window: one row {id, name, starttime} per person and window in which
it created an auction."""
MODE = "all"

SIZE = 10000


def expected(ev):
    people = set()
    for p in ev.persons:
        t = p["date_time"]
        people.add((p["id"], p["name"], t - t % SIZE))
    sellers = set()
    for a in ev.auctions:
        t = a["date_time"]
        sellers.add((a["seller"], t - t % SIZE))
    return [{"id": i, "name": n, "starttime": s} for (i, n, s) in people if (i, s) in sellers]
