/*
 * test_codec.c - unit tests for the MessagePack record codec (codec.h):
 * exact bytes for every format boundary, round trips, canonical mode,
 * errors, truncated and malformed input, and Lua stack balance.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "asyncsnap.h"
#include "codec.h"
#include "deq.h"
#include "error.h"
#include "testlib.h"


static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  if (luaL_dostring(L, DEQ_LUA) != LUA_OK) {
    fprintf(stderr, "deq: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_setglobal(L, "deq");
  return L;
}

/* push_expr - evaluate the Lua chunk `return <expr>` and push its value. */
static void push_expr(lua_State *L, const char *expr) {
  char code[4096];
  snprintf(code, sizeof code, "return %s", expr);
  if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
    abort();
  }
}

/* run - run a Lua chunk for its side effects (globals). */
static void run(lua_State *L, const char *code) {
  if (luaL_dostring(L, code) != LUA_OK) {
    fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
    abort();
  }
}

/* hex - the buffer as lower-case hex, no separators (static storage). */
static const char *hex(const char *p, size_t n) {
  static char s[8192];
  size_t i;
  for (i = 0; i < n && 2 * i + 2 < sizeof s; i++)
    snprintf(s + 2 * i, 3, "%02x", (unsigned char)p[i]);
  s[2 * i] = 0;
  return s;
}

/* unhex - parse hex (spaces allowed) into buf; returns the byte count. */
static size_t unhex(const char *h, char *buf) {
  size_t n = 0;
  while (*h) {
    if (*h == ' ') {
      h++;
      continue;
    }
    unsigned v;
    sscanf(h, "%2x", &v);
    buf[n++] = (char)v;
    h += 2;
  }
  return n;
}

/* strip - hex without spaces (static storage). */
static const char *strip(const char *h) {
  static char s[8192];
  size_t n = 0;
  for (; *h && n + 1 < sizeof s; h++)
    if (*h != ' ') s[n++] = *h;
  s[n] = 0;
  return s;
}

/* deq_top2 - are the two values on top of the stack deeply equal? Pops
 * both. */
static int deq_top2(lua_State *L) {
  lua_getglobal(L, "deq");
  lua_insert(L, -3);
  lua_call(L, 2, 1);
  int r = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return r;
}

/* round_trip - encode the value on top, decode it, and check the decoded
 * value equals the original, the whole buffer was read and the stack is
 * balanced. Pops the value. Returns the encoding (caller destroys). */
static td_wbuf_t round_trip(lua_State *L, int canonical) {
  td_wbuf_t b = {0};
  int top = lua_gettop(L);
  char err[128] = "";
  int rc = td_codec_encode(L, -1, &b, canonical, err, sizeof err);
  TD_CHECK_INT(rc, 0);
  if (rc) fprintf(stderr, "  encode: %s\n", err);
  TD_CHECK_INT(lua_gettop(L), top);
  size_t off = 0;
  rc = td_codec_decode(L, b.data, b.len, &off);
  TD_CHECK_INT(rc, 0);
  TD_CHECK_INT(off, b.len);
  TD_CHECK_INT(lua_gettop(L), top + (rc == 0));
  if (rc == 0) TD_CHECK(deq_top2(L));
  else lua_pop(L, 1);
  TD_CHECK_INT(lua_gettop(L), top - 1);
  return b;
}

/* expect_bytes - encode the Lua expression and compare the bytes with the
 * expected hex. */
static void expect_bytes(lua_State *L, const char *expr, int canonical,
                         const char *want) {
  td_wbuf_t b = {0};
  push_expr(L, expr);
  int rc = td_codec_encode(L, -1, &b, canonical, NULL, 0);
  TD_CHECK_INT(rc, 0);
  if (strcmp(hex(b.data, b.len), strip(want)) != 0)
    fprintf(stderr, "  for %s (canonical %d):\n", expr, canonical);
  TD_CHECK_STR(hex(b.data, b.len), strip(want));
  lua_pop(L, 1);
  td_wbuf_destroy(&b);
}

/* expect_expr - expect_bytes, then round-trip the value to an equal one. */
static void expect_expr(lua_State *L, const char *expr, int canonical,
                        const char *want) {
  expect_bytes(L, expr, canonical, want);
  push_expr(L, expr);
  td_wbuf_t b = round_trip(L, canonical);
  td_wbuf_destroy(&b);
}

/* decode_hex - decode hex bytes; returns the code, leaves the value pushed
 * on success and checks the whole input was read. */
static int decode_hex(lua_State *L, const char *h) {
  char buf[1024];
  size_t n = unhex(h, buf), off = 0;
  int top = lua_gettop(L);
  int rc = td_codec_decode(L, buf, n, &off);
  if (rc == 0) {
    TD_CHECK_INT(off, n);
    TD_CHECK_INT(lua_gettop(L), top + 1);
  } else {
    TD_CHECK_INT(off, 0);
    TD_CHECK_INT(lua_gettop(L), top);
  }
  return rc;
}

/* ---- td_wbuf ------------------------------------------------------------ */

TD_TEST(test_codec_wbuf_reserve_grows_geometrically) {
  td_wbuf_t b = {0};
  TD_CHECK_INT(td_wbuf_reserve(&b, 1), 0);
  TD_CHECK(b.data != NULL);
  TD_CHECK_INT(b.cap, 256);
  TD_CHECK_INT(b.len, 0);
  b.len = 200;
  TD_CHECK_INT(td_wbuf_reserve(&b, 56), 0);
  TD_CHECK_INT(b.cap, 256); /* fits: no growth */
  TD_CHECK_INT(td_wbuf_reserve(&b, 57), 0);
  TD_CHECK_INT(b.cap, 512);
  TD_CHECK_INT(td_wbuf_reserve(&b, 5000), 0);
  TD_CHECK_INT(b.cap, 8192);
  TD_CHECK_INT(b.len, 200);
  memset(b.data, 'x', b.cap); /* all of it is ours (ASan checks) */
  TD_CHECK_INT(td_wbuf_reserve(&b, SIZE_MAX), TD_ENOMEM);
  TD_CHECK_INT(b.cap, 8192);
  td_wbuf_destroy(&b);
  TD_CHECK(b.data == NULL);
  TD_CHECK_INT(b.len, 0);
  TD_CHECK_INT(b.cap, 0);
  td_wbuf_destroy(&b); /* twice is harmless */
}

TD_TEST(test_codec_encode_appends_to_buffer) {
  lua_State *L = new_state();
  td_wbuf_t b = {0};
  lua_pushinteger(L, 1);
  TD_CHECK_INT(td_codec_encode(L, -1, &b, 0, NULL, 0), 0);
  lua_pushstring(L, "ab");
  TD_CHECK_INT(td_codec_encode(L, -1, &b, 0, NULL, 0), 0);
  TD_CHECK_INT(td_codec_encode(L, -2, &b, 0, NULL, 0), 0);
  TD_CHECK_STR(hex(b.data, b.len), "01a2616201");
  /* positive (absolute) indexes too */
  TD_CHECK_INT(td_codec_encode(L, 2, &b, 1, NULL, 0), 0);
  TD_CHECK_STR(hex(b.data, b.len), "01a2616201a26162");
  TD_CHECK_INT(lua_gettop(L), 2);
  td_wbuf_destroy(&b);
  lua_close(L);
}

/* ---- scalars ------------------------------------------------------------ */

TD_TEST(test_codec_nil_and_booleans) {
  lua_State *L = new_state();
  expect_expr(L, "nil", 0, "c0");
  expect_expr(L, "false", 0, "c2");
  expect_expr(L, "true", 0, "c3");
  expect_expr(L, "true", 1, "c3");
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

TD_TEST(test_codec_integer_boundaries) {
  static const struct {
    int64_t v;
    const char *bytes;
  } cases[] = {
      {0, "00"},
      {1, "01"},
      {127, "7f"},
      {128, "cc 80"},
      {255, "cc ff"},
      {256, "cd 01 00"},
      {65535, "cd ff ff"},
      {65536, "ce 00 01 00 00"},
      {INT32_MAX, "ce 7f ff ff ff"},
      {(int64_t)UINT32_MAX, "ce ff ff ff ff"},
      {(int64_t)UINT32_MAX + 1, "cf 00 00 00 01 00 00 00 00"},
      {INT64_MAX, "cf 7f ff ff ff ff ff ff ff"},
      {-1, "ff"},
      {-32, "e0"},
      {-33, "d0 df"},
      {-128, "d0 80"},
      {-129, "d1 ff 7f"},
      {-32768, "d1 80 00"},
      {-32769, "d2 ff ff 7f ff"},
      {INT32_MIN, "d2 80 00 00 00"},
      {(int64_t)INT32_MIN - 1, "d3 ff ff ff ff 7f ff ff ff"},
      {INT64_MIN, "d3 80 00 00 00 00 00 00 00"},
  };
  lua_State *L = new_state();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    for (int canonical = 0; canonical <= 1; canonical++) {
      td_wbuf_t b = {0};
      lua_pushinteger(L, (lua_Integer)cases[i].v);
      TD_CHECK_INT(td_codec_encode(L, -1, &b, canonical, NULL, 0), 0);
      lua_pop(L, 1);
      if (strcmp(hex(b.data, b.len), strip(cases[i].bytes)) != 0)
        fprintf(stderr, "  for %lld\n", (long long)cases[i].v);
      TD_CHECK_STR(hex(b.data, b.len), strip(cases[i].bytes));
      size_t off = 0;
      TD_CHECK_INT(td_codec_decode(L, b.data, b.len, &off), 0);
      TD_CHECK_INT(off, b.len);
      TD_CHECK(lua_isinteger(L, -1));
      TD_CHECK_INT(lua_tointeger(L, -1), cases[i].v);
      lua_pop(L, 1);
      td_wbuf_destroy(&b);
    }
  }
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

TD_TEST(test_codec_decodes_every_int_format) {
  static const struct {
    const char *bytes;
    int64_t v;
  } cases[] = {
      {"05", 5},
      {"e1", -31},
      {"cc 05", 5},
      {"cd 00 05", 5},
      {"cd 12 34", 0x1234},
      {"ce 00 00 00 05", 5},
      {"ce 89 ab cd ef", 0x89abcdefLL},
      {"cf 00 00 00 00 00 00 00 05", 5},
      {"cf 01 23 45 67 89 ab cd ef", 0x0123456789abcdefLL},
      {"d0 05", 5},
      {"d0 ff", -1},
      {"d1 ff fe", -2},
      {"d1 00 7f", 127},
      {"d2 ff ff ff fd", -3},
      {"d2 7f ff ff ff", INT32_MAX},
      {"d3 ff ff ff ff ff ff ff fc", -4},
      {"d3 7f ff ff ff ff ff ff ff", INT64_MAX},
  };
  lua_State *L = new_state();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    TD_CHECK_INT(decode_hex(L, cases[i].bytes), 0);
    TD_CHECK(lua_isinteger(L, -1));
    TD_CHECK_INT(lua_tointeger(L, -1), cases[i].v);
    lua_pop(L, 1);
  }
  /* uint64 above INT64_MAX has no Lua integer: it decodes as a float */
  TD_CHECK_INT(decode_hex(L, "cf ff ff ff ff ff ff ff ff"), 0);
  TD_CHECK(lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1));
  TD_CHECK(lua_tonumber(L, -1) == 18446744073709551615.0);
  lua_pop(L, 1);
  TD_CHECK_INT(decode_hex(L, "cf 80 00 00 00 00 00 00 00"), 0);
  TD_CHECK(!lua_isinteger(L, -1));
  TD_CHECK(lua_tonumber(L, -1) == 9223372036854775808.0);
  lua_pop(L, 1);
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

TD_TEST(test_codec_floats_stay_floats) {
  lua_State *L = new_state();
  expect_expr(L, "1.0", 0, "cb 3f f0 00 00 00 00 00 00");
  expect_expr(L, "3.0", 0, "cb 40 08 00 00 00 00 00 00");
  expect_expr(L, "0.5", 0, "cb 3f e0 00 00 00 00 00 00");
  expect_expr(L, "-2.5", 0, "cb c0 04 00 00 00 00 00 00");
  expect_expr(L, "0.0", 0, "cb 00 00 00 00 00 00 00 00");
  expect_expr(L, "-0.0", 0, "cb 80 00 00 00 00 00 00 00");
  expect_expr(L, "math.huge", 0, "cb 7f f0 00 00 00 00 00 00");
  expect_expr(L, "-math.huge", 0, "cb ff f0 00 00 00 00 00 00");
  expect_expr(L, "2^63", 0, "cb 43 e0 00 00 00 00 00 00");
  expect_expr(L, "0.1", 0, "cb 3f b9 99 99 99 99 99 9a");

  /* 1.0 decodes as a float: math.type "float" */
  td_wbuf_t b = {0};
  lua_pushnumber(L, 1.0);
  TD_CHECK_INT(td_codec_encode(L, -1, &b, 0, NULL, 0), 0);
  lua_pop(L, 1);
  size_t off = 0;
  TD_CHECK_INT(td_codec_decode(L, b.data, b.len, &off), 0);
  TD_CHECK(!lua_isinteger(L, -1));
  lua_setglobal(L, "x");
  push_expr(L, "math.type(x)");
  TD_CHECK_STR(lua_tostring(L, -1), "float");
  lua_pop(L, 1);
  td_wbuf_destroy(&b);

  /* -0.0 keeps its sign, NaN stays NaN */
  TD_CHECK_INT(decode_hex(L, "cb 80 00 00 00 00 00 00 00"), 0);
  TD_CHECK(!lua_isinteger(L, -1) && signbit(lua_tonumber(L, -1)));
  lua_pop(L, 1);
  lua_pushnumber(L, NAN);
  b = round_trip(L, 0);
  TD_CHECK_INT(b.len, 9);
  TD_CHECK_INT((unsigned char)b.data[0], 0xcb);
  td_wbuf_destroy(&b);
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

TD_TEST(test_codec_decodes_float32) {
  lua_State *L = new_state();
  TD_CHECK_INT(decode_hex(L, "ca 3f c0 00 00"), 0);
  TD_CHECK(!lua_isinteger(L, -1));
  TD_CHECK(lua_tonumber(L, -1) == 1.5);
  lua_pop(L, 1);
  TD_CHECK_INT(decode_hex(L, "ca c2 f6 e9 79"), 0); /* -123.456f */
  TD_CHECK(lua_tonumber(L, -1) == (double)-123.456f);
  lua_pop(L, 1);
  TD_CHECK_INT(decode_hex(L, "ca 40 40 00 00"), 0); /* 3.0f stays float */
  TD_CHECK(!lua_isinteger(L, -1));
  TD_CHECK(lua_tonumber(L, -1) == 3.0);
  lua_pop(L, 1);
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

TD_TEST(test_codec_canonical_integral_floats_as_integers) {
  lua_State *L = new_state();
  td_wbuf_t b = {0};
  lua_pushnumber(L, 3.0);
  TD_CHECK_INT(td_codec_encode(L, -1, &b, 1, NULL, 0), 0);
  lua_pop(L, 1);
  TD_CHECK_STR(hex(b.data, b.len), "03");
  td_wbuf_destroy(&b);

  static const struct {
    double v;
    const char *bytes;
  } cases[] = {
      {1.0, "01"},
      {-1.0, "ff"},
      {0.0, "00"},
      {-0.0, "00"}, /* -0.0 == 0 as a key */
      {128.0, "cc 80"},
      {-33.0, "d0 df"},
      {9007199254740992.0, "cf 00 20 00 00 00 00 00 00"}, /* 2^53 */
      {-9223372036854775808.0, "d3 80 00 00 00 00 00 00 00"}, /* -2^63 */
      {9223372036854775808.0, "cb 43 e0 00 00 00 00 00 00"}, /* 2^63 */
      {0.5, "cb 3f e0 00 00 00 00 00 00"},
      {INFINITY, "cb 7f f0 00 00 00 00 00 00"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    lua_pushnumber(L, cases[i].v);
    TD_CHECK_INT(td_codec_encode(L, -1, &b, 1, NULL, 0), 0);
    lua_pop(L, 1);
    if (strcmp(hex(b.data, b.len), strip(cases[i].bytes)) != 0)
      fprintf(stderr, "  for %g\n", cases[i].v);
    TD_CHECK_STR(hex(b.data, b.len), strip(cases[i].bytes));
    b.len = 0;
  }
  lua_pushnumber(L, NAN);
  TD_CHECK_INT(td_codec_encode(L, -1, &b, 1, NULL, 0), 0);
  lua_pop(L, 1);
  TD_CHECK_INT(b.len, 9);
  TD_CHECK_INT((unsigned char)b.data[0], 0xcb);
  b.len = 0;

  /* the same bytes for the integer and the float key */
  td_wbuf_t c = {0};
  lua_pushinteger(L, 7);
  lua_pushnumber(L, 7.0);
  TD_CHECK_INT(td_codec_encode(L, -2, &b, 1, NULL, 0), 0);
  TD_CHECK_INT(td_codec_encode(L, -1, &c, 1, NULL, 0), 0);
  lua_pop(L, 2);
  TD_CHECK(b.len == c.len && memcmp(b.data, c.data, b.len) == 0);
  td_wbuf_destroy(&b);
  td_wbuf_destroy(&c);

  /* inside tables too: {x = 3.0} */
  /* (so canonical bytes decode to {x = 3}: an integer) */
  expect_bytes(L, "{x = 3.0}", 1, "81 a1 78 03");
  expect_expr(L, "{x = 3.0}", 0, "81 a1 78 cb 40 08 00 00 00 00 00 00");
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

/* ---- strings ------------------------------------------------------------ */

TD_TEST(test_codec_strings) {
  lua_State *L = new_state();
  expect_expr(L, "''", 0, "a0");
  expect_expr(L, "'abc'", 0, "a3 61 62 63");
  expect_expr(L, "'a\\0b'", 0, "a3 61 00 62");
  expect_expr(L, "'\\0\\0'", 1, "a2 00 00");
  expect_expr(L, "'\\xff\\xfe'", 0, "a2 ff fe"); /* not UTF-8: fine */

  /* numeric strings stay strings */
  expect_expr(L, "'12'", 0, "a2 31 32");

  static const struct {
    size_t len;
    const char *header;
  } cases[] = {
      {31, "bf"},
      {32, "d9 20"},
      {255, "d9 ff"},
      {256, "da 01 00"},
      {65535, "da ff ff"},
      {65536, "db 00 01 00 00"},
      {100000, "db 00 01 86 a0"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = cases[i].len;
    char *s = malloc(n);
    for (size_t j = 0; j < n; j++) s[j] = (char)(j % 7 == 3 ? 0 : 'a' + j % 26);
    lua_pushlstring(L, s, n);
    td_wbuf_t b = {0};
    TD_CHECK_INT(td_codec_encode(L, -1, &b, 0, NULL, 0), 0);
    char want[8];
    size_t hl = unhex(cases[i].header, want);
    TD_CHECK_INT(b.len, hl + n);
    TD_CHECK_STR(hex(b.data, hl), strip(cases[i].header));
    TD_CHECK(memcmp(b.data + hl, s, n) == 0);
    size_t off = 0;
    TD_CHECK_INT(td_codec_decode(L, b.data, b.len, &off), 0);
    TD_CHECK_INT(off, b.len);
    size_t dn = 0;
    const char *d = lua_tolstring(L, -1, &dn);
    TD_CHECK(lua_type(L, -1) == LUA_TSTRING);
    TD_CHECK_INT(dn, n);
    TD_CHECK(dn == n && memcmp(d, s, n) == 0);
    TD_CHECK(lua_rawequal(L, -1, -2));
    lua_pop(L, 2);
    td_wbuf_destroy(&b);
    free(s);
  }
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

TD_TEST(test_codec_decodes_str_and_bin_formats_as_strings) {
  static const char *const cases[] = {
      "a3 61 00 62",          "d9 03 61 00 62",          "da 00 03 61 00 62",
      "db 00 00 00 03 61 00 62", "c4 03 61 00 62",       "c5 00 03 61 00 62",
      "c6 00 00 00 03 61 00 62",
  };
  lua_State *L = new_state();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    TD_CHECK_INT(decode_hex(L, cases[i]), 0);
    size_t n = 0;
    const char *s = lua_tolstring(L, -1, &n);
    TD_CHECK(lua_type(L, -1) == LUA_TSTRING);
    TD_CHECK(n == 3 && memcmp(s, "a\0b", 3) == 0);
    lua_pop(L, 1);
  }
  TD_CHECK_INT(decode_hex(L, "c4 00"), 0); /* empty bin */
  TD_CHECK(lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) == 0);
  lua_pop(L, 1);
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

/* ---- tables ------------------------------------------------------------- */

TD_TEST(test_codec_arrays) {
  lua_State *L = new_state();
  expect_expr(L, "{}", 0, "90");
  expect_expr(L, "{}", 1, "90");
  expect_expr(L, "{1, 2, 3}", 0, "93 01 02 03");
  expect_expr(L, "{'a', true, false, 1.5}", 0,
              "94 a1 61 c3 c2 cb 3f f8 00 00 00 00 00 00");
  expect_expr(L, "{7}", 1, "91 07");
  /* 15: fixarray; 16: array16 */
  expect_expr(L, "{1,2,3,4,5,6,7,8,9,10,11,12,13,14,15}", 0,
              "9f 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f");
  expect_expr(L, "{1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16}", 0,
              "dc 00 10 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10");

  /* an array built backwards, from the hash part, is still an array */
  push_expr(L, "(function() local t = {} for i = 20, 1, -1 do t[i] = i end "
               "return t end)()");
  td_wbuf_t b = round_trip(L, 0);
  TD_CHECK_STR(hex(b.data, 4), "dc001401");
  td_wbuf_destroy(&b);
  push_expr(L, "(function() local t = {} t[3] = 'c' t[2] = 'b' t[1] = 'a' "
               "return t end)()");
  b = round_trip(L, 1);
  TD_CHECK_STR(hex(b.data, b.len), "93a161a162a163");
  td_wbuf_destroy(&b);

  /* array32, and a decoded array is a proper sequence */
  push_expr(L, "(function() local t = {} for i = 1, 70000 do t[i] = i end "
               "return t end)()");
  b = round_trip(L, 0);
  TD_CHECK_STR(hex(b.data, 5), "dd00011170");
  size_t off = 0;
  TD_CHECK_INT(td_codec_decode(L, b.data, b.len, &off), 0);
  TD_CHECK_INT(lua_rawlen(L, -1), 70000);
  lua_rawgeti(L, -1, 70000);
  TD_CHECK(lua_isinteger(L, -1) && lua_tointeger(L, -1) == 70000);
  lua_pop(L, 2);
  td_wbuf_destroy(&b);

  /* array16 round trip with floats */
  push_expr(L, "(function() local t = {} for i = 1, 300 do t[i] = i + 0.5 "
               "end return t end)()");
  b = round_trip(L, 0);
  td_wbuf_destroy(&b);
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

TD_TEST(test_codec_maps) {
  lua_State *L = new_state();
  expect_expr(L, "{a = 1}", 0, "81 a1 61 01");
  expect_expr(L, "{[true] = 'x'}", 0, "81 c3 a1 78");
  expect_expr(L, "{[0] = 1}", 0, "81 00 01");
  expect_expr(L, "{[-1] = 1}", 0, "81 ff 01");
  expect_expr(L, "{[0.5] = 1}", 0, "81 cb 3f e0 00 00 00 00 00 00 01");
  expect_expr(L, "{[2^40] = 2}", 1, "81 cf 00 00 01 00 00 00 00 00 02");

  /* 15 entries: fixmap; 16: map16; 70000: map32 */
  static const struct {
    int n;
    const char *head;
  } sizes[] = {{15, "8f"}, {16, "de0010"}, {300, "de012c"},
               {70000, "df00011170"}};
  for (int canonical = 0; canonical <= 1; canonical++) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      char code[256];
      snprintf(code, sizeof code,
               "(function() local t = {} for i = 1, %d do t['k' .. i] = "
               "{i, -i} end return t end)()",
               sizes[i].n);
      push_expr(L, code);
      td_wbuf_t b = round_trip(L, canonical);
      size_t hl = strlen(sizes[i].head) / 2;
      TD_CHECK_STR(hex(b.data, hl), sizes[i].head);
      td_wbuf_destroy(&b);
    }
  }
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

TD_TEST(test_codec_nested_tables) {
  lua_State *L = new_state();
  expect_expr(L, "{{}}", 0, "91 90");
  expect_expr(L, "{a = {1, {b = true}}}", 0, "81 a1 61 92 01 81 a1 62 c3");
  const char *exprs[] = {
      "{a = {1, 2, {b = true, c = {}}}, d = 'x', e = {{{{-5}}}}}",
      ("{word = 'abc', count = 1, tags = {'x', 'y'}, "
       "meta = {ts = 1700000000123, w = 0.25, ok = false}}"),
      "{[{1, 2}] = 'table key'}",
      "{1, {2, {3, {4, {5, {a = {b = {c = 'deep'}}}}}}}}",
  };
  for (int canonical = 0; canonical <= 1; canonical++) {
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
      push_expr(L, exprs[i]);
      if (i == 2) { /* table keys decode to new tables: compare by hand */
        td_wbuf_t b = {0};
        TD_CHECK_INT(td_codec_encode(L, -1, &b, canonical, NULL, 0), 0);
        lua_pop(L, 1);
        TD_CHECK_STR(hex(b.data, b.len), "81920102a97461626c65206b6579");
        size_t off = 0;
        TD_CHECK_INT(td_codec_decode(L, b.data, b.len, &off), 0);
        lua_setglobal(L, "d");
        push_expr(L, "(function() local k, v = next(d) return "
                     "next(d, k) == nil and deq(k, {1, 2}) and v == "
                     "'table key' end)()");
        TD_CHECK(lua_toboolean(L, -1));
        lua_pop(L, 1);
        td_wbuf_destroy(&b);
        continue;
      }
      td_wbuf_t b = round_trip(L, canonical);
      td_wbuf_destroy(&b);
    }
  }
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

TD_TEST(test_codec_arrays_with_holes_become_maps) {
  lua_State *L = new_state();
  /* {1, nil, 3}: keys 1 and 3 */
  push_expr(L, "{1, nil, 3}");
  td_wbuf_t b = round_trip(L, 0);
  TD_CHECK_INT((unsigned char)b.data[0], 0x82);
  td_wbuf_destroy(&b);
  expect_expr(L, "{1, nil, 3}", 1, "82 01 01 03 03");
  expect_expr(L, "{[2] = 'b'}", 0, "81 02 a1 62");
  expect_expr(L, "{[1] = 'a', [3] = 'c'}", 1, "82 01 a1 61 03 a1 63");
  /* array plus other keys */
  expect_expr(L, "{1, 2, x = 3}", 1, "83 01 01 02 02 a1 78 03");
  expect_expr(L, "{[0] = 0, 1}", 1, "82 00 00 01 01");
  expect_expr(L, "{1, [2.5] = 2}", 1,
              "82 01 01 cb 40 04 00 00 00 00 00 00 02");

  /* a table whose key count equals its length although its keys are not
   * 1..n: {1, nil, 3, x = 4} with #t == 3 (the constructor sizes the
   * array part to 3, and clearing t[2] does not shrink it) */
  run(L, "holes = {1, 2, 3, x = 4} holes[2] = nil");
  push_expr(L, "#holes");
  int len = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  TD_CHECK_INT(len, 3);
  for (int canonical = 0; canonical <= 1; canonical++) {
    lua_getglobal(L, "holes");
    b = round_trip(L, canonical);
    TD_CHECK_INT((unsigned char)b.data[0], 0x83);
    if (canonical) TD_CHECK_STR(hex(b.data, b.len), "8301010303a17804");
    td_wbuf_destroy(&b);
  }

  /* a long sparse array round-trips to an equal table */
  push_expr(L, "(function() local t = {} for i = 1, 100 do t[i] = i end "
               "t[50] = nil return t end)()");
  b = round_trip(L, 0);
  TD_CHECK_STR(hex(b.data, 3), "de0063");
  td_wbuf_destroy(&b);
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

/* canon - the canonical encoding of a Lua expression, as hex (malloc'd). */
static char *canon(lua_State *L, const char *expr, int canonical) {
  td_wbuf_t b = {0};
  push_expr(L, expr);
  TD_CHECK_INT(td_codec_encode(L, -1, &b, canonical, NULL, 0), 0);
  lua_pop(L, 1);
  char *h = malloc(2 * b.len + 1);
  for (size_t i = 0; i < b.len; i++)
    snprintf(h + 2 * i, 3, "%02x", (unsigned char)b.data[i]);
  h[2 * b.len] = 0;
  td_wbuf_destroy(&b);
  return h;
}

TD_TEST(test_codec_canonical_sorts_map_entries) {
  lua_State *L = new_state();
  /* sorted by encoded key bytes: 0a < a1 61 < a1 62 < a2 61 61 < c3 */
  expect_expr(L, "{b = 2, a = 1, aa = 4, [10] = 3, [true] = 5}", 1,
              "85 0a 03 a1 61 01 a1 62 02 a2 61 61 04 c3 05");

  run(L, "keys = {}\n"
         "for i = 1, 40 do keys[#keys + 1] = 'key' .. i end\n"
         "for i = -5, 5 do keys[#keys + 1] = i * 1000 end\n"
         "keys[#keys + 1] = 0.25\n"
         "keys[#keys + 1] = true\n"
         "function build(order, n)\n"
         "  local t = {}\n"
         "  n = n or #keys\n"
         "  local from, to, step = 1, n, 1\n"
         "  if order == 'rev' then from, to, step = n, 1, -1 end\n"
         "  if order == 'churn' then\n"
         "    for i = 1, 200 do t['junk' .. i] = i end\n"
         "  end\n"
         "  for i = from, to, step do\n"
         "    local k = keys[i]\n"
         "    t[k] = {v = i, w = {z = 1, y = 2, x = 3}}\n"
         "  end\n"
         "  if order == 'churn' then\n"
         "    for i = 1, 200 do t['junk' .. i] = nil end\n"
         "  end\n"
         "  return t\n"
         "end\n");
  const char *sizes[] = {"3", "15", "16", "nil"};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char e1[64], e2[64], e3[64];
    snprintf(e1, sizeof e1, "build('fwd', %s)", sizes[i]);
    snprintf(e2, sizeof e2, "build('rev', %s)", sizes[i]);
    snprintf(e3, sizeof e3, "build('churn', %s)", sizes[i]);
    char *a = canon(L, e1, 1), *b = canon(L, e2, 1), *c = canon(L, e3, 1);
    TD_CHECK_STR(a, b);
    TD_CHECK_STR(a, c);
    free(a);
    free(b);
    free(c);
    /* and the canonical encoding decodes to an equal table */
    push_expr(L, e3);
    td_wbuf_t w = round_trip(L, 1);
    td_wbuf_destroy(&w);
  }
  /* the whole canonical encoding is in sorted key order */
  push_expr(L, "build('rev')");
  td_wbuf_t w = {0};
  TD_CHECK_INT(td_codec_encode(L, -1, &w, 1, NULL, 0), 0);
  lua_pop(L, 1);
  TD_CHECK_STR(hex(w.data, 3), "de0035"); /* 53 keys */
  td_wbuf_destroy(&w);

  /* canonical nested maps are sorted too */
  expect_expr(L, "{z = {b = 1, a = 2}}", 1, "81 a1 7a 82 a1 61 02 a1 62 01");
  /* canonical and non-canonical give the same bytes for arrays and
   * scalars */
  char *x = canon(L, "{1, 'two', {3}}", 0), *y = canon(L, "{1, 'two', {3}}", 1);
  TD_CHECK_STR(x, y);
  free(x);
  free(y);
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

/* Keys that encode alike: two distinct tables with equal contents are two
 * keys of a Lua table but give the same key bytes. Their entries must
 * still come out in one order (by value bytes), whatever order the VM's
 * hash part holds them in, or equal keys hash to different key groups. */
TD_TEST(test_codec_canonical_equal_key_bytes_one_order) {
  /* {[{}] = 115, [{}] = 100, [101] = 115, [100] = 100}, from the fuzzer's
   * 11-byte input (key 100 comes twice; the second wins) */
  static const char *const input = "85 65 73 90 73 90 64 64 64 64 64";
  /* entries sorted by key bytes, then value bytes: 64->64, 65->73,
   * 90->64, 90->73 (computed by hand) */
  static const char *const want = "84 64 64 65 73 90 64 90 73";
  int differ = 0;
  for (int vm = 0; vm < 40; vm++) {
    lua_State *L = new_state();
    /* vary where the VM's tables land, hence their hash positions */
    char pad[128];
    snprintf(pad, sizeof pad, "pad = {} for i = 1, %d do pad[i] = {} end",
             vm * 7);
    run(L, pad);
    for (int i = 0; i < 20; i++) {
      TD_CHECK_INT(decode_hex(L, input), 0);
      td_wbuf_t b = {0};
      TD_CHECK_INT(td_codec_encode(L, -1, &b, 1, NULL, 0), 0);
      if (strcmp(hex(b.data, b.len), strip(want)) != 0) differ++;
      if (differ == 1 && strcmp(hex(b.data, b.len), strip(want)) != 0)
        TD_CHECK_STR(hex(b.data, b.len), strip(want));
      td_wbuf_destroy(&b);
      lua_pop(L, 1);
      run(L, "pad[#pad + 1] = {}");
    }
    /* the same logical table built in either insertion order */
    expect_bytes(L, "(function() local t = {} t[{}] = 'b' t[{}] = 'a' "
                    "t[{1}] = 1 t[{1}] = 0 return t end)()", 1,
                 "84 90 a1 61 90 a1 62 91 01 00 91 01 01");
    expect_bytes(L, "(function() local t = {} t[{1}] = 0 t[{}] = 'a' "
                    "t[{1}] = 1 t[{}] = 'b' return t end)()", 1,
                 "84 90 a1 61 90 a1 62 91 01 00 91 01 01");
    lua_close(L);
  }
  TD_CHECK_INT(differ, 0);
}

/* Every NaN is one key: canonical bytes do not depend on a NaN's sign or
 * payload (0/0 is negative on x86, -(0/0) positive). */
TD_TEST(test_codec_canonical_nan_one_encoding) {
  lua_State *L = new_state();
  expect_bytes(L, "{0/0}", 1, "91 cb 7ff8000000000000");
  expect_bytes(L, "{-(0/0)}", 1, "91 cb 7ff8000000000000");
  expect_bytes(L, "{x = string.unpack('>d', '\\x7f\\xf0\\0\\0\\0\\0\\0\\1')}",
               1, "81 a1 78 cb 7ff8000000000000");
  /* records keep a NaN's bits */
  expect_bytes(L, "-(0/0)", 0, "cb 7ff8000000000000");
  expect_bytes(L, "string.unpack('>d', '\\xff\\xf8\\0\\0\\0\\0\\0\\0')", 0,
               "cb fff8000000000000");
  lua_close(L);
}

/* ---- encode errors ------------------------------------------------------ */

/* expect_error - encoding the value on top fails with code and message,
 * leaving the buffer and the stack as they were. Pops the value. */
static void expect_error(lua_State *L, int canonical, int code,
                         const char *msg) {
  td_wbuf_t b = {0};
  TD_CHECK_INT(td_wbuf_reserve(&b, 3), 0);
  memcpy(b.data, "xyz", 3);
  b.len = 3;
  int top = lua_gettop(L);
  char err[128] = "";
  TD_CHECK_INT(td_codec_encode(L, -1, &b, canonical, err, sizeof err), code);
  TD_CHECK_STR(err, msg);
  TD_CHECK_INT(b.len, 3);
  TD_CHECK(memcmp(b.data, "xyz", 3) == 0);
  TD_CHECK_INT(lua_gettop(L), top);
  /* and with no error buffer */
  TD_CHECK_INT(td_codec_encode(L, -1, &b, canonical, NULL, 0), code);
  TD_CHECK_INT(b.len, 3);
  TD_CHECK_INT(lua_gettop(L), top);
  lua_pop(L, 1);
  td_wbuf_destroy(&b);
}

static int dummy_cfunction(lua_State *L) { return 0; }

TD_TEST(test_codec_encode_rejects_unsupported_types) {
  lua_State *L = new_state();
  for (int canonical = 0; canonical <= 1; canonical++) {
    push_expr(L, "print");
    expect_error(L, canonical, TD_ECODEC, "cannot encode a function value");
    push_expr(L, "function() end");
    expect_error(L, canonical, TD_ECODEC, "cannot encode a function value");
    lua_pushcfunction(L, dummy_cfunction);
    expect_error(L, canonical, TD_ECODEC, "cannot encode a function value");
    lua_newuserdatauv(L, 16, 0);
    expect_error(L, canonical, TD_ECODEC, "cannot encode a userdata value");
    lua_pushlightuserdata(L, L);
    expect_error(L, canonical, TD_ECODEC, "cannot encode a userdata value");
    lua_newthread(L);
    expect_error(L, canonical, TD_ECODEC, "cannot encode a thread value");
    push_expr(L, "coroutine.create(print)");
    expect_error(L, canonical, TD_ECODEC, "cannot encode a thread value");

    /* deep inside a table, as a value and as a key, after other output */
    push_expr(L, "{1, 'two', {a = {b = {3, print}}}}");
    expect_error(L, canonical, TD_ECODEC, "cannot encode a function value");
    push_expr(L, "{x = 'long enough string to matter', [print] = 1}");
    expect_error(L, canonical, TD_ECODEC, "cannot encode a function value");
    push_expr(L, "(function() local t = {} for i = 1, 40 do t['k' .. i] = i "
                 "end t.k33 = io.stdout return t end)()");
    expect_error(L, canonical, TD_ECODEC, "cannot encode a userdata value");
    push_expr(L, "(function() local t = {} for i = 1, 40 do t[i] = i "
                 "end t[33] = coroutine.create(print) return t end)()");
    expect_error(L, canonical, TD_ECODEC, "cannot encode a thread value");
  }

  /* a short error buffer gets a truncated, terminated message */
  td_wbuf_t b = {0};
  char err[8];
  memset(err, 'Z', sizeof err);
  push_expr(L, "print");
  TD_CHECK_INT(td_codec_encode(L, -1, &b, 0, err, sizeof err), TD_ECODEC);
  TD_CHECK_STR(err, "cannot ");
  TD_CHECK_INT(b.len, 0);
  lua_pop(L, 1);
  td_wbuf_destroy(&b);
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

/* A snapshot's hole (td_codec_hole, asyncsnap.h) encodes as fixext 1 of
 * type 0x54 holding its number, wherever it is (here inside a map of 20
 * entries, whose header is written after its entries); the decoder
 * rejects it; numbers out of range have no hole. */
TD_TEST(test_codec_snapshot_holes) {
  lua_State *L = new_state();
  TD_CHECK(td_codec_hole(-1) == NULL && td_codec_hole(TD_ASNAP_MAX_HOLES) == NULL);
  td_wbuf_t b = {0};
  lua_pushlightuserdata(L, td_codec_hole(7));
  TD_CHECK_INT(td_codec_encode(L, -1, &b, 0, NULL, 0), 0);
  TD_CHECK_STR(hex(b.data, b.len), "d45407");
  lua_pop(L, 1);
  b.len = 0;
  lua_createtable(L, 1, 0);
  lua_pushlightuserdata(L, td_codec_hole(TD_ASNAP_MAX_HOLES - 1));
  lua_rawseti(L, -2, 1);
  TD_CHECK_INT(td_codec_encode(L, -1, &b, 0, NULL, 0), 0);
  TD_CHECK_STR(hex(b.data, b.len), "91d4543f");
  size_t off = 0;
  TD_CHECK_INT(td_codec_decode(L, b.data, b.len, &off), TD_ECORRUPT);
  lua_pop(L, 1);
  b.len = 0;
  push_expr(L, "(function() local t = {} for i = 1, 20 do t['k' .. i] = i end return t end)()");
  lua_pushlightuserdata(L, td_codec_hole(2));
  lua_setfield(L, -2, "k13");
  TD_CHECK_INT(td_codec_encode(L, -1, &b, 0, NULL, 0), 0);
  TD_CHECK(b.len > 3 && (unsigned char)b.data[0] == 0xde);
  const char *h = memmem(b.data, b.len, "\xa3k13\xd4\x54\x02", 7);
  TD_CHECK(h != NULL);
  lua_pop(L, 1);
  td_wbuf_destroy(&b);
  lua_close(L);
}

TD_TEST(test_codec_encode_rejects_cycles) {
  lua_State *L = new_state();
  const char *msg = "table nesting too deep (or a cycle)";
  for (int canonical = 0; canonical <= 1; canonical++) {
    push_expr(L, "(function() local t = {} t.self = t return t end)()");
    expect_error(L, canonical, TD_ECODEC, msg);
    push_expr(L, "(function() local t = {1, 2} t[3] = t return t end)()");
    expect_error(L, canonical, TD_ECODEC, msg);
    push_expr(L, "(function() local a, b = {}, {} a.b = b b.a = a "
                 "return {x = a} end)()");
    expect_error(L, canonical, TD_ECODEC, msg);
    push_expr(L, "(function() local t = {} t[t] = 1 return t end)()");
    expect_error(L, canonical, TD_ECODEC, msg);
  }
  /* a shared (non-cyclic) subtable is fine: it is written twice */
  push_expr(L, "(function() local s = {1} return {s, s} end)()");
  td_wbuf_t b = round_trip(L, 0);
  TD_CHECK_STR(hex(b.data, b.len), "9291019101");
  td_wbuf_destroy(&b);
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

/* push_nested - push `levels` tables nested in each other, the innermost
 * holding 'leaf': {{...{'leaf'}...}} (arrays) or {a = {a = ...}} (maps). */
static void push_nested(lua_State *L, int levels, int maps) {
  char code[256];
  snprintf(code, sizeof code,
           "(function() local t = {'leaf'} for i = 2, %d do t = %s end "
           "return t end)()",
           levels, maps ? "{a = t}" : "{t}");
  push_expr(L, code);
}

TD_TEST(test_codec_nesting_depth_limit) {
  lua_State *L = new_state();
  for (int maps = 0; maps <= 1; maps++) {
    for (int canonical = 0; canonical <= 1; canonical++) {
      push_nested(L, TD_CODEC_MAX_DEPTH, maps);
      td_wbuf_t b = round_trip(L, canonical);
      td_wbuf_destroy(&b);
      push_nested(L, TD_CODEC_MAX_DEPTH + 1, maps);
      expect_error(L, canonical, TD_ECODEC,
                   "table nesting too deep (or a cycle)");
    }
  }
  /* decode: 64 nested arrays are fine, 65 are corrupt */
  char buf[TD_CODEC_MAX_DEPTH + 2];
  for (int levels = TD_CODEC_MAX_DEPTH; levels <= TD_CODEC_MAX_DEPTH + 1;
       levels++) {
    memset(buf, 0x91, (size_t)levels - 1);
    buf[levels - 1] = (char)0x90;
    size_t off = 0;
    int rc = td_codec_decode(L, buf, (size_t)levels, &off);
    if (levels <= TD_CODEC_MAX_DEPTH) {
      TD_CHECK_INT(rc, 0);
      TD_CHECK_INT(off, levels);
      lua_pop(L, 1);
    } else {
      TD_CHECK_INT(rc, TD_ECORRUPT);
      TD_CHECK_INT(off, 0);
    }
    TD_CHECK_INT(lua_gettop(L), 0);
  }
  /* nested maps on decode: 81 a1 61 repeated */
  char mbuf[4 * (TD_CODEC_MAX_DEPTH + 1) + 1];
  for (int levels = TD_CODEC_MAX_DEPTH; levels <= TD_CODEC_MAX_DEPTH + 1;
       levels++) {
    size_t n = 0;
    for (int i = 0; i < levels - 1; i++) {
      mbuf[n++] = (char)0x81;
      mbuf[n++] = (char)0xa1;
      mbuf[n++] = 'a';
    }
    mbuf[n++] = (char)0x80;
    size_t off = 0;
    int rc = td_codec_decode(L, mbuf, n, &off);
    TD_CHECK_INT(rc, levels <= TD_CODEC_MAX_DEPTH ? 0 : TD_ECORRUPT);
    if (rc == 0) lua_pop(L, 1);
    TD_CHECK_INT(lua_gettop(L), 0);
  }
  lua_close(L);
}

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A table with a positive length that is not an array ({child, x = 1}) is
 * tried as an array first; encoding must not then encode its children
 * twice, or nesting such tables costs 2^depth (found by fuzz_codec: a
 * 709-byte record took minutes). 28 levels: 2^28 child encodings before
 * the fix, a few hundred after. */
TD_TEST(test_codec_mixed_tables_encode_in_linear_time) {
  lua_State *L = new_state();
  run(L, "function nest(d, k)\n"
         "  local t = 1\n"
         "  for _ = 1, d do t = {t}; t[k] = 1 end\n"
         "  return t\n"
         "end\n");
  static const char *const exprs[] = {"nest(28, 'x')", "nest(28, 3)",
                                      "nest(28, 1.5)"};
  for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
    for (int canonical = 0; canonical <= 1; canonical++) {
      push_expr(L, exprs[i]);
      td_wbuf_t b = {0};
      double t0 = cpu_seconds();
      TD_CHECK_INT(td_codec_encode(L, -1, &b, canonical, NULL, 0), 0);
      double dt = cpu_seconds() - t0;
      if (dt > 0.25)
        fprintf(stderr, "  %s (canonical %d): %.2f s\n", exprs[i],
                canonical, dt);
      TD_CHECK(dt < 0.25);
      /* 28 maps of two entries around the 1 */
      TD_CHECK_INT(b.len, 28 * (1 + 1 + (i == 0 ? 3 : i == 1 ? 2 : 10)) + 1);
      td_wbuf_destroy(&b);
      lua_pop(L, 1);
    }
  }
  lua_close(L);
}

TD_TEST(test_codec_encode_keeps_stack_top) {
  lua_State *L = new_state();
  const char *exprs[] = {
      "nil", "1", "2.5", "'s'", "{}", "{1, 2}", "{a = 1, b = {c = {1, 2}}}",
      "{1, nil, 3}",
      ("(function() local t = {} for i = 20, 1, -1 do t[i] = {i} end "
       "return t end)()"),
  };
  lua_pushstring(L, "below");
  td_wbuf_t b = {0};
  for (int canonical = 0; canonical <= 1; canonical++) {
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
      push_expr(L, exprs[i]);
      lua_pushinteger(L, 99); /* encode from below the top */
      TD_CHECK_INT(td_codec_encode(L, -2, &b, canonical, NULL, 0), 0);
      TD_CHECK_INT(lua_gettop(L), 3);
      TD_CHECK_INT(lua_tointeger(L, -1), 99);
      lua_pop(L, 2);
    }
  }
  /* decode pushes exactly one value per call */
  size_t off = 0;
  int n = 0;
  while (off < b.len) {
    TD_CHECK_INT(td_codec_decode(L, b.data, b.len, &off), 0);
    n++;
    TD_CHECK_INT(lua_gettop(L), 1 + n);
  }
  TD_CHECK_INT(n, 2 * (int)(sizeof exprs / sizeof exprs[0]));
  lua_settop(L, 1);
  TD_CHECK_STR(lua_tostring(L, 1), "below");
  td_wbuf_destroy(&b);
  lua_close(L);
}

/* ---- decode errors ------------------------------------------------------ */

TD_TEST(test_codec_decode_truncated_input_at_every_prefix) {
  lua_State *L = new_state();
  push_expr(L,
            "{1, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, "
            "-1, -33, -129, -32769, -2147483649, 0.5, true, false, "
            "'short', string.rep('x', 40), string.rep('y', 300), "
            "{a = {b = {'c', {}}}, [0.25] = {1, nil, 3}}, "
            "(function() local t = {} for i = 1, 20 do t['k' .. i] = i end "
            "return t end)(), "
            "(function() local t = {} for i = 1, 20 do t[i] = -i end "
            "return t end)()}");
  td_wbuf_t b = {0};
  TD_CHECK_INT(td_codec_encode(L, -1, &b, 0, NULL, 0), 0);
  lua_pop(L, 1);
  TD_CHECK(b.len > 400);
  lua_pushstring(L, "below");
  for (size_t n = 0; n < b.len; n++) {
    char *copy = malloc(n ? n : 1); /* exact size: ASan catches overreads */
    memcpy(copy, b.data, n);
    size_t off = 0;
    int rc = td_codec_decode(L, copy, n, &off);
    if (rc != TD_ECORRUPT) fprintf(stderr, "  prefix %zu\n", n);
    TD_CHECK_INT(rc, TD_ECORRUPT);
    TD_CHECK_INT(off, 0);
    TD_CHECK_INT(lua_gettop(L), 1);
    TD_CHECK_INT(td_codec_decode_into(L, 1, copy, n), n ? TD_ECORRUPT : 0);
    TD_CHECK_INT(lua_gettop(L), 1);
    free(copy);
    lua_settop(L, 1);
  }
  /* with a start offset: two values back to back, the second truncated */
  td_wbuf_t c = {0};
  lua_pushinteger(L, 300);
  TD_CHECK_INT(td_codec_encode(L, -1, &c, 0, NULL, 0), 0);
  lua_pop(L, 1);
  size_t first = c.len;
  TD_CHECK_INT(td_wbuf_reserve(&c, b.len), 0);
  memcpy(c.data + c.len, b.data, b.len);
  c.len += b.len;
  for (size_t n = first; n < c.len; n++) {
    size_t off = first;
    TD_CHECK_INT(td_codec_decode(L, c.data, n, &off), TD_ECORRUPT);
    TD_CHECK_INT(off, first);
    TD_CHECK_INT(lua_gettop(L), 1);
  }
  size_t off = first;
  TD_CHECK_INT(td_codec_decode(L, c.data, c.len, &off), 0);
  TD_CHECK_INT(off, c.len);
  lua_pop(L, 1);
  /* an offset at or past the end */
  off = c.len;
  TD_CHECK_INT(td_codec_decode(L, c.data, c.len, &off), TD_ECORRUPT);
  TD_CHECK_INT(off, c.len);
  off = c.len + 5;
  TD_CHECK_INT(td_codec_decode(L, c.data, c.len, &off), TD_ECORRUPT);
  TD_CHECK_INT(off, c.len + 5);
  off = 0;
  TD_CHECK_INT(td_codec_decode(L, NULL, 0, &off), TD_ECORRUPT);
  TD_CHECK_INT(lua_gettop(L), 1);
  td_wbuf_destroy(&b);
  td_wbuf_destroy(&c);
  lua_close(L);
}

TD_TEST(test_codec_decode_rejects_invalid_bytes) {
  static const char *const bad[] = {
      "c1",                         /* never used */
      "c7 01 05 00",                /* ext8 */
      "c8 00 01 05 00",             /* ext16 */
      "c9 00 00 00 01 05 00",       /* ext32 */
      "d4 05 00",                   /* fixext1 */
      "d5 05 00 00",                /* fixext2 */
      "d6 05 00 00 00 00",          /* fixext4 */
      "d7 05 00 00 00 00 00 00 00 00", /* fixext8 */
      "d8 05 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00", /* fixext16 */
      "d6 ff 00 00 00 00",          /* the timestamp extension */
      "92 01 c1",                   /* inside an array */
      "82 a1 61 01 a1 62 d4 00 00", /* inside a map */
      "81 c0 01",                   /* nil map key */
      "81 cb 7f f8 00 00 00 00 00 00 01", /* NaN map key */
      "81 ca 7f c0 00 00 01",       /* float32 NaN map key */
      "81 01 c1",                   /* bad map value */
      "dd ff ff ff ff",             /* huge array, no data */
      "df ff ff ff ff 01 01",       /* huge map, little data */
      "df 7f ff ff ff 01 01",       /* (rejected before allocating) */
      "dd 7f ff ff ff 01",
      "de ff ff 01 01 02 02",
      "dc 00 03 01 02",             /* array short of one element */
      "db ff ff ff ff 61",          /* huge string */
  };
  lua_State *L = new_state();
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = decode_hex(L, bad[i]);
    if (rc != TD_ECORRUPT) fprintf(stderr, "  for %s\n", bad[i]);
    TD_CHECK_INT(rc, TD_ECORRUPT);
    TD_CHECK_INT(lua_gettop(L), 0);
  }
  /* map keys that are fine: false, 0, -0.0, float, table */
  TD_CHECK_INT(decode_hex(L, "85 c2 01 00 02 cb 80 00 00 00 00 00 00 00 03 "
                             "cb 3f e0 00 00 00 00 00 00 04 91 01 05"),
               0);
  TD_CHECK(lua_istable(L, -1));
  lua_setglobal(L, "m");
  /* -0.0 normalises to the integer key 0, overwriting 2 with 3 */
  push_expr(L, "(function() local n = 0 for _ in pairs(m) do n = n + 1 end "
               "return n == 4 and m[false] == 1 and m[0] == 3 and "
               "m[0.5] == 4 end)()");
  TD_CHECK(lua_toboolean(L, -1));
  lua_pop(L, 1);
  /* a nil map value is accepted (the key is absent) */
  TD_CHECK_INT(decode_hex(L, "82 a1 61 c0 a1 62 01"), 0);
  lua_setglobal(L, "m");
  push_expr(L, "m.a == nil and m.b == 1 and next(m, next(m)) == nil");
  TD_CHECK(lua_toboolean(L, -1));
  lua_pop(L, 1);
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_close(L);
}

TD_TEST(test_codec_decode_consecutive_values) {
  lua_State *L = new_state();
  char buf[64];
  size_t n = unhex("01 a2 68 69 92 c3 c0 81 a1 6b cd 01 00 cb 3f f0 00 00 00 "
                   "00 00 00",
                   buf);
  size_t off = 0;
  TD_CHECK_INT(td_codec_decode(L, buf, n, &off), 0);
  TD_CHECK_INT(off, 1);
  TD_CHECK_INT(td_codec_decode(L, buf, n, &off), 0);
  TD_CHECK_INT(off, 4);
  TD_CHECK_INT(td_codec_decode(L, buf, n, &off), 0);
  TD_CHECK_INT(off, 7);
  TD_CHECK_INT(td_codec_decode(L, buf, n, &off), 0);
  TD_CHECK_INT(off, 13);
  TD_CHECK_INT(td_codec_decode(L, buf, n, &off), 0);
  TD_CHECK_INT(off, n);
  TD_CHECK_INT(td_codec_decode(L, buf, n, &off), TD_ECORRUPT);
  TD_CHECK_INT(off, n);
  TD_CHECK_INT(lua_gettop(L), 5);
  lua_setglobal(L, "e");
  lua_setglobal(L, "d");
  lua_setglobal(L, "c");
  lua_setglobal(L, "b");
  lua_setglobal(L, "a");
  push_expr(L, "a == 1 and math.type(a) == 'integer' and b == 'hi' and "
               "deq(c, {true}) and #c == 1 and deq(d, {k = 256}) and "
               "math.type(e) == 'float' and e == 1");
  TD_CHECK(lua_toboolean(L, -1));
  lua_pop(L, 1);
  lua_close(L);
}

TD_TEST(test_codec_decode_into_fills_positions) {
  lua_State *L = new_state();
  td_wbuf_t b = {0};
  const char *vals[] = {"{word = 'abc', count = 1}", "'x'", "42", "{1, 2}",
                        "false"};
  for (size_t i = 0; i < 5; i++) {
    push_expr(L, vals[i]);
    TD_CHECK_INT(td_codec_encode(L, -1, &b, 0, NULL, 0), 0);
    lua_pop(L, 1);
  }
  push_expr(L, "{'old1', 'old2', 'old3', 'old4', 'old5', 'old6', 'old7', "
               "x = 'keep'}");
  lua_pushinteger(L, 0); /* the table below the top: negative index */
  TD_CHECK_INT(td_codec_decode_into(L, -2, b.data, b.len), 5);
  TD_CHECK_INT(lua_gettop(L), 2);
  lua_pop(L, 1);
  lua_setglobal(L, "t");
  push_expr(L, "deq(t[1], {word = 'abc', count = 1}) and t[2] == 'x' and "
               "math.type(t[3]) == 'integer' and t[3] == 42 and "
               "deq(t[4], {1, 2}) and t[5] == false and t[6] == 'old6' and "
               "t[7] == 'old7' and t.x == 'keep'");
  TD_CHECK(lua_toboolean(L, -1));
  lua_pop(L, 1);

  /* empty input: 0, nothing touched */
  lua_getglobal(L, "t");
  TD_CHECK_INT(td_codec_decode_into(L, 1, b.data, 0), 0);
  TD_CHECK_INT(td_codec_decode_into(L, 1, NULL, 0), 0);
  TD_CHECK_INT(lua_gettop(L), 1);
  /* one value */
  TD_CHECK_INT(td_codec_decode_into(L, 1, b.data + b.len - 1, 1), 1);
  lua_rawgeti(L, 1, 1);
  TD_CHECK(lua_isboolean(L, -1) && !lua_toboolean(L, -1));
  lua_pop(L, 1);
  /* a bad byte after good values */
  TD_CHECK_INT(td_wbuf_reserve(&b, 1), 0);
  b.data[b.len++] = (char)0xc1;
  TD_CHECK_INT(td_codec_decode_into(L, 1, b.data, b.len), TD_ECORRUPT);
  TD_CHECK_INT(lua_gettop(L), 1);
  lua_pop(L, 1);

  /* many values into a fresh table */
  b.len = 0;
  for (int i = 1; i <= 1000; i++) {
    lua_pushinteger(L, (lua_Integer)i * 1000);
    TD_CHECK_INT(td_codec_encode(L, -1, &b, 0, NULL, 0), 0);
    lua_pop(L, 1);
  }
  lua_newtable(L);
  TD_CHECK_INT(td_codec_decode_into(L, -1, b.data, b.len), 1000);
  TD_CHECK_INT(lua_rawlen(L, -1), 1000);
  lua_rawgeti(L, -1, 777);
  TD_CHECK_INT(lua_tointeger(L, -1), 777000);
  lua_pop(L, 2);
  TD_CHECK_INT(lua_gettop(L), 0);
  td_wbuf_destroy(&b);
  lua_close(L);
}

TD_TEST(test_codec_round_trips_records) {
  lua_State *L = new_state();
  /* a batch of records in one buffer, as in an exchange buffer */
  run(L, "recs = {}\n"
         "for i = 1, 500 do\n"
         "  recs[i] = {word = 'w' .. i, count = i * 7 - 1000, f = i / 3,\n"
         "             tags = i % 3 == 0 and {} or {'a', i}, ok = i % 2 == 0,"
         "             big = i << 40}\n"
         "end\n");
  td_wbuf_t b = {0};
  lua_getglobal(L, "recs");
  for (int i = 1; i <= 500; i++) {
    lua_rawgeti(L, -1, i);
    TD_CHECK_INT(td_codec_encode(L, -1, &b, 0, NULL, 0), 0);
    lua_pop(L, 1);
  }
  lua_newtable(L);
  TD_CHECK_INT(td_codec_decode_into(L, -1, b.data, b.len), 500);
  TD_CHECK(deq_top2(L));
  TD_CHECK_INT(lua_gettop(L), 0);
  td_wbuf_destroy(&b);
  lua_close(L);
}

/* cache_batch - encode every value of the global list `vals` into one
 * buffer, decode them back one by one through a string cache (collecting
 * garbage after each: only the cache's slots hold its strings) into the
 * global `got`, and check got equals vals. */
/* encode_list - encode the values of the list on top of the stack (popped)
 * one after the other into b, stops[i] the end of value i + 1; returns
 * their count (at most max). */
static int encode_list(lua_State *L, td_wbuf_t *b, size_t *stops, int max) {
  int n = (int)lua_rawlen(L, -1);
  TD_CHECK(n <= max);
  for (int i = 1; i <= n && i <= max; i++) {
    lua_rawgeti(L, -1, i);
    TD_CHECK_INT(td_codec_encode(L, -1, b, 0, NULL, 0), 0);
    lua_pop(L, 1);
    stops[i - 1] = b->len;
  }
  lua_pop(L, 1);
  return n;
}

static void cache_batch(lua_State *L) {
  td_wbuf_t b = {0};
  size_t stops[4096];
  lua_getglobal(L, "vals");
  int n = encode_list(L, &b, stops, 4096);
  lua_newtable(L);
  td_codec_cache_t c;
  td_codec_cache_init(L, &c);
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    TD_CHECK_INT(td_codec_decode_cached(L, &c, b.data, stops[i], &off), 0);
    TD_CHECK_INT(off, stops[i]);
    lua_rawseti(L, 1, i + 1);
    lua_gc(L, LUA_GCCOLLECT, 0);
  }
  td_codec_cache_destroy(L, &c);
  TD_CHECK_INT(lua_gettop(L), 1);
  lua_setglobal(L, "got");
  push_expr(L, "#got == #vals and deq(got, vals)");
  TD_CHECK(lua_toboolean(L, -1));
  lua_pop(L, 1);
  td_wbuf_destroy(&b);
}

TD_TEST(test_codec_cache_decodes_what_decode_does) {
  lua_State *L = new_state();
  /* shapes that change within a batch; a key's bytes in another place
   * (key then value, another map, an array); nested maps sharing keys */
  run(L, "vals = {\n"
         "  {id = 1, name = 'rec'}, {id = 2, name = 'rec'},\n"
         "  {name = 'id', id = 'name'}, {rec = 'rec'}, 'id', 'name',\n"
         "  {'id', 'name', {id = {id = {id = 'id'}}}},\n"
         "  {a = {a = 'a', b = {a = 'b'}}, b = 'a'}, {id = 3, name = 'rec'},\n"
         "  {x = 1}, {y = 2}, {x = 'y', y = 'x'}, 'x', 'y', '', {[''] = ''},\n"
         "}\n");
  cache_batch(L);
  /* strings alike in length and first, middle and last bytes (one slot)
   * that differ elsewhere; embedded zeros; 31 bytes (the longest fixstr)
   * and 32 and 40 (str8, not cached) that differ in one middle byte */
  run(L, "local l31a = ('k'):rep(10) .. 'A' .. ('k'):rep(20)\n"
         "local l31b = ('k'):rep(10) .. 'B' .. ('k'):rep(20)\n"
         "local l32a, l32b = l31a .. 'z', l31b .. 'z'\n"
         "local l40a, l40b = l32a .. ('w'):rep(8), l32b .. ('w'):rep(8)\n"
         "vals = {\n"
         "  'aXmYz', 'aQmRz', 'aXmYz', {aXmYz = 'aQmRz', aQmRz = 'aXmYz'},\n"
         "  'a\\0b', 'a\\1b', 'a\\0b', '\\0', '\\1', '\\0',\n"
         "  {[l31a] = l31b, [l31b] = l31a}, l31a, l31b, l31a,\n"
         "  {[l32a] = l32b, [l32b] = l32a}, l32a, l32b, l32a,\n"
         "  {[l40a] = 1, [l40b] = 2}, l40a, l40b, {[l31a] = l32a},\n"
         "}\n"
         "for i = 1, 200 do\n" /* many distinct short strings: evictions */
         "  vals[#vals + 1] = {['k' .. i] = 'v' .. i % 7, id = i}\n"
         "end\n");
  cache_batch(L);
  /* a string, then the same with one byte changed, for every byte value
   * in steps and several places: whatever picks a slot, some of these
   * share one with their base string (256 values, 64 slots) */
  run(L, "vals = {}\n"
         "for _, len in ipairs{1, 2, 5, 31} do\n"
         "  local base = ('abcdefghijklmnopqrstuvwxyz01234'):sub(1, len)\n"
         "  for _, pos in ipairs{1, 2, (len + 1) // 2, len} do\n"
         "    if pos <= len then\n"
         "      for byte = 0, 255, 3 do\n"
         "        vals[#vals + 1] = base\n"
         "        vals[#vals + 1] = base:sub(1, pos - 1) .. string.char(byte)\n"
         "                          .. base:sub(pos + 1)\n"
         "      end\n"
         "    end\n"
         "  end\n"
         "end\n");
  cache_batch(L);
  lua_close(L);
}

TD_TEST(test_codec_cache_bin_and_str_formats_agree) {
  lua_State *L = new_state();
  /* "abc" as fixstr, bin8, fixstr, a map {abc = bin8 "abc"}, str8, bin16
   * and 31 bytes of fixstr: every one decodes to the same string */
  char buf[128];
  size_t n = unhex("a3 61 62 63 c4 03 61 62 63 a3 61 62 63 "
                   "81 a3 61 62 63 c4 03 61 62 63 d9 03 61 62 63 "
                   "c5 00 03 61 62 63 a3 61 62 64",
                   buf);
  lua_pushliteral(L, "abc");
  td_codec_cache_t c;
  td_codec_cache_init(L, &c);
  size_t off = 0;
  for (int i = 0; i < 6; i++) {
    TD_CHECK_INT(td_codec_decode_cached(L, &c, buf, n, &off), 0);
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "abc");
      lua_replace(L, -2);
    }
    TD_CHECK(lua_rawequal(L, 1, -1));
    lua_pop(L, 1);
  }
  TD_CHECK_INT(td_codec_decode_cached(L, &c, buf, n, &off), 0);
  TD_CHECK(lua_type(L, -1) == LUA_TSTRING && !lua_rawequal(L, 1, -1));
  TD_CHECK_STR(lua_tostring(L, -1), "abd");
  TD_CHECK_INT(off, n);
  /* values left on the stack between calls: still room for the next */
  for (int i = 0; i < 100; i++) {
    size_t o = 0;
    TD_CHECK_INT(td_codec_decode_cached(L, &c, buf + 13, 10, &o), 0);
    TD_CHECK_INT(o, 10);
  }
  TD_CHECK_INT(lua_gettop(L), 1 + TD_CODEC_CACHE_SLOTS + 101);
  td_codec_cache_destroy(L, &c);
  TD_CHECK_INT(lua_gettop(L), 1);
  lua_close(L);
}

TD_TEST(test_codec_cache_corrupt_input_keeps_stack) {
  lua_State *L = new_state();
  char buf[64];
  /* {id = 1, name = "rec"} then the same record cut short at every byte */
  size_t n = unhex("82 a2 69 64 01 a4 6e 61 6d 65 a3 72 65 63", buf);
  memcpy(buf + n, buf, n);
  td_codec_cache_t c;
  td_codec_cache_init(L, &c);
  int top = lua_gettop(L);
  size_t off = 0;
  TD_CHECK_INT(td_codec_decode_cached(L, &c, buf, 2 * n, &off), 0);
  lua_pop(L, 1);
  for (size_t cut = n; cut < 2 * n; cut++) {
    size_t o = n;
    TD_CHECK_INT(td_codec_decode_cached(L, &c, buf, cut, &o), TD_ECORRUPT);
    TD_CHECK_INT(o, n);
    TD_CHECK_INT(lua_gettop(L), top);
  }
  off = n;
  TD_CHECK_INT(td_codec_decode_cached(L, &c, buf, 2 * n, &off), 0);
  lua_setglobal(L, "r");
  td_codec_cache_destroy(L, &c);
  TD_CHECK_INT(lua_gettop(L), 0);
  push_expr(L, "deq(r, {id = 1, name = 'rec'})");
  TD_CHECK(lua_toboolean(L, -1));
  lua_close(L);
}

/* reuse_batches - decode the batches of the global `batches` (a list of
 * lists of values) one after the other into one buf table, through
 * td_codec_decode_reuse as core.poll does (one shape record per place);
 * after each batch buf[1..n] must equal it (deq). Returns how many places
 * got their previous table again. */
static int reuse_batches(lua_State *L) {
  static unsigned char shapes[64][TD_CODEC_SHAPE_MAX + 1];
  for (int i = 0; i < 64; i++) shapes[i][0] = TD_CODEC_SHAPE_NONE;
  int reused = 0;
  TD_CHECK_INT(lua_gettop(L), 0);
  lua_newtable(L); /* buf, at index 1 */
  lua_getglobal(L, "batches");
  int nb = (int)lua_rawlen(L, -1);
  lua_pop(L, 1);
  for (int j = 1; j <= nb; j++) {
    td_wbuf_t b = {0};
    size_t stops[64];
    lua_getglobal(L, "batches");
    lua_rawgeti(L, -1, j);
    int n = encode_list(L, &b, stops, 64);
    lua_pop(L, 1);
    td_codec_cache_t c;
    td_codec_cache_init(L, &c);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
      lua_rawgeti(L, 1, i + 1);
      const void *before = lua_topointer(L, -1);
      lua_pop(L, 1);
      td_codec_reuse_t r = {shapes[i], 1, i + 1, 0};
      TD_CHECK_INT(td_codec_decode_reuse(L, &c, &r, b.data, stops[i], &off), 0);
      TD_CHECK_INT(off, stops[i]);
      if (r.reused) {
        TD_CHECK(lua_istable(L, -1) && lua_topointer(L, -1) == before);
        lua_pop(L, 1);
        reused++;
      } else {
        TD_CHECK(!lua_istable(L, -1) || lua_topointer(L, -1) != before);
        lua_rawseti(L, 1, i + 1);
      }
      lua_gc(L, LUA_GCCOLLECT, 0);
    }
    td_codec_cache_destroy(L, &c);
    TD_CHECK_INT(lua_gettop(L), 1);
    lua_pushvalue(L, 1);
    lua_setglobal(L, "got");
    lua_pushinteger(L, j);
    lua_setglobal(L, "j");
    push_expr(L, "(function() for i, v in ipairs(batches[j]) do "
                 "if not deq(got[i], v) then return false end end return true end)()");
    TD_CHECK(lua_toboolean(L, -1));
    lua_pop(L, 1);
    td_wbuf_destroy(&b);
  }
  lua_pop(L, 1);
  return reused;
}

TD_TEST(test_codec_reuse_same_keys_same_table) {
  lua_State *L = new_state();
  /* three batches of records of one shape: from the second on, every
   * place gets its table back, with the new values */
  run(L, "batches = {}\n"
         "for j = 1, 3 do\n"
         "  local b = {}\n"
         "  for i = 1, 20 do b[i] = {id = j * 100 + i, name = 'n' .. i % 3, w = i / 4} end\n"
         "  batches[j] = b\n"
         "end\n");
  TD_CHECK_INT(reuse_batches(L), 40);
  lua_close(L);
}

TD_TEST(test_codec_reuse_other_keys_new_table) {
  lua_State *L = new_state();
  /* per place, a record whose keys differ from its table's: fewer keys,
   * more keys, another key at the first or the last place, a string, a
   * map after a string, an integer key (not recorded), keys longer than
   * a shape holds (not recorded), a nested map: each a new table with
   * exactly its own fields (no key of the table before survives) */
  run(L, "local long = {('a'):rep(30), ('b'):rep(30), ('c'):rep(30)}\n"
         "local function L3(v) return {[long[1]] = v, [long[2]] = v, [long[3]] = v} end\n"
         "batches = {\n"
         "  {{a = 1, b = 2}, {a = 1, b = 2}, {x = 1}, {x = 1, y = 2}, 'str', {a = 1},\n"
         "   {[1] = 'i', z = 2}, L3(1), {k = {k = 1}}, {a = 1, b = 2}},\n"
         "  {{a = 3}, {a = 3, b = 4, c = 5}, {q = 1}, {x = 1, q = 2}, {a = 1}, 'str',\n"
         "   {[1] = 'j', z = 3}, L3(2), {k = {k = 2}}, {a = 5, c = 6}},\n"
         "  {{a = 7}, {a = 3, b = 4, c = 6}, {q = 2}, {x = 3, q = 4}, {a = 2}, {a = 2},\n"
         "   {[1] = 'k', z = 4}, L3(3), {k = {k = 3}}, {a = 7, c = 8}},\n"
         "}\n");
  /* reused: place 9 in the second batch (the same top-level key; its
   * nested map is new), places 1-5, 9 and 10 in the third (the keys of the
   * second); 6 held a string, 7 and 8 record no keys */
  TD_CHECK_INT(reuse_batches(L), 8);
  lua_close(L);
}

TD_TEST_MAIN(test_codec_wbuf_reserve_grows_geometrically,
             test_codec_encode_appends_to_buffer,
             test_codec_snapshot_holes,
             test_codec_nil_and_booleans,
             test_codec_integer_boundaries,
             test_codec_decodes_every_int_format,
             test_codec_floats_stay_floats,
             test_codec_decodes_float32,
             test_codec_canonical_integral_floats_as_integers,
             test_codec_strings,
             test_codec_decodes_str_and_bin_formats_as_strings,
             test_codec_arrays,
             test_codec_maps,
             test_codec_nested_tables,
             test_codec_arrays_with_holes_become_maps,
             test_codec_canonical_sorts_map_entries,
             test_codec_canonical_equal_key_bytes_one_order,
             test_codec_canonical_nan_one_encoding,
             test_codec_encode_rejects_unsupported_types,
             test_codec_encode_rejects_cycles,
             test_codec_nesting_depth_limit,
             test_codec_encode_keeps_stack_top,
             test_codec_mixed_tables_encode_in_linear_time,
             test_codec_decode_truncated_input_at_every_prefix,
             test_codec_decode_rejects_invalid_bytes,
             test_codec_decode_consecutive_values,
             test_codec_decode_into_fills_positions,
             test_codec_round_trips_records,
             test_codec_cache_decodes_what_decode_does,
             test_codec_cache_bin_and_str_formats_agree,
             test_codec_cache_corrupt_input_keeps_stack,
             test_codec_reuse_same_keys_same_table,
             test_codec_reuse_other_keys_new_table)
