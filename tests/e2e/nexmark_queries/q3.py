"""q3: category-10 auctions joined with their sellers living in OR, ID or
CA (a regular inner join on A.seller = P.id): one row per matching pair."""
MODE = "all"


def expected(ev):
    persons = {}
    for p in ev.persons:
        if p["state"] in ("OR", "ID", "CA"):
            persons.setdefault(p["id"], []).append(p)
    return [{"name": p["name"], "city": p["city"], "state": p["state"], "id": a["id"]}
            for a in ev.auctions if a["category"] == 10
            for p in persons.get(a["seller"], [])]
