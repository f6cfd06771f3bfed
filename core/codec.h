/*
 * codec.h - the record encoding: MessagePack for Lua values.
 *
 * Records cross task boundaries as MessagePack (https://msgpack.org/) in
 * exchange buffers; key bytes for key groups are the canonical encoding of
 * the key. Supported Lua values: nil, booleans, integers (kept as integers:
 * Lua 5.4 integer subtype <-> msgpack int), floats (always float64),
 * strings (binary-safe, written as msgpack str; bin is accepted on decode),
 * and tables, nested. A table whose keys are exactly 1..n (n >= 1) is an
 * array; any other table is a map (the empty table is written as an empty
 * array). Functions, userdata, threads and light userdata cannot be
 * encoded, nor tables nested deeper than TD_CODEC_MAX_DEPTH (which also
 * catches cycles).
 */
#ifndef TD_CODEC_H
#define TD_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "luacompat.h"

#include "wbuf.h"

#define TD_CODEC_MAX_DEPTH 64

/*
 * td_codec_encode - append the MessagePack encoding of the Lua value at
 * stack index `idx` to `out`.
 * canonical: non-zero gives every value exactly one byte string, whatever
 *   the VM, the insertion order of its tables or their place in memory
 *   (used for key bytes / key groups): map entries are sorted by encoded
 *   key bytes, and entries whose keys encode alike (two distinct tables
 *   with equal contents as keys of one table) by their value bytes after
 *   that, so entries that tie on both are byte-identical and their order
 *   does not matter; floats that hold an integral value in int64 range are
 *   written as integers; every NaN is written as the one quiet NaN
 *   7ff8000000000000. Zero writes maps in lua_next order and floats as
 *   their bits (records).
 * Returns 0; TD_ECODEC for a value that cannot be encoded (on error `out`
 * is left at its original length and, if `err` is non-NULL, a message such
 * as "cannot encode a function value" is written to err, errlen bytes at
 * most); TD_ENOMEM. Uses at most a few Lua stack slots; does not raise
 * Lua errors except on Lua memory errors.
 */
int td_codec_encode(lua_State *L, int idx, td_wbuf_t *out, int canonical,
                    char *err, size_t errlen);

/*
 * td_codec_hole - the light userdata value that td_codec_encode writes as
 * hole n (0 <= n < TD_ASNAP_MAX_HOLES) of a fork-free snapshot
 * (asyncsnap.h: a fixext 1 of type TD_ASNAP_HOLE_EXT holding n, filled in
 * by the snapshot's asynchronous part); NULL for another n. The decoder
 * rejects holes. Any other light userdata cannot be encoded.
 */
void *td_codec_hole(int n);

/*
 * td_codec_decode - decode one value from p[*off .. len) and push it on the
 * Lua stack; *off advances past it.
 * Returns 0, or TD_ECORRUPT for malformed or truncated input (nothing is
 * pushed and *off is unchanged). Raises only on Lua memory errors.
 */
int td_codec_decode(lua_State *L, const char *p, size_t len, size_t *off);

/*
 * td_codec_cache_t - short strings (fixstr, 1 to 31 bytes) decoded lately,
 * held in Lua stack slots, for decoding the records of a batch: records of
 * one batch mostly share their shape, and a string found in the cache is
 * pushed from its slot instead of being hashed and interned again by
 * lua_pushlstring. The cache only saves work: the values decoded are the
 * same as td_codec_decode's. It belongs to one lua_State and one C call.
 */
#define TD_CODEC_CACHE_BITS 6
#define TD_CODEC_CACHE_SLOTS (1 << TD_CODEC_CACHE_BITS)

typedef struct td_codec_cache {
  int base;                                /* stack index of slot 0 */
  unsigned char n[TD_CODEC_CACHE_SLOTS];   /* byte length, 255: empty */
  const char *p[TD_CODEC_CACHE_SLOTS];     /* bytes of the slot's string */
} td_codec_cache_t;

/*
 * td_codec_cache_init - push the cache's TD_CODEC_CACHE_SLOTS slots (nils)
 * on the Lua stack and make room for one decoded value above them. Raises
 * on stack overflow. td_codec_cache_destroy(L, c) pops the slots and
 * everything above them (the stack top goes back to where init found it).
 */
void td_codec_cache_init(lua_State *L, td_codec_cache_t *c);
void td_codec_cache_destroy(lua_State *L, td_codec_cache_t *c);

/*
 * td_codec_decode_cached - td_codec_decode through cache c (initialized on
 * L, its slots still on the stack below the values decoded). Same values,
 * same errors as td_codec_decode.
 */
int td_codec_decode_cached(lua_State *L, td_codec_cache_t *c, const char *p,
                           size_t len, size_t *off);

/*
 * td_codec_reuse_t - decoding a record into the table that held the record
 * decoded at the same place of the previous batch (object reuse, as
 * Flink's enableObjectReuse, for consumers that borrow their input: they
 * keep no reference to a record table and change none). A record that is
 * a map whose keys are byte for byte, in order, the keys its table was
 * last decoded with (fixstr keys, TD_CODEC_SHAPE_MAX bytes in all at
 * most) gets its values written into that table: no table is created, no
 * key is inserted. Any other record gets a new table, and the shape of
 * its keys is recorded for the next time.
 *   shape  the slot's record of its table's keys: shape[0] the byte count
 *          (TD_CODEC_SHAPE_NONE: no table of known keys), then the keys'
 *          bytes (headers included)
 *   tidx, i  the table holding the slot's tables (stack index) and the
 *          slot's index in it
 */
#define TD_CODEC_SHAPE_MAX 63
#define TD_CODEC_SHAPE_NONE 255
typedef struct td_codec_reuse {
  unsigned char *shape; /* TD_CODEC_SHAPE_MAX + 1 bytes */
  int tidx;
  lua_Integer i;
  int reused;           /* out: the value pushed is the slot's table */
} td_codec_reuse_t;

/*
 * td_codec_decode_reuse - td_codec_decode_cached, with the record decoded
 * into the slot's table of r when its keys allow (see above); the value
 * pushed is that table (r->reused = 1) or a new value, and r->shape is
 * updated. Same values (as seen by a borrower), same errors.
 */
int td_codec_decode_reuse(lua_State *L, td_codec_cache_t *c, td_codec_reuse_t *r,
                          const char *p, size_t len, size_t *off);

/*
 * td_codec_decode_into - decode every value in p[0 .. len) into the table at
 * stack index `tidx`, at positions 1..n, and return n (>= 0), or
 * TD_ECORRUPT. Entries of the table after n are left as they were.
 */
int td_codec_decode_into(lua_State *L, int tidx, const char *p, size_t len);

#endif
