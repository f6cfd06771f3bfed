#!/usr/bin/env python3
"""An independent oracle for the Nexmark generator (scripts/nexmark/nexmark.c).

A port, in Python, of the reference generator: nexmark/nexmark,
nexmark-flink/src/main/java/com/github/nexmark/flink/generator/
(GeneratorConfig, NexmarkGenerator, model/PersonGenerator, AuctionGenerator,
BidGenerator, StringsGenerator, PriceGenerator, LongGenerator) and
NexmarkConfiguration's defaults, written from the Java source, with
java.util.Random as the JDK documents it. Where the reference is not
deterministic, the choices docs/NEXMARK.md documents:

  - each event draws from java.util.Random(event id + seed * 0x9E3779B97F4A7C15
    mod 2^64), as nexmark-flink's first version and Beam's generator seed it
    (HEAD draws from one unseeded SplittableRandom per generator);
  - StringsGenerator.REUSABLE_EXTRA_STRING is built from java.util.Random(0),
    BidGenerator's static random (HOT_URLS, then CHANNEL_URL_CACHE) is
    java.util.Random(1) (unseeded in the reference);
  - baseTime is 1436918400000 (2015-07-15T00:00:00Z, Beam's BASE_TIME; the
    reference takes System.currentTimeMillis()), firstEventId and
    firstEventNumber 1 (nexmark-flink's NexmarkTableSourceFactory), one
    generator (numEventGenerators 1).

  nexmark_ref.py check DUMP N [KINDS] [NAME=VALUE...]
      the first N events (0-based event numbers 0..N-1) of the kinds asked
      for (KINDS: all, or person,auction,bid) equal DUMP's lines (JSON, in
      order; scripts/nexmark/dump.lua writes them) field by field; DUMP has
      exactly those lines. Exit 0, or 1 naming the first difference.
  nexmark_ref.py print N [KINDS] [NAME=VALUE...]
      the events as JSON lines (object names sorted).
"""
import json
import math
import sys

MASK48 = (1 << 48) - 1
MULTIPLIER = 0x5DEECE66D


def int32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def int64(v):
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def jdiv(a, b):
    """Java's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def jmod(a, b):
    """Java's % (the sign of the dividend)."""
    return a - b * jdiv(a, b)


def java_round(x):
    """Math.round(double) for the finite values used here: floor(x + 1/2)."""
    return int(math.floor(x + 0.5))


class JavaRandom:
    """java.util.Random."""

    def __init__(self, seed):
        self.seed = (seed ^ MULTIPLIER) & MASK48

    def next(self, bits):
        self.seed = (self.seed * MULTIPLIER + 0xB) & MASK48
        return int32(self.seed >> (48 - bits))

    def next_int(self, bound=None):
        if bound is None:
            return self.next(32)
        assert bound > 0
        r = self.next(31)
        m = bound - 1
        if bound & m == 0:
            return int32((bound * r) >> 31)
        u = r
        while True:
            r = u % bound  # u >= 0
            if int32(u - r + m) >= 0:
                return r
            u = self.next(31)

    def next_long(self):
        return int64((self.next(32) << 32) + self.next(32))

    def next_double(self):
        return ((self.next(26) << 27) + self.next(27)) * (1.0 / (1 << 53))


# ---- StringsGenerator ----------------------------------------------------

MIN_STRING_LENGTH = 3


def java_trim(s):
    a, b = 0, len(s)
    while a < b and s[a] <= ' ':
        a += 1
    while b > a and s[b - 1] <= ' ':
        b -= 1
    return s[a:b]


def next_string(random, max_length, special=' '):
    length = MIN_STRING_LENGTH + random.next_int(max_length - MIN_STRING_LENGTH)
    sb = []
    while length > 0:
        length -= 1
        if random.next_int(13) == 0:
            sb.append(special)
        else:
            sb.append(chr(ord('a') + random.next_int(26)))
    return java_trim(''.join(sb))


def exact_string_chars(random, length):
    sb = []
    rnd = 0
    n = 0
    while length > 0:
        length -= 1
        if n == 0:
            rnd = random.next_int()
            n = 6
        sb.append(chr(ord('a') + jmod(rnd, 26)))
        rnd = jdiv(rnd, 26)
        n -= 1
    return ''.join(sb)


REUSABLE_EXTRA_STRING = exact_string_chars(JavaRandom(0), 1024 * 1024)


def next_exact_string(random, length):
    if length < len(REUSABLE_EXTRA_STRING) // 2:
        offset = random.next_int(len(REUSABLE_EXTRA_STRING) - length)
        return REUSABLE_EXTRA_STRING[offset:offset + length]
    return exact_string_chars(random, length)


def next_extra(random, current_size, desired_average_size):
    if current_size > desired_average_size:
        return ""
    desired_average_size -= current_size
    delta = java_round(desired_average_size * 0.2)
    min_size = desired_average_size - delta
    desired_size = min_size + (0 if delta == 0 else random.next_int(2 * delta))
    return next_exact_string(random, desired_size)


# ---- LongGenerator, PriceGenerator -----------------------------------------

INT_MAX = (1 << 31) - 1


def next_long(random, n):
    if n < INT_MAX:
        return random.next_int(n)
    return abs(jmod(random.next_long(), n))


def next_price(random):
    return java_round(math.pow(10.0, random.next_double() * 6.0) * 100.0)


# ---- GeneratorConfig -------------------------------------------------------

FIRST_AUCTION_ID = 1000
FIRST_PERSON_ID = 1000
FIRST_CATEGORY_ID = 10

DEFAULTS = {  # NexmarkConfiguration's, in the generator's snake_case names
    'events': 0, 'rate': 10000, 'seed': 0, 'base_time': 1436918400000,
    'first_event_id': 1, 'first_event_number': 1,
    'person_proportion': 1, 'auction_proportion': 3, 'bid_proportion': 46,
    'hot_auction_ratio': 2, 'hot_sellers_ratio': 4, 'hot_bidders_ratio': 4,
    'num_in_flight_auctions': 100, 'num_active_people': 1000,
    'avg_person_byte_size': 200, 'avg_auction_byte_size': 500, 'avg_bid_byte_size': 100,
    'out_of_order_group_size': 1,
}


class Config:
    def __init__(self, **kw):
        c = dict(DEFAULTS)
        c.update(kw)
        self.c = c
        self.person_proportion = c['person_proportion']
        self.auction_proportion = c['auction_proportion']
        self.bid_proportion = c['bid_proportion']
        self.total_proportion = self.person_proportion + self.auction_proportion + self.bid_proportion
        num_event_generators = 1
        self.inter_event_delay_us = 1000000.0 / c['rate'] * num_event_generators
        self.base_time = c['base_time']
        self.first_event_id = c['first_event_id']
        self.first_event_number = c['first_event_number']

    def next_event_number(self, num_events):
        return self.first_event_number + num_events

    def next_adjusted_event_number(self, num_events):
        n = self.c['out_of_order_group_size']
        event_number = self.next_event_number(num_events)
        base = (event_number // n) * n
        offset = (event_number * 953) % n
        return base + offset

    def timestamp_for_event(self, event_number):
        return self.base_time + int(event_number * self.inter_event_delay_us) // 1000


# ---- PersonGenerator -------------------------------------------------------

PERSON_ID_LEAD = 10
US_STATES = "AZ,CA,ID,OR,WA,WY".split(",")
US_CITIES = "Phoenix,Los Angeles,San Francisco,Boise,Portland,Bend,Redmond,Seattle,Kent,Cheyenne".split(",")
FIRST_NAMES = "Peter,Paul,Luke,John,Saul,Vicky,Kate,Julie,Sarah,Deiter,Walter".split(",")
LAST_NAMES = "Shultz,Abrams,Spencer,White,Bartels,Walton,Smith,Jones,Noris".split(",")


def last_base0_person_id(config, event_id):
    epoch = event_id // config.total_proportion
    offset = event_id % config.total_proportion
    if offset >= config.person_proportion:
        offset = config.person_proportion - 1
    return epoch * config.person_proportion + offset


def next_base0_person_id(event_id, random, config):
    num_people = last_base0_person_id(config, event_id) + 1
    active_people = min(num_people, config.c['num_active_people'])
    n = next_long(random, active_people + PERSON_ID_LEAD)
    return num_people - active_people + n


def next_person(next_event_id, random, timestamp, config):
    pid = last_base0_person_id(config, next_event_id) + FIRST_PERSON_ID
    name = FIRST_NAMES[random.next_int(len(FIRST_NAMES))] + " " + LAST_NAMES[random.next_int(len(LAST_NAMES))]
    email = next_string(random, 7) + "@" + next_string(random, 5) + ".com"
    credit_card = " ".join("%04d" % random.next_int(10000) for _ in range(4))
    city = US_CITIES[random.next_int(len(US_CITIES))]
    state = US_STATES[random.next_int(len(US_STATES))]
    current_size = 8 + len(name) + len(email) + len(credit_card) + len(city) + len(state)
    extra = next_extra(random, current_size, config.c['avg_person_byte_size'])
    return {'event_type': 0, 'id': pid, 'name': name, 'email_address': email, 'credit_card': credit_card,
            'city': city, 'state': state, 'date_time': timestamp, 'extra': extra}


# ---- AuctionGenerator ------------------------------------------------------

NUM_CATEGORIES = 5
AUCTION_ID_LEAD = 10
HOT_SELLER_RATIO = 100


def last_base0_auction_id(config, event_id):
    epoch = event_id // config.total_proportion
    offset = event_id % config.total_proportion
    if offset < config.person_proportion:
        epoch -= 1
        offset = config.auction_proportion - 1
    elif offset >= config.person_proportion + config.auction_proportion:
        offset = config.auction_proportion - 1
    else:
        offset -= config.person_proportion
    return epoch * config.auction_proportion + offset


def next_base0_auction_id(next_event_id, random, config):
    min_auction = max(last_base0_auction_id(config, next_event_id) - config.c['num_in_flight_auctions'], 0)
    max_auction = last_base0_auction_id(config, next_event_id)
    return min_auction + next_long(random, max_auction - min_auction + 1 + AUCTION_ID_LEAD)


def next_auction_length_ms(events_count_so_far, random, timestamp, config):
    current_event_number = config.next_adjusted_event_number(events_count_so_far)
    num_events_for_auctions = (config.c['num_in_flight_auctions'] * config.total_proportion) \
        // config.auction_proportion
    future_auction = config.timestamp_for_event(current_event_number + num_events_for_auctions)
    horizon_ms = future_auction - timestamp
    return 1 + next_long(random, max(horizon_ms * 2, 1))


def next_auction(events_count_so_far, event_id, random, timestamp, config):
    aid = last_base0_auction_id(config, event_id) + FIRST_AUCTION_ID
    if random.next_int(config.c['hot_sellers_ratio']) > 0:
        seller = (last_base0_person_id(config, event_id) // HOT_SELLER_RATIO) * HOT_SELLER_RATIO
    else:
        seller = next_base0_person_id(event_id, random, config)
    seller += FIRST_PERSON_ID
    category = FIRST_CATEGORY_ID + random.next_int(NUM_CATEGORIES)
    initial_bid = next_price(random)
    expires = timestamp + next_auction_length_ms(events_count_so_far, random, timestamp, config)
    name = next_string(random, 20)
    desc = next_string(random, 100)
    reserve = initial_bid + next_price(random)
    current_size = 8 + len(name) + len(desc) + 8 + 8 + 8 + 8 + 8
    extra = next_extra(random, current_size, config.c['avg_auction_byte_size'])
    return {'event_type': 1, 'id': aid, 'item_name': name, 'description': desc, 'initial_bid': initial_bid,
            'reserve': reserve, 'date_time': timestamp, 'expires': expires, 'seller': seller,
            'category': category, 'extra': extra}


# ---- BidGenerator ----------------------------------------------------------

HOT_AUCTION_RATIO = 100
HOT_BIDDER_RATIO = 100
HOT_CHANNELS_RATIO = 2
CHANNELS_NUMBER = 10000
HOT_CHANNELS = ["Google", "Facebook", "Baidu", "Apple"]


def get_base_url(random):
    return ("https://www.nexmark.com/" + next_string(random, 5, '_') + '/' + next_string(random, 5, '_') + '/'
            + next_string(random, 5, '_') + '/' + "item.htm?query=1")


def integer_reverse(i):
    return int32(int(format(i & 0xFFFFFFFF, '032b')[::-1], 2))


def java_abs_int(v):
    return v if v == -(1 << 31) else abs(v)


_BID_RANDOM = JavaRandom(1)
HOT_URLS = [get_base_url(_BID_RANDOM) for _ in range(4)]


def create_channel_url_cache(random):
    cache = []
    for i in range(CHANNELS_NUMBER):
        url = get_base_url(random)
        if random.next_int(10) > 0:
            url = url + "&channel_id=" + str(java_abs_int(integer_reverse(i)))
        cache.append(("channel-" + str(i), url))
    return cache


CHANNEL_URL_CACHE = create_channel_url_cache(_BID_RANDOM)


def next_bid(event_id, random, timestamp, config):
    if random.next_int(config.c['hot_auction_ratio']) > 0:
        auction = (last_base0_auction_id(config, event_id) // HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
    else:
        auction = next_base0_auction_id(event_id, random, config)
    auction += FIRST_AUCTION_ID
    if random.next_int(config.c['hot_bidders_ratio']) > 0:
        bidder = (last_base0_person_id(config, event_id) // HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
    else:
        bidder = next_base0_person_id(event_id, random, config)
    bidder += FIRST_PERSON_ID
    price = next_price(random)
    if random.next_int(HOT_CHANNELS_RATIO) > 0:
        i = random.next_int(len(HOT_CHANNELS))
        channel, url = HOT_CHANNELS[i], HOT_URLS[i]
    else:
        channel, url = CHANNEL_URL_CACHE[random.next_int(CHANNELS_NUMBER)]
    bidder += FIRST_PERSON_ID  # the reference adds it twice
    current_size = 8 + 8 + 8 + 8
    extra = next_extra(random, current_size, config.c['avg_bid_byte_size'])
    return {'event_type': 2, 'auction': auction, 'bidder': bidder, 'price': price, 'channel': channel,
            'url': url, 'date_time': timestamp, 'extra': extra}


# ---- NexmarkGenerator ------------------------------------------------------

def next_event(config, events_count_so_far):
    """The event the reference's generator makes after events_count_so_far."""
    adjusted_event_timestamp = config.timestamp_for_event(config.next_adjusted_event_number(events_count_so_far))
    new_event_id = config.first_event_id + config.next_adjusted_event_number(events_count_so_far)
    random = JavaRandom(int64(new_event_id + config.c['seed'] * 0x9E3779B97F4A7C15))
    rem = new_event_id % config.total_proportion
    if rem < config.person_proportion:
        return next_person(new_event_id, random, adjusted_event_timestamp, config)
    if rem < config.person_proportion + config.auction_proportion:
        return next_auction(events_count_so_far, new_event_id, random, adjusted_event_timestamp, config)
    return next_bid(new_event_id, random, adjusted_event_timestamp, config)


KIND_NAMES = ['person', 'auction', 'bid']


def parse_args(argv):
    n = int(argv[0])
    kinds = {0, 1, 2}
    rest = argv[1:]
    if rest and '=' not in rest[0]:
        if rest[0] != 'all':
            kinds = {KIND_NAMES.index(k) for k in rest[0].split(',')}
        rest = rest[1:]
    kw = {}
    for a in rest:
        k, v = a.split('=', 1)
        if k == 'rate_limit':
            continue
        if k not in DEFAULTS:
            raise SystemExit("unknown config field " + k)
        kw[k] = int(v)
    return n, kinds, Config(**kw)


def events(n, kinds, config):
    for i in range(n):
        e = next_event(config, i)
        if e['event_type'] in kinds:
            yield i, e


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ('check', 'print'):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == 'print':
        n, kinds, config = parse_args(sys.argv[2:])
        for _, e in events(n, kinds, config):
            print(json.dumps(e, sort_keys=True, separators=(',', ':')))
        return 0
    dump = sys.argv[2]
    n, kinds, config = parse_args(sys.argv[3:])
    with open(dump, encoding='utf-8') as f:
        lines = f.read().splitlines()
    checked = 0
    for line_no, (i, want) in enumerate(events(n, kinds, config)):
        if line_no >= len(lines):
            print("%s has %d lines; event %d (%s) is missing" % (dump, len(lines), i, KIND_NAMES[want['event_type']]))
            return 1
        got = json.loads(lines[line_no])
        if got != want:
            print("%s line %d differs from event %d:" % (dump, line_no + 1, i))
            for k in sorted(set(got) | set(want)):
                if got.get(k) != want.get(k):
                    print("  %s: got %r, expected %r" % (k, got.get(k, '(absent)'), want.get(k, '(absent)')))
            return 1
        checked += 1
    if checked != len(lines):
        print("%s has %d lines, expected %d" % (dump, len(lines), checked))
        return 1
    print("%d events equal the reference's, field by field" % checked)
    return 0


if __name__ == '__main__':
    sys.exit(main())
