/* test_luaalloc.c - the subtask VMs' pool allocator (core/luaalloc.h):
 * Lua's lua_Alloc contract, block reuse by size class, contents kept on
 * reallocation across classes and into and out of malloc'd and mapped
 * (big) sizes, and a
 * Lua VM running on it. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "luaalloc.h"
#include "testlib.h"


TD_TEST(test_luaalloc_follows_lua_alloc_contract) {
  td_lua_pool_t *p = td_lua_pool_new();
  TD_CHECK(p != NULL);
  /* ptr NULL: osize is a type tag, not a size */
  void *a = td_lua_pool_alloc(p, NULL, LUA_TTABLE, 40);
  TD_CHECK(a != NULL);
  TD_CHECK((uintptr_t)a % 16 == 0);
  td_test_fill(a, 40, 1);
  /* freeing returns NULL */
  TD_CHECK(td_lua_pool_alloc(p, a, 40, 0) == NULL);
  /* freeing NULL is a no-op */
  TD_CHECK(td_lua_pool_alloc(p, NULL, LUA_TSTRING, 0) == NULL);
  td_lua_pool_free(p);
}

TD_TEST(test_luaalloc_reuses_freed_blocks_of_a_class) {
  td_lua_pool_t *p = td_lua_pool_new();
  void *a = td_lua_pool_alloc(p, NULL, 0, 33); /* class 48 */
  void *b = td_lua_pool_alloc(p, NULL, 0, 48);
  TD_CHECK(a != b);
  td_lua_pool_alloc(p, a, 33, 0);
  /* the freed block comes back first, for any size of its class */
  TD_CHECK(td_lua_pool_alloc(p, NULL, 0, 40) == a);
  /* a size of the same class keeps the block in place */
  TD_CHECK(td_lua_pool_alloc(p, b, 48, 35) == b);
  td_lua_pool_free(p);
}

TD_TEST(test_luaalloc_keeps_contents_across_classes_and_malloc) {
  td_lua_pool_t *p = td_lua_pool_new();
  /* and big blocks (1 MiB and more: mappings of their own), grown by
   * mremap, shrunk into malloc's and the pool's sizes and back */
  static const size_t sizes[] = {1,       16,      17,          100,     256,  257,     4096,
                                 100000,  1048575, 1048576,     3000001, 9000000, 1500000, 5000,
                                 2100000, 24,      (size_t)1 << 21, 300, 8};
  unsigned char *q = td_lua_pool_alloc(p, NULL, 0, sizes[0]);
  td_test_fill(q, sizes[0], 9);
  size_t have = sizes[0];
  for (size_t i = 1; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    q = td_lua_pool_alloc(p, q, have, n);
    TD_CHECK(q != NULL);
    if (!q) break;
    size_t kept = have < n ? have : n;
    TD_CHECK(td_test_same(q, kept, 9));
    td_test_fill(q, n, 9); /* the whole block is writable */
    have = n;
  }
  if (q) td_lua_pool_alloc(p, q, have, 0);
  td_lua_pool_free(p);
}

TD_TEST(test_luaalloc_many_blocks_stay_distinct) {
  /* more than a chunk's worth, all live at once, then freed and taken again */
  enum { N = 20000 };
  td_lua_pool_t *p = td_lua_pool_new();
  static unsigned char *blk[N];
  for (int i = 0; i < N; i++) {
    size_t n = 1 + (size_t)(i * 37) % 256;
    blk[i] = td_lua_pool_alloc(p, NULL, 0, n);
    td_test_fill(blk[i], n, (unsigned)i);
  }
  int ok = 1;
  for (int i = 0; i < N; i++) ok &= td_test_same(blk[i], 1 + (size_t)(i * 37) % 256, (unsigned)i);
  TD_CHECK(ok);
  for (int i = 0; i < N; i += 2) td_lua_pool_alloc(p, blk[i], 1 + (size_t)(i * 37) % 256, 0);
  for (int i = 0; i < N; i += 2) {
    size_t n = 1 + (size_t)(i * 37) % 256;
    blk[i] = td_lua_pool_alloc(p, NULL, 0, n);
    td_test_fill(blk[i], n, (unsigned)i + 1);
  }
  ok = 1;
  for (int i = 0; i < N; i++)
    ok &= td_test_same(blk[i], 1 + (size_t)(i * 37) % 256, (unsigned)i + (i % 2 == 0));
  TD_CHECK(ok);
  td_lua_pool_free(p);
}

TD_TEST(test_luaalloc_runs_a_lua_vm) {
  td_lua_pool_t *p = td_lua_pool_new();
  lua_State *L = lua_newstate(td_lua_pool_alloc, p);
  TD_CHECK(L != NULL);
  if (L) {
    luaL_openlibs(L);
    /* tables, strings and a big array; the result is computed by hand:
     * sum of i for i = 1..100000 is 5000050000, plus 100000 string lengths */
    const char *code =
        "local t, n = {}, 0\n"
        "for i = 1, 100000 do t[i] = { v = i, s = tostring(i) } end\n"
        "local sum = 0\n"
        "for i = 1, #t do sum = sum + t[i].v; n = n + #t[i].s end\n"
        "t = nil; collectgarbage()\n"
        "return sum, n\n";
    TD_CHECK_INT(luaL_dostring(L, code), LUA_OK);
    TD_CHECK_INT(lua_tointeger(L, -2), 5000050000LL);
    /* digits of 1..100000: 9 + 180 + 2700 + 36000 + 450000 + 6 */
    TD_CHECK_INT(lua_tointeger(L, -1), 488895);
    lua_close(L);
  }
  td_lua_pool_free(p);
}

TD_TEST_MAIN(test_luaalloc_follows_lua_alloc_contract,
             test_luaalloc_reuses_freed_blocks_of_a_class,
             test_luaalloc_keeps_contents_across_classes_and_malloc,
             test_luaalloc_many_blocks_stay_distinct,
             test_luaalloc_runs_a_lua_vm)
