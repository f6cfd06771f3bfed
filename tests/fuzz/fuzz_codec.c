/*
 * fuzz_codec.c - libFuzzer target for the record codec (core/codec.c).
 *
 * Property, for arbitrary bytes:
 *  - td_codec_decode either fails with TD_ECORRUPT leaving the stack and
 *    the offset as they were, or pushes one value v1;
 *  - v1 encodes (record encoding) and the bytes decode to v2, deeply equal
 *    to v1 (an independent Lua comparison: integers and floats told apart,
 *    NaN equal to NaN, tables as keys matched by contents);
 *  - the canonical encodings of v1 and v2 are the same bytes, decoding
 *    them and encoding canonically again gives them back (a fixed point),
 *    and the same input decoded in a second VM (other addresses, other
 *    hash seed) encodes canonically to the same bytes: one key, one byte
 *    string, one key group;
 *  - td_codec_decode_into (which decodes through a string cache) agrees
 *    with decoding value after value, value for value.
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "../core/deq.h"
#include "codec.h"
#include "error.h"
#include "fuzz.h"


/* A fresh VM per input (closed at its end, so libFuzzer sees every
 * allocation freed and only a real leak as one). */
static lua_State *new_vm(void) {
  lua_State *L = luaL_newstate();
  FUZZ_CHECK(L != NULL, "out of memory");
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
  lua_settop(L, 0);
  FUZZ_CHECK(luaL_dostring(L, DEQ_LUA) == LUA_OK, "%s", lua_tostring(L, -1));
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.deq");
  return L;
}

/* Encodes the value at idx into b (emptied first); the encoding must
 * succeed and leave the stack as it was. */
static void encode(lua_State *L, int idx, td_wbuf_t *b, int canonical) {
  char err[256] = "";
  int top = lua_gettop(L);
  b->len = 0;
  int rc = td_codec_encode(L, idx, b, canonical, err, sizeof err);
  FUZZ_CHECK(rc == 0, "a decoded value does not encode (canonical %d): %s",
             canonical, err);
  FUZZ_CHECK(lua_gettop(L) == top, "encode moved the stack top");
}

/* Decodes all of b, which must hold exactly one value; pushes it. */
static void decode_whole(lua_State *L, const td_wbuf_t *b, const char *what) {
  size_t off = 0;
  int rc = td_codec_decode(L, b->data, b->len, &off);
  FUZZ_CHECK(rc == 0, "the %s encoding does not decode (%d)", what, rc);
  FUZZ_CHECK(off == b->len, "the %s encoding decodes to %zu of %zu bytes",
             what, off, b->len);
}

static int same(const td_wbuf_t *a, const td_wbuf_t *b) {
  return a->len == b->len && (a->len == 0 || !memcmp(a->data, b->data,
                                                     a->len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = new_vm(), *vm2 = NULL;
  const char *p = (const char *)data;
  size_t off = 0;
  int rc = td_codec_decode(L, p, size, &off);
  if (rc) {
    FUZZ_CHECK(rc == TD_ECORRUPT, "decode returned %d", rc);
    FUZZ_CHECK(lua_gettop(L) == 0 && off == 0, "a failed decode moved "
               "the stack (%d) or the offset (%zu)", lua_gettop(L), off);
  } else {
    FUZZ_CHECK(off > 0 && off <= size && lua_gettop(L) == 1,
               "decode: offset %zu of %zu, stack %d", off, size,
               lua_gettop(L));
    td_wbuf_t rec = {0}, c1 = {0}, c2 = {0};
    encode(L, 1, &rec, 0);
    decode_whole(L, &rec, "record"); /* v2 at 2 */
    lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.deq");
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 1);
    FUZZ_CHECK(lua_toboolean(L, -1), "decode(encode(v)) differs from v");
    lua_pop(L, 1);

    encode(L, 1, &c1, 1);
    encode(L, 2, &c2, 1);
    FUZZ_CHECK(same(&c1, &c2), "v and decode(encode(v)) have different "
               "canonical bytes (%zu and %zu bytes)", c1.len, c2.len);
    decode_whole(L, &c1, "canonical"); /* v3 at 3 */
    encode(L, 3, &c2, 1);
    FUZZ_CHECK(same(&c1, &c2), "canonical bytes are not a fixed point");

    vm2 = new_vm();
    size_t off2 = 0;
    FUZZ_CHECK(td_codec_decode(vm2, p, size, &off2) == 0 && off2 == off,
               "a second VM decodes the input differently");
    encode(vm2, 1, &c2, 1);
    FUZZ_CHECK(same(&c1, &c2), "the canonical bytes depend on the VM");
    lua_close(vm2);
    td_wbuf_destroy(&rec);
    td_wbuf_destroy(&c1);
    td_wbuf_destroy(&c2);
  }

  /* decode_into (through the string cache): all values, deeply equal to
   * those decoded value after value, or TD_ECORRUPT when any one is bad */
  lua_settop(L, 0);
  lua_newtable(L);
  size_t n = 0, o = 0;
  int bad = 0;
  while (o < size) {
    if (td_codec_decode(L, p, size, &o) != 0) {
      bad = 1;
      break;
    }
    lua_rawseti(L, 1, (lua_Integer)++n);
  }
  lua_newtable(L);
  int got = td_codec_decode_into(L, 2, p, size);
  if (bad) {
    FUZZ_CHECK(got == TD_ECORRUPT, "decode_into gave %d for bad input", got);
  } else {
    FUZZ_CHECK(got >= 0 && (size_t)got == n,
               "decode_into gave %d, value after value %zu", got, n);
    lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.deq");
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 1);
    FUZZ_CHECK(lua_toboolean(L, -1),
               "decode_into differs from decoding value after value");
  }
  lua_close(L);
  return 0;
}
