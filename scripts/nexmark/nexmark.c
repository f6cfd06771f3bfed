/*
 * nexmark.c - the Nexmark event generator as a Tide C module
 * (docs/NEXMARK.md): a source `events` emitting the persons, auctions and
 * bids of the reference generator (github.com/nexmark/nexmark,
 * nexmark-flink, package com.github.nexmark.flink.generator) as flat
 * MessagePack maps, each with its date_time as the record's timestamp.
 *
 *   make -C scripts/nexmark                  builds nexmark.so here
 *   local nx = tide.load_module("scripts/nexmark/nexmark.so")
 *   env:add_source(nx.events, { events = 1000000, kinds = { "bid" } })
 *
 * The model is the reference's: event n of the sequence (0, 1, ...) has
 * the event id first_event_id + first_event_number + n, whose remainder
 * modulo the total proportion (1 + 3 + 46) makes it a person, an auction
 * or a bid; its time is base_time + (first_event_number + n) x the
 * inter-event delay (1e6 / rate us), and its fields are drawn from a
 * java.util.Random seeded with the event id (so an event depends on its
 * number alone: subtasks and skipped kinds cost nothing to jump over).
 * java.util.Random is reproduced bit for bit, so the strings and numbers
 * are the reference's. docs/NEXMARK.md says where the reference itself is
 * not deterministic and what this generator fixes there.
 *
 * Subtask k of p emits the event numbers k, k + p, k + 2p, ... (below
 * `events`, or unbounded when events = 0): each event is the same whatever
 * the parallelism, and all subtasks advance together in event time. The
 * position (the next event number of the subtask) is its own state in
 * checkpoints: a checkpoint resumes at its own parallelism only
 * (docs/MODULES.md, "Rescaling").
 *
 * Builds against the tree's headers or an installed Tide's:
 * cc -shared -fPIC -o nexmark.so nexmark.c $(pkg-config --cflags tide) -lm
 */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tide.h>

static const td_api_t *T; /* the host's routines, from init */

/* ---- java.util.Random ---------------------------------------------------
 * A 48-bit linear congruential generator (Knuth, TAOCP 3.2.1), as the JDK
 * documents it: seed scrambled with the multiplier, next(bits) the top
 * bits of the state, nextInt(bound) by rejection, nextLong and nextDouble
 * from two draws each. Signed results wrap as Java's int and long do. */

#define JR_MUL 0x5DEECE66DULL
#define JR_MASK ((1ULL << 48) - 1)

typedef struct jrand {
  uint64_t s;
} jrand_t;

static inline void jr_seed(jrand_t *r, uint64_t seed) { r->s = (seed ^ JR_MUL) & JR_MASK; }

static inline int32_t jr_next(jrand_t *r, int bits) {
  r->s = (r->s * JR_MUL + 0xB) & JR_MASK;
  return (int32_t)(uint32_t)(r->s >> (48 - bits));
}

/* nextInt(bound), bound >= 1: uniform in [0, bound) */
static inline int32_t jr_int(jrand_t *r, int32_t bound) {
  int32_t x = jr_next(r, 31), m = bound - 1;
  if ((bound & m) == 0) return (int32_t)(((int64_t)bound * x) >> 31);
  /* Java: for (u = r; u - (r = u % bound) + m < 0; u = next(31)), the sum
   * overflowing int */
  for (int32_t u = x; (int64_t)u - (x = u % bound) + m > INT32_MAX; u = jr_next(r, 31)) {
  }
  return x;
}

static inline int64_t jr_long(jrand_t *r) {
  int64_t hi = jr_next(r, 32), lo = jr_next(r, 32);
  return (int64_t)(((uint64_t)hi << 32) + (uint64_t)lo);
}

static inline double jr_double(jrand_t *r) {
  int64_t hi = jr_next(r, 26), lo = jr_next(r, 27);
  return (double)((hi << 27) + lo) * 0x1.0p-53;
}

/* LongGenerator.nextLong: [0, n), n >= 1 (skewed for n >= 2^31 - 1, as
 * the reference says) */
static inline int64_t nx_long(jrand_t *r, int64_t n) {
  if (n < INT32_MAX) return jr_int(r, (int32_t)n);
  int64_t v = jr_long(r) % n;
  return v < 0 ? -v : v;
}

/* Math.round(x) for 0 <= x < 2^52: floor(x + 1/2) (x + 0.5 is exact for
 * x >= 1; below 1 only 0.49999999999999994 would round wrong, and no
 * caller can give it: prices are >= 100, sizes multiples of 0.2) */
static inline int64_t jround(double x) { return (int64_t)(x + 0.5); }

/* PriceGenerator.nextPrice: Math.round(10^(6u) * 100) */
static inline int64_t nx_price(jrand_t *r) { return jround(pow(10.0, jr_double(r) * 6.0) * 100.0); }

/* StringsGenerator.nextString(maxLength, special) into buf (at least
 * maxLength bytes): 3 .. maxLength - 1 characters, each `special` with
 * probability 1/13, else a lower-case letter; then String.trim(), which
 * only a space special can change. Returns the length, *start the offset
 * of the trimmed string in buf. */
static inline size_t nx_string(jrand_t *r, int32_t max_len, char special, char *buf,
                               size_t *start) {
  int32_t len = 3 + jr_int(r, max_len - 3);
  for (int32_t i = 0; i < len; i++)
    buf[i] = jr_int(r, 13) == 0 ? special : (char)('a' + jr_int(r, 26));
  size_t a = 0, b = (size_t)len;
  if (special == ' ') {
    while (a < b && buf[a] == ' ') a++;
    while (b > a && buf[b - 1] == ' ') b--;
  }
  *start = a;
  return b - a;
}

/* StringsGenerator.nextExactString's generating loop: len characters
 * 'a' + rnd % 26 from successive nextInt() values, six per value (Java's
 * % and / truncate: a negative value gives the characters 'H' .. '`'). */
static void nx_exact_chars(jrand_t *r, char *out, size_t len) {
  int32_t rnd = 0;
  int n = 0;
  for (size_t i = 0; i < len; i++) {
    if (n == 0) {
      rnd = jr_next(r, 32);
      n = 6;
    }
    out[i] = (char)('a' + rnd % 26);
    rnd /= 26;
    n--;
  }
}

/* ---- the reference's constant tables ------------------------------------ */

#define POOL_LEN (1 << 20)      /* StringsGenerator.REUSABLE_EXTRA_STRING */
#define POOL_SEED 0             /* its java.util.Random's seed */
#define URL_SEED 1              /* BidGenerator's static random's seed */
#define CHANNELS 10000          /* BidGenerator.CHANNELS_NUMBER */
#define URL_MAX 80              /* the longest url: 55 + "&channel_id=" + 11 */

static const char *const FIRST_NAMES[] = {"Peter", "Paul",  "Luke",  "John",   "Saul",  "Vicky",
                                          "Kate",  "Julie", "Sarah", "Deiter", "Walter"};
static const char *const LAST_NAMES[] = {"Shultz", "Abrams", "Spencer", "White", "Bartels",
                                         "Walton", "Smith",  "Jones",   "Noris"};
static const char *const US_CITIES[] = {"Phoenix",  "Los Angeles", "San Francisco", "Boise",
                                        "Portland", "Bend",        "Redmond",       "Seattle",
                                        "Kent",     "Cheyenne"};
static const char *const US_STATES[] = {"AZ", "CA", "ID", "OR", "WA", "WY"};
static const char *const HOT_CHANNELS[] = {"Google", "Facebook", "Baidu", "Apple"};
#define COUNT(a) ((int32_t)(sizeof(a) / sizeof((a)[0])))

static uint8_t first_len[COUNT(FIRST_NAMES)], last_len[COUNT(LAST_NAMES)];
static uint8_t city_len[COUNT(US_CITIES)], hot_channel_len[COUNT(HOT_CHANNELS)];

/* the extra strings are slices of one 1 MiB string */
static char pool[POOL_LEN];

/* a url: its bytes and length */
typedef struct url {
  char s[URL_MAX];
  uint8_t len;
} url_t;

static url_t hot_urls[4];
static url_t channel_urls[CHANNELS];
static char channel_names[CHANNELS][16];
static uint8_t channel_name_len[CHANNELS];

/* BidGenerator.getBaseUrl: three nextString(5, '_') path parts */
static void base_url(jrand_t *r, url_t *u) {
  static const char head[] = "https://www.nexmark.com/", tail[] = "item.htm?query=1";
  char part[8];
  size_t n = sizeof head - 1, a;
  memcpy(u->s, head, n);
  for (int i = 0; i < 3; i++) {
    size_t k = nx_string(r, 5, '_', part, &a);
    memcpy(u->s + n, part + a, k);
    n += k;
    u->s[n++] = '/';
  }
  memcpy(u->s + n, tail, sizeof tail - 1);
  u->len = (uint8_t)(n + sizeof tail - 1);
}

/* Integer.reverse: the 32 bits in reverse order */
static int32_t reverse32(uint32_t v) {
  uint32_t r = 0;
  for (int i = 0; i < 32; i++, v >>= 1) r = (r << 1) | (v & 1);
  return (int32_t)r;
}

/* The reference builds these in static initializers from unseeded
 * randoms; here from java.util.Random with fixed seeds, in its order. */
static void build_tables(void) {
  jrand_t r;
  jr_seed(&r, POOL_SEED);
  nx_exact_chars(&r, pool, POOL_LEN);

  jr_seed(&r, URL_SEED);
  for (int i = 0; i < 4; i++) base_url(&r, &hot_urls[i]);
  for (int i = 0; i < CHANNELS; i++) {
    url_t *u = &channel_urls[i];
    base_url(&r, u);
    if (jr_int(&r, 10) > 0) {
      int32_t v = reverse32((uint32_t)i);
      if (v != INT32_MIN) v = v < 0 ? -v : v; /* Math.abs(MIN_VALUE) stays MIN_VALUE */
      u->len = (uint8_t)(u->len + snprintf(u->s + u->len, URL_MAX - u->len, "&channel_id=%" PRId32, v));
    }
    channel_name_len[i] = (uint8_t)snprintf(channel_names[i], sizeof channel_names[i], "channel-%d", i);
  }
  for (int i = 0; i < COUNT(FIRST_NAMES); i++) first_len[i] = (uint8_t)strlen(FIRST_NAMES[i]);
  for (int i = 0; i < COUNT(LAST_NAMES); i++) last_len[i] = (uint8_t)strlen(LAST_NAMES[i]);
  for (int i = 0; i < COUNT(US_CITIES); i++) city_len[i] = (uint8_t)strlen(US_CITIES[i]);
  for (int i = 0; i < COUNT(HOT_CHANNELS); i++) hot_channel_len[i] = (uint8_t)strlen(HOT_CHANNELS[i]);
}

/* ---- configuration --------------------------------------------------------- */

enum { PERSON = 0, AUCTION = 1, BID = 2 }; /* the reference's event_type */
static const char *const KIND_NAMES[] = {"person", "auction", "bid"};

/* The fields of the records (config `fields`: emit only the listed ones, as
 * a SQL engine pushes a projection into its source; the draws of an event
 * are made whatever is emitted, so its values do not change). */
enum {
  F_EVENT_TYPE, F_ID, F_NAME, F_EMAIL_ADDRESS, F_CREDIT_CARD, F_CITY, F_STATE, F_DATE_TIME,
  F_EXTRA, F_ITEM_NAME, F_DESCRIPTION, F_INITIAL_BID, F_RESERVE, F_EXPIRES, F_SELLER,
  F_CATEGORY, F_AUCTION, F_BIDDER, F_PRICE, F_CHANNEL, F_URL, NFIELDS
};
static const char *const FIELD_NAMES[NFIELDS] = {
  "event_type", "id", "name", "email_address", "credit_card", "city", "state", "date_time",
  "extra", "item_name", "description", "initial_bid", "reserve", "expires", "seller",
  "category", "auction", "bidder", "price", "channel", "url"};
#define FB(f) (1u << (f))
#define WANT(s, f) ((s)->fields >> (f) & 1)
#define ALL_FIELDS ((1u << NFIELDS) - 1)
/* each kind's fields */
static const uint32_t KIND_FIELDS[3] = {
  FB(F_EVENT_TYPE) | FB(F_ID) | FB(F_NAME) | FB(F_EMAIL_ADDRESS) | FB(F_CREDIT_CARD) |
      FB(F_CITY) | FB(F_STATE) | FB(F_DATE_TIME) | FB(F_EXTRA),
  FB(F_EVENT_TYPE) | FB(F_ID) | FB(F_ITEM_NAME) | FB(F_DESCRIPTION) | FB(F_INITIAL_BID) |
      FB(F_RESERVE) | FB(F_DATE_TIME) | FB(F_EXPIRES) | FB(F_SELLER) | FB(F_CATEGORY) | FB(F_EXTRA),
  FB(F_EVENT_TYPE) | FB(F_AUCTION) | FB(F_BIDDER) | FB(F_PRICE) | FB(F_CHANNEL) | FB(F_URL) |
      FB(F_DATE_TIME) | FB(F_EXTRA)};

#define FIRST_PERSON_ID 1000
#define FIRST_AUCTION_ID 1000
#define FIRST_CATEGORY_ID 10
#define NUM_CATEGORIES 5
#define PERSON_ID_LEAD 10
#define AUCTION_ID_LEAD 10
#define HOT_SELLER_RATIO 100
#define HOT_AUCTION_RATIO 100
#define HOT_BIDDER_RATIO 100
#define HOT_CHANNELS_RATIO 2
#define MAX_AVG_SIZE (1 << 20)

typedef struct nxcfg {
  int64_t events, rate, seed, base_time, first_event_id, first_event_number;
  int64_t person_proportion, auction_proportion, bid_proportion;
  int64_t hot_auction_ratio, hot_sellers_ratio, hot_bidders_ratio;
  int64_t num_in_flight_auctions, num_active_people;
  int64_t avg_person_byte_size, avg_auction_byte_size, avg_bid_byte_size;
  int64_t out_of_order_group_size;
} nxcfg_t;

/* the integer fields: name, offset, default, range */
typedef struct knob {
  const char *name;
  size_t off;
  int64_t def, min, max;
} knob_t;

#define K(f, d, lo, hi) {#f, offsetof(nxcfg_t, f), d, lo, hi}
static const knob_t KNOBS[] = {
    K(events, 0, 0, INT64_MAX),
    K(rate, 10000, 1, INT32_MAX),                   /* firstEventRate */
    K(seed, 0, INT64_MIN, INT64_MAX),
    K(base_time, 1436918400000, -(INT64_C(1) << 52), INT64_C(1) << 52), /* 2015-07-15, Beam's */
    K(first_event_id, 1, 0, INT64_C(1) << 40),      /* nexmark-flink's table source: 1, 1 */
    K(first_event_number, 1, 0, INT64_C(1) << 40),
    K(person_proportion, 1, 1, 1000),               /* (times stay far below 2^63 us) */
    K(auction_proportion, 3, 1, 1000),
    K(bid_proportion, 46, 0, 1000),
    K(hot_auction_ratio, 2, 1, INT32_MAX),
    K(hot_sellers_ratio, 4, 1, INT32_MAX),
    K(hot_bidders_ratio, 4, 1, INT32_MAX),
    K(num_in_flight_auctions, 100, 0, INT32_MAX),
    K(num_active_people, 1000, 0, INT32_MAX),
    K(avg_person_byte_size, 200, 0, MAX_AVG_SIZE),
    K(avg_auction_byte_size, 500, 0, MAX_AVG_SIZE),
    K(avg_bid_byte_size, 100, 0, MAX_AVG_SIZE),
    K(out_of_order_group_size, 1, 1, INT32_MAX),
};
#undef K
#define NKNOBS ((int)(sizeof KNOBS / sizeof KNOBS[0]))

/* an event id, with its quotient and remainder by the total proportion
 * (at most one division per event) */
typedef struct ev {
  int64_t id, epoch, off;
} ev_t;

/* one source instance */
typedef struct nx {
  nxcfg_t c;
  int64_t total;           /* person + auction + bid proportions */
  int64_t events_ahead;    /* events until num_in_flight_auctions more auctions */
  double delay_us;         /* between events (GeneratorConfig.interEventDelayUs) */
  uint64_t seed_mix;       /* added to each event's seed */
  uint32_t kinds;          /* bit 1 << kind: emitted */
  uint32_t fields;         /* bit FB(F_...): emitted (config `fields`) */
  size_t max_record;       /* bytes one record may take */
  int64_t next, step, end; /* the next event number, the parallelism, events */
  int64_t step_q, step_r;  /* step / total, step % total */
  ev_t cur;                /* next's event id, while in order (group size 1) */
  int32_t subtask;
} nx_t;

static int knob_error(td_ctx_t *ctx, const knob_t *k) {
  return T->error(ctx, TD_EINVAL, "config field '%s' must be an integer in [%" PRId64 ", %" PRId64 "]",
                  k->name, k->min, k->max);
}

/* A list of names in the config: field `cfg` ("kinds", "fields") takes
 * "a", "a,b" or { "a", "b" }, each one of names[0 .. n) (a `noun`); the
 * set as bits 1 << index. */
typedef struct name_list {
  const char *cfg, *noun, *known;
  const char *const *names;
  int n;
} name_list_t;

static int name_bit(td_ctx_t *ctx, const name_list_t *d, const char *s, size_t n, uint32_t *bits) {
  for (int k = 0; k < d->n; k++)
    if (strlen(d->names[k]) == n && memcmp(d->names[k], s, n) == 0) {
      *bits |= 1u << k;
      return 0;
    }
  return T->error(ctx, TD_EINVAL, "config field '%s': unknown %s '%.*s' (%s)", d->cfg, d->noun, (int)n, s,
                  d->known);
}

static int read_names(td_ctx_t *ctx, const name_list_t *d, const char **p, const char *end,
                      uint32_t *bits) {
  td_mp_item_t it;
  if (td_mp_read(p, end, &it) != 0) return T->error(ctx, TD_EINVAL, "bad config");
  *bits = 0;
  if (it.type == TD_MP_STR) {
    const char *s = it.v.s.p, *e = s + it.v.s.len;
    while (s <= e) {
      const char *c = memchr(s, ',', (size_t)(e - s));
      if (!c) c = e;
      int rc = name_bit(ctx, d, s, (size_t)(c - s), bits);
      if (rc) return rc;
      s = c + 1;
    }
  } else if (it.type == TD_MP_ARRAY || (it.type == TD_MP_MAP && it.v.n == 0)) {
    for (uint32_t i = 0; it.type == TD_MP_ARRAY && i < it.v.n; i++) {
      td_mp_item_t k;
      if (td_mp_read(p, end, &k) != 0 || k.type != TD_MP_STR)
        return T->error(ctx, TD_EINVAL, "config field '%s' must list %s names (strings)", d->cfg, d->noun);
      int rc = name_bit(ctx, d, k.v.s.p, k.v.s.len, bits);
      if (rc) return rc;
    }
  } else {
    return T->error(ctx, TD_EINVAL, "config field '%s' must be a string or a list of strings (%s)", d->cfg,
                    d->known);
  }
  if (!*bits) return T->error(ctx, TD_EINVAL, "config field '%s' names no %s (%s)", d->cfg, d->noun, d->known);
  return 0;
}

static const name_list_t KINDS_LIST = {"kinds", "kind", "person, auction, bid", KIND_NAMES, 3};
static const name_list_t FIELDS_LIST = {
    "fields", "field",
    "event_type, id, name, email_address, credit_card, city, state, date_time, extra, item_name, "
    "description, initial_bid, reserve, expires, seller, category, auction, bidder, price, channel, url",
    FIELD_NAMES, NFIELDS};

/* Every field of the config map: a knob, kinds or rate_limit (Tide's). */
static int read_config(td_ctx_t *ctx, const char *cfg, size_t len, nx_t *s) {
  for (int i = 0; i < NKNOBS; i++) *(int64_t *)((char *)&s->c + KNOBS[i].off) = KNOBS[i].def;
  s->kinds = 7;
  s->fields = ALL_FIELDS;
  if (!cfg || !len) return 0;
  const char *p = cfg, *end = cfg + len;
  td_mp_item_t it;
  if (td_mp_read(&p, end, &it) != 0) return T->error(ctx, TD_EINVAL, "bad config");
  if (it.type == TD_MP_NIL || (it.type == TD_MP_ARRAY && it.v.n == 0)) return 0;
  if (it.type != TD_MP_MAP) return T->error(ctx, TD_EINVAL, "config must be a table of fields");
  for (uint32_t f = 0; f < it.v.n; f++) {
    td_mp_item_t key;
    if (td_mp_read(&p, end, &key) != 0 || key.type != TD_MP_STR)
      return T->error(ctx, TD_EINVAL, "config field names must be strings");
    const char *name = key.v.s.p;
    size_t n = key.v.s.len;
#define IS(lit) (n == sizeof lit - 1 && memcmp(name, lit, n) == 0)
    if (IS("kinds") || IS("fields")) {
      int rc = IS("kinds") ? read_names(ctx, &KINDS_LIST, &p, end, &s->kinds)
                           : read_names(ctx, &FIELDS_LIST, &p, end, &s->fields);
      if (rc) return rc;
      continue;
    }
    if (IS("rate_limit")) { /* Tide's: the host paces the source */
      if (td_mp_skip(&p, end) != 0) return T->error(ctx, TD_EINVAL, "bad config");
      continue;
    }
#undef IS
    const knob_t *k = NULL;
    for (int i = 0; i < NKNOBS && !k; i++)
      if (strlen(KNOBS[i].name) == n && memcmp(KNOBS[i].name, name, n) == 0) k = &KNOBS[i];
    if (!k) {
      char known[512];
      size_t kl = 0;
      for (int i = 0; i < NKNOBS; i++)
        kl += (size_t)snprintf(known + kl, sizeof known - kl, "%s, ", KNOBS[i].name);
      return T->error(ctx, TD_EINVAL, "unknown config field '%.*s' (known: %skinds, fields, rate_limit)", (int)n,
                      name, known);
    }
    td_mp_item_t v;
    if (td_mp_read(&p, end, &v) != 0) return T->error(ctx, TD_EINVAL, "bad config");
    int64_t x;
    if (v.type == TD_MP_INT) x = v.v.i;
    else if (v.type == TD_MP_FLOAT && v.v.f >= -9.0e15 && v.v.f <= 9.0e15 && v.v.f == floor(v.v.f))
      x = (int64_t)v.v.f; /* LuaJIT's numbers */
    else return knob_error(ctx, k);
    if (x < k->min || x > k->max) return knob_error(ctx, k);
    *(int64_t *)((char *)&s->c + k->off) = x;
  }
  return 0;
}

/* ---- the model ----------------------------------------------------------------
 * GeneratorConfig, PersonGenerator, AuctionGenerator and BidGenerator. */

/* nextAdjustedEventNumber: the event number of the n-th event (0-based),
 * shuffled inside groups of out_of_order_group_size */
static inline int64_t adjusted_number(const nx_t *s, int64_t n) {
  int64_t e = s->c.first_event_number + n, g = s->c.out_of_order_group_size;
  return g == 1 ? e : (e / g) * g + (e * 953) % g;
}

/* the event id of (adjusted) event number `number` */
static inline ev_t locate(const nx_t *s, int64_t number) {
  ev_t e = {.id = s->c.first_event_id + number};
  e.epoch = e.id / s->total;
  e.off = e.id - e.epoch * s->total;
  return e;
}

/* timestampForEvent */
static inline int64_t timestamp_for(const nx_t *s, int64_t number) {
  return s->c.base_time + (int64_t)((double)number * s->delay_us) / 1000;
}

static inline int kind_of(const nx_t *s, const ev_t *e) {
  return e->off < s->c.person_proportion                            ? PERSON
         : e->off < s->c.person_proportion + s->c.auction_proportion ? AUCTION
                                                                     : BID;
}

/* PersonGenerator.lastBase0PersonId */
static inline int64_t last_person(const nx_t *s, const ev_t *e) {
  int64_t off = e->off;
  if (off >= s->c.person_proportion) off = s->c.person_proportion - 1;
  return e->epoch * s->c.person_proportion + off;
}

/* AuctionGenerator.lastBase0AuctionId */
static inline int64_t last_auction(const nx_t *s, const ev_t *e) {
  int64_t epoch = e->epoch, off = e->off;
  if (off < s->c.person_proportion) {
    epoch--;
    off = s->c.auction_proportion - 1;
  } else if (off >= s->c.person_proportion + s->c.auction_proportion) {
    off = s->c.auction_proportion - 1;
  } else {
    off -= s->c.person_proportion;
  }
  return epoch * s->c.auction_proportion + off;
}

/* PersonGenerator.nextBase0PersonId: one of the active people, or a few
 * ahead */
static inline int64_t next_person(const nx_t *s, const ev_t *e, jrand_t *r) {
  int64_t people = last_person(s, e) + 1;
  int64_t active = people < s->c.num_active_people ? people : s->c.num_active_people;
  return people - active + nx_long(r, active + PERSON_ID_LEAD);
}

/* AuctionGenerator.nextBase0AuctionId: one likely still in flight, or a
 * few ahead */
static inline int64_t next_auction(const nx_t *s, const ev_t *e, jrand_t *r) {
  int64_t max = last_auction(s, e);
  int64_t min = max - s->c.num_in_flight_auctions > 0 ? max - s->c.num_in_flight_auctions : 0;
  return min + nx_long(r, max - min + 1 + AUCTION_ID_LEAD);
}

/* ---- writing records ------------------------------------------------------------ */

static inline unsigned char *put_str(unsigned char *p, const char *str, size_t n) {
  p += td_mp_enc_head(p, TD_MP_HEAD_STR, (uint32_t)n);
  memcpy(p, str, n);
  return p + n;
}
#define PUT_KEY(p, lit) ((p) = put_str((p), lit, sizeof lit - 1))
#define PUT_INT(p, v) ((p) += td_mp_enc_int((p), (v)))
/* field f of a record, when the projection keeps it: its key, then an
 * integer, or len bytes of string str */
#define INT_FIELD(s, p, f, key, v)                                                                 \
  do {                                                                                             \
    if (WANT(s, f)) {                                                                              \
      PUT_KEY(p, key);                                                                             \
      PUT_INT(p, v);                                                                               \
    }                                                                                              \
  } while (0)
#define STR_FIELD(s, p, f, key, str, len)                                                          \
  do {                                                                                             \
    if (WANT(s, f)) {                                                                              \
      PUT_KEY(p, key);                                                                             \
      (p) = put_str((p), (str), (len));                                                            \
    }                                                                                              \
  } while (0)

/* StringsGenerator.nextExtra: a length whose average makes the record's
 * idealized size `desired`, and (nextExactString) a slice of the pool at a
 * random offset, or -1 when the length is at least half the pool: then
 * its characters are drawn afresh (put_extra). The last draws of every
 * event: drawn first, the slice is prefetched while the record's other
 * fields are written (it is one or two cache misses in 1 MiB). */
typedef struct extra {
  int32_t len, off;
} extra_t;

static inline extra_t draw_extra(jrand_t *r, int32_t current, int64_t desired) {
  extra_t x = {0, 0};
  if (current > desired) return x;
  int32_t want = (int32_t)desired - current;
  int32_t delta = (int32_t)jround(want * 0.2);
  x.len = want - delta + (delta == 0 ? 0 : jr_int(r, 2 * delta));
  if (x.len < POOL_LEN / 2) {
    x.off = jr_int(r, POOL_LEN - x.len);
    __builtin_prefetch(pool + x.off);
    __builtin_prefetch(pool + x.off + x.len - 1);
  } else {
    x.off = -1;
  }
  return x;
}

static inline unsigned char *put_extra(unsigned char *p, jrand_t *r, extra_t x) {
  p += td_mp_enc_head(p, TD_MP_HEAD_STR, (uint32_t)x.len);
  if (x.off >= 0) memcpy(p, pool + x.off, (size_t)x.len);
  else nx_exact_chars(r, (char *)p, (size_t)x.len);
  return p + x.len;
}

/* PersonGenerator.nextPerson */
static unsigned char *person(const nx_t *s, unsigned char *p, const ev_t *e, int64_t ts, jrand_t *r) {
  char email[16], cc[20];
  size_t a, n;
  int32_t fi = jr_int(r, COUNT(FIRST_NAMES)), li = jr_int(r, COUNT(LAST_NAMES));
  n = nx_string(r, 7, ' ', email, &a);
  memmove(email, email + a, n);
  email[n++] = '@';
  size_t m = nx_string(r, 5, ' ', email + n, &a);
  memmove(email + n, email + n + a, m);
  n += m;
  memcpy(email + n, ".com", 4);
  n += 4;
  for (int i = 0; i < 4; i++) {
    int32_t d = jr_int(r, 10000);
    cc[i * 5] = (char)('0' + d / 1000);
    cc[i * 5 + 1] = (char)('0' + d / 100 % 10);
    cc[i * 5 + 2] = (char)('0' + d / 10 % 10);
    cc[i * 5 + 3] = (char)('0' + d % 10);
    cc[i * 5 + 4] = ' ';
  }
  int32_t city = jr_int(r, COUNT(US_CITIES)), state = jr_int(r, COUNT(US_STATES));
  size_t name_len = (size_t)first_len[fi] + 1 + last_len[li];
  extra_t x = !WANT(s, F_EXTRA) ? (extra_t){0, 0} : draw_extra(r, (int32_t)(8 + name_len + n + 19 + city_len[city] + 2), s->c.avg_person_byte_size);

  *p++ = (unsigned char)(0x80 | __builtin_popcount(s->fields & KIND_FIELDS[PERSON])); /* fixmap */
  if (WANT(s, F_EVENT_TYPE)) {
    PUT_KEY(p, "event_type");
    *p++ = PERSON;
  }
  INT_FIELD(s, p, F_ID, "id", last_person(s, e) + FIRST_PERSON_ID);
  if (WANT(s, F_NAME)) {
    PUT_KEY(p, "name");
    p += td_mp_enc_head(p, TD_MP_HEAD_STR, (uint32_t)name_len);
    memcpy(p, FIRST_NAMES[fi], first_len[fi]);
    p += first_len[fi];
    *p++ = ' ';
    memcpy(p, LAST_NAMES[li], last_len[li]);
    p += last_len[li];
  }
  STR_FIELD(s, p, F_EMAIL_ADDRESS, "email_address", email, n);
  STR_FIELD(s, p, F_CREDIT_CARD, "credit_card", cc, 19);
  STR_FIELD(s, p, F_CITY, "city", US_CITIES[city], city_len[city]);
  STR_FIELD(s, p, F_STATE, "state", US_STATES[state], 2);
  INT_FIELD(s, p, F_DATE_TIME, "date_time", ts);
  if (!WANT(s, F_EXTRA)) return p;
  PUT_KEY(p, "extra");
  return put_extra(p, r, x);
}

/* AuctionGenerator.nextAuction (number: the event's adjusted number) */
static unsigned char *auction(const nx_t *s, unsigned char *p, const ev_t *e, int64_t number,
                              int64_t ts, jrand_t *r) {
  char name[20], desc[100];
  size_t na, da;
  int64_t seller;
  if (jr_int(r, (int32_t)s->c.hot_sellers_ratio) > 0)
    seller = (last_person(s, e) / HOT_SELLER_RATIO) * HOT_SELLER_RATIO;
  else
    seller = next_person(s, e, r);
  int64_t category = FIRST_CATEGORY_ID + jr_int(r, NUM_CATEGORIES);
  int64_t initial_bid = nx_price(r);
  /* nextAuctionLengthMs: on average the time until num_in_flight_auctions
   * more auctions */
  int64_t horizon = timestamp_for(s, number + s->events_ahead) - ts;
  int64_t expires = ts + 1 + nx_long(r, horizon * 2 > 1 ? horizon * 2 : 1);
  size_t nn = nx_string(r, 20, ' ', name, &na);
  size_t dn = nx_string(r, 100, ' ', desc, &da);
  int64_t reserve = initial_bid + nx_price(r);
  extra_t x = !WANT(s, F_EXTRA) ? (extra_t){0, 0} : draw_extra(r, (int32_t)(8 + nn + dn + 40), s->c.avg_auction_byte_size);

  *p++ = (unsigned char)(0x80 | __builtin_popcount(s->fields & KIND_FIELDS[AUCTION])); /* fixmap */
  if (WANT(s, F_EVENT_TYPE)) {
    PUT_KEY(p, "event_type");
    *p++ = AUCTION;
  }
  INT_FIELD(s, p, F_ID, "id", last_auction(s, e) + FIRST_AUCTION_ID);
  STR_FIELD(s, p, F_ITEM_NAME, "item_name", name + na, nn);
  STR_FIELD(s, p, F_DESCRIPTION, "description", desc + da, dn);
  INT_FIELD(s, p, F_INITIAL_BID, "initial_bid", initial_bid);
  INT_FIELD(s, p, F_RESERVE, "reserve", reserve);
  INT_FIELD(s, p, F_DATE_TIME, "date_time", ts);
  INT_FIELD(s, p, F_EXPIRES, "expires", expires);
  INT_FIELD(s, p, F_SELLER, "seller", seller + FIRST_PERSON_ID);
  INT_FIELD(s, p, F_CATEGORY, "category", category);
  if (!WANT(s, F_EXTRA)) return p;
  PUT_KEY(p, "extra");
  return put_extra(p, r, x);
}

/* BidGenerator.nextBid */
static unsigned char *bid(const nx_t *s, unsigned char *p, const ev_t *e, int64_t ts, jrand_t *r) {
  int64_t auction_id, bidder;
  if (jr_int(r, (int32_t)s->c.hot_auction_ratio) > 0)
    auction_id = (last_auction(s, e) / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO;
  else
    auction_id = next_auction(s, e, r);
  if (jr_int(r, (int32_t)s->c.hot_bidders_ratio) > 0)
    bidder = (last_person(s, e) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1;
  else
    bidder = next_person(s, e, r);
  int64_t price = nx_price(r);
  const char *channel;
  const url_t *url;
  size_t channel_len;
  if (jr_int(r, HOT_CHANNELS_RATIO) > 0) {
    int32_t i = jr_int(r, COUNT(HOT_CHANNELS));
    channel = HOT_CHANNELS[i];
    channel_len = hot_channel_len[i];
    url = &hot_urls[i];
  } else {
    int32_t i = jr_int(r, CHANNELS);
    channel = channel_names[i];
    channel_len = channel_name_len[i];
    url = &channel_urls[i];
    __builtin_prefetch(url);
  }
  extra_t x = !WANT(s, F_EXTRA) ? (extra_t){0, 0} : draw_extra(r, 32, s->c.avg_bid_byte_size);

  *p++ = (unsigned char)(0x80 | __builtin_popcount(s->fields & KIND_FIELDS[BID])); /* fixmap */
  if (WANT(s, F_EVENT_TYPE)) {
    PUT_KEY(p, "event_type");
    *p++ = BID;
  }
  INT_FIELD(s, p, F_AUCTION, "auction", auction_id + FIRST_AUCTION_ID);
  if (WANT(s, F_BIDDER)) {
    PUT_KEY(p, "bidder");
    /* the reference adds FIRST_PERSON_ID twice to a bidder (BidGenerator,
     * since 2021): kept, so that the events are its events */
    PUT_INT(p, bidder + 2 * FIRST_PERSON_ID);
  }
  INT_FIELD(s, p, F_PRICE, "price", price);
  STR_FIELD(s, p, F_CHANNEL, "channel", channel, channel_len);
  STR_FIELD(s, p, F_URL, "url", url->s, url->len);
  INT_FIELD(s, p, F_DATE_TIME, "date_time", ts);
  if (!WANT(s, F_EXTRA)) return p;
  PUT_KEY(p, "extra");
  return put_extra(p, r, x);
}

/* ---- the source ---------------------------------------------------------------- */

static int events_open(td_ctx_t *ctx, const char *cfg, size_t len, void **state) {
  const td_info_t *info = T->info(ctx);
  nx_t *s = calloc(1, sizeof *s);
  if (!s) return T->error(ctx, TD_ENOMEM, "out of memory");
  int rc = read_config(ctx, cfg, len, s);
  if (rc) { /* close is for opened instances only */
    free(s);
    return rc;
  }
  for (int k = 0; k < 3; k++)
    if ((s->kinds >> k & 1) && !(s->fields & KIND_FIELDS[k])) {
      free(s);
      return T->error(ctx, TD_EINVAL, "config field 'fields' lists no field of the %s events it emits",
                      KIND_NAMES[k]);
    }
  *state = s;
  nxcfg_t *c = &s->c;
  s->total = c->person_proportion + c->auction_proportion + c->bid_proportion;
  s->events_ahead = c->num_in_flight_auctions * s->total / c->auction_proportion;
  s->delay_us = 1000000.0 / (double)c->rate * 1.0; /* x numEventGenerators: one timeline */
  s->seed_mix = (uint64_t)c->seed * 0x9E3779B97F4A7C15ULL;
  int64_t avg = c->avg_person_byte_size;
  if (c->avg_auction_byte_size > avg) avg = c->avg_auction_byte_size;
  if (c->avg_bid_byte_size > avg) avg = c->avg_bid_byte_size;
  /* the fields (under 400 bytes) and an extra of at most 1.2 x avg */
  s->max_record = 512 + (size_t)avg + (size_t)avg / 4;
  s->subtask = info->subtask;
  s->step = info->parallelism;
  s->next = info->subtask;
  s->end = c->events ? c->events : INT64_MAX;
  s->step_q = s->step / s->total;
  s->step_r = s->step % s->total;
  s->cur = locate(s, c->first_event_number + s->next);
  return 0;
}

static void events_close(td_ctx_t *ctx, void *state) {
  (void)ctx;
  free(state);
}

static int events_read(td_ctx_t *ctx, void *state, td_out_t *out) {
  nx_t *s = state;
  int in_order = s->c.out_of_order_group_size == 1, rc = 0;
  int64_t next = s->next; /* s->next and s->cur in registers while looping */
  ev_t cur = s->cur;
  while (out->n < out->max && next < s->end) {
    int64_t n = next, number;
    ev_t e;
    next = n <= s->end - s->step ? n + s->step : s->end;
    if (in_order) { /* the next id from this one, without a division */
      number = s->c.first_event_number + n;
      e = cur;
      cur.id += s->step;
      cur.epoch += s->step_q;
      cur.off += s->step_r;
      if (cur.off >= s->total) {
        cur.off -= s->total;
        cur.epoch++;
      }
    } else {
      number = adjusted_number(s, n);
      e = locate(s, number);
    }
    int kind = kind_of(s, &e);
    if (!(s->kinds >> kind & 1)) continue;
    if (td_buf_reserve(&out->buf, s->max_record)) {
      rc = T->error(ctx, TD_ENOMEM, "out of memory");
      break;
    }
    jrand_t r;
    jr_seed(&r, (uint64_t)e.id + s->seed_mix);
    int64_t ts = timestamp_for(s, number);
    unsigned char *p = (unsigned char *)out->buf.data + out->buf.len;
    p = kind == BID       ? bid(s, p, &e, ts, &r)
        : kind == AUCTION ? auction(s, p, &e, number, ts, &r)
                          : person(s, p, &e, ts, &r);
    out->buf.len = (size_t)(p - (unsigned char *)out->buf.data);
    if ((rc = td_out_end(out, ts)) != 0) break;
  }
  s->next = next;
  s->cur = cur;
  if (rc) return rc;
  return next >= s->end ? TD_SOURCE_END : TD_SOURCE_MORE;
}

/* the position: the subtask's next event number */
static int events_snapshot(td_ctx_t *ctx, void *state, td_buf_t *out) {
  (void)ctx;
  return td_mp_put_int(out, ((nx_t *)state)->next);
}

static int events_restore(td_ctx_t *ctx, void *state, const char *data, size_t len) {
  nx_t *s = state;
  if (len == 0) return 0; /* another parallelism's subtask that had none */
  td_mp_item_t it;
  if (td_mp_read(&data, data + len, &it) != 0 || it.type != TD_MP_INT || it.v.i < 0)
    return T->error(ctx, TD_ECORRUPT, "bad position in the snapshot");
  if (it.v.i % s->step != s->subtask && it.v.i < s->end)
    return T->error(ctx, TD_ECORRUPT,
                    "the snapshot's position (event %" PRId64 ") is not an event of subtask %d of %" PRId64,
                    it.v.i, s->subtask, s->step);
  s->next = it.v.i;
  s->cur = locate(s, s->c.first_event_number + s->next);
  return 0;
}

/* ---- registration ------------------------------------------------------------------ */

static int init(td_module_t *m, const td_api_t *api) {
  T = api;
  build_tables();
  const td_op_t op = {.size = sizeof(td_op_t), .kind = TD_OP_SOURCE, .name = "events",
                      .open = events_open, .close = events_close, .read = events_read,
                      .snapshot = events_snapshot, .restore = events_restore};
  return api->register_op(m, &op);
}

TIDE_MODULE("nexmark", "1.0", init);
