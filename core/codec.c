/*
 * codec.c - MessagePack encoding and decoding of Lua values (see codec.h).
 *
 * Hand-written for the record path: the encoder appends straight into a
 * td_wbuf (one reserve per scalar, memcpy for strings, big-endian stores
 * through byte swaps) and allocates nothing per value; the decoder reads
 * through a pointer pair and pushes values straight on the Lua stack.
 *
 * Maps are written with a one-byte (fixmap) header placeholder and their
 * entries counted on the way; a map of 16 entries or more moves its body
 * once to make room for the map16/map32 header. Tables with a positive
 * length are first tried as arrays in lua_next order (which visits the
 * array part in index order); if that fails an exact check decides between
 * array and map. Canonical maps are encoded entry by entry into the output,
 * then sorted by key bytes (value bytes on ties) through scratch space past
 * the buffer's length.
 *
 * Decoding: uint64 values above INT64_MAX have no Lua integer and come back
 * as floats (lua_Number). bin8/16/32 decode to Lua strings. ext types and
 * the never-used byte 0xc1 are rejected as corrupt, as are map keys that
 * decode to nil or NaN.
 */
#include "codec.h"

#include "asyncsnap.h"

#include "alloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luacompat.h"

#include "error.h"
#include "msgpack.h"

_Static_assert(sizeof(lua_Integer) == 8, "lua_Integer must be 64 bits");
_Static_assert(sizeof(lua_Number) == 8, "lua_Number must be a double");

#define MAP_SORT_INLINE 16 /* canonical map entries indexed on the C stack */

#if defined(__GNUC__) || defined(__clang__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define NOINLINE __attribute__((noinline))
#else
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#define NOINLINE
#endif

/* ---- big-endian loads and stores ---------------------------------------- */

#if (defined(__GNUC__) || defined(__clang__)) && \
    defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define BE16(x) __builtin_bswap16(x)
#define BE32(x) __builtin_bswap32(x)
#define BE64(x) __builtin_bswap64(x)
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define BE16(x) (x)
#define BE32(x) (x)
#define BE64(x) (x)
#endif

#ifdef BE16
static inline void put16(unsigned char *p, uint16_t v) {
  v = BE16(v);
  memcpy(p, &v, 2);
}
static inline void put32(unsigned char *p, uint32_t v) {
  v = BE32(v);
  memcpy(p, &v, 4);
}
static inline void put64(unsigned char *p, uint64_t v) {
  v = BE64(v);
  memcpy(p, &v, 8);
}
static inline uint16_t get16(const unsigned char *p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return BE16(v);
}
static inline uint32_t get32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return BE32(v);
}
static inline uint64_t get64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return BE64(v);
}
#else
static inline void put16(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)(v >> 8);
  p[1] = (unsigned char)v;
}
static inline void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}
static inline void put64(unsigned char *p, uint64_t v) {
  put32(p, (uint32_t)(v >> 32));
  put32(p + 4, (uint32_t)v);
}
static inline uint16_t get16(const unsigned char *p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t get32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t get64(const unsigned char *p) {
  return ((uint64_t)get32(p) << 32) | get32(p + 4);
}
#endif

/* reserve - td_wbuf_reserve with the common case inline. */
static inline int reserve(td_wbuf_t *b, size_t extra) {
  if (LIKELY(b->cap - b->len >= extra)) return 0;
  return td_wbuf_reserve(b, extra);
}

/* ---- encoding ----------------------------------------------------------- */

/* The light userdata values td_codec_hole hands out. */
static const char holes[TD_ASNAP_MAX_HOLES];

typedef struct enc {
  lua_State *L;
  td_wbuf_t *out;
  int canonical;
  char *err;
  size_t errlen;
} enc_t;

/* One canonical map entry: key then value bytes at out offset `off`. */
typedef struct map_entry {
  size_t off;  /* offset of the key in out->data while encoding */
  size_t klen; /* key bytes */
  size_t elen; /* key + value bytes */
  const unsigned char *k; /* the entry's copy in scratch space, for sorting */
} map_entry_t;

static int enc_value(enc_t *e, int idx, int depth);
static inline int enc_typed(enc_t *e, int idx, int type, int depth);

static int enc_error(enc_t *e, const char *msg, const char *arg) {
  if (e->err && e->errlen) {
    if (arg) snprintf(e->err, e->errlen, msg, arg);
    else snprintf(e->err, e->errlen, "%s", msg);
  }
  return TD_ECODEC;
}

/* put_int - write v in the smallest msgpack int format (at most 9 bytes);
 * returns the byte count. */
static inline size_t put_int(unsigned char *p, int64_t v) {
  if (v >= 0) {
    if (v < 128) {
      p[0] = (unsigned char)v;
      return 1;
    }
    if (v < 256) {
      p[0] = 0xcc;
      p[1] = (unsigned char)v;
      return 2;
    }
    if (v < 65536) {
      p[0] = 0xcd;
      put16(p + 1, (uint16_t)v);
      return 3;
    }
    if (v <= (int64_t)UINT32_MAX) {
      p[0] = 0xce;
      put32(p + 1, (uint32_t)v);
      return 5;
    }
    p[0] = 0xcf;
    put64(p + 1, (uint64_t)v);
    return 9;
  }
  if (v >= -32) {
    p[0] = (unsigned char)(0xe0 | (v & 0x1f));
    return 1;
  }
  if (v >= -128) {
    p[0] = 0xd0;
    p[1] = (unsigned char)(uint8_t)v;
    return 2;
  }
  if (v >= -32768) {
    p[0] = 0xd1;
    put16(p + 1, (uint16_t)(int16_t)v);
    return 3;
  }
  if (v >= INT32_MIN) {
    p[0] = 0xd2;
    put32(p + 1, (uint32_t)(int32_t)v);
    return 5;
  }
  p[0] = 0xd3;
  put64(p + 1, (uint64_t)v);
  return 9;
}

/* float_to_int - does d hold an integral value in int64 range? */
static inline int float_to_int(double d, int64_t *i) {
  /* -2^63 <= d < 2^63; NaN fails both comparisons */
  if (d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
    int64_t v = (int64_t)d;
    if ((double)v == d) {
      *i = v;
      return 1;
    }
  }
  return 0;
}

/* put_header - a str/array/map header: fix form (fix | n, for n < fixmax),
 * then the 8 (str only, op8 != 0), 16 and 32-bit forms. */
static inline size_t put_header(unsigned char *p, size_t n, unsigned fix,
                                size_t fixmax, unsigned op8, unsigned op16,
                                unsigned op32) {
  if (n < fixmax) {
    p[0] = (unsigned char)(fix | n);
    return 1;
  }
  if (op8 && n < 256) {
    p[0] = (unsigned char)op8;
    p[1] = (unsigned char)n;
    return 2;
  }
  if (n < 65536) {
    p[0] = (unsigned char)op16;
    put16(p + 1, (uint16_t)n);
    return 3;
  }
  p[0] = (unsigned char)op32;
  put32(p + 1, (uint32_t)n);
  return 5;
}

static size_t map_header_len(size_t n) {
  return n < 16 ? 1 : n < 65536 ? 3 : 5;
}

/* Entries in key byte order; entries whose keys encode alike (distinct
 * tables with equal contents) in value byte order, so that the order
 * never depends on where the VM's hash part holds them. Keys are whole
 * MessagePack values, so no key's bytes are a proper prefix of another's
 * and the tie-break only runs for equal key bytes. */
static int cmp_entries(const void *a, const void *b) {
  const map_entry_t *x = a, *y = b;
  size_t n = x->klen < y->klen ? x->klen : y->klen;
  int c = memcmp(x->k, y->k, n);
  if (c) return c;
  if (x->klen != y->klen) return (x->klen > y->klen) - (x->klen < y->klen);
  size_t xv = x->elen - x->klen, yv = y->elen - y->klen;
  c = memcmp(x->k + x->klen, y->k + y->klen, xv < yv ? xv : yv);
  if (c) return c;
  return (xv > yv) - (xv < yv);
}

/* enc_map_canonical - the table at idx as a map with entries sorted by
 * encoded key bytes. */
static NOINLINE int enc_map_canonical(enc_t *e, int idx, int depth) {
  lua_State *L = e->L;
  td_wbuf_t *out = e->out;
  map_entry_t inline_ents[MAP_SORT_INLINE];
  map_entry_t *ents = inline_ents;
  size_t cap = MAP_SORT_INLINE, n = 0;
  int rc;

  if ((rc = reserve(out, 1))) return rc;
  size_t hpos = out->len++; /* header placeholder */
  size_t body = out->len;
  int top = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (n == cap) {
      map_entry_t *ne;
      if (ents == inline_ents) {
        ne = td_malloc(2 * cap * sizeof *ne);
        if (ne) memcpy(ne, inline_ents, sizeof inline_ents);
      } else {
        ne = td_realloc(ents, 2 * cap * sizeof *ne);
      }
      if (!ne) {
        rc = TD_ENOMEM;
        goto fail;
      }
      ents = ne;
      cap *= 2;
    }
    map_entry_t *en = &ents[n++];
    en->off = out->len;
    if ((rc = enc_value(e, top + 1, depth))) goto fail;
    en->klen = out->len - en->off;
    if ((rc = enc_value(e, top + 2, depth))) goto fail;
    en->elen = out->len - en->off;
    lua_pop(L, 1);
  }
  if (n == 0) {
    out->data[hpos] = (char)0x90; /* the empty table is an empty array */
    return 0;
  }

  /* Copy the body to scratch space past the (possibly grown) header, then
   * write the entries back in key order after the final header. */
  size_t blen = out->len - body;
  if ((rc = reserve(out, blen + 4))) goto fail;
  unsigned char *scratch = (unsigned char *)out->data + out->len + 4;
  memcpy(scratch, out->data + body, blen);
  for (size_t i = 0; i < n; i++) ents[i].k = scratch + (ents[i].off - body);
  if (n <= MAP_SORT_INLINE) {
    for (size_t i = 1; i < n; i++) { /* insertion sort */
      map_entry_t t = ents[i];
      size_t j = i;
      while (j > 0 && cmp_entries(&ents[j - 1], &t) > 0) {
        ents[j] = ents[j - 1];
        j--;
      }
      ents[j] = t;
    }
  } else {
    qsort(ents, n, sizeof *ents, cmp_entries);
  }
  unsigned char *p = (unsigned char *)out->data + hpos;
  p += put_header(p, n, 0x80, 16, 0, 0xde, 0xdf);
  for (size_t i = 0; i < n; i++) {
    memcpy(p, ents[i].k, ents[i].elen);
    p += ents[i].elen;
  }
  out->len = (size_t)(p - (unsigned char *)out->data);
  if (ents != inline_ents) td_free(ents);
  return 0;

fail:
  if (ents != inline_ents) td_free(ents);
  return rc; /* the caller restores the stack and out->len */
}

/* copy_small - memcpy(d, s, n) for n < 32, inline: the widest of 8, 4, 2
 * or 1-byte moves that n holds, the last overlapping its predecessor, so
 * that none reads or writes past either end. */
static inline void copy_small(unsigned char *d, const char *s, size_t n) {
  uint64_t x8;
  uint32_t x4;
  uint16_t x2;
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8) memcpy(d + i, (memcpy(&x8, s + i, 8), &x8), 8);
    memcpy(d + n - 8, (memcpy(&x8, s + n - 8, 8), &x8), 8);
  } else if (n >= 4) {
    memcpy(&x4, s + n - 4, 4);
    memcpy(d, s, 4);
    memcpy(d + n - 4, &x4, 4);
  } else if (n >= 2) {
    memcpy(&x2, s + n - 2, 2);
    memcpy(d, s, 2);
    memcpy(d + n - 2, &x2, 2);
  } else if (n) {
    d[0] = (unsigned char)s[0];
  }
}

/* enc_item - enc_typed of the value at idx, with a record's usual fields
 * written inline: short strings (a field name, a word) and integers; any
 * other value, or a buffer short of room, goes through enc_typed. */
static inline __attribute__((always_inline)) int enc_item(enc_t *e, int idx, int depth) {
  lua_State *L = e->L;
  td_wbuf_t *out = e->out;
  int type = lua_type(L, idx);
  if (LIKELY(out->cap - out->len >= 32)) {
    unsigned char *p = (unsigned char *)out->data + out->len;
    if (type == LUA_TSTRING) {
      size_t n;
      const char *str = lua_tolstring(L, idx, &n);
      if (LIKELY(n < 32)) {
        p[0] = (unsigned char)(0xa0 | n);
        copy_small(p + 1, str, n);
        out->len += n + 1;
        return 0;
      }
    } else if (type == LUA_TNUMBER && lua_isinteger(L, idx)) {
      out->len += put_int(p, (int64_t)lua_tointeger(L, idx));
      return 0;
    }
  }
  return enc_typed(e, idx, type, depth);
}

/* enc_map - the table at idx as a map, in lua_next order. With `pushed`,
 * lua_next already pushed its first entry: top is the stack top below it. */
static int enc_map(enc_t *e, int idx, int depth, int pushed, int top) {
  lua_State *L = e->L;
  td_wbuf_t *out = e->out;
  size_t n = 0;
  int rc;

  if ((rc = reserve(out, 1))) return rc;
  size_t hpos = out->len++; /* header placeholder, fixmap assumed */
  if (!pushed) {
    top = lua_gettop(L);
    lua_pushnil(L);
    if (!lua_next(L, idx)) goto done;
  }
  do {
    if ((rc = enc_item(e, top + 1, depth))) return rc;
    if ((rc = enc_item(e, top + 2, depth))) return rc;
    lua_settop(L, top + 1);
    n++;
  } while (lua_next(L, idx));
done:
  if (LIKELY(n < 16)) {
    out->data[hpos] = (char)(n ? 0x80 | n : 0x90); /* {} is an array */
    return 0;
  }
  size_t hlen = map_header_len(n);
  if ((rc = reserve(out, hlen - 1))) return rc;
  unsigned char *p = (unsigned char *)out->data + hpos;
  memmove(p + hlen, p + 1, out->len - hpos - 1);
  put_header(p, n, 0x80, 16, 0, 0xde, 0xdf);
  out->len += hlen - 1;
  return 0;
}

/* is_array - are the keys of the table at idx exactly 1..n? */
static int is_array(lua_State *L, int idx, lua_Unsigned n) {
  lua_Unsigned count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (!lua_isinteger(L, -2) || (lua_Unsigned)lua_tointeger(L, -2) - 1 >= n ||
        ++count > n) {
      lua_pop(L, 2);
      return 0;
    }
    lua_pop(L, 1);
  }
  return count == n;
}

/* enc_elements - the values of t[from..n] of the array at idx. */
static int enc_elements(enc_t *e, int idx, lua_Integer from, lua_Unsigned n,
                        int depth) {
  lua_State *L = e->L;
  int rc;
  for (lua_Integer k = from; (lua_Unsigned)k <= n; k++) {
    lua_rawgeti(L, idx, k);
    if ((rc = enc_value(e, lua_gettop(L), depth))) return rc;
    lua_pop(L, 1);
  }
  return 0;
}

static int enc_table(enc_t *e, int idx, int depth) {
  lua_State *L = e->L;
  td_wbuf_t *out = e->out;
  int rc;

  if (UNLIKELY(depth >= TD_CODEC_MAX_DEPTH))
    return enc_error(e, "table nesting too deep (or a cycle)", NULL);
  if (UNLIKELY(!lua_checkstack(L, 3))) return TD_ENOMEM;
  depth++;

  if (!e->canonical) {
    /* A first key that is not an integer makes a map (records are maps
     * with string keys): encode it from that entry on, with no lua_rawlen
     * and no second lua_next from the start. */
    int top = lua_gettop(L);
    lua_pushnil(L);
    if (!lua_next(L, idx)) { /* the empty table is an empty array */
      if ((rc = reserve(out, 1))) return rc;
      out->data[out->len++] = (char)0x90;
      return 0;
    }
    if (!lua_isinteger(L, top + 1)) return enc_map(e, idx, depth, 1, top);
    lua_settop(L, top);
  }
  lua_Unsigned n = lua_rawlen(L, idx);
  if (n == 0) /* an empty table or a map */
    return e->canonical ? enc_map_canonical(e, idx, depth)
                        : enc_map(e, idx, depth, 0, 0);
  if (n > UINT32_MAX) goto map;

  /* Try the keys in lua_next order as 1, 2, ..., n: one pass for arrays
   * held in the table's array part. What a failed try encoded is thrown
   * away, so it only ever throws away scalars: at the first element that
   * is a table, the table is checked to be an array (and encoded as one
   * from there, by index) or not (a map). Otherwise tables such as
   * {child, x = 1}, nested, would encode each child twice per level,
   * 2^depth times in all. */
  size_t start = out->len;
  if ((rc = reserve(out, 5))) return rc;
  out->len += put_header((unsigned char *)out->data + out->len, n, 0x90, 16,
                         0, 0xdc, 0xdd);
  int top = lua_gettop(L);
  lua_Integer i = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) != i + 1 ||
        (lua_Unsigned)i >= n) {
      lua_settop(L, top);
      out->len = start;
      goto slow;
    }
    if (UNLIKELY(lua_type(L, -1) == LUA_TTABLE)) {
      lua_settop(L, top);
      if (!is_array(L, idx, n)) {
        out->len = start;
        goto map;
      }
      return enc_elements(e, idx, i + 1, n, depth);
    }
    if ((rc = enc_value(e, top + 2, depth))) return rc;
    lua_pop(L, 1);
    i++;
  }
  if ((lua_Unsigned)i == n) return 0;
  out->len = start;

slow:
  /* Out of order (keys in the hash part) or not an array. */
  if (is_array(L, idx, n)) {
    if ((rc = reserve(out, 5))) return rc;
    out->len += put_header((unsigned char *)out->data + out->len, n, 0x90,
                           16, 0, 0xdc, 0xdd);
    return enc_elements(e, idx, 1, n, depth);
  }
map:
  return e->canonical ? enc_map_canonical(e, idx, depth)
                      : enc_map(e, idx, depth, 0, 0);
}

/* enc_typed - append the value at absolute index idx, of Lua type `type`;
 * depth counts the tables it is nested in. On error the caller restores
 * the stack top and out->len. */
static inline int enc_typed(enc_t *e, int idx, int type, int depth) {
  lua_State *L = e->L;
  td_wbuf_t *out = e->out;
  unsigned char *p;
  int rc;

  switch (type) {
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (UNLIKELY(n > UINT32_MAX))
      return enc_error(e, "cannot encode a string longer than 4 GiB", NULL);
    if ((rc = reserve(out, n + 5))) return rc;
    p = (unsigned char *)out->data + out->len;
    p += put_header(p, n, 0xa0, 32, 0xd9, 0xda, 0xdb);
    memcpy(p, s, n);
    out->len = (size_t)(p - (unsigned char *)out->data) + n;
    return 0;
  }
  case LUA_TNUMBER: {
    int64_t i;
    if ((rc = reserve(out, 9))) return rc;
    p = (unsigned char *)out->data + out->len;
    if (lua_isinteger(L, idx)) {
      out->len += put_int(p, (int64_t)lua_tointeger(L, idx));
      return 0;
    }
    double d = (double)lua_tonumber(L, idx);
    if (e->canonical && float_to_int(d, &i)) {
      out->len += put_int(p, i);
      return 0;
    }
    uint64_t bits;
    memcpy(&bits, &d, 8);
    if (e->canonical && d != d) bits = 0x7ff8000000000000u; /* one NaN */
    p[0] = 0xcb;
    put64(p + 1, bits);
    out->len += 9;
    return 0;
  }
  case LUA_TTABLE:
    return enc_table(e, idx, depth);
  case LUA_TBOOLEAN:
  case LUA_TNIL:
    if ((rc = reserve(out, 1))) return rc;
    out->data[out->len++] =
        (char)(lua_isnil(L, idx) ? 0xc0 : lua_toboolean(L, idx) ? 0xc3 : 0xc2);
    return 0;
  case LUA_TLIGHTUSERDATA: {
    /* a snapshot's hole (asyncsnap.h): fixext 1 of the hole type */
    const char *h = lua_touserdata(L, idx);
    if (h >= holes && h < holes + TD_ASNAP_MAX_HOLES) {
      if ((rc = reserve(out, 3))) return rc;
      p = (unsigned char *)out->data + out->len;
      p[0] = 0xd4;
      p[1] = TD_ASNAP_HOLE_EXT;
      p[2] = (unsigned char)(h - holes);
      out->len += 3;
      return 0;
    }
  }
  /* fall through */
  default:
    return enc_error(e, "cannot encode a %s value", lua_typename(L, type));
  }
}

void *td_codec_hole(int n) {
  return n >= 0 && n < TD_ASNAP_MAX_HOLES ? (void *)(holes + n) : NULL;
}

/* enc_value - enc_typed of whatever is at idx. */
static int enc_value(enc_t *e, int idx, int depth) {
  return enc_typed(e, idx, lua_type(e->L, idx), depth);
}

int td_codec_encode(lua_State *L, int idx, td_wbuf_t *out, int canonical,
                    char *err, size_t errlen) {
  enc_t e = {L, out, canonical, err, errlen};
  size_t len0 = out->len;
  int top = lua_gettop(L);
  if (idx < 0 && idx > LUA_REGISTRYINDEX) idx = top + idx + 1; /* absolute */
  int rc = enc_value(&e, idx, 0);
  if (UNLIKELY(rc)) {
    lua_settop(L, top);
    out->len = len0;
    if (rc == TD_ENOMEM && err && errlen) snprintf(err, errlen, "out of memory");
  }
  return rc;
}

/* ---- decoding ----------------------------------------------------------- */

/* The decoder's state: the Lua state, the end of the input and the string
 * cache, if any (NULL: every string is pushed with lua_pushlstring). */
typedef struct dec {
  lua_State *L;
  const unsigned char *end;
  td_codec_cache_t *cache;
  int room; /* the top-level container has stack room (3 slots) already */
  td_codec_reuse_t *reuse; /* the top-level map's slot, or NULL */
} dec_t;

static int dec_value(dec_t *d, const unsigned char **ps, int depth);

/* eq2, eq4, eq8 - are the 2, 4 or 8 bytes at a and b the same? */
static inline int eq2(const void *a, const void *b) {
  uint16_t x, y;
  return memcpy(&x, a, 2), memcpy(&y, b, 2), x == y;
}
static inline int eq4(const void *a, const void *b) {
  uint32_t x, y;
  return memcpy(&x, a, 4), memcpy(&y, b, 4), x == y;
}
static inline int eq8(const void *a, const void *b) {
  uint64_t x, y;
  return memcpy(&x, a, 8), memcpy(&y, b, 8), x == y;
}

/* same_bytes - memcmp(a, b, n) == 0 for 0 < n < 32, inline: loads of the
 * widest of 8, 4, 2 or 1 bytes that n holds, the last one overlapping its
 * predecessor so that none reads past either string. */
static inline int same_bytes(const char *a, const unsigned char *b,
                             size_t n) {
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8)
      if (!eq8(a + i, b + i)) return 0;
    return eq8(a + n - 8, b + n - 8);
  }
  if (n >= 4) return eq4(a, b) && eq4(a + n - 4, b + n - 4);
  if (n >= 2) return eq2(a, b) && eq2(a + n - 2, b + n - 2);
  return (unsigned char)a[0] == b[0];
}

/* push_cached - push the fixstr s[0 .. n) (0 < n < 32) through the cache: a
 * string equal in bytes to the one in its slot is pushed from the slot;
 * otherwise it is pushed and takes the slot. The slot is chosen from the
 * length and the first, middle and last bytes, so a record's keys (and short
 * values such as enum-like strings) usually find themselves there again
 * in the next record of the batch, wherever they sit in it. */
static inline void push_cached(lua_State *L, td_codec_cache_t *c,
                               const unsigned char *s, size_t n) {
  uint32_t x = (uint32_t)s[0] | (uint32_t)s[n >> 1] << 8 |
               (uint32_t)s[n - 1] << 16 | (uint32_t)n << 24;
  int h = (int)((x * 0x85ebca6bu) >> (32 - TD_CODEC_CACHE_BITS));
  if (c->n[h] == n && same_bytes(c->p[h], s, n)) {
    lua_pushvalue(L, c->base + h);
    return;
  }
  lua_pushlstring(L, (const char *)s, n);
  lua_copy(L, -1, c->base + h);
  c->p[h] = lua_tostring(L, -1); /* held alive by the slot */
  c->n[h] = (unsigned char)n;
}

static int dec_array(dec_t *d, const unsigned char **ps, size_t n,
                     int depth) {
  lua_State *L = d->L;
  /* every element takes at least one byte: rejects absurd counts before
   * the table is allocated */
  if (n > (size_t)(d->end - *ps) || depth >= TD_CODEC_MAX_DEPTH)
    return TD_ECORRUPT;
  if (depth || !d->room) luaL_checkstack(L, 3, "decoding nested tables");
  lua_createtable(L, n > INT32_MAX ? 0 : (int)n, 0);
  for (size_t i = 1; i <= n; i++) {
    int rc = dec_value(d, ps, depth + 1);
    if (rc) return rc;
    lua_rawseti(L, -2, (lua_Integer)i);
  }
  return 0;
}

static int dec_map(dec_t *d, const unsigned char **ps, size_t n, int depth) {
  lua_State *L = d->L;
  if (n > (size_t)(d->end - *ps) / 2 || depth >= TD_CODEC_MAX_DEPTH)
    return TD_ECORRUPT;
  if (depth || !d->room) luaL_checkstack(L, 3, "decoding nested tables");
  /* The top-level map of a reused slot goes into the slot's table if its
   * keys are the ones the table was last decoded with: checked key by key
   * while filling; at the first key that differs, the table (which its
   * borrower no longer needs) is left half-filled and the map is decoded
   * again from its start into a new table, whose keys are recorded. */
  td_codec_reuse_t *r = depth ? NULL : d->reuse;
  const unsigned char *start = *ps;
  unsigned char *shape = NULL; /* recording: the keys of a new table */
  const unsigned char *want = NULL; /* checking: the keys of the slot's table */
  size_t at = 0;
  if (r) {
    d->reuse = NULL; /* nested maps are new tables */
    if (r->shape[0] != TD_CODEC_SHAPE_NONE && lua_rawgeti(L, r->tidx, r->i) == LUA_TTABLE) {
      want = r->shape;
    } else {
      if (r->shape[0] != TD_CODEC_SHAPE_NONE) lua_pop(L, 1);
      shape = r->shape;
      shape[0] = TD_CODEC_SHAPE_NONE;
      lua_createtable(L, 0, n > INT32_MAX ? 0 : (int)n);
    }
  } else {
    lua_createtable(L, 0, n > INT32_MAX ? 0 : (int)n);
  }
  for (size_t i = 0; i < n; i++) {
    /* only nil (0xc0) and floats (0xca, 0xcb) can be bad keys */
    unsigned c = *ps < d->end ? **ps : 0;
    int rc;
    size_t kn = c - 0xa1; /* a record's key: a short string, 1 to 31 bytes */
    if (kn < 31 && d->cache && (size_t)(d->end - *ps) > kn + 1) {
      if (want) { /* the slot's table: the same key here? */
        if (at + kn + 2 > want[0] || want[1 + at] != c ||
            !same_bytes((const char *)want + 2 + at, *ps + 1, kn + 1)) {
          lua_pop(L, 1);
          *ps = start;
          r->shape[0] = TD_CODEC_SHAPE_NONE;
          d->reuse = r;
          return dec_map(d, ps, n, depth); /* a new table, recorded */
        }
      } else if (shape) { /* record the key's bytes while they fit */
        if (at + kn + 2 <= TD_CODEC_SHAPE_MAX) memcpy(shape + 1 + at, *ps, kn + 2);
        else shape = NULL;
      }
      at += kn + 2;
      push_cached(L, d->cache, *ps + 1, kn + 1);
      *ps += kn + 2;
    } else {
      if (want) { /* a key that no slot records: a new table */
        lua_pop(L, 1);
        *ps = start;
        r->shape[0] = TD_CODEC_SHAPE_NONE;
        d->reuse = r;
        return dec_map(d, ps, n, depth);
      }
      shape = NULL;
      if ((rc = dec_value(d, ps, depth + 1))) return rc;
    }
    if (UNLIKELY(c == 0xc0)) return TD_ECORRUPT;
    if (UNLIKELY(c == 0xca || c == 0xcb)) {
      lua_Number k = lua_tonumber(L, -1);
      if (k != k) return TD_ECORRUPT; /* NaN */
    }
    if ((rc = dec_value(d, ps, depth + 1))) return rc;
    lua_rawset(L, -3);
  }
  if (want) {
    if (at != want[0]) { /* fewer keys than the table has: a new table */
      lua_pop(L, 1);
      *ps = start;
      r->shape[0] = TD_CODEC_SHAPE_NONE;
      d->reuse = r;
      return dec_map(d, ps, n, depth);
    }
    r->reused = 1;
  } else if (shape) {
    shape[0] = (unsigned char)at;
  }
  return 0;
}

/* dec_value - decode one value at *ps (before d->end) and push it;
 * advances *ps. On error the caller restores the stack top. */
static int dec_value(dec_t *d, const unsigned char **ps, int depth) {
  lua_State *L = d->L;
  const unsigned char *s = *ps;
  size_t n;

  if (UNLIKELY(s >= d->end)) return TD_ECORRUPT;
  unsigned c = *s++;
  size_t avail = (size_t)(d->end - s);

  if (c <= 0x7f) { /* positive fixint */
    lua_pushinteger(L, (lua_Integer)c);
    *ps = s;
    return 0;
  }
  if (c >= 0xe0) { /* negative fixint */
    lua_pushinteger(L, (lua_Integer)c - 256);
    *ps = s;
    return 0;
  }
  if (c >= 0xa0 && c <= 0xbf) { /* fixstr */
    n = c & 0x1f;
    if (d->cache && n) {
      if (UNLIKELY(avail < n)) return TD_ECORRUPT;
      push_cached(L, d->cache, s, n);
      *ps = s + n;
      return 0;
    }
    goto str;
  }
  if (c <= 0x8f) { /* fixmap */
    *ps = s;
    return dec_map(d, ps, c & 0x0f, depth);
  }
  if (c <= 0x9f) { /* fixarray */
    *ps = s;
    return dec_array(d, ps, c & 0x0f, depth);
  }
#define NEED(k)                                                            \
  do {                                                                     \
    if (UNLIKELY(avail < (k))) return TD_ECORRUPT;                         \
  } while (0)

  switch (c) {
  case 0xc0:
    lua_pushnil(L);
    break;
  case 0xc2:
    lua_pushboolean(L, 0);
    break;
  case 0xc3:
    lua_pushboolean(L, 1);
    break;
  case 0xcc:
    NEED(1);
    lua_pushinteger(L, (lua_Integer)s[0]);
    s += 1;
    break;
  case 0xcd:
    NEED(2);
    lua_pushinteger(L, (lua_Integer)get16(s));
    s += 2;
    break;
  case 0xce:
    NEED(4);
    lua_pushinteger(L, (lua_Integer)get32(s));
    s += 4;
    break;
  case 0xcf: {
    NEED(8);
    uint64_t u = get64(s);
    if (u <= (uint64_t)INT64_MAX) lua_pushinteger(L, (lua_Integer)u);
    else lua_pushnumber(L, (lua_Number)u); /* no uint64 in Lua */
    s += 8;
    break;
  }
  case 0xd0:
    NEED(1);
    lua_pushinteger(L, (lua_Integer)(int8_t)s[0]);
    s += 1;
    break;
  case 0xd1:
    NEED(2);
    lua_pushinteger(L, (lua_Integer)(int16_t)get16(s));
    s += 2;
    break;
  case 0xd2:
    NEED(4);
    lua_pushinteger(L, (lua_Integer)(int32_t)get32(s));
    s += 4;
    break;
  case 0xd3:
    NEED(8);
    lua_pushinteger(L, (lua_Integer)(int64_t)get64(s));
    s += 8;
    break;
  case 0xca: {
    NEED(4);
    uint32_t bits = get32(s);
    float f;
    memcpy(&f, &bits, 4);
    lua_pushnumber(L, (lua_Number)f);
    s += 4;
    break;
  }
  case 0xcb: {
    NEED(8);
    uint64_t bits = get64(s);
    double d;
    memcpy(&d, &bits, 8);
    lua_pushnumber(L, (lua_Number)d);
    s += 8;
    break;
  }
  case 0xd9: /* str8 */
  case 0xc4: /* bin8 */
    NEED(1);
    n = s[0];
    s += 1;
    avail -= 1;
    goto str;
  case 0xda: /* str16 */
  case 0xc5: /* bin16 */
    NEED(2);
    n = get16(s);
    s += 2;
    avail -= 2;
    goto str;
  case 0xdb: /* str32 */
  case 0xc6: /* bin32 */
    NEED(4);
    n = get32(s);
    s += 4;
    avail -= 4;
    goto str;
  case 0xdc:
    NEED(2);
    *ps = s + 2;
    return dec_array(d, ps, get16(s), depth);
  case 0xdd:
    NEED(4);
    *ps = s + 4;
    return dec_array(d, ps, get32(s), depth);
  case 0xde:
    NEED(2);
    *ps = s + 2;
    return dec_map(d, ps, get16(s), depth);
  case 0xdf:
    NEED(4);
    *ps = s + 4;
    return dec_map(d, ps, get32(s), depth);
  default: /* 0xc1, ext 0xc7-0xc9, fixext 0xd4-0xd8 */
    return TD_ECORRUPT;
  }
  *ps = s;
  return 0;

str:
  NEED(n);
  lua_pushlstring(L, (const char *)s, n);
  *ps = s + n;
  return 0;
#undef NEED
}

/* decode - decode one value from p[*off .. len) and push it (see
 * td_codec_decode), through cache c if not NULL. */
static inline int decode(lua_State *L, td_codec_cache_t *c, td_codec_reuse_t *r,
                         const char *p, size_t len, size_t *off) {
  if (UNLIKELY(*off >= len)) return TD_ECORRUPT;
  const unsigned char *s = (const unsigned char *)p + *off;
  int top = lua_gettop(L);
  /* the cache's init left room for one value on top of the slots */
  dec_t d = {L, (const unsigned char *)p + len, c,
             c && top == c->base + TD_CODEC_CACHE_SLOTS - 1, r};
  /* a slot whose record is not a map keeps no table of known keys */
  if (r && (*s & 0xf0) != 0x80 && *s != 0xde && *s != 0xdf) r->shape[0] = TD_CODEC_SHAPE_NONE;
  int rc = dec_value(&d, &s, 0);
  if (UNLIKELY(rc)) {
    lua_settop(L, top);
    return rc;
  }
  *off = (size_t)(s - (const unsigned char *)p);
  return 0;
}

int td_codec_decode(lua_State *L, const char *p, size_t len, size_t *off) {
  return decode(L, NULL, NULL, p, len, off);
}

void td_codec_cache_init(lua_State *L, td_codec_cache_t *c) {
  luaL_checkstack(L, TD_CODEC_CACHE_SLOTS + 3, "decoding a batch");
  c->base = lua_gettop(L) + 1;
  lua_settop(L, c->base + TD_CODEC_CACHE_SLOTS - 1); /* nils */
  memset(c->n, 0xff, sizeof c->n); /* no fixstr is 255 bytes long */
}

void td_codec_cache_destroy(lua_State *L, td_codec_cache_t *c) {
  lua_settop(L, c->base - 1);
}

int td_codec_decode_cached(lua_State *L, td_codec_cache_t *c, const char *p,
                           size_t len, size_t *off) {
  return decode(L, c, NULL, p, len, off);
}

int td_codec_decode_reuse(lua_State *L, td_codec_cache_t *c, td_codec_reuse_t *r,
                          const char *p, size_t len, size_t *off) {
  r->reused = 0;
  int rc = decode(L, c, r, p, len, off);
  if (UNLIKELY(rc)) r->shape[0] = TD_CODEC_SHAPE_NONE;
  return rc;
}

int td_codec_decode_into(lua_State *L, int tidx, const char *p, size_t len) {
  if (len == 0) return 0;
  tidx = lua_absindex(L, tidx);
  td_codec_cache_t c;
  td_codec_cache_init(L, &c);
  size_t off = 0;
  lua_Integer n = 0;
  while (off < len) {
    if (UNLIKELY(decode(L, &c, NULL, p, len, &off))) {
      td_codec_cache_destroy(L, &c);
      return TD_ECORRUPT;
    }
    lua_rawseti(L, tidx, ++n);
  }
  td_codec_cache_destroy(L, &c);
  return n > INT32_MAX ? TD_ECORRUPT : (int)n;
}
