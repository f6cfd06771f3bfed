"""q21: channel_id "0".."3" for the channels apple, google, facebook and
baidu (lower-cased), else REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)
(the first match anywhere in the url, as Java's Matcher.find); bids whose
channel_id is null (no match) are dropped, as the WHERE says."""
import re

MODE = "all"

IDS = {"apple": "0", "google": "1", "facebook": "2", "baidu": "3"}
PATTERN = re.compile(r"(&|^)channel_id=([^&]*)")


def extract(url):
    m = PATTERN.search(url)
    return m.group(2) if m else None


def expected(ev):
    rows = []
    for b in ev.bids:
        channel_id = IDS.get(b["channel"].lower())
        if channel_id is None:
            channel_id = extract(b["url"])
        if channel_id is None:
            continue
        rows.append({"auction": b["auction"], "bidder": b["bidder"], "price": b["price"],
                     "channel": b["channel"], "channel_id": channel_id})
    return rows
