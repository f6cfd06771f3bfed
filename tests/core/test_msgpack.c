/*
 * test_msgpack.c - MessagePack without a Lua VM (core/msgpack.h): the
 * writers produce the bytes the MessagePack spec gives (checked against
 * hand-written bytes and against the Lua codec), the reader reads them
 * back, skip lands exactly after every value, and truncated or malformed
 * input is refused.
 */
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "error.h"
#include "msgpack.h"
#include "testlib.h"

static int same(const td_wbuf_t *b, const char *hex) {
  char got[512] = "";
  for (size_t i = 0; i < b->len && 2 * i + 2 < sizeof got; i++)
    snprintf(got + 2 * i, 3, "%02x", (unsigned char)b->data[i]);
  if (strcmp(got, hex) != 0) {
    fprintf(stderr, "  got %s, want %s\n", got, hex);
    return 0;
  }
  return 1;
}

TD_TEST(test_msgpack_write_ints) {
  static const struct {
    int64_t v;
    const char *hex;
  } cases[] = {{0, "00"},
               {127, "7f"},
               {128, "cc80"},
               {255, "ccff"},
               {256, "cd0100"},
               {65535, "cdffff"},
               {65536, "ce00010000"},
               {4294967295LL, "ceffffffff"},
               {4294967296LL, "cf0000000100000000"},
               {-1, "ff"},
               {-32, "e0"},
               {-33, "d0df"},
               {-128, "d080"},
               {-129, "d1ff7f"},
               {-32768, "d18000"},
               {-32769, "d2ffff7fff"},
               {INT32_MIN, "d280000000"},
               {(int64_t)INT32_MIN - 1, "d3ffffffff7fffffff"},
               {INT64_MIN, "d38000000000000000"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    td_wbuf_t b = {0};
    TD_CHECK_INT(td_mp_write_int(&b, cases[i].v), 0);
    TD_CHECK(same(&b, cases[i].hex));
    const char *p = b.data;
    td_mp_item_t it;
    TD_CHECK_INT(td_mp_read(&p, b.data + b.len, &it), 0);
    TD_CHECK_INT(it.type, TD_MP_INT);
    TD_CHECK_INT(it.v.i, cases[i].v);
    TD_CHECK(p == b.data + b.len);
    td_wbuf_destroy(&b);
  }
}

TD_TEST(test_msgpack_write_other_kinds) {
  td_wbuf_t b = {0};
  td_mp_write_nil(&b);
  td_mp_write_bool(&b, 1);
  td_mp_write_bool(&b, 0);
  td_mp_write_float(&b, 1.5);
  td_mp_write_str(&b, "ab", 2);
  td_mp_write_array(&b, 2);
  td_mp_write_map(&b, 1);
  TD_CHECK(same(&b, "c0c3c2cb3ff8000000000000a2616292" "81"));
  b.len = 0;
  char s32[40];
  memset(s32, 'x', sizeof s32);
  td_mp_write_str(&b, s32, 32);
  TD_CHECK(b.len == 34 && (unsigned char)b.data[0] == 0xd9 && b.data[1] == 32);
  b.len = 0;
  td_mp_write_array(&b, 16);
  td_mp_write_map(&b, 70000);
  TD_CHECK(same(&b, "dc0010df00011170"));
  td_wbuf_destroy(&b);
}

/* Every value the Lua codec writes is skipped exactly, and its scalars read
 * as the codec wrote them. */
TD_TEST(test_msgpack_skip_codec_values) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  static const char *const exprs[] = {
      "nil", "true", "42", "-7", "2^40|0", "3.25", "'hello'", "string.rep('y', 70000)",
      "{1, 2, {3, {4, {}}}}", "{a = 1, b = {c = 'd', e = {true, false}}}",
      "{[{1}] = 'table key', x = 1.5}", "math.mininteger", "math.maxinteger"};
  for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
    char chunk[128];
    snprintf(chunk, sizeof chunk, "return %s", exprs[i]);
    TD_CHECK_INT(luaL_dostring(L, chunk), 0);
    td_wbuf_t b = {0};
    TD_CHECK_INT(td_codec_encode(L, -1, &b, 0, NULL, 0), 0);
    /* two copies back to back: skip must stop at the second */
    size_t one = b.len;
    td_wbuf_reserve(&b, one);
    memcpy(b.data + one, b.data, one);
    b.len = 2 * one;
    const char *p = b.data;
    TD_CHECK_INT(td_mp_skip(&p, b.data + b.len), 0);
    TD_CHECK_INT(p - b.data, one);
    TD_CHECK_INT(td_mp_skip(&p, b.data + b.len), 0);
    TD_CHECK(p == b.data + b.len);
    p = b.data; /* the engine's skip too */
    TD_CHECK_INT(td_mp_skip_value(&p, b.data + b.len), 0);
    TD_CHECK_INT(p - b.data, one);
    /* any truncation of one copy is refused, p unchanged */
    for (size_t cut = 0; cut < one && cut < 200; cut++) {
      const char *q = b.data;
      TD_CHECK_INT(td_mp_skip(&q, b.data + cut), TD_ECORRUPT);
      TD_CHECK(q == b.data);
      TD_CHECK_INT(td_mp_skip_value(&q, b.data + cut), TD_ECORRUPT);
      TD_CHECK(q == b.data);
    }
    if (lua_isinteger(L, -1)) {
      td_mp_item_t it;
      p = b.data;
      TD_CHECK_INT(td_mp_read(&p, b.data + one, &it), 0);
      TD_CHECK_INT(it.type, TD_MP_INT);
      TD_CHECK_INT(it.v.i, lua_tointeger(L, -1));
      td_wbuf_t w = {0};
      td_mp_write_int(&w, it.v.i);
      TD_CHECK(w.len == one && memcmp(w.data, b.data, one) == 0);
      td_wbuf_destroy(&w);
    }
    lua_pop(L, 1);
    td_wbuf_destroy(&b);
  }
  lua_close(L);
}

TD_TEST(test_msgpack_map_get) {
  td_wbuf_t b = {0};
  td_mp_write_map(&b, 3);
  td_mp_write_array(&b, 1); /* a table key */
  td_mp_write_int(&b, 1);
  td_mp_write_str(&b, "skip me", 7);
  td_mp_write_str(&b, "word", 4);
  td_mp_write_str(&b, "tide", 4);
  td_mp_write_str(&b, "n", 1);
  td_mp_write_int(&b, 5);
  const char *v = NULL, *end = b.data + b.len;
  TD_CHECK_INT(td_mp_map_get(b.data, end, "word", 4, &v), 1);
  td_mp_item_t it;
  TD_CHECK(v && td_mp_read(&v, end, &it) == 0 && it.type == TD_MP_STR && it.v.s.len == 4 &&
           memcmp(it.v.s.p, "tide", 4) == 0);
  TD_CHECK_INT(td_mp_map_get(b.data, end, "n", 1, &v), 1);
  TD_CHECK(td_mp_read(&v, end, &it) == 0 && it.type == TD_MP_INT && it.v.i == 5);
  TD_CHECK_INT(td_mp_map_get(b.data, end, "nope", 4, &v), 0);
  TD_CHECK_INT(td_mp_map_get(b.data, end - 1, "n", 1, &v), TD_ECORRUPT);
  td_wbuf_destroy(&b);
}

TD_TEST(test_msgpack_refuses_malformed) {
  static const unsigned char c1[] = {0xc1}, huge_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x00},
                             short_str[] = {0xa5, 'a', 'b'}, ext[] = {0xd7, 0x05, 1, 2, 3};
  const char *p = (const char *)c1;
  td_mp_item_t it;
  TD_CHECK_INT(td_mp_read(&p, p + 1, &it), TD_ECORRUPT);
  p = (const char *)huge_array;
  TD_CHECK_INT(td_mp_skip(&p, p + sizeof huge_array), TD_ECORRUPT);
  p = (const char *)short_str;
  TD_CHECK_INT(td_mp_read(&p, p + sizeof short_str, &it), TD_ECORRUPT);
  p = (const char *)ext; /* fixext 8 with 3 bytes */
  TD_CHECK_INT(td_mp_read(&p, p + sizeof ext, &it), TD_ECORRUPT);
  p = (const char *)ext;
  TD_CHECK_INT(td_mp_read(&p, p, &it), TD_ECORRUPT);
}

/* td_mp_skip_value (the engine's table-driven skip) gives what td_mp_skip
 * gives, result and position, on every first byte followed by bytes of
 * every kind, and on random byte strings of every length up to 24. */
TD_TEST(test_msgpack_skip_value_agrees) {
  unsigned char buf[24];
  uint32_t x = 12345;
  for (int round = 0; round < 200000; round++) {
    size_t len = (size_t)(round % 25);
    for (size_t i = 0; i < len; i++) {
      x = x * 1103515245u + 12345u;
      buf[i] = (unsigned char)(x >> 16);
    }
    if (len && round < 256 * 24) buf[0] = (unsigned char)(round / 24);
    const char *p = (const char *)buf, *q = (const char *)buf;
    int a = td_mp_skip(&p, (const char *)buf + len);
    int b = td_mp_skip_value(&q, (const char *)buf + len);
    TD_CHECK_INT(b, a);
    TD_CHECK(p == q);
  }
}

TD_TEST_MAIN(test_msgpack_write_ints, test_msgpack_write_other_kinds, test_msgpack_skip_codec_values,
             test_msgpack_map_get, test_msgpack_refuses_malformed, test_msgpack_skip_value_agrees)
