/*
 * test_keygroup.c - unit tests for key groups (keygroup.h): Flink's default
 * max parallelism and key group to subtask assignment, the key hash and how
 * evenly it spreads keys, and key bytes that do not depend on how a Lua key
 * was built (integer or float, table insertion order).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <xxhash.h>

#include "codec.h"
#include "error.h"
#include "keygroup.h"
#include "testlib.h"

/* ---- helpers ---- */

static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  if (!L) abort();
  luaL_openlibs(L);
  return L;
}

/* push_expr - evaluate `return <expr>` and push its value. */
static void push_expr(lua_State *L, const char *expr) {
  char code[4096];
  snprintf(code, sizeof code, "return %s", expr);
  if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
    abort();
  }
}

/* key_of - the canonical key bytes of the Lua expression, into b (reset). */
static void key_of(lua_State *L, const char *expr, td_wbuf_t *b) {
  char err[128];
  push_expr(L, expr);
  b->len = 0;
  int rc = td_codec_encode(L, -1, b, 1, err, sizeof err);
  lua_pop(L, 1);
  if (rc != 0) {
    fprintf(stderr, "encode %s: %s (%s)\n", expr, td_strerror(rc), err);
    abort();
  }
}

static int same_bytes(const td_wbuf_t *a, const td_wbuf_t *b) {
  return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static int kg_of_bytes(const td_wbuf_t *b, int maxp) {
  return td_keygroup_of(td_keygroup_hash(b->data, b->len), maxp);
}

/* ---- default max parallelism ---- */

TD_TEST(test_keygroup_default_max_parallelism) {
  /* roundUpToPowerOfTwo(p + p/2), clamped to [128, 32768], by hand */
  static const int table[][2] = {
      {1, 128},       /* 1 + 0 = 1 -> 1 -> 128 */
      {2, 128},       /* 2 + 1 = 3 -> 4 -> 128 */
      {64, 128},      /* 64 + 32 = 96 -> 128 */
      {85, 128},      /* 85 + 42 = 127 -> 128 */
      {86, 256},      /* 86 + 43 = 129 -> 256 */
      {100, 256},     /* 100 + 50 = 150 -> 256 */
      {170, 256},     /* 170 + 85 = 255 -> 256 */
      {171, 256},     /* 171 + 85 = 256 -> 256 */
      {172, 512},     /* 172 + 86 = 258 -> 512 */
      {200, 512},     /* 200 + 100 = 300 -> 512 */
      {341, 512},     /* 341 + 170 = 511 -> 512 */
      {342, 1024},    /* 342 + 171 = 513 -> 1024 */
      {1000, 2048},   /* 1000 + 500 = 1500 -> 2048 */
      {1365, 2048},   /* 1365 + 682 = 2047 -> 2048 */
      {1366, 4096},   /* 1366 + 683 = 2049 -> 4096 */
      {10000, 16384}, /* 10000 + 5000 = 15000 -> 16384 */
      {21845, 32768}, /* 21845 + 10922 = 32767 -> 32768 */
      {21846, 32768}, /* 21846 + 10923 = 32769 -> 65536, clamped */
      {30000, 32768}, /* 30000 + 15000 = 45000 -> 65536, clamped */
      {32768, 32768}, /* 32768 + 16384 = 49152 -> 65536, clamped */
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    int got = td_keygroup_default_max_parallelism(table[i][0]);
    if (got != table[i][1]) {
      fprintf(stderr, "  parallelism %d: %d, expected %d\n", table[i][0], got,
              table[i][1]);
      td_test_failed_ = 1;
    }
  }
}

TD_TEST(test_keygroup_default_max_parallelism_rule) {
  /* every parallelism up to the limit: a power of two in [128, 32768],
   * at least p * 1.5 unless clamped, and the smallest such */
  for (int p = 1; p <= TD_MAX_PARALLELISM_LIMIT; p++) {
    int m = td_keygroup_default_max_parallelism(p);
    int want = p + p / 2;
    int ok = m >= 128 && m <= TD_MAX_PARALLELISM_LIMIT && (m & (m - 1)) == 0 &&
             (m >= want || m == TD_MAX_PARALLELISM_LIMIT) &&
             (m == 128 || m / 2 < want);
    if (!ok) {
      fprintf(stderr, "  parallelism %d: %d\n", p, m);
      td_test_failed_ = 1;
      break;
    }
  }
}

/* ---- key group to subtask ---- */

static const int maxps[] = {1, 2, 7, 128, 129, 1000, 4096, 32768};

TD_TEST(test_keygroup_subtask_formula) {
  for (size_t k = 0; k < sizeof maxps / sizeof maxps[0]; k++) {
    int maxp = maxps[k];
    for (int p = 1; p <= maxp && p <= 300; p++)
      for (int kg = 0; kg < maxp; kg++) {
        int want = (int)((int64_t)kg * p / maxp);
        int got = td_keygroup_subtask(kg, p, maxp);
        if (got != want || got < 0 || got >= p) {
          fprintf(stderr, "  kg %d p %d maxp %d: %d, expected %d\n", kg, p,
                  maxp, got, want);
          td_test_failed_ = 1;
          return;
        }
      }
  }
  /* no overflow at the limits */
  TD_CHECK_INT(td_keygroup_subtask(32767, 32768, 32768), 32767);
  TD_CHECK_INT(td_keygroup_subtask(32767, 32767, 32768), 32766);
  TD_CHECK_INT(td_keygroup_subtask(0, 32768, 32768), 0);
}

/* Flink's KeyGroupRangeAssignment.computeKeyGroupRangeForOperatorIndex:
 * subtask i owns [ceil(i * maxp / p), floor(((i + 1) * maxp - 1) / p)].
 * The subtask of every key group must agree with those ranges, which also
 * makes them contiguous and in subtask order. */
TD_TEST(test_keygroup_subtask_ranges_contiguous) {
  for (size_t k = 0; k < sizeof maxps / sizeof maxps[0]; k++) {
    int maxp = maxps[k];
    for (int p = 1; p <= maxp && p <= 300; p++) {
      int next = 0; /* the first key group not yet covered */
      for (int i = 0; i < p; i++) {
        int start = (int)(((int64_t)i * maxp + p - 1) / p);
        int end = (int)(((int64_t)(i + 1) * maxp - 1) / p);
        int bad = start != next;
        for (int kg = start; kg <= end; kg++)
          bad |= td_keygroup_subtask(kg, p, maxp) != i;
        if (bad) {
          fprintf(stderr, "  maxp %d p %d subtask %d [%d, %d]\n", maxp, p, i,
                  start, end);
          td_test_failed_ = 1;
          return;
        }
        next = end + 1;
      }
      TD_CHECK_INT(next, maxp);
    }
  }
}

TD_TEST(test_keygroup_subtask_balanced) {
  static int sizes[32768];
  for (size_t k = 0; k < sizeof maxps / sizeof maxps[0]; k++) {
    int maxp = maxps[k];
    int ps[] = {1, 2, 3, 5, 7, 10, 64, 100, 127, 128, 1000, 4095, 32768};
    for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++) {
      int p = ps[j];
      if (p > maxp) continue;
      memset(sizes, 0, sizeof sizes);
      int prev = 0;
      for (int kg = 0; kg < maxp; kg++) {
        int s = td_keygroup_subtask(kg, p, maxp);
        TD_CHECK(s >= 0 && s < p);
        TD_CHECK(s == prev || s == prev + 1); /* contiguous, in order */
        if (s < 0 || s >= p) return;
        sizes[s]++;
        prev = s;
      }
      int lo = maxp, hi = 0;
      for (int s = 0; s < p; s++) {
        if (sizes[s] < lo) lo = sizes[s];
        if (sizes[s] > hi) hi = sizes[s];
      }
      if (hi - lo > 1 || lo < 1) {
        fprintf(stderr, "  maxp %d p %d: sizes %d..%d\n", maxp, p, lo, hi);
        td_test_failed_ = 1;
      }
    }
  }
}

/* ---- the hash ---- */

TD_TEST(test_keygroup_hash_is_xxh3) {
  /* XXH3-64 of the empty input, seed 0 (xxHash's own test vector) */
  TD_CHECK(td_keygroup_hash("", 0) == UINT64_C(0x2D06800538D394C2));
  const char *k = "\xa5hello";
  TD_CHECK(td_keygroup_hash(k, 6) == XXH3_64bits(k, 6));
  TD_CHECK(td_keygroup_hash(k, 6) != td_keygroup_hash(k, 5));
}

TD_TEST(test_keygroup_of_in_range) {
  uint64_t hs[] = {0, 1, 127, 128, 129, UINT64_MAX, UINT64_MAX - 1,
                   UINT64_C(1) << 63, 0x0123456789abcdefULL};
  int ms[] = {1, 2, 3, 100, 128, 32767, 32768};
  for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
    for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++) {
      int kg = td_keygroup_of(hs[i], ms[j]);
      TD_CHECK(kg >= 0 && kg < ms[j]);
      TD_CHECK((uint64_t)kg == hs[i] % (uint64_t)ms[j]);
    }
  TD_CHECK_INT(td_keygroup_of(UINT64_MAX, 128), 127);
  TD_CHECK_INT(td_keygroup_of(UINT64_C(1) << 63, 128), 0);
}

/* check_uniform - 100k keys over 128 key groups: every group within
 * [0.5, 1.5] x the mean (781), and a chi-square far below what a broken
 * hash gives. With a good hash the spread is about +-28 (1 sigma), so the
 * bounds sit at ~14 sigma: they cannot flake, and the keys are fixed. */
static void check_uniform(const char *what, const int *counts, int n_groups,
                          int n_keys) {
  double mean = (double)n_keys / n_groups, chi2 = 0;
  for (int g = 0; g < n_groups; g++) {
    double d = counts[g] - mean;
    chi2 += d * d / mean;
    if (counts[g] < 0.5 * mean || counts[g] > 1.5 * mean) {
      fprintf(stderr, "  %s: key group %d has %d keys (mean %.0f)\n", what, g,
              counts[g], mean);
      td_test_failed_ = 1;
    }
  }
  /* 127 degrees of freedom: mean 127, sd ~16; 400 is ~17 sd out */
  if (chi2 > 400) {
    fprintf(stderr, "  %s: chi-square %.1f\n", what, chi2);
    td_test_failed_ = 1;
  }
}

TD_TEST(test_keygroup_distribution) {
  enum { N = 100000, G = 128 };
  lua_State *L = new_state();
  td_wbuf_t b = {0};
  int ints[G] = {0}, strs[G] = {0}, pairs[G] = {0};
  char err[64];
  for (int i = 0; i < N; i++) {
    /* integer keys 0 .. N-1 */
    lua_pushinteger(L, i);
    b.len = 0;
    TD_CHECK_INT(td_codec_encode(L, -1, &b, 1, err, sizeof err), 0);
    lua_pop(L, 1);
    ints[kg_of_bytes(&b, G)]++;
    /* string keys "user-<i>" */
    lua_pushfstring(L, "user-%d", i);
    b.len = 0;
    TD_CHECK_INT(td_codec_encode(L, -1, &b, 1, err, sizeof err), 0);
    lua_pop(L, 1);
    strs[kg_of_bytes(&b, G)]++;
    /* composite keys {i % 317, i // 317} */
    lua_createtable(L, 2, 0);
    lua_pushinteger(L, i % 317);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, i / 317);
    lua_rawseti(L, -2, 2);
    b.len = 0;
    TD_CHECK_INT(td_codec_encode(L, -1, &b, 1, err, sizeof err), 0);
    lua_pop(L, 1);
    pairs[kg_of_bytes(&b, G)]++;
  }
  check_uniform("integer keys", ints, G, N);
  check_uniform("string keys", strs, G, N);
  check_uniform("array keys", pairs, G, N);
  td_wbuf_destroy(&b);
  lua_close(L);
}

/* ---- key bytes are canonical ---- */

TD_TEST(test_keygroup_integer_and_float_keys) {
  lua_State *L = new_state();
  td_wbuf_t a = {0}, b = {0};
  static const char *const same[][2] = {
      {"3", "3.0"},
      {"0", "-0.0"},
      {"-7", "-7.0"},
      {"2^53", "math.tointeger(2^53)"},
      {"{3, 4}", "{3.0, 4.0}"},
      {"{x = 1}", "{x = 1.0}"},
      {"{[1.0] = 'a', [2] = 'b'}", "{'a', 'b'}"}, /* 1.0 is key 1 in Lua */
  };
  for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
    key_of(L, same[i][0], &a);
    key_of(L, same[i][1], &b);
    if (!same_bytes(&a, &b)) {
      fprintf(stderr, "  %s and %s give different key bytes\n", same[i][0],
              same[i][1]);
      td_test_failed_ = 1;
    }
    for (int m = 1; m <= 32768; m *= 2)
      TD_CHECK_INT(kg_of_bytes(&a, m), kg_of_bytes(&b, m));
  }
  /* and different keys stay different */
  static const char *const differ[][2] = {
      {"3", "3.5"}, {"3", "'3'"}, {"1", "true"}, {"{1, 2}", "{2, 1}"},
  };
  for (size_t i = 0; i < sizeof differ / sizeof differ[0]; i++) {
    key_of(L, differ[i][0], &a);
    key_of(L, differ[i][1], &b);
    TD_CHECK(!same_bytes(&a, &b));
  }
  td_wbuf_destroy(&a);
  td_wbuf_destroy(&b);
  lua_close(L);
}

TD_TEST(test_keygroup_table_key_insertion_order) {
  lua_State *L = new_state();
  td_wbuf_t a = {0}, b = {0};
  /* small maps */
  key_of(L, "(function() local t = {}; t.a = 1; t.b = 2; t.c = 3; "
            "return t end)()", &a);
  key_of(L, "(function() local t = {}; t.c = 3; t.a = 1; t.b = 2; "
            "return t end)()", &b);
  TD_CHECK(same_bytes(&a, &b));
  TD_CHECK_INT(kg_of_bytes(&a, 128), kg_of_bytes(&b, 128));
  /* a larger map with mixed key types, filled forwards and backwards, the
   * second one after deleting keys (so its hash part differs) */
  static const char *const build =
      "local t, n, rev = {}, 40, ...\n"
      "if rev then\n"
      "  for i = 100, 140 do t['junk' .. i] = i end\n"
      "  for i = n, 1, -1 do t['k' .. i] = i; t[i * 1000] = -i end\n"
      "  t[true] = 'yes'; t.nested = {z = 1, y = 2, [3.0] = 3}\n"
      "  for i = 100, 140 do t['junk' .. i] = nil end\n"
      "else\n"
      "  t.nested = {[3] = 3, y = 2, z = 1}; t[true] = 'yes'\n"
      "  for i = 1, n do t[i * 1000] = -i; t['k' .. i] = i end\n"
      "end\n"
      "return t\n";
  for (int rev = 0; rev <= 1; rev++) {
    if (luaL_loadstring(L, build) != LUA_OK) abort();
    lua_pushboolean(L, rev);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) abort();
    td_wbuf_t *w = rev ? &b : &a;
    char err[64];
    w->len = 0;
    TD_CHECK_INT(td_codec_encode(L, -1, w, 1, err, sizeof err), 0);
    lua_pop(L, 1);
  }
  TD_CHECK(a.len > 100);
  TD_CHECK(same_bytes(&a, &b));
  for (int m = 1; m <= 32768; m *= 2)
    TD_CHECK_INT(kg_of_bytes(&a, m), kg_of_bytes(&b, m));
  TD_CHECK_INT(lua_gettop(L), 0);
  td_wbuf_destroy(&a);
  td_wbuf_destroy(&b);
  lua_close(L);
}

TD_TEST_MAIN(test_keygroup_default_max_parallelism,
             test_keygroup_default_max_parallelism_rule,
             test_keygroup_subtask_formula,
             test_keygroup_subtask_ranges_contiguous,
             test_keygroup_subtask_balanced, test_keygroup_hash_is_xxh3,
             test_keygroup_of_in_range, test_keygroup_distribution,
             test_keygroup_integer_and_float_keys,
             test_keygroup_table_key_insertion_order)
