/* test_chunkcache.c - compiled modules shared by VMs (core/chunkcache.h):
 * a second VM loads the first one's bytecode (seen by editing the file
 * behind the cache's back with its size and modification time kept), with
 * the same file:line in errors; a file whose size or time changes compiles
 * again; a module that does not compile, or that no file holds, gives the
 * standard searchers' messages; the loader gets the module name and the
 * file's path. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "chunkcache.h"
#include "testlib.h"
#include "tmpdir.h"

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  TD_CHECK(f != NULL);
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

/* A VM with the cache's searcher and package.path = dir/?.lua. */
static lua_State *vm(const char *dir) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  td_chunkcache_install(L);
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua", dir);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  return L;
}

/* Run code in L: its result as a string, or its error message. */
static const char *run(lua_State *L, const char *code) {
  if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
    return lua_tostring(L, -1);
  return lua_tostring(L, -1);
}

TD_TEST(test_chunkcache_second_vm_loads_the_bytecode) {
  char dir[512], path[600], want[800];
  TD_CHECK(td_tmpdir_make(dir, sizeof dir, "chunkcache"));
  snprintf(path, sizeof path, "%s/cc_shared.lua", dir);
  write_file(path, "local M = {}\n"
                   "function M.v() return 'one' end\n"
                   "function M.boom() error('boom') end\n"
                   "return M\n");
  struct stat st;
  TD_CHECK(stat(path, &st) == 0);
  lua_State *a = vm(dir);
  TD_CHECK_STR(run(a, "return require('cc_shared').v()"), "one");
  snprintf(want, sizeof want, "%s:3: boom", path);
  TD_CHECK_STR(run(a, "local ok, e = pcall(require('cc_shared').boom) return e"), want);

  /* the same size and modification time, other text: a second VM still
   * gets the first one's module, so it came from the cache */
  write_file(path, "local M = {}\n"
                   "function M.v() return 'two' end\n"
                   "function M.boom() error('boom') end\n"
                   "return M\n");
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  TD_CHECK(utimensat(AT_FDCWD, path, times, 0) == 0);
  lua_State *b = vm(dir);
  TD_CHECK_STR(run(b, "return require('cc_shared').v()"), "one");
  TD_CHECK_STR(run(b, "local ok, e = pcall(require('cc_shared').boom) return e"), want);
  /* ... and with its debug information: the traceback names the line */
  TD_CHECK(strstr(run(b, "return select(2, xpcall(require('cc_shared').boom, debug.traceback))"),
                  "cc_shared.lua:3: in function") != NULL);

  /* another size: compiled again */
  write_file(path, "local M = {}\n"
                   "function M.v() return 'three' end\n"
                   "return M\n");
  lua_State *c = vm(dir);
  TD_CHECK_STR(run(c, "return require('cc_shared').v()"), "three");
  lua_close(a);
  lua_close(b);
  lua_close(c);
  td_tmpdir_remove(dir);
}

TD_TEST(test_chunkcache_loader_gets_name_and_path) {
  char dir[512], path[600], want[800];
  TD_CHECK(td_tmpdir_make(dir, sizeof dir, "chunkcache"));
  snprintf(path, sizeof path, "%s/cc_args.lua", dir);
  write_file(path, "local name, file = ... return name .. ' ' .. file\n");
  snprintf(want, sizeof want, "cc_args %s", path);
  for (int i = 0; i < 2; i++) { /* compiled, then from the cache */
    lua_State *L = vm(dir);
    TD_CHECK_STR(run(L, "return require('cc_args')"), want);
    lua_close(L);
  }
  td_tmpdir_remove(dir);
}

TD_TEST(test_chunkcache_errors_are_the_standard_ones) {
  char dir[512], path[600];
  TD_CHECK(td_tmpdir_make(dir, sizeof dir, "chunkcache"));
  snprintf(path, sizeof path, "%s/cc_bad.lua", dir);
  write_file(path, "return {\n");
  lua_State *L = vm(dir);
  const char *e = run(L, "return require('cc_bad')");
  char want[1400]; /* as lua5.4 says it: the error is at the end, line 2 */
  snprintf(want, sizeof want, "error loading module 'cc_bad' from file '%s':\n\t%s:2: unexpected symbol near <eof>",
           path, path);
  TD_CHECK_STR(e, want);
  e = run(L, "return require('cc_nope')");
  snprintf(want, sizeof want, "no file '%s/cc_nope.lua'", dir);
  TD_CHECK(e && strstr(e, "module 'cc_nope' not found:") && strstr(e, want));
  lua_close(L);
  td_tmpdir_remove(dir);
}

TD_TEST_MAIN(test_chunkcache_second_vm_loads_the_bytecode, test_chunkcache_loader_gets_name_and_path,
             test_chunkcache_errors_are_the_standard_ones)
